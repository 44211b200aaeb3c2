//! The consumer runtime: the loop around a [`Handler`].
//!
//! Each turn it first reclaims entries of its group that some consumer (itself included) left
//! pending longer than their backoff — `retry_base × 2^(deliveries − 1)`, at most
//! `retry_max`, so the idle time is the retry delay and it grows with each delivery — then reads
//! new entries. Handled entries are acknowledged together once the turn's batch is through
//! (a crash before that delivers them again, and their inboxes skip them). A failed one stays pending and comes back
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
//!
//! A group that is gone (Redis restarted empty answers `NOGROUP`) is created again at once,
//! from the beginning of what the stream holds now; the relays publish again what the bus lost
//! ([`relay::recover`](crate::relay::recover)) and the inbox skips what was handled already.
//! While the bus fails the loop waits at most a second between tries, so events flow again
//! within a second or two of its return. [`ConsumerHealth`] tells whether the consumer is
//! consuming, for readiness and the `events_consumer_up` gauge.
//!
//! With a [`store`](ConsumerConfig::store) (its service's database), the group's dead letters
//! and discard log are kept there too, and what the bus loses of them is put back: see
//! [`dead`](crate::dead).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use medcov_store::{Database, StoreError, Tx};

use crate::dead::Keeper;
use crate::{Bus, BusResult, Delivery, Envelope, Start};

/// What a consumer does with one event. `Err` is retried later; its text lands in the dead
/// letter when retries run out (no patient data in it: it is logged).
///
/// A handler whose effects are writes to its service's database can also handle events inside
/// a transaction the consumer shares among the events of one read ([`Handler::database`],
/// [`Handler::batches`], [`Handler::handle_in`]): a run of such events then costs one turn at
/// the writer and one commit instead of one each. Each event of the run is its own part of the
/// transaction (a savepoint): one that fails is undone alone and retried, the others are
/// committed; the inbox dedupes as it does one event at a time.
pub trait Handler: Send + Sync {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>>;

    /// The database [`Handler::handle_in`] writes to; `None` (the default): each event is
    /// handled on its own, with [`Handler::handle`].
    fn database(&self) -> Option<&Database> {
        None
    }

    /// Whether this handler does nothing with `envelope` (an event of its stream it has no use
    /// for): it is then acknowledged without a call, and does not end a run of events handled
    /// together. The default: no.
    fn ignores(&self, envelope: &Envelope) -> bool {
        let _ = envelope;
        false
    }

    /// Whether `envelope` can be handled with [`Handler::handle_in`] (the default: no).
    fn batches(&self, envelope: &Envelope) -> bool {
        let _ = envelope;
        false
    }

    /// Handles `envelope` inside `tx`, a write transaction on [`Handler::database`] that other
    /// events share: the inbox record and the effect are written in `tx`, which the consumer
    /// commits; nothing is committed or done elsewhere that the transaction's rollback would
    /// leave behind, and no transaction of its own is begun on that database (on SQLite it
    /// would wait for `tx`'s lock). What must follow only the commit (an in-memory count, a log
    /// line that says it is done) is returned as an [`AfterCommit`]: the consumer runs it once
    /// the event's part is committed, and drops it when the part is undone or the run is
    /// handled again. Reads on the pool do not see what `tx` wrote: read in `tx` what an
    /// earlier event of the batch may have changed. Called only for events
    /// [`Handler::batches`] accepts; the default handles the event on its own.
    fn handle_in<'a>(&'a self, tx: &'a mut Tx, envelope: &'a Envelope) -> BoxFuture<'a, Result<AfterCommit, String>> {
        let _ = tx;
        Box::pin(async move { self.handle(envelope).await.map(|()| AfterCommit::nothing()) })
    }

    /// Whether `envelope` is of a kind this handler takes set-based: a stretch of such events
    /// in a run goes to [`Handler::handle_together_in`] at once (the default: no).
    fn handles_together(&self, envelope: &Envelope) -> bool {
        let _ = envelope;
        false
    }

    /// Handles a stretch of consecutive events [`Handler::handles_together`] accepts inside
    /// `tx`, at once (one statement for all the inbox records, say), as the same events one
    /// at a time would; what follows each commit, in the stretch's order. Each event comes with
    /// its `process` span. The default calls [`Handler::handle_in`] for each in turn.
    fn handle_together_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        stretch: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(one_by_one(self, tx, stretch))
    }

    /// Handles a run of events [`Handler::batches`] accepts inside `tx`, all of them or none:
    /// on an error the consumer rolls `tx` back and handles each event again in a part of its
    /// own ([`Handler::handle_in`]), so that only the failing one is retried. Each event comes
    /// with its `process` span, to enter while its part is handled. What follows each commit
    /// is returned in the run's order. Each stretch of events [`Handler::handles_together`]
    /// accepts goes to [`Handler::handle_together_in`] at once, the others to
    /// [`Handler::handle_in`] one by one, in the run's order.
    fn handle_all_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        run: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(async move {
            let mut after = Vec::with_capacity(run.len());
            for stretch in run.chunk_by(|(a, _), (b, _)| self.handles_together(a) == self.handles_together(b)) {
                if self.handles_together(stretch[0].0) {
                    after.extend(self.handle_together_in(tx, stretch).await?);
                } else {
                    after.extend(one_by_one(self, tx, stretch).await?);
                }
            }
            Ok(after)
        })
    }
}

