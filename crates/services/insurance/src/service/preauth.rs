//! Pre-authorisations: a request is answered at once where the rules can (approved or
//! denied) and waits for a claims officer otherwise; an approval reserves its amount against
//! the member's and the policy's ceilings until a claim uses it or it expires.

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::preauth::{self, Decision, Preauth, PreauthStatus, Request, Requested, Verdict};
use crate::events::PreauthDecided;
use crate::store;

impl InsuranceService {
    /// Asks for approval of planned care for the member with this number (trimmed).
    pub async fn request_preauth(
        &self,
        member_number: &str,
        request: &Request,
        actor: &Actor,
    ) -> Result<Preauth, ApiError> {
        let coverage = self
            .coverage(member_number, request.planned_date)
            .await?
            .ok_or_else(|| Rejection::field("member_number", "no such member"))?;
        let version = self
            .plan_version(coverage.policy.plan_version_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
        let today = self.today_of(coverage.policy.insurer_id).await?;
        let used = self.usage(coverage.policy.id, coverage.member.member_id, today).await?;
        let now = OffsetDateTime::now_utc();
        let Requested { preauth, reserved } =
            preauth::request(&version.rules, &coverage, &used, request, Uuid::now_v7(), (now, today));
        let mut tx = self.db.begin_write().await?;
        store::insert_preauth(&mut tx, &preauth, reserved, actor.user_id).await?;
        if preauth.status != PreauthStatus::Pending {
            outbox::write(&mut tx, actor, &PreauthDecided::of(&preauth, &coverage.member.member_number)).await?;
        }
        tx.commit().await?;
        // A reservation changes what the whole policy has left: every member's answers go.
        self.invalidate_members(&coverage.policy.member_ids()).await;
        Ok(preauth)
    }

    pub async fn preauth(&self, id: Uuid) -> Result<Option<Preauth>, ApiError> {
        Ok(store::preauth(&self.db, id).await?)
    }

    /// A claims officer decides a pending request (as the caller read it): approves it in
    /// full, in part (per line, with a reason) or denies it (with a reason).
    pub async fn decide_preauth(
        &self,
        current: &Preauth,
        verdict: Verdict,
        amounts: Option<&[i64]>,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Preauth, ApiError> {
        let ruling = preauth::rule(current, verdict, amounts, reason)?;
        let policy = self.policy(current.policy_id).await?;
        let rules = match policy.as_ref().map(|p| p.plan_version_id) {
            Some(v) => self.plan_version(v).await?.map(|v| v.rules),
            None => None,
        }
        .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
        let now = OffsetDateTime::now_utc();
        let today = self.today_of(current.insurer_id).await?;
        let decision = Decision::of(current, ruling, &rules, today);
        let decided = decision.applied_to(current, actor.user_id, now);
        let mut tx = self.db.begin_write().await?;
        if !store::decide_preauth(&mut tx, &decided, decision.reserved).await? {
            return Err(ApiError::Conflict("the request was already decided".into()));
        }
        let member_number = policy
            .as_ref()
            .and_then(|p| p.members.iter().find(|m| m.member_id == current.member_id))
            .map(|m| m.member_number.clone())
            .unwrap_or_default();
        outbox::write(&mut tx, actor, &PreauthDecided::of(&decided, &member_number)).await?;
        tx.commit().await?;
        // An approval reserves against the policy's ceilings (a denial releases): every
        // member's cached answers go, not only the asking member's.
        let members = policy.map(|p| p.member_ids()).unwrap_or_else(|| vec![current.member_id]);
        self.invalidate_members(&members).await;
        self.preauth(current.id).await?.ok_or_else(|| ApiError::NotFound("no such pre-authorisation".into()))
    }
}
