//! Read-through caching with tag-versioned invalidation.
//!
//! Every tag (say `patient:<id>`) has a version. A reader notes the versions of its tags
//! *before* it loads from the database and stores the entry with them; an entry is served only
//! while its tags still have those versions. A write bumps the versions of the tags it touches
//! after committing. So a reader that loaded old data while a writer committed stores an entry
//! that is already invalid: no stale read survives a write, whatever the interleaving.
//!
//! Tag versions never go back: a tag with no version yet (never written, or evicted by
//! Redis under memory pressure) starts at a random 62-bit value, so an entry stored under an
//! earlier version can never match again. Eviction loses entries, never resurrects them.
//!
//! Concurrent misses of one key in a process are loaded once (single flight): the first reader
//! loads, the others wait for its result. Every read is counted as a hit, a miss (loaded) or
//! coalesced (served by another reader's load) in `cache_requests_total{cache,result}`.
//!
//! - [`MemoryCache`]: in process (moka), for one instance.
//! - [`RedisCache`]: shared by every instance. While Redis is unreachable it keeps entries in
//!   process for a few seconds ([`FALLBACK_TTL`]), so an outage costs no time: within the
//!   process every write still invalidates what it touches, and a write in another process
//!   shows here within those seconds at worst. Invalidations Redis missed are applied when it
//!   answers again, before anything is read from it.
//!
//! On one Redis server, a process keeps the tag versions it read, and Redis tells it of every
//! change to them ([`known`]): a read of versions then costs Redis one `PING` shared by every
//! reader of the moment, rather than an `MGET` each, with the same guarantee (a write completed
//! before the read began is seen).

#![forbid(unsafe_code)]

pub mod known;
pub mod memo;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::watch;

/// What every cache keeps besides its entries: the loads in flight and the counters.
#[derive(Default)]
pub struct Common {
    flights: Mutex<HashMap<String, watch::Receiver<Option<Bytes>>>>,
    counters: Counters,
}

/// `cache_requests_total` by result; no-op counters unless given.
#[derive(Clone)]
pub struct Counters {
    pub hit: metrics::Counter,
    pub miss: metrics::Counter,
    pub coalesced: metrics::Counter,
}

impl Default for Counters {
    fn default() -> Self {
        Counters { hit: metrics::Counter::noop(), miss: metrics::Counter::noop(), coalesced: metrics::Counter::noop() }
    }
}

impl Common {
    pub fn new(counters: Counters) -> Common {
        Common { flights: Mutex::new(HashMap::new()), counters }
    }

    fn join(&self, key: &str) -> Flight<'_> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        match flights.get(key) {
            Some(receiver) => Flight::Follower(receiver.clone()),
            None => {
                let (sender, receiver) = watch::channel(None);
                flights.insert(key.to_owned(), receiver);
                Flight::Leader(Leading { common: self, key: key.to_owned(), sender })
            }
        }
    }
}

enum Flight<'a> {
    Leader(Leading<'a>),
    Follower(watch::Receiver<Option<Bytes>>),
}

/// The reader loading a key for everyone; leaves the flight however it ends.
struct Leading<'a> {
    common: &'a Common,
    key: String,
    sender: watch::Sender<Option<Bytes>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.common.flights.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// A cache with tag-versioned invalidation.
