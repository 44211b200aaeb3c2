//! Sending spans to the collector, one `service.name` per service.
//!
//! Several services may share a process (the embedded mode runs all five), yet each must show
//! in Jaeger under its own name. An OTLP request carries one resource for all its spans, so
//! [`PerService`] splits every batch by the span's `service` attribute (set by
//! [`crate::spans::ServiceTagger`]) and sends each part with a resource naming that service;
//! spans of no service go under the process's name.
//!
//! A collector that does not answer costs a warning at most once a minute (with what failed
//! and how many spans were lost), never an error every few seconds; its return is logged once.
//! The outcome of every export is counted per service ([`exports`]), for the
//! `telemetry_span_exports_total` metric.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// The span attribute naming the MedCov service a span belongs to; it becomes the resource's
/// `service.name` and is not sent as a span attribute.
pub const SERVICE_ATTRIBUTE: &str = "service";

/// How often, at most, an unreachable collector is logged.
const QUIET_FOR: Duration = Duration::from_secs(60);

/// How the exports of one service went since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// Batches the collector took.
    pub ok: u64,
    /// Batches lost: the collector was unreachable or refused them.
    pub failed: u64,
}

fn counts() -> &'static Mutex<BTreeMap<String, Exports>> {
    static COUNTS: OnceLock<Mutex<BTreeMap<String, Exports>>> = OnceLock::new();
    COUNTS.get_or_init(Mutex::default)
}

/// The exports of `service`'s spans so far (both zero when spans are not exported).
pub fn exports(service: &str) -> Exports {
    counts().lock().unwrap_or_else(PoisonError::into_inner).get(service).copied().unwrap_or_default()
}

fn count(service: &str, ok: bool) {
    let mut counts = counts().lock().unwrap_or_else(PoisonError::into_inner);
    let entry = counts.entry(service.to_owned()).or_default();
    if ok {
        entry.ok += 1;
    } else {
        entry.failed += 1;
    }
}

/// Whether the collector is failing, and when that was last said.
#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    logged: Option<Instant>,
    dropped: u64,
}

impl Outage {
    /// An export of `spans` failed at `now`: the spans lost since the last warning when one
    /// is due (the first failure, then a minute after the last warning), `None` otherwise.
    fn failed(&mut self, now: Instant, spans: usize) -> Option<u64> {
        self.since.get_or_insert(now);
        self.dropped += spans as u64;
        if self.logged.is_some_and(|at| now.duration_since(at) < QUIET_FOR) {
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.dropped))
    }

    /// An export went through: how long the collector was away, if it was.
    fn succeeded(&mut self, now: Instant) -> Option<Duration> {
        let since = self.since?;
        *self = Outage::default();
        Some(now.duration_since(since))
    }
}

/// An OTLP/HTTP span exporter per service, made on first use.
#[derive(Debug)]
pub struct PerService {
    endpoint: String,
    /// The process's resource (SDK attributes, `service.name` = the process).
    base: Resource,
    /// One HTTP client for every service's exporter, made in the export thread (a blocking
    /// client cannot be made inside the async runtime).
    client: OnceLock<reqwest::blocking::Client>,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
    outage: Mutex<Outage>,
}

impl PerService {
    pub fn new(endpoint: String, base: Resource) -> PerService {
        PerService { endpoint, base, client: OnceLock::new(), exporters: Mutex::default(), outage: Mutex::default() }
    }

    fn resource(&self, service: Option<&str>) -> Resource {
        let mut builder = Resource::builder_empty();
        for (key, value) in self.base.iter() {
            builder = builder.with_attribute(KeyValue::new(key.clone(), value.clone()));
        }
        builder = builder.with_attribute(KeyValue::new("service.namespace", "medcov"));
        if let Some(service) = service {
            builder = builder.with_service_name(service.to_owned());
        }
        builder.build()
    }

