//! Enrolment: selling a policy period, renewing it, and adding dependants to it. Each rule
//! takes what was asked and what is stored, and says what to write or why not.

use medcov_domain::{FieldError, Rejection, TextEnum};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::policy::{self, MemberStatus, Policy, PolicyStatus, Relationship};
use super::versions::{Plan, PlanVersion};

/// A person as asked for: a holder, or a dependant with their relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
}

/// A dependant to put on a new policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependant {
    pub person: Person,
    pub relationship: Relationship,
}

/// A policy as asked for by whoever sells it.
#[derive(Debug, Clone)]
pub struct Application {
    pub plan_id: Uuid,
    /// The first covered day; the period is one year.
    pub start_date: Date,
    pub holder: Person,
    pub dependants: Vec<Dependant>,
    pub agent_id: Option<Uuid>,
}

/// A dependant to add to a policy period.
#[derive(Debug, Clone)]
pub struct Addition {
    pub dependant: Dependant,
    /// The day cover starts for them (today by default).
    pub enrolled_on: Option<Date>,
}

/// A person to put on a new policy period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
    pub relationship: Relationship,
    /// An existing member (on renewal), keeping their number and enrolment date.
    pub existing: Option<(Uuid, Date)>,
}

impl NewMember {
    fn from_person(person: &Person, relationship: Relationship) -> NewMember {
        NewMember {
            given_name: person.given_name.trim().to_owned(),
            family_name: person.family_name.trim().to_owned(),
            date_of_birth: person.date_of_birth,
            relationship,
            existing: None,
        }
    }
}

/// A new policy period, before numbering.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPolicy {
    pub insurer_id: Uuid,
    pub plan_id: Uuid,
    pub plan_version_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub start_date: Date,
    pub expiry_date: Date,
    pub premium: i64,
    pub currency: String,
    pub members: Vec<NewMember>,
    pub renewal_of: Option<Uuid>,
    /// When the policy-sale saga gives up on the premium and cancels the policy.
    pub premium_deadline: OffsetDateTime,
}

impl NewPolicy {
    /// How many of its members are new to the insurer (and need numbers).
    pub fn new_members(&self) -> usize {
        self.members.iter().filter(|m| m.existing.is_none()).count()
    }

    fn priced(version: &PlanVersion, members: &[NewMember], start: Date) -> (i64, String) {
        let births: Vec<Date> = members.iter().map(|m| m.date_of_birth).collect();
        (policy::premium(&version.rules.premium, &births, start), version.rules.currency.to_string())
    }
}

/// The last covered day of a one-year period starting on `start`.
pub fn expiry_of(start: Date) -> Date {
    let next = start.replace_year(start.year() + 1).unwrap_or_else(|_| start + Duration::days(365));
    next.previous_day().unwrap_or(next)
}

/// A person's name part, by the rule every service applies to names.
fn check_name(errors: &mut Vec<FieldError>, field: String, value: &str) {
    if let Err(reason) = medcov_domain::values::person_name(value) {
        errors.push(FieldError::new(field, reason));
    } else if let Some(problem) = medcov_domain::text::display_problem(field, value) {
        errors.push(problem);
    }
}

/// A person's names and birth date, for cover from `on`; fields are named under `at`.
fn check_person(errors: &mut Vec<FieldError>, at: &str, person: &Person, on: Date) {
    let field = |name: &str| if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") };
    check_name(errors, field("given_name"), &person.given_name);
    check_name(errors, field("family_name"), &person.family_name);
    if person.date_of_birth > on {
        errors.push(FieldError::new(field("date_of_birth"), "must not be after the start of cover"));
    } else if policy::age_on(person.date_of_birth, on) > 130 {
        errors.push(FieldError::new(field("date_of_birth"), "is more than 130 years ago"));
    }
}

/// A new policy under `plan`: the version in effect on its first day, valid people within the
/// plan's maximum, and the premium that version asks for them.
pub fn new_policy(
    plan: &Plan,
    application: &Application,
    premium_deadline: OffsetDateTime,
) -> Result<NewPolicy, Rejection> {
    let start = application.start_date;
    let mut errors = Vec::new();
    let version = plan.version_on(start);
    if version.is_none() {
        errors.push(FieldError::new("start_date", "no version of the plan is in effect on this day"));
    }
    check_person(&mut errors, "holder", &application.holder, start);
    for (i, d) in application.dependants.iter().enumerate() {
        check_person(&mut errors, &format!("dependants[{i}]"), &d.person, start);
        if d.relationship == Relationship::Holder {
            errors.push(FieldError::new(format!("dependants[{i}].relationship"), "a policy has one holder"));
        }
    }
    if let Some(v) = version
        && 1 + application.dependants.len() > v.rules.max_members as usize
    {
        errors.push(FieldError::new("dependants", format!("the plan covers at most {} members", v.rules.max_members)));
    }
    Rejection::check(errors)?;
    let version = version.ok_or(Rejection::Invalid(Vec::new()))?;
    let mut members = vec![NewMember::from_person(&application.holder, Relationship::Holder)];
    members.extend(application.dependants.iter().map(|d| NewMember::from_person(&d.person, d.relationship)));
    let (premium, currency) = NewPolicy::priced(version, &members, start);
    Ok(NewPolicy {
        insurer_id: plan.insurer_id,
        plan_id: plan.id,
        plan_version_id: version.id,
        agent_id: application.agent_id,
        start_date: start,
        expiry_date: expiry_of(start),
        premium,
        currency,
        members,
        renewal_of: None,
        premium_deadline,
    })
}

