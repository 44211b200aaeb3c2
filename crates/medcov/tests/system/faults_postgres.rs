//! Faults in PostgreSQL and in instances, injected into real processes under concurrent load.
//!
//! - The database stopped and started again (a PostgreSQL cluster of the test's own, on a port
//!   of its own: the shared server is never stopped): every answer is a 2xx or a 503
//!   problem with `Retry-After`, through the gateway and straight on the service's port;
//!   readiness answers within a second while the database is down and is ready again within
//!   five seconds of its return; every write that got a 201 is there afterwards, and every
//!   write whose client saw an error is there exactly once after a retry under its
//!   Idempotency-Key.
//! - One of two hospital instances SIGKILLed under keyed writes and reads through the gateway,
//!   then restarted at the same address: no request fails, no write happens twice, and the
//!   restarted instance serves again within five seconds (a restart is a new instance to the
//!   gateway, not the one it ejected).
//! - Six copies of one keyed request at once, on both backends: one effect, the others its
//!   answer replayed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use medcov_config::{QuotaConfig, ServiceName};
use medcov_testkit::TestEnv;
use medcov_testkit::private_postgres::PrivatePostgres;
use reqwest::Method;
use serde_json::{Value, json};

use crate::mesh::{hospital_instances, hospital_process};
use crate::support::{App, PATIENCE, eventually, read, until};
use crate::world::World;

/// One write as its client saw it.
#[derive(Debug, Clone)]
struct Write {
    url: String,
    key: String,
    body: Value,
    status: u16,
}

/// What the writers have seen so far, for the test's conditions.
#[derive(Default)]
struct Seen {
    created: AtomicUsize,
    unavailable: AtomicUsize,
}

/// A new patient of `hospital`, named so the database can be checked for it.
fn patient(hospital: &str, name: &str) -> Value {
    json!({"hospital_id": hospital, "given_name": name, "family_name": "Faulted", "date_of_birth": "1990-01-01", "sex": "female"})
}

/// `n` in letters (names may not hold digits): 1 is "b", 26 is "ba".
fn letters(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

/// POSTs `body` to `url` under `key`; a request that got no answer at all is status 0.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let sent = client.post(url).bearer_auth(token).header("idempotency-key", key).json(body).send().await;
    match sent {
        Ok(response) => read(response).await,
        Err(error) => (0, reqwest::header::HeaderMap::new(), json!(error.to_string())),
    }
}

/// Writes new patients to `url` one after the other, each under its own key, until `stop`.
/// Returns every write, and what was wrong with any answer that was not a 201 or a proper 503.
#[allow(clippy::too_many_arguments)]
fn writer(
    client: reqwest::Client,
    url: String,
    token: String,
    hospital: String,
    name: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<Write>, Vec<String>)> {
    tokio::spawn(async move {
        let (mut writes, mut wrong) = (Vec::new(), Vec::new());
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let key = uuid::Uuid::now_v7().to_string();
            let body = patient(&hospital, &format!("{name} {}", letters(n)));
            let (status, headers, answer) = post(&client, &url, &token, &key, &body).await;
            match status {
                201 => {
                    seen.created.fetch_add(1, Ordering::SeqCst);
                }
                503 => {
                    seen.unavailable.fetch_add(1, Ordering::SeqCst);
                    let problem = headers.get("content-type").is_some_and(|v| v == "application/problem+json");
                    if !problem || !headers.contains_key("retry-after") {
                        wrong.push(format!("a 503 without problem+json and Retry-After: {headers:?} {answer}"));
                    }
                }
                other => wrong.push(format!("{other} from {url}: {answer}")),
            }
            writes.push(Write { url: url.clone(), key, body, status });
        }
        (writes, wrong)
    })
}

/// The given names of the patients the writers made, with how often each is stored.
async fn stored(database_url: &str) -> BTreeMap<String, i64> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(database_url).await.expect("the database");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT given_name, count(*) FROM hospital.patients WHERE family_name = 'Faulted' GROUP BY given_name",
    )
    .fetch_all(&mut connection)
    .await
    .expect("the patients");
    rows.into_iter().collect()
}

