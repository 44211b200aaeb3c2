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
