//! The transactional outbox: a domain event is written in the same transaction as the change
//! that causes it, so neither exists without the other. Each service has an `outbox` table of
//! the same shape (see any service's migrations); a relay publishes the rows.

use sqlx::types::Uuid;

/// A domain event for the outbox.
pub struct Event {
    /// `<service>.<event>.v<version>`, such as `hospital.patient_registered.v1`.
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    /// The hospital or insurer the event belongs to.
    pub tenant_id: Uuid,
    pub payload: serde_json::Value,
}

/// Who is acting, for history, audit and the events' correlation.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

/// Writes `$event` ([`Event`]) to the outbox inside the open transaction `$tx`, correlated with
/// `$actor`'s ([`Actor`]) request and trace. Evaluates to the statement's result.
#[macro_export]
macro_rules! write_outbox {
    ($tx:expr, $actor:expr, $event:expr) => {{
        let (event, actor): (&$crate::outbox::Event, &$crate::outbox::Actor) = (&$event, &$actor);
        $crate::__sqlx::query(
            "INSERT INTO outbox (id, event_type, aggregate_type, aggregate_id, tenant_id, occurred_at, correlation_id, \
             causation_id, traceparent, payload, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, NULL)",
        )
        .bind($crate::__sqlx::types::Uuid::now_v7())
        .bind(event.event_type)
        .bind(event.aggregate_type)
        .bind(event.aggregate_id)
        .bind(event.tenant_id)
        .bind($crate::__sqlx::types::time::OffsetDateTime::now_utc())
        .bind(&actor.request_id)
        .bind(&actor.traceparent)
        .bind($crate::__sqlx::types::Json(&event.payload))
        .execute(&mut *$tx)
        .await
    }};
}

/// A service's unpublished outbox events, oldest first: (type, aggregate id, payload).
pub async fn unpublished(db: &crate::Database) -> Result<Vec<(String, Uuid, serde_json::Value)>, sqlx::Error> {
    events(db, true).await
}

/// Every event a service emitted (its event log), oldest first: (type, aggregate id, payload).
pub async fn all(db: &crate::Database) -> Result<Vec<(String, Uuid, serde_json::Value)>, sqlx::Error> {
    events(db, false).await
}

async fn events(
    db: &crate::Database,
    unpublished: bool,
) -> Result<Vec<(String, Uuid, serde_json::Value)>, sqlx::Error> {
    let rows: Vec<(String, Uuid, sqlx::types::Json<serde_json::Value>)> = crate::on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT event_type, aggregate_id, payload FROM outbox WHERE ($1 = FALSE OR published_at IS NULL) ORDER BY id",
        )
        .bind(unpublished)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(|(t, id, payload)| (t, id, payload.0)).collect())
}
