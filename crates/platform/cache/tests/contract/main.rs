//! The cache contract, on both implementations (Redis on one server and on a Redis Cluster):
//! what a reader may rely on.

use std::time::Duration;

use bytes::Bytes;
use medcov_cache::{Cache, MemoryCache, RedisCache, read_through};
use medcov_testkit::{TestBackend, TestEnv};

/// The connection the runtime would make for the environment's `redis.*` settings.
fn connection(env: &TestEnv) -> medcov_redis::RedisConnection {
    let url = env.config.redis.url.as_ref().expect("redis url");
    let client = medcov_redis::RedisClient::open(url, env.config.redis.is_cluster()).expect("client");
    client.connection().expect("connection")
}

async fn redis_cache(backend: TestBackend) -> (TestEnv, RedisCache) {
    let env = TestEnv::new(backend).await;
    let prefix = env.redis_prefix().expect("prefix").to_owned();
    let cache = RedisCache::new(connection(&env), &prefix);
    (env, cache)
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

async fn load(value: &'static str, calls: &std::sync::atomic::AtomicUsize) -> Result<Bytes, ()> {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(Bytes::from_static(value.as_bytes()))
}

async fn hits_until_a_tag_is_invalidated(cache: &dyn Cache) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let t = tags(&["patient:1"]);
    let ttl = Duration::from_secs(60);
    assert_eq!(read_through(cache, "p1", &t, ttl, load("v1", &calls)).await, Ok(Bytes::from_static(b"v1")));
    assert_eq!(read_through(cache, "p1", &t, ttl, load("v1", &calls)).await, Ok(Bytes::from_static(b"v1")));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the second read is a hit");
    cache.invalidate(&t).await;
    assert_eq!(read_through(cache, "p1", &t, ttl, load("v2", &calls)).await, Ok(Bytes::from_static(b"v2")));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Another tag's invalidation leaves the entry alone.
    cache.invalidate(&tags(&["patient:2"])).await;
    assert_eq!(read_through(cache, "p1", &t, ttl, load("v3", &calls)).await, Ok(Bytes::from_static(b"v2")));
}

async fn a_read_racing_a_write_stores_nothing_servable(cache: &dyn Cache) {
    // Reader notes versions, then (slowly) loads the old record; meanwhile a writer commits and
    // invalidates. The reader's entry must not be served afterwards.
    let t = tags(&["patient:9"]);
    let noted = cache.versions(&t).await;
    cache.invalidate(&t).await;
    cache.put("p9", &noted, Bytes::from_static(b"old"), Duration::from_secs(60)).await;
    let now = cache.versions(&t).await;
    assert_eq!(cache.get("p9", &now).await, None, "the stale entry is not served");
}

async fn concurrent_misses_load_once(cache: &dyn Cache) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let t = tags(&["plan:1"]);
    let slow = || async {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A slow load is the behaviour under test: the other readers arrive while it runs.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, ()>(Bytes::from_static(b"plan"))
    };
    let reads = (0..20).map(|_| read_through(cache, "plan1", &t, Duration::from_secs(60), slow()));
    let values = futures::future::join_all(reads).await;
    assert!(values.iter().all(|v| v.as_deref() == Ok(&b"plan"[..])), "{values:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one load for twenty concurrent misses");
}

async fn a_failed_load_leaves_the_others_to_load(cache: &dyn Cache) {
    let t = tags(&["plan:2"]);
    // The order is the behaviour under test: the failing load starts first and fails while
    // the second reader waits on it.
    let failing = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<Bytes, &str>("database down")
    };
    let working = async { Ok::<_, &str>(Bytes::from_static(b"ok")) };
    let (first, second) = tokio::join!(read_through(cache, "plan2", &t, Duration::from_secs(60), failing), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        read_through(cache, "plan2", &t, Duration::from_secs(60), working).await
    });
    assert_eq!((first, second), (Err("database down"), Ok(Bytes::from_static(b"ok"))));
}

async fn an_entry_lives_as_long_as_its_ttl(cache: &dyn Cache) {
    let t = tags(&["short"]);
    let versions = cache.versions(&t).await;
    cache.put("short", &versions, Bytes::from_static(b"s"), Duration::from_millis(100)).await;
    assert!(cache.get("short", &versions).await.is_some());
    medcov_testkit::until("the entry to expire", medcov_testkit::PATIENCE, async || {
        cache.get("short", &versions).await.is_none()
    })
    .await;
}

async fn the_contract(cache: &dyn Cache) {
    an_entry_lives_as_long_as_its_ttl(cache).await;
    hits_until_a_tag_is_invalidated(cache).await;
    a_read_racing_a_write_stores_nothing_servable(cache).await;
    concurrent_misses_load_once(cache).await;
    a_failed_load_leaves_the_others_to_load(cache).await;
}

#[tokio::test]
async fn memory_cache_keeps_the_contract() {
    the_contract(&MemoryCache::new(1024 * 1024, Duration::from_secs(60))).await;
}

#[tokio::test]
async fn redis_cache_keeps_the_contract() {
    let (_env, cache) = redis_cache(TestBackend::Distributed).await;
    the_contract(&cache).await;
}

