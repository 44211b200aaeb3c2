//! Statements on `sagas` and `saga_transitions`.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx, WRITES_IN_WITH};
use crate::saga::{COLUMNS, Change, Row, Saga, SagaState, Transition};
use medcov_store::StoreError;
use sqlx::types::Json;

/// Inserts a new instance and its first transition (in one statement where
/// [`WRITES_IN_WITH`]).
pub(crate) async fn insert(tx: &mut Tx, saga: &Saga) -> Result<(), StoreError> {
    const INSERT: &str = "INSERT INTO sagas (id, kind, subject_id, tenant_id, state, step, deadline_at, data, \
                          created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
    let sql = if WRITES_IN_WITH {
        format!(
            "WITH started AS ({INSERT} RETURNING id) \
             INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) \
             SELECT $10, id, $9, NULL, $5, $6, 'started' FROM started"
        )
    } else {
        INSERT.to_owned()
    };
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(saga.id)
        .bind(&saga.kind)
        .bind(saga.subject_id)
        .bind(saga.tenant_id)
        .bind(saga.state.as_str())
        .bind(&saga.step)
        .bind(saga.deadline_at)
        .bind(Json(&saga.data))
        .bind(saga.created_at);
    if WRITES_IN_WITH {
        query.bind(Uuid::now_v7()).execute(&mut **tx).await?;
        return Ok(());
    }
    query.execute(&mut **tx).await?;
    log(tx, saga.id, saga.created_at, None, saga.state, &saga.step, "started").await
}

async fn log(
    tx: &mut Tx,
    saga: Uuid,
    at: OffsetDateTime,
    from: Option<SagaState>,
    to: SagaState,
    step: &str,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(saga)
    .bind(at)
    .bind(from.map(SagaState::as_str))
    .bind(to.as_str())
    .bind(step)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves `saga` as `change` says, if it is still in the state and at the step it was read in;
/// logs the transition. Returns whether it moved.
pub(crate) async fn apply(tx: &mut Tx, saga: &Saga, change: &Change<'_>) -> Result<bool, StoreError> {
    const UPDATE: &str = "UPDATE sagas SET state = $1, step = $2, deadline_at = $3, data = $4, updated_at = $5 \
                          WHERE id = $6 AND state = $7 AND step = $8";
    let sql = if WRITES_IN_WITH {
        // The transition is recorded only if the saga moved: one row inserted, or none.
        format!(
            "WITH moved AS ({UPDATE} RETURNING id) \
             INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) \
             SELECT $9, id, $5, $7, $1, $2, $10 FROM moved"
        )
    } else {
        UPDATE.to_owned()
    };
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(change.to.as_str())
        .bind(change.step)
        .bind(change.deadline)
        .bind(Json(change.data.unwrap_or(&saga.data)))
        .bind(change.at)
        .bind(saga.id)
        .bind(saga.state.as_str())
        .bind(&saga.step);
    if WRITES_IN_WITH {
        let done = query.bind(Uuid::now_v7()).bind(change.note).execute(&mut **tx).await?;
        return Ok(done.rows_affected() == 1);
    }
    if query.execute(&mut **tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    log(tx, saga.id, change.at, Some(saga.state), change.to, change.step, change.note).await?;
    Ok(true)
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
