//! The bus contract: one suite, run against Redis Streams and the SQLite bus.
//!
//! Ordering per stream, independent groups, at-least-once under a consumer crash (another
//! consumer reclaims), reclaim only after the idle time, dead letters after the configured
//! deliveries and their retry, trimming that never drops a pending or undelivered entry, no
//! loss across a consumer restart, a consumer stopping at once while it waits for entries but
//! never in the middle of a handler, the outbox relay holding events while the bus is away, and
//! the bus losing its data (Redis restarted empty): consumers create their groups again and
//! the relay publishes again what was not handled, and the dead letters and discard log kept in
//! the consumer's database (SQLite or PostgreSQL, with the bus of the same backend) outlive it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use medcov_bus::consumer::{self, AfterCommit, ConsumerConfig, Handler};
use medcov_bus::{Bus, Envelope, RedisBus, SqliteBus, Start};
use medcov_testkit::{PATIENCE, TestBackend, TestEnv, eventually, until};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn bus(env: &TestEnv) -> Arc<dyn Bus> {
    match env.backend {
        TestBackend::Embedded => Arc::new(SqliteBus::open(&env.data_dir().join("bus.db")).await.expect("the bus file")),
        TestBackend::Distributed | TestBackend::RedisCluster => {
            let url = env.config.redis.url.as_ref().expect("redis url");
            let client = medcov_redis::RedisClient::open(url, env.config.redis.is_cluster()).expect("client");
            let connection = client.connection().expect("redis");
            Arc::new(RedisBus::new(client, connection, &env.config.redis.key_prefix))
        }
    }
}

fn event(n: usize) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: "test.thing_happened.v1".into(),
        aggregate_type: "thing".into(),
        aggregate_id: Uuid::now_v7(),
        tenant_id: None,
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: Some(format!("c-{n}")),
        causation_id: None,
        traceparent: None,
        payload: serde_json::json!({"n": n}),
    }
}

fn n_of(envelope: &Envelope) -> usize {
    envelope.payload["n"].as_u64().expect("n") as usize
}

const STREAM: &str = "test";
const NOW: Duration = Duration::ZERO;

async fn entries_arrive_in_order_and_each_group_gets_all(env: TestEnv) {
    let bus = bus(&env).await;
    bus.create_group(STREAM, "a", Start::Beginning).await.unwrap();
    for n in 0..25 {
        bus.publish(&event(n)).await.unwrap();
    }
    bus.create_group(STREAM, "b", Start::Beginning).await.unwrap();
    bus.create_group(STREAM, "late", Start::End).await.unwrap();
    for group in ["a", "b"] {
        let mut seen = Vec::new();
        loop {
            let batch = bus.read(STREAM, group, "c1", 10, NOW).await.unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.iter().all(|d| d.deliveries == 1));
            let entries: Vec<String> = batch.iter().map(|d| d.entry.clone()).collect();
            seen.extend(batch.iter().map(|d| n_of(&d.envelope)));
            bus.ack(STREAM, group, &entries).await.unwrap();
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>(), "group {group}");
        let stats = bus.stats(STREAM, group).await.unwrap();
        assert_eq!((stats.pending, stats.lag, stats.dead), (0, 0, 0));
    }
    // A group created at the end sees only what comes after.
    assert!(bus.read(STREAM, "late", "c1", 10, NOW).await.unwrap().is_empty());
    bus.publish(&event(99)).await.unwrap();
    let late = bus.read(STREAM, "late", "c1", 10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(late.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), vec![99]);
    assert_eq!(bus.groups(STREAM).await.unwrap(), vec!["a", "b", "late"]);
    // Creating a group twice is fine.
    bus.create_group(STREAM, "a", Start::Beginning).await.unwrap();
}

/// A batch published at once lands on each of its streams in order after what was there, each
/// entry under the id `publish_all` returned for it, and the streams go on from there.
async fn a_batch_across_streams_arrives_in_order_on_each(env: TestEnv) {
    const OTHER: &str = "other";
    let on_other = |n: usize| Envelope { event_type: "other.thing_happened.v1".into(), ..event(n) };
    let bus = bus(&env).await;
    for stream in [STREAM, OTHER] {
        bus.create_group(stream, "g", Start::Beginning).await.unwrap();
    }
    bus.publish(&event(0)).await.unwrap();
    let batch: Vec<Envelope> = (1..=7).map(|n| if n % 3 == 0 { on_other(n) } else { event(n) }).collect();
    let ids = bus.publish_all(&batch).await.unwrap();
    assert_eq!(ids.len(), batch.len());
    for (stream, expected) in [(STREAM, vec![0, 1, 2, 4, 5, 7]), (OTHER, vec![3, 6])] {
        let read = bus.read(stream, "g", "c1", 100, NOW).await.unwrap();
        assert_eq!(read.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), expected, "{stream}");
        for delivery in read.iter().filter(|d| n_of(&d.envelope) > 0) {
            assert_eq!(delivery.entry, ids[n_of(&delivery.envelope) - 1], "{stream}");
        }
        let entries: Vec<String> = read.iter().map(|d| d.entry.clone()).collect();
        bus.ack(stream, "g", &entries).await.unwrap();
    }
    bus.publish_all(&[on_other(8), event(9)]).await.unwrap();
    for (stream, expected) in [(OTHER, 8), (STREAM, 9)] {
        let read = bus.read(stream, "g", "c1", 100, NOW).await.unwrap();
        assert_eq!(read.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), vec![expected], "{stream}");
    }
}

