//! `sotto bench governor`: a stream of generation requests under several CPU budgets, with
//! process and system CPU per 100 ms window, latency, tokens/s, idle CPU after the stream, and
//! the slowdown a CPU-bound foreground workload feels per scheduling class.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sotto_engine::{Engine, EngineConfig, Request};
use sotto_governor::sampler::{CpuFigures, Report, Sampler, figures};
use sotto_governor::{Budgets, Governor, SchedClass, available_cpus, percentile, process_cpu_time};

use crate::workload::{sha_foreground_process, stream_prompt};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// (label, GGUF path) of each model.
    pub models: Vec<(String, PathBuf)>,
    pub requests: usize,
    pub max_tokens: u32,
    /// Largest prefill chunk (the governor picks smaller ones).
    pub chunk: u32,
    pub idle: Duration,
    pub foreground: Duration,
    /// Only the foreground impact and critical latency, not the budget matrix.
    pub foreground_only: bool,
    /// The `sotto` executable, which runs the foreground workload in a process of its own.
    pub exe: PathBuf,
}

/// One budget configuration of the stream.
#[derive(Debug, Clone, Copy)]
struct Setting {
    label: &'static str,
    mean: f64,
    peak: f64,
    class: SchedClass,
    governed: bool,
    /// Threads forced instead of the plan's: the plan a peak-only rule would pick, run beside
    /// the plan that also weighs the mean budget.
    threads: Option<u32>,
}

const SETTINGS: &[Setting] = &[
    Setting { label: "35/50", mean: 0.35, peak: 0.50, class: SchedClass::Idle, governed: true, threads: None },
    Setting { label: "20/50", mean: 0.20, peak: 0.50, class: SchedClass::Idle, governed: true, threads: None },
    Setting { label: "50/100", mean: 0.50, peak: 1.00, class: SchedClass::Idle, governed: true, threads: None },
    Setting {
        label: "50/100 peak-only plan",
        mean: 0.50,
        peak: 1.00,
        class: SchedClass::Idle,
        governed: true,
        threads: Some(2),
    },
    Setting { label: "ungoverned", mean: 1.00, peak: 1.00, class: SchedClass::Normal, governed: false, threads: None },
];

/// Sampling noise allowed on top of a budget, in points (the acceptance rule).
const NOISE_POINTS: f64 = 2.0;

struct StreamResult {
    report: Report,
    latency_ms: Vec<f64>,
    prompt_tokens: usize,
    generated_tokens: usize,
    decode_s: f64,
    wall_s: f64,
    paced_s: f64,
    threads: (u32, u32),
}

fn start_engine(
    path: &PathBuf,
    setting: &Setting,
    cpus: f64,
    chunk: u32,
    critical: Option<SchedClass>,
) -> anyhow::Result<(Engine, Arc<sotto_governor::GovernorStats>)> {
    let budgets = Budgets { cpu_mean: setting.mean, cpu_peak: setting.peak, ..Default::default() };
    let mut governor = Governor::new(budgets, setting.class, cpus);
    if let Some(class) = critical {
        governor = governor.with_critical_class(class);
    }
    let plan = governor.plan();
    let stats = governor.stats();
    let (threads, threads_batch) = setting.threads.map_or((plan.decode, plan.prefill), |n| (n, n));
    let config = EngineConfig { threads, threads_batch, chunk, ..EngineConfig::new(path) };
    Ok((Engine::start(config, Box::new(governor))?, stats))
}

