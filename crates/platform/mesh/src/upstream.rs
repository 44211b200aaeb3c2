//! Calling another MedCov service: in process when it runs in the same process (no socket, no
//! serialisation of the connection), over HTTP through the mesh when it runs elsewhere. One
//! type, so the gateway and the typed clients do not care which.
//!
//! A remote call, in order:
//! 1. the route's settings are looked up in the policy in force;
//! 2. its rate limit (429) and its bulkhead (503 at once when too many calls are in flight);
//! 3. its circuit breaker (503 at once, without a network call, while open);
//! 4. tries: an instance chosen by the balancer, a per-try timeout within the overall
//!    deadline; a failed try of a call that is safe to repeat is retried on another instance
//!    after a full-jitter backoff, while the retry budget allows;
//! 5. each try's outcome feeds outlier ejection, the call's outcome feeds the breaker.
//!
//! Metrics (in the caller's registry): `mesh_requests_total{upstream,instance,outcome}`,
//! `mesh_request_duration_seconds{upstream}` (the whole call), `mesh_try_duration_seconds{upstream,instance}`
//! (one try), `mesh_retries_total{upstream}`,
//! `mesh_rejected_total{upstream,reason}`, `mesh_breaker_state{breaker}`,
//! `mesh_breaker_transitions_total{breaker,to}`, `mesh_ejections_total{upstream,instance}`.
//! Each has HELP and TYPE ([`describe`]); the counters an alert watches exist at 0 before they
//! can first grow (an upstream's when a service gets its client, an instance's at its first
//! try), so a rate over them sees the first retry, rejection, transition or ejection.
//!
//! Each try is a CLIENT span (`GET`, with `http.request.method`, `server.address`,
//! `server.port`, `http.response.status_code`, `http.request.resend_count`) whose context goes
//! out as the `traceparent`, so the callee's SERVER span hangs under the try that reached it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use medcov_http::health::ReadinessCheck;
use medcov_http::problem::OVERLOADED;
use medcov_http::{ApiError, Metrics, REQUEST_ID_HEADER, RequestContext, TRACEPARENT_HEADER};
use rand::Rng;
use tower::ServiceExt;
use tracing::Instrument;

use crate::Mesh;
use crate::breaker::{Outcome, Transition};
use crate::pool::{Endpoint, Health, Pool};

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

#[derive(Clone)]
pub enum Upstream {
    /// The service runs in this process: call its router directly.
    Local { name: &'static str, router: Router },
    /// The service runs elsewhere: call it over HTTP through the mesh.
    Remote(Remote),
}

/// A service in other processes, as one caller sees it.
#[derive(Clone)]
pub struct Remote {
    pub name: &'static str,
    pub mesh: Arc<Mesh>,
    pub pool: Arc<Pool>,
    /// Where the calls are counted: the caller's registry.
    pub metrics: Metrics,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Local { name, .. } => write!(f, "Upstream::Local({name})"),
            Upstream::Remote(remote) => write!(f, "Upstream::Remote({})", remote.name),
        }
    }
}

impl Upstream {
    pub fn name(&self) -> &'static str {
        match self {
            Upstream::Local { name, .. } | Upstream::Remote(Remote { name, .. }) => name,
        }
    }

    /// The same upstream, counting its calls in `metrics`.
    pub fn counted_in(self, metrics: &Metrics) -> Upstream {
        match self {
            Upstream::Remote(remote) => {
                describe(metrics);
                let name = remote.name;
                metrics.ensure_counter(RETRIES, &[("upstream", name)]);
                for reason in ["rate_limit", "bulkhead", "breaker"] {
                    metrics.ensure_counter(REJECTED, &[("upstream", name), ("reason", reason)]);
                }
                metrics.ensure_gauge(BREAKER_STATE, &[("breaker", name)]);
                for to in ["open", "half_open", "closed"] {
                    metrics.ensure_counter(BREAKER_TRANSITIONS, &[("breaker", name), ("to", to)]);
                }
                Upstream::Remote(Remote { metrics: metrics.clone(), ..remote })
            }
            local => local,
        }
    }

    /// Sends `request` to `path_and_query` on the service (for example `/patients?limit=5`),
    /// carrying the request id and trace context, and returns its answer as it is.
    /// `body_limit` bounds what is buffered for a remote call.
    pub async fn forward(
        &self,
        request: Request,
        path_and_query: &str,
        body_limit: usize,
    ) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let mut headers = forwardable(&parts.headers);
        if let Some(cx) = RequestContext::current() {
            if let Ok(v) = HeaderValue::from_str(&cx.request_id) {
                headers.insert(REQUEST_ID_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&cx.outgoing_traceparent()) {
                headers.insert(TRACEPARENT_HEADER, v);
            }
        }
        match self {
            Upstream::Local { router, .. } => {
                let mut inner =
                    Request::builder().method(parts.method).uri(path_and_query).body(body).map_err(|e| {
                        ApiError::BadRequest { detail: format!("cannot forward this request: {e}"), errors: vec![] }
                    })?;
                *inner.headers_mut() = headers;
                Ok(router.clone().oneshot(inner).await.unwrap_or_else(|never| match never {}))
            }
            Upstream::Remote(remote) => {
                let bytes = axum::body::to_bytes(body, body_limit).await.map_err(|_| {
                    ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
                })?;
                remote.call(parts.method, path_and_query, headers, bytes).await
            }
        }
    }

    /// Whether the service answers its liveness probe.
    pub async fn probe(&self) -> Result<(), String> {
        let request = Request::get("/health/live").body(Body::empty()).map_err(|e| e.to_string())?;
        let response = self.forward(request, "/health/live", 0).await.map_err(|e| e.to_string())?;
        if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
    }
}

