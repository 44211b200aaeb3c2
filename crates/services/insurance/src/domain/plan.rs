//! Plans (benefit products) and the rules a plan version carries, with their validation.

use std::collections::BTreeMap;

use medcov_domain::{FieldError, TextEnum};
use medcov_money::{Currency, WHOLE};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How the member came to the hospital.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
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
pub enum VisitType {
    Normal,
    Emergency,
    Referral,
}

impl TextEnum for VisitType {}

/// Whether the hospital is in the plan's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    InNetwork,
    OutOfNetwork,
}

/// Which annual ceiling a category's payments count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Inpatient,
    Outpatient,
}

/// What the member pays for one service line of a category, for one visit type and network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostShare {
    pub visit_type: VisitType,
    pub network: Network,
    /// Fixed co-payment per service line, in minor units.
    #[serde(default)]
    #[schema(example = 50000)]
    pub copay: i64,
    /// Co-insurance in basis points (2 000 = 20 %) of what remains after deductible and
    /// co-payment.
    #[serde(default)]
    #[schema(example = 2000)]
    pub coinsurance_bp: u32,
}

/// The rules of one service category (consultation, laboratory, inpatient, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    pub setting: Setting,
    /// The visit type and network combinations that are covered; a combination that is not
    /// listed is not covered (out of network, when only in-network entries exist).
    pub cost_shares: Vec<CostShare>,
    /// Services per member per policy year.
    #[serde(default)]
    pub limit_count: Option<u32>,
    /// Insurer payments per member per policy year, in minor units.
    #[serde(default)]
    pub limit_amount: Option<i64>,
    /// Days from the member's enrolment before the category is covered.
    #[serde(default)]
    pub waiting_days: u32,
    /// Every service of the category needs pre-authorisation (except emergencies).
    #[serde(default)]
    pub preauth_required: bool,
    /// A line above this amount needs pre-authorisation (except emergencies).
    #[serde(default)]
    pub preauth_above: Option<i64>,
}

impl CategoryRule {
    pub fn cost_share(&self, visit: VisitType, network: Network) -> Option<&CostShare> {
        self.cost_shares.iter().find(|c| c.visit_type == visit && c.network == network)
    }
}

/// An inclusive range of ICD-10 codes, compared without the dot: `O00`..`O9A` excludes all of
/// chapter XV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisRange {
    #[schema(example = "O00")]
    pub from: String,
    #[schema(example = "O9A")]
    pub to: String,
}

impl DiagnosisRange {
    pub fn contains(&self, code: &str) -> bool {
        let key = icd_key(code);
        let from = icd_key(&self.from);
        let to = icd_key(&self.to);
        // A bound covers every code that starts with it: `O99` covers `O99.89`.
        key >= from && (key <= to || key.starts_with(&to))
    }
}

fn icd_key(code: &str) -> String {
    code.trim().to_ascii_uppercase().replace('.', "")
}

/// How the annual premium of a policy is computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PremiumRule {
    /// A price per adult and per child (a member under `child_until_age` at the policy start).
    PerMember { adult: i64, child: i64, child_until_age: u8 },
    /// A lump sum for up to `members_included` members, and `per_extra_member` for each above.
    LumpSum { amount: i64, members_included: u32, per_extra_member: i64 },
}

/// Annual ceilings on what the insurer pays, in minor units; absent means no ceiling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ceilings {
    #[serde(default)]
    pub member_inpatient: Option<i64>,
    #[serde(default)]
    pub member_outpatient: Option<i64>,
    #[serde(default)]
    pub policy_inpatient: Option<i64>,
    #[serde(default)]
    pub policy_outpatient: Option<i64>,
}

impl Ceilings {
    pub fn member(&self, setting: Setting) -> Option<i64> {
        match setting {
            Setting::Inpatient => self.member_inpatient,
            Setting::Outpatient => self.member_outpatient,
        }
    }

