//! Plans and their versions. A version's rules never change, so versions are cached for good
//! (and warmed at start); the period of the open-ended latest one is closed by its successor,
//! which is read from the database where it matters (when a policy picks its version).

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_store::StoreError;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::insurer::Insurer;
use crate::domain::plan::PlanRules;
use crate::domain::versions::{self, Plan, PlanVersion};
use crate::store;

// Plan versions are cached as JSON.
medcov_cache::json_codec!(PlanVersion);

/// A plan with its first version, as asked for.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub code: String,
    pub name: String,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
    pub rules: PlanRules,
}

/// A period for a new version of a plan.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

impl InsuranceService {
    /// Publishes a plan of `insurer` with its first version; a code the insurer already has is
    /// a 409.
    pub async fn create_plan(&self, insurer: &Insurer, new: NewPlan, created_by: Uuid) -> Result<Plan, ApiError> {
        let code = new.code.trim().to_uppercase();
        versions::check_new_plan(
            &insurer.currency,
            &code,
            &new.name,
            new.effective_from,
            new.effective_to,
            &new.rules,
        )?;
        let id = Uuid::now_v7();
        let first = PlanVersion {
            id: Uuid::now_v7(),
            plan_id: id,
            version: 1,
            effective_from: new.effective_from,
            effective_to: new.effective_to,
            rules: new.rules,
            created_at: OffsetDateTime::now_utc(),
        };
        let plan = Plan { id, insurer_id: insurer.id, code, name: new.name.trim().to_owned(), versions: vec![first] };
        let mut tx = self.db.begin_write().await?;
        match store::insert_plan(&mut tx, &plan, created_by).await {
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict(format!("the insurer already has a plan {}", plan.code)));
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(plan)
    }

    /// Adds a version to `plan`. One that starts after the open-ended latest version ends that
    /// version the day before; any other overlap with an existing period is a 409. Version
    /// writes of one plan happen one at a time.
    pub async fn add_plan_version(
        &self,
        plan: &Plan,
        period: Period,
        rules: PlanRules,
        created_by: Uuid,
    ) -> Result<PlanVersion, ApiError> {
        let insurer = store::insurer(&self.db, plan.insurer_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such insurer".into()))?;
        Rejection::check(versions::check_version(
            &insurer.currency,
            period.effective_from,
            period.effective_to,
            &rules,
        ))?;
        let mut tx = self.db.begin_write().await?;
        store::lock_plan(&mut tx, plan.id).await?;
        let existing = store::plan_versions_in(&mut tx, plan.id).await?;
        let placement = versions::place(&existing, period.effective_from, period.effective_to)?;
        if let Some((id, last_day)) = placement.closes {
            store::close_plan_version(&mut tx, id, last_day).await?;
        }
        let version = PlanVersion {
            id: Uuid::now_v7(),
            plan_id: plan.id,
            version: placement.number,
            effective_from: period.effective_from,
            effective_to: period.effective_to,
            rules,
            created_at: OffsetDateTime::now_utc(),
        };
        store::insert_plan_version(&mut tx, &version, created_by).await?;
        tx.commit().await?;
        Ok(version)
    }

    pub async fn plan(&self, id: Uuid) -> Result<Option<Plan>, ApiError> {
        Ok(store::plan(&self.db, id).await?)
    }

    /// The plans of an insurer (or of every insurer), with their versions.
    pub async fn plans(&self, insurer: Option<Uuid>) -> Result<Vec<Plan>, ApiError> {
        Ok(store::plans(&self.db, insurer).await?)
    }

    /// A plan version, through the cache: its rules never change (only `effective_to`, which
    /// is read from [`InsuranceService::plan`] where it matters, when a policy picks its
    /// version). A miss is not cached.
    pub async fn plan_version(&self, id: Uuid) -> Result<Option<PlanVersion>, ApiError> {
        let key = format!("insurance:plan-version:{id}");
        let found = medcov_cache::read_through(self.cache(), &key, &[], std::time::Duration::from_secs(3600), async {
            store::plan_version(&self.db, id).await.map_err(Some)?.ok_or(None::<StoreError>)
        })
        .await;
        match found {
            Ok(version) => Ok(Some(version)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e.into()),
        }
    }

    /// A plan version's rules, kept in process after the first read (they never change).
    pub async fn plan_rules(&self, id: Uuid) -> Result<Option<std::sync::Arc<PlanRules>>, ApiError> {
        if let Some(rules) = self.known.rules.get(&id) {
            return Ok(Some(rules));
        }
        let Some(version) = self.plan_version(id).await? else { return Ok(None) };
        let rules = std::sync::Arc::new(version.rules);
        self.known.rules.insert(id, rules.clone());
        Ok(Some(rules))
    }

    /// Loads every plan version in force (open-ended or ending in the future) into the cache,
    /// logging progress every 500; returns how many.
    pub async fn warm_plan_versions(&self) -> Result<usize, ApiError> {
        // In force on some insurer's day: the earliest local day anywhere (UTC−12) is at most the
        // day before UTC's.
        let earliest = super::today().previous_day().unwrap_or_else(super::today);
        let ids = store::plan_versions_in_force(&self.db, earliest).await?;
        for (done, id) in ids.iter().enumerate() {
            self.plan_version(*id).await?;
            if (done + 1) % 500 == 0 {
                tracing::info!(done = done + 1, total = ids.len(), "warming plan versions");
            }
        }
        Ok(ids.len())
    }
}
