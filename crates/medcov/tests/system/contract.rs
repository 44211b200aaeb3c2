//! The public contract, checked as an integrator would: every OpenAPI document (each
//! service's, the gateway's own and the merged one) valid under an independent OpenAPI 3.1
//! validator; the merged document meaning exactly what each service's says (one schema name,
//! one meaning); the bearer requirement on every token-protected operation, as
//! docs/authorization.md says; every error documented as problem+json.

use std::collections::BTreeSet;
use std::process::Command;

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use medcov_testkit::tools;
use serde_json::{Map, Value, json};

use crate::support::App;

const VALIDATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/validate_openapi.py");
const FUZZER_SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/schemathesis.toml");
const SERVICES: [ServiceName; 4] =
    [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing];
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every document the API publishes: (name, document).
async fn documents(app: &App) -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    let (status, _, merged) = app.get(ServiceName::Gateway, "/api/openapi.json").await;
    assert_eq!(status, 200, "{merged}");
    documents.push(("merged".to_owned(), merged));
    let (status, _, gateway) = app.get(ServiceName::Gateway, "/openapi.json").await;
    assert_eq!(status, 200, "{gateway}");
    documents.push(("gateway".to_owned(), gateway));
    for service in SERVICES {
        let (status, _, doc) = app.get(ServiceName::Gateway, &format!("/api/{service}/openapi.json")).await;
        assert_eq!(status, 200, "{service}: {doc}");
        documents.push((service.to_string(), doc));
    }
    documents
}

/// Each operation of a document: (path, method, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((path.clone(), method.to_owned(), operation.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_is_valid_openapi_3_1() {
    let python = tools::require("python", "make the tools venv: pip install -r .ci/requirements.txt");
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let folder = tempfile::tempdir().expect("a temporary folder");
    let mut files = Vec::new();
    for (name, document) in documents(&app).await {
        let file = folder.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(&document).expect("json")).expect("written");
        files.push(file);
    }
    let output = Command::new(python).arg(VALIDATOR).args(&files).output().expect("the validator runs");
    assert!(
        output.status.success(),
        "the validator failed (pip install -r .ci/requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Map<String, Value> = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report.len(), files.len(), "{report:?}");
    let invalid: Vec<String> = report
        .iter()
        .filter(|(_, errors)| errors.as_array().is_none_or(|e| !e.is_empty()))
        .map(|(file, errors)| format!("{file}:\n{}", serde_json::to_string_pretty(errors).unwrap_or_default()))
        .collect();
    assert!(invalid.is_empty(), "invalid OpenAPI documents:\n{}", invalid.join("\n"));
    app.stop().await;
}

/// `value` with every local `$ref` replaced by what it points at (a reference met again while
/// being resolved, a recursive type, stays a reference to a name-free marker).
fn inline(document: &Value, value: &Value, resolving: &mut Vec<String>) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                if resolving.iter().any(|r| r == reference) {
                    return json!({"$ref": "(recursive)"});
                }
                let target = reference.strip_prefix('#').and_then(|p| document.pointer(p));
                let Some(target) = target else { return json!({"$ref": format!("(dangling) {reference}")}) };
                resolving.push(reference.to_owned());
                let resolved = inline(document, target, resolving);
                resolving.pop();
                return resolved;
            }
            Value::Object(map.iter().map(|(k, v)| (k.clone(), inline(document, v, resolving))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(document, v, resolving)).collect()),
        other => other.clone(),
    }
}

/// The merged document is each service's own, operation by operation, once every reference is
/// followed: a schema name that two services use with two meanings would show here as one
/// service's operation described with the other's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merged_document_means_what_each_service_says() {
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let documents = documents(&app).await;
    let merged = &documents[0].1;
    let mut compared = 0;
    let mut differ = Vec::new();
    for (name, document) in &documents[2..] {
        for (path, method, operation) in operations(document) {
            if path == "/metrics" || (name == "auth" && path == "/revocations") {
                continue; // not routed by the gateway
            }
            let full = if path == "/" { format!("/api/{name}") } else { format!("/api/{name}{path}") };
            let Some(in_merged) = merged["paths"][&full].get(&method) else {
                differ.push(format!("{method} {full} is missing from the merged document"));
                continue;
            };
            let mut mine = inline(document, &operation, &mut Vec::new());
            let mut theirs = inline(merged, in_merged, &mut Vec::new());
            for op in [&mut mine, &mut theirs] {
                if let Some(op) = op.as_object_mut() {
                    op.remove("tags");
                    op.remove("operationId");
                }
            }
            compared += 1;
            if mine != theirs {
                differ.push(format!("{method} {full}: the merged document describes it otherwise than {name}'s own"));
            }
        }
    }
    // The gateway's own routes, too.
    for (path, method, operation) in operations(&documents[1].1) {
        if let Some(in_merged) = merged["paths"][&path].get(&method) {
            compared += 1;
            if inline(&documents[1].1, &operation, &mut Vec::new()) != inline(merged, in_merged, &mut Vec::new()) {
                differ.push(format!("{method} {path}: the merged document describes it otherwise than the gateway's"));
            }
        }
    }
    assert!(compared > 100, "{compared} operations compared");
    assert!(merged["paths"]["/mesh"]["get"].is_object(), "the gateway's /mesh is documented");
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    app.stop().await;
}

