//! `/policies` and `/members`: policy periods, their members, status changes and renewals.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Principal, Role};
use serde::Deserialize;
use time::{Date, Duration};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{InsurerAdmins, InsurerStaff, Sellers, actor, check_name, limit_offset, own_insurer, today};
use crate::domain::policy::{self, MemberStatus, PolicyStatus, Relationship};
use crate::store::InsuranceStore;
use crate::store::plans::{Plan, PlanVersion};
use crate::store::policies::{NewMember, NewPolicy, Policy};

pub fn router(store: Arc<InsuranceStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy))
        .routes(routes!(change_status))
        .routes(routes!(renew))
        .routes(routes!(add_member))
        .routes(routes!(change_member_status))
        .with_state(store)
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

impl Dependant {
    fn person(&self) -> Person {
        Person {
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            date_of_birth: self.date_of_birth,
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

fn check_person(errors: &mut Vec<FieldError>, at: &str, person: &Person, on: Date) {
    check_name(errors, format!("{at}.given_name"), &person.given_name);
    check_name(errors, format!("{at}.family_name"), &person.family_name);
    if person.date_of_birth > on {
        errors.push(FieldError::new(format!("{at}.date_of_birth"), "must not be after the start of cover"));
    } else if policy::age_on(person.date_of_birth, on) > 130 {
        errors.push(FieldError::new(format!("{at}.date_of_birth"), "is more than 130 years ago"));
    }
}

/// The version of a plan in effect on a day.
fn version_on(plan: &Plan, day: Date) -> Option<&PlanVersion> {
    plan.versions.iter().find(|v| v.effective_from <= day && v.effective_to.is_none_or(|to| day <= to))
}

/// When an unpaid premium cancels the policy (the policy-sale saga's deadline).
fn premium_deadline(store: &InsuranceStore) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + Duration::seconds(store.premium_due_s() as i64)
}

/// The last covered day of a one-year period starting on `start`.
fn expiry_of(start: Date) -> Date {
    let next = start.replace_year(start.year() + 1).unwrap_or_else(|_| start + Duration::days(365));
    next.previous_day().unwrap_or(next)
}

async fn visible_policy(store: &InsuranceStore, principal: &Principal, id: Uuid) -> Result<Policy, ApiError> {
    store
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<Sellers>,
    Json(input): Json<NewPolicyRequest>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let plan = store
        .plan(input.plan_id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
    let mut errors = Vec::new();
    let version = version_on(&plan, input.start_date);
    if version.is_none() {
        errors.push(FieldError::new("start_date", "no version of the plan is in effect on this day"));
    }
    check_person(&mut errors, "holder", &input.holder, input.start_date);
    for (i, d) in input.dependants.iter().enumerate() {
        check_person(&mut errors, &format!("dependants[{i}]"), &d.person(), input.start_date);
        if d.relationship == Relationship::Holder {
            errors.push(FieldError::new(format!("dependants[{i}].relationship"), "a policy has one holder"));
        }
    }
    if let Some(v) = version
        && 1 + input.dependants.len() > v.rules.max_members as usize
    {
        errors.push(FieldError::new("dependants", format!("the plan covers at most {} members", v.rules.max_members)));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let version = version.ok_or_else(|| ApiError::Validation(Vec::new()))?;
    let mut members = vec![NewMember {
        given_name: input.holder.given_name.trim().to_owned(),
        family_name: input.holder.family_name.trim().to_owned(),
        date_of_birth: input.holder.date_of_birth,
        relationship: Relationship::Holder,
        existing: None,
    }];
    members.extend(input.dependants.iter().map(|d| NewMember {
        given_name: d.given_name.trim().to_owned(),
        family_name: d.family_name.trim().to_owned(),
        date_of_birth: d.date_of_birth,
        relationship: d.relationship,
        existing: None,
    }));
    let births: Vec<Date> = members.iter().map(|m| m.date_of_birth).collect();
    let agent_id = input.agent_id.or_else(|| principal.roles.contains(&Role::Agent).then_some(principal.id));
    let new = NewPolicy {
        insurer_id: plan.insurer_id,
        plan_id: plan.id,
        plan_version_id: version.id,
        agent_id,
        start_date: input.start_date,
        expiry_date: expiry_of(input.start_date),
        premium: policy::premium(&version.rules.premium, &births, input.start_date),
        currency: version.rules.currency.to_string(),
        members,
        renewal_of: None,
        premium_deadline: premium_deadline(&store),
    };
    let created = store.create_policy(&new, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    status: Option<PolicyStatus>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The caller's insurer's policies, newest first.
#[utoipa::path(get, path = "/policies", tag = "policies", params(PolicyQuery), responses((status = 200, body = Vec<Policy>)))]
async fn list_policies(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Query(query): Query<PolicyQuery>,
) -> Result<Json<Vec<Policy>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    Ok(Json(store.policies(own_insurer(&principal)?, query.status, limit, offset).await?))
}

/// One policy period with its members.
#[utoipa::path(get, path = "/policies/{id}", tag = "policies",
    responses((status = 200, body = Policy), (status = 404, body = medcov_http::Problem)))]
async fn get_policy(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerStaff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(visible_policy(&store, &principal, id).await?))
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<StatusChange>,
) -> Result<Json<Policy>, ApiError> {
    let policy = visible_policy(&store, &principal, id).await?;
    let mut errors = Vec::new();
    if let Some(on) = input.effective_on
        && (on < policy.start_date || on > policy.expiry_date.next_day().unwrap_or(policy.expiry_date))
    {
        errors.push(FieldError::new("effective_on", "must fall within the policy period"));
    }
    if matches!(input.status, PolicyStatus::Suspended | PolicyStatus::Cancelled)
        && input.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        errors.push(FieldError::new("reason", "is required to suspend or cancel a policy"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let changed = store
        .change_policy_status(
            &policy,
            input.status,
            input.effective_on,
            input.reason.as_deref(),
            &actor(&principal),
            None,
        )
        .await?;
    Ok(Json(changed))
}

/// Renew a policy: the next one-year period, under the plan version in effect on its first
/// day, with the active members (their numbers and enrolment dates kept, so waiting periods
/// are not served twice). It starts `pending` until its premium is paid.
#[utoipa::path(post, path = "/policies/{id}/renew", tag = "policies",
    responses((status = 201, body = Policy), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn renew(
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<Sellers>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let current = visible_policy(&store, &principal, id).await?;
    if matches!(current.status, PolicyStatus::Cancelled | PolicyStatus::Pending) {
        return Err(ApiError::Conflict(format!("a {} policy cannot be renewed", current.status.as_str())));
    }
    let plan = store.plan(current.plan_id).await?.ok_or_else(|| ApiError::NotFound("no such plan".into()))?;
    let start = current.expiry_date.next_day().unwrap_or(current.expiry_date);
    let version = version_on(&plan, start).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new("plan", format!("no version of the plan is in effect on {start}"))])
    })?;
    let members: Vec<NewMember> = current
        .members
        .iter()
        .filter(|m| m.status == MemberStatus::Active)
        .map(|m| NewMember {
            given_name: m.given_name.clone(),
            family_name: m.family_name.clone(),
            date_of_birth: m.date_of_birth,
            relationship: m.relationship,
            existing: Some((m.member_id, m.enrolled_on)),
        })
        .collect();
    if !members.iter().any(|m| m.relationship == Relationship::Holder) {
        return Err(ApiError::Conflict("the holder is no longer active; sell a new policy instead".into()));
    }
    let births: Vec<Date> = members.iter().map(|m| m.date_of_birth).collect();
    let new = NewPolicy {
        insurer_id: current.insurer_id,
        plan_id: current.plan_id,
        plan_version_id: version.id,
        agent_id: current.agent_id,
        start_date: start,
        expiry_date: expiry_of(start),
        premium: policy::premium(&version.rules.premium, &births, start),
        currency: version.rules.currency.to_string(),
        members,
        renewal_of: Some(current.id),
        premium_deadline: premium_deadline(&store),
    };
    let renewed = store.create_policy(&new, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(renewed)))
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<Sellers>,
    Path(id): Path<Uuid>,
    Json(input): Json<NewDependant>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let policy = visible_policy(&store, &principal, id).await?;
    if matches!(policy.status, PolicyStatus::Cancelled | PolicyStatus::Expired) {
        return Err(ApiError::Conflict(format!("a {} policy takes no new members", policy.status.as_str())));
    }
    let enrolled_on = input.enrolled_on.unwrap_or_else(today).max(policy.start_date);
    let mut errors = Vec::new();
    let d = &input;
    let person =
        Person { given_name: d.given_name.clone(), family_name: d.family_name.clone(), date_of_birth: d.date_of_birth };
    check_person(&mut errors, "", &person, enrolled_on);
    let mut errors: Vec<FieldError> =
        errors.into_iter().map(|e| FieldError::new(e.field.trim_start_matches('.').to_owned(), e.reason)).collect();
    if d.relationship == Relationship::Holder {
        errors.push(FieldError::new("relationship", "a policy has one holder"));
    }
    if enrolled_on > policy.expiry_date {
        errors.push(FieldError::new("enrolled_on", "must fall within the policy period"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let version = store
        .plan_version(policy.plan_version_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such plan version".into()))?;
    let member = NewMember {
        given_name: d.given_name.trim().to_owned(),
        family_name: d.family_name.trim().to_owned(),
        date_of_birth: d.date_of_birth,
        relationship: d.relationship,
        existing: None,
    };
    let updated =
        store.add_member(&policy, &member, enrolled_on, version.rules.max_members, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(updated)))
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
    State(store): State<Arc<InsuranceStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<MemberStatusChange>,
) -> Result<Json<MemberStatusChanged>, ApiError> {
    store
        .member_insurer(id)
        .await?
        .filter(|insurer| principal.scope.covers_insurer(*insurer))
        .ok_or_else(|| ApiError::NotFound("no such member".into()))?;
    if input.status == MemberStatus::Deceased && input.effective_on > today() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "effective_on",
            "a date of death cannot be in the future",
        )]));
    }
    let policies = store
        .change_member_status(id, input.status, input.effective_on, input.reason.as_deref(), &actor(&principal))
        .await?;
    Ok(Json(MemberStatusChanged { member_id: id, status: input.status, policies }))
}
