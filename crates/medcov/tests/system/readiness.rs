//! PostgreSQL and Redis going away and coming back, seen through `/health/ready` and traffic.
//!
//! The tests cannot stop the shared servers (other tests use them), so MedCov reaches them
//! through a TCP relay that the test cuts and restores: to MedCov that is the same as the
//! server dying and coming back on the same address.

use std::net::SocketAddr;

use medcov_config::{QuotaConfig, ServiceName};
use medcov_testkit::TestEnv;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{App, PATIENCE, eventually, until};
use crate::world::World;

/// Relays connections from `listen` to `target` until aborted; aborting drops every
/// connection it carries.
fn relay(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// A relay to the server of `url` (PostgreSQL or Redis): the relay's address, the server's, the
/// relay's task, and `url` pointing at the relay.
async fn relayed(url: &str, default_port: u16) -> (SocketAddr, SocketAddr, JoinHandle<()>, url::Url) {
    let real: url::Url = url.parse().expect("url");
    let target: SocketAddr = format!("{}:{}", real.host_str().expect("host"), real.port().unwrap_or(default_port))
        .parse()
        .expect("a socket address");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let relay_addr = listener.local_addr().expect("addr");
    let task = relay(listener, target);
    let mut via_relay = real.clone();
    via_relay.set_port(Some(relay_addr.port())).expect("port");
    (relay_addr, target, task, via_relay)
}

async fn ready_status(app: &App) -> (u16, serde_json::Value) {
    let (status, _, body) = app.get(ServiceName::Hospital, "/health/ready").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_without_a_restart() {
    let env = TestEnv::distributed().await;
    let (relay_addr, target, mut relay_task, via_relay) = relayed(env.postgres_url().expect("postgres"), 5432).await;
    let mut config = env.config.clone();
    config.database.url = via_relay.as_str().parse().expect("url");
    config.database.acquire_timeout_ms = 500;
    let app = App::start(config, "hospital").await;
    assert_eq!(ready_status(&app).await.0, 200);

    // The database goes away.
    relay_task.abort();
    let _ = relay_task.await;
    let body = eventually("readiness to turn 503 while the database is unreachable", PATIENCE, async || {
        let (status, body) = ready_status(&app).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "unavailable");
    let database = &body["checks"][0];
    assert_eq!(database["name"], "database:postgres", "{body}");
    assert_eq!(database["status"], "down", "{body}");
    assert!(database["error"].is_string(), "{body}");
    // Liveness is not readiness: the process still answers.
    assert_eq!(app.get(ServiceName::Hospital, "/health/live").await.0, 200);

    // It comes back on the same address.
    let listener = TcpListener::bind(relay_addr).await.expect("rebind relay");
    relay_task = relay(listener, target);
    until("readiness to recover once the database is back", PATIENCE, async || ready_status(&app).await.0 == 200).await;
    app.stop().await;
    relay_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_degrades_but_does_not_unready() {
    let env = TestEnv::distributed().await;
    let mut config = env.config.clone();
    // Nothing listens here: Redis is "down" from the start.
    let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    config.redis.url = Some(format!("redis://{unused}").parse().expect("url"));
    let app = App::start(config, "hospital").await;
    let (status, body) = ready_status(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    let redis = body["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "redis").cloned();
    assert_eq!(redis.expect("a redis check")["status"], "down");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_keep_succeeding_while_redis_is_away_and_caching_and_limits_resume_after() {
    let env = TestEnv::distributed().await;
    let real = env.config.redis.url.as_ref().expect("redis").expose().to_owned();
    let (relay_addr, target, mut relay_task, via_relay) = relayed(&real, 6379).await;
    let mut config = env.config.clone();
    config.redis.url = Some(via_relay.as_str().parse().expect("url"));
    // One request a second with a large burst: each request moves the limiter's state in Redis
    // a second ahead, so it outlives the test's pauses.
    config.gateway.rate_limits.api = QuotaConfig { per_minute: 60, burst: 10_000 };
    let World { app, admin } = World::start_with(&env, config, "all").await;
    let (_, _, me) = app.call(reqwest::Method::GET, "/api/auth/me", Some(&admin), None).await;
    let hospital =
        serde_json::json!({"name": "Nairobi", "code": "NRB", "timezone": "Africa/Nairobi", "currency": "KES"});
    let (status, _, body) =
        app.call(reqwest::Method::POST, "/api/hospital/hospitals", Some(&admin), Some(hospital)).await;
    assert_eq!(status, 201, "{body}");
    let one = format!("/api/hospital/hospitals/{}", body["id"].as_str().expect("id"));
    let read = async || {
        let (status, headers, body) = app.call(reqwest::Method::GET, &one, Some(&admin), None).await;
        assert_eq!(status, 200, "{body}");
        headers.get("x-cache").map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default()
    };
    for _ in 0..2 {
        read().await;
    }
    assert_eq!(read().await, "HIT", "cached in Redis");

    // The gateway's rate limit lives in Redis: the principal's key moves with each request.
    let mut redis =
        redis::Client::open(real.as_str()).expect("client").get_multiplexed_async_connection().await.expect("redis");
    let limit_key =
        format!("{}:ratelimit:api:sub:{}", env.redis_prefix().expect("prefix"), me["id"].as_str().expect("id"));
    let tat = async |redis: &mut redis::aio::MultiplexedConnection| -> Option<String> {
        redis::cmd("GET").arg(&limit_key).query_async(redis).await.expect("read")
    };
    let before = tat(&mut redis).await;
    assert!(before.is_some(), "the limiter keeps its state in Redis");

    // Redis goes away: every read still succeeds; the first from the service (a miss), the
    // next from the gateway's cache kept in process meanwhile.
    relay_task.abort();
    let _ = relay_task.await;
    assert_eq!(read().await, "MISS", "nothing of Redis's is served while it is away");
    for _ in 0..5 {
        assert!(["MISS", "HIT"].contains(&read().await.as_str()));
        let (status, _, body) =
            app.call(reqwest::Method::GET, "/api/hospital/patients?limit=5", Some(&admin), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = app.get(ServiceName::Gateway, "/health/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    let during = tat(&mut redis).await;

    // It comes back: caching and the shared limit resume by themselves.
    let listener = TcpListener::bind(relay_addr).await.expect("rebind relay");
    relay_task = relay(listener, target);
    until("caching and the Redis limiter to resume once Redis is back", PATIENCE, async || {
        read().await == "HIT" && tat(&mut redis).await != during
    })
    .await;
    app.stop().await;
    relay_task.abort();
}
