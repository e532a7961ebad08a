//! One row of the matrix, measured as MEASURING.md defines: the evaluation events one at a
//! time (correctness, verdict latency, CPU per 100 ms window, CPU-seconds per event), the
//! rationales of events the row flagged, 30 s of idle, then the SHA-256 foreground workload
//! alone and beside a stream. Peak RSS (VmHWM) is read last, so it covers everything.
//!
//! Must not: drop an unreadable answer from the denominator (it is a wrong answer), or take
//! the foreground's "alone" figure far from its "beside" figure (it is taken right before).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sotto_analyze::eval::{Graded, Report as Scores, score};
use sotto_events::LabelledEvent;
use sotto_events::eval::Label;
use sotto_governor::sampler::{CpuFigures, Sampler, process_cpu_ns, windows};

use super::spec::Row;
use super::target::{Answer, Setup, Target};
use crate::workload::sha_foreground_process;

/// How a row is run.
pub struct Plan<'a> {
    pub events: &'a [LabelledEvent],
    pub rationales: usize,
    pub idle: Duration,
    pub foreground: Duration,
    pub cpus: f64,
    /// Called after each request.
    pub tick: &'a (dyn Fn() + Sync),
}

/// Mean and percentiles (nearest rank) of a set of values: latencies in ms, or CPU in %.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Figures {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub peak: f64,
}

impl From<CpuFigures> for Figures {
    fn from(f: CpuFigures) -> Self {
        Figures { mean: f.mean, p50: f.p50, p95: f.p95, p99: f.p99, peak: f.peak }
    }
}

fn figures(values: &[f64]) -> Figures {
    sotto_governor::sampler::figures(values).into()
}

/// One request of a row.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// `verdict` or `rationale`.
    pub phase: &'static str,
    pub event: String,
    pub expected: Label,
    pub predicted: Option<Label>,
    pub status: u16,
    /// Since the row's stream began, s.
    pub at_s: f64,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The foreground workload's hashes alone and beside the stream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Foreground {
    pub alone: u64,
    pub beside: u64,
    /// 1 − beside / alone, %.
    pub impact: f64,
    /// Requests answered beside it.
    pub requests: usize,
}

/// Everything measured of one row.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub scores: Scores,
    pub requests: Vec<Request>,
    /// Verdict latency, ms.
    pub verdict_ms: Figures,
    /// Rationale latency, ms; `None` where the row produces none apart from the verdict.
    pub rationale_ms: Option<Figures>,
    /// Process CPU over the stream's active windows, % of the machine.
    pub cpu: Figures,
    /// System CPU over the same windows.
    pub system_cpu: Figures,
    /// Per 100 ms window of the stream: (s since it began, process %, system %).
    pub windows: Vec<(f64, f64, f64)>,
    /// Process CPU of the verdict stream over its events.
    pub cpu_s_per_event: f64,
    /// Process CPU of the rationales over their count.
    pub cpu_s_per_rationale: Option<f64>,
    /// Process CPU mean over the idle period, % of the machine.
    pub idle_cpu: f64,
    pub foreground: Foreground,
    pub peak_rss: u64,
    /// From the server's start until it answered its readiness path, s.
    pub ready_s: f64,
    /// The unmeasured warm-up request, s.
    pub warmup_s: f64,
    /// The server's exit code after SIGTERM; `None`: it had exited on its own, or by a signal.
    pub exit: Option<i32>,
}

