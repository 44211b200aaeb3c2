//! The auth service: users, roles, tenant scopes, credentials, tokens and signing keys.
//!
//! - `domain/`: rules and records without I/O (passwords, lockout, refresh-token rotation,
//!   accounts, the audit entry).
//! - `store/`: users, keys, refresh tokens and the audit log, on either backend.
//! - `service.rs`: the operations (login, refresh, logout, user administration, key rotation):
//!   load, decide, persist in one transaction; used by the HTTP API and the `medcov admin`
//!   commands alike.
//! - `api/`: the HTTP API and its wire types.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
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
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let database = context.require_database()?;
    let service = Arc::new(AuthService::new(database, &context.config));
    service.ensure_signing_key().await?;
    service.bootstrap_admin(&context.config).await?;
    Ok(ServiceApi { router: api::router(service), checks: Vec::new() })
}
