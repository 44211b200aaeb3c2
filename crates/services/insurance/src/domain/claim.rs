//! Claims: what a hospital sends, where it stands (submitted → adjudicated → paid, or back by a
//! review, a reversal or a withdrawal), and how a claim meets the adjudication engine: which
//! lines were already accepted, which approvals its lines cite, and the claims officer's
//! overrides.

use std::collections::{BTreeMap, BTreeSet};

use medcov_domain::{Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::adjudication::{self, Accumulators, Adjudication, Approval, LineResult, Member, Outcome, Override, Reason};
use super::plan::{PlanRules, VisitType};
use super::policy::{Cover, Coverage};
use super::preauth::Preauth;

/// One line of a claim (kept as JSON with the claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// Minor units of the claim's currency.
    pub unit_price: i64,
    /// ICD-10.
    pub diagnosis: String,
    pub date_of_service: Date,
    /// The approved pre-authorisation that covers this line, where one was needed.
    #[serde(default)]
    pub preauth_id: Option<Uuid>,
}

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
pub enum ClaimStatus {
    Submitted,
    Adjudicated,
    /// Waiting for a claims officer.
    InReview,
    Paid,
    /// Taken back by the hospital (its invoice was voided); its adjudication is reversed.
    Withdrawn,
}

impl TextEnum for ClaimStatus {}

/// A claim and, once adjudicated, where each cent of each line landed.
#[derive(Debug, Clone, PartialEq)]
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
    pub submitted_at: OffsetDateTime,
    pub adjudicated_at: Option<OffsetDateTime>,
}

impl Claim {
    /// The pre-authorisations its lines cite, each once, in the order first cited.
    pub fn cited_preauths(&self) -> Vec<Uuid> {
        let mut cited = Vec::new();
        for id in self.lines.iter().filter_map(|l| l.preauth_id) {
            if !cited.contains(&id) {
                cited.push(id);
            }
        }
        cited
    }
}

/// A claim to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClaim {
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub reference: String,
    /// A digest of the request, to tell a repeat from a different claim under one reference.
    pub request_hash: String,
    pub member_id: Uuid,
    pub policy_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
}

/// A claim as a hospital sends it, before the member is looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub hospital_id: Uuid,
    pub reference: String,
    pub member_number: String,
    pub visit_type: VisitType,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
    /// A digest of the request as sent.
    pub request_hash: String,
}

impl Submission {
    /// The day whose cover decides which policy period the claim goes to: its first day of
    /// service.
    pub fn first_day(&self) -> Option<Date> {
        self.lines.iter().map(|l| l.date_of_service).min()
    }

    /// The claim to write for the member `coverage` found: refused (naming the field) when no
    /// member was found, or when the member's plan is in another currency.
    pub fn claim_for(self, coverage: Option<&Coverage>) -> Result<NewClaim, Rejection> {
        let coverage = coverage.ok_or_else(|| Rejection::field("member_number", "no such member"))?;
        if coverage.policy.currency != self.currency {
            return Err(Rejection::field("currency", format!("the member's plan is in {}", coverage.policy.currency)));
        }
        Ok(NewClaim {
            insurer_id: coverage.policy.insurer_id,
            hospital_id: self.hospital_id,
            reference: self.reference,
            request_hash: self.request_hash,
            member_id: coverage.member.member_id,
            policy_id: Some(coverage.policy.id),
            visit_type: self.visit_type,
            currency: self.currency,
            lines: self.lines,
        })
    }
}

/// One step in a claim's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub at: OffsetDateTime,
    pub actor: Uuid,
    /// `submitted`, `adjudicated`, `adjudicated_with_overrides`, `sent_to_review`, `reversed`,
    /// `withdrawn`, `paid`.
    pub action: String,
    pub detail: serde_json::Value,
    pub request_id: Option<String>,
}