async fn a_blocked_reader_wakes_on_publish(env: TestEnv) {
    let bus = bus(&env).await;
    bus.create_group(STREAM, "g", Start::End).await.unwrap();
    let reader = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.read(STREAM, "g", "c1", 10, Duration::from_secs(5)).await.unwrap() })
    };
    // The behaviour under test is a reader already waiting when the entry comes: give it the
    // time to start waiting (nothing observable says it has).
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.publish(&event(7)).await.unwrap();
    let got =
        tokio::time::timeout(Duration::from_secs(4), reader).await.expect("woken before the block ran out").unwrap();
    assert_eq!(got.len(), 1);
}

async fn a_crashed_consumers_entries_are_reclaimed_after_the_idle_time(env: TestEnv) {
    let bus = bus(&env).await;
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    for n in 0..5 {
        bus.publish(&event(n)).await.unwrap();
    }
    // c1 takes everything and dies without acknowledging.
    let taken = bus.read(STREAM, "g", "c1", 10, NOW).await.unwrap();
    assert_eq!(taken.len(), 5);
    assert!(bus.read(STREAM, "g", "c2", 10, NOW).await.unwrap().is_empty(), "nothing new for c2");
    let pending = bus.pending(STREAM, "g", 10).await.unwrap();
    assert_eq!(pending.len(), 5);
    assert!(pending.iter().all(|p| p.consumer == "c1" && p.deliveries == 1));
    let entries: Vec<String> = pending.iter().map(|p| p.entry.clone()).collect();
    // Not idle long enough yet: nothing moves.
    assert!(bus.claim(STREAM, "g", "c2", Duration::from_secs(30), &entries).await.unwrap().is_empty());
    // Once idle 250 ms, they move (a claim that finds them too fresh changes nothing).
    let reclaimed = eventually("the entries to be idle long enough", PATIENCE, async || {
        let claimed = bus.claim(STREAM, "g", "c2", Duration::from_millis(250), &entries).await.unwrap();
        (!claimed.is_empty()).then_some(claimed)
    })
    .await;
    assert_eq!(reclaimed.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(reclaimed.iter().all(|d| d.deliveries == 2), "{reclaimed:?}");
    assert!(bus.pending(STREAM, "g", 10).await.unwrap().iter().all(|p| p.consumer == "c2"));
    bus.ack(STREAM, "g", &entries).await.unwrap();
    assert_eq!(bus.stats(STREAM, "g").await.unwrap().pending, 0);
}

/// Fails while `broken`, and counts what it handled per event.
struct Flaky {
    broken: AtomicBool,
    handled: Mutex<BTreeMap<usize, usize>>,
    calls: AtomicUsize,
}

impl Handler for Flaky {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.broken.load(Ordering::SeqCst) && n_of(envelope) == 3 {
                return Err("event 3 cannot be handled yet".into());
            }
            *self.handled.lock().unwrap().entry(n_of(envelope)).or_default() += 1;
            Ok(())
        })
    }
}

fn fast(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        block: Duration::from_millis(50),
        retry_base: Duration::from_millis(40),
        retry_max: Duration::from_millis(200),
        max_deliveries: 3,
        ..ConsumerConfig::new(STREAM, group)
    }
}

