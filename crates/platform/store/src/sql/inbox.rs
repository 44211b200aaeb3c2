//! The inbox table's statements.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, Tx};
use crate::StoreError;

/// Records each of `events` as handled by `consumer`, in one statement; those recorded now
/// (not before). `events` holds no id twice.
pub async fn record_all(
    tx: &mut Tx,
    consumer: &str,
    events: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut query = sqlx::QueryBuilder::<Db>::new("INSERT INTO inbox (consumer, event_id, handled_at) ");
    query.push_values(events, |mut row, event| {
        row.push_bind(consumer.to_owned()).push_bind(*event).push_bind(now);
    });
    query.push(" ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id");
    let recorded: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut **tx).await?;
    Ok(recorded.into_iter().collect())
}
