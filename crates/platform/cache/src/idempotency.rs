//! Where Idempotency-Keys are held: the first request under a key claims it while it runs,
//! then leaves its answer under the key for repeats.
//!
//! - [`RedisKeys`]: `SET NX` with an expiry, so every instance of a service sees the claim.
//! - [`MemoryKeys`]: in process.
//!
//! Losing the store (Redis down) is reported as an error: the caller then runs the request
//! without the protection rather than refusing it (money endpoints keep their own keys in
//! their database, which never depends on Redis).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: run it, then `complete` or `release`.
    Claimed,
    /// Another request holds it and is still running.
    Running,
    /// A request under it finished with this record.
    Done(Bytes),
}

#[derive(Debug, thiserror::Error)]
#[error("the idempotency key store is unavailable: {0}")]
pub struct Unavailable(pub String);

pub trait KeyStore: Send + Sync {
    /// Claims `key` for `hold` (after which a crashed request's claim lapses).
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>>;
    /// Leaves `record` under `key` for `keep`.
    fn complete<'a>(&'a self, key: &'a str, record: Bytes, keep: Duration) -> BoxFuture<'a, ()>;
    /// Gives the key up (the request failed; a retry may run).
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
}

/// The value of a claimed key that has no record yet.
const RUNNING: &[u8] = b"\0running";

/// In process.
#[derive(Default)]
pub struct MemoryKeys {
    entries: Mutex<HashMap<String, (Option<Bytes>, Instant)>>,
}

impl MemoryKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Bytes>, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeys {
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() > 10_000 {
            entries.retain(|_, (_, until)| *until > now);
        }
        let claim = match entries.get(key) {
            Some((record, until)) if *until > now => match record {
                Some(record) => Claim::Done(record.clone()),
                None => Claim::Running,
            },
            _ => {
                entries.insert(key.to_owned(), (None, now + hold));
                Claim::Claimed
            }
        };
        Box::pin(async move { Ok(claim) })
    }

    fn complete<'a>(&'a self, key: &'a str, record: Bytes, keep: Duration) -> BoxFuture<'a, ()> {
        self.lock().insert(key.to_owned(), (Some(record), Instant::now() + keep));
        Box::pin(async {})
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        self.lock().remove(key);
        Box::pin(async {})
    }
}

/// In Redis, at `<prefix>:idempotency:<key>`.
pub struct RedisKeys {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisKeys {
    pub fn new(connection: redis::aio::ConnectionManager, prefix: &str) -> RedisKeys {
        RedisKeys { connection, prefix: prefix.to_owned() }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl KeyStore for RedisKeys {
    fn claim<'a>(&'a self, key: &'a str, hold: Duration) -> BoxFuture<'a, Result<Claim, Unavailable>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(key))
                .arg(RUNNING)
                .arg("NX")
                .arg("PX")
                .arg(millis(hold))
                .query_async(&mut connection)
                .await
                .map_err(|e| Unavailable(e.to_string()))?;
            if set.is_some() {
                return Ok(Claim::Claimed);
            }
            let found: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.key(key))
                .query_async(&mut connection)
                .await
                .map_err(|e| Unavailable(e.to_string()))?;
            Ok(match found {
                Some(record) if record != RUNNING => Claim::Done(Bytes::from(record)),
                // Running, or it lapsed between the two commands: the caller retries.
                _ => Claim::Running,
            })
        })
    }

    fn complete<'a>(&'a self, key: &'a str, record: Bytes, keep: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let stored = redis::cmd("SET")
                .arg(self.key(key))
                .arg(record.to_vec())
                .arg("PX")
                .arg(millis(keep))
                .query_async::<()>(&mut connection)
                .await;
            if let Err(error) = stored {
                tracing::error!(%error, "an Idempotency-Key's answer could not be kept; a repeat would run again");
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: Result<(), _> = redis::cmd("DEL").arg(self.key(key)).query_async(&mut connection).await;
        })
    }
}
