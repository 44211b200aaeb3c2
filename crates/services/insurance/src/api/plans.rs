//! `/plans`: benefit products and their effective-dated versions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::Authorized;
use serde::Deserialize;
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{InsurerAdmins, InsurerStaff, actor, own_insurer};
use crate::domain::plan::PlanRules;
use crate::store::InsuranceStore;
use crate::store::plans::{Plan, PlanVersion};

pub fn router(store: Arc<InsuranceStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan))
        .routes(routes!(add_version))
        .with_state(store)
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

fn check_version(
    insurer_currency: &str,
    effective_from: Date,
    effective_to: Option<Date>,
    rules: &PlanRules,
) -> Vec<FieldError> {
    let mut errors = rules.validate();
    if rules.currency.as_str() != insurer_currency {
        errors.push(FieldError::new("rules.currency", format!("must be the insurer's currency, {insurer_currency}")));
    }
    if effective_to.is_some_and(|to| to < effective_from) {
        errors.push(FieldError::new("effective_to", "must not be before effective_from"));
    }
    errors
}

/// Publish a plan with its first version (insurer administrators).
#[utoipa::path(post, path = "/plans", tag = "plans", request_body = NewPlan,
    responses((status = 201, body = Plan), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_plan(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Json(input): Json<NewPlan>,
) -> Result<(StatusCode, Json<Plan>), ApiError> {
    let insurer = store
        .insurer(input.insurer_id)
        .await?
        .filter(|i| principal.scope.covers_insurer(i.id))
        .ok_or_else(|| ApiError::NotFound("no such insurer".into()))?;
    let code = input.code.trim().to_uppercase();
    let mut errors = check_version(&insurer.currency, input.effective_from, input.effective_to, &input.rules);
    if !(2..=30).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        errors.push(FieldError::new("code", "must be 2 to 30 of A-Z, 0-9 and `-`"));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = OffsetDateTime::now_utc();
    let id = Uuid::now_v7();
    let first = PlanVersion {
        id: Uuid::now_v7(),
        plan_id: id,
        version: 1,
        effective_from: input.effective_from,
        effective_to: input.effective_to,
        rules: input.rules,
        created_at: now,
    };
    let plan =
        Plan { id, insurer_id: insurer.id, code, name: input.name.trim().to_owned(), versions: vec![first.clone()] };
    store.insert_plan(&plan, &first, actor(&principal).user_id).await?;
    Ok((StatusCode::CREATED, Json(plan)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// Platform callers may pick an insurer; others see their own.
    insurer_id: Option<Uuid>,
}

/// The plans of the caller's insurer, with every version.
#[utoipa::path(get, path = "/plans", tag = "plans", params(PlanQuery), responses((status = 200, body = Vec<Plan>)))]
async fn list_plans(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Query(query): Query<PlanQuery>,
) -> Result<Json<Vec<Plan>>, ApiError> {
    let insurer = own_insurer(&principal)?.or(query.insurer_id);
    Ok(Json(store.plans(insurer).await?))
}

/// One plan, with every version.
#[utoipa::path(get, path = "/plans/{id}", tag = "plans",
    responses((status = 200, body = Plan), (status = 404, body = medcov_http::Problem)))]
async fn get_plan(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Plan>, ApiError> {
    store
        .plan(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .map(Json)
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<NewVersion>,
) -> Result<(StatusCode, Json<PlanVersion>), ApiError> {
    let plan = store
        .plan(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
    let insurer = store.insurer(plan.insurer_id).await?.ok_or_else(|| ApiError::NotFound("no such insurer".into()))?;
    let errors = check_version(&insurer.currency, input.effective_from, input.effective_to, &input.rules);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let version = store
        .add_plan_version(plan.id, input.effective_from, input.effective_to, &input.rules, actor(&principal).user_id)
        .await?;
    Ok((StatusCode::CREATED, Json(version)))
}