/// [`Handler::handle_in`] for each event of `run` in turn, in its span.
async fn one_by_one<H: Handler + ?Sized>(
    handler: &H,
    tx: &mut Tx,
    run: &[(&Envelope, &tracing::Span)],
) -> Result<Vec<AfterCommit>, String> {
    use tracing::Instrument;
    let mut after = Vec::with_capacity(run.len());
    for (envelope, span) in run {
        after.push(handler.handle_in(tx, envelope).instrument((*span).clone()).await?);
    }
    Ok(after)
}

/// What a [`Handler::handle_in`] leaves to do once its event's writes are committed, and only
/// then: never for a part rolled back, once for a part committed however often the run was
/// tried.
#[must_use]
pub struct AfterCommit(Option<Box<dyn FnOnce() + Send>>);

impl AfterCommit {
    pub fn nothing() -> Self {
        Self(None)
    }

    pub fn then(work: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(work)))
    }

    /// Runs each event's work in its event's span, so what it logs carries the event's trace.
    fn run_all(after: Vec<(AfterCommit, &tracing::Span)>) {
        for (AfterCommit(work), span) in after {
            if let Some(work) = work {
                span.in_scope(work);
            }
        }
    }
}

impl std::fmt::Debug for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "AfterCommit(work)" } else { "AfterCommit(nothing)" })
    }
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
    /// Where the group's dead letters and discard log are kept so that the bus cannot lose
    /// them: the consuming service's database ([`dead`](crate::dead)). `None`: on the bus only.
    pub store: Option<medcov_store::Database>,
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
            store: None,
        }
    }

    /// How long an entry delivered `deliveries` times waits before it is delivered again.
    pub fn backoff(&self, deliveries: u64) -> Duration {
        let doublings = deliveries.saturating_sub(1).min(20) as u32;
        self.retry_base.saturating_mul(2u32.saturating_pow(doublings)).min(self.retry_max)
    }
}

/// Where a consumer counts what it does (the service's registry; no-ops by default), and says
/// whether it is consuming.
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub handled: metrics::Counter,
    pub retried: metrics::Counter,
    pub dead: metrics::Counter,
    /// 1 while the consumer is consuming (its last turn on the bus succeeded), 0 while it fails.
    pub up: metrics::Gauge,
    pub health: Arc<ConsumerHealth>,
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        ConsumerMetrics {
            handled: metrics::Counter::noop(),
            retried: metrics::Counter::noop(),
            dead: metrics::Counter::noop(),
            up: metrics::Gauge::noop(),
            health: Arc::default(),
        }
    }
}

/// Whether a consumer is consuming: since when its turns fail, and why.
#[derive(Debug, Default)]
pub struct ConsumerHealth {
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    failing_since: Option<Instant>,
    last_error: Option<String>,
}

impl ConsumerHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ok(&self, counters: &ConsumerMetrics) {
        let mut state = self.lock();
        state.failing_since = None;
        state.last_error = None;
        counters.up.set(1.0);
    }

    fn failed(&self, counters: &ConsumerMetrics, error: &str) {
        let mut state = self.lock();
        state.failing_since.get_or_insert_with(Instant::now);
        state.last_error = Some(error.to_owned());
        counters.up.set(0.0);
    }

    /// `None` while consuming (or not started yet); otherwise how long its group could not be
    /// created or its turns have failed, and the last error.
    pub fn not_consuming(&self) -> Option<(Duration, String)> {
        let state = self.lock();
        state.failing_since.map(|since| (since.elapsed(), state.last_error.clone().unwrap_or_default()))
    }
}

