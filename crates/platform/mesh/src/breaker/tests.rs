//! Scripted outcome sequences on a hand-moved clock, checking state, rates and the calls
//! admitted at every step.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A call that succeeds at once.
    Ok,
    /// A call that fails at once.
    Fail,
    /// A call that succeeds after this many milliseconds.
    Slow(u64),
    /// A call that must be refused.
    Refuses,
    /// Time passes, in milliseconds.
    Wait(u64),
    /// The state must be this.
    Is(State),
    /// This many calls are admitted and left running.
    Admitted(u32),
    /// The failure and slow-call rates must be these (-1: not enough calls yet).
    Rates(f64, f64),
}
use Step::*;

fn config(window: WindowKind, size: u32, minimum: u32) -> BreakerConfig {
    BreakerConfig {
        window,
        window_size: size,
        minimum_calls: minimum,
        failure_rate_percent: 50.0,
        slow_call_rate_percent: 50.0,
        slow_call_ms: 100,
        wait_ms: 1_000,
        wait_multiplier: 1.0,
        max_wait_ms: 60_000,
        half_open_calls: 3,
    }
}

fn run(name: &str, config: BreakerConfig, script: &[Step]) {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::new(config, clock.clone());
    for (i, step) in script.iter().enumerate() {
        let at = format!("{name}, step {i} ({step:?})");
        match *step {
            Ok | Fail | Slow(_) => {
                let (permit, _) = breaker.acquire();
                let permit = permit.unwrap_or_else(|r| panic!("{at}: refused in {:?}", r.state));
                if let Slow(ms) = *step {
                    clock.advance(Duration::from_millis(ms));
                }
                let outcome = if matches!(step, Fail) { Outcome::Failure } else { Outcome::Success };
                let _ = breaker.record(permit, outcome);
            }
            Admitted(n) => {
                for _ in 0..n {
                    assert!(breaker.acquire().0.is_ok(), "{at}: refused");
                }
            }
            Refuses => assert!(breaker.acquire().0.is_err(), "{at}: admitted"),
            Wait(ms) => clock.advance(Duration::from_millis(ms)),
            Is(state) => assert_eq!(breaker.state(), state, "{at}"),
            Rates(failure, slow) => {
                let snapshot = breaker.snapshot();
                assert_eq!((snapshot.failure_rate, snapshot.slow_call_rate), (failure, slow), "{at}: {snapshot:?}");
            }
        }
    }
}

#[test]
fn scripted_sequences() {
    use WindowKind::{Count, Time};
    let cases: Vec<(&str, BreakerConfig, Vec<Step>)> = vec![
        (
            "window 5, 3 failures: 60% opens",
            config(Count, 5, 5),
            vec![Ok, Fail, Ok, Fail, Is(State::Closed), Rates(-1.0, -1.0), Fail, Is(State::Open), Refuses, Refuses],
        ),
        (
            "window 5, 2 failures of 5: 40% stays closed",
            config(Count, 5, 5),
            vec![Fail, Ok, Fail, Ok, Ok, Is(State::Closed), Rates(40.0, 0.0)],
        ),
        (
            "the window slides: old failures leave it",
            config(Count, 5, 5),
            vec![Fail, Fail, Ok, Ok, Ok, Rates(40.0, 0.0), Ok, Ok, Rates(0.0, 0.0), Fail, Fail, Is(State::Closed)],
        ),
        (
            "below the minimum number of calls, even 100% does not open",
            config(Count, 10, 5),
            vec![Fail, Fail, Fail, Fail, Is(State::Closed), Rates(-1.0, -1.0), Fail, Is(State::Open)],
        ),
        (
            "open refuses until the wait is over, then admits exactly the half-open calls",
            config(Count, 5, 5),
            vec![
                Fail,
                Fail,
                Fail,
                Fail,
                Fail,
                Is(State::Open),
                Wait(999),
                Refuses,
                Wait(1),
                Is(State::HalfOpen),
                Ok,
                Ok,
                Is(State::HalfOpen),
                Ok,
                Is(State::Closed),
                Rates(-1.0, -1.0),
                Ok,
            ],
        ),
        (
            "half-open admits N trial calls and refuses the next",
            config(Count, 5, 5),
            vec![Fail, Fail, Fail, Fail, Fail, Wait(1_000), Step::Admitted(3), Refuses, Is(State::HalfOpen)],
        ),
        (
            "failing trial calls reopen it",
            config(Count, 5, 5),
            vec![Fail, Fail, Fail, Fail, Fail, Wait(1_000), Ok, Fail, Fail, Is(State::Open), Refuses, Wait(1_000), Ok],
        ),
        (
            "slow calls open it on the slow-call rate",
            config(Count, 5, 5),
            vec![Slow(100), Ok, Slow(150), Ok, Is(State::Closed), Slow(99), Is(State::Closed), Rates(0.0, 40.0)],
        ),
        (
            "three slow calls of five: 60% slow opens",
            config(Count, 5, 5),
            vec![Slow(100), Ok, Slow(100), Ok, Slow(500), Is(State::Open)],
        ),
        (
            "time window: failures older than the window no longer count",
            config(Time, 10, 5),
            vec![Fail, Fail, Fail, Fail, Wait(10_000), Fail, Ok, Ok, Ok, Ok, Is(State::Closed), Rates(20.0, 0.0)],
        ),
        (
            "time window: failures within the window add up",
            config(Time, 10, 5),
            vec![Fail, Fail, Wait(9_000), Fail, Ok, Is(State::Closed), Fail, Is(State::Open)],
        ),
    ];
    for (name, config, script) in cases {
        run(name, config, &script);
    }
}

