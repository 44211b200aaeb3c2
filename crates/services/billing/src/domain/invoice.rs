//! Invoices: statuses, lines split between insurer and patient, payments applied, and the
//! decisions an invoice takes (issue, void, split by a claim, a payment, a refund).

use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::ledger::{self, Account, Entry, Method};

/// Where an invoice (or a premium) stands. Premiums use the same words, without `draft`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    Draft,
    Issued,
    PartiallyPaid,
    Paid,
    Void,
}

impl TextEnum for Status {}

/// Who pays a share.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Payer {
    Patient,
    Insurer,
}

impl TextEnum for Payer {}

impl Payer {
    /// Whether this payer may pay by `method`: an insurer pays by remittance or bank transfer.
    pub fn may_pay_by(self, method: Method) -> bool {
        match self {
            Payer::Patient => true,
            Payer::Insurer => matches!(method, Method::InsurerRemittance | Method::BankTransfer),
        }
    }

    /// The receivable this payer's payments settle.
    pub fn receivable(self) -> Account {
        match self {
            Payer::Patient => Account::PatientReceivable,
            Payer::Insurer => Account::InsurerReceivable,
        }
    }
}

/// What split an invoice's lines between the payers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SplitSource {
    /// Nothing yet: all on the patient.
    None,
    /// The insurer's adjudication of the invoice's claim.
    Claim,
}

impl TextEnum for SplitSource {}

/// One line of an invoice; this is also its stored form (the `lines` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub service_code: String,
    pub category: String,
    pub description: String,
    pub quantity: u32,
    /// Minor units, from the price list valid on the date of service.
    pub unit_price: i64,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    /// Of the insurer share, what the insurer pays ex gratia, beyond the plan's limits (never
    /// covered benefit; journaled on `ex_gratia_revenue`).
    #[serde(default)]
    pub ex_gratia: i64,
    /// The service had no price on the date of service; the invoice cannot be issued.
    #[serde(default)]
    pub unpriced: bool,
    /// Why the patient pays what they pay, from the insurer's adjudication: each cut and
    /// override with its code and amount (they add up to the patient's share of an
    /// adjudicated line). Empty until the claim is adjudicated, and for self-pay invoices.
    #[serde(default)]
    pub adjustments: Vec<LineAdjustment>,
    /// The approved pre-authorisation the line's claim cites (from the encounter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preauth_id: Option<Uuid>,
}

/// One adjustment of a line by the insurer: its code (`deductible`, `co_pay`,
/// `co_insurance`, `benefit_limit`, `ceiling`, `exclusion`, `waiting_period`, `not_covered`,
/// `override`, `ex_gratia`) and what it moved from the insurer to the patient (negative: the
/// other way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineAdjustment {
    #[schema(example = "co_insurance")]
    pub code: String,
    pub amount: i64,
}

impl Line {
    pub fn priced(
        service_code: &str,
        category: &str,
        description: &str,
        quantity: u32,
        unit_price: Option<i64>,
    ) -> Line {
        let total = unit_price.unwrap_or(0).saturating_mul(i64::from(quantity));
        Line {
            service_code: service_code.to_owned(),
            category: category.to_owned(),
            description: description.to_owned(),
            quantity,
            unit_price: unit_price.unwrap_or(0),
            total,
            insurer_share: 0,
            patient_share: total,
            ex_gratia: 0,
            unpriced: unit_price.is_none(),
            adjustments: Vec::new(),
            preauth_id: None,
        }
    }

    /// The line citing `preauth` in its claim.
    pub fn citing(self, preauth: Option<Uuid>) -> Line {
        Line { preauth_id: preauth, ..self }
    }
}

/// What the insurer said about one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjudicated {
    pub insurer_pays: i64,
    /// Of `insurer_pays`, what is paid ex gratia, beyond the plan's limits.
    pub ex_gratia: i64,
    /// Why the patient pays the rest.
    pub adjustments: Vec<LineAdjustment>,
}

impl Adjudicated {
    /// The insurer pays `amount`, with no adjustments given.
    pub fn paying(amount: i64) -> Adjudicated {
        Adjudicated { insurer_pays: amount, ex_gratia: 0, adjustments: Vec::new() }
    }
}