/// Whether a period can be renewed at all (before its plan is read).
pub fn check_renewable(current: &Policy) -> Result<(), Rejection> {
    if matches!(current.status, PolicyStatus::Cancelled | PolicyStatus::Pending) {
        return Err(Rejection::conflict(format!("a {} policy cannot be renewed", current.status.as_str())));
    }
    Ok(())
}

/// The next one-year period of `current`, under the version of `plan` in effect on its first
/// day, with the active members (their numbers and enrolment dates kept, so waiting periods
/// are not served twice).
pub fn renewal(current: &Policy, plan: &Plan, premium_deadline: OffsetDateTime) -> Result<NewPolicy, Rejection> {
    let start = current.expiry_date.next_day().unwrap_or(current.expiry_date);
    let version = plan
        .version_on(start)
        .ok_or_else(|| Rejection::field("plan", format!("no version of the plan is in effect on {start}")))?;
    let members: Vec<NewMember> = current
        .members
        .iter()
        .filter(|m| m.status == MemberStatus::Active)
        .map(|m| NewMember {
            given_name: m.given_name.clone(),
            family_name: m.family_name.clone(),
            date_of_birth: m.date_of_birth,
            relationship: m.relationship,
            existing: Some((m.member_id, m.enrolled_on)),
        })
        .collect();
    if !members.iter().any(|m| m.relationship == Relationship::Holder) {
        return Err(Rejection::conflict("the holder is no longer active; sell a new policy instead"));
    }
    let (premium, currency) = NewPolicy::priced(version, &members, start);
    Ok(NewPolicy {
        insurer_id: current.insurer_id,
        plan_id: current.plan_id,
        plan_version_id: version.id,
        agent_id: current.agent_id,
        start_date: start,
        expiry_date: expiry_of(start),
        premium,
        currency,
        members,
        renewal_of: Some(current.id),
        premium_deadline,
    })
}

/// A dependant added to `policy`: the member to write and the day their cover starts (not
/// before the period's first day).
pub fn dependant(policy: &Policy, addition: &Addition, today: Date) -> Result<(NewMember, Date), Rejection> {
    if matches!(policy.status, PolicyStatus::Cancelled | PolicyStatus::Expired) {
        return Err(Rejection::conflict(format!("a {} policy takes no new members", policy.status.as_str())));
    }
    let enrolled_on = addition.enrolled_on.unwrap_or(today).max(policy.start_date);
    let mut errors = Vec::new();
    check_person(&mut errors, "", &addition.dependant.person, enrolled_on);
    if addition.dependant.relationship == Relationship::Holder {
        errors.push(FieldError::new("relationship", "a policy has one holder"));
    }
    if enrolled_on > policy.expiry_date {
        errors.push(FieldError::new("enrolled_on", "must fall within the policy period"));
    }
    Rejection::check(errors)?;
    Ok((NewMember::from_person(&addition.dependant.person, addition.dependant.relationship), enrolled_on))
}

