//! Where Idempotency-Keys are held: the first request under a key claims it while it runs,
//! then leaves its answer under the key for repeats.
//!
//! - [`RedisKeys`]: `SET NX` with an expiry, so every instance of a service sees the claim.
//!   While Redis is unreachable it holds keys in process instead (at once: the Redis client
//!   fails fast), so repeats to the same instance are still answered once; repeats reaching
//!   another instance then run again (money endpoints keep their own keys in their database,
//!   which never depends on Redis).
//! - [`MemoryKeys`]: in process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: run it, then `complete` or `release` with the ticket. A
    /// claim that lapsed and was taken by another request is no longer this one's: completing
    /// or releasing it then does nothing.
    Claimed(Ticket),
    /// Another request holds it and is still running.
    Running,
    /// A request under it finished with this record.
    Done(Bytes),
}

/// Proof of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    fn new() -> Ticket {
        Ticket(format!("{:032x}", rand::random::<u128>()))
    }

    /// A claim held in process by [`RedisKeys`] while Redis was unreachable.
    fn local() -> Ticket {
        Ticket(format!("local-{:032x}", rand::random::<u128>()))
    }

    fn is_local(&self) -> bool {
        self.0.starts_with("local-")
    }

    /// The value a claimed key holds until it completes.
    fn running(&self) -> Vec<u8> {
        [RUNNING, self.0.as_bytes()].concat()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the idempotency key store is unavailable: {0}")]
pub struct Unavailable(pub String);

pub trait KeyStore: Send + Sync {
    /// Claims `key` for `hold` (after which a crashed request's claim lapses).
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>>;
    /// Leaves `record` under `key` for `keep`, if the claim is still `ticket`'s.
    fn complete<'a>(&'a self, key: &'a str, ticket: &'a Ticket, record: Bytes, keep: Duration) -> BoxFuture<'a, ()>;
    /// Gives the key up (the request failed; a retry may run), if the claim is still `ticket`'s.
    fn release<'a>(&'a self, key: &'a str, ticket: &'a Ticket) -> BoxFuture<'a, ()>;
}

/// The start of a claimed key's value while its request runs (then its ticket).
const RUNNING: &[u8] = b"\0running:";

/// In process.
#[derive(Default)]
pub struct MemoryKeys {
    entries: Mutex<HashMap<String, (Held, Instant)>>,
}

/// A key's state: running under a ticket, or done with a record.
#[derive(Debug, Clone)]
enum Held {
    Running(Ticket),
    Done(Bytes),
}

impl MemoryKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Held, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeys {
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>> {
        let claim = self.claim_now(key, hold, Ticket::new);
        Box::pin(async move { Ok(claim) })
    }

    fn complete<'a>(&'a self, key: &'a str, ticket: &'a Ticket, record: Bytes, keep: Duration) -> BoxFuture<'a, ()> {
        self.complete_now(key, ticket, record, keep);
        Box::pin(async {})
    }

    fn release<'a>(&'a self, key: &'a str, ticket: &'a Ticket) -> BoxFuture<'a, ()> {
        self.release_now(key, ticket);
        Box::pin(async {})
    }
}

impl MemoryKeys {
    fn claim_now(&self, key: &str, hold: Duration, ticket: fn() -> Ticket) -> Claim {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() > 10_000 {
            entries.retain(|_, (_, until)| *until > now);
        }
        match entries.get(key) {
            Some((held, until)) if *until > now => match held {
                Held::Done(record) => Claim::Done(record.clone()),
                Held::Running(_) => Claim::Running,
            },
            _ => {
                let ticket = ticket();
                entries.insert(key.to_owned(), (Held::Running(ticket.clone()), now + hold));
                Claim::Claimed(ticket)
            }
        }
    }

    fn complete_now(&self, key: &str, ticket: &Ticket, record: Bytes, keep: Duration) {
        let mut entries = self.lock();
        if matches!(entries.get(key), Some((Held::Running(held), _)) if held == ticket) {
            entries.insert(key.to_owned(), (Held::Done(record), Instant::now() + keep));
        }
    }

    fn release_now(&self, key: &str, ticket: &Ticket) {
        let mut entries = self.lock();
        if matches!(entries.get(key), Some((Held::Running(held), _)) if held == ticket) {
            entries.remove(key);
        }
    }
}

/// In Redis, at `<prefix>:idempotency:<key>` (one key per command or script, so any slot of a
/// Redis Cluster will do).
pub struct RedisKeys {
    connection: medcov_redis::RedisConnection,
    prefix: String,
    /// Where keys are held while Redis is unreachable.
    fallback: MemoryKeys,
}

impl RedisKeys {
    pub fn new(connection: medcov_redis::RedisConnection, prefix: &str) -> RedisKeys {
        RedisKeys { connection, prefix: prefix.to_owned(), fallback: MemoryKeys::default() }
    }

    async fn claim_in_redis(&self, key: &str, hold: Duration) -> redis::RedisResult<Claim> {
        let mut connection = self.connection.clone();
        let ticket = Ticket::new();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(ticket.running())
            .arg("NX")
            .arg("PX")
            .arg(millis(hold))
            .query_async(&mut connection)
            .await?;
        if set.is_some() {
            return Ok(Claim::Claimed(ticket));
        }
        let found: Option<Vec<u8>> = redis::cmd("GET").arg(self.key(key)).query_async(&mut connection).await?;
        Ok(match found {
            Some(record) if !record.starts_with(RUNNING) => Claim::Done(Bytes::from(record)),
            // Running, or it lapsed between the two commands: the caller retries.
            _ => Claim::Running,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.prefix)
    }
}

/// Stores the record only while the key still holds this request's claim.
static COMPLETE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0",
    )
});

/// Deletes the key only while it still holds this request's claim.
static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
});

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl KeyStore for RedisKeys {
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>> {
        Box::pin(async move {
            match self.claim_in_redis(key, hold).await {
                Ok(claim) => Ok(claim),
                Err(error) => {
                    if !medcov_redis::failing_fast(&error) {
                        tracing::warn!(%error, "Idempotency-Keys held in process while Redis is unreachable");
                    }
                    Ok(self.fallback.claim_now(key, hold, Ticket::local))
                }
            }
        })
    }

    fn complete<'a>(&'a self, key: &'a str, ticket: &'a Ticket, record: Bytes, keep: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if ticket.is_local() {
                return self.fallback.complete_now(key, ticket, record, keep);
            }
            let mut connection = self.connection.clone();
            let stored = COMPLETE
                .key(self.key(key))
                .arg(ticket.running())
                .arg(record.to_vec())
                .arg(millis(keep))
                .invoke_async::<i64>(&mut connection)
                .await;
            match stored {
                Ok(1) => {}
                Ok(_) => tracing::warn!(
                    "an Idempotency-Key's claim lapsed before its request finished; its answer is not kept"
                ),
                Err(error) => {
                    tracing::error!(%error, "an Idempotency-Key's answer could not be kept; a repeat would run again")
                }
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, ticket: &'a Ticket) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if ticket.is_local() {
                return self.fallback.release_now(key, ticket);
            }
            let mut connection = self.connection.clone();
            let _: Result<i64, _> =
                RELEASE.key(self.key(key)).arg(ticket.running()).invoke_async(&mut connection).await;
        })
    }
}
