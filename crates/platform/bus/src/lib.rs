//! The event bus: how a fact one service records reaches the services that act on it, with
//! nothing lost and nothing done twice.
//!
//! - [`Envelope`]: the event as it travels (id, type with version, aggregate, tenant, time,
//!   correlation and causation, trace context, payload).
//! - [`Bus`]: streams (one per event family, the service that emits it), consumer groups,
//!   pending entries with delivery counts, reclaiming, dead letters, trimming. Two backends
//!   with the same semantics: [`RedisBus`] (Redis Streams) and [`SqliteBus`] (tables in one
//!   SQLite file, for the embedded mode). One contract suite runs against both.
//! - [`relay`]: publishes a service's outbox rows and marks them published.
//! - [`log`]: the event log (the outbox's rows), by aggregate, type, time and tenant.
//! - [`consumer`]: the loop around a handler: read, handle, acknowledge; reclaim what another
//!   consumer left idle (the idle time is the retry backoff, growing with each delivery);
//!   dead-letter an entry after too many deliveries; stop at once on shutdown, though never in
//!   the middle of a handler.
//! - [`dead`]: each group's dead letters and discard log, kept in the consuming service's
//!   database, so that a bus that loses its data loses neither; the consumer puts back on the
//!   bus the dead letters it lost, and records there what operators did on the bus.
//! - [`saga`]: persisted saga instances with durable deadlines and a transition log.
//! - [`inbox`]: a consumer records each event it handled in the same transaction as its effect,
//!   so a repeated delivery has no second effect.
//! - [`trace`]: the spans of relaying, consuming and saga moves, one trace per chain.
//! - [`orchestrator`]: sagas as ordered steps with compensations, driven by commands and
//!   replies through the outboxes.
//!
//! The SQL on the platform's tables (`sagas`, `saga_transitions`, `outbox`, `dead_letters`,
//! `dead_letter_discards`) is written once in
//! `tables/sql/` and compiled per backend, as every store's is.

#![forbid(unsafe_code)]

pub mod admission;
pub mod consumer;
pub mod dead;
pub mod inbox;
pub mod log;
pub mod orchestrator;
pub mod redis_bus;
pub mod relay;
pub mod saga;
pub mod sqlite_bus;
mod tables;
pub mod trace;

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use redis_bus::RedisBus;
pub use sqlite_bus::SqliteBus;

/// An event as it travels between services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7; the same event keeps its id however often it is delivered.
    pub id: Uuid,
    /// `<service>.<event>.v<version>`, such as `hospital.encounter_completed.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// The hospital or insurer it belongs to.
    pub tenant_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The request (or the first event) that started the chain.
    pub correlation_id: Option<String>,
    /// The event or command that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context of the request that caused it.
    pub traceparent: Option<String>,
    pub payload: serde_json::Value,
}

impl Envelope {
    /// The stream (event family) it travels on: the emitting service, the type's first part.
    pub fn stream(&self) -> &str {
        stream_of(&self.event_type)
    }
}

/// The stream of an event type: `hospital.patient_registered.v1` travels on `hospital`.
pub fn stream_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

/// One delivery of an entry to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The entry's id in its stream (Redis `ms-seq`; SQLite a sequence number).
    pub entry: String,
    pub envelope: Envelope,
    /// How many times it has been delivered to the group, this time included.
    pub deliveries: u64,
}

/// An entry delivered to a group and not yet acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub entry: String,
    pub consumer: String,
    /// Since it was last delivered.
    pub idle: Duration,
    pub deliveries: u64,
}

/// An entry a group gave up on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The dead letter's own id (to retry or discard it).
    pub id: String,
    pub stream: String,
    pub group: String,
    /// Its id in the stream when it died.
    pub entry: String,
    pub envelope: Envelope,
    /// The handler's last error.
    pub error: String,
    pub deliveries: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A dead letter an operator discarded, as the discard log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Discarded {
    pub stream: String,
    pub group: String,
    /// Its id in the stream when it died (empty in Redis discard logs older than this field).
    pub entry: String,
    pub envelope: Envelope,
    /// The handler's last error.
    pub error: String,
    /// Why the operator discarded it.
    pub reason: String,
    /// When it was discarded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// How a group is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    pub stream: String,
    pub group: String,
    /// Delivered, not acknowledged.
    pub pending: u64,
    /// In the stream, not yet delivered to the group.
    pub lag: u64,
    /// Dead letters waiting for an operator.
    pub dead: u64,
}

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Every entry still in the stream.
    Beginning,
    /// Only entries added from now on.
    End,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("an entry could not be read: {0}")]
    Malformed(String),
    #[error("no dead letter {0}")]
    NoSuchDeadLetter(String),
    #[error("no consumer group {group} on stream {stream}")]
    NoSuchGroup { stream: String, group: String },
    /// The consuming service's database, where dead letters are kept ([`dead`]).
    #[error("the dead letters' store: {0}")]
    Store(#[from] medcov_store::StoreError),
}

