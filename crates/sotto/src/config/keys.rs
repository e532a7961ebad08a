//! Every configuration key, once: its name, default, meaning and TOML kind ([`KEYS`]), how its
//! text is parsed into the typed [`Config`] and printed back, and the "did you mean" hint.
//!
//! Must not: read any source (file, environment, flags); `super` layers them and calls `set`.

use std::path::PathBuf;
use std::time::Duration;

use sotto_engine::TemplateChoice;

use super::Config;
use super::values::*;

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

impl Config {
    /// Parse `v` into the field of `key` (a name from [`KEYS`]).
    pub(super) fn parse_into(&mut self, key: &str, v: &str) -> Result<(), String> {
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
            "model.template" => m.template = nonempty(v)?.parse().expect("infallible"),
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
            "analyze.mode" => a.mode = v.parse()?,
            "analyze.detail" => a.detail = v.parse()?,
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
            "model.template" => match &m.template {
                TemplateChoice::Auto => "auto".into(),
                TemplateChoice::Completion => "completion".into(),
                TemplateChoice::Named(name) => name.clone(),
            },
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
            "analyze.mode" => a.mode.to_string(),
            "analyze.detail" => serde_name(a.detail),
            "analyze.rationale" => serde_name(a.rationale),
            "analyze.embeddings" => serde_name(a.embeddings),
            "analyze.head" => path(&a.head),
            "analyze.max_field_chars" => a.max_field_chars.to_string(),
            "analyze.retrieve" => a.retrieve.to_string(),
            "analyze.follow_check" => format_duration(a.follow_check),
            _ => String::new(),
        }
    }
}

pub(super) fn sections() -> Vec<&'static str> {
    let mut s: Vec<&str> = KEYS.iter().map(|k| k.parts().0).collect();
    s.dedup();
    s
}

/// Close matches for an unknown name, else the names of its section, else the sections.
/// `name_of` turns a key into the spelling the user used (dotted key or variable).
pub(super) fn hint(unknown: &str, name_of: impl Fn(&Key) -> String, section_of_unknown: Option<&str>) -> String {
    let scored: Vec<(usize, String)> = KEYS
        .iter()
        .map(|k| {
            let same_name = unknown.ends_with(&format!(".{}", k.parts().1)) || unknown == k.parts().1;
            let n = name_of(k);
            (if same_name { 0 } else { strsim::levenshtein(&n, unknown) }, n)
        })
        .collect();
    let best = scored.iter().map(|(d, _)| *d).min().unwrap_or(usize::MAX);
    let close: Vec<String> = scored.into_iter().filter(|(d, _)| *d == best && best <= 3).map(|(_, n)| n).collect();
    if !close.is_empty() {
        return format!("did you mean {}?", close.join(" or "));
    }
    match section_of_unknown.filter(|s| sections().contains(s)) {
        Some(s) => {
            let names: Vec<String> = KEYS.iter().filter(|k| k.parts().0 == s).map(&name_of).collect();
            format!("the [{s}] keys are {} (see `sotto config keys`)", names.join(", "))
        }
        None => format!("the sections are {} (see `sotto config keys`)", sections().join(", ")),
    }
}
