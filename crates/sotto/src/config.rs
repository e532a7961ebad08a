//! The one validated configuration of `sotto serve` (also used by `analyze` and `eval`).
//!
//! Precedence, lowest first: built-in defaults < the TOML file < `SOTTO_*` environment
//! variables < command-line `--set key=value`. Every value, from every source, is parsed by
//! one function (`Config::set`), so every error names the key and where the value came from.
//! Unknown keys are errors, including unknown `SOTTO_<SECTION>_*` variables: a typo must not
//! be silently ignored.
//!
//! Must not: read the environment outside `load` (tests pass their own map), or accept a
//! configuration `validate` refuses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sotto_engine::KvType;
use sotto_governor::{Budgets, SchedClass, parse_bytes, parse_percent};

pub const PRECEDENCE: &str = "defaults < config file < SOTTO_* environment < --set flags";

/// Where a value came from (shown by `sotto config show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// One configuration key.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

impl Key {
    /// `server.listen` → `SOTTO_SERVER_LISTEN`.
    pub fn env(&self) -> String {
        format!("SOTTO_{}", self.name.replace('.', "_").to_uppercase())
    }
}

/// Every key, with its default and meaning.
pub const KEYS: &[Key] = &[
    Key { name: "server.listen", default: "127.0.0.1:8434", help: "address to listen on" },
    Key { name: "server.allow_remote", default: "false", help: "allow a non-loopback address (needs a token)" },
    Key { name: "server.token", default: "", help: "bearer token required on /v1 and /metrics (secret)" },
    Key { name: "server.token_file", default: "", help: "file holding the bearer token" },
    Key { name: "server.max_body", default: "1MiB", help: "largest request body (413 above)" },
    Key { name: "server.queue", default: "8", help: "requests waiting for the engine before 429" },
    Key { name: "server.shutdown_grace", default: "10s", help: "time in-flight requests get after SIGTERM" },
    Key { name: "server.default_deadline", default: "none", help: "queue deadline for requests without one" },
    Key { name: "model.path", default: "gemma3-270m", help: "catalog id or GGUF path" },
    Key { name: "model.n_ctx", default: "0", help: "context window (0: the model's, at most 4096)" },
    Key { name: "model.chunk", default: "32", help: "largest prefill chunk in tokens" },
    Key { name: "model.threads", default: "auto", help: "generation threads (auto: from cpu_peak)" },
    Key { name: "model.threads_batch", default: "auto", help: "prefill threads (auto: from cpu_peak)" },
    Key { name: "model.kv_type", default: "f16", help: "KV cache type: f16, q8_0, q4_0" },
    Key { name: "model.template", default: "auto", help: "chat template: auto, completion, or a llama.cpp name" },
    Key { name: "model.keep_alive", default: "none", help: "unload after this long idle (none: never)" },
    Key { name: "budget.cpu_mean", default: "35%", help: "mean CPU budget, % of the machine" },
    Key { name: "budget.cpu_peak", default: "50%", help: "peak CPU budget per 100 ms window" },
    Key { name: "budget.memory", default: "6GiB", help: "memory budget, model included" },
    Key { name: "budget.sched", default: "idle", help: "inference threads: idle, background, normal, nice N" },
    Key { name: "cache.prefix", default: "64MiB", help: "memory for prefix KV snapshots (0: off)" },
    Key { name: "cache.persist", default: "true", help: "keep prefix snapshots on disk across restarts" },
    Key { name: "cache.dir", default: "", help: "where (default: <state dir>/prefix)" },
    Key { name: "analyze.mode", default: "fast", help: "fast, constrained, constrained-zero-shot, naive" },
    Key { name: "analyze.detail", default: "verdict", help: "verdict (explain non-benign only) or full" },
    Key { name: "analyze.max_field_chars", default: "2000", help: "longer event fields are cut and marked" },
];

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub max_body: u64,
    pub queue: usize,
    pub shutdown_grace: Duration,
    pub default_deadline: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub path: String,
    pub n_ctx: u32,
    pub chunk: u32,
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub kv_type: KvType,
    pub template: String,
    pub keep_alive: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub cpu_mean: f64,
    pub cpu_peak: f64,
    pub memory: u64,
    pub sched: SchedClass,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub prefix: u64,
    pub persist: bool,
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analyze {
    pub mode: String,
    pub detail: String,
    pub max_field_chars: usize,
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
}