/// Every operation declares who may call it: the bearer requirement unless docs/authorization.md
/// says it is public; every error answer is problem+json; every response is described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_declare_their_security_and_problem_answers() {
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let table = crate::authorization::table();
    let documents = documents(&app).await;
    let mut wrong = Vec::new();
    let mut protected = 0;
    for (name, document) in &documents[1..] {
        for (path, method, operation) in operations(document) {
            let key = |service: &str| (service.to_owned(), method.to_uppercase(), path.clone());
            let rule = table.get(&key(name)).or_else(|| table.get(&key("every")));
            let public = matches!(rule, Some(crate::authorization::MayCall::Public));
            let declared = operation["security"].clone();
            if public && declared != json!([]) {
                wrong.push(format!("{name} {method} {path} is public but declares {declared}"));
            }
            if !public {
                protected += 1;
                if declared != json!([{"bearer": []}]) {
                    wrong.push(format!("{name} {method} {path} needs a token but declares {declared}"));
                }
                if operation["responses"]["401"].is_null() || operation["responses"]["403"].is_null() {
                    wrong.push(format!("{name} {method} {path} does not document 401 and 403"));
                }
            }
            let resolved = inline(document, &operation["responses"], &mut Vec::new());
            for (status, response) in resolved.as_object().expect("responses") {
                if response["description"].as_str().is_none_or(str::is_empty) {
                    wrong.push(format!("{name} {method} {path} {status} has no description"));
                }
                let error = status.starts_with('4') || status.starts_with('5');
                let readiness = path == "/health/ready";
                if error && !readiness {
                    let types: BTreeSet<&String> =
                        response["content"].as_object().map(|c| c.keys().collect()).unwrap_or_default();
                    if types.len() != 1 || !types.contains(&"application/problem+json".to_owned()) {
                        wrong.push(format!("{name} {method} {path} {status} is documented as {types:?}"));
                    }
                }
            }
        }
    }
    assert!(protected > 100, "{protected} protected operations");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.stop().await;
}

/// Operations the fuzzer leaves alone: they change how the gateway reaches the services (a
/// breaker forced open would answer 503 to everything after it), not what the API says.
const NOT_FUZZED: &str = "^/mesh";

