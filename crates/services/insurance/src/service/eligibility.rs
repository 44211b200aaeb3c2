//! Eligibility: is a member covered on a day at a hospital, and for each service asked
//! about, covered or why not, with what is left and an estimate of the member's share.
//!
//! The hot path: what every answer about a member on a day rests on (their cover, their
//! policy's plan version and what they have used) is read once and cached (in process, or in
//! Redis when distributed) under the member's tag, and every write it depends on (a claim
//! adjudicated or reversed, an approval decided, a policy or member status change)
//! invalidates the member's entries at once. The answer itself is computed from it for each
//! question, with the plan version's rules kept in process (they never change): questions
//! that differ only in their services or prices cost no database read.

use std::time::Duration;

use medcov_http::ApiError;
use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::adjudication::Accumulators;
use crate::domain::eligibility::{self, Answer, ServiceQuery};
use crate::domain::plan::VisitType;
use crate::domain::policy::{Cover, PolicyStatus};
use crate::store;

/// How long a member's standing may be served from the cache. Every write it depends on
/// invalidates it at once; the limit only bounds approvals that expire with time.
pub const ELIGIBILITY_TTL: Duration = Duration::from_secs(60);

/// The cache tag of everything cached about one member.
pub fn member_tag(member: Uuid) -> String {
    format!("insurance:member:{member}")
}

/// A question about one member.
#[derive(Debug, Clone)]
pub struct Question {
    /// As asked (looked up trimmed).
    pub member_number: String,
    pub date: Date,
    pub hospital_id: Uuid,
    pub visit_type: VisitType,
    pub services: Vec<ServiceQuery>,
    /// A claim of the member's to leave out of what was used (to compare with its
    /// adjudication); ignored unless it is the member's and adjudicated.
    pub excluding_claim: Option<Uuid>,
}

/// The answer, with the member and the policy period it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eligibility {
    pub member_id: Uuid,
    pub member_number: String,
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub policy_number: String,
    pub policy_status: PolicyStatus,
    /// The plan version the answer follows.
    pub plan_version_id: Uuid,
    pub date: Date,
    pub answer: Answer,
}

/// What every answer about a member on a day rests on, whatever is asked about: cached under
/// the member's tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Standing {
    member_id: Uuid,
    member_number: String,
    insurer_id: Uuid,
    policy_id: Uuid,
    policy_number: String,
    policy_status: PolicyStatus,
    plan_version_id: Uuid,
    cover: Cover,
    used: Accumulators,
}

medcov_cache::json_codec!(Standing);

/// Where the standing of `number` on `date` (without the claim `excluding`) is cached.
fn standing_key(number: &str, date: Date, excluding: Option<Uuid>) -> String {
    let canonical = serde_json::json!([number, date.to_string(), excluding]);
    format!("insurance:standing:{}", super::digest(canonical.to_string().as_bytes()))
}

impl InsuranceService {
    /// Answers an eligibility question from the member's standing on the day, cached. An
    /// unknown member is 404.
    pub async fn eligibility(&self, question: &Question) -> Result<Eligibility, ApiError> {
        let number = question.member_number.trim();
        let member_id = self.member_id(number).await?.ok_or_else(|| ApiError::NotFound("no such member".into()))?;
        let tags = [member_tag(member_id)];
        let key = standing_key(number, question.date, question.excluding_claim);
        let standing = medcov_cache::read_through(self.cache(), &key, &tags, ELIGIBILITY_TTL, async {
            let coverage = self
                .coverage(number, question.date)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such member".into()))?;
            let today = self.today_of(coverage.policy.insurer_id).await?;
            let mut used = self.usage(coverage.policy.id, coverage.member.member_id, today).await?;
            if let Some(claim) = question.excluding_claim {
                used = self.usage_without(used, claim, coverage.member.member_id).await?;
            }
            Ok::<_, ApiError>(Standing {
                member_id: coverage.member.member_id,
                member_number: coverage.member.member_number,
                insurer_id: coverage.policy.insurer_id,
                policy_id: coverage.policy.id,
                policy_number: coverage.policy.number,
                policy_status: coverage.policy.status,
                plan_version_id: coverage.policy.plan_version_id,
                cover: coverage.cover,
                used,
            })
        })
        .await?;
        let rules = self
            .plan_rules(standing.plan_version_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
        let asked = eligibility::Question {
            date: question.date,
            hospital_id: question.hospital_id,
            visit_type: question.visit_type,
            services: &question.services,
        };
        let answer = eligibility::answer(&rules, &standing.cover, &standing.used, &asked);
        Ok(Eligibility {
            member_id: standing.member_id,
            member_number: standing.member_number,
            insurer_id: standing.insurer_id,
            policy_id: standing.policy_id,
            policy_number: standing.policy_number,
            policy_status: standing.policy_status,
            plan_version_id: standing.plan_version_id,
            date: question.date,
            answer,
        })
    }

    /// `used` without what the member's adjudicated claim `claim` took (as is, when the claim
    /// is another member's or not adjudicated).
    async fn usage_without(&self, used: Accumulators, claim: Uuid, member: Uuid) -> Result<Accumulators, ApiError> {
        let Some(found) = store::claim(&self.db, claim).await? else { return Ok(used) };
        if found.member_id != member || found.status != crate::domain::claim::ClaimStatus::Adjudicated {
            return Ok(used);
        }
        let mut tx = self.db.begin_read().await?;
        let entries = store::ledger_entries_of(&mut tx, claim, found.adjudication_no).await?;
        drop(tx);
        Ok(crate::domain::ledger::without(&used, &entries))
    }

    /// What a member and their policy have used this period, reservations of approvals still
    /// valid on `today` included.
    pub async fn usage(&self, policy: Uuid, member: Uuid, today: Date) -> Result<Accumulators, ApiError> {
        Ok(store::ledger_totals(&self.db, policy, member, today).await?.usage(member))
    }
}
