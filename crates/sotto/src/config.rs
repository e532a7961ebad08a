//! The one validated configuration of `sotto serve` (`analyze`, `eval` and `service` read it too).
//!
//! Sources, lowest precedence first ([`PRECEDENCE`]): built-in defaults < the TOML file <
//! `SOTTO_*` environment variables < `--set key=value` flags. The file is `--config PATH` (it
//! must exist), else `$SOTTO_CONFIG` (it must exist), else `$XDG_CONFIG_HOME/sotto/sotto.toml`
//! (or `~/.config/sotto/sotto.toml`) when that exists; with none, defaults only.
//!
//! Every key is listed once, in [`KEYS`], and every value from every source goes through one
//! parser, [`Config::set`], so an error always names the key and where the value came from.
//! Unknown keys are errors, and so are unknown `SOTTO_<SECTION>_*` variables: a typo must not
//! silently leave a budget at its default. Rules that involve several keys run once, in
//! [`Config::validate`], after every source has been applied.
//!
//! Must not: read the process environment anywhere but [`Config::load`] and [`state_dir`] (tests
//! hand their own map to [`Config::load_from`]); hand out a configuration that `validate`
//! refused; print a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sotto_engine::KvType;
use sotto_governor::{Budgets, CgroupMode, SchedClass};

mod values;

use values::*;
pub use values::{format_duration, parse_duration};

/// The order in which sources override each other, lowest first.
pub const PRECEDENCE: &str = "defaults < config file < SOTTO_* environment < --set flags";

/// How `sotto config show` writes a key's value as TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A quoted string.
    Text,
    /// A bare integer when the value is one (`auto` and `none` stay quoted).
    Integer,
    /// A bare `true` / `false`.
    Bool,
    /// Never printed; shown as a commented-out `"***"`.
    Secret,
}

/// One configuration key: its dotted name, the default in text form, and what it is for.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl Key {
    /// The environment variable: `server.listen` → `SOTTO_SERVER_LISTEN`.
    pub fn env(&self) -> String {
        format!("SOTTO_{}", self.name.replace('.', "_").to_uppercase())
    }

    /// The section (`server`) and the name inside it (`listen`).
    pub fn parts(&self) -> (&'static str, &'static str) {
        self.name.split_once('.').expect("every key is section.name")
    }
}

const fn key(name: &'static str, default: &'static str, kind: Kind, help: &'static str) -> Key {
    Key { name, default, help, kind }
}

use Kind::{Bool, Integer, Secret, Text};

