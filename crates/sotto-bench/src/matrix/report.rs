//! What `sotto bench run` writes: every figure judged against its promise, seed 001's table
//! in markdown with ✅/❌, the sotto / baseline ratios, a one-line summary per row for logs,
//! and the requests and CPU windows as CSV.
//!
//! Must not: judge a figure that was not measured (a row with no rationale has no rationale
//! check), or round before judging.

use std::path::Path;

use serde::Serialize;

use super::measure::Measured;
use super::spec::{Kind, Promises, Row};

/// A measured row.
pub struct Done<'a> {
    pub row: &'a Row,
    pub measured: &'a Measured,
    /// The GGUF's size, bytes (the model is memory-mapped: part of RSS is the file).
    pub model_bytes: u64,
}

/// One figure against its promise.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub criterion: &'static str,
    pub figure: f64,
    /// `≤ 2500`, `≥ 0.8`, `< 2`.
    pub promise: String,
    pub pass: bool,
}

fn at_most(criterion: &'static str, figure: f64, limit: f64) -> Check {
    Check { criterion, figure, promise: format!("≤ {limit}"), pass: figure <= limit }
}

/// Every promise a row's figures belong to, judged.
pub fn checks(m: &Measured, p: &Promises) -> Vec<Check> {
    let tail = if m.verdict_ms.p50 > 0.0 { m.verdict_ms.p99 / m.verdict_ms.p50 } else { f64::INFINITY };
    let mut out = vec![
        Check {
            criterion: "accuracy",
            figure: m.scores.accuracy,
            promise: format!("≥ {}", p.accuracy),
            pass: m.scores.accuracy >= p.accuracy,
        },
        at_most("verdict p95 ms", m.verdict_ms.p95, p.p95_ms),
        Check {
            criterion: "verdict p99/p50",
            figure: tail,
            promise: format!("< {}", p.tail_ratio),
            pass: tail < p.tail_ratio,
        },
    ];
    if let Some(r) = &m.rationale_ms {
        out.push(at_most("rationale p95 ms", r.p95, p.p95_ms));
    }
    out.extend([
        at_most("CPU mean %", m.cpu.mean, p.cpu_mean),
        at_most("CPU p99 %", m.cpu.p99, p.cpu_peak),
        at_most("CPU peak %", m.cpu.peak, p.cpu_peak),
        at_most("peak RSS MiB", mib(m.peak_rss), p.rss_mib),
        at_most("idle CPU %", m.idle_cpu, p.idle_cpu),
        at_most("foreground impact %", m.foreground.impact, p.foreground_impact),
    ]);
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

fn mark(checks: &[Check], criterion: &str) -> &'static str {
    match checks.iter().find(|c| c.criterion == criterion) {
        Some(c) if c.pass => " ✅",
        Some(_) => " ❌",
        None => "",
    }
}

/// The one-line summary of a row, for logs.
pub fn summary(done: &Done, p: &Promises) -> String {
    let m = done.measured;
    let c = checks(m, p);
    let kept = c.iter().filter(|c| c.pass).count();
    let rationale = m.rationale_ms.map_or(String::new(), |r| format!(", rationale p95 {:.0} ms", r.p95));
    format!(
        "{}: accuracy {:.3}, verdict p95 {:.0} ms{rationale}, CPU {:.1}/{:.1}/{:.1} %, {:.3} CPU-s/event, idle {:.2} %, \
         RSS {:.0} MiB, foreground impact {:.1} %: {kept}/{} promises kept",
        done.row.name,
        m.scores.accuracy,
        m.verdict_ms.p95,
        m.cpu.mean,
        m.cpu.p99,
        m.cpu.peak,
        m.cpu_s_per_event,
        m.idle_cpu,
        mib(m.peak_rss),
        m.foreground.impact,
        c.len()
    )
}

