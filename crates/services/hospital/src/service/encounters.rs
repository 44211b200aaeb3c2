//! The service catalog, and encounters: opened for an appointment or a walk-in, care recorded,
//! then closed with `encounter_completed` for billing.

use medcov_http::ApiError;
use medcov_security::Principal;
use medcov_store::outbox;
use time::OffsetDateTime;
use uuid::Uuid;

use super::appointments::write_status;
use super::{HospitalService, access, actor};
use crate::domain::access::AccessAction;
use crate::domain::appointment::AppointmentStatus;
use crate::domain::encounter::{self, CareEdit, CatalogEntry, Encounter, Visit, VisitType};
use crate::domain::preauth;
use crate::events::{EncounterCompleted, RenderedService};
use crate::store;

/// An encounter to open, as asked for.
#[derive(Debug, Clone, Copy)]
pub struct OpenRequest {
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    /// The appointment being seen; `None` for a walk-in.
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
}

fn stale() -> ApiError {
    ApiError::PreconditionFailed("the encounter changed since you read it, or is closed".into())
}

impl HospitalService {
    /// Adds a service to the catalog of one of the principal's hospitals.
    pub async fn add_catalog_entry(
        &self,
        principal: &Principal,
        hospital_id: Uuid,
        (code, category, description): (&str, &str, &str),
    ) -> Result<CatalogEntry, ApiError> {
        if !principal.scope.covers_hospital(hospital_id) || store::hospital(&self.db, hospital_id).await?.is_none() {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        let entry = CatalogEntry::new(hospital_id, code, category, description)?;
        let mut tx = self.db.begin_write().await?;
        store::insert_catalog_entry(&mut tx, &entry).await.map_err(|e| {
            if e.is_duplicate() {
                ApiError::Conflict(format!("the catalog already has {}", entry.code))
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The catalog of one of the principal's hospitals, by code.
    pub async fn catalog(&self, principal: &Principal, hospital_id: Uuid) -> Result<Vec<CatalogEntry>, ApiError> {
        if !principal.scope.covers_hospital(hospital_id) {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        Ok(store::catalog(&self.db, hospital_id).await?)
    }

    /// Opens an encounter of a patient with a practitioner of their hospital, for an
    /// appointment (checked in, arrived or fulfilled; it becomes fulfilled) or a walk-in. The
    /// appointment's change, the encounter and the access-log entry are one transaction.
    pub async fn open_encounter(&self, principal: &Principal, request: OpenRequest) -> Result<Encounter, ApiError> {
        let patient = self.patient_in_scope(principal, request.patient_id).await?;
        let practitioner = store::practitioner(&self.db, request.practitioner_id)
            .await?
            .filter(|p| p.hospital_id == patient.hospital_id)
            .ok_or_else(|| ApiError::NotFound("no such practitioner in the patient's hospital".into()))?;
        let appointment = match request.appointment_id {
            None => None,
            Some(id) => {
                let appointment = store::appointment(&self.db, id)
                    .await?
                    .filter(|a| a.patient_id == patient.id && a.practitioner_id == practitioner.id)
                    .ok_or_else(|| {
                        ApiError::NotFound("no such appointment for this patient and practitioner".into())
                    })?;
                let fulfil = encounter::seeing(appointment.status)?;
                fulfil.then_some(appointment)
            }
        };
        let visit = Visit {
            hospital_id: patient.hospital_id,
            patient_id: patient.id,
            practitioner_id: practitioner.id,
            appointment_id: request.appointment_id,
            visit_type: request.visit_type,
        };
        let opened = Encounter::open(Uuid::now_v7(), visit, OffsetDateTime::now_utc());
        let actor = actor(principal);
        let mut tx = self.db.begin_write().await?;
        if let Some(appointment) = &appointment {
            write_status(&mut tx, appointment, AppointmentStatus::Fulfilled, None, &actor).await?.ok_or_else(|| {
                ApiError::Conflict(
                    "the appointment could not be fulfilled: the appointment changed since it was read".into(),
                )
            })?;
        }
        store::insert_encounter(&mut tx, &opened).await.map_err(|e| {
            if e.is_duplicate() {
                ApiError::Conflict("the appointment already has an encounter".into())
            } else {
                e.into()
            }
        })?;
        let record = (opened.patient_id, opened.hospital_id);
        store::log_access(&mut tx, &access(&actor, record, AccessAction::EncounterOpen)).await?;
        tx.commit().await?;
        if let Some(appointment) = &appointment {
            self.days_changed(appointment.practitioner_id).await;
        }
        Ok(opened)
    }

    async fn visible_encounter(&self, principal: &Principal, id: Uuid) -> Result<Encounter, ApiError> {
        store::encounter(&self.db, id)
            .await?
            .filter(|e| principal.scope.covers_hospital(e.hospital_id))
            .ok_or_else(|| ApiError::NotFound("no such encounter".into()))
    }

    /// One encounter; the read is logged.
    pub async fn read_encounter(&self, principal: &Principal, id: Uuid) -> Result<Encounter, ApiError> {
        let encounter = self.visible_encounter(principal, id).await?;
        let record = (encounter.patient_id, encounter.hospital_id);
        self.log_reads(&actor(principal), &[record], AccessAction::EncounterRead).await?;
        Ok(encounter)
    }

    /// Records diagnoses, services and notes on an open encounter read at version `expected`.
    /// A service line may cite a pre-authorisation (`preauth_id`): it must be one the insurer
    /// granted for this service, here, to one of the patient's member numbers and valid on the
    /// hospital's day (422 naming `services[i].preauth_id`); the claim raised when the encounter
    /// closes cites it, and the insurer checks it again there.
    pub async fn record_care(
        &self,
        principal: &Principal,
        id: Uuid,
        expected: i64,
        edit: CareEdit,
    ) -> Result<Encounter, ApiError> {
        let recorded = self.visible_encounter(principal, id).await?.recorded(edit)?;
        let catalog = encounter::active_catalog(store::catalog(&self.db, recorded.hospital_id).await?);
        encounter::check_care(&recorded.record, &catalog)?;
        self.check_preauths(&recorded).await?;
        let saved = recorded.saved(expected, false, OffsetDateTime::now_utc());
        let actor = actor(principal);
        let mut tx = self.db.begin_write().await?;
        if !store::save_encounter(&mut tx, &saved, expected).await? {
            return Err(stale());
        }
        let record = (saved.patient_id, saved.hospital_id);
        store::log_access(&mut tx, &access(&actor, record, AccessAction::EncounterUpdate)).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The pre-authorisations the encounter's services cite cover them (see `record_care`).
    async fn check_preauths(&self, recorded: &Encounter) -> Result<(), ApiError> {
        let cited: Vec<Uuid> = recorded.record.services.iter().filter_map(|l| l.preauth_id).collect();
        if cited.is_empty() {
            return Ok(());
        }
        let mut approvals = Vec::new();
        for id in cited {
            approvals.extend(store::approvals(&self.db, id).await?);
        }
        let patient = store::patient(&self.db, recorded.patient_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such patient".into()))?;
        let hospital = store::hospital(&self.db, recorded.hospital_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
        let numbers: Vec<&str> = patient.details.member_numbers.iter().map(|m| m.member_number.as_str()).collect();
        let day = medcov_domain::calendar::local_date_in(recorded.opened_at, &hospital.timezone);
        preauth::check(&recorded.record.services, &approvals, recorded.hospital_id, &numbers, day)?;
        Ok(())
    }

    /// Closes an encounter read at version `expected`: it is frozen, and
    /// `encounter_completed` carries everything billing needs (services with their
    /// categories, diagnoses, the patient's member numbers), in the same transaction.
    pub async fn close_encounter(&self, principal: &Principal, id: Uuid, expected: i64) -> Result<Encounter, ApiError> {
        let current = self.visible_encounter(principal, id).await?;
        current.check_closable()?;
        let catalog = encounter::active_catalog(store::catalog(&self.db, current.hospital_id).await?);
        encounter::check_care(&current.record, &catalog)?;
        let patient = store::patient(&self.db, current.patient_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such patient".into()))?;
        let hospital = store::hospital(&self.db, current.hospital_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
        let services = current
            .record
            .services
            .iter()
            .filter_map(|line| {
                let entry = catalog.get(&line.code)?;
                Some(RenderedService {
                    code: line.code.clone(),
                    category: entry.category.clone(),
                    description: entry.description.clone(),
                    quantity: line.quantity,
                    preauth_id: line.preauth_id,
                })
            })
            .collect();
        let completed = EncounterCompleted {
            encounter_id: current.id,
            hospital_id: current.hospital_id,
            patient_id: current.patient_id,
            practitioner_id: current.practitioner_id,
            appointment_id: current.appointment_id,
            visit_type: current.visit_type,
            // The hospital's own day, not the UTC one: at UTC+14 an encounter opened at 09:00
            // UTC on 30 November is care given on 1 December.
            date_of_service: medcov_domain::calendar::local_date_in(current.opened_at, &hospital.timezone).to_string(),
            currency: hospital.currency.clone(),
            timezone: hospital.timezone.clone(),
            member_numbers: patient.details.member_numbers,
            diagnoses: current.record.diagnoses.clone(),
            services,
        };
        let closed = current.saved(expected, true, OffsetDateTime::now_utc());
        let actor = actor(principal);
        let mut tx = self.db.begin_write().await?;
        if !store::save_encounter(&mut tx, &closed, expected).await? {
            return Err(stale());
        }
        let record = (closed.patient_id, closed.hospital_id);
        store::log_access(&mut tx, &access(&actor, record, AccessAction::EncounterClose)).await?;
        outbox::write(&mut tx, &actor, &completed).await?;
        tx.commit().await?;
        Ok(closed)
    }
}
