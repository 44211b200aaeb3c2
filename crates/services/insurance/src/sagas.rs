//! The policy-sale saga, orchestrated here (its steps are [`crate::service::sale`]): a ticker
//! acts on the sales whose deadline has passed, so a restart loses none, and publishes how
//! many sales are in each state.

use std::sync::Arc;
use std::time::Duration;

use medcov_http::Metrics;
use tokio_util::sync::CancellationToken;

use crate::service::{InsuranceService, POLICY_SALE};

/// Ticks every `every` until `stop`, publishing instance counts by state as `sagas` gauges
/// (as often, unless counting a long history is slow: `medcov_bus::saga::CountPace`).
pub async fn run(service: Arc<InsuranceService>, metrics: Metrics, every: Duration, stop: CancellationToken) {
    metrics.describe_gauge("sagas", "Sagas this service orchestrates, by kind and state.");
    let mut pace = medcov_bus::saga::CountPace::new(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(error) = service.tick_sales().await {
            tracing::warn!(%error, "the saga ticker failed; it will try again");
        }
        if let Some(Ok(counts)) = pace.count(service.sale_counts()).await {
            for (state, n) in counts {
                metrics.gauge("sagas", &[("kind", POLICY_SALE), ("state", state.as_str())]).set(n as f64);
            }
        }
    }
}
