//! Every service, started together, on each backend.

use medcov_config::ServiceName;
use medcov_testkit::{TestBackend, TestEnv};

use crate::support::{App, read, sample};

async fn every_service_is_ready_on_its_own_port(env: TestEnv) {
    let app = App::start(env.config.clone(), "all").await;
    for name in ServiceName::ALL {
        let (status, _, body) = app.get(name, "/health/ready").await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["service"], name.as_str());
        assert_eq!(body["status"], "ready", "{name}: {body}");
        let (status, _, body) = app.get(name, "/health/live").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("live")));
        let (status, _, doc) = app.get(name, "/openapi.json").await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{doc}");
        assert!(doc["paths"]["/health/ready"].is_object(), "{name}: {doc}");
    }
    let (_, _, hospital) = app.get(ServiceName::Hospital, "/health/ready").await;
    let checks = hospital["checks"].as_array().expect("checks");
    match env.backend {
        TestBackend::Embedded => {
            assert_eq!(checks[0]["name"], "database:sqlite");
            for name in ["auth", "hospital", "insurance", "billing"] {
                assert!(env.data_dir().join(format!("{name}.db")).exists(), "{name}.db");
            }
            assert!(!env.data_dir().join("gateway.db").exists());
        }
        TestBackend::Distributed | TestBackend::RedisCluster => {
            assert_eq!(checks[0]["name"], "database:postgres");
            assert!(checks.iter().any(|c| c["name"] == "redis" && c["status"] == "up"), "{hospital}");
            let url = env.postgres_url().expect("a database");
            let pool = sqlx::PgPool::connect(url).await.expect("test database");
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name IN ('auth','hospital','insurance','billing','gateway') ORDER BY 1",
            )
            .fetch_all(&pool)
            .await
            .expect("schemas");
            assert_eq!(schemas, ["auth", "billing", "hospital", "insurance"]);
            let owner: String = sqlx::query_scalar("SELECT value FROM billing.medcov_meta WHERE key = 'service'")
                .fetch_one(&pool)
                .await
                .expect("owner row");
            assert_eq!(owner, "billing");
            pool.close().await;
        }
    }
    app.stop().await;
}

async fn the_gateway_routes_to_each_service_with_the_request_id(env: TestEnv) {
    let app = App::start(env.config.clone(), "all").await;
    for name in ["auth", "hospital", "insurance", "billing"] {
        let response = app
            .client
            .get(app.url(ServiceName::Gateway, &format!("/api/{name}/health/ready")))
            .header("x-request-id", format!("req-{name}"))
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .send()
            .await
            .expect("sent");
        let (status, headers, body) = read(response).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["service"], name, "the gateway reached {name}");
        assert_eq!(headers["x-request-id"], format!("req-{name}").as_str());
        let (_, _, doc) = app.get(ServiceName::Gateway, &format!("/api/{name}/openapi.json")).await;
        assert!(doc["info"]["title"].as_str().is_some_and(|t| t.contains(name)), "{doc}");
    }
    let (status, headers, body) = app.get(ServiceName::Gateway, "/api/pharmacy/anything").await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("pharmacy")), "{body}");
    app.stop().await;
}

