//! MedCov: one binary that runs any subset of its five services.
//!
//! - [`services`]: every service built in, in start order.
//! - [`start`]: start some of them in this process (what `medcov serve` and the tests use).
//! - [`cli`]: the command line.
//! - [`backup`]: `medcov admin backup` and `restore`, for the embedded backend's files.
//! - [`health`]: `medcov health`, the container image's health check.

#![forbid(unsafe_code)]

pub mod backup;
pub mod cli;
pub mod health;

use std::sync::Arc;

use medcov_config::{Config, Targets};
use medcov_runtime::{Running, ServiceSpec};

/// Every service, in start order.
pub fn services() -> [ServiceSpec; 5] {
    [
        medcov_auth::spec(),
        medcov_hospital::spec(),
        medcov_insurance::spec(),
        medcov_billing::spec(),
        medcov_gateway::spec(),
    ]
}

/// Starts `targets` in this process; each listens on its configured port (0: any free one).
pub async fn start(config: Arc<Config>, targets: &Targets) -> anyhow::Result<Running> {
    medcov_runtime::start(config, targets, &services()).await
}

/// Applies the migrations of `targets`.
pub async fn migrate(config: &Config, targets: &Targets) -> anyhow::Result<()> {
    medcov_runtime::migrate(config, targets, &services()).await
}
