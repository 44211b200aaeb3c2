//! `/invoices`: invoices for care, their issue and voiding, and payments against them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_domain::Rejection;
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Billers, Readers, actor, idempotency_key, limit_offset, reason, replayed, request_hash};
use crate::domain::invoice::{self as domain, ManualInvoice, Payer, SplitSource, Status};
use crate::domain::ledger::Method;
use crate::service::{BillingService, NewPayment};

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_invoice, list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(issue))
        .routes(routes!(void))
        .routes(routes!(pay, list_payments))
        .with_state(service)
}

/// An invoice for care.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "INV-20261126-0190F5A4")]
    pub number: String,
    pub patient_id: Uuid,
    /// The encounter it was drafted from, if any.
    pub encounter_id: Option<Uuid>,
    pub member_number: Option<String>,
    pub currency: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_service: Date,
    pub status: Status,
    pub lines: Vec<Line>,
    pub total: i64,
    pub insurer_share: i64,
    /// Of the insurer share, what the insurer pays ex gratia, beyond the plan's limits: never
    /// covered benefit (journaled on `ex_gratia_revenue`, not `care_revenue`).
    pub ex_gratia: i64,
    pub patient_share: i64,
    pub paid_patient: i64,
    pub paid_insurer: i64,
    /// The claim whose adjudication split the lines, once it has.
    pub claim_id: Option<Uuid>,
    /// The insurer owing the insurer share, once a claim split the invoice.
    pub insurer_id: Option<Uuid>,
    /// `none` (all on the patient), or `claim` (split by the adjudication).
    pub split_source: SplitSource,
    pub void_reason: Option<String>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub issued_at: Option<OffsetDateTime>,
}

/// One line of an invoice.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Line {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    pub description: String,
    pub quantity: u32,
    /// Minor units, from the price list valid on the date of service.
    pub unit_price: i64,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    /// Of the insurer share, what the insurer pays ex gratia (code `ex_gratia` in
    /// `adjustments`).
    pub ex_gratia: i64,
    /// The service had no price on the date of service; the invoice cannot be issued.
    pub unpriced: bool,
    /// Why the patient pays their share, from the insurer's adjudication: each cut or
    /// override with its code and amount (they add up to the patient's share); empty until
    /// adjudicated, and for self-pay invoices.
    pub adjustments: Vec<domain::LineAdjustment>,
}

impl From<domain::Line> for Line {
    fn from(l: domain::Line) -> Self {
        Line {
            service_code: l.service_code,
            category: l.category,
            description: l.description,
            quantity: l.quantity,
            unit_price: l.unit_price,
            total: l.total,
            insurer_share: l.insurer_share,
            patient_share: l.patient_share,
            ex_gratia: l.ex_gratia,
            unpriced: l.unpriced,
            adjustments: l.adjustments,
        }
    }
}

impl From<domain::Invoice> for Invoice {
    fn from(i: domain::Invoice) -> Self {
        Invoice {
            id: i.id,
            hospital_id: i.hospital_id,
            number: i.number,
            patient_id: i.patient_id,
            encounter_id: i.encounter_id,
            member_number: i.member_number,
            currency: i.currency,
            date_of_service: i.date_of_service,
            status: i.status,
            lines: i.lines.into_iter().map(Line::from).collect(),
            total: i.total,
            insurer_share: i.insurer_share,
            ex_gratia: i.ex_gratia,
            patient_share: i.patient_share,
            paid_patient: i.paid_patient,
            paid_insurer: i.paid_insurer,
            claim_id: i.claim_id,
            insurer_id: i.insurer_id,
            split_source: i.split_source,
            void_reason: i.void_reason,
            version: i.version,
            created_at: i.created_at,
            issued_at: i.issued_at,
        }
    }
}

