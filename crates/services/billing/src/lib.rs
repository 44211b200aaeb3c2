//! The billing service: price lists, invoices, payments, refunds, premiums, agents'
//! commissions and the ledger.
//!
//! - `api/`: one module per resource, each with its router, wire types and OpenAPI
//!   description; handlers check who calls and hand the work to the service layer.
//! - `service/`: the use cases (load, decide, persist in one transaction with the journal
//!   entry and the events), called by the API and the consumers alike.
//! - `domain/`: the rules and records, without I/O or HTTP (the ledger's entries, splits,
//!   payments, refunds, premiums, commissions, reports).
//! - `events`: the service's domain events, one type each.
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.
//! - `workers`: the consumers of other services' events.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
pub mod workers;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};
use std::sync::Arc;

pub use service::BillingService;

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Billing,
        migrations: Some(store::MIGRATIONS),
        outbox: true,
        consumes: &["hospital", "insurance"],
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let tenants = service::tenants::Tenants::new(
        context.upstream(ServiceName::Hospital),
        context.upstream(ServiceName::Insurance),
    );
    let service =
        Arc::new(BillingService::new(context.require_database()?, &context.config.billing).with_tenants(tenants));
    context.consume("hospital", "billing", Arc::new(workers::Encounters(service.clone())));
    context.consume("insurance", "billing", Arc::new(workers::Insurance(service.clone())));
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let insurance = context.upstream(ServiceName::Insurance);
    let router = api::router(service, insurance).layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new(), verifier: None })
}
