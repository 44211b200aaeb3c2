//! Pre-authorisation: approval of planned care before it is given. The rules decide what
//! they can ([`automatic`]); a claims officer decides the rest ([`rule`]). An approval reserves
//! its amount against the ceilings ([`reservation`]) until a claim uses it or it expires.

use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::adjudication::{Accumulators, Approval, PerSetting, Reason};
use super::eligibility::{self, Question, ServiceQuery};
use super::plan::{PlanRules, Setting, VisitType};
use super::policy::Coverage;

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
pub enum PreauthStatus {
    /// Waiting for a claims officer.
    Pending,
    Approved,
    PartiallyApproved,
    Denied,
}

impl TextEnum for PreauthStatus {}

impl PreauthStatus {
    /// Whether it reserves money and may be cited by a claim.
    pub fn grants(self) -> bool {
        matches!(self, PreauthStatus::Approved | PreauthStatus::PartiallyApproved)
    }
}

/// A requested service of a pre-authorisation and what was decided for it (kept as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreauthLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// The hospital's estimate for the line, in minor units.
    pub estimated_amount: i64,
    pub diagnosis: Option<String>,
    /// Why the rules do not cover it, if they do not.
    pub reason: Option<Reason>,
    pub approved_amount: i64,
}

/// A pre-authorisation request and its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Preauth {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub policy_id: Uuid,
    pub member_id: Uuid,
    pub visit_type: VisitType,
    pub planned_date: Date,
    pub status: PreauthStatus,
    pub lines: Vec<PreauthLine>,
    pub requested_amount: i64,
    pub approved_amount: i64,
    /// The last day a claim may use it.
    pub valid_until: Option<Date>,
    pub reason: Option<String>,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<OffsetDateTime>,
    /// The claim that used it; until then its approved amount is reserved against ceilings.
    pub used_by_claim: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

impl Preauth {
    /// Whether a claim of `member` (`claim`) may cite it: the member's, granted, and not used
    /// by another claim.
    pub fn usable_by(&self, member: Uuid, claim: Uuid) -> bool {
        self.member_id == member && self.status.grants() && self.used_by_claim.is_none_or(|c| c == claim)
    }

    /// What it approved for a service, as the engine sees it.
    pub fn approval(&self, service_code: &str) -> Option<Approval> {
        self.lines.iter().find(|l| l.service_code.eq_ignore_ascii_case(service_code)).map(|l| Approval {
            service_code: l.service_code.clone(),
            approved_amount: l.approved_amount,
            valid_until: self.valid_until.unwrap_or(self.planned_date),
        })
    }
}

/// A service asked for (codes already normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedService {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// The hospital's estimate for the whole line, in minor units.
    pub estimated_amount: i64,
    pub diagnosis: Option<String>,
}

/// A request for approval of planned care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub hospital_id: Uuid,
    pub visit_type: VisitType,
    pub planned_date: Date,
    pub services: Vec<RequestedService>,
}

/// A request as the rules answer it, with what it reserves.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub preauth: Preauth,
    pub reserved: PerSetting,
}

/// How long an approval stays valid: `days` from the planned day (or from today, for a day
/// already past).
pub fn valid_until(planned: Date, days: u32, today: Date) -> Date {
    planned.max(today) + Duration::days(i64::from(days))
}

/// What an approval reserves, per setting: each approved line's amount in its category's
/// setting.
pub fn reservation(rules: &PlanRules, lines: &[PreauthLine]) -> PerSetting {
    let mut reserved = PerSetting::default();
    for line in lines {
        match rules.categories.get(&line.category).map(|c| c.setting) {
            Some(Setting::Inpatient) => reserved.inpatient += line.approved_amount,
            _ => reserved.outpatient += line.approved_amount,
        }
    }
    reserved
}

