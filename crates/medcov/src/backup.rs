//! `medcov admin backup` and `medcov admin restore`: the embedded backend's SQLite files (one
//! per service, and the bus) copied while MedCov runs, and put back into an empty data folder.
//!
//! A backup is a folder (mode 0700, files 0600: it holds password hashes and signing keys):
//! `<service>.db` for each service on SQLite, `bus.db` when the bus is the embedded one, and
//! `manifest.json` saying what was copied, when, with each file's SHA-256.
//!
//! Each file is a transactionally consistent snapshot taken with `VACUUM INTO`: a read
//! transaction, so the services go on reading and writing meanwhile, and every transaction
//! committed before the copy began is in it. The files cannot be copied at one instant, so:
//!
//! 1. the bus is copied first, then every service at once;
//! 2. in each service's copy, outbox events published since the bus copy began (they may be
//!    missing from the bus copy) are marked unpublished again: the restored relay publishes
//!    them once more, and consumers skip what their inbox says they handled.
//!
//! So a restored system loses no event. What remains is the few milliseconds between the
//! services' own snapshots: a service copied a little later may have handled an event whose
//! source change came after the other's copy. PostgreSQL deployments are backed up with the
//! database's own tools (docs/deploy.md).

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use medcov_config::{Config, DatabaseUrl, ServiceName};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use time::OffsetDateTime;

pub const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
const BUS: &str = "bus";

/// What a backup folder holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The layout of the folder; restore refuses one it does not know.
    pub format: u32,
    /// The MedCov version that made it.
    pub medcov: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub files: Vec<FileEntry>,
    /// What was not copied, and why (services on PostgreSQL, a bus in Redis, files not there).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// A service (`auth`, `hospital`, ...) or `bus`.
    pub part: String,
    /// Its file name in the backup folder.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Outbox events marked unpublished again in this copy (published after the bus copy began).
    #[serde(default)]
    pub republished: u64,
}

/// The SQLite files of the current settings: (part, file), and what is not on SQLite.
fn sqlite_files(config: &Config) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    if config.redis.url.is_none() {
        files.push((BUS.to_owned(), config.data_dir.join("bus.db")));
    } else {
        skipped.push("bus: in Redis (redis.url is set); its events are refilled from the outboxes".to_owned());
    }
    for name in ServiceName::ALL.into_iter().filter(|n| n.has_database()) {
        match config.database_url(name) {
            DatabaseUrl::Embedded => files.push((name.as_str().to_owned(), config.data_dir.join(format!("{name}.db")))),
            DatabaseUrl::SqliteFile(path) => files.push((name.as_str().to_owned(), path.clone())),
            DatabaseUrl::Postgres(_) => {
                skipped.push(format!("{name}: on PostgreSQL; back it up with pg_dump (docs/deploy.md#backups)"))
            }
        }
    }
    (files, skipped)
}

async fn open(path: &Path) -> anyhow::Result<SqliteConnection> {
    let options =
        SqliteConnectOptions::new().filename(path).create_if_missing(false).busy_timeout(Duration::from_secs(30));
    SqliteConnection::connect_with(&options).await.with_context(|| format!("cannot open {}", path.display()))
}

/// Copies `source` to `target` (which must not exist) as one consistent snapshot.
async fn snapshot(source: &Path, target: &Path) -> anyhow::Result<()> {
    let mut connection = open(source).await?;
    let target_text = target.to_str().with_context(|| format!("{} is not UTF-8", target.display()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target_text)
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
    connection.close().await?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Marks unpublished, in a service's copy, the outbox events published at or after `since`.
async fn republish_since(copy: &Path, since: OffsetDateTime) -> anyhow::Result<u64> {
    let mut connection = open(copy).await?;
    let has_outbox: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
            .fetch_optional(&mut connection)
            .await?;
    let changed = match has_outbox {
        None => 0,
        Some(_) => sqlx::query("UPDATE outbox SET published_at = NULL WHERE published_at >= $1")
            .bind(since)
            .execute(&mut connection)
            .await?
            .rows_affected(),
    };
    connection.close().await?;
    Ok(changed)
}

fn sha256(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        context.update(&buffer[..n]);
    }
    let hex = context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hex))
}