/// Splits each line by the insurer's answer for it: the insurer's share is what it pays (never
/// more than the line), the patient's the rest, so the shares add up to the line to the cent.
/// Lines the claim does not answer stay with the patient.
pub fn split(lines: &mut [Line], adjudicated: &[Adjudicated]) {
    for (i, line) in lines.iter_mut().enumerate() {
        let insurer = adjudicated.get(i).map(|a| a.insurer_pays.clamp(0, line.total)).unwrap_or(0);
        line.insurer_share = insurer;
        line.patient_share = line.total - insurer;
        line.ex_gratia = adjudicated.get(i).map(|a| a.ex_gratia.clamp(0, insurer)).unwrap_or(0);
        line.adjustments = adjudicated.get(i).map(|a| a.adjustments.clone()).unwrap_or_default();
    }
}

/// What the lines' insurer shares pay ex gratia.
pub fn ex_gratia(lines: &[Line]) -> i64 {
    lines.iter().map(|l| l.ex_gratia).sum()
}

/// Totals of (all, insurer, patient).
pub fn totals(lines: &[Line]) -> (i64, i64, i64) {
    lines.iter().fold((0, 0, 0), |(t, i, p), l| (t + l.total, i + l.insurer_share, p + l.patient_share))
}

/// A payment of `amount` against `outstanding`: (applied to the invoice, left as credit).
pub fn apply(outstanding: i64, amount: i64) -> (i64, i64) {
    let applied = amount.min(outstanding.max(0));
    (applied, amount - applied)
}

/// The status of something issued for `owed` of which `paid` is paid: the ladder
/// `issued → partially_paid → paid` (an invoice's two shares count together; a premium's one).
pub fn ladder(owed: i64, paid: i64) -> Status {
    if paid >= owed {
        Status::Paid
    } else if paid > 0 {
        Status::PartiallyPaid
    } else {
        Status::Issued
    }
}

/// The status of an issued invoice from what was paid of each share.
pub fn status(patient_share: i64, insurer_share: i64, paid_patient: i64, paid_insurer: i64) -> Status {
    ladder(patient_share + insurer_share, paid_patient + paid_insurer)
}

/// An invoice for care.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub number: String,
    pub patient_id: Uuid,
    /// The encounter it was drafted from, if any.
    pub encounter_id: Option<Uuid>,
    pub member_number: Option<String>,
    pub currency: String,
    pub date_of_service: Date,
    pub status: Status,
    pub lines: Vec<Line>,
    pub total: i64,
    pub insurer_share: i64,
    /// Of the insurer share, what the insurer pays ex gratia (the lines' `ex_gratia`).
    pub ex_gratia: i64,
    pub patient_share: i64,
    pub paid_patient: i64,
    pub paid_insurer: i64,
    /// The claim whose adjudication split the lines, once it has.
    pub claim_id: Option<Uuid>,
    /// The insurer owing the insurer share, once a claim split the invoice.
    pub insurer_id: Option<Uuid>,
    pub split_source: SplitSource,
    pub void_reason: Option<String>,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub issued_at: Option<OffsetDateTime>,
}

/// What a new invoice is drafted from.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub encounter_id: Option<Uuid>,
    pub member_number: Option<String>,
    pub currency: String,
    pub date_of_service: Date,
    pub lines: Vec<Line>,
}

/// The claim asked of the patient's insurer for an invoice (its reference is the invoice
/// number): the payload of `billing.claim_requested.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimRequest {
    pub invoice_id: Uuid,
    pub number: String,
    pub hospital_id: Uuid,
    pub member_number: String,
    pub visit_type: String,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
}

/// One line of a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub diagnosis: String,
    /// `YYYY-MM-DD`.
    pub date_of_service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preauth_id: Option<Uuid>,
}

/// An invoice split by a claim's adjudication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resplit {
    pub lines: Vec<Line>,
    pub insurer_share: i64,
    /// Of the insurer share, what is paid ex gratia.
    pub ex_gratia: i64,
    pub patient_share: i64,
    /// The receivables moved, when the invoice was already issued and the shares changed.
    pub entry: Option<Entry>,
}

/// A payment as it lands on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// What went to the invoice, and what was more than owed (the payer's credit).
    pub applied: i64,
    pub credit: i64,
    pub paid_patient: i64,
    pub paid_insurer: i64,
    pub status: Status,
    /// The insurer share is paid in full by now (there was one).
    pub insurer_settled: bool,
}

/// An invoice after a refund made part of a payment owed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reopened {
    pub paid_patient: i64,
    pub paid_insurer: i64,
    pub status: Status,
}

