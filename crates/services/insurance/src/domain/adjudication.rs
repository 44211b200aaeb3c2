//! The adjudication engine: a pure, deterministic function from a claim, the plan version the
//! member's policy was written under, the member's cover and their accumulators to one result
//! per line, with the accumulator changes it causes.
//!
//! Each line goes through the same steps, in this order, and the first that refuses it gives its
//! reason code:
//!
//! 1. a line repeating one already paid or earlier in the claim (same service, same day) is a
//!    duplicate: nothing is allowed;
//! 2. the policy must cover the date of service, and the member must be enrolled and active;
//! 3. excluded service codes, then excluded diagnoses;
//! 4. the category must be covered, and its waiting period over;
//! 5. the visit type and network must be covered (`out_of_network` when only in-network care is);
//! 6. pre-authorisation where the category needs it (emergencies never do); an approval caps
//!    what is covered at the approved amount;
//! 7. the category's count limit covers whole units;
//! 8. then the member pays the deductible (member and family), the fixed co-payment, and the
//!    co-insurance on what remains, rounded by [`medcov_money::share`];
//! 9. the insurer's part is capped by the category's amount limit and the member's and the
//!    policy's annual ceilings for the setting; what is cut goes to the member.
//!
//! For every line, `insurer_pays + patient_pays = allowed`, and `patient_pays = not_covered +
//! deductible + copay + coinsurance + over_limit - adjustment - ex_gratia` (`adjustment` is a
//! claims officer's override within what the plan has left, `ex_gratia` what the insurer pays
//! beyond it; never the engine's). A rejected line is allowed in full and paid
//! by the member, except a duplicate, which is allowed nothing (it is a billing error).
//!
//! Every line also lists its `adjustments`: each cut (or override) with its code and amount,
//! what it moved from the insurer to the member (negative: the other way), so that they add up
//! to `patient_pays` and a patient can see why they pay what they pay.

use std::collections::{BTreeMap, BTreeSet};

use medcov_domain::TextEnum;
use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use super::plan::{Network, PlanRules, Setting, VisitType};
use super::policy::{Cover, NotCovered};

/// Why a line (or part of it) is not paid by the insurer.
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
pub enum Reason {
    NoActivePolicy,
    MemberInactive,
    NotCovered,
    ExcludedService,
    ExcludedDiagnosis,
    WaitingPeriod,
    LimitReached,
    CeilingReached,
    PreauthMissing,
    OutOfNetwork,
    DuplicateLine,
}

impl TextEnum for Reason {}

/// Why part of a line moved between the insurer and the member: every cut and every override
/// of a line, with its amount, carries one.
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
pub enum AdjustmentCode {
    /// The member's (or family's) annual deductible.
    Deductible,
    /// The fixed co-payment.
    CoPay,
    /// The co-insurance share.
    CoInsurance,
    /// A category's count or amount limit, or the approved amount of a pre-authorisation.
    BenefitLimit,
    /// The member's or the policy's annual ceiling.
    Ceiling,
    /// An excluded service or diagnosis.
    Exclusion,
    /// The category's waiting period is not over.
    WaitingPeriod,
    /// Not covered: no policy in force, member inactive, category or visit type not covered,
    /// out of network, pre-authorisation missing.
    NotCovered,
    /// A claims officer's override within what the plan has left (negative: paid by the
    /// insurer).
    Override,
    /// Paid by the insurer ex gratia, beyond the plan's limits (negative); never counted as
    /// covered benefit.
    ExGratia,
}

impl TextEnum for AdjustmentCode {}

/// One adjustment of a line: what moved from the insurer to the member (negative: the other
/// way), and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adjustment {
    pub code: AdjustmentCode,
    pub amount: i64,
}

impl Adjustment {
    /// The code a refused line's whole amount carries.
    pub fn code_of(reason: Reason) -> Option<AdjustmentCode> {
        Some(match reason {
            Reason::ExcludedService | Reason::ExcludedDiagnosis => AdjustmentCode::Exclusion,
            Reason::WaitingPeriod => AdjustmentCode::WaitingPeriod,
            Reason::LimitReached => AdjustmentCode::BenefitLimit,
            Reason::CeilingReached => AdjustmentCode::Ceiling,
            Reason::NoActivePolicy
            | Reason::MemberInactive
            | Reason::NotCovered
            | Reason::OutOfNetwork
            | Reason::PreauthMissing => AdjustmentCode::NotCovered,
            // Allowed nothing: nothing moves.
            Reason::DuplicateLine => return None,
        })
    }
}

