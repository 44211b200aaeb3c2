//! MedCov settings.
//!
//! Three layers, each overriding the one before: the defaults (written out, with comments, in
//! `medcov.default.toml`, which `medcov config default` prints), an optional TOML file, and
//! `MEDCOV__SECTION__KEY` environment variables. Every struct refuses unknown keys, so a typo
//! stops start-up instead of being ignored. Passwords inside URLs never print (see [`urls`]).
//!
//! - [`service`]: the five services, their start order and `--target` lists.
//! - [`urls`]: database and Redis URLs, parsed and redacted.
//! - [`private`]: the data folder and its files, readable by MedCov's own account only.

#![forbid(unsafe_code)]

pub mod private;

pub mod service;
pub mod urls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use service::{ServiceName, Targets, UnknownService};
pub use urls::{DatabaseUrl, RedisUrl};

/// The commented example file printed by `medcov config default`; it holds exactly the defaults.
pub const DEFAULT_FILE: &str = include_str!("medcov.default.toml");

/// The file read when no path is given and it exists.
pub const DEFAULT_FILE_NAME: &str = "medcov.toml";

/// Environment variable naming the configuration file.
pub const FILE_ENV: &str = "MEDCOV_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid setting `{key}`: {message}")]
    Setting { key: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub gateway: GatewayConfig,
    pub mesh: MeshConfig,
    pub cache: CacheConfig,
    pub auth: AuthConfig,
    pub events: EventsConfig,
    pub billing: BillingConfig,
    pub services: ServicesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            gateway: GatewayConfig::default(),
            mesh: MeshConfig::default(),
            cache: CacheConfig::default(),
            auth: AuthConfig::default(),
            events: EventsConfig::default(),
            billing: BillingConfig::default(),
            services: ServicesConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub host: IpAddr,
    pub body_limit_bytes: usize,
    /// Largest total size of a request's headers (names and values), in bytes; more is 431.
    pub header_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub shutdown_grace_ms: u64,
    /// Proxies (addresses or networks such as `10.0.0.0/8`) whose `X-Forwarded-For` is believed
    /// when they call a service: the gateway's addresses, a load balancer's.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            body_limit_bytes: 1024 * 1024,
            header_limit_bytes: 16 * 1024,
            trusted_proxies: vec!["127.0.0.1/32".to_owned(), "::1/128".to_owned()],
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl HttpConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            other => Err(format!("`{other}` is not a log format: expected auto, json or pretty")),
        }
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Which requests are logged at `info` (target `medcov::access`, one line each). The others are
/// logged at `debug`; a request that failed (5xx) is logged at `warn` whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    /// One line per request, where it entered MedCov: at the gateway, or at a service called
    /// directly. A service's line for a request the gateway (a trusted proxy, see
    /// `http.trusted_proxies`) forwarded is at debug.
    #[default]
    Edge,
    /// A line at every hop: the gateway and the service behind it.
    EveryHop,
    /// Only failed requests.
    Errors,
}

impl std::str::FromStr for AccessLog {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "edge" => Ok(AccessLog::Edge),
            "every_hop" => Ok(AccessLog::EveryHop),
            "errors" => Ok(AccessLog::Errors),
            other => Err(format!("`{other}` is not an access log setting: expected edge, every_hop or errors")),
        }
    }
}

impl<'de> Deserialize<'de> for AccessLog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    /// Which requests get an `info` line: `edge` (default), `every_hop` or `errors`.
    pub access: AccessLog,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Auto, level: "info".to_owned(), access: AccessLog::Edge }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub otlp_endpoint: Option<url::Url>,
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DatabaseUrl::Embedded,
            migrate_on_start: true,
            max_connections: 10,
            acquire_timeout_ms: 1_000,
        }
    }
}

impl DatabaseConfig {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub url: Option<RedisUrl>,
    pub key_prefix: String,
    /// Treat `url` as a seed node of a Redis Cluster even when it names only one (several
    /// nodes always mean a cluster).
    pub cluster: bool,
    /// How long a connection to Redis may take before Redis counts as unreachable.
    pub connect_timeout_ms: u64,
    /// How long a command may wait for its answer before Redis counts as unreachable (blocking
    /// reads of the bus wait longer, on connections of their own).
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "medcov".to_owned(),
            cluster: false,
            connect_timeout_ms: 250,
            command_timeout_ms: 500,
        }
    }
}

