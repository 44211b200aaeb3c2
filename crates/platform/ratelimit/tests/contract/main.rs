//! The Redis script against the same table as the Rust rule, on the local Redis and on a
//! Redis Cluster.

use medcov_ratelimit::{GCRA_TABLE, Limiter, Quota, RedisLimiter, gcra};
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

/// Requests arriving at once, run together by the script, are decided as the rule decides
/// them one after the other: for 60 a minute with a burst of 3, three at once then one more a
/// second later (the table's first rows, at once), then eight at once when the burst is back.
async fn requests_at_once_are_decided_in_order(env: TestEnv) {
    let limiter = limiter(&env).await;
    let quota = Quota::per_minute(60, 3);
    let start = 1_700_000_000_000_000;
    let at_once = |requests, at: i64| limiter.take_at("batch", &quota, requests, Some(start + at * 1_000_000));
    let seen = |decisions: Vec<medcov_ratelimit::Decision>| -> Vec<(bool, u32, u128)> {
        decisions.into_iter().map(|d| (d.allowed, d.remaining, d.retry_after.as_millis())).collect()
    };
    assert_eq!(
        seen(at_once(4, 0).await.expect("script runs")),
        [(true, 2, 0), (true, 1, 0), (true, 0, 0), (false, 0, 1_000)],
        "the table's first four rows"
    );
    assert_eq!(seen(at_once(2, 1).await.expect("script runs")), [(true, 0, 0), (false, 0, 1_000)]);
    // The same as the rule in Rust, request by request.
    let mut tat = None;
    let expected: Vec<(bool, u32, u128)> = (0..8)
        .map(|_| {
            let (decision, new_tat) = gcra(&quota, tat, start + 10_000_000);
            tat = new_tat.or(tat);
            (decision.allowed, decision.remaining, decision.retry_after.as_millis())
        })
        .collect();
    assert_eq!(seen(at_once(8, 10).await.expect("script runs")), expected);
}

/// Many checks of one key at once through the limiter: exactly the burst is allowed, each
/// remaining count is given once, and the checks that came while a script ran shared the next.
async fn concurrent_checks_share_scripts_and_get_the_burst_exactly(env: TestEnv) {
    let limiter = std::sync::Arc::new(limiter(&env).await);
    let quota = Quota::per_minute(1, 40);
    let checks: Vec<_> = (0..100)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("busy", &quota).await })
        })
        .collect();
    let mut decisions = Vec::new();
    for check in checks {
        decisions.push(check.await.expect("check"));
    }
    let mut remaining: Vec<u32> = decisions.iter().filter(|d| d.allowed).map(|d| d.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..40).collect::<Vec<u32>>(), "the burst, each count once");
    assert!(decisions.iter().filter(|d| !d.allowed).all(|d| d.retry_after > std::time::Duration::ZERO));
    assert!(limiter.runs() < 100, "checks waiting on a running script share the next: {} runs", limiter.runs());
}

/// Checks cancelled at any point (their clients went away) never leave a key with no one to
/// run its script: a later check of the key is always decided.
async fn cancelled_checks_never_stall_a_key(env: TestEnv) {
    let limiter = std::sync::Arc::new(limiter(&env).await);
    let quota = Quota::per_minute(1_000_000, 1_000_000);
    for round in 0..30 {
        let checks: Vec<_> = (0..64)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.check("cancelled", &quota).await })
            })
            .collect();
        // Cancelled at different moments: some before their turn, some told to lead.
        for _ in 0..round % 5 {
            tokio::task::yield_now().await;
        }
        for (i, check) in checks.iter().enumerate() {
            if i % 2 == round % 2 {
                check.abort();
            }
        }
        let patience = std::time::Duration::from_secs(5);
        for check in checks {
            let ended = tokio::time::timeout(patience, check).await;
            assert!(ended.is_ok(), "round {round}: every check not cancelled is decided");
        }
        let later = tokio::time::timeout(patience, limiter.check("cancelled", &quota)).await;
        assert!(later.is_ok_and(|d| d.allowed), "round {round}: the key still has its script run");
    }
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

    #[tokio::test]
    async fn requests_at_once_are_decided_in_order() {
        super::requests_at_once_are_decided_in_order(super::TestEnv::distributed().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_checks_never_stall_a_key() {
        super::cancelled_checks_never_stall_a_key(super::TestEnv::distributed().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_share_scripts_and_get_the_burst_exactly() {
        super::concurrent_checks_share_scripts_and_get_the_burst_exactly(super::TestEnv::distributed().await).await;
    }
}

medcov_testkit::redis_cluster_suite!(
    the_script_follows_the_table,
    instances_share_one_limit_on_the_redis_clock,
    requests_at_once_are_decided_in_order
);
