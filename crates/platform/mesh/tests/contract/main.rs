//! The registry contract, on Redis (one server and a Redis Cluster) and in process: what a
//! caller may rely on.

use std::sync::Arc;
use std::time::Duration;

use medcov_mesh::{Instance, MemoryRegistry, RedisRegistry, Registry};
use medcov_testkit::{TestBackend, TestEnv};

async fn redis_registry(backend: TestBackend) -> (TestEnv, RedisRegistry) {
    let env = TestEnv::new(backend).await;
    let url = env.config.redis.url.as_ref().expect("redis url");
    let client = medcov_redis::RedisClient::open(url, env.config.redis.is_cluster()).expect("client");
    let prefix = env.redis_prefix().expect("prefix").to_owned();
    (env, RedisRegistry::new(client.connection().expect("connection"), &prefix))
}

fn instance(service: &str, port: u16) -> Instance {
    Instance::new(service, format!("http://127.0.0.1:{port}/").parse().expect("url"))
}

async fn instances_are_listed_per_service_in_order(registry: &dyn Registry) {
    let ttl = Duration::from_secs(30);
    for (service, port) in [("hospital", 4002), ("hospital", 4001), ("billing", 4004)] {
        registry.register(&instance(service, port), ttl).await.expect("registered");
    }
    let hospital = registry.instances("hospital").await.expect("listed");
    assert_eq!(hospital, [instance("hospital", 4001), instance("hospital", 4002)]);
    assert_eq!(registry.instances("billing").await.expect("listed"), [instance("billing", 4004)]);
    assert!(registry.instances("insurance").await.expect("listed").is_empty());
}

async fn a_heartbeat_renews_and_updates_the_registration(registry: &dyn Registry) {
    let mut one = instance("hospital", 4001);
    registry.register(&one, Duration::from_secs(30)).await.expect("registered");
    one.weight = 5;
    one.zone = "b".into();
    registry.register(&one, Duration::from_secs(30)).await.expect("renewed");
    assert_eq!(registry.instances("hospital").await.expect("listed"), [one]);
}

async fn a_registration_lapses_without_heartbeats(registry: &dyn Registry, wait: impl AsyncFn(Duration)) {
    registry.register(&instance("hospital", 4001), Duration::from_millis(300)).await.expect("registered");
    registry.register(&instance("hospital", 4002), Duration::from_secs(30)).await.expect("registered");
    assert_eq!(registry.instances("hospital").await.expect("listed").len(), 2);
    wait(Duration::from_millis(600)).await;
    assert_eq!(registry.instances("hospital").await.expect("listed"), [instance("hospital", 4002)]);
}

async fn deregistering_removes_at_once(registry: &dyn Registry) {
    let one = instance("hospital", 4001);
    registry.register(&one, Duration::from_secs(30)).await.expect("registered");
    registry.deregister("hospital", &one.id).await.expect("deregistered");
    assert!(registry.instances("hospital").await.expect("listed").is_empty());
    // Twice is harmless.
    registry.deregister("hospital", &one.id).await.expect("deregistered again");
}

/// The same tests on Redis, for each way Redis runs.
macro_rules! on_redis {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn instances_are_listed_per_service_in_order() {
                let (_env, registry) = redis_registry($backend).await;
                super::instances_are_listed_per_service_in_order(&registry).await;
            }

            #[tokio::test]
            async fn a_heartbeat_renews_and_updates_the_registration() {
                let (_env, registry) = redis_registry($backend).await;
                super::a_heartbeat_renews_and_updates_the_registration(&registry).await;
            }

            #[tokio::test]
            async fn a_registration_lapses_without_heartbeats() {
                let (_env, registry) = redis_registry($backend).await;
                // Redis's own clock expires the key: wait until it has (the contract then checks which).
                let lapsed = async |_| {
                    medcov_testkit::until("the short registration to lapse", medcov_testkit::PATIENCE, async || {
                        registry.instances("hospital").await.expect("listed").len() < 2
                    })
                    .await
                };
                super::a_registration_lapses_without_heartbeats(&registry, lapsed).await;
            }

            #[tokio::test]
            async fn deregistering_removes_at_once() {
                let (_env, registry) = redis_registry($backend).await;
                super::deregistering_removes_at_once(&registry).await;
            }
        }
    };
}

on_redis!(redis_backend, TestBackend::Distributed);
on_redis!(redis_cluster_backend, TestBackend::RedisCluster);

mod memory_backend {
    use super::*;
    use medcov_mesh::clock::ManualClock;

    fn registry() -> (Arc<ManualClock>, MemoryRegistry) {
        let clock = ManualClock::new();
        (clock.clone(), MemoryRegistry::new(clock))
    }

    #[tokio::test]
    async fn instances_are_listed_per_service_in_order() {
        super::instances_are_listed_per_service_in_order(&registry().1).await;
    }

    #[tokio::test]
    async fn a_heartbeat_renews_and_updates_the_registration() {
        super::a_heartbeat_renews_and_updates_the_registration(&registry().1).await;
    }

    #[tokio::test]
    async fn a_registration_lapses_without_heartbeats() {
        let (clock, registry) = registry();
        super::a_registration_lapses_without_heartbeats(&registry, async |d| clock.advance(d)).await;
    }

    #[tokio::test]
    async fn deregistering_removes_at_once() {
        super::deregistering_removes_at_once(&registry().1).await;
    }
}

/// The example policy shipped in deploy/ is valid.
#[test]
fn the_example_policy_is_valid() {
    // Where cargo says the crate is at run time (a binary reused from another checkout would
    // look in that one).
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
    let path = crate_dir.join("../../../deploy/mesh.example.toml");
    let policy = medcov_mesh::MeshPolicy::load(&path, &["auth", "hospital", "insurance", "billing"])
        .unwrap_or_else(|e| panic!("{e}"));
    // Eligibility is `POST /eligibility` (crates/services/insurance): its route must match that.
    let (route, settings) = policy.route("insurance", "POST", "/eligibility");
    assert_eq!((route.map(|r| r.name.as_str()), settings.timeout_ms), (Some("eligibility"), 800));
    let (route, _) = policy.route("insurance", "POST", "/claims/0190d1c8-0000-7000-8000-000000000000/adjudicate");
    assert_eq!(route.map(|r| r.name.as_str()), Some("claims"));
}
