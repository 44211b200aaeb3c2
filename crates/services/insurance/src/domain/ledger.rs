//! The accumulator ledger: what members and policies have used of their plan year, kept as
//! append-only entries. An adjudication writes one entry per category it touched, plus one
//! (category `""`) carrying the deductible and the ceilings; a reversal writes their negation.
//! What is used is the sum of the entries, plus what approved pre-authorisations not yet
//! claimed reserve against the ceilings.

use uuid::Uuid;

use super::adjudication::{Accumulators, CategoryUse, PerSetting};

/// One ledger entry's amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `""` for the deductible and the ceilings; a category's name for its count and amount.
    pub category: String,
    pub deductible: i64,
    pub inpatient: i64,
    pub outpatient: i64,
    pub count: i64,
    pub amount: i64,
}

impl Entry {
    /// The entry that cancels this one.
    pub fn negated(&self) -> Entry {
        Entry {
            category: self.category.clone(),
            deductible: -self.deductible,
            inpatient: -self.inpatient,
            outpatient: -self.outpatient,
            count: -self.count,
            amount: -self.amount,
        }
    }
}

/// The entries an adjudication's usage writes: always the `""` entry, then one per category.
pub fn entries(usage: &Accumulators) -> Vec<Entry> {
    let mut entries = vec![Entry {
        category: String::new(),
        deductible: usage.member_deductible,
        inpatient: usage.member_ceiling.inpatient,
        outpatient: usage.member_ceiling.outpatient,
        count: 0,
        amount: 0,
    }];
    for (category, used) in &usage.categories {
        entries.push(Entry {
            category: category.clone(),
            deductible: 0,
            inpatient: 0,
            outpatient: 0,
            count: used.count,
            amount: used.amount,
        });
    }
    entries
}

/// Sums of the `""` entries: deductible and ceilings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub deductible: i64,
    pub inpatient: i64,
    pub outpatient: i64,
}

/// What an approval not yet used reserves, and for which member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub member_id: Uuid,
    pub reserved: PerSetting,
}

/// The ledger of one policy as read for one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// The member's own entries.
    pub member: Sums,
    /// Every member's entries on the policy.
    pub policy: Sums,
    /// The member's use of each category.
    pub categories: Vec<(String, CategoryUse)>,
    /// The live reservations of every member on the policy.
    pub reservations: Vec<Reservation>,
}

impl Totals {
    /// What `member` and their policy have used: the family deductible and the policy
    /// ceilings count every member; a reservation counts against the policy's ceilings, and
    /// against its own member's.
    pub fn usage(&self, member: Uuid) -> Accumulators {
        let mut used = Accumulators {
            member_deductible: self.member.deductible,
            family_deductible: self.policy.deductible,
            member_ceiling: PerSetting { inpatient: self.member.inpatient, outpatient: self.member.outpatient },
            policy_ceiling: PerSetting { inpatient: self.policy.inpatient, outpatient: self.policy.outpatient },
            categories: self.categories.iter().cloned().collect(),
        };
        for reservation in &self.reservations {
            if reservation.member_id == member {
                used.member_ceiling.inpatient += reservation.reserved.inpatient;
                used.member_ceiling.outpatient += reservation.reserved.outpatient;
            }
            used.policy_ceiling.inpatient += reservation.reserved.inpatient;
            used.policy_ceiling.outpatient += reservation.reserved.outpatient;
        }
        used
    }
}

/// `used` without what one claim of its member wrote (`entries`, its current adjudication):
/// what was left before that claim, for a question asked to compare with its adjudication.
pub fn without(used: &Accumulators, entries: &[Entry]) -> Accumulators {
    let mut left = used.clone();
    for e in entries {
        if e.category.is_empty() {
            left.member_deductible -= e.deductible;
            left.family_deductible -= e.deductible;
            left.member_ceiling.inpatient -= e.inpatient;
            left.member_ceiling.outpatient -= e.outpatient;
            left.policy_ceiling.inpatient -= e.inpatient;
            left.policy_ceiling.outpatient -= e.outpatient;
        } else {
            let category = left.categories.entry(e.category.clone()).or_default();
            category.count -= e.count;
            category.amount -= e.amount;
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_their_negation() {
        let mut usage = Accumulators {
            member_deductible: 100_000,
            family_deductible: 100_000,
            member_ceiling: PerSetting { inpatient: 0, outpatient: 350_000 },
            policy_ceiling: PerSetting { inpatient: 0, outpatient: 350_000 },
            ..Accumulators::default()
        };
        usage.categories.insert("consultation".into(), CategoryUse { count: 1, amount: 150_000 });
        usage.categories.insert("laboratory".into(), CategoryUse { count: 1, amount: 200_000 });
        let written = entries(&usage);
        assert_eq!(written.len(), 3);
        assert_eq!(
            (written[0].category.as_str(), written[0].deductible, written[0].outpatient),
            ("", 100_000, 350_000)
        );
        assert_eq!((written[2].category.as_str(), written[2].count, written[2].amount), ("laboratory", 1, 200_000));
        assert_eq!(written[2].negated().negated(), written[2]);
        assert_eq!(written[0].negated().outpatient, -350_000);
        // Nothing used still writes the `""` entry.
        assert_eq!(entries(&Accumulators::default()).len(), 1);
    }

    #[test]
    fn a_claim_taken_out_of_the_usage_leaves_what_was_there_before_it() {
        let mut before = Accumulators {
            member_deductible: 20_000,
            family_deductible: 50_000,
            member_ceiling: PerSetting { inpatient: 0, outpatient: 100_000 },
            policy_ceiling: PerSetting { inpatient: 7, outpatient: 400_000 },
            ..Accumulators::default()
        };
        before.categories.insert("laboratory".into(), CategoryUse { count: 1, amount: 30_000 });
        let mut claim = Accumulators {
            member_deductible: 80_000,
            family_deductible: 80_000,
            member_ceiling: PerSetting { inpatient: 0, outpatient: 292_000 },
            policy_ceiling: PerSetting { inpatient: 0, outpatient: 292_000 },
            ..Accumulators::default()
        };
        claim.categories.insert("laboratory".into(), CategoryUse { count: 2, amount: 92_000 });
        claim.categories.insert("consultation".into(), CategoryUse { count: 1, amount: 200_000 });
        let mut after = before.clone();
        after.apply(&claim);
        let mut back = without(&after, &entries(&claim));
        back.categories.retain(|_, u| *u != CategoryUse::default());
        assert_eq!(back, before);
    }

    #[test]
    fn usage_counts_the_family_and_the_reservations() {
        let (me, sibling) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let totals = Totals {
            member: Sums { deductible: 40_000, inpatient: 0, outpatient: 300_000 },
            policy: Sums { deductible: 90_000, inpatient: 500_000, outpatient: 700_000 },
            categories: vec![("laboratory".into(), CategoryUse { count: 2, amount: 50_000 })],
            reservations: vec![
                Reservation { member_id: me, reserved: PerSetting { inpatient: 3_000_000, outpatient: 0 } },
                Reservation { member_id: sibling, reserved: PerSetting { inpatient: 4_000_000, outpatient: 10 } },
            ],
        };
        let used = totals.usage(me);
        assert_eq!((used.member_deductible, used.family_deductible), (40_000, 90_000));
        assert_eq!(used.member_ceiling, PerSetting { inpatient: 3_000_000, outpatient: 300_000 });
        assert_eq!(used.policy_ceiling, PerSetting { inpatient: 7_500_000, outpatient: 700_010 });
        assert_eq!(used.category("laboratory"), CategoryUse { count: 2, amount: 50_000 });
    }
}
