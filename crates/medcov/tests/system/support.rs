//! Starting MedCov for a test, calling it, and waiting for it.
//!
//! Two ways to wait, and no third: [`App::settle`] for work on the event bus (then assert,
//! including that nothing happened twice), and [`eventually`]/[`until`] for a real condition
//! the bus does not carry (a deadline or TTL running out, a process or server coming up, a
//! file watcher noticing a change).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use medcov_config::{Config, ServiceName, Targets};
use medcov_runtime::Running;
use serde_json::Value;

pub use medcov_testkit::{PATIENCE, eventually, until};

/// How long [`App::settle`] waits for the events in flight before failing.
pub const SETTLE: Duration = Duration::from_secs(30);

pub struct App {
    pub running: Option<Running>,
    pub client: reqwest::Client,
}

impl App {
    pub async fn start(config: Config, targets: &str) -> App {
        // Errors logged by the services (internal errors, above all) show in a failing test's output.
        let log = medcov_config::LogConfig {
            format: medcov_config::LogFormat::Pretty,
            level: "error".into(),
            ..Default::default()
        };
        let _ = medcov_telemetry::init(&log, &config.telemetry, "medcov-test");
        let targets: Targets = targets.parse().expect("valid targets");
        let running = medcov::start(Arc::new(config), &targets).await.expect("MedCov starts");
        App { running: Some(running), client: reqwest::Client::new() }
    }

    pub fn url(&self, service: ServiceName, path: &str) -> String {
        let addr = self.running.as_ref().and_then(|r| r.addr(service)).expect("service is running");
        format!("http://{addr}{path}")
    }

    pub async fn get(&self, service: ServiceName, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.client.get(self.url(service, path)).send().await.expect("request sent");
        read(response).await
    }

    /// A service's Prometheus metrics, wherever it serves them (the gateway on its internal
    /// listener, the others on their port).
    pub async fn metrics(&self, service: ServiceName) -> String {
        let running = self.running.as_ref().expect("running");
        let addr = running.internal_addr(service).or_else(|| running.addr(service)).expect("service is running");
        let response = self.client.get(format!("http://{addr}/metrics")).send().await.expect("request sent");
        response.text().await.expect("a body")
    }

    pub async fn text(&self, service: ServiceName, path: &str) -> String {
        let response = self.client.get(self.url(service, path)).send().await.expect("request sent");
        response.text().await.expect("a body")
    }

    /// Waits until every outbox of the services running here is relayed and every consumer
    /// group they read with has no lag and nothing pending; fails naming what is still moving.
    pub async fn settle(&self) {
        let running = self.running.as_ref().expect("MedCov is running");
        if let Err(unsettled) = running.settle(SETTLE).await {
            panic!("{unsettled}");
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

pub async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

impl App {
    /// Sends `method path` to the gateway with an optional JSON body and bearer token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, self.url(ServiceName::Gateway, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// The administrator created on first start, from the credentials file.
    pub fn initial_admin(data_dir: &std::path::Path) -> (String, String) {
        let text = std::fs::read_to_string(data_dir.join("initial-admin.txt")).expect("the credentials file");
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        (field("username"), field("password"))
    }

    /// Signs in through the gateway; returns (access token, refresh token).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(serde_json::json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(status, 200, "login as {username}: {body}");
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }
}

/// The `medcov` binary, as processes.
pub const BIN: &str = env!("CARGO_BIN_EXE_medcov");

pub fn medcov(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(std::env::temp_dir());
    // The tests decide every setting; nothing leaks in from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("MEDCOV") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A running `medcov serve`, with the addresses it logged.
pub struct Process {
    pub child: Child,
    pub addresses: BTreeMap<String, String>,
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    pub fn spawn(mut command: Command, services: usize) -> Process {
        command.env("MEDCOV__LOG__FORMAT", "json").stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("medcov starts");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addresses = BTreeMap::new();
        while addresses.len() < services {
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("medcov logs where it listens");
            let event: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("a JSON log line ({e}): {line}"));
            if event["message"] == "listening" {
                let service = event["service"].as_str().expect("service").to_owned();
                let address = event["address"].as_str().expect("address").to_owned();
                addresses.insert(service, address);
            }
        }
        Process { child, addresses, lines }
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.addresses[service])
    }

    /// Sends SIGTERM and returns the exit status and the log lines written meanwhile.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let status = self.child.wait().expect("medcov exits");
        let lines = self.lines.try_iter().collect();
        (status, lines)
    }

    /// SIGKILL: no draining, no goodbye to the registry, as when a machine dies.
    pub fn kill(mut self) {
        self.child.kill().expect("the process is killed");
        self.child.wait().expect("it is reaped");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