impl RedisConfig {
    /// Whether Redis is a cluster: several seed nodes, or `redis.cluster = true`.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.url.as_ref().is_some_and(RedisUrl::is_cluster)
    }
}

/// Premiums and commissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Seconds from a policy's creation until its premium is due (30 days by default). A
    /// policy still unpaid then is cancelled by the policy-sale saga and its premium voided.
    pub premium_due_s: u64,
    /// A commission is clawed back when its policy is cancelled (or its premium refunded)
    /// within this many days of earning it.
    pub commission_clawback_days: u32,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig { premium_due_s: 30 * 24 * 3600, commission_clawback_days: 90 }
    }
}

/// The event bus: Redis Streams when `redis.url` is set, otherwise `bus.db` in the data folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How often an idle outbox relay looks for new events, in milliseconds.
    pub relay_interval_ms: u64,
    /// Deliveries of an event a consumer keeps failing on before it goes to the dead letters.
    pub max_deliveries: u64,
    /// The wait before the first retry of a failed event, doubled for each further delivery.
    pub retry_base_ms: u64,
    /// The longest wait between retries.
    pub retry_max_ms: u64,
    /// How often each service trims its stream of what every consumer group is done with.
    pub trim_interval_s: u64,
    /// How long an orchestrated saga waits for a step's reply before it fails the step and
    /// compensates (and between retries of a compensation).
    pub saga_step_timeout_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            relay_interval_ms: 100,
            max_deliveries: 5,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            trim_interval_s: 60,
            saga_step_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Browser origins allowed to call the API (CORS), e.g. `https://app.example.org`.
    pub cors_allowed_origins: Vec<String>,
    pub rate_limits: RateLimitsConfig,
    /// The gateway's internal listener: its `/metrics` and health, for Prometheus and probes,
    /// never on the public port (0: any free port).
    pub internal_port: u16,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            cors_allowed_origins: Vec::new(),
            rate_limits: RateLimitsConfig::default(),
            internal_port: DEFAULT_GATEWAY_INTERNAL_PORT,
        }
    }
}

/// Where the gateway serves its metrics by default.
pub const DEFAULT_GATEWAY_INTERNAL_PORT: u16 = 3009;

/// Rate limits per route group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Every API call: per signed-in principal, or per client IP without a valid token.
    pub api: QuotaConfig,
    /// Login, token, refresh and logout: the ceiling per client address (staff behind one
    /// address share it).
    pub auth: QuotaConfig,
    /// Login and token: per client address and account together.
    pub sign_in: QuotaConfig,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            api: QuotaConfig { per_minute: 600, burst: 100 },
            auth: QuotaConfig { per_minute: 300, burst: 60 },
            sign_in: QuotaConfig { per_minute: 20, burst: 10 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests added per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

/// The key sets a service can load into the cache at start, by `<service>.<set>`.
pub const WARM_SETS: [&str; 1] = ["insurance.plan_versions"];

/// Caching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Key sets loaded into the cache at start, in the background (see [`WARM_SETS`]).
    pub warm: Vec<String>,
    /// The most memory the in-process cache (the embedded mode's, without Redis) holds, in
    /// MiB; the least useful entries make room.
    pub memory_mib: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { warm: WARM_SETS.iter().map(|s| (*s).to_owned()).collect(), memory_mib: 64 }
    }
}

impl CacheConfig {
    /// [`CacheConfig::memory_mib`] in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib.saturating_mul(1024 * 1024)
    }
}

/// Calls between services in different processes: the registry, and the policy file that
/// sets timeouts, retries, breakers and balancing (see the `medcov-mesh` crate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// The mesh policy file; empty: the built-in policy.
    pub policy_file: PathBuf,
    /// How often a changed policy file is looked for (it is also read again on SIGHUP).
    pub policy_watch_interval_ms: u64,
    /// How often each instance renews its registration, and callers re-read the registry.
    pub heartbeat_interval_ms: u64,
    /// How long a registration lasts without a heartbeat.
    pub registration_ttl_ms: u64,
    /// This instance's share of traffic under weighted balancing.
    pub weight: u32,
    /// This instance's zone, shown in the registry.
    pub zone: String,
    /// The host (name or IP) other instances reach this one at, registered with its port: on
    /// Kubernetes the pod's IP, in compose the container's name. Empty: `services.<name>.url`,
    /// else the address it listens on.
    pub advertise_host: String,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            policy_file: PathBuf::new(),
            policy_watch_interval_ms: 2_000,
            heartbeat_interval_ms: 2_000,
            registration_ttl_ms: 6_000,
            weight: 1,
            zone: String::new(),
            advertise_host: String::new(),
        }
    }
}

