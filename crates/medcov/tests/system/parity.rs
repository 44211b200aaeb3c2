//! The PostgreSQL and SQLite migrations describe one schema: for the platform's tables and
//! every service's, a fresh database of each backend is migrated, read back from its catalog
//! (PostgreSQL: `information_schema` and `pg_catalog`; SQLite: `sqlite_master` and the
//! `pragma_*` functions), and the two must have the same tables, columns, nullability,
//! primary keys, unique constraints, foreign keys and indexes (by name, with their columns),
//! whatever the type names.
//!
//! PostgreSQL's exclusion constraints have no SQLite counterpart (the SQLite stores check the
//! same rule in their write transaction) and are left out; so are CHECK constraints and
//! triggers, whose text differs by dialect. A primary key column counts as not null on both
//! sides: PostgreSQL makes it so, and no store writes a null key to SQLite.

use std::collections::{BTreeMap, BTreeSet};

use medcov_config::ServiceName;
use medcov_store::{Database, PoolOptions};
use medcov_testkit::TestEnv;
use sqlx::Row;

/// One table as both backends can describe it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Table {
    /// Column → nullable.
    columns: BTreeMap<String, bool>,
    primary_key: Vec<String>,
    /// Column lists of the unique constraints.
    unique: BTreeSet<Vec<String>>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// Indexes made by `CREATE INDEX`, by name.
    indexes: BTreeMap<String, Index>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    table: String,
    references: Vec<String>,
    on_delete: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    /// Whether it has a `WHERE` clause.
    partial: bool,
}

type Schema = BTreeMap<String, Table>;

/// Tables sqlx keeps for itself.
fn ours(table: &str) -> bool {
    !table.starts_with("_sqlx") && table != medcov_store::PLATFORM_HISTORY && !table.starts_with("sqlite_")
}

async fn postgres_schema(pool: &sqlx::PgPool, schema: &str) -> Schema {
    let mut tables = Schema::new();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("tables");
    for name in names.into_iter().filter(|n| ours(n)) {
        tables.insert(name, Table::default());
    }
    let columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, is_nullable = 'YES' FROM information_schema.columns \
         WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("columns");
    for (table, column, nullable) in columns {
        if let Some(table) = tables.get_mut(&table) {
            table.columns.insert(column, nullable);
        }
    }
    let constraints = sqlx::query(
        "SELECT t.relname::text AS table_name, con.contype::text AS kind, \
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns, \
           f.relname::text AS target, \
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS target_columns, \
           con.confdeltype::text AS on_delete \
         FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class f ON f.oid = con.confrelid \
         WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f')",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("constraints");
    for row in constraints {
        let Some(table) = tables.get_mut(&row.get::<String, _>("table_name")) else { continue };
        let columns: Vec<String> = row.get("columns");
        match row.get::<String, _>("kind").as_str() {
            "p" => table.primary_key = columns,
            "u" => {
                table.unique.insert(columns);
            }
            _ => {
                let on_delete = match row.get::<Option<String>, _>("on_delete").as_deref() {
                    Some("r") => "restrict",
                    Some("c") => "cascade",
                    Some("n") => "set null",
                    Some("d") => "set default",
                    _ => "no action",
                };
                table.foreign_keys.insert(ForeignKey {
                    columns,
                    table: row.get("target"),
                    references: row.get("target_columns"),
                    on_delete: on_delete.to_owned(),
                });
            }
        }
    }
    // Indexes that back no constraint of their own table: the ones migrations create.
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, ix.indisunique AS is_unique, \
           ix.indpred IS NOT NULL AS partial, \
           ARRAY(SELECT COALESCE(a.attname::text, '(expression)') \
                 FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(n, o) \
                 LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.n ORDER BY k.o) AS columns \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
           WHERE c.conindid = ix.indexrelid AND c.conrelid = ix.indrelid AND c.contype IN ('p', 'u', 'x'))",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("indexes");
    for row in indexes {
        let Some(table) = tables.get_mut(&row.get::<String, _>("table_name")) else { continue };
        let index = Index { columns: row.get("columns"), unique: row.get("is_unique"), partial: row.get("partial") };
        table.indexes.insert(row.get("index_name"), index);
    }
    tables
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut tables = Schema::new();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(pool)
        .await
        .expect("tables");
    for name in names.into_iter().filter(|n| ours(n)) {
        let mut table = Table::default();
        let columns: Vec<(String, bool, i64)> =
            sqlx::query_as("SELECT name, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(pool)
                .await
                .expect("columns");
        let mut key: Vec<(i64, String)> = Vec::new();
        for (column, not_null, pk) in columns {
            table.columns.insert(column.clone(), !not_null && pk == 0);
            if pk > 0 {
                key.push((pk, column));
            }
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();
        let indexes: Vec<(String, bool, String, bool)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
                .bind(&name)
                .fetch_all(pool)
                .await
                .expect("indexes");
        for (index, unique, origin, partial) in indexes {
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .expect("index columns");
            let columns: Vec<String> =
                columns.into_iter().map(|c| c.unwrap_or_else(|| "(expression)".to_owned())).collect();
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    table.unique.insert(columns);
                }
                _ => {
                    table.indexes.insert(index, Index { columns, unique, partial });
                }
            }
        }
        let keys: Vec<(i64, i64, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("foreign keys");
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for (id, _, target, from, to, on_delete) in keys {
            let key = by_id.entry(id).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: target.clone(),
                references: Vec::new(),
                on_delete: on_delete.to_lowercase(),
            });
            key.columns.push(from);
            // No column named: the target's primary key.
            key.references.push(to.unwrap_or_default());
        }
        for mut key in by_id.into_values() {
            if key.references.iter().all(String::is_empty) {
                let target: Vec<(String, i64)> =
                    sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk")
                        .bind(&key.table)
                        .fetch_all(pool)
                        .await
                        .expect("target key");
                key.references = target.into_iter().map(|(c, _)| c).collect();
            }
            table.foreign_keys.insert(key);
        }
        tables.insert(name, table);
    }
    tables
}

