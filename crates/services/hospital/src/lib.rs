//! The hospital service: hospitals, practitioners, patients, appointments and encounters.
//!
//! - `api/`: one module per resource, each with its router and OpenAPI description.
//! - `domain/`: rules without I/O (validation, record numbers, name folding).
//! - `workers`: the consumers of other services' events.
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod sagas;
pub mod store;
pub mod workers;

use std::sync::Arc;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Hospital,
        migrations: Some(store::MIGRATIONS),
        outbox: true,
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let database = context.require_database()?;
    // Every instance must see the same invalidations: with Redis, the cache lives there.
    let timeout = std::time::Duration::from_millis(context.config.events.saga_step_timeout_ms);
    let store = Arc::new(store::HospitalStore::with_cache(database, context.cache()).with_step_timeout(timeout));
    context.consume("insurance", "hospital", Arc::new(workers::Insurance(store.clone())));
    context.consume("billing", "hospital", Arc::new(workers::Billing(store.clone())));
    let every = std::time::Duration::from_secs(1).min(timeout);
    context.tasks.spawn(sagas::run(store.clone(), context.metrics.clone(), every, context.shutdown.clone()));
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let sagas = medcov_runtime::sagas::router(store.database().clone());
    let router = api::router(store).merge(sagas).layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new() })
}
