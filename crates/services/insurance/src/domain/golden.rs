//! The golden table: adjudication cases with amounts worked out by hand, against the sample
//! plan of [`super::plan::tests::sample`] (KES; member deductible 1 000.00, family 2 000.00;
//! consultation: co-payment 500.00 in network, 3 a year; laboratory: 20 % in network, 50 %
//! out, 10 000.00 a year; imaging: 10 %, pre-authorised above 20 000.00; maternity: in-patient,
//! 10 %, 300 days' wait; procedure: in-patient, 2 000.00 + 10 %, always pre-authorised;
//! out-patient ceilings 50 000.00 per member and 80 000.00 per policy). Amounts are in cents.
//!
//! Then property tests of the invariants over random claims.

use std::collections::BTreeSet;

use proptest::prelude::*;
use time::Date;
use time::macros::date;
use uuid::Uuid;

use super::adjudication::{Accumulators, Adjudication, Approval, CategoryUse, Claim, Line, Member, Outcome, Reason};
use super::adjudication::{AdjustmentCode, Override, PerSetting, adjudicate, apply_overrides};
use super::plan::{PlanRules, VisitType};
use super::policy::{Cover, MemberStatus, PolicyStatus};

const IN_NETWORK: Uuid = Uuid::from_u128(0xa1);
const OUT_OF_NETWORK: Uuid = Uuid::from_u128(0xb2);
const DAY: Date = date!(2026 - 06 - 01);

