//! The test world: MedCov started for a test with its platform administrator signed in, and
//! what a test needs made in a line each, through the public API as a client would: hospitals,
//! insurers, users of any role with their tokens, plans, policies with members.
//!
//! ```text
//! let w = World::start(&env).await;
//! let hospital = w.hospital("NRB", "Africa/Nairobi").await;
//! let clerk = w.user("desk", "hospital_clerk", scope::hospital(&hospital)).await;
//! let insurer = w.insurer("AAR").await;
//! let plan = w.plan(&w.admin, &insurer, "GOLD", rules).await;
//! let policy = w.policy(&w.admin, &plan, &start, person("Amina", "Otieno", "1988-04-12"), &[]).await;
//! w.activate(&w.admin, &policy).await;
//! ... act ...
//! w.settle().await; // then assert, also that nothing happened twice
//! ```

use medcov_config::Config;
use medcov_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::App;

/// The password of every user a world makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// Scopes of users: whom they work for.
pub mod scope {
    use serde_json::{Value, json};

    pub fn platform() -> Value {
        json!({"kind": "platform"})
    }

    /// Staff of one hospital.
    pub fn hospital(id: impl std::fmt::Display) -> Value {
        json!({"kind": "hospitals", "hospitals": [id.to_string()]})
    }

    /// Staff of an insurer.
    pub fn insurer(id: impl std::fmt::Display) -> Value {
        json!({"kind": "insurer", "insurer": id.to_string()})
    }

    /// A member, who sees their own records.
    pub fn own() -> Value {
        json!({"kind": "own"})
    }
}

/// A person on a policy: the holder.
pub fn person(given: &str, family: &str, born: &str) -> Value {
    json!({"given_name": given, "family_name": family, "date_of_birth": born})
}

/// A dependant child on a policy.
pub fn child(given: &str, family: &str, born: &str) -> Value {
    json!({"given_name": given, "family_name": family, "date_of_birth": born, "relationship": "child"})
}

/// The first member's (the holder's) number of a policy.
pub fn member_number(policy: &Value) -> String {
    policy["members"][0]["member_number"].as_str().unwrap_or_else(|| panic!("a member number in {policy}")).to_owned()
}

pub struct World {
    pub app: App,
    /// The platform administrator made on first start.
    pub admin: String,
}

impl World {
    /// Every service in this process, with the environment's configuration.
    pub async fn start(env: &TestEnv) -> World {
        World::start_with(env, env.config.clone(), "all").await
    }

    /// `targets` (which must include auth and the gateway) with `config`.
    pub async fn start_with(env: &TestEnv, config: Config, targets: &str) -> World {
        let app = App::start(config, targets).await;
        let (username, password) = App::initial_admin(env.data_dir());
        let (admin, _) = app.login(&username, &password).await;
        World { app, admin }
    }

    /// Stops MedCov at once (whatever is in flight stays where it is) and starts `targets` again
    /// with `config`; tokens stay valid.
    pub async fn restart(&mut self, config: Config, targets: &str) {
        let stopped = std::mem::replace(&mut self.app, App { running: None, client: reqwest::Client::new() });
        stopped.stop().await;
        self.app = App::start(config, targets).await;
    }

    pub async fn stop(self) {
        self.app.stop().await;
    }

    /// Waits until the events in flight are handled: see [`App::settle`].
    pub async fn settle(&self) {
        self.app.settle().await;
    }

    /// `method path` through the gateway as `token`: (status, body).
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, body) = self.app.call(method, path, Some(token), body).await;
        (status, body)
    }

    /// A GET's body, which must be a 200.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POSTs `body` to `path` as `token`, which must create something (201); returns it.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, created) = self.call(Method::POST, path, token, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {created}");
        created
    }

    /// A hospital `code` (named after it) in `timezone`, paying in KES; its id.
    pub async fn hospital(&self, code: &str, timezone: &str) -> String {
        let body = json!({"name": format!("{code} Hospital"), "code": code, "timezone": timezone, "currency": "KES"});
        id(&self.create("/api/hospital/hospitals", &self.admin, body).await)
    }

    /// An insurer `code` (named after it), in KES; its id.
    pub async fn insurer(&self, code: &str) -> String {
        let body = json!({"code": code, "name": format!("{code} Insurance"), "currency": "KES"});
        id(&self.create("/api/insurance/insurers", &self.admin, body).await)
    }

    /// A user with one role in `scope` (see [`scope`]), signed in: their access token.
    pub async fn user(&self, username: &str, role: &str, scope: Value) -> String {
        self.user_with_id(username, role, scope).await.0
    }

    /// A user as [`World::user`]: (access token, user id).
    pub async fn user_with_id(&self, username: &str, role: &str, scope: Value) -> (String, String) {
        let body = json!({"username": username, "password": PASSWORD, "roles": [role], "scope": scope});
        let user = self.create("/api/auth/users", &self.admin, body).await;
        (self.app.login(username, PASSWORD).await.0, id(&user))
    }

    /// A plan `code` of `insurer` from 2020 with `rules`, made by `token`; its id.
    pub async fn plan(&self, token: &str, insurer: &str, code: &str, rules: Value) -> String {
        let body =
            json!({"insurer_id": insurer, "code": code, "name": code, "effective_from": "2020-01-01", "rules": rules});
        id(&self.create("/api/insurance/plans", token, body).await)
    }

    /// A pending policy of `plan` from `start` (a date) for `holder` and `dependants` (see
    /// [`person`], [`child`]), sold by `token`.
    pub async fn policy(&self, token: &str, plan: &str, start: &str, holder: Value, dependants: &[Value]) -> Value {
        let mut body = json!({"plan_id": plan, "start_date": start, "holder": holder});
        if !dependants.is_empty() {
            body["dependants"] = json!(dependants);
        }
        self.create("/api/insurance/policies", token, body).await
    }

    /// Moves `policy` to active, as `token`.
    pub async fn activate(&self, token: &str, policy: &Value) {
        let path = format!("/api/insurance/policies/{}/status", id(policy));
        let (status, body) = self.call(Method::POST, &path, token, Some(json!({"status": "active"}))).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The `id` of something the API returned.
pub fn id(thing: &Value) -> String {
    thing["id"].as_str().unwrap_or_else(|| panic!("an id in {thing}")).to_owned()
}
