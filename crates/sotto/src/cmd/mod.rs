//! One module per subcommand; [`run`] dispatches.

use std::process::ExitCode;

use crate::cli::{BenchCommand, Cli, Command, ModelsCommand};

mod bench;
mod generate;
mod models;

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let models_dir = cli.global.models_dir();
    match cli.command {
        Command::Models(ModelsCommand::Fetch { ids }) => models::fetch(&models_dir, &ids),
        Command::Models(ModelsCommand::List) => models::list(&models_dir),
        Command::Generate(args) => generate::run(&models_dir, args),
        Command::Bench(BenchCommand::Governor(args)) => bench::governor(&models_dir, args),
    }
}
