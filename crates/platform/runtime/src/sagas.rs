//! `/sagas`: the flows a service orchestrates, with their state and every transition, for
//! administrators and auditors within their tenant scope. Served by every service that
//! orchestrates one (insurance: the policy sale; hospital: patient registration).

use axum::extract::State;
use medcov_bus::saga::{self, Saga, SagaState, Transition};
use medcov_http::{ApiError, FieldError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Role, Scope};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use medcov_store::Database;

pub fn router(db: Database) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(list_sagas)).routes(routes!(get_saga)).with_state(db)
}

/// Who watches flows.
pub struct Watchers;
impl Policy for Watchers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SagaQuery {
    /// `running`, `compensating`, `completed` or `compensated`.
    state: Option<String>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (the `paging.next_offset` of the previous page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SagaView {
    pub id: Uuid,
    /// `policy_sale`, `patient_registration`.
    pub kind: String,
    /// The policy, patient (or other record) it follows.
    pub subject_id: Uuid,
    pub state: String,
    pub step: String,
    /// What it carries: its input, each step's result, and the first failure.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline_at: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    pub transitions: Vec<TransitionView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransitionView {
    #[schema(value_type = String, format = DateTime)]
    pub at: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub step: String,
    pub note: Option<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn view(saga: Saga, transitions: Vec<Transition>) -> SagaView {
    SagaView {
        id: saga.id,
        kind: saga.kind,
        subject_id: saga.subject_id,
        state: saga.state.as_str().to_owned(),
        step: saga.step,
        data: saga.data,
        deadline_at: saga.deadline_at.map(rfc3339),
        created_at: rfc3339(saga.created_at),
        updated_at: rfc3339(saga.updated_at),
        transitions: transitions
            .into_iter()
            .map(|t| TransitionView {
                at: rfc3339(t.at),
                from_state: t.from_state,
                to_state: t.to_state,
                step: t.step,
                note: t.note,
            })
            .collect(),
    }
}

fn tenants(scope: &Scope) -> Option<Vec<Uuid>> {
    match scope {
        Scope::Platform => None,
        Scope::Insurer { insurer } => Some(vec![*insurer]),
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Own => Some(Vec::new()),
    }
}

/// Instances, newest first, by state (transitions left out; read one for them).
#[utoipa::path(get, path = "/sagas", tag = "sagas", params(SagaQuery),
    responses((status = 200, body = Page<SagaView>), (status = 422, body = medcov_http::Problem)))]
async fn list_sagas(
    State(db): State<Database>,
    Authorized(principal, _): Authorized<Watchers>,
    Query(query): Query<SagaQuery>,
) -> Result<Json<Page<SagaView>>, ApiError> {
    let mut errors = Vec::new();
    let state = match query.state.as_deref() {
        None => None,
        Some(s) => SagaState::parse(s).or_else(|| {
            errors.push(FieldError::new("state", "must be running, compensating, completed or compensated"));
            None
        }),
    };
    let (limit, offset) = (query.limit.unwrap_or(50), query.offset.unwrap_or(0));
    if !(1..=200).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 200"));
    }
    if offset < 0 {
        errors.push(FieldError::new("offset", "must not be negative"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let tenants = tenants(&principal.scope);
    let sagas = saga::list(&db, state, tenants.as_deref(), (limit + 1, offset)).await?;
    Ok(Json(Page::offset(sagas, limit, offset).map(|s| view(s, Vec::new()))))
}

/// One instance with every transition.
#[utoipa::path(get, path = "/sagas/{id}", tag = "sagas",
    responses((status = 200, body = SagaView), (status = 404, body = medcov_http::Problem)))]
async fn get_saga(
    State(db): State<Database>,
    Authorized(principal, _): Authorized<Watchers>,
    Path(id): Path<Uuid>,
) -> Result<Json<SagaView>, ApiError> {
    let (saga, log) = saga::get(&db, id)
        .await?
        .filter(|(s, _)| {
            s.tenant_id.is_some_and(|t| principal.scope.covers_insurer(t) || principal.scope.covers_hospital(t))
        })
        .ok_or_else(|| ApiError::NotFound("no such saga".into()))?;
    Ok(Json(view(saga, log)))
}