/// Adds `amount` under `code` to `list` (one entry per code; none for 0).
fn add_adjustment(list: &mut Vec<Adjustment>, code: AdjustmentCode, amount: i64) {
    if amount == 0 {
        return;
    }
    match list.iter_mut().find(|a| a.code == code) {
        Some(a) => a.amount += amount,
        None => list.push(Adjustment { code, amount }),
    }
    list.retain(|a| a.amount != 0);
}

/// An approved pre-authorisation a line refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub service_code: String,
    /// What the insurer approved for this service, before the member's share.
    pub approved_amount: i64,
    /// The last day it may be used.
    pub valid_until: Date,
}

/// One line of a claim, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// Minor units.
    pub unit_price: i64,
    pub diagnosis: String,
    pub date_of_service: Date,
    /// The approval the hospital cites, if any, and if it is this member's and still approved.
    pub approval: Option<Approval>,
}

impl Line {
    pub fn amount(&self) -> i64 {
        self.unit_price.saturating_mul(i64::from(self.quantity))
    }

    /// What makes two lines the same service: code and day.
    pub fn key(&self) -> (String, Date) {
        (self.service_code.to_ascii_uppercase(), self.date_of_service)
    }
}

/// A claim, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub hospital_id: uuid::Uuid,
    pub visit_type: VisitType,
    pub lines: Vec<Line>,
}

/// Amounts per setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PerSetting {
    pub inpatient: i64,
    pub outpatient: i64,
}

impl PerSetting {
    pub fn get(&self, setting: Setting) -> i64 {
        match setting {
            Setting::Inpatient => self.inpatient,
            Setting::Outpatient => self.outpatient,
        }
    }

    fn add(&mut self, setting: Setting, amount: i64) {
        match setting {
            Setting::Inpatient => self.inpatient += amount,
            Setting::Outpatient => self.outpatient += amount,
        }
    }
}

/// A category's use by one member in the policy year.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryUse {
    pub count: i64,
    pub amount: i64,
}

/// What a member and their policy have used of the plan year. Reservations of approved
/// pre-authorisations not yet claimed are included in the ceilings by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accumulators {
    pub member_deductible: i64,
    pub family_deductible: i64,
    pub member_ceiling: PerSetting,
    pub policy_ceiling: PerSetting,
    pub categories: BTreeMap<String, CategoryUse>,
}

impl Accumulators {
    /// Adds a change (the engine's `usage`).
    pub fn apply(&mut self, change: &Accumulators) {
        self.member_deductible += change.member_deductible;
        self.family_deductible += change.family_deductible;
        self.member_ceiling.inpatient += change.member_ceiling.inpatient;
        self.member_ceiling.outpatient += change.member_ceiling.outpatient;
        self.policy_ceiling.inpatient += change.policy_ceiling.inpatient;
        self.policy_ceiling.outpatient += change.policy_ceiling.outpatient;
        for (category, used) in &change.categories {
            let entry = self.categories.entry(category.clone()).or_default();
            entry.count += used.count;
            entry.amount += used.amount;
        }
    }

    pub fn category(&self, category: &str) -> CategoryUse {
        self.categories.get(category).copied().unwrap_or_default()
    }
}

/// Where each cent of a line landed, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineResult {
    /// Quantity × unit price.
    pub submitted: i64,
    /// What the claim is recognised for: the submitted amount, or nothing for a duplicate.
    pub allowed: i64,
    /// The part not covered at all (the whole line when it is rejected before cost sharing).
    pub not_covered: i64,
    pub deductible: i64,
    pub copay: i64,
    pub coinsurance: i64,
    /// Cut by a count or amount limit, a ceiling, or the approved amount.
    pub over_limit: i64,
    /// Moved from the member to the insurer by a claims officer's override within what the
    /// plan has left (negative: the other way); always 0 from the engine.
    #[serde(default)]
    pub adjustment: i64,
    /// Paid by the insurer ex gratia by an explicit override beyond what the plan has left:
    /// part of `insurer_pays`, never counted against a limit or ceiling.
    #[serde(default)]
    pub ex_gratia: i64,
    pub insurer_pays: i64,
    pub patient_pays: i64,
    pub rejection: Option<Reason>,
    /// Each cut and override with its code and amount; they add up to `patient_pays`.
    #[serde(default)]
    pub adjustments: Vec<Adjustment>,
    /// The steps, in words.
    pub explanation: Vec<String>,
}