pub trait Cache: Send + Sync {
    /// Its flights and counters.
    fn common(&self) -> &Common;
    /// The current versions of `tags`, in order.
    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>>;
    /// The entry under `key` if it was stored with exactly `versions`.
    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>>;
    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()>;
    /// Invalidates every entry stored under any of `tags`.
    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()>;
    /// Whether Redis keeps this process told of every change of a tag version now ([`known`]);
    /// `None` for a cache with nothing to track (in process).
    fn tracked(&self) -> Option<bool> {
        None
    }
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
    let counters = &cache.common().counters;
    let versions = cache.versions(tags).await;
    if let Some(bytes) = cache.get(key, &versions).await
        && let Some(value) = T::decode(&bytes)
    {
        counters.hit.increment(1);
        return Ok(value);
    }
    // Readers share a load only when they saw the same tag versions: a reader that started
    // after a write never takes a value loaded before it.
    let flight = format!("{key}\u{0}{versions:?}");
    let leading = match cache.common().join(&flight) {
        Flight::Leader(leading) => Some(leading),
        Flight::Follower(mut receiver) => {
            // Another reader is loading this key: take its result. When it fails (or its value
            // is not cacheable), load like everyone else.
            if receiver.changed().await.is_ok()
                && let Some(bytes) = receiver.borrow().clone()
                && let Some(value) = T::decode(&bytes)
            {
                counters.coalesced.increment(1);
                return Ok(value);
            }
            None
        }
    };
    counters.miss.increment(1);
    let value = load.await?;
    if let Some(bytes) = value.encode() {
        cache.put(key, &versions, bytes.clone(), ttl).await;
        if let Some(leading) = &leading {
            leading.sender.send_replace(Some(bytes));
        }
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

/// A shared cache seen by one user: the same entries and tags, its own flights and counters.
/// Every service of a process shares one cache (so the gateway sees the services'
/// invalidations) and counts its own reads.
pub struct Counted {
    inner: std::sync::Arc<dyn Cache>,
    common: Common,
}

impl Counted {
    pub fn new(inner: std::sync::Arc<dyn Cache>, counters: Counters) -> Counted {
        Counted { inner, common: Common::new(counters) }
    }
}

impl Cache for Counted {
    fn common(&self) -> &Common {
        &self.common
    }

    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>> {
        self.inner.versions(tags)
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>> {
        self.inner.get(key, versions)
    }

    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()> {
        self.inner.put(key, versions, value, ttl)
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()> {
        self.inner.invalidate(tags)
    }

    fn tracked(&self) -> Option<bool> {
        self.inner.tracked()
    }
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
    /// Each entry with its own time to live.
    entries: moka::sync::Cache<String, (Bytes, Duration)>,
    /// Tag versions, forgotten after [`TAG_TTL`] unused (a forgotten tag restarts at a fresh
    /// random version); updated under the lock so concurrent bumps are not lost.
    tags: Mutex<moka::sync::Cache<String, u64>>,
    common: Common,
}

impl MemoryCache {
    /// Holds at most `max_bytes` of entries (keys and values, with a small allowance for each
    /// entry's own bookkeeping), evicting the least useful first, and as much again of tag
    /// versions; each entry lives as long as the TTL it is stored with, none longer than
    /// `max_ttl`. A bound in bytes, not entries: answers vary in size (an eligibility answer is
    /// a few KiB), and the process's memory is what must stay bounded under any mix of them.
    pub fn new(max_bytes: u64, max_ttl: Duration) -> MemoryCache {
        MemoryCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, value: &(Bytes, Duration)| weight(key.len() + value.0.len()))
                .time_to_live(max_ttl)
                .expire_after(EntryTtl)
                .build(),
            tags: Mutex::new(
                moka::sync::Cache::builder()
                    .max_capacity(max_bytes)
                    .weigher(|key: &String, _: &u64| weight(key.len() + 8))
                    .time_to_idle(TAG_TTL)
                    .build(),
            ),
            common: Common::default(),
        }
    }

    /// Counts its reads in `counters`.
    pub fn counted(mut self, counters: Counters) -> MemoryCache {
        self.common = Common::new(counters);
        self
    }
}

/// What an entry of `bytes` costs in a [`MemoryCache`]: its bytes and about what the cache
/// keeps beside each entry.
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX)
}

const ENTRY_OVERHEAD: usize = 96;

/// Entries expire after the TTL they were stored with.
struct EntryTtl;

impl moka::Expiry<String, (Bytes, Duration)> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &(Bytes, Duration),
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

/// How long a tag's version lives unused. It must outlive every entry stored under it; when
/// it lapses the tag restarts at a fresh random version, which no stored entry can match.
const TAG_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A first version for a tag: random, so it never repeats one an evicted tag had.
fn fresh_version() -> u64 {
    rand::random::<u64>() >> 2
}

