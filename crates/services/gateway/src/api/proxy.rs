//! `/api/<service>/...`: forwards a request to the service that owns it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use medcov_config::ServiceName;
use medcov_http::{ApiError, Path, Upstream};
use utoipa_axum::router::OpenApiRouter;

/// Where each routed service is reached.
#[derive(Clone)]
pub struct Upstreams(Arc<BTreeMap<ServiceName, Upstream>>);

impl Upstreams {
    pub fn new(entries: impl IntoIterator<Item = (ServiceName, Upstream)>) -> Upstreams {
        Upstreams(Arc::new(entries.into_iter().collect()))
    }

    fn get(&self, segment: &str) -> Result<&Upstream, ApiError> {
        segment.parse::<ServiceName>().ok().and_then(|name| self.0.get(&name)).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no service is routed at /api/{segment}; expected auth, hospital, insurance or billing"
            ))
        })
    }
}

#[derive(Clone)]
struct ProxyState {
    upstreams: Upstreams,
    body_limit: usize,
}

pub fn router(upstreams: Upstreams, body_limit: usize) -> OpenApiRouter {
    OpenApiRouter::new()
        .route("/api/{service}", any(forward_root))
        .route("/api/{service}/{*path}", any(forward))
        .with_state(ProxyState { upstreams, body_limit })
}

async fn forward_root(
    State(state): State<ProxyState>,
    Path(service): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    send(&state, &service, "", request).await
}

async fn forward(
    State(state): State<ProxyState>,
    Path((service, path)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    send(&state, &service, &path, request).await
}

async fn send(state: &ProxyState, service: &str, path: &str, request: Request) -> Result<Response, ApiError> {
    let upstream = state.upstreams.get(service)?;
    // Keep the raw (still percent-encoded) path: decoding and re-encoding could change it.
    let raw_path = request.uri().path();
    let prefix_len = "/api/".len() + service.len();
    let rest = raw_path.get(prefix_len..).unwrap_or("");
    debug_assert!(path.is_empty() || !rest.is_empty());
    let mut target = if rest.is_empty() { "/".to_owned() } else { rest.to_owned() };
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    upstream.forward(request, &target, state.body_limit).await
}
