//! The insurance service's tables: insurers, plans and versions, members and policies with
//! their history, pre-authorisations, claims with their history, the accumulator ledger, and
//! member links.
//!
//! Each function is one statement or a few that always go together, on the pool (reads) or on
//! the caller's transaction ([`Tx`]: writes, and reads that must see them or hold their locks).
//! The service layer opens the transaction, decides with the domain's rules, writes the change
//! with its history and events, and commits. The SQL is in `sql/`, written once and compiled
//! per backend by `sqlite.rs` and `postgres.rs`; [`dispatch!`] picks the backend in use.

mod postgres;
mod rows;
mod sqlite;

use medcov_store::outbox::Actor;
use medcov_store::{Database, Migrations, StoreError, Tx, Writes, dispatch};
use sqlx::migrate::Migrator;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::adjudication::{Adjudication, LineResult, PerSetting};
use crate::domain::claim::{Claim, ClaimLine, ClaimStatus, HistoryEntry, NewClaim};
use crate::domain::enrolment::{NewMember, NewPolicy};
use crate::domain::insurer::Insurer;
use crate::domain::ledger::{Entry, Totals};
use crate::domain::plan::PlanRules;
use crate::domain::policy::{MemberStatus, Policy, PolicyStatus, Relationship};
use crate::domain::preauth::Preauth;
use crate::domain::versions::{Plan, PlanVersion};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

// Insurers and plans.

pub async fn insert_insurer(tx: &mut Tx, insurer: &Insurer) -> Result<(), StoreError> {
    dispatch!(tx, insurers::insert(insurer))
}

pub async fn insurer(db: &Database, id: Uuid) -> Result<Option<Insurer>, StoreError> {
    dispatch!(db, insurers::by_id(id))
}

/// Every insurer, by name.
pub async fn insurers(db: &Database) -> Result<Vec<Insurer>, StoreError> {
    dispatch!(db, insurers::all())
}

/// A plan with its versions (a code the insurer already has is a [`StoreError::Duplicate`]).
pub async fn insert_plan(tx: &mut Tx, plan: &Plan, created_by: Uuid) -> Result<(), StoreError> {
    let created_at = plan.versions.first().map_or_else(OffsetDateTime::now_utc, |v| v.created_at);
    dispatch!(tx, plans::insert(plan, created_at))?;
    for version in &plan.versions {
        dispatch!(tx, plans::insert_version(version, created_by))?;
    }
    Ok(())
}

pub async fn plan(db: &Database, id: Uuid) -> Result<Option<Plan>, StoreError> {
    dispatch!(db, plans::by_id(id))
}

/// The plans of an insurer (or of every insurer), by code, with their versions.
pub async fn plans(db: &Database, insurer: Option<Uuid>) -> Result<Vec<Plan>, StoreError> {
    dispatch!(db, plans::list(insurer))
}

/// Locks a plan until the transaction ends: its version writes happen one at a time.
pub async fn lock_plan(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, plans::lock(id))
}

/// A plan's versions, oldest first, in the caller's transaction.
pub async fn plan_versions_in(tx: &mut Tx, plan: Uuid) -> Result<Vec<PlanVersion>, StoreError> {
    dispatch!(tx, plans::versions_in(plan))
}

/// Ends an open-ended version on `last_day`.
pub async fn close_plan_version(tx: &mut Tx, id: Uuid, last_day: Date) -> Result<(), StoreError> {
    dispatch!(tx, plans::close_version(id, last_day))
}

pub async fn insert_plan_version(tx: &mut Tx, version: &PlanVersion, created_by: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, plans::insert_version(version, created_by))
}

pub async fn plan_version(db: &Database, id: Uuid) -> Result<Option<PlanVersion>, StoreError> {
    dispatch!(db, plans::version(id))
}

/// The rules of a plan version, in the caller's transaction.
pub async fn plan_rules_in(tx: &mut Tx, version: Uuid) -> Result<PlanRules, StoreError> {
    dispatch!(tx, plans::rules_in(version))
}

