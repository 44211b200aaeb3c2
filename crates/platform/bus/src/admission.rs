//! Admission control for sagas: MedCov does not start more sagas than its queues can carry
//! through before their steps' deadlines.
//!
//! A saga step that times out is compensated; a step that times out only because MedCov's own
//! queues (outbox, bus, consumers) are long would undo work that was accepted and would have
//! succeeded. So the orchestrator refuses new sagas while the ones in flight would take too
//! long: by Little's law, a new saga waits about `in flight ÷ rate at which sagas end`. While
//! that is over half a step's timeout, [`Admission::admit`] says no, and the request that would
//! start one is answered 503 with Retry-After before anything is written. A few sagas are
//! always admitted (`floor`), so an idle service is never refused.
//!
//! The orchestrator's ticker feeds [`Admission::observe`] with the sagas in flight and the
//! number that ever ended (from the saga table, shared by every instance); between two
//! observations each instance counts the sagas it admitted itself, and those it saw end
//! ([`Admission::ended`]).
//!
//! Between two observations the rate Little's law works with is the one last measured, which
//! can be far below what the flow carries now: until two observations have measured one (the
//! first second after start), or when a burst comes after a quiet spell whose rate was a
//! trickle. Rather than hold such a burst to that rate until the next observations catch up
//! (the first seconds of a burst refused while sagas end in milliseconds), admission also
//! starts slow, as TCP does: each saga seen to end here frees its place and opens one more, so
//! what is admitted doubles with each round of sagas that actually finish, and a stalled flow
//! opens nothing. The places opened this way are dropped at each observation (and at the
//! latest a quarter of the wait limit after they began to be counted), so they never add more
//! than the sagas that ended in that time: a new saga admitted through them waits about that
//! time, well within the limit, and once the observations have measured the rate, Little's law
//! is what bounds the flow.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sagas always admitted, whatever the measured rate.
pub const FLOOR: u64 = 16;

#[derive(Debug)]
pub struct Admission {
    /// The wait a new saga may expect, at most.
    limit: Duration,
    floor: u64,
    state: Mutex<State>,
    /// Sagas refused since start (`sagas_refused_total`).
    refused: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// In flight at the last observation, plus those admitted here since.
    in_flight: u64,
    /// Sagas ended per second (moving average); 0 until two observations have measured it.
    rate: f64,
    /// Places opened past the floor by sagas seen to end here since the last observation
    /// (slow start), and since when they are counted.
    opened: u64,
    opened_since: Option<Instant>,
    /// The last observation: when, and how many had ever ended.
    last: Option<(Instant, u64)>,
}

/// Refused: how long the sagas in flight are expected to take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturated {
    pub expected_wait: Duration,
}

impl Admission {
    /// For sagas whose shortest step timeout is `timeout`.
    pub fn new(timeout: Duration) -> Admission {
        Admission { limit: timeout / 2, floor: FLOOR, state: Mutex::default(), refused: Default::default() }
    }