/// Every write is stored exactly once: the 201s, and the others once retried under their key
/// (which must then be answered, by a replay of the first answer or by running now).
/// Returns how many retries were replays (the first attempt had committed after all).
async fn every_write_once(client: &reqwest::Client, token: &str, writes: &[Write], database_url: &str) -> usize {
    let mut replays = 0;
    for write in writes.iter().filter(|w| w.status != 201) {
        let (status, headers, answer) = eventually("the retry to be answered", PATIENCE, async || {
            let answer = post(client, &write.url, token, &write.key, &write.body).await;
            (answer.0 != 503 && answer.0 != 0).then_some(answer)
        })
        .await;
        assert_eq!(status, 201, "the retry of {write:?}: {answer}");
        if headers.get("idempotency-replayed").is_some_and(|v| v == "true") {
            replays += 1;
        }
    }
    let stored = stored(database_url).await;
    for write in writes {
        let name = write.body["given_name"].as_str().expect("a name");
        assert_eq!(stored.get(name).copied(), Some(1), "{write:?} is stored once");
    }
    assert_eq!(stored.len(), writes.len(), "nothing else is stored");
    replays
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_503_fast_readiness_and_no_unknown_outcome() {
    let postgres = Arc::new(tokio::task::spawn_blocking(PrivatePostgres::start).await.expect("PostgreSQL starts"));
    let env = TestEnv::distributed().await;
    let database_url = postgres.url("medcov");
    let mut config = env.config.clone();
    config.database.url = database_url.parse().expect("url");
    let World { app, admin } = World::start_with(&env, config, "all").await;
    let app = Arc::new(app);
    let body = json!({"name": "Outage Hospital", "code": "OUT", "timezone": "UTC", "currency": "KES"});
    let (status, _, hospital) = app.call(Method::POST, "/api/hospital/hospitals", Some(&admin), Some(body)).await;
    assert_eq!(status, 201, "{hospital}");
    let hospital = hospital["id"].as_str().expect("id").to_owned();

    // Four writers through the gateway, one straight to the hospital service.
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let gateway_url = app.url(ServiceName::Gateway, "/api/hospital/patients");
    let direct_url = app.url(ServiceName::Hospital, "/patients");
    let mut writers = Vec::new();
    for (i, url) in [&gateway_url, &gateway_url, &gateway_url, &gateway_url, &direct_url].into_iter().enumerate() {
        let (client, token) = (app.client.clone(), admin.clone());
        writers.push(writer(
            client,
            url.clone(),
            token,
            hospital.clone(),
            format!("Writer {}", letters(i)),
            seen.clone(),
            stop.clone(),
        ));
    }
    // Readiness, asked all along, timed.
    let ready_url = app.url(ServiceName::Hospital, "/health/ready");
    let probes = {
        let (client, stop) = (app.client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut probes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let status = client.get(&ready_url).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                probes.push((started, started.elapsed(), status));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            probes
        })
    };
    until("the writers to get going", PATIENCE, async || seen.created.load(Ordering::SeqCst) >= 20).await;

    // The database stops: sessions end, transactions in flight roll back, nothing listens.
    let stopping = postgres.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await.expect("stopped");
    let down_at = Instant::now();
    let before = seen.unavailable.load(Ordering::SeqCst);
    until("the writers to meet the outage", PATIENCE, async || seen.unavailable.load(Ordering::SeqCst) >= before + 10)
        .await;
    let (status, _, body) = app.get(ServiceName::Hospital, "/health/ready").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unavailable")), "{body}");

    // It comes back on the same port.
    let starting = postgres.clone();
    tokio::task::spawn_blocking(move || starting.start_again()).await.expect("started");
    let up_at = Instant::now();
    until("readiness to recover", PATIENCE, async || app.get(ServiceName::Hospital, "/health/ready").await.0 == 200)
        .await;
    let back_after = up_at.elapsed();
    let created = seen.created.load(Ordering::SeqCst);
    until("writes to succeed again", PATIENCE, async || seen.created.load(Ordering::SeqCst) >= created + 20).await;
    stop.store(true, Ordering::SeqCst);

    let (mut writes, mut wrong) = (Vec::new(), Vec::new());
    for writer in writers {
        let (w, bad) = writer.await.expect("writer");
        writes.extend(w);
        wrong.extend(bad);
    }
    let probes = probes.await.expect("probes");
    assert!(
        wrong.is_empty(),
        "{} answers were neither a 201 nor a 503 problem: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let slow: Vec<_> = probes.iter().filter(|(_, took, _)| *took >= Duration::from_secs(1)).collect();
    assert!(slow.is_empty(), "readiness took a second or more: {slow:?}");
    let down: Vec<_> =
        probes.iter().filter(|(at, _, status)| *at >= down_at && *at < up_at && *status == 503).collect();
    assert!(!down.is_empty(), "readiness said 503 while the database was down");
    assert!(back_after < Duration::from_secs(5), "ready {back_after:?} after the database came back");

    let failed = writes.iter().filter(|w| w.status != 201).count();
    let replays = every_write_once(&app.client, &admin, &writes, &database_url).await;
    eprintln!(
        "{} writes, {failed} answered 503 and retried under their key ({replays} of those had committed and were \
         replayed); readiness answered in {:?} at most; ready {back_after:?} after the database's return",
        writes.len(),
        probes.iter().map(|(_, took, _)| *took).max().unwrap_or_default(),
    );
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_no_keyed_write_and_its_restart_serves_within_seconds() {
    let env = TestEnv::distributed().await;
    let mut config = env.config.clone();
    config.mesh.heartbeat_interval_ms = 200;
    config.mesh.registration_ttl_ms = 1_000;
    config.gateway.rate_limits.api = QuotaConfig { per_minute: 1_000_000, burst: 100_000 };
    // The mesh policy is the default one: a passive ejection lasts 30 s.

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
    let body = json!({"name": "Kill Hospital", "code": "KIL", "timezone": "UTC", "currency": "KES"});
    let (status, _, hospital) = gateway.call(Method::POST, "/api/hospital/hospitals", Some(&token), Some(body)).await;
    assert_eq!(status, 201, "{hospital}");
    let hospital = hospital["id"].as_str().expect("id").to_owned();

    // Keyed writes from four clients, unkeyed reads from two.
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let url = gateway.url(ServiceName::Gateway, "/api/hospital/patients");
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let client = gateway.client.clone();
            writer(
                client,
                url.clone(),
                token.clone(),
                hospital.clone(),
                format!("Keyed {}", letters(i)),
                seen.clone(),
                stop.clone(),
            )
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (gateway, token, stop) = (gateway.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut served, mut failed) = (0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let (status, _, body) =
                        gateway.call(Method::GET, "/api/hospital/patients?limit=5", Some(&token), None).await;
                    if status == 200 { served += 1 } else { failed.push(format!("{status} {body}")) }
                }
                (served, failed)
            })
        })
        .collect();
    let reached = |instances: &[Value]| {
        instances.iter().find(|i| i["address"] == second_url.as_str()).and_then(|i| i["requests"].as_u64()).unwrap_or(0)
    };
    until("the second instance serves", PATIENCE, async || reached(&hospital_instances(&mesh().await)) > 30).await;

    second.kill();
    let created = seen.created.load(Ordering::SeqCst);
    until("writes to go on without the killed instance", PATIENCE, async || {
        seen.created.load(Ordering::SeqCst) >= created + 30
    })
    .await;
    let before = reached(&hospital_instances(&mesh().await));

    // Restarted at the same address: a new instance, taking traffic within seconds although
    // its predecessor's ejection would last 30 s.
    let restarted = hospital_process(&env, &auth_url, &port);
    let listening = Instant::now();
    until("the restarted instance serves again", PATIENCE, async || {
        reached(&hospital_instances(&mesh().await)) >= before + 10
    })
    .await;
    let serving_after = listening.elapsed();
    let created = seen.created.load(Ordering::SeqCst);
    until("more writes after the restart", PATIENCE, async || seen.created.load(Ordering::SeqCst) >= created + 20)
        .await;
    stop.store(true, Ordering::SeqCst);

    let (mut writes, mut wrong) = (Vec::new(), Vec::new());
    for writer in writers {
        let (w, bad) = writer.await.expect("writer");
        writes.extend(w);
        wrong.extend(bad);
    }
    let (mut served, mut failed) = (0, Vec::new());
    for reader in readers {
        let (s, f) = reader.await.expect("reader");
        served += s;
        failed.extend(f);
    }
    let unanswered: Vec<_> = writes.iter().filter(|w| w.status != 201).collect();
    assert!(wrong.is_empty() && unanswered.is_empty(), "failed writes: {wrong:?} {unanswered:?}");
    assert!(
        failed.is_empty(),
        "{} of {} reads failed: {:?}",
        failed.len(),
        served + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        serving_after < Duration::from_secs(5),
        "the restarted instance served {serving_after:?} after it listened"
    );
    let database_url = env.postgres_url().expect("postgres").to_owned();
    every_write_once(&gateway.client, &token, &writes, &database_url).await;
    eprintln!(
        "{} keyed writes and {served} reads, none failed, none twice; the restarted instance served {serving_after:?} \
         after it listened",
        writes.len()
    );

    drop(restarted);
    if let Ok(gateway) = Arc::try_unwrap(gateway) {
        gateway.stop().await;
    }
    core.stop().await;
}

