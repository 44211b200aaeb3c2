//! Runs any subset of the five services in one process.
//!
//! Each service crate describes itself with a [`ServiceSpec`]: its name, its migrations and
//! how to build its API from a [`ServiceContext`]. [`start`] binds every listener first (so a
//! port clash stops start-up before anything else happens), then starts the services in
//! dependency order, and [`Running::shutdown`] stops them in reverse: readiness turns 503,
//! in-flight requests finish, background tasks drain, pools close.
//!
//! - [`context`]: what a service gets when it is built.
//! - [`redis`]: the shared, lazily connected Redis handle.
//! - [`checks`]: readiness checks for the database and Redis.
//! - [`events`]: the event log and bus operations every service with an outbox serves.
//! - [`sagas`]: `/sagas`, the flows a service orchestrates.
//! - [`idempotency`]: the Idempotency-Key middleware on every service's mutating endpoints.
//! - [`settle`]: [`Running::settle`], waiting until the event work in flight is done (for tests).
//!
//! A service with an outbox also gets its outbox relay and the trimming of its stream as
//! background tasks.

#![forbid(unsafe_code)]

pub mod checks;
pub mod context;
pub mod events;
pub mod idempotency;
pub mod redis;
pub mod sagas;
pub mod settle;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use medcov_config::{Config, ServiceName, Targets};
use medcov_http::{Health, HttpSettings, Metrics, ReadinessCheck, ServiceHttp};
use medcov_mesh::{Instance, Mesh, Remote, Upstream};
use medcov_store::{Database, Migrations, PoolOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa_axum::router::OpenApiRouter;

pub use context::ServiceContext;

/// Who is acting in a request: the verified caller, with the request's id and trace for the
/// history, the audit and the events it writes. The request is the command that causes them:
/// its id is their causation id (and the correlation id of the whole chain).
pub fn actor(principal: &medcov_security::Principal) -> medcov_store::outbox::Actor {
    let context = medcov_http::RequestContext::current();
    let request_id = context.as_ref().map(|c| c.request_id.clone());
    medcov_store::outbox::Actor {
        user_id: principal.id,
        causation_id: request_id.clone(),
        request_id,
        // The request's own span, so what it writes (events, saga commands) hangs under it.
        traceparent: context.as_ref().map(|c| c.outgoing_traceparent()),
    }
}

/// Who is acting for an event a consumer handles: the platform (the nil id), correlated with
/// the request that started the chain, and naming the event as the cause of what it writes.
pub fn event_actor(envelope: &medcov_bus::Envelope) -> medcov_store::outbox::Actor {
    medcov_store::outbox::Actor {
        user_id: uuid::Uuid::nil(),
        request_id: envelope.correlation_id.clone().or_else(|| Some(envelope.id.to_string())),
        // The consumer's span (when spans are exported), so the events it writes continue the
        // trace under it; the event's own trace otherwise.
        traceparent: medcov_telemetry::outgoing(&tracing::Span::current(), envelope.traceparent.as_deref())
            .or_else(|| envelope.traceparent.clone()),
        causation_id: Some(envelope.id.to_string()),
    }
}
pub use redis::RedisHandle;

/// How a service crate plugs into the runtime.
#[derive(Clone, Copy)]
pub struct ServiceSpec {
    pub name: ServiceName,
    /// `None` for a service without a database (the gateway).
    pub migrations: Option<Migrations>,
    /// Whether it has an outbox: then the runtime relays it to the bus, trims its stream and
    /// serves its event log under `/events`.
    pub outbox: bool,
    /// The streams it reads, each in a consumer group named after it
    /// ([`ServiceContext::consume`]). Declared, so that the emitting service knows the groups
    /// that must exist on its stream even while the bus has lost them (`/events/consumers`).
    pub consumes: &'static [&'static str],
    pub build: fn(ServiceContext) -> BoxFuture<'static, anyhow::Result<ServiceApi>>,
}

/// What a service hands back when built.
pub struct ServiceApi {
    /// Its routes, with their OpenAPI description.
    pub router: OpenApiRouter,
    /// Readiness checks beyond its database and Redis, which the runtime adds.
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    /// How the Idempotency-Key middleware tells callers apart, when not with the auth
    /// service's keys fetched through the mesh ([`ServiceContext::verifier`]): the auth service
    /// holds those keys itself, and is not reachable through the mesh while it starts.
    pub verifier: Option<Arc<medcov_security::Verifier>>,
}