/// The engine's answer for a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjudication {
    pub lines: Vec<LineResult>,
    /// What the claim adds to the accumulators.
    pub usage: Accumulators,
}

/// The overall outcome of an adjudicated claim.
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
pub enum Outcome {
    Approved,
    PartiallyApproved,
    Rejected,
}

impl TextEnum for Outcome {}

impl Adjudication {
    /// Rejected when every line is; approved when no line is rejected or cut; otherwise
    /// partially approved.
    pub fn outcome(&self) -> Outcome {
        if self.lines.iter().all(|l| l.rejection.is_some()) {
            Outcome::Rejected
        } else if self.lines.iter().all(|l| l.rejection.is_none() && l.over_limit == 0) {
            Outcome::Approved
        } else {
            Outcome::PartiallyApproved
        }
    }

    pub fn insurer_total(&self) -> i64 {
        self.lines.iter().map(|l| l.insurer_pays).sum()
    }

    pub fn patient_total(&self) -> i64 {
        self.lines.iter().map(|l| l.patient_pays).sum()
    }
}

/// The member's situation: cover, what they used, and what was already paid for them.
pub struct Member<'a> {
    pub cover: &'a Cover,
    pub used: &'a Accumulators,
    /// Lines already accepted for this member (service code, day), for duplicate checks; a
    /// rejected line is not among them, so it may be claimed again.
    pub paid_lines: &'a BTreeSet<(String, Date)>,
}

/// Adjudicates a claim. Lines are taken in order; each sees what earlier lines used.
pub fn adjudicate(plan: &PlanRules, member: &Member<'_>, claim: &Claim) -> Adjudication {
    let mut used = member.used.clone();
    let mut usage = Accumulators::default();
    let mut seen: BTreeSet<(String, Date)> = BTreeSet::new();
    let network = plan.network_of(claim.hospital_id);
    let mut lines = Vec::with_capacity(claim.lines.len());
    for line in &claim.lines {
        let duplicate = member.paid_lines.contains(&line.key()) || !seen.insert(line.key());
        let (result, change) = if duplicate {
            let submitted = line.amount();
            let result = LineResult {
                submitted,
                rejection: Some(Reason::DuplicateLine),
                explanation: vec![format!(
                    "{} on {} was already claimed: a duplicate is not allowed",
                    line.service_code, line.date_of_service
                )],
                ..LineResult::default()
            };
            (result, Accumulators::default())
        } else {
            evaluate(plan, member.cover, &used, network, claim.visit_type, line)
        };
        used.apply(&change);
        usage.apply(&change);
        lines.push(result);
    }
    Adjudication { lines, usage }
}

fn rejected(amount: i64, reason: Reason, why: String) -> (LineResult, Accumulators) {
    let mut adjustments = Vec::new();
    if let Some(code) = Adjustment::code_of(reason) {
        add_adjustment(&mut adjustments, code, amount);
    }
    let result = LineResult {
        submitted: amount,
        allowed: amount,
        not_covered: amount,
        patient_pays: amount,
        rejection: Some(reason),
        adjustments,
        explanation: vec![why],
        ..LineResult::default()
    };
    (result, Accumulators::default())
}

