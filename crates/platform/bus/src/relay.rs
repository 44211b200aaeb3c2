//! The outbox relay: publishes a service's outbox rows, oldest first, and marks them published.
//! The rows stay: the outbox is also the service's append-only event log.
//!
//! A row is marked only after the bus took it, so nothing is lost when the bus is away (the
//! rows wait) and a crash between publishing and marking publishes the row again (consumers
//! deduplicate by event id). On PostgreSQL several relays may run at once: each takes a batch
//! with `FOR UPDATE SKIP LOCKED`. On SQLite one relay runs per database.
//!
//! # When the bus loses what it took
//!
//! Published is not consumed: Redis restarted without persistence (or a failover to an empty
//! replica) loses the stream, its groups and the entries no group had handled yet. The outbox
//! is the source of truth, so the relay puts them back: before each batch it reads the
//! stream's epoch ([`Bus::epoch`]), which the bus makes anew when it finds none, and compares
//! it with the one recorded in the service's database (`medcov_meta`, `bus_epoch`). A new
//! epoch means a loss: [`recover`] marks unpublished again every row published since the
//! stream's last known settled point (`bus_settled_before`, which [`record_settled`] keeps
//! up to date from [`Bus::needed_since`], a minute early for clock differences), and the relay
//! publishes them again, oldest first. Consumers skip those they handled already (inboxes).
//! Of several relays seeing the change, one (the one that swaps the recorded epoch) does it.

use std::sync::Arc;
use std::time::Duration;

use medcov_store::{Database, StoreError};
use sqlx::types::Json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::tables::{postgres, sqlite};
use crate::{Bus, BusError, Envelope};

/// Where the relay records the epoch of the stream it publishes to.
const EPOCH: &str = "bus_epoch";
/// Where the settled point is recorded (RFC 3339): rows published before it were handled by
/// every consumer group.
const SETTLED: &str = "bus_settled_before";
/// How much earlier than the bus says the settled point is taken: the bus's clock (Redis's)
/// and this process's may differ.
const CLOCK_MARGIN: time::Duration = time::Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the outbox could not be read or marked: {0}")]
    Store(#[from] StoreError),
    #[error("the bus did not take an event: {0}")]
    Bus(#[from] BusError),
}

/// An outbox row: the envelope's columns ([`COLUMNS`]) and, when selected, when it was
/// published.
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub occurred_at: OffsetDateTime,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
    pub payload: Json<serde_json::Value>,
    #[sqlx(default)]
    pub published_at: Option<OffsetDateTime>,
}

/// The columns of an outbox row that make its envelope.
pub const COLUMNS: &str = "id, event_type, aggregate_type, aggregate_id, tenant_id, occurred_at, correlation_id, causation_id, traceparent, payload";

impl From<OutboxRow> for Envelope {
    fn from(row: OutboxRow) -> Envelope {
        Envelope {
            id: row.id,
            event_type: row.event_type,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            tenant_id: row.tenant_id,
            occurred_at: row.occurred_at,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            traceparent: row.traceparent,
            payload: row.payload.0,
        }
    }
}

/// The envelope of a row as it goes on the bus, and the PRODUCER span publishing it: the
/// envelope's traceparent becomes that span, so its consumers hang under it (the outbox row
/// keeps the writer's).
fn traced(row: OutboxRow, bus: &dyn Bus) -> (Envelope, tracing::Span) {
    let mut event = Envelope::from(row);
    let span = crate::trace::publish_span(&event, bus.backend());
    if let Some(own) = medcov_telemetry::of_span(&span) {
        event.traceparent = Some(own.to_string());
    }
    (event, span)
}

/// Publishes up to `batch` unpublished rows; returns how many.
pub async fn relay_once(db: &Database, bus: &dyn Bus, batch: i64) -> Result<usize, RelayError> {
    let now = OffsetDateTime::now_utc();
    match db {
        // Several relays may share the outbox: each locks its batch (skipping rows another
        // holds) and marks it in the same transaction.
        Database::Postgres(pool) => {
            let mut tx = pool.inner().begin().await.map_err(StoreError::from)?;
            let relayed = async {
                let rows = postgres::outbox::unpublished(&mut *tx, batch).await?;
                let count = rows.len();
                let (events, spans): (Vec<Envelope>, Vec<tracing::Span>) =
                    rows.into_iter().map(|r| traced(r, bus)).unzip();
                // One round trip to the bus and one statement marking the batch.
                bus.publish_all(&events).await?;
                drop(spans);
                let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
                postgres::outbox::mark_all_published(&mut *tx, &ids, now).await?;
                Ok::<_, RelayError>(count)
            }
            .await;
            match relayed {
                Ok(count) => {
                    tx.commit().await.map_err(StoreError::from)?;
                    Ok(count)
                }
                // Roll back now, not when the dropped transaction's connection is next used:
                // until then its row locks would make the next try skip the whole batch.
                Err(error) => {
                    let _ = tx.rollback().await;
                    Err(error)
                }
            }
        }
        // One relay per database. Publishing happens outside a transaction (it must not hold
        // SQLite's one write lock), all of the batch at once (one write to the SQLite bus, one
        // pipeline to Redis); what was published is then marked in one write, a single turn at
        // the writer for the batch instead of one per event. A crash (or a failure of the bus)
        // before the mark publishes the batch again, which the consumers' inboxes absorb.
        Database::Sqlite(pool) => {
            let rows = sqlite::outbox::unpublished(pool, batch).await?;
            let count = rows.len();
            if count == 0 {
                return Ok(0);
            }
            let (events, spans): (Vec<Envelope>, Vec<tracing::Span>) = rows.into_iter().map(|r| traced(r, bus)).unzip();
            bus.publish_all(&events).await?;
            drop(spans);
            let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
            let mut tx = medcov_store::sqlite::begin_write(pool.inner()).await.map_err(StoreError::from)?;
            sqlite::outbox::mark_all_published(&mut *tx, &ids, now).await?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(count)
        }
    }
}