const REQUESTS: &str = "mesh_requests_total";
const REQUEST_DURATION: &str = "mesh_request_duration_seconds";
const TRY_DURATION: &str = "mesh_try_duration_seconds";
const RETRIES: &str = "mesh_retries_total";
const REJECTED: &str = "mesh_rejected_total";
const BREAKER_STATE: &str = "mesh_breaker_state";
const BREAKER_TRANSITIONS: &str = "mesh_breaker_transitions_total";
const EJECTIONS: &str = "mesh_ejections_total";
const OUTCOMES: [&str; 7] = ["ok", "error", "shed", "unavailable", "unreachable", "timeout", "broken"];

/// Whether a 503 is a refusal under load: a problem document of type [`OVERLOADED`].
fn is_shed(headers: &HeaderMap, body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let problem = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(medcov_http::problem::PROBLEM_JSON));
    problem && serde_json::from_slice::<Kind<'_>>(body).is_ok_and(|k| k.kind == OVERLOADED)
}

/// HELP and TYPE of the mesh's metrics, in the caller's registry.
pub fn describe(metrics: &Metrics) {
    use metrics::Unit;
    metrics.describe_counter(
        REQUESTS,
        "Tries sent to another service's instances, by outcome: ok, error (5xx), unavailable (502-504), unreachable, timeout, broken.",
    );
    metrics.describe_histogram(REQUEST_DURATION, Unit::Seconds, "Whole calls to another service, retries included.");
    metrics.describe_histogram(TRY_DURATION, Unit::Seconds, "Single tries to one instance of another service.");
    metrics.describe_counter(RETRIES, "Tries sent again to another instance after a failed one.");
    metrics.describe_counter(REJECTED, "Calls refused before any try, by reason: rate_limit, bulkhead, breaker.");
    metrics.describe_gauge(
        BREAKER_STATE,
        "A circuit breaker's state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open.",
    );
    metrics.describe_counter(BREAKER_TRANSITIONS, "Circuit-breaker state changes, by the state entered.");
    metrics.describe_counter(EJECTIONS, "Instances taken out of the pool after failing calls in a row.");
}

/// Whether a request may be sent twice: an idempotent method (RFC 9110 §9.2.2), or an
/// Idempotency-Key when every instance sees the same keys (`keys_shared`: they live in the
/// service's database), so the instance a retry reaches answers a repeat with the first
/// result. Keys held in one process's memory would protect nothing on another instance.
pub fn safe_to_repeat(method: &Method, headers: &HeaderMap, keys_shared: bool) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE)
        || (keys_shared && headers.contains_key("idempotency-key"))
}

/// How one try ended.
enum Try {
    /// An answer to hand back (a 5xx other than 502/503/504 included: retrying would not help).
    Answer(Response, Health),
    /// 502, 503 or 504 from the instance: another may do better.
    Unavailable(Response),
    /// A 503 the instance chose to answer because it is loaded ([`OVERLOADED`]): it is healthy
    /// and did nothing, so it is not ejected, the breaker does not count it (opening would
    /// refuse every call for a partial refusal), and the client gets its `Retry-After`.
    Shed(Response),
    /// No connection: the request never left, so it can go elsewhere whatever its method.
    Unreachable(String),
    /// Sent, and then the connection broke or the try timed out.
    Broken { timeout: bool, detail: String },
}

