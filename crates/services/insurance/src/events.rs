//! The insurance service's domain events, one type each. The payload is the type's JSON
//! form, read by billing and the hospital service (docs/events.md).
//!
//! - Policies: [`PolicyCreated`], [`PolicyActivated`], [`PolicySuspended`], [`PolicyExpired`],
//!   [`PolicyCancelled`], [`PolicyMemberAdded`] (each with the policy as it now is,
//!   [`PolicyState`]), and [`MemberStatusChanged`].
//! - Pre-authorisations: [`PreauthDecided`].
//! - Claims: [`ClaimAdjudicated`], [`ClaimReversed`], [`ClaimPaid`], [`ClaimRefused`].
//! - Patients: [`MemberVerified`].

use medcov_store::outbox::DomainEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::adjudication::{Adjudication, Adjustment, Outcome, Reason};
use crate::domain::claim::{Claim, ClaimStatus};
use crate::domain::policy::{MemberStatus, Policy, PolicyStatus};
use crate::domain::preauth::{Preauth, PreauthStatus};
use crate::domain::verification::Verification;

/// A premium: minor units and currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Premium {
    pub minor: i64,
    pub currency: String,
}

/// A member of a policy, by id and number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRef {
    pub member_id: Uuid,
    pub member_number: String,
}

/// A policy as every policy event shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyState {
    pub policy_id: Uuid,
    pub insurer_id: Uuid,
    pub number: String,
    pub plan_id: Uuid,
    pub plan_version_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    pub expiry_date: String,
    pub premium: Premium,
    pub status: PolicyStatus,
    pub members: Vec<MemberRef>,
}

impl PolicyState {
    pub fn of(policy: &Policy) -> PolicyState {
        PolicyState {
            policy_id: policy.id,
            insurer_id: policy.insurer_id,
            number: policy.number.clone(),
            plan_id: policy.plan_id,
            plan_version_id: policy.plan_version_id,
            holder_id: policy.holder_id,
            agent_id: policy.agent_id,
            start_date: policy.start_date.to_string(),
            expiry_date: policy.expiry_date.to_string(),
            premium: Premium { minor: policy.premium, currency: policy.currency.clone() },
            status: policy.status,
            members: policy
                .members
                .iter()
                .map(|m| MemberRef { member_id: m.member_id, member_number: m.member_number.clone() })
                .collect(),
        }
    }
}

/// A policy period was sold (or renewed) and waits for its premium; billing invoices it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyCreated {
    #[serde(flatten)]
    pub policy: PolicyState,
    /// The period it renews.
    pub renewal_of: Option<Uuid>,
    /// The insurer's IANA time zone: the premium is numbered and due by its days.
    pub insurer_timezone: String,
}

impl DomainEvent for PolicyCreated {
    const TYPE: &'static str = "insurance.policy_created.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.policy.insurer_id
    }
}

/// A dependant joined a policy period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyMemberAdded {
    #[serde(flatten)]
    pub policy: PolicyState,
    pub member_id: Uuid,
}

impl DomainEvent for PolicyMemberAdded {
    const TYPE: &'static str = "insurance.policy_member_added.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.policy.insurer_id
    }
}

/// A policy's move to a new status: the policy as it now is, where it came from, from which
/// day it stops covering, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyStatusChange {
    #[serde(flatten)]
    pub policy: PolicyState,
    pub previous_status: PolicyStatus,
    /// `YYYY-MM-DD`.
    pub ended_on: Option<String>,
    pub reason: Option<String>,
}

/// The premium was paid (or an administrator activated it, or lifted a suspension).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicyActivated(pub PolicyStatusChange);

impl DomainEvent for PolicyActivated {
    const TYPE: &'static str = "insurance.policy_activated.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.0.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.policy.insurer_id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicySuspended(pub PolicyStatusChange);

impl DomainEvent for PolicySuspended {
    const TYPE: &'static str = "insurance.policy_suspended.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.0.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.policy.insurer_id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicyExpired(pub PolicyStatusChange);

impl DomainEvent for PolicyExpired {
    const TYPE: &'static str = "insurance.policy_expired.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.0.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.policy.insurer_id
    }
}

/// Cancelled (by an administrator, or by the policy-sale saga when the premium was not paid);
/// billing voids an unpaid premium.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicyCancelled(pub PolicyStatusChange);

impl DomainEvent for PolicyCancelled {
    const TYPE: &'static str = "insurance.policy_cancelled.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.0.policy.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.policy.insurer_id
    }
}

/// A member's status changed on one policy period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberStatusChanged {
    pub policy_id: Uuid,
    pub member_id: Uuid,
    pub status: MemberStatus,
    /// `YYYY-MM-DD`.
    pub status_on: Option<String>,
    /// The policy's insurer (the tenant; not in the payload).
    #[serde(skip)]
    pub insurer_id: Uuid,
}

