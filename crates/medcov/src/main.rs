//! The `medcov` binary: parses the command line and hands over to [`medcov::cli`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than glibc's malloc (allocation was a sixth of the CPU of a proxied request,
/// and glibc kept what a burst had used) or mimalloc (it kept the pages freed on threads that
/// went idle): its background threads give freed memory back to the system within seconds of a
/// burst's end, whether or not the threads that freed it run again (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
