//! The insurance service's use cases, called by the HTTP API, the workers (event consumers)
//! and the policy-sale saga alike. Each one loads what it needs through the store, decides
//! with the rules in `domain/`, and persists the outcome in one transaction that it opens and
//! commits itself, with the events it raises and the inbox entry of the event it handles.
//! Cached answers that a change makes stale are dropped after the commit.
//!
//! - [`insurers`], [`plans`]: the tenants, plans and versions (plan versions are cached).
//! - [`policies`]: selling, renewing, status changes, dependants, member status.
//! - [`members`]: member numbers: lookup (cached), verification and links to patients.
//! - [`eligibility`]: the cached eligibility answer.
//! - [`preauth`]: pre-authorisation requests and decisions.
//! - [`claims`]: submission with adjudication, review, overrides, reversal, payment.
//! - [`sale`]: the policy-sale saga's steps.
//!
//! Callers check who is asking (scopes, roles) before they call; a use case that changes a
//! record takes it as the caller read it, so a change made meanwhile is refused (409).

pub mod claims;
pub mod eligibility;
pub mod insurers;
mod known;
pub mod members;
pub mod plans;
pub mod policies;
pub mod preauth;
pub mod sale;

use std::sync::Arc;
use std::time::Duration;

use medcov_cache::Cache;
use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor, DomainEvent};
use medcov_store::{Database, inbox};
use uuid::Uuid;

pub use eligibility::{ELIGIBILITY_TTL, Eligibility, Question, member_tag};
pub use sale::POLICY_SALE;

#[derive(Clone)]
pub struct InsuranceService {
    db: Database,
    cache: Arc<dyn Cache>,
    /// Plan rules and insurers' time zones, which never change, kept in process.
    known: Arc<known::Known>,
    premium_due_s: u64,
}

impl InsuranceService {
    /// A service with an in-process cache.
    pub fn new(db: Database) -> InsuranceService {
        let cache = medcov_cache::MemoryCache::new(32 * 1024 * 1024, Duration::from_secs(300));
        InsuranceService::with_cache(db, Arc::new(cache))
    }

    /// A service with the given cache (Redis when distributed: every instance must see the
    /// same invalidations).
    pub fn with_cache(db: Database, cache: Arc<dyn Cache>) -> InsuranceService {
        InsuranceService {
            db,
            cache,
            known: Arc::default(),
            premium_due_s: medcov_config::BillingConfig::default().premium_due_s,
        }
    }

    /// Sets how long a sold policy waits for its premium (`billing.premium_due_s`).
    pub fn with_premium_due(mut self, seconds: u64) -> InsuranceService {
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

    /// Writes an event that goes with no change of its own (a refusal, an answer), once per
    /// handled event with `inbox` (consumer, event id).
    async fn emit<E: DomainEvent>(
        &self,
        event: &E,
        actor: &Actor,
        inbox: Option<(&str, Uuid)>,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        if let Some((consumer, id)) = inbox
            && !inbox::record_once(&mut tx, consumer, id).await?
        {
            return Ok(());
        }
        outbox::write(&mut tx, actor, event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The SHA-256 of `bytes`, in hex: how a request is told from another under one reference.
pub fn digest(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

impl InsuranceService {
    /// Today for `insurer`, in its time zone: the day its approvals, reservations and policy
    /// changes are counted on (UTC for an insurer it does not know).
    pub async fn today_of(&self, insurer: uuid::Uuid) -> Result<time::Date, ApiError> {
        let zone = self.zone_of(insurer).await?;
        Ok(medcov_domain::calendar::today_in(zone.as_deref().unwrap_or("UTC")))
    }

    /// How long `insurer`'s today lasts from now: an answer about its today holds that long
    /// at most.
    pub async fn left_of_today(&self, insurer: uuid::Uuid) -> Result<std::time::Duration, ApiError> {
        let zone = self.zone_of(insurer).await?;
        Ok(medcov_domain::calendar::left_of_day_in(time::OffsetDateTime::now_utc(), zone.as_deref().unwrap_or("UTC")))
    }

    /// `insurer`'s time zone, from the memo once seen (insurers never change it).
    async fn zone_of(&self, insurer: uuid::Uuid) -> Result<Option<Arc<str>>, ApiError> {
        Ok(match self.known.zones.get(&insurer) {
            Some(zone) => Some(zone),
            None => crate::store::insurer(&self.db, insurer).await?.map(|i| {
                let zone: Arc<str> = i.timezone.into();
                self.known.zones.insert(insurer, zone.clone());
                zone
            }),
        })
    }

    /// Today for the insurer whose code prefixes `member_number` (`AAR-0000000195`): the day an
    /// eligibility question without a date is about.
    pub async fn today_for_member(&self, member_number: &str) -> Result<time::Date, ApiError> {
        let zone = self.zone_for_member(member_number).await?;
        Ok(medcov_domain::calendar::today_in(zone.as_deref().unwrap_or("UTC")))
    }

    /// The time zone of the insurer whose code prefixes `member_number`, from the memo once
    /// seen; `None` when there is no such insurer (never remembered: it may be created).
    pub async fn zone_for_member(&self, member_number: &str) -> Result<Option<Arc<str>>, ApiError> {
        let code = crate::domain::verification::insurer_code(member_number);
        if let Some(zone) = self.known.zones_by_code.get(&code.to_owned()) {
            return Ok(Some(zone));
        }
        let mut found = None;
        for insurer in crate::store::insurers(&self.db).await? {
            let zone: Arc<str> = insurer.timezone.into();
            if insurer.code == code {
                found = Some(zone.clone());
            }
            self.known.zones.insert(insurer.id, zone.clone());
            self.known.zones_by_code.insert(insurer.code, zone);
        }
        Ok(found)
    }
}
