//! Telemetry for every MedCov process: one `tracing` subscriber that writes JSON or
//! human-readable logs, optionally exports spans over OTLP/HTTP (Jaeger's port 4318 takes
//! them), and the W3C trace context that ties a request's logs and spans together across
//! services.
//!
//! - [`init`]: install the subscriber once per process; keep the guard until exit.
//! - [`trace_context`]: `traceparent` parsing and formatting.
//! - [`spans`]: each span tagged with its service; probes never exported.
//! - [`export`]: one `service.name` per service even when they share a process; a collector
//!   outage logged once a minute at most; export outcomes counted per service.
//! - [`db`]: every database statement inside an exported span becomes a CLIENT span named
//!   after its kind and table.

#![forbid(unsafe_code)]

pub mod db;
pub mod export;
pub mod spans;
pub mod trace_context;

use std::io::IsTerminal;

use medcov_config::{LogConfig, LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use trace_context::{TraceContext, of_span, outgoing, set_attribute, set_name};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "invalid setting `log.level` ({0}): expected a level such as info or directives such as \"info,medcov_http=debug\""
    )]
    Filter(String),
    #[error("invalid setting `telemetry.otlp_endpoint`: {0}")]
    Exporter(String),
}

/// Flushes exported spans when dropped; keep it alive until the process exits.
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Flushes the batch; an unreachable collector loses spans, never blocks exit long.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process-wide subscriber. `process` names the process in exported spans
/// (`medcov` when it runs every service, `medcov-hospital` when it runs one).
///
/// Calling it again (as tests do) keeps the first subscriber and returns an inert guard.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig, process: &str) -> Result<TelemetryGuard, TelemetryError> {
    let exporter = telemetry.otlp_endpoint.as_ref().map(|endpoint| {
        let endpoint = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        export::PerService::new(endpoint, opentelemetry_sdk::Resource::builder().build())
    });
    install(log, telemetry.sample_ratio, process, exporter)
}

/// [`init`] for a command that prints its results on standard output (`medcov events`,
/// `admin`, `migrate`): its log lines go to standard error, so the output is the result alone.
pub fn init_command(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    process: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    let exporter = telemetry.otlp_endpoint.as_ref().map(|endpoint| {
        let endpoint = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        export::PerService::new(endpoint, opentelemetry_sdk::Resource::builder().build())
    });
    install_to(log, telemetry.sample_ratio, process, exporter, Output::Stderr)
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Stdout,
    Stderr,
}

/// [`init`] with spans going to `exporter` (none: not exported). Tests give their own.
#[doc(hidden)]
pub fn install<E>(
    log: &LogConfig,
    sample_ratio: f64,
    process: &str,
    exporter: Option<E>,
) -> Result<TelemetryGuard, TelemetryError>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    install_to(log, sample_ratio, process, exporter, Output::Stdout)
}

fn install_to<E>(
    log: &LogConfig,
    sample_ratio: f64,
    process: &str,
    exporter: Option<E>,
    output: Output,
) -> Result<TelemetryGuard, TelemetryError>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    let log_filter = filter(log)?;
    let json = match (log.format, output) {
        (LogFormat::Json, _) => true,
        (LogFormat::Pretty, _) => false,
        (LogFormat::Auto, Output::Stdout) => !std::io::stdout().is_terminal(),
        (LogFormat::Auto, Output::Stderr) => !std::io::stderr().is_terminal(),
    };
    let fmt_layer = match (json, output) {
        (true, Output::Stdout) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .boxed(),
        (true, Output::Stderr) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_writer(std::io::stderr)
            .boxed(),
        (false, Output::Stdout) => tracing_subscriber::fmt::layer().with_target(false).boxed(),
        (false, Output::Stderr) => {
            tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr).boxed()
        }
    };

    let (otel_layer, db_layer, provider) = match exporter {
        None => (None, None, None),
        Some(exporter) => {
            let processor = spans::ServiceTagger::new(BatchSpanProcessor::builder(exporter).build());
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_sampler(spans::Sampling::new(sample_ratio))
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(process.to_owned()).build())
                .build();
            let tracer = provider.tracer("medcov");
            // The same filter as the logs: spans below `log.level` are not exported either.
            let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter(log)?);
            // Statements are DEBUG events of `sqlx::query`: this layer alone asks for them.
            // (The hint matters: without it the process-wide maximum level stays at the logs'
            // and sqlx never emits its DEBUG events.)
            let db = db::DbSpans::new(provider.tracer("medcov.db")).with_filter(
                tracing_subscriber::filter::filter_fn(|meta| {
                    (meta.is_span() && *meta.level() <= tracing::Level::INFO) || meta.target() == "sqlx::query"
                })
                .with_max_level_hint(tracing::Level::DEBUG),
            );
            (Some(otel), Some(db), Some(provider))
        }
    };
    let slot = db_layer.as_ref().map(|db| db.inner().dispatch_slot());

    let installed = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(log_filter))
        .with(otel_layer)
        .with(db_layer)
        .try_init()
        .is_ok();
    if let (true, Some(slot)) = (installed, slot) {
        tracing::dispatcher::get_default(|dispatch| {
            let _ = slot.set(dispatch.downgrade());
        });
    }
    Ok(TelemetryGuard { provider: if installed { provider } else { None } })
}

impl TelemetryGuard {
    /// Sends every span ended so far to the exporter.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

fn filter(log: &LogConfig) -> Result<EnvFilter, TelemetryError> {
    if let Ok(from_env) = std::env::var("RUST_LOG")
        && !from_env.trim().is_empty()
    {
        return EnvFilter::try_new(&from_env).map_err(|e| TelemetryError::Filter(e.to_string()));
    }
    EnvFilter::try_new(&log.level).map_err(|e| TelemetryError::Filter(e.to_string()))
}

/// Checks `log.level` without installing anything: `medcov config check` uses it.
pub fn validate(log: &LogConfig) -> Result<(), TelemetryError> {
    filter(log).map(|_| ())
}