/// Every key, in the order `config show` and `config keys` print them.
pub const KEYS: &[Key] = &[
    key("server.listen", "127.0.0.1:8434", Text, "address and port of the HTTP API"),
    key("server.allow_remote", "false", Bool, "allow a non-loopback listen address (a token is required too)"),
    key("server.token", "", Secret, "bearer token for /v1 and /metrics, at least 16 characters"),
    key("server.token_file", "", Text, "file holding the bearer token (instead of server.token)"),
    key("server.max_body", "1MiB", Text, "largest request body; larger ones get 413 (at least 1KiB)"),
    key("server.sandbox", "auto", Text, "filesystem sandbox (Landlock): off, auto (where the kernel has it), require"),
    key(
        "server.max_tokens",
        "2048",
        Integer,
        "cap on the tokens one request may generate, whatever it asks (1 to 65536)",
    ),
    key("server.queue", "8", Integer, "requests waiting for the engine before 429 (1 to 1024)"),
    key("server.shutdown_grace", "10s", Text, "time in-flight requests get after SIGTERM"),
    key("server.default_deadline", "none", Text, "queue deadline for requests that set none"),
    key("server.max_connections", "64", Integer, "connections open at once; one more is answered 503 (1 to 65536)"),
    key("server.header_timeout", "10s", Text, "time a client has to send its headers; also the keep-alive idle time"),
    key("server.body_timeout", "30s", Text, "time a client has to send a request body (408 after it)"),
    key("model.path", sotto_models::catalog::DEFAULT_MODEL, Text, "catalog id or GGUF file path"),
    key("model.n_ctx", "0", Integer, "context window in tokens (0: the model's, at most 4096)"),
    key("model.chunk", "128", Integer, "largest prefill chunk in tokens (the governor sizes each chunk up to it)"),
    key("model.threads", "auto", Integer, "generation threads (auto: planned from budget.cpu_peak)"),
    key("model.threads_batch", "auto", Integer, "prefill threads (auto: planned from budget.cpu_peak)"),
    key("model.kv_type", "f16", Text, "KV cache element type: f16, q8_0 or q4_0"),
    key("model.template", "auto", Text, "chat template: auto, completion, or a llama.cpp template name"),
    key("model.keep_alive", "none", Text, "unload the model after this long idle (none: stay loaded)"),
    key("budget.cpu_mean", "35%", Text, "mean CPU budget, share of the CPUs this process may use"),
    key("budget.cpu_peak", "50%", Text, "CPU budget in any 100 ms window"),
    key("budget.memory", "6GiB", Text, "memory budget, model included; larger models are refused"),
    key("budget.sched", "idle", Text, "class of inference threads: idle, background, normal, nice N"),
    key(
        "budget.sched_critical",
        "nice 5",
        Text,
        "class of inference threads for critical requests (they must progress beside a busy foreground)",
    ),
    key("budget.cpu_mean_critical", "same", Text, "mean CPU budget for critical requests (same: budget.cpu_mean)"),
    key("budget.cpu_mean_background", "same", Text, "mean CPU budget for background requests (same: budget.cpu_mean)"),
    key("budget.cgroup", "off", Text, "cap the process with its own cgroup v2 cpu.max at the peak: off, auto, require"),
    key("cache.prefix", "64MiB", Text, "memory for prefix KV snapshots (0: off)"),
    key("cache.persist", "true", Bool, "keep prefix snapshots on disk across restarts"),
    key("cache.dir", "", Text, "where snapshots are kept (empty: <state dir>/prefix)"),
    key("cache.disk", "256MiB", Text, "disk for persisted snapshots per model; the least recently used go first"),
    key("analyze.mode", "head", Text, "head, retrieval, fast, constrained, constrained-zero-shot or naive"),
    key("analyze.detail", "verdict", Text, "verdict (no generated rationale unless analyze.rationale says) or full"),
    key(
        "analyze.rationale",
        "never",
        Text,
        "when the model writes a rationale: never, flagged or always (detail=full: always)",
    ),
    key(
        "analyze.embeddings",
        "cascade",
        Text,
        "when the head adds the model's embedding of the event: off, cascade (when the lexical head is unsure) or always",
    ),
    key("analyze.head", "", Text, "a verdict head file from `sotto head train` (empty: the shipped heads)"),
    key(
        "analyze.max_field_chars",
        "2000",
        Integer,
        "event fields longer than this many characters or bytes (a bound on tokens) are cut and marked",
    ),
    key("analyze.retrieve", "0", Integer, "similar bank examples shown to the model before the event (0: none)"),
    key(
        "analyze.follow_check",
        "2s",
        Text,
        "--follow: how often a quiet file is looked at without a change notification (a safety net, e.g. for network filesystems)",
    ),
];

/// The key named `name`, if there is one.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

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
}

