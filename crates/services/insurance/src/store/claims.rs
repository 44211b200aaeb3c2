//! Pre-authorisations, claims, adjudication and the accumulator ledger.
//!
//! Adjudication runs in one transaction that first locks the member's policy row, then reads
//! the accumulators, runs the engine and appends the ledger entries: two claims of one family
//! are adjudicated one after the other, so a ceiling is never overshot. A reversal appends the
//! negation of an adjudication's entries; nothing in the ledger is changed or deleted.

use std::collections::{BTreeMap, BTreeSet};

use medcov_store::{WritePool, on_pool, write_outbox};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, Event, InsuranceStore, StoreError};
use crate::domain::adjudication::{
    self, Accumulators, Adjudication, Approval, CategoryUse, LineResult, Member, Outcome, Override, PerSetting, Reason,
};
use crate::domain::plan::{PlanRules, Setting, VisitType};
use crate::domain::policy::Cover;
use crate::domain::preauth::PreauthStatus;

/// One line of a claim as the hospital sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimLine {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    #[schema(example = 1)]
    pub quantity: u32,
    /// Minor units of the claim's currency.
    #[schema(example = 250000)]
    pub unit_price: i64,
    /// ICD-10.
    #[schema(example = "J06.9")]
    pub diagnosis: String,
    #[schema(value_type = String, format = Date, example = "2026-06-01")]
    pub date_of_service: Date,
    /// The approved pre-authorisation that covers this line, where one was needed.
    #[serde(default)]
    pub preauth_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Submitted,
    Adjudicated,
    /// Waiting for a claims officer.
    InReview,
    Paid,
    /// Taken back by the hospital (its invoice was voided); its adjudication is reversed.
    Withdrawn,
}

