//! `/api/<service>/...`: forwards a request to the service that owns it.
//!
//! Every request needs a valid access token except the few that are how one gets a token
//! (login, refresh, logout, the JWKS) and the public service descriptions (`openapi.json`,
//! `health/live`, `health/ready`). The gateway checks the token, then forwards it unchanged:
//! each service verifies it again, so skipping the gateway gains nothing. Services' `/metrics`
//! is not exposed here; Prometheus scrapes the service ports.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::any;
use medcov_config::ServiceName;
use medcov_http::{ApiError, Path, Upstream};
use medcov_security::Verifier;
use utoipa_axum::router::OpenApiRouter;

/// Where each routed service is reached.
#[derive(Clone)]
pub struct Upstreams(Arc<BTreeMap<ServiceName, Upstream>>);

impl Upstreams {
    pub fn new(entries: impl IntoIterator<Item = (ServiceName, Upstream)>) -> Upstreams {
        Upstreams(Arc::new(entries.into_iter().collect()))
    }

    fn get(&self, segment: &str) -> Result<(ServiceName, &Upstream), ApiError> {
        segment.parse::<ServiceName>().ok().and_then(|name| self.0.get(&name).map(|u| (name, u))).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no service is routed at /api/{segment}; expected auth, hospital, insurance or billing"
            ))
        })
    }
}

#[derive(Clone)]
struct ProxyState {
    upstreams: Upstreams,
    verifier: Arc<Verifier>,
    body_limit: usize,
}

pub fn router(upstreams: Upstreams, verifier: Arc<Verifier>, body_limit: usize) -> OpenApiRouter {
    OpenApiRouter::new()
        .route("/api/{service}", any(forward_root))
        .route("/api/{service}/{*path}", any(forward))
        .with_state(ProxyState { upstreams, verifier, body_limit })
}

async fn forward_root(
    State(state): State<ProxyState>,
    Path(service): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    send(&state, &service, request).await
}

async fn forward(
    State(state): State<ProxyState>,
    Path((service, _path)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    send(&state, &service, request).await
}

/// Requests that need no token.
fn is_public(service: ServiceName, method: &Method, path: &str) -> bool {
    let everywhere = matches!(path, "/openapi.json" | "/health/live" | "/health/ready") && method == Method::GET;
    let auth = service == ServiceName::Auth
        && ((method == Method::POST && matches!(path, "/login" | "/token/refresh" | "/logout"))
            || (method == Method::GET && path == medcov_security::verify::JWKS_PATH));
    everywhere || auth
}

async fn send(state: &ProxyState, service: &str, mut request: Request) -> Result<Response, ApiError> {
    let (name, upstream) = state.upstreams.get(service)?;
    // Keep the raw (still percent-encoded) path: decoding and re-encoding could change it.
    let raw_path = request.uri().path();
    let rest = raw_path.get("/api/".len() + service.len()..).unwrap_or("");
    let path = if rest.is_empty() { "/".to_owned() } else { rest.to_owned() };
    if path == "/metrics" {
        return Err(ApiError::NotFound("metrics are served on each service's own port".into()));
    }
    if !is_public(name, request.method(), &path) {
        let (parts, body) = request.into_parts();
        let token = medcov_security::verify::bearer(&parts)?;
        let principal = state.verifier.verify(token).await?;
        tracing::Span::current().record("principal", tracing::field::display(principal.id));
        request = Request::from_parts(parts, body);
    }
    let mut target = path;
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    upstream.forward(request, &target, state.body_limit).await
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