/// Applies the migrations of `targets` and returns; `medcov migrate`.
pub async fn migrate(config: &Config, targets: &Targets, specs: &[ServiceSpec]) -> anyhow::Result<()> {
    let options = PoolOptions::from_config(config);
    for name in targets.iter() {
        let Some(migrations) = spec_of(specs, name)?.migrations else { continue };
        let url = config.database_url(name);
        let database = Database::connect(name, url, &options).await?;
        database.migrate(name, &migrations).await?;
        tracing::info!(service = %name, backend = database.backend().as_str(), database = %url, "migrations applied");
        database.close().await;
    }
    Ok(())
}

fn spec_of(specs: &[ServiceSpec], name: ServiceName) -> anyhow::Result<ServiceSpec> {
    specs.iter().copied().find(|s| s.name == name).with_context(|| format!("no service named {name} is built in"))
}

/// One started service.
struct Started {
    name: ServiceName,
    addr: SocketAddr,
    /// The internal listener (metrics, health), for the gateway.
    internal_addr: Option<SocketAddr>,
    health: Health,
    database: Option<Database>,
    /// Whether its outbox is relayed (the spec's `outbox`).
    outbox: bool,
    /// The (stream, group) pairs it consumes, as [`ServiceContext::consume`] starts them.
    consumers: context::Consumers,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    tasks: TaskTracker,
}

/// Services running in this process.
pub struct Running {
    started: Vec<Started>,
    bus: Arc<dyn medcov_bus::Bus>,
    grace: Duration,
    mesh: Arc<Mesh>,
    mesh_stop: CancellationToken,
    mesh_task: Option<JoinHandle<()>>,
    /// Keeps the process's revocation list in sync; stops with the mesh.
    revocations_task: Option<JoinHandle<()>>,
}