fn plan() -> PlanRules {
    super::plan::tests::sample()
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

/// Deductibles already met.
fn met() -> Accumulators {
    Accumulators { member_deductible: 100_000, family_deductible: 100_000, ..Accumulators::default() }
}

fn line(code: &str, category: &str, quantity: u32, unit_price: i64) -> Line {
    Line {
        service_code: code.into(),
        category: category.into(),
        quantity,
        unit_price,
        diagnosis: "J06.9".into(),
        date_of_service: DAY,
        approval: None,
    }
}

fn approved(mut l: Line, amount: i64, code: &str, until: Date) -> Line {
    l.approval = Some(Approval { service_code: code.into(), approved_amount: amount, valid_until: until });
    l
}

fn on(mut l: Line, day: Date) -> Line {
    l.date_of_service = day;
    l
}

fn diagnosed(mut l: Line, code: &str) -> Line {
    l.diagnosis = code.into();
    l
}

/// Expected: allowed, not covered, deductible, co-payment, co-insurance, over limit, insurer,
/// patient, reason.
type Expect = (i64, i64, i64, i64, i64, i64, i64, i64, Option<Reason>);

const fn paid(
    allowed: i64,
    deductible: i64,
    copay: i64,
    coinsurance: i64,
    over: i64,
    insurer: i64,
    patient: i64,
) -> Expect {
    (allowed, 0, deductible, copay, coinsurance, over, insurer, patient, None)
}

const fn refused(amount: i64, reason: Reason) -> Expect {
    (amount, amount, 0, 0, 0, 0, 0, amount, Some(reason))
}

struct Case {
    name: &'static str,
    cover: Cover,
    used: Accumulators,
    paid_lines: BTreeSet<(String, Date)>,
    hospital: Uuid,
    visit: VisitType,
    lines: Vec<Line>,
    expect: Vec<Expect>,
}

fn case(name: &'static str, used: Accumulators, lines: Vec<Line>, expect: Vec<Expect>) -> Case {
    Case {
        name,
        cover: cover(),
        used,
        paid_lines: BTreeSet::new(),
        hospital: IN_NETWORK,
        visit: VisitType::Normal,
        lines,
        expect,
    }
}

fn with_lab(mut used: Accumulators, count: i64, amount: i64) -> Accumulators {
    used.categories.insert("laboratory".into(), CategoryUse { count, amount });
    used
}

fn with_consultations(mut used: Accumulators, count: i64) -> Accumulators {
    used.categories.insert("consultation".into(), CategoryUse { count, amount: 0 });
    used
}

fn with_outpatient(mut used: Accumulators, member: i64, policy: i64) -> Accumulators {
    used.member_ceiling = PerSetting { inpatient: 0, outpatient: member };
    used.policy_ceiling = PerSetting { inpatient: 0, outpatient: policy };
    used
}

fn cases() -> Vec<Case> {
    use Reason::*;
    let fresh = Accumulators::default;
    let mut all = vec![
        // 1. 3 000.00: deductible 1 000.00, co-payment 500.00, the insurer the rest.
        case(
            "consultation, deductible not met",
            fresh(),
            vec![line("CONS", "consultation", 1, 300_000)],
            vec![paid(300_000, 100_000, 50_000, 0, 0, 150_000, 150_000)],
        ),
        case(
            "consultation, deductible met",
            met(),
            vec![line("CONS", "consultation", 1, 300_000)],
            vec![paid(300_000, 0, 50_000, 0, 0, 250_000, 50_000)],
        ),
        case(
            "laboratory, 20 %",
            met(),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 0, 0, 50_000, 0, 200_000, 50_000)],
        ),
        // 2 500.00 - 1 000.00 deductible = 1 500.00; 20 % = 300.00.
        case(
            "laboratory, deductible then 20 %",
            fresh(),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 100_000, 0, 30_000, 0, 120_000, 130_000)],
        ),
        // Rounding: 20 % of 9.99 = 1.998 -> 2.00.
        case(
            "laboratory, co-insurance rounds to the cent",
            met(),
            vec![line("LAB", "laboratory", 1, 999)],
            vec![paid(999, 0, 0, 200, 0, 799, 200)],
        ),
        case("laboratory, zero price", met(), vec![line("LAB", "laboratory", 1, 0)], vec![paid(0, 0, 0, 0, 0, 0, 0)]),
        // 3 × 200.00 = 600.00, all deductible.
        case(
            "quantity inside the deductible",
            fresh(),
            vec![line("LAB", "laboratory", 3, 20_000)],
            vec![paid(60_000, 60_000, 0, 0, 0, 0, 60_000)],
        ),
        // Co-payment larger than the line: capped at the line.
        case(
            "co-payment above the price",
            met(),
            vec![line("CONS", "consultation", 1, 30_000)],
            vec![paid(30_000, 0, 30_000, 0, 0, 0, 30_000)],
        ),
        // Referral: 10 % after the deductible: 2 000.00 × 10 % = 200.00.
        case(
            "referral visit",
            fresh(),
            vec![line("CONS", "consultation", 1, 300_000)],
            vec![paid(300_000, 100_000, 0, 20_000, 0, 180_000, 120_000)],
        ),
        // Family deductible: 1 500.00 of 2 000.00 used by others leaves 500.00.
        case(
            "family deductible binds",
            Accumulators { family_deductible: 150_000, ..fresh() },
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 50_000, 0, 40_000, 0, 160_000, 90_000)],
        ),
        // The deductible spans lines: 600.00 on the first, 400.00 on the second.
        case(
            "deductible across two lines",
            fresh(),
            vec![line("LAB-A", "laboratory", 1, 60_000), line("LAB-B", "laboratory", 1, 250_000)],
            vec![paid(60_000, 60_000, 0, 0, 0, 0, 60_000), paid(250_000, 40_000, 0, 42_000, 0, 168_000, 82_000)],
        ),
        // Category amount limit 10 000.00 with 9 500.00 used: 500.00 left of the 2 000.00 share.
        case(
            "laboratory amount limit cuts",
            with_lab(met(), 5, 950_000),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 0, 0, 50_000, 150_000, 50_000, 200_000)],
        ),
        case(
            "laboratory amount limit used up",
            with_lab(met(), 8, 1_000_000),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![(250_000, 0, 0, 0, 50_000, 200_000, 0, 250_000, Some(LimitReached))],
        ),
        // Two lines against 1 000.00 left of the limit: 1 000.00 then nothing.
        case(
            "amount limit across lines",
            with_lab(met(), 3, 900_000),
            vec![line("LAB-A", "laboratory", 1, 250_000), line("LAB-B", "laboratory", 1, 100_000)],
            vec![
                paid(250_000, 0, 0, 50_000, 100_000, 100_000, 150_000),
                (100_000, 0, 0, 0, 20_000, 80_000, 0, 100_000, Some(LimitReached)),
            ],
        ),
        case(
            "consultation count limit used up",
            with_consultations(met(), 3),
            vec![line("CONS", "consultation", 1, 300_000)],
            vec![refused(300_000, LimitReached)],
        ),
        // 2 of 3 used: one unit covered, one over.
        case(
            "count limit covers whole units",
            with_consultations(met(), 2),
            vec![line("CONS", "consultation", 2, 100_000)],
            vec![paid(200_000, 0, 50_000, 0, 100_000, 50_000, 150_000)],
        ),
        case(
            "count limit across lines",
            met(),
            vec![
                on(line("CONS", "consultation", 1, 100_000), date!(2026 - 06 - 01)),
                on(line("CONS", "consultation", 1, 100_000), date!(2026 - 06 - 02)),
                on(line("CONS", "consultation", 1, 100_000), date!(2026 - 06 - 03)),
                on(line("CONS", "consultation", 1, 100_000), date!(2026 - 06 - 04)),
            ],
            vec![
                paid(100_000, 0, 50_000, 0, 0, 50_000, 50_000),
                paid(100_000, 0, 50_000, 0, 0, 50_000, 50_000),
                paid(100_000, 0, 50_000, 0, 0, 50_000, 50_000),
                refused(100_000, LimitReached),
            ],
        ),
        case(
            "excluded service",
            met(),
            vec![line("COSM-01", "consultation", 1, 300_000)],
            vec![refused(300_000, ExcludedService)],
        ),
        case(
            "excluded service, any case",
            met(),
            vec![line("cosm-01", "procedure", 1, 300_000)],
            vec![refused(300_000, ExcludedService)],
        ),
        case(
            "excluded diagnosis",
            met(),
            vec![diagnosed(line("CONS", "consultation", 1, 300_000), "Z41.1")],
            vec![refused(300_000, ExcludedDiagnosis)],
        ),
        case(
            "uncovered category",
            met(),
            vec![line("DENT-01", "dental", 1, 300_000)],
            vec![refused(300_000, NotCovered)],
        ),
        case(
            "maternity in the waiting period",
            met(),
            vec![line("MAT-01", "maternity", 1, 1_000_000)],
            vec![refused(1_000_000, WaitingPeriod)],
        ),
        // Enrolled 2026-01-01 + 300 days = 2026-10-28, the first covered day.
        case(
            "maternity on the day the wait ends",
            met(),
            vec![on(line("MAT-01", "maternity", 1, 1_000_000), date!(2026 - 10 - 28))],
            vec![paid(1_000_000, 0, 0, 100_000, 0, 900_000, 100_000)],
        ),
        case(
            "maternity the day before the wait ends",
            met(),
            vec![on(line("MAT-01", "maternity", 1, 1_000_000), date!(2026 - 10 - 27))],
            vec![refused(1_000_000, WaitingPeriod)],
        ),
        // The exclusion is checked before the waiting period.
        case(
            "excluded diagnosis before waiting period",
            met(),
            vec![diagnosed(line("MAT-01", "maternity", 1, 1_000_000), "Z41.0")],
            vec![refused(1_000_000, ExcludedDiagnosis)],
        ),
        case(
            "procedure without pre-authorisation",
            met(),
            vec![line("PROC-1", "procedure", 1, 3_000_000)],
            vec![refused(3_000_000, PreauthMissing)],
        ),
        // 30 000.00: co-payment 2 000.00, 10 % of 28 000.00 = 2 800.00.
        case(
            "procedure with an approval",
            met(),
            vec![approved(line("PROC-1", "procedure", 1, 3_000_000), 5_000_000, "PROC-1", DAY)],
            vec![paid(3_000_000, 0, 200_000, 280_000, 0, 2_520_000, 480_000)],
        ),
        // Approved 20 000.00 of 30 000.00: 10 000.00 over; 2 000.00 + 10 % of 18 000.00.
        case(
            "procedure above its approval",
            met(),
            vec![approved(line("PROC-1", "procedure", 1, 3_000_000), 2_000_000, "PROC-1", DAY)],
            vec![paid(3_000_000, 0, 200_000, 180_000, 1_000_000, 1_620_000, 1_380_000)],
        ),
        case(
            "expired approval",
            met(),
            vec![approved(line("PROC-1", "procedure", 1, 3_000_000), 5_000_000, "PROC-1", date!(2026 - 05 - 31))],
            vec![refused(3_000_000, PreauthMissing)],
        ),
        case(
            "approval for another service",
            met(),
            vec![approved(line("PROC-1", "procedure", 1, 3_000_000), 5_000_000, "PROC-2", DAY)],
            vec![refused(3_000_000, PreauthMissing)],
        ),
        case(
            "imaging under the pre-authorisation threshold",
            met(),
            vec![line("IMG-CT", "imaging", 1, 1_500_000)],
            vec![paid(1_500_000, 0, 0, 150_000, 0, 1_350_000, 150_000)],
        ),
        case(
            "imaging at the threshold",
            met(),
            vec![line("IMG-CT", "imaging", 1, 2_000_000)],
            vec![paid(2_000_000, 0, 0, 200_000, 0, 1_800_000, 200_000)],
        ),
        case(
            "imaging above the threshold",
            met(),
            vec![line("IMG-CT", "imaging", 1, 2_500_000)],
            vec![refused(2_500_000, PreauthMissing)],
        ),
        case(
            "policy expired at the date",
            met(),
            vec![on(line("CONS", "consultation", 1, 300_000), date!(2027 - 01 - 15))],
            vec![refused(300_000, NoActivePolicy)],
        ),
        case(
            "before the policy starts",
            met(),
            vec![on(line("CONS", "consultation", 1, 300_000), date!(2025 - 12 - 31))],
            vec![refused(300_000, NoActivePolicy)],
        ),
        case(
            "deductible met across the ceiling: out-patient full, in-patient untouched",
            with_outpatient(met(), 5_000_000, 5_000_000),
            vec![on(line("MAT-01", "maternity", 1, 1_000_000), date!(2026 - 11 - 01))],
            vec![paid(1_000_000, 0, 0, 100_000, 0, 900_000, 100_000)],
        ),
        // Member out-patient ceiling 50 000.00 with 49 000.00 used: 1 000.00 of 2 000.00.
        case(
            "member ceiling cuts",
            with_outpatient(met(), 4_900_000, 4_900_000),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 0, 0, 50_000, 100_000, 100_000, 150_000)],
        ),
        // Policy ceiling 80 000.00 with 79 500.00 used by the family: 500.00 left.
        case(
            "policy ceiling cuts",
            with_outpatient(met(), 1_000_000, 7_950_000),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 0, 0, 50_000, 150_000, 50_000, 200_000)],
        ),
        case(
            "member ceiling used up",
            with_outpatient(met(), 5_000_000, 5_000_000),
            vec![line("LAB", "laboratory", 1, 250_000)],
            vec![(250_000, 0, 0, 0, 50_000, 200_000, 0, 250_000, Some(CeilingReached))],
        ),
        // Two lines share the last 1 500.00 of the ceiling.
        case(
            "ceiling across lines",
            with_outpatient(met(), 4_850_000, 4_850_000),
            vec![
                line("LAB-A", "laboratory", 1, 100_000),
                line("LAB-B", "laboratory", 1, 100_000),
                line("LAB-C", "laboratory", 1, 100_000),
            ],
            vec![
                paid(100_000, 0, 0, 20_000, 0, 80_000, 20_000),
                paid(100_000, 0, 0, 20_000, 10_000, 70_000, 30_000),
                (100_000, 0, 0, 0, 20_000, 80_000, 0, 100_000, Some(CeilingReached)),
            ],
        ),
        case(
            "duplicate line in the claim",
            met(),
            vec![line("LAB", "laboratory", 1, 250_000), line("LAB", "laboratory", 1, 250_000)],
            vec![paid(250_000, 0, 0, 50_000, 0, 200_000, 50_000), (0, 0, 0, 0, 0, 0, 0, 0, Some(DuplicateLine))],
        ),
        case(
            "same service on another day is no duplicate",
            met(),
            vec![
                line("LAB", "laboratory", 1, 250_000),
                on(line("LAB", "laboratory", 1, 250_000), date!(2026 - 06 - 02)),
            ],
            vec![paid(250_000, 0, 0, 50_000, 0, 200_000, 50_000), paid(250_000, 0, 0, 50_000, 0, 200_000, 50_000)],
        ),
        // A rejected duplicate uses nothing: the deductible is taken by the line after it.
        case(
            "duplicate then a new line",
            fresh(),
            vec![
                line("LAB", "laboratory", 1, 50_000),
                line("LAB", "laboratory", 1, 50_000),
                line("LAB-B", "laboratory", 1, 100_000),
            ],
            vec![
                paid(50_000, 50_000, 0, 0, 0, 0, 50_000),
                (0, 0, 0, 0, 0, 0, 0, 0, Some(DuplicateLine)),
                paid(100_000, 50_000, 0, 10_000, 0, 40_000, 60_000),
            ],
        ),
        // A rejected line does not use the deductible either.
        case(
            "rejected line leaves the deductible",
            fresh(),
            vec![line("DENT", "dental", 1, 80_000), line("LAB", "laboratory", 1, 250_000)],
            vec![refused(80_000, NotCovered), paid(250_000, 100_000, 0, 30_000, 0, 120_000, 130_000)],
        ),
    ];

    let mut out = case(
        "out of network, covered at 50 %",
        met(),
        vec![line("LAB", "laboratory", 1, 250_000)],
        vec![paid(250_000, 0, 0, 125_000, 0, 125_000, 125_000)],
    );
    out.hospital = OUT_OF_NETWORK;
    all.push(out);
    // 50 % of 10.05 = 5.025 -> 5.03.
    let mut half_cent = case(
        "out of network, half a cent rounds up",
        met(),
        vec![line("LAB", "laboratory", 1, 1_005)],
        vec![paid(1_005, 0, 0, 503, 0, 502, 503)],
    );
    half_cent.hospital = OUT_OF_NETWORK;
    all.push(half_cent);
    let mut oon = case(
        "consultation out of network",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, OutOfNetwork)],
    );
    oon.hospital = OUT_OF_NETWORK;
    all.push(oon);
    let mut emergency_oon = case(
        "emergency out of network",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![paid(300_000, 0, 0, 60_000, 0, 240_000, 60_000)],
    );
    emergency_oon.hospital = OUT_OF_NETWORK;
    emergency_oon.visit = VisitType::Emergency;
    all.push(emergency_oon);
    let mut emergency_procedure = case(
        "emergency procedure needs no approval",
        met(),
        vec![line("PROC-1", "procedure", 1, 3_000_000)],
        vec![paid(3_000_000, 0, 0, 300_000, 0, 2_700_000, 300_000)],
    );
    emergency_procedure.visit = VisitType::Emergency;
    all.push(emergency_procedure);
    let mut emergency_imaging = case(
        "imaging is not covered as an emergency",
        met(),
        vec![line("IMG-CT", "imaging", 1, 2_500_000)],
        vec![refused(2_500_000, NotCovered)],
    );
    emergency_imaging.visit = VisitType::Emergency;
    all.push(emergency_imaging);
    let mut referral = case(
        "referral",
        fresh(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![paid(300_000, 100_000, 0, 20_000, 0, 180_000, 120_000)],
    );
    referral.visit = VisitType::Referral;
    all.retain(|c| c.name != "referral visit");
    all.push(referral);
    let mut pending = case(
        "pending policy",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, NoActivePolicy)],
    );
    pending.cover.policy_status = PolicyStatus::Pending;
    all.push(pending);
    let mut cancelled = case(
        "care after cancellation",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, NoActivePolicy)],
    );
    cancelled.cover.policy_status = PolicyStatus::Cancelled;
    cancelled.cover.policy_ended_on = Some(date!(2026 - 05 - 01));
    all.push(cancelled);
    let mut before_cancel = case(
        "care before cancellation",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![paid(300_000, 0, 50_000, 0, 0, 250_000, 50_000)],
    );
    before_cancel.cover.policy_status = PolicyStatus::Cancelled;
    before_cancel.cover.policy_ended_on = Some(date!(2026 - 07 - 01));
    all.push(before_cancel);
    let mut suspended = case(
        "suspended policy",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, NoActivePolicy)],
    );
    suspended.cover.policy_status = PolicyStatus::Suspended;
    suspended.cover.policy_ended_on = Some(date!(2026 - 05 - 20));
    all.push(suspended);
    let mut deceased = case(
        "deceased member",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, MemberInactive)],
    );
    deceased.cover.member_status = MemberStatus::Deceased;
    deceased.cover.member_status_on = Some(date!(2026 - 05 - 15));
    all.push(deceased);
    let mut not_yet = case(
        "member not yet enrolled",
        met(),
        vec![line("CONS", "consultation", 1, 300_000)],
        vec![refused(300_000, MemberInactive)],
    );
    not_yet.cover.enrolled_on = date!(2026 - 07 - 01);
    all.push(not_yet);
    let mut duplicate = case(
        "duplicate of a paid line",
        met(),
        vec![line("LAB", "laboratory", 1, 250_000)],
        vec![(0, 0, 0, 0, 0, 0, 0, 0, Some(DuplicateLine))],
    );
    duplicate.paid_lines.insert(("LAB".into(), DAY));
    all.push(duplicate);
    all
}

