//! `sotto bench soak`: a real `sotto serve` process under thousands of mixed requests (chat,
//! streaming, analysis batches, JSON schemas, slow readers, clients that disconnect, bad
//! bodies) from several clients at once, with mixed priorities, then SIGTERM. It counts what a
//! daemon that runs for months must never do: crash, or answer 5xx other than 503/504. It
//! states peak memory, open file descriptors and the prefix directory before and after.
//!
//! A benchmark, not a test: it reports; it asserts nothing about time.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sotto_governor::percentile;

use crate::client::Client;
use crate::process::Server;

/// What to run.
pub struct Options {
    /// The `sotto` executable.
    pub exe: PathBuf,
    /// A GGUF path or a catalog id, as `serve` takes it.
    pub model: String,
    pub models_dir: PathBuf,
    pub requests: usize,
    /// Clients sending at once.
    pub clients: usize,
}

/// The kinds of request, taken in turn: every kind gets the same share.
const KINDS: [&str; 12] = [
    "analyze",
    "analyze-batch",
    "chat",
    "chat-stream",
    "schema",
    "slow-reader",
    "disconnect",
    "bad-json",
    "bad-types",
    "schema-over-limit",
    "bad-utf8",
    "bad-event",
];

const PRIORITIES: [&str; 3] = ["critical", "normal", "background"];

/// The body of request `i` of `kind`: varied by `i`, so that prompts and events differ.
fn body(kind: &str, i: usize) -> Vec<u8> {
    let cmd = crate::serve::event(i);
    let chat = |max: u32, stream: bool| {
        json!({"messages": [{"role": "system", "content": "You are a security analyst. Answer in one word."},
            {"role": "user", "content": format!("Is this malicious? {cmd}")}], "max_tokens": max, "stream": stream})
        .to_string()
        .into_bytes()
    };
    match kind {
        "analyze" => json!({"command_line": cmd, "os": "linux"}).to_string().into_bytes(),
        "analyze-batch" => {
            json!((0..4).map(|j| json!({"command_line": crate::serve::event(i + j)})).collect::<Vec<_>>())
                .to_string()
                .into_bytes()
        }
        "chat" => chat(3, false),
        "chat-stream" | "slow-reader" => chat(6, true),
        "disconnect" => chat(64, false),
        "schema" => json!({"messages": [{"role": "user", "content": format!("Verdict for: {cmd}")}], "max_tokens": 12,
            "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object",
            "properties": {"verdict": {"enum": ["malicious", "benign"]}}, "required": ["verdict"]}}}})
        .to_string()
        .into_bytes(),
        "bad-json" => format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"{i}").into_bytes(),
        "bad-types" => json!({"messages": i, "max_tokens": "many"}).to_string().into_bytes(),
        "schema-over-limit" => {
            let mut schema = json!({"type": "string"});
            for _ in 0..40 {
                schema = json!({"type": "object", "properties": {"x": schema}});
            }
            json!({"messages": [{"role": "user", "content": "hi"}], "response_format":
                {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}}})
            .to_string()
            .into_bytes()
        }
        "bad-utf8" => {
            let mut b = b"{\"command_line\": \"ls ".to_vec();
            b.extend_from_slice(&[0xff, 0xfe, 0xc3]);
            b.extend_from_slice(b"\"}");
            b
        }
        _ => json!({"hostname": "web-1", "note": format!("no process here {i}")}).to_string().into_bytes(),
    }
}

fn path(kind: &str) -> &'static str {
    match kind {
        "analyze" | "analyze-batch" | "bad-utf8" | "bad-event" => "/v1/analyze",
        _ => "/v1/chat/completions",
    }
}

/// One request over its own connection. `None` status: the connection failed before a status
/// line (a refused connection would mean the daemon is gone).
struct Answer {
    status: Option<u16>,
    ms: f64,
}

fn send(client: &Client, addr: SocketAddr, kind: &str, i: usize) -> Answer {
    let started = Instant::now();
    // Each kind gets every priority in turn (not tied to the kind, as `i % 3` would be).
    let priority = PRIORITIES[(i / KINDS.len()) % PRIORITIES.len()];
    let body = body(kind, i);
    let status = match kind {
        "slow-reader" | "disconnect" => misbehave(addr, kind, priority, &body).unwrap_or(None),
        _ => client.post_with(path(kind), &[("x-sotto-priority", priority)], &body).ok().map(|r| r.status),
    };
    Answer { status, ms: started.elapsed().as_secs_f64() * 1e3 }
}