/// Starts `targets` (in start order) and returns once every one of them listens.
pub async fn start(config: Arc<Config>, targets: &Targets, specs: &[ServiceSpec]) -> anyhow::Result<Running> {
    check_shared_bus(&config, targets, specs)?;
    // Bind first: a port clash stops start-up before any database is touched.
    let mut listeners = BTreeMap::new();
    for name in targets.iter() {
        spec_of(specs, name)?;
        let address = SocketAddr::new(config.http.host, config.port(name));
        let listener = medcov_http::server::bind(address).with_context(|| {
            format!("cannot listen on {address} for the {name} service; free the port or set services.{name}.port")
        })?;
        listeners.insert(name, listener);
    }
    // The gateway's metrics and health, off its public port.
    let mut internal = match targets.iter().any(|n| n == ServiceName::Gateway) {
        true => {
            let address = SocketAddr::new(config.http.host, config.gateway.internal_port);
            Some(medcov_http::server::bind(address).with_context(|| {
                format!(
                    "cannot listen on {address} for the gateway's metrics; free the port or set gateway.internal_port"
                )
            })?)
        }
        false => None,
    };

    let options = PoolOptions::from_config(&config);
    let redis = RedisHandle::from_config(&config.redis)?;
    let mesh = mesh(&config, redis.as_ref())?;
    // One cache for the process: the gateway sees the services' invalidations. With Redis it
    // is shared by every process.
    let cache: Arc<dyn medcov_cache::Cache> = match &redis {
        Some(redis) => Arc::new(medcov_cache::RedisCache::new(redis.connection(), redis.prefix())),
        None => Arc::new(medcov_cache::MemoryCache::new(config.cache.memory_bytes(), Duration::from_secs(3600))),
    };
    let placeholder = Metrics::new("mesh");
    let mut upstreams: BTreeMap<ServiceName, Upstream> = ServiceName::ALL
        .into_iter()
        .map(|name| {
            let remote = Remote {
                name: name.as_str(),
                mesh: mesh.clone(),
                pool: mesh.pool(name.as_str(), &config.service_urls(name)),
                metrics: placeholder.clone(),
            };
            (name, Upstream::Remote(remote))
        })
        .collect();
    let bus = bus(&config, redis.as_ref()).await?;

    let mesh_stop = CancellationToken::new();
    let intervals = medcov_mesh::Intervals {
        refresh: Duration::from_millis(config.mesh.heartbeat_interval_ms),
        policy_watch: Duration::from_millis(config.mesh.policy_watch_interval_ms),
    };
    let mesh_task = tokio::spawn(mesh.clone().run(intervals, mesh_stop.clone()));
    // One revocation list for the process, checked by every verifier in it.
    let revocations = Arc::new(medcov_security::Revocations::default());
    let mut running = Running {
        started: Vec::new(),
        bus: bus.clone(),
        grace: config.http.shutdown_grace(),
        mesh: mesh.clone(),
        mesh_stop,
        mesh_task: Some(mesh_task),
        revocations_task: None,
    };
    for name in targets.iter() {
        let spec = spec_of(specs, name)?;
        let listener = listeners.remove(&name).context("listener bound above")?;
        // The groups every built-in service reads this one's stream with.
        let readers: Vec<&'static str> =
            specs.iter().filter(|s| s.consumes.contains(&name.as_str())).map(|s| s.name.as_str()).collect();
        let shared = Shared {
            readers,
            options: &options,
            redis: redis.clone(),
            bus: bus.clone(),
            mesh: mesh.clone(),
            cache: cache.clone(),
            revocations: revocations.clone(),
        };
        let internal = if name == ServiceName::Gateway { internal.take() } else { None };
        match start_one(&config, spec, listener, internal, shared, &upstreams).await {
            Ok((started, router)) => {
                upstreams.insert(name, Upstream::Local { name: name.as_str(), router });
                mesh.forget(name.as_str());
                running.started.push(started);
            }
            Err(error) => {
                running.shutdown().await;
                return Err(error.context(format!("the {name} service did not start")));
            }
        }
    }
    // Kept in sync with the auth service: in process when it runs here, over the mesh otherwise.
    let source = medcov_security::revocation::UpstreamRevocations(upstreams[&ServiceName::Auth].clone());
    let stop = running.mesh_stop.clone();
    running.revocations_task = Some(tokio::spawn(async move {
        revocations.keep_in_sync(&source, medcov_security::revocation::POLL_INTERVAL, stop).await;
    }));
    Ok(running)
}

/// Refuses to split the services that exchange events over processes with no bus to share.
///
/// Without Redis the bus is `bus.db` in this process's data folder: on SQLite, processes of
/// one machine sharing the data folder share it too, but on PostgreSQL the processes are
/// usually on different hosts, and an event would stay in the bus of the process that relayed
/// it. So on PostgreSQL without Redis a process runs all of the services that emit or consume
/// events, or none of them (a gateway, auth).
pub fn check_shared_bus(config: &Config, targets: &Targets, specs: &[ServiceSpec]) -> anyhow::Result<()> {
    if config.redis.url.is_some() {
        return Ok(());
    }
    let eventful: Vec<ServiceName> =
        specs.iter().filter(|s| s.outbox || !s.consumes.is_empty()).map(|s| s.name).collect();
    let here: Vec<ServiceName> = eventful.iter().copied().filter(|n| targets.iter().any(|t| t == *n)).collect();
    let on_postgres = here.iter().any(|n| config.database_url(*n).is_postgres());
    if !on_postgres || here.is_empty() || here.len() == eventful.len() {
        return Ok(());
    }
    let names = |list: &[ServiceName]| list.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
    anyhow::bail!(
        "cannot run {} without {} on PostgreSQL without Redis: the services that exchange events \
         ({}) would each keep them in their own process's bus (bus.db in the data folder), so \
         events would never reach the services running elsewhere. Set `redis.url` \
         (MEDCOV__REDIS__URL) so that every process shares one bus, or run {} in one process",
        names(&here),
        names(&eventful.iter().copied().filter(|n| !here.contains(n)).collect::<Vec<_>>()),
        names(&eventful),
        names(&eventful),
    )
}

