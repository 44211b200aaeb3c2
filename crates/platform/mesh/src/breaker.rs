//! A circuit breaker with the semantics of Resilience4j.
//!
//! - **Closed**: every call goes through and its outcome is recorded in a sliding window, of
//!   the last `window_size` calls (count-based) or of the calls of the last `window_size`
//!   seconds (time-based, in one-second buckets). Once the window holds at least
//!   `minimum_calls`, a failure rate or a slow-call rate at or above its threshold opens the
//!   breaker.
//! - **Open**: every call is refused at once, without reaching the upstream, until the wait
//!   is over. The wait grows by `wait_multiplier` each time the breaker opens again without
//!   having closed in between, up to `max_wait_ms`.
//! - **Half-open**: the first call after the wait moves it here; exactly `half_open_calls`
//!   trial calls are admitted, the rest refused. When they have all finished, their rates decide:
//!   at or above a threshold it opens again, below both it closes with an empty window.
//! - **Disabled** and **forced open**: set by an operator; every call passes (and nothing is
//!   recorded), or every call is refused. `reset` returns to closed.
//!
//! A call's outcome counts only in the state that admitted it: a slow call admitted while
//! closed that ends after the breaker opened does not decide the half-open trial.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The last `window_size` calls.
    Count,
    /// The calls of the last `window_size` seconds.
    Time,
}

/// How a breaker decides; one block of the mesh policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    pub window: WindowKind,
    /// Calls (count window) or seconds (time window).
    pub window_size: u32,
    /// Calls the window must hold before rates may open the breaker.
    pub minimum_calls: u32,
    /// Failure rate, in percent, that opens the breaker.
    pub failure_rate_percent: f64,
    /// Share of slow calls, in percent, that opens the breaker (100: slow calls alone never do
    /// unless every call is slow).
    pub slow_call_rate_percent: f64,
    /// A call taking at least this long is slow.
    pub slow_call_ms: u64,
    /// How long the breaker stays open before it lets trial calls through.
    pub wait_ms: u64,
    /// Factor applied to the wait each time the breaker reopens without having closed (1: fixed).
    pub wait_multiplier: f64,
    /// The longest wait.
    pub max_wait_ms: u64,
    /// Trial calls admitted in half-open state.
    pub half_open_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowKind::Count,
            window_size: 20,
            minimum_calls: 10,
            failure_rate_percent: 50.0,
            slow_call_rate_percent: 100.0,
            slow_call_ms: 5_000,
            wait_ms: 10_000,
            wait_multiplier: 1.0,
            max_wait_ms: 60_000,
            half_open_calls: 3,
        }
    }
}

impl BreakerConfig {
    /// Field errors, as (field, reason), named relative to the block.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.window_size == 0 {
            out.push(("window_size", "must be at least 1".to_owned()));
        }
        if self.minimum_calls == 0 {
            out.push(("minimum_calls", "must be at least 1".to_owned()));
        }
        if self.window == WindowKind::Count && self.minimum_calls > self.window_size {
            out.push((
                "minimum_calls",
                format!("must not exceed window_size ({}): the window never holds more", self.window_size),
            ));
        }
        for (field, rate) in [
            ("failure_rate_percent", self.failure_rate_percent),
            ("slow_call_rate_percent", self.slow_call_rate_percent),
        ] {
            if !(rate > 0.0 && rate <= 100.0) {
                out.push((field, format!("must be more than 0 and at most 100, not {rate}")));
            }
        }
        if self.slow_call_ms == 0 {
            out.push(("slow_call_ms", "must be at least 1".to_owned()));
        }
        if self.wait_ms == 0 {
            out.push(("wait_ms", "must be at least 1".to_owned()));
        }
        if !(self.wait_multiplier >= 1.0 && self.wait_multiplier <= 100.0) {
            out.push(("wait_multiplier", format!("must be between 1 and 100, not {}", self.wait_multiplier)));
        }
        if self.max_wait_ms < self.wait_ms {
            out.push(("max_wait_ms", format!("must be at least wait_ms ({})", self.wait_ms)));
        }
        if self.half_open_calls == 0 {
            out.push(("half_open_calls", "must be at least 1".to_owned()));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
    Disabled,
    ForcedOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
        }
    }

    /// The value of the `mesh_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
            State::Disabled => 3.0,
            State::ForcedOpen => 4.0,
        }
    }
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A call admitted by the breaker; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the outcome of the call with CircuitBreaker::record"]
pub struct Permit {
    epoch: u64,
    started: Duration,
}

/// An admitted call that records its outcome exactly once: with [`Guard::finish`], or, when
/// dropped unfinished (the caller went away mid-call), by giving its permit back.
pub struct Guard {
    breaker: std::sync::Arc<CircuitBreaker>,
    permit: Option<Permit>,
}

impl Guard {
    pub fn new(breaker: std::sync::Arc<CircuitBreaker>, permit: Permit) -> Guard {
        Guard { breaker, permit: Some(permit) }
    }

