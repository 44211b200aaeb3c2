//! Sagas: long-running business flows across services, with their state persisted in the
//! orchestrating service's database (the platform's tables `sagas` and `saga_transitions`,
//! in every service's schema), so a restart resumes them where they were.
//!
//! An instance belongs to one kind of flow and one subject (a policy, an invoice), at most one
//! per pair. It is `running` at a named step, with an optional deadline; it ends `completed`,
//! or, after a failure or a missed deadline, goes through `compensating` to `compensated`.
//! Every transition is checked against the state it leaves (two deliveries of one reply cannot
//! both move it) and logged. Deadlines are durable timers: [`due`] lists the running instances
//! whose deadline has passed, for the orchestrator's ticker to act on.

use medcov_domain::TextEnum;
use medcov_store::{Database, StoreError, Tx, Writes, dispatch};
use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tables::{postgres, sqlite};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::EnumString, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SagaState {
    Running,
    Compensating,
    Completed,
    Compensated,
}

impl TextEnum for SagaState {}

impl SagaState {
    pub const ALL: [SagaState; 4] =
        [SagaState::Running, SagaState::Compensating, SagaState::Completed, SagaState::Compensated];

    pub fn as_str(self) -> &'static str {
        TextEnum::as_str(self)
    }

    pub fn parse(s: &str) -> Option<SagaState> {
        TextEnum::parse(s)
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

pub(crate) type Row = (
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

pub(crate) const COLUMNS: &str =
    "id, kind, subject_id, tenant_id, state, step, deadline_at, data, created_at, updated_at";

impl TryFrom<Row> for Saga {
    type Error = StoreError;

    fn try_from(
        (id, kind, subject_id, tenant_id, state, step, deadline_at, data, created_at, updated_at): Row,
    ) -> Result<Saga, StoreError> {
        Ok(Saga {
            id,
            kind,
            subject_id,
            tenant_id,
            state: medcov_store::decode("sagas", "state", &state)?,
            step,
            deadline_at,
            data: data.0,
            created_at,
            updated_at,
        })
    }
}

/// A move of an instance: to which state and step, with which deadline, logged with `note`;
/// `data` replaces its data when given.
pub(crate) struct Change<'a> {
    pub to: SagaState,
    pub step: &'a str,
    pub deadline: Option<OffsetDateTime>,
    pub data: Option<&'a serde_json::Value>,
    pub at: OffsetDateTime,
    pub note: &'a str,
}

/// A new instance of `kind` for `subject`, `running` at `step`.
pub fn new(
    kind: &str,
    subject: Uuid,
    tenant: Option<Uuid>,
    step: &str,
    deadline: Option<OffsetDateTime>,
    data: serde_json::Value,
) -> Saga {
    let now = OffsetDateTime::now_utc();
    Saga {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        subject_id: subject,
        tenant_id: tenant,
        state: SagaState::Running,
        step: step.to_owned(),
        deadline_at: deadline,
        data,
        created_at: now,
        updated_at: now,
    }
}

/// Starts `saga` (made with [`new`]) inside the caller's transaction, so the flow begins with
/// the change that starts it. A second instance of the same kind for the same subject is a
/// [`StoreError::Duplicate`].
pub async fn start(tx: &mut Tx, saga: &Saga) -> Result<(), StoreError> {
    let mut writes = tx.writes();
    gather_start(&mut writes, saga);
    writes.run(tx).await.map(drop)
}

/// [`start`] gathered in `writes`, to run with the transaction's other writes.
pub fn gather_start(writes: &mut Writes, saga: &Saga) {
    dispatch!(gather writes, sagas::gather_insert(saga))
}

/// An instance read inside the caller's transaction.
pub async fn get_in(tx: &mut Tx, id: Uuid) -> Result<Option<Saga>, StoreError> {
    dispatch!(tx, sagas::by_id_in(id))
}

/// The instance of `kind` for `subject`, if any.
pub async fn find(db: &Database, kind: &str, subject: Uuid) -> Result<Option<Saga>, StoreError> {
    dispatch!(db, sagas::by_subject(kind, subject))
}

/// An instance and its transitions, oldest first.
pub async fn get(db: &Database, id: Uuid) -> Result<Option<(Saga, Vec<Transition>)>, StoreError> {
    let Some(saga) = dispatch!(db, sagas::by_id(id))? else { return Ok(None) };
    let log = dispatch!(db, sagas::transitions(id))?;
    Ok(Some((saga, log)))
}

/// Instances in a state (all with `None`), newest first; of some tenants when given; `limit`
/// of them after skipping `offset`.
pub async fn list(
    db: &Database,
    state: Option<SagaState>,
    tenants: Option<&[Uuid]>,
    (limit, offset): (i64, i64),
) -> Result<Vec<Saga>, StoreError> {
    if tenants.is_some_and(<[Uuid]>::is_empty) {
        return Ok(Vec::new());
    }
    dispatch!(db, sagas::list(state, tenants, (limit, offset)))
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
) -> Result<bool, StoreError> {
    let span = crate::trace::transition_span(id, from.as_str(), to.as_str(), step);
    tracing::Instrument::instrument(
        async {
            let mut tx = db.begin_write().await?;
            let Some(saga) = get_in(&mut tx, id).await?.filter(|s| s.state == from) else { return Ok(false) };
            let change = Change { to, step, deadline, data: None, at: OffsetDateTime::now_utc(), note };
            let moved = apply(&mut tx, &saga, &change).await?;
            tx.commit().await?;
            Ok(moved)
        },
        span,
    )
    .await
}

/// Applies `change` to `saga` inside `tx`, only if the saga is still in the state and at the
/// step it was read in; logs the transition. Returns whether it moved.
pub(crate) async fn apply(tx: &mut Tx, saga: &Saga, change: &Change<'_>) -> Result<bool, StoreError> {
    dispatch!(tx, sagas::apply(saga, change))
}

/// [`apply`] gathered in `writes`; the rows the writes change when the saga moves.
pub(crate) fn gather_apply(writes: &mut Writes, saga: &Saga, change: &Change<'_>) -> u64 {
    dispatch!(gather writes, sagas::gather_apply(saga, change))
}

/// The instances of `ids` that exist, locked until `tx` ends, in id order.
pub(crate) async fn get_all_locked(tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<Saga>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    dispatch!(tx, sagas::by_ids_locked(ids))
}

/// Running (or compensating) instances whose deadline has passed, oldest deadline first.
pub async fn due(db: &Database, now: OffsetDateTime, limit: i64) -> Result<Vec<Saga>, StoreError> {
    dispatch!(db, sagas::due(now, limit))
}

/// How many instances are in each state. This counts every instance ever kept, so its cost
/// grows with the table: tickers pace it with [`CountPace`].
pub async fn counts(db: &Database) -> Result<Vec<(SagaState, i64)>, StoreError> {
    let rows = dispatch!(db, sagas::counts())?;
    Ok(SagaState::ALL
        .into_iter()
        .map(|state| (state, rows.iter().find(|(s, _)| s == state.as_str()).map(|(_, n)| *n).unwrap_or(0)))
        .collect())
}

/// When a ticker takes [`counts`] again. The count reads every instance ever kept, so with a
/// long history it is slow: it runs at most once a `period`, and at most [`CountPace::SHARE`]
/// of the time (a count that took 200 ms is next taken 4 s later), so however large the table
/// grows, counting keeps one connection busy a twentieth of the time at most and the gauges
/// lag by at most twenty counts' length.
#[derive(Debug, Clone, Copy)]
pub struct CountPace {
    period: std::time::Duration,
    next: Option<std::time::Instant>,
}

impl CountPace {
    /// The largest share of time the count may take.
    pub const SHARE: u32 = 20;

    pub fn new(period: std::time::Duration) -> Self {
        Self { period, next: None }
    }

    /// Runs `count` when one is due, timing it; `None` when not.
    pub async fn count<T>(&mut self, count: impl std::future::Future<Output = T>) -> Option<T> {
        let started = std::time::Instant::now();
        if !self.due(started) {
            return None;
        }
        let counted = count.await;
        self.counted(started, std::time::Instant::now());
        Some(counted)
    }

    /// Whether to count at `now` (always the first time).
    fn due(&self, now: std::time::Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// A count started at `started` ended at `ended`: the next is due one period, or twenty
    /// counts' length, after it started, whichever is later.
    fn counted(&mut self, started: std::time::Instant, ended: std::time::Instant) {
        let took = ended.saturating_duration_since(started);
        self.next = Some(started + self.period.max(took * Self::SHARE));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::CountPace;

    #[test]
    fn a_fast_count_is_taken_every_period_and_a_slow_one_a_twentieth_of_the_time() {
        let period = Duration::from_millis(500);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pace = CountPace::new(period);
        assert!(pace.due(start), "the first count is taken at once");
        // A 5 ms count: the period sets the pace.
        pace.counted(at(0), at(5));
        assert!(!pace.due(at(499)));
        assert!(pace.due(at(500)));
        // A 200 ms count (a long history): next 20 × 200 ms = 4 s after it started.
        pace.counted(at(500), at(700));
        assert!(!pace.due(at(4_499)));
        assert!(pace.due(at(4_500)));
        // Fast again: back to the period.
        pace.counted(at(4_500), at(4_510));
        assert!(pace.due(at(5_000)));
    }

    /// A move applies once: the same move again, from the instance as it was read before the
    /// first (a reply that lost a race), changes nothing and records no transition.
    async fn a_move_from_a_state_left_already_changes_nothing(env: medcov_testkit::TestEnv) {
        use super::{Change, SagaState};
        let service = medcov_config::ServiceName::Hospital;
        let options = medcov_store::PoolOptions::from_config(&env.config);
        let db = medcov_store::Database::connect(service, env.config.database_url(service), &options).await.unwrap();
        db.migrate(service, &medcov_store::platform_migrations()).await.unwrap();
        let read = super::new("test", uuid::Uuid::now_v7(), None, "first", None, serde_json::json!({"n": 1}));
        let mut tx = db.begin_write().await.unwrap();
        super::start(&mut tx, &read).await.unwrap();
        tx.commit().await.unwrap();
        let data = serde_json::json!({"n": 2});
        let at = time::OffsetDateTime::now_utc();
        let change =
            Change { to: SagaState::Completed, step: "last", deadline: None, data: Some(&data), at, note: "done" };
        for moves in [true, false] {
            let mut tx = db.begin_write().await.unwrap();
            assert_eq!(super::apply(&mut tx, &read, &change).await.unwrap(), moves);
            tx.commit().await.unwrap();
        }
        let (saga, log) = super::get(&db, read.id).await.unwrap().expect("the saga");
        assert_eq!((saga.state, saga.step.as_str(), &saga.data), (SagaState::Completed, "last", &data));
        let moves: Vec<_> =
            log.iter().map(|t| (t.from_state.as_deref(), t.to_state.as_str(), t.step.as_str())).collect();
        assert_eq!(moves, [(None, "running", "first"), (Some("running"), "completed", "last")]);
        assert_eq!(log[1].note.as_deref(), Some("done"));
        db.close().await;
    }

    medcov_testkit::backend_suite!(a_move_from_a_state_left_already_changes_nothing);

    #[tokio::test]
    async fn a_count_not_due_is_not_run() {
        let mut pace = CountPace::new(Duration::from_secs(3600));
        assert_eq!(pace.count(async { 7 }).await, Some(7));
        assert_eq!(pace.count(async { unreachable!("counted before it was due") }).await, None::<i32>);
    }
}