impl BusError {
    /// Whether the group (or its whole stream) is not there: never created, or lost with the
    /// bus's data (Redis restarted empty answers `NOGROUP`). A consumer creates it again.
    pub fn is_missing_group(&self) -> bool {
        match self {
            BusError::NoSuchGroup { .. } => true,
            BusError::Redis(error) => error.code() == Some("NOGROUP"),
            _ => false,
        }
    }
}

pub type BusResult<T> = Result<T, BusError>;

/// A stream store with consumer groups. Every method is safe to call concurrently.
pub trait Bus: Send + Sync {
    /// The backend's name, for logs and metrics (`redis` or `sqlite`).
    fn backend(&self) -> &'static str;

    /// Appends an event to its stream; returns its entry id. Publishing the same envelope
    /// twice appends it twice: consumers deduplicate by envelope id ([`inbox`]).
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, BusResult<String>>;

    /// Appends events in order, each to its stream, at once where the backend can (one
    /// transaction on SQLite, one pipeline on Redis); returns their entry ids. On an error some
    /// may have been appended: publishing them again is safe (consumers deduplicate).
    fn publish_all<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, BusResult<Vec<String>>> {
        Box::pin(async move {
            let mut ids = Vec::with_capacity(envelopes.len());
            for envelope in envelopes {
                ids.push(self.publish(envelope).await?);
            }
            Ok(ids)
        })
    }

    /// Creates a consumer group if it does not exist (and the stream with it).
    fn create_group<'a>(&'a self, stream: &'a str, group: &'a str, start: Start) -> BoxFuture<'a, BusResult<()>>;

    /// Up to `count` entries never delivered to the group, waiting up to `block` for one.
    /// Each becomes pending for `consumer` until acknowledged.
    fn read<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, BusResult<Vec<Delivery>>>;

    fn ack<'a>(&'a self, stream: &'a str, group: &'a str, entries: &'a [String]) -> BoxFuture<'a, BusResult<()>>;

    /// The group's pending entries, oldest first, up to `count`.
    fn pending<'a>(&'a self, stream: &'a str, group: &'a str, count: usize) -> BoxFuture<'a, BusResult<Vec<Pending>>>;

    /// Takes over pending entries idle at least `min_idle` for `consumer`: each is delivered
    /// again (its delivery count grows). Entries no longer idle enough are skipped.
    fn claim<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        min_idle: Duration,
        entries: &'a [String],
    ) -> BoxFuture<'a, BusResult<Vec<Delivery>>>;

    /// Moves a delivery to the group's dead letters with the last error, and acknowledges it.
    fn dead_letter<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        delivery: &'a Delivery,
        error: &'a str,
    ) -> BoxFuture<'a, BusResult<()>>;

    /// The dead letters of a group, oldest first.
    fn dead_letters<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<DeadLetter>>>;

    /// Puts a dead letter back on its stream (as a new entry) and removes it from the dead
    /// letters; returns the new entry id. Consumers that already handled it skip it.
    fn retry<'a>(&'a self, stream: &'a str, group: &'a str, dead: &'a str) -> BoxFuture<'a, BusResult<String>>;

    /// Removes a dead letter for good, keeping the reason in the discard log.
    fn discard<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        dead: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, BusResult<()>>;

    /// Adds `letter` to its group's dead letters as it was (its entry, error, deliveries and
    /// time), touching nothing else; returns its new id. The consumer puts back so what the bus
    /// lost ([`dead`]).
    fn restore<'a>(&'a self, letter: &'a DeadLetter) -> BoxFuture<'a, BusResult<String>>;

    /// The group's discard log as the bus keeps it, oldest first.
    fn discarded<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<Vec<Discarded>>>;

    fn stats<'a>(&'a self, stream: &'a str, group: &'a str) -> BoxFuture<'a, BusResult<GroupStats>>;

    /// The groups of a stream.
    fn groups<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Vec<String>>>;

    /// Drops entries every group has acknowledged, never one still pending or undelivered;
    /// returns how many were dropped.
    fn trim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<u64>>;

    /// The stream's epoch: a random id the bus keeps beside the stream and makes anew when it
    /// finds none. A different epoch than before means the bus lost the stream with its groups
    /// and entries (Redis restarted empty, a failover to an empty replica, `bus.db` deleted):
    /// the relay then publishes again what the bus may have lost ([`relay::recover`]).
    fn epoch<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<String>>;

    /// When the oldest entry some group may still need was added, by the bus's clock: a
    /// group's oldest pending entry, or else the last one it was given (what trimming keeps).
    /// Whatever was published before it has been handled by every group. `None` when no group
    /// reads the stream.
    fn needed_since<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, BusResult<Option<OffsetDateTime>>>;
}
