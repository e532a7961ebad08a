//! `sotto bench analyze`: the analysis path of the daemon under the default budgets, on a
//! stream shaped like a real host's: mostly background, with repeats (a logon or a build
//! launches the same few programs again and again), and a few attacks.
//!
//! Three phases on one daemon (`POST /v1/analyze`, one event per request, as a forwarder
//! sends them): a sustained stream paced at the target rate, the same stream flat out (the
//! most events per second it keeps up with), and flagged events with `detail=full` (the
//! rationale's latency). Reports events/s, verdict and rationale latency, process CPU per
//! 100 ms window and CPU-seconds per event, as MEASURING.md defines them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sotto_engine::{Engine, EngineConfig};
use sotto_governor::sampler::{Sampler, figures};
use sotto_governor::{Budgets, Governor, SchedClass, available_cpus, process_cpu_time};
use sotto_server::{AppState, ModelName, Resources, Settings};

use crate::client::Client;
use crate::serve::Daemon;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub model: PathBuf,
    pub model_id: String,
    /// Labelled events (corpus lines): (label, raw event JSON).
    pub corpus: Vec<(String, Value)>,
    /// Events in each stream phase.
    pub events: usize,
    /// The paced phase's rate, events per second.
    pub rate: f64,
    /// Flagged events sent with `detail=full`.
    pub rationales: usize,
}

/// A host-shaped stream of indices into `corpus`: one event in 20 an attack, the rest
/// background, of which most repeat a small working set. Deterministic.
pub fn host_stream(corpus: &[(String, Value)], n: usize) -> Vec<usize> {
    let benign: Vec<usize> = (0..corpus.len()).filter(|&i| corpus[i].0 == "benign").collect();
    let attacks: Vec<usize> = (0..corpus.len()).filter(|&i| corpus[i].0 == "malicious").collect();
    assert!(!benign.is_empty() && !attacks.is_empty(), "the corpus needs benign and malicious events");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let working_set = benign.len().min(24);
    (0..n)
        .map(|i| {
            let r = next();
            if i % 20 == 19 {
                attacks[(r as usize) % attacks.len()]
            } else if r % 10 < 7 {
                benign[(r as usize / 10) % working_set]
            } else {
                benign[(r as usize / 10) % benign.len()]
            }
        })
        .collect()
}

struct Phase {
    name: &'static str,
    latency_ms: Vec<f64>,
    wall_s: f64,
    cpu_s: f64,
    process: sotto_governor::sampler::CpuFigures,
    generated_tokens: u64,
}

impl Phase {
    fn json(&self) -> Value {
        let l = figures(&self.latency_ms);
        let n = self.latency_ms.len();
        json!({
            "phase": self.name,
            "events": n,
            "events_per_s": n as f64 / self.wall_s.max(1e-9),
            "latency_ms": { "p50": l.p50, "p95": l.p95, "p99": l.p99, "max": l.peak, "samples": self.latency_ms },
            "cpu_s_per_event": self.cpu_s / n.max(1) as f64,
            "process_cpu": { "mean": self.process.mean, "p99": self.process.p99, "peak": self.process.peak },
            "generated_tokens": self.generated_tokens,
        })
    }
}

