//! The store's contract, run against every backend: what a service may rely on whether its
//! database is SQLite or PostgreSQL.

use medcov_config::ServiceName;
use medcov_store::{Backend, Database, Migrations, PoolOptions, StoreError};
use medcov_testkit::{TestBackend, TestEnv};
use sqlx::migrate::Migrator;

static POSTGRES: Migrator = sqlx::migrate!("tests/contract/migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("tests/contract/migrations/sqlite");
const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

async fn open(env: &TestEnv) -> Database {
    let url = env.config.database_url(ServiceName::Hospital);
    Database::connect(ServiceName::Hospital, url, &PoolOptions::from_config(&env.config)).await.expect("connects")
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
    let visits: i64 = match &database {
        Database::Sqlite(pool) => {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits'").fetch_one(pool).await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits'").fetch_one(pool).await
        }
    }
    .expect("the migrated table");
    assert_eq!(visits, 0, "the seed row was inserted once");
    database.close().await;
}

async fn a_database_owned_by_another_service_is_refused(env: TestEnv) {
    let database = open(&env).await;
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("migrates");
    match database.check_owner(ServiceName::Billing).await {
        Err(StoreError::Foreign { service, owner }) => {
            assert_eq!((service, owner.as_str()), (ServiceName::Billing, "hospital"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    database.close().await;
}

async fn concurrent_writers_all_land(env: TestEnv) {
    let database = open(&env).await;
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("migrates");
    // Read-modify-write in a transaction, 20 at once: a lost update or a SQLITE_BUSY failure
    // would leave the counter short.
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let database = database.clone();
        writers.spawn(async move {
            match &database {
                Database::Sqlite(pool) => {
                    let mut tx = medcov_store::begin_write(pool).await?;
                    let v: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits'")
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE counters SET value = $1 WHERE name = 'visits'")
                        .bind(v + 1)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                Database::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    let v: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits' FOR UPDATE")
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE counters SET value = $1 WHERE name = 'visits'")
                        .bind(v + 1)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
            }
        });
    }
    while let Some(outcome) = writers.join_next().await {
        outcome.expect("task").expect("write");
    }
    let visits: i64 = match &database {
        Database::Sqlite(pool) => {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits'").fetch_one(pool).await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'visits'").fetch_one(pool).await
        }
    }
    .expect("read");
    assert_eq!(visits, 20);
    database.close().await;
}

medcov_testkit::backend_suite!(
    migrations_apply_once_and_rerun_as_a_no_op,
    a_database_owned_by_another_service_is_refused,
    concurrent_writers_all_land,
);