/// A client that reads its answer 16 bytes at a time, or hangs up before it: an HTTP client
/// library does neither, so these two write the request to a socket of their own.
fn misbehave(addr: SocketAddr, kind: &str, priority: &str, body: &[u8]) -> std::io::Result<Option<u16>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-Sotto-Priority: {priority}\r\nContent-Length: {}\r\n\r\n",
        path(kind),
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    if kind == "disconnect" {
        return Ok(None); // gone before the answer: the daemon must cancel, not choke
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    Ok(line.split_whitespace().nth(1).and_then(|c| c.parse().ok()))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the soak; prints the table and returns the raw data.
pub fn run(options: &Options) -> anyhow::Result<Value> {
    let state = std::env::temp_dir().join(format!("sotto-soak-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let addr = crate::process::free_addr()?;
    let child = Command::new(&options.exe)
        .args(["serve", "--set", &format!("server.listen={addr}"), "--set", &format!("model.path={}", options.model)])
        .env("XDG_STATE_HOME", &state)
        .env("SOTTO_MODELS", &options.models_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut server = Server { child, addr };
    let pid = server.pid();
    let client = Client::new(addr, Duration::from_secs(300));
    server.wait_ready(&client, "/ready", Duration::from_secs(300))?;
    let prefix_dir = state.join("sotto/prefix");
    let (fds_before, prefix_before) = (open_fds(pid), dir_bytes(&prefix_dir));
    let started = Instant::now();
    let answers: Vec<(usize, Answer)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.clients.max(1))
            .map(|c| {
                let client = &client;
                scope.spawn(move || {
                    (c..options.requests)
                        .step_by(options.clients.max(1))
                        .map(|i| (i, send(client, addr, KINDS[i % KINDS.len()], i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a client thread")).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let alive = server.child.try_wait()?.is_none();
    // Connections the clients closed are closed by the daemon within its header timeout.
    let settle = Instant::now();
    while open_fds(pid) > fds_before && settle.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (fds_after, prefix_after) = (open_fds(pid), dir_bytes(&prefix_dir));
    let peak_rss = sotto_governor::sampler::peak_rss(pid);
    let exit = server.terminate()?.map(|(status, took)| (status.code(), took.as_secs_f64()));
    let _ = std::fs::remove_dir_all(&state);

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, (BTreeMap<String, usize>, Vec<f64>)> = BTreeMap::new();
    for (i, a) in &answers {
        let kind = KINDS[i % KINDS.len()];
        let s = a
            .status
            .map_or_else(|| if kind == "disconnect" { "gone".into() } else { "none".into() }, |s| s.to_string());
        *by_status.entry(s.clone()).or_default() += 1;
        let entry = by_kind.entry(kind).or_default();
        *entry.0.entry(s).or_default() += 1;
        entry.1.push(a.ms);
    }
    let count = |pred: &dyn Fn(u16) -> bool| answers.iter().filter(|(_, a)| a.status.is_some_and(pred)).count();
    let bad_5xx = count(&|s| s >= 500 && s != 503 && s != 504);
    let no_answer =
        answers.iter().filter(|(i, a)| a.status.is_none() && KINDS[i % KINDS.len()] != "disconnect").count();
    let crashed = !alive || exit.is_some_and(|(code, _)| code != Some(0));

    println!(
        "{} requests from {} clients in {wall:.0} s against `sotto serve` ({}), then SIGTERM\n",
        answers.len(),
        options.clients,
        options.model
    );
    println!("| kind | answers | p50 / p99 ms |\n|---|---|---|");
    for (kind, (statuses, ms)) in &by_kind {
        let s: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("| {kind} | {} | {:.0} / {:.0} |", s.join(", "), percentile(ms, 50.0), percentile(ms, 99.0));
    }
    println!();
    println!("| figure | value | promise |\n|---|---|---|");
    println!("| crashes | {} | 0 |", u8::from(crashed));
    println!("| 5xx other than 503/504 | {bad_5xx} | 0 |");
    println!("| requests with no answer (not disconnects) | {no_answer} | 0 |");
    println!(
        "| 429 / 503 / 504 | {} / {} / {} | counted |",
        count(&|s| s == 429),
        count(&|s| s == 503),
        count(&|s| s == 504)
    );
    println!("| peak RSS | {:.0} MiB | under the 6 GiB budget |", peak_rss as f64 / (1 << 20) as f64);
    println!("| open descriptors before / after | {fds_before} / {fds_after} | no growth |");
    println!("| prefix directory before / after | {prefix_before} / {prefix_after} bytes | under cache.disk |");
    match exit {
        Some((code, s)) => println!("| SIGTERM | exit {code:?} after {s:.1} s | exit 0 |"),
        None => println!("| SIGTERM | the daemon had already exited | exit 0 |"),
    }
    Ok(json!({
        "requests": answers.len(),
        "clients": options.clients,
        "wall_s": wall,
        "by_status": by_status,
        "by_kind": by_kind.iter().map(|(k, (s, ms))| (k.to_string(), json!({"statuses": s,
            "p50_ms": percentile(ms, 50.0), "p99_ms": percentile(ms, 99.0)}))).collect::<BTreeMap<_, _>>(),
        "crashed": crashed,
        "bad_5xx": bad_5xx,
        "no_answer": no_answer,
        "peak_rss": peak_rss,
        "fds": {"before": fds_before, "after": fds_after},
        "prefix_dir_bytes": {"before": prefix_before, "after": prefix_after},
        "sigterm": exit.map(|(code, s)| json!({"code": code, "seconds": s})),
    }))
}