/// What differs between the two descriptions, one line each; empty when they agree.
fn differences(what: &str, postgres: &Schema, sqlite: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = postgres.keys().chain(sqlite.keys()).collect();
    for name in names {
        let (pg, lite) = match (postgres.get(name), sqlite.get(name)) {
            (Some(pg), Some(lite)) => (pg, lite),
            (Some(_), None) => {
                out.push(format!("{what}: table {name} is in PostgreSQL only"));
                continue;
            }
            (None, _) => {
                out.push(format!("{what}: table {name} is in SQLite only"));
                continue;
            }
        };
        let columns: BTreeSet<&String> = pg.columns.keys().chain(lite.columns.keys()).collect();
        for column in columns {
            let nullable = |n: Option<&bool>| match n {
                None => "missing",
                Some(true) => "nullable",
                Some(false) => "not null",
            };
            let (a, b) = (pg.columns.get(column), lite.columns.get(column));
            if a != b {
                out.push(format!(
                    "{what}: {name}.{column} is {} in PostgreSQL, {} in SQLite",
                    nullable(a),
                    nullable(b)
                ));
            }
        }
        if pg.primary_key != lite.primary_key {
            out.push(format!(
                "{what}: {name}'s primary key is {:?} in PostgreSQL, {:?} in SQLite",
                pg.primary_key, lite.primary_key
            ));
        }
        for unique in pg.unique.symmetric_difference(&lite.unique) {
            let side = if pg.unique.contains(unique) { "PostgreSQL" } else { "SQLite" };
            out.push(format!("{what}: {name} is unique on {unique:?} in {side} only"));
        }
        for key in pg.foreign_keys.symmetric_difference(&lite.foreign_keys) {
            let side = if pg.foreign_keys.contains(key) { "PostgreSQL" } else { "SQLite" };
            out.push(format!("{what}: {name} has the foreign key {key:?} in {side} only"));
        }
        let indexes: BTreeSet<&String> = pg.indexes.keys().chain(lite.indexes.keys()).collect();
        for index in indexes {
            let (a, b) = (pg.indexes.get(index), lite.indexes.get(index));
            if a != b {
                out.push(format!("{what}: {name}'s index {index} is {a:?} in PostgreSQL, {b:?} in SQLite"));
            }
        }
    }
    out
}

