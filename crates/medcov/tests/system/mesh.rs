//! The mesh between the gateway and the services: instances found in the registry, a killed
//! instance costing no request, circuit breakers, and the policy reloaded while running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use medcov_config::{Config, QuotaConfig, ServiceName};
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, PATIENCE, Process, medcov, sample, until};
use crate::world::World;

/// A stand-in for a service: answers every path but its liveness probe with `status` after
/// `delay_ms`, and counts the calls it gets.
#[derive(Clone, Default)]
struct Fake {
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    hits: Arc<AtomicUsize>,
    /// When set, its answers allow a stale copy for this many seconds.
    stale_if_error: Arc<AtomicU64>,
    /// When set, its answers may be cached this many seconds, under the tag `fake`.
    max_age: Arc<AtomicU64>,
    /// When set, a 503 is a refusal under load (problem type `urn:medcov:problem:overloaded`).
    overloaded: Arc<AtomicBool>,
}

impl Fake {
    async fn start() -> (Fake, String) {
        let fake = Fake::default();
        fake.status.store(200, Ordering::SeqCst);
        let state = fake.clone();
        let app =
            axum::Router::new().route("/health/live", axum::routing::get(|| async { "ok" })).fallback(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    // A slow upstream is the behaviour under test (route timeouts).
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let status = axum::http::StatusCode::from_u16(state.status.load(Ordering::SeqCst)).expect("status");
                    if status == 503 && state.overloaded.load(Ordering::SeqCst) {
                        let problem = medcov_http::ApiError::Overloaded {
                            detail: "busy".into(),
                            retry_after: Duration::from_secs(1),
                        };
                        return axum::response::IntoResponse::into_response(problem);
                    }
                    let mut headers = axum::http::HeaderMap::new();
                    let stale = state.stale_if_error.load(Ordering::SeqCst);
                    if stale > 0 {
                        let value = format!("private, no-cache, stale-if-error={stale}");
                        headers.insert("cache-control", value.parse().expect("header"));
                    }
                    let max_age = state.max_age.load(Ordering::SeqCst);
                    if max_age > 0 {
                        headers.insert("cache-control", format!("max-age={max_age}").parse().expect("header"));
                        headers.insert("cache-tag", "fake".parse().expect("header"));
                    }
                    axum::response::IntoResponse::into_response((
                        status,
                        headers,
                        axum::Json(json!({ "from": "fake", "hit": state.hits.load(Ordering::SeqCst) })),
                    ))
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, url)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A gateway with the auth service, billing being `billing_url`, under the policy `policy`.
async fn gateway_with(env: &TestEnv, billing_url: &str, policy: &str) -> (App, String, std::path::PathBuf) {
    gateway_and(env, billing_url, policy, "gateway,auth").await
}

async fn gateway_and(
    env: &TestEnv,
    billing_url: &str,
    policy: &str,
    targets: &str,
) -> (App, String, std::path::PathBuf) {
    let mut config: Config = env.config.clone();
    let file = env.data_dir().join("mesh.toml");
    std::fs::write(&file, policy).expect("policy written");
    config.mesh.policy_file = file.clone();
    config.mesh.policy_watch_interval_ms = 100;
    config.services.billing.url = Some(billing_url.parse().expect("url"));
    let World { app, admin } = World::start_with(env, config, targets).await;
    (app, admin, file)
}

fn breaker<'a>(mesh: &'a Value, id: &str) -> &'a Value {
    mesh["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .flat_map(|u| u["breakers"].as_array().into_iter().flatten())
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("breaker {id} in {mesh}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_opens_the_breaker_which_half_opens_and_closes() {
    let env = TestEnv::embedded().await;
    let (fake, url) = Fake::start().await;
    let policy = r#"
        [upstreams.billing.retry]
        attempts = 1
        [upstreams.billing.breaker]
        window_size = 5
        minimum_calls = 5
        failure_rate_percent = 50
        wait_ms = 1000
        half_open_calls = 2
        [upstreams.billing.outlier]
        consecutive_failures = 1000
    "#;
    let (app, token, _) = gateway_with(&env, &url, policy).await;
    let call = || app.call(Method::GET, "/api/billing/invoices", Some(&token), None);

    fake.status.store(500, Ordering::SeqCst);
    for _ in 0..5 {
        let (status, _, body) = call().await;
        assert_eq!((status, body["from"].as_str()), (500, Some("fake")), "the upstream's own answer goes back");
    }
    assert_eq!(fake.hits(), 5);
    // 5 of 5 failed: open. Calls fail at once without reaching the upstream.
    for _ in 0..3 {
        let (status, headers, body) = call().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(body["detail"].as_str().unwrap().contains("circuit breaker is open"), "{body}");
    }
    assert_eq!(fake.hits(), 5, "an open breaker sends nothing");
    let (_, _, mesh) = app.call(Method::GET, "/mesh", Some(&token), None).await;
    let open = breaker(&mesh, "billing");
    assert_eq!((open["state"].as_str(), open["transitions"].as_u64()), (Some("open"), Some(1)), "{mesh}");

    // After the wait, exactly two trial calls; both succeed and it closes.
    fake.status.store(200, Ordering::SeqCst);
    until("the breaker's wait to run out", PATIENCE, async || {
        let (_, _, mesh) = app.call(Method::GET, "/mesh", Some(&token), None).await;
        breaker(&mesh, "billing")["state"] == "half_open"
    })
    .await;
    let (first, second) = tokio::join!(call(), call());
    assert_eq!((first.0, second.0), (200, 200));
    assert_eq!(fake.hits(), 7);
    let (_, _, mesh) = app.call(Method::GET, "/mesh", Some(&token), None).await;
    assert_eq!(breaker(&mesh, "billing")["state"], "closed", "{mesh}");
    assert_eq!(call().await.0, 200);

    let metrics = app.metrics(ServiceName::Gateway).await;
    for to in ["open", "half_open", "closed"] {
        let label = format!("to=\"{to}\"");
        assert_eq!(
            sample(&metrics, "mesh_breaker_transitions_total", &["breaker=\"billing\"", &label]),
            Some(1.0),
            "{to}"
        );
    }
    assert_eq!(sample(&metrics, "mesh_rejected_total", &["upstream=\"billing\"", "reason=\"breaker\""]), Some(3.0));

    // An operator forces it open, then closes it.
    let set =
        |state: &str| app.call(Method::PUT, "/mesh/breakers/billing", Some(&token), Some(json!({ "state": state })));
    let (status, _, body) = set("forced_open").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("forced_open")), "{body}");
    let before = fake.hits();
    assert_eq!(call().await.0, 503);
    assert_eq!(fake.hits(), before);
    assert_eq!(set("closed").await.0, 200);
    assert_eq!(call().await.0, 200);
    let (status, _, body) = set("sideways").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("state")), "{body}");
    let (status, _, _) =
        app.call(Method::PUT, "/mesh/breakers/pharmacy", Some(&token), Some(json!({ "state": "closed" }))).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// A service refusing work under load (a 503 of type overloaded, as the hospital's admission
