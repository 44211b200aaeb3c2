//! `/claims`: submission (idempotent on the hospital's reference), adjudication with a full
//! explanation per line, manual review with audited overrides, reversal, and payment.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Principal, Role, Scope};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ClaimsOfficers, actor, limit_offset, today, visible};
use crate::domain::adjudication::{LineResult, Outcome, Override};
use crate::domain::claim::{self, ClaimStatus, HistoryEntry, Submission};
use crate::domain::plan::VisitType;
use crate::service::{self, InsuranceService};

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(submit, list_claims))
        .routes(routes!(get_claim))
        .routes(routes!(history))
        .routes(routes!(review))
        .routes(routes!(adjudicate))
        .routes(routes!(reverse))
        .routes(routes!(paid))
        .with_state(service)
}

/// One line of a claim as the hospital sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimLine {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    #[schema(example = 1)]
    pub quantity: u32,
    /// Minor units of the claim's currency.
    #[schema(example = 250000)]
    pub unit_price: i64,
    /// ICD-10.
    #[schema(example = "J06.9")]
    pub diagnosis: String,
    #[schema(value_type = String, format = Date, example = "2026-06-01")]
    pub date_of_service: Date,
    /// The approved pre-authorisation that covers this line, where one was needed.
    #[serde(default)]
    pub preauth_id: Option<Uuid>,
}

impl From<ClaimLine> for claim::ClaimLine {
    fn from(l: ClaimLine) -> Self {
        claim::ClaimLine {
            service_code: l.service_code,
            category: l.category,
            quantity: l.quantity,
            unit_price: l.unit_price,
            diagnosis: l.diagnosis,
            date_of_service: l.date_of_service,
            preauth_id: l.preauth_id,
        }
    }
}

impl From<claim::ClaimLine> for ClaimLine {
    fn from(l: claim::ClaimLine) -> Self {
        ClaimLine {
            service_code: l.service_code,
            category: l.category,
            quantity: l.quantity,
            unit_price: l.unit_price,
            diagnosis: l.diagnosis,
            date_of_service: l.date_of_service,
            preauth_id: l.preauth_id,
        }
    }
}

/// A claim and, once adjudicated, where each cent of each line landed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    /// The hospital's own reference: submitting it again returns this claim.
    pub reference: String,
    pub member_id: Uuid,
    pub member_number: String,
    pub policy_id: Option<Uuid>,
    /// The plan version it was adjudicated under.
    pub plan_version_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub currency: String,
    pub status: ClaimStatus,
    pub outcome: Option<Outcome>,
    pub lines: Vec<ClaimLine>,
    /// One result per line, in order.
    pub result: Option<Vec<LineResult>>,
    pub insurer_total: i64,
    pub patient_total: i64,
    /// How many times it has been adjudicated (a reversal or review allows another).
    pub adjudication_no: i32,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub adjudicated_at: Option<OffsetDateTime>,
}

impl From<claim::Claim> for Claim {
    fn from(c: claim::Claim) -> Self {
        Claim {
            id: c.id,
            insurer_id: c.insurer_id,
            hospital_id: c.hospital_id,
            reference: c.reference,
            member_id: c.member_id,
            member_number: c.member_number,
            policy_id: c.policy_id,
            plan_version_id: c.plan_version_id,
            visit_type: c.visit_type,
            currency: c.currency,
            status: c.status,
            outcome: c.outcome,
            lines: c.lines.into_iter().map(ClaimLine::from).collect(),
            result: c.result,
            insurer_total: c.insurer_total,
            patient_total: c.patient_total,
            adjudication_no: c.adjudication_no,
            version: c.version,
            submitted_at: c.submitted_at,
            adjudicated_at: c.adjudicated_at,
        }
    }
}

/// One step in a claim's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClaimEvent {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor: Uuid,
    /// `submitted`, `adjudicated`, `adjudicated_with_overrides`, `sent_to_review`, `reversed`, `paid`.
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub request_id: Option<String>,
}

impl From<HistoryEntry> for ClaimEvent {
    fn from(e: HistoryEntry) -> Self {
        ClaimEvent { at: e.at, actor: e.actor, action: e.action, detail: e.detail, request_id: e.request_id }
    }
}

/// Who submits claims: the hospital's desk and billing, and services (billing's worker).
pub struct Submitters;
impl Policy for Submitters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::HospitalClerk, Role::BillingClerk, Role::Service];
}

/// Who reads claims: the hospital that sent them and the insurer that owes them.
pub struct Readers;
impl Policy for Readers {
    const ROLES: &'static [Role] =
        &[Role::Admin, Role::HospitalClerk, Role::BillingClerk, Role::ClaimsOfficer, Role::Auditor, Role::Service];
}