/// A payment against an invoice.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub invoice_id: Uuid,
    /// `patient` or `insurer`.
    pub payer: Payer,
    /// `cash`, `card`, `mobile_money`, `bank_transfer`, `insurer_remittance`.
    pub method: Method,
    pub amount: i64,
    /// What went to the invoice.
    pub applied: i64,
    /// What was more than owed: the payer's credit.
    pub credit: i64,
    pub external_reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<domain::Payment> for Payment {
    fn from(p: domain::Payment) -> Self {
        Payment {
            id: p.id,
            invoice_id: p.invoice_id,
            payer: p.payer,
            method: p.method,
            amount: p.amount,
            applied: p.applied,
            credit: p.credit,
            external_reference: p.external_reference,
            created_at: p.created_at,
        }
    }
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    headers: axum::http::HeaderMap,
    Json(input): Json<NewInvoice>,
) -> Result<(StatusCode, Json<Invoice>), ApiError> {
    let asked = ManualInvoice {
        hospital_id: input.hospital_id,
        patient_id: input.patient_id,
        date_of_service: input.date_of_service,
        member_number: input.member_number,
        diagnosis: input.diagnosis,
        visit_type: input.visit_type,
        lines: input.lines.into_iter().map(|l| (l.service_code, l.quantity)).collect(),
    };
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    let created = service.draft_invoice(&principal.scope, asked, &actor(&principal), authorization).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    status: Option<Status>,
    /// Only this patient's invoices.
    patient_id: Option<Uuid>,
    /// Only the invoice of this encounter (one at most).
    encounter_id: Option<Uuid>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (the `paging.next_offset` of the previous page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// Invoices of the caller's hospitals, newest first.
#[utoipa::path(get, path = "/invoices", tag = "invoices", params(InvoiceQuery), responses((status = 200, body = Page<Invoice>)))]
async fn list_invoices(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Json<Page<Invoice>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    let invoices = service
        .invoices(&principal.scope, query.status, query.patient_id, query.encounter_id, limit + 1, offset)
        .await?;
    Ok(Json(Page::offset(invoices, limit, offset).map(Invoice::from)))
}

/// One invoice, with its lines and shares.
#[utoipa::path(get, path = "/invoices/{id}", tag = "invoices",
    responses((status = 200, body = Invoice), (status = 404, body = medcov_http::Problem)))]
async fn get_invoice(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>, ApiError> {
    Ok(Json(service.invoice(&principal.scope, id).await?.into()))
}

/// Issue a draft: its receivables enter the ledger and `billing.invoice_issued.v1` is emitted.
/// An invoice with an unpriced line cannot be issued (409).
#[utoipa::path(post, path = "/invoices/{id}/issue", tag = "invoices",
    responses((status = 200, body = Invoice), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn issue(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Invoice>, ApiError> {
    Ok(Json(service.issue(&principal.scope, id, &actor(&principal)).await?.into()))
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<VoidRequest>,
) -> Result<Json<Invoice>, ApiError> {
    let reason = reason(&input.reason)?;
    Ok(Json(service.void(&principal.scope, id, reason, &actor(&principal)).await?.into()))
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<PaymentRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Payment>), ApiError> {
    let key = idempotency_key(&headers, &principal)?;
    let reference = input.external_reference.as_deref();
    Rejection::check(domain::payment_problems(input.payer, input.method, input.amount, reference))?;
    let payment = NewPayment {
        payer: input.payer,
        method: input.method,
        amount: input.amount,
        external_reference: input.external_reference.as_deref().map(|r| r.trim().to_owned()),
        idempotency_key: key,
        request_hash: request_hash(&(id, &input))?,
    };
    let (recorded, created) = service.pay(&principal.scope, id, &payment, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, replayed(!created), Json(recorded.into())))
}

/// The payments of an invoice.
#[utoipa::path(get, path = "/invoices/{id}/payments", tag = "invoices",
    responses((status = 200, body = Page<Payment>), (status = 404, body = medcov_http::Problem)))]
async fn list_payments(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<Payment>>, ApiError> {
    let payments = service.payments(&principal.scope, id).await?;
    Ok(Json(Page::whole(payments).map(Payment::from)))
}