/// control answers) is healthy: the breaker that would open on as many 503s of an outage stays
/// closed, the instance stays in the pool, and the client gets the refusal with its
/// Retry-After, so the calls the service does accept keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_under_load_neither_opens_the_breaker_nor_ejects_the_instance() {
    let env = TestEnv::embedded().await;
    let (fake, url) = Fake::start().await;
    let policy = r#"
        [upstreams.billing.retry]
        attempts = 1
        [upstreams.billing.breaker]
        window_size = 5
        minimum_calls = 5
        failure_rate_percent = 50
        wait_ms = 60000
        [upstreams.billing.outlier]
        consecutive_failures = 3
    "#;
    let (app, token, _) = gateway_with(&env, &url, policy).await;
    let call = || app.call(Method::GET, "/api/billing/invoices", Some(&token), None);

    fake.status.store(503, Ordering::SeqCst);
    fake.overloaded.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        let (status, headers, body) = call().await;
        assert_eq!((status, body["type"].as_str()), (503, Some("urn:medcov:problem:overloaded")), "{body}");
        assert_eq!(headers["retry-after"], "1", "the service's own Retry-After goes back");
    }
    assert_eq!(fake.hits(), 10, "every call reached the service: nothing was refused on its behalf");
    let (_, _, mesh) = app.call(Method::GET, "/mesh", Some(&token), None).await;
    let closed = breaker(&mesh, "billing");
    assert_eq!((closed["state"].as_str(), closed["transitions"].as_u64()), (Some("closed"), Some(0)), "{mesh}");
    fake.status.store(200, Ordering::SeqCst);
    assert_eq!(call().await.0, 200, "the instance was never ejected");
    let metrics = app.metrics(ServiceName::Gateway).await;
    assert_eq!(sample(&metrics, "mesh_requests_total", &["upstream=\"billing\"", "outcome=\"shed\""]), Some(10.0));
    assert_eq!(sample(&metrics, "mesh_ejections_total", &["upstream=\"billing\""]), Some(0.0));

    // The same number of 503s from an outage (a database down) opens it, as before.
    fake.status.store(503, Ordering::SeqCst);
    fake.overloaded.store(false, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(call().await.0, 503);
    }
    let before = fake.hits();
    let (status, _, body) = call().await;
    assert_eq!(status, 503);
    assert!(body["detail"].as_str().unwrap_or_default().contains("circuit breaker is open"), "{body}");
    assert_eq!(fake.hits(), before, "an open breaker sends nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_changes_a_route_timeout_without_a_restart() {
    let env = TestEnv::embedded().await;
    let (fake, url) = Fake::start().await;
    fake.delay_ms.store(300, Ordering::SeqCst);
    let policy = |timeout: u64| {
        format!(
            "[upstreams.billing.routes.reports]\npath_prefix = \"/reports\"\ntimeout_ms = {timeout}\n\
             [upstreams.billing.routes.reports.retry]\nattempts = 1\n"
        )
    };
    let (app, token, file) = gateway_with(&env, &url, &policy(2_000)).await;
    let report = || app.call(Method::GET, "/api/billing/reports/cash", Some(&token), None);
    assert_eq!(report().await.0, 200, "300 ms is within 2 s");

    // The file changes: the watcher applies it, no restart.
    std::fs::write(&file, policy(100)).expect("policy rewritten");
    until("the new 100 ms timeout to apply", PATIENCE, async || report().await.0 == 504).await;
    // Other routes keep the upstream's timeout.
    assert_eq!(app.call(Method::GET, "/api/billing/invoices", Some(&token), None).await.0, 200);

    // An invalid policy is refused, naming the key, and the one in force stays.
    std::fs::write(&file, policy(0)).expect("policy rewritten");
    let (status, _, body) = app.call(Method::POST, "/mesh/policy/reload", Some(&token), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "upstreams.billing.routes.reports.timeout_ms", "{body}");
    assert_eq!(report().await.0, 504);
    // Fixed again, and reloaded on demand.
    std::fs::write(&file, policy(1_000)).expect("policy rewritten");
    let (status, _, body) = app.call(Method::POST, "/mesh/policy/reload", Some(&token), None).await;
    assert!(status == 200 && body.get("changed").is_some(), "{body}");
    assert_eq!(report().await.0, 200);
    app.stop().await;
}

