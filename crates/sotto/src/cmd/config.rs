//! `sotto config show|keys`, and the `--config` / `--set` arguments shared by every command that
//! reads the configuration (`serve`, `analyze`, `eval`, `generate`, `service`). The presentation
//! side of `crate::config`: the effective configuration as TOML that loads back to the same
//! values.
//!
//! Must not: parse values itself (everything goes through `crate::config`), or print a secret.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Flag, KEYS, Key, Kind, PRECEDENCE, Source};

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file [default: $SOTTO_CONFIG, else $XDG_CONFIG_HOME/sotto/sotto.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set one key, above the file and the environment, e.g. --set budget.cpu_mean=20% (repeatable;
    /// see `sotto config keys`)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// The `--set` pairs, split at the first `=`.
    pub fn pairs(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.set
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
                _ => anyhow::bail!("--set {pair:?}: expected KEY=VALUE, e.g. --set budget.cpu_mean=20%"),
            })
            .collect()
    }

    /// The effective, validated configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        self.load_with([])
    }

    /// The effective, validated configuration with a command's own options, `(key, flag,
    /// value)`, above `--set`; an option not given (`None`) leaves its key alone.
    pub fn load_with<const N: usize>(
        &self,
        flags: [(&'static str, &'static str, Option<String>); N],
    ) -> anyhow::Result<Config> {
        let flags: Vec<Flag> = flags.into_iter().filter_map(|(key, flag, value)| Some((key, flag, value?))).collect();
        Ok(Config::load(self.config.as_deref(), &self.pairs()?, &flags)?)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, each value with where it came from
    Show(ConfigArgs),
    /// List every key with its environment variable, default and meaning
    Keys,
}

/// `value` as a TOML literal: bare for booleans and integers, quoted otherwise.
pub fn toml_value(k: &Key, value: &str) -> String {
    let bare = match k.kind {
        Kind::Bool => value == "true" || value == "false",
        Kind::Integer => value.parse::<i64>().is_ok(),
        Kind::Text | Kind::Secret => false,
    };
    if bare { value.to_string() } else { toml::Value::String(value.to_string()).to_string() }
}