impl Cache for MemoryCache {
    fn common(&self) -> &Common {
        &self.common
    }

    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>> {
        let known = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        let versions = tags.iter().map(|t| known.get_with(t.clone(), fresh_version)).collect();
        Box::pin(async move { versions })
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>> {
        let found = self.entries.get(key).and_then(|(bytes, _)| unframe(&bytes, versions));
        Box::pin(async move { found })
    }

    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()> {
        self.entries.insert(key.to_owned(), (frame(versions, &value), ttl));
        Box::pin(async {})
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()> {
        let known = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        for tag in tags {
            let next = known.get(tag).map(|v| v.wrapping_add(1)).unwrap_or_else(fresh_version);
            known.insert(tag.clone(), next);
        }
        Box::pin(async {})
    }
}

/// In Redis: entries at `<prefix>:cache:entry:<key>` with a TTL, tag versions at
/// `<prefix>:cache:{tags}:<tag>`. The versions of an entry's tags are read and bumped together
/// by one script, so on a Redis Cluster they share a slot (the `{tags}` hash tag); entries
/// spread over the cluster.
pub struct RedisCache {
    connection: medcov_redis::RedisConnection,
    prefix: String,
    common: Common,
    /// Tags whose invalidation Redis did not take (it was unreachable): bumped before this
    /// process reads the cache again, so an entry another process stored before the write is
    /// not served once Redis is back with its data.
    missed: Mutex<std::collections::BTreeSet<String>>,
    /// Where entries go while Redis is unreachable, for [`FALLBACK_TTL`] at most. Its versions
    /// carry [`IN_PROCESS`], so `get` and `put` know where the versions they are given came from.
    fallback: MemoryCache,
    /// The near tier: copies of entries of one or more tags that this process stored or read,
    /// framed with their versions as in Redis, each until its Redis TTL ends. A reader reads
    /// the tags' current versions first (from Redis, or as Redis keeps this process told:
    /// [`known`]), and a copy answers only for exactly those versions. Since versions only
    /// move forward, a copy whose versions are still current is what Redis itself would
    /// answer: no invalidated entry is ever served from it. It saves the entry's `GET` of
    /// every hit.
    near: moka::sync::Cache<String, (Bytes, Duration)>,
    /// The tag versions this process knows, kept current by Redis ([`known`]).
    known: std::sync::Arc<known::Known>,
}

/// The most the near tier of a [`RedisCache`] holds, in bytes of keys and values.
pub const NEAR_BYTES: u64 = 32 * 1024 * 1024;

/// The most the in-process stand-in of a [`RedisCache`] holds while Redis is unreachable.
pub const FALLBACK_BYTES: u64 = 16 * 1024 * 1024;

/// How long an entry kept in process while Redis is unreachable lives: the most a write in
/// another process can take to show here during an outage.
pub const FALLBACK_TTL: Duration = Duration::from_secs(5);

/// The mark of a version read from the in-process fallback (Redis's versions stay below 2^62).
const IN_PROCESS: u64 = 1 << 63;

/// The versions of the tags in KEYS, starting a missing one at its ARGV value.
const VERSIONS: &str = r#"
local out = {}
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v then
    v = ARGV[i]
    redis.call('SET', key, v, 'EX', ttl)
  end
  out[i] = v
end
return out
"#;

/// Moves every tag in KEYS to a new version; a missing one starts at its ARGV value.
const BUMP: &str = r#"
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('INCR', key)
    redis.call('EXPIRE', key, ttl)
  else
    redis.call('SET', key, ARGV[i], 'EX', ttl)
  end
end
return 0
"#;

static VERSIONS_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(VERSIONS));
static BUMP_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(BUMP));

impl RedisCache {
    pub fn new(connection: medcov_redis::RedisConnection, prefix: &str) -> RedisCache {
        let tags_prefix = format!("{prefix}:cache:{}:", medcov_redis::hash_tag("tags"));
        RedisCache {
            known: std::sync::Arc::new(known::Known::new(tags_prefix)),
            connection,
            prefix: prefix.to_owned(),
            common: Common::default(),
            missed: Mutex::default(),
            fallback: MemoryCache::new(FALLBACK_BYTES, FALLBACK_TTL),
            near: moka::sync::Cache::builder()
                .max_capacity(NEAR_BYTES)
                .weigher(|key: &String, value: &(Bytes, Duration)| {
                    u32::try_from(key.len() + value.0.len() + 64).unwrap_or(u32::MAX)
                })
                .expire_after(EntryTtl)
                .build(),
        }
    }