impl MeshConfig {
    pub fn policy_file(&self) -> Option<&Path> {
        Some(self.policy_file.as_path()).filter(|p| !p.as_os_str().is_empty())
    }

    /// `http://<advertise_host>:<port>/`, when `advertise_host` is set (an IPv6 address gets
    /// its brackets).
    pub fn advertised_url(&self, port: u16) -> Option<url::Url> {
        let host = self.advertise_host.trim();
        if host.is_empty() {
            return None;
        }
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("[{v6}]"),
            Err(_) => host.to_owned(),
        };
        url::Url::parse(&format!("http://{host}:{port}/")).ok().filter(|u| u.host_str().is_some())
    }
}

/// Sign-in, tokens and passwords.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub lockout_threshold: u32,
    pub lockout_minutes: u64,
    pub password_min_length: usize,
    pub bootstrap_admin: String,
    /// The key-encryption key that seals the token-signing keys at rest: 32 random bytes in
    /// base64 (`openssl rand -base64 32`). Usually given in the environment
    /// (`MEDCOV__AUTH__KEY_ENCRYPTION_KEY`).
    pub key_encryption_key: Secret,
    /// A file holding the key-encryption key (base64), instead of the value itself. Empty with
    /// no value either: `<data_dir>/signing-keys.kek`, generated on first start, on SQLite
    /// only; on PostgreSQL one of the two must be set.
    pub key_encryption_key_file: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "medcov".to_owned(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            lockout_threshold: 5,
            lockout_minutes: 15,
            password_min_length: 12,
            bootstrap_admin: "admin".to_owned(),
            key_encryption_key: Secret::default(),
            key_encryption_key_file: String::new(),
        }
    }
}

/// One section per service. Ports left out take the service's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesConfig {
    pub gateway: ServiceConfig,
    pub auth: ServiceConfig,
    pub hospital: ServiceConfig,
    pub insurance: ServiceConfig,
    pub billing: ServiceConfig,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    #[serde(deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub url: Option<url::Url>,
    /// Every instance of the service, when they are listed by hand rather than found in the
    /// registry (Redis); callers spread their calls over them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<url::Url>,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        let section = |name: ServiceName| ServiceConfig { port: Some(name.default_port()), ..ServiceConfig::default() };
        ServicesConfig {
            gateway: section(ServiceName::Gateway),
            auth: section(ServiceName::Auth),
            hospital: section(ServiceName::Hospital),
            insurance: section(ServiceName::Insurance),
            billing: section(ServiceName::Billing),
        }
    }
}

impl ServicesConfig {
    pub fn get(&self, name: ServiceName) -> &ServiceConfig {
        match name {
            ServiceName::Gateway => &self.gateway,
            ServiceName::Auth => &self.auth,
            ServiceName::Hospital => &self.hospital,
            ServiceName::Insurance => &self.insurance,
            ServiceName::Billing => &self.billing,
        }
    }

    pub fn get_mut(&mut self, name: ServiceName) -> &mut ServiceConfig {
        match name {
            ServiceName::Gateway => &mut self.gateway,
            ServiceName::Auth => &mut self.auth,
            ServiceName::Hospital => &mut self.hospital,
            ServiceName::Insurance => &mut self.insurance,
            ServiceName::Billing => &mut self.billing,
        }
    }
}