impl Remote {
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: bytes::Bytes,
    ) -> Result<Response, ApiError> {
        let name = self.name;
        let started = tokio::time::Instant::now();
        let policy = self.mesh.policy().current();
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        let (route, settings) = policy.route(name, method.as_str(), path);
        let key = match route {
            Some(route) => format!("{name}.{}", route.name),
            None => name.to_owned(),
        };
        let rejected = |reason: &'static str| {
            self.metrics.counter(REJECTED, &[("upstream", name), ("reason", reason)]).increment(1);
        };

        if settings.rate_limit_per_s > 0
            && let Err(wait) = self.pool.rate_limit(&key, settings.rate_limit_per_s).take(self.pool.now())
        {
            rejected("rate_limit");
            return Err(ApiError::TooManyRequests {
                detail: format!("calls to the {name} service are limited to {} a second", settings.rate_limit_per_s),
                retry_after: wait,
            });
        }
        let Ok(_slot) = self.pool.bulkhead(&key, settings.concurrency_limit).try_acquire_owned() else {
            rejected("bulkhead");
            return Err(ApiError::Unavailable(format!(
                "the {name} service has {} calls in flight, its limit; try again shortly",
                settings.concurrency_limit
            )));
        };
        let breaker = self.pool.breaker(&key, &settings.breaker);
        let (admitted, transition) = breaker.acquire();
        self.transitioned(&key, transition);
        let guard = match admitted {
            Ok(permit) => crate::breaker::Guard::new(breaker.clone(), permit),
            Err(refused) => {
                rejected("breaker");
                self.metrics.gauge(BREAKER_STATE, &[("breaker", &key)]).set(refused.state.gauge());
                let wait = refused.retry_after.as_secs() + u64::from(refused.retry_after.subsec_nanos() > 0);
                return Err(ApiError::Unavailable(format!(
                    "the {name} service is failing: its circuit breaker is {} and calls are refused{}",
                    refused.state.as_str().replace('_', "-"),
                    if wait > 0 { format!(" for {wait} s more") } else { String::new() }
                )));
            }
        };

        let deadline = started + Duration::from_millis(settings.deadline_ms);
        let repeatable = safe_to_repeat(&method, &headers, self.mesh.keys_shared());
        let budget = self.pool.budget(&key, &settings.retry);
        budget.deposit();
        let mut last: Option<String> = None;
        let mut attempt: u32 = 0;
        let mut shed = false;
        let result = loop {
            let Some(endpoint) = self.pool.pick(last.as_deref()) else {
                break Err(ApiError::Unavailable(format!("no instance of the {name} service is known")));
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let timeout = left.min(Duration::from_millis(settings.timeout_ms));
            let try_started = tokio::time::Instant::now();
            for outcome in OUTCOMES {
                self.metrics
                    .ensure_counter(REQUESTS, &[("upstream", name), ("instance", endpoint.id()), ("outcome", outcome)]);
            }
            self.metrics.ensure_counter(EJECTIONS, &[("upstream", name), ("instance", endpoint.id())]);
            let span = try_span(name, &method, &endpoint, attempt);
            let outcome = self
                .send(&endpoint, &method, path_and_query, &headers, &body, timeout, &span)
                .instrument(span.clone())
                .await;
            self.metrics
                .histogram(TRY_DURATION, &[("upstream", name), ("instance", endpoint.id())])
                .record(try_started.elapsed());
            let health = match &outcome {
                Try::Answer(_, health) => *health,
                Try::Shed(_) => Health::Ok,
                _ => Health::Failed,
            };
            if let Some(ejected) = self.pool.report(&endpoint, health, &settings.outlier) {
                self.metrics.counter(EJECTIONS, &[("upstream", name), ("instance", endpoint.id())]).increment(1);
                tracing::warn!(
                    upstream = name,
                    instance = endpoint.id(),
                    seconds = ejected.as_secs_f64(),
                    "instance ejected after failing calls in a row"
                );
            }
            let label = match &outcome {
                Try::Answer(r, _) if r.status().is_server_error() => "error",
                Try::Answer(..) => "ok",
                Try::Shed(_) => "shed",
                Try::Unavailable(_) => "unavailable",
                Try::Unreachable(_) => "unreachable",
                Try::Broken { timeout: true, .. } => "timeout",
                Try::Broken { .. } => "broken",
            };
            self.metrics
                .counter(REQUESTS, &[("upstream", name), ("instance", endpoint.id()), ("outcome", label)])
                .increment(1);
            let retryable = match &outcome {
                // Retrying a refusal under load would add to the load: the client waits.
                Try::Answer(..) | Try::Shed(_) => false,
                Try::Unreachable(_) => true,
                Try::Unavailable(_) | Try::Broken { .. } => repeatable,
            };
            attempt += 1;
            let backoff = full_jitter(settings.retry.base_ms, settings.retry.max_ms, attempt);
            let time_left = deadline.saturating_duration_since(tokio::time::Instant::now()) > backoff;
            if retryable && attempt < settings.retry.attempts && time_left && budget.withdraw() {
                self.metrics.counter(RETRIES, &[("upstream", name)]).increment(1);
                tracing::debug!(
                    upstream = name,
                    instance = endpoint.id(),
                    attempt,
                    outcome = label,
                    "retrying on another instance"
                );
                last = Some(endpoint.id().to_owned());
                tokio::time::sleep(backoff).await;
                continue;
            }
            shed = matches!(outcome, Try::Shed(_));
            break match outcome {
                Try::Answer(response, _) | Try::Unavailable(response) | Try::Shed(response) => Ok(response),
                Try::Unreachable(detail) => {
                    tracing::warn!(upstream = name, instance = endpoint.id(), error = %detail, "upstream unreachable");
                    Err(ApiError::BadGateway(format!("the {name} service is unreachable")))
                }
                Try::Broken { timeout: true, .. } => {
                    Err(ApiError::GatewayTimeout(format!("the {name} service did not answer in time")))
                }
                Try::Broken { detail, .. } => {
                    tracing::warn!(upstream = name, instance = endpoint.id(), error = %detail, "upstream call broke off");
                    Err(ApiError::BadGateway(format!("the {name} service broke off the call")))
                }
            };
        };
        let failed = match &result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        // A shed call is not counted either way: dropping the guard gives its permit back.
        if shed {
            drop(guard);
        } else {
            let transition = guard.finish(if failed { Outcome::Failure } else { Outcome::Success });
            self.transitioned(&key, transition);
        }
        self.metrics.gauge(BREAKER_STATE, &[("breaker", &key)]).set(breaker.state().gauge());
        self.metrics.histogram(REQUEST_DURATION, &[("upstream", name)]).record(started.elapsed());
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &bytes::Bytes,
        timeout: Duration,
        span: &tracing::Span,
    ) -> Try {
        let _flight = endpoint.start();
        let url = match join(&endpoint.instance.address, path_and_query) {
            Ok(url) => url,
            Err(e) => return Try::Answer(e.into_response(), Health::Ok),
        };
        let mut headers = headers.clone();
        // The callee's span is a child of this try.
        if let Some(own) = medcov_telemetry::of_span(span)
            && let Ok(value) = HeaderValue::from_str(&own.to_string())
        {
            headers.insert(TRACEPARENT_HEADER, value);
        }
        let outcome = self.send_once(url, method, headers, body, timeout).await;
        let status = match &outcome {
            Try::Answer(response, _) | Try::Unavailable(response) | Try::Shed(response) => Some(response.status()),
            _ => None,
        };
        match status {
            Some(status) => {
                medcov_telemetry::set_attribute(span, "http.response.status_code", i64::from(status.as_u16()));
                if status.is_server_error() {
                    span.record("otel.status_code", "error");
                }
            }
            None => {
                span.record("otel.status_code", "error");
                let kind = match &outcome {
                    Try::Unreachable(_) => "unreachable",
                    Try::Broken { timeout: true, .. } => "timeout",
                    _ => "broken",
                };
                medcov_telemetry::set_attribute(span, "error.type", kind);
            }
        }
        outcome
    }

    async fn send_once(
        &self,
        url: url::Url,
        method: &Method,
        headers: HeaderMap,
        body: &bytes::Bytes,
        timeout: Duration,
    ) -> Try {
        let sent = self
            .mesh
            .client()
            .request(method.clone(), url)
            .headers(headers)
            .body(body.clone())
            .timeout(timeout)
            .send()
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            // Errors are logged without their URL: paths and queries can carry patient data.
            Err(e) if e.is_connect() => return Try::Unreachable(e.without_url().to_string()),
            Err(e) => return Try::Broken { timeout: e.is_timeout(), detail: e.without_url().to_string() },
        };
        let status = reply.status();
        let reply_headers = forwardable(reply.headers());
        let bytes = match reply.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Try::Broken { timeout: e.is_timeout(), detail: e.without_url().to_string() },
        };
        let shed = status == StatusCode::SERVICE_UNAVAILABLE && is_shed(&reply_headers, &bytes);
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = reply_headers;
        if shed {
            Try::Shed(response)
        } else if matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            Try::Unavailable(response)
        } else {
            let health = if status.is_server_error() { Health::Failed } else { Health::Ok };
            Try::Answer(response, health)
        }
    }

    fn transitioned(&self, key: &str, transition: Option<Transition>) {
        if let Some(Transition { from, to }) = transition {
            self.metrics.counter(BREAKER_TRANSITIONS, &[("breaker", key), ("to", to.as_str())]).increment(1);
            tracing::warn!(breaker = key, from = from.as_str(), to = to.as_str(), "circuit breaker changed state");
        }
    }
}

