//! The `sotto` binary: parse the command line, set up logging, run one subcommand.
//!
//! Thin on purpose: each subcommand lives in `cmd/`, and turns its arguments into the library
//! crates' validated configuration in one place.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod config;
mod follow;
mod sandbox;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.global.log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sotto: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
