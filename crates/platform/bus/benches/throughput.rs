//! Bus throughput end to end: events published by two publishers and consumed by a consumer
//! group of two consumers (each event handled and acknowledged), on Redis Streams and on the
//! SQLite bus. Prints events per second and the publish-to-handled latency percentiles.
//!
//! `cargo bench -p medcov-bus --bench throughput` (Redis from the test settings). Figures go to
//! docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use medcov_bus::consumer::{self, ConsumerConfig, Handler};
use medcov_bus::{Bus, Envelope, RedisBus, SqliteBus, Start};
use medcov_testkit::{TestBackend, TestEnv};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use uuid::Uuid;

const EVENTS: usize = 20_000;
const PUBLISHERS: usize = 2;
const CONSUMERS: usize = 2;

struct Count {
    handled: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
}

impl Handler for Count {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let latency = OffsetDateTime::now_utc() - envelope.occurred_at;
            self.latencies.lock().await.push(latency.try_into().unwrap_or_default());
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

fn event(n: usize) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: "bench.thing_happened.v1".into(),
        aggregate_type: "thing".into(),
        aggregate_id: Uuid::now_v7(),
        tenant_id: Some(Uuid::now_v7()),
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: Some(format!("req-{n}")),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        payload: serde_json::json!({"n": n, "amount": {"minor": 150_000, "currency": "KES"}, "lines": [1, 2, 3]}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &str, bus: Arc<dyn Bus>) {
    bus.create_group("bench", "g", Start::End).await.expect("group");
    let count = Arc::new(Count { handled: AtomicUsize::new(0), latencies: Mutex::new(Vec::new()) });
    let stop = tokio_util::sync::CancellationToken::new();
    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let config = ConsumerConfig {
            consumer: format!("c{c}"),
            batch: 100,
            block: Duration::from_millis(100),
            ..ConsumerConfig::new("bench", "g")
        };
        consumers.push(tokio::spawn(consumer::run(
            bus.clone(),
            config,
            count.clone(),
            Default::default(),
            stop.clone(),
        )));
    }
    let started = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = bus.clone();
        publishers.push(tokio::spawn(async move {
            for n in (p..EVENTS).step_by(PUBLISHERS) {
                bus.publish(&event(n)).await.expect("published");
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let published = started.elapsed();
    while count.handled.load(Ordering::SeqCst) < EVENTS {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let consumed = started.elapsed();
    stop.cancel();
    for c in consumers {
        c.await.expect("consumer");
    }
    let mut latencies = count.latencies.lock().await.clone();
    latencies.sort();
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
        EVENTS,
        EVENTS as f64 / published.as_secs_f64(),
        EVENTS as f64 / consumed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!("| backend | events | published/s | consumed/s (end to end) | p50 latency | p99 latency | max |");
        println!("|---|---|---|---|---|---|---|");
        let env = TestEnv::new(TestBackend::Embedded).await;
        let sqlite = SqliteBus::open(&env.data_dir().join("bus.db")).await.expect("bus");
        run("sqlite", Arc::new(sqlite)).await;
        let env = TestEnv::new(TestBackend::Distributed).await;
        let url = env.config.redis.url.as_ref().expect("redis");
        let client = medcov_redis::RedisClient::open(url, env.config.redis.is_cluster()).expect("client");
        let connection = client.connection().expect("redis");
        run("redis", Arc::new(RedisBus::new(client, connection, &env.config.redis.key_prefix))).await;
    });
}
