//! The billing service's use cases, called by the HTTP API and the event consumers alike. Each
//! loads what it needs through the store, decides with the rules in `domain/`, and persists
//! the outcome in one transaction it opens and commits itself, with its journal entry, its
//! events (`medcov_store::outbox::write`) and, for an event it handles, its inbox entry.
//!
//! Tenancy is checked here, next to the data: a record outside the caller's scope is "not
//! found", so scopes cannot be probed. Consumers act with [`Scope::Platform`].
//!
//! - [`prices`]: price lists.
//! - [`invoices`]: drafting (by hand or from an encounter), issuing, voiding, splitting by a
//!   claim.
//! - [`payments`]: payments of invoices, once per Idempotency-Key.
//! - [`remittances`]: an insurer's payment settling many invoices.
//! - [`refunds`]: refunds of care and of premium payments.
//! - [`premiums`]: premiums, their payments, cancellations.
//! - [`commissions`]: agents' tiers, commission rates, statements, payouts, clawbacks.
//! - [`reports`]: the reconciliation, reports and statements.
//! - [`accounts`]: patients' accounts, for the patient-registration saga.

mod accounts;
mod commissions;
mod invoices;
mod payments;
mod premiums;
mod prices;
mod refunds;
mod remittances;
mod reports;
pub mod tenants;

use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::{Database, Tx};
use time::Duration;
use uuid::Uuid;

pub use accounts::Opening;
pub use commissions::NewPayout;
pub use invoices::{Adjudication, Encounter, ManualInvoice};
pub use payments::NewPayment;
pub use premiums::PolicyCreated;
pub use remittances::{RemittanceItem, RemittanceOutcome};

#[derive(Debug, Clone, Copy)]
struct Settings {
    /// How long after a policy's creation its premium is due.
    premium_due: Duration,
    /// How long after earning it a commission can be clawed back.
    clawback_days: u32,
}

pub struct BillingService {
    db: Database,
    settings: Settings,
    /// The tenants' currencies and time zones.
    pub tenants: tenants::Tenants,
}

/// An event a consumer handles: its consumer name and id, for the inbox.
#[derive(Debug, Clone, Copy)]
pub struct Handling {
    pub consumer: &'static str,
    pub event: Uuid,
}

impl BillingService {
    /// The service's database (a consumer's batches of events are written in one of its
    /// transactions).
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn new(db: Database, config: &medcov_config::BillingConfig) -> BillingService {
        BillingService {
            db,
            settings: Settings {
                premium_due: Duration::seconds(i64::try_from(config.premium_due_s).unwrap_or(i64::MAX)),
                clawback_days: config.commission_clawback_days,
            },
            tenants: tenants::Tenants::default(),
        }
    }

    /// The same service, asking `tenants` for the tenants' profiles.
    pub fn with_tenants(self, tenants: tenants::Tenants) -> BillingService {
        BillingService { tenants, ..self }
    }

    /// Runs `work`, a request that moves money under an Idempotency-Key (`true`: it ran).
    /// The runtime's Idempotency-Key middleware answers repeats of a request that committed;
    /// the money tables' unique keys are the last guard: when `work` is refused because a
    /// movement under the key is recorded already (an attempt whose answer was lost before
    /// the middleware kept it, or a remittance item paid by an earlier attempt), `recorded`
    /// answers with that movement (`false`: not new).
    async fn once<T>(
        &self,
        recorded: impl AsyncFnOnce() -> Result<Option<T>, ApiError>,
        work: impl AsyncFnOnce() -> Result<T, ApiError>,
    ) -> Result<(T, bool), ApiError> {
        match work().await {
            Ok(done) => Ok((done, true)),
            Err(ApiError::Conflict(reason)) => match recorded().await? {
                Some(found) => Ok((found, false)),
                None => Err(ApiError::Conflict(reason)),
            },
            Err(other) => Err(other),
        }
    }

    /// Records `event` as handled in `tx`: `false` when it was already (then nothing else is
    /// to be done).
    async fn first_time(tx: &mut Tx, handling: Option<Handling>) -> Result<bool, ApiError> {
        match handling {
            Some(h) => Ok(medcov_store::inbox::record_once(tx, h.consumer, h.event).await?),
            None => Ok(true),
        }
    }
}

/// The tenants (hospitals or the insurer) whose books a scope sees: `None` for all.
fn tenants_in_scope(scope: &Scope) -> Option<Vec<Uuid>> {
    match scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { insurer } => Some(vec![*insurer]),
        Scope::Own => Some(Vec::new()),
    }
}

/// The insurer a scope's premium and commission lists are limited to: `None` for all (a
/// scope without an insurer sees the premiums of none, the nil id).
fn insurer_in_scope(scope: &Scope) -> Option<Uuid> {
    match scope {
        Scope::Platform => None,
        Scope::Insurer { insurer } => Some(*insurer),
        _ => Some(Uuid::nil()),
    }
}

/// The hospitals a scope sees: `None` for all of them.
fn hospitals_in_scope(scope: &Scope) -> Option<Vec<Uuid>> {
    match scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { .. } | Scope::Own => Some(Vec::new()),
    }
}

/// A record that must exist (just written, or referred to by another) and was not found: a
/// bug.
fn missing(what: &str) -> ApiError {
    ApiError::internal(format!("{what} should exist and was not found"))
}

/// "Not found" unless the caller's scope covers the hospital.
fn in_hospital<T>(scope: &Scope, hospital: impl Fn(&T) -> Uuid, found: Option<T>, what: &str) -> Result<T, ApiError> {
    found.filter(|t| scope.covers_hospital(hospital(t))).ok_or_else(|| ApiError::NotFound(format!("no such {what}")))
}

/// "Not found" unless the caller's scope covers the insurer.
fn at_insurer<T>(scope: &Scope, insurer: impl Fn(&T) -> Uuid, found: Option<T>, what: &str) -> Result<T, ApiError> {
    found.filter(|t| scope.covers_insurer(insurer(t))).ok_or_else(|| ApiError::NotFound(format!("no such {what}")))
}
