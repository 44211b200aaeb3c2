//! The outermost middleware of every service.
//!
//! For each request it settles the request id (the caller's `x-request-id` when it is sane, a
//! new UUIDv7 otherwise) and the trace (the caller's `traceparent`, or a new trace), opens the
//! `request` span that every log line of the request inherits, and on the way out echoes the
//! request id, writes one access-log line and records the request metrics.
//!
//! The span follows OpenTelemetry's HTTP server conventions: kind SERVER, named after the
//! method and route template (`GET /patients/{id}`), with `http.request.method`, `http.route`
//! and `http.response.status_code`; a 5xx marks it as an error. It names its service, so its
//! spans are exported under that service's name even when several share a process.
//!
//! Health probes and metrics scrapes ([`is_probe`]) are counted but neither exported as spans
//! nor logged at info: on an idle system they would be most of both.
//!
//! The access log names the route template (`/patients/{id}`), never the raw path or query
//! string: those can carry patient data. Each answer says which template matched in
//! [`ROUTE_HEADER`], so the gateway can count what it forwards per service and route
//! ([`Routed`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use medcov_telemetry::TraceContext;
use tracing::Instrument;
use tracing::field::Empty;

use crate::metrics::{HTTP_IN_FLIGHT, Metrics};
use crate::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};

/// The response header naming the route template a service matched (`/patients/{id}`).
pub const ROUTE_HEADER: &str = "x-medcov-route";

/// Put on a response by the gateway: the service that answered a forwarded request and the
/// route template it matched there (`None` when the request never reached it, or matched
/// nothing). Metrics and the span then name `/api/<service><route>` rather than the gateway's
/// catch-all route.
#[derive(Debug, Clone)]
pub struct Routed {
    pub upstream: &'static str,
    pub route: Option<String>,
}

/// Health probes, metrics scrapes and the revocation list every process polls: machines
/// asking several times a second, not traced, logged at debug only.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/health/live" | "/health/ready" | "/metrics" | "/revocations")
}

/// Who is asking, for the length of one request: available to handlers as an extension and,
/// anywhere inside the request's task, through [`RequestContext::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub trace: TraceContext,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

impl RequestContext {
    /// The context of the request being served by this task, if any.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The `traceparent` to send to the next hop.
    pub fn outgoing_traceparent(&self) -> String {
        self.trace.for_outgoing(&tracing::Span::current()).to_string()
    }
}

/// The route template a request matched, carried from the router to the middleware.
#[derive(Debug, Clone)]
struct RouteLabel(String);

/// Runs after routing (as a route layer): remembers the matched route for [`observe`].
pub async fn capture_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// What [`observe`] needs.
#[derive(Debug, Clone)]
pub struct ObserveState {
    pub service: &'static str,
    pub metrics: Metrics,
    /// Which requests get an access line at info.
    pub access: AccessLog,
    /// Where this service stands: the gateway is always the edge; a service is the edge for a
    /// request unless a trusted proxy (the gateway) forwarded it.
    pub edge: Edge,
}

pub use medcov_config::AccessLog;

/// Whether a request entered MedCov at this hop.
#[derive(Debug, Clone)]
pub enum Edge {
    /// Every request here came from outside (the gateway).
    Always,
    /// A request forwarded (`X-Forwarded-For`) by one of these proxies, or by the gateway in
    /// the same process, entered elsewhere.
    UnlessForwardedBy(Vec<crate::client::Network>),
}

impl Edge {
    fn entered_here(&self, request: &Request) -> bool {
        match self {
            Edge::Always => true,
            Edge::UnlessForwardedBy(trusted) => {
                let forwarded = request.headers().contains_key(crate::client::FORWARDED_FOR);
                // No socket: the gateway of this very process called in (embedded mode).
                let by_trusted = match crate::client::peer(request) {
                    Some(peer) => trusted.iter().any(|n| n.contains(peer)),
                    None => true,
                };
                !(forwarded && by_trusted)
            }
        }
    }
}

/// The level of a finished request's access line.
fn access_level(access: AccessLog, probe: bool, entered_here: bool, status: u16) -> tracing::Level {
    if status >= 500 {
        return tracing::Level::WARN;
    }
    if probe {
        return tracing::Level::DEBUG;
    }
    let info = match access {
        AccessLog::EveryHop => true,
        AccessLog::Edge => entered_here,
        AccessLog::Errors => false,
    };
    if info { tracing::Level::INFO } else { tracing::Level::DEBUG }
}