fn stream(
    engine: &Engine,
    paced: &sotto_governor::GovernorStats,
    options: &Options,
    cpus: f64,
) -> anyhow::Result<StreamResult> {
    // One warm-up request (first-call allocations) outside the measurement.
    engine.generate_blocking(Request::new(stream_prompt(usize::MAX / 2), 4))?;
    let paced_before = paced.paced_ns.load(Ordering::Relaxed);
    let sampler = Sampler::start(std::process::id(), cpus);
    let started = Instant::now();
    let mut latency_ms = Vec::with_capacity(options.requests);
    let (mut prompt_tokens, mut generated_tokens, mut decode_s) = (0, 0, 0.0);
    for i in 0..options.requests {
        let t = Instant::now();
        let (_, stats) = engine.generate_blocking(Request::new(stream_prompt(i), options.max_tokens))?;
        latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
        prompt_tokens += stats.prompt_tokens;
        generated_tokens += stats.generated_tokens;
        decode_s += stats.decode.as_secs_f64();
    }
    let wall_s = started.elapsed().as_secs_f64();
    let (report, _) = sampler.finish();
    let info = engine.info();
    Ok(StreamResult {
        report,
        latency_ms,
        prompt_tokens,
        generated_tokens,
        decode_s,
        wall_s,
        paced_s: (paced.paced_ns.load(Ordering::Relaxed) - paced_before) as f64 / 1e9,
        threads: (info.threads_batch, info.threads),
    })
}

fn cpu_json(f: &CpuFigures) -> Value {
    json!({"mean": f.mean, "p50": f.p50, "p95": f.p95, "p99": f.p99, "peak": f.peak})
}

/// Run the whole benchmark; prints the tables and returns the raw data.
pub fn run(options: &Options) -> anyhow::Result<Value> {
    let cpus = available_cpus();
    if options.foreground_only {
        let foreground = foreground_impact(options, cpus)?;
        return Ok(json!({"cpus": cpus, "max_tokens": options.max_tokens, "foreground": foreground}));
    }
    let mut runs = Vec::new();
    let mut idle = Vec::new();
    println!("machine: {cpus} CPUs; {} requests per run, max {} tokens each\n", options.requests, options.max_tokens);
    println!(
        "| model | budget mean/peak | threads pf/dec | proc mean | proc p99 | proc peak | sys mean | sys p99 | sys peak | lat p50 ms | lat p95 ms | lat p99 ms | p99/p50 | prompt tok/s | gen tok/s | paced s | held |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, path) in &options.models {
        let mut last_engine = None;
        for setting in SETTINGS {
            let (engine, paced) = start_engine(path, setting, cpus, options.chunk, None)?;
            let r = stream(&engine, &paced, options, cpus)?;
            let lat = figures(&r.latency_ms);
            let (p, s) = (&r.report.process, &r.report.system);
            let held = if setting.governed {
                let ok = p.p99 <= setting.peak * 100.0 + NOISE_POINTS
                    && p.peak <= setting.peak * 100.0 + NOISE_POINTS
                    && p.mean <= setting.mean * 100.0 + NOISE_POINTS;
                if ok { "yes" } else { "NO" }
            } else {
                "-"
            };
            println!(
                "| {label} | {} | {}/{} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {held} |",
                setting.label,
                r.threads.0,
                r.threads.1,
                p.mean,
                p.p99,
                p.peak,
                s.mean,
                s.p99,
                s.peak,
                lat.p50,
                lat.p95,
                lat.p99,
                lat.p99 / lat.p50,
                r.prompt_tokens as f64 / r.wall_s,
                r.generated_tokens as f64 / r.decode_s.max(1e-9),
                r.paced_s,
            );
            runs.push(json!({
                "model": label, "budget": setting.label, "mean_budget": setting.mean, "peak_budget": setting.peak,
                "class": setting.class.to_string(), "threads_prefill": r.threads.0, "threads_decode": r.threads.1,
                "process_cpu": cpu_json(p), "system_cpu": cpu_json(s),
                "windows": r.report.windows, "active_windows": r.report.active_windows,
                "process_mean_all_windows": r.report.process_mean_all,
                "latency_ms": {"p50": lat.p50, "p95": lat.p95, "p99": lat.p99, "all": r.latency_ms},
                "prompt_tokens": r.prompt_tokens, "generated_tokens": r.generated_tokens,
                "wall_s": r.wall_s, "decode_s": r.decode_s, "paced_s": r.paced_s,
                "peak_rss_bytes": r.report.peak_rss, "held": held,
            }));
            last_engine = Some(engine);
        }
        // Idle after the stream, with the last engine still loaded.
        let engine = last_engine.expect("at least one setting");
        let before = process_cpu_time();
        let t = Instant::now();
        std::thread::sleep(options.idle);
        let used = (process_cpu_time() - before).as_secs_f64();
        let pct = used / t.elapsed().as_secs_f64() / cpus * 100.0;
        idle.push(json!({"model": label, "seconds": options.idle.as_secs_f64(), "cpu_ms": used * 1e3, "percent_of_machine": pct}));
        drop(engine);
    }
    println!();
    for i in &idle {
        println!(
            "idle after the stream ({}): {:.1} ms of CPU in {:.0} s = {:.4}% of the machine",
            i["model"].as_str().unwrap_or("?"),
            i["cpu_ms"].as_f64().unwrap_or(0.0),
            i["seconds"].as_f64().unwrap_or(0.0),
            i["percent_of_machine"].as_f64().unwrap_or(0.0)
        );
    }
    let foreground = foreground_impact(options, cpus)?;
    Ok(
        json!({"cpus": cpus, "requests": options.requests, "max_tokens": options.max_tokens, "runs": runs, "idle": idle, "foreground": foreground}),
    )
}

