//! The auth service: users, roles, tenant scopes, credentials, tokens and signing keys.
//!
//! - `domain/`: rules and records without I/O (passwords, lockout, refresh-token rotation,
//!   accounts, the audit entry).
//! - `store/`: users, keys, refresh tokens and the audit log, on either backend.
//! - `service.rs`: the operations (login, refresh, logout, user administration, key rotation):
//!   load, decide, persist in one transaction; used by the HTTP API and the `medcov admin`
//!   commands alike.
//! - `kek.rs`: the key-encryption key that seals the signing keys at rest.
//! - `api/`: the HTTP API and its wire types.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod kek;
pub mod service;
pub mod store;

use std::sync::Arc;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

pub use service::AuthService;

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Auth,
        migrations: Some(store::MIGRATIONS),
        outbox: false,
        consumes: &[],
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let database = context.require_database()?;
    let kek = kek::Kek::load(&context.config)?;
    let service = Arc::new(AuthService::new(database, kek, context.revocations.clone(), &context.config));
    service.ensure_signing_key().await?;
    service.bootstrap_admin(&context.config).await?;
    let limiter: Arc<dyn medcov_ratelimit::Limiter> = match &context.redis {
        Some(redis) => Arc::new(medcov_ratelimit::RedisLimiter::new(redis.connection(), redis.prefix())),
        None => Arc::new(medcov_ratelimit::MemoryLimiter::default()),
    };
    let limits = &context.config.gateway.rate_limits;
    let quota = |q: medcov_config::QuotaConfig| medcov_ratelimit::Quota::per_minute(q.per_minute, q.burst);
    let sign_in = api::limits::Guard {
        limits: medcov_ratelimit::SignInLimits {
            limiter,
            per_address: quota(limits.auth),
            per_account: quota(limits.sign_in),
            namespace: "auth",
        },
        trusted: Arc::new(medcov_http::client::trusted(&context.config.http)),
        body_limit: context.config.http.body_limit_bytes,
    };
    // Its keys are its own: keyed requests are told apart by caller with them.
    let verifier = Some(service.verifier());
    Ok(ServiceApi { router: api::router(service, sign_in), checks: Vec::new(), verifier })
}
