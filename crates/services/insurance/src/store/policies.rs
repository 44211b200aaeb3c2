//! Members and policies, and what covers a member on a date.

use medcov_store::{WritePool, on_pool, write_outbox};
use serde::Serialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, Event, InsuranceStore, StoreError};
use crate::domain::policy::{self, Cover, MemberStatus, PolicyStatus, Relationship};

/// A person on a policy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PolicyMember {
    pub member_id: Uuid,
    /// Unique, with two check digits (ISO 7064 MOD 97-10).
    #[schema(example = "AAR-0000001262")]
    pub member_number: String,
    pub given_name: String,
    pub family_name: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    pub relationship: Relationship,
    /// Waiting periods run from this day; kept across renewals.
    #[schema(value_type = String, format = Date)]
    pub enrolled_on: Date,
    pub status: MemberStatus,
    /// From this day an inactive or deceased member is not covered.
    #[schema(value_type = Option<String>, format = Date)]
    pub status_on: Option<Date>,
}

/// One policy period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Policy {
    pub id: Uuid,
    pub insurer_id: Uuid,
    #[schema(example = "AAR-P00000042")]
    pub number: String,
    pub plan_id: Uuid,
    /// The plan version whose rules this period is covered and adjudicated under.
    pub plan_version_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    #[schema(value_type = String, format = Date)]
    pub start_date: Date,
    /// The last covered day.
    #[schema(value_type = String, format = Date)]
    pub expiry_date: Date,
    /// The premium for the period, in minor units of `currency`.
    pub premium: i64,
    pub currency: String,
    pub status: PolicyStatus,
    /// From this day a suspended or cancelled policy covers nothing.
    #[schema(value_type = Option<String>, format = Date)]
    pub ended_on: Option<Date>,
    /// The period this one renews.
    pub renewal_of: Option<Uuid>,
    pub version: i64,
    pub members: Vec<PolicyMember>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
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

const POLICY_COLUMNS: &str = "id, insurer_id, number, plan_id, plan_version_id, holder_id, agent_id, start_date, \
     expiry_date, premium, currency, status, ended_on, renewal_of, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct MemberRow {
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

impl From<MemberRow> for PolicyMember {
    fn from(r: MemberRow) -> Self {
        PolicyMember {
            member_id: r.member_id,
            member_number: r.member_number,
            given_name: r.given_name,
            family_name: r.family_name,
            date_of_birth: r.date_of_birth,
            relationship: relationship_parse(&r.relationship),
            enrolled_on: r.enrolled_on,
            status: MemberStatus::parse(&r.status).unwrap_or(MemberStatus::Inactive),
            status_on: r.status_on,
        }
    }
}

pub fn relationship_text(r: Relationship) -> &'static str {
    match r {
        Relationship::Holder => "holder",
        Relationship::Spouse => "spouse",
        Relationship::Child => "child",
        Relationship::Parent => "parent",
        Relationship::Other => "other",
    }
}

fn relationship_parse(s: &str) -> Relationship {
    match s {
        "holder" => Relationship::Holder,
        "spouse" => Relationship::Spouse,
        "child" => Relationship::Child,
        "parent" => Relationship::Parent,
        _ => Relationship::Other,
    }
}

const MEMBER_SELECT: &str = "SELECT pm.member_id, m.member_number, m.given_name, m.family_name, m.date_of_birth, \
     pm.relationship, pm.enrolled_on, pm.status, pm.status_on FROM policy_members pm JOIN members m ON m.id = pm.member_id";

/// A person to put on a new policy.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
    pub relationship: Relationship,
    /// An existing member (on renewal), keeping their number and enrolment date.
    pub existing: Option<(Uuid, Date)>,
}

/// A new policy period, before numbering.
pub struct NewPolicy {
    pub insurer_id: Uuid,
    pub plan_id: Uuid,
    pub plan_version_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub start_date: Date,
    pub expiry_date: Date,
    pub premium: i64,
    pub currency: String,
    pub members: Vec<NewMember>,
    pub renewal_of: Option<Uuid>,
    /// When the policy-sale saga gives up on the premium and cancels the policy.
    pub premium_deadline: OffsetDateTime,
}

/// The saga that follows a sold policy until its premium is paid (or cancels it).
pub const POLICY_SALE: &str = "policy_sale";

/// What covers a member on a date: the member, their policy period, its plan version.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub member: PolicyMember,
    pub policy: Policy,
    pub cover: Cover,
}

