//! The inbox: each consumer records every event (or command) it handled in the `inbox` table,
//! in the same transaction as the handling's effect, so a repeated delivery has no second
//! effect.

use uuid::Uuid;

use crate::{StoreError, Tx, dispatch, postgres, sqlite};

/// Records `event` as handled by `consumer` inside `tx`: `true` the first time, `false` for a
/// repeat (then the handler skips its effect and commits nothing else).
pub async fn record_once(tx: &mut Tx, consumer: &str, event: Uuid) -> Result<bool, StoreError> {
    dispatch!(tx, inbox::record(consumer, event))
}
