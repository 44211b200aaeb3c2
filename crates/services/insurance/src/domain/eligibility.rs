//! Eligibility: is a member covered on a date at a hospital, and for each service asked about,
//! covered or why not, with what is left of their deductible, ceilings and limits, and an
//! estimate of their share for a stated price. The answer runs the adjudication engine on each
//! service alone, so an estimate and a later adjudication follow the same rules.

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use super::adjudication::{Accumulators, Adjustment, Approval, Line, Reason, evaluate, waiting_period_end};
use super::plan::{Network, PlanRules, Setting, VisitType};
use super::policy::{Cover, NotCovered};

/// A service asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceQuery {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    /// A price to estimate the member's share for, in minor units.
    #[serde(default)]
    #[schema(example = 250000)]
    pub price: Option<i64>,
    /// The diagnosis, when known (exclusions by diagnosis are checked only then).
    #[serde(default)]
    pub diagnosis: Option<String>,
}

/// What is left of an annual amount; `None` means there is no such limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Left {
    pub inpatient: Option<i64>,
    pub outpatient: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    pub price: i64,
    pub insurer_pays: i64,
    pub patient_pays: i64,
    /// Why the member would pay what they pay: each cut with its code and amount.
    #[serde(default)]
    pub adjustments: Vec<Adjustment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceAnswer {
    pub service_code: String,
    pub category: String,
    pub covered: bool,
    pub reason: Option<Reason>,
    pub preauth_required: bool,
    /// When the category's waiting period ends for this member, if it has one.
    #[schema(value_type = Option<String>, format = Date)]
    pub waiting_period_ends: Option<Date>,
    /// Services of the category left this year; `None` when unlimited.
    pub count_left: Option<i64>,
    /// Insurer payments for the category left this year; `None` when unlimited.
    pub amount_left: Option<i64>,
    /// With a stated price: the split if it were claimed now.
    pub estimate: Option<Estimate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Answer {
    pub covered: bool,
    pub reason: Option<Reason>,
    pub network: Network,
    pub deductible_left_member: i64,
    pub deductible_left_family: Option<i64>,
    pub member_ceiling_left: Left,
    pub policy_ceiling_left: Left,
    pub services: Vec<ServiceAnswer>,
}

pub struct Question<'a> {
    pub date: Date,
    pub hospital_id: Uuid,
    pub visit_type: VisitType,
    pub services: &'a [ServiceQuery],
}

fn left(limit: Option<i64>, used: i64) -> Option<i64> {
    limit.map(|l| (l - used).max(0))
}

/// Answers an eligibility question for one member.
pub fn answer(plan: &PlanRules, cover: &Cover, used: &Accumulators, question: &Question<'_>) -> Answer {
    let network = plan.network_of(question.hospital_id);
    let reason = match cover.on(question.date) {
        Ok(()) => None,
        Err(NotCovered::NoActivePolicy) => Some(Reason::NoActivePolicy),
        Err(NotCovered::MemberInactive) => Some(Reason::MemberInactive),
    };
    let services = question
        .services
        .iter()
        .map(|service| {
            let rule = plan.categories.get(&service.category);
            let price = service.price.unwrap_or(0).max(0);
            let preauth_required = question.visit_type != VisitType::Emergency
                && rule.is_some_and(|r| r.preauth_required || r.preauth_above.is_some_and(|above| price > above));
            let line = Line {
                service_code: service.service_code.clone(),
                category: service.category.clone(),
                quantity: 1,
                unit_price: price,
                diagnosis: service.diagnosis.clone().unwrap_or_default(),
                date_of_service: question.date,
                // Estimate as if the approval were granted; `preauth_required` says it is needed.
                approval: preauth_required.then(|| Approval {
                    service_code: service.service_code.clone(),
                    approved_amount: price.max(1),
                    valid_until: question.date,
                }),
            };
            let (result, _) = evaluate(plan, cover, used, network, question.visit_type, &line);
            let usage = used.category(&service.category);
            ServiceAnswer {
                service_code: service.service_code.clone(),
                category: service.category.clone(),
                covered: result.rejection.is_none(),
                reason: result.rejection,
                preauth_required,
                waiting_period_ends: rule
                    .filter(|r| r.waiting_days > 0)
                    .map(|r| waiting_period_end(cover.enrolled_on, r.waiting_days)),
                count_left: rule.and_then(|r| r.limit_count).map(|l| (i64::from(l) - usage.count).max(0)),
                amount_left: rule.and_then(|r| left(r.limit_amount, usage.amount)),
                estimate: service.price.map(|price| Estimate {
                    price,
                    insurer_pays: result.insurer_pays,
                    patient_pays: result.patient_pays,
                    adjustments: result.adjustments.clone(),
                }),
            }
        })
        .collect();
    Answer {
        covered: reason.is_none(),
        reason,
        network,
        deductible_left_member: (plan.deductible_member - used.member_deductible).max(0),
        deductible_left_family: left(plan.deductible_family, used.family_deductible),
        member_ceiling_left: Left {
            inpatient: left(plan.ceilings.member(Setting::Inpatient), used.member_ceiling.inpatient),
            outpatient: left(plan.ceilings.member(Setting::Outpatient), used.member_ceiling.outpatient),
        },
        policy_ceiling_left: Left {
            inpatient: left(plan.ceilings.policy(Setting::Inpatient), used.policy_ceiling.inpatient),
            outpatient: left(plan.ceilings.policy(Setting::Outpatient), used.policy_ceiling.outpatient),
        },
        services,
    }
}
