//! A Redis server of one test's own, on a free loopback port, that the test may stop and start
//! again (empty, or with the data it had): for the faults a shared server must never suffer.
//!
//! It runs in the foreground as the test's child process (no persistence of its own: `--save ""`,
//! no append-only file), with its files in a temporary folder, and is killed when dropped.
//!
//! ```text
//! let mut redis = PrivateRedis::start();
//! config.redis.url = Some(redis.url().parse()?);
//! redis.kill();            // the outage: connections reset, new ones refused
//! redis.start_again();     // back empty, as after a restart without persistence
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers. Panics, saying what to do,
    /// when `redis-server` is missing or does not come up.
    pub fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().expect("a temporary folder for Redis");
        let port = free_port();
        let mut redis = PrivateRedis { port, dir, child: None };
        redis.spawn();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL): open connections are reset, new ones refused, and what it
    /// held is gone unless [`PrivateRedis::save`] wrote it first.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes what the server holds to its dump file (`SAVE`), so that the next start loads it.
    pub fn save(&self) {
        let mut connection = self.connect(Duration::from_secs(2)).expect("the private Redis answers");
        redis::cmd("SAVE").query::<()>(&mut connection).expect("SAVE");
    }

    /// Starts the server again on the same port, empty: the dump file, if any, is removed
    /// first (a restart without persistence, or a failover to an empty replica).
    pub fn start_again(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.dump());
        self.spawn();
    }

    /// Starts the server again on the same port with the data [`PrivateRedis::save`] wrote.
    pub fn start_again_with_data(&mut self) {
        self.kill();
        assert!(self.dump().exists(), "start_again_with_data needs a save() first");
        self.spawn();
    }

    fn dump(&self) -> PathBuf {
        self.dir.path().join("dump.rdb")
    }

    fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(timeout)
    }

    fn spawn(&mut self) {
        let server = crate::tools::require("redis-server", "apt-get install redis-server");
        let log = self.dir.path().join("redis.log");
        let child = Command::new(server)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping =
                self.connect(Duration::from_millis(200)).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("the private redis-server on port {} exited ({status}): {text}", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "the private redis-server on port {} did not answer within 10 s; see {}",
                self.port,
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
