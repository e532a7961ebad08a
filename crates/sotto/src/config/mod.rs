//! The one validated configuration of every command that loads a model or describes the daemon
//! (`serve`, `analyze`, `eval`, `generate`, `service`, `config`).
//!
//! Sources, lowest precedence first ([`PRECEDENCE`]): built-in defaults < the TOML file <
//! `SOTTO_*` environment variables < `--set key=value` flags. The file is `--config PATH` (it
//! must exist), else `$SOTTO_CONFIG` (it must exist), else `$XDG_CONFIG_HOME/sotto/sotto.toml`
//! (or `~/.config/sotto/sotto.toml`) when that exists; with none, defaults only.
//!
//! Every key is one row of [`KEYS`] (`keys.rs`: name, default, help, parser, printer), and every
//! value from every source goes through one parser, [`Config::set`], so an error always names
//! the key and where the value came from. Each default is the `Default` of the library type
//! that uses it ([`Config::defaults`]). Unknown keys are errors, and so are unknown
//! `SOTTO_<SECTION>_*` variables: a typo must not silently leave a budget at its default. Rules that involve several keys run once, in
//! [`Config::validate`], after every source has been applied.
//!
//! Must not: read the process environment anywhere but [`Config::load`] and [`state_dir`] (tests
//! hand their own map to [`Config::load_layers`]); hand out a configuration that `validate`
//! refused; print a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sotto_engine::{EngineConfig, KvType, TemplateChoice};
use sotto_governor::{Budgets, CgroupMode, SchedClass};

mod keys;
mod values;

pub use keys::{KEYS, Key, Kind, find_key};
use keys::{hint, sections};
use values::*;

/// The order in which sources override each other, lowest first.
pub const PRECEDENCE: &str = "defaults < config file < SOTTO_* environment < --set flags";

/// A command's own option for one key: `(key, flag, value)`, e.g. `("analyze.mode", "--mode", "fast")`.
pub type Flag = (&'static str, &'static str, String);

/// Where a value came from. `Display` is the short form `config show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// A `--set key=value` flag.
    Cli,
    /// A command's own option for one key, e.g. `analyze --mode` for `analyze.mode`.
    Flag(&'static str),
}

