//! The instances of one upstream, what is known of each, and the per-upstream and per-route
//! machinery calls go through (breakers, bulkheads, rate limits, retry budget).
//!
//! An instance is chosen among the *available* ones: healthy by the active checks and not
//! ejected. When none is available every instance is tried rather than none (a stale
//! verdict is likelier than a pool that is entirely dead).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tower::retry::budget::{Budget, TpsBudget};

use crate::balance::{Balancer, BalancerKind, Candidate};
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::clock::SharedClock;
use crate::policy::{OutlierPolicy, Policy, RetryPolicy};
use crate::registry::Instance;

#[derive(Debug, Default)]
struct Verdict {
    /// Active checks: healthy until proven otherwise.
    unhealthy: bool,
    /// Checks in a row with the same result (positive: passed, negative: failed).
    streak: i32,
    ejected_until: Option<Duration>,
    /// Ejections so far; forgiven after a quiet spell.
    ejections: u32,
    /// An active check failed during the current ejection: the instance was down, so passing
    /// checks afterwards mean it came back (restarted), and end the ejection.
    down_while_ejected: bool,
}

/// One instance and what the caller knows of it.
#[derive(Debug)]
pub struct Endpoint {
    pub instance: Instance,
    pending: AtomicU32,
    consecutive_failures: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    verdict: Mutex<Verdict>,
}

/// Whether an instance handled a call, as outlier ejection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// A 5xx, no connection, a reset or a timeout.
    Failed,
}

/// An instance's state, for the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    pub id: String,
    pub address: String,
    pub weight: u32,
    pub zone: String,
    pub version: String,
    pub healthy: bool,
    pub ejected_for_ms: u64,
    pub ejections: u32,
    pub pending: u32,
    pub consecutive_failures: u32,
    pub requests: u64,
    pub failures: u64,
}

impl Endpoint {
    fn new(instance: Instance) -> Endpoint {
        Endpoint {
            instance,
            pending: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            verdict: Mutex::new(Verdict::default()),
        }
    }

    fn verdict(&self) -> std::sync::MutexGuard<'_, Verdict> {
        self.verdict.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn available(&self, now: Duration) -> bool {
        let verdict = self.verdict();
        !verdict.unhealthy && verdict.ejected_until.is_none_or(|until| until <= now)
    }

    fn ejected(&self, now: Duration) -> bool {
        self.verdict().ejected_until.is_some_and(|until| until > now)
    }

    /// Counts a call in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn id(&self) -> &str {
        &self.instance.id
    }
}

/// A call in flight to an endpoint.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A token bucket refilled `per_second` times a second, holding at most a second's worth.
#[derive(Debug)]
pub struct RateLimit {
    per_second: u32,
    state: Mutex<(f64, Duration)>,
}

impl RateLimit {
    fn new(per_second: u32, now: Duration) -> RateLimit {
        RateLimit { per_second, state: Mutex::new((f64::from(per_second), now)) }
    }

    /// Takes a token, or says how long until one is free.
    pub fn take(&self, now: Duration) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rate = f64::from(self.per_second);
        let elapsed = now.saturating_sub(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * rate).min(rate);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - state.0) / rate))
        }
    }
}

/// The retry budget of an upstream, as the policy set it.
pub struct RetryBudget {
    settings: RetryPolicy,
    budget: TpsBudget,
}

impl RetryBudget {
    fn new(settings: &RetryPolicy) -> RetryBudget {
        RetryBudget {
            settings: settings.clone(),
            budget: TpsBudget::new(Duration::from_secs(10), settings.min_per_s, settings.budget_percent as f32 / 100.0),
        }
    }

    /// Every call adds to the budget.
    pub fn deposit(&self) {
        self.budget.deposit();
    }

    /// A retry spends from it; `false` when it is empty.
    pub fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }
}

