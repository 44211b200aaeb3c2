//! The mesh policy: how every call to another service is made, per upstream and per route.
//!
//! One TOML file (`mesh.policy_file`), read at start and again on SIGHUP or when it changes.
//! Three levels, each overriding the one before, key by key:
//!
//! ```toml
//! [defaults]                       # every upstream
//! timeout_ms = 10000
//! [defaults.retry]
//! attempts = 3
//!
//! [upstreams.insurance]            # one upstream (a service name)
//! balancer = "least_connections"
//! [upstreams.insurance.breaker]
//! failure_rate_percent = 25
//!
//! [upstreams.insurance.routes.eligibility]   # requests to that upstream matching a route
//! methods = ["GET"]
//! path_prefix = "/eligibility"
//! timeout_ms = 300
//! ```
//!
//! A request takes the route with the longest matching `path_prefix` (and a listed method, or
//! any method when `methods` is empty). Balancer, health checks and outlier ejection belong to
//! the upstream, so a route may not set them. Every problem is reported with its full key
//! (`upstreams.insurance.routes.eligibility.retry.attempts: must be between 1 and 10`), and a
//! policy with problems is never applied: at start MedCov refuses to start, on reload the old
//! policy stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::balance::BalancerKind;
use crate::breaker::BreakerConfig;

/// The settings of calls to one upstream, or to one of its routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Longest wait for one try, in milliseconds.
    pub timeout_ms: u64,
    /// Longest wait for the whole call, retries and backoff included.
    pub deadline_ms: u64,
    /// Calls in flight at once; one more is refused at once with 503 (a bulkhead).
    pub concurrency_limit: u32,
    /// Calls per second let through (0: no limit); more get 429.
    pub rate_limit_per_s: u32,
    pub balancer: BalancerKind,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    pub health: HealthPolicy,
    pub outlier: OutlierPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout_ms: 10_000,
            deadline_ms: 15_000,
            concurrency_limit: 512,
            rate_limit_per_s: 0,
            balancer: BalancerKind::P2c,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            health: HealthPolicy::default(),
            outlier: OutlierPolicy::default(),
        }
    }
}

/// Retries: only of calls that are safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, or a
/// request with an Idempotency-Key), after a connection failure, a timed-out try, or a 502,
/// 503 or 504, on another instance when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub attempts: u32,
    /// Backoff before retry n: a random wait up to min(max_ms, base_ms × 2^n) (full jitter).
    pub base_ms: u64,
    pub max_ms: u64,
    /// Retries allowed as a percentage of recent calls, so retries cannot multiply an outage.
    pub budget_percent: u32,
    /// Retries per second always allowed, whatever the budget.
    pub min_per_s: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, base_ms: 25, max_ms: 1_000, budget_percent: 20, min_per_s: 10 }
    }
}

/// Active health checks of every instance of the upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthPolicy {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Passed checks in a row that make an unhealthy instance healthy again.
    pub healthy_threshold: u32,
    /// Failed checks in a row that make an instance unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            path: "/health/live".to_owned(),
            interval_ms: 2_000,
            timeout_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// Passive outlier ejection: an instance failing calls in a row (5xx or no connection) is
/// left out for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierPolicy {
    pub consecutive_failures: u32,
    /// The first ejection lasts this long; each further one of the same instance one more time
    /// this long, up to `max_ejection_ms`.
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// Never more than this share of the instances ejected at once.
    pub max_ejection_percent: u32,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        OutlierPolicy {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 50,
        }
    }
}

