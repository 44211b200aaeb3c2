//! The authorization matrix: every route of every service, called as every kind of caller,
//! against the table in docs/authorization.md.

use std::collections::{BTreeMap, BTreeSet};

use medcov_config::ServiceName;
use medcov_security::{AccessClaims, PrincipalKind, Role, Scope, SigningKey};
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::App;
use crate::world::{PASSWORD, World, scope};

const DOC: &str = include_str!("../../../../docs/authorization.md");

/// Who may call a route, as the table says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MayCall {
    Public,
    SignedIn,
    Roles(Vec<String>),
}

/// (service, method, path) → rule, read from the table.
pub(crate) fn table() -> BTreeMap<(String, String, String), MayCall> {
    let mut rows = BTreeMap::new();
    for line in DOC.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| service") && !l.starts_with("| scope"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 4 || !matches!(cells[1], "GET" | "POST" | "PATCH" | "PUT" | "DELETE") {
            continue;
        }
        let rule = match cells[3] {
            "public" => MayCall::Public,
            "signed-in" => MayCall::SignedIn,
            roles => MayCall::Roles(roles.split(',').map(|r| r.trim().to_owned()).collect()),
        };
        rows.insert((cells[0].to_owned(), cells[1].to_owned(), cells[2].to_owned()), rule);
    }
    rows
}

/// Every (method, path) a service documents.
async fn routes(app: &App, service: ServiceName) -> BTreeSet<(String, String)> {
    let (_, _, doc) = app.get(service, "/openapi.json").await;
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

/// A caller: a name for messages, the token, and what it is.
struct Caller {
    name: String,
    token: Option<String>,
    role: Option<Role>,
    platform: bool,
}

async fn callers(app: &App, env: &TestEnv, admin: &str) -> Vec<Caller> {
    let hospital = scope::hospital(Uuid::now_v7());
    let insurer = scope::insurer(Uuid::now_v7());
    let people: [(&str, Role, Value); 10] = [
        ("platform.auditor", Role::Auditor, scope::platform()),
        ("hospital.admin", Role::Admin, hospital.clone()),
        ("clerk", Role::HospitalClerk, hospital.clone()),
        ("clinician", Role::Clinician, hospital.clone()),
        ("hospital.billing", Role::BillingClerk, hospital.clone()),
        ("hospital.auditor", Role::Auditor, hospital),
        ("claims", Role::ClaimsOfficer, insurer.clone()),
        ("agent", Role::Agent, insurer.clone()),
        ("insurer.admin", Role::Admin, insurer),
        ("member", Role::Member, scope::own()),
    ];
    let mut callers = vec![Caller {
        name: "platform admin".into(),
        token: Some(admin.to_owned()),
        role: Some(Role::Admin),
        platform: true,
    }];
    for (username, role, scope) in people {
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/auth/users",
                Some(admin),
                Some(json!({"username": username, "password": PASSWORD, "roles": [role], "scope": scope})),
            )
            .await;
        assert_eq!(status, 201, "{username}: {body}");
        let (token, _) = app.login(username, PASSWORD).await;
        let platform = scope_is_platform(&body);
        callers.push(Caller { name: username.into(), token: Some(token), role: Some(role), platform });
    }
    // A service account, through the client-credentials grant.
    let (status, _, account) = app
        .call(Method::POST, "/api/auth/service-accounts", Some(admin), Some(json!({"name": "billing-worker"})))
        .await;
    assert_eq!(status, 201, "{account}");
    let (status, _, grant) = app
        .call(Method::POST, "/api/auth/token", None, Some(json!({"grant_type": "client_credentials", "client_id": account["client_id"], "client_secret": account["client_secret"]})))
        .await;
    assert_eq!(status, 200, "{grant}");
    callers.push(Caller {
        name: "service account".into(),
        token: grant["access_token"].as_str().map(str::to_owned),
        role: Some(Role::Service),
        platform: true,
    });

    // Tokens that must never pass.
    let parts: Vec<&str> = admin.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], parts[1], parts[2].chars().rev().collect::<String>());
    callers.push(Caller { name: "no token".into(), token: None, role: None, platform: false });
    callers.push(Caller { name: "tampered token".into(), token: Some(tampered), role: None, platform: false });
    callers.push(Caller {
        name: "expired token".into(),
        token: Some(expired_token(env).await),
        role: None,
        platform: false,
    });
    callers
}

