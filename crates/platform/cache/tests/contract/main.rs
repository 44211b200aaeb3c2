//! The cache contract, on both implementations: what a reader may rely on.

use std::time::Duration;

use bytes::Bytes;
use medcov_cache::{Cache, MemoryCache, RedisCache, read_through};

async fn redis_cache() -> (medcov_testkit::TestEnv, RedisCache) {
    let env = medcov_testkit::TestEnv::distributed().await;
    let url = env.config.redis.url.as_ref().expect("redis url").expose().to_owned();
    let connection =
        redis::aio::ConnectionManager::new(redis::Client::open(url).expect("client")).await.expect("connection");
    let prefix = env.redis_prefix().expect("prefix").to_owned();
    (env, RedisCache::new(connection, &prefix))
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

#[tokio::test]
async fn memory_cache_keeps_the_contract() {
    let cache = MemoryCache::new(1_000, Duration::from_secs(60));
    hits_until_a_tag_is_invalidated(&cache).await;
    a_read_racing_a_write_stores_nothing_servable(&cache).await;
}

#[tokio::test]
async fn redis_cache_keeps_the_contract() {
    let (_env, cache) = redis_cache().await;
    hits_until_a_tag_is_invalidated(&cache).await;
    a_read_racing_a_write_stores_nothing_servable(&cache).await;
}

#[tokio::test]
async fn redis_down_means_misses_not_failures() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let client = redis::Client::open(format!("redis://{unused}")).expect("client");
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_number_of_retries(0);
    let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, config).expect("lazy");
    let cache = RedisCache::new(connection, "down");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let t = tags(&["x"]);
    for _ in 0..2 {
        let value = read_through(&cache, "k", &t, Duration::from_secs(1), load("fresh", &calls)).await;
        assert_eq!(value, Ok(Bytes::from_static(b"fresh")));
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "every read went to the source");
}