/// `500ms`, `10s`, `15m`, `2h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 500ms, 10s, 15m)"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        other => return Err(format!("`{other}` is not a duration unit (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn optional(s: &str) -> Option<&str> {
    let t = s.trim();
    (!(t.is_empty() || t == "none" || t == "auto")).then_some(t)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (true or false)")),
    }
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("`{s}` is not {what}"))
}

/// State (prefix snapshots, follow offsets): `$STATE_DIRECTORY` (systemd), else
/// `$XDG_STATE_HOME/sotto`, else `~/.local/state/sotto`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("sotto");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/sotto")
}

/// The default config file: `$XDG_CONFIG_HOME/sotto/sotto.toml` or `~/.config/sotto/sotto.toml`.
pub fn default_file(env: &BTreeMap<String, String>) -> PathBuf {
    match env.get("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("sotto/sotto.toml"),
        None => PathBuf::from(env.get("HOME").map_or(".", String::as_str)).join(".config/sotto/sotto.toml"),
    }
}

impl Config {
    /// Defaults only.
    pub fn defaults() -> Self {
        let mut c = Config {
            server: Server {
                listen: "127.0.0.1:8434".parse().expect("valid"),
                allow_remote: false,
                token: None,
                token_file: None,
                max_body: 1 << 20,
                queue: 8,
                shutdown_grace: Duration::from_secs(10),
                default_deadline: None,
            },
            model: Model {
                path: sotto_models::catalog::DEFAULT_MODEL.to_string(),
                n_ctx: 0,
                chunk: 32,
                threads: None,
                threads_batch: None,
                kv_type: KvType::F16,
                template: "auto".into(),
                keep_alive: None,
            },
            budget: Budget { cpu_mean: 0.35, cpu_peak: 0.50, memory: 6 << 30, sched: SchedClass::Idle },
            cache: Cache { prefix: 64 << 20, persist: true, dir: None },
            analyze: Analyze { mode: "fast".into(), detail: "verdict".into(), max_field_chars: 2000 },
            sources: BTreeMap::new(),
        };
        for k in KEYS {
            c.sources.insert(k.name, Source::Default);
        }
        c
    }