/// The ids of the plan versions in force on `today` (open-ended or ending later).
pub async fn plan_versions_in_force(db: &Database, today: Date) -> Result<Vec<Uuid>, StoreError> {
    dispatch!(db, plans::in_force(today))
}

// Policies and members.

/// A new policy period as written: its id, number and holder, at `at`.
pub struct NewPeriod<'a> {
    pub id: Uuid,
    pub number: &'a str,
    pub holder_id: Uuid,
    pub new: &'a NewPolicy,
    pub at: OffsetDateTime,
}

/// One entry of a policy's history: a status change of the policy, or of one member.
pub struct HistoryStep<'a> {
    pub policy: Uuid,
    pub member: Option<Uuid>,
    pub at: OffsetDateTime,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub reason: Option<&'a str>,
}

/// Takes the next policy number and `members` new member numbers of an insurer: its code, the
/// policy sequence, and the last member sequence taken. `None` for an unknown insurer.
pub async fn take_numbers(tx: &mut Tx, insurer: Uuid, members: i64) -> Result<Option<(String, i64, i64)>, StoreError> {
    dispatch!(tx, insurers::take_numbers(insurer, members))
}

/// Takes the next member number of an insurer: its code and the sequence taken.
pub async fn take_member_number(tx: &mut Tx, insurer: Uuid) -> Result<(String, i64), StoreError> {
    dispatch!(tx, insurers::take_member_number(insurer))
}

pub async fn insert_member(
    tx: &mut Tx,
    id: Uuid,
    insurer: Uuid,
    number: &str,
    member: &NewMember,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    dispatch!(tx, policies::insert_member(id, insurer, number, member, now))
}

/// Writes a new period, `pending` (a second renewal of one period is a
/// [`StoreError::Duplicate`]).
pub async fn insert_policy(tx: &mut Tx, period: &NewPeriod<'_>) -> Result<(), StoreError> {
    dispatch!(tx, policies::insert(period))
}

/// Puts a member on a period, `active` from `enrolled_on`.
pub async fn insert_policy_member(
    tx: &mut Tx,
    policy: Uuid,
    member: Uuid,
    relationship: Relationship,
    enrolled_on: Date,
) -> Result<(), StoreError> {
    dispatch!(tx, policies::insert_policy_member(policy, member, relationship, enrolled_on))
}

pub async fn append_policy_history(tx: &mut Tx, step: &HistoryStep<'_>, actor: &Actor) -> Result<(), StoreError> {
    dispatch!(tx, policies::insert_history(step, actor))
}

/// A policy period with its members (the holder first).
pub async fn policy(db: &Database, id: Uuid) -> Result<Option<Policy>, StoreError> {
    dispatch!(db, policies::by_id(id))
}

pub async fn policy_in(tx: &mut Tx, id: Uuid) -> Result<Option<Policy>, StoreError> {
    dispatch!(tx, policies::by_id_in(id))
}

/// An insurer's policies (or all), newest first.
pub async fn policies(
    db: &Database,
    insurer: Option<Uuid>,
    status: Option<PolicyStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Policy>, StoreError> {
    let ids = dispatch!(db, policies::ids(insurer, status, limit, offset))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(policy(db, id).await?);
    }
    Ok(out)
}

/// Locks a policy until the transaction ends: the claims of one policy are adjudicated (and
/// reversed) one at a time, so its ceilings are never overshot.
pub async fn lock_policy(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, policies::lock(id))
}

/// Moves a policy to `status` if it is still at `version`; `false` when it is not.
pub async fn set_policy_status(
    tx: &mut Tx,
    policy: &Policy,
    status: PolicyStatus,
    ended_on: Option<Date>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    dispatch!(tx, policies::set_status(policy.id, policy.version, status, ended_on, now))
}

/// Takes the next version of a policy if it is still at `version` (a change of its members,
/// which also locks it); `false` when it is not.
pub async fn bump_policy(tx: &mut Tx, policy: &Policy, now: OffsetDateTime) -> Result<bool, StoreError> {
    dispatch!(tx, policies::bump(policy.id, policy.version, now))
}

pub async fn count_policy_members(tx: &mut Tx, policy: Uuid) -> Result<i64, StoreError> {
    dispatch!(tx, policies::count_members(policy))
}

