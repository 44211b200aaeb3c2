//! What every service's OpenAPI document says about the kit's own behaviour, added once here
//! instead of on each of a hundred operations.
//!
//! A service describes its operations with `#[utoipa::path]`: what it takes, what it answers
//! on success, and the errors particular to it (a 409 for a conflict, a 404 for a missing
//! record found by a query parameter, a 412 when it checks `If-Match`). [`complete`] then adds
//! what the kit and the platform do to every request, so that the document names every status
//! and content type a client can get:
//!
//! - **Security**: an operation is token-protected unless it declares `security(())`
//!   (sign-in, the key set, health). Protected operations get the bearer requirement and 401
//!   and 403; the `bearer` scheme is declared.
//! - **Errors** are `application/problem+json` ([`crate::Problem`]), never `application/json`;
//!   shared answers are `#/components/responses/<Name>`, each with an example. Added where the
//!   kit answers them: 400 (a malformed path or query parameter or body), 404 (a path naming no
//!   record), 413 and 415 (a body), 422 (a body or query parameters that break a rule), 409
//!   and 422 for `Idempotency-Key` on protected changes,
//!   the `If-Match` header on operations that answer 412 (required when they answer 428 too:
//!   a change without it is refused), 429 (rate limits, with
//!   `Retry-After`, `RateLimit` and `RateLimit-Policy`) and 503 (an outage, with `Retry-After`)
//!   on all.
//! - **Descriptions**: every response has one (the status's meaning when the service gave
//!   none).
//!
//! What a service declares itself wins: an operation that documents its own 404 keeps it.

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::problem::PROBLEM_JSON;

/// The name of the bearer security scheme.
pub const BEARER: &str = "bearer";

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The shape of an `Idempotency-Key` (see `medcov_runtime::idempotency`).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\x21-\\x7E]{1,255}$";
/// The shape of an `If-Match`: an ETag this API sent, such as `"3"`.
pub const IF_MATCH_PATTERN: &str = "^(W/)?\"[0-9]{1,18}\"$";

/// Completes a service's document in place (see the module's header).
pub fn complete(document: &mut Value) {
    let document = match document.as_object_mut() {
        Some(document) => document,
        None => return,
    };
    add_components(document);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        let shared: Vec<Value> = item.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
        for method in METHODS {
            if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                complete_operation(method, operation, &shared);
            }
        }
    }
}

