//! `/preauthorisations`: approval of planned care before it is given.
//!
//! The rules decide what they can: a request for a member without cover, or for nothing the
//! plan covers, is denied; one whose services are all covered and whose total is within the
//! plan's automatic threshold is approved. Everything else waits for a claims officer, who
//! approves, partially approves or denies with a reason. An approval reserves its amount
//! against the member's and the policy's ceilings until a claim uses it or it expires.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Path};
use medcov_security::{Authorized, Policy, Principal, Role};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ClaimsOfficers, actor, today, visible};
use crate::domain::adjudication::Reason;
use crate::domain::plan::VisitType;
use crate::domain::preauth::{self, PreauthStatus};
use crate::service::InsuranceService;

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request_preauth))
        .routes(routes!(get_preauth))
        .routes(routes!(decide))
        .with_state(service)
}

/// A requested service of a pre-authorisation and what was decided for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreauthLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// The hospital's estimate for the line, in minor units.
    pub estimated_amount: i64,
    pub diagnosis: Option<String>,
    /// Why the rules do not cover it, if they do not.
    pub reason: Option<Reason>,
    pub approved_amount: i64,
}

impl From<preauth::PreauthLine> for PreauthLine {
    fn from(l: preauth::PreauthLine) -> Self {
        PreauthLine {
            service_code: l.service_code,
            category: l.category,
            quantity: l.quantity,
            estimated_amount: l.estimated_amount,
            diagnosis: l.diagnosis,
            reason: l.reason,
            approved_amount: l.approved_amount,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Preauth {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub policy_id: Uuid,
    pub member_id: Uuid,
    pub visit_type: VisitType,
    #[schema(value_type = String, format = Date)]
    pub planned_date: Date,
    pub status: PreauthStatus,
    pub lines: Vec<PreauthLine>,
    pub requested_amount: i64,
    pub approved_amount: i64,
    /// The last day a claim may use it.
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_until: Option<Date>,
    pub reason: Option<String>,
    pub decided_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
    /// The claim that used it; until then its approved amount is reserved against ceilings.
    pub used_by_claim: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<preauth::Preauth> for Preauth {
    fn from(p: preauth::Preauth) -> Self {
        Preauth {
            id: p.id,
            insurer_id: p.insurer_id,
            hospital_id: p.hospital_id,
            policy_id: p.policy_id,
            member_id: p.member_id,
            visit_type: p.visit_type,
            planned_date: p.planned_date,
            status: p.status,
            lines: p.lines.into_iter().map(PreauthLine::from).collect(),
            requested_amount: p.requested_amount,
            approved_amount: p.approved_amount,
            valid_until: p.valid_until,
            reason: p.reason,
            decided_by: p.decided_by,
            decided_at: p.decided_at,
            used_by_claim: p.used_by_claim,
            created_at: p.created_at,
        }
    }
}

/// Who asks for approval: the hospital's desk and clinicians, and services.
pub struct Requesters;
impl Policy for Requesters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::HospitalClerk, Role::Clinician, Role::Service];
}

/// Who reads approvals.
pub struct Readers;
impl Policy for Readers {
    const ROLES: &'static [Role] = &[
        Role::Admin,
        Role::HospitalClerk,
        Role::Clinician,
        Role::BillingClerk,
        Role::ClaimsOfficer,
        Role::Auditor,
        Role::Service,
    ];
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedService {
    #[schema(example = "PROC-APPX")]
    pub service_code: String,
    #[schema(example = "procedure")]
    pub category: String,
    #[schema(example = 1)]
    pub quantity: u32,
    /// The hospital's estimate for the whole line, in minor units.
    #[schema(example = 4500000)]
    pub estimated_amount: i64,
    #[serde(default)]
    #[schema(example = "K35.80")]
    pub diagnosis: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "member_number": "AAR-0000000195",
    "hospital_id": "0190f5a4-0000-7000-8000-000000000001",
    "visit_type": "normal",
    "planned_date": "2026-06-15",
    "services": [{"service_code": "PROC-APPX", "category": "procedure", "quantity": 1, "estimated_amount": 4500000, "diagnosis": "K35.80"}]
}))]
pub struct PreauthRequest {
    pub member_number: String,
    pub hospital_id: Uuid,
    pub visit_type: VisitType,
    #[schema(value_type = String, format = Date)]
    pub planned_date: Date,
    pub services: Vec<RequestedService>,
}