/// The longest pause between two tries while the bus fails.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// What one turn did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    pub handled: usize,
    pub failed: usize,
    pub dead: usize,
}

/// What a turn works with besides the bus and the handler.
struct Context<'a> {
    config: &'a ConsumerConfig,
    counters: &'a ConsumerMetrics,
    /// The kept dead letters, with a store.
    keeper: &'a mut Option<Keeper>,
}

/// Handles `deliveries` in order and acknowledges those handled in one call at the end (also
/// when a later one's dead-lettering fails). Runs of two or more events the handler can handle
/// in a shared transaction ([`Handler::handle_in`]) go through [`batch`].
async fn process_all(
    bus: &dyn Bus,
    handler: &dyn Handler,
    context: &mut Context<'_>,
    deliveries: Vec<Delivery>,
    turn: &mut Turn,
) -> BusResult<()> {
    let mut done = Vec::with_capacity(deliveries.len());
    let mut outcome = Ok(());
    let mut rest = deliveries.as_slice();
    while !rest.is_empty() && outcome.is_ok() {
        let together = match handler.database() {
            Some(_) => rest.iter().take_while(|d| handler.ignores(&d.envelope) || handler.batches(&d.envelope)).count(),
            None => 0,
        };
        let (now, later) = rest.split_at(together.max(1));
        let handled = now.iter().filter(|d| !handler.ignores(&d.envelope)).count();
        outcome = match handler.database() {
            Some(db) if handled >= 2 => batch(bus, handler, context, db, now, turn, &mut done).await,
            _ => {
                let mut outcome = Ok(());
                for delivery in now {
                    outcome = process(bus, handler, context, delivery, turn, &mut done).await;
                    if outcome.is_err() {
                        break;
                    }
                }
                outcome
            }
        };
        rest = later;
    }
    if !done.is_empty() {
        bus.ack(&context.config.stream, &context.config.group, &done).await?;
    }
    outcome
}

/// Handles one delivery on its own (the handler's own transactions).
async fn process(
    bus: &dyn Bus,
    handler: &dyn Handler,
    context: &mut Context<'_>,
    delivery: &Delivery,
    turn: &mut Turn,
    done: &mut Vec<String>,
) -> BusResult<()> {
    use tracing::Instrument;
    let span =
        crate::trace::process_span(&delivery.envelope, &context.config.group, bus.backend(), delivery.deliveries);
    let outcome = if handler.ignores(&delivery.envelope) {
        Ok(())
    } else {
        handler.handle(&delivery.envelope).instrument(span.clone()).await
    };
    settle(bus, context, delivery, outcome, turn, done, &span).await
}

/// Handles a run of deliveries in one write transaction of the handler's database (with a
/// savepoint around each once one of them fails, see [`in_one_transaction`]): a failing
/// event's writes are undone alone, and it is retried (or dead-lettered) like any failure
/// while the others are committed and acknowledged. Should the transaction itself fail (begun, a savepoint, the
/// commit), nothing of it is kept and each event of the run is handled on its own.
async fn batch(
    bus: &dyn Bus,
    handler: &dyn Handler,
    context: &mut Context<'_>,
    db: &Database,
    run: &[Delivery],
    turn: &mut Turn,
    done: &mut Vec<String>,
) -> BusResult<()> {
    let config = context.config;
    let spans: Vec<tracing::Span> = run
        .iter()
        .map(|d| crate::trace::process_span(&d.envelope, &config.group, bus.backend(), d.deliveries))
        .collect();
    match in_one_transaction(handler, db, run, &spans).await {
        Ok(outcomes) => {
            for ((delivery, outcome), span) in run.iter().zip(outcomes).zip(&spans) {
                settle(bus, context, delivery, outcome, turn, done, span).await?;
            }
        }
        Err(error) => {
            tracing::warn!(stream = %config.stream, group = %config.group, events = run.len(), %error,
                "a batch's transaction failed; its events are handled one by one");
            for delivery in run {
                process(bus, handler, context, delivery, turn, done).await?;
            }
        }
    }
    Ok(())
}