/// The foreground "user" alone, then beside a 35/50 stream of critical requests, with the
/// inference threads idle between requests and each critical request in `class` (sotto's
/// `budget.sched_critical`): what the class costs the user, and what it buys the alert.
fn foreground_impact(options: &Options, cpus: f64) -> anyhow::Result<Value> {
    let Some((label, path)) = options.models.first() else { return Ok(Value::Null) };
    let threads = 2;
    let mut out = Vec::new();
    println!(
        "\nforeground impact and critical latency ({label}, 35/50 budget, idle class between requests, \
         critical requests in the class named, beside a {threads}-thread SHA-256 for {} s):",
        options.foreground.as_secs()
    );
    println!(
        "| critical class | hashes alone | hashes with sotto | impact | critical requests done | latency p50 / max ms |"
    );
    println!("|---|---|---|---|---|---|");
    for class in [SchedClass::Idle, SchedClass::Nice(19), SchedClass::Nice(10), SchedClass::Nice(5), SchedClass::Normal]
    {
        let alone = sha_foreground_process(&options.exe, threads, options.foreground)?;
        let setting =
            Setting { label: "35/50", mean: 0.35, peak: 0.5, class: SchedClass::Idle, governed: true, threads: None };
        let (engine, _) = start_engine(path, &setting, cpus, options.chunk, Some(class))?;
        let engine = Arc::new(engine);
        let stop = Arc::new(AtomicBool::new(false));
        let max_tokens = options.max_tokens;
        let background = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let request = Request {
                        priority: sotto_engine::Priority::Critical,
                        ..Request::new(stream_prompt(i), max_tokens)
                    };
                    match engine.generate_blocking(request) {
                        Ok(_) if !stop.load(Ordering::Relaxed) => latencies.push(started.elapsed().as_secs_f64() * 1e3),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "a critical request failed"),
                    }
                    i += 1;
                }
                latencies
            })
        };
        let with = sha_foreground_process(&options.exe, threads, options.foreground)?;
        stop.store(true, Ordering::Relaxed);
        let latencies = background.join().unwrap_or_default();
        let impact = (1.0 - with as f64 / alone as f64) * 100.0;
        let (p50, max) = (percentile(&latencies, 50.0), percentile(&latencies, 100.0));
        println!("| {class} | {alone} | {with} | {impact:.1}% | {} | {p50:.0} / {max:.0} |", latencies.len());
        out.push(json!({"critical_class": class.to_string(), "hashes_alone": alone, "hashes_with_sotto": with,
            "impact_percent": impact, "critical_done": latencies.len(), "latency_ms": latencies}));
    }
    Ok(Value::Array(out))
}