/// A reference already used by the hospital: the same request again is a repeat (the first
/// claim answers); another request under it is refused.
pub fn check_repeat(stored_hash: &str, request_hash: &str) -> Result<(), Rejection> {
    if stored_hash == request_hash {
        Ok(())
    } else {
        Err(Rejection::field("reference", "was already used for a different claim from this hospital"))
    }
}

/// Only a claim submitted or in review is adjudicated (409 otherwise).
pub fn check_adjudicable(status: ClaimStatus) -> Result<(), Rejection> {
    if matches!(status, ClaimStatus::Submitted | ClaimStatus::InReview) {
        Ok(())
    } else {
        Err(Rejection::conflict(format!("a claim that is {} cannot be adjudicated", status.as_str())))
    }
}

/// Why a review, reversal or withdrawal did not happen: the claim was not (or no longer)
/// adjudicated and unpaid at the version read.
pub fn not_reversible() -> Rejection {
    Rejection::conflict("only an adjudicated, unpaid claim can be reviewed or reversed; read it again")
}

/// Why a payment was not recorded: the claim was not (or no longer) adjudicated at the version
/// read.
pub fn not_payable() -> Rejection {
    Rejection::conflict("only an adjudicated claim can be paid; read it again")
}

/// The history action of an adjudication.
pub fn adjudicated_action(overrides: &[Override]) -> &'static str {
    if overrides.is_empty() { "adjudicated" } else { "adjudicated_with_overrides" }
}

/// The history action of undoing an adjudication, by the status it leaves the claim in.
pub fn unadjudicated_action(to: ClaimStatus) -> &'static str {
    match to {
        ClaimStatus::InReview => "sent_to_review",
        ClaimStatus::Withdrawn => "withdrawn",
        _ => "reversed",
    }
}

/// The lines already accepted for a member (service code, day), from their other adjudicated
/// or paid claims: a line counts once it was accepted; a rejected one may be sent again.
pub fn accepted_lines<'a>(
    claims: impl IntoIterator<Item = (&'a [ClaimLine], Option<&'a [LineResult]>)>,
) -> BTreeSet<(String, Date)> {
    let mut accepted = BTreeSet::new();
    for (lines, results) in claims {
        let results = results.unwrap_or_default();
        for (i, line) in lines.iter().enumerate() {
            if results.get(i).is_some_and(|r| r.rejection.is_none() || r.insurer_pays > 0) {
                accepted.insert((line.service_code.to_ascii_uppercase(), line.date_of_service));
            }
        }
    }
    accepted
}

/// What the engine needs about a covered member, read under the policy's lock.
pub struct Basis<'a> {
    pub rules: &'a PlanRules,
    pub cover: &'a Cover,
    pub used: &'a Accumulators,
    pub accepted: &'a BTreeSet<(String, Date)>,
    /// The approvals the claim may cite, by id ([`Preauth::usable_by`]).
    pub approvals: &'a BTreeMap<Uuid, Preauth>,
}

fn engine_line(line: &ClaimLine, approval: Option<Approval>) -> adjudication::Line {
    adjudication::Line {
        service_code: line.service_code.clone(),
        category: line.category.clone(),
        quantity: line.quantity,
        unit_price: line.unit_price,
        diagnosis: line.diagnosis.clone(),
        date_of_service: line.date_of_service,
        approval,
    }
}

/// Adjudicates a claim of a covered member: each line with the approval it cites, then the
/// claims officer's overrides (an override at fault is refused, naming it).
pub fn adjudicate(claim: &Claim, basis: &Basis<'_>, overrides: &[Override]) -> Result<Adjudication, Rejection> {
    let lines = claim
        .lines
        .iter()
        .map(|l| {
            let approval = l.preauth_id.and_then(|p| basis.approvals.get(&p)).and_then(|p| p.approval(&l.service_code));
            engine_line(l, approval)
        })
        .collect();
    let engine_claim = adjudication::Claim { hospital_id: claim.hospital_id, visit_type: claim.visit_type, lines };
    let member = Member { cover: basis.cover, used: basis.used, paid_lines: basis.accepted };
    let mut result = adjudication::adjudicate(basis.rules, &member, &engine_claim);
    adjudication::apply_overrides(basis.rules, basis.used, &engine_claim, &mut result, overrides)
        .map_err(|(i, field, why)| Rejection::field(format!("overrides[{i}].{field}"), why))?;
    Ok(result)
}