impl Invoice {
    /// A draft, numbered, all on the patient until a claim splits it.
    pub fn draft(d: Draft, now: OffsetDateTime) -> Invoice {
        let (total, insurer_share, patient_share) = totals(&d.lines);
        let ex_gratia = ex_gratia(&d.lines);
        Invoice {
            id: d.id,
            hospital_id: d.hospital_id,
            number: invoice_number(d.id, d.date_of_service),
            patient_id: d.patient_id,
            encounter_id: d.encounter_id,
            member_number: d.member_number,
            currency: d.currency,
            date_of_service: d.date_of_service,
            status: Status::Draft,
            lines: d.lines,
            total,
            insurer_share,
            ex_gratia,
            patient_share,
            paid_patient: 0,
            paid_insurer: 0,
            claim_id: None,
            insurer_id: None,
            split_source: SplitSource::None,
            void_reason: None,
            version: 1,
            created_at: now,
            issued_at: None,
        }
    }

    /// The claim to ask of the patient's insurer for this invoice, when there is an insurer to
    /// ask (a member number) and every line is priced.
    pub fn claim_request(&self, diagnosis: &str, visit_type: &str) -> Option<ClaimRequest> {
        let member = self.member_number.as_ref()?;
        if self.lines.is_empty() || self.lines.iter().any(|l| l.unpriced) || self.currency.is_empty() {
            return None;
        }
        Some(ClaimRequest {
            invoice_id: self.id,
            number: self.number.clone(),
            hospital_id: self.hospital_id,
            member_number: member.clone(),
            visit_type: visit_type.to_owned(),
            currency: self.currency.clone(),
            lines: self
                .lines
                .iter()
                .map(|l| ClaimLine {
                    service_code: l.service_code.clone(),
                    category: l.category.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    diagnosis: diagnosis.to_owned(),
                    date_of_service: self.date_of_service.to_string(),
                    preauth_id: l.preauth_id,
                })
                .collect(),
        })
    }

    /// Whether a draft can be issued: every line is priced. The entry is the receivables.
    pub fn issue(&self) -> Result<Entry, Rejection> {
        if self.status != Status::Draft {
            return Err(Rejection::conflict(format!("a {} invoice cannot be issued", self.status.as_str())));
        }
        if let Some(line) = self.lines.iter().find(|l| l.unpriced) {
            return Err(Rejection::conflict(format!(
                "{} has no price on {}; add it to the price list first",
                line.service_code, self.date_of_service
            )));
        }
        Ok(ledger::invoice_issued(self.patient_share, self.insurer_share, self.ex_gratia))
    }

    /// Whether the invoice can be voided: only without payments, as a draft or issued. The
    /// entry reverses an issued invoice's receivables.
    pub fn void(&self) -> Result<Option<Entry>, Rejection> {
        if self.paid_patient + self.paid_insurer > 0 || !matches!(self.status, Status::Draft | Status::Issued) {
            return Err(Rejection::conflict("only an invoice without payments can be voided; refund first"));
        }
        Ok((self.status == Status::Issued)
            .then(|| ledger::invoice_voided(self.patient_share, self.insurer_share, self.ex_gratia)))
    }

    /// The lines split by a claim's adjudication; `None` for a void invoice (left as it is).
    pub fn resplit(&self, adjudicated: &[Adjudicated]) -> Option<Resplit> {
        if self.status == Status::Void {
            return None;
        }
        let mut lines = self.lines.clone();
        split(&mut lines, adjudicated);
        let (_, insurer_share, patient_share) = totals(&lines);
        let ex_gratia = ex_gratia(&lines);
        let changed = insurer_share != self.insurer_share || ex_gratia != self.ex_gratia;
        let entry = (self.status != Status::Draft && changed)
            .then(|| ledger::invoice_resplit((self.insurer_share, self.ex_gratia), (insurer_share, ex_gratia)));
        Some(Resplit { lines, insurer_share, ex_gratia, patient_share, entry })
    }

