//! `/invoices`: invoices for care, their issue and voiding, and payments against them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Principal};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Billers, Readers, actor, hospitals_in_scope, limit_offset};
use crate::domain::invoice::{Payer, Status};
use crate::domain::ledger::Method;
use crate::store::{BillingStore, Draft, Invoice, NewPayment, Payment};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_invoice, list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(issue))
        .routes(routes!(void))
        .routes(routes!(pay, list_payments))
        .with_state(store)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLine {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = 1)]
    pub quantity: u32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "patient_id": "0190f5a4-0000-7000-8000-0000000000c1",
    "date_of_service": "2026-11-20", "lines": [{"service_code": "CONS-GP", "quantity": 1}, {"service_code": "LAB-FBC", "quantity": 2}]}))]
pub struct NewInvoice {
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    #[schema(value_type = String, format = Date)]
    pub date_of_service: Date,
    /// The patient's member number: with a `diagnosis`, the claim is asked of the insurer with
    /// the draft, as for an encounter.
    #[serde(default)]
    pub member_number: Option<String>,
    /// The primary diagnosis (ICD-10), for the claim.
    #[serde(default)]
    pub diagnosis: Option<String>,
    /// `normal` (default), `emergency` or `referral`, for the claim.
    #[serde(default)]
    pub visit_type: Option<String>,
    pub lines: Vec<RequestedLine>,
}

