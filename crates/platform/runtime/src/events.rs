//! What every service with an outbox serves about its events, under `/events`:
//!
//! - `GET /events`: its event log (the outbox, which keeps every event it emitted), by
//!   aggregate, type and time, for administrators and auditors within their tenant scope;
//! - operations on its stream, for platform administrators: the consumer groups with their
//!   pending, lag and dead-letter counts; the dead letters of a group, to retry or discard;
//!   replaying the log from a time (consumers skip what they already handled).
//!
//! The same operations are on the command line: `medcov events --help`.

use std::sync::Arc;

use axum::extract::State;
use medcov_bus::Bus;
use medcov_bus::relay::OutboxRow;
use medcov_http::{ApiError, FieldError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Role, Scope};
use medcov_store::Database;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

#[derive(Clone)]
struct EventsState {
    stream: &'static str,
    /// The groups the services read this stream with (declared in their specs).
    readers: Vec<&'static str>,
    db: Database,
    bus: Arc<dyn Bus>,
}

pub fn router(stream: &'static str, readers: Vec<&'static str>, db: Database, bus: Arc<dyn Bus>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(event_log))
        .routes(routes!(consumers))
        .routes(routes!(dead_letters))
        .routes(routes!(retry))
        .routes(routes!(discard))
        .routes(routes!(replay))
        .with_state(EventsState { stream, readers, db, bus })
}

/// Who reads the event log.
pub struct LogReaders;
impl Policy for LogReaders {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}

/// Who operates the bus.
pub struct Operators;
impl Policy for Operators {
    const ROLES: &'static [Role] = &[Role::Admin];
    const PLATFORM_ONLY: bool = true;
}

/// An event of the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoggedEvent {
    pub id: Uuid,
    /// `<service>.<event>.v<version>`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub tenant_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When the relay handed it to the bus; absent while it waits.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<OffsetDateTime>,
}

fn logged(row: OutboxRow) -> LoggedEvent {
    LoggedEvent {
        id: row.id,
        event_type: row.event_type,
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        tenant_id: row.tenant_id,
        occurred_at: row.occurred_at,
        correlation_id: row.correlation_id,
        causation_id: row.causation_id,
        payload: row.payload.0,
        published_at: row.published_at,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    aggregate_id: Option<Uuid>,
    /// An event type, such as `hospital.patient_registered.v1`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Events at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Events after this event id (the `paging.next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many, oldest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The service's event log, oldest first. Tenant staff see their tenant's events only.
#[utoipa::path(get, path = "/events", tag = "events", params(LogQuery),
    responses((status = 200, body = Page<LoggedEvent>), (status = 422, body = medcov_http::Problem)))]
async fn event_log(
    State(state): State<EventsState>,
    Authorized(principal, _): Authorized<LogReaders>,
    Query(query): Query<LogQuery>,
) -> Result<Json<Page<LoggedEvent>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError::new("limit", "must be between 1 and 1000")]));
    }
    let tenants: Option<Vec<Uuid>> = match &principal.scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { insurer } => Some(vec![*insurer]),
        Scope::Own => Some(Vec::new()),
    };
    let filter = medcov_bus::log::Filter {
        aggregate_id: query.aggregate_id,
        event_type: query.event_type.as_deref(),
        since: query.since,
        after: query.after,
        tenants: tenants.as_deref(),
        limit: limit + 1,
    };
    let rows = medcov_bus::log::read(&state.db, &filter).await?;
    Ok(Json(Page::after(rows, limit, query.after, |row| row.id).map(logged)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerGroup {
    pub stream: String,
    pub group: String,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered.
    pub lag: u64,
    /// Waiting for an operator.
    pub dead_letters: u64,
    /// Whether the bus has the group. A group a service reads the stream with is listed even
    /// when the bus has lost it (Redis restarted empty): `false` until its consumer creates it
    /// again, within seconds while that service runs.
    pub exists: bool,
}

/// Every group of `stream`: those the bus has and those the services read it with, by name.
pub async fn groups_of(
    bus: &dyn Bus,
    stream: &str,
    readers: &[&str],
) -> Result<Vec<ConsumerGroup>, medcov_bus::BusError> {
    let existing = bus.groups(stream).await?;
    let mut names: Vec<String> = existing.iter().cloned().chain(readers.iter().map(|r| r.to_string())).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for group in names {
        let exists = existing.contains(&group);
        let stats = if exists { bus.stats(stream, &group).await? } else { medcov_bus::GroupStats::default() };
        out.push(ConsumerGroup {
            stream: stream.to_owned(),
            group,
            pending: stats.pending,
            lag: stats.lag,
            dead_letters: stats.dead,
            exists,
        });
    }
    Ok(out)
}

fn bus_error(e: medcov_bus::BusError) -> ApiError {
    match e {
        medcov_bus::BusError::NoSuchDeadLetter(id) => ApiError::NotFound(format!("no dead letter {id}")),
        other => ApiError::Unavailable(format!("the event bus: {other}")),
    }
}

/// The consumer groups reading this service's stream: those the bus has, and those the
/// services read it with even while the bus has lost them (`exists: false`).
#[utoipa::path(get, path = "/events/consumers", tag = "events",
    responses((status = 200, body = Page<ConsumerGroup>), (status = 503, body = medcov_http::Problem)))]
