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

use std::sync::Arc;
use std::time::Duration;

use medcov_bus::consumer::{self, ConsumerConfig, ConsumerMetrics, Handler};
use medcov_config::ServiceName;
use medcov_runtime::{ServiceApi, ServiceContext, ServiceSpec};

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
    let consumers: [(&str, Arc<dyn Handler>); 2] = [
        ("hospital", Arc::new(workers::Encounters(store.clone()))),
        ("insurance", Arc::new(workers::Claims(store.clone()))),
    ];
    let events = &context.config.events;
    context
        .metrics
        .describe_counter("events_consumed_total", "Events handled by this service's consumers, by outcome.");
    for (stream, handler) in consumers {
        let config = ConsumerConfig {
            max_deliveries: events.max_deliveries,
            retry_base: Duration::from_millis(events.retry_base_ms),
            retry_max: Duration::from_millis(events.retry_max_ms),
            ..ConsumerConfig::new(stream, "billing")
        };
        let counter = |outcome| {
            context
                .metrics
                .counter("events_consumed_total", &[("stream", stream), ("group", "billing"), ("outcome", outcome)])
        };
        let counters = ConsumerMetrics { handled: counter("ok"), retried: counter("retry"), dead: counter("dead") };
        context.tasks.spawn(consumer::run(context.bus.clone(), config, handler, counters, context.shutdown.clone()));
    }
    // Handlers take a verified `Principal`; the verifier reads the auth service's keys.
    let router = api::router(store).layer(axum::Extension(context.verifier()));
    Ok(ServiceApi { router, checks: Vec::new() })
}
