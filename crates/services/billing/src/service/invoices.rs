//! Invoices: drafted by hand or from an encounter (with the claim asked of the insurer when
//! the patient is insured), issued, voided, and split by the insurer's adjudication.

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::outbox::{self, Actor};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{BillingService, Handling, hospitals_in_scope, in_hospital, missing};
use crate::domain::invoice::{self, Adjudicated, Draft, Invoice, Status};
use crate::domain::ledger::About;
use crate::domain::prices::Service;
use crate::events::{InvoiceIssued, InvoiceVoided};
use crate::service::tenants::Kind;
use crate::store;

pub use crate::domain::invoice::ManualInvoice;

/// A completed encounter, as billing drafts its invoice.
#[derive(Debug, Clone)]
pub struct Encounter {
    pub encounter_id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    /// The hospital's currency: only prices in it price the invoice.
    pub currency: Option<String>,
    pub date_of_service: Date,
    pub visit_type: Option<String>,
    /// The primary diagnosis (or the first), for the claim.
    pub diagnosis: Option<String>,
    pub member_number: Option<String>,
    pub services: Vec<Service>,
}

/// A claim's adjudication, as billing splits the invoice it is for.
#[derive(Debug, Clone)]
pub struct Adjudication {
    pub claim_id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    /// The claim's reference: the invoice number.
    pub reference: String,
    pub lines: Vec<Adjudicated>,
}

impl BillingService {
    /// An invoice the caller may see.
    pub async fn invoice(&self, scope: &Scope, id: Uuid) -> Result<Invoice, ApiError> {
        let found = store::invoice(&self.db, id).await?;
        in_hospital(scope, |i: &Invoice| i.hospital_id, found, "invoice")
    }

