//! The HTTP kit that every MedCov service is built on, so that all five behave alike at the
//! edge: the same errors, the same request ids, the same metrics and health endpoints.
//!
//! - [`caching`]: marking an answer cacheable at the gateway, or usable stale on errors.
//! - [`client`]: the client's address, through the proxies MedCov trusts.
//! - [`problem`]: RFC 9457 problem+json and [`ApiError`], the one error type handlers return.
//! - [`extract`]: `Json`, `Query` and `Path` extractors whose rejections are problems that
//!   name the field at fault.
//! - [`observe`]: the outermost middleware: request id, trace context, the request span,
//!   access log and request metrics.
//! - [`metrics`]: one Prometheus registry per service; [`process`]: the process's own
//!   resource use in it.
//! - [`health`]: `/health/live` and `/health/ready` with named dependency checks.
//! - [`server`]: wraps a service's API router in all of the above and serves it.

#![forbid(unsafe_code)]

pub mod caching;
pub mod client;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod problem;
pub mod process;
pub mod server;

pub use extract::{Json, Path, Query};
pub use health::{Health, ReadinessCheck};
pub use metrics::Metrics;
pub use observe::{RequestContext, Routed};
pub use problem::{ApiError, FieldError, Problem};
pub use server::{HttpSettings, ServiceHttp};

/// The header that carries a request id in and out of every service.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
