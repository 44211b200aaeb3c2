//! `GET /invoices/{id}/estimate`: how an invoice splits between insurer and patient. Once the
//! insurer has adjudicated the invoice's claim, that is the split; until then, the insurer's
//! eligibility answer for the invoice's lines, asked now (as the caller: the insurance service
//! checks the caller may ask). Either way insurer + patient = the line's total, to the cent.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use medcov_http::{ApiError, Json, Path, Query};
use medcov_mesh::Upstream;
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Readers;
use crate::domain::invoice::{LineAdjustment, SplitSource};
use crate::service::BillingService;

#[derive(Clone)]
struct Estimates {
    service: Arc<BillingService>,
    insurance: Upstream,
}

pub fn router(service: Arc<BillingService>, insurance: Upstream) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(estimate)).with_state(Estimates { service, insurance })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EstimateQuery {
    /// `eligibility`: ask the insurer even when the claim is adjudicated (to compare).
    #[serde(default)]
    #[param(inline)]
    basis: Option<Basis>,
    /// The visit type to ask about (`normal` by default).
    #[serde(default)]
    visit_type: Option<String>,
    /// The diagnosis, so exclusions by diagnosis are checked.
    #[serde(default)]
    diagnosis: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Eligibility,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"invoice_id": "0190f5a4-0000-7000-8000-000000000010", "source": "estimate", "reason": null,
    "currency": "KES", "total": 550000, "insurer_share": 450000, "patient_share": 100000,
    "lines": [{"service_code": "CONS-GP", "total": 300000, "insurer_share": 250000, "patient_share": 50000, "covered": true},
              {"service_code": "LAB-FBC", "total": 250000, "insurer_share": 200000, "patient_share": 50000, "covered": true}]}))]
pub struct InvoiceEstimate {
    pub invoice_id: Uuid,
    /// `adjudication` (the insurer's decision), `estimate` (its eligibility answer now),
    /// `not_covered` (the insurer covers none of it; `reason` says why) or `self_pay` (no member
    /// number).
    pub source: &'static str,
    pub reason: Option<String>,
    pub currency: String,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    pub lines: Vec<LineEstimate>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineEstimate {
    pub service_code: String,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    pub covered: bool,
    /// Why the patient pays their share: each cut with its code and amount, from the
    /// adjudication or the insurer's estimate (`not_covered` for the whole line the insurer
    /// covers none of; none for self-pay).
    pub adjustments: Vec<LineAdjustment>,
}

/// What billing reads of an eligibility answer.
#[derive(Deserialize)]
struct Answer {
    covered: bool,
    reason: Option<serde_json::Value>,
    services: Vec<ServiceAnswer>,
}

#[derive(Deserialize)]
struct ServiceAnswer {
    covered: bool,
    estimate: Option<Split>,
}

#[derive(Deserialize)]
struct Split {
    insurer_pays: i64,
    #[serde(default)]
    adjustments: Vec<LineAdjustment>,
}

/// The invoice's split between insurer and patient: adjudicated, or estimated by the insurer.
#[utoipa::path(get, path = "/invoices/{id}/estimate", tag = "invoices", params(EstimateQuery),
    responses((status = 200, body = InvoiceEstimate), (status = 404, body = medcov_http::Problem),
        (status = 502, description = "The insurer could not be asked.", body = medcov_http::Problem)))]
