//! The hospital service's use cases, called by the HTTP API, the event consumers
//! (`workers.rs`) and the saga ticker (`sagas.rs`) alike. Each one **loads** what it needs
//! through the store, **decides** with the rules in `domain/`, and **persists** the outcome in
//! one transaction it opens and commits itself, together with the record's history, its
//! access-log entry, the events it raises and, for a consumer, the inbox entry of the event it
//! handles. Caches are invalidated after the commit, never while a transaction is open.
//!
//! Tenancy is decided here, next to the data: a record outside the caller's hospitals does
//! not exist for them (404), so scopes cannot be probed.
//!
//! - [`hospitals`]: the tenants and their directory.
//! - [`patients`]: registration (which starts the registration saga), reads, changes,
//!   search, history, coverage, the access log.
//! - [`practitioners`]: who is booked.
//! - [`appointments`]: booking, moves, status changes, days and free slots.
//! - [`encounters`]: the service catalog and the care recorded in an encounter.
//! - [`registrar`]: registrations written by group commit.
//! - [`registration`]: the registration saga's replies and deadlines, and the insurers'
//!   answers about coverage.

mod appointments;
mod encounters;
mod hospitals;
mod patients;
mod practitioners;
mod read_log;
mod registrar;
mod registration;

use std::sync::Arc;

use medcov_bus::admission::Admission;
use medcov_bus::orchestrator::Definition;
use medcov_cache::Cache;
use medcov_cache::memo::Memo;
use medcov_http::ApiError;
use medcov_security::{Principal, Scope};
use medcov_store::Database;
use medcov_store::outbox::Actor;
use uuid::Uuid;

use crate::domain::access::{AccessAction, AccessEntry};
use crate::store;

pub use appointments::BookingRequest;
pub use encounters::OpenRequest;
pub use hospitals::DIRECTORY_TAG;
pub use patients::patient_tag;

pub struct HospitalService {
    db: Database,
    cache: Arc<dyn Cache>,
    registration: Definition,
    /// How many registration sagas may be in flight (see `medcov_bus::admission`).
    admission: Admission,
    /// Read entries of the access log, written by group commit.
    reads: read_log::ReadLog,
    /// Registrations, written by group commit.
    registrar: registrar::Registrar,
    /// A hospital's time zone, by hospital id: it is set when the hospital is created and never
    /// changed (an update writes its name, address and opening hours only).
    zones: Memo<Uuid, Arc<str>>,
}

impl HospitalService {
    /// The service on `db`, caching in `cache` (shared with every instance when it is Redis),
    /// starting `registration` sagas for patients registered with member numbers. Call it on
    /// a tokio runtime: it starts the access log's writer.
    pub fn new(db: Database, cache: Arc<dyn Cache>, registration: Definition) -> HospitalService {
        let admission = Admission::new(registration.shortest_timeout());
        let reads = read_log::ReadLog::start(db.clone());
        let registrar = registrar::Registrar::start(db.clone(), registration);
        HospitalService { db, cache, registration, admission, reads, registrar, zones: Memo::default() }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    fn cache(&self) -> &dyn Cache {
        self.cache.as_ref()
    }

    /// Writes one access-log entry per record read, committed before the read answers: reads
    /// hold no transaction, so theirs share one with the other reads of the moment
    /// ([`read_log`]).
    async fn log_reads(&self, actor: &Actor, records: &[(Uuid, Uuid)], action: AccessAction) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let entries = records.iter().map(|record| access(actor, *record, action)).collect();
        self.reads.record(entries).await?;
        Ok(())
    }
}

/// Who is acting for a request: the principal, with the request's id and trace.
fn actor(principal: &Principal) -> Actor {
    medcov_runtime::actor(principal)
}

/// An access-log entry for `(patient, hospital)`, by `actor`, now.
fn access(actor: &Actor, record: (Uuid, Uuid), action: AccessAction) -> AccessEntry {
    AccessEntry::now(actor.user_id, actor.request_id.clone(), record, action)
}

/// The hospitals a principal may see: `None` for all of them.
pub fn hospitals_in_scope(principal: &Principal) -> Option<Vec<Uuid>> {
    match &principal.scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { .. } | Scope::Own => Some(Vec::new()),
    }
}

/// The hospitals a listing covers: the one asked for (when the principal may see it), or all
/// the principal may see.
async fn hospitals_to_list(db: &Database, principal: &Principal, only: Option<Uuid>) -> Result<Vec<Uuid>, ApiError> {
    Ok(match (hospitals_in_scope(principal), only) {
        (None, Some(one)) => vec![one],
        (None, None) => store::hospitals(db).await?.into_iter().map(|h| h.id).collect(),
        (Some(mine), Some(one)) => mine.into_iter().filter(|h| *h == one).collect(),
        (Some(mine), None) => mine,
    })
}