/// Runs one row on its started target.
pub fn measure(row: &Row, target: Target, setup: &Setup, plan: &Plan) -> anyhow::Result<Measured> {
    let pid = target.pid();
    // An always-on daemon is measured warm: one full answer first, unmeasured, so that what
    // a server does once after it starts (sotto caches the rationale's shared prompt) is not
    // charged to the first events. Its time is reported.
    let first = plan.events.first().ok_or_else(|| anyhow::anyhow!("no events to send"))?;
    let warming = Instant::now();
    let warm = target.rationale(first).unwrap_or_else(|| target.verdict(first));
    anyhow::ensure!(warm.status == 200, "the warm-up request failed: {} {:?}", warm.status, warm.error);
    // What the server started in the background (sotto's rationale prompt, at background
    // priority) finishes before the stream: otherwise the stream starves it and it runs on
    // into the idle period.
    target.wait_quiet(Duration::from_secs(600))?;
    let warmup_s = warming.elapsed().as_secs_f64();
    let cpu_now = || process_cpu_ns(pid).unwrap_or(0);
    let sampler = Sampler::start(pid, plan.cpus);
    let start = Instant::now();
    let cpu0 = cpu_now();
    let mut requests = Vec::new();
    let mut graded = Vec::new();
    for e in plan.events {
        let at_s = start.elapsed().as_secs_f64();
        let a = target.verdict(e);
        graded.push(grade(e, &a));
        requests.push(record("verdict", e, &a, at_s));
        (plan.tick)();
    }
    let cpu1 = cpu_now();
    let flagged: Vec<&LabelledEvent> = plan
        .events
        .iter()
        .zip(&graded)
        .filter(|(_, g)| matches!(g.predicted, Some(Label::Malicious | Label::Suspicious)))
        .map(|(e, _)| e)
        .take(plan.rationales)
        .collect();
    let mut rationale_ms = Vec::new();
    for e in &flagged {
        let at_s = start.elapsed().as_secs_f64();
        let Some(a) = target.rationale(e) else { break };
        rationale_ms.push(a.ms);
        requests.push(record("rationale", e, &a, at_s));
        (plan.tick)();
    }
    let cpu2 = cpu_now();
    let (report, samples) = sampler.finish();
    let step = 0.1;
    let windows =
        windows(&samples, plan.cpus).into_iter().enumerate().map(|(i, (p, s))| ((i + 1) as f64 * step, p, s)).collect();

    let idle_sampler = Sampler::start(pid, plan.cpus);
    std::thread::sleep(plan.idle);
    let idle_cpu = idle_sampler.finish().0.process_mean_all;

    let foreground = foreground(&target, setup, plan)?;
    let ready_s = target.ready_s;
    let peak_rss = sotto_governor::sampler::peak_rss(pid);
    let exit = target.stop()?;
    tracing::debug!(row = %row.name, ?exit, "row done");

    let verdict_ms: Vec<f64> = graded.iter().map(|g| g.latency_ms).collect();
    let seconds = |ns: u64| ns as f64 / 1e9;
    Ok(Measured {
        scores: score(&graded),
        verdict_ms: figures(&verdict_ms),
        rationale_ms: (!rationale_ms.is_empty()).then(|| figures(&rationale_ms)),
        cpu: report.process.into(),
        system_cpu: report.system.into(),
        windows,
        cpu_s_per_event: seconds(cpu1.saturating_sub(cpu0)) / plan.events.len().max(1) as f64,
        cpu_s_per_rationale: (!rationale_ms.is_empty())
            .then(|| seconds(cpu2.saturating_sub(cpu1)) / rationale_ms.len() as f64),
        idle_cpu,
        foreground,
        peak_rss,
        ready_s,
        warmup_s,
        exit,
        requests,
    })
}

/// The foreground workload alone (the server idle), then beside a stream of the events.
fn foreground(target: &Target, setup: &Setup, plan: &Plan) -> anyhow::Result<Foreground> {
    let alone = sha_foreground_process(&setup.exe, 2, plan.foreground)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (beside, requests) = std::thread::scope(|scope| -> anyhow::Result<(u64, usize)> {
        let stream = scope.spawn(|| {
            let mut n = 0;
            for e in plan.events.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                target.verdict(e);
                n += 1;
            }
            n
        });
        let beside = sha_foreground_process(&setup.exe, 2, plan.foreground);
        stop.store(true, Ordering::Relaxed);
        let requests = stream.join().unwrap_or(0);
        Ok((beside?, requests))
    })?;
    let impact = if alone == 0 { 0.0 } else { (1.0 - beside as f64 / alone as f64) * 100.0 };
    Ok(Foreground { alone, beside, impact, requests })
}

fn grade(e: &LabelledEvent, a: &Answer) -> Graded {
    Graded {
        id: e.id.clone(),
        format: e.format.clone(),
        os: e.os.clone(),
        expected: e.label,
        predicted: a.verdict,
        confidence: None,
        expected_techniques: e.techniques.clone(),
        predicted_techniques: a.techniques.clone(),
        latency_ms: a.ms,
        embedded: false,
        error: a.error.clone(),
    }
}

fn record(phase: &'static str, e: &LabelledEvent, a: &Answer, at_s: f64) -> Request {
    Request {
        phase,
        event: e.id.clone(),
        expected: e.label,
        predicted: a.verdict,
        status: a.status,
        at_s,
        ms: a.ms,
        error: a.error.clone(),
    }
}