/// The instances of one upstream.
pub struct Pool {
    service: String,
    clock: SharedClock,
    /// The configured address, used while the registry knows no instance.
    fallback: Vec<Instance>,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    balancer: RwLock<Arc<Balancer>>,
    breakers: Mutex<HashMap<String, Arc<CircuitBreaker>>>,
    bulkheads: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
    limits: Mutex<HashMap<String, Arc<RateLimit>>>,
    budgets: Mutex<HashMap<String, Arc<RetryBudget>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("service", &self.service).finish_non_exhaustive()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pool {
    pub fn new(service: &str, fallback: Vec<Instance>, balancer: BalancerKind, clock: SharedClock) -> Pool {
        let endpoints = fallback.iter().cloned().map(|i| Arc::new(Endpoint::new(i))).collect();
        Pool {
            service: service.to_owned(),
            clock,
            fallback,
            endpoints: RwLock::new(endpoints),
            balancer: RwLock::new(Arc::new(Balancer::new(balancer))),
            breakers: Mutex::new(HashMap::new()),
            bulkheads: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the instance list with what the registry holds (the configured address when it
    /// holds none), keeping what is known of instances that stay.
    pub fn set_instances(&self, mut instances: Vec<Instance>) {
        if instances.is_empty() {
            instances = self.fallback.clone();
        }
        let mut endpoints = self.endpoints.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next: Vec<Arc<Endpoint>> = instances
            .into_iter()
            .map(|instance| match endpoints.iter().find(|e| e.instance == instance) {
                Some(existing) => existing.clone(),
                None => Arc::new(Endpoint::new(instance)),
            })
            .collect();
        *endpoints = next;
    }

    /// Chooses an instance, avoiding `not` when another is available.
    pub fn pick(&self, not: Option<&str>) -> Option<Arc<Endpoint>> {
        let now = self.clock.now();
        let endpoints = self.endpoints();
        let available: Vec<&Arc<Endpoint>> = endpoints.iter().filter(|e| e.available(now)).collect();
        let mut choice: Vec<&Arc<Endpoint>> = available.iter().copied().filter(|e| Some(e.id()) != not).collect();
        if choice.is_empty() {
            choice = available;
        }
        if choice.is_empty() {
            choice = endpoints.iter().collect();
        }
        let candidates: Vec<Candidate<'_>> = choice
            .iter()
            .map(|e| Candidate { id: e.id(), weight: e.instance.weight, pending: e.pending.load(Ordering::Relaxed) })
            .collect();
        let balancer = self.balancer.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        balancer.pick(&candidates).map(|i| choice[i].clone())
    }

    /// Passive outlier ejection: records how `endpoint` handled a call. Returns the ejection
    /// time when this call ejected it.
    pub fn report(&self, endpoint: &Endpoint, health: Health, policy: &OutlierPolicy) -> Option<Duration> {
        if health == Health::Ok {
            endpoint.consecutive_failures.store(0, Ordering::Relaxed);
            return None;
        }
        endpoint.failures.fetch_add(1, Ordering::Relaxed);
        let failures = endpoint.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < policy.consecutive_failures {
            return None;
        }
        let now = self.clock.now();
        let endpoints = self.endpoints();
        let ejected = endpoints.iter().filter(|e| e.ejected(now)).count();
        // The share of the pool that may be out at once, one instance at least when the pool
        // has more than one.
        let allowed =
            (endpoints.len() * policy.max_ejection_percent as usize / 100).max(usize::from(endpoints.len() > 1));
        if endpoint.ejected(now) || ejected >= allowed {
            return None;
        }
        let mut verdict = endpoint.verdict();
        // A long quiet spell forgives earlier ejections.
        if verdict
            .ejected_until
            .is_some_and(|until| now.saturating_sub(until) > Duration::from_millis(policy.max_ejection_ms))
        {
            verdict.ejections = 0;
        }
        verdict.ejections = verdict.ejections.saturating_add(1);
        let time = Duration::from_millis(
            policy.base_ejection_ms.saturating_mul(u64::from(verdict.ejections)).min(policy.max_ejection_ms),
        );
        verdict.ejected_until = Some(now + time);
        verdict.down_while_ejected = false;
        endpoint.consecutive_failures.store(0, Ordering::Relaxed);
        Some(time)
    }

    /// Records an active health check. Returns the new verdict when it changed.
    pub fn checked(&self, endpoint: &Endpoint, passed: bool, healthy_after: u32, unhealthy_after: u32) -> Option<bool> {
        let mut verdict = endpoint.verdict();
        verdict.streak = match (passed, verdict.streak) {
            (true, s) if s > 0 => s.saturating_add(1),
            (true, _) => 1,
            (false, s) if s < 0 => s.saturating_sub(1),
            (false, _) => -1,
        };
        let now = self.clock.now();
        let ejected = verdict.ejected_until.is_some_and(|until| until > now);
        if ejected && !passed {
            verdict.down_while_ejected = true;
        }
        if verdict.unhealthy && passed && verdict.streak >= healthy_after as i32 {
            verdict.unhealthy = false;
            // A healthy instance need not sit out the rest of an ejection.
            verdict.ejected_until = None;
            verdict.down_while_ejected = false;
            Some(true)
        } else if ejected && passed && verdict.down_while_ejected && verdict.streak >= healthy_after as i32 {
            // Down, then up again: a restarted instance, not the one that failed the calls.
            verdict.ejected_until = None;
            verdict.down_while_ejected = false;
            None
        } else if !verdict.unhealthy && !passed && -verdict.streak >= unhealthy_after as i32 {
            verdict.unhealthy = true;
            Some(false)
        } else {
            None
        }
    }

    /// The breaker under `key` (the upstream, or `upstream.route`), made anew when its
    /// settings changed.
    pub fn breaker(&self, key: &str, config: &BreakerConfig) -> Arc<CircuitBreaker> {
        let mut breakers = locked(&self.breakers);
        match breakers.get(key) {
            Some(breaker) if breaker.config() == config => breaker.clone(),
            previous => {
                let breaker = Arc::new(CircuitBreaker::new(config.clone(), self.clock.clone()));
                // New settings keep an operator's choice.
                match previous.and_then(|b| b.manual()) {
                    Some(crate::breaker::State::ForcedOpen) => {
                        breaker.force_open();
                    }
                    Some(crate::breaker::State::Disabled) => {
                        breaker.disable();
                    }
                    _ => {}
                }
                breakers.insert(key.to_owned(), breaker.clone());
                breaker
            }
        }
    }

    /// The breakers made so far, by key.
    pub fn breakers(&self) -> Vec<(String, Arc<CircuitBreaker>)> {
        let mut out: Vec<_> = locked(&self.breakers).iter().map(|(k, b)| (k.clone(), b.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn bulkhead(&self, key: &str, limit: u32) -> Arc<Semaphore> {
        let mut bulkheads = locked(&self.bulkheads);
        match bulkheads.get(key) {
            Some((size, semaphore)) if *size == limit => semaphore.clone(),
            _ => {
                let semaphore = Arc::new(Semaphore::new(limit as usize));
                bulkheads.insert(key.to_owned(), (limit, semaphore.clone()));
                semaphore
            }
        }
    }

    pub fn rate_limit(&self, key: &str, per_second: u32) -> Arc<RateLimit> {
        let mut limits = locked(&self.limits);
        match limits.get(key) {
            Some(limit) if limit.per_second == per_second => limit.clone(),
            _ => {
                let limit = Arc::new(RateLimit::new(per_second, self.clock.now()));
                limits.insert(key.to_owned(), limit.clone());
                limit
            }
        }
    }

    pub fn budget(&self, key: &str, settings: &RetryPolicy) -> Arc<RetryBudget> {
        let mut budgets = locked(&self.budgets);
        match budgets.get(key) {
            Some(budget) if budget.settings == *settings => budget.clone(),
            _ => {
                let budget = Arc::new(RetryBudget::new(settings));
                budgets.insert(key.to_owned(), budget.clone());
                budget
            }
        }
    }

    /// Applies a new policy's balancer.
    pub fn apply(&self, policy: &Policy) {
        let mut balancer = self.balancer.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if balancer.kind() != policy.balancer {
            *balancer = Arc::new(Balancer::new(policy.balancer));
        }
    }

    pub fn view(&self) -> Vec<EndpointView> {
        let now = self.clock.now();
        self.endpoints()
            .iter()
            .map(|e| {
                let verdict = e.verdict();
                EndpointView {
                    id: e.instance.id.clone(),
                    address: e.instance.address.to_string(),
                    weight: e.instance.weight,
                    zone: e.instance.zone.clone(),
                    version: e.instance.version.clone(),
                    healthy: !verdict.unhealthy,
                    ejected_for_ms: verdict
                        .ejected_until
                        .map(|until| u64::try_from(until.saturating_sub(now).as_millis()).unwrap_or(u64::MAX))
                        .unwrap_or(0),
                    ejections: verdict.ejections,
                    pending: e.pending.load(Ordering::Relaxed),
                    consecutive_failures: e.consecutive_failures.load(Ordering::Relaxed),
                    requests: e.requests.load(Ordering::Relaxed),
                    failures: e.failures.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn pool(n: usize, clock: Arc<ManualClock>) -> Pool {
        let instances = (0..n)
            .map(|i| Instance::new("hospital", format!("http://127.0.0.1:{}/", 4000 + i).parse().unwrap()))
            .collect();
        Pool::new("hospital", instances, BalancerKind::RoundRobin, clock)
    }

    fn outlier() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: 3,
            base_ejection_ms: 1_000,
            max_ejection_ms: 2_500,
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn consecutive_failures_eject_for_a_time_that_grows() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let bad = pool.endpoints()[0].clone();
        let fail = |n| (0..n).filter_map(|_| pool.report(&bad, Health::Failed, &outlier())).last();
        assert_eq!(fail(2), None);
        // A success in between starts the count again.
        assert_eq!(pool.report(&bad, Health::Ok, &outlier()), None);
        assert_eq!(fail(2), None);
        assert_eq!(fail(1), Some(Duration::from_secs(1)));
        for _ in 0..10 {
            assert_eq!(pool.pick(None).unwrap().id(), pool.endpoints()[1].id(), "the ejected instance is left out");
        }
        clock.advance(Duration::from_secs(1));
        assert!(bad.available(clock.now()), "back after its time");
        assert_eq!(fail(3), Some(Duration::from_secs(2)));
        clock.advance(Duration::from_secs(2));
        assert_eq!(fail(3), Some(Duration::from_millis(2_500)), "capped");
    }

    #[test]
    fn never_more_than_the_allowed_share_is_ejected() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let [a, b] = [pool.endpoints()[0].clone(), pool.endpoints()[1].clone()];
        for _ in 0..3 {
            pool.report(&a, Health::Failed, &outlier());
        }
        assert!(a.ejected(clock.now()));
        for _ in 0..10 {
            assert_eq!(pool.report(&b, Health::Failed, &outlier()), None);
        }
        assert!(!b.ejected(clock.now()), "50% of two: only one may be out");
        // A lone instance is never ejected: there would be nothing left.
        let single = super::tests::pool(1, clock.clone());
        let only = single.endpoints()[0].clone();
        for _ in 0..10 {
            assert_eq!(single.report(&only, Health::Failed, &outlier()), None);
        }
    }

    #[test]
    fn health_checks_need_thresholds_in_a_row() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let e = pool.endpoints()[0].clone();
        assert_eq!(pool.checked(&e, false, 2, 3), None);
        assert_eq!(pool.checked(&e, false, 2, 3), None);
        assert_eq!(pool.checked(&e, true, 2, 3), None);
        assert_eq!(pool.checked(&e, false, 2, 3), None);
        assert_eq!(pool.checked(&e, false, 2, 3), None);
        assert_eq!(pool.checked(&e, false, 2, 3), Some(false));
        assert!(!e.available(clock.now()));
        assert_eq!(pool.pick(Some(pool.endpoints()[1].id())).unwrap().id(), pool.endpoints()[1].id());
        assert_eq!(pool.checked(&e, true, 2, 3), None);
        assert_eq!(pool.checked(&e, true, 2, 3), Some(true));
        assert!(e.available(clock.now()));
    }

    #[test]
    fn an_ejected_instance_seen_down_and_up_again_is_back_at_once() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let e = pool.endpoints()[0].clone();
        for _ in 0..3 {
            pool.report(&e, Health::Failed, &outlier());
        }
        assert!(e.ejected(clock.now()));
        // Passing checks alone do not end it: the instance answers its probe but failed calls.
        for _ in 0..5 {
            assert_eq!(pool.checked(&e, true, 2, 3), None);
        }
        assert!(e.ejected(clock.now()), "live but failing calls: stays out");
        // Down (it crashed), then passing again (restarted): back without waiting.
        pool.checked(&e, false, 2, 3);
        pool.checked(&e, true, 2, 3);
        assert!(e.ejected(clock.now()), "one pass is not yet the threshold");
        pool.checked(&e, true, 2, 3);
        assert!(e.available(clock.now()));
    }

    #[test]
    fn a_new_registration_at_the_same_address_starts_afresh() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let e = pool.endpoints()[0].clone();
        for _ in 0..3 {
            pool.report(&e, Health::Failed, &outlier());
        }
        assert!(e.ejected(clock.now()));
        let mut restarted = e.instance.clone();
        restarted.incarnation = "restarted".into();
        pool.set_instances(vec![restarted, pool.endpoints()[1].instance.clone()]);
        let back = pool.endpoints()[0].clone();
        assert_eq!(back.id(), e.id(), "the same address");
        assert!(back.available(clock.now()), "a new process is not the one ejected");
    }

    #[test]
    fn picking_avoids_the_instance_just_tried_and_never_comes_back_empty() {
        let clock = ManualClock::new();
        let pool = pool(3, clock.clone());
        let first = pool.endpoints()[0].id().to_owned();
        for _ in 0..20 {
            assert_ne!(pool.pick(Some(&first)).unwrap().id(), first);
        }
        // Every instance unhealthy: they are all tried rather than none.
        for e in pool.endpoints() {
            pool.checked(&e, false, 1, 1);
        }
        assert!(pool.pick(None).is_some());
    }

    #[test]
    fn the_registry_list_replaces_instances_but_keeps_what_is_known() {
        let clock = ManualClock::new();
        let pool = pool(2, clock.clone());
        let kept = pool.endpoints()[1].clone();
        let _flight = kept.start();
        let new = Instance::new("hospital", "http://127.0.0.1:5000/".parse().unwrap());
        pool.set_instances(vec![kept.instance.clone(), new.clone()]);
        let ids: Vec<String> = pool.endpoints().iter().map(|e| e.id().to_owned()).collect();
        assert_eq!(ids, [kept.id().to_owned(), new.id.clone()]);
        assert_eq!(pool.view()[0].pending, 1, "the same endpoint, with its calls in flight");
        pool.set_instances(Vec::new());
        assert_eq!(pool.endpoints().len(), 2, "the configured addresses come back");
    }

    #[test]
    fn a_rate_limit_refills_over_time() {
        let clock = ManualClock::new();
        let limit = RateLimit::new(2, clock.now());
        assert!(limit.take(clock.now()).is_ok());
        assert!(limit.take(clock.now()).is_ok());
        assert_eq!(limit.take(clock.now()), Err(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(500));
        assert!(limit.take(clock.now()).is_ok());
    }
}
