//! One module per subcommand; [`run`] dispatches.

use std::process::ExitCode;

use crate::cli::{BenchCommand, Cli, Command, HeadCommand, ModelsCommand};

mod analyze;
mod bench;
pub mod config;
mod doctor;
mod eval;
mod generate;
mod head;
mod models;
mod plan;
mod serve;
pub mod service;

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let models_dir = cli.global.models_dir();
    match cli.command {
        Command::Models(ModelsCommand::Fetch { ids }) => models::fetch(&models_dir, &ids),
        Command::Models(ModelsCommand::List) => models::list(&models_dir),
        Command::Generate(args) => generate::run(&models_dir, args),
        Command::Serve(args) => serve::run(&models_dir, args),
        Command::Analyze(args) => analyze::run(&models_dir, args),
        Command::Eval(args) => eval::run(&models_dir, args),
        Command::Config(cmd) => config::run(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Plan(args) => plan::run(&models_dir, args),
        Command::Service(cmd) => service::run(&models_dir, cmd),
        Command::Bench(BenchCommand::Run(args)) => bench::run(&models_dir, args),
        Command::Bench(BenchCommand::Governor(args)) => bench::governor(&models_dir, args),
        Command::Bench(BenchCommand::Serve(args)) => bench::serve(&models_dir, args),
        Command::Bench(BenchCommand::Analyze(args)) => bench::analyze(&models_dir, args),
        Command::Bench(BenchCommand::Plan(args)) => plan::validate::run(&models_dir, args),
        Command::Bench(BenchCommand::Soak(args)) => bench::soak(&models_dir, args),
        Command::Bench(BenchCommand::ShaForeground { threads, millis }) => {
            println!("{}", sotto_bench::workload::sha_foreground(threads, std::time::Duration::from_millis(millis)));
            Ok(ExitCode::SUCCESS)
        }
        Command::Head(HeadCommand::Train(args)) => head::train_cmd(args),
    }
}
