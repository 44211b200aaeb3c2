//! The consumer runtime: the loop around a [`Handler`].
//!
//! Each turn it first reclaims entries of its group that some consumer (itself included) left
//! pending longer than their backoff — `retry_base × 2^(deliveries − 1)`, at most
//! `retry_max`, so the idle time is the retry delay and it grows with each delivery — then reads
//! new entries. A handled entry is acknowledged. A failed one stays pending and comes back
//! after its backoff; once it has been delivered `max_deliveries` times and fails again it goes
//! to the group's dead letters with the error. A consumer that crashes leaves its entries
//! pending; another consumer (or itself after a restart) reclaims them.
//!
//! On shutdown the loop stops at once when it is waiting for new entries (the read is
//! dropped), and otherwise after the handler running finishes and acknowledges: a handler is
//! never cut off. Entries a dropped read had already delivered stay pending for this consumer
//! and are reclaimed after their backoff, like a crashed consumer's.
//!
//! Delivery is at least once: handlers must be idempotent, by recording each event in the
//! [`inbox`](crate::inbox) in the same transaction as their effect.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusResult, Delivery, Envelope, Start};

/// What a consumer does with one event. `Err` is retried later; its text lands in the dead
/// letter when retries run out (no patient data in it: it is logged).
pub trait Handler: Send + Sync {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>>;
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub stream: String,
    pub group: String,
    /// This consumer's name in the group (unique per process).
    pub consumer: String,
    /// Where the group starts when it is created.
    pub start: Start,
    /// Entries per read.
    pub batch: usize,
    /// How long a read waits for new entries.
    pub block: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Deliveries before an entry that keeps failing is dead-lettered.
    pub max_deliveries: u64,
}

impl ConsumerConfig {
    pub fn new(stream: &str, group: &str) -> ConsumerConfig {
        ConsumerConfig {
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: format!("{group}-{}", uuid::Uuid::now_v7().simple()),
            start: Start::Beginning,
            batch: 32,
            block: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_deliveries: 5,
        }
    }

    /// How long an entry delivered `deliveries` times waits before it is delivered again.
    pub fn backoff(&self, deliveries: u64) -> Duration {
        let doublings = deliveries.saturating_sub(1).min(20) as u32;
        self.retry_base.saturating_mul(2u32.saturating_pow(doublings)).min(self.retry_max)
    }
}

/// Where a consumer counts what it does (the service's registry; no-ops by default).
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub handled: metrics::Counter,
    pub retried: metrics::Counter,
    pub dead: metrics::Counter,
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        ConsumerMetrics {
            handled: metrics::Counter::noop(),
            retried: metrics::Counter::noop(),
            dead: metrics::Counter::noop(),
        }
    }
}

/// What one turn did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    pub handled: usize,
    pub failed: usize,
    pub dead: usize,
}

async fn process(
    bus: &dyn Bus,
    config: &ConsumerConfig,
    handler: &dyn Handler,
    counters: &ConsumerMetrics,
    delivery: Delivery,
    turn: &mut Turn,
) -> BusResult<()> {
    use tracing::Instrument;
    let span = crate::trace::process_span(&delivery.envelope, &config.group, bus.backend(), delivery.deliveries);
    process_in_span(bus, config, handler, counters, delivery, turn, &span).instrument(span.clone()).await
}

async fn process_in_span(
    bus: &dyn Bus,
    config: &ConsumerConfig,
    handler: &dyn Handler,
    counters: &ConsumerMetrics,
    delivery: Delivery,
    turn: &mut Turn,
    span: &tracing::Span,
) -> BusResult<()> {
    let outcome = handler.handle(&delivery.envelope).await;
    if let Err(error) = &outcome {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", error.as_str());
    }
    match outcome {
        Ok(()) => {
            bus.ack(&config.stream, &config.group, std::slice::from_ref(&delivery.entry)).await?;
            counters.handled.increment(1);
            turn.handled += 1;
        }
        Err(error) if delivery.deliveries >= config.max_deliveries => {
            tracing::error!(stream = %config.stream, group = %config.group, event = %delivery.envelope.id,
                event_type = %delivery.envelope.event_type, deliveries = delivery.deliveries, %error,
                "an event failed on its last delivery and goes to the dead letters");
            bus.dead_letter(&config.stream, &config.group, &delivery, &error).await?;
            counters.dead.increment(1);
            turn.dead += 1;
        }
        Err(error) => {
            tracing::warn!(stream = %config.stream, group = %config.group, event = %delivery.envelope.id,
                event_type = %delivery.envelope.event_type, deliveries = delivery.deliveries, %error,
                retry_in_ms = config.backoff(delivery.deliveries).as_millis() as u64, "an event failed and will be retried");
            counters.retried.increment(1);
            turn.failed += 1;
        }
    }
    Ok(())
}

/// One turn: reclaim what waited out its backoff, then read and handle new entries (waiting up
/// to `block` for them).
pub async fn turn(bus: &dyn Bus, config: &ConsumerConfig, handler: &dyn Handler) -> BusResult<Turn> {
    turn_counted(bus, config, handler, &ConsumerMetrics::default(), &CancellationToken::new()).await
}

/// A turn whose wait for new entries ends when `shutdown` is cancelled; what it handles, it
/// finishes.
async fn turn_counted(
    bus: &dyn Bus,
    config: &ConsumerConfig,
    handler: &dyn Handler,
    counters: &ConsumerMetrics,
    shutdown: &CancellationToken,
) -> BusResult<Turn> {
    let mut turn = Turn::default();
    let due: Vec<String> = bus
        .pending(&config.stream, &config.group, config.batch)
        .await?
        .into_iter()
        .filter(|p| p.idle >= config.backoff(p.deliveries))
        .map(|p| p.entry)
        .collect();
    if !due.is_empty() {
        let min_idle = config.retry_base.min(config.backoff(1));
        for delivery in bus.claim(&config.stream, &config.group, &config.consumer, min_idle, &due).await? {
            process(bus, config, handler, counters, delivery, &mut turn).await?;
        }
    }
    let block = if turn.handled + turn.failed + turn.dead > 0 { Duration::ZERO } else { config.block };
    let read = bus.read(&config.stream, &config.group, &config.consumer, config.batch, block);
    // The read first: a batch that arrived with the shutdown is handled, not left pending.
    let batch = tokio::select! {
        biased;
        batch = read => batch?,
        () = shutdown.cancelled() => return Ok(turn),
    };
    for delivery in batch {
        process(bus, config, handler, counters, delivery, &mut turn).await?;
    }
    Ok(turn)
}

/// Runs a consumer until `shutdown`: creates its group, then takes turns. Bus errors (Redis
/// away, say) are logged and retried after a pause; they lose nothing, since unacknowledged
/// entries stay pending.
pub async fn run(
    bus: Arc<dyn Bus>,
    config: ConsumerConfig,
    handler: Arc<dyn Handler>,
    counters: ConsumerMetrics,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match bus.create_group(&config.stream, &config.group, config.start).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(stream = %config.stream, group = %config.group, %error, "cannot create the consumer group yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
    pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        // A turn's handlers are never cut off: they finish and acknowledge what they handled.
        // Only its wait for new entries ends with the shutdown.
        let step = turn_counted(bus.as_ref(), &config, handler.as_ref(), &counters, &shutdown).await;
        match step {
            Ok(_) => pause = Duration::from_millis(100),
            Err(error) => {
                tracing::warn!(stream = %config.stream, group = %config.group, %error, "the bus failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(stream = %config.stream, group = %config.group, "consumer stopped");
}
