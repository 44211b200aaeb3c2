//! Claims: submitted and adjudicated in one transaction (idempotent on the hospital's
//! reference), adjudicated again by a claims officer with audited overrides, sent to review,
//! reversed or withdrawn (the ledger gets the negation; nothing is deleted), and paid.
//!
//! Adjudication ([`InsuranceService::adjudicate`]) runs inside the caller's transaction:
//! lock the member's policy row → read the cover, the rules, the approvals the lines cite and
//! what the member and the policy have used → run the engine → write the ledger entries, the
//! claim's result, its history and `claim_adjudicated`. Two claims of one policy are
//! adjudicated one after the other, so a ceiling is never overshot.

use std::collections::{BTreeMap, BTreeSet};

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_store::Tx;
use medcov_store::outbox::{self, Actor};
use serde_json::json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::adjudication::{Accumulators, Override};
use crate::domain::claim::{self, Basis, Claim, ClaimStatus, HistoryEntry, NewClaim, Submission};
use crate::domain::ledger;
use crate::domain::plan::PlanRules;
use crate::domain::policy::{Cover, Coverage};
use crate::domain::preauth::Preauth;
use crate::events::{ClaimAdjudicated, ClaimPaid, ClaimRefused, ClaimReversed};
use crate::store::{self, Adjudicated, LedgerKey};

fn no_such_claim() -> ApiError {
    ApiError::NotFound("no such claim".into())
}

impl InsuranceService {
    /// Submits a hospital's claim for the member with its number (trimmed), adjudicated at
    /// once. `true` for a new claim; a repeat of a reference with the same request returns the
    /// first claim (`false`); another request under it is refused (422).
    pub async fn submit(&self, submission: Submission, actor: &Actor) -> Result<(Claim, bool), ApiError> {
        let first_day = submission.first_day().unwrap_or_else(super::today);
        let coverage = self.coverage(&submission.member_number, first_day).await?;
        let new = submission.claim_for(coverage.as_ref())?;
        self.submit_claim(&new, actor).await
    }

    /// Billing asks for the claim of an insured patient's invoice (`requested_for`): submitted
    /// as a hospital's would be, or answered with `claim_refused` when it cannot be taken.
    pub async fn claim_requested(
        &self,
        submission: Submission,
        requested_for: Uuid,
        actor: &Actor,
    ) -> Result<(), ApiError> {
        let coverage: Option<Coverage> = match submission.first_day() {
            Some(day) => self.coverage(&submission.member_number, day).await?,
            None => None,
        };
        let refuse = |reason: String| ClaimRefused {
            hospital_id: submission.hospital_id,
            reference: submission.reference.clone(),
            reason,
            requested_for,
        };
        let refusal = match submission.clone().claim_for(coverage.as_ref()) {
            Ok(new) => match self.submit_claim(&new, actor).await {
                Ok(_) => return Ok(()),
                // The reference was used for another claim by the hospital itself.
                Err(ApiError::Validation(errors)) => refuse(first_reason(errors)),
                Err(e) => return Err(e),
            },
            Err(Rejection::Invalid(errors)) => refuse(first_reason(errors)),
            Err(other) => return Err(other.into()),
        };
        self.emit(&refusal, actor, None).await
    }