async fn estimate(
    State(state): State<Estimates>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<EstimateQuery>,
    headers: HeaderMap,
) -> Result<Json<InvoiceEstimate>, ApiError> {
    let invoice = state.service.invoice(&principal.scope, id).await?;
    let of = |source: &'static str, reason: Option<String>, lines: Vec<LineEstimate>| {
        let insurer_share = lines.iter().map(|l| l.insurer_share).sum();
        let patient_share = lines.iter().map(|l| l.patient_share).sum();
        InvoiceEstimate {
            invoice_id: invoice.id,
            source,
            reason,
            currency: invoice.currency.clone(),
            total: invoice.total,
            insurer_share,
            patient_share,
            lines,
        }
    };
    // All on the patient: self-pay (no adjustment: there is no insurer), or not covered.
    let on_patient = |covered: bool| {
        invoice
            .lines
            .iter()
            .map(|l| LineEstimate {
                service_code: l.service_code.clone(),
                total: l.total,
                insurer_share: 0,
                patient_share: l.total,
                covered,
                adjustments: if invoice.member_number.is_some() && l.total > 0 {
                    vec![LineAdjustment { code: "not_covered".into(), amount: l.total }]
                } else {
                    Vec::new()
                },
            })
            .collect::<Vec<_>>()
    };
    if invoice.split_source == SplitSource::Claim && query.basis.is_none() {
        let lines = invoice
            .lines
            .iter()
            .map(|l| LineEstimate {
                service_code: l.service_code.clone(),
                total: l.total,
                insurer_share: l.insurer_share,
                patient_share: l.patient_share,
                covered: l.insurer_share > 0,
                adjustments: l.adjustments.clone(),
            })
            .collect();
        return Ok(Json(of("adjudication", None, lines)));
    }
    let Some(member_number) = invoice.member_number.clone() else {
        return Ok(Json(of("self_pay", None, on_patient(false))));
    };
    // Asked after the adjudication (to compare), the claim itself is left out of what the
    // member had used: otherwise it would count against itself.
    let question = serde_json::json!({
        "excluding_claim": invoice.claim_id,
        "member_number": member_number,
        "date": invoice.date_of_service.to_string(),
        "hospital_id": invoice.hospital_id,
        "visit_type": query.visit_type.as_deref().unwrap_or("normal"),
        "services": invoice.lines.iter().map(|l| serde_json::json!({
            "service_code": l.service_code, "category": l.category, "price": l.total, "diagnosis": query.diagnosis,
        })).collect::<Vec<_>>(),
    });
    let mut request = Request::post("/eligibility")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(question.to_string()))
        .map_err(ApiError::internal)?;
    // Asked as the caller: the insurance service decides what the caller may ask.
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        request.headers_mut().insert(header::AUTHORIZATION, authorization.clone());
    }
    let response = state.insurance.forward(request, "/eligibility", 1024 * 1024).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
        .await
        .map_err(|_| ApiError::BadGateway("the insurer's answer could not be read".into()))?;
    // Only "no such member" means the insurer covers none of it; any other 404 (a plan version
    // gone, a hospital outside the caller's scope) is not an answer about coverage.
    let detail =
        serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|p| p["detail"].as_str().map(str::to_owned));
    if status.as_u16() == 404 && detail.as_deref() == Some("no such member") {
        return Ok(Json(of("not_covered", Some("the insurer knows no such member".into()), on_patient(false))));
    }
    if !status.is_success() {
        let why = detail.map(|d| format!(": {d}")).unwrap_or_default();
        return Err(ApiError::BadGateway(format!("the insurer answered {status} to the eligibility question{why}")));
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadGateway(format!("the insurer's answer is not as expected: {e}")))?;
    let reason = answer.reason.map(|r| r.as_str().map(str::to_owned).unwrap_or_else(|| r.to_string()));
    if !answer.covered {
        return Ok(Json(of("not_covered", reason, on_patient(false))));
    }
    let lines = invoice
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let service = answer.services.get(i);
            let covered = service.is_some_and(|s| s.covered);
            let estimate = service.and_then(|s| s.estimate.as_ref()).filter(|_| covered);
            let insurer = estimate.map(|e| e.insurer_pays.clamp(0, line.total)).unwrap_or(0);
            let adjustments = match estimate {
                Some(e) => e.adjustments.clone(),
                None if line.total > 0 => vec![LineAdjustment { code: "not_covered".into(), amount: line.total }],
                None => Vec::new(),
            };
            LineEstimate {
                service_code: line.service_code.clone(),
                total: line.total,
                insurer_share: insurer,
                patient_share: line.total - insurer,
                covered,
                adjustments,
            }
        })
        .collect();
    Ok(Json(of("estimate", reason, lines)))
}