#[test]
fn the_wait_grows_with_each_reopening_up_to_the_maximum() {
    let clock = ManualClock::new();
    let config = BreakerConfig { wait_multiplier: 2.0, max_wait_ms: 3_000, ..config(WindowKind::Count, 2, 2) };
    let breaker = CircuitBreaker::new(config, clock.clone());
    let fail = |b: &CircuitBreaker| {
        let permit = b.acquire().0.expect("admitted");
        b.record(permit, Outcome::Failure)
    };
    fail(&breaker);
    fail(&breaker);
    let mut waits = Vec::new();
    for _ in 0..4 {
        waits.push(breaker.snapshot().open_for_ms);
        clock.advance(Duration::from_millis(waits[waits.len() - 1]));
        // Three failing trials reopen it.
        for _ in 0..3 {
            fail(&breaker);
        }
    }
    assert_eq!(waits, [1_000, 2_000, 3_000, 3_000]);
    // Closing resets the growth.
    clock.advance(Duration::from_millis(3_000));
    for _ in 0..3 {
        let permit = breaker.acquire().0.expect("trial");
        breaker.record(permit, Outcome::Success);
    }
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.snapshot().open_for_ms, 1_000);
}

#[test]
fn operators_force_it_open_disable_it_and_reset_it() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::new(config(WindowKind::Count, 2, 2), clock.clone());
    assert_eq!(breaker.force_open(), Transition { from: State::Closed, to: State::ForcedOpen });
    clock.advance(Duration::from_secs(3_600));
    let (refused, _) = breaker.acquire();
    assert_eq!(refused.unwrap_err().state, State::ForcedOpen, "forced open never half-opens by itself");

    breaker.disable();
    for _ in 0..50 {
        let permit = breaker.acquire().0.expect("a disabled breaker admits everything");
        assert_eq!(breaker.record(permit, Outcome::Failure), None);
    }
    assert_eq!(breaker.state(), State::Disabled);

    assert_eq!(breaker.reset().to, State::Closed);
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.transitions), (0, 3));
}

#[test]
fn an_outcome_from_before_a_transition_is_ignored() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::new(config(WindowKind::Count, 2, 2), clock.clone());
    let (early, _) = breaker.acquire();
    let early = early.expect("closed admits");
    for _ in 0..2 {
        let permit = breaker.acquire().0.expect("closed admits");
        breaker.record(permit, Outcome::Failure);
    }
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    let trial = breaker.acquire().0.expect("half-open admits");
    // The call admitted while closed finishes now: it is not one of the trials.
    assert_eq!(breaker.record(early, Outcome::Success), None);
    assert_eq!(breaker.snapshot().calls, 0);
    breaker.record(trial, Outcome::Success);
    assert_eq!(breaker.snapshot().calls, 1);
}

#[test]
fn a_refusal_says_when_to_come_back() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::new(config(WindowKind::Count, 1, 1), clock.clone());
    let permit = breaker.acquire().0.expect("admitted");
    let transition = breaker.record(permit, Outcome::Failure);
    assert_eq!(transition, Some(Transition { from: State::Closed, to: State::Open }));
    clock.advance(Duration::from_millis(400));
    let refused = breaker.acquire().0.unwrap_err();
    assert_eq!(refused, Refused { state: State::Open, retry_after: Duration::from_millis(600) });
}

#[test]
fn invalid_settings_are_named() {
    let bad = BreakerConfig {
        window_size: 0,
        failure_rate_percent: 0.0,
        slow_call_rate_percent: 120.0,
        wait_multiplier: 0.5,
        max_wait_ms: 10,
        half_open_calls: 0,
        ..BreakerConfig::default()
    };
    let fields: Vec<&str> = bad.problems().into_iter().map(|(field, _)| field).collect();
    assert_eq!(
        fields,
        [
            "window_size",
            "minimum_calls",
            "failure_rate_percent",
            "slow_call_rate_percent",
            "wait_multiplier",
            "max_wait_ms",
            "half_open_calls"
        ]
    );
    assert!(BreakerConfig::default().problems().is_empty());
}

#[test]
fn a_trial_call_abandoned_midway_frees_its_slot() {
    let clock = ManualClock::new();
    let breaker = Arc::new(CircuitBreaker::new(config(WindowKind::Count, 2, 2), clock.clone()));
    for _ in 0..2 {
        let permit = breaker.acquire().0.expect("closed admits");
        breaker.record(permit, Outcome::Failure);
    }
    clock.advance(Duration::from_secs(1));
    // Three trial slots; one caller goes away without an outcome.
    let abandoned = Guard::new(breaker.clone(), breaker.acquire().0.expect("trial"));
    let trials: Vec<Guard> = (0..2).map(|_| Guard::new(breaker.clone(), breaker.acquire().0.expect("trial"))).collect();
    assert!(breaker.acquire().0.is_err(), "all three slots taken");
    drop(abandoned);
    let last = Guard::new(breaker.clone(), breaker.acquire().0.expect("the freed slot"));
    for guard in trials.into_iter().chain([last]) {
        guard.finish(Outcome::Success);
    }
    assert_eq!(breaker.state(), State::Closed, "the breaker did not wait forever");
}