    /// Sagas `in_flight` (running or compensating) and `ended` (completed or compensated,
    /// ever) as of `now`.
    pub fn observe(&self, in_flight: u64, ended: u64, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, before)) = state.last {
            let seconds = now.saturating_duration_since(at).as_secs_f64();
            // Nothing was in flight and nothing ended: no news of the rate. An idle flow is not
            // a slow one: the next burst is admitted at the rate last measured, not at the floor.
            let idle = state.in_flight == 0 && ended == before;
            if seconds > 0.0 && !idle {
                let recent = ended.saturating_sub(before) as f64 / seconds;
                // Weighted toward the recent past, so a burst's rate shows within a few ticks.
                state.rate = if state.rate > 0.0 { 0.5 * state.rate + 0.5 * recent } else { recent };
            }
        }
        state.last = Some((now, ended));
        state.in_flight = in_flight;
        state.opened = 0;
        state.opened_since = Some(now);
    }

    /// `n` sagas ended here (their last reply was handled and committed by this instance):
    /// their places are free at once, and each opens one more until the next observation
    /// (slow start). In a consumer's batch the end is counted once the batch commits
    /// (`consumer::AfterCommit`), so a batch tried again does not count it twice.
    pub fn ended(&self, n: u64) {
        self.ended_at(n, Instant::now());
    }

    /// [`Admission::ended`] as of `now`.
    pub fn ended_at(&self, n: u64, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.in_flight = state.in_flight.saturating_sub(n);
        // Observations may come seldom (the count is paced when it is slow): the places opened
        // never stand for more than a quarter of the wait limit's worth of ends.
        let since = *state.opened_since.get_or_insert(now);
        if now.saturating_duration_since(since) > self.limit / 4 {
            state.opened = 0;
            state.opened_since = Some(now);
        }
        state.opened = state.opened.saturating_add(n);
    }

    /// Admits one more saga, or says how saturated the flow is.
    pub fn admit(&self) -> Result<(), Saturated> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.in_flight < self.floor.saturating_add(state.opened) {
            state.in_flight += 1;
            return Ok(());
        }
        let expected_wait = if state.rate > 0.0 {
            Duration::from_secs_f64((state.in_flight as f64 / state.rate).min(86_400.0))
        } else {
            Duration::MAX
        };
        if expected_wait < self.limit {
            state.in_flight += 1;
            Ok(())
        } else {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Saturated { expected_wait })
        }
    }

    /// Sagas refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits until refused; how many were admitted.
    fn fill(admission: &Admission) -> u64 {
        let mut admitted = 0;
        while admission.admit().is_ok() {
            admitted += 1;
        }
        admitted
    }

    #[test]
    fn a_few_are_always_admitted_then_only_what_the_rate_carries_within_half_a_timeout() {
        let admission = Admission::new(Duration::from_secs(10));
        let t0 = Instant::now();
        // Idle, rate unknown: the floor.
        for _ in 0..FLOOR {
            assert_eq!(admission.admit(), Ok(()));
        }
        assert!(admission.admit().is_err(), "no rate known yet, and the floor is used up");
        // 16 in flight, 40 ended in the last second: a new one waits 0.4 s (< 5 s).
        admission.observe(16, 0, t0);
        admission.observe(16, 40, t0 + Duration::from_secs(1));
        let admitted = fill(&admission);
        // Up to 200 in flight (5 s × 40/s): 184 more.
        assert_eq!(admitted, 200 - 16);
        let refused = admission.admit().unwrap_err();
        assert!(refused.expected_wait >= Duration::from_secs(5), "{refused:?}");
        // The flow stalls (nothing ends): nothing more is admitted until it moves again.
        admission.observe(200, 40, t0 + Duration::from_secs(2));
        assert!(admission.admit().is_err());
        // Drained: admitted again.
        admission.observe(0, 240, t0 + Duration::from_secs(3));
        assert_eq!(admission.admit(), Ok(()));
    }

    #[test]
    fn before_a_rate_is_measured_each_saga_that_ends_opens_two_places() {
        let admission = Admission::new(Duration::from_secs(10));
        // Just started: one observation, no rate yet.
        let t0 = Instant::now();
        admission.observe(0, 0, t0);
        assert_eq!(fill(&admission), FLOOR);
        // Nothing ends (a stalled flow): nothing more is admitted.
        assert!(admission.admit().is_err());
        // Four end: each frees its place and opens one more.
        admission.ended(4);
        assert_eq!(fill(&admission), 8);
        // The whole round ends: the window doubles again (16 + 4 + 20 = 40 in flight).
        admission.ended(FLOOR + 4);
        assert_eq!(fill(&admission), 2 * (FLOOR + 4));
        // Once a rate is measured, Little's law decides, and ends no longer widen anything:
        // 40 in flight, 20 ended in the second: a new one waits 2 s (< 5 s), up to 100.
        admission.observe(40, 20, t0 + Duration::from_secs(1));
        assert_eq!(fill(&admission), 100 - 40);
        admission.ended(10);
        assert_eq!(fill(&admission), 10, "an end frees its own place only");
    }

    #[test]
    fn a_burst_after_a_trickle_grows_with_the_sagas_that_end_until_the_next_observation() {
        let admission = Admission::new(Duration::from_secs(10));
        let t0 = Instant::now();
        // A trickle measured: one saga a second, so Little's law alone allows 5 in flight.
        admission.observe(0, 0, t0);
        admission.observe(1, 1, t0 + Duration::from_secs(1));
        admission.observe(0, 2, t0 + Duration::from_secs(2));
        // A burst: the floor, then each round of sagas that end doubles what is admitted.
        let at = |ms: u64| t0 + Duration::from_secs(2) + Duration::from_millis(ms);
        assert_eq!(fill(&admission), FLOOR);
        admission.ended_at(FLOOR, at(50));
        assert_eq!(fill(&admission), 2 * FLOOR);
        admission.ended_at(2 * FLOOR, at(100));
        assert_eq!(fill(&admission), 4 * FLOOR);
        // Nothing ends: nothing more.
        assert!(admission.admit().is_err());
        // The next observation measures the rate (49 ended in the second, after one a second:
        // 25/s): Little's law decides again (5 s × 25/s = 125 in flight), the places opened are
        // dropped, and ends no longer widen anything past Little's law.
        admission.observe(4 * FLOOR, 51, t0 + Duration::from_secs(3));
        assert_eq!(fill(&admission), 125 - 4 * FLOOR);
        admission.ended_at(25, t0 + Duration::from_millis(3_100));
        assert_eq!(fill(&admission), 25, "an end frees its own place only");
    }

    #[test]
    fn places_opened_stand_for_at_most_a_quarter_of_the_limits_ends() {
        let admission = Admission::new(Duration::from_secs(10));
        let t0 = Instant::now();
        admission.observe(0, 0, t0);
        assert_eq!(fill(&admission), FLOOR);
        admission.ended_at(FLOOR, t0 + Duration::from_millis(50));
        assert_eq!(fill(&admission), 2 * FLOOR);
        // No observation comes (a slow count is taken seldom): ends 2 s later (past a quarter
        // of the 5 s limit) open only as many as they are, the older opened places dropped.
        admission.ended_at(2 * FLOOR, t0 + Duration::from_secs(2));
        assert_eq!(fill(&admission), FLOOR + 2 * FLOOR, "older opened places are dropped");
    }

    #[test]
    fn an_idle_spell_keeps_the_rate_last_measured() {
        let admission = Admission::new(Duration::from_secs(10));
        let t0 = Instant::now();
        admission.observe(0, 0, t0);
        admission.observe(20, 100, t0 + Duration::from_secs(1));
        // Drained, then a minute with nothing in flight and nothing ending.
        admission.observe(0, 120, t0 + Duration::from_secs(2));
        for second in 3..60 {
            admission.observe(0, 120, t0 + Duration::from_secs(second));
        }
        // The next burst is admitted far past the floor: 5 s at about 60 a second.
        let admitted = fill(&admission);
        assert!(admitted > 4 * FLOOR, "{admitted} admitted after an idle spell");
        // A stall (in flight, nothing ending) still stops admission.
        admission.observe(admitted, 120, t0 + Duration::from_secs(61));
        admission.observe(admitted, 120, t0 + Duration::from_secs(62));
        admission.observe(admitted, 120, t0 + Duration::from_secs(63));
        admission.observe(admitted, 120, t0 + Duration::from_secs(64));
        admission.observe(admitted, 120, t0 + Duration::from_secs(65));
        admission.observe(admitted, 120, t0 + Duration::from_secs(66));
        assert!(admission.admit().is_err(), "a stalled flow admits nothing more");
    }
}
