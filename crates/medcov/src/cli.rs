//! The command line: `serve` (the default), `migrate`, `config` and `version`.

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
        #[arg(long, default_value = "all", value_name = "SERVICES")]
        target: Targets,
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
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented configuration file holding the defaults.
    Default,
    /// Print the effective configuration (defaults, file, environment), passwords hidden.
    Show,
    /// Check the configuration and exit 0 when it is valid.
    Check,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve { target: Targets::all() });
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
            println!("configuration is valid ({})", config.describe_backend(&Targets::all()));
            Ok(())
        }
        Command::Migrate { target } => {
            let config = Config::load(cli.config.as_deref())?;
            let _telemetry = medcov_telemetry::init(&config.log, &config.telemetry, "medcov-migrate")?;
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

async fn serve(config: Arc<Config>, targets: Targets) -> anyhow::Result<()> {
    let backend = config.describe_backend(&targets);
    let running = crate::start(config, &targets).await?;
    tracing::info!(services = %targets, backend = %backend, "MedCov is running");
    if std::io::stdout().is_terminal() {
        println!("\nMedCov is running ({backend}).");
        for (name, addr) in running.addresses() {
            println!("  {:<10} http://{addr}", name.as_str());
        }
        println!("Health: /health/ready, metrics: /metrics, API description: /openapi.json. Ctrl+C stops.\n");
    }
    running.run_until(shutdown_signal()).await?;
    tracing::info!("MedCov stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl+C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
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