fn scope_is_platform(user: &Value) -> bool {
    user["scope"]["kind"] == "platform"
}

/// A token signed with the real key whose lifetime is over.
async fn expired_token(env: &TestEnv) -> String {
    let url = env.config.database_url(ServiceName::Auth);
    let database =
        medcov_store::Database::connect(ServiceName::Auth, url, &medcov_store::PoolOptions::from_config(&env.config))
            .await
            .expect("auth database");
    let row =
        medcov_auth::store::keys(&database).await.expect("keys").into_iter().find(|k| k.active).expect("an active key");
    database.close().await;
    // Sealed at rest: opened with the key-encryption key, as the auth service does.
    let kek = medcov_auth::kek::Kek::load(&env.config).expect("the key-encryption key");
    let private = kek.open(&row.kid, &row.private_key).expect("opens");
    let key = SigningKey::from_pkcs8(row.kid, &private).expect("key");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    key.sign(&AccessClaims {
        iss: "medcov".into(),
        aud: "medcov".into(),
        sub: Uuid::now_v7(),
        iat: now - 3600,
        nbf: now - 3600,
        exp: now - 600,
        jti: Uuid::now_v7(),
        sid: Uuid::now_v7(),
        kind: PrincipalKind::User,
        roles: BTreeSet::from([Role::Admin]),
        scope: Scope::Platform,
    })
    .expect("signed")
}

fn allowed(rule: &MayCall, caller: &Caller) -> bool {
    match (rule, caller.role) {
        (MayCall::Public, _) => true,
        (_, None) => false,
        (MayCall::SignedIn, Some(_)) => true,
        (MayCall::Roles(roles), Some(role)) => roles.iter().any(|r| match r.split_once('@') {
            Some((name, "platform")) => name == role.as_str() && caller.platform,
            _ => r == role.as_str(),
        }),
    }
}

async fn every_route_answers_every_caller_as_the_table_says(env: TestEnv) {
    let World { app, admin } = World::start(&env).await;
    let table = table();
    assert!(table.len() >= 19, "the table was read: {table:?}");
    let callers = callers(&app, &env, &admin).await;

    let mut documented = BTreeSet::new();
    for service in
        [ServiceName::Gateway, ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing]
    {
        for (method, path) in routes(&app, service).await {
            let rule = table
                .get(&(service.to_string(), method.clone(), path.clone()))
                .or_else(|| table.get(&("every".to_owned(), method.clone(), path.clone())))
                .unwrap_or_else(|| panic!("{service} {method} {path} is missing from docs/authorization.md"))
                .clone();
            documented.insert((service.to_string(), method.clone(), path.clone()));
            if path == "/metrics" || path == "/revocations" {
                continue; // Not routed by the gateway; served on the service port.
            }
            let concrete = path.replace("{id}", &Uuid::now_v7().to_string());
            for caller in &callers {
                let body = matches!(method.as_str(), "POST" | "PATCH" | "PUT").then(|| json!({}));
                let method = Method::from_bytes(method.as_bytes()).expect("method");
                // The gateway's own routes are not under /api.
                let routed = if service == ServiceName::Gateway {
                    concrete.clone()
                } else {
                    format!("/api/{service}{concrete}")
                };
                let (status, _, answer) = app.call(method.clone(), &routed, caller.token.as_deref(), body).await;
                let what = format!("{service} {method} {path} as {}: {status} {answer}", caller.name);
                assert_ne!(status, 500, "{what}");
                if allowed(&rule, caller) {
                    assert!(status != 401 && status != 403, "allowed, yet refused: {what}");
                } else if caller.role.is_none() {
                    assert_eq!(status, 401, "{what}");
                } else {
                    assert!(status == 403 || status == 404, "refused expected: {what}");
                }
            }
        }
    }
    // Nothing in the table that no service serves (besides the rows for every service).
    for (service, method, path) in table.keys() {
        if service != "every" {
            assert!(
                documented.contains(&(service.clone(), method.clone(), path.clone())),
                "{service} {method} {path} is in the table but not served"
            );
        }
    }
    app.stop().await;
}

medcov_testkit::backend_suite!(every_route_answers_every_caller_as_the_table_says);
