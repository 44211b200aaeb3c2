//! One Prometheus registry per service.
//!
//! When every service runs in one process, each still answers `/metrics` with its own numbers
//! only, so a scrape of port 3002 is the hospital service whatever the deployment. That rules
//! out the process-global recorder behind the `metrics::counter!` macros: a [`Metrics`] value
//! is handed to whatever records, and every series carries a `service` label.
//!
//! Every registry also shows `medcov_build_info` and the process's resource use
//! ([`crate::process`]). Every metric has HELP and TYPE (`promtool check metrics` holds each
//! service's `/metrics` to it in a test): a new one is described where it is first made.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Request latency buckets, in seconds: from a cache hit to a slow report.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub const HTTP_REQUESTS: &str = "http_server_requests_total";
pub const HTTP_ERRORS: &str = "http_server_errors_total";
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "http_server_requests_in_flight";
pub const BUILD_INFO: &str = "medcov_build_info";

const METADATA: Metadata<'static> = Metadata::new("medcov", Level::INFO, None);

/// A service's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    service: Arc<str>,
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(service: &str) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", service)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { service: Arc::from(service), recorder: Arc::new(recorder), handle };
        metrics.describe_counter(
            HTTP_REQUESTS,
            "HTTP requests served, by route template, method and status class (and upstream, at the gateway).",
        );
        metrics.describe_counter(HTTP_ERRORS, "HTTP requests answered with a 4xx or 5xx status.");
        metrics.describe_histogram(HTTP_DURATION, Unit::Seconds, "Time from request to response.");
        metrics.describe_gauge(HTTP_IN_FLIGHT, "Requests being served right now.");
        metrics.gauge(HTTP_IN_FLIGHT, &[]).set(0.0);
        metrics.describe_gauge(BUILD_INFO, "Always 1: the version of MedCov running, and its source revision.");
        metrics
            .gauge(
                BUILD_INFO,
                &[
                    ("version", env!("CARGO_PKG_VERSION")),
                    ("revision", option_env!("MEDCOV_REVISION").unwrap_or("unknown")),
                ],
            )
            .set(1.0);
        metrics
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect();
        Key::from_parts(name, labels)
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&Self::key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&Self::key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// Makes a counter exist (at 0 until it first grows), so a rate over it sees its first
    /// increment.
    pub fn ensure_counter(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let _ = self.counter(name, labels);
    }

    /// Makes a gauge exist (at 0 until it is first set).
    pub fn ensure_gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let _ = self.gauge(name, labels);
    }

    pub fn describe_counter(&self, name: &'static str, help: &'static str) {
        self.recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
    }

    pub fn describe_gauge(&self, name: &'static str, help: &'static str) {
        self.recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
    }

    pub fn describe_histogram(&self, name: &'static str, unit: Unit, help: &'static str) {
        self.recorder.describe_histogram(KeyName::from_const_str(name), Some(unit), help.into());
    }

    /// Records one served request; `upstream` is the service a gateway forwarded it to.
    /// The error counters of the route exist from its first request on, at 0 until an error,
    /// so a rate over them sees the first one.
    pub fn record_request(&self, method: &str, route: &str, upstream: Option<&str>, status: u16, elapsed: Duration) {
        let class = status_class(status);
        let mut labels = vec![("method", method), ("route", route), ("status_class", class)];
        if let Some(upstream) = upstream {
            labels.push(("upstream", upstream));
        }
        self.counter(HTTP_REQUESTS, &labels).increment(1);
        for error_class in ["4xx", "5xx"] {
            labels[2].1 = error_class;
            if error_class == class {
                self.counter(HTTP_ERRORS, &labels).increment(1);
            } else {
                self.ensure_counter(HTTP_ERRORS, &labels);
            }
        }
        labels[2].1 = class;
        self.histogram(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition, with the process's resource use.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        text.push_str(&crate::process::render(&self.service));
        text
    }

    /// Drains histogram samples into buckets; run now and then when nobody scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_renders_only_its_own_series() {
        let hospital = Metrics::new("hospital");
        let billing = Metrics::new("billing");
        hospital.record_request("GET", "/patients", None, 200, Duration::from_millis(3));
        hospital.record_request("GET", "/patients", None, 503, Duration::from_millis(3));
        let text = hospital.render();
        assert!(
            text.contains(
                r#"http_server_requests_total{service="hospital",method="GET",route="/patients",status_class="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_server_errors_total{service="hospital",method="GET",route="/patients",status_class="5xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_server_errors_total{service="hospital",method="GET",route="/patients",status_class="4xx"} 0"#
            ),
            "an error counter at 0 from the route's first request: {text}"
        );
        assert!(text.contains("http_server_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains(r#"medcov_build_info{service="hospital",version=""#), "{text}");
        assert!(text.contains(r#"process_resident_memory_bytes{service="hospital"}"#), "{text}");
        assert!(!billing.render().contains("/patients"));
    }
}