impl Policy {
    fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut at_least = |field: &str, value: u64, min: u64| {
            if value < min {
                out.push((field.to_owned(), format!("must be at least {min}, not {value}")));
            }
        };
        at_least("timeout_ms", self.timeout_ms, 1);
        at_least("deadline_ms", self.deadline_ms, self.timeout_ms.max(1));
        at_least("concurrency_limit", u64::from(self.concurrency_limit), 1);
        at_least("retry.base_ms", self.retry.base_ms, 1);
        at_least("retry.max_ms", self.retry.max_ms, self.retry.base_ms.max(1));
        at_least("health.interval_ms", self.health.interval_ms, 50);
        at_least("health.timeout_ms", self.health.timeout_ms, 1);
        at_least("health.healthy_threshold", u64::from(self.health.healthy_threshold), 1);
        at_least("health.unhealthy_threshold", u64::from(self.health.unhealthy_threshold), 1);
        at_least("outlier.consecutive_failures", u64::from(self.outlier.consecutive_failures), 1);
        at_least("outlier.base_ejection_ms", self.outlier.base_ejection_ms, 1);
        at_least("outlier.max_ejection_ms", self.outlier.max_ejection_ms, self.outlier.base_ejection_ms.max(1));
        if !(1..=10).contains(&self.retry.attempts) {
            out.push(("retry.attempts".into(), format!("must be between 1 and 10, not {}", self.retry.attempts)));
        }
        if self.retry.budget_percent > 1000 {
            out.push(("retry.budget_percent".into(), "must be at most 1000".into()));
        }
        if self.outlier.max_ejection_percent > 100 {
            out.push(("outlier.max_ejection_percent".into(), "must be at most 100".into()));
        }
        if !self.health.path.starts_with('/') {
            out.push(("health.path".into(), "must start with /".into()));
        }
        for (field, message) in self.breaker.problems() {
            out.push((format!("breaker.{field}"), message));
        }
        out
    }
}

/// A route of an upstream, with its own settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub name: String,
    /// Upper-case methods; empty: any.
    pub methods: Vec<String>,
    pub path_prefix: String,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct UpstreamPolicy {
    pub policy: Policy,
    /// Longest prefix first.
    pub routes: Vec<Route>,
}

/// The whole policy, resolved: every upstream and route has complete settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MeshPolicy {
    pub defaults: Policy,
    pub upstreams: BTreeMap<String, UpstreamPolicy>,
}

/// Everything wrong with a policy, each problem under its full key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mesh policy{}: {}", source_name(.source_path), .problems.iter().map(|(k, m)| format!("`{k}` {m}")).collect::<Vec<_>>().join("; "))]
pub struct PolicyError {
    pub source_path: Option<PathBuf>,
    pub problems: Vec<(String, String)>,
}

fn source_name(path: &Option<PathBuf>) -> String {
    path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default()
}

/// Keys a route may not set: they belong to the upstream.
const UPSTREAM_ONLY: [&str; 3] = ["balancer", "health", "outlier"];

