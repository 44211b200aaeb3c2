//! Read-through caching with tag-versioned invalidation.
//!
//! Every tag (say `patient:<id>`) has a version. A reader notes the versions of its tags
//! *before* it loads from the database and stores the entry with them; an entry is served only
//! while its tags still have those versions. A write bumps the versions of the tags it touches
//! after committing. So a reader that loaded old data while a writer committed stores an entry
//! that is already invalid: no stale read survives a write, whatever the interleaving.
//!
//! - [`MemoryCache`]: in process (moka), for one instance.
//! - [`RedisCache`]: shared by every instance. Redis failing makes reads slower (misses), never
//!   wrong or failing.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use bytes::Bytes;
use futures::future::BoxFuture;

/// A cache with tag-versioned invalidation.
pub trait Cache: Send + Sync {
    /// The current versions of `tags`, in order.
    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>>;
    /// The entry under `key` if it was stored with exactly `versions`.
    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>>;
    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()>;
    /// Invalidates every entry stored under any of `tags`.
    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()>;
}

/// Serves `key` from the cache, or loads it with `load` and stores it.
pub async fn read_through<T, E, F>(
    cache: &dyn Cache,
    key: &str,
    tags: &[String],
    ttl: Duration,
    load: F,
) -> Result<T, E>
where
    T: serde_like::Codec,
    F: std::future::Future<Output = Result<T, E>>,
{
    let versions = cache.versions(tags).await;
    if let Some(bytes) = cache.get(key, &versions).await
        && let Some(value) = T::decode(&bytes)
    {
        return Ok(value);
    }
    let value = load.await?;
    if let Some(bytes) = value.encode() {
        cache.put(key, &versions, bytes, ttl).await;
    }
    Ok(value)
}

/// How cached values become bytes; implemented for anything serde can write as JSON by the
/// caller's crate through [`serde_like::Json`].
pub mod serde_like {
    use bytes::Bytes;

    pub trait Codec: Sized {
        fn encode(&self) -> Option<Bytes>;
        fn decode(bytes: &[u8]) -> Option<Self>;
    }

    /// JSON for any serde type: what [`json_codec!`](crate::json_codec) implements with.
    pub fn to_json<T: serde::Serialize>(value: &T) -> Option<Bytes> {
        serde_json::to_vec(value).ok().map(Bytes::from)
    }

    pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
        serde_json::from_slice(bytes).ok()
    }

    impl Codec for Bytes {
        fn encode(&self) -> Option<Bytes> {
            Some(self.clone())
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            Some(Bytes::copy_from_slice(bytes))
        }
    }

    impl<T: Codec> Codec for Option<T> {
        fn encode(&self) -> Option<Bytes> {
            match self {
                // A miss is not cached: the record may appear any moment.
                None => None,
                Some(v) => v.encode(),
            }
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            T::decode(bytes).map(Some)
        }
    }
}

/// Caches a serde type as JSON: `medcov_cache::json_codec!(Patient);`.
#[macro_export]
macro_rules! json_codec {
    ($type:ty) => {
        impl $crate::serde_like::Codec for $type {
            fn encode(&self) -> Option<$crate::Bytes> {
                $crate::serde_like::to_json(self)
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                $crate::serde_like::from_json(bytes)
            }
        }
    };
}

fn frame(versions: &[u64], value: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 * versions.len() + 2 + value.len());
    out.extend_from_slice(&u16::try_from(versions.len()).unwrap_or(u16::MAX).to_be_bytes());
    for v in versions {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(value);
    Bytes::from(out)
}

fn unframe(bytes: &[u8], versions: &[u64]) -> Option<Bytes> {
    let count = usize::from(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?));
    if count != versions.len() {
        return None;
    }
    for (i, expected) in versions.iter().enumerate() {
        let at = 2 + i * 8;
        let stored = u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        if stored != *expected {
            return None;
        }
    }
    Some(Bytes::copy_from_slice(&bytes[2 + count * 8..]))
}

/// In process.
pub struct MemoryCache {
    entries: moka::sync::Cache<String, Bytes>,
    tags: Mutex<HashMap<String, u64>>,
}

impl MemoryCache {
    /// Holds at most `capacity` entries; none lives longer than `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> MemoryCache {
        MemoryCache {
            entries: moka::sync::Cache::builder().max_capacity(capacity).time_to_live(max_ttl).build(),
            tags: Mutex::new(HashMap::new()),
        }
    }
}

impl Cache for MemoryCache {
    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>> {
        let known = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        let versions = tags.iter().map(|t| known.get(t).copied().unwrap_or(0)).collect();
        Box::pin(async move { versions })
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>> {
        let found = self.entries.get(key).and_then(|bytes| unframe(&bytes, versions));
        Box::pin(async move { found })
    }

    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, _ttl: Duration) -> BoxFuture<'a, ()> {
        self.entries.insert(key.to_owned(), frame(versions, &value));
        Box::pin(async {})
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()> {
        let mut known = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        for tag in tags {
            *known.entry(tag.clone()).or_insert(0) += 1;
        }
        Box::pin(async {})
    }
}

/// In Redis: entries at `<prefix>:cache:entry:<key>` with a TTL, tag versions at
/// `<prefix>:cache:tag:<tag>`.
pub struct RedisCache {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisCache {
    pub fn new(connection: redis::aio::ConnectionManager, prefix: &str) -> RedisCache {
        RedisCache { connection, prefix: prefix.to_owned() }
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:cache:tag:{tag}", self.prefix)
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}:cache:entry:{key}", self.prefix)
    }
}

fn warn(what: &str, error: &redis::RedisError) {
    tracing::warn!(error = %error, "Redis cache {what} failed; reading through to the database");
}

/// A version nobody stored: while Redis cannot tell the versions, nothing is served.
const UNKNOWN: u64 = u64::MAX;

impl Cache for RedisCache {
    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Vec::new();
            }
            let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
            let mut connection = self.connection.clone();
            match redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<u64>>>(&mut connection).await {
                Ok(values) => values.into_iter().map(|v| v.unwrap_or(0)).collect(),
                Err(e) => {
                    warn("version read", &e);
                    vec![UNKNOWN; tags.len()]
                }
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            if versions.contains(&UNKNOWN) {
                return None;
            }
            let mut connection = self.connection.clone();
            match redis::cmd("GET").arg(self.entry_key(key)).query_async::<Option<Vec<u8>>>(&mut connection).await {
                Ok(bytes) => bytes.and_then(|b| unframe(&b, versions)),
                Err(e) => {
                    warn("read", &e);
                    None
                }
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if versions.contains(&UNKNOWN) {
                return;
            }
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let stored = redis::cmd("SET")
                .arg(self.entry_key(key))
                .arg(frame(versions, &value).to_vec())
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await;
            if let Err(e) = stored {
                warn("write", &e);
            }
        })
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut pipe = redis::pipe();
            for tag in tags {
                pipe.cmd("INCR").arg(self.tag_key(tag)).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(&mut connection).await {
                // Entries of these tags may now outlive the write until their TTL: say so loudly.
                tracing::error!(error = %e, tags = ?tags, "Redis cache invalidation failed; entries may be stale until they expire");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_versions() {
        let framed = frame(&[3, 7], b"hello");
        assert_eq!(unframe(&framed, &[3, 7]).as_deref(), Some(&b"hello"[..]));
        assert_eq!(unframe(&framed, &[3, 8]), None);
        assert_eq!(unframe(&framed, &[3]), None);
        assert_eq!(unframe(&frame(&[], b""), &[]).as_deref(), Some(&b""[..]));
    }
}
