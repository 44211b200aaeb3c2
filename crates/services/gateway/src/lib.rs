//! The gateway: the single public entry of MedCov. It keeps no records of its own.
//!
//! `/api/<service>/<path>` goes to `<path>` on that service: in process when the service runs
//! in the same process, over HTTP to `services.<name>.url` otherwise. The request id and the
//! trace context travel with the request.
//!
//! - `api/`: the routes: the proxy, the merged API description, and `/mesh` (operating the
//!   calls to the services: instances, health, breakers, the policy).

#![forbid(unsafe_code)]

pub mod api;

use std::sync::Arc;

use medcov_config::ServiceName;
use medcov_http::ReadinessCheck;
use medcov_mesh::UpstreamCheck;
use medcov_ratelimit::{Limiter, MemoryLimiter, Quota, RedisLimiter};
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

/// The services the gateway routes to, by the path segment after `/api/`.
pub const ROUTED: [ServiceName; 4] =
    [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing];

pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Gateway,
        migrations: None,
        outbox: false,
        consumes: &[],
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let upstreams = api::proxy::Upstreams::new(ROUTED.iter().map(|&name| (name, context.upstream(name))));
    // Services in other processes are probed; a down one degrades the gateway, it does not
    // take it out of service (the other services still work).
    let checks = ROUTED
        .iter()
        .map(|&name| context.upstream(name))
        .filter(|upstream| matches!(upstream, medcov_mesh::Upstream::Remote(_)))
        .map(|upstream| Arc::new(UpstreamCheck(upstream)) as Arc<dyn ReadinessCheck>)
        .collect();
    let gateway = &context.config.gateway;
    let limiter: Arc<dyn Limiter> = match &context.redis {
        Some(redis) => Arc::new(RedisLimiter::new(redis.connection(), redis.prefix())),
        None => Arc::new(MemoryLimiter::default()),
    };
    let quota = |q: medcov_config::QuotaConfig| Quota::per_minute(q.per_minute, q.burst);
    let proxy = api::proxy::ProxyState {
        upstreams,
        responses: medcov_http::caching::Responses::new(
            context.cache(),
            medcov_http::caching::Role::GATEWAY,
            &context.metrics,
            "gateway_cache_total",
            "Answers the gateway's response cache gave (hit, stale), stored (miss), or shared between identical requests in flight (shared).",
        ),
        metrics: {
            let metrics = &context.metrics;
            metrics.describe_counter(api::proxy::RATE_LIMITED, "Requests refused by a rate limit (429), by group.");
            // At 0 from the start, so the first refusal shows in a rate.
            for group in ["api", "sign-in", "sign-in-account"] {
                metrics.ensure_counter(api::proxy::RATE_LIMITED, &[("group", group)]);
            }
            metrics.clone()
        },
        verifier: context.verifier(),
        limits: api::proxy::Limits {
            limiter: limiter.clone(),
            api: quota(gateway.rate_limits.api),
            sign_in: medcov_ratelimit::SignInLimits {
                limiter,
                per_address: quota(gateway.rate_limits.auth),
                per_account: quota(gateway.rate_limits.sign_in),
                namespace: "gateway",
            },
            trusted: Arc::new(medcov_http::client::trusted(&context.config.http)),
        },
        body_limit: context.config.http.body_limit_bytes,
        routes: None,
    };
    let mut router = api::router(proxy, context.mesh.clone());
    if !gateway.cors_allowed_origins.is_empty() {
        router = router.layer(cors(&gateway.cors_allowed_origins)?);
    }
    Ok(ServiceApi { router, checks, verifier: None })
}

/// Browsers at the configured origins may call the API, sending a bearer token.
fn cors(origins: &[String]) -> anyhow::Result<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins = origins.iter().map(|o| HeaderValue::from_str(o)).collect::<Result<Vec<_>, _>>()?;
    Ok(tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(std::time::Duration::from_secs(600)))
}