fn complete_operation(method: &str, operation: &mut Map<String, Value>, shared: &[Value]) {
    // Security: public only when declared so (`security(())` is `[{}]`).
    let public = match operation.get("security").and_then(Value::as_array) {
        None => false,
        Some(requirements) => requirements.iter().all(|r| r.as_object().is_some_and(Map::is_empty)),
    };
    if public {
        operation.insert("security".into(), json!([]));
    } else {
        operation.insert("security".into(), json!([{ BEARER: [] }]));
    }

    let parameters: Vec<Value> = shared
        .iter()
        .chain(operation.get("parameters").and_then(Value::as_array).into_iter().flatten())
        .cloned()
        .collect();
    let has = |place: &str| parameters.iter().any(|p| p["in"] == place);
    let has_body = operation.contains_key("requestBody");
    let mutating = matches!(method, "post" | "put" | "patch" | "delete");

    let responses = operation.entry("responses").or_insert_with(|| json!({}));
    if !responses.is_object() {
        *responses = json!({});
    }
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, response) in responses.iter_mut() {
        fix_response(status, response);
    }
    let answers_412 = responses.contains_key("412");
    let requires_if_match = responses.contains_key("428");
    let mut add = |status: &str, name: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
    };
    if has("path") || has("query") || has_body || answers_412 {
        add("400", "BadRequest");
    }
    if !public {
        add("401", "Unauthorized");
        add("403", "Forbidden");
    }
    if has("path") {
        add("404", "NotFound");
    }
    if has_body {
        add("413", "PayloadTooLarge");
        add("415", "UnsupportedMediaType");
    }
    // A body or query that reads but breaks a rule (a limit out of range, a date range the
    // wrong way round).
    if has_body || has("query") {
        add("422", "Invalid");
    }
    if mutating && !public {
        add("409", "Conflict");
        add("422", "Invalid");
    }
    add("429", "TooManyRequests");
    add("503", "Unavailable");

    // Headers the kit reads.
    let mut extra = Vec::new();
    let declared = |name: &str| {
        parameters
            .iter()
            .any(|p| p["in"] == "header" && p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    };
    if answers_412 && !declared("If-Match") {
        let description = if requires_if_match {
            "The `ETag` of the version this change is made to, as a `GET` of the record answered it. A stale one is 412; none is 428."
        } else {
            "The `ETag` of the version this change is made to, as a `GET` of the record answered it: a stale one is 412. Without it the change applies to the current version."
        };
        extra.push(json!({
            "name": "If-Match", "in": "header", "required": requires_if_match,
            "description": description,
            "schema": {"type": "string", "pattern": IF_MATCH_PATTERN}, "example": "\"1\"",
        }));
    }
    if mutating && !public && !declared("Idempotency-Key") {
        extra.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Makes a retry safe: a repeat of the same request under the same key gets the first answer again (`Idempotency-Replayed: true`) for 24 hours; a repeat while the first runs is 409; another request under the key is 422.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
        }));
    }
    // An If-Match the operation declares itself gets the same rules.
    if let Some(own) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in own.iter_mut().filter(|p| p["in"] == "header") {
            if parameter["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("If-Match")) {
                parameter["required"] = json!(requires_if_match);
                parameter["schema"] = json!({"type": "string", "pattern": IF_MATCH_PATTERN});
            }
        }
    }
    if !extra.is_empty() {
        let list = operation.entry("parameters").or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.extend(extra);
        }
    }
}

/// Gives a response a description, and an error response the problem+json content type.
fn fix_response(status: &str, response: &mut Value) {
    let Some(response) = response.as_object_mut() else { return };
    if response.contains_key("$ref") {
        return;
    }
    let missing = response.get("description").and_then(Value::as_str).is_none_or(|d| d.trim().is_empty());
    if missing {
        response.insert("description".into(), json!(describe(status)));
    }
    let error = status.starts_with('4') || status.starts_with('5');
    if !error {
        return;
    }
    let content = response.entry("content").or_insert_with(|| json!({}));
    let Some(content) = content.as_object_mut() else { return };
    // A problem documented as plain JSON is problem+json; other bodies (a readiness report)
    // are what they say.
    let is_problem = |media: &Value| media["schema"]["$ref"].as_str().is_some_and(|r| r.ends_with("/Problem"));
    if content.get("application/json").is_some_and(is_problem) {
        let media = content.remove("application/json").unwrap_or_default();
        content.entry(PROBLEM_JSON).or_insert(media);
    }
    if content.is_empty() {
        content.insert(PROBLEM_JSON.into(), json!({"schema": {"$ref": "#/components/schemas/Problem"}}));
    }
}

/// A response's description from its status alone.
fn describe(status: &str) -> String {
    match status {
        "200" => "OK.".into(),
        "201" => "Created.".into(),
        "202" => "Accepted.".into(),
        "204" => "Done; no content.".into(),
        "default" => "Any other answer.".into(),
        other => other
            .parse::<u16>()
            .ok()
            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .map(|r| format!("{r}."))
            .unwrap_or_else(|| "An answer.".into()),
    }
}

