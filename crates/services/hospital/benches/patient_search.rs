//! Patient search over 100,000 patients: latency percentiles per kind of query, on SQLite (the
//! embedded default) and on PostgreSQL.
//!
//! `cargo bench -p medcov-hospital --bench patient_search` (PostgreSQL from
//! `MEDCOV_TEST_POSTGRES_URL`, default the local server). Figures go to docs/benchmarks.md.

use std::time::{Duration, Instant};

use medcov_config::{DatabaseUrl, ServiceName};
use medcov_hospital::domain::hospital::{Address, Hospital, HospitalFields};
use medcov_hospital::domain::patient::{
    Identifier, IdentifierKind, Patient, PatientDetails, PatientStatus, Search, Sex,
};
use medcov_hospital::store::{self, MIGRATIONS};
use medcov_store::outbox::Actor;
use medcov_store::{Database, PoolOptions};
use rand::Rng;
use rand::SeedableRng;
use time::OffsetDateTime;
use uuid::Uuid;

const PATIENTS: usize = 100_000;

/// A sampled patient (family name, MRN, birth date) and a run number to a search.
type MakeSearch = fn(&(String, String, time::Date), usize) -> Search;
const RUNS: usize = 2_000;

const FAMILY: [&str; 40] = [
    "Okafor", "Otieno", "Kamau", "Wanjiru", "Mwangi", "Njoroge", "Achieng", "Odhiambo", "Mutua", "Kiplagat",
    "Nakamura", "García", "Müller", "Ñúñez", "Dubois", "Rossi", "Nowak", "Silva", "Smith", "Johnson", "Brown",
    "Taylor", "Anderson", "Thomas", "Jackson", "White", "Harris", "Martin", "Thompson", "Moore", "Allen", "Young",
    "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
];
const GIVEN: [&str; 30] = [
    "Amina", "Baraka", "Chloé", "David", "Esther", "Faith", "Grace", "Hassan", "Imani", "Joseph", "Kevin", "Lucy",
    "Mary", "Nia", "Omar", "Peter", "Queen", "Rose", "Samuel", "Tabitha", "Umar", "Violet", "Wafula", "Xavier",
    "Yusuf", "Zawadi", "Ana", "Björn", "Zoë", "Émile",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn seed(database: &Database) -> (Uuid, Vec<(String, String, time::Date)>) {
    database.migrate(ServiceName::Hospital, &MIGRATIONS).await.expect("migrations");
    let now = OffsetDateTime::now_utc();
    let fields = HospitalFields {
        name: "Bench".into(),
        code: "BENCH".into(),
        timezone: "UTC".into(),
        currency: "USD".into(),
        address: Address::default(),
        opening_hours: Vec::new(),
    };
    let hospital = Hospital::new(Uuid::now_v7(), fields, now).expect("a valid hospital");
    let mut tx = database.begin_write().await.expect("tx");
    store::insert_hospital(&mut tx, &hospital).await.expect("hospital");
    tx.commit().await.expect("commit");
    let actor = Actor::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut samples = Vec::new();
    for batch in 0..PATIENTS / 1_000 {
        // Through the store, as registration writes them: the record, its keys, its history.
        let mut tx = database.begin_write().await.expect("tx");
        for i in 0..1_000 {
            let n = batch * 1_000 + i;
            let family =
                format!("{}{}", FAMILY[rng.random_range(0..FAMILY.len())], if n % 3 == 0 { "" } else { "-Lee" });
            let given = GIVEN[rng.random_range(0..GIVEN.len())].to_owned();
            let birth = time::Date::from_julian_day(2_415_021 + rng.random_range(0..40_000)).expect("date");
            let details = PatientDetails {
                given_name: given,
                family_name: family.clone(),
                date_of_birth: birth,
                sex: Sex::Unknown,
                phone: None,
                email: None,
                identifiers: vec![Identifier { kind: IdentifierKind::NationalId, value: format!("ID{n:08}") }],
                member_numbers: vec![],
                status: PatientStatus::Active,
                deceased_on: None,
            };
            let patient = Patient::registered(Uuid::now_v7(), hospital.id, ("BENCH", n as i64 + 1), details, now);
            if n % 997 == 0 {
                samples.push((family, patient.mrn.clone(), birth));
            }
            store::insert_patient(&mut tx, &patient, &actor).await.expect("patient");
        }
        tx.commit().await.expect("commit");
    }
    match &database {
        Database::Sqlite(pool) => sqlx::query("ANALYZE").execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::query("ANALYZE").execute(pool).await.map(drop),
    }
    .expect("analyze");
    (hospital.id, samples)
}

async fn measure(name: &str, database: Database) {
    let started = Instant::now();
    let (hospital, samples) = seed(&database).await;
    println!("{name}: seeded {PATIENTS} patients in {:.1} s", started.elapsed().as_secs_f64());
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let kinds: [(&str, MakeSearch); 5] = [
        ("name prefix (3 letters)", |s, _| Search { name: Some(s.0.chars().take(3).collect()), ..Search::default() }),
        ("full family name", |s, _| Search { name: Some(s.0.clone()), ..Search::default() }),
        ("name + date of birth", |s, _| Search {
            name: Some(s.0.chars().take(2).collect()),
            date_of_birth: Some(s.2),
            ..Search::default()
        }),
        ("MRN", |s, _| Search { mrn: Some(s.1.clone()), ..Search::default() }),
        ("national id", |_, n| Search { identifier: Some(format!("ID{:08}", n % PATIENTS)), ..Search::default() }),
    ];
    println!("{name}: {RUNS} searches of each kind, limit 20");
    println!("| backend | query | p50 | p95 | p99 | max |");
    for (label, make) in kinds {
        let mut times = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            let sample = &samples[rng.random_range(0..samples.len())];
            let search = make(sample, run * 7919);
            let at = Instant::now();
            let found = store::search_patients(&database, &[hospital], &search, 20, 0).await.expect("search");
            times.push(at.elapsed());
            assert!(!found.is_empty() || label == "name + date of birth", "{label} found nothing");
        }
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        println!(
            "| {name} | {label} | {} | {} | {} | {} |",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.95)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().expect("runs"))
        );
    }
    database.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = PoolOptions {
            data_dir: dir.path().to_path_buf(),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
        };
        let sqlite = Database::connect(ServiceName::Hospital, &DatabaseUrl::Embedded, &options).await.expect("sqlite");
        measure("sqlite", sqlite).await;

        let env = medcov_testkit::TestEnv::distributed().await;
        let postgres =
            Database::connect(ServiceName::Hospital, env.config.database_url(ServiceName::Hospital), &options)
                .await
                .expect("postgres");
        measure("postgres", postgres).await;
    });
}