/// Who records the insurer's payment of a claim.
pub struct Payers;
impl Policy for Payers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Service];
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "hospital_id": "0190f5a4-0000-7000-8000-000000000001",
    "reference": "SMG-2026-000123",
    "member_number": "AAR-0000000195",
    "visit_type": "normal",
    "currency": "KES",
    "lines": [
        {"service_code": "CONS-GP", "category": "consultation", "quantity": 1, "unit_price": 300000, "diagnosis": "J06.9", "date_of_service": "2026-06-01"},
        {"service_code": "LAB-FBC", "category": "laboratory", "quantity": 1, "unit_price": 250000, "diagnosis": "J06.9", "date_of_service": "2026-06-01"}
    ]
}))]
pub struct ClaimRequest {
    pub hospital_id: Uuid,
    /// The hospital's own claim reference: sending the same claim again returns the first
    /// (200); another claim under the same reference is refused (422).
    pub reference: String,
    pub member_number: String,
    pub visit_type: VisitType,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
}

fn check(request: &ClaimRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let reference = request.reference.trim();
    if reference.is_empty() || reference.chars().count() > 64 {
        errors.push(FieldError::new("reference", "must be 1 to 64 characters"));
    }
    if !crate::domain::policy::member_number_valid(request.member_number.trim()) {
        errors.push(FieldError::new("member_number", "is not a member number (its check digits do not match)"));
    }
    if let Err(why) = medcov_money::Currency::parse(&request.currency) {
        errors.push(FieldError::new("currency", why));
    }
    if request.lines.is_empty() || request.lines.len() > 200 {
        errors.push(FieldError::new("lines", "must have 1 to 200 lines"));
    }
    let tomorrow = today().next_day().unwrap_or_else(today);
    for (i, l) in request.lines.iter().enumerate() {
        let at = |f: &str| format!("lines[{i}].{f}");
        if l.service_code.trim().is_empty() || l.service_code.len() > 40 {
            errors.push(FieldError::new(at("service_code"), "must be 1 to 40 characters"));
        }
        if l.category.trim().is_empty() || l.category.len() > 40 {
            errors.push(FieldError::new(at("category"), "must be 1 to 40 characters"));
        }
        if !(1..=10_000).contains(&l.quantity) {
            errors.push(FieldError::new(at("quantity"), "must be 1 to 10000"));
        }
        if !(0..=1_000_000_000_000).contains(&l.unit_price) {
            errors.push(FieldError::new(at("unit_price"), "must be 0 to 10^12 minor units"));
        }
        if !crate::domain::plan::is_icd10_prefix(&l.diagnosis) {
            errors.push(FieldError::new(at("diagnosis"), "must be an ICD-10 code such as `J06.9`"));
        }
        // A day of slack for hospitals ahead of UTC.
        if l.date_of_service > tomorrow {
            errors.push(FieldError::new(at("date_of_service"), "must not be in the future"));
        }
    }
    errors
}