    pub fn finish(mut self, outcome: Outcome) -> Option<Transition> {
        self.permit.take().and_then(|permit| self.breaker.record(permit, outcome))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }
}

/// A refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub state: State,
    /// When a call may be admitted again (zero when that is not known: half-open and full, or
    /// forced open).
    pub retry_after: Duration,
}

/// A state change, returned so the caller can log and count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

/// What the breaker looks like now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub state: State,
    /// Calls in the window (closed) or finished trial calls (half-open).
    pub calls: u32,
    pub failures: u32,
    pub slow_calls: u32,
    /// Percentages, or -1 while fewer than the minimum number of calls were recorded.
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    /// Time left before trial calls are let through, in milliseconds (open state).
    pub open_for_ms: u64,
    pub transitions: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
    }

    fn remove(&mut self, other: Tally) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    fn rates(&self) -> (f64, f64) {
        if self.calls == 0 {
            return (0.0, 0.0);
        }
        let calls = f64::from(self.calls);
        (f64::from(self.failures) * 100.0 / calls, f64::from(self.slow) * 100.0 / calls)
    }
}

/// The sliding window of the closed state.
#[derive(Debug)]
enum Window {
    /// Outcomes of the last calls, oldest first.
    Count { size: usize, calls: VecDeque<Tally>, total: Tally },
    /// One bucket per second, oldest first, keyed by the second.
    Time { seconds: u64, buckets: VecDeque<(u64, Tally)>, total: Tally },
}

impl Window {
    fn new(config: &BreakerConfig) -> Window {
        match config.window {
            WindowKind::Count => Window::Count {
                size: config.window_size as usize,
                calls: VecDeque::with_capacity(config.window_size as usize),
                total: Tally::default(),
            },
            WindowKind::Time => Window::Time {
                seconds: u64::from(config.window_size),
                buckets: VecDeque::new(),
                total: Tally::default(),
            },
        }
    }

    fn expire(&mut self, now: Duration) {
        if let Window::Time { seconds, buckets, total } = self {
            let second = now.as_secs();
            while let Some(&(at, tally)) = buckets.front() {
                if at + *seconds <= second {
                    total.remove(tally);
                    buckets.pop_front();
                } else {
                    break;
                }
            }
        }
    }

    fn add(&mut self, now: Duration, failed: bool, slow: bool) {
        self.expire(now);
        match self {
            Window::Count { size, calls, total } => {
                if calls.len() == *size
                    && let Some(oldest) = calls.pop_front()
                {
                    total.remove(oldest);
                }
                let mut one = Tally::default();
                one.add(failed, slow);
                calls.push_back(one);
                total.add(failed, slow);
            }
            Window::Time { buckets, total, .. } => {
                let second = now.as_secs();
                match buckets.back_mut() {
                    Some((at, tally)) if *at == second => tally.add(failed, slow),
                    _ => {
                        let mut tally = Tally::default();
                        tally.add(failed, slow);
                        buckets.push_back((second, tally));
                    }
                }
                total.add(failed, slow);
            }
        }
    }

