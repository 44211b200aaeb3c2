//! One OpenAPI document for the whole public API, and a page to read it.
//!
//! `/api/openapi.json` merges the gateway's document with each service's, every path under the
//! service's `/api/<service>` prefix, so a client sees exactly what the gateway serves. It is
//! rebuilt at most every 30 seconds, so services deployed separately show up without a gateway
//! restart; a service that does not answer is left out (and named in the log). `/docs` is
//! Swagger UI, shipped inside the binary: it works offline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use medcov_config::ServiceName;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use utoipa_axum::router::OpenApiRouter;

use super::proxy::Upstreams;

const FRESH_FOR: Duration = Duration::from_secs(30);

/// The merged document and when it was built.
type Cached = Option<(Instant, Arc<Value>)>;

#[derive(Clone)]
struct Docs {
    own: Arc<Value>,
    upstreams: Upstreams,
    cached: Arc<Mutex<Cached>>,
}

pub fn router(own: utoipa::openapi::OpenApi, upstreams: Upstreams) -> OpenApiRouter {
    let own = serde_json::to_value(own).unwrap_or_else(|_| json!({}));
    let docs = Docs { own: Arc::new(own), upstreams, cached: Arc::new(Mutex::new(None)) };
    let swagger =
        utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/api/openapi.json"));
    let swagger = axum::Router::from(swagger).layer(axum::middleware::map_response(docs_policy));
    let routes: axum::Router = axum::Router::new().route("/api/openapi.json", get(merged)).with_state(docs);
    OpenApiRouter::from(routes.merge(swagger))
}

/// What the Swagger UI page may load and do: its own scripts, styles, images and fonts, the
/// icons it draws as `data:` images, and calls back to this origin (the API and its
/// document); nothing from elsewhere, no framing, and nothing inline but the one style element
/// the vendored Swagger UI bundle inserts, allowed by its hash (a browser test fails if the
/// bundle changes it).
pub const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

async fn docs_policy(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, axum::http::HeaderValue::from_static(DOCS_POLICY));
    // The page and its assets are the same for everyone and change only with the binary.
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    response
}

async fn merged(State(docs): State<Docs>) -> impl IntoResponse {
    let mut cached = docs.cached.lock().await;
    let document = match cached.as_ref() {
        Some((at, document)) if at.elapsed() < FRESH_FOR => document.clone(),
        _ => {
            let document = Arc::new(build(&docs).await);
            *cached = Some((Instant::now(), document.clone()));
            document
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], axum::Json(document.as_ref().clone()))
}

async fn build(docs: &Docs) -> Value {
    let mut document = docs.own.as_ref().clone();
    for name in crate::ROUTED {
        match fetch(docs, name).await {
            Ok(service) => merge(&mut document, name, &service),
            Err(error) => tracing::warn!(service = %name, error = %error, "left out of the merged API document"),
        }
    }
    document
}

async fn fetch(docs: &Docs, name: ServiceName) -> Result<Value, String> {
    let upstream = docs.upstreams.get(name.as_str()).map_err(|e| e.to_string())?.1.clone();
    let request =
        axum::extract::Request::get("/openapi.json").body(axum::body::Body::empty()).map_err(|e| e.to_string())?;
    let response = upstream.forward(request, "/openapi.json", 0).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Adds a service's paths under `/api/<name>`, tagging each operation with the service, and
/// its components. Operational endpoints the gateway does not route are left out.
fn merge(into: &mut Value, name: ServiceName, service: &Value) {
    let prefix = format!("/api/{name}");
    let paths = object(into, "paths");
    if let Some(service_paths) = service["paths"].as_object() {
        for (path, item) in service_paths {
            if path == "/metrics" {
                continue;
            }
            let mut item = item.clone();
            if let Some(operations) = item.as_object_mut() {
                for operation in operations.values_mut().filter_map(Value::as_object_mut) {
                    let tags: Vec<Value> = operation
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(Value::as_str).map(|t| json!(format!("{name}: {t}"))).collect())
                        .unwrap_or_else(|| vec![json!(name.as_str())]);
                    operation.insert("tags".into(), Value::Array(tags));
                    if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                        let unique = format!("{name}_{id}");
                        operation.insert("operationId".into(), json!(unique));
                    }
                }
            }
            let full = if path == "/" { prefix.clone() } else { format!("{prefix}{path}") };
            paths.insert(full, item);
        }
    }
    if let Some(components) = service["components"].as_object() {
        let target = object(into, "components");
        for (kind, entries) in components {
            let slot = target.entry(kind.clone()).or_insert_with(|| json!({}));
            if let (Some(slot), Some(entries)) = (slot.as_object_mut(), entries.as_object()) {
                for (key, value) in entries {
                    slot.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
    }
}

fn object<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !value[key].is_object() {
        value[key] = json!({});
    }
    value[key].as_object_mut().unwrap_or_else(|| unreachable!("just made an object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_land_under_the_service_prefix_with_tags() {
        let mut doc = json!({"openapi": "3.1.0", "paths": {}});
        let service = json!({
            "paths": {
                "/login": {"post": {"tags": ["sessions"], "operationId": "login"}},
                "/metrics": {"get": {}},
                "/health/live": {"get": {}}
            },
            "components": {"schemas": {"Problem": {"type": "object"}}}
        });
        merge(&mut doc, ServiceName::Auth, &service);
        assert_eq!(doc["paths"]["/api/auth/login"]["post"]["tags"], json!(["auth: sessions"]));
        assert_eq!(doc["paths"]["/api/auth/login"]["post"]["operationId"], "auth_login");
        assert_eq!(doc["paths"]["/api/auth/health/live"]["get"]["tags"], json!(["auth"]));
        assert!(doc["paths"]["/api/auth/metrics"].is_null());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