/// Schemathesis, an independent property-based tester, calls every operation of the merged
/// document through the gateway with generated requests (valid and invalid) as a platform
/// administrator, without a token, and as a clerk of one hospital: no answer is a 5xx, none
/// breaks its documented schema, and every status code and content type is documented.
/// Bounded: a few examples per operation and phase, a fixed seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuzzer_finds_the_api_as_documented() {
    let schemathesis = tools::require("schemathesis", "pip install -r .ci/requirements.txt (schemathesis)");
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    // The fuzzer's thousands of requests are not what the rate limits are for (they answer
    // 429, documented, to the rest): it gets room to reach the operations.
    config.gateway.rate_limits.api = medcov_config::QuotaConfig { per_minute: 1_000_000, burst: 100_000 };
    config.gateway.rate_limits.auth = medcov_config::QuotaConfig { per_minute: 1_000_000, burst: 100_000 };
    let world = crate::world::World::start_with(&env, config, "all").await;
    let hospital = world.hospital("FUZZ", "Africa/Nairobi").await;
    let clerk = world.user("fuzz.clerk", "hospital_clerk", crate::world::scope::hospital(&hospital)).await;
    let schema = world.app.url(ServiceName::Gateway, "/api/openapi.json");
    let base = world.app.url(ServiceName::Gateway, "");
    let folder = tempfile::tempdir().expect("a temporary folder");
    let mut failed = Vec::new();
    for (who, token) in [("admin", Some(world.admin.clone())), ("no token", None), ("clerk", Some(clerk))] {
        let report = folder.path().join(format!("{}.ndjson", who.replace(' ', "-")));
        let mut command = Command::new(&schemathesis);
        command
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .args(["--config-file", FUZZER_SETTINGS, "--no-color", "run"])
            .arg(&schema)
            .args(["--url", base.trim_end_matches('/')])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "4", "--seed", "17", "--workers", "2", "--generation-database", "none"])
            .args(["--exclude-path-regex", NOT_FUZZED])
            .args(["--request-timeout", "20", "--continue-on-failure"])
            .args(["--report", "ndjson", "--report-ndjson-path"])
            .arg(&report)
            .current_dir(folder.path());
        if let Some(token) = &token {
            command.args(["--header", &format!("Authorization: Bearer {token}")]);
        }
        let output = command.output().expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let tail: Vec<&str> = stdout.lines().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
            failed.push(format!(
                "== as {who}: schemathesis exited {}\n{}\n{}",
                output.status,
                tail.join("\n"),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    world.stop().await;
}

/// One HTTP behaviour everywhere: 405 with `Allow` before the token or any header is looked
/// at (through the gateway and on a service's own port), 400 for a query that is not UTF-8,
/// 422 naming the field for a number out of range and for a repeated role, and an `ETag` on
/// the records changed under `If-Match`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http_behaviour_everywhere() {
    use reqwest::Method;
    let env = TestEnv::embedded().await;
    let world = crate::world::World::start(&env).await;
    let app = &world.app;
    let admin = world.admin.clone();

    // 405 before authentication, before the Idempotency-Key is read.
    for (method, path) in [
        ("TRACE", "/api/hospital/patients"),
        ("PUT", "/api/hospital/patients"),
        ("DELETE", "/api/auth/login"),
        ("PATCH", "/api/billing/invoices"),
    ] {
        let response = app
            .client
            .request(Method::from_bytes(method.as_bytes()).expect("method"), app.url(ServiceName::Gateway, path))
            .header("idempotency-key", "not\tvisible")
            .send()
            .await
            .expect("sent");
        let (status, headers, body) = crate::support::read(response).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        let allow = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(!allow.is_empty() && !allow.contains(method), "{method} {path}: Allow {allow}");
    }
    let response = app
        .client
        .put(app.url(ServiceName::Hospital, "/patients"))
        .header("idempotency-key", "not\tvisible")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405, "on the service's own port too");
    // A path the method does exist on still needs the token.
    let (status, _, _) = app.call(Method::GET, "/api/hospital/patients", None, None).await;
    assert_eq!(status, 401);

    // A query string that is not UTF-8 once decoded.
    let (status, _, body) = app.call(Method::GET, "/api/hospital/patients?name=%FF%FE", Some(&admin), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["field"], "(query)", "{body}");

    // A number out of range, and a repeated role: 422 naming the field.
    let hospital = world.hospital("HTTP", "Africa/Nairobi").await;
    let response = app
        .client
        .post(app.url(ServiceName::Gateway, "/api/hospital/practitioners"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"hospital_id":"{hospital}","name":"Dr. A","specialty":"gp","working_hours":[],"daily_capacity":1e400}}"#
        ))
        .send()
        .await
        .expect("sent");
    let (status, _, body) = crate::support::read(response).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "daily_capacity", "{body}");
    let user = json!({"username": "twice", "password": crate::world::PASSWORD, "roles": ["auditor", "auditor"],
        "scope": crate::world::scope::platform()});
    let (status, _, body) = app.call(Method::POST, "/api/auth/users", Some(&admin), Some(user)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "roles", "{body}");

    // ETags on hospitals and practitioners, as on patients and users.
    let (status, headers, body) =
        app.call(Method::GET, &format!("/api/hospital/hospitals/{hospital}"), Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["etag"], format!("\"{}\"", body["version"]).as_str());
    let practitioner =
        json!({"hospital_id": hospital, "name": "Dr. B", "specialty": "gp", "working_hours": [], "daily_capacity": 8});
    let (status, headers, created) =
        app.call(Method::POST, "/api/hospital/practitioners", Some(&admin), Some(practitioner)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["etag"], format!("\"{}\"", created["version"]).as_str());
    let path = format!("/api/hospital/practitioners/{}", created["id"].as_str().expect("id"));
    let (_, headers, _) = app.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(headers["etag"], format!("\"{}\"", created["version"]).as_str());
    world.stop().await;
}
