//! The event log: a service's outbox keeps every event it emitted (the relay only marks rows
//! published), so it is the audit trail of its facts and the source for replay.

use medcov_store::{Database, StoreError, dispatch};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::relay::OutboxRow;
use crate::tables::{postgres, sqlite};

/// Which events to read, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub aggregate_id: Option<Uuid>,
    pub event_type: Option<&'a str>,
    /// At or after this instant.
    pub since: Option<OffsetDateTime>,
    /// After this event id (paging).
    pub after: Option<Uuid>,
    /// Only these tenants' events (an empty list matches none).
    pub tenants: Option<&'a [Uuid]>,
    pub limit: i64,
}

impl Filter<'_> {
    /// Every event, `limit` at a time.
    pub fn all(limit: i64) -> Filter<'static> {
        Filter { aggregate_id: None, event_type: None, since: None, after: None, tenants: None, limit }
    }
}

/// The events `filter` selects, oldest first, with when each was published.
pub async fn read(db: &Database, filter: &Filter<'_>) -> Result<Vec<OutboxRow>, StoreError> {
    if filter.tenants.is_some_and(<[Uuid]>::is_empty) {
        return Ok(Vec::new());
    }
    dispatch!(db, outbox::log(filter))
}
