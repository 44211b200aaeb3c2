//! Rows as the tables hold them, and their conversion to the domain's records. A stored word
//! this version does not know is [`StoreError::Corrupt`], naming its table and column, never a
//! default.

use medcov_store::{StoreError, decode};
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::commission::{Commission, Payout};
use crate::domain::invoice::{Invoice, Line, Payment};
use crate::domain::premium::{Premium, PremiumPayment};
use crate::domain::prices::Price;
use crate::domain::refund::{Refund, Refundable};

pub(crate) const PRICE_COLUMNS: &str =
    "id, hospital_id, service_code, category, description, unit_price, currency, effective_from, effective_to";

#[derive(sqlx::FromRow)]
pub(crate) struct PriceRow {
    id: Uuid,
    hospital_id: Uuid,
    service_code: String,
    category: String,
    description: String,
    unit_price: i64,
    currency: String,
    effective_from: Date,
    effective_to: Option<Date>,
}

impl From<PriceRow> for Price {
    fn from(r: PriceRow) -> Self {
        Price {
            id: r.id,
            hospital_id: r.hospital_id,
            service_code: r.service_code,
            category: r.category,
            description: r.description,
            unit_price: r.unit_price,
            currency: r.currency,
            effective_from: r.effective_from,
            effective_to: r.effective_to,
        }
    }
}

pub(crate) const INVOICE_COLUMNS: &str = "id, hospital_id, number, patient_id, encounter_id, member_number, currency, \
     date_of_service, status, lines, total, insurer_share, patient_share, paid_patient, paid_insurer, claim_id, \
     insurer_id, split_source, void_reason, version, created_at, issued_at, ex_gratia";

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    id: Uuid,
    hospital_id: Uuid,
    number: String,
    patient_id: Uuid,
    encounter_id: Option<Uuid>,
    member_number: Option<String>,
    currency: String,
    date_of_service: Date,
    status: String,
    lines: Json<Vec<Line>>,
    total: i64,
    insurer_share: i64,
    patient_share: i64,
    paid_patient: i64,
    paid_insurer: i64,
    claim_id: Option<Uuid>,
    insurer_id: Option<Uuid>,
    split_source: String,
    void_reason: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    issued_at: Option<OffsetDateTime>,
    ex_gratia: i64,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = StoreError;

    fn try_from(r: InvoiceRow) -> Result<Invoice, StoreError> {
        Ok(Invoice {
            id: r.id,
            hospital_id: r.hospital_id,
            number: r.number,
            patient_id: r.patient_id,
            encounter_id: r.encounter_id,
            member_number: r.member_number,
            currency: r.currency,
            date_of_service: r.date_of_service,
            status: decode("invoices", "status", &r.status)?,
            lines: r.lines.0,
            total: r.total,
            insurer_share: r.insurer_share,
            ex_gratia: r.ex_gratia,
            patient_share: r.patient_share,
            paid_patient: r.paid_patient,
            paid_insurer: r.paid_insurer,
            claim_id: r.claim_id,
            insurer_id: r.insurer_id,
            split_source: decode("invoices", "split_source", &r.split_source)?,
            void_reason: r.void_reason,
            version: r.version,
            created_at: r.created_at,
            issued_at: r.issued_at,
        })
    }
}

pub(crate) const PAYMENT_COLUMNS: &str =
    "id, hospital_id, invoice_id, payer, method, amount, applied, credit, external_reference, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    id: Uuid,
    hospital_id: Uuid,
    invoice_id: Uuid,
    payer: String,
    method: String,
    amount: i64,
    applied: i64,
    credit: i64,
    external_reference: Option<String>,
    created_at: OffsetDateTime,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(r: PaymentRow) -> Result<Payment, StoreError> {
        Ok(Payment {
            id: r.id,
            hospital_id: r.hospital_id,
            invoice_id: r.invoice_id,
            payer: decode("payments", "payer", &r.payer)?,
            method: decode("payments", "method", &r.method)?,
            amount: r.amount,
            applied: r.applied,
            credit: r.credit,
            external_reference: r.external_reference,
            created_at: r.created_at,
        })
    }
}

pub(crate) const PREMIUM_COLUMNS: &str = "id, insurer_id, policy_id, plan_id, holder_id, agent_id, number, amount, \
     currency, status, paid, due_date, void_reason, created_at, paid_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PremiumRow {
    id: Uuid,
    insurer_id: Uuid,
    policy_id: Uuid,
    plan_id: Uuid,
    holder_id: Uuid,
    agent_id: Option<Uuid>,
    number: String,
    amount: i64,
    currency: String,
    status: String,
    paid: i64,
    due_date: Date,
    void_reason: Option<String>,
    created_at: OffsetDateTime,
    paid_at: Option<OffsetDateTime>,
}

impl TryFrom<PremiumRow> for Premium {
    type Error = StoreError;

    fn try_from(r: PremiumRow) -> Result<Premium, StoreError> {
        Ok(Premium {
            id: r.id,
            insurer_id: r.insurer_id,
            policy_id: r.policy_id,
            plan_id: r.plan_id,
            holder_id: r.holder_id,
            agent_id: r.agent_id,
            number: r.number,
            amount: r.amount,
            currency: r.currency,
            status: decode("premiums", "status", &r.status)?,
            paid: r.paid,
            due_date: r.due_date,
            void_reason: r.void_reason,
            created_at: r.created_at,
            paid_at: r.paid_at,
        })
    }
}

