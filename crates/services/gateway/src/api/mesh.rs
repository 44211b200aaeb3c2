//! `/mesh`: the mesh as this gateway sees it, for platform administrators: every upstream
//! with its instances (health, ejections, calls in flight) and its circuit breakers; forcing a
//! breaker open, disabling it or closing it again; reloading the policy file.
//!
//! Other processes have meshes of their own; this shows and changes the gateway's.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, FieldError, Json, Path};
use medcov_mesh::{BreakerView, Mesh, UpstreamView};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Who operates the mesh.
pub struct Operators;
impl Policy for Operators {
    const ROLES: &'static [Role] = &[Role::Admin];
    const PLATFORM_ONLY: bool = true;
}

pub fn router(mesh: Arc<Mesh>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(show)).routes(routes!(set_breaker)).routes(routes!(reload)).with_state(mesh)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeshView {
    /// The policy file in force; absent: the built-in policy.
    pub policy_file: Option<String>,
    /// Every upstream this gateway has called or may call.
    #[schema(value_type = Vec<Object>)]
    pub upstreams: Vec<UpstreamView>,
}

/// The registry, health and breaker states.
#[utoipa::path(get, path = "/mesh", tag = "mesh",
    responses((status = 200, body = MeshView, example = json!({
        "policy_file": "/etc/medcov/mesh.toml",
        "upstreams": [{"name": "hospital", "balancer": "p2c",
            "instances": [{"id": "http://10.0.0.7:3002/", "address": "http://10.0.0.7:3002/", "weight": 1, "zone": "a",
                "version": "0.1.0", "healthy": true, "ejected_for_ms": 0, "ejections": 0, "pending": 2,
                "consecutive_failures": 0, "requests": 1822, "failures": 1}],
            "breakers": [{"id": "hospital", "state": "closed", "calls": 20, "failures": 1, "slow_calls": 0,
                "failure_rate": 5.0, "slow_call_rate": 0.0, "open_for_ms": 0, "transitions": 0}]}]
    })), (status = 403, body = medcov_http::Problem)))]
async fn show(State(mesh): State<Arc<Mesh>>, _admin: Authorized<Operators>) -> Json<MeshView> {
    Json(MeshView { policy_file: mesh.policy().path().map(|p| p.display().to_string()), upstreams: mesh.view() })
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// Refuse every call until set back to closed.
    ForcedOpen,
    /// Let every call through and record nothing.
    Disabled,
    /// Back to normal, with an empty window.
    Closed,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "forced_open"}))]
pub struct BreakerSetting {
    pub state: Setting,
}

/// Force a breaker open, disable it, or close it. `id` is an upstream (`insurance`) or one
/// of its routes in the policy (`insurance.eligibility`).
#[utoipa::path(put, path = "/mesh/breakers/{id}", tag = "mesh", request_body = BreakerSetting,
    params(("id" = String, Path, description = "`upstream` or `upstream.route`")),
    responses((status = 200, body = Object), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn set_breaker(
    State(mesh): State<Arc<Mesh>>,
    admin: Authorized<Operators>,
    Path(id): Path<String>,
    Json(input): Json<BreakerSetting>,
) -> Result<Json<BreakerView>, ApiError> {
    let breaker =
        mesh.breaker(&id).ok_or_else(|| ApiError::NotFound(format!("no upstream or policy route is named {id}")))?;
    let transition = match input.state {
        Setting::ForcedOpen => breaker.force_open(),
        Setting::Disabled => breaker.disable(),
        Setting::Closed => breaker.reset(),
    };
    tracing::warn!(breaker = %id, from = transition.from.as_str(), to = transition.to.as_str(), by = %admin.0.id, "circuit breaker set by an operator");
    Ok(Json(BreakerView { id, snapshot: breaker.snapshot() }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Whether the file differed from the policy in force.
    pub changed: bool,
}

/// Read the policy file again now (it is also read when it changes, and on SIGHUP). An
/// invalid file is refused with every problem named, and the policy in force stays.
#[utoipa::path(post, path = "/mesh/policy/reload", tag = "mesh",
    responses((status = 200, body = Reloaded), (status = 422, body = medcov_http::Problem)))]
async fn reload(State(mesh): State<Arc<Mesh>>, _admin: Authorized<Operators>) -> Result<Json<Reloaded>, ApiError> {
    match mesh.reload() {
        Ok(changed) => Ok(Json(Reloaded { changed })),
        Err(error) => Err(ApiError::Validation(
            error.problems.into_iter().map(|(field, reason)| FieldError::new(field, reason)).collect(),
        )),
    }
}
