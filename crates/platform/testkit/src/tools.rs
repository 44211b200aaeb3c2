//! Command-line tools some tests run (validators, linters, fuzzers, a browser): found in the
//! test-tools folder that `.ci/run` fills, or on `PATH`.
//!
//! `.ci/run` installs the Debian packages the tests need and a Python virtual environment with
//! the Python tools listed in `.ci/requirements.txt`, in `$MEDCOV_TOOLS` (default
//! `~/.cache/medcov-tools`). A test that needs a missing tool fails and says how to get it: it
//! is never skipped.

use std::path::{Path, PathBuf};

/// Where `.ci/run` puts the Python tools (a virtual environment).
pub const TOOLS_ENV: &str = "MEDCOV_TOOLS";

/// The test-tools folder: `$MEDCOV_TOOLS`, or `~/.cache/medcov-tools`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache").join("medcov-tools")
        }
    }
}

/// The path of `name`: in the tools folder's `bin`, else on `PATH`. Panics, saying how to
/// install it (`install`, a command), when it is in neither.
pub fn require(name: &str, install: &str) -> PathBuf {
    find(name).unwrap_or_else(|| {
        panic!(
            "this test needs `{name}`, which is neither in {}/bin nor on PATH.\n\
             Run `bash .ci/run` once (it installs every test tool), or: {install}",
            tools_dir().display()
        )
    })
}

/// The path of `name` in the tools folder or on `PATH`, if it is there.
pub fn find(name: &str) -> Option<PathBuf> {
    let in_tools = tools_dir().join("bin").join(name);
    if is_executable(&in_tools) {
        return Some(in_tools);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
