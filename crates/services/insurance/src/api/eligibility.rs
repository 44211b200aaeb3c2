//! `/eligibility`: is a member covered on a day at a hospital, and for each service asked
//! about, covered or why not, with what is left and an estimate of the member's share.
//!
//! The hot path: answers are cached by the service layer (`service::eligibility`) under the
//! member, and every write an answer depends on invalidates the member's answers at once.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, FieldError, Json};
use medcov_security::{Authorized, Policy, Principal, Role, Scope};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::eligibility::{Answer, ServiceQuery};
use crate::domain::plan::VisitType;
use crate::domain::policy::PolicyStatus;
use crate::service::{Eligibility, InsuranceService, Question};

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(check_eligibility)).with_state(service)
}

/// Who asks: hospital staff for their hospitals, insurer staff for their members, services.
pub struct Askers;
impl Policy for Askers {
    const ROLES: &'static [Role] = &[
        Role::Admin,
        Role::HospitalClerk,
        Role::Clinician,
        Role::BillingClerk,
        Role::ClaimsOfficer,
        Role::Agent,
        Role::Service,
    ];
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "member_number": "AAR-0000000195",
    "date": "2026-06-01",
    "hospital_id": "0190f5a4-0000-7000-8000-000000000001",
    "visit_type": "normal",
    "services": [
        {"service_code": "CONS-GP", "category": "consultation", "price": 300000},
        {"service_code": "LAB-FBC", "category": "laboratory", "price": 250000, "diagnosis": "J06.9"}
    ]
}))]
pub struct EligibilityRequest {
    #[schema(example = "AAR-0000000195")]
    pub member_number: String,
    /// The day of care (today by default).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub date: Option<Date>,
    pub hospital_id: Uuid,
    #[serde(default = "normal")]
    pub visit_type: VisitType,
    #[serde(default)]
    pub services: Vec<ServiceQuery>,
    /// An adjudicated claim of this member to leave out of what was used, so the answer is
    /// what the member had before it (to compare with the claim's adjudication).
    #[serde(default)]
    pub excluding_claim: Option<Uuid>,
}

fn normal() -> VisitType {
    VisitType::Normal
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EligibilityResponse {
    pub member_id: Uuid,
    pub member_number: String,
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub policy_number: String,
    pub policy_status: PolicyStatus,
    /// The plan version the answer follows.
    pub plan_version_id: Uuid,
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    #[serde(flatten)]
    pub answer: Answer,
}

impl From<Eligibility> for EligibilityResponse {
    fn from(e: Eligibility) -> Self {
        EligibilityResponse {
            member_id: e.member_id,
            member_number: e.member_number,
            insurer_id: e.insurer_id,
            policy_id: e.policy_id,
            policy_number: e.policy_number,
            policy_status: e.policy_status,
            plan_version_id: e.plan_version_id,
            date: e.date,
            answer: e.answer,
        }
    }
}

fn check(request: &EligibilityRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !crate::domain::policy::member_number_valid(request.member_number.trim()) {
        errors.push(FieldError::new("member_number", "is not a member number (its check digits do not match)"));
    }
    if request.services.len() > 50 {
        errors.push(FieldError::new("services", "at most 50 services per question"));
    }
    for (i, s) in request.services.iter().enumerate() {
        if s.service_code.trim().is_empty() {
            errors.push(FieldError::new(format!("services[{i}].service_code"), "must not be empty"));
        }
        if s.category.trim().is_empty() {
            errors.push(FieldError::new(format!("services[{i}].category"), "must not be empty"));
        }
        if s.price.is_some_and(|p| p < 0) {
            errors.push(FieldError::new(format!("services[{i}].price"), "must not be negative"));
        }
    }
    errors
}

/// Whether the caller may ask about this hospital at all.
fn may_ask_for(principal: &Principal, hospital: Uuid) -> bool {
    match &principal.scope {
        Scope::Hospitals { .. } => principal.scope.covers_hospital(hospital),
        Scope::Platform | Scope::Insurer { .. } => true,
        Scope::Own => false,
    }
}

/// Answer an eligibility question. An unknown member, or one of another insurer for insurer
/// staff, is 404. The same question asked again by the same audience (same body, same tenant
/// scope and roles) may be answered from the gateway's cache (`X-Cache: HIT`), for up to a
/// minute and never past the insurer's midnight; any change to what the member has left (a
/// claim, an approval, a policy or member change) drops it at once. While insurance cannot
/// answer, the gateway may give the last answer to the same question by the same audience, up
/// to a day old, marked `Warning: 110` and `X-Cache: STALE`.
#[utoipa::path(post, path = "/eligibility", tag = "eligibility", request_body = EligibilityRequest,
    responses((status = 200, body = EligibilityResponse), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn check_eligibility(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Askers>,
    Json(request): Json<EligibilityRequest>,
) -> Result<(axum::http::HeaderMap, Json<EligibilityResponse>), ApiError> {
    let errors = check(&request);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !may_ask_for(&principal, request.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let date = match request.date {
        Some(date) => date,
        None => service.today_for_member(&request.member_number).await?,
    };
    let question = Question {
        member_number: request.member_number,
        date,
        hospital_id: request.hospital_id,
        visit_type: request.visit_type,
        services: request.services,
        excluding_claim: request.excluding_claim,
    };
    let response = service.eligibility(&question).await?;
    if let Scope::Insurer { insurer } = principal.scope
        && insurer != response.insurer_id
    {
        return Err(ApiError::NotFound("no such member".into()));
    }
    // The same question by the same audience is answered from the gateway's cache until a
    // write about the member (a claim, an approval, a policy or member change) invalidates the
    // member's tag, for a minute at most (as the member's standing is cached), and never past
    // the insurer's midnight, when "today" (the default date, the approvals still reserved)
    // moves on.
    let fresh_for = crate::service::ELIGIBILITY_TTL.min(service.left_of_today(response.insurer_id).await?).as_secs();
    let tags = [crate::service::member_tag(response.member_id)];
    Ok((medcov_http::caching::cacheable_query(fresh_for, &tags, STALE_FOR_S), Json(response.into())))
}

/// How long the gateway may answer with the last eligibility answer while insurance cannot.
const STALE_FOR_S: u64 = 24 * 3600;
