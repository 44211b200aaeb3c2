//! The hospital service: hospitals, practitioners, patients, appointments and encounters.
//!
//! - `api/`: one module per resource, each with its router, wire types and OpenAPI
//!   description.
//! - `service/`: the use cases (load, decide, persist in one transaction), called by the API,
//!   the workers and the sagas.
//! - `domain/`: rules and records without I/O or HTTP (validation, record numbers, name
//!   folding, the appointment status machine, slots, encounters).
//! - `events`: the domain events this service writes to its outbox.
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.
//! - `workers`: the consumers of other services' events.
//! - `sagas`: the patient-registration saga and its ticker.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod events;
pub mod sagas;
pub mod service;
pub mod store;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

pub use service::HospitalService;

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Hospital,
        migrations: Some(store::MIGRATIONS),
        outbox: true,
        consumes: &["insurance", "billing"],
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let database = context.require_database()?;
    let timeout = Duration::from_millis(context.config.events.saga_step_timeout_ms);
    // Every instance must see the same invalidations: with Redis, the cache lives there.
    let service = Arc::new(HospitalService::new(database.clone(), context.cache(), sagas::registration(timeout)));
    context.consume("insurance", "hospital", Arc::new(workers::Insurance(service.clone())));
    context.consume("billing", "hospital", Arc::new(workers::Billing(service.clone())));
    let every = Duration::from_millis(500).min(timeout);
    context.tasks.spawn(sagas::run(service.clone(), context.metrics.clone(), every, context.shutdown.clone()));
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let sagas = medcov_runtime::sagas::router(database);
    let router = api::router(service).merge(sagas).layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new(), verifier: None })
}
