//! The gateway: the single public entry of MedCov. It keeps no records of its own.
//!
//! `/api/<service>/<path>` goes to `<path>` on that service: in process when the service runs
//! in the same process, over HTTP to `services.<name>.url` otherwise. The request id and the
//! trace context travel with the request.
//!
//! - `api/`: the routes (the proxy).

#![forbid(unsafe_code)]

pub mod api;

use std::sync::Arc;

use medcov_config::ServiceName;
use medcov_http::ReadinessCheck;
use medcov_http::upstream::UpstreamCheck;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

/// The services the gateway routes to, by the path segment after `/api/`.
pub const ROUTED: [ServiceName; 4] =
    [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing];

pub fn spec() -> ServiceSpec {
    ServiceSpec { name: ServiceName::Gateway, migrations: None, build: |context| Box::pin(build(context)) }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let upstreams = api::proxy::Upstreams::new(ROUTED.iter().map(|&name| (name, context.upstream(name))));
    // Services in other processes are probed; a down one degrades the gateway, it does not
    // take it out of service (the other services still work).
    let checks = ROUTED
        .iter()
        .map(|&name| context.upstream(name))
        .filter(|upstream| matches!(upstream, medcov_http::Upstream::Remote { .. }))
        .map(|upstream| Arc::new(UpstreamCheck(upstream)) as Arc<dyn ReadinessCheck>)
        .collect();
    let body_limit = context.config.http.body_limit_bytes;
    Ok(ServiceApi { router: api::router(upstreams, context.verifier(), body_limit), checks })
}