    fn total(&mut self, now: Duration) -> Tally {
        self.expire(now);
        match self {
            Window::Count { total, .. } | Window::Time { total, .. } => *total,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed(Window),
    Open { until: Duration },
    HalfOpen { admitted: u32, finished: Tally },
    Disabled,
    ForcedOpen,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every transition: outcomes of calls admitted before it are ignored.
    epoch: u64,
    /// Opens since the breaker last closed, for the growing wait.
    reopenings: u32,
    transitions: u64,
}

/// One circuit breaker. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: SharedClock,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").field("config", &self.config).finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: SharedClock) -> CircuitBreaker {
        let phase = Phase::Closed(Window::new(&config));
        CircuitBreaker { config, clock, inner: Mutex::new(Inner { phase, epoch: 0, reopenings: 0, transitions: 0 }) }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks to make a call. A refusal comes back at once.
    pub fn acquire(&self) -> (Result<Permit, Refused>, Option<Transition>) {
        let now = self.clock.now();
        let mut inner = self.lock();
        let mut transition = None;
        if let Phase::Open { until } = inner.phase
            && now >= until
        {
            transition = Some(self.move_to(&mut inner, Phase::HalfOpen { admitted: 0, finished: Tally::default() }));
        }
        let epoch = inner.epoch;
        let permit = Permit { epoch, started: now };
        let result = match &mut inner.phase {
            Phase::Closed(_) | Phase::Disabled => Ok(permit),
            Phase::Open { until } => Err(Refused { state: State::Open, retry_after: until.saturating_sub(now) }),
            Phase::ForcedOpen => Err(Refused { state: State::ForcedOpen, retry_after: Duration::ZERO }),
            Phase::HalfOpen { admitted, .. } => {
                if *admitted < self.config.half_open_calls {
                    *admitted += 1;
                    Ok(permit)
                } else {
                    Err(Refused { state: State::HalfOpen, retry_after: Duration::ZERO })
                }
            }
        };
        (result, transition)
    }

    /// Records how an admitted call ended; its duration is measured from `acquire`.
    pub fn record(&self, permit: Permit, outcome: Outcome) -> Option<Transition> {
        let now = self.clock.now();
        let slow = now.saturating_sub(permit.started) >= Duration::from_millis(self.config.slow_call_ms);
        let failed = outcome == Outcome::Failure;
        let mut inner = self.lock();
        if permit.epoch != inner.epoch {
            return None;
        }
        match &mut inner.phase {
            Phase::Closed(window) => {
                window.add(now, failed, slow);
                let total = window.total(now);
                if total.calls >= self.config.minimum_calls && self.over_threshold(total) {
                    return Some(self.open(&mut inner, now));
                }
                None
            }
            Phase::HalfOpen { finished, .. } => {
                finished.add(failed, slow);
                let finished = *finished;
                if finished.calls < self.config.half_open_calls {
                    None
                } else if self.over_threshold(finished) {
                    Some(self.open(&mut inner, now))
                } else {
                    inner.reopenings = 0;
                    let window = Window::new(&self.config);
                    Some(self.move_to(&mut inner, Phase::Closed(window)))
                }
            }
            Phase::Open { .. } | Phase::Disabled | Phase::ForcedOpen => None,
        }
    }

    /// Gives back a permit whose call ended with no outcome (its caller went away): a half-open
    /// trial slot is freed for another call, so the breaker cannot wait forever for it.
    pub fn release(&self, permit: Permit) {
        let mut inner = self.lock();
        if permit.epoch != inner.epoch {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut inner.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }

    /// The operator's setting in force, if any (forced open or disabled).
    pub fn manual(&self) -> Option<State> {
        match self.lock().phase {
            Phase::ForcedOpen => Some(State::ForcedOpen),
            Phase::Disabled => Some(State::Disabled),
            _ => None,
        }
    }

    fn over_threshold(&self, tally: Tally) -> bool {
        let (failure, slow) = tally.rates();
        failure >= self.config.failure_rate_percent || slow >= self.config.slow_call_rate_percent
    }

    fn open(&self, inner: &mut Inner, now: Duration) -> Transition {
        let factor = self.config.wait_multiplier.powi(i32::try_from(inner.reopenings).unwrap_or(i32::MAX));
        let wait_ms = (self.config.wait_ms as f64 * factor).min(self.config.max_wait_ms as f64);
        inner.reopenings = inner.reopenings.saturating_add(1);
        self.move_to(inner, Phase::Open { until: now + Duration::from_millis(wait_ms as u64) })
    }

    fn move_to(&self, inner: &mut Inner, phase: Phase) -> Transition {
        let from = state_of(&inner.phase);
        inner.phase = phase;
        inner.epoch += 1;
        inner.transitions += 1;
        Transition { from, to: state_of(&inner.phase) }
    }

    /// An operator's choice: every call refused until `reset`.
    pub fn force_open(&self) -> Transition {
        let mut inner = self.lock();
        self.move_to(&mut inner, Phase::ForcedOpen)
    }

    /// An operator's choice: every call admitted, nothing recorded, until `reset`.
    pub fn disable(&self) -> Transition {
        let mut inner = self.lock();
        self.move_to(&mut inner, Phase::Disabled)
    }

    /// Back to closed with an empty window.
    pub fn reset(&self) -> Transition {
        let mut inner = self.lock();
        inner.reopenings = 0;
        let window = Window::new(&self.config);
        self.move_to(&mut inner, Phase::Closed(window))
    }

    pub fn state(&self) -> State {
        let now = self.clock.now();
        let inner = self.lock();
        match inner.phase {
            // Past the wait it admits trial calls: that is half-open in all but name.
            Phase::Open { until } if now >= until => State::HalfOpen,
            ref phase => state_of(phase),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.clock.now();
        let mut inner = self.lock();
        let transitions = inner.transitions;
        let (tally, minimum, open_for) = match &mut inner.phase {
            Phase::Closed(window) => (window.total(now), self.config.minimum_calls, Duration::ZERO),
            Phase::HalfOpen { finished, .. } => (*finished, self.config.half_open_calls, Duration::ZERO),
            Phase::Open { until } => (Tally::default(), u32::MAX, until.saturating_sub(now)),
            Phase::Disabled | Phase::ForcedOpen => (Tally::default(), u32::MAX, Duration::ZERO),
        };
        let (failure_rate, slow_call_rate) = if tally.calls >= minimum { tally.rates() } else { (-1.0, -1.0) };
        drop(inner);
        Snapshot {
            state: self.state(),
            calls: tally.calls,
            failures: tally.failures,
            slow_calls: tally.slow,
            failure_rate,
            slow_call_rate,
            open_for_ms: u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX),
            transitions,
        }
    }
}

fn state_of(phase: &Phase) -> State {
    match phase {
        Phase::Closed(_) => State::Closed,
        Phase::Open { .. } => State::Open,
        Phase::HalfOpen { .. } => State::HalfOpen,
        Phase::Disabled => State::Disabled,
        Phase::ForcedOpen => State::ForcedOpen,
    }
}

#[cfg(test)]
mod tests;
