//! Statements on `sagas` and `saga_transitions`.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, FOR_UPDATE, Pool, Tx, WRITES_IN_WITH, Writes};
use crate::saga::{COLUMNS, Change, Row, Saga, SagaState, Transition};
use medcov_store::StoreError;
use sqlx::QueryBuilder;
use sqlx::types::Json;

/// Gathers the insert of a new instance and of its first transition: one statement where
/// [`WRITES_IN_WITH`], two otherwise.
pub(crate) fn gather_insert(writes: &mut Writes, saga: &Saga) {
    const INSERT: &str = "INSERT INTO sagas (id, kind, subject_id, tenant_id, state, step, deadline_at, data, \
                          created_at, updated_at) ";
    let insert = writes.statement(if WRITES_IN_WITH { "WITH started AS (" } else { "" });
    insert.push(INSERT).push_values([saga], |mut row, saga| {
        row.push_bind(saga.id)
            .push_bind(&saga.kind)
            .push_bind(saga.subject_id)
            .push_bind(saga.tenant_id)
            .push_bind(saga.state.as_str())
            .push_bind(&saga.step)
            .push_bind(saga.deadline_at)
            .push_bind(Json(&saga.data))
            .push_bind(saga.created_at)
            .push_bind(saga.created_at);
    });
    let log = if WRITES_IN_WITH { insert.push(" RETURNING id) ") } else { writes.statement("") };
    transition(log, saga.id, (saga.created_at, None, saga.state), &saga.step, "started");
    if WRITES_IN_WITH {
        log.push(" FROM started");
    }
}

/// Writes `INSERT INTO saga_transitions … SELECT <the transition>` in `query`, for the caller
/// to end with the condition it is recorded on.
fn transition<'a>(
    query: &'a mut QueryBuilder<Db>,
    saga: Uuid,
    (at, from, to): (OffsetDateTime, Option<SagaState>, SagaState),
    step: &str,
    note: &str,
) -> &'a mut QueryBuilder<Db> {
    query.push("INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) SELECT ");
    let mut values = query.separated(", ");
    values
        .push_bind(Uuid::now_v7())
        .push_bind(saga)
        .push_bind(at)
        .push_bind(from.map(SagaState::as_str))
        .push_bind(to.as_str())
        .push_bind(step.to_owned())
        .push_bind(note.to_owned());
    query
}

/// Moves `saga` as `change` says, if it is still in the state and at the step it was read in,
/// and logs the transition if it moved: in one round trip (see [`gather_apply`]). Returns
/// whether it moved.
pub(crate) async fn apply(tx: &mut Tx, saga: &Saga, change: &Change<'_>) -> Result<bool, StoreError> {
    let mut writes = Writes::default();
    gather_apply(&mut writes, saga, change);
    Ok(writes.run(tx).await? > 0)
}

/// Gathers [`apply`]'s statements: the transition is chained to the update's row in a `WITH`
/// where [`WRITES_IN_WITH`], and otherwise (SQLite) is a second statement that inserts only
/// when the update changed a row (`changes()`). Returns the rows they change when the saga
/// moves (none when it does not).
pub(crate) fn gather_apply(writes: &mut Writes, saga: &Saga, change: &Change<'_>) -> u64 {
    let update = writes.statement(if WRITES_IN_WITH { "WITH moved AS (" } else { "" });
    update.push("UPDATE sagas SET state = ").push_bind(change.to.as_str());
    update.push(", step = ").push_bind(change.step.to_owned());
    update.push(", deadline_at = ").push_bind(change.deadline);
    update.push(", data = ").push_bind(Json(change.data.unwrap_or(&saga.data)));
    update.push(", updated_at = ").push_bind(change.at);
    update.push(" WHERE id = ").push_bind(saga.id);
    update.push(" AND state = ").push_bind(saga.state.as_str());
    update.push(" AND step = ").push_bind(saga.step.clone());
    let log = if WRITES_IN_WITH { update.push(" RETURNING id) ") } else { writes.statement("") };
    transition(log, saga.id, (change.at, Some(saga.state), change.to), change.step, change.note);
    log.push(if WRITES_IN_WITH { " FROM moved" } else { " WHERE changes() = 1" });
    if WRITES_IN_WITH { 1 } else { 2 }
}

/// The instances of `ids` (not empty) that exist, in id order, locked until the transaction
/// ends so that nothing else moves them meanwhile (on SQLite the write transaction holds the
/// whole database already).
pub(crate) async fn by_ids_locked(tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<Saga>, StoreError> {
    let mut query = QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM sagas WHERE id IN ("));
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(format!(") ORDER BY id{FOR_UPDATE}"));
    let rows: Vec<Row> = query.build_query_as().fetch_all(&mut **tx).await?;
    rows.into_iter().map(Saga::try_from).collect()
}

pub(crate) async fn by_id_in(tx: &mut Tx, id: Uuid) -> Result<Option<Saga>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Saga::try_from).transpose()
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Saga>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Saga::try_from).transpose()
}

pub(crate) async fn by_subject(pool: &Pool, kind: &str, subject: Uuid) -> Result<Option<Saga>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE kind = $1 AND subject_id = $2");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(kind).bind(subject).fetch_optional(pool).await?;
    row.map(Saga::try_from).transpose()
}

pub(crate) async fn transitions(pool: &Pool, id: Uuid) -> Result<Vec<Transition>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT at, from_state, to_state, step, note FROM saga_transitions WHERE saga_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

pub(crate) async fn list(
    pool: &Pool,
    state: Option<SagaState>,
    tenants: Option<&[Uuid]>,
    (limit, offset): (i64, i64),
) -> Result<Vec<Saga>, StoreError> {
    let mut query = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM sagas WHERE 1 = 1"));
    if let Some(state) = state {
        query.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(tenants) = tenants {
        query.push(" AND tenant_id IN (");
        let mut list = query.separated(", ");
        for tenant in tenants {
            list.push_bind(*tenant);
        }
        query.push(")");
    }
    query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Saga::try_from).collect()
}

pub(crate) async fn due(pool: &Pool, now: OffsetDateTime, limit: i64) -> Result<Vec<Saga>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sagas WHERE state IN ('running', 'compensating') AND deadline_at IS NOT NULL \
         AND deadline_at <= $1 ORDER BY deadline_at LIMIT $2"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(pool).await?;
    rows.into_iter().map(Saga::try_from).collect()
}

pub(crate) async fn counts(pool: &Pool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as("SELECT state, COUNT(*) FROM sagas GROUP BY state").fetch_all(pool).await?)
}