async fn a_poison_event_is_dead_lettered_and_retried_once_fixed(env: TestEnv) {
    let bus = bus(&env).await;
    let config = fast("g");
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    for n in 0..5 {
        bus.publish(&event(n)).await.unwrap();
    }
    let handler = Flaky { broken: AtomicBool::new(true), handled: Mutex::default(), calls: AtomicUsize::new(0) };
    let mut dead = 0;
    until("event 3 to run out of deliveries", PATIENCE, async || {
        dead += consumer::turn(bus.as_ref(), &config, &handler).await.unwrap().dead;
        dead > 0
    })
    .await;
    assert_eq!(dead, 1, "event 3 went to the dead letters");
    // Three deliveries of event 3, each waiting out a longer backoff, and the four others once.
    assert_eq!(handler.calls.load(Ordering::SeqCst), 4 + 3);
    let letters = bus.dead_letters(STREAM, "g").await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(n_of(&letters[0].envelope), 3);
    assert_eq!(letters[0].deliveries, 3);
    assert_eq!(letters[0].error, "event 3 cannot be handled yet");
    let stats = bus.stats(STREAM, "g").await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 1));

    // Fixed, then retried: it is handled once, and the dead letters are empty.
    handler.broken.store(false, Ordering::SeqCst);
    bus.retry(STREAM, "g", &letters[0].id).await.unwrap();
    until("the retried event to be handled", PATIENCE, async || {
        consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
        handler.handled.lock().unwrap().contains_key(&3)
    })
    .await;
    assert_eq!(handler.handled.lock().unwrap().get(&3), Some(&1));
    assert!(bus.dead_letters(STREAM, "g").await.unwrap().is_empty());
    assert!(bus.retry(STREAM, "g", &letters[0].id).await.is_err(), "a dead letter is retried once");

    // Another poison event, discarded with a reason.
    handler.broken.store(true, Ordering::SeqCst);
    let mut poison = event(3);
    poison.id = Uuid::now_v7();
    bus.publish(&poison).await.unwrap();
    until("the second poison event to run out of deliveries", PATIENCE, async || {
        consumer::turn(bus.as_ref(), &config, &handler).await.unwrap().dead > 0
    })
    .await;
    let letters = bus.dead_letters(STREAM, "g").await.unwrap();
    assert_eq!(letters.len(), 1);
    bus.discard(STREAM, "g", &letters[0].id, "a test event").await.unwrap();
    assert!(bus.dead_letters(STREAM, "g").await.unwrap().is_empty());
    let discarded = bus.discarded(STREAM, "g").await.unwrap();
    assert_eq!(discarded.len(), 1);
    assert_eq!((discarded[0].envelope.id, discarded[0].reason.as_str()), (poison.id, "a test event"));
    assert_eq!(discarded[0].error, "event 3 cannot be handled yet");
    assert!(bus.discarded(STREAM, "other").await.unwrap().is_empty(), "a discard log per group");
}

async fn trimming_keeps_every_entry_a_group_still_needs(env: TestEnv) {
    let bus = bus(&env).await;
    bus.create_group(STREAM, "fast", Start::Beginning).await.unwrap();
    let mut entries = Vec::new();
    for n in 0..10 {
        entries.push(bus.publish(&event(n)).await.unwrap());
    }
    // No group has acknowledged anything: nothing goes.
    bus.create_group(STREAM, "slow", Start::Beginning).await.unwrap();
    assert_eq!(bus.trim(STREAM).await.unwrap(), 0);
    // `fast` handles everything but event 6; `slow` has read only up to event 3.
    let got = bus.read(STREAM, "fast", "c", 10, NOW).await.unwrap();
    let acked: Vec<String> = got.iter().filter(|d| n_of(&d.envelope) != 6).map(|d| d.entry.clone()).collect();
    bus.ack(STREAM, "fast", &acked).await.unwrap();
    let slow = bus.read(STREAM, "slow", "c", 4, NOW).await.unwrap();
    bus.ack(STREAM, "slow", &slow.iter().map(|d| d.entry.clone()).collect::<Vec<_>>()).await.unwrap();
    let dropped = bus.trim(STREAM).await.unwrap();
    assert!(dropped <= 4, "only entries both groups are done with (0 to 3) may go: {dropped}");
    // `slow` still gets 4..9, and `fast` can still reclaim 6.
    let rest = bus.read(STREAM, "slow", "c", 10, NOW).await.unwrap();
    assert_eq!(rest.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8, 9]);
    bus.ack(STREAM, "slow", &rest.iter().map(|d| d.entry.clone()).collect::<Vec<_>>()).await.unwrap();
    let again = eventually("event 6 to be idle long enough", PATIENCE, async || {
        let claimed = bus.claim(STREAM, "fast", "c2", Duration::from_millis(50), &[entries[6].clone()]).await.unwrap();
        (!claimed.is_empty()).then_some(claimed)
    })
    .await;
    assert_eq!(again.len(), 1);
    assert_eq!(n_of(&again[0].envelope), 6);
    bus.ack(STREAM, "fast", &[entries[6].clone()]).await.unwrap();
    // Now everything is done everywhere; at most the last delivered entry stays.
    bus.trim(STREAM).await.unwrap();
    assert!(bus.read(STREAM, "fast", "c", 10, NOW).await.unwrap().is_empty());
}

