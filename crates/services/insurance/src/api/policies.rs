//! `/policies` and `/members`: policy periods, their members, status changes and renewals.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::{Authorized, Principal, Role};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{InsurerAdmins, InsurerStaff, Sellers, actor, limit_offset, own_insurer};
use crate::domain::enrolment::{self, Addition, Application};
use crate::domain::policy::{self, MemberStatus, PolicyStatus, Relationship};
use crate::service::InsuranceService;

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy))
        .routes(routes!(change_status))
        .routes(routes!(renew))
        .routes(routes!(add_member))
        .routes(routes!(change_member_status))
        .with_state(service)
}

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

impl From<policy::PolicyMember> for PolicyMember {
    fn from(m: policy::PolicyMember) -> Self {
        PolicyMember {
            member_id: m.member_id,
            member_number: m.member_number,
            given_name: m.given_name,
            family_name: m.family_name,
            date_of_birth: m.date_of_birth,
            relationship: m.relationship,
            enrolled_on: m.enrolled_on,
            status: m.status,
            status_on: m.status_on,
        }
    }
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

impl From<policy::Policy> for Policy {
    fn from(p: policy::Policy) -> Self {
        Policy {
            id: p.id,
            insurer_id: p.insurer_id,
            number: p.number,
            plan_id: p.plan_id,
            plan_version_id: p.plan_version_id,
            holder_id: p.holder_id,
            agent_id: p.agent_id,
            start_date: p.start_date,
            expiry_date: p.expiry_date,
            premium: p.premium,
            currency: p.currency,
            status: p.status,
            ended_on: p.ended_on,
            renewal_of: p.renewal_of,
            version: p.version,
            members: p.members.into_iter().map(PolicyMember::from).collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    #[schema(example = "Amina")]
    pub given_name: String,
    #[schema(example = "Otieno")]
    pub family_name: String,
    #[schema(value_type = String, format = Date, example = "1988-04-12")]
    pub date_of_birth: Date,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependant {
    #[schema(example = "Baraka")]
    pub given_name: String,
    #[schema(example = "Otieno")]
    pub family_name: String,
    #[schema(value_type = String, format = Date, example = "2015-09-30")]
    pub date_of_birth: Date,
    /// Not `holder`.
    pub relationship: Relationship,
}

impl From<&Person> for enrolment::Person {
    fn from(p: &Person) -> Self {
        enrolment::Person {
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            date_of_birth: p.date_of_birth,
        }
    }
}

impl From<&Dependant> for enrolment::Dependant {
    fn from(d: &Dependant) -> Self {
        enrolment::Dependant {
            person: enrolment::Person {
                given_name: d.given_name.clone(),
                family_name: d.family_name.clone(),
                date_of_birth: d.date_of_birth,
            },
            relationship: d.relationship,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "plan_id": "0190f5a4-0000-7000-8000-0000000000bb",
    "start_date": "2026-01-01",
    "holder": {"given_name": "Amina", "family_name": "Otieno", "date_of_birth": "1988-04-12"},
    "dependants": [{"given_name": "Baraka", "family_name": "Otieno", "date_of_birth": "2015-09-30", "relationship": "child"}]
}))]
pub struct NewPolicyRequest {
    pub plan_id: Uuid,
    /// The first covered day; the period is one year. The plan version in effect on this day
    /// applies for the whole period.
    #[schema(value_type = String, format = Date)]
    pub start_date: Date,
    pub holder: Person,
    #[serde(default)]
    pub dependants: Vec<Dependant>,
    /// The selling agent (an agent selling is recorded as the agent by default).
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

async fn visible_policy(
    service: &InsuranceService,
    principal: &Principal,
    id: Uuid,
) -> Result<policy::Policy, ApiError> {
    service
        .policy(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such policy".into()))
}

/// Sell a policy: the members get numbers, the premium is computed from the plan, and the
/// policy waits in `pending` for its premium (`policy_created` tells billing to invoice it).
#[utoipa::path(post, path = "/policies", tag = "policies", request_body = NewPolicyRequest,
    responses((status = 201, body = Policy), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_policy(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Sellers>,
    Json(input): Json<NewPolicyRequest>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let plan = service
        .plan(input.plan_id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
    let application = Application {
        plan_id: plan.id,
        start_date: input.start_date,
        holder: (&input.holder).into(),
        dependants: input.dependants.iter().map(enrolment::Dependant::from).collect(),
        agent_id: input.agent_id.or_else(|| principal.roles.contains(&Role::Agent).then_some(principal.id)),
    };
    let created = service.sell_policy(&plan, &application, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    status: Option<PolicyStatus>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (the `paging.next_offset` of the previous page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The caller's insurer's policies, newest first.
#[utoipa::path(get, path = "/policies", tag = "policies", params(PolicyQuery), responses((status = 200, body = Page<Policy>)))]
async fn list_policies(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Query(query): Query<PolicyQuery>,
) -> Result<Json<Page<Policy>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    let policies = service.policies(own_insurer(&principal)?, query.status, limit + 1, offset).await?;
    Ok(Json(Page::offset(policies, limit, offset).map(Policy::from)))
}

/// One policy period with its members.
#[utoipa::path(get, path = "/policies/{id}", tag = "policies",
    responses((status = 200, body = Policy), (status = 404, body = medcov_http::Problem)))]
async fn get_policy(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(visible_policy(&service, &principal, id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "cancelled", "effective_on": "2026-07-01", "reason": "holder emigrated"}))]
pub struct StatusChange {
    pub status: PolicyStatus,
    /// From this day a suspension or cancellation takes effect (today by default).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_on: Option<Date>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Move a policy along its lifecycle: `pending → active | cancelled`, `active → suspended |
/// expired | cancelled`, `suspended → active | expired | cancelled`. A wrong move is 409.
#[utoipa::path(post, path = "/policies/{id}/status", tag = "policies", request_body = StatusChange,
    responses((status = 200, body = Policy), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn change_status(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<StatusChange>,
) -> Result<Json<Policy>, ApiError> {
    let policy = visible_policy(&service, &principal, id).await?;
    let changed = service
        .change_policy_status(
            &policy,
            input.status,
            input.effective_on,
            input.reason.as_deref(),
            &actor(&principal),
            None,
        )
        .await?;
    Ok(Json(changed.into()))
}

/// Renew a policy: the next one-year period, under the plan version in effect on its first
/// day, with the active members (their numbers and enrolment dates kept, so waiting periods
/// are not served twice). It starts `pending` until its premium is paid.
#[utoipa::path(post, path = "/policies/{id}/renew", tag = "policies",
    responses((status = 201, body = Policy), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn renew(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Sellers>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let current = visible_policy(&service, &principal, id).await?;
    let renewed = service.renew_policy(&current, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(renewed.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"given_name": "Imani", "family_name": "Otieno", "date_of_birth": "2026-03-02", "relationship": "child"}))]
pub struct NewDependant {
    pub given_name: String,
    pub family_name: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    pub relationship: Relationship,
    /// The day cover starts for them (today by default); waiting periods run from it.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub enrolled_on: Option<Date>,
}

/// Add a dependant to a policy period. The plan's maximum number of members is a hard limit
/// (409), also under concurrent additions.
#[utoipa::path(post, path = "/policies/{id}/members", tag = "policies", request_body = NewDependant,
    responses((status = 201, body = Policy), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_member(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<Sellers>,
    Path(id): Path<Uuid>,
    Json(input): Json<NewDependant>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let policy = visible_policy(&service, &principal, id).await?;
    let addition = Addition {
        dependant: enrolment::Dependant {
            person: enrolment::Person {
                given_name: input.given_name,
                family_name: input.family_name,
                date_of_birth: input.date_of_birth,
            },
            relationship: input.relationship,
        },
        enrolled_on: input.enrolled_on,
    };
    let updated = service.add_dependant(&policy, &addition, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(updated.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "deceased", "effective_on": "2026-08-14", "reason": "death certificate 4411"}))]
pub struct MemberStatusChange {
    pub status: MemberStatus,
    /// From this day the member is (not) covered.
    #[schema(value_type = String, format = Date)]
    pub effective_on: Date,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MemberStatusChanged {
    pub member_id: Uuid,
    pub status: MemberStatus,
    /// The policy periods the change applies to.
    pub policies: Vec<Uuid>,
}

/// Set a member inactive or deceased from a day (or active again), on every policy period
/// that has not ended by then.
#[utoipa::path(post, path = "/members/{id}/status", tag = "policies", request_body = MemberStatusChange,
    responses((status = 200, body = MemberStatusChanged), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn change_member_status(
    State(service): State<Arc<InsuranceService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<MemberStatusChange>,
) -> Result<Json<MemberStatusChanged>, ApiError> {
    service
        .member_insurer(id)
        .await?
        .filter(|insurer| principal.scope.covers_insurer(*insurer))
        .ok_or_else(|| ApiError::NotFound("no such member".into()))?;
    let policies = service
        .change_member_status(id, input.status, input.effective_on, input.reason.as_deref(), &actor(&principal))
        .await?;
    Ok(Json(MemberStatusChanged { member_id: id, status: input.status, policies }))
}
