//! Registrations, written by group commit.
//!
//! A registration is a short write transaction: its duplicate check, its record number, then
//! its writes. One transaction each, registrations queue for the database's writer (SQLite has
//! one, held across every statement) and each pays for its own `BEGIN`, `COMMIT` and the
//! hand-off of every statement to the connection's thread. Here the registrations of a moment
//! share one: a request hands its checked registration to a writer task and waits for the
//! commit that holds it; the writer takes everything waiting (up to [`BATCH`]) into one
//! transaction:
//!
//! 1. the duplicate keys of the batch locked together (PostgreSQL; see
//!    [`medcov_store::Tx::lock_keys`]);
//! 2. each duplicate check read in turn, and compared with the registrations accepted before it
//!    in the batch, so two registrations of one person in one batch are told apart as they are
//!    in two transactions: the first registered, the second refused;
//! 3. one block of record numbers per hospital for the registrations accepted (a refused one
//!    takes none), in the batch's order;
//! 4. each accepted registration's writes gathered and sent together, and one commit.
//!
//! Each registration gets its own answer: a refused duplicate is refused alone. A batch that
//! fails for another reason than an unavailable database is run again one registration a
//! transaction, so that a registration's failure stays its own. A request under an
//! Idempotency-Key registers in its own task, as a batch of one: its record is written in its
//! registration's transaction (`medcov_store::keyed`).
//!
//! On PostgreSQL a few writers take batches side by side (each registration's number was taken
//! ahead of its transaction); on SQLite one, as there is one writer anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use medcov_bus::orchestrator::{self, Definition};
use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor};
use medcov_store::{Backend, Database, StoreError};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::access;
use crate::domain::access::AccessAction;
use crate::domain::patient::{self, Patient, PatientDetails};
use crate::events::PatientRegistered;
use crate::store;

/// Registrations written in one transaction, at most: a batch holds the database's write lock
/// (SQLite's only one) while it is written, so a cap keeps the others' turns short. Under 32
/// concurrent requests batches seldom reach it.
pub const BATCH: usize = 16;
/// Registrations waiting for a writer, at most; more wait to hand theirs over.
const WAITING: usize = 1024;
/// Writers taking batches side by side on PostgreSQL.
const POSTGRES_WRITERS: usize = 4;
/// Record numbers a duplicate refusal names, at most (as many as the check reads).
const NAMED: usize = 5;

/// A registration checked and ready to write.
#[derive(Debug, Clone)]
pub(super) struct Registration {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub details: PatientDetails,
    pub allow_duplicate: bool,
    pub actor: Actor,
    /// The registration saga's input, when the patient presents member numbers.
    pub saga: Option<serde_json::Value>,
    /// The record number taken ahead of the transaction, on PostgreSQL
    /// ([`store::record_number_ahead`]).
    pub ahead: Option<(String, i64)>,
}

/// What a registration's request is answered.
pub(super) type Answer = Result<Patient, ApiError>;

type Request = (Registration, oneshot::Sender<Answer>);

#[derive(Debug, Clone)]
pub(super) struct Registrar {
    sender: mpsc::Sender<Request>,
    counts: Arc<Counts>,
}

/// What the writers did since start.
#[derive(Debug, Default)]
struct Counts {
    /// Batches taken (each one transaction, or one a registration when it failed).
    batches: AtomicU64,
    /// Registrations in them.
    registrations: AtomicU64,
}

impl Registrar {
    /// Starts the writers on `db` (on the current tokio runtime), starting `definition` sagas;
    /// they stop when the last [`Registrar`] is dropped, after writing what they were handed.
    pub fn start(db: Database, definition: Definition) -> Registrar {
        let (sender, receiver) = mpsc::channel(WAITING);
        let receiver = Arc::new(Mutex::new(receiver));
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        let counts = Arc::new(Counts::default());
        for _ in 0..writers {
            tokio::spawn(write(db.clone(), definition, receiver.clone(), counts.clone()));
        }
        Registrar { sender, counts }
    }

