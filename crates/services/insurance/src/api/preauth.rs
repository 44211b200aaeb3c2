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
use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ClaimsOfficers, actor, today, visible};
use crate::domain::adjudication::PerSetting;
use crate::domain::eligibility::{self, Question, ServiceQuery};
use crate::domain::plan::VisitType;
use crate::domain::preauth::{self, Checked, PreauthStatus};
use crate::store::InsuranceStore;
use crate::store::claims::{Decision, Preauth, PreauthLine, reservation};

pub fn router(store: Arc<InsuranceStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request_preauth))
        .routes(routes!(get_preauth))
        .routes(routes!(decide))
        .with_state(store)
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
    State(store): State<Arc<InsuranceStore>>,
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
    let number = request.member_number.trim();
    let coverage = store
        .coverage(number, request.planned_date)
        .await?
        .ok_or_else(|| ApiError::Validation(vec![FieldError::new("member_number", "no such member")]))?;
    let version = store
        .plan_version(coverage.policy.plan_version_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
    let rules = &version.rules;
    let used = store.usage(coverage.policy.id, coverage.member.member_id, today()).await?;
    let services: Vec<ServiceQuery> = request
        .services
        .iter()
        .map(|s| ServiceQuery {
            service_code: s.service_code.trim().to_uppercase(),
            category: s.category.trim().to_owned(),
            price: Some(s.estimated_amount),
            diagnosis: s.diagnosis.clone(),
        })
        .collect();
    let question = Question {
        date: request.planned_date,
        hospital_id: request.hospital_id,
        visit_type: request.visit_type,
        services: &services,
    };
    let answer = eligibility::answer(rules, &coverage.cover, &used, &question);
    let per_line: Vec<(i64, Option<crate::domain::adjudication::Reason>)> =
        request.services.iter().zip(&answer.services).map(|(s, a)| (s.estimated_amount, a.reason)).collect();
    let status = preauth::automatic(&Checked {
        member_covered: answer.reason,
        lines: &per_line,
        auto_approve_up_to: rules.preauth_auto_approve_up_to,
    })
    .unwrap_or(PreauthStatus::Pending);
    let now = OffsetDateTime::now_utc();
    let approved = status == PreauthStatus::Approved;
    let lines: Vec<PreauthLine> = request
        .services
        .iter()
        .zip(&services)
        .zip(&answer.services)
        .map(|((s, q), a)| PreauthLine {
            service_code: q.service_code.clone(),
            category: q.category.clone(),
            quantity: s.quantity,
            estimated_amount: s.estimated_amount,
            diagnosis: s.diagnosis.clone(),
            reason: answer.reason.or(a.reason),
            approved_amount: if approved { s.estimated_amount } else { 0 },
        })
        .collect();
    let reason = match status {
        PreauthStatus::Denied => Some(match answer.reason {
            Some(r) => format!("the member is not covered on {} ({})", request.planned_date, r.as_str()),
            None => "no requested service is covered by the plan".to_owned(),
        }),
        PreauthStatus::Approved => Some("approved by the plan's rules".to_owned()),
        _ => None,
    };
    let decided = status != PreauthStatus::Pending;
    let preauth = Preauth {
        id: Uuid::now_v7(),
        insurer_id: coverage.policy.insurer_id,
        hospital_id: request.hospital_id,
        policy_id: coverage.policy.id,
        member_id: coverage.member.member_id,
        visit_type: request.visit_type,
        planned_date: request.planned_date,
        status,
        requested_amount: lines.iter().map(|l| l.estimated_amount).sum(),
        approved_amount: lines.iter().map(|l| l.approved_amount).sum(),
        valid_until: approved.then(|| valid_until(request.planned_date, rules.preauth_valid_days)),
        reason,
        decided_by: None,
        decided_at: decided.then_some(now),
        used_by_claim: None,
        created_at: now,
        lines,
    };
    let reserved = if approved { reservation(rules, &preauth.lines) } else { PerSetting::default() };
    store.insert_preauth(&preauth, reserved, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(preauth)))
}

fn valid_until(planned: Date, days: u32) -> Date {
    planned.max(today()) + Duration::days(i64::from(days))
}

async fn visible_preauth(store: &InsuranceStore, principal: &Principal, id: Uuid) -> Result<Preauth, ApiError> {
    store
        .preauth(id)
        .await?
        .filter(|p| visible(principal, p.insurer_id, Some(p.hospital_id)))
        .ok_or_else(|| ApiError::NotFound("no such pre-authorisation".into()))
}

/// One pre-authorisation.
#[utoipa::path(get, path = "/preauthorisations/{id}", tag = "preauthorisations",
    responses((status = 200, body = Preauth), (status = 404, body = medcov_http::Problem)))]
async fn get_preauth(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Preauth>, ApiError> {
    Ok(Json(visible_preauth(&store, &principal, id).await?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<ClaimsOfficers>,
    Path(id): Path<Uuid>,
    Json(input): Json<DecisionRequest>,
) -> Result<Json<Preauth>, ApiError> {
    let current = store
        .preauth(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such pre-authorisation".into()))?;
    if current.status != PreauthStatus::Pending {
        return Err(ApiError::Conflict(format!("the request was already {}", current.status.as_str())));
    }
    let requested: Vec<i64> = current.lines.iter().map(|l| l.estimated_amount).collect();
    let approved = match (input.decision, &input.approved_amounts) {
        (Verdict::Deny, _) => vec![0; requested.len()],
        (Verdict::Approve, None) => requested.clone(),
        (Verdict::Approve, Some(amounts)) => amounts.clone(),
    };
    let mut errors = Vec::new();
    if approved.len() != requested.len() {
        errors.push(FieldError::new(
            "approved_amounts",
            format!("must give one amount per requested service ({})", requested.len()),
        ));
    }
    for (i, (a, r)) in approved.iter().zip(&requested).enumerate() {
        if *a < 0 || a > r {
            errors.push(FieldError::new(format!("approved_amounts[{i}]"), "must be between 0 and the estimate"));
        }
    }
    let status = preauth::decided(&requested, &approved);
    if status != PreauthStatus::Approved && input.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        errors.push(FieldError::new("reason", "is required to deny or to approve less than was asked"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let version = store.policy(current.policy_id).await?.map(|p| p.plan_version_id);
    let rules = match version {
        Some(v) => store.plan_version(v).await?.map(|v| v.rules),
        None => None,
    }
    .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
    let mut lines = current.lines.clone();
    for (line, amount) in lines.iter_mut().zip(&approved) {
        line.approved_amount = *amount;
    }
    let grants = status.grants();
    let decision = Decision {
        status,
        approved,
        valid_until: grants.then(|| valid_until(current.planned_date, rules.preauth_valid_days)),
        reason: input.reason.map(|r| r.trim().to_owned()),
        reserved: if grants { reservation(&rules, &lines) } else { PerSetting::default() },
    };
    Ok(Json(store.decide_preauth(&current, &decision, &actor(&principal)).await?))
}
