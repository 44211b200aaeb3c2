//! The insurance service: insurers, plans, policies and members, eligibility, pre-authorisations, claims and accumulators.
//!
//! - `api/`: one module per resource, each with its router, wire types and OpenAPI description.
//! - `service/`: the use cases (load, decide, persist), called by the API, the workers and the
//!   saga ticker.
//! - `domain/`: rules and records without I/O (plans, policies, the adjudication engine,
//!   claims, the ledger, eligibility, pre-authorisations).
//! - `events`: the domain events this service raises, one type each.
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.
//! - `workers`: the consumers of other services' events.
//! - `sagas`: the policy-sale saga's deadline ticker.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod events;
pub mod sagas;
pub mod service;
pub mod store;
pub mod workers;

use std::sync::Arc;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

pub use service::InsuranceService;

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Insurance,
        migrations: Some(store::MIGRATIONS),
        outbox: true,
        consumes: &["billing", "hospital"],
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let database = context.require_database()?;
    // Every instance must see the same invalidations: with Redis, the cache lives there.
    let service = Arc::new(
        InsuranceService::with_cache(database, context.cache()).with_premium_due(context.config.billing.premium_due_s),
    );
    let warming = service.clone();
    context.warm("plan_versions", async move { warming.warm_plan_versions().await.map_err(|e| e.to_string()) });
    context.consume("billing", "insurance", Arc::new(workers::Billing(service.clone())));
    context.consume("hospital", "insurance", Arc::new(workers::Hospital(service.clone())));
    context.tasks.spawn(sagas::run(
        service.clone(),
        context.metrics.clone(),
        std::time::Duration::from_secs(1),
        context.shutdown.clone(),
    ));
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let router = api::router(service).layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new(), verifier: None })
}