async fn nothing_is_lost_when_a_consumer_restarts(env: TestEnv) {
    let bus = bus(&env).await;
    let config = fast("g");
    let handler =
        Arc::new(Flaky { broken: AtomicBool::new(false), handled: Mutex::default(), calls: AtomicUsize::new(0) });
    for n in 0..40 {
        bus.publish(&event(n)).await.unwrap();
    }
    // First run: stopped once it has started on them.
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(consumer::run(bus.clone(), config.clone(), handler.clone(), Default::default(), stop.clone()));
    until("the first run to handle an event", PATIENCE, async || !handler.handled.lock().unwrap().is_empty()).await;
    stop.cancel();
    task.await.unwrap();
    for n in 40..60 {
        bus.publish(&event(n)).await.unwrap();
    }
    // Second run, a new consumer name in the same group: it finishes the work.
    let stop = CancellationToken::new();
    let second = ConsumerConfig { consumer: "after-restart".into(), ..config };
    let task = tokio::spawn(consumer::run(bus.clone(), second, handler.clone(), Default::default(), stop.clone()));
    until("every event to be handled", PATIENCE, async || handler.handled.lock().unwrap().len() == 60).await;
    stop.cancel();
    task.await.unwrap();
    let handled = handler.handled.lock().unwrap().clone();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..60).collect::<Vec<_>>(), "every event handled");
    assert_eq!(bus.stats(STREAM, "g").await.unwrap().pending, 0);
}

async fn a_consumer_waiting_for_entries_stops_at_once(env: TestEnv) {
    let bus = bus(&env).await;
    // A read that would wait half a minute for entries that never come.
    let block = Duration::from_secs(30);
    let config = ConsumerConfig { block, ..fast("g") };
    let handler =
        Arc::new(Flaky { broken: AtomicBool::new(false), handled: Mutex::default(), calls: AtomicUsize::new(0) });
    bus.publish(&event(0)).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer::run(bus.clone(), config, handler.clone(), Default::default(), stop.clone()));
    // Its one event handled and acknowledged, the consumer goes back to waiting for more.
    until("the event to be handled and acknowledged", PATIENCE, async || {
        !handler.handled.lock().unwrap().is_empty() && bus.stats(STREAM, "g").await.unwrap().pending == 0
    })
    .await;
    stop.cancel();
    tokio::time::timeout(block / 3, task)
        .await
        .expect("the consumer stopped long before its read would have ended")
        .unwrap();
}

/// Says when it starts handling, then waits to be let go.
#[derive(Default)]
struct Held {
    started: Notify,
    release: Notify,
    handled: AtomicUsize,
}

impl Handler for Held {
    fn handle<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.started.notify_one();
            self.release.notified().await;
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

async fn a_handler_running_at_shutdown_finishes_and_acknowledges(env: TestEnv) {
    let bus = bus(&env).await;
    let config = ConsumerConfig { block: Duration::from_secs(30), ..fast("g") };
    let handler = Arc::new(Held::default());
    bus.publish(&event(0)).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer::run(bus.clone(), config, handler.clone(), Default::default(), stop.clone()));
    handler.started.notified().await;
    // The shutdown comes while the handler works: it finishes, and its event is acknowledged.
    stop.cancel();
    handler.release.notify_one();
    task.await.unwrap();
    assert_eq!(handler.handled.load(Ordering::SeqCst), 1);
    let stats = bus.stats(STREAM, "g").await.unwrap();
    assert_eq!((stats.pending, stats.lag, stats.dead), (0, 0, 0));
}

/// A service database with the platform's tables (outbox, inbox, dead letters), as every
/// service has them.
async fn service_db(env: &TestEnv) -> medcov_store::Database {
    let url = env.config.database_url(medcov_config::ServiceName::Hospital);
    let db = medcov_store::Database::connect(
        medcov_config::ServiceName::Hospital,
        url,
        &medcov_store::PoolOptions::from_config(&env.config),
    )
    .await
    .expect("database");
    db.migrate(medcov_config::ServiceName::Hospital, &medcov_store::platform_migrations()).await.expect("migrated");
    db
}

/// A service database with 7 events in its outbox.
async fn outbox(env: &TestEnv) -> medcov_store::Database {
    let db = service_db(env).await;
    let mut tx = db.begin_write().await.expect("a transaction");
    for n in 0..7 {
        let e = event(n);
        let actor = medcov_store::outbox::Actor { request_id: e.correlation_id.clone(), ..Default::default() };
        let stored = medcov_store::outbox::Event {
            event_type: "test.thing_happened.v1",
            aggregate_type: "thing",
            aggregate_id: e.aggregate_id,
            tenant_id: Uuid::nil(),
            payload: e.payload,
        };
        medcov_store::outbox::write_event(&mut tx, &actor, &stored).await.expect("an outbox row");
    }
    tx.commit().await.expect("committed");
    db
}

