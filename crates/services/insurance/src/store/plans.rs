//! Insurers, plans and plan versions.

use medcov_store::{WritePool, on_pool};
use serde::Serialize;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{InsuranceStore, StoreError, unique_violation};
use crate::domain::plan::{self, PlanRules};

/// An insurer: the tenant of the insurance service.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Insurer {
    pub id: Uuid,
    #[schema(example = "AAR")]
    pub code: String,
    #[schema(example = "AAR Insurance")]
    pub name: String,
    #[schema(example = "KES")]
    pub currency: String,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// One version of a plan's rules, effective over a period of policy start dates.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PlanVersion {
    pub id: Uuid,
    pub plan_id: Uuid,
    pub version: i32,
    #[schema(value_type = String, format = Date)]
    pub effective_from: Date,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
    pub rules: PlanRules,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: Uuid,
    plan_id: Uuid,
    version: i32,
    effective_from: Date,
    effective_to: Option<Date>,
    rules: Json<PlanRules>,
    created_at: OffsetDateTime,
}

impl From<VersionRow> for PlanVersion {
    fn from(r: VersionRow) -> Self {
        PlanVersion {
            id: r.id,
            plan_id: r.plan_id,
            version: r.version,
            effective_from: r.effective_from,
            effective_to: r.effective_to,
            rules: r.rules.0,
            created_at: r.created_at,
        }
    }
}

// Plan versions are cached as JSON.
medcov_cache::json_codec!(PlanVersion);

const VERSION_COLUMNS: &str = "id, plan_id, version, effective_from, effective_to, rules, created_at";

/// A plan and its versions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: Uuid,
    pub insurer_id: Uuid,
    #[schema(example = "FAMILY-GOLD")]
    pub code: String,
    #[schema(example = "Family Gold")]
    pub name: String,
    pub versions: Vec<PlanVersion>,
}