    /// Submits and adjudicates a claim in one transaction.
    async fn submit_claim(&self, new: &NewClaim, actor: &Actor) -> Result<(Claim, bool), ApiError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let mut tx = self.db.begin_write().await?;
        if let Some((existing, hash)) = store::claim_by_reference_in(&mut tx, new.hospital_id, &new.reference).await? {
            claim::check_repeat(&hash, &new.request_hash)?;
            drop(tx);
            return Ok((self.claim(existing).await?.ok_or_else(no_such_claim)?, false));
        }
        match store::insert_claim(&mut tx, id, new, actor.user_id, now).await {
            // Two submissions of one reference at once: the loser sees the winner's claim.
            Err(e) if e.is_duplicate() => {
                drop(tx);
                let Some((existing, hash)) =
                    store::claim_by_reference(&self.db, new.hospital_id, &new.reference).await?
                else {
                    return Err(e.into());
                };
                claim::check_repeat(&hash, &new.request_hash)?;
                return Ok((self.claim(existing).await?.ok_or_else(no_such_claim)?, false));
            }
            other => other?,
        }
        store::append_claim_history(&mut tx, id, actor, "submitted", &json!({"reference": new.reference}), now).await?;
        let touched = self.adjudicate_in(&mut tx, id, &[], actor, now).await?;
        tx.commit().await?;
        self.invalidate_members(&touched).await;
        Ok((self.claim(id).await?.ok_or_else(no_such_claim)?, true))
    }

    /// A claims officer adjudicates a claim in review (or submitted) again, with overrides.
    pub async fn adjudicate(&self, id: Uuid, overrides: &[Override], actor: &Actor) -> Result<Claim, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        let touched = self.adjudicate_in(&mut tx, id, overrides, actor, now).await?;
        tx.commit().await?;
        self.invalidate_members(&touched).await;
        self.claim(id).await?.ok_or_else(no_such_claim)
    }

    /// Adjudicates the claim `id` inside `tx`: lock the policy, read what the engine needs
    /// ([`load_basis`]), run the engine (`domain::claim::adjudicate`), then write the ledger
    /// entries, the result, the history and `claim_adjudicated`. Returns the members whose
    /// cached answers are now stale.
    async fn adjudicate_in(
        &self,
        tx: &mut Tx,
        id: Uuid,
        overrides: &[Override],
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, ApiError> {
        let claim = store::claim_in(tx, id).await?.ok_or_else(no_such_claim)?;
        claim::check_adjudicable(claim.status)?;
        let (result, plan_version_id, touched) = match claim.policy_id {
            None => (claim::reject_uncovered(&claim), None, Vec::new()),
            Some(policy_id) => {
                // The lock: claims of one policy are adjudicated one at a time.
                store::lock_policy(tx, policy_id).await?;
                let today = self.today_of(claim.insurer_id).await?;
                let loaded = load_basis(tx, &claim, policy_id, today).await?;
                let result = claim::adjudicate(&claim, &loaded.basis(), overrides)?;
                (result, Some(loaded.plan_version_id), loaded.members)
            }
        };
        let number = claim.adjudication_no + 1;
        if let Some(policy) = claim.policy_id {
            let key = LedgerKey {
                policy,
                member: claim.member_id,
                claim: claim.id,
                adjudication_no: number,
                reversal: false,
            };
            store::append_ledger(tx, &key, &ledger::entries(&result.usage), now).await?;
        }
        let adjudicated = Adjudicated { result: &result, number, plan_version_id, at: now };
        store::record_adjudication(tx, claim.id, &adjudicated).await?;
        let detail = json!({
            "adjudication_no": number,
            "outcome": result.outcome(),
            "insurer_total": result.insurer_total(),
            "patient_total": result.patient_total(),
            "overrides": overrides,
        });
        store::append_claim_history(tx, claim.id, actor, claim::adjudicated_action(overrides), &detail, now).await?;
        outbox::write(tx, actor, &ClaimAdjudicated::of(&claim, &result, number)).await?;
        Ok(touched)
    }

    /// Undoes an adjudication of a claim (as the caller read it): appends the negation of its
    /// ledger entries, releases the approvals it used, and leaves the claim `to`: `submitted`
    /// (reversed), `in_review` (sent to review) or `withdrawn` (its invoice was voided).
    pub async fn unadjudicate(
        &self,
        claim: &Claim,
        to: ClaimStatus,
        reason: &str,
        actor: &Actor,
    ) -> Result<Claim, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        if !store::set_claim_status(&mut tx, claim, ClaimStatus::Adjudicated, to).await? {
            return Err(claim::not_reversible().into());
        }
        let mut touched = Vec::new();
        if let Some(policy) = claim.policy_id {
            store::lock_policy(&mut tx, policy).await?;
            let written = store::ledger_entries_of(&mut tx, claim.id, claim.adjudication_no).await?;
            let negated: Vec<ledger::Entry> = written.iter().map(ledger::Entry::negated).collect();
            let key = LedgerKey {
                policy,
                member: claim.member_id,
                claim: claim.id,
                adjudication_no: claim.adjudication_no,
                reversal: true,
            };
            store::append_ledger(&mut tx, &key, &negated, now).await?;
            store::release_preauths(&mut tx, claim.id).await?;
            touched = store::policy_member_ids_in(&mut tx, policy).await?;
        }
        let detail = json!({"adjudication_no": claim.adjudication_no, "reason": reason});
        store::append_claim_history(&mut tx, claim.id, actor, claim::unadjudicated_action(to), &detail, now).await?;
        let event = ClaimReversed {
            claim_id: claim.id,
            insurer_id: claim.insurer_id,
            hospital_id: claim.hospital_id,
            reference: claim.reference.clone(),
            adjudication_no: claim.adjudication_no,
            reason: reason.to_owned(),
            status: to,
        };
        outbox::write(&mut tx, actor, &event).await?;
        tx.commit().await?;
        self.invalidate_members(&touched).await;
        self.claim(claim.id).await?.ok_or_else(no_such_claim)
    }

    /// Records that the insurer paid an adjudicated claim (as the caller read it).
    pub async fn mark_paid(&self, claim: &Claim, payment_reference: &str, actor: &Actor) -> Result<Claim, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        if !store::set_claim_status(&mut tx, claim, ClaimStatus::Adjudicated, ClaimStatus::Paid).await? {
            return Err(claim::not_payable().into());
        }
        let detail = json!({"payment_reference": payment_reference});
        store::append_claim_history(&mut tx, claim.id, actor, "paid", &detail, now).await?;
        let event = ClaimPaid {
            claim_id: claim.id,
            insurer_id: claim.insurer_id,
            hospital_id: claim.hospital_id,
            reference: claim.reference.clone(),
            insurer_total: claim.insurer_total,
            currency: claim.currency.clone(),
            payment_reference: payment_reference.to_owned(),
        };
        outbox::write(&mut tx, actor, &event).await?;
        tx.commit().await?;
        self.claim(claim.id).await?.ok_or_else(no_such_claim)
    }

    /// Billing settled the insurer's share of an invoice by `payment`: its adjudicated claim is
    /// paid (a claim paid already, or not adjudicated, stays as it is).
    pub async fn claim_settled(&self, claim: Uuid, payment: Uuid, actor: &Actor) -> Result<(), ApiError> {
        let Some(claim) = self.claim(claim).await? else {
            return Ok(());
        };
        if claim.status != ClaimStatus::Adjudicated {
            return Ok(());
        }
        match self.mark_paid(&claim, &payment.to_string(), actor).await {
            Ok(_) | Err(ApiError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Billing voided the invoice of a claim: an adjudicated claim is withdrawn, its
    /// adjudication reversed.
    pub async fn claim_withdrawn(&self, claim: Uuid, reason: &str, actor: &Actor) -> Result<(), ApiError> {
        let Some(claim) = self.claim(claim).await? else {
            return Ok(());
        };
        if claim.status != ClaimStatus::Adjudicated {
            return Ok(());
        }
        match self.unadjudicate(&claim, ClaimStatus::Withdrawn, reason, actor).await {
            Ok(_) | Err(ApiError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn claim(&self, id: Uuid) -> Result<Option<Claim>, ApiError> {
        Ok(store::claim(&self.db, id).await?)
    }

    /// Claims of an insurer or of hospitals (or all), newest first.
    pub async fn claims(
        &self,
        insurer: Option<Uuid>,
        hospitals: Option<&[Uuid]>,
        filter: &store::ClaimFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Claim>, ApiError> {
        Ok(store::claims(&self.db, insurer, hospitals, filter, limit, offset).await?)
    }

    /// The history of a claim, oldest first.
    pub async fn claim_history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, ApiError> {
        Ok(store::claim_history(&self.db, id).await?)
    }
}

/// What the engine needs about a claim's member, read under the policy's lock.
struct Loaded {
    plan_version_id: Uuid,
    rules: PlanRules,
    cover: Cover,
    used: Accumulators,
    accepted: BTreeSet<(String, Date)>,
    approvals: BTreeMap<Uuid, Preauth>,
    /// Every member of the policy: their cached answers go stale with the claim.
    members: Vec<Uuid>,
}

impl Loaded {
    fn basis(&self) -> Basis<'_> {
        Basis {
            rules: &self.rules,
            cover: &self.cover,
            used: &self.used,
            accepted: &self.accepted,
            approvals: &self.approvals,
        }
    }
}

/// Reads, inside `tx` (which holds the policy's lock), the member's cover and the plan's
/// rules, the approvals the claim may cite (marking them used: their reservation gives way
/// to the claim's own amounts), what the member and the policy have used since, and the
/// member's lines already accepted on other claims.
async fn load_basis(tx: &mut Tx, claim: &Claim, policy_id: Uuid, today: Date) -> Result<Loaded, ApiError> {
    let policy = store::policy_in(tx, policy_id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("claim {} names a policy that does not exist", claim.id)))?;
    let member = policy
        .members
        .iter()
        .find(|m| m.member_id == claim.member_id)
        .ok_or_else(|| ApiError::internal(format!("the member of claim {} is not on its policy", claim.id)))?;
    let cover = policy.cover_of(member);
    let rules = store::plan_rules_in(tx, policy.plan_version_id).await?;
    let mut approvals = BTreeMap::new();
    for preauth_id in claim.cited_preauths() {
        if let Some(preauth) = store::preauth_in(tx, preauth_id).await?
            && preauth.usable_by(claim.member_id, claim.id)
        {
            approvals.insert(preauth_id, preauth);
        }
    }
    for preauth_id in approvals.keys() {
        store::use_preauth(tx, *preauth_id, claim.id).await?;
    }
    let used = store::ledger_totals_in(tx, policy_id, claim.member_id, today).await?.usage(claim.member_id);
    let others = store::accepted_claims_in(tx, claim.member_id, claim.id).await?;
    let accepted = claim::accepted_lines(others.iter().map(|(lines, results)| (&lines[..], results.as_deref())));
    Ok(Loaded {
        plan_version_id: policy.plan_version_id,
        rules,
        cover,
        used,
        accepted,
        approvals,
        members: policy.member_ids(),
    })
}

/// The reason of the first invalid field: what a refusal tells billing.
fn first_reason(errors: Vec<medcov_domain::FieldError>) -> String {
    errors.into_iter().next().map(|e| e.reason).unwrap_or_default()
}