/// One try to one instance: a CLIENT span under the caller's request.
/// None outside any span (a readiness check of the upkeep): idle loops export nothing.
fn try_span(upstream: &'static str, method: &Method, endpoint: &Endpoint, attempt: u32) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "call",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        upstream,
        instance = endpoint.id(),
    );
    medcov_telemetry::set_attribute(&span, "http.request.method", method.as_str().to_owned());
    if let Some(host) = endpoint.instance.address.host_str() {
        medcov_telemetry::set_attribute(&span, "server.address", host.to_owned());
    }
    if let Some(port) = endpoint.instance.address.port_or_known_default() {
        medcov_telemetry::set_attribute(&span, "server.port", i64::from(port));
    }
    medcov_telemetry::set_attribute(&span, "medcov.upstream", upstream);
    if attempt > 0 {
        medcov_telemetry::set_attribute(&span, "http.request.resend_count", i64::from(attempt));
    }
    span
}

/// A random wait up to min(max, base × 2^(attempt-1)).
fn full_jitter(base_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20)).min(max_ms);
    Duration::from_millis(rand::rng().random_range(0..=ceiling))
}

/// `path_and_query` under `base`.
/// `path_and_query` under `base`'s path, taken literally: `//x` stays a path (it is never read
/// as another host) and is never collapsed into `/x`.
pub fn join_url(base: &url::Url, path_and_query: &str) -> Result<url::Url, url::ParseError> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut url = base.clone();
    let relative = path.strip_prefix('/').unwrap_or(path);
    url.set_path(&format!("{}/{relative}", base.path().trim_end_matches('/')));
    url.set_query(query);
    Ok(url)
}