impl ClaimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Submitted => "submitted",
            ClaimStatus::Adjudicated => "adjudicated",
            ClaimStatus::InReview => "in_review",
            ClaimStatus::Paid => "paid",
            ClaimStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<ClaimStatus> {
        [
            ClaimStatus::Submitted,
            ClaimStatus::Adjudicated,
            ClaimStatus::InReview,
            ClaimStatus::Paid,
            ClaimStatus::Withdrawn,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

fn outcome_parse(s: &str) -> Option<Outcome> {
    [Outcome::Approved, Outcome::PartiallyApproved, Outcome::Rejected].into_iter().find(|o| o.as_str() == s)
}

fn visit_text(v: VisitType) -> &'static str {
    match v {
        VisitType::Normal => "normal",
        VisitType::Emergency => "emergency",
        VisitType::Referral => "referral",
    }
}

fn visit_parse(s: &str) -> VisitType {
    match s {
        "emergency" => VisitType::Emergency,
        "referral" => VisitType::Referral,
        _ => VisitType::Normal,
    }
}

/// A claim and, once adjudicated, where each cent of each line landed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    /// The hospital's own reference: submitting it again returns this claim.
    pub reference: String,
    pub member_id: Uuid,
    pub member_number: String,
    pub policy_id: Option<Uuid>,
    /// The plan version it was adjudicated under.
    pub plan_version_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub currency: String,
    pub status: ClaimStatus,
    pub outcome: Option<Outcome>,
    pub lines: Vec<ClaimLine>,
    /// One result per line, in order.
    pub result: Option<Vec<LineResult>>,
    pub insurer_total: i64,
    pub patient_total: i64,
    /// How many times it has been adjudicated (a reversal or review allows another).
    pub adjudication_no: i32,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub submitted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub adjudicated_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
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

impl From<ClaimRow> for Claim {
    fn from(r: ClaimRow) -> Self {
        Claim {
            id: r.id,
            insurer_id: r.insurer_id,
            hospital_id: r.hospital_id,
            reference: r.reference,
            member_id: r.member_id,
            member_number: r.member_number,
            policy_id: r.policy_id,
            plan_version_id: r.plan_version_id,
            visit_type: visit_parse(&r.visit_type),
            currency: r.currency,
            status: ClaimStatus::parse(&r.status).unwrap_or(ClaimStatus::Submitted),
            outcome: r.outcome.as_deref().and_then(outcome_parse),
            lines: r.lines.0,
            result: r.result.map(|j| j.0),
            insurer_total: r.insurer_total,
            patient_total: r.patient_total,
            adjudication_no: r.adjudication_no,
            version: r.version,
            submitted_at: r.submitted_at,
            adjudicated_at: r.adjudicated_at,
        }
    }
}

const CLAIM_SELECT: &str = "SELECT c.id, c.insurer_id, c.hospital_id, c.reference, c.member_id, \
     m.member_number, c.policy_id, c.plan_version_id, c.visit_type, c.currency, c.status, c.outcome, c.lines, c.result, \
     c.insurer_total, c.patient_total, c.adjudication_no, c.version, c.submitted_at, c.adjudicated_at \
     FROM claims c JOIN members m ON m.id = c.member_id";

/// A claim to submit.
pub struct NewClaim {
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub reference: String,
    /// A digest of the request, to tell a repeat from a different claim under one reference.
    pub request_hash: String,
    pub member_id: Uuid,
    pub policy_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
}

/// A requested service of a pre-authorisation and what was decided for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreauthLine {
    pub service_code: String,
    pub category: String,
    pub quantity: u32,
    /// The hospital's estimate for the line, in minor units.
    pub estimated_amount: i64,
    pub diagnosis: Option<String>,
    /// Why the rules do not cover it, if they do not.
    pub reason: Option<Reason>,
    pub approved_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Preauth {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub hospital_id: Uuid,
    pub policy_id: Uuid,
    pub member_id: Uuid,
    pub visit_type: VisitType,
    #[schema(value_type = String, format = Date)]
    pub planned_date: Date,
    pub status: PreauthStatus,
    pub lines: Vec<PreauthLine>,
    pub requested_amount: i64,
    pub approved_amount: i64,
    /// The last day a claim may use it.
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_until: Option<Date>,
    pub reason: Option<String>,
    pub decided_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
    /// The claim that used it; until then its approved amount is reserved against ceilings.
    pub used_by_claim: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct PreauthRow {
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

impl From<PreauthRow> for Preauth {
    fn from(r: PreauthRow) -> Self {
        Preauth {
            id: r.id,
            insurer_id: r.insurer_id,
            hospital_id: r.hospital_id,
            policy_id: r.policy_id,
            member_id: r.member_id,
            visit_type: visit_parse(&r.visit_type),
            planned_date: r.planned_date,
            status: PreauthStatus::parse(&r.status).unwrap_or(PreauthStatus::Pending),
            lines: r.lines.0,
            requested_amount: r.requested_amount,
            approved_amount: r.approved_amount,
            valid_until: r.valid_until,
            reason: r.reason,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            used_by_claim: r.used_by_claim,
            created_at: r.created_at,
        }
    }
}

const PREAUTH_COLUMNS: &str = "id, insurer_id, hospital_id, policy_id, member_id, visit_type, planned_date, status, lines, \
     requested_amount, approved_amount, valid_until, reason, decided_by, decided_at, used_by_claim, created_at";

/// A decision on a pre-authorisation.
pub struct Decision {
    pub status: PreauthStatus,
    /// Per line, in order.
    pub approved: Vec<i64>,
    pub valid_until: Option<Date>,
    pub reason: Option<String>,
    /// What it reserves against the ceilings, per setting.
    pub reserved: PerSetting,
}

/// The ledger rows of an accumulator change: category '' carries deductible and ceilings.
fn ledger_rows(usage: &Accumulators) -> Vec<(String, i64, i64, i64, i64, i64)> {
    let mut rows = vec![(
        String::new(),
        usage.member_deductible,
        usage.member_ceiling.inpatient,
        usage.member_ceiling.outpatient,
        0,
        0,
    )];
    for (category, used) in &usage.categories {
        rows.push((category.clone(), 0, 0, 0, used.count, used.amount));
    }
    rows
}

/// Reads what a member and their policy have used (plus live reservations of approvals not
/// cited by `claim`), and the service days already claimed for the member.
macro_rules! read_usage {
    ($tx:expr, $policy:expr, $member:expr, $claim:expr, $today:expr, $with_paid_lines:expr) => {
        async {
            let mut used = Accumulators::default();
            let (ded, inp, outp): (i64, i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(deductible), 0) AS BIGINT), CAST(COALESCE(SUM(inpatient), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(outpatient), 0) AS BIGINT) FROM accumulator_entries WHERE policy_id = $1 AND member_id = $2",
            )
            .bind($policy)
            .bind($member)
            .fetch_one(&mut *$tx)
            .await?;
            used.member_deductible = ded;
            used.member_ceiling = PerSetting { inpatient: inp, outpatient: outp };
            let (fam, pinp, poutp): (i64, i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(deductible), 0) AS BIGINT), CAST(COALESCE(SUM(inpatient), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(outpatient), 0) AS BIGINT) FROM accumulator_entries WHERE policy_id = $1",
            )
            .bind($policy)
            .fetch_one(&mut *$tx)
            .await?;
            used.family_deductible = fam;
            used.policy_ceiling = PerSetting { inpatient: pinp, outpatient: poutp };
            let categories: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT category, CAST(COALESCE(SUM(count), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) \
                 FROM accumulator_entries WHERE policy_id = $1 AND member_id = $2 AND category <> '' GROUP BY category",
            )
            .bind($policy)
            .bind($member)
            .fetch_all(&mut *$tx)
            .await?;
            for (category, count, amount) in categories {
                used.categories.insert(category, CategoryUse { count, amount });
            }
            // Approvals not yet used reserve their amount against the ceilings.
            let reserved: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                "SELECT member_id, reserved_inpatient, reserved_outpatient FROM preauths WHERE policy_id = $1 \
                 AND status IN ('approved', 'partially_approved') AND used_by_claim IS NULL AND valid_until >= $2",
            )
            .bind($policy)
            .bind($today)
            .fetch_all(&mut *$tx)
            .await?;
            for (member, inpatient, outpatient) in reserved {
                if member == $member {
                    used.member_ceiling.inpatient += inpatient;
                    used.member_ceiling.outpatient += outpatient;
                }
                used.policy_ceiling.inpatient += inpatient;
                used.policy_ceiling.outpatient += outpatient;
            }
            let mut paid_lines = BTreeSet::new();
            if $with_paid_lines {
                let others: Vec<(Json<Vec<ClaimLine>>, Option<Json<Vec<LineResult>>>)> = sqlx::query_as(
                    "SELECT lines, result FROM claims WHERE member_id = $1 AND status IN ('adjudicated', 'paid') \
                     AND ($2 IS NULL OR id <> $2)",
                )
                .bind($member)
                .bind($claim)
                .fetch_all(&mut *$tx)
                .await?;
                for (lines, result) in others {
                    let results = result.map(|r| r.0).unwrap_or_default();
                    for (i, line) in lines.0.iter().enumerate() {
                        // A line counts once it was accepted; a rejected one may be sent again.
                        if results.get(i).is_some_and(|r| r.rejection.is_none() || r.insurer_pays > 0) {
                            paid_lines.insert((line.service_code.to_ascii_uppercase(), line.date_of_service));
                        }
                    }
                }
            }
            Ok::<(Accumulators, BTreeSet<(String, Date)>), sqlx::Error>((used, paid_lines))
        }
        .await
    };
}

