//! The gateway's edge: rate limits, CORS and security headers.

use medcov_config::{QuotaConfig, ServiceName};
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::json;

use crate::support::App;
use crate::world::World;

async fn login_attempt(app: &App) -> (u16, reqwest::header::HeaderMap) {
    let (status, headers, _) = app
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "nobody", "password": "wrong password"})))
        .await;
    (status, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_sign_in_limit_gets_429_with_retry_after() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.gateway.rate_limits.auth = QuotaConfig { per_minute: 1, burst: 3 };
    let app = App::start(config, "all").await;
    for remaining in [2, 1, 0] {
        let (status, headers) = login_attempt(&app).await;
        assert_eq!(status, 401);
        // The policy states the quota enforced: 1 a minute, 3 at once.
        assert_eq!(headers["ratelimit-policy"], "\"sign-in\";q=1;w=60;burst=3");
        let now = headers["ratelimit"].to_str().expect("ascii");
        assert!(now.starts_with(&format!("\"sign-in\";r={remaining};t=")), "{now}");
    }
    let (status, headers, body) = app
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "nobody", "password": "wrong password"})))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let retry: u64 = headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // A refusal says which limit and when it frees up, like every other answer.
    assert_eq!(headers["ratelimit-policy"], "\"sign-in\";q=1;w=60;burst=3");
    assert!(headers["ratelimit"].to_str().expect("ascii").starts_with("\"sign-in\";r=0;t="), "{headers:?}");
    // Other routes have their own budget.
    let (status, _, _) = app.call(Method::GET, "/api/auth/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Staff behind one address sign in all morning; one account guessed at from that address is
/// stopped at the 11th attempt in a burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_per_address_and_account_together() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.gateway.rate_limits.auth = QuotaConfig { per_minute: 300, burst: 60 };
    config.gateway.rate_limits.sign_in = QuotaConfig { per_minute: 20, burst: 10 };
    let app = App::start(config, "all").await;
    let attempt = |username: String| {
        app.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": username, "password": "wrong password"})),
        )
    };
    for _ in 0..10 {
        assert_eq!(attempt("amina.desk".into()).await.0, 401);
    }
    let (status, headers, _) = attempt("Amina.Desk".into()).await;
    assert_eq!(status, 429, "the 11th attempt on one account");
    assert_eq!(headers["ratelimit-policy"], "\"sign-in-account\";q=20;w=60;burst=10");
    for n in 0..20 {
        assert_eq!(attempt(format!("colleague{n}")).await.0, 401, "colleagues at the same address are not slowed");
    }
    app.stop().await;
}