impl InsuranceStore {
    pub async fn insert_insurer(&self, insurer: &Insurer) -> Result<(), StoreError> {
        let result = on_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO insurers (id, code, name, currency, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(insurer.id)
            .bind(&insurer.code)
            .bind(&insurer.name)
            .bind(&insurer.currency)
            .bind(insurer.active)
            .bind(insurer.created_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("an insurer with code {} exists", insurer.code)))
            }
            other => other.map_err(StoreError::from),
        }
    }

    pub async fn insurer(&self, id: Uuid) -> Result<Option<Insurer>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as("SELECT id, code, name, currency, active, created_at FROM insurers WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    pub async fn insurers(&self) -> Result<Vec<Insurer>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as("SELECT id, code, name, currency, active, created_at FROM insurers ORDER BY name, id")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Creates a plan with its first version.
    pub async fn insert_plan(&self, plan: &Plan, first: &PlanVersion, created_by: Uuid) -> Result<(), StoreError> {
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO plans (id, insurer_id, code, name, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(plan.id)
                .bind(plan.insurer_id)
                .bind(&plan.code)
                .bind(&plan.name)
                .bind(first.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO plan_versions (id, plan_id, version, effective_from, effective_to, rules, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(first.id)
            .bind(plan.id)
            .bind(first.version)
            .bind(first.effective_from)
            .bind(first.effective_to)
            .bind(Json(&first.rules))
            .bind(created_by)
            .bind(first.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await
        });
        match result {
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("the insurer already has a plan {}", plan.code)))
            }
            other => other.map_err(StoreError::from),
        }
    }

    /// Adds a version. One that starts after the open-ended latest version ends that version
    /// the day before; any other overlap with an existing period is refused.
    pub async fn add_plan_version(
        &self,
        plan_id: Uuid,
        effective_from: Date,
        effective_to: Option<Date>,
        rules: &PlanRules,
        created_by: Uuid,
    ) -> Result<PlanVersion, StoreError> {
        let now = OffsetDateTime::now_utc();
        let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 ORDER BY version");
        on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            // Serialises concurrent version writes of one plan (a row lock on PostgreSQL).
            sqlx::query("UPDATE plans SET name = name WHERE id = $1").bind(plan_id).execute(&mut *tx).await?;
            let existing: Vec<VersionRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(plan_id).fetch_all(&mut *tx).await?;
            // A version that starts after the open-ended latest one ends it the day before: its
            // rules never change, only the last day new policies are written under it.
            let latest = existing.iter().max_by_key(|v| v.effective_from);
            let mut closes = None;
            if let Some(latest) = latest
                && latest.effective_to.is_none()
                && effective_from > latest.effective_from
            {
                closes = Some((latest.id, effective_from.previous_day().unwrap_or(effective_from)));
            }
            if let Some(clash) = existing
                .iter()
                .filter(|v| closes.is_none_or(|(id, _)| id != v.id))
                .find(|v| plan::overlaps(effective_from, effective_to, v.effective_from, v.effective_to))
            {
                return Err(StoreError::Conflict(format!(
                    "the period overlaps version {} (from {}{}); end that version first or start after it",
                    clash.version,
                    clash.effective_from,
                    clash.effective_to.map(|t| format!(" to {t}")).unwrap_or_default()
                )));
            }
            if let Some((id, last_day)) = closes {
                sqlx::query("UPDATE plan_versions SET effective_to = $1 WHERE id = $2").bind(last_day).bind(id).execute(&mut *tx).await?;
            }
            let version = PlanVersion {
                id: Uuid::now_v7(),
                plan_id,
                version: existing.iter().map(|v| v.version).max().unwrap_or(0) + 1,
                effective_from,
                effective_to,
                rules: rules.clone(),
                created_at: now,
            };
            sqlx::query(
                "INSERT INTO plan_versions (id, plan_id, version, effective_from, effective_to, rules, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(version.id)
            .bind(plan_id)
            .bind(version.version)
            .bind(effective_from)
            .bind(effective_to)
            .bind(Json(rules))
            .bind(created_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(version)
        }
        .await
        })
    }

    pub async fn plan(&self, id: Uuid) -> Result<Option<Plan>, StoreError> {
        let head: Option<(Uuid, Uuid, String, String)> = on_pool!(&self.db, |pool| {
            sqlx::query_as("SELECT id, insurer_id, code, name FROM plans WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        let Some((id, insurer_id, code, name)) = head else {
            return Ok(None);
        };
        let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 ORDER BY version");
        let versions: Vec<VersionRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(pool).await)?;
        Ok(Some(Plan { id, insurer_id, code, name, versions: versions.into_iter().map(PlanVersion::from).collect() }))
    }

    /// The plans of an insurer (or of every insurer), without their versions' rules.
    pub async fn plans(&self, insurer: Option<Uuid>) -> Result<Vec<Plan>, StoreError> {
        let heads: Vec<(Uuid, Uuid, String, String)> = on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, insurer_id, code, name FROM plans WHERE ($1 IS NULL OR insurer_id = $1) ORDER BY code, id",
            )
            .bind(insurer)
            .fetch_all(pool)
            .await
        })?;
        let mut plans = Vec::with_capacity(heads.len());
        for (id, ..) in heads {
            if let Some(plan) = self.plan(id).await? {
                plans.push(plan);
            }
        }
        Ok(plans)
    }

    /// Loads every plan version in force (open-ended or ending in the future) into the cache,
    /// logging progress every 500; returns how many.
    pub async fn warm_plan_versions(&self) -> Result<usize, StoreError> {
        let today = time::OffsetDateTime::now_utc().date();
        let ids: Vec<Uuid> = on_pool!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM plan_versions WHERE effective_to IS NULL OR effective_to >= $1 ORDER BY id",
            )
            .bind(today)
            .fetch_all(pool)
            .await
        })?;
        for (done, id) in ids.iter().enumerate() {
            self.plan_version(*id).await?;
            if (done + 1) % 500 == 0 {
                tracing::info!(done = done + 1, total = ids.len(), "warming plan versions");
            }
        }
        Ok(ids.len())
    }

    /// A plan version, through the cache: its rules never change (only `effective_to`, which
    /// is read from [`InsuranceStore::plan`] where it matters, when a policy picks its version).
    pub async fn plan_version(&self, id: Uuid) -> Result<Option<PlanVersion>, StoreError> {
        let key = format!("insurance:plan-version:{id}");
        let found = medcov_cache::read_through(self.cache(), &key, &[], std::time::Duration::from_secs(3600), async {
            let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE id = $1");
            let row: Option<VersionRow> =
                on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
                    .map_err(|e| Some(StoreError::from(e)))?;
            row.map(PlanVersion::from).ok_or(None)
        })
        .await;
        match found {
            Ok(version) => Ok(Some(version)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }
}