impl MeshPolicy {
    /// Parses and validates a policy file's text. `upstreams` names the services a policy may
    /// mention.
    pub fn parse(text: &str, upstreams: &[&str]) -> Result<MeshPolicy, PolicyError> {
        let error =
            |key: &str, message: String| PolicyError { source_path: None, problems: vec![(key.to_owned(), message)] };
        let table: toml::Table = toml::from_str(text).map_err(|e| error("(file)", e.message().to_owned()))?;
        let mut root = serde_json::to_value(table).map_err(|e| error("(file)", e.to_string()))?;
        let root = root.as_object_mut().ok_or_else(|| error("(file)", "is not a table".into()))?;
        let mut problems = Vec::new();
        for key in root.keys() {
            if key != "defaults" && key != "upstreams" {
                problems.push((key.clone(), "is not a policy section: expected `defaults` or `upstreams`".into()));
            }
        }
        let builtin = serde_json::to_value(Policy::default()).unwrap_or(Value::Null);
        let defaults_value = merged(&builtin, root.get("defaults"));
        let defaults = resolve("defaults", defaults_value.clone(), &mut problems);
        let mut policy = MeshPolicy { defaults: defaults.unwrap_or_default(), upstreams: BTreeMap::new() };
        if let Some(list) = root.get("upstreams") {
            let Some(list) = list.as_object() else {
                return Err(error("upstreams", "must be a table of upstreams".into()));
            };
            for (name, table) in list {
                let key = format!("upstreams.{name}");
                if !upstreams.contains(&name.as_str()) {
                    problems.push((key, format!("is not a service: expected one of {}", upstreams.join(", "))));
                    continue;
                }
                let Some(table) = table.as_object() else {
                    problems.push((key, "must be a table".into()));
                    continue;
                };
                let mut own = table.clone();
                let routes = own.remove("routes");
                let upstream_value = merged(&defaults_value, Some(&Value::Object(own)));
                let Some(upstream) = resolve(&key, upstream_value.clone(), &mut problems) else { continue };
                let mut resolved = UpstreamPolicy { policy: upstream, routes: Vec::new() };
                for (route_name, route) in routes.as_ref().and_then(Value::as_object).into_iter().flatten() {
                    let route_key = format!("{key}.routes.{route_name}");
                    if let Some(route) = parse_route(&route_key, route_name, route, &upstream_value, &mut problems) {
                        resolved.routes.push(route);
                    }
                }
                if routes.as_ref().is_some_and(|r| !r.is_object()) {
                    problems.push((format!("{key}.routes"), "must be a table of routes".into()));
                }
                resolved.routes.sort_by(|a, b| b.path_prefix.len().cmp(&a.path_prefix.len()).then(a.name.cmp(&b.name)));
                policy.upstreams.insert(name.clone(), resolved);
            }
        }
        if problems.is_empty() { Ok(policy) } else { Err(PolicyError { source_path: None, problems }) }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path, upstreams: &[&str]) -> Result<MeshPolicy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            source_path: Some(path.to_path_buf()),
            problems: vec![("(file)".into(), format!("cannot be read: {e}"))],
        })?;
        MeshPolicy::parse(&text, upstreams).map_err(|e| PolicyError { source_path: Some(path.to_path_buf()), ..e })
    }

    /// The settings of a call to `upstream`, and the route it matched (`None`: the upstream's own).
    pub fn route(&self, upstream: &str, method: &str, path: &str) -> (Option<&Route>, &Policy) {
        let Some(up) = self.upstreams.get(upstream) else { return (None, &self.defaults) };
        let route = up
            .routes
            .iter()
            .find(|r| under(path, &r.path_prefix) && (r.methods.is_empty() || r.methods.iter().any(|m| m == method)));
        match route {
            Some(route) => (Some(route), &route.policy),
            None => (None, &up.policy),
        }
    }

    /// The upstream's own settings.
    pub fn upstream(&self, upstream: &str) -> &Policy {
        self.upstreams.get(upstream).map(|u| &u.policy).unwrap_or(&self.defaults)
    }
}

/// Whether `path` is `prefix` or under it, on segment boundaries (`/claims` covers
/// `/claims/1`, not `/claimsx`).
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '?']) || prefix.ends_with('/'),
        None => false,
    }
}

fn parse_route(
    key: &str,
    name: &str,
    route: &Value,
    upstream: &Value,
    problems: &mut Vec<(String, String)>,
) -> Option<Route> {
    let Some(table) = route.as_object() else {
        problems.push((key.to_owned(), "must be a table".into()));
        return None;
    };
    let mut own = table.clone();
    let path_prefix = match own.remove("path_prefix") {
        Some(Value::String(prefix)) if prefix.starts_with('/') => prefix,
        Some(_) => {
            problems.push((format!("{key}.path_prefix"), "must be a path starting with /".into()));
            return None;
        }
        None => {
            problems.push((format!("{key}.path_prefix"), "is required".into()));
            return None;
        }
    };
    let methods = match own.remove("methods") {
        None => Vec::new(),
        Some(Value::Array(list)) => {
            let mut methods = Vec::new();
            for m in list {
                match m.as_str().map(str::to_ascii_uppercase) {
                    Some(m) if http::Method::from_bytes(m.as_bytes()).is_ok() => methods.push(m),
                    _ => problems.push((format!("{key}.methods"), format!("{m} is not an HTTP method"))),
                }
            }
            methods
        }
        Some(_) => {
            problems.push((format!("{key}.methods"), "must be a list of HTTP methods".into()));
            return None;
        }
    };
    for field in UPSTREAM_ONLY {
        if own.remove(field).is_some() {
            problems.push((format!("{key}.{field}"), "is set per upstream, not per route".into()));
        }
    }
    let policy = resolve(key, merged(upstream, Some(&Value::Object(own))), problems)?;
    Some(Route { name: name.to_owned(), methods, path_prefix, policy })
}