/// Straight on the auth port, sign-in is limited too, and a forged X-Forwarded-For from a
/// caller that is not a trusted proxy changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_port_limits_sign_in_itself() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.gateway.rate_limits.auth = QuotaConfig { per_minute: 1, burst: 5 };
    config.http.trusted_proxies = vec!["10.0.0.0/8".to_owned()];
    let app = App::start(config, "all").await;
    let mut statuses = Vec::new();
    for n in 0..7 {
        let response = app
            .client
            .post(app.url(ServiceName::Auth, "/login"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&json!({"username": format!("user{n}"), "password": "wrong password"}))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_through_redis() {
    let env = TestEnv::distributed().await;
    let mut config = env.config.clone();
    config.gateway.rate_limits.auth = QuotaConfig { per_minute: 1, burst: 3 };
    let services = App::start(config.clone(), "auth,hospital,insurance,billing").await;
    for name in [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing] {
        config.services.get_mut(name).url = Some(services.url(name, "/").parse().expect("url"));
    }
    let (one, two) = (App::start(config.clone(), "gateway").await, App::start(config, "gateway").await);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let gateway = if i % 2 == 0 { &one } else { &two };
        statuses.push(login_attempt(gateway).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    one.stop().await;
    two.stop().await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_only_configured_origins_and_every_answer_is_hardened() {
    let env = TestEnv::embedded().await;
    let mut config = env.config.clone();
    config.gateway.cors_allowed_origins = vec!["https://app.example.org".to_owned()];
    let app = App::start(config, "all").await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url(ServiceName::Gateway, "/api/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://app.example.org").await.expect("sent");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.org");
    let refused = preflight("https://evil.example").await.expect("sent");
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let (_, headers, _) = app.get(ServiceName::Hospital, "/health/live").await;
    for (name, value) in
        [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("cache-control", "no-store")]
    {
        assert_eq!(headers[name], value, "{name}");
    }
    app.stop().await;
}

/// The services' metrics are not reachable through the gateway, however the path is spelt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_behind_the_gateway() {
    let env = TestEnv::embedded().await;
    let World { app, admin } = World::start(&env).await;
    for path in
        ["/api/hospital/metrics", "/api/hospital//metrics", "/api/hospital/metrics?x=1", "/api/billing///metrics"]
    {
        let response =
            app.client.get(app.url(ServiceName::Gateway, path)).bearer_auth(&admin).send().await.expect("sent");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("http_server_requests_total"), "{path}");
    }
    // Nor are the gateway's own: the public port has none; the internal listener has them.
    for path in ["/metrics", "//metrics", "/metrics?format=text"] {
        let response = app.client.get(app.url(ServiceName::Gateway, path)).send().await.expect("sent");
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response.text().await.expect("body").contains("http_server_requests_total"), "{path}");
    }
    let metrics = app.metrics(ServiceName::Gateway).await;
    assert!(metrics.contains("http_server_requests_total"), "{metrics}");
    let internal = app.running.as_ref().and_then(|r| r.internal_addr(ServiceName::Gateway)).expect("internal");
    let ready = app.client.get(format!("http://{internal}/health/ready")).send().await.expect("sent");
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

/// Every mutating endpoint honours Idempotency-Key: a repeat gets the first answer, another
/// request under the key 422, concurrent repeats one effect; keys belong to their caller.
async fn idempotency_keys_guard_every_mutating_endpoint(env: TestEnv) {
    let World { app, admin } = World::start(&env).await;
    let hospital = |code: &str| json!({"name": format!("{code} Hospital"), "code": code, "timezone": "Africa/Nairobi", "currency": "KES"});
    let create = |token: String, key: &'static str, body: serde_json::Value| {
        let request = app
            .client
            .post(app.url(ServiceName::Gateway, "/api/hospital/hospitals"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body);
        async move { crate::support::read(request.send().await.expect("sent")).await }
    };
    let count = async || {
        let (_, _, body) = app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None).await;
        body["items"].as_array().map(Vec::len).unwrap_or(0)
    };

    let (status, headers, first) = create(admin.clone(), "key-1", hospital("NRB")).await;
    assert_eq!(status, 201, "{first}");
    assert!(headers.get("idempotency-replayed").is_none());
    let (status, headers, again) = create(admin.clone(), "key-1", hospital("NRB")).await;
    assert_eq!((status, &again), (201, &first), "the first answer, again");
    assert_eq!(headers["idempotency-replayed"], "true");
    assert_eq!(count().await, 1);

    let (status, _, body) = create(admin.clone(), "key-1", hospital("MSA")).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("Idempotency-Key")), "{body}");
    let (status, _, body) = create(admin.clone(), "a key with spaces", hospital("MSA")).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("Idempotency-Key")), "{body}");

    // Eight at once under a fresh key: one hospital, every answer the same one or a 409.
    let answers = futures::future::join_all((0..8).map(|_| create(admin.clone(), "key-2", hospital("KSM")))).await;
    let created: Vec<&serde_json::Value> = answers.iter().filter(|(s, _, _)| *s == 201).map(|(_, _, b)| b).collect();
    assert!(!created.is_empty() && created.iter().all(|b| b["id"] == created[0]["id"]), "{answers:?}");
    assert!(answers.iter().all(|(s, _, _)| *s == 201 || *s == 409), "{answers:?}");
    assert_eq!(count().await, 2);

    // Another caller's key of the same name is another key.
    let (status, _, body) = app
        .call(Method::POST, "/api/auth/users", Some(&admin), Some(json!({"username": "second-admin", "password": "a long enough password", "roles": ["admin"], "scope": {"kind": "platform"}})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (other, _) = app.login("second-admin", "a long enough password").await;
    let (status, headers, body) = create(other, "key-1", hospital("ELD")).await;
    assert_eq!(status, 201, "{body}");
    assert!(headers.get("idempotency-replayed").is_none());
    assert_eq!(count().await, 3);
    app.stop().await;
}

medcov_testkit::backend_suite!(idempotency_keys_guard_every_mutating_endpoint);

// The whole system on a Redis Cluster: bus, cache, idempotency keys, rate limits, registry.
medcov_testkit::redis_cluster_suite!(idempotency_keys_guard_every_mutating_endpoint);