/// The steps of one line after the duplicate check (also what eligibility estimates with).
pub fn evaluate(
    plan: &PlanRules,
    cover: &Cover,
    used: &Accumulators,
    network: Network,
    visit: VisitType,
    line: &Line,
) -> (LineResult, Accumulators) {
    let amount = line.amount();
    let date = line.date_of_service;
    match cover.on(date) {
        Err(NotCovered::NoActivePolicy) => {
            return rejected(amount, Reason::NoActivePolicy, format!("no policy in force covers {date}"));
        }
        Err(NotCovered::MemberInactive) => {
            return rejected(
                amount,
                Reason::MemberInactive,
                format!("the member is not enrolled and active on {date}"),
            );
        }
        Ok(()) => {}
    }
    if plan.excludes_service(&line.service_code) {
        return rejected(amount, Reason::ExcludedService, format!("{} is excluded by the plan", line.service_code));
    }
    if plan.excludes_diagnosis(&line.diagnosis) {
        return rejected(
            amount,
            Reason::ExcludedDiagnosis,
            format!("diagnosis {} is excluded by the plan", line.diagnosis),
        );
    }
    let Some(rule) = plan.categories.get(&line.category) else {
        return rejected(amount, Reason::NotCovered, format!("the plan does not cover {}", line.category));
    };
    let waiting_ends = waiting_period_end(cover.enrolled_on, rule.waiting_days);
    if date < waiting_ends {
        return rejected(
            amount,
            Reason::WaitingPeriod,
            format!(
                "{} is covered from {waiting_ends}, after a {}-day waiting period",
                line.category, rule.waiting_days
            ),
        );
    }
    let Some(share) = rule.cost_share(visit, network) else {
        let reason = if network == Network::OutOfNetwork && rule.cost_share(visit, Network::InNetwork).is_some() {
            Reason::OutOfNetwork
        } else {
            Reason::NotCovered
        };
        let why = match reason {
            Reason::OutOfNetwork => format!("{} is covered in network only", line.category),
            _ => format!("{} is not covered for a {} visit", line.category, visit.as_str()),
        };
        return rejected(amount, reason, why);
    };
    let mut explanation = Vec::new();
    let needs_approval = visit != VisitType::Emergency
        && (rule.preauth_required || rule.preauth_above.is_some_and(|above| amount > above));
    let usable_approval = line.approval.as_ref().filter(|a| {
        a.service_code.eq_ignore_ascii_case(&line.service_code) && date <= a.valid_until && a.approved_amount > 0
    });
    if needs_approval && usable_approval.is_none() {
        return rejected(amount, Reason::PreauthMissing, format!("{} needs a pre-authorisation", line.service_code));
    }

    // Count limit: whole units. `limit_cut` is what limits and approvals cut, `ceiling_cut`
    // what the ceilings cut (together, `over_limit`).
    let mut over_limit = 0i64;
    let mut limit_cut = 0i64;
    let mut ceiling_cut = 0i64;
    let mut units = i64::from(line.quantity);
    if let Some(limit) = rule.limit_count {
        let left = (i64::from(limit) - used.category(&line.category).count).max(0);
        if left == 0 {
            return rejected(
                amount,
                Reason::LimitReached,
                format!("the {limit} {} services of the year are used", line.category),
            );
        }
        if units > left {
            over_limit += (units - left) * line.unit_price;
            limit_cut += (units - left) * line.unit_price;
            explanation.push(format!("{left} of {units} units are within the {limit}-service limit"));
            units = left;
        }
    }
    let mut covered = units * line.unit_price;
    if let Some(approval) = usable_approval
        && covered > approval.approved_amount
    {
        over_limit += covered - approval.approved_amount;
        limit_cut += covered - approval.approved_amount;
        explanation.push(format!("covered up to the approved {}", approval.approved_amount));
        covered = approval.approved_amount;
    }

    // Cost sharing.
    let mut deductible_left = (plan.deductible_member - used.member_deductible).max(0);
    if let Some(family) = plan.deductible_family {
        deductible_left = deductible_left.min((family - used.family_deductible).max(0));
    }
    let deductible = covered.min(deductible_left);
    if deductible > 0 {
        explanation.push(format!("deductible {deductible} (left before this line: {deductible_left})"));
    }
    let copay = share.copay.min(covered - deductible);
    if copay > 0 {
        explanation.push(format!("co-payment {copay}"));
    }
    let coinsurance = medcov_money::share(covered - deductible - copay, share.coinsurance_bp);
    if coinsurance > 0 {
        explanation.push(format!("co-insurance {} bp: {coinsurance}", share.coinsurance_bp));
    }
    let tentative = covered - deductible - copay - coinsurance;

    // Limits and ceilings on the insurer's part.
    let mut caps: Vec<(i64, Reason, String)> = Vec::new();
    if let Some(limit) = rule.limit_amount {
        caps.push((
            (limit - used.category(&line.category).amount).max(0),
            Reason::LimitReached,
            format!("{} limit of {limit} a year", line.category),
        ));
    }
    let setting = rule.setting;
    if let Some(ceiling) = plan.ceilings.member(setting) {
        caps.push((
            (ceiling - used.member_ceiling.get(setting)).max(0),
            Reason::CeilingReached,
            format!("member {} ceiling of {ceiling}", setting_name(setting)),
        ));
    }
    if let Some(ceiling) = plan.ceilings.policy(setting) {
        caps.push((
            (ceiling - used.policy_ceiling.get(setting)).max(0),
            Reason::CeilingReached,
            format!("policy {} ceiling of {ceiling}", setting_name(setting)),
        ));
    }
    let mut insurer = tentative;
    let mut rejection = None;
    if let Some((cap, reason, what)) = caps.into_iter().min_by_key(|c| c.0)
        && cap < tentative
    {
        insurer = cap;
        over_limit += tentative - cap;
        match reason {
            Reason::CeilingReached => ceiling_cut += tentative - cap,
            _ => limit_cut += tentative - cap,
        }
        explanation.push(format!("{what}: {cap} was left, {} is over", tentative - cap));
        if cap == 0 {
            rejection = Some(reason);
        }
    }
    explanation.push(format!("insurer pays {insurer}"));

    let patient = amount - insurer;
    let mut change =
        Accumulators { member_deductible: deductible, family_deductible: deductible, ..Accumulators::default() };
    change.member_ceiling.add(setting, insurer);
    change.policy_ceiling.add(setting, insurer);
    change.categories.insert(line.category.clone(), CategoryUse { count: units, amount: insurer });
    let mut adjustments = Vec::new();
    for (code, amount) in [
        (AdjustmentCode::Deductible, deductible),
        (AdjustmentCode::CoPay, copay),
        (AdjustmentCode::CoInsurance, coinsurance),
        (AdjustmentCode::BenefitLimit, limit_cut),
        (AdjustmentCode::Ceiling, ceiling_cut),
    ] {
        add_adjustment(&mut adjustments, code, amount);
    }
    let result = LineResult {
        submitted: amount,
        allowed: amount,
        not_covered: 0,
        deductible,
        copay,
        coinsurance,
        over_limit,
        adjustment: 0,
        ex_gratia: 0,
        insurer_pays: insurer,
        patient_pays: patient,
        rejection,
        adjustments,
        explanation,
    };
    (result, change)
}

