//! Which service a span belongs to, and which spans are exported at all.
//!
//! - [`ServiceTagger`]: a span processor that gives every span the `service` attribute of its
//!   nearest ancestor that has one (a request, a consumer, a relay span name their service),
//!   so [`crate::export::PerService`] can send it under that service's name.
//! - [`Sampling`]: health probes are never exported ([`PROBE_ATTRIBUTE`]), nor is anything
//!   under them; everything else follows the parent's decision, or `telemetry.sample_ratio`
//!   for a new trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, ShouldSample, Span, SpanData, SpanProcessor,
};

use crate::export::SERVICE_ATTRIBUTE;

/// Set on a request span that is a health probe (or a metrics scrape): it and its children
/// are dropped.
pub const PROBE_ATTRIBUTE: &str = "medcov.probe";

/// Passes spans on to `inner`, each tagged with its service.
#[derive(Debug)]
pub struct ServiceTagger<P> {
    inner: P,
    /// The service of every span started and not yet ended, by span id, for its children.
    live: Mutex<HashMap<opentelemetry::trace::SpanId, Arc<str>>>,
}

impl<P> ServiceTagger<P> {
    pub fn new(inner: P) -> ServiceTagger<P> {
        ServiceTagger { inner, live: Mutex::default() }
    }
}

impl<P: SpanProcessor> SpanProcessor for ServiceTagger<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        use opentelemetry::trace::Span as _;
        let key = Key::from_static_str(SERVICE_ATTRIBUTE);
        let own: Option<Arc<str>> = span
            .exported_data()
            .and_then(|data| data.attributes.iter().find(|kv| kv.key == key).map(|kv| Arc::from(kv.value.as_str())));
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let service = match own {
            Some(own) => Some(own),
            None => {
                let parent = live.get(&cx.span().span_context().span_id()).cloned();
                if let Some(parent) = &parent {
                    span.set_attribute(KeyValue::new(SERVICE_ATTRIBUTE, parent.to_string()));
                }
                parent
            }
        };
        if let Some(service) = service {
            live.insert(span.span_context().span_id(), service);
        }
        drop(live);
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&span.span_context.span_id());
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Drops probes; otherwise `inner` decides.
#[derive(Debug, Clone)]
pub struct Sampling {
    inner: Sampler,
}

impl Sampling {
    /// Follows the parent's decision; a new trace is kept with probability `ratio`.
    pub fn new(ratio: f64) -> Sampling {
        Sampling { inner: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))) }
    }
}

impl ShouldSample for Sampling {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if attributes.iter().any(|kv| kv.key.as_str() == PROBE_ATTRIBUTE) {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.inner.should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}
