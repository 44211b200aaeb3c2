//! Pre-authorisation: which requested services the rules decide alone.

use serde::{Deserialize, Serialize};

use super::adjudication::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreauthStatus {
    /// Waiting for a claims officer.
    Pending,
    Approved,
    PartiallyApproved,
    Denied,
}

impl PreauthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PreauthStatus::Pending => "pending",
            PreauthStatus::Approved => "approved",
            PreauthStatus::PartiallyApproved => "partially_approved",
            PreauthStatus::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<PreauthStatus> {
        [PreauthStatus::Pending, PreauthStatus::Approved, PreauthStatus::PartiallyApproved, PreauthStatus::Denied]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Whether it reserves money and may be cited by a claim.
    pub fn grants(self) -> bool {
        matches!(self, PreauthStatus::Approved | PreauthStatus::PartiallyApproved)
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
}