impl Source {
    /// How error messages name the source.
    fn origin(&self) -> String {
        match self {
            Source::Default => "built-in default".into(),
            Source::File(p) => format!("config file {}", p.display()),
            Source::Env(n) => format!("environment {n}"),
            Source::Cli => "--set".into(),
            Source::Flag(flag) => (*flag).into(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
            Source::Cli | Source::Flag(_) => f.write_str("flag"),
        }
    }
}

/// Why a configuration was refused. Every message names the key and the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse, or is out of range, for its key.
    Value { origin: String, key: &'static str, message: String },
    /// A key (in the file or a `--set`) that is not in [`KEYS`].
    UnknownKey { origin: String, key: String, hint: String },
    /// A `SOTTO_<SECTION>_*` variable that names no key.
    UnknownEnv { name: String, hint: String },
    /// The configuration file is missing, unreadable, or not valid TOML.
    File { path: PathBuf, message: String },
    /// Values that parse one by one but not together.
    Invalid { message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Value { origin, key, message } => write!(f, "{origin}: {key}: {message}"),
            ConfigError::UnknownKey { origin, key, hint } => write!(f, "{origin}: unknown key `{key}`; {hint}"),
            ConfigError::UnknownEnv { name, hint } => {
                write!(f, "environment {name}: not a configuration variable; {hint}")
            }
            ConfigError::File { path, message } => write!(f, "config file {}: {message}", path.display()),
            ConfigError::Invalid { message } => write!(f, "invalid configuration: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSection {
    pub listen: SocketAddr,
    /// A second, explicit consent to leave loopback: the API runs inference for whoever asks.
    pub allow_remote: bool,
    /// After `validate`, also the token read from `token_file`.
    pub token: Option<String>,
    /// Lets the token stay out of the config file, the environment and the unit file.
    pub token_file: Option<PathBuf>,
    /// Whether `serve` sandboxes its own filesystem access.
    pub sandbox: crate::sandbox::Mode,
    pub max_body: u64,
    /// Cap on generated tokens per request.
    pub max_tokens: u32,
    pub queue: usize,
    pub shutdown_grace: Duration,
    pub default_deadline: Option<Duration>,
    /// Slowloris bounds: open connections, and the time to send headers and a body.
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSection {
    pub path: String,
    pub n_ctx: u32,
    pub chunk: u32,
    /// `None`: from the governor's plan for `budget.cpu_peak`.
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub kv_type: KvType,
    pub template: TemplateChoice,
    /// `None`: stay loaded; an idle daemon then costs memory but no load time on the next event.
    pub keep_alive: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSection {
    pub cpu_mean: f64,
    pub cpu_peak: f64,
    pub memory: u64,
    pub sched: SchedClass,
    /// The class critical requests run in.
    pub sched_critical: SchedClass,
    /// `None`: `cpu_mean`.
    pub critical_mean: Option<f64>,
    pub background_mean: Option<f64>,
    /// Whether sotto writes its own cgroup `cpu.max` (needs a delegated cgroup v2).
    pub cgroup: CgroupMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSection {
    pub prefix: u64,
    pub persist: bool,
    /// `None`: `<state dir>/prefix`.
    pub dir: Option<PathBuf>,
    /// Bytes of persisted snapshots kept per model and context shape.
    pub disk: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeSection {
    /// The design that answers (`--mode` overrides it as a flag).
    pub mode: sotto_analyze::Mode,
    /// How much of each verdict is produced (`--detail`; the server's default for requests).
    pub detail: sotto_analyze::Detail,
    /// When a rationale is generated.
    pub rationale: sotto_analyze::Rationale,
    /// When the model's embedding joins the head's features.
    pub embeddings: sotto_analyze::Embeddings,
    /// `None`: the shipped head.
    pub head: Option<PathBuf>,
    pub max_field_chars: usize,
    /// Bank examples retrieved per event.
    pub retrieve: usize,
    /// `--follow` waits on change notifications; this is the longest wait without one, in
    /// case one was missed (a watched directory replaced, a filesystem without notifications).
    pub follow_check: Duration,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerSection,
    pub model: ModelSection,
    pub budget: BudgetSection,
    pub cache: CacheSection,
    pub analyze: AnalyzeSection,
    /// Where each key's value came from.
    pub sources: BTreeMap<&'static str, Source>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Where state lives (prefix snapshots, follow offsets): `$STATE_DIRECTORY` (set by systemd's
/// `StateDirectory=`), else `$XDG_STATE_HOME/sotto`, else `~/.local/state/sotto`.
pub fn state_dir() -> PathBuf {
    let var = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when a unit names several; ours names one.
        return std::env::split_paths(&d).next().unwrap_or(d);
    }
    if let Some(d) = var("XDG_STATE_HOME").filter(|d| d.is_absolute()) {
        return d.join("sotto");
    }
    var("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".local/state/sotto")
}

/// Where files that can be made again live (the calibration's re-quantized models):
/// `$XDG_CACHE_HOME/sotto`, else `~/.cache/sotto`.
pub fn cache_dir() -> PathBuf {
    let var = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return d.join("sotto");
    }
    var("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".cache/sotto")
}

/// Why a file that holds a secret is refused: users other than its owner have access to it
/// (any of the group and other permission bits, `mode & 0o077`). Unix only.
fn owner_only(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(path).map_err(|e| format!("cannot read its permissions: {e}"))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!("users other than its owner have access to it (mode {:03o})", mode & 0o777));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The file read when neither `--config` nor `$SOTTO_CONFIG` names one (it may not exist).
pub fn default_file(env: &BTreeMap<String, String>) -> PathBuf {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    match var("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        Some(d) => d.join("sotto/sotto.toml"),
        None => var("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".config/sotto/sotto.toml"),
    }
}

impl Config {
    /// The built-in defaults (the same values as [`KEYS`]' `default` column; a test checks).
    pub fn defaults() -> Self {
        // Each library type owns its defaults; this only adds the keys no library type has.
        let engine = EngineConfig::new(sotto_models::catalog::DEFAULT_MODEL);
        let settings = sotto_server::Settings::default();
        let budgets = Budgets::default();
        let analysis = sotto_analyze::Options::default();
        Config {
            server: ServerSection {
                listen: sotto_server::DEFAULT_LISTEN,
                allow_remote: false,
                token: None,
                token_file: None,
                sandbox: crate::sandbox::Mode::default(),
                max_body: settings.max_body as u64,
                max_tokens: settings.max_tokens,
                queue: engine.queue,
                shutdown_grace: settings.shutdown_grace,
                default_deadline: settings.default_deadline,
                max_connections: settings.max_connections,
                header_timeout: settings.header_timeout,
                body_timeout: settings.body_timeout,
            },
            model: ModelSection {
                path: sotto_models::catalog::DEFAULT_MODEL.to_string(),
                n_ctx: engine.n_ctx,
                chunk: engine.chunk,
                threads: None,
                threads_batch: None,
                kv_type: engine.kv_type,
                template: engine.template,
                keep_alive: engine.keep_alive,
            },
            budget: BudgetSection {
                cpu_mean: budgets.cpu_mean,
                cpu_peak: budgets.cpu_peak,
                memory: budgets.mem,
                sched: SchedClass::default(),
                sched_critical: SchedClass::CRITICAL,
                critical_mean: budgets.critical_mean,
                background_mean: budgets.background_mean,
                cgroup: CgroupMode::default(),
            },
            cache: CacheSection {
                prefix: engine.prefix_cache as u64,
                persist: true,
                dir: None,
                disk: engine.prefix_disk,
            },
            analyze: AnalyzeSection {
                mode: analysis.mode,
                detail: settings.default_detail,
                rationale: analysis.rationale,
                embeddings: analysis.embeddings,
                head: None,
                max_field_chars: analysis.max_field_chars,
                retrieve: analysis.retrieve,
                follow_check: crate::follow::SAFETY_NET,
            },
            sources: KEYS.iter().map(|k| (k.name, Source::Default)).collect(),
            file: None,
        }
    }

    /// Set one key from its text form. The only parser of values, whatever their source.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), ConfigError> {
        let Some(k) = find_key(key) else {
            let hint = hint(key, |k| k.name.to_string(), key.split_once('.').map(|(s, _)| s));
            return Err(ConfigError::UnknownKey { origin: source.origin(), key: key.to_string(), hint });
        };
        (k.parse)(self, value.trim()).map_err(|message| ConfigError::Value {
            origin: source.origin(),
            key: k.name,
            message,
        })?;
        self.sources.insert(k.name, source);
        Ok(())
    }

    /// Apply a TOML document: each scalar under `[section] key` becomes text and goes through `set`.
    fn apply_toml(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let file_error = |message: String| ConfigError::File { path: path.to_path_buf(), message };
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| file_error(e.to_string().trim_end().into()))?;
        let source = Source::File(path.to_path_buf());
        for (section, body) in &table {
            let Some(body) = body.as_table() else {
                let hint = hint(section, |k| k.name.to_string(), None);
                return Err(ConfigError::UnknownKey { origin: source.origin(), key: section.clone(), hint });
            };
            for (name, value) in body {
                let key = format!("{section}.{name}");
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ if find_key(&key).is_none() => {
                        let hint = hint(&key, |k| k.name.to_string(), Some(section));
                        return Err(ConfigError::UnknownKey { origin: source.origin(), key, hint });
                    }
                    other => {
                        return Err(ConfigError::Value {
                            origin: source.origin(),
                            key: find_key(&key).expect("checked").name,
                            message: format!("expected a string, number or boolean, found {}", other.type_str()),
                        });
                    }
                };
                self.set(&key, &text, source.clone())?;
            }
        }
        Ok(())
    }

    /// Apply every `SOTTO_<SECTION>_*` variable; one that names no key is an error.
    fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let prefixes: Vec<String> = sections().iter().map(|s| format!("SOTTO_{}_", s.to_uppercase())).collect();
        for (name, value) in env {
            let Some(prefix) = prefixes.iter().find(|p| name.starts_with(p.as_str())) else {
                continue; // SOTTO_MODELS, SOTTO_CONFIG, SOTTO_TEST_*, and everything else
            };
            match KEYS.iter().find(|k| k.env() == *name) {
                Some(k) => self.set(k.name, value, Source::Env(name.clone()))?,
                None => {
                    let section = prefix["SOTTO_".len()..prefix.len() - 1].to_lowercase();
                    let hint = hint(name, Key::env, Some(&section));
                    return Err(ConfigError::UnknownEnv { name: name.clone(), hint });
                }
            }
        }
        Ok(())
    }

    /// Build from every source, reading this process's environment. `flags` are a command's
    /// own options, `(key, flag, value)`, applied after the `--set` pairs in `cli`.
    pub fn load(file: Option<&Path>, cli: &[(String, String)], flags: &[Flag]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
            .collect();
        Config::load_layers(file, &env, cli, flags)
    }

    /// Build from every source but a command's own flags, with the environment given as a map.
    #[cfg(test)]
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        cli: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        Config::load_layers(file, env, cli, &[])
    }

    /// Build from every source, lowest first: defaults, the file (`file` is `--config`), `env`,
    /// the `--set` pairs in `cli`, then `flags`.
    pub fn load_layers(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        cli: &[(String, String)],
        flags: &[Flag],
    ) -> Result<Config, ConfigError> {
        let mut c = Config::defaults();
        let named = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("SOTTO_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
        let path = named.or_else(|| Some(default_file(env)).filter(|p| p.exists()));
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::File { path: path.clone(), message: format!("cannot read it: {e}") })?;
            c.apply_toml(&text, &path)?;
            if c.source("server.token") == Source::File(path.clone()) {
                owner_only(&path).map_err(|why| ConfigError::File {
                    path: path.clone(),
                    message: format!(
                        "it sets server.token, and {why}; run `chmod 600 {}`, or keep the token in a file named by \
                         server.token_file",
                        path.display()
                    ),
                })?;
            }
            c.file = Some(path);
        }
        c.apply_env(env)?;
        for (key, value) in cli {
            c.set(key, value, Source::Cli)?;
        }
        for (key, flag, value) in flags {
            c.set(key, value, Source::Flag(flag))?;
        }
        if c.source("server.token") == Source::Cli {
            tracing::warn!(
                "server.token was given with --set: every user of this machine can read it in the process list \
                 (ps); keep it in a file named by server.token_file (mode 600) instead"
            );
        }
        c.validate()?;
        Ok(c)
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// `key = value (source)`, for messages about several keys.
    fn cite(&self, key: &str) -> String {
        format!("{key} = {} ({})", self.value(key), self.source(key))
    }

    /// Rules between keys; also reads `server.token_file` into `server.token`. Idempotent.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { message };
        if let Err(e) = self.budgets().validate() {
            let mut keys = vec![self.cite("budget.cpu_mean"), self.cite("budget.cpu_peak")];
            for k in ["budget.cpu_mean_critical", "budget.cpu_mean_background"] {
                if self.source(k) != Source::Default {
                    keys.push(self.cite(k));
                }
            }
            return Err(invalid(format!("{}: {e}", keys.join(", "))));
        }
        if let Some(path) = &self.server.token_file {
            if self.server.token.is_some() && self.source("server.token") != Source::Default {
                return Err(invalid(format!(
                    "server.token ({}) and server.token_file ({}) are both set; keep one",
                    self.source("server.token"),
                    self.source("server.token_file")
                )));
            }
            let value_error = |message| ConfigError::Value {
                origin: self.source("server.token_file").origin(),
                key: "server.token_file",
                message,
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| value_error(format!("cannot read {}: {e}", path.display())))?;
            owner_only(path).map_err(|why| {
                value_error(format!("{}: {why}; it holds the bearer token: run `chmod 600 {0}`", path.display()))
            })?;
            let token = check_token(text.trim()).map_err(|e| value_error(format!("{}: {e}", path.display())))?;
            self.server.token = Some(token);
        }
        let listen = self.server.listen;
        let remote_ok = self.server.allow_remote && self.server.token.is_some();
        if !(listen.ip().is_loopback() || remote_ok) {
            return Err(invalid(format!(
                "{} is not a loopback address; listening on it needs both server.allow_remote = true (now {}) and \
                 a bearer token (server.token or server.token_file; now {})",
                self.cite("server.listen"),
                self.server.allow_remote,
                if self.server.token.is_some() { "set" } else { "unset" },
            )));
        }
        Ok(())
    }

    /// The CPU and memory budgets, for the governor.
    pub fn budgets(&self) -> Budgets {
        Budgets {
            cpu_mean: self.budget.cpu_mean,
            cpu_peak: self.budget.cpu_peak,
            mem: self.budget.memory,
            critical_mean: self.budget.critical_mean,
            background_mean: self.budget.background_mean,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