/// Six copies of one keyed registration at once: one patient, and every copy answered with it
/// (the first, then replays of its answer once it committed) or told to retry (409), never a
/// second patient. Then a different request under the same key is 422.
async fn parallel_repeats_under_one_key_make_one_record(env: TestEnv) {
    let w = World::start(&env).await;
    let hospital = w.hospital("PAR", "UTC").await;
    let url = w.app.url(ServiceName::Gateway, "/api/hospital/patients");
    let body = patient(&hospital, "Parallel");
    let copies = (0..6).map(|_| post(&w.app.client, &url, &w.admin, "one-key", &body));
    let answers = futures::future::join_all(copies).await;
    let created: Vec<&Value> = answers.iter().filter(|(status, _, _)| *status == 201).map(|(_, _, b)| b).collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(answers.iter().all(|(status, _, _)| *status == 201 || *status == 409), "{answers:?}");
    assert!(created.iter().all(|b| b["id"] == created[0]["id"]), "one patient: {created:?}");
    let replayed = answers.iter().filter(|(_, h, _)| h.get("idempotency-replayed").is_some()).count();
    assert_eq!(replayed, created.len() - 1, "all but the first are replays: {answers:?}");
    let (status, _, answer) = post(&w.app.client, &url, &w.admin, "one-key", &patient(&hospital, "Other")).await;
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (422, Some("Idempotency-Key")), "{answer}");
    let search = format!("/api/hospital/patients?hospital_id={hospital}");
    let (status, _, found) = w.app.call(Method::GET, &search, Some(&w.admin), None).await;
    assert_eq!(status, 200, "{found}");
    let list = found["items"].as_array().expect("a list");
    assert_eq!(list.len(), 1, "{found}");
    w.stop().await;
}

medcov_testkit::backend_suite!(parallel_repeats_under_one_key_make_one_record);
