//! Rows as the tables hold them, and their conversion to the domain's records. A stored word
//! this version does not know is [`StoreError::Corrupt`], naming its table and column.

use medcov_store::{StoreError, decode};
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::adjudication::LineResult;
use crate::domain::claim::{Claim, ClaimLine, HistoryEntry};
use crate::domain::insurer::Insurer;
use crate::domain::ledger::Entry;
use crate::domain::plan::PlanRules;
use crate::domain::policy::{Policy, PolicyMember};
use crate::domain::preauth::{Preauth, PreauthLine};
use crate::domain::versions::PlanVersion;

pub(crate) const INSURER_COLUMNS: &str = "id, code, name, currency, timezone, active, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct InsurerRow {
    id: Uuid,
    code: String,
    name: String,
    currency: String,
    timezone: String,
    active: bool,
    created_at: OffsetDateTime,
}

impl From<InsurerRow> for Insurer {
    fn from(r: InsurerRow) -> Self {
        Insurer {
            id: r.id,
            code: r.code,
            name: r.name,
            currency: r.currency,
            timezone: r.timezone,
            active: r.active,
            created_at: r.created_at,
        }
    }
}

pub(crate) const VERSION_COLUMNS: &str = "id, plan_id, version, effective_from, effective_to, rules, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    id: Uuid,
    plan_id: Uuid,
    version: i32,
    effective_from: Date,
    effective_to: Option<Date>,
    rules: Json<PlanRules>,
    created_at: OffsetDateTime,
}

impl From<VersionRow> for PlanVersion {
    fn from(r: VersionRow) -> Self {
        PlanVersion {
            id: r.id,
            plan_id: r.plan_id,
            version: r.version,
            effective_from: r.effective_from,
            effective_to: r.effective_to,
            rules: r.rules.0,
            created_at: r.created_at,
        }
    }
}

/// A plan without its versions: (id, insurer_id, code, name).
pub(crate) type PlanHead = (Uuid, Uuid, String, String);