/// The outcome of each event of `run`, handled in one transaction, once it is committed.
/// The run is handled first without savepoints: two round trips fewer per event, and no
/// subtransaction on PostgreSQL. Should an event fail, that attempt is rolled back whole and
/// the run handled again with a savepoint around each event ([`Tx::begin_part`]), so that the
/// failing one is undone alone. A handler's `handle_in` writes only in the transaction, so the
/// attempt rolled back leaves nothing behind.
async fn in_one_transaction(
    handler: &dyn Handler,
    db: &Database,
    run: &[Delivery],
    spans: &[tracing::Span],
) -> Result<Vec<Result<(), String>>, StoreError> {
    match all_or_nothing(handler, db, run, spans).await? {
        Some(outcomes) => Ok(outcomes),
        None => in_parts(handler, db, run, spans).await,
    }
}

/// The run handled in one transaction without savepoints ([`Handler::handle_all_in`]): `None`
/// (and nothing written) when one event fails.
async fn all_or_nothing(
    handler: &dyn Handler,
    db: &Database,
    run: &[Delivery],
    spans: &[tracing::Span],
) -> Result<Option<Vec<Result<(), String>>>, StoreError> {
    let handled: Vec<(&Envelope, &tracing::Span)> = run
        .iter()
        .zip(spans)
        .filter(|(delivery, _)| !handler.ignores(&delivery.envelope))
        .map(|(delivery, span)| (&delivery.envelope, span))
        .collect();
    let mut tx = db.begin_write().await?;
    let after = match handler.handle_all_in(&mut tx, &handled).await {
        Ok(after) if after.len() == handled.len() => after,
        _ => {
            tx.rollback().await?;
            return Ok(None);
        }
    };
    tx.commit().await?;
    AfterCommit::run_all(after.into_iter().zip(handled.iter().map(|(_, span)| *span)).collect());
    Ok(Some(run.iter().map(|_| Ok(())).collect()))
}

/// The run handled in one transaction with each event between a savepoint and its release:
/// a failing event's writes are undone alone.
async fn in_parts(
    handler: &dyn Handler,
    db: &Database,
    run: &[Delivery],
    spans: &[tracing::Span],
) -> Result<Vec<Result<(), String>>, StoreError> {
    use tracing::Instrument;
    let mut tx = db.begin_write().await?;
    let mut outcomes = Vec::with_capacity(run.len());
    let mut after = Vec::with_capacity(run.len());
    for (delivery, span) in run.iter().zip(spans) {
        if handler.ignores(&delivery.envelope) {
            outcomes.push(Ok(()));
            continue;
        }
        tx.begin_part().await?;
        match handler.handle_in(&mut tx, &delivery.envelope).instrument(span.clone()).await {
            Ok(work) => {
                tx.release_part().await?;
                after.push((work, span));
                outcomes.push(Ok(()));
            }
            Err(error) => {
                tx.rollback_part().await?;
                outcomes.push(Err(error));
            }
        }
    }
    tx.commit().await?;
    AfterCommit::run_all(after);
    Ok(outcomes)
}