fn check(request: &PreauthRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !crate::domain::policy::member_number_valid(request.member_number.trim()) {
        errors.push(FieldError::new("member_number", "is not a member number (its check digits do not match)"));
    }
    if request.services.is_empty() || request.services.len() > 50 {
        errors.push(FieldError::new("services", "must list 1 to 50 services"));
    }
    if request.planned_date < today() - Duration::days(30) {
        errors.push(FieldError::new("planned_date", "must not be more than 30 days ago"));
    }
    for (i, s) in request.services.iter().enumerate() {
        if s.service_code.trim().is_empty() {
            errors.push(FieldError::new(format!("services[{i}].service_code"), "must not be empty"));
        }
        if s.category.trim().is_empty() {
            errors.push(FieldError::new(format!("services[{i}].category"), "must not be empty"));
        }
        if s.quantity == 0 {
            errors.push(FieldError::new(format!("services[{i}].quantity"), "must be at least 1"));
        }
        if !(0..=1_000_000_000_000).contains(&s.estimated_amount) {
            errors.push(FieldError::new(format!("services[{i}].estimated_amount"), "must be 0 to 10^12 minor units"));
        }
        if s.diagnosis.as_deref().is_some_and(|d| !crate::domain::plan::is_icd10_prefix(d)) {
            errors.push(FieldError::new(format!("services[{i}].diagnosis"), "must be an ICD-10 code such as `K35.80`"));
        }
    }
    errors
}

/// Ask for approval of planned care. The answer is decided at once where the rules can
/// (`approved` or `denied`), and `pending` for a claims officer otherwise.
#[utoipa::path(post, path = "/preauthorisations", tag = "preauthorisations", request_body = PreauthRequest,
    responses((status = 201, body = Preauth), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn request_preauth(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Requesters>,
    Json(request): Json<PreauthRequest>,
) -> Result<(StatusCode, Json<Preauth>), ApiError> {
    let errors = check(&request);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !principal.scope.covers_hospital(request.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let asked = preauth::Request {
        hospital_id: request.hospital_id,
        visit_type: request.visit_type,
        planned_date: request.planned_date,
        services: request
            .services
            .iter()
            .map(|s| preauth::RequestedService {
                service_code: s.service_code.trim().to_uppercase(),
                category: s.category.trim().to_owned(),
                quantity: s.quantity,
                estimated_amount: s.estimated_amount,
                diagnosis: s.diagnosis.clone(),
            })
            .collect(),
    };
    let created = service.request_preauth(request.member_number.trim(), &asked, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

async fn visible_preauth(
    service: &InsuranceService,
    principal: &Principal,
    id: Uuid,
) -> Result<preauth::Preauth, ApiError> {
    service
        .preauth(id)
        .await?
        .filter(|p| visible(principal, p.insurer_id, Some(p.hospital_id)))
        .ok_or_else(|| ApiError::NotFound("no such pre-authorisation".into()))
}

/// One pre-authorisation.
#[utoipa::path(get, path = "/preauthorisations/{id}", tag = "preauthorisations",
    responses((status = 200, body = Preauth), (status = 404, body = medcov_http::Problem)))]
async fn get_preauth(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Preauth>, ApiError> {
    Ok(Json(visible_preauth(&service, &principal, id).await?.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

impl From<Verdict> for preauth::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Approve => preauth::Verdict::Approve,
            Verdict::Deny => preauth::Verdict::Deny,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"decision": "approve", "approved_amounts": [4000000], "reason": "capped at the tariff for an appendectomy"}))]
pub struct DecisionRequest {
    pub decision: Verdict,
    /// Per requested service, in order; approving without it approves every estimate in full.
    #[serde(default)]
    pub approved_amounts: Option<Vec<i64>>,
    /// Required to deny or to approve less than was asked.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A claims officer decides a pending request.
#[utoipa::path(post, path = "/preauthorisations/{id}/decision", tag = "preauthorisations", request_body = DecisionRequest,
    responses((status = 200, body = Preauth), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn decide(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<ClaimsOfficers>,
    Path(id): Path<Uuid>,
    Json(input): Json<DecisionRequest>,
) -> Result<Json<Preauth>, ApiError> {
    let current = service
        .preauth(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such pre-authorisation".into()))?;
    let decided = service
        .decide_preauth(
            &current,
            input.decision.into(),
            input.approved_amounts.as_deref(),
            input.reason.as_deref(),
            &actor(&principal),
        )
        .await?;
    Ok(Json(decided.into()))
}