pub(crate) const POLICY_COLUMNS: &str = "id, insurer_id, number, plan_id, plan_version_id, holder_id, agent_id, \
     start_date, expiry_date, premium, currency, status, ended_on, renewal_of, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow {
    id: Uuid,
    insurer_id: Uuid,
    number: String,
    plan_id: Uuid,
    plan_version_id: Uuid,
    holder_id: Uuid,
    agent_id: Option<Uuid>,
    start_date: Date,
    expiry_date: Date,
    premium: i64,
    currency: String,
    status: String,
    ended_on: Option<Date>,
    renewal_of: Option<Uuid>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl PolicyRow {
    /// The policy, with its members.
    pub(crate) fn with_members(self, members: Vec<MemberRow>) -> Result<Policy, StoreError> {
        Ok(Policy {
            id: self.id,
            insurer_id: self.insurer_id,
            number: self.number,
            plan_id: self.plan_id,
            plan_version_id: self.plan_version_id,
            holder_id: self.holder_id,
            agent_id: self.agent_id,
            start_date: self.start_date,
            expiry_date: self.expiry_date,
            premium: self.premium,
            currency: self.currency,
            status: decode("policies", "status", &self.status)?,
            ended_on: self.ended_on,
            renewal_of: self.renewal_of,
            version: self.version,
            members: members.into_iter().map(PolicyMember::try_from).collect::<Result<_, _>>()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The members of a policy (holder first, then by number) are read with this.
pub(crate) const MEMBER_SELECT: &str = "SELECT pm.member_id, m.member_number, m.given_name, m.family_name, \
     m.date_of_birth, pm.relationship, pm.enrolled_on, pm.status, pm.status_on \
     FROM policy_members pm JOIN members m ON m.id = pm.member_id";

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    member_id: Uuid,
    member_number: String,
    given_name: String,
    family_name: String,
    date_of_birth: Date,
    relationship: String,
    enrolled_on: Date,
    status: String,
    status_on: Option<Date>,
}

impl TryFrom<MemberRow> for PolicyMember {
    type Error = StoreError;

    fn try_from(r: MemberRow) -> Result<PolicyMember, StoreError> {
        Ok(PolicyMember {
            member_id: r.member_id,
            member_number: r.member_number,
            given_name: r.given_name,
            family_name: r.family_name,
            date_of_birth: r.date_of_birth,
            relationship: decode("policy_members", "relationship", &r.relationship)?,
            enrolled_on: r.enrolled_on,
            status: decode("policy_members", "status", &r.status)?,
            status_on: r.status_on,
        })
    }
}

pub(crate) const PREAUTH_COLUMNS: &str = "id, insurer_id, hospital_id, policy_id, member_id, visit_type, \
     planned_date, status, lines, requested_amount, approved_amount, valid_until, reason, decided_by, decided_at, \
     used_by_claim, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PreauthRow {
    id: Uuid,
    insurer_id: Uuid,
    hospital_id: Uuid,
    policy_id: Uuid,
    member_id: Uuid,
    visit_type: String,
    planned_date: Date,
    status: String,
    lines: Json<Vec<PreauthLine>>,
    requested_amount: i64,
    approved_amount: i64,
    valid_until: Option<Date>,
    reason: Option<String>,
    decided_by: Option<Uuid>,
    decided_at: Option<OffsetDateTime>,
    used_by_claim: Option<Uuid>,
    created_at: OffsetDateTime,
}

impl TryFrom<PreauthRow> for Preauth {
    type Error = StoreError;

    fn try_from(r: PreauthRow) -> Result<Preauth, StoreError> {
        Ok(Preauth {
            id: r.id,
            insurer_id: r.insurer_id,
            hospital_id: r.hospital_id,
            policy_id: r.policy_id,
            member_id: r.member_id,
            visit_type: decode("preauths", "visit_type", &r.visit_type)?,
            planned_date: r.planned_date,
            status: decode("preauths", "status", &r.status)?,
            lines: r.lines.0,
            requested_amount: r.requested_amount,
            approved_amount: r.approved_amount,
            valid_until: r.valid_until,
            reason: r.reason,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            used_by_claim: r.used_by_claim,
            created_at: r.created_at,
        })
    }
}

/// Claims are read with their member's number.
pub(crate) const CLAIM_SELECT: &str = "SELECT c.id, c.insurer_id, c.hospital_id, c.reference, c.member_id, \
     m.member_number, c.policy_id, c.plan_version_id, c.visit_type, c.currency, c.status, c.outcome, c.lines, \
     c.result, c.insurer_total, c.patient_total, c.adjudication_no, c.version, c.submitted_at, c.adjudicated_at \
     FROM claims c JOIN members m ON m.id = c.member_id";

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimRow {
    id: Uuid,
    insurer_id: Uuid,
    hospital_id: Uuid,
    reference: String,
    member_id: Uuid,
    member_number: String,
    policy_id: Option<Uuid>,
    plan_version_id: Option<Uuid>,
    visit_type: String,
    currency: String,
    status: String,
    outcome: Option<String>,
    lines: Json<Vec<ClaimLine>>,
    result: Option<Json<Vec<LineResult>>>,
    insurer_total: i64,
    patient_total: i64,
    adjudication_no: i32,
    version: i64,
    submitted_at: OffsetDateTime,
    adjudicated_at: Option<OffsetDateTime>,
}

impl TryFrom<ClaimRow> for Claim {
    type Error = StoreError;

    fn try_from(r: ClaimRow) -> Result<Claim, StoreError> {
        Ok(Claim {
            id: r.id,
            insurer_id: r.insurer_id,
            hospital_id: r.hospital_id,
            reference: r.reference,
            member_id: r.member_id,
            member_number: r.member_number,
            policy_id: r.policy_id,
            plan_version_id: r.plan_version_id,
            visit_type: decode("claims", "visit_type", &r.visit_type)?,
            currency: r.currency,
            status: decode("claims", "status", &r.status)?,
            outcome: r.outcome.as_deref().map(|o| decode("claims", "outcome", o)).transpose()?,
            lines: r.lines.0,
            result: r.result.map(|j| j.0),
            insurer_total: r.insurer_total,
            patient_total: r.patient_total,
            adjudication_no: r.adjudication_no,
            version: r.version,
            submitted_at: r.submitted_at,
            adjudicated_at: r.adjudicated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct HistoryRow {
    at: OffsetDateTime,
    actor: Uuid,
    action: String,
    detail: Json<serde_json::Value>,
    request_id: Option<String>,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(r: HistoryRow) -> Self {
        HistoryEntry { at: r.at, actor: r.actor, action: r.action, detail: r.detail.0, request_id: r.request_id }
    }
}

/// A ledger entry's amounts: (category, deductible, inpatient, outpatient, count, amount).
pub(crate) type EntryRow = (String, i64, i64, i64, i64, i64);

pub(crate) fn entry((category, deductible, inpatient, outpatient, count, amount): EntryRow) -> Entry {
    Entry { category, deductible, inpatient, outpatient, count, amount }
}

/// A member's other accepted claims: their lines and results.
pub(crate) type AcceptedRow = (Json<Vec<ClaimLine>>, Option<Json<Vec<LineResult>>>);
