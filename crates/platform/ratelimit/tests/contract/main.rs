//! The Redis script against the same table as the Rust rule, on the local Redis and on a
//! Redis Cluster.

use medcov_ratelimit::{GCRA_TABLE, Quota, RedisLimiter};
use medcov_testkit::TestEnv;

async fn limiter(env: &TestEnv) -> RedisLimiter {
    let url = env.config.redis.url.as_ref().expect("redis url");
    let client = medcov_redis::RedisClient::open(url, env.config.redis.is_cluster()).expect("client");
    RedisLimiter::new(client.connection().expect("connection"), env.redis_prefix().expect("prefix"))
}

async fn the_script_follows_the_table(env: TestEnv) {
    let limiter = limiter(&env).await;
    let quota = Quota::per_minute(60, 3);
    let start = 1_700_000_000_000_000;
    for (i, (at, allowed, remaining, retry_ms)) in GCRA_TABLE.into_iter().enumerate() {
        let d = limiter.check_at("k", &quota, Some(start + at * 1_000_000)).await.expect("script runs");
        assert_eq!(
            (d.allowed, d.remaining, d.retry_after.as_millis() as u64),
            (allowed, remaining, retry_ms),
            "row {i}"
        );
    }
}

async fn instances_share_one_limit_on_the_redis_clock(env: TestEnv) {
    let (a, b) = (limiter(&env).await, limiter(&env).await);
    let quota = Quota::per_minute(1, 3);
    let mut allowed = 0;
    for i in 0..6 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.check_at("shared", &quota, None).await.expect("script runs").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
}

mod distributed {
    #[tokio::test]
    async fn the_script_follows_the_table() {
        super::the_script_follows_the_table(super::TestEnv::distributed().await).await;
    }

    #[tokio::test]
    async fn instances_share_one_limit_on_the_redis_clock() {
        super::instances_share_one_limit_on_the_redis_clock(super::TestEnv::distributed().await).await;
    }
}

medcov_testkit::redis_cluster_suite!(the_script_follows_the_table, instances_share_one_limit_on_the_redis_clock);