fn policy_event(policy: &Policy, event_type: &'static str, extra: serde_json::Value) -> Event {
    let mut payload = serde_json::json!({
        "policy_id": policy.id,
        "insurer_id": policy.insurer_id,
        "number": policy.number,
        "plan_id": policy.plan_id,
        "plan_version_id": policy.plan_version_id,
        "holder_id": policy.holder_id,
        "agent_id": policy.agent_id,
        "start_date": policy.start_date.to_string(),
        "expiry_date": policy.expiry_date.to_string(),
        "premium": {"minor": policy.premium, "currency": policy.currency},
        "status": policy.status,
        "members": policy.members.iter().map(|m| serde_json::json!({"member_id": m.member_id, "member_number": m.member_number})).collect::<Vec<_>>(),
    });
    if let (Some(target), serde_json::Value::Object(more)) = (payload.as_object_mut(), extra) {
        target.extend(more);
    }
    Event { event_type, aggregate_type: "policy", aggregate_id: policy.id, tenant_id: policy.insurer_id, payload }
}

fn status_event(status: PolicyStatus) -> &'static str {
    match status {
        PolicyStatus::Pending => "insurance.policy_created.v1",
        PolicyStatus::Active => "insurance.policy_activated.v1",
        PolicyStatus::Suspended => "insurance.policy_suspended.v1",
        PolicyStatus::Expired => "insurance.policy_expired.v1",
        PolicyStatus::Cancelled => "insurance.policy_cancelled.v1",
    }
}

/// Reads a policy with its members on an open connection or transaction.
macro_rules! load_policy {
    ($conn:expr, $id:expr) => {
        async {
            let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE id = $1");
            let row: Option<PolicyRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($id).fetch_optional(&mut *$conn).await?;
            let Some(row) = row else {
                return Ok::<Option<Policy>, StoreError>(None);
            };
            let sql = format!(
                "{MEMBER_SELECT} WHERE pm.policy_id = $1 ORDER BY pm.relationship = 'holder' DESC, m.member_number"
            );
            let members: Vec<MemberRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($id).fetch_all(&mut *$conn).await?;
            Ok(Some(Policy {
                id: row.id,
                insurer_id: row.insurer_id,
                number: row.number,
                plan_id: row.plan_id,
                plan_version_id: row.plan_version_id,
                holder_id: row.holder_id,
                agent_id: row.agent_id,
                start_date: row.start_date,
                expiry_date: row.expiry_date,
                premium: row.premium,
                currency: row.currency,
                status: PolicyStatus::parse(&row.status).unwrap_or(PolicyStatus::Pending),
                ended_on: row.ended_on,
                renewal_of: row.renewal_of,
                version: row.version,
                members: members.into_iter().map(PolicyMember::from).collect(),
                created_at: row.created_at,
                updated_at: row.updated_at,
            }))
        }
        .await
    };
}