pub(crate) const PREMIUM_PAYMENT_COLUMNS: &str =
    "id, insurer_id, premium_id, method, amount, applied, credit, external_reference, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PremiumPaymentRow {
    id: Uuid,
    insurer_id: Uuid,
    premium_id: Uuid,
    method: String,
    amount: i64,
    applied: i64,
    credit: i64,
    external_reference: Option<String>,
    created_at: OffsetDateTime,
}

impl TryFrom<PremiumPaymentRow> for PremiumPayment {
    type Error = StoreError;

    fn try_from(r: PremiumPaymentRow) -> Result<PremiumPayment, StoreError> {
        Ok(PremiumPayment {
            id: r.id,
            insurer_id: r.insurer_id,
            premium_id: r.premium_id,
            method: decode("premium_payments", "method", &r.method)?,
            amount: r.amount,
            applied: r.applied,
            credit: r.credit,
            external_reference: r.external_reference,
            created_at: r.created_at,
        })
    }
}

pub(crate) const COMMISSION_COLUMNS: &str = "id, insurer_id, agent_id, policy_id, premium_id, premium_amount, rate_bp, \
     amount, status, earned_at, clawed_back_at, clawback_reason";

#[derive(sqlx::FromRow)]
pub(crate) struct CommissionRow {
    id: Uuid,
    insurer_id: Uuid,
    agent_id: Uuid,
    policy_id: Uuid,
    premium_id: Uuid,
    premium_amount: i64,
    rate_bp: i32,
    amount: i64,
    status: String,
    earned_at: OffsetDateTime,
    clawed_back_at: Option<OffsetDateTime>,
    clawback_reason: Option<String>,
}

impl TryFrom<CommissionRow> for Commission {
    type Error = StoreError;

    fn try_from(r: CommissionRow) -> Result<Commission, StoreError> {
        Ok(Commission {
            id: r.id,
            insurer_id: r.insurer_id,
            agent_id: r.agent_id,
            policy_id: r.policy_id,
            premium_id: r.premium_id,
            premium_amount: r.premium_amount,
            rate_bp: r.rate_bp,
            amount: r.amount,
            status: decode("commissions", "status", &r.status)?,
            earned_at: r.earned_at,
            clawed_back_at: r.clawed_back_at,
            clawback_reason: r.clawback_reason,
        })
    }
}

pub(crate) const PAYOUT_COLUMNS: &str =
    "id, insurer_id, agent_id, amount, currency, method, external_reference, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PayoutRow {
    id: Uuid,
    insurer_id: Uuid,
    agent_id: Uuid,
    amount: i64,
    currency: String,
    method: String,
    external_reference: String,
    created_at: OffsetDateTime,
}

impl TryFrom<PayoutRow> for Payout {
    type Error = StoreError;

    fn try_from(r: PayoutRow) -> Result<Payout, StoreError> {
        Ok(Payout {
            id: r.id,
            insurer_id: r.insurer_id,
            agent_id: r.agent_id,
            amount: r.amount,
            currency: r.currency,
            method: decode("commission_payouts", "method", &r.method)?,
            external_reference: r.external_reference,
            created_at: r.created_at,
        })
    }
}

pub(crate) const REFUND_COLUMNS: &str = "id, kind, tenant_id, payment_id, owed_id, amount, from_credit, from_applied, \
     reason, status, requested_by, decided_by, decision_note, created_at, decided_at";

#[derive(sqlx::FromRow)]
pub(crate) struct RefundRow {
    id: Uuid,
    kind: String,
    tenant_id: Uuid,
    payment_id: Uuid,
    owed_id: Uuid,
    amount: i64,
    from_credit: i64,
    from_applied: i64,
    reason: String,
    status: String,
    requested_by: Uuid,
    decided_by: Option<Uuid>,
    decision_note: Option<String>,
    created_at: OffsetDateTime,
    decided_at: Option<OffsetDateTime>,
}

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;

    fn try_from(r: RefundRow) -> Result<Refund, StoreError> {
        Ok(Refund {
            id: r.id,
            kind: decode("refunds", "kind", &r.kind)?,
            tenant_id: r.tenant_id,
            payment_id: r.payment_id,
            owed_id: r.owed_id,
            amount: r.amount,
            from_credit: r.from_credit,
            from_applied: r.from_applied,
            reason: r.reason,
            status: decode("refunds", "status", &r.status)?,
            requested_by: r.requested_by,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            created_at: r.created_at,
            decided_at: r.decided_at,
        })
    }
}

/// A payment or premium payment, as a refund reads it: (tenant, what it settled, payer, method,
/// applied, credit). Premium payments have no payer column: the holder pays, as a patient does.
pub(crate) type RefundableRow = (Uuid, Uuid, String, String, i64, i64);

/// A refundable payment of `kind` from its row; `table` names where it was read.
pub(crate) fn refundable(
    kind: crate::domain::refund::Kind,
    table: &'static str,
    payment_id: Uuid,
    row: RefundableRow,
) -> Result<Refundable, StoreError> {
    let (tenant_id, owed_id, payer, method, applied, credit) = row;
    Ok(Refundable {
        kind,
        tenant_id,
        payment_id,
        owed_id,
        payer: decode(table, "payer", &payer)?,
        method: decode(table, "method", &method)?,
        applied,
        credit,
    })
}