async fn consumers(
    State(state): State<EventsState>,
    _admin: Authorized<Operators>,
) -> Result<Json<Page<ConsumerGroup>>, ApiError> {
    Ok(Json(Page::whole(groups_of(state.bus.as_ref(), state.stream, &state.readers).await.map_err(bus_error)?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// The consumer group, such as `billing`.
    group: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub group: String,
    /// Its entry id in the stream when it died.
    pub entry: String,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: Uuid,
    /// The handler's last error.
    pub error: String,
    pub deliveries: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// The dead letters of a consumer group on this service's stream, oldest first.
#[utoipa::path(get, path = "/events/dead-letters", tag = "events", params(GroupQuery),
    responses((status = 200, body = Page<DeadLetterView>), (status = 503, body = medcov_http::Problem)))]
async fn dead_letters(
    State(state): State<EventsState>,
    _admin: Authorized<Operators>,
    Query(query): Query<GroupQuery>,
) -> Result<Json<Page<DeadLetterView>>, ApiError> {
    let letters = state.bus.dead_letters(state.stream, &query.group).await.map_err(bus_error)?;
    Ok(Json(Page::whole(
        letters
            .into_iter()
            .map(|d| DeadLetterView {
                id: d.id,
                group: d.group,
                entry: d.entry,
                event_id: d.envelope.id,
                event_type: d.envelope.event_type,
                aggregate_id: d.envelope.aggregate_id,
                error: d.error,
                deliveries: d.deliveries,
                at: d.at,
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"group": "billing"}))]
pub struct RetryRequest {
    pub group: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// The event's new entry in the stream.
    pub entry: String,
}

/// Put a dead letter back on the stream, once its cause is fixed.
#[utoipa::path(post, path = "/events/dead-letters/{id}/retry", tag = "events", request_body = RetryRequest,
    responses((status = 200, body = Retried), (status = 404, body = medcov_http::Problem), (status = 503, body = medcov_http::Problem)))]
async fn retry(
    State(state): State<EventsState>,
    _admin: Authorized<Operators>,
    Path(id): Path<String>,
    Json(input): Json<RetryRequest>,
) -> Result<Json<Retried>, ApiError> {
    let entry = state.bus.retry(state.stream, &input.group, &id).await.map_err(bus_error)?;
    tracing::info!(stream = state.stream, group = %input.group, dead_letter = %id, "dead letter retried");
    Ok(Json(Retried { entry }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"group": "billing", "reason": "test data from the pilot"}))]
pub struct DiscardRequest {
    pub group: String,
    pub reason: String,
}

/// Drop a dead letter for good; the reason is kept in the discard log.
#[utoipa::path(post, path = "/events/dead-letters/{id}/discard", tag = "events", request_body = DiscardRequest,
    responses((status = 204), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn discard(
    State(state): State<EventsState>,
    _admin: Authorized<Operators>,
    Path(id): Path<String>,
    Json(input): Json<DiscardRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    if input.reason.trim().is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new("reason", "must say why")]));
    }
    state.bus.discard(state.stream, &input.group, &id, input.reason.trim()).await.map_err(bus_error)?;
    tracing::info!(stream = state.stream, group = %input.group, dead_letter = %id, "dead letter discarded");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2026-11-01T00:00:00Z"}))]
pub struct ReplayRequest {
    /// Replay events that occurred at or after this instant.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    /// Only this event type.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub republished: usize,
}

/// Publish the log again from a time: every consumer group sees those events once more and
/// skips the ones it already handled (its inbox), so a group that lost its effects, or a new
/// one, catches up.
#[utoipa::path(post, path = "/events/replay", tag = "events", request_body = ReplayRequest,
    responses((status = 200, body = Replayed), (status = 503, body = medcov_http::Problem)))]
async fn replay(
    State(state): State<EventsState>,
    _admin: Authorized<Operators>,
    Json(input): Json<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    let republished = replay_log(&state.db, state.bus.as_ref(), input.since, input.event_type.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("replay stopped: {e}")))?;
    tracing::info!(stream = state.stream, republished, "event log replayed");
    Ok(Json(Replayed { republished }))
}

/// Publishes the log's events from `since` again, oldest first, in pages.
pub async fn replay_log(
    db: &Database,
    bus: &dyn Bus,
    since: OffsetDateTime,
    event_type: Option<&str>,
) -> Result<usize, anyhow::Error> {
    let mut after = None;
    let mut count = 0;
    loop {
        let filter =
            medcov_bus::log::Filter { since: Some(since), event_type, after, ..medcov_bus::log::Filter::all(500) };
        let rows = medcov_bus::log::read(db, &filter).await?;
        let Some(last) = rows.last() else { return Ok(count) };
        after = Some(last.id);
        for row in rows {
            bus.publish(&medcov_bus::Envelope::from(row)).await?;
            count += 1;
        }
    }
}
