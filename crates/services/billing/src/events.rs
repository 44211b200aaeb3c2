//! The billing service's domain events, one type each; the payload is the type's JSON form
//! (docs/events.md lists them, and other services read these field names). Saga replies are
//! built by `medcov_bus::orchestrator::Command::reply` and written as they are.

use medcov_store::outbox::DomainEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::commission::Commission;
use crate::domain::invoice::{ClaimRequest, Invoice, Payer, Status};
use crate::domain::ledger::Method;
use crate::domain::premium::Premium;
use crate::domain::refund::Refund;

/// A command to insurance: submit the claim for an insured patient's invoice.
impl DomainEvent for ClaimRequest {
    const TYPE: &'static str = "billing.claim_requested.v1";
    const AGGREGATE: &'static str = "invoice";
    fn aggregate_id(&self) -> Uuid {
        self.invoice_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceIssued {
    pub invoice_id: Uuid,
    pub number: String,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub encounter_id: Option<Uuid>,
    pub currency: String,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    pub member_number: Option<String>,
}

impl InvoiceIssued {
    pub fn of(invoice: &Invoice) -> InvoiceIssued {
        InvoiceIssued {
            invoice_id: invoice.id,
            number: invoice.number.clone(),
            hospital_id: invoice.hospital_id,
            patient_id: invoice.patient_id,
            encounter_id: invoice.encounter_id,
            currency: invoice.currency.clone(),
            total: invoice.total,
            insurer_share: invoice.insurer_share,
            patient_share: invoice.patient_share,
            member_number: invoice.member_number.clone(),
        }
    }
}

impl DomainEvent for InvoiceIssued {
    const TYPE: &'static str = "billing.invoice_issued.v1";
    const AGGREGATE: &'static str = "invoice";
    fn aggregate_id(&self) -> Uuid {
        self.invoice_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceVoided {
    pub invoice_id: Uuid,
    pub number: String,
    pub hospital_id: Uuid,
    pub claim_id: Option<Uuid>,
    pub reason: String,
}

impl DomainEvent for InvoiceVoided {
    const TYPE: &'static str = "billing.invoice_voided.v1";
    const AGGREGATE: &'static str = "invoice";
    fn aggregate_id(&self) -> Uuid {
        self.invoice_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentCompleted {
    pub payment_id: Uuid,
    pub invoice_id: Uuid,
    pub number: String,
    pub hospital_id: Uuid,
    pub payer: Payer,
    pub method: Method,
    pub amount: i64,
    pub applied: i64,
    pub credit: i64,
    pub currency: String,
    pub invoice_status: Status,
    pub claim_id: Option<Uuid>,
    /// The insurer share is paid in full: insurance marks the claim paid.
    pub insurer_settled: bool,
}

impl DomainEvent for PaymentCompleted {
    const TYPE: &'static str = "billing.payment_completed.v1";
    const AGGREGATE: &'static str = "payment";
    fn aggregate_id(&self) -> Uuid {
        self.payment_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RefundCompleted {
    pub refund_id: Uuid,
    pub payment_id: Uuid,
    pub invoice_id: Uuid,
    pub amount: i64,
    pub from_credit: i64,
    pub from_applied: i64,
    pub method: Method,
    pub currency: String,
    pub invoice_status: Status,
    #[serde(skip)]
    pub hospital_id: Uuid,
}

impl RefundCompleted {
    pub fn of(refund: &Refund, invoice: &Invoice, method: Method, invoice_status: Status) -> RefundCompleted {
        RefundCompleted {
            refund_id: refund.id,
            payment_id: refund.payment_id,
            invoice_id: invoice.id,
            amount: refund.amount,
            from_credit: refund.from_credit,
            from_applied: refund.from_applied,
            method,
            currency: invoice.currency.clone(),
            invoice_status,
            hospital_id: invoice.hospital_id,
        }
    }
}

impl DomainEvent for RefundCompleted {
    const TYPE: &'static str = "billing.refund_completed.v1";
    const AGGREGATE: &'static str = "refund";
    fn aggregate_id(&self) -> Uuid {
        self.refund_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PremiumInvoiced {
    pub premium_id: Uuid,
    pub policy_id: Uuid,
    pub insurer_id: Uuid,
    pub amount: i64,
    pub currency: String,
    /// `YYYY-MM-DD`.
    pub due_date: String,
}

impl PremiumInvoiced {
    pub fn of(premium: &Premium) -> PremiumInvoiced {
        PremiumInvoiced {
            premium_id: premium.id,
            policy_id: premium.policy_id,
            insurer_id: premium.insurer_id,
            amount: premium.amount,
            currency: premium.currency.clone(),
            due_date: premium.due_date.to_string(),
        }
    }
}

impl DomainEvent for PremiumInvoiced {
    const TYPE: &'static str = "billing.premium_invoiced.v1";
    const AGGREGATE: &'static str = "premium";
    fn aggregate_id(&self) -> Uuid {
        self.premium_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// The premium is paid in full: insurance activates the policy.
#[derive(Debug, Clone, Serialize)]
pub struct PremiumPaid {
    pub premium_id: Uuid,
    pub policy_id: Uuid,
    pub insurer_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub agent_id: Option<Uuid>,
}

impl PremiumPaid {
    pub fn of(premium: &Premium) -> PremiumPaid {
        PremiumPaid {
            premium_id: premium.id,
            policy_id: premium.policy_id,
            insurer_id: premium.insurer_id,
            amount: premium.amount,
            currency: premium.currency.clone(),
            agent_id: premium.agent_id,
        }
    }
}

impl DomainEvent for PremiumPaid {
    const TYPE: &'static str = "billing.premium_paid.v1";
    const AGGREGATE: &'static str = "premium";
    fn aggregate_id(&self) -> Uuid {
        self.premium_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PremiumVoided {
    pub premium_id: Uuid,
    pub policy_id: Uuid,
    pub reason: String,
    #[serde(skip)]
    pub insurer_id: Uuid,
}

impl DomainEvent for PremiumVoided {
    const TYPE: &'static str = "billing.premium_voided.v1";
    const AGGREGATE: &'static str = "premium";
    fn aggregate_id(&self) -> Uuid {
        self.premium_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PremiumRefunded {
    pub refund_id: Uuid,
    pub premium_id: Uuid,
    pub policy_id: Uuid,
    pub premium_payment_id: Uuid,
    pub amount: i64,
    pub from_credit: i64,
    pub from_applied: i64,
    pub method: Method,
    pub currency: String,
    pub premium_status: Status,
    #[serde(skip)]
    pub insurer_id: Uuid,
}

impl PremiumRefunded {
    pub fn of(refund: &Refund, premium: &Premium, method: Method, premium_status: Status) -> PremiumRefunded {
        PremiumRefunded {
            refund_id: refund.id,
            premium_id: premium.id,
            policy_id: premium.policy_id,
            premium_payment_id: refund.payment_id,
            amount: refund.amount,
            from_credit: refund.from_credit,
            from_applied: refund.from_applied,
            method,
            currency: premium.currency.clone(),
            premium_status,
            insurer_id: premium.insurer_id,
        }
    }
}

impl DomainEvent for PremiumRefunded {
    const TYPE: &'static str = "billing.premium_refunded.v1";
    const AGGREGATE: &'static str = "premium_refund";
    fn aggregate_id(&self) -> Uuid {
        self.refund_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommissionEarned {
    pub commission_id: Uuid,
    pub agent_id: Uuid,
    pub policy_id: Uuid,
    pub premium_id: Uuid,
    pub rate_bp: i32,
    pub amount: i64,
    pub currency: String,
    #[serde(skip)]
    pub insurer_id: Uuid,
}

impl CommissionEarned {
    pub fn of(commission: &Commission, currency: &str) -> CommissionEarned {
        CommissionEarned {
            commission_id: commission.id,
            agent_id: commission.agent_id,
            policy_id: commission.policy_id,
            premium_id: commission.premium_id,
            rate_bp: commission.rate_bp,
            amount: commission.amount,
            currency: currency.to_owned(),
            insurer_id: commission.insurer_id,
        }
    }
}

impl DomainEvent for CommissionEarned {
    const TYPE: &'static str = "billing.commission_earned.v1";
    const AGGREGATE: &'static str = "commission";
    fn aggregate_id(&self) -> Uuid {
        self.commission_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommissionClawedBack {
    pub commission_id: Uuid,
    pub agent_id: Uuid,
    pub policy_id: Uuid,
    pub amount: i64,
    pub reason: String,
    #[serde(skip)]
    pub insurer_id: Uuid,
}

impl DomainEvent for CommissionClawedBack {
    const TYPE: &'static str = "billing.commission_clawed_back.v1";
    const AGGREGATE: &'static str = "commission";
    fn aggregate_id(&self) -> Uuid {
        self.commission_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommissionPaidOut {
    pub payout_id: Uuid,
    pub agent_id: Uuid,
    pub insurer_id: Uuid,
    pub amount: i64,
    pub method: Method,
    pub external_reference: String,
}

impl DomainEvent for CommissionPaidOut {
    const TYPE: &'static str = "billing.commission_paid_out.v1";
    const AGGREGATE: &'static str = "payout";
    fn aggregate_id(&self) -> Uuid {
        self.payout_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::invoice::{Draft, Line};

    /// The payloads other services read keep their field names.
    #[test]
    fn payloads_keep_their_fields() {
        let draft = Draft {
            id: Uuid::from_u128(1),
            hospital_id: Uuid::from_u128(2),
            patient_id: Uuid::from_u128(3),
            encounter_id: Some(Uuid::from_u128(4)),
            member_number: Some("AAR-1".into()),
            currency: "KES".into(),
            date_of_service: date!(2026 - 11 - 20),
            lines: vec![Line::priced("CONS", "consultation", "Consultation", 1, Some(300_000))],
        };
        let invoice = Invoice::draft(draft, datetime!(2026-11-20 10:00 UTC));
        let claim = invoice.claim_request("J06.9", "normal").unwrap();
        assert_eq!(
            serde_json::to_value(&claim).unwrap(),
            json!({"invoice_id": invoice.id, "number": invoice.number, "hospital_id": invoice.hospital_id,
                "member_number": "AAR-1", "visit_type": "normal", "currency": "KES",
                "lines": [{"service_code": "CONS", "category": "consultation", "quantity": 1, "unit_price": 300_000,
                    "diagnosis": "J06.9", "date_of_service": "2026-11-20"}]})
        );
        assert_eq!(
            serde_json::to_value(InvoiceIssued::of(&invoice)).unwrap(),
            json!({"invoice_id": invoice.id, "number": invoice.number, "hospital_id": invoice.hospital_id,
                "patient_id": invoice.patient_id, "encounter_id": invoice.encounter_id, "currency": "KES",
                "total": 300_000, "insurer_share": 0, "patient_share": 300_000, "member_number": "AAR-1"})
        );
        let paid = PaymentCompleted {
            payment_id: Uuid::from_u128(5),
            invoice_id: invoice.id,
            number: invoice.number.clone(),
            hospital_id: invoice.hospital_id,
            payer: Payer::Insurer,
            method: Method::InsurerRemittance,
            amount: 10,
            applied: 10,
            credit: 0,
            currency: "KES".into(),
            invoice_status: Status::PartiallyPaid,
            claim_id: None,
            insurer_settled: false,
        };
        let paid = serde_json::to_value(paid).unwrap();
        assert_eq!((paid["payer"].as_str(), paid["method"].as_str()), (Some("insurer"), Some("insurer_remittance")));
        assert_eq!(paid["invoice_status"], "partially_paid");
        let voided = PremiumVoided {
            premium_id: Uuid::from_u128(6),
            policy_id: Uuid::from_u128(7),
            reason: "no premium".into(),
            insurer_id: Uuid::from_u128(8),
        };
        assert_eq!(
            serde_json::to_value(&voided).unwrap(),
            json!({"premium_id": Uuid::from_u128(6), "policy_id": Uuid::from_u128(7), "reason": "no premium"}),
            "the tenant is the envelope's, not the payload's"
        );
        assert_eq!(voided.tenant_id(), Uuid::from_u128(8));
    }
}
