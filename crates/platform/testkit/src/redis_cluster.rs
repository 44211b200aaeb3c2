//! A Redis Cluster for tests: three masters on loopback ports, started by the first test that
//! needs it and left running for the next ones, as the local Redis and PostgreSQL are.
//!
//! - `MEDCOV_TEST_REDIS_CLUSTER_URL` (comma-separated seed URLs) points the tests at a cluster
//!   of your own instead; nothing is started then.
//! - Otherwise the nodes listen on 127.0.0.1 at `MEDCOV_TEST_REDIS_CLUSTER_PORT` (default
//!   7301) and the two ports after it, with their files under the system's temporary folder.
//!   A file lock there makes test binaries (and tests inside one) that start at the same time
//!   agree: one starts or repairs the cluster, the others wait for it and reuse it.
//!
//! Each test still gets its own key prefix, whose keys are deleted from every master with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Seed URLs of a cluster to use instead of starting one.
pub const CLUSTER_URL_ENV: &str = "MEDCOV_TEST_REDIS_CLUSTER_URL";
/// The first of the three ports the test cluster listens on.
pub const CLUSTER_PORT_ENV: &str = "MEDCOV_TEST_REDIS_CLUSTER_PORT";
pub const DEFAULT_CLUSTER_PORT: u16 = 7301;
const MASTERS: u16 = 3;

/// The cluster's seed URLs, comma-separated (the form `redis.url` takes), once it serves every
/// slot. Starts it when it is not running. Panics, saying what to do, when it cannot.
pub fn cluster_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(ensure) {
        Ok(url) => url.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The master ports of the test cluster (empty for a cluster named by URL: its nodes are found
/// by asking it).
pub fn cluster_ports() -> Vec<u16> {
    if std::env::var_os(CLUSTER_URL_ENV).is_some() {
        return Vec::new();
    }
    let first =
        std::env::var(CLUSTER_PORT_ENV).ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(DEFAULT_CLUSTER_PORT);
    (first..first + MASTERS).collect()
}

fn ensure() -> Result<String, String> {
    if let Ok(url) = std::env::var(CLUSTER_URL_ENV) {
        return Ok(url);
    }
    let ports = cluster_ports();
    let url = ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let dir = std::env::temp_dir().join(format!("medcov-redis-cluster-{}", ports[0]));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = std::fs::File::create(dir.join("lock")).map_err(|e| format!("cannot create the lock file: {e}"))?;
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", dir.join("lock").display()))?;
    if cluster_is_ready(&ports) {
        return Ok(url);
    }
    let redis_server = crate::tools::require("redis-server", "apt-get install redis-server");
    let redis_cli = crate::tools::require("redis-cli", "apt-get install redis-tools");
    for &port in &ports {
        match node_info(port) {
            Some(info) if info.contains("cluster_enabled:1") => {}
            Some(_) => {
                return Err(format!(
                    "port {port} answers as a Redis without cluster mode, so the test cluster cannot \
                     use it: stop that server or set {CLUSTER_PORT_ENV} to another first port"
                ));
            }
            None => start_node(&redis_server, &dir, port)?,
        }
    }
    wait_until(Duration::from_secs(20), || ports.iter().all(|&p| node_info(p).is_some()))
        .map_err(|_| format!("the test cluster's nodes did not answer on {ports:?}; see {}", dir.display()))?;
    // Nodes that answer but serve no complete cluster (a start interrupted before the cluster
    // was created, or nodes that lost each other): start the cluster afresh.
    for &port in &ports {
        let _ = redis_cli_on(&redis_cli, port, &["FLUSHALL"]);
        let _ = redis_cli_on(&redis_cli, port, &["CLUSTER", "RESET", "HARD"]);
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let output = Command::new(&redis_cli)
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`redis-cli --cluster create {}` failed: {}{}",
            nodes.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    wait_until(Duration::from_secs(30), || cluster_is_ready(&ports))
        .map_err(|_| format!("the test cluster on {ports:?} did not reach cluster_state:ok"))?;
    Ok(url)
}

fn start_node(redis_server: &Path, dir: &Path, port: u16) -> Result<(), String> {
    // A node that is not running starts with no cluster state: `nodes-<port>.conf` from an
    // earlier run names peers and slots that no longer hold.
    let _ = std::fs::remove_file(dir.join(format!("nodes-{port}.conf")));
    let status = Command::new(redis_server)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")])
        .args(["--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no", "--daemonize", "yes"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")))
        .status()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    if !status.success() {
        return Err(format!("redis-server did not start on port {port}; see {}", log_path(dir, port).display()));
    }
    Ok(())
}

fn log_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.log"))
}

fn redis_cli_on(redis_cli: &Path, port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new(redis_cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `CLUSTER INFO` of the node on `port`, or `INFO cluster` when it is not in cluster mode;
/// `None` when nothing answers.
fn node_info(port: u16) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut connection = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    let info: String = redis::cmd("INFO").arg("cluster").query(&mut connection).ok()?;
    if !info.contains("cluster_enabled:1") {
        return Some(info);
    }
    let cluster: String = redis::cmd("CLUSTER").arg("INFO").query(&mut connection).ok()?;
    Some(format!("{info}\n{cluster}"))
}

fn cluster_is_ready(ports: &[u16]) -> bool {
    ports.iter().all(|&port| {
        node_info(port).is_some_and(|info| {
            info.contains("cluster_state:ok")
                && info.contains("cluster_slots_ok:16384")
                && info.contains(&format!("cluster_known_nodes:{}", ports.len()))
        })
    })
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// Deletes every key under `prefix` from every master of the cluster at `url`.
pub(crate) fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
    let client = redis::cluster::ClusterClient::builder(seeds)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()?;
    let mut connection = client.get_connection()?;
    // KEYS goes to every master and comes back as one list; each key is then deleted on its own
    // node (keys of several slots cannot go in one DEL).
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut connection)?;
    for key in keys {
        redis::cmd("UNLINK").arg(key).query::<()>(&mut connection)?;
    }
    Ok(())
}