/// Appends ledger rows for an adjudication (or, with `reversal`, their negation).
macro_rules! write_ledger {
    ($tx:expr, $policy:expr, $member:expr, $claim:expr, $number:expr, $reversal:expr, $rows:expr, $now:expr) => {
        async {
            for (category, deductible, inpatient, outpatient, count, amount) in $rows {
                sqlx::query(
                    "INSERT INTO accumulator_entries (id, policy_id, member_id, claim_id, adjudication_no, reversal, category, \
                     deductible, inpatient, outpatient, count, amount, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(Uuid::now_v7())
                .bind($policy)
                .bind($member)
                .bind($claim)
                .bind($number)
                .bind($reversal)
                .bind(category)
                .bind(deductible)
                .bind(inpatient)
                .bind(outpatient)
                .bind(count)
                .bind(amount)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await
    };
}

macro_rules! claim_history {
    ($tx:expr, $claim:expr, $actor:expr, $action:expr, $detail:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO claim_history (id, claim_id, at, actor, action, detail, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind($claim)
        .bind($now)
        .bind($actor.user_id)
        .bind($action)
        .bind(Json($detail))
        .bind(&$actor.request_id)
        .execute(&mut *$tx)
        .await
    };
}

/// Adjudicates the claim `$id` inside the transaction, with `$overrides`; returns the members
/// whose cached answers are now stale.
macro_rules! adjudicate_in {
    ($tx:expr, $id:expr, $overrides:expr, $actor:expr, $now:expr) => {
        async {
            let sql = format!("{CLAIM_SELECT} WHERE c.id = $1");
            let row: Option<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($id).fetch_optional(&mut *$tx).await?;
            let claim = Claim::from(row.ok_or(StoreError::NotFound("no such claim"))?);
            if !matches!(claim.status, ClaimStatus::Submitted | ClaimStatus::InReview) {
                return Err(StoreError::Conflict(format!("a claim that is {} cannot be adjudicated", claim.status.as_str())));
            }
            let engine_claim = adjudication::Claim {
                hospital_id: claim.hospital_id,
                visit_type: claim.visit_type,
                lines: Vec::new(),
            };
            let mut touched: Vec<Uuid> = Vec::new();
            let (result, version_id) = match claim.policy_id {
                None => {
                    let lines = claim.lines.iter().map(|l| engine_line(l, None)).collect();
                    let engine_claim = adjudication::Claim { lines, ..engine_claim };
                    (adjudication::reject_all(&engine_claim, Reason::NoActivePolicy), None)
                }
                Some(policy_id) => {
                    // The lock: claims of one policy are adjudicated one at a time.
                    sqlx::query("UPDATE policies SET version = version WHERE id = $1").bind(policy_id).execute(&mut *$tx).await?;
                    let (status, start, expiry, ended_on, version_id): (String, Date, Date, Option<Date>, Uuid) = sqlx::query_as(
                        "SELECT status, start_date, expiry_date, ended_on, plan_version_id FROM policies WHERE id = $1",
                    )
                    .bind(policy_id)
                    .fetch_one(&mut *$tx)
                    .await?;
                    let rules: Json<PlanRules> = sqlx::query_scalar("SELECT rules FROM plan_versions WHERE id = $1")
                        .bind(version_id)
                        .fetch_one(&mut *$tx)
                        .await?;
                    let (enrolled_on, member_status, status_on): (Date, String, Option<Date>) = sqlx::query_as(
                        "SELECT enrolled_on, status, status_on FROM policy_members WHERE policy_id = $1 AND member_id = $2",
                    )
                    .bind(policy_id)
                    .bind(claim.member_id)
                    .fetch_one(&mut *$tx)
                    .await?;
                    touched = sqlx::query_scalar("SELECT member_id FROM policy_members WHERE policy_id = $1")
                        .bind(policy_id)
                        .fetch_all(&mut *$tx)
                        .await?;
                    let cover = Cover {
                        policy_status: crate::domain::policy::PolicyStatus::parse(&status)
                            .unwrap_or(crate::domain::policy::PolicyStatus::Pending),
                        policy_start: start,
                        policy_expiry: expiry,
                        policy_ended_on: ended_on,
                        enrolled_on,
                        member_status: crate::domain::policy::MemberStatus::parse(&member_status)
                            .unwrap_or(crate::domain::policy::MemberStatus::Inactive),
                        member_status_on: status_on,
                    };
                    // The approvals the lines cite, if they are this member's and granted.
                    let mut approvals: BTreeMap<Uuid, PreauthRow> = BTreeMap::new();
                    for preauth_id in claim.lines.iter().filter_map(|l| l.preauth_id) {
                        if approvals.contains_key(&preauth_id) {
                            continue;
                        }
                        let sql = format!("SELECT {PREAUTH_COLUMNS} FROM preauths WHERE id = $1");
                        let row: Option<PreauthRow> =
                            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(preauth_id).fetch_optional(&mut *$tx).await?;
                        if let Some(row) = row.filter(|r| {
                            r.member_id == claim.member_id
                                && PreauthStatus::parse(&r.status).is_some_and(PreauthStatus::grants)
                                && r.used_by_claim.is_none_or(|c| c == claim.id)
                        }) {
                            approvals.insert(preauth_id, row);
                        }
                    }
                    // Used from now on: their reservation gives way to the claim's own amounts.
                    for preauth_id in approvals.keys() {
                        sqlx::query("UPDATE preauths SET used_by_claim = $1 WHERE id = $2")
                            .bind(claim.id)
                            .bind(preauth_id)
                            .execute(&mut *$tx)
                            .await?;
                    }
                    let (used, paid_lines) =
                        read_usage!($tx, policy_id, claim.member_id, Some(claim.id), $now.date(), true)?;
                    let lines = claim
                        .lines
                        .iter()
                        .map(|l| {
                            let approval = l.preauth_id.and_then(|p| approvals.get(&p)).and_then(|row| {
                                row.lines
                                    .0
                                    .iter()
                                    .find(|pl| pl.service_code.eq_ignore_ascii_case(&l.service_code))
                                    .map(|pl| Approval {
                                        service_code: pl.service_code.clone(),
                                        approved_amount: pl.approved_amount,
                                        valid_until: row.valid_until.unwrap_or(row.planned_date),
                                    })
                            });
                            engine_line(l, approval)
                        })
                        .collect();
                    let engine_claim = adjudication::Claim { lines, ..engine_claim };
                    let member = Member { cover: &cover, used: &used, paid_lines: &paid_lines };
                    let mut result = adjudication::adjudicate(&rules.0, &member, &engine_claim);
                    if let Err((i, why)) = adjudication::apply_overrides(&rules.0, &engine_claim, &mut result, $overrides) {
                        return Err(StoreError::invalid(format!("overrides[{i}]"), why));
                    }
                    (result, Some(version_id))
                }
            };
            let number = claim.adjudication_no + 1;
            if let Some(policy_id) = claim.policy_id {
                write_ledger!($tx, policy_id, claim.member_id, claim.id, number, false, ledger_rows(&result.usage), $now)?;
            }
            let outcome = result.outcome();
            sqlx::query(
                "UPDATE claims SET status = $1, outcome = $2, result = $3, insurer_total = $4, patient_total = $5, \
                 adjudication_no = $6, plan_version_id = $7, version = version + 1, adjudicated_at = $8 WHERE id = $9",
            )
            .bind("adjudicated")
            .bind(outcome.as_str())
            .bind(Json(&result.lines))
            .bind(result.insurer_total())
            .bind(result.patient_total())
            .bind(number)
            .bind(version_id)
            .bind($now)
            .bind(claim.id)
            .execute(&mut *$tx)
            .await?;
            let action = if $overrides.is_empty() { "adjudicated" } else { "adjudicated_with_overrides" };
            claim_history!($tx, claim.id, $actor, action, serde_json::json!({
                "adjudication_no": number, "outcome": outcome, "insurer_total": result.insurer_total(),
                "patient_total": result.patient_total(), "overrides": $overrides,
            }), $now)?;
            let event = Event {
                event_type: "insurance.claim_adjudicated.v1",
                aggregate_type: "claim",
                aggregate_id: claim.id,
                tenant_id: claim.insurer_id,
                payload: claim_payload(&claim, &result, outcome, number),
            };
            write_outbox!($tx, $actor, event)?;
            Ok::<Vec<Uuid>, StoreError>(touched)
        }
        .await
    };
}

fn engine_line(line: &ClaimLine, approval: Option<Approval>) -> adjudication::Line {
    adjudication::Line {
        service_code: line.service_code.clone(),
        category: line.category.clone(),
        quantity: line.quantity,
        unit_price: line.unit_price,
        diagnosis: line.diagnosis.clone(),
        date_of_service: line.date_of_service,
        approval,
    }
}

/// What `claim_adjudicated` tells billing: per line, the split and the reason.
fn claim_payload(claim: &Claim, result: &Adjudication, outcome: Outcome, number: i32) -> serde_json::Value {
    serde_json::json!({
        "claim_id": claim.id,
        "insurer_id": claim.insurer_id,
        "hospital_id": claim.hospital_id,
        "reference": claim.reference,
        "member_id": claim.member_id,
        "member_number": claim.member_number,
        "policy_id": claim.policy_id,
        "adjudication_no": number,
        "outcome": outcome,
        "currency": claim.currency,
        "insurer_total": result.insurer_total(),
        "patient_total": result.patient_total(),
        "lines": claim.lines.iter().zip(&result.lines).map(|(line, r)| serde_json::json!({
            "service_code": line.service_code,
            "category": line.category,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "date_of_service": line.date_of_service.to_string(),
            "allowed": r.allowed,
            "insurer_pays": r.insurer_pays,
            "patient_pays": r.patient_pays,
            "rejection": r.rejection,
        })).collect::<Vec<_>>(),
    })
}

impl InsuranceStore {
    /// Submits and adjudicates a claim in one transaction. A repeat of a reference with the
    /// same request returns the first claim (`false`); with a different request it is refused.
    pub async fn submit_claim(&self, new: &NewClaim, actor: &Actor) -> Result<(Claim, bool), StoreError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let outcome: Result<Result<Vec<Uuid>, Uuid>, StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let existing: Option<(Uuid, String)> =
                sqlx::query_as("SELECT id, request_hash FROM claims WHERE hospital_id = $1 AND reference = $2")
                    .bind(new.hospital_id)
                    .bind(&new.reference)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((existing, hash)) = existing {
                return if hash == new.request_hash {
                    Ok(Err(existing))
                } else {
                    Err(StoreError::invalid("reference", "was already used for a different claim from this hospital"))
                };
            }
            sqlx::query(
                "INSERT INTO claims (id, insurer_id, hospital_id, reference, request_hash, policy_id, member_id, plan_version_id, \
                 visit_type, currency, status, outcome, lines, result, adjudication_no, insurer_total, patient_total, version, \
                 submitted_by, submitted_at, adjudicated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, 'submitted', NULL, $10, NULL, 0, 0, 0, 1, $11, $12, NULL)",
            )
            .bind(id)
            .bind(new.insurer_id)
            .bind(new.hospital_id)
            .bind(&new.reference)
            .bind(&new.request_hash)
            .bind(new.policy_id)
            .bind(new.member_id)
            .bind(visit_text(new.visit_type))
            .bind(&new.currency)
            .bind(Json(&new.lines))
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            claim_history!(tx, id, actor, "submitted", serde_json::json!({"reference": new.reference}), now)?;
            let touched = adjudicate_in!(tx, id, &[] as &[Override], actor, now)?;
            tx.commit().await?;
            Ok(Ok(touched))
        }
        .await
        });
        let outcome = match outcome {
            // Two submissions of one reference at once: the loser sees the winner's claim.
            Err(StoreError::Sqlx(e)) if super::unique_violation(&e) => {
                let existing: Option<(Uuid, String)> = on_pool!(&self.db, |pool| {
                    sqlx::query_as("SELECT id, request_hash FROM claims WHERE hospital_id = $1 AND reference = $2")
                        .bind(new.hospital_id)
                        .bind(&new.reference)
                        .fetch_optional(pool)
                        .await
                })?;
                match existing {
                    Some((id, hash)) if hash == new.request_hash => Err(id),
                    Some(_) => {
                        return Err(StoreError::invalid(
                            "reference",
                            "was already used for a different claim from this hospital",
                        ));
                    }
                    None => return Err(StoreError::Sqlx(e)),
                }
            }
            other => other?,
        };
        match outcome {
            Ok(touched) => {
                self.invalidate_members(&touched).await;
                Ok((self.claim(id).await?.ok_or(StoreError::NotFound("no such claim"))?, true))
            }
            Err(existing) => Ok((self.claim(existing).await?.ok_or(StoreError::NotFound("no such claim"))?, false)),
        }
    }

    /// A claims officer adjudicates a claim in review (or submitted), with overrides.
    pub async fn adjudicate(&self, id: Uuid, overrides: &[Override], actor: &Actor) -> Result<Claim, StoreError> {
        let now = OffsetDateTime::now_utc();
        let touched: Result<Vec<Uuid>, StoreError> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            let touched = adjudicate_in!(tx, id, overrides, actor, now)?;
            tx.commit().await?;
            Ok(touched)
        }
        .await);
        self.invalidate_members(&touched?).await;
        self.claim(id).await?.ok_or(StoreError::NotFound("no such claim"))
    }

    /// Undoes an adjudication: appends the negation of its ledger entries, releases the
    /// approvals it used, and leaves the claim `submitted` (`reverse`) or `in_review` (review).
    pub async fn unadjudicate(
        &self,
        claim: &Claim,
        to: ClaimStatus,
        reason: &str,
        actor: &Actor,
    ) -> Result<Claim, StoreError> {
        let now = OffsetDateTime::now_utc();
        let touched: Result<Vec<Uuid>, StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE claims SET status = $1, version = version + 1 WHERE id = $2 AND version = $3 AND status = 'adjudicated'",
            )
            .bind(to.as_str())
            .bind(claim.id)
            .bind(claim.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("only an adjudicated, unpaid claim can be reviewed or reversed; read it again".into()));
            }
            let mut touched = Vec::new();
            if let Some(policy_id) = claim.policy_id {
                sqlx::query("UPDATE policies SET version = version WHERE id = $1").bind(policy_id).execute(&mut *tx).await?;
                let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
                    "SELECT category, deductible, inpatient, outpatient, count, amount FROM accumulator_entries \
                     WHERE claim_id = $1 AND adjudication_no = $2 AND reversal = $3",
                )
                .bind(claim.id)
                .bind(claim.adjudication_no)
                .bind(false)
                .fetch_all(&mut *tx)
                .await?;
                let negated: Vec<(String, i64, i64, i64, i64, i64)> =
                    rows.into_iter().map(|(c, d, i, o, n, a)| (c, -d, -i, -o, -n, -a)).collect();
                write_ledger!(tx, policy_id, claim.member_id, claim.id, claim.adjudication_no, true, negated, now)?;
                sqlx::query("UPDATE preauths SET used_by_claim = NULL WHERE used_by_claim = $1")
                    .bind(claim.id)
                    .execute(&mut *tx)
                    .await?;
                touched = sqlx::query_scalar("SELECT member_id FROM policy_members WHERE policy_id = $1")
                    .bind(policy_id)
                    .fetch_all(&mut *tx)
                    .await?;
            }
            let action = match to {
                ClaimStatus::InReview => "sent_to_review",
                ClaimStatus::Withdrawn => "withdrawn",
                _ => "reversed",
            };
            claim_history!(tx, claim.id, actor, action, serde_json::json!({"adjudication_no": claim.adjudication_no, "reason": reason}), now)?;
            let event = Event {
                event_type: "insurance.claim_reversed.v1",
                aggregate_type: "claim",
                aggregate_id: claim.id,
                tenant_id: claim.insurer_id,
                payload: serde_json::json!({"claim_id": claim.id, "insurer_id": claim.insurer_id, "hospital_id": claim.hospital_id,
                    "reference": claim.reference, "adjudication_no": claim.adjudication_no, "reason": reason, "status": to}),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(touched)
        }
        .await
        });
        self.invalidate_members(&touched?).await;
        self.claim(claim.id).await?.ok_or(StoreError::NotFound("no such claim"))
    }

    /// Writes an event that goes with no change of its own (a refusal, an answer), once per
    /// handled event with `inbox`.
    pub async fn emit(
        &self,
        event: &Event,
        actor: &Actor,
        inbox: Option<(&'static str, Uuid)>,
    ) -> Result<(), StoreError> {
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if let Some((consumer, id)) = inbox
                && !medcov_bus::record_once!(tx, consumer, id)?
            {
                return Ok(());
            }
            write_outbox!(tx, actor, event)?;
            tx.commit().await
        }
        .await);
        Ok(result?)
    }

    /// Records that the insurer paid an adjudicated claim.
    pub async fn mark_paid(&self, claim: &Claim, payment_reference: &str, actor: &Actor) -> Result<Claim, StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE claims SET status = 'paid', version = version + 1 WHERE id = $1 AND version = $2 AND status = 'adjudicated'",
            )
            .bind(claim.id)
            .bind(claim.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("only an adjudicated claim can be paid; read it again".into()));
            }
            claim_history!(tx, claim.id, actor, "paid", serde_json::json!({"payment_reference": payment_reference}), now)?;
            let event = Event {
                event_type: "insurance.claim_paid.v1",
                aggregate_type: "claim",
                aggregate_id: claim.id,
                tenant_id: claim.insurer_id,
                payload: serde_json::json!({"claim_id": claim.id, "insurer_id": claim.insurer_id, "hospital_id": claim.hospital_id,
                    "reference": claim.reference, "insurer_total": claim.insurer_total, "currency": claim.currency,
                    "payment_reference": payment_reference}),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.claim(claim.id).await?.ok_or(StoreError::NotFound("no such claim"))
    }

    pub async fn claim(&self, id: Uuid) -> Result<Option<Claim>, StoreError> {
        let sql = format!("{CLAIM_SELECT} WHERE c.id = $1");
        let row: Option<ClaimRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Claim::from))
    }

    /// Claims of an insurer or of hospitals (or all), newest first.
    pub async fn claims(
        &self,
        insurer: Option<Uuid>,
        hospitals: Option<&[Uuid]>,
        status: Option<ClaimStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut sql =
            format!("{CLAIM_SELECT} WHERE ($1 IS NULL OR c.insurer_id = $1) AND ($2 IS NULL OR c.status = $2)");
        if let Some(hospitals) = hospitals {
            if hospitals.is_empty() {
                return Ok(Vec::new());
            }
            let list: Vec<String> = (0..hospitals.len()).map(|i| format!("${}", i + 5)).collect();
            sql.push_str(&format!(" AND c.hospital_id IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY c.submitted_at DESC, c.id DESC LIMIT $3 OFFSET $4");
        let rows: Vec<ClaimRow> = on_pool!(&self.db, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(insurer)
                .bind(status.map(ClaimStatus::as_str))
                .bind(limit)
                .bind(offset);
            for h in hospitals.unwrap_or_default() {
                query = query.bind(*h);
            }
            query.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Claim::from).collect())
    }

    /// The history of a claim, oldest first: (at, actor, action, detail).
    pub async fn claim_history(&self, id: Uuid) -> Result<Vec<ClaimEvent>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT at, actor, action, detail, request_id FROM claim_history WHERE claim_id = $1 ORDER BY at, id",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// What a member and their policy have used this period, reservations included.
    pub async fn usage(&self, policy: Uuid, member: Uuid, today: Date) -> Result<Accumulators, StoreError> {
        let used: Result<Accumulators, sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut conn = pool.acquire().await?;
            let (used, _) = read_usage!(conn, policy, member, None::<Uuid>, today, false)?;
            Ok(used)
        }
        .await);
        Ok(used?)
    }

    pub async fn insert_preauth(
        &self,
        preauth: &Preauth,
        reserved: PerSetting,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO preauths (id, insurer_id, hospital_id, policy_id, member_id, visit_type, planned_date, status, lines, \
                 requested_amount, approved_amount, reserved_inpatient, reserved_outpatient, valid_until, reason, decided_by, \
                 decided_at, used_by_claim, requested_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, $18, $19)",
            )
            .bind(preauth.id)
            .bind(preauth.insurer_id)
            .bind(preauth.hospital_id)
            .bind(preauth.policy_id)
            .bind(preauth.member_id)
            .bind(visit_text(preauth.visit_type))
            .bind(preauth.planned_date)
            .bind(preauth.status.as_str())
            .bind(Json(&preauth.lines))
            .bind(preauth.requested_amount)
            .bind(preauth.approved_amount)
            .bind(reserved.inpatient)
            .bind(reserved.outpatient)
            .bind(preauth.valid_until)
            .bind(&preauth.reason)
            .bind(preauth.decided_by)
            .bind(preauth.decided_at)
            .bind(actor.user_id)
            .bind(preauth.created_at)
            .execute(&mut *tx)
            .await?;
            if preauth.status != PreauthStatus::Pending {
                write_outbox!(tx, actor, preauth_event(preauth))?;
            }
            tx.commit().await
        }
        .await
        });
        result?;
        self.invalidate_members(&[preauth.member_id]).await;
        Ok(())
    }

    /// Decides a pending pre-authorisation.
    pub async fn decide_preauth(
        &self,
        current: &Preauth,
        decision: &Decision,
        actor: &Actor,
    ) -> Result<Preauth, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut decided = current.clone();
        decided.status = decision.status;
        for (line, approved) in decided.lines.iter_mut().zip(&decision.approved) {
            line.approved_amount = *approved;
        }
        decided.approved_amount = decision.approved.iter().sum();
        decided.valid_until = decision.valid_until;
        decided.reason = decision.reason.clone();
        decided.decided_by = Some(actor.user_id);
        decided.decided_at = Some(now);
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE preauths SET status = $1, lines = $2, approved_amount = $3, reserved_inpatient = $4, \
                 reserved_outpatient = $5, valid_until = $6, reason = $7, decided_by = $8, decided_at = $9 \
                 WHERE id = $10 AND status = 'pending'",
            )
            .bind(decided.status.as_str())
            .bind(Json(&decided.lines))
            .bind(decided.approved_amount)
            .bind(decision.reserved.inpatient)
            .bind(decision.reserved.outpatient)
            .bind(decided.valid_until)
            .bind(&decided.reason)
            .bind(actor.user_id)
            .bind(now)
            .bind(current.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the request was already decided".into()));
            }
            write_outbox!(tx, actor, preauth_event(&decided))?;
            tx.commit().await?;
            Ok(())
        }
        .await);
        result?;
        self.invalidate_members(&[current.member_id]).await;
        self.preauth(current.id).await?.ok_or(StoreError::NotFound("no such pre-authorisation"))
    }

    pub async fn preauth(&self, id: Uuid) -> Result<Option<Preauth>, StoreError> {
        let sql = format!("SELECT {PREAUTH_COLUMNS} FROM preauths WHERE id = $1");
        let row: Option<PreauthRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Preauth::from))
    }
}

