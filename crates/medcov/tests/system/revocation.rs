//! Revocation takes effect everywhere at once: after a logout, a reused refresh token, a
//! deactivation, a new password or new roles, the access token already handed out is refused
//! by every service of a two-process deployment (the gateway in one process, the services in
//! another) within a second, with Redis and without it.

use std::time::{Duration, Instant};

use medcov_config::ServiceName;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::App;

/// Where a token is tried: through the gateway, and straight on each service's port.
const TRIED: [(ServiceName, &str); 4] = [
    (ServiceName::Auth, "/me"),
    (ServiceName::Hospital, "/hospitals"),
    (ServiceName::Insurance, "/insurers"),
    (ServiceName::Billing, "/invoices"),
];

struct Deployment {
    services: App,
    gateway: App,
    admin: String,
}

impl Deployment {
    async fn start(env: &TestEnv) -> Deployment {
        let mut config = env.config.clone();
        let services = App::start(config.clone(), "auth,hospital,insurance,billing").await;
        for name in [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing] {
            config.services.get_mut(name).url = Some(services.url(name, "/").parse().expect("url"));
        }
        let gateway = App::start(config, "gateway").await;
        let (username, password) = App::initial_admin(env.data_dir());
        let (admin, _) = gateway.login(&username, &password).await;
        Deployment { services, gateway, admin }
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.services.stop().await;
    }

    /// A new platform auditor; returns (id, username).
    async fn auditor(&self, name: &str) -> (String, String) {
        let (status, _, body) = self
            .gateway
            .call(
                Method::POST,
                "/api/auth/users",
                Some(&self.admin),
                Some(json!({"username": name, "password": PASSWORD, "roles": ["auditor"], "scope": {"kind": "platform"}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().expect("id").to_owned(), name.to_owned())
    }

    /// The status of `token` on every service, through the gateway and on the service's port.
    async fn statuses(&self, token: &str) -> Vec<(String, u16)> {
        let mut seen = Vec::new();
        for (service, path) in TRIED {
            let (status, _, _) =
                self.gateway.call(Method::GET, &format!("/api/{service}{path}"), Some(token), None).await;
            seen.push((format!("gateway /api/{service}{path}"), status));
            let response = self
                .services
                .client
                .get(self.services.url(service, path))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent");
            seen.push((format!("{service} port {path}"), response.status().as_u16()));
        }
        seen
    }

    /// Waits until every service refuses `token` (401), at most a second after the revocation
    /// was answered (`since`).
    async fn refused_everywhere_within_a_second(&self, token: &str, since: Instant, what: &str) {
        let left = Duration::from_secs(1).saturating_sub(since.elapsed());
        let refused = format!("every service to refuse the token after a {what}");
        medcov_testkit::until(&refused, left, async || {
            self.statuses(token).await.iter().all(|(_, status)| *status == 401)
        })
        .await;
    }
}

const PASSWORD: &str = "a long enough passphrase";

async fn accepted_everywhere(deployment: &Deployment, token: &str) {
    let seen = deployment.statuses(token).await;
    assert!(seen.iter().all(|(_, status)| *status == 200), "before revocation: {seen:?}");
}

async fn every_kind_of_revocation_reaches_every_service_within_a_second(env: TestEnv) {
    let d = Deployment::start(&env).await;
    let gateway = &d.gateway;

    // Logout ends the session: its access token too.
    let (_, name) = d.auditor("logs.out").await;
    let (access, refresh) = gateway.login(&name, PASSWORD).await;
    accepted_everywhere(&d, &access).await;
    let (status, _, _) =
        gateway.call(Method::POST, "/api/auth/logout", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(status, 204);
    d.refused_everywhere_within_a_second(&access, Instant::now(), "logout").await;

    // A refresh token presented twice revokes its session, the newest access token included.
    let (_, name) = d.auditor("reused").await;
    let (_, first) = gateway.login(&name, PASSWORD).await;
    let (status, _, body) =
        gateway.call(Method::POST, "/api/auth/token/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(status, 200, "{body}");
    let newest = body["access_token"].as_str().expect("access").to_owned();
    accepted_everywhere(&d, &newest).await;
    let (status, _, _) =
        gateway.call(Method::POST, "/api/auth/token/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(status, 401, "a reused refresh token");
    d.refused_everywhere_within_a_second(&newest, Instant::now(), "reuse").await;

    // Deactivation.
    let (id, name) = d.auditor("leaves").await;
    let (access, _) = gateway.login(&name, PASSWORD).await;
    accepted_everywhere(&d, &access).await;
    let (status, _, body) =
        gateway.call(Method::POST, &format!("/api/auth/users/{id}/deactivate"), Some(&d.admin), None).await;
    assert_eq!(status, 200, "{body}");
    d.refused_everywhere_within_a_second(&access, Instant::now(), "deactivation").await;

    // A new password: every earlier token goes; a token from signing in again works.
    let (_, name) = d.auditor("new.password").await;
    let (access, _) = gateway.login(&name, PASSWORD).await;
    accepted_everywhere(&d, &access).await;
    let change = json!({"current_password": PASSWORD, "new_password": "another long passphrase"});
    let (status, _, body) = gateway.call(Method::POST, "/api/auth/me/password", Some(&access), Some(change)).await;
    assert_eq!(status, 204, "{body}");
    d.refused_everywhere_within_a_second(&access, Instant::now(), "password change").await;
    let (again, _) = gateway.login(&name, "another long passphrase").await;
    accepted_everywhere(&d, &again).await;

    // New roles: the token carrying the old ones goes.
    let (id, name) = d.auditor("promoted").await;
    let (access, _) = gateway.login(&name, PASSWORD).await;
    accepted_everywhere(&d, &access).await;
    let (status, _, body) = gateway
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}"),
            Some(&d.admin),
            Some(json!({"roles": ["auditor", "admin"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    d.refused_everywhere_within_a_second(&access, Instant::now(), "role change").await;
    let (again, _) = gateway.login(&name, PASSWORD).await;
    accepted_everywhere(&d, &again).await;

    // The list is for the services, not routed by the gateway.
    let (status, _, _) = gateway.call(Method::GET, "/api/auth/revocations", Some(&d.admin), None).await;
    assert_eq!(status, 404);
    let listed: Value = d
        .services
        .client
        .get(d.services.url(ServiceName::Auth, "/revocations"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(5), "{listed}");
    d.stop().await;
}

medcov_testkit::backend_suite!(every_kind_of_revocation_reaches_every_service_within_a_second);
