//! The outbox relay: publishes a service's outbox rows, oldest first, and marks them published.
//! The rows stay: the outbox is also the service's append-only event log.
//!
//! A row is marked only after the bus took it, so nothing is lost when the bus is away (the
//! rows wait) and a crash between publishing and marking publishes the row again (consumers
//! deduplicate by event id). On PostgreSQL several relays may run at once: each takes a batch
//! with `FOR UPDATE SKIP LOCKED`. On SQLite one relay runs per database.

use std::sync::Arc;
use std::time::Duration;

use medcov_store::{Database, StoreError};
use sqlx::types::Json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::tables::{postgres, sqlite};
use crate::{Bus, BusError, Envelope};

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
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let relayed = async {
                let rows = postgres::outbox::unpublished(&mut *tx, batch).await?;
                let count = rows.len();
                for row in rows {
                    let (event, span) = traced(row, bus);
                    async {
                        bus.publish(&event).await?;
                        postgres::outbox::mark_published(&mut *tx, event.id, now).await?;
                        Ok::<_, RelayError>(())
                    }
                    .instrument(span)
                    .await?;
                }
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
        // One relay per database, outside a transaction: publishing must not hold SQLite's one
        // write lock. Rows are marked one by one, so a failure later in the batch republishes
        // nothing before it.
        Database::Sqlite(pool) => {
            let rows = sqlite::outbox::unpublished(pool, batch).await?;
            let count = rows.len();
            for row in rows {
                let (event, span) = traced(row, bus);
                async {
                    bus.publish(&event).await?;
                    sqlite::outbox::mark_published(pool, event.id, now).await?;
                    Ok::<_, RelayError>(())
                }
                .instrument(span)
                .await?;
            }
            Ok(count)
        }
    }
}

/// Relays until `shutdown`, polling every `interval` when the outbox is empty and backing off
/// while the bus or the database fails.
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
    while !shutdown.is_cancelled() {
        let wait = match relay_once(&db, bus.as_ref(), 100).await {
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
                pause = (pause * 2).min(Duration::from_secs(5));
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