/// Runs the three phases; prints the table and returns the raw data.
pub fn run(options: &Options) -> anyhow::Result<Value> {
    let cpus = available_cpus();
    let budgets = Budgets::default();
    let governor = Governor::new(budgets, SchedClass::Idle, cpus);
    let plan = governor.plan();
    let paced = governor.stats();
    let config =
        EngineConfig { threads: plan.decode, threads_batch: plan.prefill, ..EngineConfig::new(&options.model) };
    let engine = Arc::new(Engine::start(config, Box::new(governor))?);
    let analyzer = Arc::new(sotto_analyze::Analyzer::new(engine.clone(), sotto_analyze::Options::default()));
    // As `sotto serve` does at start: the rationale prompt's shared part is cached first.
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(analyzer.prewarm())?;
    let gov = Resources::new(&budgets, cpus, plan.decode, plan.prefill);
    let name = ModelName { id: options.model_id.clone(), aliases: Vec::new(), created: 0 };
    let state = AppState::new(engine, Some(analyzer), name, Settings::default(), gov, paced);
    let daemon = Daemon::start(state)?;
    let client = Client::new(daemon.addr, Duration::from_secs(300));

    let stream = host_stream(&options.corpus, options.events);
    let send = |i: usize, path: &str| -> anyhow::Result<(f64, Value)> {
        let t = Instant::now();
        let reply = client.post(path, options.corpus[i].1.to_string())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(reply.status == 200, "{path}: {} {}", reply.status, reply.body);
        Ok((ms, serde_json::from_str(&reply.body)?))
    };
    let mut phases = Vec::new();
    for (name, rate) in [("sustained", Some(options.rate)), ("flat out", None)] {
        let sampler = Sampler::start(std::process::id(), cpus);
        let cpu0 = process_cpu_time();
        let start = Instant::now();
        let mut latency_ms = Vec::new();
        let mut generated = 0;
        for (k, &i) in stream.iter().enumerate() {
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(k as f64 / r);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let (ms, v) = send(i, "/v1/analyze")?;
            generated += v["generated_tokens"].as_u64().unwrap_or(0);
            latency_ms.push(ms);
        }
        let wall_s = start.elapsed().as_secs_f64();
        let cpu_s = (process_cpu_time() - cpu0).as_secs_f64();
        let (report, _) = sampler.finish();
        phases.push(Phase { name, latency_ms, wall_s, cpu_s, process: report.process, generated_tokens: generated });
    }
    // Rationales: flagged events of the stream, one at a time, with detail=full.
    let flagged: Vec<usize> =
        stream.iter().copied().filter(|&i| options.corpus[i].0 != "benign").take(options.rationales).collect();
    let sampler = Sampler::start(std::process::id(), cpus);
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let (mut latency_ms, mut generated) = (Vec::new(), 0);
    for &i in &flagged {
        let (ms, v) = send(i, "/v1/analyze?detail=full")?;
        anyhow::ensure!(v["rationale"].is_string(), "detail=full gave no rationale: {v}");
        generated += v["generated_tokens"].as_u64().unwrap_or(0);
        latency_ms.push(ms);
    }
    let (report, _) = sampler.finish();
    phases.push(Phase {
        name: "rationale",
        latency_ms,
        wall_s: start.elapsed().as_secs_f64(),
        cpu_s: (process_cpu_time() - cpu0).as_secs_f64(),
        process: report.process,
        generated_tokens: generated,
    });
    daemon.stop()?;

    println!(
        "{} events per stream phase (1 in 20 an attack, background with repeats), one per POST /v1/analyze; \
         budgets 35/50, idle class, threads {}/{}; {cpus} CPUs\n",
        options.events, plan.decode, plan.prefill
    );
    println!(
        "| phase | events/s | latency p50 / p95 / p99 ms | proc CPU mean / p99 / peak % | CPU-s per event | generated tokens |"
    );
    println!("|---|---|---|---|---|---|");
    for p in &phases {
        let l = figures(&p.latency_ms);
        println!(
            "| {} | {:.1} | {:.2} / {:.2} / {:.2} | {:.1} / {:.1} / {:.1} | {:.5} | {} |",
            p.name,
            p.latency_ms.len() as f64 / p.wall_s.max(1e-9),
            l.p50,
            l.p95,
            l.p99,
            p.process.mean,
            p.process.p99,
            p.process.peak,
            p.cpu_s / p.latency_ms.len().max(1) as f64,
            p.generated_tokens
        );
    }
    Ok(json!({
        "events": options.events,
        "rate": options.rate,
        "cpus": cpus,
        "threads": [plan.decode, plan.prefill],
        "phases": phases.iter().map(Phase::json).collect::<Vec<_>>(),
    }))
}