fn preauth_event(preauth: &Preauth) -> Event {
    Event {
        event_type: "insurance.preauth_decided.v1",
        aggregate_type: "preauth",
        aggregate_id: preauth.id,
        tenant_id: preauth.insurer_id,
        payload: serde_json::json!({
            "preauth_id": preauth.id,
            "insurer_id": preauth.insurer_id,
            "hospital_id": preauth.hospital_id,
            "member_id": preauth.member_id,
            "status": preauth.status,
            "requested_amount": preauth.requested_amount,
            "approved_amount": preauth.approved_amount,
            "valid_until": preauth.valid_until.map(|d| d.to_string()),
            "reason": preauth.reason,
        }),
    }
}

/// One step in a claim's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ClaimEvent {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor: Uuid,
    /// `submitted`, `adjudicated`, `adjudicated_with_overrides`, `sent_to_review`, `reversed`, `paid`.
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: Json<serde_json::Value>,
    pub request_id: Option<String>,
}

/// What an approval reserves, per setting: each approved line's amount in its category's
/// setting.
pub fn reservation(rules: &PlanRules, lines: &[PreauthLine]) -> PerSetting {
    let mut reserved = PerSetting::default();
    for line in lines {
        match rules.categories.get(&line.category).map(|c| c.setting) {
            Some(Setting::Inpatient) => reserved.inpatient += line.approved_amount,
            _ => reserved.outpatient += line.approved_amount,
        }
    }
    reserved
}
