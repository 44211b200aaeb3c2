//! Rate limiting with the generic cell rate algorithm (GCRA).
//!
//! A quota allows `burst` requests at once and refills at `per_period / period`. GCRA keeps
//! one number per key, the theoretical arrival time (TAT) of the next request; a request is
//! allowed when it does not arrive more than the burst tolerance before its TAT. The rule is
//! [`gcra`], written once in Rust for the in-process limiter and once in Lua for Redis, and
//! both are tested against the same table.
//!
//! - [`MemoryLimiter`]: in process, for one instance or when Redis is away.
//! - [`sign_in`]: the sign-in limits (per address, per address and account) and the
//!   `RateLimit` headers of a checked limit.
//! - [`RedisLimiter`]: one atomic script in Redis, so every gateway instance shares a limit;
//!   it falls back to its in-process limiter when Redis fails (slower to converge, never down).
//!   The checks of one key that arrive while its script runs wait, and go together in the
//!   next run, which counts them as that many requests at once: under load a busy key costs
//!   Redis one script a round trip rather than one a request, and every decision is the one
//!   the rule gives for those requests in their order.

#![forbid(unsafe_code)]

pub mod sign_in;

pub use sign_in::{Applied, SignInLimits};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

/// How many requests a key may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests added per `period`.
    pub per_period: u32,
    pub period: Duration,
    /// Requests allowed at once on a fresh key.
    pub burst: u32,
}

impl Quota {
    pub fn per_minute(per_minute: u32, burst: u32) -> Quota {
        Quota { per_period: per_minute.max(1), period: Duration::from_secs(60), burst: burst.max(1) }
    }

    /// The time one request "costs", in microseconds.
    pub fn emission_us(&self) -> i64 {
        (self.period.as_micros() as i64 / i64::from(self.per_period.max(1))).max(1)
    }

    /// How far ahead of its TAT a request may come, in microseconds.
    pub fn tolerance_us(&self) -> i64 {
        self.emission_us() * i64::from(self.burst.max(1) - 1)
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// When denied, how long until a request would be allowed.
    pub retry_after: Duration,
    /// How long until the full burst is available again.
    pub reset: Duration,
}

/// The rule: given the stored TAT (if any) and now, the decision and the TAT to store.
pub fn gcra(quota: &Quota, stored_tat: Option<i64>, now_us: i64) -> (Decision, Option<i64>) {
    let emission = quota.emission_us();
    let tolerance = quota.tolerance_us();
    let tat = stored_tat.unwrap_or(now_us).max(now_us);
    if tat - now_us > tolerance {
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            retry_after: micros(tat - tolerance - now_us),
            reset: micros(tat - now_us),
        };
        return (decision, None);
    }
    let new_tat = tat + emission;
    (from_allowed(quota, new_tat, now_us), Some(new_tat))
}

fn from_allowed(quota: &Quota, new_tat: i64, now_us: i64) -> Decision {
    let emission = quota.emission_us();
    let remaining = ((now_us + quota.tolerance_us() + emission - new_tat) / emission).max(0);
    Decision {
        allowed: true,
        limit: quota.burst,
        remaining: u32::try_from(remaining).unwrap_or(0),
        retry_after: Duration::ZERO,
        reset: micros(new_tat - now_us),
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us.max(0)).unwrap_or(0))
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A rate limiter.
pub trait Limiter: Send + Sync {
    /// Counts one request for `key` against `quota`.
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> BoxFuture<'a, Decision>;
}

/// In process. Keys whose TAT has passed are forgotten now and then, so memory stays bounded
/// by the keys active in the last period.
#[derive(Default)]
pub struct MemoryLimiter {
    tats: Mutex<HashMap<String, i64>>,
}

impl MemoryLimiter {
    pub fn check_at(&self, key: &str, quota: &Quota, now_us: i64) -> Decision {
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if tats.len() > 100_000 {
            tats.retain(|_, tat| *tat > now_us);
        }
        let (decision, new_tat) = gcra(quota, tats.get(key).copied(), now_us);
        if let Some(tat) = new_tat {
            tats.insert(key.to_owned(), tat);
        }
        decision
    }
}

impl Limiter for MemoryLimiter {
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> BoxFuture<'a, Decision> {
        let decision = self.check_at(key, quota, now_us());
        Box::pin(async move { decision })
    }
}