/// `base` with `over` laid on top, table by table.
fn merged(base: &Value, over: Option<&Value>) -> Value {
    match (base, over) {
        (Value::Object(base), Some(Value::Object(over))) => {
            let mut out = base.clone();
            for (key, value) in over {
                let next = match out.get(key) {
                    Some(existing) => merged(existing, Some(value)),
                    None => value.clone(),
                };
                out.insert(key.clone(), next);
            }
            Value::Object(out)
        }
        (_, Some(over)) => over.clone(),
        (base, None) => base.clone(),
    }
}

fn resolve(key: &str, value: Value, problems: &mut Vec<(String, String)>) -> Option<Policy> {
    match serde_path_to_error::deserialize::<_, Policy>(value) {
        Ok(policy) => {
            let found = policy.problems();
            if found.is_empty() {
                return Some(policy);
            }
            problems.extend(found.into_iter().map(|(field, message)| (format!("{key}.{field}"), message)));
            None
        }
        Err(error) => {
            let path = error.path().to_string();
            let at = if path == "." { key.to_owned() } else { format!("{key}.{path}") };
            problems.push((at, error.into_inner().to_string()));
            None
        }
    }
}

/// The policy in force, swapped whole on reload.
#[derive(Debug)]
pub struct PolicyHandle {
    current: RwLock<Arc<MeshPolicy>>,
    path: Option<PathBuf>,
    upstreams: Vec<&'static str>,
}

