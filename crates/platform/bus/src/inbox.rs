//! The inbox: each consuming service has an `inbox` table (`consumer`, `event_id`,
//! `handled_at`, primary key on the first two). A handler records the event with
//! [`record_once!`](crate::record_once) in the same transaction as its effect and does nothing
//! when the event was already recorded, so a repeated delivery has no second effect.

/// Records `$event_id` as handled by `$consumer` inside the open transaction `$tx`. Evaluates
/// to `Ok(true)` the first time and `Ok(false)` for a repeat (then the handler must skip its
/// effect and commit nothing else).
#[macro_export]
macro_rules! record_once {
    ($tx:expr, $consumer:expr, $event_id:expr) => {
        $crate::__sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind($consumer)
        .bind($event_id)
        .bind($crate::__time::OffsetDateTime::now_utc())
        .execute(&mut *$tx)
        .await
        .map(|done| done.rows_affected() == 1)
    };
}
