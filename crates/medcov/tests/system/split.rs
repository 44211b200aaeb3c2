//! The gateway in one runtime, the services in another, meeting over HTTP as two processes do.

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;

use crate::support::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_gateway_reaches_the_services_over_http() {
    let env = TestEnv::distributed().await;
    let services = App::start(env.config.clone(), "auth,hospital,insurance,billing").await;

    let mut gateway_config = env.config.clone();
    for name in [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing] {
        gateway_config.services.get_mut(name).url = Some(services.url(name, "/").parse().expect("url"));
    }
    let gateway = App::start(gateway_config, "gateway").await;
    assert!(gateway.running.as_ref().and_then(|r| r.addr(ServiceName::Hospital)).is_none());

    let (status, _, body) = gateway.get(ServiceName::Gateway, "/api/hospital/health/ready").await;
    assert_eq!((status, body["service"].as_str()), (200, Some("hospital")), "{body}");
    let (status, _, body) = gateway.get(ServiceName::Gateway, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    let upstreams: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with("upstream:"))
        .collect();
    assert_eq!(upstreams, ["upstream:auth", "upstream:hospital", "upstream:insurance", "upstream:billing"]);

    // The services go away: the gateway says so, as problems and in its readiness.
    services.stop().await;
    let (status, headers, body) = gateway.get(ServiceName::Gateway, "/api/hospital/health/ready").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, body) = gateway.get(ServiceName::Gateway, "/health/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    gateway.stop().await;
}

/// As in a container or a pod: the service listens on every interface, the address callers are
/// configured with leads nowhere (a Service name that does not route, say), and the instance
/// registers the address it is reached at, `mesh.advertise_host` with its port. The gateway finds
/// it through the registry alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_registers_its_advertised_address_and_is_reached_there() {
    let env = TestEnv::distributed().await;
    let nowhere: url::Url = "http://127.0.0.1:1/".parse().expect("url");
    let mut hospital_config = env.config.clone();
    hospital_config.http.host = std::net::Ipv4Addr::UNSPECIFIED.into();
    hospital_config.services.get_mut(ServiceName::Hospital).url = Some(nowhere.clone());
    hospital_config.mesh.advertise_host = "127.0.0.2".into();
    let hospital = App::start(hospital_config, "hospital").await;
    let port = hospital.running.as_ref().and_then(|r| r.addr(ServiceName::Hospital)).expect("listening").port();

    let mut gateway_config = env.config.clone();
    gateway_config.services.get_mut(ServiceName::Hospital).url = Some(nowhere);
    let gateway = App::start(gateway_config, "gateway").await;

    let url = env.config.redis.url.as_ref().expect("redis");
    let client = medcov_redis::RedisClient::open(url, false).expect("client");
    let registry =
        medcov_mesh::RedisRegistry::new(client.connection().expect("connection"), &env.config.redis.key_prefix);
    let registered = medcov_mesh::Registry::instances(&registry, "hospital").await.expect("the registry");
    let addresses: Vec<String> = registered.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(addresses, [format!("http://127.0.0.2:{port}/")]);

    // The gateway reads the registry every heartbeat: poll until it has, then call through it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _, body) = gateway.get(ServiceName::Gateway, "/api/hospital/health/ready").await;
        if status == 200 {
            assert_eq!(body["service"], "hospital", "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reached through the registry: {status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gateway.stop().await;
    hospital.stop().await;
}