async fn the_outbox_keeps_what_the_bus_did_not_take(env: TestEnv) {
    let db = outbox(&env).await;
    // A bus that is not there: nothing is marked published.
    let timeouts = medcov_redis::Timeouts {
        connect: Duration::from_millis(200),
        response: Duration::from_millis(200),
        retries: 0,
        ..Default::default()
    };
    let nowhere = "redis://127.0.0.1:1/".parse().unwrap();
    let client = medcov_redis::RedisClient::with_timeouts(&nowhere, false, timeouts).unwrap();
    let away = RedisBus::new(client.clone(), client.connection().unwrap(), "x");
    assert!(medcov_bus::relay::relay_once(&db, &away, 100).await.is_err());
    assert_eq!(medcov_store::outbox::unpublished(&db).await.unwrap().len(), 7);
    // The bus is back: everything goes, in order, once.
    let bus = bus(&env).await;
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    assert_eq!(medcov_bus::relay::relay_once(&db, bus.as_ref(), 100).await.unwrap(), 7);
    assert_eq!(medcov_bus::relay::relay_once(&db, bus.as_ref(), 100).await.unwrap(), 0);
    assert!(medcov_store::outbox::unpublished(&db).await.unwrap().is_empty());
    let got = bus.read(STREAM, "g", "c", 20, NOW).await.unwrap();
    assert_eq!(got.iter().map(|d| n_of(&d.envelope)).collect::<Vec<_>>(), (0..7).collect::<Vec<_>>());
    assert_eq!(got[0].envelope.correlation_id.as_deref(), Some("c-0"));
    db.close().await;
}

/// Handles each event once by its id, as a consumer with an inbox does, counting effects per
/// event number.
#[derive(Default)]
struct Inboxed {
    seen: Mutex<std::collections::BTreeSet<Uuid>>,
    effects: Mutex<BTreeMap<usize, usize>>,
}

impl Handler for Inboxed {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.seen.lock().unwrap().insert(envelope.id) {
                *self.effects.lock().unwrap().entry(n_of(envelope)).or_default() += 1;
            }
            Ok(())
        })
    }
}

/// The bus forgets everything: Redis restarted empty, or the bus file replaced by an empty one.
async fn lose_everything(env: &TestEnv) {
    match env.backend {
        TestBackend::Embedded => {
            let url = format!("sqlite://{}", env.data_dir().join("bus.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.expect("the bus file");
            for table in
                ["bus_streams", "bus_entries", "bus_groups", "bus_pending", "bus_dead", "bus_discarded", "bus_epochs"]
            {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&pool).await.expect("deleted");
            }
            pool.close().await;
        }
        TestBackend::Distributed | TestBackend::RedisCluster => {
            let url = env.config.redis.url.as_ref().expect("redis url");
            let client = redis::Client::open(url.expose()).expect("client");
            let mut connection = client.get_multiplexed_async_connection().await.expect("redis");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", env.config.redis.key_prefix))
                .query_async(&mut connection)
                .await
                .expect("KEYS");
            assert!(!keys.is_empty(), "the bus had keys to lose");
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut connection).await.expect("DEL");
        }
    }
}

async fn what_the_bus_lost_is_relayed_again_and_handled_once(env: TestEnv) {
    let db = outbox(&env).await;
    let bus = bus(&env).await;
    let handler = Arc::new(Inboxed::default());
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    let mut epoch = None;
    assert_eq!(medcov_bus::relay::recover(&db, bus.as_ref(), STREAM, &mut epoch).await.unwrap(), None);
    assert_eq!(medcov_bus::relay::relay_once(&db, bus.as_ref(), 100).await.unwrap(), 7);
    // The epoch stays while the bus keeps its data.
    assert_eq!(medcov_bus::relay::recover(&db, bus.as_ref(), STREAM, &mut epoch).await.unwrap(), None);
    // Events 0 to 2 are handled; 3 to 6 wait on the bus.
    let first = bus.read(STREAM, "g", "c", 3, NOW).await.unwrap();
    for delivery in &first {
        handler.handle(&delivery.envelope).await.unwrap();
    }
    bus.ack(STREAM, "g", &first.iter().map(|d| d.entry.clone()).collect::<Vec<_>>()).await.unwrap();
    assert!(bus.needed_since(STREAM).await.unwrap().is_some(), "a group reads the stream");
    medcov_bus::relay::record_settled(&db, bus.as_ref(), STREAM).await.unwrap();

    lose_everything(&env).await;
    assert!(bus.read(STREAM, "g", "c", 10, NOW).await.unwrap_err().is_missing_group(), "the group is gone");
    assert!(bus.groups(STREAM).await.unwrap().is_empty());

    // A consumer starts (creating its group again); the relay sees the new epoch and
    // publishes again what the bus may have lost: at least the four unhandled events.
    let counters = consumer::ConsumerMetrics::default();
    let health = counters.health.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer::run(bus.clone(), fast("g"), handler.clone(), counters, stop.clone()));
    let again = medcov_bus::relay::recover(&db, bus.as_ref(), STREAM, &mut epoch).await.unwrap().expect("a loss seen");
    assert!((4..=7).contains(&again), "{again} relayed again");
    assert_eq!(medcov_bus::relay::recover(&db, bus.as_ref(), STREAM, &mut epoch).await.unwrap(), None, "once");
    assert_eq!(medcov_bus::relay::relay_once(&db, bus.as_ref(), 100).await.unwrap(), again as usize);
    until("every event to be handled", PATIENCE, async || handler.effects.lock().unwrap().len() == 7).await;
    assert!(handler.effects.lock().unwrap().values().all(|&n| n == 1), "{:?}", handler.effects.lock().unwrap());

    // Lost again while the consumer runs: its group is gone under it, and it creates it again.
    lose_everything(&env).await;
    bus.publish(&event(100)).await.unwrap();
    until("the event published after the loss to be handled", PATIENCE, async || {
        handler.effects.lock().unwrap().contains_key(&100)
    })
    .await;
    assert!(health.not_consuming().is_none());
    stop.cancel();
    task.await.unwrap();
    db.close().await;
}

