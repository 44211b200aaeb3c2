//! Patient registration with coverage, orchestrated here (`medcov_bus::orchestrator`):
//!
//! 1. `verify_member` (insurance, `verify_and_link`): the member numbers are checked and the
//!    patient is linked to each member that is covered today. When none is (wrong check
//!    digits, unknown, no active policy), the step fails: the patient stays registered as
//!    self-pay, and `GET /patients/{id}/coverage` tells the desk why. Compensation: `unlink`.
//! 2. `open_account` (billing): the patient's account is opened. Compensation: `close_account`.
//!
//! A registration with member numbers is refused (503, Retry-After) before anything is written
//! while the sagas in flight would take more than half a step's timeout to finish
//! (`medcov_bus::admission`): a long queue must not undo accepted registrations.
//!
//! A failure after the link (billing refusing, or not answering within
//! `events.saga_step_timeout_ms`) undoes both in reverse: the account is closed (in case billing
//! opened it late; retried until billing answers), then the member unlinked. The saga starts in
//! the registration's own transaction (`service::HospitalService::register_patient`); replies
//! move it on through the workers; the ticker here acts on deadlines, so a restart resumes it.

use std::sync::Arc;
use std::time::Duration;

use medcov_bus::orchestrator::{Definition, Step};
use medcov_http::Metrics;
use tokio_util::sync::CancellationToken;

use crate::service::HospitalService;

pub const COMMAND: &str = "hospital.saga_command.v1";
pub const KIND: &str = "patient_registration";

/// The registration saga, with `timeout` for each step.
pub fn registration(timeout: Duration) -> Definition {
    let steps: &'static [Step] = Box::leak(Box::new([
        Step {
            name: "verify_member",
            target: "insurance",
            action: "verify_and_link",
            compensation: Some("unlink"),
            timeout,
        },
        Step {
            name: "open_account",
            target: "billing",
            action: "open_account",
            compensation: Some("close_account"),
            timeout,
        },
    ]));
    Definition { kind: KIND, command_type: COMMAND, steps }
}

/// Every `every`: moves sagas past their deadline on, and publishes the count of sagas in
/// each state as `sagas{state}` (as often, unless counting a long history is slow:
/// `medcov_bus::saga::CountPace`).
pub async fn run(service: Arc<HospitalService>, metrics: Metrics, every: Duration, stop: CancellationToken) {
    metrics.describe_gauge("sagas", "Sagas this service orchestrates, by kind and state.");
    metrics.describe_counter(
        "sagas_refused_total",
        "Sagas not started (the request answered 503) because those in flight would not finish in time.",
    );
    metrics.ensure_counter("sagas_refused_total", &[("kind", KIND)]);
    // Published on the same beat: how registrations are written (service/registrar.rs).
    metrics.describe_counter(
        "registration_batches_total",
        "Write transactions that registered patients together (group commit).",
    );
    metrics.describe_counter("registrations_batched_total", "Registrations written in those transactions.");
    let actor = medcov_store::outbox::Actor::default();
    let mut pace = medcov_bus::saga::CountPace::new(every);
    // The first round runs at once: sagas a restart interrupted move on, and the admission
    // control's first count is taken, so its rate is measured one period after start.
    loop {
        match service.registration_deadlines(&actor).await {
            Ok(ended) => {
                // The reason stays in the saga (`GET /sagas/{id}`), out of the log.
                for (saga, _) in ended {
                    service.registration_ended();
                    tracing::info!(saga = %saga.id, "patient registration saga compensated");
                }
            }
            Err(error) => tracing::warn!(%error, "the registration saga ticker failed; it tries again"),
        }
        if let Some(Ok(counts)) = pace.count(service.saga_counts()).await {
            for (state, count) in counts {
                metrics.gauge("sagas", &[("kind", KIND), ("state", state.as_str())]).set(count as f64);
            }
        }
        metrics.counter("sagas_refused_total", &[("kind", KIND)]).absolute(service.sagas_refused());
        let (batches, registrations) = service.registrations_written();
        metrics.counter("registration_batches_total", &[]).absolute(batches);
        metrics.counter("registrations_batched_total", &[]).absolute(registrations);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
