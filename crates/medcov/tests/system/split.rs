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
