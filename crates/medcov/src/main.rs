//! The `medcov` binary: parses the command line and hands over to [`medcov::cli`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: allocation was a sixth of the CPU of a proxied request,
/// and glibc kept what a burst had used (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