    pub fn policy(&self, setting: Setting) -> Option<i64> {
        match setting {
            Setting::Inpatient => self.policy_inpatient,
            Setting::Outpatient => self.policy_outpatient,
        }
    }
}

/// Everything one version of a plan says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRules {
    pub currency: Currency,
    pub premium: PremiumRule,
    #[schema(example = 6)]
    pub max_members: u32,
    /// Annual deductible per member, in minor units.
    #[serde(default)]
    pub deductible_member: i64,
    /// Annual deductible for the whole policy; absent means only the member deductible.
    #[serde(default)]
    pub deductible_family: Option<i64>,
    #[serde(default)]
    pub ceilings: Ceilings,
    /// The covered categories; a category that is not here is not covered.
    pub categories: BTreeMap<String, CategoryRule>,
    #[serde(default)]
    pub excluded_services: Vec<String>,
    #[serde(default)]
    pub excluded_diagnoses: Vec<DiagnosisRange>,
    /// The hospitals in the plan's network.
    #[serde(default)]
    pub network: Vec<Uuid>,
    /// Pre-authorisation requests estimated at or below this are approved automatically.
    #[serde(default)]
    pub preauth_auto_approve_up_to: Option<i64>,
    /// How long an approval stays valid, in days.
    #[serde(default = "default_preauth_days")]
    #[schema(example = 30)]
    pub preauth_valid_days: u32,
}

fn default_preauth_days() -> u32 {
    30
}

impl PlanRules {
    pub fn network_of(&self, hospital: Uuid) -> Network {
        if self.network.contains(&hospital) { Network::InNetwork } else { Network::OutOfNetwork }
    }

    pub fn excludes_service(&self, code: &str) -> bool {
        self.excluded_services.iter().any(|c| c.eq_ignore_ascii_case(code))
    }

    pub fn excludes_diagnosis(&self, code: &str) -> bool {
        self.excluded_diagnoses.iter().any(|r| r.contains(code))
    }