impl Config {
    /// Reads the layers: defaults, then `file` (or `MEDCOV_CONFIG`, or `./medcov.toml` when it
    /// exists), then `MEDCOV__...` variables from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let from_env = std::env::var_os(FILE_ENV).map(PathBuf::from);
        let path = match (file, from_env) {
            (Some(path), _) => Some(path.to_path_buf()),
            (None, Some(path)) => Some(path),
            (None, None) => Some(PathBuf::from(DEFAULT_FILE_NAME)).filter(|p| p.exists()),
        };
        Config::load_from(path.as_deref(), vars)
    }

    /// Like [`Config::load`], with the file and the environment given: the testable core.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.to_path_buf(), message: e.to_string() })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let env: config::Map<String, String> = env.into_iter().filter(|(key, _)| key.starts_with("MEDCOV__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("MEDCOV")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("gateway.cors_allowed_origins")
                .with_list_parse_key("cache.warm")
                .with_list_parse_key("http.trusted_proxies")
                .with_list_parse_key("services.auth.instances")
                .with_list_parse_key("services.hospital.instances")
                .with_list_parse_key("services.insurance.instances")
                .with_list_parse_key("services.billing.instances")
                .source(Some(env)),
        );
        let layered = builder.build().map_err(|e| describe(file, e))?;
        let config: Config = layered.try_deserialize().map_err(|e| describe(file, e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let setting =
            |key: &str, message: &str| ConfigError::Setting { key: key.to_owned(), message: message.to_owned() };
        if self.http.body_limit_bytes == 0 {
            return Err(setting("http.body_limit_bytes", "must be at least 1"));
        }
        for proxy in &self.http.trusted_proxies {
            if !is_network(proxy) {
                return Err(setting(
                    "http.trusted_proxies",
                    &format!("`{proxy}` is not an IP address or a network such as 10.0.0.0/8"),
                ));
            }
        }
        if !(1024..=1024 * 1024).contains(&self.http.header_limit_bytes) {
            return Err(setting("http.header_limit_bytes", "must be between 1024 and 1048576"));
        }
        if self.http.request_timeout_ms == 0 {
            return Err(setting("http.request_timeout_ms", "must be at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(setting("database.max_connections", "must be at least 1"));
        }
        if self.database.acquire_timeout_ms == 0 {
            return Err(setting("database.acquire_timeout_ms", "must be at least 1"));
        }
        if self.billing.premium_due_s == 0 || self.billing.premium_due_s > 366 * 24 * 3600 {
            return Err(setting("billing.premium_due_s", "must be between 1 second and 366 days"));
        }
        if self.billing.commission_clawback_days > 3660 {
            return Err(setting("billing.commission_clawback_days", "must be at most 3660"));
        }
        let events = &self.events;
        for (key, value) in [
            ("events.relay_interval_ms", events.relay_interval_ms),
            ("events.max_deliveries", events.max_deliveries),
            ("events.retry_base_ms", events.retry_base_ms),
            ("events.trim_interval_s", events.trim_interval_s),
            ("events.saga_step_timeout_ms", events.saga_step_timeout_ms),
        ] {
            if value == 0 {
                return Err(setting(key, "must be at least 1"));
            }
        }
        if events.retry_max_ms < events.retry_base_ms {
            return Err(setting("events.retry_max_ms", "must not be below events.retry_base_ms"));
        }
        if !(1..=1024 * 1024).contains(&self.cache.memory_mib) {
            return Err(setting("cache.memory_mib", "must be from 1 to 1048576 (MiB)"));
        }
        if let Some(unknown) = self.cache.warm.iter().find(|s| !WARM_SETS.contains(&s.as_str())) {
            return Err(setting(
                "cache.warm",
                &format!("`{unknown}` is not a key set; known: {}", WARM_SETS.join(", ")),
            ));
        }
        let mesh = &self.mesh;
        for (key, value) in [
            ("mesh.policy_watch_interval_ms", mesh.policy_watch_interval_ms),
            ("mesh.heartbeat_interval_ms", mesh.heartbeat_interval_ms),
            ("mesh.weight", u64::from(mesh.weight)),
        ] {
            if value == 0 {
                return Err(setting(key, "must be at least 1"));
            }
        }
        if !mesh.advertise_host.trim().is_empty() && mesh.advertised_url(1).is_none_or(|u| u.path() != "/") {
            return Err(setting(
                "mesh.advertise_host",
                &format!("`{}` is not a host name or IP address", mesh.advertise_host),
            ));
        }
        if mesh.registration_ttl_ms <= mesh.heartbeat_interval_ms {
            return Err(setting("mesh.registration_ttl_ms", "must be longer than mesh.heartbeat_interval_ms"));
        }
        if let Some(path) = mesh.policy_file()
            && !path.is_file()
        {
            return Err(setting("mesh.policy_file", &format!("{} is not a readable file", path.display())));
        }
        let limits = &self.gateway.rate_limits;
        for (group, quota) in [("api", limits.api), ("auth", limits.auth), ("sign_in", limits.sign_in)] {
            if quota.per_minute == 0 || quota.burst == 0 {
                return Err(setting(
                    &format!("gateway.rate_limits.{group}"),
                    "per_minute and burst must be at least 1",
                ));
            }
        }
        for origin in &self.gateway.cors_allowed_origins {
            let parsed = url::Url::parse(origin).ok();
            let plain = parsed.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && !origin.ends_with('/')
            });
            if !plain {
                return Err(setting(
                    "gateway.cors_allowed_origins",
                    &format!(
                        "`{origin}` is not an origin: expected scheme://host[:port], such as https://app.example.org"
                    ),
                ));
            }
        }
        if self.auth.issuer.trim().is_empty() {
            return Err(setting("auth.issuer", "must not be empty"));
        }
        if !(60..=86_400).contains(&self.auth.access_token_ttl_secs) {
            return Err(setting("auth.access_token_ttl_secs", "must be between 60 and 86400 seconds"));
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return Err(setting("auth.refresh_token_ttl_secs", "must be at least auth.access_token_ttl_secs"));
        }
        if self.auth.lockout_threshold == 0 {
            return Err(setting("auth.lockout_threshold", "must be at least 1"));
        }
        if !(8..=128).contains(&self.auth.password_min_length) {
            return Err(setting("auth.password_min_length", "must be between 8 and 128"));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(setting("telemetry.sample_ratio", "must be between 0.0 and 1.0"));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !matches!(endpoint.scheme(), "http" | "https")
        {
            return Err(setting(
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL such as http://127.0.0.1:4318",
            ));
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(char::is_whitespace) {
            return Err(setting("redis.key_prefix", "must be non-empty and contain no spaces"));
        }
        // Braces mark a key's hash tag on a Redis Cluster: in the prefix they would put every key
        // in one slot, or split keys that must share one.
        if self.redis.key_prefix.contains(['{', '}']) {
            return Err(setting("redis.key_prefix", "must not contain { or } (they mark Redis Cluster hash tags)"));
        }
        for (key, value) in [
            ("redis.connect_timeout_ms", self.redis.connect_timeout_ms),
            ("redis.command_timeout_ms", self.redis.command_timeout_ms),
        ] {
            if !(1..=60_000).contains(&value) {
                return Err(setting(key, "must be between 1 and 60000 milliseconds"));
            }
        }
        if self.redis.cluster && self.redis.url.is_none() {
            return Err(setting("redis.cluster", "needs redis.url: the cluster's seed nodes"));
        }
        if let Some(url) = &self.redis.url
            && self.redis.cluster
            && let Some(node) = url.nodes().iter().find(|n| !matches!(n.path(), "" | "/" | "/0"))
        {
            return Err(setting(
                "redis.url",
                &format!("{} names a database: a Redis Cluster has database 0 only", urls::redact(node)),
            ));
        }
        for name in ServiceName::ALL {
            let service = self.services.get(name);
            if let Some(url) = service.instances.iter().find(|u| !matches!(u.scheme(), "http" | "https")) {
                return Err(setting(
                    &format!("services.{name}.instances"),
                    &format!("{url} is not an http:// or https:// URL"),
                ));
            }
            if let Some(url) = &service.url
                && !matches!(url.scheme(), "http" | "https")
            {
                return Err(setting(&format!("services.{name}.url"), "must be an http:// or https:// URL"));
            }
            if !name.has_database() && service.database_url.is_some() {
                return Err(setting(
                    &format!("services.{name}.database_url"),
                    "the gateway keeps no database; remove this setting",
                ));
            }
        }
        let mut seen = std::collections::BTreeMap::new();
        for name in ServiceName::ALL {
            let port = self.port(name);
            if port == 0 {
                continue;
            }
            if let Some(other) = seen.insert(port, name) {
                return Err(setting(
                    &format!("services.{name}.port"),
                    &format!("port {port} is already used by services.{other}.port"),
                ));
            }
        }
        Ok(())
    }

    /// The port a service listens on.
    pub fn port(&self, name: ServiceName) -> u16 {
        self.services.get(name).port.unwrap_or_else(|| name.default_port())
    }

    /// The database a service uses: its own override, or the shared `[database] url`.
    pub fn database_url(&self, name: ServiceName) -> &DatabaseUrl {
        self.services.get(name).database_url.as_ref().unwrap_or(&self.database.url)
    }

    /// Where another process reaches a service.
    pub fn service_url(&self, name: ServiceName) -> url::Url {
        if let Some(url) = &self.services.get(name).url {
            return url.clone();
        }
        let host = match self.http.host {
            IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let text = format!("http://{host}:{}/", self.port(name));
        url::Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
    }

    /// Every address a caller may use for a service while the registry knows none: the listed
    /// `instances`, or else its one URL.
    pub fn service_urls(&self, name: ServiceName) -> Vec<url::Url> {
        let listed = &self.services.get(name).instances;
        if listed.is_empty() { vec![self.service_url(name)] } else { listed.clone() }
    }

    /// Whether any service uses PostgreSQL or Redis: the distributed mode.
    pub fn describe_backend(&self, targets: &Targets) -> String {
        let postgres = targets.iter().filter(|n| n.has_database()).any(|n| self.database_url(n).is_postgres());
        match (postgres, &self.redis.url) {
            (false, None) => format!("embedded: SQLite under {}", self.data_dir.display()),
            (true, None) => "PostgreSQL".to_owned(),
            (false, Some(_)) => format!("SQLite under {} with Redis", self.data_dir.display()),
            (true, Some(_)) => "PostgreSQL and Redis".to_owned(),
        }
    }

    /// The effective settings as TOML, passwords hidden: `medcov config show`.
    pub fn to_toml(&self) -> String {
        toml_of(self)
    }
}

fn toml_of(config: &Config) -> String {
    toml::to_string(config).unwrap_or_else(|e| format!("# could not print the configuration: {e}\n"))
}

fn describe(file: Option<&Path>, error: config::ConfigError) -> ConfigError {
    let message = error.to_string();
    match file {
        Some(path) if !message.contains("environment") => ConfigError::File { path: path.to_path_buf(), message },
        _ => ConfigError::Invalid(message),
    }
}

fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw = Option::<String>::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

fn none_as_empty<S, T>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize,
{
    match value {
        Some(v) => v.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

/// `192.0.2.1`, `10.0.0.0/8`, `::1/128`.
fn is_network(text: &str) -> bool {
    let (address, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
    match address.parse::<IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
        }
        Err(_) => false,
    }
}

/// A setting that must never be shown: printed and logged as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself; use it, never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<redacted>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn the_printed_default_file_holds_exactly_the_defaults() {
        let f = file(DEFAULT_FILE);
        let loaded = Config::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn layers_apply_in_order_file_then_environment() {
        let f = file("[services.hospital]\nport = 4002\n[http]\nbody_limit_bytes = 10\n");
        let loaded = Config::load_from(
            Some(f.path()),
            env(&[
                ("MEDCOV__HTTP__BODY_LIMIT_BYTES", "20"),
                ("MEDCOV__DATABASE__URL", "postgres://postgres@127.0.0.1:5432/medcov"),
                ("MEDCOV__SERVICES__BILLING__DATABASE_URL", "sqlite:///tmp/billing.db"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.port(ServiceName::Hospital), 4002);
        assert_eq!(loaded.port(ServiceName::Auth), 3001);
        assert_eq!(loaded.http.body_limit_bytes, 20);
        assert!(loaded.database_url(ServiceName::Hospital).is_postgres());
        assert_eq!(loaded.database_url(ServiceName::Billing), &DatabaseUrl::SqliteFile("/tmp/billing.db".into()));
    }

    #[test]
    fn a_wrong_value_names_the_key_and_the_accepted_values() {
        let err = Config::load_from(None, env(&[("MEDCOV__LOG__FORMAT", "xml")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("log.format"), "{text}");
        assert!(text.contains("json") && text.contains("pretty"), "{text}");

        let err = Config::load_from(None, env(&[("MEDCOV__DATABASE__URL", "mysql://x/y")])).unwrap_err().to_string();
        assert!(err.contains("database.url") && err.contains("postgres://"), "{err}");

        let f = file("[http]\nbody_limit = 5\n");
        let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(err.contains("body_limit") && err.contains("body_limit_bytes"), "{err}");
    }

    #[test]
    fn the_cache_memory_is_bounded_and_zero_is_refused() {
        let loaded = Config::load_from(None, env(&[("MEDCOV__CACHE__MEMORY_MIB", "16")])).unwrap();
        assert_eq!(loaded.cache.memory_bytes(), 16 * 1024 * 1024);
        let err = Config::load_from(None, env(&[("MEDCOV__CACHE__MEMORY_MIB", "0")])).unwrap_err().to_string();
        assert!(err.contains("cache.memory_mib") && err.contains("from 1"), "{err}");
    }

    #[test]
    fn clashing_ports_are_refused() {
        let err = Config::load_from(None, env(&[("MEDCOV__SERVICES__AUTH__PORT", "3002")])).unwrap_err().to_string();
        assert!(err.contains("services.hospital.port") && err.contains("3002"), "{err}");
        // Port 0 (any free port) may repeat.
        let ok = Config::load_from(
            None,
            env(&[("MEDCOV__SERVICES__AUTH__PORT", "0"), ("MEDCOV__SERVICES__HOSPITAL__PORT", "0")]),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn shown_configuration_hides_passwords_and_reads_back() {
        let mut config = Config::default();
        config.database.url = "postgres://medcov:s3cret@db:5432/medcov".parse().unwrap();
        config.redis.url = Some("redis://:hunter2@cache:6379".parse().unwrap());
        let shown = config.to_toml();
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[services.hospital]"), "{shown}");
        let f = file(&Config::default().to_toml());
        assert_eq!(Config::load_from(Some(f.path()), env(&[])).unwrap(), Config::default());
    }

    #[test]
    fn the_advertised_address_is_a_url_for_any_host() {
        let mut mesh = MeshConfig::default();
        assert_eq!(mesh.advertised_url(3002), None);
        for (host, url) in [
            ("10.1.2.3", "http://10.1.2.3:3002/"),
            ("fd00::7", "http://[fd00::7]:3002/"),
            ("hospital-1", "http://hospital-1:3002/"),
        ] {
            mesh.advertise_host = host.into();
            assert_eq!(mesh.advertised_url(3002).map(|u| u.to_string()).as_deref(), Some(url));
        }
        let err = Config::load_from(None, env(&[("MEDCOV__MESH__ADVERTISE_HOST", "a/b")])).unwrap_err().to_string();
        assert!(err.contains("mesh.advertise_host"), "{err}");
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_seeds_or_the_cluster_setting() {
        let seeds = "redis://10.0.0.1:6379,redis://10.0.0.2:6379";
        let loaded = Config::load_from(None, env(&[("MEDCOV__REDIS__URL", seeds)])).unwrap();
        assert!(loaded.redis.is_cluster());
        assert_eq!(loaded.redis.url.as_ref().unwrap().nodes().len(), 2);
        let one = Config::load_from(
            None,
            env(&[("MEDCOV__REDIS__URL", "redis://redis-cluster:6379"), ("MEDCOV__REDIS__CLUSTER", "true")]),
        )
        .unwrap();
        assert!(one.redis.is_cluster());
        let plain = Config::load_from(None, env(&[("MEDCOV__REDIS__URL", "redis://cache:6379/2")])).unwrap();
        assert!(!plain.redis.is_cluster());

        for (vars, says) in [
            (vec![("MEDCOV__REDIS__CLUSTER", "true")], "redis.cluster"),
            (vec![("MEDCOV__REDIS__URL", "redis://c:6379/2"), ("MEDCOV__REDIS__CLUSTER", "true")], "database 0"),
            (vec![("MEDCOV__REDIS__KEY_PREFIX", "{medcov}")], "redis.key_prefix"),
        ] {
            let err = Config::load_from(None, env(&vars)).unwrap_err().to_string();
            assert!(err.contains(says), "{vars:?}: {err}");
        }
    }
}