    /// Batches written since start, and the registrations in them.
    pub fn written(&self) -> (u64, u64) {
        (self.counts.batches.load(Ordering::Relaxed), self.counts.registrations.load(Ordering::Relaxed))
    }

    /// Writes `registration` with the others of the moment; returns once committed (or
    /// refused).
    pub async fn register(&self, registration: Registration) -> Answer {
        let (done, answered) = oneshot::channel();
        // The writers stop with the service: the pool is closing.
        let stopped = || ApiError::from(StoreError::Unavailable(sqlx::Error::PoolClosed));
        self.sender.send((registration, done)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write(
    db: Database,
    definition: Definition,
    receiver: Arc<Mutex<mpsc::Receiver<Request>>>,
    counts: Arc<Counts>,
) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let (registrations, waiting): (Vec<Registration>, Vec<oneshot::Sender<Answer>>) = batch.into_iter().unzip();
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.registrations.fetch_add(registrations.len() as u64, Ordering::Relaxed);
        let answers = register_batch(&db, &definition, &registrations).await;
        for (answer, done) in answers.into_iter().zip(waiting) {
            // A request that went away meanwhile is registered all the same, as it would be
            // had it committed on its own.
            let _ = done.send(answer);
        }
    }
}

/// Registers `registrations` in one transaction; when that fails for another reason than an
/// unavailable database, each one in a transaction of its own. One answer each, in order.
pub(super) async fn register_batch(
    db: &Database,
    definition: &Definition,
    registrations: &[Registration],
) -> Vec<Answer> {
    let error = match register_all(db, definition, registrations).await {
        Ok(answers) => return answers,
        Err(error) => error,
    };
    if registrations.len() == 1 {
        return vec![Err(error.into())];
    }
    if error.is_unavailable() {
        // The outage is logged once, as the first answer is made of it.
        let mut answers = vec![Err(ApiError::from(error))];
        answers.extend(registrations[1..].iter().map(|_| Err(ApiError::database_unavailable())));
        return answers;
    }
    tracing::warn!(%error, registrations = registrations.len(), "a batch of registrations failed; writing each alone");
    let mut answers = Vec::with_capacity(registrations.len());
    for registration in registrations {
        answers.push(match register_all(db, definition, std::slice::from_ref(registration)).await {
            Ok(mut answer) => answer.pop().unwrap_or_else(|| Err(ApiError::internal("a registration went unanswered"))),
            Err(error) => Err(error.into()),
        });
    }
    answers
}

/// Registers `registrations` in one write transaction, in their order (see the module's
/// documentation): one answer each, which holds once it returns. An error means that nothing
/// was written.
pub(super) async fn register_all(
    db: &Database,
    definition: &Definition,
    registrations: &[Registration],
) -> Result<Vec<Answer>, StoreError> {
    let keys: Vec<String> = registrations.iter().map(|r| patient::duplicate_key(r.hospital_id, &r.details)).collect();
    let mut tx = db.begin_write().await?;
    // The duplicate check and the insert it allows are one step for this person in this
    // hospital; registrations of other people go on side by side.
    tx.lock_keys(&keys).await?;
    let mut stored = Vec::with_capacity(registrations.len());
    for registration in registrations {
        stored.push(match registration.allow_duplicate {
            true => Vec::new(),
            false => store::possible_duplicates(&mut tx, registration.hospital_id, &registration.details).await?,
        });
    }
    let accepted = accepted(registrations, &keys, &stored);
    let numbers = number(&mut tx, registrations, &accepted).await?;
    let now = OffsetDateTime::now_utc();
    // Each registration's writes are one run: the same few statements every time, so SQLite
    // keeps them compiled (one run for the whole batch would be a new text for each size of
    // batch, compiled anew or kept at a cost in memory; see `medcov_store::sqlite::Writes`).
    let mut runs = Vec::with_capacity(registrations.len());
    let mut answers: Vec<Answer> = Vec::with_capacity(registrations.len());
    for (i, registration) in registrations.iter().enumerate() {
        let answer = if !accepted[i] {
            // Refused: like the stored records, or like one accepted before it in the batch.
            let earlier = (0..i).filter(|&j| accepted[j] && keys[j] == keys[i]);
            let mut found = stored[i].clone();
            found.extend(earlier.filter_map(|j| answers[j].as_ref().ok().map(|p| p.mrn.clone())));
            found.truncate(NAMED);
            Err(patient::possible_duplicate(&found).into())
        } else if let Some((code, number)) = &numbers[i] {
            let (id, hospital_id, actor) = (registration.id, registration.hospital_id, &registration.actor);
            let patient = Patient::registered(id, hospital_id, (code, *number), registration.details.clone(), now);
            let mut writes = tx.writes();
            store::gather_access(&mut writes, &access(actor, (id, hospital_id), AccessAction::Create));
            if let Some(input) = &registration.saga {
                orchestrator::start(&mut writes, actor, definition, (id, hospital_id), input.clone());
            }
            store::gather_patient(&mut writes, &patient, actor);
            outbox::gather(&mut writes, actor, &PatientRegistered::of(&patient));
            runs.push(writes);
            Ok(patient)
        } else {
            Err(ApiError::NotFound("no such hospital".into()))
        };
        answers.push(answer);
    }
    for writes in runs {
        writes.run(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(answers)
}

/// Which registrations go ahead: those that may be duplicates, and those with no record like
/// theirs (`stored`, by `keys`) nor a registration like theirs accepted before them.
fn accepted(registrations: &[Registration], keys: &[String], stored: &[Vec<String>]) -> Vec<bool> {
    let mut accepted: Vec<bool> = Vec::with_capacity(registrations.len());
    for (i, registration) in registrations.iter().enumerate() {
        let like_earlier = (0..i).any(|j| accepted[j] && keys[j] == keys[i]);
        accepted.push(registration.allow_duplicate || (stored[i].is_empty() && !like_earlier));
    }
    accepted
}

/// The record number of each accepted registration: the one it took ahead, or the next of its
/// hospital's, one block per hospital in the batch's order; `None` for a refused one and for a
/// hospital that does not exist.
async fn number(
    tx: &mut medcov_store::Tx,
    registrations: &[Registration],
    accepted: &[bool],
) -> Result<Vec<Option<(String, i64)>>, StoreError> {
    let mut numbers: Vec<Option<(String, i64)>> =
        registrations.iter().zip(accepted).map(|(r, ok)| r.ahead.clone().filter(|_| *ok)).collect();
    let wanting = |hospital: Uuid| {
        (0..registrations.len()).filter(move |&i| {
            accepted[i] && registrations[i].ahead.is_none() && registrations[i].hospital_id == hospital
        })
    };
    let mut hospitals: Vec<Uuid> = Vec::new();
    for i in 0..registrations.len() {
        let hospital = registrations[i].hospital_id;
        if accepted[i] && registrations[i].ahead.is_none() && !hospitals.contains(&hospital) {
            hospitals.push(hospital);
        }
    }
    for hospital in hospitals {
        let count = i64::try_from(wanting(hospital).count()).unwrap_or(i64::MAX);
        if let Some((code, last)) = store::next_record_numbers(tx, hospital, count).await? {
            for (i, number) in wanting(hospital).zip(last - count + 1..) {
                numbers[i] = Some((code.clone(), number));
            }
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use medcov_config::ServiceName;
    use medcov_store::PoolOptions;
    use time::macros::date;

    use super::*;
    use crate::domain::hospital::{Address, Hospital, HospitalFields};
    use crate::domain::patient::{PatientStatus, Search, Sex};

    fn person(given: &str) -> PatientDetails {
        PatientDetails {
            given_name: given.into(),
            family_name: "Okafor".into(),
            date_of_birth: date!(1984 - 03 - 09),
            sex: Sex::Female,
            phone: None,
            email: None,
            identifiers: Vec::new(),
            member_numbers: Vec::new(),
            status: PatientStatus::Active,
            deceased_on: None,
        }
    }

    fn registration(hospital_id: Uuid, given: &str, allow_duplicate: bool) -> Registration {
        let (id, details, actor) = (Uuid::now_v7(), person(given), Actor::default());
        Registration { id, hospital_id, details, allow_duplicate, actor, saga: None, ahead: None }
    }

    /// Each answer as (status, record number or refusal).
    fn outcomes(answers: &[Answer]) -> Vec<(u16, String)> {
        answers
            .iter()
            .map(|answer| match answer {
                Ok(patient) => (201, patient.mrn.clone()),
                Err(error) => (error.status().as_u16(), error.to_string()),
            })
            .collect()
    }

    /// A batch registers each registration as one transaction each, in the batch's order,
    /// would: a registration like a stored record or like one accepted before it in the batch
    /// is refused alone, naming those records, and takes no number; `allow_duplicate` goes
    /// ahead; numbers follow the batch's order; an unknown hospital is refused alone. A batch
    /// that fails is written again one registration at a time, so the failure is only the
    /// failing registration's.
    async fn a_batch_registers_each_as_one_at_a_time_would(env: medcov_testkit::TestEnv) {
        let service = ServiceName::Hospital;
        let options = PoolOptions::from_config(&env.config);
        let db = Database::connect(service, env.config.database_url(service), &options).await.unwrap();
        db.migrate(service, &store::MIGRATIONS).await.unwrap();
        let definition = crate::sagas::registration(Duration::from_secs(30));
        let fields = HospitalFields {
            name: "Test".into(),
            code: "TST".into(),
            timezone: "UTC".into(),
            currency: "KES".into(),
            address: Address::default(),
            opening_hours: Vec::new(),
        };
        let hospital = Hospital::new(Uuid::now_v7(), fields, OffsetDateTime::now_utc()).unwrap();
        let mut tx = db.begin_write().await.unwrap();
        store::insert_hospital(&mut tx, &hospital).await.unwrap();
        tx.commit().await.unwrap();
        let number = |n: i64| patient::medical_record_number("TST", n);
        let h = hospital.id;

        let amina = registration(h, "Amina", false);
        let first = register_all(&db, &definition, std::slice::from_ref(&amina)).await.unwrap();
        assert_eq!(outcomes(&first), [(201, number(1))]);

        let batch = [
            registration(h, "Amina", false),
            registration(h, "Bako", false),
            registration(h, "Bako", false),
            registration(h, "Bako", true),
            registration(Uuid::now_v7(), "Chidi", false),
            registration(h, "Dayo", false),
        ];
        let answers = outcomes(&register_all(&db, &definition, &batch).await.unwrap());
        let refusal = |of: &str| ApiError::from(patient::possible_duplicate(&[of.to_owned()])).to_string();
        assert_eq!(
            answers,
            [
                (409, refusal(&number(1))),
                (201, number(2)),
                (409, refusal(&number(2))),
                (201, number(3)),
                (404, "no such hospital".to_owned()),
                (201, number(4)),
            ]
        );

        // The second registration reuses Amina's id: the batch fails on it, and is written
        // again one at a time.
        let mut twin = registration(h, "Twin", true);
        twin.id = amina.id;
        let batch = [registration(h, "Emeka", false), twin, registration(h, "Funmi", false)];
        let answers = outcomes(&register_batch(&db, &definition, &batch).await);
        assert_eq!(answers[0], (201, number(5)));
        assert_eq!(answers[1].0, 409, "{:?}", answers[1]);
        assert_eq!(answers[2], (201, number(6)));

        let stored = store::search_patients(&db, &[h], &Search::default(), 100, 0).await.unwrap();
        let mut numbers: Vec<String> = stored.iter().map(|p| p.mrn.clone()).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=6).map(number).collect::<Vec<_>>(), "one record for each registration answered 201");
        let registered = medcov_store::outbox::all(&db).await.unwrap();
        let registered = registered.iter().filter(|e| e.event_type == "hospital.patient_registered.v1").count();
        assert_eq!(registered, 6, "one event for each record");
    }

    medcov_testkit::backend_suite!(a_batch_registers_each_as_one_at_a_time_would);
}