/// The members of a policy, in the caller's transaction.
pub async fn policy_member_ids_in(tx: &mut Tx, policy: Uuid) -> Result<Vec<Uuid>, StoreError> {
    dispatch!(tx, policies::member_ids_in(policy))
}

/// The periods of a member that have not ended by `on`, with their insurers.
pub async fn periods_of_member_from(tx: &mut Tx, member: Uuid, on: Date) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    dispatch!(tx, policies::periods_of_member_from(member, on))
}

pub async fn set_member_status(
    tx: &mut Tx,
    policy: Uuid,
    member: Uuid,
    status: MemberStatus,
    status_on: Option<Date>,
) -> Result<(), StoreError> {
    dispatch!(tx, policies::set_member_status(policy, member, status, status_on))
}

/// The insurer a member belongs to.
pub async fn member_insurer(db: &Database, member: Uuid) -> Result<Option<Uuid>, StoreError> {
    dispatch!(db, policies::member_insurer(member))
}

pub async fn member_by_number(db: &Database, number: &str) -> Result<Option<Uuid>, StoreError> {
    dispatch!(db, policies::member_by_number(number))
}

/// The member with this number and the period that covers them on `date` (or else their
/// latest): (member, policy).
pub async fn period_of_number(db: &Database, number: &str, date: Date) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    dispatch!(db, policies::period_of_number(number, date))
}

// Member links.

/// Links each `(member, patient, hospital)` (a link that exists stays as it is), gathered in
/// `writes`.
pub fn gather_links(writes: &mut Writes, links: &[(Uuid, Uuid, Uuid)], now: OffsetDateTime) {
    dispatch!(gather writes, links::gather_links(links, now))
}

/// Removes every link of a patient; returns how many.
pub async fn unlink_patient(tx: &mut Tx, patient: Uuid) -> Result<u64, StoreError> {
    dispatch!(tx, links::unlink_patient(patient))
}

/// The members linked to a patient.
pub async fn linked_members(db: &Database, patient: Uuid) -> Result<Vec<Uuid>, StoreError> {
    dispatch!(db, links::members_of(patient))
}

// Pre-authorisations.

pub async fn insert_preauth(
    tx: &mut Tx,
    preauth: &Preauth,
    reserved: PerSetting,
    requested_by: Uuid,
) -> Result<(), StoreError> {
    dispatch!(tx, preauths::insert(preauth, reserved, requested_by))
}

pub async fn preauth(db: &Database, id: Uuid) -> Result<Option<Preauth>, StoreError> {
    dispatch!(db, preauths::by_id(id))
}

pub async fn preauth_in(tx: &mut Tx, id: Uuid) -> Result<Option<Preauth>, StoreError> {
    dispatch!(tx, preauths::by_id_in(id))
}

/// Writes a decision, if the request is still pending; `false` when it is not.
pub async fn decide_preauth(tx: &mut Tx, decided: &Preauth, reserved: PerSetting) -> Result<bool, StoreError> {
    dispatch!(tx, preauths::decide(decided, reserved))
}

/// Marks an approval used by a claim.
pub async fn use_preauth(tx: &mut Tx, preauth: Uuid, claim: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, preauths::mark_used(preauth, claim))
}

/// Releases the approvals a claim used.
pub async fn release_preauths(tx: &mut Tx, claim: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, preauths::release(claim))
}

// The accumulator ledger.

/// Whose ledger entries: one adjudication of a claim (or, with `reversal`, its negation).
pub struct LedgerKey {
    pub policy: Uuid,
    pub member: Uuid,
    pub claim: Uuid,
    pub adjudication_no: i32,
    pub reversal: bool,
}

/// What a policy's ledger adds up to for a member, with the live reservations on `today`.
pub async fn ledger_totals(db: &Database, policy: Uuid, member: Uuid, today: Date) -> Result<Totals, StoreError> {
    dispatch!(db, ledger::totals(policy, member, today))
}