/// What follows a handler's outcome: handled (acknowledged with the others, `done`), retried
/// after its backoff, or dead-lettered on its last delivery.
async fn settle(
    bus: &dyn Bus,
    context: &mut Context<'_>,
    delivery: &Delivery,
    outcome: Result<(), String>,
    turn: &mut Turn,
    done: &mut Vec<String>,
    span: &tracing::Span,
) -> BusResult<()> {
    use tracing::Instrument;
    let (config, counters) = (context.config, context.counters);
    if let Err(error) = &outcome {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", error.as_str());
    }
    async move {
        match outcome {
            Ok(()) => {
                done.push(delivery.entry.clone());
                counters.handled.increment(1);
                turn.handled += 1;
                if let Some(keeper) = context.keeper.as_mut() {
                    keeper.handled(&config.stream, &config.group, delivery.envelope.id).await?;
                }
            }
            Err(error) if delivery.deliveries >= config.max_deliveries => {
                let dead = match context.keeper.as_mut() {
                    Some(keeper) => keeper.dead(bus, &config.stream, &config.group, delivery, &error).await?,
                    None => {
                        bus.dead_letter(&config.stream, &config.group, delivery, &error).await?;
                        true
                    }
                };
                if dead {
                    tracing::error!(stream = %config.stream, group = %config.group, event = %delivery.envelope.id,
                        event_type = %delivery.envelope.event_type, deliveries = delivery.deliveries, %error,
                        "an event failed on its last delivery and goes to the dead letters");
                    counters.dead.increment(1);
                    turn.dead += 1;
                } else {
                    tracing::warn!(stream = %config.stream, group = %config.group, event = %delivery.envelope.id,
                        event_type = %delivery.envelope.event_type, deliveries = delivery.deliveries, %error,
                        "an event an operator discarded as a dead letter failed again on its last delivery; dropped");
                    turn.failed += 1;
                }
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
    .instrument(span.clone())
    .await
}

/// One turn: reclaim what waited out its backoff, then read and handle new entries (waiting up
/// to `block` for them). With a store, it first compares the kept dead letters with the bus's ([`dead`](crate::dead)).
pub async fn turn(bus: &dyn Bus, config: &ConsumerConfig, handler: &dyn Handler) -> BusResult<Turn> {
    let mut keeper = config.store.clone().map(Keeper::new);
    let counters = ConsumerMetrics::default();
    let mut context = Context { config, counters: &counters, keeper: &mut keeper };
    turn_counted(bus, handler, &mut context, &CancellationToken::new()).await
}

/// A turn whose wait for new entries ends when `shutdown` is cancelled; what it handles, it
/// finishes.
async fn turn_counted(
    bus: &dyn Bus,
    handler: &dyn Handler,
    context: &mut Context<'_>,
    shutdown: &CancellationToken,
) -> BusResult<Turn> {
    let config = context.config;
    if let Some(keeper) = context.keeper.as_mut() {
        keeper.reconcile(bus, &config.stream, &config.group).await?;
    }
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
        let claimed = bus.claim(&config.stream, &config.group, &config.consumer, min_idle, &due).await?;
        process_all(bus, handler, context, claimed, &mut turn).await?;
    }
    let block = if turn.handled + turn.failed + turn.dead > 0 { Duration::ZERO } else { config.block };
    let read = bus.read(&config.stream, &config.group, &config.consumer, config.batch, block);
    // The read first: a batch that arrived with the shutdown is handled, not left pending.
    let batch = tokio::select! {
        biased;
        batch = read => batch?,
        () = shutdown.cancelled() => return Ok(turn),
    };
    process_all(bus, handler, context, batch, &mut turn).await?;
    Ok(turn)
}

/// Runs a consumer until `shutdown`: creates its group, then takes turns. Bus errors (Redis
/// away, say) are logged once and retried after a pause of at most a second; they lose
/// nothing, since unacknowledged entries stay pending. A group found missing is created again.
pub async fn run(
    bus: Arc<dyn Bus>,
    config: ConsumerConfig,
    handler: Arc<dyn Handler>,
    counters: ConsumerMetrics,
    shutdown: CancellationToken,
) {
    let health = counters.health.clone();
    let mut keeper = config.store.clone().map(Keeper::new);
    let mut pause = Duration::from_millis(100);
    let mut failing = false;
    // Whether the group is known to exist (false at start, and after a NOGROUP).
    let mut grouped = false;
    while !shutdown.is_cancelled() {
        let step = if grouped {
            // A turn's handlers are never cut off: they finish and acknowledge what they
            // handled. Only its wait for new entries ends with the shutdown.
            let mut context = Context { config: &config, counters: &counters, keeper: &mut keeper };
            turn_counted(bus.as_ref(), handler.as_ref(), &mut context, &shutdown).await.map(|_| ())
        } else {
            bus.create_group(&config.stream, &config.group, config.start).await
        };
        match step {
            Ok(()) => {
                health.ok(&counters);
                if failing {
                    tracing::info!(stream = %config.stream, group = %config.group, "the consumer consumes again");
                    failing = false;
                }
                grouped = true;
                pause = Duration::from_millis(100);
                continue;
            }
            Err(error) if grouped && error.is_missing_group() => {
                // The bus lost the group (Redis restarted empty): create it again right away.
                tracing::warn!(stream = %config.stream, group = %config.group, %error,
                    "the consumer group is gone (the bus lost its data?); creating it again");
                health.failed(&counters, &error.to_string());
                grouped = false;
                continue;
            }
            Err(error) => {
                health.failed(&counters, &error.to_string());
                if !failing {
                    let what =
                        if grouped { "the bus failed; retrying" } else { "cannot create the consumer group yet" };
                    tracing::warn!(stream = %config.stream, group = %config.group, %error, "{what}");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
    tracing::info!(stream = %config.stream, group = %config.group, "consumer stopped");
}
