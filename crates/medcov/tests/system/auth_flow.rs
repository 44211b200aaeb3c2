//! Sign-in, tokens and sessions through the gateway, on both backends.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::App;
use crate::world::{PASSWORD, World};

/// MedCov started, and the platform administrator's token.
async fn start(env: &TestEnv) -> (App, String) {
    let w = World::start(env).await;
    (w.app, w.admin)
}

async fn create_user(app: &App, admin: &str, username: &str, roles: Value, scope: Value) -> Value {
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/auth/users",
            Some(admin),
            Some(json!({ "username": username, "password": PASSWORD, "roles": roles, "scope": scope })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");
    body
}

async fn refresh(app: &App, token: &str) -> (u16, Value) {
    let (status, _, body) =
        app.call(Method::POST, "/api/auth/token/refresh", None, Some(json!({ "refresh_token": token }))).await;
    (status, body)
}

async fn events(app: &App, admin: &str, user: &str) -> Vec<String> {
    let (status, _, body) = app.call(Method::GET, &format!("/api/auth/audit?user_id={user}"), Some(admin), None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().expect("items").iter().map(|e| e["event"].as_str().expect("event").to_owned()).collect()
}

async fn login_call_refresh_reuse_revokes_the_session(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let hospital = uuid::Uuid::now_v7();
    let user = create_user(
        &app,
        &admin,
        "nurse.joy",
        json!(["clinician"]),
        json!({"kind": "hospitals", "hospitals": [hospital]}),
    )
    .await;
    let (access, first) = app.login("nurse.joy", PASSWORD).await;

    let (status, _, me) = app.call(Method::GET, "/api/auth/me", Some(&access), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "nurse.joy");
    assert_eq!(me["roles"], json!(["clinician"]));

    let (status, second) = refresh(&app, &first).await;
    assert_eq!(status, 200, "{second}");
    let second = second["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(second, first);

    // The first token again: reuse. The whole session goes, the newest token with it.
    let (status, body) = refresh(&app, &first).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("revoked")), "{body}");
    assert_eq!(refresh(&app, &second).await.0, 401);

    // A new sign-in and its logout.
    let (_, third) = app.login("nurse.joy", PASSWORD).await;
    let (status, _, _) =
        app.call(Method::POST, "/api/auth/logout", None, Some(json!({ "refresh_token": third }))).await;
    assert_eq!(status, 204);
    assert_eq!(refresh(&app, &third).await.0, 401);

    let id = user["id"].as_str().expect("id");
    let log = events(&app, &admin, id).await;
    for event in ["user_created", "login", "refresh", "refresh_reuse_detected", "logout"] {
        assert!(log.iter().any(|e| e == event), "{event} in {log:?}");
    }
    app.stop().await;
}

async fn bad_tokens_get_401_problems(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let parts: Vec<&str> = admin.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["roles"] = json!(["admin", "auditor"]);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    claims["exp"] = json!(1);
    let expired_unsigned = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    for (name, token) in
        [("missing", None), ("tampered", Some(tampered)), ("alg none", Some(none)), ("expired", Some(expired_unsigned))]
    {
        let (status, headers, body) = app.call(Method::GET, "/api/auth/me", token.as_deref(), None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json", "{name}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{name}");
        // Services check again: going around the gateway gains nothing.
        let response = app
            .client
            .get(app.url(medcov_config::ServiceName::Auth, "/me"))
            .header("authorization", format!("Bearer {}", token.clone().unwrap_or_default()))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 401, "{name} directly");
    }
    // Everything but the public entries needs a token at the gateway.
    let (status, _, _) = app.call(Method::GET, "/api/hospital/anything", None, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = app.call(Method::GET, "/api/auth/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

async fn five_failures_lock_the_account(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let user = create_user(
        &app,
        &admin,
        "clerk",
        json!(["hospital_clerk"]),
        json!({"kind": "hospitals", "hospitals": [uuid::Uuid::now_v7()]}),
    )
    .await;
    let attempt = |password: &'static str| {
        app.call(Method::POST, "/api/auth/login", None, Some(json!({ "username": "clerk", "password": password })))
    };
    let (status, _, unknown) = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "username": "nobody", "password": "whatever it is" })),
        )
        .await;
    assert_eq!(status, 401);
    for _ in 0..5 {
        let (status, _, wrong) = attempt("wrong password!!").await;
        assert_eq!(status, 401);
        assert_eq!(wrong["detail"], unknown["detail"], "a wrong password and an unknown user answer alike");
    }
    // Locked: even the right password is refused, with the same answer.
    let (status, _, locked) = attempt(PASSWORD).await;
    assert_eq!(status, 401);
    assert_eq!(locked["detail"], unknown["detail"]);
    let log = events(&app, &admin, user["id"].as_str().expect("id")).await;
    assert_eq!(log.iter().filter(|e| *e == "login_failed").count(), 6, "{log:?}");
    assert!(log.iter().any(|e| e == "account_locked"), "{log:?}");
    let (_, _, view) = app
        .call(Method::GET, &format!("/api/auth/users/{}", user["id"].as_str().expect("id")), Some(&admin), None)
        .await;
    assert_eq!(view["locked"], true);
    app.stop().await;
}