/// The event bus: Redis Streams when Redis is configured, `bus.db` in the data folder otherwise.
pub async fn bus(config: &Config, redis: Option<&RedisHandle>) -> anyhow::Result<Arc<dyn medcov_bus::Bus>> {
    Ok(match redis {
        Some(redis) => Arc::new(medcov_bus::RedisBus::new(redis.client(), redis.connection(), redis.prefix())),
        None => {
            let path = config.data_dir.join("bus.db");
            Arc::new(
                medcov_bus::SqliteBus::open(&path)
                    .await
                    .with_context(|| format!("cannot open the event bus at {}", path.display()))?,
            )
        }
    })
}

/// The mesh of this process: the policy file (refusing to start on an invalid one), the
/// registry (Redis when configured, in process otherwise) and one HTTP client.
pub fn mesh(config: &Config, redis: Option<&RedisHandle>) -> anyhow::Result<Arc<Mesh>> {
    let policy = mesh_policy(config)?;
    let registry: Arc<dyn medcov_mesh::Registry> = match redis {
        Some(redis) => Arc::new(medcov_mesh::RedisRegistry::new(redis.connection(), redis.prefix())),
        None => Arc::new(medcov_mesh::MemoryRegistry::new(medcov_mesh::clock::system())),
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .context("cannot build the HTTP client")?;
    // Idempotency-Keys live in each service's database, which all its instances share.
    let mesh = Mesh::new(policy, registry, client, medcov_mesh::clock::system()).with_shared_keys(true);
    Ok(Arc::new(mesh))
}

/// The mesh policy `mesh.policy_file` sets (the built-in one without a file), validated whole:
/// what `serve` starts with, and what `medcov config check` checks.
pub fn mesh_policy(config: &Config) -> anyhow::Result<medcov_mesh::PolicyHandle> {
    let names: Vec<&'static str> = ServiceName::ALL.iter().map(|n| n.as_str()).collect();
    Ok(medcov_mesh::PolicyHandle::open(config.mesh.policy_file().map(|p| p.to_path_buf()), &names)?)
}

/// How long start-up waits for a database whose connections are all busy.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// Runs a start-up step against the database, again while it only finds the pool busy (see
/// `OpenError::is_busy`), for up to [`START_PATIENCE`]: a loaded machine or a database still
/// starting delays start-up rather than failing it. Any other error fails at once.
async fn patiently<T, F, Fut>(service: ServiceName, mut step: F) -> Result<T, medcov_store::OpenError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, medcov_store::OpenError>>,
{
    let started = std::time::Instant::now();
    loop {
        match step().await {
            Err(error) if error.is_busy() && started.elapsed() < START_PATIENCE => {
                tracing::warn!(service = %service, %error, "the database is busy; start-up tries again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            done => return done,
        }
    }
}

/// What every service of the process shares.
struct Shared<'a> {
    /// The consumer groups that read this service's stream (declared by their specs).
    readers: Vec<&'static str>,
    options: &'a PoolOptions,
    redis: Option<RedisHandle>,
    bus: Arc<dyn medcov_bus::Bus>,
    mesh: Arc<Mesh>,
    cache: Arc<dyn medcov_cache::Cache>,
    revocations: Arc<medcov_security::Revocations>,
}

async fn start_one(
    config: &Arc<Config>,
    spec: ServiceSpec,
    listener: TcpListener,
    internal: Option<TcpListener>,
    shared: Shared<'_>,
    upstreams: &BTreeMap<ServiceName, Upstream>,
) -> anyhow::Result<(Started, axum::Router)> {
    let Shared { readers, options, redis, bus, mesh, cache, revocations } = shared;
    let name = spec.name;
    let database = match &spec.migrations {
        None => None,
        Some(migrations) => {
            let url = config.database_url(name);
            let database = patiently(name, || Database::connect(name, url, options)).await?;
            if config.database.migrate_on_start {
                patiently(name, || database.migrate(name, migrations)).await?;
            } else {
                patiently(name, || database.check_owner(name)).await?;
            }
            tracing::info!(service = %name, backend = database.backend().as_str(), database = %url, "database ready");
            let system = match database.backend() {
                medcov_store::Backend::Postgres => "postgresql",
                medcov_store::Backend::Sqlite => "sqlite",
            };
            medcov_telemetry::db::register(name.as_str(), system);
            Some(database)
        }
    };

    let metrics = Metrics::new(name.as_str());
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let consumers = context::Consumers::default();
    let context = ServiceContext {
        name,
        config: config.clone(),
        database: database.clone(),
        redis: redis.clone(),
        bus: bus.clone(),
        metrics: metrics.clone(),
        shutdown: stop.clone(),
        tasks: tasks.clone(),
        upstreams: Arc::new(upstreams.clone()),
        mesh: mesh.clone(),
        cache,
        revocations,
        consumers: consumers.clone(),
    };
    let verifier = context.verifier();
    let context_cache = context.cache();
    let mut api = (spec.build)(context).await?;
    let consuming = consumers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if let Some(consumer) = consuming.iter().find(|c| c.group != name.as_str() || !spec.consumes.contains(&c.stream)) {
        anyhow::bail!(
            "the {name} service consumes stream {} as group {} without declaring it in its spec's `consumes`",
            consumer.stream,
            consumer.group
        );
    }
    if let (true, Some(database)) = (spec.outbox, &database) {
        let stream = name.as_str();
        let events = events::router(stream, readers.clone(), database.clone(), bus.clone())
            .layer(axum::Extension(verifier.clone()));
        api.router = api.router.merge(events);
        let interval = Duration::from_millis(config.events.relay_interval_ms);
        metrics.describe_counter("events_published_total", "Events the outbox relay handed to the bus.");
        let published = metrics.counter("events_published_total", &[]);
        tasks.spawn(medcov_bus::relay::run(stream, database.clone(), bus.clone(), interval, published, stop.clone()));
        let trim_every = Duration::from_secs(config.events.trim_interval_s);
        let watch = Watch {
            stream,
            readers,
            database: database.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
            trim_every,
        };
        tasks.spawn(watch_stream(watch, stop.clone()));
    }

    if let Some(database) = &database {
        metrics.describe_counter(
            idempotency::ANSWERS_AFTER_COMMIT,
            "Keyed requests whose Idempotency-Key record was committed before their answer was known \
             (a crash in between leaves a retry told 409 instead of the answer); expected to stay 0.",
        );
        let state = idempotency::Idempotency {
            service: name.as_str(),
            database: database.clone(),
            verifier: api.verifier.clone().unwrap_or_else(|| verifier.clone()),
            body_limit: config.http.body_limit_bytes,
            answers_after_commit: metrics.counter(idempotency::ANSWERS_AFTER_COMMIT, &[]),
        };
        api.router = api.router.route_layer(axum::middleware::from_fn_with_state(state, idempotency::middleware));
    }

    let mut checks: Vec<Arc<dyn ReadinessCheck>> = Vec::new();
    if let Some(database) = &database {
        checks.push(Arc::new(checks::DatabaseCheck(database.clone())));
    }
    if let Some(redis) = &redis {
        checks.push(Arc::new(checks::RedisCheck(redis.clone())));
    }
    for consumer in consuming {
        checks.push(Arc::new(checks::ConsumerCheck(consumer)));
    }
    checks.extend(api.checks);
    let health = Health::new(name.as_str(), checks);
    // Every service but the gateway (which caches what it forwards) answers its cacheable
    // GETs from the shared cache too, checking the caller's token with the service's verifier.
    let response_cache = (name != ServiceName::Gateway).then(|| {
        let audiences: Arc<dyn medcov_http::caching::Audiences> =
            api.verifier.clone().unwrap_or_else(|| verifier.clone());
        medcov_http::caching::ResponseCache::new(name.as_str(), context_cache.clone(), audiences, &metrics)
    });
    let kit = ServiceHttp {
        response_cache,
        service: name.as_str(),
        metrics: metrics.clone(),
        health: health.clone(),
        settings: HttpSettings { access_log: config.log.access, ..HttpSettings::from(&config.http) },
        metrics_on_port: internal.is_none(),
        edge: if name == ServiceName::Gateway {
            medcov_http::observe::Edge::Always
        } else {
            medcov_http::observe::Edge::UnlessForwardedBy(medcov_http::client::trusted(&config.http))
        },
    };
    let router = kit.router(api.router);
    let internal_addr = match internal {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let serving = medcov_http::server::serve(listener, kit.internal_router(), stop.clone().cancelled_owned());
            tasks.spawn(async move {
                if let Err(error) = serving.await {
                    tracing::error!(%error, "the internal listener stopped");
                }
            });
            tracing::info!(service = %name, address = %format!("http://{addr}"), "internal listener (metrics, health)");
            Some(addr)
        }
        None => None,
    };

    let dependencies =
        checks::Watched { database: database.clone(), redis: redis.clone(), cache: context_cache.clone() };
    tasks.spawn(checks::upkeep(name, metrics, health.clone(), dependencies, stop.clone()));
    let addr = listener.local_addr()?;
    tasks.spawn(register(config.clone(), mesh.clone(), name, addr, stop.clone()));
    let server = tokio::spawn(medcov_http::server::serve(listener, router.clone(), stop.clone().cancelled_owned()));
    tracing::info!(service = %name, address = %format!("http://{addr}"), "listening");
    let outbox = spec.outbox;
    Ok((Started { name, addr, internal_addr, health, database, outbox, consumers, stop, server, tasks }, router))
}

/// Keeps this instance in the registry while it runs, and takes it out when it stops.
async fn register(config: Arc<Config>, mesh: Arc<Mesh>, name: ServiceName, addr: SocketAddr, stop: CancellationToken) {
    // Its own address first (a pod's IP), then the service's address, then where it listens.
    let advertised = config.mesh.advertised_url(addr.port()).or_else(|| config.services.get(name).url.clone());
    let address = match advertised {
        Some(url) => url,
        None => {
            let host = if addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
            let text = format!("http://{}/", SocketAddr::new(host, addr.port()));
            match text.parse() {
                Ok(url) => url,
                Err(_) => return,
            }
        }
    };
    let mut instance = Instance::new(name.as_str(), address);
    instance.weight = config.mesh.weight;
    instance.zone = config.mesh.zone.clone();
    // A restart at the same address is a new instance to its callers (see Instance::incarnation).
    instance.incarnation = uuid::Uuid::now_v7().to_string();
    let every = Duration::from_millis(config.mesh.heartbeat_interval_ms);
    let ttl = Duration::from_millis(config.mesh.registration_ttl_ms);
    let mut warned = false;
    loop {
        match mesh.registry().register(&instance, ttl).await {
            Ok(()) => warned = false,
            Err(error) if !warned => {
                warned = true;
                tracing::warn!(service = %name, %error, "cannot register in the service registry; retrying");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    if let Err(error) = mesh.registry().deregister(name.as_str(), &instance.id).await {
        tracing::warn!(service = %name, %error, "cannot leave the service registry; the registration will lapse");
    }
}

/// What [`watch_stream`] watches: a service's stream, the groups declared to read it, and its
/// outbox.
struct Watch {
    stream: &'static str,
    readers: Vec<&'static str>,
    database: Database,
    bus: Arc<dyn medcov_bus::Bus>,
    metrics: Metrics,
    trim_every: Duration,
}

/// Every few seconds, publishes the pending, lag and dead-letter counts of each group reading
/// a service's stream, and the outbox's backlog (rows not yet relayed, and the age of the
/// oldest), as gauges, and records how far every group got (what the relay publishes again if
/// the bus loses its data); every `trim_every`, trims the stream of what every group is done
/// with.
async fn watch_stream(watch: Watch, stop: CancellationToken) {
    let Watch { stream, readers, database, bus, metrics, trim_every } = watch;
    metrics.describe_gauge("events_group_pending", "Events delivered to a consumer group and not yet acknowledged.");
    metrics.describe_gauge("events_group_lag", "Events in the stream not yet delivered to a consumer group.");
    metrics.describe_gauge("events_group_dead_letters", "Dead letters of a consumer group waiting for an operator.");
    metrics.describe_gauge("events_outbox_backlog", "Events in the service's outbox not yet relayed to the bus.");
    metrics.describe_gauge(
        "events_outbox_oldest_seconds",
        "Age of the oldest event in the outbox not yet relayed (0 when none waits).",
    );
    metrics.ensure_gauge("events_outbox_backlog", &[]);
    metrics.ensure_gauge("events_outbox_oldest_seconds", &[]);
    let mut last_trim = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5).min(trim_every)) => {}
        }
        if let Ok((backlog, oldest)) = medcov_store::outbox::backlog(&database).await {
            metrics.gauge("events_outbox_backlog", &[]).set(backlog as f64);
            let age = oldest.map(|at| (time::OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0));
            metrics.gauge("events_outbox_oldest_seconds", &[]).set(age.unwrap_or(0.0));
        }
        if let Ok(mut groups) = bus.groups(stream).await {
            groups.extend(readers.iter().map(|r| r.to_string()));
            groups.sort();
            groups.dedup();
            for group in groups {
                if let Ok(stats) = bus.stats(stream, &group).await {
                    let labels = [("stream", stream), ("group", group.as_str())];
                    metrics.gauge("events_group_pending", &labels).set(stats.pending as f64);
                    metrics.gauge("events_group_lag", &labels).set(stats.lag as f64);
                    metrics.gauge("events_group_dead_letters", &labels).set(stats.dead as f64);
                }
            }
        }
        if let Err(error) = medcov_bus::relay::record_settled(&database, bus.as_ref(), stream).await {
            tracing::debug!(stream, %error, "how far the consumer groups got could not be recorded");
        }
        if last_trim.elapsed() >= trim_every {
            last_trim = tokio::time::Instant::now();
            match bus.trim(stream).await {
                Ok(dropped) if dropped > 0 => tracing::debug!(stream, dropped, "stream trimmed"),
                Ok(_) => {}
                Err(error) => tracing::warn!(stream, %error, "the stream could not be trimmed"),
            }
        }
    }
}