/// One shared error answer: its description, an example problem, and the headers it carries.
fn problem_response(status: u16, description: &str, kind: &str, detail: &str, headers: Value) -> Value {
    let title = axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let mut example = json!({
        "type": kind, "title": title, "status": status, "detail": detail,
        "request_id": "0190f5a4-7b1c-7d2e-8f00-1234567890ab",
    });
    if status == 422 || status == 400 {
        let field = if status == 422 {
            json!([{"field": "date_of_birth", "reason": "must not be in the future"}])
        } else {
            json!([{"field": "limit", "reason": "invalid digit found in string"}])
        };
        example["errors"] = field;
    }
    let mut response = json!({
        "description": description,
        "content": { PROBLEM_JSON: { "schema": {"$ref": "#/components/schemas/Problem"}, "example": example } },
    });
    if headers.as_object().is_some_and(|h| !h.is_empty()) {
        response["headers"] = headers;
    }
    response
}

fn header(description: &str, schema: Value) -> Value {
    json!({"description": description, "schema": schema})
}

fn add_components(document: &mut Map<String, Value>) {
    let components = document.entry("components").or_insert_with(|| json!({}));
    if !components.is_object() {
        *components = json!({});
    }
    let Some(components) = components.as_object_mut() else { return };

    let schemes = components.entry("securitySchemes").or_insert_with(|| json!({}));
    if let Some(schemes) = schemes.as_object_mut() {
        schemes.insert(
            BEARER.into(),
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "An access token from `POST /api/auth/login` (or `/api/auth/token` for a service account)."}),
        );
    }

    let schemas = components.entry("schemas").or_insert_with(|| json!({}));
    if let Some(schemas) = schemas.as_object_mut() {
        let mut found = Vec::new();
        <crate::Problem as utoipa::ToSchema>::schemas(&mut found);
        found.push(("Problem".to_owned(), <crate::Problem as utoipa::PartialSchema>::schema()));
        for (name, schema) in found {
            if let Ok(value) = serde_json::to_value(schema) {
                schemas.entry(name).or_insert(value);
            }
        }
    }

    let retry_after = header("Seconds to wait before trying again.", json!({"type": "integer", "minimum": 1}));
    let text = json!({"type": "string"});
    let responses = components.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    let shared = [
        (
            "BadRequest",
            problem_response(
                400,
                "The request cannot be read: a malformed path or query parameter (an id that is not a UUID, an unknown parameter), or a body that is not JSON. `errors` names the parameter.",
                "urn:medcov:problem:malformed-request",
                "query parameter `limit` invalid digit found in string",
                json!({}),
            ),
        ),
        (
            "Unauthorized",
            problem_response(
                401,
                "No valid access token: none, expired, revoked or tampered.",
                "about:blank",
                "a valid bearer token is required",
                json!({"WWW-Authenticate": header("`Bearer`.", text.clone())}),
            ),
        ),
        (
            "Forbidden",
            problem_response(
                403,
                "The token is valid, but its roles or its scope (platform, a hospital, an insurer, the member's own records) do not allow this.",
                "about:blank",
                "this needs one of the roles admin, clinician",
                json!({}),
            ),
        ),
        (
            "NotFound",
            problem_response(
                404,
                "No such record (or not one the caller may see).",
                "about:blank",
                "patient 0190f5a4-0000-7000-8000-000000000020 not found",
                json!({}),
            ),
        ),
        (
            "Conflict",
            problem_response(
                409,
                "Conflicts with the current state, or a request with this `Idempotency-Key` is still running.",
                "about:blank",
                "a request with this Idempotency-Key is still being processed; retry once it has finished",
                json!({}),
            ),
        ),
        (
            "PayloadTooLarge",
            problem_response(
                413,
                "The body is larger than the configured limit (`http.body_limit_bytes`).",
                "about:blank",
                "the request body is larger than the configured limit",
                json!({}),
            ),
        ),
        (
            "UnsupportedMediaType",
            problem_response(
                415,
                "The body is not sent as `Content-Type: application/json`.",
                "about:blank",
                "expected a JSON body with `Content-Type: application/json`",
                json!({}),
            ),
        ),
        (
            "Invalid",
            problem_response(
                422,
                "The body was read but fields are invalid (each named by its JSON path in `errors`), or the `Idempotency-Key` is malformed or was used for another request.",
                "urn:medcov:problem:validation",
                "`date_of_birth` must not be in the future",
                json!({}),
            ),
        ),
        (
            "PreconditionRequired",
            problem_response(
                428,
                "`If-Match` is missing: send the `ETag` of the version read, so no change is lost.",
                "about:blank",
                "send If-Match with the ETag of the record you read, so no change is lost",
                json!({}),
            ),
        ),
        (
            "TooManyRequests",
            problem_response(
                429,
                "Over a rate limit. `Retry-After` says when to try again; `RateLimit-Policy` states the quota enforced and `RateLimit` what is left of it.",
                "about:blank",
                "too many requests; retry in 1 s",
                json!({
                    "Retry-After": retry_after.clone(),
                    "RateLimit": header("What is left of the quota: `\"<group>\";r=<remaining>;t=<seconds until full>`.", text.clone()),
                    "RateLimit-Policy": header("The quota enforced: `\"<group>\";q=<requests>;w=<window seconds>;burst=<at once>`.", text.clone()),
                }),
            ),
        ),
        (
            "Unavailable",
            problem_response(
                503,
                "A dependency (the database, another service) is unavailable, the request did not finish in time, or the service is shutting down. Retrying after `Retry-After` may work.",
                "about:blank",
                "the database is unavailable; try again shortly",
                json!({"Retry-After": retry_after}),
            ),
        ),
    ];
    for (name, response) in shared {
        responses.entry(name.to_owned()).or_insert(response);
    }
}

