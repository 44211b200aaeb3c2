//! The command line: `serve` (the default), `migrate`, `admin`, `events`, `config`, `health`
//! and `version`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use medcov_config::{Config, Targets};

#[derive(Debug, Parser)]
#[command(
    name = "medcov",
    version,
    about = "MedCov: patients, coverage, claims and billing in one platform.",
    long_about = "MedCov: patients, coverage, claims and billing in one platform.\n\n\
        With no command it runs every service in this process on SQLite under ./data \
        (gateway on http://127.0.0.1:3000). Settings come from defaults, then medcov.toml, \
        then MEDCOV__SECTION__KEY environment variables; `medcov config default` prints them all."
)]
pub struct Cli {
    /// Configuration file (default: ./medcov.toml when it exists).
    #[arg(long, global = true, env = "MEDCOV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run services until interrupted (SIGINT or SIGTERM drains them and exits 0).
    Serve {
        /// `all`, or a comma-separated list of gateway, auth, hospital, insurance, billing.
        #[arg(long, env = "MEDCOV_TARGET", default_value = "all", value_name = "SERVICES")]
        target: Targets,
    },
    /// Ask each chosen service on this machine `/health/live` (or `/health/ready`) and exit 0
    /// when all answer 200: the container image's health check.
    Health {
        /// The services to ask; the same variable `serve` reads, so one image checks any role.
        #[arg(long, env = "MEDCOV_TARGET", default_value = "all", value_name = "SERVICES")]
        target: Targets,
        /// Ask `/health/ready` (every critical dependency up) instead of `/health/live`.
        #[arg(long)]
        ready: bool,
    },
    /// Apply database migrations for the chosen services, then exit.
    Migrate {
        /// `all`, or a comma-separated list of auth, hospital, insurance, billing.
        #[arg(long, default_value = "all", value_name = "SERVICES")]
        target: Targets,
    },
    /// Print or check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Administration: users, signing keys, backups.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The event bus: consumer groups, dead letters, replay (Redis when `redis.url` is set,
    /// otherwise `bus.db` in the data folder). The same operations are in each service's API
    /// under `/events`. Results go to standard output (JSON for lists), logs to standard
    /// error; an unknown stream or group is an error.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user directly in the auth database (for the first administrator).
    CreateUser {
        #[arg(long)]
        username: String,
        /// A role; repeat for several: admin, hospital_clerk, clinician, claims_officer,
        /// billing_clerk, agent, auditor, member.
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<medcov_security::Role>,
        /// `platform`, `hospital:<uuid>[,<uuid>...]`, `insurer:<uuid>` or `own`.
        #[arg(long, default_value = "platform")]
        scope: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Start signing tokens with a new key; the old one verifies until its tokens expire.
    RotateKey,
    /// Copy every service's SQLite file and the embedded bus into a new folder, while MedCov
    /// runs (consistent snapshots; see docs/deploy.md#backups). PostgreSQL: use pg_dump.
    Backup {
        /// A folder that does not exist yet, or is empty.
        #[arg(long, value_name = "FOLDER")]
        to: PathBuf,
    },
    /// Put a backup's files where the current settings keep them (`data_dir`, or each
    /// service's `sqlite://` file), which must not exist yet. MedCov must not be running there.
    Restore {
        /// A folder made by `medcov admin backup`.
        #[arg(long, value_name = "FOLDER")]
        from: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Every consumer group of a stream with its pending, lag and dead-letter counts, and
    /// whether the bus has it (a group a service reads the stream with is listed even while
    /// the bus has lost it).
    Groups {
        /// The stream: the emitting service (hospital, insurance, billing).
        #[arg(long)]
        stream: String,
    },
    /// The dead letters of a consumer group.
    DeadLetters {
        #[arg(long)]
        stream: String,
        #[arg(long)]
        group: String,
    },
    /// Put dead letters back on their stream: one by id, or all of the group.
    Retry {
        #[arg(long)]
        stream: String,
        #[arg(long)]
        group: String,
        /// A dead letter's id; omitted with --all.
        #[arg(long, required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Drop a dead letter for good, with the reason (kept in the discard log).
    Discard {
        #[arg(long)]
        stream: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Publish a service's event log again from a time; consumers skip what they handled.
    Replay {
        /// The emitting service: hospital, insurance or billing.
        #[arg(long)]
        service: medcov_config::ServiceName,
        /// RFC 3339, e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        since: String,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented configuration file holding the defaults.
    Default,
    /// Print the effective configuration (defaults, file, environment), passwords hidden.
    Show,
    /// Check the configuration (and the mesh policy file it names) and exit 0 when it is valid.
    Check,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Some(command) => command,
        // `medcov` alone serves what MEDCOV_TARGET names, like `medcov serve`.
        None => Command::Serve {
            target: match std::env::var("MEDCOV_TARGET") {
                Ok(text) if !text.trim().is_empty() => {
                    text.parse().map_err(|e| anyhow::anyhow!("invalid MEDCOV_TARGET `{text}`: {e}"))?
                }
                _ => Targets::all(),
            },
        },
    };
    match command {
        Command::Version => {
            println!("medcov {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{}", medcov_config::DEFAULT_FILE);
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            let config = Config::load(cli.config.as_deref())?;
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let config = Config::load(cli.config.as_deref())?;
            medcov_telemetry::validate(&config.log)?;
            // The mesh policy file is checked as `serve` reads it.
            medcov_runtime::mesh_policy(&config)?;
            println!("configuration is valid ({})", config.describe_backend(&Targets::all()));
            Ok(())
        }
        Command::Admin(AdminCommand::Backup { to }) => {
            let config = Config::load(cli.config.as_deref())?;
            let manifest = runtime()?.block_on(crate::backup::backup(&config, &to))?;
            for file in &manifest.files {
                println!("copied {:<10} {:>12} bytes  sha256 {}", file.part, file.bytes, file.sha256);
            }
            for note in &manifest.skipped {
                println!("not copied: {note}");
            }
            println!("backup written to {}", to.display());
            Ok(())
        }
        Command::Admin(AdminCommand::Restore { from }) => {
            let config = Config::load(cli.config.as_deref())?;
            let manifest = runtime()?.block_on(crate::backup::restore(&config, &from))?;
            for file in &manifest.files {
                println!("restored {}", file.part);
            }
            println!(
                "restored the backup of {} into {}",
                manifest.started_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Health { target, ready } => {
            let config = Config::load(cli.config.as_deref())?;
            runtime()?.block_on(crate::health::check(&config, &target, ready))
        }
        Command::Admin(command) => {
            let config = Config::load(cli.config.as_deref())?;
            let _telemetry = medcov_telemetry::init_command(&config.log, &config.telemetry, "medcov-admin")?;
            runtime()?.block_on(admin(&config, command))
        }
        Command::Events(command) => {
            let config = Config::load(cli.config.as_deref())?;
            let _telemetry = medcov_telemetry::init_command(&config.log, &config.telemetry, "medcov-events")?;
            runtime()?.block_on(events(&config, command))
        }
        Command::Migrate { target } => {
            let config = Config::load(cli.config.as_deref())?;
            let _telemetry = medcov_telemetry::init_command(&config.log, &config.telemetry, "medcov-migrate")?;
            runtime()?.block_on(crate::migrate(&config, &target))
        }
        Command::Serve { target } => {
            let config = Arc::new(Config::load(cli.config.as_deref())?);
            let process = if target.is_all() {
                "medcov".to_owned()
            } else {
                format!("medcov-{}", target.to_string().replace(',', "-"))
            };
            let _telemetry = medcov_telemetry::init(&config.log, &config.telemetry, &process)?;
            runtime()?.block_on(serve(config, target))
        }
    }
}

/// Reads `platform`, `own`, `insurer:<uuid>` or `hospital:<uuid>[,<uuid>...]`.
fn parse_scope(text: &str) -> anyhow::Result<medcov_security::Scope> {
    use medcov_security::Scope;
    let uuid = |s: &str| s.trim().parse::<uuid::Uuid>().with_context(|| format!("`{s}` is not a UUID"));
    match text.trim().split_once(':') {
        None if text.trim() == "platform" => Ok(Scope::Platform),
        None if text.trim() == "own" => Ok(Scope::Own),
        Some(("insurer", id)) => Ok(Scope::Insurer { insurer: uuid(id)? }),
        Some(("hospital", ids)) => {
            Ok(Scope::Hospitals { hospitals: ids.split(',').map(uuid).collect::<anyhow::Result<_>>()? })
        }
        _ => anyhow::bail!(
            "invalid --scope `{text}`: expected platform, own, insurer:<uuid> or hospital:<uuid>[,<uuid>...]"
        ),
    }
}

/// The stream named `stream`: an emitting service's. Anything else is an error naming them.
fn stream_named(stream: &str) -> anyhow::Result<medcov_runtime::ServiceSpec> {
    let services = crate::services();
    match services.iter().find(|s| s.outbox && s.name.as_str() == stream) {
        Some(spec) => Ok(*spec),
        None => {
            let streams: Vec<&str> = services.iter().filter(|s| s.outbox).map(|s| s.name.as_str()).collect();
            anyhow::bail!("there is no stream `{stream}`; the streams are {}", streams.join(", "))
        }
    }
}

/// The groups the services read `stream` with (declared in their specs).
fn readers_of(stream: &str) -> Vec<&'static str> {
    crate::services().iter().filter(|s| s.consumes.contains(&stream)).map(|s| s.name.as_str()).collect()
}

/// Fails unless `group` reads `stream`: a service reads it so, or the bus has the group.
async fn check_group(bus: &dyn medcov_bus::Bus, stream: &str, group: &str) -> anyhow::Result<()> {
    let mut groups: Vec<String> = bus.groups(stream).await?;
    groups.extend(readers_of(stream).into_iter().map(str::to_owned));
    groups.sort();
    groups.dedup();
    anyhow::ensure!(
        groups.iter().any(|g| g == group),
        "no consumer group `{group}` reads the {stream} stream; its groups are {}",
        groups.join(", ")
    );
    Ok(())
}

async fn events(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let redis = medcov_runtime::RedisHandle::from_config(&config.redis)?;
    let bus = medcov_runtime::bus(config, redis.as_ref()).await?;
    let show = |value: &dyn erased::Show| println!("{}", value.json());
    match command {
        EventsCommand::Groups { stream } => {
            stream_named(&stream)?;
            show(&medcov_runtime::events::groups_of(bus.as_ref(), &stream, &readers_of(&stream)).await?);
        }
        EventsCommand::DeadLetters { stream, group } => {
            stream_named(&stream)?;
            check_group(bus.as_ref(), &stream, &group).await?;
            show(&bus.dead_letters(&stream, &group).await?)
        }
        EventsCommand::Retry { stream, group, id, all } => {
            stream_named(&stream)?;
            check_group(bus.as_ref(), &stream, &group).await?;
            let ids: Vec<String> = match (id, all) {
                (Some(id), _) => vec![id],
                (None, _) => bus.dead_letters(&stream, &group).await?.into_iter().map(|d| d.id).collect(),
            };
            for id in &ids {
                let entry = bus.retry(&stream, &group, id).await?;
                println!("retried {id} as entry {entry}");
            }
            println!("{} dead letter(s) retried", ids.len());
        }
        EventsCommand::Discard { stream, group, id, reason } => {
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
            stream_named(&stream)?;
            check_group(bus.as_ref(), &stream, &group).await?;
            bus.discard(&stream, &group, &id, reason.trim()).await?;
            println!("discarded {id}");
        }
        EventsCommand::Replay { service, since, event_type } => {
            let spec = stream_named(service.as_str())?;
            let Some(migrations) = spec.migrations else {
                anyhow::bail!("the {service} service keeps no event log");
            };
            let since = time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)
                .with_context(|| {
                    format!("--since `{since}` is not an RFC 3339 instant such as 2026-11-01T00:00:00Z")
                })?;
            let database = medcov_store::Database::connect(
                service,
                config.database_url(service),
                &medcov_store::PoolOptions::from_config(config),
            )
            .await?;
            database.migrate(service, &migrations).await?;
            let count =
                medcov_runtime::events::replay_log(&database, bus.as_ref(), since, event_type.as_deref()).await?;
            database.close().await;
            println!("{count} event(s) published again");
        }
    }
    Ok(())
}

/// Printing any serialisable answer as pretty JSON.
mod erased {
    pub trait Show {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Show for T {
        fn json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    use medcov_config::ServiceName;
    let service = ServiceName::Auth;
    let database = medcov_store::Database::connect(
        service,
        config.database_url(service),
        &medcov_store::PoolOptions::from_config(config),
    )
    .await?;
    database.migrate(service, &medcov_auth::store::MIGRATIONS).await?;
    let kek = medcov_auth::kek::Kek::load(config)?;
    let auth = medcov_auth::AuthService::new(database.clone(), kek, Default::default(), config);
    auth.ensure_signing_key().await?;
    let outcome = match command {
        AdminCommand::CreateUser { username, roles, scope, display_name, password_stdin } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
                (line.trim_end_matches(['\n', '\r']).to_owned(), false)
            } else {
                (medcov_auth::domain::sessions::new_refresh_token(), true)
            };
            let input = medcov_auth::domain::user::NewAccount {
                username: username.clone(),
                password: password.clone(),
                display_name,
                roles: roles.into_iter().collect(),
                scope: parse_scope(&scope)?,
            };
            match auth.create_user(None, input).await {
                Ok(user) => {
                    println!("created user {username} ({})", user.id);
                    if generated {
                        println!("password: {password}");
                    }
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("{}", describe(&e))),
            }
        }
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            Err(anyhow::anyhow!("backup and restore do not open the auth database; run them on their own"))
        }
        AdminCommand::RotateKey => match auth.rotate_key(None).await {
            Ok(kid) => {
                println!("new signing key {kid}");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("{}", describe(&e))),
        },
    };
    database.close().await;
    outcome
}

/// An API error as a line for the terminal, with each invalid field.
fn describe(error: &medcov_http::ApiError) -> String {
    let problem = error.to_problem();
    let mut text = problem.detail.unwrap_or(problem.title);
    for field in problem.errors {
        text.push_str(&format!("\n  {}: {}", field.field, field.reason));
    }
    text
}

/// Tasks woken from outside the runtime (every SQLite statement's answer comes from its
/// connection's own thread; timers and channels from other services) wait in the runtime's
/// global queue, which a busy worker looks at only once every `global_queue_interval` tasks of
/// its own (61 by default). Under a flood of requests a task that awaits SQLite statement after
/// statement (an outbox relay, a consumer, a saga step) then waits a whole round of requests
/// per statement, and the queues behind MedCov's sagas stall while it answers refusals. Looking
/// every 8 tasks keeps that work moving at a small cost in request throughput
/// (docs/benchmarks.md).
const GLOBAL_QUEUE_INTERVAL: u32 = 8;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
        .context("cannot start the async runtime")
}

async fn serve(config: Arc<Config>, targets: Targets) -> anyhow::Result<()> {
    let backend = config.describe_backend(&targets);
    let signal = shutdown_signal()?;
    // Listening for SIGHUP before start-up: its default action ends the process, and a reload
    // may be asked for as soon as a service says it listens.
    let hangups = hangups()?;
    let running = crate::start(config, &targets).await?;
    tracing::info!(services = %targets, backend = %backend, "MedCov is running");
    if std::io::stdout().is_terminal() {
        println!("\nMedCov is running ({backend}).");
        for (name, addr) in running.addresses() {
            println!("  {:<10} http://{addr}", name.as_str());
        }
        println!("Health: /health/ready, metrics: /metrics, API description: /openapi.json. Ctrl+C stops.\n");
    }
    reload_on_hangup(hangups, running.mesh().clone());
    running.run_until(signal).await?;
    tracing::info!("MedCov stopped");
    Ok(())
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

/// The SIGHUP stream, installed now.
fn hangups() -> anyhow::Result<Hangups> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup()).context("cannot listen for SIGHUP")
    }
    #[cfg(not(unix))]
    Ok(())
}

/// SIGHUP reads the mesh policy file again (an invalid one is refused; the policy in force stays).
fn reload_on_hangup(mut hangups: Hangups, mesh: Arc<medcov_mesh::Mesh>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received, reading the mesh policy again");
            let _ = mesh.reload();
        }
    });
    #[cfg(not(unix))]
    let _ = (&mut hangups, mesh);
}

/// Resolves on SIGINT (Ctrl+C) or SIGTERM. The handlers are installed when this is called,
/// before start-up, so a signal that arrives while services are starting still drains them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupted, shutting down");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_serve_everything() {
        let cli = Cli::try_parse_from(["medcov"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["medcov", "serve", "--target", "gateway,hospital"]).unwrap();
        match cli.command {
            Some(Command::Serve { target }) => assert_eq!(target.to_string(), "hospital,gateway"),
            other => panic!("{other:?}"),
        }
        let err = Cli::try_parse_from(["medcov", "serve", "--target", "pharmacy"]).unwrap_err();
        assert!(err.to_string().contains("expected one of all, gateway"), "{err}");
    }
}
