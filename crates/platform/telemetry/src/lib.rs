//! Telemetry for every MedCov process: one `tracing` subscriber that writes JSON or
//! human-readable logs, optionally exports spans over OTLP/HTTP (Jaeger's port 4318 takes
//! them), and the W3C trace context that ties a request's logs and spans together across
//! services.
//!
//! - [`init`]: install the subscriber once per process; keep the guard until exit.
//! - [`trace_context`]: `traceparent` parsing and formatting.

#![forbid(unsafe_code)]

pub mod trace_context;

use std::io::IsTerminal;

use medcov_config::{LogConfig, LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use trace_context::TraceContext;

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
    let filter = filter(log)?;
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    };

    let (otel_layer, provider) = match &telemetry.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let endpoint = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio))))
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(process.to_owned()).build())
                .build();
            let tracer = provider.tracer("medcov");
            (Some(tracing_opentelemetry::layer().with_tracer(tracer)), Some(provider))
        }
    };

    let installed = tracing_subscriber::registry().with(filter).with(fmt_layer).with(otel_layer).try_init().is_ok();
    Ok(TelemetryGuard { provider: if installed { provider } else { None } })
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
