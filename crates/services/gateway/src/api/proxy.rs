//! `/api/<service>/...`: forwards a request to the service that owns it.
//!
//! Every request needs a valid access token except the few that are how one gets a token
//! (login, refresh, logout, the JWKS) and the public service descriptions (`openapi.json`,
//! `health/live`, `health/ready`). The gateway checks the token, then forwards it unchanged:
//! each service verifies it again, so skipping the gateway gains nothing. Services' `/metrics`
//! is not exposed here; Prometheus scrapes the service ports.
//!
//! Rate limits come first (see `medcov_ratelimit`): sign-in endpoints per client address (a
//! wide ceiling) and, for login and the client-credentials grant, per address and account
//! together; every other call per principal, or per client address when the caller has no
//! valid token. The client address is the socket's, or `X-Forwarded-For`'s from a trusted proxy
//! (`http.trusted_proxies`); the gateway appends the address it was called from before
//! forwarding. Answers, 429s included, carry `RateLimit-Policy` and `RateLimit` headers; a
//! refused request gets 429 with `Retry-After`.
//!
//! A method the path does not have is 405 with `Allow` whatever the token: without a valid
//! one the gateway answers it (from the merged API document) instead of 401; with one, the
//! service does, before it reads any header.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use medcov_config::ServiceName;
use medcov_http::{ApiError, Path};
use medcov_mesh::Upstream;
use medcov_ratelimit::{Applied, Limiter, Quota, SignInLimits};
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

/// Requests refused by a rate limit, by group (`api`, `sign-in`, `sign-in-account`).
pub const RATE_LIMITED: &str = "gateway_rate_limited_total";

/// The rate limits: API calls, and sign-in.
#[derive(Clone)]
pub struct Limits {
    pub limiter: Arc<dyn Limiter>,
    pub api: Quota,
    pub sign_in: SignInLimits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted: Arc<Vec<medcov_http::client::Network>>,
}

#[derive(Clone)]
pub struct ProxyState {
    pub upstreams: Upstreams,
    /// Answers the services mark cacheable, and last good answers (`medcov_http::caching`);
    /// counts `gateway_cache_total{result}` (hit, miss, shared, stale).
    pub responses: medcov_http::caching::Responses,
    /// Counts `gateway_rate_limited_total{group}`.
    pub metrics: medcov_http::Metrics,
    pub verifier: Arc<Verifier>,
    pub limits: Limits,
    pub body_limit: usize,
    /// The methods each documented path answers (from the merged API document): a request
    /// without a valid token for any other is 405, not 401. `None`: not checked.
    pub routes: Option<super::docs::Docs>,
}

pub fn router(state: ProxyState) -> OpenApiRouter {
    OpenApiRouter::new()
        .route("/api/{service}", any(forward_root))
        .route("/api/{service}/{*path}", any(forward))
        // Shared, not cloned for every request (a clone was 3% of a proxied GET's CPU).
        .with_state(Arc::new(state))
}