    /// Set one key from its text form.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), String> {
        let Some(k) = KEYS.iter().find(|k| k.name == key) else {
            let section = key.split('.').next().unwrap_or("");
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).filter(|n| n.starts_with(section)).collect();
            let hint = if known.is_empty() {
                "sections are server, model, budget, cache, analyze".to_string()
            } else {
                format!("known keys: {}", known.join(", "))
            };
            return Err(format!("{source}: unknown key `{key}` ({hint})"));
        };
        let v = value;
        let r: Result<(), String> = (|| {
            match key {
                "server.listen" => self.server.listen = number(v, "an address like 127.0.0.1:8434")?,
                "server.allow_remote" => self.server.allow_remote = parse_bool(v)?,
                "server.token" => self.server.token = optional(v).map(str::to_string),
                "server.token_file" => self.server.token_file = optional(v).map(PathBuf::from),
                "server.max_body" => self.server.max_body = parse_bytes(v)?,
                "server.queue" => self.server.queue = number(v, "a whole number")?,
                "server.shutdown_grace" => self.server.shutdown_grace = parse_duration(v)?,
                "server.default_deadline" => {
                    self.server.default_deadline = optional(v).map(parse_duration).transpose()?
                }
                "model.path" => self.model.path = v.trim().to_string(),
                "model.n_ctx" => self.model.n_ctx = number(v, "a whole number")?,
                "model.chunk" => self.model.chunk = number(v, "a whole number")?,
                "model.threads" => self.model.threads = optional(v).map(|t| number(t, "a whole number")).transpose()?,
                "model.threads_batch" => {
                    self.model.threads_batch = optional(v).map(|t| number(t, "a whole number")).transpose()?
                }
                "model.kv_type" => self.model.kv_type = v.trim().parse()?,
                "model.template" => self.model.template = v.trim().to_string(),
                "model.keep_alive" => {
                    self.model.keep_alive = optional(v).filter(|t| *t != "0").map(parse_duration).transpose()?
                }
                "budget.cpu_mean" => self.budget.cpu_mean = parse_percent(v)?,
                "budget.cpu_peak" => self.budget.cpu_peak = parse_percent(v)?,
                "budget.memory" => self.budget.memory = parse_bytes(v)?,
                "budget.sched" => self.budget.sched = v.parse()?,
                "cache.prefix" => self.cache.prefix = parse_bytes(v)?,
                "cache.persist" => self.cache.persist = parse_bool(v)?,
                "cache.dir" => self.cache.dir = optional(v).map(PathBuf::from),
                "analyze.mode" => {
                    v.trim().parse::<sotto_analyze::Mode>()?;
                    self.analyze.mode = v.trim().to_string()
                }
                "analyze.detail" => {
                    v.trim().parse::<sotto_analyze::Detail>()?;
                    self.analyze.detail = v.trim().to_string()
                }
                "analyze.max_field_chars" => self.analyze.max_field_chars = number(v, "a whole number")?,
                _ => unreachable!("every key in KEYS is handled"),
            }
            Ok(())
        })();
        r.map_err(|e| format!("{source}: {key}: {e}"))?;
        self.sources.insert(k.name, source);
        Ok(())
    }

    /// Apply a TOML document: every `[section] key = value` goes through `set`.
    pub fn apply_toml(&mut self, text: &str, path: &Path) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e| format!("config file {}: {e}", path.display()))?;
        for (section, body) in &table {
            let Some(body) = body.as_table() else {
                return Err(format!("config file {}: `{section}` must be a [section]", path.display()));
            };
            for (key, value) in body {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "config file {}: {section}.{key}: `{other}` is not a single value",
                            path.display()
                        ));
                    }
                };
                self.set(&format!("{section}.{key}"), &text, Source::File(path.to_path_buf()))?;
            }
        }
        Ok(())
    }

    /// Build from all sources. `file`: the `--config` path (must exist); else `SOTTO_CONFIG`
    /// (must exist); else the default file if present.
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &[(String, String)],
    ) -> Result<Config, String> {
        let mut c = Config::defaults();
        let explicit = file.map(Path::to_path_buf).or_else(|| env.get("SOTTO_CONFIG").map(PathBuf::from));
        let path = explicit.clone().or_else(|| Some(default_file(env)).filter(|p| p.exists()));
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
            c.apply_toml(&text, &path)?;
        }
        let prefixes = ["SOTTO_SERVER_", "SOTTO_MODEL_", "SOTTO_BUDGET_", "SOTTO_CACHE_", "SOTTO_ANALYZE_"];
        for (name, value) in env {
            if !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let Some(k) = KEYS.iter().find(|k| k.env() == *name) else {
                return Err(format!("environment: unknown variable {name} (see `sotto config keys`)"));
            };
            c.set(k.name, value, Source::Env(name.clone()))?;
        }
        for (key, value) in flags {
            c.set(key, value, Source::Flag)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Cross-field rules; also reads `server.token_file`.
    pub fn validate(&mut self) -> Result<(), String> {
        self.budgets().validate().map_err(|e| format!("budget: {e}"))?;
        if let Some(path) = &self.server.token_file {
            let t = std::fs::read_to_string(path)
                .map_err(|e| format!("server.token_file: cannot read {}: {e}", path.display()))?;
            let t = t.trim();
            if t.is_empty() {
                return Err(format!("server.token_file: {} is empty", path.display()));
            }
            self.server.token = Some(t.to_string());
        }
        if let Some(t) = &self.server.token
            && t.len() < 16
        {
            return Err("server.token: must be at least 16 characters".into());
        }
        let remote_ok = self.server.allow_remote && self.server.token.is_some();
        if !(self.server.listen.ip().is_loopback() || remote_ok) {
            return Err(format!(
                "server.listen: {} is not a loopback address; listening on it needs server.allow_remote = true and a \
                 bearer token (server.token or server.token_file)",
                self.server.listen
            ));
        }
        if self.server.max_body < 1024 {
            return Err("server.max_body: must be at least 1KiB".into());
        }
        if !(1..=1024).contains(&self.server.queue) {
            return Err("server.queue: must be between 1 and 1024".into());
        }
        if self.model.chunk == 0 {
            return Err("model.chunk: must be at least 1".into());
        }
        if self.model.threads == Some(0) || self.model.threads_batch == Some(0) {
            return Err("model.threads: must be at least 1 (or auto)".into());
        }
        Ok(())
    }

    pub fn budgets(&self) -> Budgets {
        Budgets { cpu_mean: self.budget.cpu_mean, cpu_peak: self.budget.cpu_peak, mem: self.budget.memory }
    }

    /// The value of `key` in its text form (secrets masked).
    pub fn show_value(&self, key: &str) -> String {
        let d = |o: Option<Duration>| o.map_or("none".to_string(), |d| format!("{}ms", d.as_millis()));
        let p = |o: &Option<PathBuf>| o.as_ref().map_or(String::new(), |p| p.display().to_string());
        match key {
            "server.listen" => self.server.listen.to_string(),
            "server.allow_remote" => self.server.allow_remote.to_string(),
            "server.token" => {
                if self.server.token.is_some() {
                    "***".into()
                } else {
                    String::new()
                }
            }
            "server.token_file" => p(&self.server.token_file),
            "server.max_body" => self.server.max_body.to_string(),
            "server.queue" => self.server.queue.to_string(),
            "server.shutdown_grace" => format!("{}ms", self.server.shutdown_grace.as_millis()),
            "server.default_deadline" => d(self.server.default_deadline),
            "model.path" => self.model.path.clone(),
            "model.n_ctx" => self.model.n_ctx.to_string(),
            "model.chunk" => self.model.chunk.to_string(),
            "model.threads" => self.model.threads.map_or("auto".into(), |t| t.to_string()),
            "model.threads_batch" => self.model.threads_batch.map_or("auto".into(), |t| t.to_string()),
            "model.kv_type" => self.model.kv_type.name().to_string(),
            "model.template" => self.model.template.clone(),
            "model.keep_alive" => d(self.model.keep_alive),
            "budget.cpu_mean" => format!("{}%", (self.budget.cpu_mean * 1e4).round() / 1e2),
            "budget.cpu_peak" => format!("{}%", (self.budget.cpu_peak * 1e4).round() / 1e2),
            "budget.memory" => self.budget.memory.to_string(),
            "budget.sched" => self.budget.sched.to_string(),
            "cache.prefix" => self.cache.prefix.to_string(),
            "cache.persist" => self.cache.persist.to_string(),
            "cache.dir" => p(&self.cache.dir),
            "analyze.mode" => self.analyze.mode.clone(),
            "analyze.detail" => self.analyze.detail.clone(),
            "analyze.max_field_chars" => self.analyze.max_field_chars.to_string(),
            _ => String::new(),
        }
    }

    /// The effective configuration as TOML, each line commented with its source.
    pub fn to_toml(&self) -> String {
        let mut out = format!("# sotto effective configuration ({PRECEDENCE})\n");
        let mut section = "";
        for k in KEYS {
            let (s, name) = k.name.split_once('.').expect("dotted");
            if s != section {
                out.push_str(&format!("\n[{s}]\n"));
                section = s;
            }
            let value = toml::Value::String(self.show_value(k.name));
            let source = self.sources.get(k.name).cloned().unwrap_or(Source::Default);
            out.push_str(&format!("{name} = {value}  # {source}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sotto.toml");
        std::fs::write(&file, "[budget]\ncpu_mean = \"20%\"\ncpu_peak = \"40%\"\n[server]\nqueue = 4\n").unwrap();
        let e = env(&[("SOTTO_BUDGET_CPU_MEAN", "25%"), ("SOTTO_MODELS", "/x"), ("HOME", "/nonexistent")]);
        let c = Config::load_from(Some(&file), &e, &[("budget.cpu_peak".into(), "45%".into())]).unwrap();
        assert_eq!(c.budget.cpu_mean, 0.25);
        assert_eq!(c.budget.cpu_peak, 0.45);
        assert_eq!(c.server.queue, 4);
        assert_eq!(c.server.listen.port(), 8434);
        assert_eq!(c.sources["budget.cpu_mean"], Source::Env("SOTTO_BUDGET_CPU_MEAN".into()));
        assert_eq!(c.sources["budget.cpu_peak"], Source::Flag);
        assert_eq!(c.sources["server.queue"], Source::File(file));
    }

    #[test]
    fn errors_name_the_key_and_the_source() {
        let e = env(&[("HOME", "/nonexistent")]);
        let err = Config::load_from(None, &e, &[("budget.cpu_mean".into(), "150%".into())]).unwrap_err();
        assert!(err.contains("budget.cpu_mean") && err.contains("flag"), "{err}");
        let err = Config::load_from(None, &env(&[("SOTTO_SERVER_LISTN", "x")]), &[]).unwrap_err();
        assert!(err.contains("SOTTO_SERVER_LISTN"), "{err}");
        let err = Config::load_from(None, &e, &[("server.colour".into(), "blue".into())]).unwrap_err();
        assert!(err.contains("server.colour") && err.contains("server.listen"), "{err}");
        let err = Config::load_from(None, &e, &[("server.listen".into(), "0.0.0.0:8434".into())]).unwrap_err();
        assert!(err.contains("server.allow_remote") && err.contains("token"), "{err}");
        let err = Config::load_from(None, &e, &[("model.keep_alive".into(), "5 parsecs".into())]).unwrap_err();
        assert!(err.contains("model.keep_alive"), "{err}");
        let err = Config::load_from(None, &e, &[("budget.cpu_mean".into(), "60%".into())]).unwrap_err();
        assert!(err.contains("budget"), "mean above peak: {err}");
    }

    #[test]
    fn remote_listening_needs_both_permission_and_a_token() {
        let e = env(&[("HOME", "/nonexistent")]);
        let flags = |t: &str| {
            vec![
                ("server.listen".to_string(), "0.0.0.0:8434".to_string()),
                ("server.allow_remote".to_string(), "true".to_string()),
                ("server.token".to_string(), t.to_string()),
            ]
        };
        assert!(Config::load_from(None, &e, &flags("short")).unwrap_err().contains("16"));
        let c = Config::load_from(None, &e, &flags("0123456789abcdef-x")).unwrap();
        assert!(c.to_toml().contains("token = \"***\""));
    }

    #[test]
    fn shown_toml_reads_back_to_the_same_configuration() {
        let e = env(&[("HOME", "/nonexistent")]);
        let flags = [("model.keep_alive".to_string(), "15m".to_string()), ("cache.prefix".into(), "32MiB".into())];
        let c = Config::load_from(None, &e, &flags).unwrap();
        let mut back = Config::defaults();
        back.apply_toml(&c.to_toml(), Path::new("shown.toml")).unwrap();
        back.validate().unwrap();
        assert_eq!(back.model, c.model);
        assert_eq!(back.budget, c.budget);
        assert_eq!(back.cache, c.cache);
        assert_eq!(back.server, c.server);
        assert_eq!(back.analyze, c.analyze);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn every_key_has_a_matching_default_and_env_name() {
        let c = Config::defaults();
        for k in KEYS {
            assert!(k.env().starts_with("SOTTO_"));
            let mut d = Config::defaults();
            d.set(k.name, k.default, Source::Default).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.show_value(k.name), c.show_value(k.name), "{}", k.name);
        }
    }
}