/// The GCRA rule in Lua, run atomically for `ARGV[4]` requests arriving at once: the first
/// `allowed` of them are, in order, and the TAT moves by one emission for each. Returns
/// `{allowed, tat before, now}`. `ARGV[3]` is "now" in microseconds for tests; empty means
/// Redis `TIME`, so every instance uses one clock.
const SCRIPT: &str = r#"
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local requests = tonumber(ARGV[4])
local now
if ARGV[3] ~= "" then
  now = tonumber(ARGV[3])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local allowed = 0
if tat - now <= tolerance then
  allowed = math.min(requests, math.floor((now + tolerance - tat) / emission) + 1)
  local new_tat = tat + allowed * emission
  redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", math.ceil((new_tat - now) / 1000) + 1)
end
return {allowed, tat, now}
"#;

/// The decisions for `requests` requests arriving at once at `now`, given the TAT before them
/// and how many the script allowed: as [`gcra`] would decide them one after the other.
fn in_order(quota: &Quota, requests: usize, allowed: usize, tat: i64, now: i64) -> Vec<Decision> {
    let emission = quota.emission_us();
    let last_tat = tat + emission * i64::try_from(allowed).unwrap_or(i64::MAX);
    (0..requests)
        .map(|i| match i < allowed {
            true => from_allowed(quota, tat + emission * (i64::try_from(i).unwrap_or(i64::MAX) + 1), now),
            false => Decision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                retry_after: micros(last_tat - quota.tolerance_us() - now),
                reset: micros(last_tat - now),
            },
        })
        .collect()
}

/// What a check waiting on its key is told: its decision (`None`: Redis failed, decide in
/// process), or to run the next script itself for the checks that waited with it.
enum Turn {
    Decided(Option<Decision>),
    Lead(Vec<tokio::sync::oneshot::Sender<Turn>>),
}

/// In Redis, shared by every instance; in process while Redis fails.
pub struct RedisLimiter {
    connection: medcov_redis::RedisConnection,
    prefix: String,
    script: redis::Script,
    fallback: MemoryLimiter,
    /// Keys whose script is running, with the checks waiting for the next run.
    running: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<Turn>>>>,
    /// Scripts run, for tests.
    runs: std::sync::atomic::AtomicU64,
}

/// Hands the key's next run over when its leader is done, or dropped (its request cancelled).
struct Leading<'a> {
    limiter: &'a RedisLimiter,
    key: &'a str,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.limiter.hand_over(self.key, Vec::new());
    }
}

/// A check waiting on its key. Dropped (its request cancelled) once told to lead, it hands the
/// run on, so the key is never left with no one to run its script.
struct Waiting<'a> {
    told: tokio::sync::oneshot::Receiver<Turn>,
    limiter: &'a RedisLimiter,
    key: &'a str,
    taken: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        // Closed first: from now on a leader's send fails, and it hands the run on itself.
        self.told.close();
        if let Ok(Turn::Lead(others)) = self.told.try_recv() {
            self.limiter.hand_over(self.key, others);
        }
    }
}