impl Running {
    /// Where a started service listens.
    pub fn addr(&self, name: ServiceName) -> Option<SocketAddr> {
        self.started.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// Where a service's internal listener (metrics, health) is, when it has one (the gateway).
    pub fn internal_addr(&self, name: ServiceName) -> Option<SocketAddr> {
        self.started.iter().find(|s| s.name == name).and_then(|s| s.internal_addr)
    }

    /// The services started, in start order, with their addresses.
    pub fn addresses(&self) -> Vec<(ServiceName, SocketAddr)> {
        self.started.iter().map(|s| (s.name, s.addr)).collect()
    }

    /// Runs until `signal` resolves or a server stops on its own, then shuts down.
    /// Returns an error when a server stopped on its own.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let servers = futures::future::select_all(self.started.iter_mut().map(|s| {
            let name = s.name;
            Box::pin(async move { (name, (&mut s.server).await) })
        }));
        let failure = tokio::select! {
            () = signal => None,
            ((name, outcome), _, _) = servers => Some((name, outcome)),
        };
        self.shutdown().await;
        match failure {
            None => Ok(()),
            Some((name, Ok(Ok(())))) => anyhow::bail!("the {name} server stopped unexpectedly"),
            Some((name, Ok(Err(e)))) => Err(anyhow::Error::new(e).context(format!("the {name} server failed"))),
            Some((name, Err(e))) => Err(anyhow::Error::new(e).context(format!("the {name} server crashed"))),
        }
    }

    /// The process's mesh (to reload its policy on SIGHUP, for instance).
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// Stops every service in reverse start order, letting in-flight requests and background
    /// tasks finish within the grace period.
    pub async fn shutdown(mut self) {
        for service in &self.started {
            service.health.start_draining();
        }
        while let Some(service) = self.started.pop() {
            let name = service.name;
            tracing::info!(service = %name, "stopping");
            service.stop.cancel();
            service.tasks.close();
            let drained = tokio::time::timeout(self.grace, async {
                if !service.server.is_finished() {
                    let _ = service.server.await;
                }
                service.tasks.wait().await;
            })
            .await;
            if drained.is_err() {
                tracing::warn!(service = %name, grace_ms = self.grace.as_millis() as u64, "did not drain within the grace period");
            }
            if let Some(database) = service.database {
                database.close().await;
            }
            tracing::info!(service = %name, "stopped");
        }
        self.mesh_stop.cancel();
        for task in [self.mesh_task.take(), self.revocations_task.take()].into_iter().flatten() {
            let _ = task.await;
        }
    }
}
