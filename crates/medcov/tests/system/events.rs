//! Events end to end, on both backends: a change's event is relayed from the outbox to the bus
//! with its correlation, the event log answers within the caller's tenant scope, and the
//! operations (consumer groups, dead letters, retry, discard, replay) work through the gateway.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use medcov_bus::consumer::{self, ConsumerConfig, Handler};
use medcov_bus::{Bus, Envelope, Start};
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::json;

use crate::support::{PATIENCE, until};
use crate::world::{World, scope};

struct Refuse;
impl Handler for Refuse {
    fn handle<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("refused on purpose".to_owned()) })
    }
}

async fn bus_of(env: &TestEnv) -> Arc<dyn Bus> {
    let redis = medcov_runtime::RedisHandle::from_config(&env.config.redis).expect("redis handle");
    medcov_runtime::bus(&env.config, redis.as_ref()).await.expect("the bus")
}

async fn a_change_reaches_the_bus_and_the_log(env: TestEnv) {
    let w = World::start(&env).await;
    let (app, admin) = (&w.app, w.admin.clone());
    let bus = bus_of(&env).await;
    bus.create_group("hospital", "observer", Start::Beginning).await.expect("group");
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);

    let hospital = w.hospital("EVC", "UTC").await;
    let (status, headers, patient) = app
        .call(Method::POST, "/api/hospital/patients", Some(&admin), Some(json!({"hospital_id": hospital, "given_name": "Eve", "family_name": "Wanjiru", "date_of_birth": "1990-01-01", "sex": "female"})))
        .await;
    assert_eq!(status, 201, "{patient}");
    let request_id = headers["x-request-id"].to_str().expect("request id").to_owned();

    // The relay hands it to the bus; the log says when.
    w.settle().await;
    let delivered = bus.read("hospital", "observer", "t", 100, Duration::ZERO).await.expect("read");
    let registered = delivered
        .iter()
        .find(|d| d.envelope.event_type == "hospital.patient_registered.v1")
        .expect("the event reached the bus");
    assert_eq!(registered.envelope.aggregate_id.to_string(), patient["id"].as_str().unwrap());
    assert_eq!(registered.envelope.correlation_id.as_deref(), Some(request_id.as_str()));
    // The request is the command that caused it.
    assert_eq!(registered.envelope.causation_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(registered.envelope.tenant_id.map(|t| t.to_string()).as_deref(), Some(hospital.as_str()));
    let (status, _, log) = app
        .call(
            Method::GET,
            &format!("/api/hospital/events?aggregate_id={}", patient["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["items"][0]["type"], "hospital.patient_registered.v1");
    assert!(log["items"][0]["published_at"].is_string(), "{log}");
    assert_eq!(log["paging"], json!({"limit": 100, "after": null, "next_after": null}), "{log}");

    let metrics = app.text(medcov_config::ServiceName::Hospital, "/metrics").await;
    let published = crate::support::sample(&metrics, "events_published_total", &[]).unwrap_or(0.0);
    assert!(published >= 1.0, "the relay counts what it published: {published}");

    // Tenant staff see their own hospital's events only.
    let own = w.user("own.auditor", "auditor", scope::hospital(&hospital)).await;
    let other = w.user("other.auditor", "auditor", scope::hospital(uuid::Uuid::now_v7())).await;
    let (_, _, mine) =
        app.call(Method::GET, "/api/hospital/events?type=hospital.patient_registered.v1", Some(&own), None).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    let (_, _, theirs) = app.call(Method::GET, "/api/hospital/events", Some(&other), None).await;
    assert_eq!(theirs["items"], json!([]));

    // A consumer that refuses everything dead-letters it; the operator sees, retries, discards.
    let config = ConsumerConfig {
        max_deliveries: 1,
        block: Duration::from_millis(100),
        ..ConsumerConfig::new("hospital", "picky")
    };
    bus.create_group("hospital", "picky", Start::Beginning).await.expect("group");
    let mut dead = 0;
    until("the picky group to refuse every event", PATIENCE, async || {
        dead += consumer::turn(bus.as_ref(), &config, &Refuse).await.expect("turn").dead;
        let stats = bus.stats("hospital", "picky").await.expect("stats");
        stats.lag == 0 && stats.pending == 0
    })
    .await;
    assert!(dead >= 1);
    let (status, _, letters) =
        app.call(Method::GET, "/api/hospital/events/dead-letters?group=picky", Some(&admin), None).await;
    assert_eq!(status, 200, "{letters}");
    let letters = &letters["items"];
    assert_eq!(letters.as_array().map(Vec::len), Some(dead));
    assert_eq!(letters[0]["error"], "refused on purpose");
    let (_, _, groups) = app.call(Method::GET, "/api/hospital/events/consumers", Some(&admin), None).await;
    let picky = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "picky")
        .expect("the group is listed")
        .clone();
    assert_eq!(picky["dead_letters"].as_u64(), Some(dead as u64));
    let first = letters[0]["id"].as_str().unwrap();
    let (status, _, retried) = app
        .call(
            Method::POST,
            &format!("/api/hospital/events/dead-letters/{first}/retry"),
            Some(&admin),
            Some(json!({"group": "picky"})),
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/api/hospital/events/dead-letters/{first}/retry"),
            Some(&admin),
            Some(json!({"group": "picky"})),
        )
        .await;
    assert_eq!(status, 404, "retried once");
    if let Some(second) = letters.as_array().unwrap().get(1) {
        let path = format!("/api/hospital/events/dead-letters/{}/discard", second["id"].as_str().unwrap());
        let (status, _, _) =
            app.call(Method::POST, &path, Some(&admin), Some(json!({"group": "picky", "reason": "test"}))).await;
        assert_eq!(status, 204);
    }
    // Operations are for platform administrators only.
    let (status, _, _) = app.call(Method::GET, "/api/hospital/events/consumers", Some(&own), None).await;
    assert_eq!(status, 403);

    // Replay publishes the log again from a time.
    let (status, _, replayed) = app
        .call(
            Method::POST,
            "/api/hospital/events/replay",
            Some(&admin),
            Some(json!({"since": since.format(&time::format_description::well_known::Rfc3339).unwrap()})),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert!(replayed["republished"].as_u64().unwrap() >= 1);
    let again = bus.read("hospital", "observer", "t", 50, Duration::from_millis(500)).await.expect("read");
    assert!(again.iter().any(|d| d.envelope.id == registered.envelope.id), "the same event, with its id");
    w.stop().await;
}

/// The settle barrier gives up at its timeout naming what still moves, rather than wait for
/// ever: here an event billing cannot read, pending between its retries.
async fn settling_names_what_is_still_moving(env: TestEnv) {
    let w = World::start(&env).await;
    w.settle().await;
    let bus = bus_of(&env).await;
    let unreadable = Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: "hospital.encounter_completed.v1".into(),
        aggregate_type: "encounter".into(),
        aggregate_id: uuid::Uuid::now_v7(),
        tenant_id: None,
        occurred_at: time::OffsetDateTime::now_utc(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        payload: json!({"not": "an encounter"}),
    };
    bus.publish(&unreadable).await.expect("published");
    let running = w.app.running.as_ref().expect("running");
    let unsettled = running.settle(Duration::from_secs(2)).await.expect_err("an event keeps failing");
    assert!(unsettled.contains("group billing on stream hospital"), "{unsettled}");
    w.stop().await;
}

medcov_testkit::backend_suite!(a_change_reaches_the_bus_and_the_log, settling_names_what_is_still_moving);

// The whole system on a Redis Cluster: bus, cache, idempotency keys, rate limits, registry.
medcov_testkit::redis_cluster_suite!(a_change_reaches_the_bus_and_the_log);
