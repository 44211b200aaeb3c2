//! The billing service: price lists, invoices, payments, refunds, premiums, agents, commissions and the ledger.
//!
//! - `api/`: one module per resource, each with its router and OpenAPI description.
//! - `store/`: the service's tables, with migrations per backend under `migrations/`.

#![forbid(unsafe_code)]

pub mod api;
pub mod store;

use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

/// How the runtime starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: ServiceName::Billing,
        migrations: Some(store::MIGRATIONS),
        outbox: false,
        build: |context| Box::pin(build(context)),
    }
}

async fn build(context: ServiceContext) -> anyhow::Result<ServiceApi> {
    context.require_database()?;
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let router = api::router().layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new() })
}