impl PolicyHandle {
    /// Loads the policy from `path` (or the built-in defaults without one).
    pub fn open(path: Option<PathBuf>, upstreams: &[&'static str]) -> Result<PolicyHandle, PolicyError> {
        let policy = match &path {
            Some(path) => MeshPolicy::load(path, upstreams)?,
            None => MeshPolicy::default(),
        };
        Ok(PolicyHandle { current: RwLock::new(Arc::new(policy)), path, upstreams: upstreams.to_vec() })
    }

    pub fn current(&self) -> Arc<MeshPolicy> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the file again. An invalid file changes nothing. `Ok(true)` when the policy changed.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let Some(path) = &self.path else { return Ok(false) };
        let fresh = MeshPolicy::load(path, &self.upstreams)?;
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current == fresh {
            return Ok(false);
        }
        *current = Arc::new(fresh);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: [&str; 4] = ["auth", "hospital", "insurance", "billing"];

    #[test]
    fn levels_override_key_by_key() {
        let text = r#"
            [defaults]
            timeout_ms = 2000
            [defaults.retry]
            attempts = 2

            [upstreams.insurance]
            balancer = "least_connections"
            [upstreams.insurance.breaker]
            failure_rate_percent = 25

            [upstreams.insurance.routes.eligibility]
            methods = ["get"]
            path_prefix = "/eligibility"
            timeout_ms = 300
            [upstreams.insurance.routes.claims]
            path_prefix = "/claims"
            [upstreams.insurance.routes.claims.retry]
            attempts = 1
        "#;
        let policy = MeshPolicy::parse(text, &SERVICES).expect("valid");
        assert_eq!(policy.defaults.timeout_ms, 2000);
        assert_eq!(policy.defaults.retry, RetryPolicy { attempts: 2, ..RetryPolicy::default() });
        let insurance = policy.upstream("insurance");
        assert_eq!((insurance.timeout_ms, insurance.balancer), (2000, BalancerKind::LeastConnections));
        assert_eq!(insurance.breaker.failure_rate_percent, 25.0);
        assert_eq!(insurance.breaker.window_size, BreakerConfig::default().window_size);

        let (route, settings) = policy.route("insurance", "GET", "/eligibility?member=1");
        assert_eq!(route.map(|r| r.name.as_str()), Some("eligibility"));
        assert_eq!(
            (settings.timeout_ms, settings.retry.attempts, settings.breaker.failure_rate_percent),
            (300, 2, 25.0)
        );
        // Another method falls back to the upstream.
        let (route, settings) = policy.route("insurance", "POST", "/eligibility");
        assert_eq!((route, settings.timeout_ms), (None, 2000));
        let (route, settings) = policy.route("insurance", "POST", "/claims/1/review");
        assert_eq!((route.map(|r| r.name.as_str()), settings.retry.attempts), (Some("claims"), 1));
        // An upstream the file does not mention takes the defaults.
        assert_eq!(policy.route("billing", "GET", "/invoices").1, &policy.defaults);
    }

    #[test]
    fn the_longest_prefix_wins() {
        let text = r#"
            [upstreams.hospital.routes.all]
            path_prefix = "/patients"
            timeout_ms = 100
            [upstreams.hospital.routes.search]
            path_prefix = "/patients/search"
            timeout_ms = 200
        "#;
        let policy = MeshPolicy::parse(text, &SERVICES).expect("valid");
        assert_eq!(policy.route("hospital", "GET", "/patients/search?q=a").1.timeout_ms, 200);
        assert_eq!(policy.route("hospital", "GET", "/patients/1").1.timeout_ms, 100);
        assert_eq!(policy.route("hospital", "GET", "/patientsx").1.timeout_ms, 10_000, "segments, not characters");
    }

    #[test]
    fn every_problem_is_named_with_its_full_key() {
        let cases = [
            ("[defaults]\ntimeout_ms = 0", "defaults.timeout_ms"),
            ("[defaults]\ntimeout_ms = \"fast\"", "defaults.timeout_ms"),
            ("[defaults]\ntimeuot_ms = 5", "defaults.timeuot_ms"),
            ("[defaults.retry]\nattempts = 11", "defaults.retry.attempts"),
            ("[defaults.breaker]\nfailure_rate_percent = 0", "defaults.breaker.failure_rate_percent"),
            ("[defaults.breaker]\nwindow = \"sliding\"", "defaults.breaker.window"),
            ("[upstreams.pharmacy]\ntimeout_ms = 5", "upstreams.pharmacy"),
            ("[upstreams.hospital]\ndeadline_ms = 5\ntimeout_ms = 10", "upstreams.hospital.deadline_ms"),
            ("[upstreams.hospital.routes.a]\ntimeout_ms = 5", "upstreams.hospital.routes.a.path_prefix"),
            (
                "[upstreams.hospital.routes.a]\npath_prefix = \"/a\"\nbalancer = \"p2c\"",
                "upstreams.hospital.routes.a.balancer",
            ),
            (
                "[upstreams.hospital.routes.a]\npath_prefix = \"/a\"\nmethods = [\"G T\"]",
                "upstreams.hospital.routes.a.methods",
            ),
            (
                "[upstreams.hospital.routes.a]\npath_prefix = \"/a\"\n[upstreams.hospital.routes.a.outlier]\nbase_ejection_ms = 2",
                "upstreams.hospital.routes.a.outlier",
            ),
            ("[retries]\nattempts = 2", "retries"),
            ("not toml at all", "(file)"),
        ];
        for (text, key) in cases {
            let error = MeshPolicy::parse(text, &SERVICES).expect_err(text);
            assert!(error.problems.iter().any(|(k, _)| k == key), "{text}: {:?}", error.problems);
        }
    }

    #[test]
    fn a_reload_with_problems_keeps_the_policy_in_force() {
        let dir = std::env::temp_dir().join(format!("medcov-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mesh.toml");
        std::fs::write(&path, "[upstreams.hospital]\ntimeout_ms = 100\n").unwrap();
        let handle = PolicyHandle::open(Some(path.clone()), &SERVICES).expect("valid");
        assert_eq!(handle.current().upstream("hospital").timeout_ms, 100);
        assert_eq!(handle.reload(), Ok(false), "unchanged");

        std::fs::write(&path, "[upstreams.hospital]\ntimeout_ms = 0\n").unwrap();
        let error = handle.reload().expect_err("invalid");
        assert!(error.to_string().contains("upstreams.hospital.timeout_ms"), "{error}");
        assert_eq!(handle.current().upstream("hospital").timeout_ms, 100);

        std::fs::write(&path, "[upstreams.hospital]\ntimeout_ms = 250\n").unwrap();
        assert_eq!(handle.reload(), Ok(true));
        assert_eq!(handle.current().upstream("hospital").timeout_ms, 250);
        std::fs::remove_dir_all(&dir).ok();
    }
}