    /// Every inconsistency, each naming its field (a JSON path under `rules`).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut amount = |field: String, value: i64| {
            if value < 0 {
                errors.push(FieldError::new(field, "must not be negative"));
            }
        };
        match &self.premium {
            PremiumRule::PerMember { adult, child, .. } => {
                amount("rules.premium.adult".into(), *adult);
                amount("rules.premium.child".into(), *child);
            }
            PremiumRule::LumpSum { amount: lump, per_extra_member, .. } => {
                amount("rules.premium.amount".into(), *lump);
                amount("rules.premium.per_extra_member".into(), *per_extra_member);
            }
        }
        amount("rules.deductible_member".into(), self.deductible_member);
        if let Some(v) = self.deductible_family {
            amount("rules.deductible_family".into(), v);
        }
        for (name, value) in [
            ("member_inpatient", self.ceilings.member_inpatient),
            ("member_outpatient", self.ceilings.member_outpatient),
            ("policy_inpatient", self.ceilings.policy_inpatient),
            ("policy_outpatient", self.ceilings.policy_outpatient),
        ] {
            if let Some(v) = value {
                amount(format!("rules.ceilings.{name}"), v);
            }
        }
        if let Some(v) = self.preauth_auto_approve_up_to {
            amount("rules.preauth_auto_approve_up_to".into(), v);
        }
        for (category, rule) in &self.categories {
            let at = format!("rules.categories.{category}");
            if let Some(v) = rule.limit_amount {
                amount(format!("{at}.limit_amount"), v);
            }
            if let Some(v) = rule.preauth_above {
                amount(format!("{at}.preauth_above"), v);
            }
            for (i, share) in rule.cost_shares.iter().enumerate() {
                amount(format!("{at}.cost_shares[{i}].copay"), share.copay);
            }
        }
        if self.max_members == 0 {
            errors.push(FieldError::new("rules.max_members", "must be at least 1"));
        }
        if let PremiumRule::LumpSum { members_included, .. } = self.premium
            && members_included == 0
        {
            errors.push(FieldError::new("rules.premium.members_included", "must be at least 1"));
        }
        if let (Some(family), true) = (self.deductible_family, self.deductible_family < Some(self.deductible_member)) {
            errors.push(FieldError::new(
                "rules.deductible_family",
                format!("({family}) must not be below the member deductible"),
            ));
        }
        if self.categories.is_empty() {
            errors.push(FieldError::new("rules.categories", "must cover at least one category"));
        }
        for (category, rule) in &self.categories {
            let at = format!("rules.categories.{category}");
            if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                errors.push(FieldError::new(&at, "category names are a-z and `_`, such as `laboratory`"));
            }
            if rule.cost_shares.is_empty() {
                errors.push(FieldError::new(format!("{at}.cost_shares"), "must list at least one covered visit"));
            }
            for (i, share) in rule.cost_shares.iter().enumerate() {
                if share.coinsurance_bp > WHOLE {
                    errors.push(FieldError::new(
                        format!("{at}.cost_shares[{i}].coinsurance_bp"),
                        "must be between 0 and 10000 (100 %)",
                    ));
                }
                if rule.cost_shares[..i].iter().any(|o| o.visit_type == share.visit_type && o.network == share.network)
                {
                    errors.push(FieldError::new(
                        format!("{at}.cost_shares[{i}]"),
                        "repeats a visit type and network listed before",
                    ));
                }
            }
            if rule.limit_count == Some(0) {
                errors.push(FieldError::new(format!("{at}.limit_count"), "must be at least 1, or absent"));
            }
            if rule.waiting_days > 3_660 {
                errors.push(FieldError::new(format!("{at}.waiting_days"), "must be at most 3660"));
            }
        }
        for (i, code) in self.excluded_services.iter().enumerate() {
            if code.trim().is_empty() {
                errors.push(FieldError::new(format!("rules.excluded_services[{i}]"), "must not be empty"));
            }
        }
        for (i, range) in self.excluded_diagnoses.iter().enumerate() {
            if !is_icd10_prefix(&range.from) || !is_icd10_prefix(&range.to) {
                errors.push(FieldError::new(
                    format!("rules.excluded_diagnoses[{i}]"),
                    "bounds must be ICD-10 codes or category prefixes such as `O00`",
                ));
            } else if icd_key(&range.from) > icd_key(&range.to) {
                errors.push(FieldError::new(format!("rules.excluded_diagnoses[{i}]"), "`from` must not be after `to`"));
            }
        }
        if !(1..=366).contains(&self.preauth_valid_days) {
            errors.push(FieldError::new("rules.preauth_valid_days", "must be between 1 and 366"));
        }
        errors
    }
}

/// A letter and two characters, then optionally more (with or without the dot).
pub fn is_icd10_prefix(code: &str) -> bool {
    let key = icd_key(code);
    let b = key.as_bytes();
    (3..=7).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric())
}

