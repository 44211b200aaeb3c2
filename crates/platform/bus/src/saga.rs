//! Sagas: long-running business flows across services, with their state persisted in the
//! orchestrating service's database (tables `sagas` and `saga_transitions`, in its
//! migrations), so a restart resumes them where they were.
//!
//! An instance belongs to one kind of flow and one subject (a policy, an invoice), at most one
//! per pair. It is `running` at a named step, with an optional deadline; it ends `completed`,
//! or, after a failure or a missed deadline, goes through `compensating` to `compensated`.
//! Every transition is checked against the state it leaves (two deliveries of one reply cannot
//! both move it) and logged. Deadlines are durable timers: [`due`] lists the running instances
//! whose deadline has passed, for the orchestrator's ticker to act on.

use medcov_store::{Database, WritePool, on_pool};
use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    Running,
    Compensating,
    Completed,
    Compensated,
}

impl SagaState {
    pub const ALL: [SagaState; 4] =
        [SagaState::Running, SagaState::Compensating, SagaState::Completed, SagaState::Compensated];

    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
        }
    }

    pub fn parse(s: &str) -> Option<SagaState> {
        SagaState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One saga instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Saga {
    pub id: Uuid,
    pub kind: String,
    pub subject_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub state: SagaState,
    pub step: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline_at: Option<OffsetDateTime>,
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One logged transition.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Transition {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub from_state: Option<String>,
    pub to_state: String,
    pub step: String,
    pub note: Option<String>,
}

#[doc(hidden)]
pub type Row = (
    Uuid,
    String,
    Uuid,
    Option<Uuid>,
    String,
    String,
    Option<OffsetDateTime>,
    Json<serde_json::Value>,
    OffsetDateTime,
    OffsetDateTime,
);

#[doc(hidden)]
pub const COLUMNS: &str = "id, kind, subject_id, tenant_id, state, step, deadline_at, data, created_at, updated_at";

#[doc(hidden)]
pub fn saga((id, kind, subject_id, tenant_id, state, step, deadline_at, data, created_at, updated_at): Row) -> Saga {
    Saga {
        id,
        kind,
        subject_id,
        tenant_id,
        state: SagaState::parse(&state).unwrap_or(SagaState::Running),
        step,
        deadline_at,
        data: data.0,
        created_at,
        updated_at,
    }
}

/// Starts an instance inside the caller's transaction `$tx` (so the flow begins with the
/// change that starts it), `running` at `$step`. Evaluates to the statement's result.
#[macro_export]
macro_rules! start_saga {
    ($tx:expr, $kind:expr, $subject:expr, $tenant:expr, $step:expr, $deadline:expr, $data:expr) => {{
        let id = $crate::__sqlx::types::Uuid::now_v7();
        let span = $crate::trace::saga_span(None, $kind, id, "running", $step, None, None);
        $crate::trace::Instrument::instrument(async {
            let now = $crate::__time::OffsetDateTime::now_utc();
            $crate::__sqlx::query(
                "INSERT INTO sagas (id, kind, subject_id, tenant_id, state, step, deadline_at, data, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $8)",
            )
            .bind(id)
            .bind($kind)
            .bind($subject)
            .bind($tenant)
            .bind($step)
            .bind($deadline)
            .bind($crate::__sqlx::types::Json(&$data))
            .bind(now)
            .execute(&mut *$tx)
            .await?;
            $crate::__sqlx::query(
                "INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) \
                 VALUES ($1, $2, $3, NULL, 'running', $4, 'started')",
            )
            .bind($crate::__sqlx::types::Uuid::now_v7())
            .bind(id)
            .bind(now)
            .bind($step)
            .execute(&mut *$tx)
            .await
            .map(|_| id)
        }, span)
        .await
    }};
}

/// The instance of `kind` for `subject`, if any.
/// A saga read inside the caller's transaction `$tx`; evaluates to `Result<Option<Saga>>`.
#[macro_export]
macro_rules! saga_get_in {
    ($tx:expr, $id:expr) => {
        async {
            let sql = format!("SELECT {} FROM sagas WHERE id = $1", $crate::saga::COLUMNS);
            let row: Option<$crate::saga::Row> = $crate::__sqlx::query_as($crate::__sqlx::AssertSqlSafe(sql))
                .bind($id)
                .fetch_optional(&mut *$tx)
                .await?;
            Ok::<_, $crate::__sqlx::Error>(row.map($crate::saga::saga))
        }
        .await
    };
}
pub use saga_get_in as get_in;

pub async fn find(db: &Database, kind: &str, subject: Uuid) -> Result<Option<Saga>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE kind = $1 AND subject_id = $2");
    let row: Option<Row> = on_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(kind)
        .bind(subject)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(saga))
}

