//! W3C Trace Context (`traceparent`): which trace a request belongs to.
//!
//! A request that arrives with a valid `traceparent` joins that trace; one without starts a
//! new trace. When spans are exported, the OpenTelemetry span of the request takes the same
//! trace id, so logs (which carry `trace_id`) and spans meet in Jaeger.

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace a request belongs to and the span that called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The caller's span (from `traceparent`), or this hop's own span once it is known.
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceContext {
    /// Reads a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`). Invalid values, all-zero
    /// ids and the reserved version `ff` give `None`, as the specification asks.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") {
            return None;
        }
        u8::from_str_radix(version, 16).ok()?;
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// A new trace.
    pub fn new_root() -> TraceContext {
        TraceContext { trace_id: nonzero_u128(), span_id: nonzero_u64(), sampled: true }
    }

    /// The same trace with a fresh span id: what a hop sends to the next one.
    pub fn child(&self) -> TraceContext {
        TraceContext { span_id: nonzero_u64(), ..*self }
    }

    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Makes the OpenTelemetry span behind `span` a child of this remote context, so exported
    /// spans share the trace id that the logs show. Does nothing when no spans are exported.
    pub fn adopt_as_parent(&self, span: &tracing::Span) {
        let remote = SpanContext::new(
            TraceId::from(self.trace_id),
            SpanId::from(self.span_id),
            if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }

    /// The context to send downstream from inside `span`: its exported span id when spans are
    /// exported, a fresh id in the same trace otherwise.
    pub fn for_outgoing(&self, span: &tracing::Span) -> TraceContext {
        let cx = span.context();
        let own = cx.span().span_context().clone();
        if own.is_valid() && u128::from_be_bytes(own.trace_id().to_bytes()) == self.trace_id {
            TraceContext {
                trace_id: self.trace_id,
                span_id: u64::from_be_bytes(own.span_id().to_bytes()),
                sampled: own.is_sampled(),
            }
        } else {
            self.child()
        }
    }
}

/// The exported span behind `span`, when spans are exported and it is recorded.
pub fn of_span(span: &tracing::Span) -> Option<TraceContext> {
    let cx = span.context();
    let own = cx.span().span_context().clone();
    own.is_valid().then(|| TraceContext {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        sampled: own.is_sampled(),
    })
}

/// What to write as the `traceparent` of something done inside `span` (an event, a command):
/// the span itself when it is exported, else `inherited` (the trace it belongs to) with a
/// fresh span id, else nothing.
pub fn outgoing(span: &tracing::Span, inherited: Option<&str>) -> Option<String> {
    of_span(span).or_else(|| inherited.and_then(TraceContext::parse).map(|cx| cx.child())).map(|cx| cx.to_string())
}

/// Sets an OpenTelemetry attribute on the span behind `span` without making it a log field
/// (semantic-convention attributes such as `messaging.destination.name`). Does nothing when
/// spans are not exported.
pub fn set_attribute(span: &tracing::Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    span.set_attribute(key, value);
}

/// Renames the span behind `span` (once its name is known, as a request's route is only after
/// routing). Does nothing when spans are not exported.
pub fn set_name(span: &tracing::Span, name: String) {
    let cx = span.context();
    if cx.has_active_span() {
        cx.span().update_name(name);
    }
}

/// Formats as a `traceparent` header value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let v: u128 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_specification_example() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = TraceContext::parse(header).unwrap();
        assert_eq!(cx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(cx.sampled);
        assert_eq!(cx.to_string(), header);
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_eq!(TraceContext::parse(&child.to_string()), Some(child));
    }
}