/// A worked example plan (KES): deductible 1 000.00 per member and 2 000.00 per family;
/// out-patient ceilings 50 000.00 per member and 80 000.00 per policy, in-patient 200 000.00
/// per member; consultation (co-payment 500.00, 3 a year), laboratory (20 % in network, 50 %
/// out, 10 000.00 a year), imaging (10 %, pre-authorised above 20 000.00), maternity (in-patient,
/// 10 %, 300 days' wait) and procedure (in-patient, 2 000.00 + 10 %, always pre-authorised). The
/// golden adjudication table and the benchmark use it.
pub fn example() -> PlanRules {
    serde_json::from_value(serde_json::json!({
        "currency": "KES",
        "premium": {"kind": "per_member", "adult": 1_200_000, "child": 600_000, "child_until_age": 18},
        "max_members": 4,
        "deductible_member": 100_000,
        "deductible_family": 200_000,
        "ceilings": {"member_outpatient": 5_000_000, "policy_outpatient": 8_000_000, "member_inpatient": 20_000_000},
        "categories": {
            "consultation": {"setting": "outpatient", "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "copay": 50_000, "coinsurance_bp": 0},
                {"visit_type": "emergency", "network": "in_network"},
                {"visit_type": "emergency", "network": "out_of_network", "coinsurance_bp": 2_000},
                {"visit_type": "referral", "network": "in_network", "coinsurance_bp": 1_000}
            ], "limit_count": 3},
            "laboratory": {"setting": "outpatient", "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 2_000},
                {"visit_type": "normal", "network": "out_of_network", "coinsurance_bp": 5_000}
            ], "limit_amount": 1_000_000},
            "imaging": {"setting": "outpatient", "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 1_000}
            ], "preauth_above": 2_000_000},
            "maternity": {"setting": "inpatient", "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "coinsurance_bp": 1_000}
            ], "waiting_days": 300},
            "procedure": {"setting": "inpatient", "cost_shares": [
                {"visit_type": "normal", "network": "in_network", "copay": 200_000, "coinsurance_bp": 1_000},
                {"visit_type": "emergency", "network": "in_network", "coinsurance_bp": 1_000}
            ], "preauth_required": true}
        },
        "excluded_services": ["COSM-01"],
        "excluded_diagnoses": [{"from": "Z41", "to": "Z41"}],
        "network": ["00000000-0000-0000-0000-0000000000a1"],
        "preauth_auto_approve_up_to": 5_000_000
    }))
    .expect("the example plan parses")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The worked example plan of the golden table and the benchmark.
    pub fn sample() -> PlanRules {
        super::example()
    }

    #[test]
    fn the_sample_is_valid() {
        assert!(sample().validate().is_empty(), "{:?}", sample().validate());
    }

    #[test]
    fn inconsistent_plans_name_the_field() {
        type Change = Box<dyn Fn(&mut PlanRules)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|p| p.deductible_member = -1), "rules.deductible_member"),
            (Box::new(|p| p.deductible_family = Some(50_000)), "rules.deductible_family"),
            (Box::new(|p| p.max_members = 0), "rules.max_members"),
            (
                Box::new(|p| p.categories.get_mut("laboratory").unwrap().cost_shares[0].coinsurance_bp = 10_001),
                "rules.categories.laboratory.cost_shares[0].coinsurance_bp",
            ),
            (
                Box::new(|p| p.categories.get_mut("imaging").unwrap().cost_shares.clear()),
                "rules.categories.imaging.cost_shares",
            ),
            (
                Box::new(|p| {
                    let c = p.categories.get_mut("imaging").unwrap();
                    let first = c.cost_shares[0].clone();
                    c.cost_shares.push(first);
                }),
                "rules.categories.imaging.cost_shares[1]",
            ),
            (Box::new(|p| p.ceilings.member_outpatient = Some(-5)), "rules.ceilings.member_outpatient"),
            (
                Box::new(|p| p.excluded_diagnoses.push(DiagnosisRange { from: "Z99".into(), to: "A00".into() })),
                "rules.excluded_diagnoses[1]",
            ),
            (
                Box::new(|p| p.premium = PremiumRule::PerMember { adult: -1, child: 0, child_until_age: 18 }),
                "rules.premium.adult",
            ),
            (Box::new(|p| p.categories.clear()), "rules.categories"),
            (Box::new(|p| p.preauth_valid_days = 0), "rules.preauth_valid_days"),
        ];
        for (change, field) in cases {
            let mut plan = sample();
            change(&mut plan);
            let errors = plan.validate();
            assert!(errors.iter().any(|e| e.field == field), "{field}: {errors:?}");
        }
    }

    #[test]
    fn diagnosis_ranges() {
        let r = DiagnosisRange { from: "O00".into(), to: "O99".into() };
        assert!(r.contains("O00"));
        assert!(r.contains("o80.1"));
        assert!(r.contains("O99.89"));
        assert!(!r.contains("P00"));
        assert!(!r.contains("N99.9"));
    }
}