/// On a cluster, the tags an entry has live on one slot, whatever their names: reading and
/// invalidating several at once works.
#[tokio::test]
async fn redis_cluster_cache_keeps_the_contract() {
    let (_env, cache) = redis_cache(TestBackend::RedisCluster).await;
    the_contract(&cache).await;
    let many = tags(&["patient:1", "hospital:2", "plan:3", "encounter:4", "insurer:5"]);
    let before = cache.versions(&many).await;
    assert!(!before.contains(&u64::MAX), "every version read: {before:?}");
    cache.invalidate(&many[1..3]).await;
    let after = cache.versions(&many).await;
    let moved: Vec<bool> = before.iter().zip(&after).map(|(b, a)| b != a).collect();
    assert_eq!(moved, [false, true, true, false, false]);
}

#[tokio::test]
async fn an_evicted_tag_never_resurrects_a_stale_entry() {
    an_evicted_tag_never_resurrects_a_stale_entry_on(TestBackend::Distributed).await;
}

#[tokio::test]
async fn on_a_cluster_an_evicted_tag_never_resurrects_a_stale_entry() {
    an_evicted_tag_never_resurrects_a_stale_entry_on(TestBackend::RedisCluster).await;
}

/// Redis may evict a tag's version under memory pressure (in-process tags are never evicted).
/// An entry stored before must not come back to life.
async fn an_evicted_tag_never_resurrects_a_stale_entry_on(backend: TestBackend) {
    let (env, cache) = redis_cache(backend).await;
    let t = tags(&["patient:7"]);
    let first = cache.versions(&t).await;
    cache.put("p7", &first, Bytes::from_static(b"v1"), Duration::from_secs(60)).await;
    cache.invalidate(&t).await;
    let mut redis = connection(&env);
    // The tag is evicted, then invalidated once more (or simply read): it restarts somewhere new.
    let tag_key = cache.tag_key("patient:7");
    assert!(tag_key.starts_with(env.redis_prefix().expect("prefix")), "{tag_key}");
    let ttl: i64 = redis::cmd("TTL").arg(&tag_key).query_async(&mut redis).await.expect("ttl");
    assert!(ttl > 24 * 3600, "tag versions expire, long after any entry: {ttl}");
    for evict_then_bump in [false, true] {
        let _: () = redis::cmd("DEL").arg(&tag_key).query_async(&mut redis).await.expect("evicted");
        if evict_then_bump {
            cache.invalidate(&t).await;
        }
        let now = cache.versions(&t).await;
        assert_ne!(now, first);
        assert_eq!(cache.get("p7", &now).await, None, "the old entry stays dead");
    }
}

/// A connection to a Redis that is not there, as the runtime makes it.
pub(crate) fn nowhere() -> medcov_redis::RedisConnection {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let url = format!("redis://{unused}").parse().expect("url");
    medcov_redis::RedisClient::open(&url, false).expect("client").connection().expect("lazy")
}

/// Redis unreachable: the entries are kept in process (for a few seconds), with the same
/// contract, and nothing fails.
#[tokio::test]
async fn redis_down_means_an_in_process_cache_with_the_same_contract() {
    let cache = RedisCache::new(nowhere(), "down");
    the_contract(&cache).await;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let t = tags(&["x"]);
    for _ in 0..2 {
        let value = read_through(&cache, "k", &t, Duration::from_secs(60), load("fresh", &calls)).await;
        assert_eq!(value, Ok(Bytes::from_static(b"fresh")));
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the second read is a hit, in process");
}

/// Redis goes away, a write's invalidation cannot reach it, and Redis comes back with its data
/// (the old entry among it): the missed invalidation is applied before anything is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_redis_missed_is_applied_when_it_returns() {
    let mut server = tokio::task::spawn_blocking(medcov_testkit::private_redis::PrivateRedis::start).await.unwrap();
    let client = medcov_redis::RedisClient::open(&server.url().parse().unwrap(), false).expect("client");
    let cache = RedisCache::new(client.connection().expect("connection"), "missed");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let t = tags(&["patient:5"]);
    let ttl = Duration::from_secs(60);
    assert_eq!(read_through(&cache, "p5", &t, ttl, load("old", &calls)).await, Ok(Bytes::from_static(b"old")));
    assert_eq!(read_through(&cache, "p5", &t, ttl, load("old", &calls)).await, Ok(Bytes::from_static(b"old")));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "a hit");

    server.save();
    server.kill();
    cache.invalidate(&t).await;
    assert!(!client.status().available);
    // Meanwhile reads go to the source.
    assert_eq!(read_through(&cache, "p5", &t, ttl, load("new", &calls)).await, Ok(Bytes::from_static(b"new")));

    let server = tokio::task::spawn_blocking(move || {
        server.start_again_with_data();
        server
    })
    .await
    .unwrap();
    medcov_testkit::until("Redis to be reachable again", Duration::from_secs(10), async || client.status().available)
        .await;
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(read_through(&cache, "p5", &t, ttl, load("new", &calls)).await, Ok(Bytes::from_static(b"new")));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), before + 1, "the old entry was not served");
    drop(server);
}

