//! The inbox: a consumer records each event it handled (the platform's `inbox` table) with
//! [`record_once`] in the same transaction as its effect, and does nothing when the event was
//! already recorded, so a repeated delivery has no second effect.

pub use medcov_store::inbox::record_once;

/// Legacy form of [`record_once`] for stores not yet moved to [`medcov_store::Tx`]: records
/// `$event_id` as handled by `$consumer` inside the backend transaction `$tx`. Evaluates to
/// `Ok(true)` the first time and `Ok(false)` for a repeat.
#[doc(hidden)]
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
