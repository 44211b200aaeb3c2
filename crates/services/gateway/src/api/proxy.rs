//! `/api/<service>/...`: forwards a request to the service that owns it.
//!
//! Every request needs a valid access token except the few that are how one gets a token
//! (login, refresh, logout, the JWKS) and the public service descriptions (`openapi.json`,
//! `health/live`, `health/ready`). The gateway checks the token, then forwards it unchanged:
//! each service verifies it again, so skipping the gateway gains nothing. Services' `/metrics`
//! is not exposed here; Prometheus scrapes the service ports.
//!
//! Rate limits come first (see `medcov_ratelimit`): sign-in endpoints per client IP, every other
//! call per principal, or per client IP when the caller has no valid token. Answers carry
//! `RateLimit-Policy` and `RateLimit` headers; a refused request gets 429 with `Retry-After`.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;
use medcov_config::ServiceName;
use medcov_http::{ApiError, Path};
use medcov_mesh::Upstream;
use medcov_ratelimit::{Limiter, Quota};
use medcov_security::Verifier;
use utoipa_axum::router::OpenApiRouter;

/// Where each routed service is reached.
#[derive(Clone)]
pub struct Upstreams(Arc<BTreeMap<ServiceName, Upstream>>);

impl Upstreams {
    pub fn new(entries: impl IntoIterator<Item = (ServiceName, Upstream)>) -> Upstreams {
        Upstreams(Arc::new(entries.into_iter().collect()))
    }

    pub fn get(&self, segment: &str) -> Result<(ServiceName, &Upstream), ApiError> {
        segment.parse::<ServiceName>().ok().and_then(|name| self.0.get(&name).map(|u| (name, u))).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no service is routed at /api/{segment}; expected auth, hospital, insurance or billing"
            ))
        })
    }
}

/// Requests refused by a rate limit, by group (`api`, `auth`).
pub const RATE_LIMITED: &str = "gateway_rate_limited_total";

/// The rate limits of the two route groups.
#[derive(Clone)]
pub struct Limits {
    pub limiter: Arc<dyn Limiter>,
    pub api: Quota,
    pub auth: Quota,
}

#[derive(Clone)]
pub struct ProxyState {
    pub upstreams: Upstreams,
    /// Answers the services mark cacheable, and last good answers (see `cache`).
    pub cache: Arc<dyn medcov_cache::Cache>,
    /// Which parts of the API have marked answers cacheable (see `cache::Marked`).
    pub marked: Arc<super::cache::Marked>,
    /// Counts `gateway_cache_total{result}` (hit, miss, stale) and `gateway_rate_limited_total{group}`.
    pub metrics: medcov_http::Metrics,
    pub verifier: Arc<Verifier>,
    pub limits: Limits,
    pub body_limit: usize,
}

pub fn router(state: ProxyState) -> OpenApiRouter {
    OpenApiRouter::new()
        .route("/api/{service}", any(forward_root))
        .route("/api/{service}/{*path}", any(forward))
        .with_state(state)
}

async fn forward_root(State(state): State<ProxyState>, Path(service): Path<String>, request: Request) -> Response {
    routed(&state, &service, request).await
}

async fn forward(
    State(state): State<ProxyState>,
    Path((service, _path)): Path<(String, String)>,
    request: Request,
) -> Response {
    routed(&state, &service, request).await
}

