//! The insurance service's tables: insurers, plans and versions, members and policies,
//! pre-authorisations, claims with their history, the accumulator ledger, and the outbox.
//!
//! SQL is written once and runs on either backend ([`medcov_store::on_pool!`]); schemas differ
//! per backend only in column types. Every change is one transaction with its history rows and
//! its outbox event.
//!
//! - [`plans`]: insurers, plans and plan versions.
//! - [`policies`]: members and policies, and what covers a member on a date.
//! - [`claims`]: pre-authorisations, claims, adjudication and the accumulator ledger.

use std::sync::Arc;
use std::time::Duration;

use medcov_cache::Cache;
use medcov_store::{Database, Migrations};
use sqlx::migrate::Migrator;
use uuid::Uuid;

pub mod claims;
pub mod links;
pub mod plans;
pub mod policies;

pub use medcov_store::outbox::{Actor, Event};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

/// How long an eligibility answer may be served from the cache. Every write it depends on
/// invalidates it at once; the limit only bounds approvals that expire with time.
pub const ELIGIBILITY_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Platform(#[from] medcov_store::StoreError),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid { field: field.into(), reason: reason.into() }
    }
}

impl From<StoreError> for medcov_http::ApiError {
    fn from(e: StoreError) -> Self {
        use medcov_http::{ApiError, FieldError};
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m.into()),
            StoreError::Invalid { field, reason } => ApiError::Validation(vec![FieldError::new(field, reason)]),
            StoreError::Sqlx(e) => ApiError::internal(e),
            StoreError::Platform(e) => e.into(),
        }
    }
}

pub(crate) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[derive(Clone)]
pub struct InsuranceStore {
    db: Database,
    cache: Arc<dyn Cache>,
    premium_due_s: u64,
}

impl InsuranceStore {
    /// A store with an in-process cache.
    pub fn new(db: Database) -> InsuranceStore {
        let cache = medcov_cache::MemoryCache::new(50_000, Duration::from_secs(300));
        InsuranceStore {
            db,
            cache: Arc::new(cache),
            premium_due_s: medcov_config::BillingConfig::default().premium_due_s,
        }
    }

    /// A store with the given cache (Redis when distributed).
    pub fn with_cache(db: Database, cache: Arc<dyn Cache>) -> InsuranceStore {
        InsuranceStore { db, cache, premium_due_s: medcov_config::BillingConfig::default().premium_due_s }
    }

    /// Sets how long a sold policy waits for its premium (`billing.premium_due_s`).
    pub fn with_premium_due(mut self, seconds: u64) -> InsuranceStore {
        self.premium_due_s = seconds;
        self
    }

    pub fn premium_due_s(&self) -> u64 {
        self.premium_due_s
    }

    pub fn cache(&self) -> &dyn Cache {
        self.cache.as_ref()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Drops every cached eligibility answer of these members.
    pub async fn invalidate_members(&self, members: &[Uuid]) {
        let tags: Vec<String> = members.iter().map(|m| member_tag(*m)).collect();
        if !tags.is_empty() {
            self.cache.invalidate(&tags).await;
        }
    }
}

/// The cache tag of everything cached about one member.
pub fn member_tag(member: Uuid) -> String {
    format!("insurance:member:{member}")
}