async fn forward_root(State(state): State<Arc<ProxyState>>, Path(service): Path<String>, request: Request) -> Response {
    routed(&state, &service, request).await
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
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

/// 405 for a method the documented path (as the merged API document says) does not have.
async fn method_refusal(state: &ProxyState, service: &str, path: &str, method: &Method) -> Option<ApiError> {
    let docs = state.routes.as_ref()?;
    let full = if path == "/" { format!("/api/{service}") } else { format!("/api/{service}{path}") };
    let allowed = docs.allowed(&full).await?;
    if allowed.contains(method) {
        return None;
    }
    let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    Some(ApiError::MethodNotAllowed { allow })
}

/// The client's address (see the module's header); "unknown" when there is none to see.
fn client_ip(state: &ProxyState, request: &Request) -> String {
    medcov_http::client::client_address(request.headers(), medcov_http::client::peer(request), &state.limits.trusted)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Appends the address the gateway was called from to `X-Forwarded-For`, as every proxy does,
/// so the service sees the client through it.
fn forward_for(request: &mut Request) {
    let Some(peer) = medcov_http::client::peer(request) else { return };
    let chain = match request.headers().get(medcov_http::client::FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        request.headers_mut().insert(medcov_http::client::FORWARDED_FOR, value);
    }
}

/// Counts the request against `quota` under `key`.
async fn limit(state: &ProxyState, group: &'static str, key: String, quota: &Quota) -> Result<Applied, Applied> {
    let decision = state.limits.limiter.check(&key, quota).await;
    let applied = Applied { group, quota: *quota, decision };
    if decision.allowed { Ok(applied) } else { Err(applied) }
}

/// Writes a checked limit's `RateLimit-Policy` and `RateLimit` headers.
fn write(applied: &Applied, response: &mut Response) {
    for (name, value) in applied.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// The 429 for a refused request, with `Retry-After` and the limit's headers; counted.
fn refused(state: &ProxyState, applied: Applied) -> Response {
    state.metrics.counter(RATE_LIMITED, &[("group", applied.group)]).increment(1);
    let retry_after = applied.decision.retry_after;
    let mut response = ApiError::TooManyRequests {
        detail: format!("too many requests; retry in {} s", retry_after.as_secs().max(1)),
        retry_after,
    }
    .into_response();
    write(&applied, &mut response);
    response
}

/// The account a sign-in names (`username` to log in, `client_id` for a token), read from its
/// JSON body; the body is put back for the service.
async fn account_of(request: Request, body_limit: usize) -> Result<(Request, Option<String>), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, body_limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("the request body is larger than the configured limit".into()))?;
    let account = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|value| {
        ["username", "client_id"].iter().find_map(|field| value.get(field)?.as_str().map(str::to_owned))
    });
    Ok((Request::from_parts(parts, axum::body::Body::from(bytes)), account))
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
    if name == ServiceName::Auth && (path == "/revocations" || path.starts_with("/revocations?")) {
        return Err(ApiError::NotFound("the revocation list is for the services, on the auth port".into()));
    }
    let ip = client_ip(state, &request);
    forward_for(&mut request);
    let mut audience = None;
    let applied = if is_sign_in(name, request.method(), &path) {
        let account = if matches!(path.as_str(), "/login" | "/token") {
            let (back, account) = account_of(request, state.body_limit).await?;
            request = back;
            account
        } else {
            None
        };
        match state.limits.sign_in.check(Some(&ip), account.as_deref()).await {
            Ok(applied) => applied,
            Err(over) => return Ok(refused(state, over)),
        }
    } else if is_public(name, request.method(), &path) {
        match limit(state, "api", format!("api:ip:{ip}"), &state.limits.api).await {
            Ok(applied) => applied,
            Err(over) => return Ok(refused(state, over)),
        }
    } else {
        let (parts, body) = request.into_parts();
        let verified = match medcov_security::verify::bearer(&parts) {
            Ok(token) => state.verifier.verify(token).await,
            Err(e) => Err(e),
        };
        match verified {
            Ok(principal) => {
                tracing::Span::current().record("principal", tracing::field::display(principal.id));
                audience = Some(principal.audience());
                request = Request::from_parts(parts, body);
                match limit(state, "api", format!("api:sub:{}", principal.id), &state.limits.api).await {
                    Ok(applied) => applied,
                    Err(over) => return Ok(refused(state, over)),
                }
            }
            Err(error) => {
                // A method the path does not have is 405 rather than 401: the token does not
                // matter. (With a valid token the service answers the 405 itself.)
                if let Some(refusal) = method_refusal(state, service, &path, &parts.method).await {
                    return Err(refusal);
                }
                // Guessing tokens costs from the caller's IP budget.
                if let Err(over) = limit(state, "api", format!("api:ip:{ip}"), &state.limits.api).await {
                    return Ok(refused(state, over));
                }
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
    let lookup = match &audience {
        Some(audience) if request.method() == Method::GET || request.method() == Method::POST => {
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
            let namespace = format!("gateway:{service}");
            Some(medcov_http::caching::Lookup::new(&method, &namespace, &target, audience, body.as_deref()))
        }
        _ => None,
    };
    let forwarded = upstream.forward(request, &target, state.body_limit);
    let mut response = match lookup {
        Some(lookup) => state.responses.answer(lookup, forwarded).await?,
        None => forwarded.await?,
    };
    write(&applied, &mut response);
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