    /// A payment of `amount` by `payer`: what it settles, and what is left as credit. Drafts
    /// and void invoices take none.
    pub fn settle(&self, payer: Payer, amount: i64) -> Result<Settlement, Rejection> {
        if matches!(self.status, Status::Draft | Status::Void) {
            return Err(Rejection::conflict(format!("a {} invoice takes no payment", self.status.as_str())));
        }
        let outstanding = match payer {
            Payer::Patient => self.patient_share - self.paid_patient,
            Payer::Insurer => self.insurer_share - self.paid_insurer,
        };
        let (applied, credit) = apply(outstanding, amount);
        let (paid_patient, paid_insurer) = match payer {
            Payer::Patient => (self.paid_patient + applied, self.paid_insurer),
            Payer::Insurer => (self.paid_patient, self.paid_insurer + applied),
        };
        Ok(Settlement {
            applied,
            credit,
            paid_patient,
            paid_insurer,
            status: status(self.patient_share, self.insurer_share, paid_patient, paid_insurer),
            insurer_settled: self.insurer_share > 0 && paid_insurer >= self.insurer_share,
        })
    }

    /// The invoice after `from_applied` of a payment by `payer` is refunded (owed again). A
    /// void invoice stays void.
    pub fn reopen(&self, payer: Payer, from_applied: i64) -> Reopened {
        let (paid_patient, paid_insurer) = match payer {
            Payer::Insurer => (self.paid_patient, self.paid_insurer - from_applied),
            Payer::Patient => (self.paid_patient - from_applied, self.paid_insurer),
        };
        let status = if self.status == Status::Void {
            Status::Void
        } else {
            status(self.patient_share, self.insurer_share, paid_patient, paid_insurer)
        };
        Reopened { paid_patient, paid_insurer, status }
    }
}

/// The visit types a claim knows.
pub const VISIT_TYPES: [&str; 3] = ["normal", "emergency", "referral"];

/// An invoice a billing clerk asks for by hand, before it is priced.
#[derive(Debug, Clone)]
pub struct ManualInvoice {
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub date_of_service: Date,
    /// With a `diagnosis`, the claim is asked of the insurer with the draft.
    pub member_number: Option<String>,
    /// The primary diagnosis (ICD-10), for the claim.
    pub diagnosis: Option<String>,
    /// `normal` (default), `emergency` or `referral`, for the claim.
    pub visit_type: Option<String>,
    /// Service codes and quantities.
    pub lines: Vec<(String, u32)>,
}

impl ManualInvoice {
    /// What is wrong with it, each problem naming its field (empty: nothing). Whether each
    /// service has a price is checked once it is priced ([`unpriced`]).
    pub fn problems(&self, today: Date) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.lines.is_empty() || self.lines.len() > 200 {
            errors.push(FieldError::new("lines", "must have 1 to 200 lines"));
        }
        for (i, (_, quantity)) in self.lines.iter().enumerate() {
            if !(1..=10_000).contains(quantity) {
                errors.push(FieldError::new(format!("lines[{i}].quantity"), "must be 1 to 10000"));
            }
        }
        if self.visit_type.as_deref().is_some_and(|v| !VISIT_TYPES.contains(&v)) {
            errors.push(FieldError::new("visit_type", "must be normal, emergency or referral"));
        }
        if self.diagnosis.as_deref().is_some_and(|d| d.trim().is_empty() || d.len() > 10) {
            errors.push(FieldError::new("diagnosis", "must be an ICD-10 code such as `J06.9`"));
        }
        if self.date_of_service > today.next_day().unwrap_or(self.date_of_service) {
            errors.push(FieldError::new("date_of_service", "must not be in the future"));
        }
        errors
    }
}

/// The most a payment may be, in minor units (10^12).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// What is wrong with a payment's amount, reference and method (empty: nothing).
pub fn payment_problems(payer: Payer, method: Method, amount: i64, reference: Option<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(1..=MAX_AMOUNT).contains(&amount) {
        errors.push(FieldError::new("amount", "must be 1 to 10^12 minor units"));
    }
    if reference.is_some_and(|r| r.chars().count() > 100) {
        errors.push(FieldError::new("external_reference", "must be at most 100 characters"));
    }
    if !payer.may_pay_by(method) {
        errors.push(FieldError::new("method", "an insurer pays by insurer_remittance or bank_transfer"));
    }
    errors
}

/// What is wrong with an insurer's remittance of `amounts` (one per invoice) by `method`
/// (empty: nothing).
pub fn remittance_problems(method: Method, amounts: &[i64]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !Payer::Insurer.may_pay_by(method) {
        errors.push(FieldError::new("method", "an insurer pays by insurer_remittance or bank_transfer"));
    }
    if amounts.is_empty() || amounts.len() > 1_000 {
        errors.push(FieldError::new("items", "must list 1 to 1000 invoices"));
    }
    for (i, amount) in amounts.iter().enumerate() {
        if !(1..=MAX_AMOUNT).contains(amount) {
            errors.push(FieldError::new(format!("items[{i}].amount"), "must be 1 to 10^12 minor units"));
        }
    }
    errors
}