fn join(base: &url::Url, path_and_query: &str) -> Result<url::Url, ApiError> {
    join_url(base, path_and_query)
        .map_err(|e| ApiError::BadRequest { detail: format!("cannot forward to this path: {e}"), errors: vec![] })
}

fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    let connection_listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for (name, value) in headers {
        let hop = HOP_BY_HOP.contains(&name.as_str()) || connection_listed.contains(name);
        if !hop && name != header::CONTENT_LENGTH {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// A readiness check that another service answers (not critical: the caller still serves
/// what it can).
pub struct UpstreamCheck(pub Upstream);

impl ReadinessCheck for UpstreamCheck {
    fn name(&self) -> String {
        format!("upstream:{}", self.0.name())
    }

    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.0.probe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_requests_are_repeated() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", HeaderValue::from_static("k1"));
        assert!(safe_to_repeat(&Method::GET, &none, false));
        assert!(safe_to_repeat(&Method::PUT, &none, false));
        assert!(!safe_to_repeat(&Method::POST, &none, true));
        assert!(!safe_to_repeat(&Method::PATCH, &none, true));
        assert!(safe_to_repeat(&Method::POST, &keyed, true));
        assert!(!safe_to_repeat(&Method::POST, &keyed, false), "keys in one process's memory do not cover another");
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 1..8 {
            let ceiling = (25u64 << (attempt - 1)).min(1_000);
            for _ in 0..100 {
                assert!(full_jitter(25, 1_000, attempt) <= Duration::from_millis(ceiling));
            }
        }
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let kept = forwardable(&headers);
        assert!(kept.get("x-secret-hop").is_none());
        assert!(kept.get("transfer-encoding").is_none());
        assert!(kept.get("connection").is_none());
        assert_eq!(kept["authorization"], "Bearer t");
        assert_eq!(kept["content-type"], "application/json");
    }

    #[test]
    fn paths_join_under_the_base() {
        let base = url::Url::parse("http://127.0.0.1:3002/").unwrap();
        assert_eq!(join(&base, "/patients?q=a").unwrap().as_str(), "http://127.0.0.1:3002/patients?q=a");
        assert_eq!(join(&base, "/").unwrap().as_str(), "http://127.0.0.1:3002/");
        assert_eq!(join(&base, "/a%20b").unwrap().as_str(), "http://127.0.0.1:3002/a%20b");
        // Never another host, never collapsed.
        assert_eq!(join(&base, "//metrics").unwrap().as_str(), "http://127.0.0.1:3002//metrics");
        let prefixed = url::Url::parse("http://10.0.0.7/hospital/").unwrap();
        assert_eq!(join(&prefixed, "/patients").unwrap().as_str(), "http://10.0.0.7/hospital/patients");
    }
}
