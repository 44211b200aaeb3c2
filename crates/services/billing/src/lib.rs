//! The billing service: price lists, invoices, payments and the ledger.
//!
//! - `api/`: one module per resource, each with its router and OpenAPI description.
//! - `domain/`: rules without I/O (the ledger's entries, splits, payments).
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.
//! - `workers`: the consumers of other services' events.

#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod store;
pub mod workers;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};
use std::sync::Arc;

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Billing,
        migrations: Some(store::MIGRATIONS),
        outbox: true,
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    let store = Arc::new(store::BillingStore::new(context.require_database()?));
    context.consume("hospital", "billing", Arc::new(workers::Encounters(store.clone())));
    let insurance = workers::Insurance { store: store.clone(), config: context.config.billing.clone() };
    context.consume("insurance", "billing", Arc::new(insurance));
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let insurance = context.upstream(medcov_config::ServiceName::Insurance);
    let router = api::router(store, context.config.billing.commission_clawback_days, insurance)
        .layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new() })
}