/// Sends the request on and says, for the metrics and the span, which service answered and
/// what route template it matched (taken off the answer: clients need not see it).
async fn routed(state: &ProxyState, service: &str, request: Request) -> Response {
    use axum::response::IntoResponse;
    let upstream = service.parse::<ServiceName>().ok().filter(|name| state.upstreams.0.contains_key(name));
    let mut response = send(state, service, request).await.unwrap_or_else(|error| error.into_response());
    let route = response
        .headers_mut()
        .remove(medcov_http::observe::ROUTE_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    if let Some(name) = upstream {
        response.extensions_mut().insert(medcov_http::Routed { upstream: name.as_str(), route });
    }
    response
}

/// The requests that hand out or end sessions, limited more strictly.
fn is_sign_in(service: ServiceName, method: &Method, path: &str) -> bool {
    service == ServiceName::Auth
        && method == Method::POST
        && matches!(path, "/login" | "/token" | "/token/refresh" | "/logout")
}

/// Requests that need no token.
fn is_public(service: ServiceName, method: &Method, path: &str) -> bool {
    let everywhere = matches!(path, "/openapi.json" | "/health/live" | "/health/ready") && method == Method::GET;
    let keys = service == ServiceName::Auth && method == Method::GET && path == medcov_security::verify::JWKS_PATH;
    everywhere || keys || is_sign_in(service, method, path)
}

fn client_ip(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_else(|| "local".to_owned())
}

/// Counts the request against `quota` under `key`; 429 when over.
async fn limit(state: &ProxyState, group: &'static str, key: String, quota: &Quota) -> Result<Applied, ApiError> {
    let decision = state.limits.limiter.check(&key, quota).await;
    if decision.allowed {
        Ok(Applied { group, quota: *quota, decision })
    } else {
        state.metrics.counter(RATE_LIMITED, &[("group", group)]).increment(1);
        Err(ApiError::TooManyRequests {
            detail: format!("too many requests; retry in {} s", decision.retry_after.as_secs().max(1)),
            retry_after: decision.retry_after,
        })
    }
}

/// A passed rate-limit check, to be shown in the answer's headers.
struct Applied {
    group: &'static str,
    quota: Quota,
    decision: medcov_ratelimit::Decision,
}

impl Applied {
    fn write(&self, response: &mut Response) {
        let policy = format!("\"{}\";q={};w={}", self.group, self.quota.burst, self.quota.period.as_secs());
        let now = format!(
            "\"{}\";r={};t={}",
            self.group,
            self.decision.remaining,
            self.decision.reset.as_secs() + u64::from(self.decision.reset.subsec_nanos() > 0)
        );
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
}

async fn send(state: &ProxyState, service: &str, mut request: Request) -> Result<Response, ApiError> {
    let (name, upstream) = state.upstreams.get(service)?;
    // Keep the raw (still percent-encoded) path: decoding and re-encoding could change it.
    let raw_path = request.uri().path();
    let rest = raw_path.get("/api/".len() + service.len()..).unwrap_or("");
    let path = if rest.is_empty() { "/".to_owned() } else { rest.to_owned() };
    if path.contains("//") {
        return Err(ApiError::NotFound(format!("no such path: /api/{service}{path}")));
    }
    if path == "/metrics" || path.starts_with("/metrics?") {
        return Err(ApiError::NotFound("metrics are served on each service's own port".into()));
    }
    let ip = client_ip(&request);
    let mut audience = None;
    let applied = if is_sign_in(name, request.method(), &path) {
        limit(state, "auth", format!("auth:ip:{ip}"), &state.limits.auth).await?
    } else if is_public(name, request.method(), &path) {
        limit(state, "api", format!("api:ip:{ip}"), &state.limits.api).await?
    } else {
        let (parts, body) = request.into_parts();
        let verified = match medcov_security::verify::bearer(&parts) {
            Ok(token) => state.verifier.verify(token).await,
            Err(e) => Err(e),
        };
        match verified {
            Ok(principal) => {
                tracing::Span::current().record("principal", tracing::field::display(principal.id));
                audience = Some(super::cache::audience(&principal));
                request = Request::from_parts(parts, body);
                limit(state, "api", format!("api:sub:{}", principal.id), &state.limits.api).await?
            }
            Err(error) => {
                // Guessing tokens costs from the caller's IP budget.
                limit(state, "api", format!("api:ip:{ip}"), &state.limits.api).await?;
                return Err(error.into());
            }
        }
    };
    let mut target = path;
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    // Signed-in GETs and POSTs may be answered from the cache, or stored for later.
    let cache = state.cache.as_ref();
    let mut lookup = None;
    if let Some(audience) = &audience
        && (request.method() == Method::GET || request.method() == Method::POST)
    {
        let method = request.method().clone();
        let body = if method == Method::POST {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, state.body_limit).await.map_err(|_| {
                ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
            })?;
            request = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
            Some(bytes)
        } else {
            None
        };
        let mut found = super::cache::Lookup::new(&method, service, &target, audience, body.as_deref());
        if let Some(mut hit) = found.fresh(cache, &state.marked).await {
            state.metrics.counter("gateway_cache_total", &[("result", "hit")]).increment(1);
            applied.write(&mut hit);
            return Ok(hit);
        }
        lookup = Some(found);
    }
    let forwarded = upstream.forward(request, &target, state.body_limit).await;
    let counted = |result| state.metrics.counter("gateway_cache_total", &[("result", result)]).increment(1);
    let mut response = match (forwarded, &lookup) {
        (Ok(answer), Some(lookup)) if super::cache::unavailable(answer.status()) => match lookup.stale(cache).await {
            Some(stale) => {
                counted("stale");
                stale
            }
            None => answer,
        },
        (Ok(answer), Some(lookup)) => {
            let answer = lookup.store(cache, &state.marked, answer).await;
            if answer.headers().contains_key("x-cache") {
                counted("miss");
            }
            answer
        }
        (Ok(answer), None) => answer,
        (Err(error), Some(lookup))
            if matches!(error, ApiError::BadGateway(_) | ApiError::Unavailable(_) | ApiError::GatewayTimeout(_)) =>
        {
            match lookup.stale(cache).await {
                Some(stale) => {
                    counted("stale");
                    stale
                }
                None => return Err(error),
            }
        }
        (Err(error), _) => return Err(error),
    };
    applied.write(&mut response);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ways_to_get_a_token_and_descriptions_are_public() {
        let table = [
            (ServiceName::Auth, Method::POST, "/login", true),
            (ServiceName::Auth, Method::POST, "/token/refresh", true),
            (ServiceName::Auth, Method::POST, "/logout", true),
            (ServiceName::Auth, Method::POST, "/token", true),
            (ServiceName::Auth, Method::GET, "/.well-known/jwks.json", true),
            (ServiceName::Hospital, Method::GET, "/health/ready", true),
            (ServiceName::Billing, Method::GET, "/openapi.json", true),
            (ServiceName::Auth, Method::GET, "/login", false),
            (ServiceName::Auth, Method::GET, "/users", false),
            (ServiceName::Hospital, Method::POST, "/login", false),
            (ServiceName::Hospital, Method::GET, "/patients", false),
            (ServiceName::Hospital, Method::POST, "/health/ready", false),
        ];
        for (service, method, path, public) in table {
            assert_eq!(is_public(service, &method, path), public, "{service} {method} {path}");
        }
    }
}