/// A problem for each line without a price on the date of service.
pub fn unpriced(lines: &[Line], date_of_service: Date) -> Vec<FieldError> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.unpriced)
        .map(|(i, _)| {
            FieldError::new(
                format!("lines[{i}].service_code"),
                format!("has no price on {date_of_service} in this hospital's price list"),
            )
        })
        .collect()
}

/// An invoice number: the day and the random last twelve hex digits of its id (the first
/// ones of a UUIDv7 are its time, shared by invoices of the same minute).
pub fn invoice_number(id: Uuid, day: Date) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("INV-{}{:02}{:02}-{}", day.year(), day.month() as u8, day.day(), &hex[20..])
}

/// A payment against an invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub invoice_id: Uuid,
    pub payer: Payer,
    pub method: Method,
    pub amount: i64,
    /// What went to the invoice.
    pub applied: i64,
    /// What was more than owed: the payer's credit.
    pub credit: i64,
    pub external_reference: Option<String>,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    use super::*;

    fn lines() -> Vec<Line> {
        vec![
            Line::priced("CONS", "consultation", "Consultation", 1, Some(300_000)),
            Line::priced("LAB", "laboratory", "Full blood count", 2, Some(125_000)),
            Line::priced("XR", "imaging", "X-ray", 1, None),
        ]
    }

    fn invoice(status: Status, lines: Vec<Line>) -> Invoice {
        let draft = Draft {
            id: Uuid::from_u128(0x0190_f5a4_0000_7000_8000_1a2b_3c4d_5e6f),
            hospital_id: Uuid::from_u128(1),
            patient_id: Uuid::from_u128(2),
            encounter_id: None,
            member_number: Some("AAR-1".into()),
            currency: "KES".into(),
            date_of_service: date!(2026 - 11 - 20),
            lines,
        };
        Invoice { status, ..Invoice::draft(draft, datetime!(2026-11-20 10:00 UTC)) }
    }

    #[test]
    fn pricing_and_splits_by_hand() {
        let mut lines = lines();
        assert_eq!(lines[1].total, 250_000);
        assert!(lines[2].unpriced);
        assert_eq!(totals(&lines), (550_000, 0, 550_000));
        // The insurer pays 1 500.00 of the consultation and 2 000.00 of the tests.
        split(&mut lines, &[Adjudicated::paying(150_000), Adjudicated::paying(200_000)]);
        assert_eq!((lines[0].insurer_share, lines[0].patient_share), (150_000, 150_000));
        assert_eq!((lines[1].insurer_share, lines[1].patient_share), (200_000, 50_000));
        assert_eq!((lines[2].insurer_share, lines[2].patient_share), (0, 0));
        assert_eq!(totals(&lines), (550_000, 350_000, 200_000));
        // An insurer answer above the line is capped at the line.
        split(&mut lines, &[Adjudicated::paying(900_000)]);
        assert_eq!((lines[0].insurer_share, lines[0].patient_share), (300_000, 0));
    }

    #[test]
    fn payments_by_hand() {
        assert_eq!(apply(10_000, 4_000), (4_000, 0)); // partial
        assert_eq!(apply(10_000, 10_000), (10_000, 0)); // exact
        assert_eq!(apply(10_000, 12_500), (10_000, 2_500)); // overpayment becomes credit
        assert_eq!(apply(0, 500), (0, 500));
        assert_eq!(status(2_000, 8_000, 0, 0), Status::Issued);
        assert_eq!(status(2_000, 8_000, 2_000, 0), Status::PartiallyPaid);
        assert_eq!(status(2_000, 8_000, 2_000, 8_000), Status::Paid);
    }

    #[test]
    fn the_status_ladder() {
        for (owed, paid, expected) in [
            (10_000, 0, Status::Issued),
            (10_000, 1, Status::PartiallyPaid),
            (10_000, 9_999, Status::PartiallyPaid),
            (10_000, 10_000, Status::Paid),
            (10_000, 12_000, Status::Paid),
            (0, 0, Status::Paid),
        ] {
            assert_eq!(ladder(owed, paid), expected, "{paid} of {owed}");
        }
    }

    #[test]
    fn statuses_are_words() {
        assert_eq!(Status::PartiallyPaid.as_str(), "partially_paid");
        assert_eq!(Status::parse("void"), Some(Status::Void));
        assert_eq!(Status::parse("cancelled"), None);
        assert_eq!(Payer::parse("insurer"), Some(Payer::Insurer));
        assert_eq!(SplitSource::None.as_str(), "none");
        assert_eq!(SplitSource::parse("claim"), Some(SplitSource::Claim));
    }

    #[test]
    fn who_pays_how() {
        for (payer, method, allowed) in [
            (Payer::Patient, Method::Cash, true),
            (Payer::Patient, Method::InsurerRemittance, true),
            (Payer::Insurer, Method::Cash, false),
            (Payer::Insurer, Method::Card, false),
            (Payer::Insurer, Method::BankTransfer, true),
            (Payer::Insurer, Method::InsurerRemittance, true),
        ] {
            assert_eq!(payer.may_pay_by(method), allowed, "{payer:?} by {method:?}");
        }
    }

    #[test]
    fn a_draft_is_numbered_and_on_the_patient() {
        let draft = invoice(Status::Draft, lines());
        assert_eq!(draft.number, "INV-20261120-1A2B3C4D5E6F");
        assert_eq!((draft.total, draft.insurer_share, draft.patient_share), (550_000, 0, 550_000));
        assert_eq!((draft.split_source, draft.version), (SplitSource::None, 1));
    }

    #[test]
    fn claims_are_asked_only_for_insured_priced_invoices() {
        let priced = invoice(Status::Draft, lines()[..2].to_vec());
        let claim = priced.claim_request("J06.9", "normal").expect("a claim");
        assert_eq!((claim.number.as_str(), claim.member_number.as_str()), (priced.number.as_str(), "AAR-1"));
        assert_eq!(claim.lines.len(), 2);
        assert_eq!(
            claim.lines[1],
            ClaimLine {
                service_code: "LAB".into(),
                category: "laboratory".into(),
                quantity: 2,
                unit_price: 125_000,
                diagnosis: "J06.9".into(),
                date_of_service: "2026-11-20".into(),
                preauth_id: None,
            }
        );
        assert_eq!(invoice(Status::Draft, lines()).claim_request("J06.9", "normal"), None, "an unpriced line");
        let uninsured = Invoice { member_number: None, ..priced.clone() };
        assert_eq!(uninsured.claim_request("J06.9", "normal"), None);
        let empty = invoice(Status::Draft, Vec::new());
        assert_eq!(empty.claim_request("J06.9", "normal"), None);
        let no_currency = Invoice { currency: String::new(), ..priced };
        assert_eq!(no_currency.claim_request("J06.9", "normal"), None);
    }

    #[test]
    fn what_can_be_issued_and_voided() {
        let priced = invoice(Status::Draft, lines()[..2].to_vec());
        assert_eq!(priced.issue().unwrap(), ledger::invoice_issued(550_000, 0, 0));
        let unpriced = invoice(Status::Draft, lines());
        assert_eq!(
            unpriced.issue(),
            Err(Rejection::conflict("XR has no price on 2026-11-20; add it to the price list first"))
        );
        let issued = invoice(Status::Issued, lines()[..2].to_vec());
        assert_eq!(issued.issue(), Err(Rejection::conflict("a issued invoice cannot be issued")));
        assert_eq!(priced.void(), Ok(None), "a draft has nothing in the journal");
        assert_eq!(issued.void(), Ok(Some(ledger::invoice_voided(550_000, 0, 0))));
        let paid = Invoice { paid_patient: 1, status: Status::PartiallyPaid, ..issued };
        assert!(matches!(paid.void(), Err(Rejection::Conflict(_))));
        assert!(matches!(invoice(Status::Void, Vec::new()).void(), Err(Rejection::Conflict(_))));
    }

    #[test]
    fn a_claim_moves_receivables_only_once_issued() {
        let adjudicated = [Adjudicated::paying(250_000), Adjudicated::paying(200_000)];
        let draft = invoice(Status::Draft, lines()[..2].to_vec());
        let split = draft.resplit(&adjudicated).unwrap();
        assert_eq!((split.insurer_share, split.patient_share, split.entry), (450_000, 100_000, None));
        let issued = invoice(Status::Issued, lines()[..2].to_vec());
        assert_eq!(issued.resplit(&adjudicated).unwrap().entry, Some(ledger::invoice_resplit((0, 0), (450_000, 0))));
        let unchanged = issued.resplit(&[]).unwrap();
        assert_eq!((unchanged.insurer_share, unchanged.entry), (0, None));
        assert_eq!(invoice(Status::Void, lines()).resplit(&adjudicated), None);
    }

    /// An ex-gratia part of the insurer's share is journaled on its own revenue account,
    /// never as care revenue from covered benefit. By hand: consultation 3 000.00, two blood
    /// counts 2 500.00, total 5 500.00.
    #[test]
    fn ex_gratia_is_journaled_on_its_own_account() {
        use ledger::Posting;
        let issued = invoice(Status::Issued, lines()[..2].to_vec());
        // First adjudication: the insurer pays 2 500.00 + 2 000.00 = 4 500.00, nothing ex gratia.
        let first = issued.resplit(&[Adjudicated::paying(250_000), Adjudicated::paying(200_000)]).unwrap();
        assert_eq!((first.insurer_share, first.ex_gratia, first.patient_share), (450_000, 0, 100_000));
        let issued = Invoice { lines: first.lines, insurer_share: 450_000, patient_share: 100_000, ..issued };
        // On appeal the blood counts are paid in full, 2 500.00, of which 500.00 ex gratia
        // (past the ceiling): insurer 5 000.00 (500.00 ex gratia), patient 500.00.
        let appeal = [
            Adjudicated::paying(250_000),
            Adjudicated { insurer_pays: 250_000, ex_gratia: 50_000, adjustments: Vec::new() },
        ];
        let second = issued.resplit(&appeal).unwrap();
        assert_eq!((second.insurer_share, second.ex_gratia, second.patient_share), (500_000, 50_000, 50_000));
        assert_eq!((second.lines[1].insurer_share, second.lines[1].ex_gratia), (250_000, 50_000));
        let entry = second.entry.unwrap();
        assert!(entry.balanced());
        // 500.00 moves from the patient to the insurer, and 500.00 of revenue from care to ex
        // gratia.
        let debit = |account, amount| Posting { account, debit: amount, credit: 0 };
        let credit = |account, amount| Posting { account, debit: 0, credit: amount };
        assert_eq!(
            entry.postings,
            [
                debit(Account::InsurerReceivable, 50_000),
                credit(Account::PatientReceivable, 50_000),
                debit(Account::CareRevenue, 50_000),
                credit(Account::ExGratiaRevenue, 50_000),
            ]
        );
        // Issued with it, and voided: ex gratia on its own line both ways.
        let split =
            Invoice { lines: second.lines, insurer_share: 500_000, ex_gratia: 50_000, patient_share: 50_000, ..issued };
        assert_eq!(
            ledger::invoice_issued(split.patient_share, split.insurer_share, split.ex_gratia).postings,
            [
                debit(Account::PatientReceivable, 50_000),
                debit(Account::InsurerReceivable, 500_000),
                credit(Account::CareRevenue, 500_000),
                credit(Account::ExGratiaRevenue, 50_000),
            ]
        );
        let voided = split.void().unwrap().unwrap();
        assert!(voided.postings.contains(&debit(Account::ExGratiaRevenue, 50_000)), "{voided:?}");
        // Ex gratia is part of the insurer's share, never more.
        let mut lines = lines()[..1].to_vec();
        super::split(&mut lines, &[Adjudicated { insurer_pays: 100_000, ex_gratia: 900_000, adjustments: Vec::new() }]);
        assert_eq!((lines[0].insurer_share, lines[0].ex_gratia), (100_000, 100_000));
    }

    #[test]
    fn settling_and_reopening() {
        let mut issued = invoice(Status::Issued, lines()[..2].to_vec());
        issued.insurer_share = 450_000;
        issued.patient_share = 100_000;
        assert!(matches!(invoice(Status::Draft, lines()).settle(Payer::Patient, 1), Err(Rejection::Conflict(_))));
        // The patient overpays their 1 000.00 by 200.00.
        let settled = issued.settle(Payer::Patient, 120_000).unwrap();
        assert_eq!((settled.applied, settled.credit), (100_000, 20_000));
        assert_eq!(
            (settled.paid_patient, settled.status, settled.insurer_settled),
            (100_000, Status::PartiallyPaid, false)
        );
        let issued = Invoice { paid_patient: 100_000, status: Status::PartiallyPaid, ..issued };
        let settled = issued.settle(Payer::Insurer, 450_000).unwrap();
        assert_eq!((settled.paid_insurer, settled.status, settled.insurer_settled), (450_000, Status::Paid, true));
        let paid = Invoice { paid_insurer: 450_000, status: Status::Paid, ..issued };
        assert_eq!(
            paid.reopen(Payer::Insurer, 50_000),
            Reopened { paid_patient: 100_000, paid_insurer: 400_000, status: Status::PartiallyPaid }
        );
        assert_eq!(paid.reopen(Payer::Patient, 0).status, Status::Paid);
        let void = Invoice { status: Status::Void, ..paid };
        assert_eq!(void.reopen(Payer::Patient, 100_000).status, Status::Void);
    }

    #[test]
    fn what_a_manual_invoice_must_be() {
        let today = date!(2026 - 11 - 26);
        let asked = ManualInvoice {
            hospital_id: Uuid::from_u128(1),
            patient_id: Uuid::from_u128(2),
            date_of_service: today,
            member_number: None,
            diagnosis: Some("J06.9".into()),
            visit_type: Some("emergency".into()),
            lines: vec![("CONS-GP".into(), 1)],
        };
        assert!(asked.problems(today).is_empty());
        assert!(ManualInvoice { date_of_service: date!(2026 - 11 - 27), ..asked.clone() }.problems(today).is_empty());
        let wrong = ManualInvoice {
            date_of_service: date!(2026 - 11 - 28),
            diagnosis: Some(" ".into()),
            visit_type: Some("urgent".into()),
            lines: vec![("A".into(), 0), ("B".into(), 10_001)],
            ..asked.clone()
        };
        let fields: Vec<String> = wrong.problems(today).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lines[0].quantity", "lines[1].quantity", "visit_type", "diagnosis", "date_of_service"]);
        let none = ManualInvoice { lines: Vec::new(), ..asked };
        assert_eq!(none.problems(today)[0].field, "lines");
        let unpriced = unpriced(&lines(), date!(2026 - 11 - 20));
        assert_eq!(unpriced.len(), 1);
        assert_eq!(
            (unpriced[0].field.as_str(), unpriced[0].reason.as_str()),
            ("lines[2].service_code", "has no price on 2026-11-20 in this hospital's price list")
        );
    }

    #[test]
    fn payments_and_remittances_that_are_refused() {
        assert!(payment_problems(Payer::Patient, Method::Cash, 1, Some("MPESA-1")).is_empty());
        let fields = |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        let long = "x".repeat(101);
        assert_eq!(
            fields(payment_problems(Payer::Insurer, Method::Cash, 0, Some(&long))),
            ["amount", "external_reference", "method"]
        );
        assert_eq!(fields(payment_problems(Payer::Patient, Method::Card, MAX_AMOUNT + 1, None)), ["amount"]);
        assert!(remittance_problems(Method::InsurerRemittance, &[450_000]).is_empty());
        assert_eq!(fields(remittance_problems(Method::Card, &[])), ["method", "items"]);
        assert_eq!(fields(remittance_problems(Method::BankTransfer, &[1, 0, 5])), ["items[1].amount"]);
    }

    proptest! {
        #[test]
        fn shares_always_add_up(totals_in in prop::collection::vec((1u32..5, 0i64..10_000_000), 1..10),
                                 pays in prop::collection::vec(-1_000i64..20_000_000, 0..10)) {
            let mut lines: Vec<Line> = totals_in.iter().map(|(q, p)| Line::priced("S", "c", "d", *q, Some(*p))).collect();
            let adjudicated: Vec<Adjudicated> = pays.iter().map(|p| Adjudicated::paying(*p)).collect();
            split(&mut lines, &adjudicated);
            for line in &lines {
                prop_assert_eq!(line.insurer_share + line.patient_share, line.total);
                prop_assert!(line.insurer_share >= 0 && line.patient_share >= 0);
            }
            let (t, i, p) = totals(&lines);
            prop_assert_eq!(i + p, t);
        }

        #[test]
        fn payments_never_vanish(outstanding in 0i64..1_000_000_000, amount in 0i64..1_000_000_000) {
            let (applied, credit) = apply(outstanding, amount);
            prop_assert_eq!(applied + credit, amount);
            prop_assert!(applied <= outstanding && applied >= 0 && credit >= 0);
        }
    }
}