/// A consumer that writes its effect (an outbox row naming the event's number) with its inbox
/// record, on its own or in a batch's transaction; the events whose number is in `failing`
/// fail after writing their effect.
struct Written {
    db: medcov_store::Database,
    failing: Mutex<Vec<usize>>,
    /// How many events each call of `handle` and `handle_in` was given.
    alone: AtomicUsize,
    together: AtomicUsize,
    /// How often each event number's after-commit work ran.
    committed: Arc<Mutex<BTreeMap<usize, usize>>>,
}

impl Written {
    async fn write(&self, tx: &mut medcov_store::Tx, envelope: &Envelope) -> Result<(), String> {
        if !medcov_bus::inbox::record_once(tx, "test.written", envelope.id).await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        let effect = medcov_store::outbox::Event {
            event_type: "test.effect.v1",
            aggregate_type: "thing",
            aggregate_id: envelope.aggregate_id,
            tenant_id: Uuid::nil(),
            payload: serde_json::json!({"n": n_of(envelope)}),
        };
        medcov_store::outbox::write_event(tx, &Default::default(), &effect).await.map_err(|e| e.to_string())?;
        if self.failing.lock().unwrap().contains(&n_of(envelope)) {
            return Err(format!("event {} fails", n_of(envelope)));
        }
        Ok(())
    }

    /// How many effects each event number had.
    async fn effects(&self) -> BTreeMap<usize, usize> {
        let mut effects = BTreeMap::new();
        for row in medcov_store::outbox::all(&self.db).await.unwrap() {
            if row.event_type == "test.effect.v1" {
                *effects.entry(row.payload["n"].as_u64().unwrap() as usize).or_default() += 1;
            }
        }
        effects
    }
}

impl Handler for Written {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.alone.fetch_add(1, Ordering::SeqCst);
            let mut tx = self.db.begin_write().await.map_err(|e| e.to_string())?;
            self.write(&mut tx, envelope).await?;
            tx.commit().await.map_err(|e| e.to_string())
        })
    }

    fn database(&self) -> Option<&medcov_store::Database> {
        Some(&self.db)
    }

    fn ignores(&self, envelope: &Envelope) -> bool {
        n_of(envelope) >= 100
    }

    fn batches(&self, _: &Envelope) -> bool {
        true
    }

    fn handle_in<'a>(
        &'a self,
        tx: &'a mut medcov_store::Tx,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<AfterCommit, String>> {
        Box::pin(async move {
            self.together.fetch_add(1, Ordering::SeqCst);
            self.write(tx, envelope).await?;
            let (committed, n) = (self.committed.clone(), n_of(envelope));
            Ok(AfterCommit::then(move || *committed.lock().unwrap().entry(n).or_default() += 1))
        })
    }
}

/// Refuses the events it is told to, and counts each handling of the others (no inbox: a
/// second delivery would count twice).
#[derive(Default)]
struct Refusing {
    refused: Mutex<std::collections::BTreeSet<Uuid>>,
    handled: Mutex<BTreeMap<Uuid, usize>>,
}

impl Handler for Refusing {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.refused.lock().unwrap().contains(&envelope.id) {
                return Err(format!("event {} is refused", n_of(envelope)));
            }
            *self.handled.lock().unwrap().entry(envelope.id).or_default() += 1;
            Ok(())
        })
    }
}