    /// The tracking connection that keeps the known versions current ([`known`]): a number
    /// that changes with every new one, or `None` while there is none (before the first read
    /// of versions, while Redis is away, and always on a cluster).
    pub fn tracking(&self) -> Option<u64> {
        self.known.tracking()
    }

    /// Counts its reads in `counters`.
    pub fn counted(mut self, counters: Counters) -> RedisCache {
        self.common = Common::new(counters);
        self
    }

    fn script(&self, script: &'static redis::Script, tags: &[String]) -> redis::ScriptInvocation<'static> {
        let mut invocation = script.prepare_invoke();
        for tag in tags {
            invocation.key(self.tag_key(tag)).arg(fresh_version());
        }
        invocation.arg(TAG_TTL.as_secs());
        invocation
    }

    /// A tag's version: every tag in one cluster slot, so one script can read or bump several.
    pub fn tag_key(&self, tag: &str) -> String {
        format!("{}:cache:{}:{tag}", self.prefix, medcov_redis::hash_tag("tags"))
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}:cache:entry:{key}", self.prefix)
    }

    /// Bumps the tags whose invalidation was missed; false while Redis still cannot take it.
    async fn catch_up(&self) -> bool {
        let missed: Vec<String> = self.missed.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        if missed.is_empty() {
            return true;
        }
        let mut connection = self.connection.clone();
        match self.script(&BUMP_SCRIPT, &missed).invoke_async::<()>(&mut connection).await {
            Ok(()) => {
                let mut still = self.missed.lock().unwrap_or_else(|p| p.into_inner());
                for tag in &missed {
                    still.remove(tag);
                }
                tracing::info!(tags = missed.len(), "missed cache invalidations applied now that Redis answers");
                true
            }
            Err(_) => false,
        }
    }
}

fn warn(what: &str, error: &redis::RedisError) {
    // While Redis is known unreachable (its breaker open) the outage was logged once already.
    if !medcov_redis::failing_fast(error) {
        tracing::warn!(error = %error, "Redis cache {what} failed; caching in process for a few seconds");
    }
}

/// Whether `versions` came from the in-process fallback.
fn in_process(versions: &[u64]) -> bool {
    versions.iter().any(|v| v & IN_PROCESS != 0)
}

impl Cache for RedisCache {
    fn common(&self) -> &Common {
        &self.common
    }