/// Submit a claim; it is adjudicated at once, and the answer says where each cent of each line
/// landed and why. `201` for a new claim, `200` for a repeat of one already submitted.
#[utoipa::path(post, path = "/claims", tag = "claims", request_body = ClaimRequest,
    responses(
        (status = 201, body = Claim),
        (status = 200, description = "The same claim was submitted before under this reference.", body = Claim),
        (status = 404, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn submit(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Submitters>,
    Json(mut request): Json<ClaimRequest>,
) -> Result<(StatusCode, Json<Claim>), ApiError> {
    let errors = check(&request);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !principal.scope.covers_hospital(request.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    request.reference = request.reference.trim().to_owned();
    request.member_number = request.member_number.trim().to_owned();
    for line in &mut request.lines {
        line.service_code = line.service_code.trim().to_uppercase();
        line.category = line.category.trim().to_owned();
        line.diagnosis = line.diagnosis.trim().to_uppercase();
    }
    let canonical = serde_json::to_string(&request).map_err(ApiError::internal)?;
    let submission = Submission {
        hospital_id: request.hospital_id,
        reference: request.reference,
        member_number: request.member_number,
        visit_type: request.visit_type,
        currency: request.currency,
        lines: request.lines.into_iter().map(claim::ClaimLine::from).collect(),
        request_hash: service::digest(canonical.as_bytes()),
    };
    let (claim, created) = service.submit(submission, &actor(&principal)).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(claim.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClaimQuery {
    status: Option<ClaimStatus>,
    /// Only this member's claims.
    member_number: Option<String>,
    /// Only the claim sent under this reference (billing's claims: the invoice number).
    reference: Option<String>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (the `paging.next_offset` of the previous page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// Claims the caller may see (their insurer's, or their hospitals'), newest first.
#[utoipa::path(get, path = "/claims", tag = "claims", params(ClaimQuery), responses((status = 200, body = Page<Claim>)))]
async fn list_claims(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<ClaimQuery>,
) -> Result<Json<Page<Claim>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    let fetch = limit + 1;
    let filter = crate::store::ClaimFilter {
        status: query.status,
        member_number: query.member_number,
        reference: query.reference,
    };
    let claims = match &principal.scope {
        Scope::Platform => service.claims(None, None, &filter, fetch, offset).await?,
        Scope::Insurer { insurer } => service.claims(Some(*insurer), None, &filter, fetch, offset).await?,
        Scope::Hospitals { hospitals } => service.claims(None, Some(hospitals), &filter, fetch, offset).await?,
        Scope::Own => Vec::new(),
    };
    Ok(Json(Page::offset(claims, limit, offset).map(Claim::from)))
}

async fn visible_claim(service: &InsuranceService, principal: &Principal, id: Uuid) -> Result<claim::Claim, ApiError> {
    service
        .claim(id)
        .await?
        .filter(|c| visible(principal, c.insurer_id, Some(c.hospital_id)))
        .ok_or_else(|| ApiError::NotFound("no such claim".into()))
}

/// A claim the caller's insurer owes (the insurer side only).
async fn insurers_claim(service: &InsuranceService, principal: &Principal, id: Uuid) -> Result<claim::Claim, ApiError> {
    service
        .claim(id)
        .await?
        .filter(|c| principal.scope.covers_insurer(c.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such claim".into()))
}

/// One claim, with its adjudication.
#[utoipa::path(get, path = "/claims/{id}", tag = "claims",
    responses((status = 200, body = Claim), (status = 404, body = medcov_http::Problem)))]
async fn get_claim(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Claim>, ApiError> {
    Ok(Json(visible_claim(&service, &principal, id).await?.into()))
}

/// Every step of a claim: submitted, adjudicated, sent to review, overrides, reversals, paid.
#[utoipa::path(get, path = "/claims/{id}/history", tag = "claims",
    responses((status = 200, body = Page<ClaimEvent>), (status = 404, body = medcov_http::Problem)))]
async fn history(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<ClaimEvent>>, ApiError> {
    let claim = visible_claim(&service, &principal, id).await?;
    Ok(Json(Page::whole(service.claim_history(claim.id).await?).map(ClaimEvent::from)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "invoice and clinical notes disagree"}))]
pub struct Reasoned {
    pub reason: String,
}

fn reason(input: &Reasoned) -> Result<String, ApiError> {
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new("reason", "must be 1 to 500 characters")]));
    }
    Ok(reason.to_owned())
}

/// Send an adjudicated claim to manual review: its accumulator entries are reversed until a
/// claims officer adjudicates it again.
#[utoipa::path(post, path = "/claims/{id}/review", tag = "claims", request_body = Reasoned,
    responses((status = 200, body = Claim), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn review(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<ClaimsOfficers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Reasoned>,
) -> Result<Json<Claim>, ApiError> {
    let why = reason(&input)?;
    let claim = insurers_claim(&service, &principal, id).await?;
    Ok(Json(service.unadjudicate(&claim, ClaimStatus::InReview, &why, &actor(&principal)).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"overrides": [{"line": 2, "insurer_pays": 250000, "reason": "approved by phone, reference 7781"}]}))]
pub struct AdjudicateRequest {
    #[serde(default)]
    pub overrides: Vec<Override>,
}

/// Adjudicate a claim in review (or one only submitted) again, optionally overriding what the
/// insurer pays on some lines; each override is recorded with its reason.
#[utoipa::path(post, path = "/claims/{id}/adjudicate", tag = "claims", request_body = AdjudicateRequest,
    responses((status = 200, body = Claim), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn adjudicate(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<ClaimsOfficers>,
    Path(id): Path<Uuid>,
    Json(input): Json<AdjudicateRequest>,
) -> Result<Json<Claim>, ApiError> {
    let claim = insurers_claim(&service, &principal, id).await?;
    Ok(Json(service.adjudicate(claim.id, &input.overrides, &actor(&principal)).await?.into()))
}

/// Reverse an adjudication: its accumulator entries are negated (nothing is deleted) and its
/// approvals released; the claim is `submitted` again and may be adjudicated anew.
#[utoipa::path(post, path = "/claims/{id}/reverse", tag = "claims", request_body = Reasoned,
    responses((status = 200, body = Claim), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn reverse(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<ClaimsOfficers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Reasoned>,
) -> Result<Json<Claim>, ApiError> {
    let why = reason(&input)?;
    let claim = insurers_claim(&service, &principal, id).await?;
    Ok(Json(service.unadjudicate(&claim, ClaimStatus::Submitted, &why, &actor(&principal)).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_reference": "EFT-2026-06-30-0042"}))]
pub struct PaidRequest {
    pub payment_reference: String,
}

/// Record that the insurer paid an adjudicated claim.
#[utoipa::path(post, path = "/claims/{id}/paid", tag = "claims", request_body = PaidRequest,
    responses((status = 200, body = Claim), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn paid(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Payers>,
    Path(id): Path<Uuid>,
    Json(input): Json<PaidRequest>,
) -> Result<Json<Claim>, ApiError> {
    let reference = input.payment_reference.trim();
    if reference.is_empty() || reference.chars().count() > 100 {
        return Err(ApiError::Validation(vec![FieldError::new("payment_reference", "must be 1 to 100 characters")]));
    }
    let claim = insurers_claim(&service, &principal, id).await?;
    Ok(Json(service.mark_paid(&claim, reference, &actor(&principal)).await?.into()))
}