/// A new request as the rules answer it (`id`, `now` and the insurer's local date `today`
/// given): each service is checked as an
/// eligibility question; then [`automatic`] approves, denies, or leaves it pending.
pub fn request(
    rules: &PlanRules,
    coverage: &Coverage,
    used: &Accumulators,
    request: &Request,
    id: Uuid,
    (now, today): (OffsetDateTime, time::Date),
) -> Requested {
    let services: Vec<ServiceQuery> = request
        .services
        .iter()
        .map(|s| ServiceQuery {
            service_code: s.service_code.clone(),
            category: s.category.clone(),
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
    let answer = eligibility::answer(rules, &coverage.cover, used, &question);
    let per_line: Vec<(i64, Option<Reason>)> =
        request.services.iter().zip(&answer.services).map(|(s, a)| (s.estimated_amount, a.reason)).collect();
    let status = automatic(&Checked {
        member_covered: answer.reason,
        lines: &per_line,
        auto_approve_up_to: rules.preauth_auto_approve_up_to,
    })
    .unwrap_or(PreauthStatus::Pending);
    let approved = status == PreauthStatus::Approved;
    let lines: Vec<PreauthLine> = request
        .services
        .iter()
        .zip(&answer.services)
        .map(|(s, a)| PreauthLine {
            service_code: s.service_code.clone(),
            category: s.category.clone(),
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
    let reserved = if approved { reservation(rules, &lines) } else { PerSetting::default() };
    let preauth = Preauth {
        id,
        insurer_id: coverage.policy.insurer_id,
        hospital_id: request.hospital_id,
        policy_id: coverage.policy.id,
        member_id: coverage.member.member_id,
        visit_type: request.visit_type,
        planned_date: request.planned_date,
        status,
        requested_amount: lines.iter().map(|l| l.estimated_amount).sum(),
        approved_amount: lines.iter().map(|l| l.approved_amount).sum(),
        valid_until: approved.then(|| valid_until(request.planned_date, rules.preauth_valid_days, today)),
        reason,
        decided_by: None,
        decided_at: (status != PreauthStatus::Pending).then_some(now),
        used_by_claim: None,
        created_at: now,
        lines,
    };
    Requested { preauth, reserved }
}

/// A claims officer's verdict on a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
}

/// A verdict checked against the request: the status it gives and the amount approved per
/// line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub status: PreauthStatus,
    /// Per line, in order.
    pub approved: Vec<i64>,
    pub reason: Option<String>,
}

/// Checks a claims officer's verdict on `current`: only a pending request is decided (409);
/// approving without amounts approves every estimate; each amount lies between 0 and its
/// estimate; denying or approving less needs a reason.
pub fn rule(
    current: &Preauth,
    verdict: Verdict,
    amounts: Option<&[i64]>,
    reason: Option<&str>,
) -> Result<Ruling, Rejection> {
    if current.status != PreauthStatus::Pending {
        return Err(Rejection::conflict(format!("the request was already {}", current.status.as_str())));
    }
    let requested: Vec<i64> = current.lines.iter().map(|l| l.estimated_amount).collect();
    let approved = match (verdict, amounts) {
        (Verdict::Deny, _) => vec![0; requested.len()],
        (Verdict::Approve, None) => requested.clone(),
        (Verdict::Approve, Some(amounts)) => amounts.to_vec(),
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
    let status = decided(&requested, &approved);
    if status != PreauthStatus::Approved && reason.is_none_or(|r| r.trim().is_empty()) {
        errors.push(FieldError::new("reason", "is required to deny or to approve less than was asked"));
    }
    Rejection::check(errors)?;
    Ok(Ruling { status, approved, reason: reason.map(|r| r.trim().to_owned()) })
}

/// A decision on a pending pre-authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: PreauthStatus,
    /// Per line, in order.
    pub approved: Vec<i64>,
    pub valid_until: Option<Date>,
    pub reason: Option<String>,
    /// What it reserves against the ceilings, per setting.
    pub reserved: PerSetting,
}

impl Decision {
    /// The decision a ruling makes under the plan's `rules`: a grant is valid for the plan's
    /// days and reserves its approved amounts.
    pub fn of(current: &Preauth, ruling: Ruling, rules: &PlanRules, today: Date) -> Decision {
        let mut lines = current.lines.clone();
        for (line, amount) in lines.iter_mut().zip(&ruling.approved) {
            line.approved_amount = *amount;
        }
        let grants = ruling.status.grants();
        Decision {
            status: ruling.status,
            valid_until: grants.then(|| valid_until(current.planned_date, rules.preauth_valid_days, today)),
            reserved: if grants { reservation(rules, &lines) } else { PerSetting::default() },
            approved: ruling.approved,
            reason: ruling.reason,
        }
    }

    /// `current` as this decision, taken by `by` at `at`, leaves it.
    pub fn applied_to(&self, current: &Preauth, by: Uuid, at: OffsetDateTime) -> Preauth {
        let mut decided = current.clone();
        decided.status = self.status;
        for (line, approved) in decided.lines.iter_mut().zip(&self.approved) {
            line.approved_amount = *approved;
        }
        decided.approved_amount = self.approved.iter().sum();
        decided.valid_until = self.valid_until;
        decided.reason = self.reason.clone();
        decided.decided_by = Some(by);
        decided.decided_at = Some(at);
        decided
    }
}

/// What the rules say about a request whose lines the eligibility check answered: `covered`
/// per line (with its reason when not) and the requested amounts.
pub struct Checked<'a> {
    pub member_covered: Option<Reason>,
    pub lines: &'a [(i64, Option<Reason>)],
    pub auto_approve_up_to: Option<i64>,
}

/// The automatic decision, if the rules can take it: denied when the member is not covered or
/// no line is; approved in full when every line is covered and the total is within the plan's
/// automatic threshold; otherwise a claims officer decides (`None`).
pub fn automatic(checked: &Checked<'_>) -> Option<PreauthStatus> {
    if checked.member_covered.is_some() || checked.lines.iter().all(|(_, reason)| reason.is_some()) {
        return Some(PreauthStatus::Denied);
    }
    let total: i64 = checked.lines.iter().map(|(amount, _)| *amount).sum();
    let all_covered = checked.lines.iter().all(|(_, reason)| reason.is_none());
    match checked.auto_approve_up_to {
        Some(limit) if all_covered && total <= limit => Some(PreauthStatus::Approved),
        _ => None,
    }
}

/// The status of a decision that approves `approved` of `requested`, line by line.
pub fn decided(requested: &[i64], approved: &[i64]) -> PreauthStatus {
    if approved.iter().all(|a| *a == 0) {
        PreauthStatus::Denied
    } else if approved.iter().zip(requested).all(|(a, r)| a >= r) {
        PreauthStatus::Approved
    } else {
        PreauthStatus::PartiallyApproved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_decisions() {
        let covered = [(3_000_000, None), (1_000_000, None)];
        let auto = |lines: &[(i64, Option<Reason>)], limit, member| {
            automatic(&Checked { member_covered: member, lines, auto_approve_up_to: limit })
        };
        assert_eq!(auto(&covered, Some(5_000_000), None), Some(PreauthStatus::Approved));
        assert_eq!(auto(&covered, Some(3_999_999), None), None);
        assert_eq!(auto(&covered, None, None), None);
        assert_eq!(auto(&covered, Some(5_000_000), Some(Reason::NoActivePolicy)), Some(PreauthStatus::Denied));
        let mixed = [(3_000_000, None), (1_000_000, Some(Reason::ExcludedService))];
        assert_eq!(auto(&mixed, Some(9_000_000), None), None);
        assert_eq!(auto(&[(1, Some(Reason::NotCovered))], Some(9), None), Some(PreauthStatus::Denied));
    }

    #[test]
    fn decisions() {
        assert_eq!(decided(&[100, 200], &[100, 200]), PreauthStatus::Approved);
        assert_eq!(decided(&[100, 200], &[100, 150]), PreauthStatus::PartiallyApproved);
        assert_eq!(decided(&[100, 200], &[0, 0]), PreauthStatus::Denied);
    }

    use time::macros::{date, datetime};

    fn line(code: &str, category: &str, estimate: i64, approved: i64) -> PreauthLine {
        PreauthLine {
            service_code: code.into(),
            category: category.into(),
            quantity: 1,
            estimated_amount: estimate,
            diagnosis: None,
            reason: None,
            approved_amount: approved,
        }
    }

    fn pending(lines: Vec<PreauthLine>) -> Preauth {
        let at = datetime!(2026 - 06 - 01 8:00 UTC);
        Preauth {
            id: Uuid::from_u128(1),
            insurer_id: Uuid::from_u128(2),
            hospital_id: Uuid::from_u128(3),
            policy_id: Uuid::from_u128(4),
            member_id: Uuid::from_u128(5),
            visit_type: VisitType::Normal,
            planned_date: date!(2026 - 06 - 15),
            status: PreauthStatus::Pending,
            requested_amount: lines.iter().map(|l| l.estimated_amount).sum(),
            approved_amount: 0,
            lines,
            valid_until: None,
            reason: None,
            decided_by: None,
            decided_at: None,
            used_by_claim: None,
            created_at: at,
        }
    }

    #[test]
    fn reservations_follow_the_category_setting() {
        let rules = crate::domain::plan::example();
        let lines =
            [line("PROC", "procedure", 0, 4_000_000), line("LAB", "laboratory", 0, 100), line("X", "dental", 0, 7)];
        // An unknown category reserves against the out-patient ceiling.
        assert_eq!(reservation(&rules, &lines), PerSetting { inpatient: 4_000_000, outpatient: 107 });
        assert_eq!(valid_until(date!(2026 - 06 - 15), 30, date!(2026 - 06 - 01)), date!(2026 - 07 - 15));
        assert_eq!(valid_until(date!(2026 - 05 - 01), 30, date!(2026 - 06 - 01)), date!(2026 - 07 - 01));
    }

    #[test]
    fn which_approvals_a_claim_may_cite() {
        let mut approved = pending(vec![line("PROC-APPX", "procedure", 5_000_000, 4_000_000)]);
        approved.status = PreauthStatus::PartiallyApproved;
        approved.valid_until = Some(date!(2026 - 07 - 15));
        let (member, claim) = (Uuid::from_u128(5), Uuid::from_u128(77));
        assert!(approved.usable_by(member, claim));
        assert!(!approved.usable_by(Uuid::from_u128(6), claim), "another member's");
        assert!(!Preauth { used_by_claim: Some(Uuid::from_u128(78)), ..approved.clone() }.usable_by(member, claim));
        assert!(Preauth { used_by_claim: Some(claim), ..approved.clone() }.usable_by(member, claim));
        assert!(!Preauth { status: PreauthStatus::Denied, ..approved.clone() }.usable_by(member, claim));
        assert_eq!(
            approved.approval("proc-appx"),
            Some(Approval {
                service_code: "PROC-APPX".into(),
                approved_amount: 4_000_000,
                valid_until: date!(2026 - 07 - 15)
            })
        );
        assert_eq!(approved.approval("LAB"), None);
    }

    #[test]
    fn a_claims_officer_rules_on_pending_requests_only() {
        let current = pending(vec![line("PROC", "procedure", 6_000_000, 0), line("LAB", "laboratory", 100_000, 0)]);
        let fields = |r: Result<Ruling, Rejection>| match r {
            Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let all = rule(&current, Verdict::Approve, None, None).unwrap();
        assert_eq!((all.status, all.approved), (PreauthStatus::Approved, vec![6_000_000, 100_000]));
        let partial = rule(&current, Verdict::Approve, Some(&[4_000_000, 100_000]), Some(" tariff ")).unwrap();
        assert_eq!(partial.status, PreauthStatus::PartiallyApproved);
        assert_eq!(partial.reason.as_deref(), Some("tariff"));
        assert_eq!(fields(rule(&current, Verdict::Approve, Some(&[4_000_000, 100_000]), None)), ["reason"]);
        assert_eq!(
            fields(rule(&current, Verdict::Approve, Some(&[7_000_000]), Some("x"))),
            ["approved_amounts", "approved_amounts[0]"]
        );
        assert_eq!(fields(rule(&current, Verdict::Deny, None, Some(""))), ["reason"]);
        let denied = rule(&current, Verdict::Deny, None, Some("no")).unwrap();
        assert_eq!((denied.status, denied.approved.clone()), (PreauthStatus::Denied, vec![0, 0]));
        let decided = Preauth { status: PreauthStatus::Denied, ..current.clone() };
        assert_eq!(
            rule(&decided, Verdict::Approve, None, None),
            Err(Rejection::conflict("the request was already denied"))
        );

        // The decision: valid for the plan's days, reserving what it grants.
        let rules = crate::domain::plan::example();
        let decision = Decision::of(&current, partial, &rules, date!(2026 - 06 - 01));
        assert_eq!(decision.valid_until, Some(date!(2026 - 07 - 15)));
        assert_eq!(decision.reserved, PerSetting { inpatient: 4_000_000, outpatient: 100_000 });
        let applied = decision.applied_to(&current, Uuid::from_u128(9), datetime!(2026 - 06 - 02 9:00 UTC));
        assert_eq!((applied.approved_amount, applied.decided_by), (4_100_000, Some(Uuid::from_u128(9))));
        assert_eq!(applied.lines[0].approved_amount, 4_000_000);
        let none = Decision::of(&current, denied, &rules, date!(2026 - 06 - 01));
        assert_eq!((none.valid_until, none.reserved), (None, PerSetting::default()));
    }
}