impl Source {
    /// How error messages name the source.
    fn origin(&self) -> String {
        match self {
            Source::Default => "built-in default".into(),
            Source::File(p) => format!("config file {}", p.display()),
            Source::Env(n) => format!("environment {n}"),
            Source::Cli => "--set".into(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
            Source::Cli => f.write_str("flag"),
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
pub struct Server {
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
pub struct Model {
    pub path: String,
    pub n_ctx: u32,
    pub chunk: u32,
    /// `None`: from the governor's plan for `budget.cpu_peak`.
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub kv_type: KvType,
    pub template: String,
    /// `None`: stay loaded; an idle daemon then costs memory but no load time on the next event.
    pub keep_alive: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
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
pub struct Cache {
    pub prefix: u64,
    pub persist: bool,
    /// `None`: `<state dir>/prefix`.
    pub dir: Option<PathBuf>,
    /// Bytes of persisted snapshots kept per model and context shape.
    pub disk: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analyze {
    /// Checked against `sotto_analyze::Mode`; kept as text so `--mode` can override it.
    pub mode: String,
    pub detail: String,
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
    pub server: Server,
    pub model: Model,
    pub budget: Budget,
    pub cache: Cache,
    pub analyze: Analyze,
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
        Config {
            server: Server {
                listen: SocketAddr::from(([127, 0, 0, 1], 8434)),
                allow_remote: false,
                token: None,
                token_file: None,
                sandbox: crate::sandbox::Mode::Auto,
                max_body: 1 << 20,
                max_tokens: 2048,
                queue: 8,
                shutdown_grace: Duration::from_secs(10),
                default_deadline: None,
                max_connections: 64,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
            },
            model: Model {
                path: sotto_models::catalog::DEFAULT_MODEL.to_string(),
                n_ctx: 0,
                chunk: 128,
                threads: None,
                threads_batch: None,
                kv_type: KvType::F16,
                template: "auto".into(),
                keep_alive: None,
            },
            budget: Budget {
                cpu_mean: 0.35,
                cpu_peak: 0.50,
                memory: 6 << 30,
                sched: SchedClass::Idle,
                sched_critical: SchedClass::Nice(5),
                critical_mean: None,
                background_mean: None,
                cgroup: CgroupMode::Off,
            },
            cache: Cache { prefix: 64 << 20, persist: true, dir: None, disk: 256 << 20 },
            analyze: Analyze {
                mode: "head".into(),
                detail: "verdict".into(),
                rationale: sotto_analyze::Rationale::Never,
                embeddings: sotto_analyze::Embeddings::Cascade,
                head: None,
                max_field_chars: 2000,
                retrieve: sotto_analyze::DEFAULT_RETRIEVE,
                follow_check: Duration::from_secs(2),
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
        self.parse_into(k.name, value.trim()).map_err(|message| ConfigError::Value {
            origin: source.origin(),
            key: k.name,
            message,
        })?;
        self.sources.insert(k.name, source);
        Ok(())
    }

    fn parse_into(&mut self, key: &str, v: &str) -> Result<(), String> {
        let (s, m, b, c, a) = (&mut self.server, &mut self.model, &mut self.budget, &mut self.cache, &mut self.analyze);
        let threads = |v: &str| unless(v, &["auto", ""], |t| parse_int(t, 1, 4096));
        match key {
            "server.listen" => {
                s.listen = v.parse().map_err(|_| format!("{v:?} is not an address and port (e.g. 127.0.0.1:8434)"))?
            }
            "server.allow_remote" => s.allow_remote = parse_bool(v)?,
            "server.token" => s.token = unless(v, &[""], check_token)?,
            "server.token_file" => s.token_file = unless(v, &[""], |p| Ok(PathBuf::from(p)))?,
            "server.sandbox" => s.sandbox = v.parse()?,
            "server.max_body" => s.max_body = bytes(v, 1 << 10)?,
            "server.max_tokens" => s.max_tokens = parse_int(v, 1, 65536)?,
            "server.queue" => s.queue = parse_int(v, 1, 1024)?,
            "server.shutdown_grace" => s.shutdown_grace = parse_duration(v)?,
            "server.max_connections" => s.max_connections = parse_int(v, 1usize, 65536)?,
            "server.header_timeout" | "server.body_timeout" => {
                let d = parse_duration(v)?;
                if d.is_zero() {
                    return Err("must be longer than 0 s".into());
                }
                if key == "server.header_timeout" { s.header_timeout = d } else { s.body_timeout = d }
            }
            "server.default_deadline" => {
                s.default_deadline = unless(v, &["none", ""], parse_duration)?;
                if s.default_deadline == Some(Duration::ZERO) {
                    return Err("a deadline of 0 would expire every request; use none for no deadline".into());
                }
            }
            "model.path" => m.path = nonempty(v)?,
            "model.n_ctx" => m.n_ctx = parse_int(v, 0, 1 << 20)?,
            "model.chunk" => m.chunk = parse_int(v, 1, 1 << 16)?,
            "model.threads" => m.threads = threads(v)?,
            "model.threads_batch" => m.threads_batch = threads(v)?,
            "model.kv_type" => m.kv_type = v.parse()?,
            "model.template" => m.template = nonempty(v)?,
            "model.keep_alive" => {
                m.keep_alive = unless(v, &["none", ""], parse_duration)?.filter(|d| !d.is_zero());
            }
            "budget.cpu_mean" => b.cpu_mean = percent(v)?,
            "budget.cpu_peak" => b.cpu_peak = percent(v)?,
            "budget.memory" => b.memory = bytes(v, 1 << 20)?,
            "budget.sched" => b.sched = parse_display(v)?,
            "budget.sched_critical" => b.sched_critical = parse_display(v)?,
            "budget.cpu_mean_critical" => b.critical_mean = unless(v, &["same", ""], percent)?,
            "budget.cpu_mean_background" => b.background_mean = unless(v, &["same", ""], percent)?,
            "budget.cgroup" => b.cgroup = parse_display(v)?,
            "cache.prefix" => c.prefix = bytes(v, 0)?,
            "cache.persist" => c.persist = parse_bool(v)?,
            "cache.dir" => c.dir = unless(v, &[""], |p| Ok(PathBuf::from(p)))?,
            "cache.disk" => c.disk = bytes(v, 0)?,
            "analyze.mode" => a.mode = v.parse::<sotto_analyze::Mode>().map(|_| v.to_string())?,
            "analyze.detail" => a.detail = v.parse::<sotto_analyze::Detail>().map(|_| v.to_string())?,
            "analyze.rationale" => a.rationale = v.parse()?,
            "analyze.embeddings" => a.embeddings = v.parse()?,
            "analyze.head" => a.head = unless(v, &[""], |p| Ok(PathBuf::from(p)))?,
            "analyze.max_field_chars" => a.max_field_chars = parse_int(v, 1, 1_000_000)?,
            "analyze.retrieve" => a.retrieve = parse_int(v, 0, 16)?,
            "analyze.follow_check" => {
                a.follow_check = parse_duration(v)?;
                if a.follow_check < Duration::from_millis(100) {
                    return Err("under 100ms the follower would poll; notifications do the work".into());
                }
            }
            _ => unreachable!("every key in KEYS has a parser"),
        }
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

    /// Build from every source, reading this process's environment.
    pub fn load(file: Option<&Path>, cli: &[(String, String)]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
            .collect();
        Config::load_from(file, &env, cli)
    }

    /// Build from every source, with the environment given as a map. `file` is `--config`.
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        cli: &[(String, String)],
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

    /// The value of `key` in the text form `set` reads back. Not masked: callers mask secrets.
    pub fn value(&self, key: &str) -> String {
        let (s, m, b, c, a) = (&self.server, &self.model, &self.budget, &self.cache, &self.analyze);
        let path = |p: &Option<PathBuf>| p.as_ref().map_or(String::new(), |p| p.display().to_string());
        let opt_duration = |d: Option<Duration>| d.map_or("none".into(), format_duration);
        let opt_threads = |t: Option<u32>| t.map_or("auto".into(), |t| t.to_string());
        match key {
            "server.listen" => s.listen.to_string(),
            "server.allow_remote" => s.allow_remote.to_string(),
            "server.token" => s.token.clone().unwrap_or_default(),
            "server.token_file" => path(&s.token_file),
            "server.sandbox" => s.sandbox.to_string(),
            "server.max_body" => format_bytes(s.max_body),
            "server.max_tokens" => s.max_tokens.to_string(),
            "server.queue" => s.queue.to_string(),
            "server.shutdown_grace" => format_duration(s.shutdown_grace),
            "server.max_connections" => s.max_connections.to_string(),
            "server.header_timeout" => format_duration(s.header_timeout),
            "server.body_timeout" => format_duration(s.body_timeout),
            "server.default_deadline" => opt_duration(s.default_deadline),
            "model.path" => m.path.clone(),
            "model.n_ctx" => m.n_ctx.to_string(),
            "model.chunk" => m.chunk.to_string(),
            "model.threads" => opt_threads(m.threads),
            "model.threads_batch" => opt_threads(m.threads_batch),
            "model.kv_type" => m.kv_type.name().to_string(),
            "model.template" => m.template.clone(),
            "model.keep_alive" => opt_duration(m.keep_alive),
            "budget.cpu_mean" => format_percent(b.cpu_mean),
            "budget.cpu_peak" => format_percent(b.cpu_peak),
            "budget.memory" => format_bytes(b.memory),
            "budget.sched" => b.sched.to_string(),
            "budget.sched_critical" => b.sched_critical.to_string(),
            "budget.cpu_mean_critical" => b.critical_mean.map_or("same".into(), format_percent),
            "budget.cpu_mean_background" => b.background_mean.map_or("same".into(), format_percent),
            "budget.cgroup" => b.cgroup.to_string(),
            "cache.prefix" => format_bytes(c.prefix),
            "cache.persist" => c.persist.to_string(),
            "cache.dir" => path(&c.dir),
            "cache.disk" => format_bytes(c.disk),
            "analyze.mode" => a.mode.clone(),
            "analyze.detail" => a.detail.clone(),
            "analyze.rationale" => {
                serde_json::to_value(a.rationale).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            }
            "analyze.embeddings" => {
                serde_json::to_value(a.embeddings).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            }
            "analyze.head" => path(&a.head),
            "analyze.max_field_chars" => a.max_field_chars.to_string(),
            "analyze.retrieve" => a.retrieve.to_string(),
            "analyze.follow_check" => format_duration(a.follow_check),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sotto_governor::{parse_bytes, parse_percent};

    pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut e: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        e.entry("HOME".into()).or_insert_with(|| "/nonexistent".into());
        e
    }

    pub(crate) fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load_err(file: Option<&Path>, e: &[(&str, &str)], cli: &[(&str, &str)]) -> String {
        Config::load_from(file, &env(e), &sets(cli)).unwrap_err().to_string()
    }

    /// A file only its owner can read, as a file holding a token must be.
    pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        chmod(&path, 0o600);
        path
    }

    pub(crate) fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every section but the bookkeeping (sources, file).
    pub(crate) fn same_values(a: &Config, b: &Config) {
        assert_eq!(
            (&a.server, &a.model, &a.budget, &a.cache, &a.analyze),
            (&b.server, &b.model, &b.budget, &b.cache, &b.analyze)
        );
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file =
            write(dir.path(), "sotto.toml", "[budget]\ncpu_mean = \"20%\"\ncpu_peak = 40\n[server]\nqueue = 4\n");
        let e = env(&[("SOTTO_BUDGET_CPU_MEAN", "25%"), ("SOTTO_MODELS", "/x"), ("SOTTO_CONFIG", "/nowhere")]);
        let c = Config::load_from(Some(&file), &e, &sets(&[("budget.cpu_peak", "45%")])).unwrap();
        assert_eq!((c.budget.cpu_mean, c.budget.cpu_peak, c.server.queue), (0.25, 0.45, 4));
        assert_eq!(c.server.listen.port(), 8434);
        assert_eq!(c.sources["budget.cpu_mean"], Source::Env("SOTTO_BUDGET_CPU_MEAN".into()));
        assert_eq!(c.sources["budget.cpu_peak"], Source::Cli);
        assert_eq!(c.sources["server.queue"], Source::File(file.clone()));
        assert_eq!(c.sources["server.listen"], Source::Default);
        assert_eq!(c.file, Some(file));
    }

    #[test]
    fn the_file_comes_from_the_flag_the_variable_or_the_default_place() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("sotto")).unwrap();
        let default = write(&xdg.join("sotto"), "sotto.toml", "[server]\nqueue = 3\n");
        let named = write(dir.path(), "named.toml", "[server]\nqueue = 5\n");
        let xdg_s = xdg.to_str().unwrap();
        let c = Config::load_from(None, &env(&[("XDG_CONFIG_HOME", xdg_s)]), &[]).unwrap();
        assert_eq!((c.server.queue, c.file), (3, Some(default)));
        let e = env(&[("XDG_CONFIG_HOME", xdg_s), ("SOTTO_CONFIG", named.to_str().unwrap())]);
        assert_eq!(Config::load_from(None, &e, &[]).unwrap().server.queue, 5);
        // Absent default file: defaults only. Absent named file: an error.
        let c = Config::load_from(None, &env(&[("XDG_CONFIG_HOME", "/nonexistent")]), &[]).unwrap();
        assert_eq!((c.server.queue, c.file), (8, None));
        let err = load_err(Some(Path::new("/nonexistent/sotto.toml")), &[], &[]);
        assert!(err.starts_with("config file /nonexistent/sotto.toml: cannot read it"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "sotto.toml", "[budget]\ncpu_mean = \"135%\"\n");
        let err = load_err(Some(&file), &[], &[]);
        let want = format!("config file {}: budget.cpu_mean: \"135%\" is not a percentage in (0, 100]", file.display());
        assert!(err.starts_with(&want), "{err}");
        let err = load_err(None, &[("SOTTO_SERVER_LISTEN", "localhost")], &[]);
        assert!(err.starts_with("environment SOTTO_SERVER_LISTEN: server.listen: \"localhost\""), "{err}");
        let err = load_err(None, &[], &[("model.keep_alive", "5 parsecs")]);
        assert!(err.starts_with("--set: model.keep_alive: \"5 parsecs\" is not a duration"), "{err}");
        assert!(load_err(None, &[], &[("server.queue", "0")]).contains("from 1 to 1024"));
        assert!(load_err(None, &[], &[("server.max_body", "100")]).contains("1KiB"));
        assert!(load_err(None, &[], &[("analyze.mode", "slow")]).contains("analyze.mode"));
        assert!(load_err(None, &[], &[("server.token", "short")]).contains("16 characters"));
        let err = load_err(None, &[], &[("budget.cpu_mean", "60%")]);
        assert!(
            err.contains("budget.cpu_mean = 60% (flag)") && err.contains("budget.cpu_peak = 50% (default)"),
            "{err}"
        );
        let err = load_err(None, &[], &[("budget.cpu_mean_background", "60%")]);
        assert!(err.contains("budget.cpu_mean_background = 60% (flag)") && err.contains("background mean"), "{err}");
        assert!(load_err(None, &[], &[("budget.cgroup", "yes")]).contains("off, auto or require"));
        assert!(load_err(None, &[], &[("server.header_timeout", "0s")]).contains("longer than 0"));
        assert!(load_err(None, &[], &[("server.max_connections", "0")]).contains("server.max_connections"));
        assert!(load_err(None, &[], &[("server.sandbox", "maybe")]).contains("off, auto or require"));
        let c = Config::load_from(None, &env(&[]), &sets(&[("budget.cpu_mean_critical", "50%")])).unwrap();
        assert_eq!(c.budgets().mean_for(sotto_governor::Urgency::Critical), 0.5);
        assert_eq!(c.budgets().mean_for(sotto_governor::Urgency::Background), 0.35);
        assert_eq!(c.value("budget.cpu_mean_background"), "same");
    }

    #[test]
    fn unknown_keys_and_variables_are_errors_with_suggestions() {
        let err = load_err(None, &[], &[("server.listn", "x")]);
        assert!(err.contains("unknown key `server.listn`; did you mean server.listen?"), "{err}");
        let err = load_err(None, &[], &[("server.colour", "blue")]);
        assert!(err.contains("server.listen") && err.contains("server.queue"), "lists the section: {err}");
        let err = load_err(None, &[], &[("listen", "x")]);
        assert!(err.contains("did you mean server.listen?"), "{err}");
        let err = load_err(None, &[], &[("colour", "x")]);
        assert!(err.contains("sections are server, model, budget, cache, analyze"), "{err}");
        let err = load_err(None, &[("SOTTO_SERVER_LISTN", "x")], &[]);
        assert!(err.contains("SOTTO_SERVER_LISTN") && err.contains("did you mean SOTTO_SERVER_LISTEN?"), "{err}");
        assert!(load_err(None, &[("SOTTO_CACHE_MEMORY_LIMIT", "1")], &[]).contains("SOTTO_CACHE_PREFIX"));
        // Not configuration keys: left alone.
        let e = [("SOTTO_MODELS", "/m"), ("SOTTO_CONFIG", ""), ("SOTTO_TEST_DAEMON", "1"), ("SOTTO_X", "1")];
        Config::load_from(None, &env(&e), &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            ("[serve]\nlisten = \"x\"\n", "unknown key `serve.listen`; did you mean server.listen?"),
            ("listen = \"127.0.0.1:1\"\n", "unknown key `listen`"),
            ("[model]\npath = [\"a\"]\n", "model.path: expected a string, number or boolean, found array"),
            ("[model\n", "config file"),
        ] {
            let err = load_err(Some(&write(dir.path(), "bad.toml", text)), &[], &[]);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn remote_listening_needs_both_permission_and_a_token() {
        let remote = ("server.listen", "0.0.0.0:8434");
        let err = load_err(None, &[], &[remote]);
        assert!(err.contains("server.allow_remote = true") && err.contains("token"), "{err}");
        let err = load_err(None, &[], &[remote, ("server.allow_remote", "true")]);
        assert!(err.contains("now unset"), "{err}");
        let err = load_err(None, &[], &[remote, ("server.token", "0123456789abcdef")]);
        assert!(err.contains("now false"), "{err}");
        let ok = [remote, ("server.allow_remote", "true"), ("server.token", "0123456789abcdef")];
        let c = Config::load_from(None, &env(&[]), &sets(&ok)).unwrap();
        assert_eq!(c.server.token.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn the_token_file_is_read_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "token", "  0123456789abcdef-x \n");
        let c = Config::load_from(None, &env(&[("SOTTO_SERVER_TOKEN_FILE", good.to_str().unwrap())]), &[]).unwrap();
        assert_eq!(c.server.token.as_deref(), Some("0123456789abcdef-x"));
        let mut again = c.clone();
        again.validate().unwrap();
        assert_eq!(again, c, "validate is idempotent");
        let empty = write(dir.path(), "empty", "\n");
        let err = load_err(None, &[("SOTTO_SERVER_TOKEN_FILE", empty.to_str().unwrap())], &[]);
        assert!(err.starts_with("environment SOTTO_SERVER_TOKEN_FILE: server.token_file:"), "{err}");
        let err = load_err(None, &[], &[("server.token_file", "/nonexistent/token")]);
        assert!(err.contains("server.token_file: cannot read /nonexistent/token"), "{err}");
        let both = [("server.token_file", good.to_str().unwrap()), ("server.token", "0123456789abcdef")];
        assert!(load_err(None, &[], &both).contains("both set"));
    }

    /// Issue 11, item 8: a token other users can read is no secret.
    #[test]
    fn a_token_file_or_a_config_file_with_a_token_that_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = write(dir.path(), "token", "0123456789abcdef-x\n");
        let env_file = env(&[("SOTTO_SERVER_TOKEN_FILE", token.to_str().unwrap())]);
        Config::load_from(None, &env_file, &[]).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            chmod(&token, mode);
            let err = Config::load_from(None, &env_file, &[]).unwrap_err().to_string();
            let fix = format!("run `chmod 600 {}`", token.display());
            assert!(err.contains("server.token_file") && err.contains(&fix), "{mode:o}: {err}");
            assert!(err.contains(&format!("mode {mode:03o}")), "{err}");
        }
        let file = write(dir.path(), "sotto.toml", "[server]\ntoken = \"0123456789abcdef\"\n");
        Config::load_from(Some(&file), &env(&[]), &[]).unwrap();
        chmod(&file, 0o644);
        let err = load_err(Some(&file), &[], &[]);
        assert!(err.starts_with(&format!("config file {}: it sets server.token", file.display())), "{err}");
        assert!(err.contains(&format!("chmod 600 {}", file.display())), "{err}");
        // Without a secret, a config file may be readable by all, as files under /etc are.
        let plain = write(dir.path(), "plain.toml", "[server]\nqueue = 3\n");
        chmod(&plain, 0o644);
        assert_eq!(Config::load_from(Some(&plain), &env(&[]), &[]).unwrap().server.queue, 3);
    }

    #[test]
    fn durations_parse_and_print_back() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration(" 2 ").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["soon", "", "-1s", "5 parsecs", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for ms in [0, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn sizes_and_percentages_print_back_exactly() {
        for b in [0, 1, 1000, 1 << 10, 1536, 1 << 20, 6 << 30, (3 << 30) / 2] {
            assert_eq!(parse_bytes(&format_bytes(b)).unwrap(), b, "{b}");
        }
        assert_eq!(format_bytes(6 << 30), "6GiB");
        for f in [0.35, 0.5, 0.125, 1.0, 0.005, 1.0 / 3.0] {
            assert_eq!(parse_percent(&format_percent(f)).unwrap(), f, "{f}");
        }
        assert_eq!(format_percent(0.35), "35%");
    }

    #[test]
    fn every_key_has_a_default_equal_to_the_built_in_value() {
        let defaults = Config::defaults();
        assert_eq!(defaults.sources.len(), KEYS.len());
        for k in KEYS {
            assert_eq!(k.env(), format!("SOTTO_{}", k.name.replace('.', "_").to_uppercase()));
            let mut c = Config::defaults();
            c.set(k.name, k.default, Source::Default).unwrap_or_else(|e| panic!("{e}"));
            same_values(&c, &defaults);
            assert_eq!(defaults.value(k.name), k.default, "{} prints its default as written", k.name);
        }
    }
}