pub async fn ledger_totals_in(tx: &mut Tx, policy: Uuid, member: Uuid, today: Date) -> Result<Totals, StoreError> {
    dispatch!(tx, ledger::totals_in(policy, member, today))
}

pub async fn append_ledger(
    tx: &mut Tx,
    key: &LedgerKey,
    entries: &[Entry],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    dispatch!(tx, ledger::append(key, entries, now))
}

/// The entries one adjudication of a claim wrote (not their reversal).
pub async fn ledger_entries_of(tx: &mut Tx, claim: Uuid, adjudication_no: i32) -> Result<Vec<Entry>, StoreError> {
    dispatch!(tx, ledger::entries_of(claim, adjudication_no))
}

// Claims.

/// An adjudication to record on its claim.
pub struct Adjudicated<'a> {
    pub result: &'a Adjudication,
    pub number: i32,
    pub plan_version_id: Option<Uuid>,
    pub at: OffsetDateTime,
}

/// The claim a hospital sent under a reference, with its request digest.
pub async fn claim_by_reference(
    db: &Database,
    hospital: Uuid,
    reference: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    dispatch!(db, claims::by_reference(hospital, reference))
}

pub async fn claim_by_reference_in(
    tx: &mut Tx,
    hospital: Uuid,
    reference: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    dispatch!(tx, claims::by_reference_in(hospital, reference))
}

/// A new claim, `submitted` (a reference the hospital used before is a
/// [`StoreError::Duplicate`]).
pub async fn insert_claim(
    tx: &mut Tx,
    id: Uuid,
    claim: &NewClaim,
    submitted_by: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    dispatch!(tx, claims::insert(id, claim, submitted_by, now))
}

pub async fn claim(db: &Database, id: Uuid) -> Result<Option<Claim>, StoreError> {
    dispatch!(db, claims::by_id(id))
}

pub async fn claim_in(tx: &mut Tx, id: Uuid) -> Result<Option<Claim>, StoreError> {
    dispatch!(tx, claims::by_id_in(id))
}

/// Claims of an insurer or of some hospitals (or all), newest first.
/// What a list of claims is narrowed to, besides the caller's tenants.
#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub status: Option<ClaimStatus>,
    /// One member's claims.
    pub member_number: Option<String>,
    /// The claim a hospital sent under this reference (billing's: the invoice number).
    pub reference: Option<String>,
}

pub async fn claims(
    db: &Database,
    insurer: Option<Uuid>,
    hospitals: Option<&[Uuid]>,
    filter: &ClaimFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Claim>, StoreError> {
    if hospitals.is_some_and(<[Uuid]>::is_empty) {
        return Ok(Vec::new());
    }
    dispatch!(db, claims::list(insurer, hospitals, filter, limit, offset))
}

/// Writes an adjudication onto its claim, which becomes `adjudicated`.
pub async fn record_adjudication(tx: &mut Tx, claim: Uuid, adjudicated: &Adjudicated<'_>) -> Result<(), StoreError> {
    dispatch!(tx, claims::record_adjudication(claim, adjudicated))
}

/// Moves a claim from `from` to `to` if it is still there at its version; `false` when not.
pub async fn set_claim_status(
    tx: &mut Tx,
    claim: &Claim,
    from: ClaimStatus,
    to: ClaimStatus,
) -> Result<bool, StoreError> {
    dispatch!(tx, claims::set_status(claim.id, claim.version, from, to))
}

/// The lines and results of a member's adjudicated or paid claims other than `except`.
pub async fn accepted_claims_in(
    tx: &mut Tx,
    member: Uuid,
    except: Uuid,
) -> Result<Vec<(Vec<ClaimLine>, Option<Vec<LineResult>>)>, StoreError> {
    dispatch!(tx, claims::accepted_of_member(member, except))
}

pub async fn append_claim_history(
    tx: &mut Tx,
    claim: Uuid,
    actor: &Actor,
    action: &str,
    detail: &serde_json::Value,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    dispatch!(tx, claims::append_history(claim, actor, action, detail, at))
}

/// A claim's history, oldest first.
pub async fn claim_history(db: &Database, claim: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
    dispatch!(db, claims::history(claim))
}