/// The second hospital instance: a `medcov serve --target hospital` process on `port` sharing
/// the test's database and Redis.
pub(crate) fn hospital_process(env: &TestEnv, auth_url: &str, port: &str) -> Process {
    let mut command = medcov(&["serve", "--target", "hospital"]);
    let config = &env.config;
    command
        .env("MEDCOV__DATA_DIR", env.data_dir().join("second"))
        .env("MEDCOV__DATABASE__URL", env.postgres_url().expect("postgres"))
        .env("MEDCOV__REDIS__URL", config.redis.url.as_ref().expect("redis").expose())
        .env("MEDCOV__REDIS__KEY_PREFIX", &config.redis.key_prefix)
        .env("MEDCOV__SERVICES__AUTH__URL", auth_url)
        .env("MEDCOV__SERVICES__HOSPITAL__PORT", port)
        .env("MEDCOV__MESH__HEARTBEAT_INTERVAL_MS", "200")
        .env("MEDCOV__MESH__REGISTRATION_TTL_MS", "1000");
    Process::spawn(command, 1)
}

pub(crate) fn hospital_instances(mesh: &Value) -> Vec<Value> {
    mesh["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["name"] == "hospital")
        .and_then(|u| u["instances"].as_array().cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_costs_no_request_and_rejoins_when_restarted() {
    let env = TestEnv::distributed().await;
    let mut config = env.config.clone();
    config.mesh.heartbeat_interval_ms = 200;
    config.mesh.registration_ttl_ms = 1_000;
    config.gateway.rate_limits.api = QuotaConfig { per_minute: 1_000_000, burst: 100_000 };
    let file = env.data_dir().join("mesh.toml");
    let policy = "[defaults.health]\ninterval_ms = 200\nunhealthy_threshold = 1\nhealthy_threshold = 1\n\
                  [defaults.outlier]\nconsecutive_failures = 2\nbase_ejection_ms = 1000\n";
    std::fs::write(&file, policy).expect("policy written");
    config.mesh.policy_file = file;

    // Instance one of the hospital service (with auth) in this process, instance two a process.
    let core = App::start(config.clone(), "auth,hospital").await;
    let auth_url = core.url(ServiceName::Auth, "/");
    let second = hospital_process(&env, &auth_url, "0");
    let second_url = format!("{}/", second.addresses["hospital"]);
    let port = second_url.rsplit(':').next().expect("port").trim_end_matches('/').to_owned();

    let mut gateway_config = config.clone();
    gateway_config.services.auth.url = Some(auth_url.parse().expect("url"));
    gateway_config.services.hospital.url = Some(core.url(ServiceName::Hospital, "/").parse().expect("url"));
    let gateway = Arc::new(App::start(gateway_config, "gateway").await);
    let (username, password) = App::initial_admin(env.data_dir());
    let (token, _) = gateway.login(&username, &password).await;
    let mesh = async || gateway.call(Method::GET, "/mesh", Some(&token), None).await.2;
    until("the gateway knows both instances", PATIENCE, async || hospital_instances(&mesh().await).len() == 2).await;

    // A steady stream of reads from four clients (of patients: never answered from the
    // gateway's cache).
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gateway, token, stop, total) = (gateway.clone(), token.clone(), stop.clone(), total.clone());
        clients.push(tokio::spawn(async move {
            let (mut served, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let (status, _, body) =
                    gateway.call(Method::GET, "/api/hospital/patients?limit=5", Some(&token), None).await;
                total.fetch_add(1, Ordering::SeqCst);
                if status == 200 { served += 1 } else { failed.push(format!("{status} {body}")) }
            }
            (served, failed)
        }));
    }
    let reached = |instances: &[Value], url: &str| {
        instances.iter().find(|i| i["address"] == url).and_then(|i| i["requests"].as_u64()).unwrap_or(0)
    };
    until("the second instance serves", PATIENCE, async || {
        reached(&hospital_instances(&mesh().await), &second_url) > 20
    })
    .await;

    second.kill();
    until("the dead instance is out of the pool", PATIENCE, async || {
        let instances = hospital_instances(&mesh().await);
        instances
            .iter()
            .find(|i| i["address"] == second_url.as_str())
            .is_none_or(|i| i["healthy"] == false || i["ejected_for_ms"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    // Calls already on their way to it end (failed over); then its count stands still.
    until("no call to be in flight to the dead instance", PATIENCE, async || {
        let instances = hospital_instances(&mesh().await);
        instances.iter().find(|i| i["address"] == second_url.as_str()).is_none_or(|i| i["pending"] == 0)
    })
    .await;
    let before = reached(&hospital_instances(&mesh().await), &second_url);

    // Restarted on the same address, it registers again and takes traffic.
    let restarted = hospital_process(&env, &auth_url, &port);
    until("the restarted instance serves again", PATIENCE, async || {
        let instances = hospital_instances(&mesh().await);
        let back = instances.iter().any(|i| i["address"] == second_url.as_str() && i["healthy"] == true);
        back && reached(&instances, &second_url) > before + 20
    })
    .await;

    // A steady stream however quickly the restart came back (a slow machine serves fewer).
    until("the clients to send 200 reads", PATIENCE, async || total.load(Ordering::SeqCst) > 200).await;
    stop.store(true, Ordering::SeqCst);
    let (mut served, mut failed) = (0, Vec::new());
    for client in clients {
        let (s, f) = client.await.expect("client");
        served += s;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        served + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(served > 200, "a steady stream: {served}");
    eprintln!("{served} reads served, none failed; the second instance had {before} calls before its restart");
    let metrics = gateway.metrics(ServiceName::Gateway).await;
    assert!(
        sample(&metrics, "mesh_retries_total", &["upstream=\"hospital\""]).unwrap_or(0.0) >= 1.0,
        "the kill was retried around"
    );

    drop(restarted);
    if let Ok(gateway) = Arc::try_unwrap(gateway) {
        gateway.stop().await;
    }
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_caches_marked_answers_per_audience_and_stands_in_with_stale_ones() {
    let env = TestEnv::embedded().await;
    let (fake, url) = Fake::start().await;
    let (app, admin, _) =
        gateway_and(&env, &url, "[upstreams.billing.retry]\nattempts = 1\n", "gateway,auth,hospital").await;
    let hospital = |code: &str| json!({"name": format!("{code} Hospital"), "code": code, "timezone": "Africa/Nairobi", "currency": "KES"});
    let (status, _, body) =
        app.call(Method::POST, "/api/hospital/hospitals", Some(&admin), Some(hospital("NRB"))).await;
    assert_eq!(status, 201, "{body}");
    let nairobi = body["id"].as_str().expect("id").to_owned();
    let x_cache = |headers: &reqwest::header::HeaderMap| headers.get("x-cache").map(|v| v.to_str().unwrap().to_owned());

    // The first call learns the answer's tags, the second stores it, the third is a hit.
    let one = format!("/api/hospital/hospitals/{nairobi}");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, headers, body) = app.call(Method::GET, &one, Some(&admin), None).await;
        assert_eq!((status, body["id"].as_str()), (200, Some(nairobi.as_str())));
        assert!(headers.get("cache-tag").is_none(), "tags stay inside");
        seen.push(x_cache(&headers).unwrap_or_default());
    }
    assert_eq!(seen, ["MISS", "MISS", "HIT"]);

    // Another audience (a clerk of that hospital) never gets the administrator's entry.
    let (status, _, body) = app
        .call(Method::POST, "/api/auth/users", Some(&admin), Some(json!({"username": "desk", "password": "a long enough password", "roles": ["hospital_clerk"], "scope": {"kind": "hospitals", "hospitals": [nairobi]}})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (clerk, _) = app.login("desk", "a long enough password").await;
    let (_, headers, _) = app.call(Method::GET, &one, Some(&clerk), None).await;
    assert_eq!(x_cache(&headers).as_deref(), Some("MISS"));

    // A write invalidates: the directory is never stale after a hospital is added.
    for _ in 0..3 {
        app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None).await;
    }
    let (_, headers, body) = app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None).await;
    assert_eq!((x_cache(&headers).as_deref(), body["items"].as_array().map(Vec::len)), (Some("HIT"), Some(1)));
    assert_eq!(app.call(Method::POST, "/api/hospital/hospitals", Some(&admin), Some(hospital("MSA"))).await.0, 201);
    let (_, headers, body) = app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None).await;
    assert_eq!((x_cache(&headers).as_deref(), body["items"].as_array().map(Vec::len)), (Some("MISS"), Some(2)));

    // An answer allowed to stand in: while the service fails, the last one comes back marked stale.
    fake.stale_if_error.store(60, Ordering::SeqCst);
    let question = json!({"member_number": "X-1"});
    let app = &app;
    let ask = |token: String, body: Value| async move {
        app.call(Method::POST, "/api/billing/estimates", Some(&token), Some(body)).await
    };
    let (status, headers, fresh) = ask(admin.clone(), question.clone()).await;
    assert_eq!((status, x_cache(&headers).as_deref()), (200, Some("MISS")));
    fake.status.store(503, Ordering::SeqCst);
    let (status, headers, stale) = ask(admin.clone(), question.clone()).await;
    assert_eq!((status, x_cache(&headers).as_deref()), (200, Some("STALE")), "{stale}");
    assert_eq!(headers["warning"], "110 - \"Response is Stale\"");
    assert_eq!(stale, fresh, "the last good answer, as it was");
    // Not for another question, nor for another audience.
    assert_eq!(ask(admin.clone(), json!({"member_number": "X-2"})).await.0, 503);
    assert_eq!(ask(clerk.clone(), question.clone()).await.0, 503);

    let metrics = app.metrics(ServiceName::Gateway).await;
    assert_eq!(sample(&metrics, "gateway_cache_total", &["result=\"stale\""]), Some(1.0));
    assert!(sample(&metrics, "gateway_cache_total", &["result=\"hit\""]).unwrap_or(0.0) >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_in_flight_share_one_call_to_the_service() {
    let env = TestEnv::embedded().await;
    let (fake, url) = Fake::start().await;
    let (app, admin, _) = gateway_with(&env, &url, "").await;
    fake.max_age.store(60, Ordering::SeqCst);
    // The first call learns the answer's tags; from then on it may be kept.
    let (status, headers, _) = app.call(Method::GET, "/api/billing/prices", Some(&admin), None).await;
    assert_eq!((status, headers.get("x-cache").and_then(|v| v.to_str().ok())), (200, Some("MISS")));
    // A slow service, and 30 clients asking at once.
    fake.delay_ms.store(300, Ordering::SeqCst);
    let before = fake.hits();
    let asks = (0..30).map(|_| app.call(Method::GET, "/api/billing/prices", Some(&admin), None));
    let answers = futures::future::join_all(asks).await;
    let mut how = std::collections::BTreeMap::<String, usize>::new();
    for (status, headers, body) in &answers {
        assert_eq!(status, &200, "{body}");
        assert_eq!(body["hit"], json!(before + 1), "every client got the one answer");
        let x_cache = headers.get("x-cache").map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
        *how.entry(x_cache).or_default() += 1;
    }
    assert_eq!(fake.hits() - before, 1, "one call for 30 identical requests ({how:?})");
    assert_eq!(how.get("MISS"), Some(&1), "{how:?}");
    // The shared answer was also stored.
    let (_, headers, _) = app.call(Method::GET, "/api/billing/prices", Some(&admin), None).await;
    assert_eq!(headers.get("x-cache").and_then(|v| v.to_str().ok()), Some("HIT"));
    let metrics = app.metrics(ServiceName::Gateway).await;
    assert!(sample(&metrics, "gateway_cache_total", &["result=\"shared\""]).unwrap_or(0.0) >= 1.0, "counted");
}

/// How many times the hospital service answered a GET of its directory.
async fn directory_loads(app: &App) -> f64 {
    let metrics = app.metrics(ServiceName::Hospital).await;
    sample(&metrics, "http_server_requests_total", &["method=\"GET\"", "route=\"/hospitals\"", "status_class=\"2xx\""])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_answer_asked_for_by_many_at_once_costs_one_load() {
    let env = TestEnv::embedded().await;
    let world = World::start(&env).await;
    let (app, admin) = (&world.app, world.admin.clone());
    let hospital = |code: &str| json!({"name": format!("{code} Hospital"), "code": code, "timezone": "Africa/Nairobi", "currency": "KES"});
    assert_eq!(app.call(Method::POST, "/api/hospital/hospitals", Some(&admin), Some(hospital("NRB"))).await.0, 201);
    // Learn the directory's tags, then store it.
    for _ in 0..2 {
        assert_eq!(app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None).await.0, 200);
    }
    // A write invalidates the entry; then 60 clients ask at once.
    assert_eq!(app.call(Method::POST, "/api/hospital/hospitals", Some(&admin), Some(hospital("MSA"))).await.0, 201);
    let before = directory_loads(app).await;
    let asks = (0..60).map(|_| app.call(Method::GET, "/api/hospital/hospitals", Some(&admin), None));
    let answers = futures::future::join_all(asks).await;
    let mut how = std::collections::BTreeMap::<String, usize>::new();
    for (status, headers, body) in &answers {
        assert_eq!(
            (*status, body["items"].as_array().map(Vec::len)),
            (200, Some(2)),
            "every answer is after the write: {body}"
        );
        let x_cache = headers.get("x-cache").map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
        *how.entry(x_cache).or_default() += 1;
    }
    let loads = directory_loads(app).await - before;
    assert_eq!(loads, 1.0, "one load for 60 identical requests ({how:?})");
    assert_eq!(how.get("MISS"), Some(&1), "{how:?}");
    world.stop().await;
}