fn run(case: &Case, plan: &PlanRules) -> Adjudication {
    let claim = Claim { hospital_id: case.hospital, visit_type: case.visit, lines: case.lines.clone() };
    let member = Member { cover: &case.cover, used: &case.used, paid_lines: &case.paid_lines };
    adjudicate(plan, &member, &claim)
}

#[test]
fn golden_table() {
    let plan = plan();
    let cases = cases();
    assert!(cases.len() >= 40, "the table has {} cases", cases.len());
    let mut reasons = BTreeSet::new();
    let mut codes = BTreeSet::new();
    for case in &cases {
        let result = run(case, &plan);
        assert_eq!(result.lines.len(), case.expect.len(), "{}", case.name);
        for (i, (got, want)) in result.lines.iter().zip(&case.expect).enumerate() {
            let got_tuple = (
                got.allowed,
                got.not_covered,
                got.deductible,
                got.copay,
                got.coinsurance,
                got.over_limit,
                got.insurer_pays,
                got.patient_pays,
                got.rejection,
            );
            assert_eq!(got_tuple, *want, "{} line {}: {:?}", case.name, i + 1, got.explanation);
            assert!(!got.explanation.is_empty(), "{}: every line is explained", case.name);
            // Every cent the member pays carries its code.
            let coded: i64 = got.adjustments.iter().map(|a| a.amount).sum();
            assert_eq!(coded, got.patient_pays, "{} line {}: {:?}", case.name, i + 1, got.adjustments);
            codes.extend(got.adjustments.iter().map(|a| a.code));
            reasons.extend(got.rejection);
        }
    }
    // Every reason code is exercised.
    use Reason::*;
    let every = [
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
    ];
    for reason in every {
        assert!(reasons.contains(&reason), "no case gives {reason:?}");
    }
    // Every code of the engine's own is exercised (override and ex gratia are a claims
    // officer's: see `overrides_are_bounded_by_what_is_left_unless_ex_gratia`).
    use AdjustmentCode as A;
    for code in [
        A::Deductible,
        A::CoPay,
        A::CoInsurance,
        A::BenefitLimit,
        A::Ceiling,
        A::Exclusion,
        A::WaitingPeriod,
        A::NotCovered,
    ] {
        assert!(codes.contains(&code), "no case gives {code:?}");
    }
}