/// Checks that the bus still holds the stream `known` names (its epoch, as last seen; `None` at
/// start). When the bus has a new epoch and the database recorded another, the bus lost its
/// data: rows published since the settled point are marked unpublished, to be relayed again.
/// Returns how many, when this call did it.
pub async fn recover(
    db: &Database,
    bus: &dyn Bus,
    stream: &str,
    known: &mut Option<String>,
) -> Result<Option<u64>, RelayError> {
    let current = bus.epoch(stream).await?;
    if known.as_deref() == Some(current.as_str()) {
        return Ok(None);
    }
    macro_rules! on {
        ($tables:ident, $tx:expr) => {{
            let mut tx = $tx;
            let recorded = $tables::outbox::meta(&mut *tx, EPOCH).await?;
            let outcome = match recorded.as_deref() {
                // The first start on this database, or another relay saw the change first.
                None => {
                    $tables::outbox::swap_meta(&mut *tx, EPOCH, None, &current).await?;
                    None
                }
                Some(recorded) if recorded == current => None,
                Some(recorded) => {
                    if $tables::outbox::swap_meta(&mut *tx, EPOCH, Some(recorded), &current).await? {
                        let settled = $tables::outbox::meta(&mut *tx, SETTLED).await?.and_then(|text| {
                            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).ok()
                        });
                        let again = $tables::outbox::unpublish_since(&mut *tx, settled).await?;
                        let since = settled.map(|t| t.to_string()).unwrap_or_else(|| "the first event".to_owned());
                        tracing::warn!(stream, events = again, %since,
                            "the bus lost its data (a new epoch: Redis restarted empty?); relaying again what it may have lost");
                        Some(again)
                    } else {
                        None
                    }
                }
            };
            tx.commit().await.map_err(StoreError::from)?;
            outcome
        }};
    }
    let outcome = match db {
        Database::Postgres(pool) => on!(postgres, pool.inner().begin().await.map_err(StoreError::from)?),
        Database::Sqlite(pool) => {
            on!(sqlite, medcov_store::sqlite::begin_write(pool.inner()).await.map_err(StoreError::from)?)
        }
    };
    *known = Some(current);
    Ok(outcome)
}

/// Records, in the service's database, the point before which the bus says every group has
/// handled the stream (less a margin for clocks): what [`recover`] relays again from. Only
/// while the bus's epoch is the one recorded, before and after asking: a bus that lost its
/// data (and whose loss the relay has not handled yet) would give a point that means nothing.
pub async fn record_settled(db: &Database, bus: &dyn Bus, stream: &str) -> Result<(), RelayError> {
    let before = bus.epoch(stream).await?;
    let Some(needed) = bus.needed_since(stream).await? else { return Ok(()) };
    let after = bus.epoch(stream).await?;
    let recorded = match db {
        Database::Postgres(pool) => postgres::outbox::meta(pool, EPOCH).await?,
        Database::Sqlite(pool) => sqlite::outbox::meta(pool, EPOCH).await?,
    };
    if before != after || recorded.as_deref() != Some(after.as_str()) {
        return Ok(());
    }
    let settled = (needed - CLOCK_MARGIN)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| RelayError::Bus(BusError::Malformed(e.to_string())))?;
    match db {
        Database::Postgres(pool) => postgres::outbox::set_meta(pool, SETTLED, &settled).await?,
        Database::Sqlite(pool) => sqlite::outbox::set_meta(pool, SETTLED, &settled).await?,
    }
    Ok(())
}

/// Relays until `shutdown`, polling every `interval` when the outbox is empty and backing off
/// (up to a second) while the bus or the database fails. Before each batch it checks that the
/// bus did not lose what it took ([`recover`]).
pub async fn run(
    service: &'static str,
    db: Database,
    bus: Arc<dyn Bus>,
    interval: Duration,
    published: metrics::Counter,
    shutdown: CancellationToken,
) {
    let mut pause = interval;
    let mut failing = false;
    let mut epoch = None;
    while !shutdown.is_cancelled() {
        let turn = async {
            recover(&db, bus.as_ref(), service, &mut epoch).await?;
            relay_once(&db, bus.as_ref(), 100).await
        };
        let wait = match turn.await {
            Ok(count) => {
                if failing {
                    tracing::info!(service, "the outbox relay works again");
                    failing = false;
                }
                published.increment(count as u64);
                pause = interval;
                if count == 100 { Duration::ZERO } else { interval }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(service, %error, "the outbox relay failed; the events wait in the outbox");
                    failing = true;
                }
                pause = (pause * 2).min(Duration::from_secs(1));
                pause
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