async fn a_failing_event_in_a_batch_leaves_the_others_alone(env: TestEnv) {
    let bus = bus(&env).await;
    let handler = Written {
        db: service_db(&env).await,
        failing: Mutex::new(vec![3]),
        alone: AtomicUsize::new(0),
        together: AtomicUsize::new(0),
        committed: Arc::default(),
    };
    let config = fast("g");
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    // Event 100 is one the handler ignores: it does not split the batch.
    for n in [0, 1, 2, 100, 3, 4, 5] {
        bus.publish(&event(n)).await.unwrap();
    }
    let first = consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
    assert_eq!((first.handled, first.failed, first.dead), (6, 1, 0), "{first:?}");
    // Tried in one transaction without savepoints up to event 3, which failed (0, 1, 2, 3:
    // rolled back), then all six again with a savepoint each.
    assert_eq!(handler.together.load(Ordering::SeqCst), 4 + 6, "the six events were handled in one transaction");
    assert_eq!(handler.alone.load(Ordering::SeqCst), 0);
    // The others' effects are committed, each once; event 3's part was undone, its inbox
    // record with it (else its retry would be skipped as a repeat).
    let expected: BTreeMap<usize, usize> = [0, 1, 2, 4, 5].into_iter().map(|n| (n, 1)).collect();
    assert_eq!(handler.effects().await, expected);
    // What each handling left for after the commit ran once for each committed event: not for
    // the attempt rolled back (0, 1 and 2 were handled twice), not for event 3's undone part.
    assert_eq!(*handler.committed.lock().unwrap(), expected);
    let stats = bus.stats(STREAM, "g").await.unwrap();
    assert_eq!((stats.pending, stats.lag), (1, 0), "only event 3 waits for its retry");

    // It keeps failing and goes to the dead letters alone; nothing else is touched.
    let mut dead = 0;
    until("event 3 to run out of deliveries", PATIENCE, async || {
        dead += consumer::turn(bus.as_ref(), &config, &handler).await.unwrap().dead;
        dead > 0
    })
    .await;
    let letters = bus.dead_letters(STREAM, "g").await.unwrap();
    assert_eq!(letters.iter().map(|l| n_of(&l.envelope)).collect::<Vec<_>>(), vec![3]);
    assert_eq!(letters[0].error, "event 3 fails");
    assert_eq!(handler.effects().await, expected);

    // Fixed and retried: handled once.
    handler.failing.lock().unwrap().clear();
    bus.retry(STREAM, "g", &letters[0].id).await.unwrap();
    until("the retried event to be handled", PATIENCE, async || {
        consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
        handler.effects().await.contains_key(&3)
    })
    .await;
    let stats = bus.stats(STREAM, "g").await.unwrap();
    assert_eq!((stats.pending, stats.lag, stats.dead), (0, 0, 0));
    assert!(handler.effects().await.values().all(|&n| n == 1), "{:?}", handler.effects().await);
    handler.db.close().await;
}

async fn a_repeat_in_a_batch_is_skipped(env: TestEnv) {
    let bus = bus(&env).await;
    let handler = Written {
        db: service_db(&env).await,
        failing: Mutex::default(),
        alone: AtomicUsize::new(0),
        together: AtomicUsize::new(0),
        committed: Arc::default(),
    };
    let config = fast("g");
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    let (a, b, c) = (event(0), event(1), event(2));
    // The same event twice in one read (a relay that published it again after a crash).
    for envelope in [&a, &b, &a, &c] {
        bus.publish(envelope).await.unwrap();
    }
    let first = consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
    assert_eq!((first.handled, first.failed), (4, 0));
    assert_eq!(handler.together.load(Ordering::SeqCst), 4);
    let once: BTreeMap<usize, usize> = [(0, 1), (1, 1), (2, 1)].into_iter().collect();
    assert_eq!(handler.effects().await, once);
    // And again in a later read, alone and in a batch: still once.
    bus.publish(&b).await.unwrap();
    consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
    bus.publish(&a).await.unwrap();
    bus.publish(&c).await.unwrap();
    consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
    assert_eq!(handler.alone.load(Ordering::SeqCst), 1, "a single event is handled on its own");
    assert_eq!(handler.effects().await, once);
    let stats = bus.stats(STREAM, "g").await.unwrap();
    assert_eq!((stats.pending, stats.lag, stats.dead), (0, 0, 0));
    handler.db.close().await;
}

/// Turns of a consumer until `done`, adding up what they did.
async fn turns_until(
    bus: &dyn Bus,
    config: &ConsumerConfig,
    handler: &dyn Handler,
    what: &str,
    mut done: impl FnMut(&consumer::Turn) -> bool,
) -> consumer::Turn {
    let mut total = consumer::Turn::default();
    until(what, PATIENCE, async || {
        let turn = consumer::turn(bus, config, handler).await.unwrap();
        total.handled += turn.handled;
        total.failed += turn.failed;
        total.dead += turn.dead;
        done(&total)
    })
    .await;
    total
}

