//! `sotto config show|keys`, and the `--config` / `--set` arguments every command that reads
//! the configuration shares.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, KEYS, PRECEDENCE};

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file [default: $SOTTO_CONFIG, else $XDG_CONFIG_HOME/sotto/sotto.toml if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. --set budget.cpu_mean=20% (repeatable; see `sotto config keys`)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// The effective, validated configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut flags = Vec::new();
        for pair in &self.set {
            let Some((k, v)) = pair.split_once('=') else {
                anyhow::bail!("--set {pair:?}: expected KEY=VALUE");
            };
            flags.push((k.trim().to_string(), v.to_string()));
        }
        let env = std::env::vars().collect();
        Config::load_from(self.config.as_deref(), &env, &flags).map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, each value with where it came from
    Show(ConfigArgs),
    /// List every key with its environment variable, default and meaning
    Keys,
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(args) => print!("{}", args.load()?.to_toml()),
        ConfigCommand::Keys => {
            println!("precedence: {PRECEDENCE}\n");
            println!("{:<26} {:<30} {:<16} meaning", "key", "environment", "default");
            for k in KEYS {
                println!("{:<26} {:<30} {:<16} {}", k.name, k.env(), k.default, k.help);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
