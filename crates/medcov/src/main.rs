//! The `medcov` binary: parses the command line and hands over to [`medcov::cli`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = medcov::cli::Cli::parse();
    match medcov::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("medcov: {error:#}");
            ExitCode::FAILURE
        }
    }
}