/// The documented paths, split into segments (`None`: a `{parameter}`), with their methods.
#[derive(Debug, Default)]
pub struct Routes(Vec<(Vec<Option<String>>, Vec<Method>)>);

impl Routes {
    pub fn of(document: &Value) -> Routes {
        let mut routes = Vec::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            let segments = path
                .split('/')
                .map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_owned()) })
                .collect();
            let mut methods: Vec<Method> = ["get", "put", "post", "delete", "patch"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .filter_map(|m| m.to_ascii_uppercase().parse().ok())
                .collect();
            if methods.contains(&Method::GET) {
                methods.push(Method::HEAD);
            }
            routes.push((segments, methods));
        }
        Routes(routes)
    }

    /// The methods of the most specific documented paths `path` matches (a literal segment
    /// beats a parameter, as in the services' routers).
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, Vec<Method>)> = None;
        for (template, methods) in &self.0 {
            if template.len() != segments.len() {
                continue;
            }
            let matches = template.iter().zip(&segments).all(|(t, s)| t.as_deref().is_none_or(|literal| literal == *s));
            if !matches {
                continue;
            }
            let literals = template.iter().filter(|t| t.is_some()).count();
            let better = best.as_ref().is_none_or(|(score, _)| literals > *score);
            if better {
                best = Some((literals, methods.clone()));
            } else if let Some((score, union)) = &mut best
                && *score == literals
            {
                for method in methods {
                    if !union.contains(method) {
                        union.push(method.clone());
                    }
                }
            }
        }
        best.map(|(_, methods)| methods)
    }
}

