//! The inbox: each consumer records every event (or command) it handled in the `inbox` table,
//! in the same transaction as the handling's effect, so a repeated delivery has no second
//! effect.

use uuid::Uuid;

use crate::{StoreError, Tx, dispatch, postgres, sqlite};

/// Records `event` as handled by `consumer` inside `tx`: `true` the first time, `false` for a
/// repeat (then the handler skips its effect and commits nothing else).
pub async fn record_once(tx: &mut Tx, consumer: &str, event: Uuid) -> Result<bool, StoreError> {
    Ok(dispatch!(tx, inbox::record_all(consumer, &[event]))?.contains(&event))
}

/// Events recorded at most by one statement of [`record_all`] (3 parameters each, within every
/// backend's limit).
const RECORD_ALL_MANY: usize = 1_000;

/// [`record_once`] for many events at once, in one statement per thousand: those recorded
/// now, the others being repeats. An id given twice is recorded once (and returned once).
pub async fn record_all(
    tx: &mut Tx,
    consumer: &str,
    events: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    let mut unique: Vec<Uuid> = events.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut recorded = std::collections::HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(RECORD_ALL_MANY) {
        recorded.extend(dispatch!(tx, inbox::record_all(consumer, chunk))?);
    }
    Ok(recorded)
}
