//! The adjudication engine alone: claims of 1, 10 and 100 lines against the example plan,
//! with accumulators part used (so deductibles, limits and ceilings all come into play).
//!
//! `cargo bench -p medcov-insurance --bench adjudication`; throughput is in lines per second.
//! Figures go to docs/benchmarks.md.

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medcov_insurance::domain::adjudication::{Accumulators, CategoryUse, Claim, Line, Member, PerSetting, adjudicate};
use medcov_insurance::domain::plan::{VisitType, example};
use medcov_insurance::domain::policy::{Cover, MemberStatus, PolicyStatus};
use time::macros::date;
use uuid::Uuid;

fn claim(lines: usize) -> Claim {
    let kinds = [
        ("CONS", "consultation", 300_000),
        ("LAB-FBC", "laboratory", 250_000),
        ("IMG-XR", "imaging", 900_000),
        ("MAT-01", "maternity", 1_000_000),
        ("DENT", "dental", 80_000),
    ];
    let lines = (0..lines)
        .map(|i| {
            let (code, category, price) = kinds[i % kinds.len()];
            Line {
                service_code: format!("{code}-{i}"),
                category: category.into(),
                quantity: 1 + (i % 3) as u32,
                unit_price: price,
                diagnosis: "J06.9".into(),
                date_of_service: date!(2026 - 11 - 01),
                approval: None,
            }
        })
        .collect();
    Claim { hospital_id: Uuid::from_u128(0xa1), visit_type: VisitType::Normal, lines }
}

fn engine(c: &mut Criterion) {
    let plan = example();
    let cover = Cover {
        policy_status: PolicyStatus::Active,
        policy_start: date!(2026 - 01 - 01),
        policy_expiry: date!(2026 - 12 - 31),
        policy_ended_on: None,
        enrolled_on: date!(2026 - 01 - 01),
        member_status: MemberStatus::Active,
        member_status_on: None,
    };
    let mut used = Accumulators {
        member_deductible: 40_000,
        family_deductible: 90_000,
        member_ceiling: PerSetting { inpatient: 1_000_000, outpatient: 3_000_000 },
        policy_ceiling: PerSetting { inpatient: 1_000_000, outpatient: 6_000_000 },
        ..Accumulators::default()
    };
    used.categories.insert("laboratory".into(), CategoryUse { count: 4, amount: 600_000 });
    let paid: BTreeSet<(String, time::Date)> = (0..50).map(|i| (format!("OLD-{i}"), date!(2026 - 03 - 01))).collect();
    let member = Member { cover: &cover, used: &used, paid_lines: &paid };
    let mut group = c.benchmark_group("adjudicate");
    for lines in [1usize, 10, 100] {
        let claim = claim(lines);
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_function(format!("{lines} lines"), |b| {
            b.iter(|| adjudicate(black_box(&plan), &member, black_box(&claim)))
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
