//! The data folder and the files in it are MedCov's alone: the folder is `0700`, every file
//! in it `0600`. The SQLite files hold patient records and the auth service's (encrypted)
//! signing keys; the folder also holds the first administrator's password and the
//! key-encryption key. Another account on the machine must not read any of it.
//!
//! A folder or file found with wider permissions (made by an older version, or by hand) is
//! narrowed and the change is logged; one that cannot be narrowed (owned by someone else)
//! stops start-up with a message saying what to run.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of the data folder.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as `0700`, or narrows an existing one to `0700`, and
/// narrows every file directly in it to `0600`.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(|e| named(dir, e))?;
    }
    narrow(dir, DIR_MODE)?;
    for entry in std::fs::read_dir(dir).map_err(|e| named(dir, e))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            narrow(&entry.path(), FILE_MODE)?;
        }
    }
    Ok(())
}

/// Makes sure `path` exists as an empty `0600` file (so a program that creates it later, such
/// as SQLite, inherits that mode), or narrows an existing one to `0600`.
pub fn ensure_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => narrow(path, FILE_MODE),
        Err(e) => Err(named(path, e)),
    }
}

/// Writes `contents` to `path`, readable by the owner only (replacing what was there).
pub fn write_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    ensure_file(path)?;
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).map_err(|e| named(path, e))?;
    file.write_all(contents)
}

/// Sets `path` to `mode` when it allows more; logs when it did.
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let current = std::fs::metadata(path).map_err(|e| named(path, e))?.permissions().mode() & 0o777;
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{} is readable by other users (mode {current:o}) and cannot be changed ({e}); \
                 run `chmod {mode:o} {}` as its owner, or point data_dir elsewhere",
                path.display(),
                path.display()
            ),
        )
    })?;
    tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "narrowed the permissions of a data file");
    Ok(())
}

fn named(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_folder_and_file_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        ensure_file(&dir.join("hospital.db")).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("hospital.db")), 0o600);
        write_file(&dir.join("secret"), b"x").unwrap();
        assert_eq!(mode(&dir.join("secret")), 0o600);
        assert_eq!(std::fs::read(dir.join("secret")).unwrap(), b"x");
    }

    #[test]
    fn an_open_folder_and_its_files_are_narrowed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("auth.db"), b"").unwrap();
        std::fs::set_permissions(dir.join("auth.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("auth.db")), 0o600);
    }
}