/// The effective configuration as TOML that loads back to the same values; each line is
/// followed by a comment naming its source. A token is never shown: its line is commented out.
pub fn show(config: &Config) -> String {
    let mut out = String::from("# sotto: effective configuration\n");
    let _ = writeln!(out, "# precedence: {PRECEDENCE}");
    let _ = match &config.file {
        Some(p) => writeln!(out, "# config file: {}", p.display()),
        None => writeln!(out, "# config file: none"),
    };
    let mut section = "";
    for k in KEYS {
        let (s, name) = k.parts();
        if s != section {
            let _ = write!(out, "\n[{s}]\n");
            section = s;
        }
        let source = config.source(k.name);
        let value = config.value(k.name);
        let line = if k.kind == Kind::Secret && !value.is_empty() {
            let from = match &config.server.token_file {
                Some(_) if source == Source::Default => "read from server.token_file".to_string(),
                _ => source.to_string(),
            };
            format!("# {name} = \"***\"  # {from}; secret, not shown")
        } else {
            format!("{:<40}  # {source}", format!("{name} = {}", toml_value(k, &value)))
        };
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The key table as aligned text.
pub fn keys_table() -> String {
    let default = |d: &str| if d.is_empty() { "(unset)".to_string() } else { d.to_string() };
    let w_key = KEYS.iter().map(|k| k.name.len()).max().unwrap_or(0);
    let w_env = KEYS.iter().map(|k| k.env().len()).max().unwrap_or(0);
    let w_def = KEYS.iter().map(|k| default(k.default).len()).max().unwrap_or(0);
    let mut out = format!("precedence: {PRECEDENCE}\n\n");
    out.push_str(&format!("{:w_key$}  {:w_env$}  {:w_def$}  meaning\n", "key", "environment", "default"));
    for k in KEYS {
        let line = format!("{:w_key$}  {:w_env$}  {:w_def$}  {}", k.name, k.env(), default(k.default), k.help);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(args) => print!("{}", show(&args.load()?)),
        ConfigCommand::Keys => print!("{}", keys_table()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::{env, same_values, sets, write};

    #[test]
    fn secrets_are_never_shown() {
        let ok = sets(&[
            ("server.listen", "0.0.0.0:8434"),
            ("server.allow_remote", "true"),
            ("server.token", "0123456789abcdef"),
        ]);
        let shown = show(&Config::load_from(None, &env(&[]), &ok).unwrap());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("# token = \"***\"  # flag; secret, not shown"), "{shown}");
        let dir = tempfile::tempdir().unwrap();
        let token = write(dir.path(), "token", "0123456789abcdef-x\n");
        let c = Config::load_from(None, &env(&[("SOTTO_SERVER_TOKEN_FILE", token.to_str().unwrap())]), &[]).unwrap();
        let shown = show(&c);
        assert!(!shown.contains("0123456789abcdef-x"), "{shown}");
        assert!(shown.contains("# token = \"***\"  # read from server.token_file"), "{shown}");
    }

    #[test]
    fn shown_toml_loads_back_to_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let token = write(dir.path(), "token", "0123456789abcdef0123\n");
        let file = write(dir.path(), "in.toml", "[model]\nthreads = 3\nkv_type = \"q8_0\"\n[cache]\npersist = false\n");
        let e = env(&[("SOTTO_BUDGET_CPU_MEAN", "12.5%"), ("SOTTO_SERVER_DEFAULT_DEADLINE", "1500ms")]);
        let cli = sets(&[
            ("server.listen", "[::]:9000"),
            ("server.allow_remote", "yes"),
            ("server.token_file", token.to_str().unwrap()),
            ("server.max_body", "1000000"),
            ("model.keep_alive", "15m"),
            ("model.path", "/opt/models/my model.gguf"),
            ("budget.memory", "1.5GiB"),
            ("budget.sched", "nice 10"),
            ("cache.prefix", "0"),
            ("cache.dir", "/var/tmp/prefix \"x\""),
            ("analyze.detail", "full"),
        ]);
        let c = Config::load_from(Some(&file), &e, &cli).unwrap();
        let shown = show(&c);
        let stripped: String = shown.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        let shown_file = write(dir.path(), "shown.toml", &stripped);
        let back = Config::load_from(Some(&shown_file), &env(&[]), &[]).unwrap();
        same_values(&back, &c);
        assert!(shown.contains("cpu_mean = \"12.5%\""), "{shown}");
        assert!(shown.contains("threads = 3 ") && shown.contains("persist = false "), "{shown}");
        assert!(shown.contains("# env SOTTO_SERVER_DEFAULT_DEADLINE"), "{shown}");
        // The defaults too.
        let d = Config::defaults();
        let shown_file = write(dir.path(), "defaults.toml", &show(&d));
        same_values(&Config::load_from(Some(&shown_file), &env(&[]), &[]).unwrap(), &d);
    }

    /// The example file: every key at its default, with its meaning and variable.
    fn example_toml() -> String {
        let mut out = String::from(
            "# An example sotto configuration: every key, at its default.\n#\n\
             # sotto reads --config PATH, else $SOTTO_CONFIG, else $XDG_CONFIG_HOME/sotto/sotto.toml\n\
             # (~/.config/sotto/sotto.toml). Any key can also be set with its SOTTO_* variable, or with\n\
             # --set section.key=value.\n",
        );
        let _ = writeln!(out, "# Precedence: {PRECEDENCE}.");
        out.push_str(
            "# `sotto config keys` lists the keys; `sotto config show` prints the effective values\n\
             # and where each one came from.\n\
             #\n# Generated from the key table; a unit test checks it (SOTTO_TEST_BLESS=1 rewrites it).\n",
        );
        let mut section = "";
        for k in KEYS {
            let (s, name) = k.parts();
            if s != section {
                let _ = write!(out, "\n[{s}]\n");
                section = s;
            }
            let _ = writeln!(out, "\n# {} ({})", k.help, k.env());
            let _ = match k.name {
                "server.token" => writeln!(out, "# {name} = \"a-random-string-of-16-or-more-characters\""),
                "server.token_file" => writeln!(out, "# {name} = \"/etc/sotto/token\""),
                "cache.dir" => writeln!(out, "# {name} = \"/var/lib/sotto/prefix\""),
                _ => writeln!(out, "{name} = {}", toml_value(k, k.default)),
            };
        }
        out
    }

    #[test]
    fn the_packaged_example_is_current_and_loads_as_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/sotto.toml");
        let want = example_toml();
        if std::env::var_os("SOTTO_TEST_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "{} is out of date; rerun with SOTTO_TEST_BLESS=1", path.display());
        let c = Config::load_from(Some(&path), &env(&[]), &[]).unwrap();
        same_values(&c, &Config::defaults());
        let from_file = c.sources.values().filter(|s| matches!(s, Source::File(_))).count();
        assert_eq!(from_file, KEYS.len() - 3, "all but the three commented-out keys");
    }

    #[test]
    fn set_pairs_split_at_the_first_equals_sign() {
        let args = ConfigArgs { config: None, set: vec!["server.token=abc=def".into(), " model.path =x".into()] };
        let pairs = args.pairs().unwrap();
        assert_eq!(pairs[0], ("server.token".into(), "abc=def".into()));
        assert_eq!(pairs[1], ("model.path".into(), "x".into()));
        for bad in ["budget.cpu_mean", "=5"] {
            let err = ConfigArgs { config: None, set: vec![bad.into()] }.pairs().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn the_key_table_lists_every_key_and_variable() {
        let table = keys_table();
        for k in KEYS {
            assert!(table.lines().any(|l| l.starts_with(k.name) && l.contains(&k.env())), "{}", k.name);
        }
    }
}