async fn rotated_keys_keep_old_tokens_valid(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let kid_of = |token: &str| -> String {
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().expect("header")).expect("b64"))
                .expect("json");
        header["kid"].as_str().expect("kid").to_owned()
    };
    let (status, _, rotated) = app.call(Method::POST, "/api/auth/keys/rotate", Some(&admin), None).await;
    assert_eq!(status, 200, "{rotated}");
    let (username, password) = App::initial_admin(env.data_dir());
    let (fresh, _) = app.login(&username, &password).await;
    assert_eq!(kid_of(&fresh), rotated["kid"].as_str().expect("kid"));
    assert_ne!(kid_of(&fresh), kid_of(&admin));
    for token in [&admin, &fresh] {
        let (status, _, body) = app.call(Method::GET, "/api/auth/me", Some(token), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, _, jwks) = app.call(Method::GET, "/api/auth/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 2, "{jwks}");
    app.stop().await;
}

async fn tenants_see_only_their_own(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    create_user(&app, &admin, "admin.a", json!(["admin"]), json!({"kind": "hospitals", "hospitals": [a]})).await;
    let other =
        create_user(&app, &admin, "clerk.b", json!(["hospital_clerk"]), json!({"kind": "hospitals", "hospitals": [b]}))
            .await;
    let (admin_a, _) = app.login("admin.a", PASSWORD).await;

    // Hospital A's administrator creates in A, not in B.
    create_user(&app, &admin_a, "clerk.a", json!(["hospital_clerk"]), json!({"kind": "hospitals", "hospitals": [a]}))
        .await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/auth/users",
            Some(&admin_a),
            Some(json!({"username": "clerk.b2", "password": PASSWORD, "roles": ["hospital_clerk"], "scope": {"kind": "hospitals", "hospitals": [b]}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // Lists and reads stop at the tenant: another tenant's user is not found.
    let (_, _, page) = app.call(Method::GET, "/api/auth/users", Some(&admin_a), None).await;
    let names: Vec<&str> =
        page["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["admin.a", "clerk.a"]);
    assert_eq!(page["paging"], json!({"limit": 50, "after": null, "next_after": null}), "{page}");
    // One at a time: the first page points past its one user, the second is the last.
    let (_, _, first) = app.call(Method::GET, "/api/auth/users?limit=1", Some(&admin_a), None).await;
    assert_eq!(
        (first["items"][0]["username"].as_str(), &first["paging"]["next_after"]),
        (Some("admin.a"), &first["items"][0]["id"]),
        "{first}"
    );
    let next = format!("/api/auth/users?limit=1&after={}", first["paging"]["next_after"].as_str().expect("a cursor"));
    let (_, _, second) = app.call(Method::GET, &next, Some(&admin_a), None).await;
    assert_eq!(
        (second["items"][0]["username"].as_str(), &second["paging"]["next_after"]),
        (Some("clerk.a"), &Value::Null),
        "{second}"
    );
    let (status, _, _) = app
        .call(Method::GET, &format!("/api/auth/users/{}", other["id"].as_str().expect("id")), Some(&admin_a), None)
        .await;
    assert_eq!(status, 404);

    // A taken username is a conflict, not an error.
    let (status, _, body) = app
        .call(Method::POST, "/api/auth/users", Some(&admin), Some(json!({"username": "CLERK.A", "password": PASSWORD, "roles": ["hospital_clerk"], "scope": {"kind": "hospitals", "hospitals": [a]}})))
        .await;
    assert_eq!(status, 409, "{body}");

    // A clinician is no administrator.
    let (clerk, _) = app.login("clerk.a", PASSWORD).await;
    let (status, _, _) = app.call(Method::GET, "/api/auth/users", Some(&clerk), None).await;
    assert_eq!(status, 403);

    // Bad input is named field by field.
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/auth/users",
            Some(&admin),
            Some(json!({"username": "x", "password": "short", "roles": ["clinician"], "scope": {"kind": "platform"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["username", "password", "roles"]);
    app.stop().await;
}

async fn deactivation_and_password_change_end_sessions(env: TestEnv) {
    let (app, admin) = start(&env).await;
    let insurer = json!({"kind": "insurer", "insurer": uuid::Uuid::now_v7()});
    let user = create_user(&app, &admin, "officer", json!(["claims_officer"]), insurer).await;
    let id = user["id"].as_str().expect("id");
    let (access, refresh_token) = app.login("officer", PASSWORD).await;

    let new_password = "an even better passphrase";
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/auth/me/password",
            Some(&access),
            Some(json!({"current_password": "nope", "new_password": new_password})),
        )
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("current_password")));
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/auth/me/password",
            Some(&access),
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(refresh(&app, &refresh_token).await.0, 401, "a password change ends every session");
    let (_, second) = app.login("officer", new_password).await;

    // Stale If-Match is 412; the current one works.
    let (status, _, _) = app
        .client
        .patch(app.url(medcov_config::ServiceName::Gateway, &format!("/api/auth/users/{id}")))
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({"display_name": "Claims"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), (), ()))
        .expect("sent");
    assert_eq!(status, 412, "the password change bumped the version");

    let (status, _, body) =
        app.call(Method::POST, &format!("/api/auth/users/{id}/deactivate"), Some(&admin), None).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(false)), "{body}");
    assert_eq!(refresh(&app, &second).await.0, 401, "deactivation ends every session");
    let (status, _, _) = app
        .call(Method::POST, "/api/auth/login", None, Some(json!({"username": "officer", "password": new_password})))
        .await;
    assert_eq!(status, 401);
    app.stop().await;
}

medcov_testkit::backend_suite!(
    login_call_refresh_reuse_revokes_the_session,
    bad_tokens_get_401_problems,
    five_failures_lock_the_account,
    rotated_keys_keep_old_tokens_valid,
    tenants_see_only_their_own,
    deactivation_and_password_change_end_sessions,
);