/// An instance and its transitions, oldest first.
pub async fn get(db: &Database, id: Uuid) -> Result<Option<(Saga, Vec<Transition>)>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE id = $1");
    let row: Option<Row> =
        on_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
    let Some(row) = row else { return Ok(None) };
    let log: Vec<Transition> = on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT at, from_state, to_state, step, note FROM saga_transitions WHERE saga_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
    })?;
    Ok(Some((saga(row), log)))
}

/// Instances in a state (all with `None`), newest first; of some tenants when given.
pub async fn list(
    db: &Database,
    state: Option<SagaState>,
    tenants: Option<&[Uuid]>,
    limit: i64,
) -> Result<Vec<Saga>, sqlx::Error> {
    let mut sql = format!("SELECT {COLUMNS} FROM sagas WHERE ($1 IS NULL OR state = $1)");
    if let Some(tenants) = tenants {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = (0..tenants.len()).map(|i| format!("${}", i + 3)).collect();
        sql.push_str(&format!(" AND tenant_id IN ({})", ids.join(", ")));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $2");
    let rows: Vec<Row> = on_pool!(db, |pool| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(state.map(SagaState::as_str)).bind(limit);
        for t in tenants.unwrap_or_default() {
            q = q.bind(*t);
        }
        q.fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(saga).collect())
}

/// Moves an instance from `from` to `to` at `step` (clearing or setting its deadline), if it is
/// still in `from`; returns whether it moved. The transition is logged with it.
pub async fn transition(
    db: &Database,
    id: Uuid,
    from: SagaState,
    to: SagaState,
    step: &str,
    deadline: Option<OffsetDateTime>,
    note: &str,
) -> Result<bool, sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let span = crate::trace::transition_span(id, from.as_str(), to.as_str(), step);
    tracing::Instrument::instrument(transition_in(db, id, from, to, step, deadline, note, now), span).await
}

#[allow(clippy::too_many_arguments)]
async fn transition_in(
    db: &Database,
    id: Uuid,
    from: SagaState,
    to: SagaState,
    step: &str,
    deadline: Option<OffsetDateTime>,
    note: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    on_pool!(db, |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sagas SET state = $1, step = $2, deadline_at = $3, updated_at = $4 WHERE id = $5 AND state = $6",
        )
        .bind(to.as_str())
        .bind(step)
        .bind(deadline)
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO saga_transitions (id, saga_id, at, from_state, to_state, step, note) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(now)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(step)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
    .await
    })
}

/// Running (or compensating) instances whose deadline has passed, oldest deadline first.
pub async fn due(db: &Database, now: OffsetDateTime, limit: i64) -> Result<Vec<Saga>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sagas WHERE state IN ('running', 'compensating') AND deadline_at IS NOT NULL \
         AND deadline_at <= $1 ORDER BY deadline_at LIMIT $2"
    );
    let rows: Vec<Row> =
        on_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(saga).collect())
}

/// How many instances are in each state.
pub async fn counts(db: &Database) -> Result<Vec<(SagaState, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = on_pool!(db, |pool| {
        sqlx::query_as("SELECT state, COUNT(*) FROM sagas GROUP BY state").fetch_all(pool).await
    })?;
    Ok(SagaState::ALL
        .into_iter()
        .map(|state| (state, rows.iter().find(|(s, _)| s == state.as_str()).map(|(_, n)| *n).unwrap_or(0)))
        .collect())
}