async fn bad_input_gets_a_problem_never_a_500(env: TestEnv) {
    let app = App::start(env.config.clone(), "all").await;
    for name in ServiceName::ALL {
        let (status, headers, body) = app.get(name, "/no/such/path").await;
        assert_eq!(status, 404, "{name}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["status"], 404);
        assert!(body["request_id"].is_string(), "{body}");

        let response = app
            .client
            .post(app.url(name, "/health/ready"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("sent");
        let (status, headers, _) = read(response).await;
        assert_eq!(status, 405, "{name}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    // A body over the limit is refused before any service sees it.
    let mut config = env.config.clone();
    config.http.body_limit_bytes = 16;
    app.stop().await;
    let app = App::start(config, "all").await;
    let response = app
        .client
        .post(app.url(ServiceName::Gateway, "/api/hospital/anything"))
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(64)))
        .send()
        .await
        .expect("sent");
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/problem+json");
    app.stop().await;
}

async fn metrics_grow_with_traffic(env: TestEnv) {
    let app = App::start(env.config.clone(), "all").await;
    let route = r#"route="/health/live""#;
    let before = sample(&app.text(ServiceName::Hospital, "/metrics").await, "http_server_requests_total", &[route])
        .unwrap_or(0.0);
    for _ in 0..3 {
        app.get(ServiceName::Hospital, "/health/live").await;
    }
    app.get(ServiceName::Hospital, "/nowhere").await;
    let text = app.text(ServiceName::Hospital, "/metrics").await;
    let after =
        sample(&text, "http_server_requests_total", &[route, r#"service="hospital""#]).expect("a request counter");
    assert_eq!(after - before, 3.0, "{text}");
    // (Every route's error counters exist at 0 from its first request: ask for the one used.)
    assert!(
        sample(&text, "http_server_errors_total", &[r#"route="(unmatched)""#, r#"status_class="4xx""#])
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(text.contains("http_server_request_duration_seconds_bucket"), "{text}");
    // Another service's registry did not see the hospital's traffic.
    let billing = app.text(ServiceName::Billing, "/metrics").await;
    assert!(!billing.contains(r#"service="hospital""#), "{billing}");
    app.stop().await;
}

async fn one_document_describes_the_whole_api_and_docs_work_offline(env: TestEnv) {
    let app = App::start(env.config.clone(), "all").await;
    let (status, _, doc) = app.get(ServiceName::Gateway, "/api/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for path in ["/api/auth/login", "/api/auth/users/{id}", "/api/hospital/health/ready", "/api/billing/health/live"] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys().collect::<Vec<_>>());
    }
    // Operation ids stay unique once every service's operations are in one document.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "duplicate operation ids");
    assert!(doc["paths"]["/api/hospital/metrics"].is_null());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let page = app.text(ServiceName::Gateway, "/docs/").await;
    assert!(page.contains("swagger"), "{page}");
    let config = app.text(ServiceName::Gateway, "/docs/swagger-initializer.js").await;
    assert!(config.contains("/api/openapi.json"), "{config}");
    app.stop().await;
}

/// A GET straight on a service's port is answered from the service's own response cache
/// (`medcov_http::caching`), as the gateway answers what it forwards: per audience, never
/// after a write it has not seen (in this process or, on Redis, in another), never to a caller
/// whose token is no longer valid, and with the record's `ETag`.
async fn a_service_caches_its_own_cacheable_answers_per_audience_until_a_write(env: TestEnv) {
    use crate::world::{World, scope};
    use reqwest::Method;
    let world = World::start(&env).await;
    let nairobi = world.hospital("NRB", "Africa/Nairobi").await;
    let mombasa = world.hospital("MSA", "Africa/Nairobi").await;
    let (nairobi_clerk, nairobi_refresh) = {
        world.user("desk", "hospital_clerk", scope::hospital(&nairobi)).await;
        world.app.login("desk", crate::world::PASSWORD).await
    };
    let mombasa_clerk = world.user("front", "hospital_clerk", scope::hospital(&mombasa)).await;
    let app = &world.app;
    // Straight on the hospital port: (status, X-Cache, ETag, body).
    let get = async |path: &str, token: &str| {
        let response =
            app.client.get(app.url(ServiceName::Hospital, path)).bearer_auth(token).send().await.expect("sent");
        let (status, headers, body) = read(response).await;
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default().to_owned());
        (status, header("x-cache"), header("etag"), body)
    };
    let one = format!("/hospitals/{nairobi}");

    // The first GET learns the answer's tags, the second stores it, the third is a hit, whole.
    let (_, first, _, _) = get(&one, &nairobi_clerk).await;
    let (_, second, etag, stored) = get(&one, &nairobi_clerk).await;
    let (status, third, hit_etag, hit) = get(&one, &nairobi_clerk).await;
    assert_eq!((first.as_deref(), second.as_deref(), third.as_deref()), (Some("MISS"), Some("MISS"), Some("HIT")));
    assert_eq!((status, &hit, &hit_etag), (200, &stored, &etag), "the hit is the stored answer, with its ETag");
    assert_eq!(etag.as_deref(), Some("\"1\""));

    // Another tenant's clerk never gets the Nairobi clerk's entry: its own audience, its own entry.
    let (status, x_cache, _, body) = get(&one, &mombasa_clerk).await;
    assert_eq!((status, x_cache.as_deref(), &body), (200, Some("MISS"), &stored), "{body}");
    // No token, or a forged one: refused as before, whatever is cached.
    let response = app.client.get(app.url(ServiceName::Hospital, &one)).send().await.expect("sent");
    assert_eq!(response.status(), 401);
    let (status, x_cache, _, _) = get(&one, &format!("{nairobi_clerk}x")).await;
    assert_eq!((status, x_cache), (401, None));

    // A write through the gateway drops the entry: the next GET on the port sees it.
    let nairobi_admin = world.user("boss", "admin", scope::hospital(&nairobi)).await;
    let response = app
        .client
        .patch(app.url(ServiceName::Gateway, &format!("/api/hospital/hospitals/{nairobi}")))
        .bearer_auth(&nairobi_admin)
        .header("if-match", etag.as_deref().expect("an etag"))
        .json(&serde_json::json!({"name": "Nairobi West"}))
        .send()
        .await
        .expect("sent");
    let (status, _, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    let (status, x_cache, etag, body) = get(&one, &nairobi_clerk).await;
    assert_eq!((status, x_cache.as_deref(), etag.as_deref()), (200, Some("MISS"), Some("\"2\"")));
    assert_eq!(body["name"], "Nairobi West", "never the answer from before the write");
    let (_, x_cache, _, body) = get(&one, &nairobi_clerk).await;
    assert_eq!((x_cache.as_deref(), &body["name"]), (Some("HIT"), &serde_json::json!("Nairobi West")));

    // On Redis the cache is shared by every process, and each keeps a near copy of what it
    // read: a write in another process (its tag's version moved in Redis) is seen at once.
    if let Some(prefix) = env.redis_prefix() {
        let url = env.config.redis.url.as_ref().expect("redis").expose().to_owned();
        let mut redis =
            redis::Client::open(url.as_str()).expect("client").get_multiplexed_async_connection().await.expect("redis");
        let tag = format!("{prefix}:cache:{{tags}}:hospital:directory");
        let _: i64 = redis::cmd("INCR").arg(&tag).query_async(&mut redis).await.expect("bumped");
        let (_, x_cache, _, _) = get(&one, &nairobi_clerk).await;
        assert_eq!(x_cache.as_deref(), Some("MISS"), "the near copy is not served past another process's write");
    }

    // A signed-out clerk's token is refused on the port, cached answer or not.
    let (status, _, body) = app
        .call(Method::POST, "/api/auth/logout", None, Some(serde_json::json!({"refresh_token": nairobi_refresh})))
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    crate::support::until("the signed-out token refused on the hospital port", crate::support::PATIENCE, async || {
        get(&one, &nairobi_clerk).await.0 == 401
    })
    .await;
    let metrics = app.metrics(ServiceName::Hospital).await;
    assert!(sample(&metrics, "http_response_cache_total", &["result=\"hit\""]).unwrap_or(0.0) >= 2.0, "{metrics}");
    world.stop().await;
}

medcov_testkit::backend_suite!(
    a_service_caches_its_own_cacheable_answers_per_audience_until_a_write,
    one_document_describes_the_whole_api_and_docs_work_offline,
    every_service_is_ready_on_its_own_port,
    the_gateway_routes_to_each_service_with_the_request_id,
    bad_input_gets_a_problem_never_a_500,
    metrics_grow_with_traffic,
);

/// Every request body in every service's API description carries an example (on the body or
/// on its schema), so a reader sees what to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_body_has_an_example() {
    let env = TestEnv::embedded().await;
    let app = App::start(env.config.clone(), "all").await;
    let mut missing = Vec::new();
    for service in
        [ServiceName::Gateway, ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing]
    {
        let (_, _, doc) = app.get(service, "/openapi.json").await;
        let schemas = &doc["components"]["schemas"];
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let Some(content) = operation["requestBody"]["content"].as_object() else { continue };
                for (media, body) in content {
                    let schema = &body["schema"];
                    let named = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()).map(|n| &schemas[n]);
                    let has = body.get("example").is_some()
                        || body.get("examples").is_some()
                        || schema.get("example").is_some()
                        || named.is_some_and(|s| s.get("example").is_some() || s.get("examples").is_some());
                    if !has {
                        missing.push(format!("{service} {} {path} ({media})", method.to_uppercase()));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "request bodies without an example:\n{}", missing.join("\n"));
    app.stop().await;
}