    fn versions<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Vec<u64>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Vec::new();
            }
            let in_process = async || self.fallback.versions(tags).await.into_iter().map(|v| v | IN_PROCESS).collect();
            // Invalidations Redis missed go first, whoever asks: other processes rely on them.
            if !self.catch_up().await {
                return in_process().await;
            }
            // As this process knows them, when Redis keeps it told (see `known`).
            self.known.start(&self.connection);
            let epoch = match self.known.read(tags).await {
                known::Read::Current(versions) => return versions,
                known::Read::Ask(epoch) => epoch,
            };
            let mut connection = self.connection.clone();
            // Every tag has a version but right after it was first used or forgotten: a plain
            // MGET then (cheaper for Redis than the script), the script for the missing ones.
            let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
            if let Ok(values) = redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<u64>>>(&mut connection).await
                && let Some(values) = values.into_iter().collect::<Option<Vec<u64>>>()
            {
                self.known.learn(epoch, tags, &values);
                return values;
            }
            match self.script(&VERSIONS_SCRIPT, tags).invoke_async::<Vec<u64>>(&mut connection).await {
                Ok(values) => {
                    self.known.learn(epoch, tags, &values);
                    values
                }
                Err(e) => {
                    warn("version read", &e);
                    in_process().await
                }
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            if in_process(versions) {
                return self.fallback.get(key, versions).await;
            }
            if !versions.is_empty()
                && let Some((framed, _)) = self.near.get(key)
                && let Some(value) = unframe(&framed, versions)
            {
                return Some(value);
            }
            let mut connection = self.connection.clone();
            let entry = self.entry_key(key);
            let read = redis::pipe()
                .cmd("GET")
                .arg(&entry)
                .cmd("PTTL")
                .arg(&entry)
                .query_async::<(Option<Vec<u8>>, i64)>(&mut connection)
                .await;
            match read {
                Ok((Some(bytes), ttl)) => {
                    let value = unframe(&bytes, versions);
                    // A current entry of tags, kept near for the rest of its life in Redis.
                    if value.is_some()
                        && !versions.is_empty()
                        && let Ok(ttl @ 1..) = u64::try_from(ttl)
                    {
                        self.near.insert(key.to_owned(), (Bytes::from(bytes), Duration::from_millis(ttl)));
                    }
                    value
                }
                Ok((None, _)) => None,
                // An entry of no tags (no versions to tell where it was kept) may be in process.
                Err(e) => {
                    warn("read", &e);
                    self.fallback.get(key, versions).await
                }
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, versions: &'a [u64], value: Bytes, ttl: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if in_process(versions) {
                return self.fallback.put(key, versions, value, ttl.min(FALLBACK_TTL)).await;
            }
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let framed = frame(versions, &value);
            if versions.is_empty() {
                // An entry of no tags is read from Redis every time: only its TTL or the next
                // put ends it, and the next put may be another process's.
                self.near.invalidate(key);
            } else {
                self.near.insert(key.to_owned(), (framed.clone(), ttl));
            }
            let stored = redis::cmd("SET")
                .arg(self.entry_key(key))
                .arg(framed.to_vec())
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await;
            if let Err(e) = stored {
                warn("write", &e);
                if versions.is_empty() {
                    self.fallback.put(key, versions, value, ttl.min(FALLBACK_TTL)).await;
                }
            }
        })
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if tags.is_empty() {
                return;
            }
            // The entries kept in process during an outage, too.
            self.fallback.invalidate(tags).await;
            // Forgotten before the bump, so no read of the old versions in flight is kept,
            // and after, so none read meanwhile is.
            self.known.forget(tags);
            let mut connection = self.connection.clone();
            let bumped = self.script(&BUMP_SCRIPT, tags).invoke_async::<()>(&mut connection).await;
            self.known.forget(tags);
            if let Err(e) = bumped {
                // Kept, and applied before this process reads the cache again. Other processes
                // could serve an older entry of these tags meanwhile, if Redis comes back with
                // its data before this one reads: say so once per outage.
                if !medcov_redis::failing_fast(&e) {
                    tracing::error!(error = %e, "Redis cache invalidation failed; it is applied once Redis answers again");
                }
                self.missed.lock().unwrap_or_else(|p| p.into_inner()).extend(tags.iter().cloned());
            }
        })
    }

    fn tracked(&self) -> Option<bool> {
        Some(self.known.tracking().is_some())
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

    /// Four times its budget stored, a memory cache keeps within it, and keeps what it can.
    #[tokio::test]
    async fn a_memory_cache_holds_no_more_bytes_than_its_budget() {
        const BUDGET: u64 = 1024 * 1024;
        let cache = MemoryCache::new(BUDGET, Duration::from_secs(60));
        let value = Bytes::from(vec![7u8; 16 * 1024]);
        for n in 0..256 {
            cache.put(&format!("answer-{n}"), &[], value.clone(), Duration::from_secs(60)).await;
        }
        cache.entries.run_pending_tasks();
        let held = cache.entries.weighted_size();
        assert!(held <= BUDGET, "{held} bytes held against a budget of {BUDGET}");
        assert!(held >= BUDGET / 2, "{held} bytes held: it should keep what fits");
        let kept = (0..256).filter(|n| cache.entries.contains_key(&format!("answer-{n}"))).count();
        assert!((32..64).contains(&kept), "{kept} answers of 16 KiB kept in 1 MiB");
    }
}