/// Seed 001's comparison table: one line per row, each judged figure with ✅ or ❌.
pub fn table(done: &[Done], p: &Promises) -> String {
    let mut s = String::from(
        "| configuration | accuracy | recall | FPR | verdict p50 / p95 / p99 ms | p99/p50 | rationale p95 ms | \
         CPU mean / p99 / peak % | CPU-s per event | peak RSS (model) MiB | idle CPU % | foreground impact | \
         ready / warm-up s | promises kept |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for d in done {
        let m = d.measured;
        let c = checks(m, p);
        let tail = c.iter().find(|c| c.criterion == "verdict p99/p50").map_or(0.0, |c| c.figure);
        let rationale =
            m.rationale_ms.map_or("—".to_string(), |r| format!("{:.0}{}", r.p95, mark(&c, "rationale p95 ms")));
        s.push_str(&format!(
            "| {} | {:.3}{} | {:.2} | {:.2} | {:.0} / {:.0}{} / {:.0} | {:.2}{} | {rationale} | {:.1}{} / {:.1}{} / {:.1}{} | \
             {:.3} | {:.0}{} ({:.0}) | {:.2}{} | {:.1} %{} | {:.1} / {:.1} | {}/{} |\n",
            d.row.name,
            m.scores.accuracy,
            mark(&c, "accuracy"),
            m.scores.detection_rate,
            m.scores.false_positive_rate,
            m.verdict_ms.p50,
            m.verdict_ms.p95,
            mark(&c, "verdict p95 ms"),
            m.verdict_ms.p99,
            tail,
            mark(&c, "verdict p99/p50"),
            m.cpu.mean,
            mark(&c, "CPU mean %"),
            m.cpu.p99,
            mark(&c, "CPU p99 %"),
            m.cpu.peak,
            mark(&c, "CPU peak %"),
            m.cpu_s_per_event,
            mib(m.peak_rss),
            mark(&c, "peak RSS MiB"),
            mib(d.model_bytes),
            m.idle_cpu,
            mark(&c, "idle CPU %"),
            m.foreground.impact,
            mark(&c, "foreground impact %"),
            m.ready_s,
            m.warmup_s,
            c.iter().filter(|c| c.pass).count(),
            c.len(),
        ));
    }
    s
}

/// sotto / baseline for p95 latency, CPU-seconds per event and peak CPU: each sotto row
/// against each baseline row of the same model. Below 1: sotto needs less.
pub fn ratios(done: &[Done]) -> String {
    let mut s = String::from(
        "| sotto row | baseline row | p95 latency | CPU-s per event | peak CPU |\n|---|---|---|---|---|\n",
    );
    let ratio = |a: f64, b: f64| match a / b {
        r if b <= 0.0 || !r.is_finite() => "—".to_string(),
        r if r >= 0.01 || r == 0.0 => format!("{r:.3}"),
        // sotto's verdicts take a millisecond where the baseline takes seconds.
        r => format!("{r:.1e} (1/{:.0})", 1.0 / r),
    };
    let mut any = false;
    for a in done.iter().filter(|d| d.row.kind == Kind::Sotto) {
        for b in done.iter().filter(|d| d.row.kind == Kind::Baseline && d.row.model == a.row.model) {
            let (x, y) = (a.measured, b.measured);
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                a.row.name,
                b.row.name,
                ratio(x.verdict_ms.p95, y.verdict_ms.p95),
                ratio(x.cpu_s_per_event, y.cpu_s_per_event),
                ratio(x.cpu.peak, y.cpu.peak)
            ));
            any = true;
        }
    }
    if any { s } else { String::new() }
}

/// `requests.csv` (every request of every row) and `windows.csv` (every 100 ms CPU window).
pub fn write_csv(dir: &Path, done: &[Done]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(dir.join("requests.csv"))?;
    w.write_record(["row", "model", "phase", "event", "expected", "predicted", "status", "at_s", "ms", "error"])?;
    for d in done {
        for r in &d.measured.requests {
            w.write_record([
                d.row.name.as_str(),
                d.row.model.as_str(),
                r.phase,
                r.event.as_str(),
                r.expected.as_str(),
                r.predicted.map_or("", |l| l.as_str()),
                &r.status.to_string(),
                &format!("{:.3}", r.at_s),
                &format!("{:.3}", r.ms),
                r.error.as_deref().unwrap_or(""),
            ])?;
        }
    }
    w.flush()?;
    let mut w = csv::Writer::from_path(dir.join("windows.csv"))?;
    w.write_record(["row", "t_s", "process_percent", "system_percent"])?;
    for d in done {
        for (t, p, s) in &d.measured.windows {
            w.write_record([d.row.name.as_str(), &format!("{t:.1}"), &format!("{p:.3}"), &format!("{s:.3}")])?;
        }
    }
    w.flush()?;
    Ok(())
}
