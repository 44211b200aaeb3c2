//! The auth service's tables. Migrations live per backend under `migrations/postgres` and
//! `migrations/sqlite`; SQL that both dialects accept is shared in the store, the rest stays in
//! the backend's own file.

use medcov_store::Migrations;
use sqlx::migrate::Migrator;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };
