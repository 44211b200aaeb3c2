//! The reconciliation of the journal with the records, reports (cash by day, receivables by
//! age, commissions by agent) and statements (a patient's, an insurer's), over the books the
//! caller sees.

use medcov_http::ApiError;
use medcov_security::Scope;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::{BillingService, hospitals_in_scope, insurer_in_scope, tenants_in_scope};
use crate::domain::invoice::Payer;
use crate::domain::ledger::{self, Reconciled};
use crate::domain::reports::{self, Aged, AgentCommissions, CashDay, Statement};
use crate::service::tenants::Kind;
use crate::store;

impl BillingService {
    /// Each account's journal balance beside the same balance derived from invoices, premiums,
    /// payments, refunds and commissions, for the books the caller sees.
    pub async fn reconcile(&self, scope: &Scope) -> Result<Vec<Reconciled>, ApiError> {
        let tenants = tenants_in_scope(scope);
        let journal = store::journal_balances(&self.db, tenants.as_deref()).await?;
        let derived = store::derived_balances(&self.db, tenants.as_deref()).await?;
        Ok(ledger::reconcile(&journal, &derived))
    }

    /// Money received, refunded and paid out per currency, local day and method in the days
    /// `[from, to]`: each movement on the day of the hospital or insurer whose books it is in
    /// (their time zones asked of their services as the caller, `authorization`).
    pub async fn daily_cash(
        &self,
        scope: &Scope,
        (from, to): (Date, Date),
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<Vec<CashDay>, ApiError> {
        if to < from || (to - from).whole_days() > 366 {
            return Err(ApiError::field("to", "must be on or after from, within a year"));
        }
        let tenants = tenants_in_scope(scope);
        // Local days run from UTC-12 to UTC+14: read a day more on each side, keep by local day.
        let start = from.midnight().assume_utc() - Duration::days(1);
        let end = to.next_day().unwrap_or(to).midnight().assume_utc() + Duration::days(1);
        let movements = store::cash_movements(&self.db, tenants.as_deref(), start, end).await?;
        let zones = self.zones_of(&movements, authorization).await?;
        Ok(reports::daily_cash(&movements, &zones, (from, to)))
    }

    /// The time zones of the tenants of `movements`: care payments and refunds are in a
    /// hospital's books, premium payments and payouts in an insurer's.
    async fn zones_of(
        &self,
        movements: &[reports::Movement],
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<std::collections::BTreeMap<Uuid, String>, ApiError> {
        let tenants: Vec<(Uuid, reports::Books)> = movements.iter().map(|m| (m.tenant_id, m.books)).collect();
        self.tenants.zones(tenants, authorization).await
    }

    /// What patients and insurers owe on issued invoices as of a day (each hospital's today by
    /// default), by age counted in the hospital's local days (their time zones asked of the
    /// hospital service as the caller, `authorization`).
    pub async fn aged_receivables(
        &self,
        scope: &Scope,
        as_of: Option<Date>,
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<Vec<Aged>, ApiError> {
        let tenants = tenants_in_scope(scope);
        let owed = store::owed(&self.db, tenants.as_deref()).await?;
        let hospitals = owed.iter().map(|o| (o.hospital_id, Kind::Hospital)).collect();
        let zones = self.tenants.zones(hospitals, authorization).await?;
        Ok(reports::aged_receivables(&owed, &zones, as_of, OffsetDateTime::now_utc()))
    }

    /// Commissions per agent earned on the insurer's local days `[from, to]`, at the caller's
    /// insurer (its time zone asked of insurance as the caller, `authorization`).
    pub async fn commissions_by_agent(
        &self,
        scope: &Scope,
        (from, to): (Date, Date),
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<Vec<AgentCommissions>, ApiError> {
        if to < from {
            return Err(ApiError::field("to", "must be on or after from"));
        }
        // Local days run from UTC-12 to UTC+14: read a day more on each side, keep by local day.
        let start = from.midnight().assume_utc() - Duration::days(1);
        let end = to.next_day().unwrap_or(to).midnight().assume_utc() + Duration::days(1);
        let earned = store::commissions_earned_between(&self.db, insurer_in_scope(scope), start, end).await?;
        let insurers = earned.iter().map(|c| (c.insurer_id, Kind::Insurer)).collect();
        let zones = self.tenants.zones(insurers, authorization).await?;
        Ok(reports::commissions_by_agent(&earned, &zones, (from, to)))
    }

    /// A patient's statement at the hospitals the caller sees: their shares billed, paid and
    /// owed (of their last 200 invoices).
    pub async fn patient_statement(&self, scope: &Scope, patient: Uuid) -> Result<Statement, ApiError> {
        let hospitals = hospitals_in_scope(scope);
        let invoices = store::invoices(&self.db, hospitals.as_deref(), None, Some(patient), None, 200, 0).await?;
        // Billing knows a patient by their invoices: none at the caller's hospitals, no statement
        // (a random id is 404, never a statement of zeros).
        if invoices.is_empty() {
            return Err(ApiError::NotFound("no invoice of this patient at your hospitals".into()));
        }
        Ok(reports::statement(patient, Payer::Patient, invoices))
    }

    /// An insurer's statement: the insurer shares billed to it, paid and owed; for hospital
    /// staff at their hospitals, for the insurer's own staff everywhere, for anyone else "not
    /// found".
    pub async fn insurer_statement(&self, scope: &Scope, insurer: Uuid) -> Result<Statement, ApiError> {
        let hospitals = match scope {
            Scope::Platform => None,
            Scope::Insurer { insurer: own } if *own == insurer => None,
            Scope::Hospitals { hospitals } => Some(hospitals.clone()),
            _ => return Err(ApiError::NotFound("no such insurer".into())),
        };
        let invoices = store::invoices_of_insurer(&self.db, insurer, hospitals.as_deref()).await?;
        if invoices.is_empty() {
            return Err(ApiError::NotFound("no invoice billed to this insurer at the hospitals you see".into()));
        }
        Ok(reports::statement(insurer, Payer::Insurer, invoices))
    }
}