/// Each service's database of `env`'s backend, migrated (the platform's tables first).
async fn migrated(env: &TestEnv) -> Vec<(ServiceName, Database)> {
    let options = PoolOptions::from_config(&env.config);
    let mut out = Vec::new();
    for spec in medcov::services() {
        let Some(migrations) = spec.migrations else { continue };
        let db = Database::connect(spec.name, env.config.database_url(spec.name), &options).await.expect("connects");
        db.migrate(spec.name, &migrations).await.unwrap_or_else(|e| panic!("{} migrates: {e}", spec.name));
        out.push((spec.name, db));
    }
    out
}

fn describe_tables(schema: &Schema) -> String {
    schema.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_services_migrations_give_the_same_schema_on_both_backends() {
    let (embedded, distributed) = (TestEnv::embedded().await, TestEnv::distributed().await);
    let (lite, pg) = (migrated(&embedded).await, migrated(&distributed).await);
    assert_eq!(lite.len(), 4, "auth, hospital, insurance and billing have databases");
    let mut problems = Vec::new();
    for ((service, lite), (_, pg)) in lite.iter().zip(&pg) {
        let (Database::Sqlite(lite), Database::Postgres(pg)) = (lite, pg) else { panic!("one of each backend") };
        let sqlite = sqlite_schema(lite.inner()).await;
        let postgres = postgres_schema(pg.inner(), service.as_str()).await;
        // The platform's tables are in every service's schema.
        for table in ["medcov_meta", "outbox", "inbox", "sagas", "saga_transitions"] {
            assert!(postgres.contains_key(table), "{service}: {table} in {}", describe_tables(&postgres));
        }
        assert!(postgres.len() > 5, "{service} has tables of its own: {}", describe_tables(&postgres));
        problems.extend(differences(service.as_str(), &postgres, &sqlite));
    }
    assert!(problems.is_empty(), "the backends' migrations disagree:\n{}", problems.join("\n"));
}

/// The comparison sees what it is for: a column, a nullability, a key and an index that one
/// backend has and the other lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_sees_a_difference() {
    let (embedded, distributed) = (TestEnv::embedded().await, TestEnv::distributed().await);
    let service = ServiceName::Hospital;
    let connect = async |env: &TestEnv| {
        let options = PoolOptions::from_config(&env.config);
        Database::connect(service, env.config.database_url(service), &options).await.expect("connects")
    };
    let (lite, pg) = (connect(&embedded).await, connect(&distributed).await);
    let (Database::Sqlite(lite), Database::Postgres(pg)) = (&lite, &pg) else { panic!("one of each backend") };
    for ddl in [
        "CREATE TABLE wards (id UUID PRIMARY KEY, name TEXT NOT NULL UNIQUE, floor INTEGER)",
        "CREATE TABLE beds (id UUID PRIMARY KEY, ward_id UUID NOT NULL REFERENCES wards (id), label TEXT, note TEXT)",
        "CREATE INDEX beds_by_ward ON beds (ward_id)",
    ] {
        sqlx::query(ddl).execute(pg).await.expect("postgres DDL");
    }
    for ddl in [
        // `floor` is not null here, and `name` not unique.
        "CREATE TABLE wards (id BLOB PRIMARY KEY, name TEXT NOT NULL, floor INTEGER NOT NULL)",
        // No `note`, and no foreign key.
        "CREATE TABLE beds (id BLOB PRIMARY KEY, ward_id BLOB NOT NULL, label TEXT)",
        "CREATE INDEX beds_by_ward ON beds (ward_id, label)",
    ] {
        sqlx::query(ddl).execute(lite).await.expect("sqlite DDL");
    }
    let found =
        differences("test", &postgres_schema(pg.inner(), service.as_str()).await, &sqlite_schema(lite.inner()).await);
    let says = |text: &str| found.iter().any(|line| line.contains(text));
    assert!(says("beds.note is nullable in PostgreSQL, missing in SQLite"), "{found:#?}");
    assert!(says("wards.floor is nullable in PostgreSQL, not null in SQLite"), "{found:#?}");
    assert!(says("wards is unique on [\"name\"] in PostgreSQL only"), "{found:#?}");
    assert!(says("beds has the foreign key") && says("in PostgreSQL only"), "{found:#?}");
    assert!(says("beds's index beds_by_ward"), "{found:#?}");
    assert_eq!(found.len(), 5, "{found:#?}");
}