    fn exporter(&self, service: Option<&str>) -> Result<Arc<opentelemetry_otlp::SpanExporter>, String> {
        let key = service.unwrap_or("").to_owned();
        let mut exporters = self.exporters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(exporter) = exporters.get(&key) {
            return Ok(exporter.clone());
        }
        let client = match self.client.get() {
            Some(client) => client.clone(),
            None => {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
                self.client.get_or_init(|| client).clone()
            }
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(self.endpoint.clone())
            .build()
            .map_err(|e| e.to_string())?;
        exporter.set_resource(&self.resource(service));
        let exporter = Arc::new(exporter);
        exporters.insert(key, exporter.clone());
        Ok(exporter)
    }

    fn failed(&self, error: &str, spans: usize) {
        let due = self.outage.lock().unwrap_or_else(PoisonError::into_inner).failed(Instant::now(), spans);
        if let Some(dropped_spans) = due {
            tracing::warn!(
                target: "medcov::telemetry",
                collector = %self.endpoint,
                %error,
                dropped_spans,
                "cannot send spans to the trace collector; they are dropped until it answers (said at most once a minute)"
            );
        }
    }

    fn succeeded(&self) {
        let away = self.outage.lock().unwrap_or_else(PoisonError::into_inner).succeeded(Instant::now());
        if let Some(away) = away {
            tracing::info!(
                target: "medcov::telemetry",
                collector = %self.endpoint,
                down_for_s = away.as_secs(),
                "the trace collector answers again"
            );
        }
    }
}

/// Splits spans by their service, taking the service attribute off each.
fn by_service(batch: Vec<SpanData>) -> BTreeMap<Option<String>, Vec<SpanData>> {
    let key = Key::from_static_str(SERVICE_ATTRIBUTE);
    let mut groups: BTreeMap<Option<String>, Vec<SpanData>> = BTreeMap::new();
    for mut span in batch {
        let service = span.attributes.iter().position(|kv| kv.key == key).map(|at| {
            let kv = span.attributes.remove(at);
            kv.value.as_str().into_owned()
        });
        groups.entry(service).or_default().push(span);
    }
    groups
}

impl SpanExporter for PerService {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for (service, spans) in by_service(batch) {
            let counted = service.clone().unwrap_or_default();
            let size = spans.len();
            let outcome = match self.exporter(service.as_deref()) {
                Ok(exporter) => exporter.export(spans).await.map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => {
                    count(&counted, true);
                    self.succeeded();
                }
                Err(error) => {
                    count(&counted, false);
                    self.failed(&error, size);
                }
            }
        }
        // Failures are dealt with above: the SDK would log each one again, as an error.
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let exporters: Vec<_> =
            self.exporters.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for exporter in exporters {
            let _ = exporter.shutdown_with_timeout(timeout);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.base = resource.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_told_at_most_once_a_minute_with_what_was_lost() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut outage = Outage::default();
        assert_eq!(outage.failed(at(0), 3), Some(3), "the first failure is told");
        for s in [5, 10, 30, 59] {
            assert_eq!(outage.failed(at(s), 2), None, "not again within the minute ({s} s)");
        }
        assert_eq!(outage.failed(at(60), 1), Some(9), "a minute later, with every span lost since");
        assert_eq!(outage.failed(at(61), 1), None);
        assert_eq!(outage.succeeded(at(90)), Some(Duration::from_secs(90)), "its end is told once");
        assert_eq!(outage.succeeded(at(91)), None);
        assert_eq!(outage.failed(at(92), 4), Some(4), "a new outage is told at once");
    }

    #[test]
    fn a_batch_is_split_by_service_and_loses_the_attribute() {
        let span = |service: Option<&str>| {
            let mut attributes = vec![KeyValue::new("http.route", "/patients")];
            if let Some(service) = service {
                attributes.push(KeyValue::new(SERVICE_ATTRIBUTE, service.to_owned()));
            }
            SpanData {
                span_context: opentelemetry::trace::SpanContext::empty_context(),
                parent_span_id: opentelemetry::trace::SpanId::INVALID,
                parent_span_is_remote: false,
                span_kind: opentelemetry::trace::SpanKind::Server,
                name: "GET /patients".into(),
                start_time: std::time::SystemTime::now(),
                end_time: std::time::SystemTime::now(),
                attributes,
                dropped_attributes_count: 0,
                events: Default::default(),
                links: Default::default(),
                status: opentelemetry::trace::Status::Unset,
                instrumentation_scope: Default::default(),
            }
        };
        let groups =
            by_service(vec![span(Some("hospital")), span(Some("billing")), span(None), span(Some("hospital"))]);
        assert_eq!(groups[&Some("hospital".to_owned())].len(), 2);
        assert_eq!(groups[&Some("billing".to_owned())].len(), 1);
        assert_eq!(groups[&None].len(), 1);
        assert!(groups.values().flatten().all(|s| s.attributes.len() == 1));
    }
}
