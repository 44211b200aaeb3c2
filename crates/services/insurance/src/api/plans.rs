//! `/plans`: benefit products and their effective-dated versions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{InsurerAdmins, InsurerStaff, actor, own_insurer};
use crate::domain::plan::PlanRules;
use crate::domain::versions;
use crate::service::InsuranceService;
use crate::service::plans::{self as use_cases, Period};

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan))
        .routes(routes!(add_version))
        .with_state(service)
}

/// One version of a plan's rules, effective over a period of policy start dates.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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

impl From<versions::PlanVersion> for PlanVersion {
    fn from(v: versions::PlanVersion) -> Self {
        PlanVersion {
            id: v.id,
            plan_id: v.plan_id,
            version: v.version,
            effective_from: v.effective_from,
            effective_to: v.effective_to,
            rules: v.rules,
            created_at: v.created_at,
        }
    }
}

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

impl From<versions::Plan> for Plan {
    fn from(p: versions::Plan) -> Self {
        Plan {
            id: p.id,
            insurer_id: p.insurer_id,
            code: p.code,
            name: p.name,
            versions: p.versions.into_iter().map(PlanVersion::from).collect(),
        }
    }
}

const EXAMPLE_RULES: &str = r#"{
  "currency": "KES",
  "premium": {"kind": "per_member", "adult": 1200000, "child": 600000, "child_until_age": 18},
  "max_members": 6,
  "deductible_member": 100000,
  "deductible_family": 200000,
  "ceilings": {"member_outpatient": 5000000, "policy_outpatient": 8000000, "member_inpatient": 20000000},
  "categories": {
    "consultation": {"setting": "outpatient", "limit_count": 12, "cost_shares": [
      {"visit_type": "normal", "network": "in_network", "copay": 50000},
      {"visit_type": "emergency", "network": "out_of_network", "coinsurance_bp": 2000}]},
    "laboratory": {"setting": "outpatient", "limit_amount": 1000000, "cost_shares": [
      {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2000}]},
    "maternity": {"setting": "inpatient", "waiting_days": 300, "cost_shares": [
      {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 1000}]},
    "procedure": {"setting": "inpatient", "preauth_required": true, "cost_shares": [
      {"visit_type": "normal", "network": "in_network", "copay": 200000, "coinsurance_bp": 1000}]}
  },
  "excluded_services": ["COSM-01"],
  "excluded_diagnoses": [{"from": "Z41", "to": "Z41"}],
  "network": ["0190f5a4-0000-7000-8000-000000000001"],
  "preauth_auto_approve_up_to": 5000000,
  "preauth_valid_days": 30
}"#;

fn example_plan() -> serde_json::Value {
    serde_json::json!({
        "insurer_id": "0190f5a4-0000-7000-8000-0000000000aa",
        "code": "FAMILY-GOLD",
        "name": "Family Gold",
        "effective_from": "2026-01-01",
        "rules": serde_json::from_str::<serde_json::Value>(EXAMPLE_RULES).unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = example_plan)]
pub struct NewPlan {
    pub insurer_id: Uuid,
    /// 2 to 30 of A-Z, 0-9 and `-`, unique per insurer.
    pub code: String,
    pub name: String,
    /// Policies starting on or after this day are written under this version.
    #[schema(value_type = String, format = Date)]
    pub effective_from: Date,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
    pub rules: PlanRules,
}

/// Publish a plan with its first version (insurer administrators).
#[utoipa::path(post, path = "/plans", tag = "plans", request_body = NewPlan,
    responses((status = 201, body = Plan), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_plan(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Json(input): Json<NewPlan>,
) -> Result<(StatusCode, Json<Plan>), ApiError> {
    let insurer = service
        .insurer(input.insurer_id)
        .await?
        .filter(|i| principal.scope.covers_insurer(i.id))
        .ok_or_else(|| ApiError::NotFound("no such insurer".into()))?;
    let new = use_cases::NewPlan {
        code: input.code,
        name: input.name,
        effective_from: input.effective_from,
        effective_to: input.effective_to,
        rules: input.rules,
    };
    let plan = service.create_plan(&insurer, new, actor(&principal).user_id).await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// Platform callers may pick an insurer; others see their own.
    insurer_id: Option<Uuid>,
}

/// The plans of the caller's insurer, with every version.
#[utoipa::path(get, path = "/plans", tag = "plans", params(PlanQuery), responses((status = 200, body = Page<Plan>)))]
async fn list_plans(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Query(query): Query<PlanQuery>,
) -> Result<Json<Page<Plan>>, ApiError> {
    let insurer = own_insurer(&principal)?.or(query.insurer_id);
    Ok(Json(Page::whole(service.plans(insurer).await?).map(Plan::from)))
}

/// One plan, with every version.
#[utoipa::path(get, path = "/plans/{id}", tag = "plans",
    responses((status = 200, body = Plan), (status = 404, body = medcov_http::Problem)))]
async fn get_plan(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Plan>, ApiError> {
    service
        .plan(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::NotFound("no such plan".into()))
}

fn example_version() -> serde_json::Value {
    serde_json::json!({
        "effective_from": "2027-01-01",
        "rules": serde_json::from_str::<serde_json::Value>(EXAMPLE_RULES).unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = example_version)]
pub struct NewVersion {
    /// A version starting after the open-ended latest one ends that one the day before;
    /// any other overlap with an existing version's period is refused.
    #[schema(value_type = String, format = Date, example = "2027-01-01")]
    pub effective_from: Date,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
    pub rules: PlanRules,
}

/// Add a version of a plan. Existing versions never change: policies keep theirs, and claims
/// keep the rules they were adjudicated under. A period overlapping another version's is 409.
#[utoipa::path(post, path = "/plans/{id}/versions", tag = "plans", request_body = NewVersion,
    responses((status = 201, body = PlanVersion), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_version(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<NewVersion>,
) -> Result<(StatusCode, Json<PlanVersion>), ApiError> {
    let plan = service
        .plan(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
    let period = Period { effective_from: input.effective_from, effective_to: input.effective_to };
    let version = service.add_plan_version(&plan, period, input.rules, actor(&principal).user_id).await?;
    Ok((StatusCode::CREATED, Json(version.into())))
}