impl InsuranceStore {
    /// Writes a new policy period: numbers it and its new members, and writes the history entry
    /// and the `policy_created` event, in one transaction.
    pub async fn create_policy(&self, new: &NewPolicy, actor: &Actor) -> Result<Policy, StoreError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let numbered: Option<(String, i64)> = sqlx::query_as(
                "UPDATE insurers SET policy_seq = policy_seq + 1, member_seq = member_seq + $2 WHERE id = $1 \
                 RETURNING code, member_seq",
            )
            .bind(new.insurer_id)
            .bind(new.members.iter().filter(|m| m.existing.is_none()).count() as i64)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((code, last_member)) = numbered else {
                return Err(StoreError::NotFound("no such insurer"));
            };
            let policy_seq: i64 =
                sqlx::query_scalar("SELECT policy_seq FROM insurers WHERE id = $1").bind(new.insurer_id).fetch_one(&mut *tx).await?;
            let fresh = new.members.iter().filter(|m| m.existing.is_none()).count() as i64;
            let mut next_member = last_member - fresh;
            let mut holder_id = None;
            let mut ids = Vec::new();
            for member in &new.members {
                let (member_id, enrolled_on) = match member.existing {
                    Some(existing) => existing,
                    None => {
                        next_member += 1;
                        let member_id = Uuid::now_v7();
                        sqlx::query(
                            "INSERT INTO members (id, insurer_id, member_number, given_name, family_name, date_of_birth, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(member_id)
                        .bind(new.insurer_id)
                        .bind(policy::member_number(&code, next_member as u64))
                        .bind(&member.given_name)
                        .bind(&member.family_name)
                        .bind(member.date_of_birth)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        (member_id, new.start_date)
                    }
                };
                if member.relationship == Relationship::Holder {
                    holder_id = Some(member_id);
                }
                ids.push((member_id, member.relationship, enrolled_on));
            }
            let Some(holder_id) = holder_id else {
                return Err(StoreError::invalid("holder", "a policy needs a holder"));
            };
            sqlx::query(
                "INSERT INTO policies (id, insurer_id, number, plan_id, plan_version_id, holder_id, agent_id, start_date, \
                 expiry_date, premium, currency, status, ended_on, renewal_of, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', NULL, $12, 1, $13, $13)",
            )
            .bind(id)
            .bind(new.insurer_id)
            .bind(format!("{code}-P{policy_seq:08}"))
            .bind(new.plan_id)
            .bind(new.plan_version_id)
            .bind(holder_id)
            .bind(new.agent_id)
            .bind(new.start_date)
            .bind(new.expiry_date)
            .bind(new.premium)
            .bind(&new.currency)
            .bind(new.renewal_of)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if super::unique_violation(&e) {
                    StoreError::Conflict("this policy period was already renewed".into())
                } else {
                    StoreError::Sqlx(e)
                }
            })?;
            for (member_id, relationship, enrolled_on) in &ids {
                sqlx::query(
                    "INSERT INTO policy_members (policy_id, member_id, relationship, enrolled_on, status, status_on) \
                     VALUES ($1, $2, $3, $4, 'active', NULL)",
                )
                .bind(id)
                .bind(member_id)
                .bind(relationship_text(*relationship))
                .bind(enrolled_on)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO policy_history (id, policy_id, member_id, at, changed_by, from_status, to_status, reason, request_id) \
                 VALUES ($1, $2, NULL, $3, $4, NULL, 'pending', $5, $6)",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(now)
            .bind(actor.user_id)
            .bind(if new.renewal_of.is_some() { "renewal" } else { "created" })
            .bind(&actor.request_id)
            .execute(&mut *tx)
            .await?;
            medcov_bus::start_saga!(
                tx,
                POLICY_SALE,
                id,
                Some(new.insurer_id),
                "awaiting_premium",
                Some(new.premium_deadline),
                serde_json::json!({"premium": new.premium, "currency": new.currency})
            )?;
            let created = load_policy!(tx, id)?.ok_or(StoreError::NotFound("no such policy"))?;
            write_outbox!(tx, actor, policy_event(&created, "insurance.policy_created.v1", serde_json::json!({"renewal_of": new.renewal_of})))?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.policy(id).await?.ok_or(StoreError::NotFound("no such policy"))
    }

    pub async fn policy(&self, id: Uuid) -> Result<Option<Policy>, StoreError> {
        on_pool!(&self.db, |pool| async {
            let mut conn = pool.acquire().await?;
            load_policy!(conn, id)
        }
        .await)
    }

    /// Policies of an insurer (or all), newest first.
    pub async fn policies(
        &self,
        insurer: Option<Uuid>,
        status: Option<PolicyStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Policy>, StoreError> {
        let ids: Vec<Uuid> = on_pool!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM policies WHERE ($1 IS NULL OR insurer_id = $1) AND ($2 IS NULL OR status = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            )
            .bind(insurer)
            .bind(status.map(PolicyStatus::as_str))
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.policy(id).await?);
        }
        Ok(out)
    }

    /// Moves a policy to `next` from `effective_on` (for suspension and cancellation), if it is
    /// still at `expected_version`; writes history and the status event.
    pub async fn change_policy_status(
        &self,
        current: &Policy,
        next: PolicyStatus,
        effective_on: Option<Date>,
        reason: Option<&str>,
        actor: &Actor,
        inbox: Option<(&'static str, Uuid)>,
    ) -> Result<Policy, StoreError> {
        if !current.status.can_become(next) {
            return Err(StoreError::Conflict(format!(
                "a {} policy cannot become {}",
                current.status.as_str(),
                next.as_str()
            )));
        }
        let now = OffsetDateTime::now_utc();
        let ended_on = match next {
            PolicyStatus::Suspended | PolicyStatus::Cancelled => Some(effective_on.unwrap_or(now.date())),
            PolicyStatus::Expired => Some(current.expiry_date.next_day().unwrap_or(current.expiry_date)),
            PolicyStatus::Active | PolicyStatus::Pending => None,
        };
        let changed: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if let Some((consumer, event)) = inbox
                && !medcov_bus::record_once!(tx, consumer, event)?
            {
                return Ok(());
            }
            let done = sqlx::query(
                "UPDATE policies SET status = $1, ended_on = $2, version = version + 1, updated_at = $3 \
                 WHERE id = $4 AND version = $5",
            )
            .bind(next.as_str())
            .bind(ended_on)
            .bind(now)
            .bind(current.id)
            .bind(current.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the policy changed meanwhile; read it again".into()));
            }
            sqlx::query(
                "INSERT INTO policy_history (id, policy_id, member_id, at, changed_by, from_status, to_status, reason, request_id) \
                 VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::now_v7())
            .bind(current.id)
            .bind(now)
            .bind(actor.user_id)
            .bind(current.status.as_str())
            .bind(next.as_str())
            .bind(reason)
            .bind(&actor.request_id)
            .execute(&mut *tx)
            .await?;
            let updated = load_policy!(tx, current.id)?.ok_or(StoreError::NotFound("no such policy"))?;
            let extra = serde_json::json!({"previous_status": current.status, "ended_on": ended_on.map(|d| d.to_string()), "reason": reason});
            write_outbox!(tx, actor, policy_event(&updated, status_event(next), extra))?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        changed?;
        self.invalidate_members(&current.members.iter().map(|m| m.member_id).collect::<Vec<_>>()).await;
        self.policy(current.id).await?.ok_or(StoreError::NotFound("no such policy"))
    }

    /// Adds a dependant to a policy period, within the plan's maximum.
    pub async fn add_member(
        &self,
        policy: &Policy,
        member: &NewMember,
        enrolled_on: Date,
        max_members: u32,
        actor: &Actor,
    ) -> Result<Policy, StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            // Lock the policy, then count: two concurrent additions cannot both fit the last place.
            let locked = sqlx::query("UPDATE policies SET version = version + 1, updated_at = $2 WHERE id = $1 AND version = $3")
                .bind(policy.id)
                .bind(now)
                .bind(policy.version)
                .execute(&mut *tx)
                .await?;
            if locked.rows_affected() == 0 {
                return Err(StoreError::Conflict("the policy changed meanwhile; read it again".into()));
            }
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM policy_members WHERE policy_id = $1")
                .bind(policy.id)
                .fetch_one(&mut *tx)
                .await?;
            if count >= i64::from(max_members) {
                return Err(StoreError::Conflict(format!("the plan allows at most {max_members} members")));
            }
            let code: String = sqlx::query_scalar("UPDATE insurers SET member_seq = member_seq + 1 WHERE id = $1 RETURNING code")
                .bind(policy.insurer_id)
                .fetch_one(&mut *tx)
                .await?;
            let seq: i64 = sqlx::query_scalar("SELECT member_seq FROM insurers WHERE id = $1")
                .bind(policy.insurer_id)
                .fetch_one(&mut *tx)
                .await?;
            let member_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO members (id, insurer_id, member_number, given_name, family_name, date_of_birth, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(member_id)
            .bind(policy.insurer_id)
            .bind(policy::member_number(&code, seq as u64))
            .bind(&member.given_name)
            .bind(&member.family_name)
            .bind(member.date_of_birth)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO policy_members (policy_id, member_id, relationship, enrolled_on, status, status_on) \
                 VALUES ($1, $2, $3, $4, 'active', NULL)",
            )
            .bind(policy.id)
            .bind(member_id)
            .bind(relationship_text(member.relationship))
            .bind(enrolled_on)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO policy_history (id, policy_id, member_id, at, changed_by, from_status, to_status, reason, request_id) \
                 VALUES ($1, $2, $3, $4, $5, NULL, 'active', 'member added', $6)",
            )
            .bind(Uuid::now_v7())
            .bind(policy.id)
            .bind(member_id)
            .bind(now)
            .bind(actor.user_id)
            .bind(&actor.request_id)
            .execute(&mut *tx)
            .await?;
            let updated = load_policy!(tx, policy.id)?.ok_or(StoreError::NotFound("no such policy"))?;
            write_outbox!(tx, actor, policy_event(&updated, "insurance.policy_member_added.v1", serde_json::json!({"member_id": member_id})))?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.policy(policy.id).await?.ok_or(StoreError::NotFound("no such policy"))
    }

    /// Sets a member's status from a day on, on every policy period that has not ended by then.
    pub async fn change_member_status(
        &self,
        member_id: Uuid,
        status: MemberStatus,
        on: Date,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Vec<Uuid>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let status_on = (status != MemberStatus::Active).then_some(on);
        let policies: Result<Vec<Uuid>, StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let policies: Vec<Uuid> = sqlx::query_scalar(
                "SELECT pm.policy_id FROM policy_members pm JOIN policies p ON p.id = pm.policy_id \
                 WHERE pm.member_id = $1 AND p.expiry_date >= $2 ORDER BY pm.policy_id",
            )
            .bind(member_id)
            .bind(on)
            .fetch_all(&mut *tx)
            .await?;
            for policy_id in &policies {
                sqlx::query("UPDATE policy_members SET status = $1, status_on = $2 WHERE policy_id = $3 AND member_id = $4")
                    .bind(status.as_str())
                    .bind(status_on)
                    .bind(policy_id)
                    .bind(member_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO policy_history (id, policy_id, member_id, at, changed_by, from_status, to_status, reason, request_id) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8)",
                )
                .bind(Uuid::now_v7())
                .bind(policy_id)
                .bind(member_id)
                .bind(now)
                .bind(actor.user_id)
                .bind(status.as_str())
                .bind(reason)
                .bind(&actor.request_id)
                .execute(&mut *tx)
                .await?;
                let insurer: Uuid = sqlx::query_scalar("SELECT insurer_id FROM policies WHERE id = $1")
                    .bind(policy_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let event = Event {
                    event_type: "insurance.member_status_changed.v1",
                    aggregate_type: "policy",
                    aggregate_id: *policy_id,
                    tenant_id: insurer,
                    payload: serde_json::json!({"policy_id": policy_id, "member_id": member_id, "status": status, "status_on": status_on.map(|d| d.to_string())}),
                };
                write_outbox!(tx, actor, event)?;
            }
            tx.commit().await?;
            Ok(policies)
        }
        .await
        });
        let policies = policies?;
        self.invalidate_members(&[member_id]).await;
        Ok(policies)
    }

    /// The insurer a member belongs to.
    pub async fn member_insurer(&self, member_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_scalar("SELECT insurer_id FROM members WHERE id = $1")
                .bind(member_id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// What covers the member with this number on `date`: the period containing the date, or
    /// else their latest period (which then answers `no_active_policy`). `None` for an unknown
    /// number.
    pub async fn coverage(&self, member_number: &str, date: Date) -> Result<Option<Coverage>, StoreError> {
        let found: Option<(Uuid, Uuid)> = on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT pm.member_id, pm.policy_id FROM members m JOIN policy_members pm ON pm.member_id = m.id \
                 JOIN policies p ON p.id = pm.policy_id WHERE m.member_number = $1 \
                 ORDER BY CASE WHEN p.start_date <= $2 AND p.expiry_date >= $2 THEN 0 ELSE 1 END, \
                 CASE WHEN p.status = 'pending' THEN 1 ELSE 0 END, p.start_date DESC LIMIT 1",
            )
            .bind(member_number)
            .bind(date)
            .fetch_optional(pool)
            .await
        })?;
        let Some((member_id, policy_id)) = found else {
            return Ok(None);
        };
        let Some(policy) = self.policy(policy_id).await? else {
            return Ok(None);
        };
        let Some(member) = policy.members.iter().find(|m| m.member_id == member_id).cloned() else {
            return Ok(None);
        };
        let cover = Cover {
            policy_status: policy.status,
            policy_start: policy.start_date,
            policy_expiry: policy.expiry_date,
            policy_ended_on: policy.ended_on,
            enrolled_on: member.enrolled_on,
            member_status: member.status,
            member_status_on: member.status_on,
        };
        Ok(Some(Coverage { member, policy, cover }))
    }
}

impl InsuranceStore {
    /// The member with this number. Numbers never change, so a found member is cached for
    /// good (a miss is not cached: the number may be issued later).
    pub async fn member_id(&self, member_number: &str) -> Result<Option<Uuid>, StoreError> {
        let key = format!("insurance:member-number:{member_number}");
        let found = medcov_cache::read_through(self.cache(), &key, &[], std::time::Duration::from_secs(3600), async {
            let id: Option<Uuid> = on_pool!(&self.db, |pool| {
                sqlx::query_scalar("SELECT id FROM members WHERE member_number = $1")
                    .bind(member_number)
                    .fetch_optional(pool)
                    .await
            })
            .map_err(|e| Some(StoreError::from(e)))?;
            id.map(|i| medcov_cache::Bytes::from(i.to_string())).ok_or(None)
        })
        .await;
        match found {
            Ok(bytes) => Ok(std::str::from_utf8(&bytes).ok().and_then(|s| Uuid::parse_str(s).ok())),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }
}