impl RedisLimiter {
    /// Keys are `<prefix>:ratelimit:<key>`; the script touches one key, so any slot of a Redis
    /// Cluster will do.
    pub fn new(connection: medcov_redis::RedisConnection, prefix: &str) -> RedisLimiter {
        RedisLimiter {
            connection,
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
            fallback: MemoryLimiter::default(),
            running: Mutex::default(),
            runs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Runs the script for one request; `now_us` fixes the clock for tests.
    pub async fn check_at(&self, key: &str, quota: &Quota, now_us: Option<i64>) -> redis::RedisResult<Decision> {
        let mut decisions = self.take_at(key, quota, 1, now_us).await?;
        Ok(decisions.remove(0))
    }

    /// Runs the script for `requests` requests arriving at once, and decides each in order.
    pub async fn take_at(
        &self,
        key: &str,
        quota: &Quota,
        requests: usize,
        now_us: Option<i64>,
    ) -> redis::RedisResult<Vec<Decision>> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = self
            .script
            .key(format!("{}:ratelimit:{key}", self.prefix))
            .arg(quota.emission_us())
            .arg(quota.tolerance_us())
            .arg(now_us.map(|n| n.to_string()).unwrap_or_default())
            .arg(requests)
            .invoke_async(&mut connection)
            .await?;
        match reply.as_slice() {
            [allowed, tat, now] if usize::try_from(*allowed).is_ok_and(|a| a <= requests) => {
                Ok(in_order(quota, requests, usize::try_from(*allowed).unwrap_or(0), *tat, *now))
            }
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "rate limit script",
                format!("{other:?}"),
            ))),
        }
    }

    /// How many times the script ran.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs the script for this check and `others` waiting with it, tells them, and hands the
    /// key's next run to the first check that came meanwhile.
    async fn lead(&self, key: &str, quota: &Quota, others: Vec<tokio::sync::oneshot::Sender<Turn>>) -> Decision {
        let _leading = Leading { limiter: self, key };
        match self.take_at(key, quota, 1 + others.len(), None).await {
            Ok(mut decisions) => {
                for (other, decision) in others.into_iter().zip(decisions.drain(1..)) {
                    let _ = other.send(Turn::Decided(Some(decision)));
                }
                decisions.remove(0)
            }
            Err(error) => {
                for other in others {
                    let _ = other.send(Turn::Decided(None));
                }
                self.in_process(key, quota, &error)
            }
        }
    }

    /// Gives the checks that waited for the key's last run (`first`, then those queued) to the
    /// first of them to run, or forgets the key when none did.
    fn hand_over(&self, key: &str, first: Vec<tokio::sync::oneshot::Sender<Turn>>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if !first.is_empty() {
            let queued = running.entry(key.to_owned()).or_default();
            let later = std::mem::replace(queued, first);
            queued.extend(later);
        }
        loop {
            let Some(waiting) = running.get_mut(key) else { return };
            if waiting.is_empty() {
                running.remove(key);
                return;
            }
            let mut others = std::mem::take(waiting);
            let first = others.remove(0);
            match first.send(Turn::Lead(others)) {
                Ok(()) => return,
                // That check was cancelled: the next one leads.
                Err(Turn::Lead(others)) => *running.entry(key.to_owned()).or_default() = others,
                Err(Turn::Decided(_)) => return,
            }
        }
    }

    fn in_process(&self, key: &str, quota: &Quota, error: &redis::RedisError) -> Decision {
        // The breaker logs the outage once; only a failure of its own is news.
        if !medcov_redis::failing_fast(error) {
            tracing::warn!(error = %error, "Redis rate limiter unavailable; limiting in process");
        }
        self.fallback.check_at(key, quota, now_us())
    }
}

impl Limiter for RedisLimiter {
    /// A key is always checked against the same quota: checks that wait together are run
    /// with the quota of the one that runs them.
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            let waiting = {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                match running.get_mut(key) {
                    Some(waiting) => {
                        let (turn, told) = tokio::sync::oneshot::channel();
                        waiting.push(turn);
                        Some(told)
                    }
                    None => {
                        running.insert(key.to_owned(), Vec::new());
                        None
                    }
                }
            };
            let Some(told) = waiting else {
                return self.lead(key, quota, Vec::new()).await;
            };
            let mut waiting = Waiting { told, limiter: self, key, taken: false };
            let turn = (&mut waiting.told).await;
            waiting.taken = true;
            match turn {
                Ok(Turn::Decided(Some(decision))) => decision,
                Ok(Turn::Lead(others)) => self.lead(key, quota, others).await,
                // Redis failed, or the check that ran the script was cancelled with it.
                Ok(Turn::Decided(None)) | Err(_) => self.fallback.check_at(key, quota, now_us()),
            }
        })
    }
}

/// The table both implementations are tested against: for 60 requests a minute with a burst
/// of 3, each request's (seconds since the first, allowed, remaining, retry-after in ms).
pub const GCRA_TABLE: [(i64, bool, u32, u64); 7] = [
    (0, true, 2, 0),
    (0, true, 1, 0),
    (0, true, 0, 0),
    (0, false, 0, 1_000),
    (1, true, 0, 0),
    (1, false, 0, 1_000),
    (10, true, 2, 0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_follows_the_table() {
        let quota = Quota::per_minute(60, 3);
        let limiter = MemoryLimiter::default();
        let start = 1_700_000_000_000_000;
        for (i, (at, allowed, remaining, retry_ms)) in GCRA_TABLE.into_iter().enumerate() {
            let d = limiter.check_at("k", &quota, start + at * 1_000_000);
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after.as_millis() as u64),
                (allowed, remaining, retry_ms),
                "row {i}"
            );
        }
        // Keys do not share.
        assert!(limiter.check_at("other", &quota, start).allowed);
    }
}
