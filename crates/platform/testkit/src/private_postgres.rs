//! A PostgreSQL cluster of one test's own, on a free loopback port in a temporary folder, that
//! the test may stop and start again (the shared server on 5432 must never be stopped: other
//! tests use it).
//!
//! `initdb` and `pg_ctl` refuse to run as root, and CI runs as root: then the cluster runs as
//! the `postgres` user (through `runuser`), in a folder handed to that user. As any other user
//! it runs as that user. The binaries are found in `MEDCOV_TEST_POSTGRES_BIN` when set, else
//! under `/usr/lib/postgresql/<newest>/bin` (Debian), else on `PATH`.
//!
//! ```text
//! let postgres = PrivatePostgres::start();        // initdb, then pg_ctl start
//! config.database.url = postgres.url("medcov").parse()?;
//! postgres.stop();                                 // connections drop; nothing listens
//! postgres.start_again();                          // same port, same data
//! ```
//!
//! The cluster is stopped (immediately) and its folder removed when the value drops.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A folder holding `initdb`, `pg_ctl` and `postgres`, to use instead of the ones found.
pub const POSTGRES_BIN_ENV: &str = "MEDCOV_TEST_POSTGRES_BIN";

pub struct PrivatePostgres {
    /// Removed on drop (root owns it; the cluster's user owns `data` inside it).
    folder: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Whether the binaries run as the `postgres` user (this process is root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it. Panics, saying
    /// what to install, when PostgreSQL's server binaries are missing.
    pub fn start() -> PrivatePostgres {
        let bin = binaries().unwrap_or_else(|| {
            panic!(
                "this test starts a PostgreSQL cluster of its own and needs PostgreSQL's server \
                 binaries (initdb, pg_ctl): `apt-get install postgresql` (or `bash .ci/run`), or \
                 point {POSTGRES_BIN_ENV} at their folder"
            )
        });
        let as_postgres = is_root();
        let folder = tempfile::Builder::new().prefix("medcov-pg-").tempdir().expect("a temporary folder");
        let data = folder.path().join("data");
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            // The cluster's user must reach its folder: traverse ours, own its own.
            std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::create_dir(&data).expect("the data folder");
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("hand the data folder to postgres");
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let port = free_port();
        let postgres = PrivatePostgres { folder, data, bin, port, as_postgres };
        let data = postgres.data.display().to_string();
        postgres.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        postgres.start_again();
        postgres
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `database` on it, as user `postgres` (MedCov creates the database
    /// when missing).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the cluster (again) on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data.display().to_string();
        let log = self.data.join("server.log").display().to_string();
        // Fast to start and to write; the data outlives a stop (it is not an OS crash).
        let options = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port
        );
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    /// Stops the cluster the way an administrator does (`-m fast`): every session is ended,
    /// open transactions roll back, and nothing listens until [`PrivatePostgres::start_again`].
    pub fn stop(&self) {
        self.stop_with("fast");
    }

    /// Stops it as a crash would (`-m immediate`): no shutdown checkpoint, recovery on the
    /// next start.
    pub fn crash(&self) {
        self.stop_with("immediate");
    }

    fn stop_with(&self, mode: &str) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", mode, "-w", "-t", "60", "stop"]);
    }

    /// Runs one of the binaries (as `postgres` when root); panics with its output on failure.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program, args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !output.status.success() {
            panic!(
                "{program} {} failed ({}):\n{}{}\nserver log: {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default(),
            );
        }
        output
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        // The folder the cluster's user can read, not the caller's (which root may keep closed).
        command.args(args).current_dir(self.folder.path());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        if self.data.join("postmaster.pid").exists() {
            let _ = self.command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        }
    }
}

/// The folder of `initdb` and `pg_ctl`.
fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(POSTGRES_BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    // Debian keeps them off PATH, one folder per major version: take the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_tools(dir))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just made is this process's user.
    let probe = tempfile::NamedTempFile::new().expect("a temporary file");
    probe.as_file().metadata().map(|m| m.uid() == 0).unwrap_or(false)
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id").args([flag, "postgres"]).output().expect("cannot run id");
        String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or_else(|_| {
            panic!(
                "running as root, this test runs PostgreSQL as the `postgres` user, which does not \
                 exist here: `apt-get install postgresql` creates it"
            )
        })
    };
    (id("-u"), id("-g"))
}

/// A loopback port nothing listens on at the moment.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_stops_and_starts_again_on_the_same_port_with_its_data() {
        let postgres = PrivatePostgres::start();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            let url = postgres.url("postgres");
            let mut connection = sqlx::PgConnection::connect(&url).await.expect("connects");
            sqlx::query("CREATE TABLE kept (n INT)").execute(&mut connection).await.expect("create");
            sqlx::query("INSERT INTO kept VALUES (7)").execute(&mut connection).await.expect("insert");
            drop(connection);
            postgres.stop();
            assert!(sqlx::PgConnection::connect(&url).await.is_err(), "nothing listens while stopped");
            postgres.start_again();
            let mut connection = sqlx::PgConnection::connect(&url).await.expect("connects again");
            let n: i32 = sqlx::query_scalar("SELECT n FROM kept").fetch_one(&mut connection).await.expect("kept");
            assert_eq!(n, 7);
        });
    }
}