/// The first day a category is covered for a member enrolled on `enrolled_on`.
pub fn waiting_period_end(enrolled_on: Date, days: u32) -> Date {
    enrolled_on.saturating_add(Duration::days(i64::from(days)))
}

fn setting_name(setting: Setting) -> &'static str {
    match setting {
        Setting::Inpatient => "in-patient",
        Setting::Outpatient => "out-patient",
    }
}

/// A claims officer's decision on one line, applied after the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The line, counted from 1.
    pub line: usize,
    /// What the insurer pays for the line instead, in minor units (0 up to the allowed amount).
    /// More than the engine's amount is bounded by what is left of the category's amount limit
    /// and of the member's and the policy's ceilings, unless `ex_gratia`.
    pub insurer_pays: i64,
    pub reason: String,
    /// Pay what goes past the limits and ceilings anyway, as an ex-gratia payment: recorded
    /// on the line as `ex_gratia` (code `ex_gratia`), never counted as covered benefit.
    #[serde(default)]
    pub ex_gratia: bool,
}

/// What is left for the insurer to pay on a line of `category` in `setting` after `used` (the
/// accumulators before the claim) and `usage` (the claim's own): the least of the category's
/// amount limit and the member's and the policy's ceilings, with what each is (`None`: no
/// limit applies).
fn room(
    plan: &PlanRules,
    used: &Accumulators,
    usage: &Accumulators,
    category: &str,
    setting: Setting,
) -> Option<(i64, String)> {
    let mut caps: Vec<(i64, String)> = Vec::new();
    if let Some(limit) = plan.categories.get(category).and_then(|r| r.limit_amount) {
        let taken = used.category(category).amount + usage.category(category).amount;
        caps.push((limit - taken, format!("the {category} limit of {limit}")));
    }
    let name = setting_name(setting);
    if let Some(ceiling) = plan.ceilings.member(setting) {
        let taken = used.member_ceiling.get(setting) + usage.member_ceiling.get(setting);
        caps.push((ceiling - taken, format!("the member {name} ceiling of {ceiling}")));
    }
    if let Some(ceiling) = plan.ceilings.policy(setting) {
        let taken = used.policy_ceiling.get(setting) + usage.policy_ceiling.get(setting);
        caps.push((ceiling - taken, format!("the policy {name} ceiling of {ceiling}")));
    }
    caps.into_iter().min_by_key(|c| c.0).map(|(left, what)| (left.max(0), what))
}

