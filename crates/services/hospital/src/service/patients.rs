//! Patients: registration, reads (through the cache), changes, search, history, coverage and
//! the access log. Every record read or written leaves an access-log entry.

use std::time::Duration;

use medcov_http::ApiError;
use medcov_security::Principal;
use medcov_store::outbox;
use serde::Serialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::registrar::{self, Registration};
use super::{HospitalService, access, actor, hospitals_in_scope, hospitals_to_list};
use crate::domain::access::{AccessAction, AccessEntry};
use crate::domain::coverage::Coverage;
use crate::domain::patient::{self, HistoryEntry, MemberNumber, Patient, PatientDetails, PatientEdit, Search};
use crate::events::PatientUpdated;
use crate::store;

// Patients are cached as JSON (their history's form).
medcov_cache::json_codec!(Patient);

/// How long a cached patient record may live; writes invalidate it at once.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// The cache tag of one patient's record.
pub fn patient_tag(id: Uuid) -> Vec<String> {
    vec![format!("hospital:patient:{id}")]
}

/// What the registration saga starts from.
#[derive(Debug, Serialize)]
struct RegistrationInput<'a> {
    patient_id: Uuid,
    hospital_id: Uuid,
    member_numbers: &'a [MemberNumber],
}

impl HospitalService {
    /// Today at `hospital`, in its time zone (a date of birth is checked against it). The zone
    /// is read once per process: it never changes.
    async fn today_at(&self, hospital: Uuid) -> Result<Date, ApiError> {
        let zone = match self.zones.get(&hospital) {
            Some(zone) => zone,
            None => {
                let found = store::hospital(&self.db, hospital)
                    .await?
                    .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
                let zone: std::sync::Arc<str> = found.timezone.into();
                self.zones.insert(hospital, zone.clone());
                zone
            }
        };
        Ok(medcov_domain::calendar::today_in(&zone))
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such patient".into())
}

impl HospitalService {
    /// Registers a patient in one of the principal's hospitals: numbers them, and writes the
    /// record, its keys, its first history entry, the access-log entry and
    /// `patient_registered` in one transaction (shared with the registrations of the moment,
    /// see [`registrar`]), with the registration saga when they present member numbers
    /// (coverage is verified, linked and the account opened by the saga). Refuses a possible
    /// duplicate (same folded names and date of birth in the hospital) unless
    /// `allow_duplicate`. Numbers are unique and increasing in a hospital; on PostgreSQL a registration that fails once numbered leaves its number unused
    /// ([`store::record_number_ahead`]).
    pub async fn register_patient(
        &self,
        principal: &Principal,
        hospital_id: Uuid,
        details: PatientDetails,
        allow_duplicate: bool,
    ) -> Result<Patient, ApiError> {
        if !principal.scope.covers_hospital(hospital_id) {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        let details = patient::checked(details, self.today_at(hospital_id).await?)?;
        // A registration with member numbers starts a saga: refused before anything is written
        // while the sagas in flight would not finish in time (it would be undone, not late).
        if !details.member_numbers.is_empty()
            && let Err(saturated) = self.admission.admit()
        {
            return Err(ApiError::Overloaded {
                detail: format!(
                    "registrations with member numbers are arriving faster than the insurers and billing \
                     confirm them (the ones in flight need about {} s); try again shortly",
                    saturated.expected_wait.as_secs().clamp(1, 3600)
                ),
                // Room frees as sagas end; a second is a fair wait at any rate worth admitting.
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        let actor = actor(principal);
        let id = Uuid::now_v7();
        // On PostgreSQL the number is taken before the transaction opens
        // (store::record_number_ahead), after a first duplicate check so that a refusal costs
        // none; the check runs again below, in turn with any other registration of the same
        // person. On SQLite the number is taken in the transaction, after the duplicate check.
        let ahead = if store::numbers_ahead(&self.db) {
            if !allow_duplicate {
                patient::refuse_duplicates(&store::possible_duplicates_now(&self.db, hospital_id, &details).await?)?;
            }
            store::record_number_ahead(&self.db, hospital_id).await?
        } else {
            None
        };
        let members = &details.member_numbers;
        let saga = (!members.is_empty())
            .then(|| serde_json::to_value(RegistrationInput { patient_id: id, hospital_id, member_numbers: members }))
            .transpose()
            .map_err(ApiError::internal)?;
        let registration = Registration { id, hospital_id, details, allow_duplicate, actor, saga, ahead };
        // With the others of the moment, in one transaction (group commit); a keyed request's
        // record is written in its own, so it registers alone.
        if medcov_store::keyed::active() {
            let mut answers = registrar::register_all(&self.db, &self.registration, &[registration]).await?;
            answers.pop().unwrap_or_else(|| Err(ApiError::internal("the registration went unanswered")))
        } else {
            self.registrar.register(registration).await
        }
    }

    /// A record the principal may see, or "not found". Reads go through the cache; the scope
    /// check runs on every read, cached or not.
    async fn visible_patient(&self, principal: &Principal, id: Uuid) -> Result<Patient, ApiError> {
        let key = format!("hospital:patient:{id}");
        let load = store::patient(&self.db, id);
        let patient = medcov_cache::read_through(self.cache(), &key, &patient_tag(id), CACHE_TTL, load).await?;
        patient.filter(|p| principal.scope.covers_hospital(p.hospital_id)).ok_or_else(not_found)
    }

    /// One patient record; the read is logged.
    pub async fn read_patient(&self, principal: &Principal, id: Uuid) -> Result<Patient, ApiError> {
        let patient = self.visible_patient(principal, id).await?;
        self.log_reads(&actor(principal), &[(patient.id, patient.hospital_id)], AccessAction::Read).await?;
        Ok(patient)
    }

    /// What the insurers answered about a record's member numbers; the read is logged.
    pub async fn patient_coverage(&self, principal: &Principal, id: Uuid) -> Result<Vec<Coverage>, ApiError> {
        let patient = self.visible_patient(principal, id).await?;
        self.log_reads(&actor(principal), &[(patient.id, patient.hospital_id)], AccessAction::CoverageRead).await?;
        Ok(store::coverage(&self.db, patient.id).await?)
    }

    /// Every version of a record, oldest first; the read is logged.
    pub async fn patient_history(&self, principal: &Principal, id: Uuid) -> Result<Vec<HistoryEntry>, ApiError> {
        let patient = self.visible_patient(principal, id).await?;
        self.log_reads(&actor(principal), &[(patient.id, patient.hospital_id)], AccessAction::History).await?;
        Ok(store::patient_history(&self.db, id).await?)
    }

    /// Changes a record read at version `expected`: the record at its next version, its keys,
    /// its history entry, the access-log entry and `patient_updated`, in one transaction.
    pub async fn update_patient(
        &self,
        principal: &Principal,
        id: Uuid,
        expected: i64,
        edit: PatientEdit,
    ) -> Result<Patient, ApiError> {
        let current = self.visible_patient(principal, id).await?;
        let today = self.today_at(current.hospital_id).await?;
        let updated = current.edited(expected, edit, today, OffsetDateTime::now_utc())?;
        let actor = actor(principal);
        let mut tx = self.db.begin_write().await?;
        if !store::update_patient(&mut tx, &updated, expected, &actor).await? {
            return Err(ApiError::PreconditionFailed("the record changed since you read it; read it again".into()));
        }
        store::log_access(&mut tx, &access(&actor, (updated.id, updated.hospital_id), AccessAction::Update)).await?;
        outbox::write(&mut tx, &actor, &PatientUpdated::of(&updated)).await?;
        tx.commit().await?;
        // After the commit: a read that started before it stored nothing servable (see
        // medcov-cache).
        self.cache().invalidate(&patient_tag(id)).await;
        Ok(updated)
    }

    /// Patients of the principal's hospitals (or of `hospital_id` among them) matching
    /// `search`, at most `limit + 1` of them (the extra one says that another page follows);
    /// each of the first `limit` counts as a read.
    pub async fn search_patients(
        &self,
        principal: &Principal,
        hospital_id: Option<Uuid>,
        search: &Search,
        (limit, offset): (i64, i64),
    ) -> Result<Vec<Patient>, ApiError> {
        let hospitals = hospitals_to_list(&self.db, principal, hospital_id).await?;
        let found = store::search_patients(&self.db, &hospitals, search, limit + 1, offset).await?;
        // The row past `limit` only says that another page follows: it is not shown, so not read.
        let shown = usize::try_from(limit).unwrap_or(0);
        let reads: Vec<(Uuid, Uuid)> = found.iter().take(shown).map(|p| (p.id, p.hospital_id)).collect();
        self.log_reads(&actor(principal), &reads, AccessAction::Search).await?;
        Ok(found)
    }

    /// Access-log entries in time order within the principal's hospitals, by patient and/or
    /// user, after `after`.
    pub async fn access_log(
        &self,
        principal: &Principal,
        (patient, user): (Option<Uuid>, Option<Uuid>),
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>, ApiError> {
        let scope = hospitals_in_scope(principal);
        Ok(store::access_log(&self.db, scope.as_deref(), patient, user, after, limit).await?)
    }

    /// A patient of the principal's hospitals, read without the cache or a log entry (for
    /// checks on the way to another record).
    pub(super) async fn patient_in_scope(&self, principal: &Principal, id: Uuid) -> Result<Patient, ApiError> {
        store::patient(&self.db, id)
            .await?
            .filter(|p| principal.scope.covers_hospital(p.hospital_id))
            .ok_or_else(not_found)
    }
}
