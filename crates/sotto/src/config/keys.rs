//! Every configuration key, once: one row of [`KEYS`] holds its name, default, meaning, TOML
//! kind, how its text is parsed into the typed [`Config`] and how it is printed back; and the
//! "did you mean" hint.
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

/// One configuration key, all of it in one place: its dotted name, the default in text form,
/// what it is for, how its text is parsed into the typed [`Config`] and printed back.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Sets the key's field from its text, or says what is wrong with the text.
    pub parse: fn(&mut Config, &str) -> Result<(), String>,
    /// The field's value in the text form `parse` reads back.
    pub show: fn(&Config) -> String,
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

fn threads(v: &str) -> Result<Option<u32>, String> {
    unless(v, &["auto", ""], |t| parse_int(t, 1, 4096))
}

fn longer_than_zero(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err("must be longer than 0 s".into());
    }
    Ok(d)
}

fn path(p: &Option<PathBuf>) -> String {
    p.as_ref().map_or(String::new(), |p| p.display().to_string())
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map_or("none".into(), format_duration)
}

fn opt_threads(t: Option<u32>) -> String {
    t.map_or("auto".into(), |t| t.to_string())
}

use Kind::{Bool, Integer, Secret, Text};

/// Every key, in the order `config show` and `config keys` print them.
pub const KEYS: &[Key] = &[
    Key {
        name: "server.listen",
        default: "127.0.0.1:8434",
        kind: Text,
        help: "address and port of the HTTP API",
        parse: |cfg, v| {
            cfg.server.listen =
                v.parse().map_err(|_| format!("{v:?} is not an address and port (e.g. 127.0.0.1:8434)"))?;
            Ok(())
        },
        show: |cfg| cfg.server.listen.to_string(),
    },
    Key {
        name: "server.allow_remote",
        default: "false",
        kind: Bool,
        help: "allow a non-loopback listen address (a token is required too)",
        parse: |cfg, v| {
            cfg.server.allow_remote = parse_bool(v)?;
            Ok(())
        },
        show: |cfg| cfg.server.allow_remote.to_string(),
    },
    Key {
        name: "server.token",
        default: "",
        kind: Secret,
        help: "bearer token for /v1 and /metrics, at least 16 characters",
        parse: |cfg, v| {
            cfg.server.token = unless(v, &[""], check_token)?;
            Ok(())
        },
        show: |cfg| cfg.server.token.clone().unwrap_or_default(),
    },
    Key {
        name: "server.token_file",
        default: "",
        kind: Text,
        help: "file holding the bearer token (instead of server.token)",
        parse: |cfg, v| {
            cfg.server.token_file = unless(v, &[""], |p| Ok(PathBuf::from(p)))?;
            Ok(())
        },
        show: |cfg| path(&cfg.server.token_file),
    },
    Key {
        name: "server.max_body",
        default: "1MiB",
        kind: Text,
        help: "largest request body; larger ones get 413 (at least 1KiB)",
        parse: |cfg, v| {
            cfg.server.max_body = bytes(v, 1 << 10)?;
            Ok(())
        },
        show: |cfg| format_bytes(cfg.server.max_body),
    },
    Key {
        name: "server.sandbox",
        default: "auto",
        kind: Text,
        help: "filesystem sandbox (Landlock): off, auto (where the kernel has it), require",
        parse: |cfg, v| {
            cfg.server.sandbox = v.parse()?;
            Ok(())
        },
        show: |cfg| cfg.server.sandbox.to_string(),
    },
    Key {
        name: "server.max_tokens",
        default: "2048",
        kind: Integer,
        help: "cap on the tokens one request may generate, whatever it asks (1 to 65536)",
        parse: |cfg, v| {
            cfg.server.max_tokens = parse_int(v, 1, 65536)?;
            Ok(())
        },
        show: |cfg| cfg.server.max_tokens.to_string(),
    },
    Key {
        name: "server.queue",
        default: "8",
        kind: Integer,
        help: "requests waiting for the engine before 429 (1 to 1024)",
        parse: |cfg, v| {
            cfg.server.queue = parse_int(v, 1, 1024)?;
            Ok(())
        },
        show: |cfg| cfg.server.queue.to_string(),
    },
    Key {
        name: "server.shutdown_grace",
        default: "10s",
        kind: Text,
        help: "time in-flight requests get after SIGTERM",
        parse: |cfg, v| {
            cfg.server.shutdown_grace = parse_duration(v)?;
            Ok(())
        },
        show: |cfg| format_duration(cfg.server.shutdown_grace),
    },
    Key {
        name: "server.default_deadline",
        default: "none",
        kind: Text,
        help: "queue deadline for requests that set none",
        parse: |cfg, v| {
            let s = &mut cfg.server;
            s.default_deadline = unless(v, &["none", ""], parse_duration)?;
            if s.default_deadline == Some(Duration::ZERO) {
                return Err("a deadline of 0 would expire every request; use none for no deadline".into());
            }
            Ok(())
        },
        show: |cfg| opt_duration(cfg.server.default_deadline),
    },
    Key {
        name: "server.max_connections",
        default: "64",
        kind: Integer,
        help: "connections open at once; one more is answered 503 (1 to 65536)",
        parse: |cfg, v| {
            cfg.server.max_connections = parse_int(v, 1usize, 65536)?;
            Ok(())
        },
        show: |cfg| cfg.server.max_connections.to_string(),
    },
    Key {
        name: "server.header_timeout",
        default: "10s",
        kind: Text,
        help: "time a client has to send its headers; also the keep-alive idle time",
        parse: |cfg, v| {
            cfg.server.header_timeout = longer_than_zero(v)?;
            Ok(())
        },
        show: |cfg| format_duration(cfg.server.header_timeout),
    },
    Key {
        name: "server.body_timeout",
        default: "30s",
        kind: Text,
        help: "time a client has to send a request body (408 after it)",
        parse: |cfg, v| {
            cfg.server.body_timeout = longer_than_zero(v)?;
            Ok(())
        },
        show: |cfg| format_duration(cfg.server.body_timeout),
    },
    Key {
        name: "model.path",
        default: sotto_models::catalog::DEFAULT_MODEL,
        kind: Text,
        help: "catalog id or GGUF file path",
        parse: |cfg, v| {
            cfg.model.path = nonempty(v)?;
            Ok(())
        },
        show: |cfg| cfg.model.path.clone(),
    },
    Key {
        name: "model.n_ctx",
        default: "0",
        kind: Integer,
        help: "context window in tokens (0: the model's, at most 4096)",
        parse: |cfg, v| {
            cfg.model.n_ctx = parse_int(v, 0, 1 << 20)?;
            Ok(())
        },
        show: |cfg| cfg.model.n_ctx.to_string(),
    },
    Key {
        name: "model.chunk",
        default: "128",
        kind: Integer,
        help: "largest prefill chunk in tokens (the governor sizes each chunk up to it)",
        parse: |cfg, v| {
            cfg.model.chunk = parse_int(v, 1, 1 << 16)?;
            Ok(())
        },
        show: |cfg| cfg.model.chunk.to_string(),
    },
    Key {
        name: "model.threads",
        default: "auto",
        kind: Integer,
        help: "generation threads (auto: planned from budget.cpu_peak)",
        parse: |cfg, v| {
            cfg.model.threads = threads(v)?;
            Ok(())
        },
        show: |cfg| opt_threads(cfg.model.threads),
    },
    Key {
        name: "model.threads_batch",
        default: "auto",
        kind: Integer,
        help: "prefill threads (auto: planned from budget.cpu_peak)",
        parse: |cfg, v| {
            cfg.model.threads_batch = threads(v)?;
            Ok(())
        },
        show: |cfg| opt_threads(cfg.model.threads_batch),
    },
    Key {
        name: "model.kv_type",
        default: "f16",
        kind: Text,
        help: "KV cache element type: f16, q8_0 or q4_0",
        parse: |cfg, v| {
            cfg.model.kv_type = v.parse()?;
            Ok(())
        },
        show: |cfg| cfg.model.kv_type.name().to_string(),
    },
    Key {
        name: "model.template",
        default: "auto",
        kind: Text,
        help: "chat template: auto, completion, or a llama.cpp template name",
        parse: |cfg, v| {
            cfg.model.template = nonempty(v)?.parse().expect("infallible");
            Ok(())
        },
        show: |cfg| match &cfg.model.template {
            TemplateChoice::Auto => "auto".into(),
            TemplateChoice::Completion => "completion".into(),
            TemplateChoice::Named(name) => name.clone(),
        },
    },
    Key {
        name: "model.keep_alive",
        default: "none",
        kind: Text,
        help: "unload the model after this long idle (none: stay loaded)",
        parse: |cfg, v| {
            cfg.model.keep_alive = unless(v, &["none", ""], parse_duration)?.filter(|d| !d.is_zero());
            Ok(())
        },
        show: |cfg| opt_duration(cfg.model.keep_alive),
    },
    Key {
        name: "budget.cpu_mean",
        default: "35%",
        kind: Text,
        help: "mean CPU budget, share of the CPUs this process may use",
        parse: |cfg, v| {
            cfg.budget.cpu_mean = percent(v)?;
            Ok(())
        },
        show: |cfg| format_percent(cfg.budget.cpu_mean),
    },
    Key {
        name: "budget.cpu_peak",
        default: "50%",
        kind: Text,
        help: "CPU budget in any 100 ms window",
        parse: |cfg, v| {
            cfg.budget.cpu_peak = percent(v)?;
            Ok(())
        },
        show: |cfg| format_percent(cfg.budget.cpu_peak),
    },
    Key {
        name: "budget.memory",
        default: "6GiB",
        kind: Text,
        help: "memory budget, model included; larger models are refused",
        parse: |cfg, v| {
            cfg.budget.memory = bytes(v, 1 << 20)?;
            Ok(())
        },
        show: |cfg| format_bytes(cfg.budget.memory),
    },
    Key {
        name: "budget.sched",
        default: "idle",
        kind: Text,
        help: "class of inference threads: idle, background, normal, nice N",
        parse: |cfg, v| {
            cfg.budget.sched = parse_display(v)?;
            Ok(())
        },
        show: |cfg| cfg.budget.sched.to_string(),
    },
    Key {
        name: "budget.sched_critical",
        default: "nice 5",
        kind: Text,
        help: "class of inference threads for critical requests (they must progress beside a busy foreground)",
        parse: |cfg, v| {
            cfg.budget.sched_critical = parse_display(v)?;
            Ok(())
        },
        show: |cfg| cfg.budget.sched_critical.to_string(),
    },
    Key {
        name: "budget.cpu_mean_critical",
        default: "same",
        kind: Text,
        help: "mean CPU budget for critical requests (same: budget.cpu_mean)",
        parse: |cfg, v| {
            cfg.budget.critical_mean = unless(v, &["same", ""], percent)?;
            Ok(())
        },
        show: |cfg| cfg.budget.critical_mean.map_or("same".into(), format_percent),
    },
    Key {
        name: "budget.cpu_mean_background",
        default: "same",
        kind: Text,
        help: "mean CPU budget for background requests (same: budget.cpu_mean)",
        parse: |cfg, v| {
            cfg.budget.background_mean = unless(v, &["same", ""], percent)?;
            Ok(())
        },
        show: |cfg| cfg.budget.background_mean.map_or("same".into(), format_percent),
    },
    Key {
        name: "budget.cgroup",
        default: "off",
        kind: Text,
        help: "cap the process with its own cgroup v2 cpu.max at the peak: off, auto, require",
        parse: |cfg, v| {
            cfg.budget.cgroup = parse_display(v)?;
            Ok(())
        },
        show: |cfg| cfg.budget.cgroup.to_string(),
    },
    Key {
        name: "cache.prefix",
        default: "64MiB",
        kind: Text,
        help: "memory for prefix KV snapshots (0: off)",
        parse: |cfg, v| {
            cfg.cache.prefix = bytes(v, 0)?;
            Ok(())
        },
        show: |cfg| format_bytes(cfg.cache.prefix),
    },
    Key {
        name: "cache.persist",
        default: "true",
        kind: Bool,
        help: "keep prefix snapshots on disk across restarts",
        parse: |cfg, v| {
            cfg.cache.persist = parse_bool(v)?;
            Ok(())
        },
        show: |cfg| cfg.cache.persist.to_string(),
    },
    Key {
        name: "cache.dir",
        default: "",
        kind: Text,
        help: "where snapshots are kept (empty: <state dir>/prefix)",
        parse: |cfg, v| {
            cfg.cache.dir = unless(v, &[""], |p| Ok(PathBuf::from(p)))?;
            Ok(())
        },
        show: |cfg| path(&cfg.cache.dir),
    },
    Key {
        name: "cache.disk",
        default: "256MiB",
        kind: Text,
        help: "disk for persisted snapshots per model; the least recently used go first",
        parse: |cfg, v| {
            cfg.cache.disk = bytes(v, 0)?;
            Ok(())
        },
        show: |cfg| format_bytes(cfg.cache.disk),
    },
    Key {
        name: "analyze.mode",
        default: "head",
        kind: Text,
        help: "head, retrieval, fast, constrained, constrained-zero-shot or naive",
        parse: |cfg, v| {
            cfg.analyze.mode = v.parse()?;
            Ok(())
        },
        show: |cfg| cfg.analyze.mode.to_string(),
    },
    Key {
        name: "analyze.detail",
        default: "verdict",
        kind: Text,
        help: "verdict (no generated rationale unless analyze.rationale says) or full",
        parse: |cfg, v| {
            cfg.analyze.detail = v.parse()?;
            Ok(())
        },
        show: |cfg| serde_name(cfg.analyze.detail),
    },
    Key {
        name: "analyze.rationale",
        default: "never",
        kind: Text,
        help: "when the model writes a rationale: never, flagged or always (detail=full: always)",
        parse: |cfg, v| {
            cfg.analyze.rationale = v.parse()?;
            Ok(())
        },
        show: |cfg| serde_name(cfg.analyze.rationale),
    },
    Key {
        name: "analyze.embeddings",
        default: "cascade",
        kind: Text,
        help: "when the head adds the model's embedding of the event: off, cascade (when the lexical head is unsure) or always",
        parse: |cfg, v| {
            cfg.analyze.embeddings = v.parse()?;
            Ok(())
        },
        show: |cfg| serde_name(cfg.analyze.embeddings),
    },
    Key {
        name: "analyze.head",
        default: "",
        kind: Text,
        help: "a verdict head file from `sotto head train` (empty: the shipped heads)",
        parse: |cfg, v| {
            cfg.analyze.head = unless(v, &[""], |p| Ok(PathBuf::from(p)))?;
            Ok(())
        },
        show: |cfg| path(&cfg.analyze.head),
    },
    Key {
        name: "analyze.max_field_chars",
        default: "2000",
        kind: Integer,
        help: "event fields longer than this many characters or bytes (a bound on tokens) are cut and marked",
        parse: |cfg, v| {
            cfg.analyze.max_field_chars = parse_int(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |cfg| cfg.analyze.max_field_chars.to_string(),
    },
    Key {
        name: "analyze.retrieve",
        default: "0",
        kind: Integer,
        help: "similar bank examples shown to the model before the event (0: none)",
        parse: |cfg, v| {
            cfg.analyze.retrieve = parse_int(v, 0, 16)?;
            Ok(())
        },
        show: |cfg| cfg.analyze.retrieve.to_string(),
    },
    Key {
        name: "analyze.follow_check",
        default: "2s",
        kind: Text,
        help: "--follow: how often a quiet file is looked at without a change notification (a safety net, e.g. for network filesystems)",
        parse: |cfg, v| {
            let a = &mut cfg.analyze;
            a.follow_check = parse_duration(v)?;
            if a.follow_check < Duration::from_millis(100) {
                return Err("under 100ms the follower would poll; notifications do the work".into());
            }
            Ok(())
        },
        show: |cfg| format_duration(cfg.analyze.follow_check),
    },
];

/// The key named `name`, if there is one.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

impl Config {
    /// The value of `key` in the text form `set` reads back. Not masked: callers mask secrets.
    pub fn value(&self, key: &str) -> String {
        find_key(key).map_or_else(String::new, |k| (k.show)(self))
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
