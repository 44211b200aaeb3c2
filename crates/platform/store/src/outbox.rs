//! The transactional outbox: a domain event is written in the same transaction as the change
//! that causes it, so neither exists without the other. The `outbox` table is the platform's
//! (in every service's schema); a relay publishes its rows, which stay as the service's
//! append-only event log.
//!
//! Each event is a type of its own ([`DomainEvent`]): its name and version, the aggregate it
//! is about, its tenant and its payload (the type's JSON form), written with [`write`]. Saga
//! commands and replies, whose names are data, go through [`write_event`].

use serde::Serialize;
use uuid::Uuid;

use crate::{Database, StoreError, Tx, Writes, dispatch, postgres, sqlite};

/// A fact a service records for others. The payload is the type's JSON form.
///
/// ```text
/// #[derive(Serialize)]
/// pub struct InvoiceIssued { pub invoice_id: Uuid, pub hospital_id: Uuid, ... }
/// impl DomainEvent for InvoiceIssued {
///     const TYPE: &'static str = "billing.invoice_issued.v1";
///     const AGGREGATE: &'static str = "invoice";
///     fn aggregate_id(&self) -> Uuid { self.invoice_id }
///     fn tenant_id(&self) -> Uuid { self.hospital_id }
/// }
/// ```
pub trait DomainEvent: Serialize {
    /// `<service>.<event>.v<version>`, such as `hospital.patient_registered.v1`.
    const TYPE: &'static str;
    /// What kind of thing it is about (`patient`, `invoice`).
    const AGGREGATE: &'static str;
    /// Which one.
    fn aggregate_id(&self) -> Uuid;
    /// The hospital or insurer it belongs to.
    fn tenant_id(&self) -> Uuid;
}

/// An event as the outbox stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    pub tenant_id: Uuid,
    pub payload: serde_json::Value,
}

impl Event {
    /// The stored form of a typed event.
    pub fn of<E: DomainEvent>(event: &E) -> Event {
        Event {
            event_type: E::TYPE,
            aggregate_type: E::AGGREGATE,
            aggregate_id: event.aggregate_id(),
            tenant_id: event.tenant_id(),
            // A type whose Serialize fails is a programming error that every test would show.
            payload: serde_json::to_value(event).expect("an event serializes to JSON"),
        }
    }
}

/// Who is acting, for history, audit and the events' correlation and causation.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Uuid,
    /// The request (or the first event) that started the chain: the events' correlation id.
    pub request_id: Option<String>,
    /// W3C trace context to carry on.
    pub traceparent: Option<String>,
    /// The event or command being handled, when the actor is a consumer: the events'
    /// causation id.
    pub causation_id: Option<String>,
}

/// Writes `event` to the outbox inside `tx`, correlated with `actor`'s request and trace;
/// returns the event's id.
pub async fn write<E: DomainEvent>(tx: &mut Tx, actor: &Actor, event: &E) -> Result<Uuid, StoreError> {
    write_event(tx, actor, &Event::of(event)).await
}

/// Writes an event already in its stored form (saga commands and replies).
pub async fn write_event(tx: &mut Tx, actor: &Actor, event: &Event) -> Result<Uuid, StoreError> {
    dispatch!(tx, outbox::insert(actor, event))
}

/// [`write`] gathered in `writes`, to run with the transaction's other writes
/// ([`crate::Writes`]); returns the event's id.
pub fn gather<E: DomainEvent>(writes: &mut Writes, actor: &Actor, event: &E) -> Uuid {
    gather_event(writes, actor, &Event::of(event))
}

/// [`write_event`] gathered in `writes`.
pub fn gather_event(writes: &mut Writes, actor: &Actor, event: &Event) -> Uuid {
    dispatch!(gather writes, outbox::gather_insert(actor, event))
}

/// An event as the event log shows it: (type, aggregate id, payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub payload: serde_json::Value,
}

/// A service's unpublished outbox events, oldest first.
pub async fn unpublished(db: &Database) -> Result<Vec<Recorded>, StoreError> {
    dispatch!(db, outbox::list(true))
}

/// Every event a service emitted (its event log), oldest first.
pub async fn all(db: &Database) -> Result<Vec<Recorded>, StoreError> {
    dispatch!(db, outbox::list(false))
}

/// How many events wait to be relayed, and when the oldest of them occurred.
pub async fn backlog(db: &Database) -> Result<(i64, Option<time::OffsetDateTime>), StoreError> {
    dispatch!(db, outbox::backlog())
}

/// How far the relay has got with a service's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Every event written (the log keeps them all).
    pub rows: u64,
    /// Not yet handed to the bus.
    pub unpublished: u64,
}

/// How many events a service wrote, and how many still wait for the relay.
pub async fn counts(db: &Database) -> Result<Counts, StoreError> {
    let (rows, unpublished) = dispatch!(db, outbox::counts())?;
    Ok(Counts { rows: rows.max(0) as u64, unpublished: unpublished.max(0) as u64 })
}