impl DomainEvent for MemberStatusChanged {
    const TYPE: &'static str = "insurance.member_status_changed.v1";
    const AGGREGATE: &'static str = "policy";
    fn aggregate_id(&self) -> Uuid {
        self.policy_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// A pre-authorisation was decided (by the rules or a claims officer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreauthDecided {
    pub preauth_id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub member_id: Uuid,
    /// The member's number: the hospital checks it against the patient's when care cites the
    /// approval.
    pub member_number: String,
    pub status: PreauthStatus,
    pub requested_amount: i64,
    pub approved_amount: i64,
    /// `YYYY-MM-DD`.
    pub valid_until: Option<String>,
    pub reason: Option<String>,
    /// The service codes it grants (approved lines), for the hospital's check at care time.
    pub services: Vec<String>,
}

impl PreauthDecided {
    /// The decision on `preauth`, of the member with `member_number`.
    pub fn of(preauth: &Preauth, member_number: &str) -> PreauthDecided {
        let granted = preauth.status.grants();
        PreauthDecided {
            preauth_id: preauth.id,
            insurer_id: preauth.insurer_id,
            hospital_id: preauth.hospital_id,
            member_id: preauth.member_id,
            member_number: member_number.to_owned(),
            status: preauth.status,
            requested_amount: preauth.requested_amount,
            approved_amount: preauth.approved_amount,
            valid_until: preauth.valid_until.map(|d| d.to_string()),
            reason: preauth.reason.clone(),
            services: preauth
                .lines
                .iter()
                .filter(|l| granted && l.approved_amount > 0)
                .map(|l| l.service_code.clone())
                .collect(),
        }
    }
}

impl DomainEvent for PreauthDecided {
    const TYPE: &'static str = "insurance.preauth_decided.v1";
    const AGGREGATE: &'static str = "preauth";
    fn aggregate_id(&self) -> Uuid {
        self.preauth_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// One line of an adjudicated claim, as billing splits its invoice line by it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdjudicatedLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    pub unit_price: i64,
    /// `YYYY-MM-DD`.
    pub date_of_service: String,
    pub allowed: i64,
    pub insurer_pays: i64,
    pub patient_pays: i64,
    /// Part of `insurer_pays` paid ex gratia, beyond the plan's limits.
    pub ex_gratia: i64,
    pub rejection: Option<Reason>,
    /// Each cut and override with its code and amount; they add up to `patient_pays`.
    pub adjustments: Vec<Adjustment>,
}

/// A claim was adjudicated: per line, the split and the reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimAdjudicated {
    pub claim_id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub reference: String,
    pub member_id: Uuid,
    pub member_number: String,
    pub policy_id: Option<Uuid>,
    pub adjudication_no: i32,
    pub outcome: Outcome,
    pub currency: String,
    pub insurer_total: i64,
    pub patient_total: i64,
    pub lines: Vec<AdjudicatedLine>,
}

impl ClaimAdjudicated {
    /// The `number`th adjudication of `claim`, with its result.
    pub fn of(claim: &Claim, result: &Adjudication, number: i32) -> ClaimAdjudicated {
        ClaimAdjudicated {
            claim_id: claim.id,
            insurer_id: claim.insurer_id,
            hospital_id: claim.hospital_id,
            reference: claim.reference.clone(),
            member_id: claim.member_id,
            member_number: claim.member_number.clone(),
            policy_id: claim.policy_id,
            adjudication_no: number,
            outcome: result.outcome(),
            currency: claim.currency.clone(),
            insurer_total: result.insurer_total(),
            patient_total: result.patient_total(),
            lines: claim
                .lines
                .iter()
                .zip(&result.lines)
                .map(|(line, r)| AdjudicatedLine {
                    service_code: line.service_code.clone(),
                    category: line.category.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    date_of_service: line.date_of_service.to_string(),
                    allowed: r.allowed,
                    insurer_pays: r.insurer_pays,
                    patient_pays: r.patient_pays,
                    ex_gratia: r.ex_gratia,
                    rejection: r.rejection,
                    adjustments: r.adjustments.clone(),
                })
                .collect(),
        }
    }
}

impl DomainEvent for ClaimAdjudicated {
    const TYPE: &'static str = "insurance.claim_adjudicated.v1";
    const AGGREGATE: &'static str = "claim";
    fn aggregate_id(&self) -> Uuid {
        self.claim_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// An adjudication was undone: reversed, sent to review, or withdrawn with its invoice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimReversed {
    pub claim_id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub reference: String,
    pub adjudication_no: i32,
    pub reason: String,
    /// Where the claim now is: `submitted`, `in_review` or `withdrawn`.
    pub status: ClaimStatus,
}

impl DomainEvent for ClaimReversed {
    const TYPE: &'static str = "insurance.claim_reversed.v1";
    const AGGREGATE: &'static str = "claim";
    fn aggregate_id(&self) -> Uuid {
        self.claim_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// The insurer paid an adjudicated claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimPaid {
    pub claim_id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub reference: String,
    pub insurer_total: i64,
    pub currency: String,
    pub payment_reference: String,
}

impl DomainEvent for ClaimPaid {
    const TYPE: &'static str = "insurance.claim_paid.v1";
    const AGGREGATE: &'static str = "claim";
    fn aggregate_id(&self) -> Uuid {
        self.claim_id
    }
    fn tenant_id(&self) -> Uuid {
        self.insurer_id
    }
}

/// Billing asked for a claim that cannot be taken (no such member, another currency, a
/// reference used for another claim).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRefused {
    pub hospital_id: Uuid,
    /// The invoice number the claim would have had as its reference.
    pub reference: String,
    pub reason: String,
    /// The aggregate of the request (billing's invoice); not in the payload.
    #[serde(skip)]
    pub requested_for: Uuid,
}

impl DomainEvent for ClaimRefused {
    const TYPE: &'static str = "insurance.claim_refused.v1";
    const AGGREGATE: &'static str = "claim";
    fn aggregate_id(&self) -> Uuid {
        self.requested_for
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

/// What the insurer says of each member number on a patient's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberVerified {
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    /// `YYYY-MM-DD`.
    pub checked_on: String,
    pub members: Vec<Verification>,
}

impl DomainEvent for MemberVerified {
    const TYPE: &'static str = "insurance.member_verified.v1";
    const AGGREGATE: &'static str = "patient";
    fn aggregate_id(&self) -> Uuid {
        self.patient_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[cfg(test)]
mod tests {
    use medcov_store::outbox::Event;
    use serde_json::json;

    use super::*;
    use crate::domain::policy::tests::sample_policy;

    #[test]
    fn policy_payloads_keep_their_shape() {
        let policy = sample_policy();
        let change = PolicyStatusChange {
            policy: PolicyState::of(&policy),
            previous_status: PolicyStatus::Pending,
            ended_on: None,
            reason: Some("premium paid".into()),
        };
        let event = Event::of(&PolicyActivated(change));
        assert_eq!((event.event_type, event.aggregate_type), ("insurance.policy_activated.v1", "policy"));
        assert_eq!(event.tenant_id, policy.insurer_id);
        assert_eq!(
            event.payload,
            json!({
                "policy_id": policy.id, "insurer_id": policy.insurer_id, "number": "AAR-P00000001",
                "plan_id": policy.plan_id, "plan_version_id": policy.plan_version_id, "holder_id": policy.holder_id,
                "agent_id": null, "start_date": "2026-01-01", "expiry_date": "2026-12-31",
                "premium": {"minor": 1_800_000, "currency": "KES"}, "status": "active",
                "members": [{"member_id": policy.members[0].member_id, "member_number": "AAR-0000000195"}],
                "previous_status": "pending", "ended_on": null, "reason": "premium paid",
            })
        );
        let created = Event::of(&PolicyCreated {
            policy: PolicyState::of(&policy),
            renewal_of: None,
            insurer_timezone: "Africa/Nairobi".into(),
        });
        assert_eq!(created.payload["renewal_of"], json!(null));
        assert_eq!(created.payload["insurer_timezone"], "Africa/Nairobi");
        assert_eq!(created.payload["premium"], json!({"minor": 1_800_000, "currency": "KES"}));
    }

    #[test]
    fn a_refusal_names_the_request_it_answers_but_does_not_carry_it() {
        let refused = ClaimRefused {
            hospital_id: Uuid::from_u128(1),
            reference: "INV-1".into(),
            reason: "no such member".into(),
            requested_for: Uuid::from_u128(2),
        };
        let event = Event::of(&refused);
        assert_eq!(event.aggregate_id, Uuid::from_u128(2));
        assert_eq!(
            event.payload,
            json!({"hospital_id": Uuid::from_u128(1), "reference": "INV-1", "reason": "no such member"})
        );
        let status = Event::of(&MemberStatusChanged {
            policy_id: Uuid::from_u128(3),
            member_id: Uuid::from_u128(4),
            status: MemberStatus::Deceased,
            status_on: Some("2026-08-14".into()),
            insurer_id: Uuid::from_u128(5),
        });
        assert_eq!(status.tenant_id, Uuid::from_u128(5));
        assert_eq!(
            status.payload,
            json!({"policy_id": Uuid::from_u128(3), "member_id": Uuid::from_u128(4), "status": "deceased", "status_on": "2026-08-14"})
        );
    }
}
