//! Policy periods: selling and renewing (each starts the policy-sale saga in its
//! transaction), status changes, dependants, and member status.

use medcov_bus::saga;
use medcov_domain::{Rejection, TextEnum};
use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor};
use medcov_store::{Tx, inbox};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::InsuranceService;
use super::sale::POLICY_SALE;
use crate::domain::enrolment::{self, Addition, Application, NewPolicy};
use crate::domain::policy::{self, Coverage, MemberStatus, Policy, PolicyStatus, Relationship};
use crate::domain::versions::Plan;
use crate::events::{
    MemberStatusChanged, PolicyActivated, PolicyCancelled, PolicyCreated, PolicyExpired, PolicyMemberAdded,
    PolicyState, PolicyStatusChange, PolicySuspended,
};
use crate::store::{self, HistoryStep, NewPeriod};

/// Why a change of a policy read earlier was refused.
const CHANGED_MEANWHILE: &str = "the policy changed meanwhile; read it again";

impl InsuranceService {
    /// When a policy sold now is cancelled if its premium is still unpaid.
    fn premium_deadline(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.premium_due_s as i64)
    }

    /// Sells a policy under `plan`: the members get numbers, the premium is computed from the
    /// plan version in effect on its first day, and the policy waits in `pending` for its
    /// premium (`policy_created` tells billing to invoice it).
    pub async fn sell_policy(&self, plan: &Plan, application: &Application, actor: &Actor) -> Result<Policy, ApiError> {
        let new = enrolment::new_policy(plan, application, self.premium_deadline())?;
        self.create_policy(&new, actor).await
    }

    /// Renews a period: the next one-year period with the active members, `pending` until its
    /// premium is paid.
    pub async fn renew_policy(&self, current: &Policy, actor: &Actor) -> Result<Policy, ApiError> {
        enrolment::check_renewable(current)?;
        let plan =
            store::plan(&self.db, current.plan_id).await?.ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
        let new = enrolment::renewal(current, &plan, self.premium_deadline())?;
        self.create_policy(&new, actor).await
    }

    /// Writes a new period: numbers it and its new members, writes the history entry, starts
    /// the policy-sale saga and writes `policy_created`, in one transaction.
    async fn create_policy(&self, new: &NewPolicy, actor: &Actor) -> Result<Policy, ApiError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let fresh = new.new_members() as i64;
        // Read before the write begins (an embedded store has one writer).
        let insurer_timezone =
            store::insurer(&self.db, new.insurer_id).await?.map_or_else(|| "UTC".into(), |i| i.timezone);
        let mut tx = self.db.begin_write().await?;
        let (code, policy_seq, last_member) = store::take_numbers(&mut tx, new.insurer_id, fresh)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such insurer".into()))?;
        let mut next_member = last_member - fresh;
        let mut holder_id = None;
        let mut enrolled = Vec::with_capacity(new.members.len());
        for member in &new.members {
            let (member_id, enrolled_on) = match member.existing {
                Some(existing) => existing,
                None => {
                    next_member += 1;
                    let member_id = Uuid::now_v7();
                    let number = policy::member_number(&code, next_member as u64);
                    store::insert_member(&mut tx, member_id, new.insurer_id, &number, member, now).await?;
                    (member_id, new.start_date)
                }
            };
            if member.relationship == Relationship::Holder {
                holder_id = Some(member_id);
            }
            enrolled.push((member_id, member.relationship, enrolled_on));
        }
        let holder_id = holder_id.ok_or_else(|| Rejection::field("holder", "a policy needs a holder"))?;
        let number = policy::policy_number(&code, policy_seq);
        let period = NewPeriod { id, number: &number, holder_id, new, at: now };
        match store::insert_policy(&mut tx, &period).await {
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict("this policy period was already renewed".into()));
            }
            other => other?,
        }
        for (member_id, relationship, enrolled_on) in enrolled {
            store::insert_policy_member(&mut tx, id, member_id, relationship, enrolled_on).await?;
        }
        let reason = if new.renewal_of.is_some() { "renewal" } else { "created" };
        let step = HistoryStep {
            policy: id,
            member: None,
            at: now,
            from: None,
            to: PolicyStatus::Pending.as_str(),
            reason: Some(reason),
        };
        store::append_policy_history(&mut tx, &step, actor).await?;
        let data = serde_json::json!({"premium": new.premium, "currency": new.currency});
        let sale =
            saga::new(POLICY_SALE, id, Some(new.insurer_id), "awaiting_premium", Some(new.premium_deadline), data);
        saga::start(&mut tx, &sale).await?;
        let created = loaded(&mut tx, id).await?;
        let event = PolicyCreated { policy: PolicyState::of(&created), renewal_of: new.renewal_of, insurer_timezone };
        outbox::write(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn policy(&self, id: Uuid) -> Result<Option<Policy>, ApiError> {
        Ok(store::policy(&self.db, id).await?)
    }

    /// Policies of an insurer (or all), newest first.
    pub async fn policies(
        &self,
        insurer: Option<Uuid>,
        status: Option<PolicyStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Policy>, ApiError> {
        Ok(store::policies(&self.db, insurer, status, limit, offset).await?)
    }

    /// Moves a policy to `next` (from `effective_on`, for a suspension or cancellation, which
    /// need a reason) if it is still as the caller read it; writes history and the status
    /// event. With `inbox`, a handled event already recorded changes nothing.
    pub async fn change_policy_status(
        &self,
        current: &Policy,
        next: PolicyStatus,
        effective_on: Option<Date>,
        reason: Option<&str>,
        actor: &Actor,
        inbox: Option<(&str, Uuid)>,
    ) -> Result<Policy, ApiError> {
        policy::check_status_change(current, next, effective_on, reason)?;
        policy::check_transition(current.status, next)?;
        let now = OffsetDateTime::now_utc();
        let today = self.today_of(current.insurer_id).await?;
        let ended_on = policy::ended_on(current, next, effective_on, today);
        let mut tx = self.db.begin_write().await?;
        let first = match inbox {
            Some((consumer, event)) => inbox::record_once(&mut tx, consumer, event).await?,
            None => true,
        };
        if first {
            if !store::set_policy_status(&mut tx, current, next, ended_on, now).await? {
                return Err(ApiError::Conflict(CHANGED_MEANWHILE.into()));
            }
            let step = HistoryStep {
                policy: current.id,
                member: None,
                at: now,
                from: Some(current.status.as_str()),
                to: next.as_str(),
                reason,
            };
            store::append_policy_history(&mut tx, &step, actor).await?;
            let updated = loaded(&mut tx, current.id).await?;
            let change = PolicyStatusChange {
                policy: PolicyState::of(&updated),
                previous_status: current.status,
                ended_on: ended_on.map(|d| d.to_string()),
                reason: reason.map(str::to_owned),
            };
            write_status_change(&mut tx, actor, next, change).await?;
            tx.commit().await?;
        } else {
            // Handled before: nothing to write, and no write lock held past this point.
            tx.rollback().await?;
        }
        self.invalidate_members(&current.member_ids()).await;
        self.policy(current.id).await?.ok_or_else(|| ApiError::NotFound("no such policy".into()))
    }

    /// Adds a dependant to a period, within the plan's maximum (also under concurrent
    /// additions: the policy's version is taken first).
    pub async fn add_dependant(&self, policy: &Policy, addition: &Addition, actor: &Actor) -> Result<Policy, ApiError> {
        let today = self.today_of(policy.insurer_id).await?;
        let (member, enrolled_on) = enrolment::dependant(policy, addition, today)?;
        let version = self
            .plan_version(policy.plan_version_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        if !store::bump_policy(&mut tx, policy, now).await? {
            return Err(ApiError::Conflict(CHANGED_MEANWHILE.into()));
        }
        let count = store::count_policy_members(&mut tx, policy.id).await?;
        enrolment::check_room(count, version.rules.max_members)?;
        let (code, sequence) = store::take_member_number(&mut tx, policy.insurer_id).await?;
        let member_id = Uuid::now_v7();
        let number = policy::member_number(&code, sequence as u64);
        store::insert_member(&mut tx, member_id, policy.insurer_id, &number, &member, now).await?;
        store::insert_policy_member(&mut tx, policy.id, member_id, member.relationship, enrolled_on).await?;
        let step = HistoryStep {
            policy: policy.id,
            member: Some(member_id),
            at: now,
            from: None,
            to: MemberStatus::Active.as_str(),
            reason: Some("member added"),
        };
        store::append_policy_history(&mut tx, &step, actor).await?;
        let updated = loaded(&mut tx, policy.id).await?;
        outbox::write(&mut tx, actor, &PolicyMemberAdded { policy: PolicyState::of(&updated), member_id }).await?;
        tx.commit().await?;
        // A family deductible and ceiling are shared by one more member.
        self.invalidate_members(&updated.member_ids()).await;
        Ok(updated)
    }

    /// The insurer a member belongs to.
    pub async fn member_insurer(&self, member: Uuid) -> Result<Option<Uuid>, ApiError> {
        Ok(store::member_insurer(&self.db, member).await?)
    }

    /// Sets a member's status from a day on, on every period that has not ended by then;
    /// returns those periods.
    pub async fn change_member_status(
        &self,
        member: Uuid,
        status: MemberStatus,
        on: Date,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Vec<Uuid>, ApiError> {
        let today = match self.member_insurer(member).await? {
            Some(insurer) => self.today_of(insurer).await?,
            None => super::today(),
        };
        policy::check_member_status(status, on, today)?;
        let now = OffsetDateTime::now_utc();
        let status_on = policy::member_status_on(status, on);
        let mut tx = self.db.begin_write().await?;
        let periods = store::periods_of_member_from(&mut tx, member, on).await?;
        for (policy_id, insurer_id) in &periods {
            store::set_member_status(&mut tx, *policy_id, member, status, status_on).await?;
            let step = HistoryStep {
                policy: *policy_id,
                member: Some(member),
                at: now,
                from: None,
                to: status.as_str(),
                reason,
            };
            store::append_policy_history(&mut tx, &step, actor).await?;
            let event = MemberStatusChanged {
                policy_id: *policy_id,
                member_id: member,
                status,
                status_on: status_on.map(|d| d.to_string()),
                insurer_id: *insurer_id,
            };
            outbox::write(&mut tx, actor, &event).await?;
        }
        tx.commit().await?;
        self.invalidate_members(&[member]).await;
        Ok(periods.into_iter().map(|(policy, _)| policy).collect())
    }

    /// What covers the member with this number on `date`: the period containing the date, or
    /// else their latest period (which then answers `no_active_policy`). `None` for an unknown
    /// number.
    pub async fn coverage(&self, member_number: &str, date: Date) -> Result<Option<Coverage>, ApiError> {
        let Some((member, policy)) = store::period_of_number(&self.db, member_number, date).await? else {
            return Ok(None);
        };
        let Some(policy) = store::policy(&self.db, policy).await? else {
            return Ok(None);
        };
        Ok(Coverage::of(policy, member))
    }

    /// Billing says a premium was paid: its pending policy becomes active (once per event),
    /// and its sale completes. A policy cancelled before its premium arrived stays cancelled
    /// (billing refunds).
    pub async fn premium_paid(&self, policy: Uuid, event: Uuid, actor: &Actor) -> Result<(), ApiError> {
        let Some(policy) = self.policy(policy).await? else {
            return Ok(());
        };
        if policy.status != PolicyStatus::Pending {
            return Ok(());
        }
        let inbox = Some(("insurance.premiums", event));
        self.change_policy_status(&policy, PolicyStatus::Active, None, Some("premium paid"), actor, inbox).await?;
        self.complete_sale(policy.id).await
    }
}

/// A policy as it is inside `tx`, which must hold it.
async fn loaded(tx: &mut Tx, id: Uuid) -> Result<Policy, ApiError> {
    store::policy_in(tx, id).await?.ok_or_else(|| ApiError::NotFound("no such policy".into()))
}

/// Writes the event of a policy's move to `next`.
async fn write_status_change(
    tx: &mut Tx,
    actor: &Actor,
    next: PolicyStatus,
    change: PolicyStatusChange,
) -> Result<(), ApiError> {
    match next {
        PolicyStatus::Active => outbox::write(tx, actor, &PolicyActivated(change)).await?,
        PolicyStatus::Suspended => outbox::write(tx, actor, &PolicySuspended(change)).await?,
        PolicyStatus::Expired => outbox::write(tx, actor, &PolicyExpired(change)).await?,
        PolicyStatus::Cancelled => outbox::write(tx, actor, &PolicyCancelled(change)).await?,
        // No policy moves back to pending (`policy::check_transition`).
        PolicyStatus::Pending => return Err(ApiError::internal("a policy cannot move back to pending")),
    };
    Ok(())
}