/// Every `$ref` in `value` that points at nothing in `document` (a schema a service refers to
/// but never registered, say).
pub fn dangling_refs(document: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    collect_refs(document, &mut refs);
    refs.sort();
    refs.dedup();
    refs.retain(|r| resolve(document, r).is_none());
    refs
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    if let Some(r) = v.as_str() {
                        into.push(r.to_owned());
                    }
                } else {
                    collect_refs(v, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// The value a local `$ref` (`#/components/schemas/Name`) points at.
pub fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    document.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/login": {"post": {"security": [{}], "requestBody": {"content": {"application/json": {}}},
                    "responses": {"200": {}, "401": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}}},
                "/patients/{id}": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "get": {"responses": {"200": {"description": "The patient."}}},
                    "patch": {"requestBody": {"content": {"application/json": {}}}, "responses": {"200": {}, "412": {}, "428": {}}}
                },
                "/health/live": {"get": {"security": [{}], "responses": {"200": {"description": "Live."}}}}
            }
        })
    }

    #[test]
    fn protected_operations_declare_the_bearer_and_its_answers() {
        let mut doc = document();
        complete(&mut doc);
        let get = &doc["paths"]["/patients/{id}"]["get"];
        assert_eq!(get["security"], json!([{"bearer": []}]));
        for status in ["400", "401", "403", "404", "429", "503"] {
            assert!(get["responses"][status]["$ref"].is_string(), "{status}: {get}");
        }
        assert_eq!(get["responses"]["200"]["description"], "The patient.");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(doc["components"]["schemas"]["FieldError"].is_object());
        assert_eq!(dangling_refs(&doc), Vec::<String>::new());
    }

    #[test]
    fn public_operations_stay_public() {
        let mut doc = document();
        complete(&mut doc);
        let login = &doc["paths"]["/login"]["post"];
        assert_eq!(login["security"], json!([]));
        assert!(login["responses"]["403"].is_null(), "{login}");
        assert!(login["parameters"].is_null(), "no Idempotency-Key on a public operation: {login}");
        // Its own 401 keeps its place, as problem+json with a description.
        let unauthorized = &login["responses"]["401"];
        assert!(unauthorized["content"]["application/json"].is_null(), "{unauthorized}");
        assert!(unauthorized["content"][PROBLEM_JSON]["schema"]["$ref"].is_string(), "{unauthorized}");
        assert_eq!(unauthorized["description"], "Unauthorized.");
        assert_eq!(login["responses"]["200"]["description"], "OK.");
        assert!(doc["paths"]["/health/live"]["get"]["responses"]["400"].is_null());
    }

    #[test]
    fn a_412_brings_if_match_and_428_and_changes_bring_idempotency_keys() {
        let mut doc = document();
        complete(&mut doc);
        let patch = &doc["paths"]["/patients/{id}"]["patch"];
        let names: Vec<&str> =
            patch["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["If-Match", "Idempotency-Key"]);
        assert_eq!(patch["parameters"][0]["required"], true, "428 documented: If-Match is required");
        for status in ["409", "413", "415", "422", "428"] {
            assert!(patch["responses"][status].is_object(), "{status}: {patch}");
        }
        assert!(patch["responses"]["412"]["content"][PROBLEM_JSON].is_object(), "{patch}");
        let too_many = &doc["components"]["responses"]["TooManyRequests"];
        for name in ["Retry-After", "RateLimit", "RateLimit-Policy"] {
            assert!(too_many["headers"][name].is_object(), "{name}");
        }
    }

    #[test]
    fn dangling_references_are_found() {
        let doc = json!({"components": {"schemas": {"A": {"$ref": "#/components/schemas/B"}}}});
        assert_eq!(dangling_refs(&doc), vec!["#/components/schemas/B".to_owned()]);
    }

    #[test]
    fn routes_know_each_paths_methods() {
        let doc = json!({"paths": {
            "/api/hospital/patients": {"get": {}, "post": {}},
            "/api/hospital/patients/{id}": {"get": {}, "patch": {}, "parameters": []},
            "/api/hospital/patients/search": {"post": {}},
        }});
        let routes = Routes::of(&doc);
        assert_eq!(routes.allowed("/api/hospital/patients"), Some(vec![Method::GET, Method::POST, Method::HEAD]));
        assert_eq!(
            routes.allowed("/api/hospital/patients/0190f5a4"),
            Some(vec![Method::GET, Method::PATCH, Method::HEAD])
        );
        // A literal segment beats a parameter.
        assert_eq!(routes.allowed("/api/hospital/patients/search"), Some(vec![Method::POST]));
        assert_eq!(routes.allowed("/api/hospital/nowhere"), None);
        assert_eq!(routes.allowed("/api/hospital/patients/1/2"), None);
    }
}
