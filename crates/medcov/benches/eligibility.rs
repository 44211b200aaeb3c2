//! The eligibility endpoint under load, through the gateway over loopback HTTP, as a hospital
//! billing clerk would call it: throughput and latency percentiles, on the embedded default
//! (SQLite, in-process cache) and distributed (PostgreSQL, Redis cache).
//!
//! Two mixes: `repeat` asks the same 50 questions again and again (served from the cache after
//! the first), `varied` asks a new question every time (a different day and price), so every
//! answer is computed from the database.
//!
//! `cargo bench -p medcov --bench eligibility` (PostgreSQL and Redis from the test settings).
//! The load generator runs in the same process on the same two cores as the server, so the
//! figures are a floor. Figures go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medcov_config::{ServiceName, Targets};
use medcov_testkit::{TestBackend, TestEnv};
use serde_json::{Value, json};

const WORKERS: usize = 16;
const RUN: Duration = Duration::from_secs(10);
const MEMBERS: usize = 50;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) =
            self.call("/api/auth/login", None, json!({"username": username, "password": password})).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An insurer, a plan, 50 active policies, and a billing clerk's token.
async fn seed(client: &Client, env: &TestEnv) -> (String, String, Vec<String>) {
    let text = std::fs::read_to_string(env.data_dir().join("initial-admin.txt")).expect("credentials");
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).expect("field").to_owned();
    let admin = client.login(&field("username"), &field("password")).await;
    let (_, hospital) = client
        .call(
            "/api/hospital/hospitals",
            Some(&admin),
            json!({"name": "Bench", "code": "BEN", "timezone": "UTC", "currency": "KES"}),
        )
        .await;
    let hospital = hospital["id"].as_str().expect("hospital").to_owned();
    let (_, insurer) = client
        .call("/api/insurance/insurers", Some(&admin), json!({"code": "BEN", "name": "Bench", "currency": "KES"}))
        .await;
    let mut rules = serde_json::to_value(medcov_insurance::domain::plan::example()).expect("rules");
    rules["network"] = json!([hospital]);
    let (status, plan) = client
        .call("/api/insurance/plans", Some(&admin), json!({"insurer_id": insurer["id"], "code": "BENCH", "name": "Bench plan", "effective_from": "2020-01-01", "rules": rules}))
        .await;
    assert_eq!(status, 201, "{plan}");
    let start = (time::OffsetDateTime::now_utc().date() - time::Duration::days(200)).to_string();
    let (status, _) = client
        .call("/api/auth/users", Some(&admin), json!({"username": "agent", "password": "correct horse battery staple", "roles": ["agent"], "scope": {"kind": "insurer", "insurer": insurer["id"]}}))
        .await;
    assert_eq!(status, 201);
    let agent = client.login("agent", "correct horse battery staple").await;
    let mut numbers = Vec::new();
    for i in 0..MEMBERS {
        let (status, policy) = client
            .call(
                "/api/insurance/policies",
                Some(&agent),
                json!({"plan_id": plan["id"], "start_date": start,
                "holder": {"given_name": format!("Member{}", letters(i)), "family_name": "Bench", "date_of_birth": "1980-01-01"}}),
            )
            .await;
        assert_eq!(status, 201, "{policy}");
        let path = format!("/api/insurance/policies/{}/status", policy["id"].as_str().unwrap());
        let (status, _) = client.call(&path, Some(&admin), json!({"status": "active"})).await;
        assert_eq!(status, 200);
        numbers.push(policy["members"][0]["member_number"].as_str().unwrap().to_owned());
    }
    let (status, _) = client
        .call("/api/auth/users", Some(&admin), json!({"username": "billing", "password": "correct horse battery staple", "roles": ["billing_clerk"], "scope": {"kind": "hospitals", "hospitals": [hospital]}}))
        .await;
    assert_eq!(status, 201);
    let clerk = client.login("billing", "correct horse battery staple").await;
    (clerk, hospital, numbers)
}

async fn load(client: Arc<Client>, token: Arc<String>, hospital: Arc<String>, numbers: Arc<Vec<String>>, varied: bool) {
    let deadline = Instant::now() + RUN;
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, token, hospital, numbers) = (client.clone(), token.clone(), hospital.clone(), numbers.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut i = w;
            while Instant::now() < deadline {
                i += WORKERS;
                let number = &numbers[i % numbers.len()];
                let (day, price) = if varied {
                    (
                        (time::OffsetDateTime::now_utc().date() - time::Duration::days((i % 150) as i64)).to_string(),
                        100_000 + i as i64,
                    )
                } else {
                    ((time::OffsetDateTime::now_utc().date() - time::Duration::days(7)).to_string(), 250_000)
                };
                let body = json!({"member_number": number, "date": day, "hospital_id": *hospital, "services": [
                    {"service_code": "CONS", "category": "consultation", "price": 300_000},
                    {"service_code": "LAB-FBC", "category": "laboratory", "price": price}]});
                let started = Instant::now();
                let (status, answer) = client.call("/api/insurance/eligibility", Some(&token), body).await;
                latencies.push(started.elapsed());
                if status != 200 {
                    if errors == 0 {
                        eprintln!("first error: {status} {answer}");
                    }
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, e) = worker.await.expect("worker");
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    println!(
        "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        if varied { "varied" } else { "repeat" },
        all.len() as f64 / RUN.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.95).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or_default(),
        errors,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!("| backend / mix | requests/s | p50 | p95 | p99 | max | errors |\n|---|---|---|---|---|---|---|");
        for backend in [TestBackend::Embedded, TestBackend::Distributed] {
            let env = TestEnv::new(backend).await;
            let targets: Targets = "all".parse().expect("targets");
            // All load comes from one address; the per-client rate limit would measure itself.
            let mut config = env.config.clone();
            config.gateway.rate_limits.api = medcov_config::QuotaConfig { per_minute: 100_000_000, burst: 1_000_000 };
            let running = medcov::start(Arc::new(config), &targets).await.expect("MedCov starts");
            let addr = running.addr(ServiceName::Gateway).expect("gateway");
            let client = Arc::new(Client {
                http: reqwest::Client::builder().pool_max_idle_per_host(WORKERS).build().expect("client"),
                base: format!("http://{addr}"),
            });
            let (token, hospital, numbers) = seed(&client, &env).await;
            print!("{backend:?}: ");
            let (token, hospital, numbers) = (Arc::new(token), Arc::new(hospital), Arc::new(numbers));
            load(client.clone(), token.clone(), hospital.clone(), numbers.clone(), false).await;
            print!("{backend:?}: ");
            load(client, token, hospital, numbers, true).await;
            running.shutdown().await;
        }
    });
}

/// `i` spelled with letters (names have no digits): 0 is `a`, 10 is `ba`.
fn letters(i: usize) -> String {
    i.to_string().bytes().map(|d| char::from(b'a' + (d - b'0'))).collect()
}