/// Applies overrides to an adjudication: each named line's insurer share becomes the given
/// amount, the member's share the rest of the allowed amount. What the insurer pays more is
/// bounded by what is left of the line's category limit and ceilings (`used`: before the
/// claim; the claim's own lines count too): within it, it is the line's `adjustment` (code
/// `override`) and counts against them; past it, the override is refused, unless it is
/// `ex_gratia`, when the part past it is the line's `ex_gratia` (code `ex_gratia`) and counts
/// against nothing. Errors name the override's field at fault (`line`, `insurer_pays`,
/// `reason`) and why.
pub fn apply_overrides(
    plan: &PlanRules,
    used: &Accumulators,
    claim: &Claim,
    result: &mut Adjudication,
    overrides: &[Override],
) -> Result<(), (usize, &'static str, String)> {
    for (i, o) in overrides.iter().enumerate() {
        let Some(n) = o.line.checked_sub(1).filter(|n| *n < result.lines.len()) else {
            return Err((i, "line", "names no line of the claim".into()));
        };
        let line = &result.lines[n];
        if o.insurer_pays < 0 || o.insurer_pays > line.allowed {
            return Err((i, "insurer_pays", "must be between 0 and the line's allowed amount".into()));
        }
        if o.reason.trim().is_empty() {
            return Err((i, "reason", "needs a reason".into()));
        }
        let source = &claim.lines[n];
        let setting = plan.categories.get(&source.category).map(|r| r.setting).unwrap_or(Setting::Outpatient);
        let delta = o.insurer_pays - line.insurer_pays;
        // Less than before gives back first what was paid ex gratia, then covered benefit.
        let (covered, ex_gratia) = if delta <= 0 {
            let back = (-delta).min(line.ex_gratia);
            (delta + back, -back)
        } else {
            match room(plan, used, &result.usage, &source.category, setting) {
                Some((left, what)) if delta > left => {
                    if !o.ex_gratia {
                        return Err((
                            i,
                            "insurer_pays",
                            format!(
                                "pays {delta} more than the plan's adjudication, but {left} is left of {what}; \
                                 send ex_gratia: true to pay the rest as an ex-gratia payment"
                            ),
                        ));
                    }
                    (left, delta - left)
                }
                _ => (delta, 0),
            }
        };
        let line = &mut result.lines[n];
        line.adjustment += covered;
        line.ex_gratia += ex_gratia;
        line.insurer_pays = o.insurer_pays;
        line.patient_pays = line.allowed - o.insurer_pays;
        add_adjustment(&mut line.adjustments, AdjustmentCode::Override, -covered);
        add_adjustment(&mut line.adjustments, AdjustmentCode::ExGratia, -ex_gratia);
        if o.insurer_pays > 0 {
            line.rejection = None;
        }
        line.explanation.push(format!(
            "overridden by a claims officer ({}): insurer pays {}",
            o.reason.trim(),
            o.insurer_pays
        ));
        if ex_gratia != 0 {
            line.explanation.push(format!("of which {} ex gratia, beyond the plan's limits", line.ex_gratia));
        }
        result.usage.member_ceiling.add(setting, covered);
        result.usage.policy_ceiling.add(setting, covered);
        result.usage.categories.entry(source.category.clone()).or_default().amount += covered;
    }
    Ok(())
}

/// Every line rejected for one reason (no policy found for the member at all).
pub fn reject_all(claim: &Claim, reason: Reason) -> Adjudication {
    let lines = claim
        .lines
        .iter()
        .map(|line| rejected(line.amount(), reason, format!("no policy in force covers {}", line.date_of_service)).0)
        .collect();
    Adjudication { lines, usage: Accumulators::default() }
}