/// A consumer with a store keeps its group's dead letters and discard log in its service's
/// database: the bus loses everything, and the dead letter comes back on it as it was, is
/// retried and handled once; the discard stays in the log, and the discarded event, delivered
/// again and failing again, is dropped rather than dead-lettered again.
async fn dead_letters_and_discards_outlive_the_bus_in_the_consumers_database(env: TestEnv) {
    let db = service_db(&env).await;
    let bus = bus(&env).await;
    let config = ConsumerConfig { store: Some(db.clone()), ..fast("g") };
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    let handler = Refusing::default();
    let (kept_back, thrown) = (event(1), event(2));
    handler.refused.lock().unwrap().extend([kept_back.id, thrown.id]);
    for envelope in [&kept_back, &thrown, &event(3)] {
        bus.publish(envelope).await.unwrap();
    }
    turns_until(bus.as_ref(), &config, &handler, "two events to die", |t| t.dead == 2).await;
    let kept = medcov_bus::dead::kept(&db, STREAM, "g").await.unwrap();
    assert_eq!(kept.iter().map(|(l, _)| l.envelope.id).collect::<Vec<_>>(), [kept_back.id, thrown.id]);
    assert_eq!(kept[0].0.error, "event 1 is refused");
    assert_eq!(kept[0].0.deliveries, 3);
    let letters = bus.dead_letters(STREAM, "g").await.unwrap();
    assert_eq!(letters.len(), 2);

    // The operator discards one on the bus; the consumer records it in the store's log.
    let on_bus = |id: Uuid| letters.iter().find(|l| l.envelope.id == id).expect("on the bus").clone();
    bus.discard(STREAM, "g", &on_bus(thrown.id).id, "test data").await.unwrap();
    until("the discard to reach the store", PATIENCE, async || {
        consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
        !medcov_bus::dead::discards(&db, STREAM, "g").await.unwrap().is_empty()
    })
    .await;
    assert_eq!(medcov_bus::dead::kept(&db, STREAM, "g").await.unwrap().len(), 1);

    // The bus loses everything. The consumer's group is made again, and its dead letter is back.
    lose_everything(&env).await;
    assert!(bus.dead_letters(STREAM, "g").await.unwrap().is_empty());
    bus.create_group(STREAM, "g", Start::Beginning).await.unwrap();
    consumer::turn(bus.as_ref(), &config, &handler).await.unwrap();
    let back = bus.dead_letters(STREAM, "g").await.unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    let before = on_bus(kept_back.id);
    assert_eq!(
        (&back[0].envelope, &back[0].entry, &back[0].error, back[0].deliveries),
        (&before.envelope, &before.entry, &before.error, before.deliveries)
    );
    // When it died (the store's time, taken just before the bus's).
    assert!((back[0].at - before.at).abs() < time::Duration::seconds(1), "{} {}", back[0].at, before.at);
    assert_eq!(bus.stats(STREAM, "g").await.unwrap().dead, 1);
    let log = medcov_bus::dead::discards(&db, STREAM, "g").await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].envelope.id, log[0].reason.as_str(), log[0].error.as_str()),
        (thrown.id, "test data", "event 2 is refused")
    );

    // Fixed and retried: handled once, and no longer kept.
    handler.refused.lock().unwrap().remove(&kept_back.id);
    bus.retry(STREAM, "g", &back[0].id).await.unwrap();
    turns_until(bus.as_ref(), &config, &handler, "the retried event to be handled", |t| t.handled > 0).await;
    assert_eq!(handler.handled.lock().unwrap().get(&kept_back.id), Some(&1));
    assert!(medcov_bus::dead::kept(&db, STREAM, "g").await.unwrap().is_empty());
    assert!(bus.dead_letters(STREAM, "g").await.unwrap().is_empty());

    // The discarded event comes again (a replay) and fails again: dropped, not dead again.
    bus.publish(&thrown).await.unwrap();
    turns_until(bus.as_ref(), &config, &handler, "the discarded event to fail for good", |t| t.failed >= 3).await;
    assert_eq!(bus.stats(STREAM, "g").await.unwrap().pending, 0);
    assert!(bus.dead_letters(STREAM, "g").await.unwrap().is_empty());
    assert!(medcov_bus::dead::kept(&db, STREAM, "g").await.unwrap().is_empty());
    assert!(!handler.handled.lock().unwrap().contains_key(&thrown.id));
    db.close().await;
}

medcov_testkit::backend_suite!(
    a_batch_across_streams_arrives_in_order_on_each,
    a_failing_event_in_a_batch_leaves_the_others_alone,
    a_repeat_in_a_batch_is_skipped,
    dead_letters_and_discards_outlive_the_bus_in_the_consumers_database,
    what_the_bus_lost_is_relayed_again_and_handled_once,
    the_outbox_keeps_what_the_bus_did_not_take,
    entries_arrive_in_order_and_each_group_gets_all,
    a_blocked_reader_wakes_on_publish,
    a_crashed_consumers_entries_are_reclaimed_after_the_idle_time,
    a_poison_event_is_dead_lettered_and_retried_once_fixed,
    trimming_keeps_every_entry_a_group_still_needs,
    nothing_is_lost_when_a_consumer_restarts,
    a_consumer_waiting_for_entries_stops_at_once,
    a_handler_running_at_shutdown_finishes_and_acknowledges,
);

medcov_testkit::redis_cluster_suite!(
    the_outbox_keeps_what_the_bus_did_not_take,
    entries_arrive_in_order_and_each_group_gets_all,
    a_blocked_reader_wakes_on_publish,
    a_crashed_consumers_entries_are_reclaimed_after_the_idle_time,
    a_poison_event_is_dead_lettered_and_retried_once_fixed,
    trimming_keeps_every_entry_a_group_still_needs,
    nothing_is_lost_when_a_consumer_restarts,
);
