//! The HTTP kit that every MedCov service is built on, so that all five behave alike at the
//! edge: the same errors, the same request ids, the same metrics and health endpoints.
//!
//! - [`caching`]: marking an answer cacheable, or usable stale on errors; the response cache
//!   the gateway and every service's router keep of such answers.
//! - [`client`]: the client's address, through the proxies MedCov trusts.
//! - [`contract`]: what every OpenAPI document says about the kit's behaviour (security,
//!   problem answers, the headers it reads), added to each service's document.
//! - [`problem`]: RFC 9457 problem+json and [`ApiError`], the one error type handlers return.
//! - [`extract`]: `Json`, `Query` and `Path` extractors whose rejections are problems that
//!   name the field at fault.
//! - [`observe`]: the outermost middleware: request id, trace context, the request span,
//!   access log and request metrics.
//! - [`page`]: the one envelope every list answers, `{items, paging}`.
//! - [`metrics`]: one Prometheus registry per service; [`process`]: the process's own
//!   resource use in it.
//! - [`health`]: `/health/live` and `/health/ready` with named dependency checks.
//! - [`server`]: wraps a service's API router in all of the above and serves it.

#![forbid(unsafe_code)]

pub mod caching;
pub mod client;
pub mod contract;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod page;
pub mod problem;
pub mod process;
pub mod server;

pub use extract::{Json, Path, Query};
pub use health::{Health, ReadinessCheck};
pub use metrics::Metrics;
pub use observe::{RequestContext, Routed};
pub use page::{Page, Paging};
pub use problem::{ApiError, FieldError, Problem};
pub use server::{HttpSettings, ServiceHttp};

/// The `ETag` header of a record at `version` (`"3"`), to send back as `If-Match` when changing
/// it.
pub fn etag(version: i64) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(axum::http::header::ETAG, value);
    }
    headers
}

/// The header that carries a request id in and out of every service.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