/// A new, private folder (0700); an existing one must be empty.
fn private_folder(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        let mut entries = std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?;
        ensure!(entries.next().is_none(), "{} is not empty: choose a new folder", path.display());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// `medcov admin backup --to <folder>`.
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<Manifest> {
    let (parts, mut skipped) = sqlite_files(config);
    let (present, missing): (Vec<_>, Vec<_>) = parts.into_iter().partition(|(_, path)| path.is_file());
    for (part, path) in missing {
        skipped.push(format!("{part}: {} does not exist (never started?)", path.display()));
    }
    if present.is_empty() {
        bail!("nothing to back up: no SQLite file of MedCov's is there ({})", skipped.join("; "));
    }
    // Key material (a key-encryption key file, `*.kek`) stays out of backups on purpose: whoever
    // holds a backup must not hold the key that opens it. Say so, so it is kept separately.
    if let Ok(entries) = std::fs::read_dir(&config.data_dir) {
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".kek"))
            .collect();
        keys.sort();
        for key in keys {
            skipped.push(format!(
                "{key}: key material, kept out of backups; keep a copy apart and put it back beside the restored files"
            ));
        }
    }
    private_folder(to)?;
    let started_at = OffsetDateTime::now_utc();
    let target = |part: &str| to.join(format!("{part}.db"));

    // 1. The bus, before any service.
    let bus = present.iter().find(|(part, _)| part == BUS);
    let bus_began = OffsetDateTime::now_utc();
    if let Some((part, path)) = bus {
        snapshot(path, &target(part)).await?;
    }
    // 2. Every service at once, so their snapshots are close together.
    let services: Vec<_> = present.iter().filter(|(part, _)| part != BUS).collect();
    let copies = services.iter().map(|(part, path)| {
        let target = target(part);
        async move { snapshot(path, &target).await }
    });
    for copied in futures::future::join_all(copies).await {
        copied?;
    }

    let mut files = Vec::new();
    for (part, _) in &present {
        let file = format!("{part}.db");
        let republished = if part != BUS && bus.is_some() {
            // A second's margin: timestamps compare as text, and an event published twice is
            // harmless where one lost is not.
            republish_since(&to.join(&file), bus_began - Duration::from_secs(1)).await?
        } else {
            0
        };
        let (bytes, sha256) = sha256(&to.join(&file))?;
        files.push(FileEntry { part: part.clone(), file, bytes, sha256, republished });
    }
    let manifest = Manifest {
        format: FORMAT,
        medcov: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        files,
        skipped,
    };
    let path = to.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(manifest)
}

/// `medcov admin restore --from <folder>`: into the data folder (and files) the current
/// settings name, which must hold none of MedCov's files yet.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<Manifest> {
    let manifest_path = from.join(MANIFEST);
    let text = std::fs::read(&manifest_path)
        .with_context(|| format!("{} is not a MedCov backup: it has no {MANIFEST}", from.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("{} is not readable", manifest_path.display()))?;
    ensure!(
        manifest.format == FORMAT,
        "this backup has format {}; this MedCov restores format {FORMAT}",
        manifest.format
    );

    // Where each part goes, checked whole before anything is written.
    let mut plan = Vec::new();
    for entry in &manifest.files {
        let destination = if entry.part == BUS {
            if config.redis.url.is_some() {
                bail!("the backup holds the embedded bus, but redis.url is set: restore without it set");
            }
            config.data_dir.join("bus.db")
        } else {
            let name = ServiceName::from_str(&entry.part)
                .map_err(|e| anyhow::anyhow!("the backup names an unknown part `{}`: {e}", entry.part))?;
            match config.database_url(name) {
                DatabaseUrl::Embedded => config.data_dir.join(format!("{name}.db")),
                DatabaseUrl::SqliteFile(path) => path.clone(),
                DatabaseUrl::Postgres(_) => bail!(
                    "services.{name} is on PostgreSQL here, but the backup holds its SQLite file: \
                     restore with the same database settings it was made with"
                ),
            }
        };
        for existing in [destination.clone(), wal(&destination, "-wal"), wal(&destination, "-shm")] {
            ensure!(
                !existing.exists(),
                "{} already exists: restore into an empty data folder (move the old one aside first)",
                existing.display()
            );
        }
        let source = from.join(&entry.file);
        let (bytes, sha256) = sha256(&source)?;
        ensure!(
            bytes == entry.bytes && sha256 == entry.sha256,
            "{} does not match the manifest (damaged or changed since the backup)",
            source.display()
        );
        plan.push((source, destination));
    }

    for (source, destination) in &plan {
        if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let partial = wal(destination, ".restoring");
        std::fs::copy(source, &partial).with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
        let mut connection = open(&partial).await?;
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut connection).await?;
        connection.close().await?;
        if verdict != "ok" {
            let _ = std::fs::remove_file(&partial);
            bail!("{} fails SQLite's integrity check: {verdict}", source.display());
        }
        std::fs::rename(&partial, destination)?;
    }
    Ok(manifest)
}

/// `<file><suffix>`: SQLite's `-wal` and `-shm` beside a database, or a temporary name.
fn wal(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
