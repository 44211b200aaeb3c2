//! Pre-authorisations as the hospital knows them: the services an insurer granted for care here
//! (from `insurance.preauth_decided.v1`), and the check that care citing one is covered by it.

use medcov_domain::{FieldError, Rejection};
use time::Date;
use uuid::Uuid;

use super::encounter::ServiceLine;

/// One service an insurer granted by a pre-authorisation, for a member at a hospital.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub preauth_id: Uuid,
    pub service_code: String,
    pub hospital_id: Uuid,
    pub member_number: String,
    /// The last day it may be used, when it has one.
    pub valid_until: Option<Date>,
}

/// The approvals one decision grants: one per service, none when it grants nothing.
pub fn granted(
    preauth_id: Uuid,
    hospital_id: Uuid,
    member_number: &str,
    services: &[String],
    valid_until: Option<Date>,
) -> Vec<Approval> {
    services
        .iter()
        .map(|code| Approval {
            preauth_id,
            service_code: code.trim().to_uppercase(),
            hospital_id,
            member_number: member_number.trim().to_owned(),
            valid_until,
        })
        .collect()
}

/// Whether each service line that cites a pre-authorisation is covered by it: granted for this
/// service, at `hospital`, to one of the patient's `member_numbers`, and valid on `day` (the
/// hospital's date of service). `approvals` are those known for the cited ids. Refused with
/// 422 naming `services[i].preauth_id`.
pub fn check(
    lines: &[ServiceLine],
    approvals: &[Approval],
    hospital: Uuid,
    member_numbers: &[&str],
    day: Date,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(id) = line.preauth_id else { continue };
        let code = line.code.trim().to_uppercase();
        let of_it: Vec<&Approval> = approvals.iter().filter(|a| a.preauth_id == id).collect();
        let field = format!("services[{i}].preauth_id");
        let why = if of_it.is_empty() {
            Some("is not a pre-authorisation granted for care here (a decision reaches the hospital within seconds)")
        } else if !of_it.iter().any(|a| a.service_code == code) {
            Some("does not grant this service")
        } else if !of_it.iter().any(|a| a.hospital_id == hospital) {
            Some("was granted for another hospital")
        } else if !of_it.iter().any(|a| member_numbers.contains(&a.member_number.as_str())) {
            Some("was granted to a member who is not this patient")
        } else if of_it.iter().any(|a| a.valid_until.is_some_and(|last| last < day)) {
            Some("has expired")
        } else {
            None
        };
        if let Some(why) = why {
            errors.push(FieldError::new(field, why));
        }
    }
    Rejection::check(errors)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn care_is_checked_against_what_was_granted() {
        let (preauth, other, hospital) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let approvals = granted(preauth, hospital, "AAR-0000000195", &["proc-1 ".into()], Some(date!(2026 - 12 - 31)));
        assert_eq!(approvals[0].service_code, "PROC-1");
        let line = |code: &str, id| ServiceLine { code: code.into(), quantity: 1, preauth_id: id };
        let numbers = ["AAR-0000000195"];
        let day = date!(2026 - 12 - 01);
        // (lines, member numbers, hospital, day, the reason for services[i], if refused)
        type Case<'a> = (Vec<ServiceLine>, &'a [&'a str], Uuid, Date, Option<(usize, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            (vec![line("PROC-1", Some(preauth))], &numbers, hospital, day, None),
            (vec![line("CONS", None), line("PROC-1", Some(preauth))], &numbers, hospital, day, None),
            (vec![line("PROC-1", Some(preauth))], &numbers, hospital, date!(2026 - 12 - 31), None),
            (
                vec![line("CONS", None), line("PROC-1", Some(other))],
                &numbers,
                hospital,
                day,
                Some((1, "is not a pre-authorisation")),
            ),
            (vec![line("XRAY", Some(preauth))], &numbers, hospital, day, Some((0, "does not grant this service"))),
            (vec![line("PROC-1", Some(preauth))], &numbers, Uuid::from_u128(9), day, Some((0, "another hospital"))),
            (vec![line("PROC-1", Some(preauth))], &["AAR-0000000200"], hospital, day, Some((0, "not this patient"))),
            (vec![line("PROC-1", Some(preauth))], &numbers, hospital, date!(2027 - 01 - 01), Some((0, "has expired"))),
        ];
        for (lines, numbers, at, on, refused) in cases {
            match (check(&lines, &approvals, at, numbers, on), refused) {
                (Ok(()), None) => {}
                (Err(Rejection::Invalid(errors)), Some((i, why))) => {
                    assert_eq!(errors.len(), 1, "{errors:?}");
                    assert_eq!(errors[0].field, format!("services[{i}].preauth_id"));
                    assert!(errors[0].reason.contains(why), "{errors:?}");
                }
                (got, want) => panic!("{lines:?}: {got:?}, expected {want:?}"),
            }
        }
    }
}
