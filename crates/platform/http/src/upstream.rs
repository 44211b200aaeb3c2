//! Calling another MedCov service: in process when it runs in the same process (no socket, no
//! serialisation of the connection), over HTTP when it runs elsewhere. One type, so the
//! gateway and the typed clients do not care which.
//!
//! Only plain forwarding lives here; retries, breakers and load balancing come from the mesh.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use futures::future::BoxFuture;
use tower::ServiceExt;

use crate::health::ReadinessCheck;
use crate::observe::RequestContext;
use crate::problem::ApiError;
use crate::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};

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
    /// The service runs elsewhere: call it over HTTP.
    Remote { name: &'static str, base: url::Url, client: reqwest::Client, timeout: Duration },
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Local { name, .. } => write!(f, "Upstream::Local({name})"),
            Upstream::Remote { name, base, .. } => write!(f, "Upstream::Remote({name} at {base})"),
        }
    }
}

impl Upstream {
    pub fn name(&self) -> &'static str {
        match self {
            Upstream::Local { name, .. } | Upstream::Remote { name, .. } => name,
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
            Upstream::Remote { name, base, client, timeout } => {
                let bytes = axum::body::to_bytes(body, body_limit).await.map_err(|_| {
                    ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
                })?;
                let url = join(base, path_and_query)?;
                let reply = client
                    .request(parts.method, url)
                    .headers(headers)
                    .body(bytes)
                    .timeout(*timeout)
                    .send()
                    .await
                    .map_err(|e| remote_error(name, &e))?;
                let status = reply.status();
                let reply_headers = forwardable(reply.headers());
                let bytes = reply.bytes().await.map_err(|e| remote_error(name, &e))?;
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                *response.headers_mut() = reply_headers;
                Ok(response)
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

fn join(base: &url::Url, path_and_query: &str) -> Result<url::Url, ApiError> {
    let relative = path_and_query.trim_start_matches('/');
    base.join(relative)
        .map_err(|e| ApiError::BadRequest { detail: format!("cannot forward to this path: {e}"), errors: vec![] })
}

fn remote_error(name: &str, error: &reqwest::Error) -> ApiError {
    if error.is_timeout() {
        ApiError::GatewayTimeout(format!("the {name} service did not answer in time"))
    } else {
        tracing::warn!(upstream = name, error = %error, "upstream call failed");
        ApiError::BadGateway(format!("the {name} service is unreachable"))
    }
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
    }
}