/// A claim with no policy to adjudicate it under: every line is refused, nothing is used.
pub fn reject_uncovered(claim: &Claim) -> Adjudication {
    let lines = claim.lines.iter().map(|l| engine_line(l, None)).collect();
    let engine_claim = adjudication::Claim { hospital_id: claim.hospital_id, visit_type: claim.visit_type, lines };
    adjudication::reject_all(&engine_claim, Reason::NoActivePolicy)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::plan::example;
    use crate::domain::policy::{MemberStatus, PolicyStatus};
    use crate::domain::preauth::{PreauthLine, PreauthStatus};

    fn line(code: &str, category: &str, price: i64) -> ClaimLine {
        ClaimLine {
            service_code: code.into(),
            category: category.into(),
            quantity: 1,
            unit_price: price,
            diagnosis: "J06.9".into(),
            date_of_service: date!(2026 - 06 - 01),
            preauth_id: None,
        }
    }

    fn claim(lines: Vec<ClaimLine>) -> Claim {
        Claim {
            id: Uuid::from_u128(10),
            insurer_id: Uuid::from_u128(11),
            hospital_id: Uuid::from_u128(0xa1),
            reference: "NRB-1".into(),
            member_id: Uuid::from_u128(5),
            member_number: "AAR-0000000195".into(),
            policy_id: Some(Uuid::from_u128(4)),
            plan_version_id: None,
            visit_type: VisitType::Normal,
            currency: "KES".into(),
            status: ClaimStatus::Submitted,
            outcome: None,
            lines,
            result: None,
            insurer_total: 0,
            patient_total: 0,
            adjudication_no: 0,
            version: 1,
            submitted_at: datetime!(2026 - 06 - 01 9:00 UTC),
            adjudicated_at: None,
        }
    }

    fn cover() -> Cover {
        Cover {
            policy_status: PolicyStatus::Active,
            policy_start: date!(2026 - 01 - 01),
            policy_expiry: date!(2026 - 12 - 31),
            policy_ended_on: None,
            enrolled_on: date!(2026 - 01 - 01),
            member_status: MemberStatus::Active,
            member_status_on: None,
        }
    }

    #[test]
    fn which_claims_may_be_adjudicated() {
        for (status, ok) in [
            (ClaimStatus::Submitted, true),
            (ClaimStatus::InReview, true),
            (ClaimStatus::Adjudicated, false),
            (ClaimStatus::Paid, false),
            (ClaimStatus::Withdrawn, false),
        ] {
            assert_eq!(check_adjudicable(status).is_ok(), ok, "{status:?}");
        }
        assert_eq!(
            check_adjudicable(ClaimStatus::Paid),
            Err(Rejection::conflict("a claim that is paid cannot be adjudicated"))
        );
        assert!(check_repeat("abc", "abc").is_ok());
        assert_eq!(
            check_repeat("abc", "abd"),
            Err(Rejection::field("reference", "was already used for a different claim from this hospital"))
        );
        assert_eq!(unadjudicated_action(ClaimStatus::InReview), "sent_to_review");
        assert_eq!(unadjudicated_action(ClaimStatus::Withdrawn), "withdrawn");
        assert_eq!(unadjudicated_action(ClaimStatus::Submitted), "reversed");
        assert_eq!(adjudicated_action(&[]), "adjudicated");
    }

    #[test]
    fn accepted_lines_skip_refused_ones() {
        let lines = [line("lab", "laboratory", 1), line("CONS", "consultation", 1), line("XR", "imaging", 1)];
        let paid = LineResult { insurer_pays: 10, ..LineResult::default() };
        let refused = LineResult { rejection: Some(Reason::NotCovered), ..LineResult::default() };
        let overridden = LineResult { rejection: Some(Reason::LimitReached), insurer_pays: 5, ..LineResult::default() };
        let results = [paid, refused, overridden];
        let accepted = accepted_lines([(&lines[..], Some(&results[..])), (&lines[..], None)]);
        let day = date!(2026 - 06 - 01);
        assert_eq!(accepted, BTreeSet::from([("LAB".to_owned(), day), ("XR".to_owned(), day)]));
    }

    #[test]
    fn lines_use_the_approvals_they_cite_and_overrides_name_their_index() {
        let preauth_id = Uuid::from_u128(40);
        let mut procedure = line("PROC", "procedure", 3_000_000);
        procedure.preauth_id = Some(preauth_id);
        let uncited = line("PROC", "procedure", 3_000_000);
        let mut claim = claim(vec![procedure, uncited]);
        claim.lines[1].date_of_service = date!(2026 - 06 - 02);
        assert_eq!(claim.cited_preauths(), [preauth_id]);
        let approval = Preauth {
            id: preauth_id,
            insurer_id: claim.insurer_id,
            hospital_id: claim.hospital_id,
            policy_id: Uuid::from_u128(4),
            member_id: claim.member_id,
            visit_type: VisitType::Normal,
            planned_date: date!(2026 - 06 - 01),
            status: PreauthStatus::Approved,
            lines: vec![PreauthLine {
                service_code: "PROC".into(),
                category: "procedure".into(),
                quantity: 1,
                estimated_amount: 3_000_000,
                diagnosis: None,
                reason: None,
                approved_amount: 3_000_000,
            }],
            requested_amount: 3_000_000,
            approved_amount: 3_000_000,
            valid_until: Some(date!(2026 - 07 - 01)),
            reason: None,
            decided_by: None,
            decided_at: None,
            used_by_claim: None,
            created_at: datetime!(2026 - 06 - 01 9:00 UTC),
        };
        let rules = example();
        let approvals = BTreeMap::from([(preauth_id, approval)]);
        let (cover, used, accepted) = (cover(), Accumulators::default(), BTreeSet::new());
        let basis = Basis { rules: &rules, cover: &cover, used: &used, accepted: &accepted, approvals: &approvals };
        let result = adjudicate(&claim, &basis, &[]).unwrap();
        // Deductible 1 000.00, co-payment 2 000.00, 10 % of 27 000.00 = 2 700.00.
        assert_eq!((result.lines[0].insurer_pays, result.lines[0].patient_pays), (2_430_000, 570_000));
        assert_eq!(result.lines[1].rejection, Some(Reason::PreauthMissing));
        let bad = [Override { line: 3, insurer_pays: 1, reason: "x".into(), ex_gratia: false }];
        assert_eq!(
            adjudicate(&claim, &basis, &bad).unwrap_err(),
            Rejection::field("overrides[0].line", "names no line of the claim")
        );
        let fixed = [Override { line: 2, insurer_pays: 100, reason: "agreed".into(), ex_gratia: false }];
        let overridden = adjudicate(&claim, &basis, &fixed).unwrap();
        assert_eq!((overridden.lines[1].insurer_pays, overridden.lines[1].rejection), (100, None));
        assert_eq!(adjudicated_action(&fixed), "adjudicated_with_overrides");
    }

    #[test]
    fn a_claim_without_a_policy_is_refused_whole() {
        let claim = claim(vec![line("CONS", "consultation", 300_000)]);
        let result = reject_uncovered(&claim);
        assert_eq!(result.lines[0].rejection, Some(Reason::NoActivePolicy));
        assert_eq!(result.lines[0].patient_pays, 300_000);
        assert_eq!(result.usage, Accumulators::default());
    }
}
