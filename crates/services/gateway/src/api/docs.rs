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
use axum::http::{Method, header};
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

/// The methods of the merged document's paths, and when they were read from it.
type KnownRoutes = Option<(Instant, Arc<medcov_http::contract::Routes>)>;

/// The merged document, built on demand and kept for [`FRESH_FOR`], and the methods each of
/// its paths answers (the gateway refuses any other method, 405, before it checks a token).
#[derive(Clone)]
pub struct Docs {
    own: Arc<Value>,
    upstreams: Upstreams,
    cached: Arc<Mutex<Cached>>,
    routes: Arc<std::sync::RwLock<KnownRoutes>>,
    refreshing: Arc<std::sync::atomic::AtomicBool>,
}

impl Docs {
    pub fn new(own: utoipa::openapi::OpenApi, upstreams: Upstreams) -> Docs {
        let mut own = serde_json::to_value(own).unwrap_or_else(|_| json!({}));
        medcov_http::contract::complete(&mut own);
        Docs {
            own: Arc::new(own),
            upstreams,
            cached: Arc::new(Mutex::new(None)),
            routes: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    /// The merged document, rebuilt when older than [`FRESH_FOR`].
    async fn document(&self) -> Arc<Value> {
        let mut cached = self.cached.lock().await;
        match cached.as_ref() {
            Some((at, document)) if at.elapsed() < FRESH_FOR => document.clone(),
            _ => {
                let document = Arc::new(build(self).await);
                *cached = Some((Instant::now(), document.clone()));
                document
            }
        }
    }

    /// The methods `path` (a path under `/api/<service>`, as requested) answers, when the
    /// merged document has it; `None` when it does not (the service is down, or the path is
    /// unknown: the service answers). The first call waits for the document; later ones use
    /// the routes they have while newer ones are fetched.
    pub async fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        use std::sync::atomic::Ordering;
        let current = self.routes.read().ok().and_then(|r| r.clone());
        let routes = match current {
            Some((at, routes)) => {
                if at.elapsed() >= FRESH_FOR && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let docs = self.clone();
                    tokio::spawn(async move {
                        docs.refresh_routes().await;
                        docs.refreshing.store(false, Ordering::Release);
                    });
                }
                routes
            }
            None => self.refresh_routes().await,
        };
        routes.allowed(path)
    }

    async fn refresh_routes(&self) -> Arc<medcov_http::contract::Routes> {
        let routes = Arc::new(medcov_http::contract::Routes::of(self.document().await.as_ref()));
        if let Ok(mut slot) = self.routes.write() {
            *slot = Some((Instant::now(), routes.clone()));
        }
        routes
    }
}

pub fn router(docs: Docs) -> OpenApiRouter {
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
    let document = docs.document().await;
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
/// its components. Operational endpoints the gateway does not route are left out. A component
/// whose name another service already uses with another meaning is renamed
/// `<Service><Name>` (insurance's `StatusChange` is `InsuranceStatusChange` when hospital's came
/// first), and the service's references follow it: one name, one meaning.
fn merge(into: &mut Value, name: ServiceName, service: &Value) {
    let mut service = service.clone();
    rename_clashes(into, name, &mut service);
    let prefix = format!("/api/{name}");
    let paths = object(into, "paths");
    if let Some(service_paths) = service["paths"].as_object() {
        for (path, item) in service_paths {
            if path == "/metrics" || (name == ServiceName::Auth && path == "/revocations") {
                continue;
            }
            let mut item = item.clone();
            if let Some(operations) = item.as_object_mut() {
                const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
                let operations = operations.iter_mut().filter(|(key, _)| METHODS.contains(&key.as_str()));
                for operation in operations.filter_map(|(_, op)| op.as_object_mut()) {
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

/// Renames each of `service`'s components that `into` already has under the same name with
/// another definition, and every reference to it, until none clashes (a rename changes the
/// components that refer to it, which may then clash in turn).
fn rename_clashes(into: &Value, name: ServiceName, service: &mut Value) {
    let mut service_prefix = name.as_str().to_owned();
    if let Some(first) = service_prefix.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    // Each round renames at least one component to a name nothing else uses: bounded.
    loop {
        let Some((kind, key)) = first_clash(into, service) else { return };
        let taken = |candidate: &str| {
            !into["components"][&kind][candidate].is_null() || !service["components"][&kind][candidate].is_null()
        };
        let mut renamed = format!("{service_prefix}{key}");
        let mut n = 2;
        while taken(&renamed) {
            renamed = format!("{service_prefix}{key}{n}");
            n += 1;
        }
        if let Some(entries) = service["components"][&kind].as_object_mut()
            && let Some(value) = entries.remove(&key)
        {
            entries.insert(renamed.clone(), value);
        }
        let (from, to) = (format!("#/components/{kind}/{key}"), format!("#/components/{kind}/{renamed}"));
        rewrite_refs(service, &from, &to);
    }
}

fn first_clash(into: &Value, service: &Value) -> Option<(String, String)> {
    let components = service["components"].as_object()?;
    for (kind, entries) in components {
        for (key, value) in entries.as_object().into_iter().flatten() {
            let existing = &into["components"][kind][key];
            if !existing.is_null() && existing != value {
                return Some((kind.clone(), key.clone()));
            }
        }
    }
    None
}

fn rewrite_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref" && v.as_str() == Some(from) {
                    *v = json!(to);
                } else {
                    rewrite_refs(v, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, from, to)),
        _ => {}
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

    #[test]
    fn one_name_never_has_two_meanings() {
        let mut doc = json!({"openapi": "3.1.0", "paths": {}});
        let hospital = json!({
            "paths": {"/appointments/{id}/status": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/StatusChange"}}}}, "responses": {}}}},
            "components": {"schemas": {
                "StatusChange": {"type": "object", "properties": {"status": {"$ref": "#/components/schemas/Status"}}},
                "Status": {"type": "string", "enum": ["booked", "cancelled"]},
                "Problem": {"type": "object"}
            }}
        });
        let insurance = json!({
            "paths": {"/policies/{id}/status": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/StatusChange"}}}}, "responses": {}}}},
            "components": {"schemas": {
                // The same words as hospital's, but its Status means something else: the
                // change must be renamed too, since what it refers to differs.
                "StatusChange": {"type": "object", "properties": {"status": {"$ref": "#/components/schemas/Status"}}},
                "Status": {"type": "string", "enum": ["active", "lapsed"]},
                "Problem": {"type": "object"}
            }}
        });
        merge(&mut doc, ServiceName::Hospital, &hospital);
        merge(&mut doc, ServiceName::Insurance, &insurance);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Status"]["enum"], json!(["booked", "cancelled"]));
        assert_eq!(schemas["InsuranceStatus"]["enum"], json!(["active", "lapsed"]));
        assert_eq!(
            schemas["InsuranceStatusChange"]["properties"]["status"]["$ref"],
            "#/components/schemas/InsuranceStatus"
        );
        let body = |path: &str| {
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].clone()
        };
        assert_eq!(body("/api/hospital/appointments/{id}/status"), "#/components/schemas/StatusChange");
        assert_eq!(body("/api/insurance/policies/{id}/status"), "#/components/schemas/InsuranceStatusChange");
        // The same definition is kept once.
        assert!(schemas["InsuranceProblem"].is_null(), "{schemas}");
    }
}