    /// Invoices at the hospitals the caller sees, newest first.
    pub async fn invoices(
        &self,
        scope: &Scope,
        status: Option<Status>,
        patient: Option<Uuid>,
        encounter: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Invoice>, ApiError> {
        let hospitals = hospitals_in_scope(scope);
        Ok(store::invoices(&self.db, hospitals.as_deref(), status, patient, encounter, limit, offset).await?)
    }

    /// Drafts an invoice by hand, priced from the price list valid on the date of service.
    /// With a member number and a diagnosis, the claim is asked of the insurer with the draft.
    /// The hospital's profile (`authorization`: the caller's, to ask for it) gives its
    /// currency, the only one its invoices are in, and its day.
    pub async fn draft_invoice(
        &self,
        scope: &Scope,
        asked: ManualInvoice,
        actor: &Actor,
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<Invoice, ApiError> {
        if !scope.covers_hospital(asked.hospital_id) {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        let profile = self.tenants.profile(asked.hospital_id, Kind::Hospital, authorization).await?;
        let today = match &profile {
            Some(p) => medcov_domain::calendar::today_in(&p.timezone),
            None => OffsetDateTime::now_utc().date(),
        };
        let mut errors = asked.problems(today);
        let services: Vec<Service> = asked
            .lines
            .iter()
            .map(|(code, quantity)| Service {
                code: code.trim().to_uppercase(),
                quantity: *quantity,
                category: None,
                description: None,
                preauth_id: None,
            })
            .collect();
        let priced_in = profile.as_ref().map(|p| p.currency.as_str());
        let (lines, currency) =
            self.price_lines(asked.hospital_id, asked.date_of_service, &services, priced_in).await?;
        errors.extend(invoice::unpriced(&lines, asked.date_of_service));
        Rejection::check(errors)?;
        let draft = Invoice::draft(
            Draft {
                id: Uuid::now_v7(),
                hospital_id: asked.hospital_id,
                patient_id: asked.patient_id,
                encounter_id: None,
                member_number: asked.member_number,
                currency: currency.unwrap_or_default(),
                date_of_service: asked.date_of_service,
                lines,
            },
            OffsetDateTime::now_utc(),
        );
        let claim = asked.diagnosis.as_deref().and_then(|diagnosis| {
            draft.claim_request(diagnosis.trim(), asked.visit_type.as_deref().unwrap_or("normal"))
        });
        self.create_invoice(&draft, claim, actor, None).await
    }

    /// Drafts the invoice of a completed encounter (once per encounter, and once per event),
    /// priced on the date of service; an insured patient's claim is asked with it, and the
    /// invoice is issued once the claim splits it. Without a claim (no member number: self-pay)
    /// it is issued at once, all on the patient, when every line is priced; an unpriced line
    /// keeps it a draft until a clerk issues it after pricing.
    pub async fn draft_from_encounter(
        &self,
        encounter: Encounter,
        actor: &Actor,
        handling: Handling,
    ) -> Result<Invoice, ApiError> {
        let priced_in = encounter.currency.as_deref();
        let (lines, currency) =
            self.price_lines(encounter.hospital_id, encounter.date_of_service, &encounter.services, priced_in).await?;
        let draft = Invoice::draft(
            Draft {
                id: Uuid::now_v7(),
                hospital_id: encounter.hospital_id,
                patient_id: encounter.patient_id,
                encounter_id: Some(encounter.encounter_id),
                member_number: encounter.member_number,
                // Unpriced lines keep the invoice a draft; its currency comes with the first price.
                currency: currency.unwrap_or_default(),
                date_of_service: encounter.date_of_service,
                lines,
            },
            OffsetDateTime::now_utc(),
        );
        let claim = draft.claim_request(
            encounter.diagnosis.as_deref().unwrap_or_default(),
            encounter.visit_type.as_deref().unwrap_or("normal"),
        );
        let self_pay = draft.member_number.is_none();
        let invoice = self.create_invoice(&draft, claim, actor, Some(handling)).await?;
        if !self_pay {
            return Ok(invoice);
        }
        self.issue_drafted(&invoice, actor).await?;
        store::invoice(&self.db, invoice.id).await?.ok_or_else(|| missing("the invoice"))
    }

    /// Writes a draft with the claim to ask, if any. One invoice per encounter: a second for
    /// the same encounter is the first.
    async fn create_invoice(
        &self,
        draft: &Invoice,
        claim: Option<invoice::ClaimRequest>,
        actor: &Actor,
        handling: Option<Handling>,
    ) -> Result<Invoice, ApiError> {
        let created = self.insert_draft(draft, claim, actor, handling).await?;
        let found = match (created, draft.encounter_id) {
            (false, Some(encounter)) => store::invoice_of_encounter(&self.db, encounter).await?,
            _ => store::invoice(&self.db, draft.id).await?,
        };
        found.ok_or_else(|| ApiError::NotFound("no such invoice".into()))
    }

    /// `true` when the draft was written, `false` when the event was handled already or the
    /// encounter has its invoice.
    async fn insert_draft(
        &self,
        draft: &Invoice,
        claim: Option<invoice::ClaimRequest>,
        actor: &Actor,
        handling: Option<Handling>,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.begin_write().await?;
        if !Self::first_time(&mut tx, handling).await? {
            return Ok(false);
        }
        if let Some(encounter) = draft.encounter_id
            && store::invoice_id_of_encounter(&mut tx, encounter).await?.is_some()
        {
            tx.commit().await?;
            return Ok(false);
        }
        match store::insert_invoice(&mut tx, draft, actor.user_id).await {
            // Drafted meanwhile by a concurrent delivery of the same encounter.
            Err(e) if e.is_duplicate() && draft.encounter_id.is_some() => return Ok(false),
            other => other?,
        }
        // An insured patient's claim is asked of the insurer with the draft (the claim's
        // reference is the invoice number).
        if let Some(claim) = &claim {
            outbox::write(&mut tx, actor, claim).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Issues a draft the caller may see: its receivables enter the journal and
    /// `invoice_issued` is emitted. One with an unpriced line cannot be issued (409).
    pub async fn issue(&self, scope: &Scope, id: Uuid, actor: &Actor) -> Result<Invoice, ApiError> {
        let current = self.invoice(scope, id).await?;
        self.issue_current(&current, actor).await
    }

    async fn issue_current(&self, current: &Invoice, actor: &Actor) -> Result<Invoice, ApiError> {
        let entry = current.issue()?;
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        if !store::mark_issued(&mut tx, current.id, current.version, now).await? {
            return Err(ApiError::Conflict("the invoice changed meanwhile; read it again".into()));
        }
        let about = About {
            tenant: current.hospital_id,
            currency: &current.currency,
            invoice: Some(current.id),
            payment: None,
            party: Some(current.patient_id),
        };
        store::append_entry(&mut tx, &about, &entry, now).await?;
        outbox::write(&mut tx, actor, &InvoiceIssued::of(current)).await?;
        tx.commit().await?;
        store::invoice(&self.db, current.id).await?.ok_or_else(|| missing("the invoice"))
    }

    /// Issues an invoice drafted from an encounter once its split is known (nothing to do
    /// when it was issued meanwhile, by a clerk or an earlier delivery).
    async fn issue_drafted(&self, invoice: &Invoice, actor: &Actor) -> Result<(), ApiError> {
        if invoice.status != Status::Draft || invoice.encounter_id.is_none() || invoice.lines.iter().any(|l| l.unpriced)
        {
            return Ok(());
        }
        match self.issue_current(invoice, actor).await {
            Ok(_) | Err(ApiError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Voids an invoice the caller may see, if it has no payment; an issued one's receivables
    /// are reversed, and `invoice_voided` withdraws its claim.
    pub async fn void(&self, scope: &Scope, id: Uuid, reason: &str, actor: &Actor) -> Result<Invoice, ApiError> {
        let current = self.invoice(scope, id).await?;
        let entry = current.void()?;
        let mut tx = self.db.begin_write().await?;
        if !store::mark_void(&mut tx, current.id, current.version, reason).await? {
            return Err(ApiError::Conflict("the invoice changed meanwhile; read it again".into()));
        }
        if let Some(entry) = entry {
            let about = About {
                tenant: current.hospital_id,
                currency: &current.currency,
                invoice: Some(current.id),
                payment: None,
                party: Some(current.patient_id),
            };
            store::append_entry(&mut tx, &about, &entry, OffsetDateTime::now_utc()).await?;
        }
        let voided = InvoiceVoided {
            invoice_id: current.id,
            number: current.number.clone(),
            hospital_id: current.hospital_id,
            claim_id: current.claim_id,
            reason: reason.to_owned(),
        };
        outbox::write(&mut tx, actor, &voided).await?;
        tx.commit().await?;
        store::invoice(&self.db, current.id).await?.ok_or_else(|| missing("the invoice"))
    }

    /// The insurer adjudicated a claim for one of our invoices (its reference is the invoice
    /// number): the lines are split (once per event), moving receivables if it was issued,
    /// and an invoice drafted from an encounter is issued.
    pub async fn claim_adjudicated(
        &self,
        adjudication: Adjudication,
        actor: &Actor,
        handling: Handling,
    ) -> Result<(), ApiError> {
        let Some(current) =
            store::invoice_by_number(&self.db, adjudication.hospital_id, &adjudication.reference).await?
        else {
            // A claim the hospital sent for something billing did not invoice.
            return Ok(());
        };
        let split = self.split_by_claim(&current, &adjudication, handling).await?;
        self.issue_drafted(&split, actor).await
    }

    async fn split_by_claim(
        &self,
        current: &Invoice,
        adjudication: &Adjudication,
        handling: Handling,
    ) -> Result<Invoice, ApiError> {
        let Some(resplit) = current.resplit(&adjudication.lines) else {
            return Ok(current.clone());
        };
        let mut tx = self.db.begin_write().await?;
        if Self::first_time(&mut tx, Some(handling)).await? {
            let split = store::Split {
                lines: &resplit.lines,
                insurer_share: resplit.insurer_share,
                ex_gratia: resplit.ex_gratia,
                patient_share: resplit.patient_share,
                claim_id: adjudication.claim_id,
                insurer_id: adjudication.insurer_id,
            };
            if !store::set_split(&mut tx, current.id, current.version, &split).await? {
                return Err(ApiError::Conflict("the invoice changed meanwhile".into()));
            }
            if let Some(entry) = &resplit.entry {
                let about = About {
                    tenant: current.hospital_id,
                    currency: &current.currency,
                    invoice: Some(current.id),
                    payment: None,
                    party: Some(current.patient_id),
                };
                store::append_entry(&mut tx, &about, entry, OffsetDateTime::now_utc()).await?;
            }
            tx.commit().await?;
        }
        store::invoice(&self.db, current.id).await?.ok_or_else(|| missing("the invoice"))
    }

    /// The insurer could not take the claim: the invoice is the patient's, and goes out.
    pub async fn claim_refused(&self, hospital: Uuid, reference: &str, actor: &Actor) -> Result<(), ApiError> {
        match store::invoice_by_number(&self.db, hospital, reference).await? {
            Some(invoice) => self.issue_drafted(&invoice, actor).await,
            None => Ok(()),
        }
    }
}