pub async fn observe(State(state): State<Arc<ObserveState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let incoming =
        request.headers().get(TRACEPARENT_HEADER).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let probe = is_probe(request.uri().path());
    let entered_here = state.edge.entered_here(&request);

    let span = tracing::info_span!(
        "request",
        otel.name = %request.method(),
        otel.kind = "server",
        otel.status_code = Empty,
        service = state.service,
        method = %request.method(),
        route = Empty,
        request_id = %request_id,
        trace_id = Empty,
        principal = Empty,
        status = Empty,
        latency_ms = Empty,
    );
    if probe {
        medcov_telemetry::set_attribute(&span, medcov_telemetry::spans::PROBE_ATTRIBUTE, true);
    }
    let trace = match incoming {
        Some(remote) => {
            remote.adopt_as_parent(&span);
            remote
        }
        None => TraceContext::new_root(),
    };
    span.record("trace_id", trace.trace_id_hex());

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let context = RequestContext { request_id: request_id.clone(), trace };
    request.extensions_mut().insert(context.clone());
    let method = request.method().as_str().to_owned();

    let in_flight = state.metrics.gauge(HTTP_IN_FLIGHT, &[]);
    in_flight.increment(1.0);
    let mut response = CURRENT.scope(context, next.run(request).instrument(span.clone())).await;
    in_flight.decrement(1.0);

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let matched = response.extensions().get::<RouteLabel>().map(|r| r.0.clone());
    let routed = response.extensions().get::<Routed>().cloned();
    let (route, upstream) = match &routed {
        Some(Routed { upstream, route }) => {
            (format!("/api/{upstream}{}", route.as_deref().unwrap_or("/{*path}")), Some(*upstream))
        }
        None => (matched.clone().unwrap_or_else(|| "(unmatched)".to_owned()), None),
    };
    state.metrics.record_request(&method, &route, upstream, status, elapsed);

    medcov_telemetry::set_name(&span, format!("{method} {route}"));
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    medcov_telemetry::set_attribute(&span, "http.request.method", method.clone());
    medcov_telemetry::set_attribute(&span, "http.route", route.clone());
    medcov_telemetry::set_attribute(&span, "http.response.status_code", i64::from(status));
    medcov_telemetry::set_attribute(&span, "url.scheme", "http");
    if let Some(upstream) = upstream {
        medcov_telemetry::set_attribute(&span, "medcov.upstream", upstream);
    }
    span.in_scope(|| match access_level(state.access, probe, entered_here, status) {
        tracing::Level::WARN => tracing::warn!(target: "medcov::access", "request finished"),
        tracing::Level::INFO => tracing::info!(target: "medcov::access", "request finished"),
        _ => tracing::debug!(target: "medcov::access", "request finished"),
    });

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let (Some(route), None) = (&matched, &routed)
        && let Ok(value) = HeaderValue::from_str(route)
    {
        response.headers_mut().insert(ROUTE_HEADER, value);
    }
    secure_headers(response.headers_mut());
    response
}

/// Headers every answer carries unless a handler chose otherwise: answers hold patient and
/// financial data, so nothing caches them, sniffs them, frames them, or runs anything from
/// them (an API answer is data: its content security policy allows nothing).
fn secure_headers(headers: &mut axum::http::HeaderMap) {
    use axum::http::header;
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// A caller's request id is kept when it is short and plain; anything else is replaced, so
/// ids are safe to log and to put in headers.
fn is_sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_health_metrics_and_the_revocation_poll_only() {
        for path in ["/health/live", "/health/ready", "/metrics", "/revocations"] {
            assert!(is_probe(path), "{path}");
        }
        for path in ["/patients", "/api/hospital/health/ready", "/metrics/x", "/"] {
            assert!(!is_probe(path), "{path}");
        }
    }

    #[test]
    fn access_lines_are_at_info_where_the_request_entered_failures_always_at_warn() {
        use tracing::Level;
        // (setting, probe, entered here, status) → level
        let table = [
            (AccessLog::Edge, false, true, 200, Level::INFO),
            (AccessLog::Edge, false, false, 200, Level::DEBUG),
            (AccessLog::Edge, false, false, 404, Level::DEBUG),
            (AccessLog::Edge, false, false, 503, Level::WARN),
            (AccessLog::Edge, true, true, 200, Level::DEBUG),
            (AccessLog::Edge, true, true, 503, Level::WARN),
            (AccessLog::EveryHop, false, false, 200, Level::INFO),
            (AccessLog::EveryHop, true, false, 200, Level::DEBUG),
            (AccessLog::Errors, false, true, 422, Level::DEBUG),
            (AccessLog::Errors, false, true, 500, Level::WARN),
        ];
        for (access, probe, entered, status, want) in table {
            assert_eq!(access_level(access, probe, entered, status), want, "{access:?} {probe} {entered} {status}");
        }
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert!(is_sane_request_id("0190e3c2-7a1b-7c3d-9e4f-123456789abc"));
        assert!(is_sane_request_id("lb:abc_1.2"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id("line\nbreak"));
        assert!(!is_sane_request_id(&"x".repeat(129)));
    }
}