/// Draft an invoice by hand (encounters draft theirs by themselves), priced from the price
/// list valid on the date of service.
#[utoipa::path(post, path = "/invoices", tag = "invoices", request_body = NewInvoice,
    responses((status = 201, body = Invoice), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_invoice(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Json(input): Json<NewInvoice>,
) -> Result<(StatusCode, Json<Invoice>), ApiError> {
    if !principal.scope.covers_hospital(input.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let mut errors = Vec::new();
    if input.lines.is_empty() || input.lines.len() > 200 {
        errors.push(FieldError::new("lines", "must have 1 to 200 lines"));
    }
    for (i, line) in input.lines.iter().enumerate() {
        if !(1..=10_000).contains(&line.quantity) {
            errors.push(FieldError::new(format!("lines[{i}].quantity"), "must be 1 to 10000"));
        }
    }
    if input.visit_type.as_deref().is_some_and(|v| !matches!(v, "normal" | "emergency" | "referral")) {
        errors.push(FieldError::new("visit_type", "must be normal, emergency or referral"));
    }
    if input.diagnosis.as_deref().is_some_and(|d| d.trim().is_empty() || d.len() > 10) {
        errors.push(FieldError::new("diagnosis", "must be an ICD-10 code such as `J06.9`"));
    }
    if input.date_of_service > OffsetDateTime::now_utc().date().next_day().unwrap_or(input.date_of_service) {
        errors.push(FieldError::new("date_of_service", "must not be in the future"));
    }
    let services: Vec<(String, u32, Option<String>, Option<String>)> =
        input.lines.iter().map(|l| (l.service_code.trim().to_uppercase(), l.quantity, None, None)).collect();
    let (lines, currency) = store.price_lines(input.hospital_id, input.date_of_service, &services).await?;
    for (i, line) in lines.iter().enumerate() {
        if line.unpriced {
            errors.push(FieldError::new(
                format!("lines[{i}].service_code"),
                format!("has no price on {} in this hospital's price list", input.date_of_service),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let draft = Invoice::draft(Draft {
        id: Uuid::now_v7(),
        hospital_id: input.hospital_id,
        patient_id: input.patient_id,
        encounter_id: None,
        member_number: input.member_number,
        currency: currency.unwrap_or_default(),
        date_of_service: input.date_of_service,
        lines,
    });
    let claim = match &input.diagnosis {
        Some(diagnosis) => draft.claim_request(diagnosis.trim(), input.visit_type.as_deref().unwrap_or("normal")),
        None => None,
    };
    let (created, _) = store.create_invoice(&draft, &actor(&principal), None, claim).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    status: Option<Status>,
    patient_id: Option<Uuid>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Invoices of the caller's hospitals, newest first.
#[utoipa::path(get, path = "/invoices", tag = "invoices", params(InvoiceQuery), responses((status = 200, body = Vec<Invoice>)))]
async fn list_invoices(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Json<Vec<Invoice>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    let hospitals = hospitals_in_scope(&principal);
    Ok(Json(store.invoices(hospitals.as_deref(), query.status, query.patient_id, limit, offset).await?))
}

pub(super) async fn visible(store: &BillingStore, principal: &Principal, id: Uuid) -> Result<Invoice, ApiError> {
    store
        .invoice(id)
        .await?
        .filter(|i| principal.scope.covers_hospital(i.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such invoice".into()))
}

/// One invoice, with its lines and shares.
#[utoipa::path(get, path = "/invoices/{id}", tag = "invoices",
    responses((status = 200, body = Invoice), (status = 404, body = medcov_http::Problem)))]
async fn get_invoice(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>, ApiError> {
    Ok(Json(visible(&store, &principal, id).await?))
}

/// Issue a draft: its receivables enter the ledger and `billing.invoice_issued.v1` is emitted.
/// An invoice with an unpriced line cannot be issued (409).
#[utoipa::path(post, path = "/invoices/{id}/issue", tag = "invoices",
    responses((status = 200, body = Invoice), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn issue(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>, ApiError> {
    let current = visible(&store, &principal, id).await?;
    Ok(Json(store.issue(&current, &actor(&principal)).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "registered twice"}))]
pub struct VoidRequest {
    pub reason: String,
}

/// Void an invoice that has no payment (refund first otherwise).
#[utoipa::path(post, path = "/invoices/{id}/void", tag = "invoices", request_body = VoidRequest,
    responses((status = 200, body = Invoice), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn void(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<VoidRequest>,
) -> Result<Json<Invoice>, ApiError> {
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new("reason", "must be 1 to 500 characters")]));
    }
    let current = visible(&store, &principal, id).await?;
    Ok(Json(store.void(&current, reason, &actor(&principal)).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payer": "patient", "method": "mobile_money", "amount": 200000, "external_reference": "MPESA-QK71X2"}))]
pub struct PaymentRequest {
    pub payer: Payer,
    pub method: Method,
    /// Minor units of the invoice's currency; more than is owed becomes the payer's credit.
    pub amount: i64,
    #[serde(default)]
    pub external_reference: Option<String>,
}

/// Record a payment. The `Idempotency-Key` header (1 to 255 visible characters) is required:
/// the same request again returns the first answer (201, `Idempotency-Replayed: true`);
/// another request under the same key is 422. Partial payments leave the invoice `partially_paid`; overpayments become credit.
#[utoipa::path(post, path = "/invoices/{id}/payments", tag = "invoices", request_body = PaymentRequest,
    params(("Idempotency-Key" = String, Header, description = "A key unique to this payment attempt, such as a UUID")),
    responses(
        (status = 201, description = "The payment; a repeat under the same key carries `Idempotency-Replayed: true`.", body = Payment),
        (status = 404, body = medcov_http::Problem),
        (status = 409, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
        (status = 428, description = "No Idempotency-Key.", body = medcov_http::Problem),
    ))]
async fn pay(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<PaymentRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Payment>), ApiError> {
    let key = idempotency_key(&headers)?;
    let mut errors = Vec::new();
    if !(1..=1_000_000_000_000).contains(&input.amount) {
        errors.push(FieldError::new("amount", "must be 1 to 10^12 minor units"));
    }
    if input.external_reference.as_deref().is_some_and(|r| r.chars().count() > 100) {
        errors.push(FieldError::new("external_reference", "must be at most 100 characters"));
    }
    if input.payer == Payer::Insurer
        && input.method != Method::InsurerRemittance
        && input.method != Method::BankTransfer
    {
        errors.push(FieldError::new("method", "an insurer pays by insurer_remittance or bank_transfer"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let current = visible(&store, &principal, id).await?;
    let canonical = serde_json::to_string(&(id, &input)).map_err(ApiError::internal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let payment = NewPayment {
        payer: input.payer,
        method: input.method,
        amount: input.amount,
        external_reference: input.external_reference.map(|r| r.trim().to_owned()),
        idempotency_key: key,
        request_hash: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    };
    let (recorded, created) = store.pay(current.id, &payment, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, replayed(!created), Json(recorded)))
}

/// `Idempotency-Replayed: true` on the answer to a repeat, as the Idempotency-Key middleware
/// marks its replays: a repeat that reaches the handler (the middleware's store was down, say)
/// answers the same way.
pub(super) fn replayed(repeat: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if repeat {
        headers.insert("idempotency-replayed", axum::http::HeaderValue::from_static("true"));
    }
    headers
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(ApiError::PreconditionRequired(
            "send an Idempotency-Key header (a UUID, say) so a retried payment is never taken twice".into(),
        ));
    };
    let key = value.to_str().unwrap_or("").trim().trim_matches('"');
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest {
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            errors: vec![FieldError::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters")],
        });
    }
    Ok(key.to_owned())
}

/// The payments of an invoice.
#[utoipa::path(get, path = "/invoices/{id}/payments", tag = "invoices",
    responses((status = 200, body = Vec<Payment>), (status = 404, body = medcov_http::Problem)))]
async fn list_payments(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let current = visible(&store, &principal, id).await?;
    Ok(Json(store.payments(current.id).await?))
}
