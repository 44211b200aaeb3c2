//! The spans of the bus, following OpenTelemetry's messaging conventions, so an event's
//! journey shows as one trace: the request that wrote it → the relay's PRODUCER span
//! (`publish hospital`) → each consumer's CONSUMER span (`process hospital`, a child of the
//! producer through the traceparent the event carries) → what the consumer wrote, relayed in
//! turn. Saga moves are INTERNAL spans (`saga patient_registration open_account`) whose
//! commands carry them as parent.
//!
//! Every span carries `trace_id` and `correlation_id` (the request that started the chain),
//! so worker and saga log lines inside them name both, whether or not spans are exported.

use medcov_store::outbox::Actor;
use medcov_telemetry::{TraceContext, set_attribute};
use tracing::field::Empty;
use uuid::Uuid;

use crate::Envelope;

#[doc(hidden)]
pub use tracing::Instrument;

/// The trace an envelope belongs to: its traceparent, or a new trace for one without.
fn trace_of(traceparent: Option<&str>) -> (TraceContext, bool) {
    match traceparent.and_then(TraceContext::parse) {
        Some(parent) => (parent, true),
        None => (TraceContext::new_root(), false),
    }
}

fn messaging(span: &tracing::Span, envelope: &Envelope, backend: &'static str, operation: &'static str) {
    let kind = if operation == "process" { "process" } else { "send" };
    set_attribute(span, "messaging.system", backend);
    set_attribute(span, "messaging.operation.type", kind);
    set_attribute(span, "messaging.operation.name", operation);
    set_attribute(span, "messaging.destination.name", envelope.stream().to_owned());
    set_attribute(span, "messaging.message.id", envelope.id.to_string());
    if let Some(correlation) = &envelope.correlation_id {
        set_attribute(span, "messaging.message.conversation_id", correlation.clone());
    }
    set_attribute(span, "medcov.event.type", envelope.event_type.clone());
}

/// The relay publishing one event (PRODUCER, a child of whatever wrote it), in the emitting
/// service.
pub fn publish_span(envelope: &Envelope, backend: &'static str) -> tracing::Span {
    let (trace, remote) = trace_of(envelope.traceparent.as_deref());
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {}", envelope.stream()),
        otel.kind = "producer",
        otel.status_code = Empty,
        service = envelope.stream(),
        trace_id = %trace.trace_id_hex(),
        correlation_id = envelope.correlation_id.as_deref().unwrap_or_default(),
        event = %envelope.id,
        event_type = %envelope.event_type,
    );
    if remote {
        trace.adopt_as_parent(&span);
    }
    messaging(&span, envelope, backend, "publish");
    span
}

/// A consumer handling one delivery (CONSUMER, a child of the producer), in the consuming
/// service (named after its group).
pub fn process_span(envelope: &Envelope, group: &str, backend: &'static str, deliveries: u64) -> tracing::Span {
    let (trace, remote) = trace_of(envelope.traceparent.as_deref());
    let span = tracing::info_span!(
        "consume",
        otel.name = %format_args!("process {}", envelope.stream()),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        service = group,
        trace_id = %trace.trace_id_hex(),
        correlation_id = envelope.correlation_id.as_deref().unwrap_or_default(),
        stream = envelope.stream(),
        group,
        event = %envelope.id,
        event_type = %envelope.event_type,
        deliveries,
    );
    if remote {
        trace.adopt_as_parent(&span);
    }
    messaging(&span, envelope, backend, "process");
    set_attribute(&span, "messaging.consumer.group.name", group.to_owned());
    span
}

/// One move of a saga (INTERNAL): a step's command sent, a compensation sent, or an end.
/// `service` is the orchestrating service when known; `actor` is who moves it (its
/// correlation and trace).
pub fn saga_span(
    service: Option<&str>,
    kind: &str,
    saga: Uuid,
    state: &str,
    step: &str,
    command: Option<&str>,
    actor: Option<&Actor>,
) -> tracing::Span {
    let what = command.unwrap_or(state);
    let span = tracing::info_span!(
        "saga",
        otel.name = %format_args!("saga {kind} {what}"),
        service = Empty,
        trace_id = Empty,
        correlation_id = Empty,
        saga = %saga,
        saga_kind = kind,
        step,
        state,
    );
    if let Some(service) = service {
        span.record("service", service);
    }
    let inherited = actor.and_then(|a| a.traceparent.as_deref()).and_then(TraceContext::parse);
    if let Some(trace) = medcov_telemetry::of_span(&span).or(inherited) {
        span.record("trace_id", trace.trace_id_hex());
    }
    if let Some(correlation) = actor.and_then(|a| a.request_id.as_deref()) {
        span.record("correlation_id", correlation);
    }
    set_attribute(&span, "medcov.saga.kind", kind.to_owned());
    set_attribute(&span, "medcov.saga.id", saga.to_string());
    set_attribute(&span, "medcov.saga.step", step.to_owned());
    set_attribute(&span, "medcov.saga.state", state.to_owned());
    if let Some(command) = command {
        set_attribute(&span, "medcov.saga.command", command.to_owned());
        set_attribute(&span, "medcov.saga.compensation", state == "compensating");
    }
    span
}

/// A saga moved by its owner's own code rather than by the orchestrator (the policy sale):
/// `saga <step> <state>`, inside whatever span moved it.
pub fn transition_span(saga: Uuid, from: &str, to: &str, step: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "saga",
        otel.name = %format_args!("saga {step} {to}"),
        saga = %saga,
        step,
        state = to,
    );
    set_attribute(&span, "medcov.saga.id", saga.to_string());
    set_attribute(&span, "medcov.saga.step", step.to_owned());
    set_attribute(&span, "medcov.saga.state", to.to_owned());
    set_attribute(&span, "medcov.saga.from_state", from.to_owned());
    set_attribute(&span, "medcov.saga.compensation", to == "compensating" || to == "compensated");
    span
}

/// `actor` acting inside the current span: what it writes (a command, an event) carries that
/// span as its parent when spans are exported.
pub fn actor_here(actor: &Actor) -> Actor {
    Actor {
        traceparent: medcov_telemetry::outgoing(&tracing::Span::current(), actor.traceparent.as_deref())
            .or_else(|| actor.traceparent.clone()),
        ..actor.clone()
    }
}
