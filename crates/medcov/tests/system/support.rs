//! Starting MedCov for a test and calling it.

use std::sync::Arc;

use medcov_config::{Config, ServiceName, Targets};
use medcov_runtime::Running;
use serde_json::Value;

pub struct App {
    pub running: Option<Running>,
    pub client: reqwest::Client,
}

impl App {
    pub async fn start(config: Config, targets: &str) -> App {
        // Errors logged by the services (internal errors, above all) show in a failing test's output.
        let log = medcov_config::LogConfig { format: medcov_config::LogFormat::Pretty, level: "error".into() };
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

    pub async fn text(&self, service: ServiceName, path: &str) -> String {
        let response = self.client.get(self.url(service, path)).send().await.expect("request sent");
        response.text().await.expect("a body")
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