/// Every code on one partial cut each, amounts by hand (deductibles met unless said).
#[test]
fn every_adjustment_code_on_a_partial_cut() {
    use AdjustmentCode as A;
    let plan = plan();
    let half_deductible =
        Accumulators { member_deductible: 50_000, family_deductible: 50_000, ..Accumulators::default() };
    type Cut = (&'static str, Accumulators, Line, Vec<(A, i64)>);
    let cases: Vec<Cut> = vec![
        // 3 000.00 lab, 500.00 of deductible left: 500.00 deductible, 20 % of 2 500.00 = 500.00.
        (
            "deductible and co-insurance",
            half_deductible,
            line("LAB", "laboratory", 1, 300_000),
            vec![(A::Deductible, 50_000), (A::CoInsurance, 50_000)],
        ),
        // 3 000.00 consultation: 500.00 co-payment.
        ("co-payment", met(), line("CONS", "consultation", 1, 300_000), vec![(A::CoPay, 50_000)]),
        // 2 consultations with 2 of 3 used: 1 unit covered (co-payment 500.00), 1 cut by the count.
        (
            "count limit",
            with_consultations(met(), 2),
            line("CONS", "consultation", 2, 300_000),
            vec![(A::CoPay, 50_000), (A::BenefitLimit, 300_000)],
        ),
        // 5 000.00 lab with 9 000.00 of the 10 000.00 lab limit used: 20 % = 1 000.00, then
        // 4 000.00 for the insurer capped at 1 000.00 left: 3 000.00 cut.
        (
            "amount limit",
            with_lab(met(), 1, 900_000),
            line("LAB", "laboratory", 1, 500_000),
            vec![(A::CoInsurance, 100_000), (A::BenefitLimit, 300_000)],
        ),
        // 3 000.00 consultation with 49 000.00 of the member's 50 000.00 used: co-payment 500.00,
        // 2 500.00 capped at 1 000.00: 1 500.00 cut by the ceiling.
        (
            "ceiling",
            with_outpatient(met(), 4_900_000, 4_900_000),
            line("CONS", "consultation", 1, 300_000),
            vec![(A::CoPay, 50_000), (A::Ceiling, 150_000)],
        ),
        ("exclusion", met(), diagnosed(line("LAB", "laboratory", 1, 300_000), "Z41.1"), vec![(A::Exclusion, 300_000)]),
        ("waiting period", met(), line("MAT-01", "maternity", 1, 400_000), vec![(A::WaitingPeriod, 400_000)]),
        ("not covered", met(), line("DENT", "dental", 1, 200_000), vec![(A::NotCovered, 200_000)]),
    ];
    for (name, used, l, want) in cases {
        let c = Case { lines: vec![l], ..case(name, used, vec![], vec![]) };
        let result = run(&c, &plan);
        let got: Vec<(A, i64)> = result.lines[0].adjustments.iter().map(|a| (a.code, a.amount)).collect();
        assert_eq!(got, want, "{name}: {:?}", result.lines[0].explanation);
        assert_eq!(want.iter().map(|w| w.1).sum::<i64>(), result.lines[0].patient_pays, "{name}");
    }
}

/// Out-patient ceiling 50 000.00 per member; deductibles met; laboratory 20 %. A 6 000.00 lab
/// line with 45 000.00 of the ceiling used: co-insurance 1 200.00, insurer 4 800.00, which
/// leaves 200.00 of the ceiling. An override may give the insurer's part up to that 200.00;
/// past it, only as an ex-gratia payment.
#[test]
fn overrides_are_bounded_by_what_is_left_unless_ex_gratia() {
    use AdjustmentCode as A;
    let plan = plan();
    let used = with_outpatient(met(), 4_500_000, 4_500_000);
    let claim = Claim {
        hospital_id: IN_NETWORK,
        visit_type: VisitType::Normal,
        lines: vec![line("LAB", "laboratory", 1, 600_000)],
    };
    let member = Member { cover: &cover(), used: &used, paid_lines: &BTreeSet::new() };
    let engine = adjudicate(&plan, &member, &claim);
    assert_eq!((engine.lines[0].insurer_pays, engine.lines[0].patient_pays), (480_000, 120_000));
    let over = |insurer_pays: i64, ex_gratia: bool| Override {
        line: 1,
        insurer_pays,
        reason: "appeal upheld".into(),
        ex_gratia,
    };
    // (override, refused?, insurer, patient, adjustment, ex gratia, ceiling used after, codes)
    type Want = (Override, bool, i64, i64, i64, i64, i64, Vec<(A, i64)>);
    let cases: Vec<Want> = vec![
        // Less for the insurer: always allowed, the ceiling gets it back.
        (
            over(400_000, false),
            false,
            400_000,
            200_000,
            -80_000,
            0,
            4_900_000,
            vec![(A::CoInsurance, 120_000), (A::Override, 80_000)],
        ),
        // Up to the ceiling exactly.
        (
            over(500_000, false),
            false,
            500_000,
            100_000,
            20_000,
            0,
            5_000_000,
            vec![(A::CoInsurance, 120_000), (A::Override, -20_000)],
        ),
        // A cent past it: refused, naming the field.
        (over(500_001, false), true, 0, 0, 0, 0, 0, vec![]),
        (over(600_000, false), true, 0, 0, 0, 0, 0, vec![]),
        // Ex gratia: the 200.00 left is covered benefit, the 1 000.00 past it is ex gratia and
        // counts against nothing; the ceiling ends at 50 000.00, never past it.
        (
            over(600_000, true),
            false,
            600_000,
            0,
            20_000,
            100_000,
            5_000_000,
            vec![(A::CoInsurance, 120_000), (A::Override, -20_000), (A::ExGratia, -100_000)],
        ),
        // Ex gratia asked for but within what is left: an ordinary override.
        (
            over(490_000, true),
            false,
            490_000,
            110_000,
            10_000,
            0,
            4_990_000,
            vec![(A::CoInsurance, 120_000), (A::Override, -10_000)],
        ),
    ];
    for (o, refused, insurer, patient, adjustment, ex_gratia, ceiling_after, codes) in cases {
        let mut result = engine.clone();
        let applied = apply_overrides(&plan, &used, &claim, &mut result, std::slice::from_ref(&o));
        if refused {
            let (i, field, why) = applied.unwrap_err();
            assert_eq!((i, field), (0, "insurer_pays"), "{o:?}");
            assert!(why.contains("20000 is left of the member out-patient ceiling of 5000000"), "{why}");
            assert!(why.contains("ex_gratia"), "{why}");
            continue;
        }
        applied.unwrap();
        let l = &result.lines[0];
        assert_eq!(
            (l.insurer_pays, l.patient_pays, l.adjustment, l.ex_gratia),
            (insurer, patient, adjustment, ex_gratia),
            "{o:?}"
        );
        assert_eq!(l.adjustments.iter().map(|a| (a.code, a.amount)).collect::<Vec<_>>(), codes, "{o:?}");
        assert_eq!(l.adjustments.iter().map(|a| a.amount).sum::<i64>(), l.patient_pays, "{o:?}");
        assert_eq!(l.insurer_pays + l.patient_pays, l.allowed);
        assert_eq!(used.member_ceiling.outpatient + result.usage.member_ceiling.outpatient, ceiling_after, "{o:?}");
        assert_eq!(result.usage.category("laboratory").amount, insurer - ex_gratia, "{o:?}: ex gratia is no benefit");
    }
}

#[test]
fn outcomes() {
    let plan = plan();
    let by_name = |name: &str| cases().into_iter().find(|c| c.name == name).unwrap();
    assert_eq!(run(&by_name("laboratory, 20 %"), &plan).outcome(), Outcome::Approved);
    assert_eq!(run(&by_name("excluded service"), &plan).outcome(), Outcome::Rejected);
    assert_eq!(run(&by_name("member ceiling cuts"), &plan).outcome(), Outcome::PartiallyApproved);
    assert_eq!(run(&by_name("duplicate line in the claim"), &plan).outcome(), Outcome::PartiallyApproved);
}

#[test]
fn usage_is_what_the_lines_add() {
    let plan = plan();
    let by_name = cases().into_iter().find(|c| c.name == "deductible across two lines").unwrap();
    let result = run(&by_name, &plan);
    assert_eq!(result.usage.member_deductible, 100_000);
    assert_eq!(result.usage.family_deductible, 100_000);
    assert_eq!(result.usage.member_ceiling.outpatient, 168_000);
    assert_eq!(result.usage.policy_ceiling.outpatient, 168_000);
    assert_eq!(result.usage.category("laboratory"), CategoryUse { count: 2, amount: 168_000 });
}

fn arbitrary_line() -> impl Strategy<Value = Line> {
    let codes = prop::sample::select(vec!["CONS", "LAB", "LAB-B", "IMG-CT", "MAT-01", "PROC-1", "COSM-01", "DENT"]);
    let categories =
        prop::sample::select(vec!["consultation", "laboratory", "imaging", "maternity", "procedure", "dental"]);
    (codes, categories, 0u32..5, 0i64..5_000_000, 0i64..300, prop::option::of(0i64..6_000_000), any::<bool>()).prop_map(
        |(code, category, quantity, unit_price, day, approval, excluded)| Line {
            service_code: code.into(),
            category: category.into(),
            quantity,
            unit_price,
            diagnosis: if excluded { "Z41.1".into() } else { "J06.9".into() },
            date_of_service: date!(2026 - 01 - 01) + time::Duration::days(day),
            approval: approval.map(|a| Approval {
                service_code: code.into(),
                approved_amount: a,
                valid_until: date!(2026 - 12 - 31),
            }),
        },
    )
}

fn arbitrary_used() -> impl Strategy<Value = Accumulators> {
    (0i64..300_000, 0i64..300_000, 0i64..6_000_000, 0i64..9_000_000, 0i64..25_000_000, 0i64..5, 0i64..1_200_000)
        .prop_map(|(ded, fam, member_out, policy_out, member_in, count, lab)| {
            let mut used = Accumulators {
                member_deductible: ded,
                family_deductible: fam.max(ded),
                member_ceiling: PerSetting { inpatient: member_in, outpatient: member_out },
                policy_ceiling: PerSetting { inpatient: member_in, outpatient: policy_out.max(member_out) },
                ..Accumulators::default()
            };
            used.categories.insert("consultation".into(), CategoryUse { count, amount: 0 });
            used.categories.insert("laboratory".into(), CategoryUse { count, amount: lab });
            used
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn invariants(
        lines in prop::collection::vec(arbitrary_line(), 1..8),
        used in arbitrary_used(),
        out_of_network in any::<bool>(),
        visit in prop::sample::select(vec![VisitType::Normal, VisitType::Emergency, VisitType::Referral]),
    ) {
        let plan = plan();
        let cover = cover();
        let paid_lines = BTreeSet::new();
        let claim = Claim { hospital_id: if out_of_network { OUT_OF_NETWORK } else { IN_NETWORK }, visit_type: visit, lines };
        let member = Member { cover: &cover, used: &used, paid_lines: &paid_lines };
        let result = adjudicate(&plan, &member, &claim);
        for (line, got) in claim.lines.iter().zip(&result.lines) {
            // Every cent lands somewhere, once.
            prop_assert_eq!(got.insurer_pays + got.patient_pays, got.allowed);
            prop_assert_eq!(got.patient_pays, got.not_covered + got.deductible + got.copay + got.coinsurance + got.over_limit);
            prop_assert_eq!(got.adjustment, 0);
            prop_assert_eq!(got.ex_gratia, 0);
            // Each cut carries a code, and the codes add up to what the member pays.
            prop_assert_eq!(got.adjustments.iter().map(|a| a.amount).sum::<i64>(), got.patient_pays);
            prop_assert!(got.adjustments.iter().all(|a| a.amount > 0), "{:?}", got.adjustments);
            prop_assert_eq!(got.submitted, line.amount());
            prop_assert!(got.allowed == got.submitted || got.rejection == Some(Reason::DuplicateLine));
            for v in [got.allowed, got.not_covered, got.deductible, got.copay, got.coinsurance, got.over_limit, got.insurer_pays, got.patient_pays] {
                prop_assert!(v >= 0, "negative amount in {:?}", got);
            }
        }
        // No ceiling, deductible or limit is pushed past its plan value by this claim.
        let mut after = used.clone();
        after.apply(&result.usage);
        let ceilings = &plan.ceilings;
        let grew = |before: i64, after: i64| after > before;
        if let Some(c) = ceilings.member_outpatient { prop_assert!(!grew(used.member_ceiling.outpatient, after.member_ceiling.outpatient) || after.member_ceiling.outpatient <= c); }
        if let Some(c) = ceilings.policy_outpatient { prop_assert!(!grew(used.policy_ceiling.outpatient, after.policy_ceiling.outpatient) || after.policy_ceiling.outpatient <= c); }
        if let Some(c) = ceilings.member_inpatient { prop_assert!(!grew(used.member_ceiling.inpatient, after.member_ceiling.inpatient) || after.member_ceiling.inpatient <= c); }
        prop_assert!(!grew(used.member_deductible, after.member_deductible) || after.member_deductible <= plan.deductible_member);
        prop_assert!(!grew(used.family_deductible, after.family_deductible) || after.family_deductible <= plan.deductible_family.unwrap());
        let lab = after.category("laboratory");
        prop_assert!(!grew(used.category("laboratory").amount, lab.amount) || lab.amount <= 1_000_000);
        let consultations = after.category("consultation");
        prop_assert!(!grew(used.category("consultation").count, consultations.count) || consultations.count <= 3);
        // The insurer's total is what the ceilings took.
        prop_assert_eq!(result.insurer_total(), result.usage.member_ceiling.inpatient + result.usage.member_ceiling.outpatient);
        // Deterministic: the same inputs give the same answer.
        prop_assert_eq!(adjudicate(&plan, &member, &claim), result);
    }
}