/// How often the private Redis ran a command.
async fn calls(connection: &mut medcov_redis::RedisConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(connection).await.expect("INFO");
    let line = format!("cmdstat_{command}:calls=");
    info.lines().find_map(|l| l.strip_prefix(&line)?.split(',').next()?.parse().ok()).unwrap_or(0)
}

/// The tracking connections (`CLIENT TRACKING ... BCAST`) of the private Redis, by id.
async fn trackers(connection: &mut medcov_redis::RedisConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(connection).await.expect("CLIENT LIST");
    list.lines()
        .filter(|l| l.split(' ').any(|f| f.strip_prefix("flags=").is_some_and(|flags| flags.contains('t'))))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(str::to_owned))
        .collect()
}

/// Two processes share a Redis. Once one has read a tag's version it reads it again without an
/// `MGET`, yet a write completed in the other process is seen by its very next read; a tracking
/// connection that is lost forgets everything it knew, so a write made while it was away is
/// never missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_versions_are_read_without_an_mget_and_see_every_write_elsewhere() {
    let server = tokio::task::spawn_blocking(medcov_testkit::private_redis::PrivateRedis::start).await.unwrap();
    let url = server.url().parse().unwrap();
    let open = || medcov_redis::RedisClient::open(&url, false).expect("client").connection().expect("connection");
    let (reader, writer) = (RedisCache::new(open(), "known"), RedisCache::new(open(), "known"));
    let mut admin = open();
    let t = tags(&["hospital:1"]);
    // The writer only writes (so the reader's is the one tracking connection); the versions
    // are read straight from Redis.
    let key = writer.tag_key(&t[0]);
    let current = async || vec![redis::cmd("GET").arg(&key).query_async::<u64>(&mut open()).await.expect("GET")];

    let first = reader.versions(&t).await;
    medcov_testkit::until("the reader to track the tags", medcov_testkit::PATIENCE, async || {
        reader.tracking().is_some()
    })
    .await;
    assert_eq!(reader.versions(&t).await, first, "learnt from Redis once tracked");
    let (mgets, pings) = (calls(&mut admin, "mget").await, calls(&mut admin, "ping").await);
    for _ in 0..100 {
        assert_eq!(reader.versions(&t).await, first);
    }
    assert_eq!(calls(&mut admin, "mget").await, mgets, "known versions need no MGET");
    assert!(calls(&mut admin, "ping").await > pings, "but a PING, to know nothing changed");

    // Writes in another process, each seen by the very next read: many times, so a read that
    // did not wait for Redis's message would be caught.
    let mut last = first;
    for _ in 0..200 {
        writer.invalidate(&t).await;
        let now = reader.versions(&t).await;
        assert_ne!(now, last, "a write completed before the read is seen");
        assert_eq!(now, current().await);
        last = now;
    }

    // The tracking connection is lost and a write is made while it is away: the reader never
    // serves what it knew before, and tracks again.
    let lost = reader.tracking().expect("tracking");
    let ids = trackers(&mut admin).await;
    assert_eq!(ids.len(), 1, "one tracking connection: {ids:?}");
    let _: () = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&ids[0]).query_async(&mut admin).await.expect("kill");
    writer.invalidate(&t).await;
    let after = current().await;
    assert_eq!(reader.versions(&t).await, after, "seen while the reader is not tracking");
    medcov_testkit::until("the reader to track again", medcov_testkit::PATIENCE, async || {
        reader.tracking().is_some_and(|now| now != lost)
    })
    .await;
    assert_eq!(reader.versions(&t).await, after, "what was known before the loss is forgotten");
    writer.invalidate(&t).await;
    assert_eq!(reader.versions(&t).await, current().await, "and the new connection is told");
    drop(server);
}

/// The tasks that keep the known versions run on the runtime of the first read. When that
/// runtime ends (a cache shared by tests, or built before the server's runtime), reads in
/// another go on, and start the tasks again there.
#[test]
fn reads_outlive_the_runtime_that_started_tracking() {
    let env = tokio::runtime::Runtime::new().unwrap().block_on(TestEnv::new(TestBackend::Distributed));
    let prefix = env.redis_prefix().expect("prefix").to_owned();
    let cache = std::sync::Arc::new(RedisCache::new(connection(&env), &prefix));
    let t = tags(&["hospital:2"]);
    let first = tokio::runtime::Runtime::new().unwrap();
    first.block_on(async {
        cache.versions(&t).await;
        medcov_testkit::until("the cache to track its tags", medcov_testkit::PATIENCE, async || {
            cache.tracking().is_some()
        })
        .await;
    });
    drop(first);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let read = tokio::time::timeout(Duration::from_secs(5), cache.versions(&t)).await;
        assert!(read.is_ok(), "a read after the first runtime ended is answered");
        medcov_testkit::until("the cache to track again", medcov_testkit::PATIENCE, async || {
            cache.versions(&t).await;
            cache.tracking().is_some()
        })
        .await;
        cache.invalidate(&t).await;
        let now = cache.versions(&t).await;
        assert_eq!(cache.versions(&t).await, now);
    });
}
