//! The sign-in limits, enforced by the auth service itself: the gateway applies them too, but
//! the auth port must be no way around them. The same quotas (`gateway.rate_limits.auth` per
//! client address, `gateway.rate_limits.sign_in` per address and account), counted apart from
//! the gateway's. The client address is the socket's, or the one a trusted proxy (the gateway)
//! names in `X-Forwarded-For`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medcov_http::ApiError;
use medcov_http::client::{Network, client_address, peer};
use medcov_ratelimit::SignInLimits;

#[derive(Clone)]
pub struct Guard {
    pub limits: SignInLimits,
    pub trusted: Arc<Vec<Network>>,
    pub body_limit: usize,
}

/// Counts a sign-in request (login, token, refresh, logout) against the limits; 429 when over.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let address = client_address(request.headers(), peer(&request), &guard.trusted).map(|ip| ip.to_string());
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, guard.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge("the request body is larger than the configured limit".into())
                .into_response();
        }
    };
    let account = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|value| {
        ["username", "client_id"].iter().find_map(|field| value.get(field)?.as_str().map(str::to_owned))
    });
    let checked = guard.limits.check(address.as_deref(), account.as_deref()).await;
    let applied = match checked {
        Ok(applied) => applied,
        Err(over) => {
            let mut response = ApiError::TooManyRequests {
                detail: format!("too many sign-in attempts; retry in {} s", over.decision.retry_after.as_secs().max(1)),
                retry_after: over.decision.retry_after,
            }
            .into_response();
            for (name, value) in over.headers() {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            return response;
        }
    };
    let mut response = next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await;
    // Through the gateway the gateway's own (tighter or equal) figures are what the client sees.
    for (name, value) in applied.headers() {
        if !response.headers().contains_key(name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