/// Whether a period with `members` members has room for one more under a plan of `max`.
pub fn check_room(members: i64, max: u32) -> Result<(), Rejection> {
    if members >= i64::from(max) {
        return Err(Rejection::conflict(format!("the plan allows at most {max} members")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::plan::example;
    use crate::domain::policy::tests::sample_policy;

    fn person(given: &str, born: Date) -> Person {
        Person { given_name: given.into(), family_name: " Otieno ".into(), date_of_birth: born }
    }

    fn plan() -> Plan {
        Plan {
            id: Uuid::from_u128(3),
            insurer_id: Uuid::from_u128(2),
            code: "GOLD".into(),
            name: "Gold".into(),
            versions: vec![PlanVersion {
                id: Uuid::from_u128(4),
                plan_id: Uuid::from_u128(3),
                version: 1,
                effective_from: date!(2026 - 01 - 01),
                effective_to: None,
                rules: example(),
                created_at: datetime!(2026 - 01 - 01 0:00 UTC),
            }],
        }
    }

    fn fields(rejection: Rejection) -> Vec<String> {
        match rejection {
            Rejection::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    const DEADLINE: OffsetDateTime = datetime!(2026 - 01 - 02 0:00 UTC);

    #[test]
    fn a_new_policy_is_priced_and_trimmed() {
        let application = Application {
            plan_id: Uuid::from_u128(3),
            start_date: date!(2026 - 03 - 01),
            holder: person(" Amina", date!(1988 - 04 - 12)),
            dependants: vec![Dependant {
                person: person("Baraka", date!(2015 - 09 - 30)),
                relationship: Relationship::Child,
            }],
            agent_id: None,
        };
        let new = new_policy(&plan(), &application, DEADLINE).unwrap();
        // 12 000.00 for the adult, 6 000.00 for the child.
        assert_eq!(new.premium, 1_800_000);
        assert_eq!(new.currency, "KES");
        assert_eq!(new.expiry_date, date!(2027 - 02 - 28));
        assert_eq!((new.members[0].given_name.as_str(), new.members[0].family_name.as_str()), ("Amina", "Otieno"));
        assert_eq!(new.members[1].relationship, Relationship::Child);
        assert_eq!(new.new_members(), 2);
    }

    #[test]
    fn a_bad_application_names_every_field() {
        let child = |relationship| Dependant { person: person("", date!(2027 - 01 - 01)), relationship };
        let application = Application {
            plan_id: Uuid::from_u128(3),
            start_date: date!(2025 - 06 - 01),
            holder: person("Amina", date!(1880 - 01 - 01)),
            dependants: vec![child(Relationship::Holder), child(Relationship::Child)],
            agent_id: None,
        };
        assert_eq!(
            fields(new_policy(&plan(), &application, DEADLINE).unwrap_err()),
            [
                "start_date",
                "holder.date_of_birth",
                "dependants[0].given_name",
                "dependants[0].date_of_birth",
                "dependants[0].relationship",
                "dependants[1].given_name",
                "dependants[1].date_of_birth",
            ]
        );
        let crowded = Application {
            start_date: date!(2026 - 06 - 01),
            holder: person("Amina", date!(1988 - 01 - 01)),
            dependants: vec![
                Dependant { person: person("B", date!(2010 - 01 - 01)), relationship: Relationship::Child };
                4
            ],
            ..application
        };
        assert_eq!(fields(new_policy(&plan(), &crowded, DEADLINE).unwrap_err()), ["dependants"]);
        // Names follow the rule the hospital applies to patients: no digits.
        let robot = Application { holder: person("R2D2", date!(1988 - 01 - 01)), dependants: vec![], ..crowded };
        assert_eq!(fields(new_policy(&plan(), &robot, DEADLINE).unwrap_err()), ["holder.given_name"]);
    }

    #[test]
    fn renewals_keep_active_members_and_need_the_holder() {
        let mut current = sample_policy();
        let renewed = renewal(&current, &plan(), DEADLINE).unwrap();
        assert_eq!(renewed.start_date, date!(2027 - 01 - 01));
        assert_eq!(renewed.renewal_of, Some(current.id));
        assert_eq!(renewed.members[0].existing, Some((current.members[0].member_id, date!(2026 - 01 - 01))));
        assert_eq!(renewed.new_members(), 0);
        current.members[0].status = MemberStatus::Deceased;
        assert_eq!(
            renewal(&current, &plan(), DEADLINE).unwrap_err(),
            Rejection::conflict("the holder is no longer active; sell a new policy instead")
        );
        current.status = PolicyStatus::Pending;
        assert_eq!(check_renewable(&current), Err(Rejection::conflict("a pending policy cannot be renewed")));
    }

    #[test]
    fn dependants_join_within_the_period() {
        let policy = sample_policy();
        let addition = |relationship, enrolled_on| Addition {
            dependant: Dependant { person: person("Imani", date!(2026 - 03 - 02)), relationship },
            enrolled_on,
        };
        let (member, on) = dependant(&policy, &addition(Relationship::Child, None), date!(2026 - 05 - 01)).unwrap();
        assert_eq!((member.given_name.as_str(), on), ("Imani", date!(2026 - 05 - 01)));
        // Not before the period starts; not after it ends; one holder.
        let early = addition(Relationship::Child, Some(date!(2025 - 01 - 01)));
        assert_eq!(fields(dependant(&policy, &early, date!(2026 - 05 - 01)).unwrap_err()), ["date_of_birth"]);
        let late = addition(Relationship::Holder, Some(date!(2027 - 02 - 01)));
        assert_eq!(
            fields(dependant(&policy, &late, date!(2026 - 05 - 01)).unwrap_err()),
            ["relationship", "enrolled_on"]
        );
        let cancelled = Policy { status: PolicyStatus::Cancelled, ..policy };
        assert_eq!(
            dependant(&cancelled, &addition(Relationship::Child, None), date!(2026 - 05 - 01)).unwrap_err(),
            Rejection::conflict("a cancelled policy takes no new members")
        );
        assert_eq!(check_room(4, 4), Err(Rejection::conflict("the plan allows at most 4 members")));
        assert!(check_room(3, 4).is_ok());
    }
}
