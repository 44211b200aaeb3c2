//! The hospital store on both backends: what the service layer relies on beyond the SQL
//! itself (stored words it cannot read are errors, PostgreSQL's exclusion constraints are
//! recognised).

use medcov_config::ServiceName;
use medcov_hospital::domain::appointment::{Appointment, Slot};
use medcov_hospital::domain::hospital::{Address, Hospital, HospitalFields};
use medcov_hospital::domain::patient::{Patient, PatientDetails, PatientStatus, Sex};
use medcov_hospital::domain::practitioner::{NewPractitioner, Practitioner};
use medcov_hospital::domain::schedule::{LocalTime, Weekday, WorkingHours};
use medcov_hospital::store;
use medcov_store::outbox::Actor;
use medcov_store::{Database, PoolOptions, StoreError};
use medcov_testkit::{TestBackend, TestEnv};
use time::OffsetDateTime;
use time::macros::{date, datetime};
use uuid::Uuid;

struct Clinic {
    db: Database,
    practitioners: [Practitioner; 2],
    patient: Patient,
}

async fn clinic(env: &TestEnv) -> Clinic {
    let url = env.config.database_url(ServiceName::Hospital);
    let db = Database::connect(ServiceName::Hospital, url, &PoolOptions::from_config(&env.config)).await.expect("db");
    db.migrate(ServiceName::Hospital, &store::MIGRATIONS).await.expect("migrations");
    let now = OffsetDateTime::now_utc();
    let fields = HospitalFields {
        name: "Test".into(),
        code: "TST".into(),
        timezone: "UTC".into(),
        currency: "KES".into(),
        address: Address::default(),
        opening_hours: Vec::new(),
    };
    let hospital = Hospital::new(Uuid::now_v7(), fields, now).expect("hospital");
    let doctor = |name: &str| {
        let hours = vec![WorkingHours { weekday: Weekday::Monday, start: LocalTime(0), end: LocalTime(24 * 60) }];
        let input = NewPractitioner {
            hospital_id: hospital.id,
            name: name.into(),
            specialty: "general practice".into(),
            working_hours: hours,
            daily_capacity: 10,
        };
        Practitioner::new(Uuid::now_v7(), input, now).expect("practitioner")
    };
    let practitioners = [doctor("Dr. A"), doctor("Dr. B")];
    let details = PatientDetails {
        given_name: "Amina".into(),
        family_name: "Okafor".into(),
        date_of_birth: date!(1984 - 03 - 09),
        sex: Sex::Female,
        phone: None,
        email: None,
        identifiers: Vec::new(),
        member_numbers: Vec::new(),
        status: PatientStatus::Active,
        deceased_on: None,
    };
    let patient = Patient::registered(Uuid::now_v7(), hospital.id, ("TST", 1), details, now);
    let mut tx = db.begin_write().await.expect("tx");
    store::insert_hospital(&mut tx, &hospital).await.expect("insert hospital");
    for p in &practitioners {
        store::insert_practitioner(&mut tx, p).await.expect("insert practitioner");
    }
    store::insert_patient(&mut tx, &patient, &Actor::default()).await.expect("insert patient");
    tx.commit().await.expect("commit");
    Clinic { db, practitioners, patient }
}

/// Monday 2026-11-30, 09:00 UTC, for 30 minutes.
fn nine() -> Slot {
    let starts_at = datetime!(2026-11-30 09:00 UTC);
    Slot { starts_at, ends_at: starts_at + time::Duration::minutes(30), local_date: starts_at.date() }
}

/// Books the patient with `practitioner` at nine, without asking whether the slot is free.
async fn book_blindly(clinic: &Clinic, practitioner: &Practitioner) -> Result<Appointment, StoreError> {
    let slot = nine();
    let appointment = Appointment::book(Uuid::now_v7(), practitioner, clinic.patient.id, "consultation".into(), &slot);
    let mut tx = clinic.db.begin_write().await?;
    let change = appointment.change(OffsetDateTime::now_utc(), Uuid::nil());
    store::insert_appointment(&mut tx, &appointment, &slot, &change).await?;
    tx.commit().await?;
    Ok(appointment)
}

async fn execute(db: &Database, sql: &'static str, id: Uuid) {
    match db {
        Database::Sqlite(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
    }
    .expect(sql);
}

async fn an_unknown_stored_status_is_an_error_naming_where_it_was(env: TestEnv) {
    let clinic = clinic(&env).await;
    let booked = book_blindly(&clinic, &clinic.practitioners[0]).await.expect("booked");
    let read = store::appointment(&clinic.db, booked.id).await.expect("read").expect("there");
    assert_eq!(read, booked);
    execute(&clinic.db, "UPDATE appointments SET status = 'postponed' WHERE id = $1", booked.id).await;
    match store::appointment(&clinic.db, booked.id).await {
        Err(StoreError::Corrupt { table: "appointments", column: "status", value }) => assert_eq!(value, "postponed"),
        other => panic!("expected a corrupt status, got {other:?}"),
    }
    let day = store::practitioner_appointments(&clinic.db, clinic.practitioners[0].id, 0, i64::MAX).await;
    assert!(matches!(day, Err(StoreError::Corrupt { .. })), "{day:?}");
    // The history keeps its own words: the booking's still reads.
    let history = store::appointment_history(&clinic.db, booked.id).await.expect("history");
    assert_eq!(history.len(), 1);
    clinic.db.close().await;
}

async fn postgres_refuses_a_patient_in_two_places_at_once(env: TestEnv) {
    let clinic = clinic(&env).await;
    book_blindly(&clinic, &clinic.practitioners[0]).await.expect("the first booking");
    let second = book_blindly(&clinic, &clinic.practitioners[1]).await;
    match env.backend {
        // The exclusion constraint is the last word; the service turns it into a 409.
        TestBackend::Distributed | TestBackend::RedisCluster => {
            let error = second.expect_err("the constraint refuses it");
            assert!(store::is_overlap(&error), "{error:?}");
        }
        // SQLite has no such constraint: the booking's write transaction checks first.
        TestBackend::Embedded => {
            second.expect("no constraint on SQLite");
        }
    }
    clinic.db.close().await;
}

medcov_testkit::backend_suite!(
    an_unknown_stored_status_is_an_error_naming_where_it_was,
    postgres_refuses_a_patient_in_two_places_at_once,
);
