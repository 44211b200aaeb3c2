//! The store's contract, run against every backend: what a service may rely on whether its
//! database is SQLite or PostgreSQL. The test keeps a tiny store of its own (`sql/`), mounted
//! per backend as every service's store is.

use medcov_config::ServiceName;
use medcov_store::keyed::{self, Answer, Keyed};
use medcov_store::{Backend, Database, Migrations, OpenError, PoolOptions, StoreError, Tx, dispatch, outbox};
use medcov_testkit::{TestBackend, TestEnv};
use sqlx::migrate::Migrator;
use uuid::Uuid;

static POSTGRES: Migrator = sqlx::migrate!("tests/contract/migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("tests/contract/migrations/sqlite");
const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

mod postgres;
mod sqlite;

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Kind {
    Plain,
    Urgent,
}

async fn open(env: &TestEnv) -> Database {
    let url = env.config.database_url(ServiceName::Hospital);
    Database::connect(ServiceName::Hospital, url, &PoolOptions::from_config(&env.config)).await.expect("connects")
}

async fn migrated(env: &TestEnv) -> Database {
    let database = open(env).await;
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("migrates");
    database
}

async fn migrations_apply_once_and_rerun_as_a_no_op(env: TestEnv) {
    let database = open(&env).await;
    let expected = match env.backend {
        TestBackend::Embedded => Backend::Sqlite,
        TestBackend::Distributed | TestBackend::RedisCluster => Backend::Postgres,
    };
    assert_eq!(database.backend(), expected);
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("first run");
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("second run is a no-op");
    database.ping().await.expect("ping");
    let visits = dispatch!(&database, value("visits")).expect("the migrated table");
    assert_eq!(visits, 0, "the seed row was inserted once");
    // The platform's tables are there too, without the service's migrations naming them.
    assert!(outbox::all(&database).await.expect("the platform's outbox").is_empty());
    database.close().await;
}

async fn a_database_owned_by_another_service_is_refused(env: TestEnv) {
    let database = migrated(&env).await;
    match database.check_owner(ServiceName::Billing).await {
        Err(OpenError::Foreign { service, owner }) => {
            assert_eq!((service, owner.as_str()), (ServiceName::Billing, "hospital"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Migrating it as billing is refused before billing's migrations touch it.
    let refused = database.migrate(ServiceName::Billing, &MIGRATIONS).await;
    assert!(matches!(refused, Err(OpenError::Foreign { .. })), "{refused:?}");
    database.close().await;
}

async fn concurrent_writers_all_land(env: TestEnv) {
    let database = migrated(&env).await;
    // Read-modify-write in a transaction, 20 at once: a lost update or a SQLITE_BUSY failure
    // would leave the counter short.
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let database = database.clone();
        writers.spawn(async move {
            let mut tx = database.begin_write().await?;
            dispatch!(&mut tx, bump("visits"))?;
            tx.commit().await
        });
    }
    while let Some(outcome) = writers.join_next().await {
        outcome.expect("task").expect("write");
    }
    assert_eq!(dispatch!(&database, value("visits")).expect("read"), 20);
    database.close().await;
}

/// SQLite has one writer: how long this process's write transactions held its lock, and how
/// many wait for it now, are measured (`db_write_lock_busy_ratio`); PostgreSQL's writers do not
/// take turns.
async fn the_write_lock_use_is_measured_on_sqlite(env: TestEnv) {
    let database = migrated(&env).await;
    if env.backend != TestBackend::Embedded {
        assert_eq!(database.writer_use(), None);
        database.close().await;
        return;
    }
    let before = database.writer_use().expect("a SQLite file's writer is measured");
    assert_eq!(before.waiting, 0);
    let mut tx = database.begin_write().await.expect("begins");
    let second = {
        let database = database.clone();
        tokio::spawn(async move {
            let mut tx = database.begin_write().await?;
            dispatch!(&mut tx, bump("visits"))?;
            tx.commit().await
        })
    };
    // The second writer waits for the first one's turn.
    let mut seen = 0;
    for _ in 0..10_000 {
        seen = database.writer_use().expect("measured").waiting;
        if seen == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seen, 1, "the second writer is counted while it waits");
    // Hold the lock a known time: what is measured is the holding.
    let held = std::time::Duration::from_millis(30);
    tokio::time::sleep(held).await;
    dispatch!(&mut tx, bump("visits")).expect("writes");
    tx.commit().await.expect("commits");
    second.await.expect("task").expect("the second write lands");
    let after = database.writer_use().expect("measured");
    assert_eq!(after.waiting, 0, "no one waits any more");
    assert!(after.held >= before.held + held, "{before:?} then {after:?}");
    assert_eq!(dispatch!(&database, value("visits")).expect("read"), 2);
    database.close().await;
}

#[derive(serde::Serialize)]
struct Labelled {
    label: String,
    hospital_id: Uuid,
}

impl outbox::DomainEvent for Labelled {
    const TYPE: &'static str = "hospital.labelled.v1";
    const AGGREGATE: &'static str = "label";
    fn aggregate_id(&self) -> Uuid {
        Uuid::nil()
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

async fn a_change_and_its_event_commit_or_vanish_together(env: TestEnv) {
    let database = migrated(&env).await;
    let actor = outbox::Actor { causation_id: Some("cause".into()), ..outbox::Actor::default() };
    let event = Labelled { label: "kept".into(), hospital_id: Uuid::now_v7() };

    let mut tx: Tx = database.begin_write().await.expect("begins");
    dispatch!(&mut tx, add_label("kept", "plain")).expect("insert");
    outbox::write(&mut tx, &actor, &event).await.expect("event");
    tx.commit().await.expect("commits");

    let mut tx = database.begin_write().await.expect("begins");
    dispatch!(&mut tx, add_label("dropped", "plain")).expect("insert");
    outbox::write(&mut tx, &actor, &Labelled { label: "dropped".into(), hospital_id: Uuid::nil() })
        .await
        .expect("event");
    drop(tx); // rolled back

    let events = outbox::unpublished(&database).await.expect("outbox");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_type, "hospital.labelled.v1");
    assert_eq!(events[0].payload["label"], "kept");
    database.close().await;
}

/// Writes gathered for a transaction run together, each with its own values, in the order
/// they were gathered; one that fails fails the run, and the transaction keeps none of them.
async fn gathered_writes_run_in_order_with_their_own_values(env: TestEnv) {
    let database = migrated(&env).await;
    let actor = outbox::Actor::default();
    let mut tx = database.begin_write().await.expect("begins");
    let mut writes = tx.writes();
    dispatch!(gather &mut writes, gather_label("first", "plain"));
    for label in ["one", "two", "three"] {
        outbox::gather(&mut writes, &actor, &Labelled { label: label.into(), hospital_id: Uuid::now_v7() });
    }
    dispatch!(gather &mut writes, gather_label("second", "urgent"));
    assert_eq!(writes.run(&mut tx).await.expect("runs"), 5, "one row each");
    tx.commit().await.expect("commits");
    assert_eq!(dispatch!(&database, label_kind("first")).expect("reads"), Kind::Plain);
    assert_eq!(dispatch!(&database, label_kind("second")).expect("reads"), Kind::Urgent);
    let labels: Vec<_> =
        outbox::all(&database).await.expect("outbox").into_iter().map(|e| e.payload["label"].clone()).collect();
    assert_eq!(labels, ["one", "two", "three"]);

    // The third write takes a name already taken: the run fails as a duplicate, and the
    // transaction, rolled back, keeps neither the two before it nor the one after.
    let mut tx = database.begin_write().await.expect("begins");
    let mut writes = tx.writes();
    dispatch!(gather &mut writes, gather_label("third", "plain"));
    outbox::gather(&mut writes, &actor, &Labelled { label: "four".into(), hospital_id: Uuid::now_v7() });
    dispatch!(gather &mut writes, gather_label("first", "urgent"));
    dispatch!(gather &mut writes, gather_label("fourth", "plain"));
    let refused = writes.run(&mut tx).await.expect_err("a second first");
    assert!(refused.is_duplicate(), "{refused:?}");
    drop(tx);
    assert!(dispatch!(&database, label_kind("third")).is_err(), "rolled back");
    assert!(dispatch!(&database, label_kind("fourth")).is_err(), "never written");
    assert_eq!(dispatch!(&database, label_kind("first")).expect("reads"), Kind::Plain, "unchanged");
    assert_eq!(outbox::all(&database).await.expect("outbox").len(), 3);
    database.close().await;
}

async fn a_duplicate_key_and_an_unknown_word_are_named(env: TestEnv) {
    let database = migrated(&env).await;
    let mut tx = database.begin_write().await.expect("begins");
    dispatch!(&mut tx, add_label("a", "urgent")).expect("insert");
    dispatch!(&mut tx, add_label("b", "bitcoin")).expect("insert");
    let duplicate = dispatch!(&mut tx, add_label("a", "plain")).expect_err("a second a");
    assert!(duplicate.is_duplicate(), "{duplicate:?}");
    drop(tx);

    let mut tx = database.begin_write().await.expect("begins");
    dispatch!(&mut tx, add_label("a", "urgent")).expect("insert");
    dispatch!(&mut tx, add_label("b", "bitcoin")).expect("insert");
    tx.commit().await.expect("commits");
    assert_eq!(dispatch!(&database, label_kind("a")).expect("reads"), Kind::Urgent);
    match dispatch!(&database, label_kind("b")) {
        Err(StoreError::Corrupt { table, column, value }) => {
            assert_eq!((table, column, value.as_str()), ("labels", "kind", "bitcoin"))
        }
        other => panic!("an unknown word must be an error naming where it is, got {other:?}"),
    }
    database.close().await;
}

async fn the_inbox_records_an_event_once(env: TestEnv) {
    let database = migrated(&env).await;
    let event = Uuid::now_v7();
    let mut tx = database.begin_write().await.expect("begins");
    assert!(medcov_store::inbox::record_once(&mut tx, "billing.invoicing", event).await.expect("first"));
    assert!(!medcov_store::inbox::record_once(&mut tx, "billing.invoicing", event).await.expect("repeat"));
    assert!(medcov_store::inbox::record_once(&mut tx, "billing.other", event).await.expect("another consumer"));
    tx.commit().await.expect("commits");
    database.close().await;
}

async fn a_closed_pool_is_an_outage_not_a_bug(env: TestEnv) {
    let database = migrated(&env).await;
    database.close().await;
    let error = database.begin_write().await.expect_err("no connection");
    assert!(error.is_unavailable(), "{error:?}");
    let error = dispatch!(&database, value("visits")).expect_err("no connection");
    assert!(error.is_unavailable(), "{error:?}");
}

/// A keyed request that commits and then reads on the pool reads in its own, still open,
/// transaction: it sees what it wrote, nobody else does yet, and its record is committed with
/// its answer, at once. One that fails after committing rolls back whole, unless an earlier
/// transaction of it was committed for real: that one carried a record without an answer, so
/// a retry never runs it twice. Only a read transaction begun after the commit
/// makes it commit early, with a record whose answer comes after (counted by the middleware).
async fn a_keyed_request_reads_what_it_committed_before_its_record(env: TestEnv) {
    let database = migrated(&env).await;
    let keyed = Keyed::new("hospital:caller:one".into(), vec![1; 32]);
    let read = keyed
        .scope(async {
            let mut tx = database.begin_write().await.expect("begins");
            dispatch!(&mut tx, bump("visits")).expect("bump");
            tx.commit().await.expect("commits in name");
            let one = dispatch!(&database, value("visits")).expect("reads");
            let streamed = dispatch!(&database, all_values()).expect("reads");
            let together = dispatch!(&database, values()).expect("reads");
            (one, streamed, together)
        })
        .await;
    assert_eq!(read, (1, vec![1], vec![1]), "the request reads what it wrote");
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 0, "nobody else sees it before the answer");
    assert!(keyed::find(&database, "hospital:caller:one").await.expect("reads").is_none());
    assert!(!keyed.answered_after_commit());
    keyed.finish(&database, Answer::Keep(b"the answer")).await.expect("commits");
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 1);
    let record = keyed::find(&database, "hospital:caller:one").await.expect("reads").expect("a record");
    assert_eq!(record.answer.as_deref(), Some(&b"the answer"[..]));

    // A request that commits and then fails rolls back whole: a retry runs again.
    let failed = Keyed::new("hospital:caller:failed".into(), vec![3; 32]);
    failed
        .scope(async {
            let mut tx = database.begin_write().await.expect("begins");
            dispatch!(&mut tx, bump("visits")).expect("bump");
            tx.commit().await.expect("commits in name");
        })
        .await;
    assert_eq!(failed.finish(&database, Answer::Failed).await.expect("ends"), keyed::Finished::Nothing);
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 1, "rolled back");
    assert!(keyed::find(&database, "hospital:caller:failed").await.expect("reads").is_none());
    // One that had committed an earlier transaction for real is told apart: a retry must not
    // run that again.
    let partial = Keyed::new("hospital:caller:partial".into(), vec![4; 32]);
    partial
        .scope(async {
            for _ in 0..2 {
                let mut tx = database.begin_write().await.expect("begins");
                dispatch!(&mut tx, bump("visits")).expect("bump");
                tx.commit().await.expect("commits in name");
            }
        })
        .await;
    assert_eq!(partial.finish(&database, Answer::Failed).await.expect("ends"), keyed::Finished::Committed);
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 3);
    let record = keyed::find(&database, "hospital:caller:partial").await.expect("reads").expect("a record");
    assert_eq!(record.answer, None);
    // Even when it fails in its second transaction, before that one commits: the first one
    // committed with a record, so a retry is told it took effect instead of running it again.
    let broken = Keyed::new("hospital:caller:broken".into(), vec![5; 32]);
    broken
        .scope(async {
            let mut tx = database.begin_write().await.expect("begins");
            dispatch!(&mut tx, bump("visits")).expect("bump");
            tx.commit().await.expect("commits in name");
            let mut tx = database.begin_write().await.expect("begins a second");
            dispatch!(&mut tx, bump("visits")).expect("bump");
            drop(tx); // fails before committing
        })
        .await;
    let record = keyed::find(&database, "hospital:caller:broken").await.expect("reads");
    assert_eq!(record.map(|r| r.answer), Some(None), "the first commit carried a record");
    assert_eq!(broken.finish(&database, Answer::Failed).await.expect("ends"), keyed::Finished::Committed);
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 4, "only the first transaction's effect");
    // Two transactions that both commit: the answer is stored by the last one, in its commit.
    let twice = Keyed::new("hospital:caller:twice".into(), vec![6; 32]);
    twice
        .scope(async {
            for _ in 0..2 {
                let mut tx = database.begin_write().await.expect("begins");
                dispatch!(&mut tx, bump("visits")).expect("bump");
                tx.commit().await.expect("commits in name");
            }
        })
        .await;
    assert!(!twice.answered_after_commit(), "its answer commits with its last transaction");
    assert_eq!(twice.finish(&database, Answer::Keep(b"twice")).await.expect("ends"), keyed::Finished::Committed);
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 6);
    let record = keyed::find(&database, "hospital:caller:twice").await.expect("reads").expect("a record");
    assert_eq!(record.answer.as_deref(), Some(&b"twice"[..]));

    // The last resort: a read transaction after the commit.
    let late = Keyed::new("hospital:caller:two".into(), vec![2; 32]);
    late.scope(async {
        let mut tx = database.begin_write().await.expect("begins");
        dispatch!(&mut tx, bump("visits")).expect("bump");
        tx.commit().await.expect("commits in name");
        let tx = database.begin_read().await.expect("begins");
        tx.rollback().await.expect("ends");
    })
    .await;
    assert!(late.answered_after_commit());
    let record = keyed::find(&database, "hospital:caller:two").await.expect("reads").expect("a record");
    assert_eq!(record.answer, None, "committed before its answer");
    late.finish(&database, Answer::Keep(b"late")).await.expect("stores the answer");
    assert_eq!(dispatch!(&database, value("visits")).expect("reads"), 7);
    let record = keyed::find(&database, "hospital:caller:two").await.expect("reads").expect("a record");
    assert_eq!(record.answer.as_deref(), Some(&b"late"[..]));
    database.close().await;
}

medcov_testkit::backend_suite!(
    a_keyed_request_reads_what_it_committed_before_its_record,
    migrations_apply_once_and_rerun_as_a_no_op,
    a_database_owned_by_another_service_is_refused,
    concurrent_writers_all_land,
    the_write_lock_use_is_measured_on_sqlite,
    a_change_and_its_event_commit_or_vanish_together,
    a_duplicate_key_and_an_unknown_word_are_named,
    gathered_writes_run_in_order_with_their_own_values,
    the_inbox_records_an_event_once,
    a_closed_pool_is_an_outage_not_a_bug,
);
