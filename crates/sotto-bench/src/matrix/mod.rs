//! `sotto bench run --matrix FILE.toml`: seed 001's comparison table on this machine, with
//! the seeds' own setup measured in the same run. Each row of the matrix (`spec.rs`) is a
//! real server started on a free loopback port (`target.rs`), sent the evaluation events one
//! at a time and measured as MEASURING.md defines (`measure.rs`); every figure is judged
//! against its promise (`report.rs`) and drawn (`chart.rs`).
//!
//! Writes into the output directory: `table.md`, `run.json` (every figure, request and
//! window), `requests.csv`, `windows.csv`, `matrix.toml` (the matrix as run), the charts, and
//! each server's log under `logs/`.
//!
//! Must not: stop the run because one row failed (the row is reported with its error and the
//! next one runs), or assert anything about time: it reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use sotto_events::LabelledEvent;

pub mod chart;
pub mod measure;
pub mod report;
pub mod spec;
pub mod speed;
pub mod target;

use measure::{Measured, Plan};
use report::Done;
pub use spec::Matrix;
use spec::Row;
pub use target::Setup;
use target::Target;

/// What to run.
pub struct Options {
    pub matrix: Matrix,
    /// The matrix file's text, copied into the output.
    pub matrix_text: String,
    /// The evaluation events (the suite's held-out test split, or a given file).
    pub events: Vec<LabelledEvent>,
    pub setup: Setup,
    /// Each model the matrix names → its GGUF.
    pub models: BTreeMap<String, PathBuf>,
    pub out: PathBuf,
    /// What reproduces the run (command, CPU, model hashes, llama.cpp revision, baseline
    /// build), written at the top of `table.md` and into `run.json`.
    pub meta: Value,
}

/// A file name for a row: lower case, every run of characters other than `a-z0-9` one `-`,
/// none at either end; `row` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let trimmed = s.trim_end_matches('-');
    if trimmed.is_empty() { "row".to_owned() } else { trimmed.to_owned() }
}

/// `n` events spread evenly over `events` (every family has its chance); 0: all.
pub fn spread(events: &[LabelledEvent], n: usize) -> Vec<LabelledEvent> {
    if n == 0 || n >= events.len() {
        return events.to_vec();
    }
    (0..n).map(|i| events[i * events.len() / n].clone()).collect()
}

/// Runs every row; writes the outputs; returns what `run.json` holds.
pub fn run(o: &Options) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(o.out.join("matrix.toml"), &o.matrix_text)?;
    let rows = o.matrix.rows();
    let events = spread(&o.events, o.matrix.run.events);
    let per_row = (events.len() + o.matrix.run.rationales) as u64;
    let bar = ProgressBar::with_draw_target(Some(per_row * rows.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} requests, {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let tick = || bar.inc(1);
    let plan = Plan {
        events: &events,
        rationales: o.matrix.run.rationales,
        idle: std::time::Duration::from_secs_f64(o.matrix.run.idle_s),
        foreground: std::time::Duration::from_secs_f64(o.matrix.run.foreground_s),
        cpus: sotto_governor::available_cpus(),
        tick: &tick,
    };
    let mut measured: Vec<(Row, Measured, u64)> = Vec::new();
    let mut failed: Vec<(Row, String)> = Vec::new();
    for row in rows {
        bar.set_message(row.name.clone());
        let position = bar.position();
        match run_row(&row, o, &plan) {
            Ok((m, bytes)) => {
                let done = Done { row: &row, measured: &m, model_bytes: bytes };
                say(&bar, report::summary(&done, &o.matrix.promises));
                measured.push((row, m, bytes));
            }
            Err(e) => {
                say(&bar, format!("{}: failed: {e:#}", row.name));
                failed.push((row, format!("{e:#}")));
            }
        }
        bar.set_position(position + per_row);
    }
    let speeds = match &o.matrix.speed {
        Some(spec) => {
            let models: Vec<(String, &std::path::Path)> = o
                .matrix
                .speed_models()
                .into_iter()
                .filter_map(|id| o.models.get(&id).map(|path| (id, path.as_path())))
                .collect();
            let runners = if o.setup.baseline_python.is_some() { 3 } else { 2 };
            bar.inc_length((models.len() * spec.threads.len() * runners * spec.repeats.max(1)) as u64);
            bar.set_message("prefill and decode speed");
            speed::measure(&models, &o.setup, spec, &tick)
        }
        None => Vec::new(),
    };
    bar.finish_and_clear();
    let done: Vec<Done> =
        measured.iter().map(|(row, m, bytes)| Done { row, measured: m, model_bytes: *bytes }).collect();
    write(o, events.len(), started.elapsed().as_secs_f64(), &done, &failed, &speeds)
}

/// A line for the log above the progress bar; on stderr as it is when the bar is hidden (stderr
/// not a terminal: indicatif then prints nothing).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) }
}

fn run_row(row: &Row, o: &Options, plan: &Plan) -> anyhow::Result<(Measured, u64)> {
    let model = o.models.get(&row.model).ok_or_else(|| anyhow::anyhow!("model `{}` was not resolved", row.model))?;
    let bytes = std::fs::metadata(model)?.len();
    let target = Target::start(row, model, &o.setup, &slug(&row.name))?;
    Ok((measure::measure(row, target, &o.setup, plan)?, bytes))
}

fn write(
    o: &Options,
    events: usize,
    wall_s: f64,
    done: &[Done],
    failed: &[(Row, String)],
    speeds: &[speed::Speed],
) -> anyhow::Result<Value> {
    let p = &o.matrix.promises;
    let mut md = format!("# sotto bench run\n\n```\n{}\n```\n\n", serde_json::to_string_pretty(&o.meta)?);
    md.push_str(&format!(
        "{} events per row, one at a time; {} rationales; {} s idle; {} s foreground (2 SHA-256 threads). \
         The run took {:.0} minutes.\n\n",
        events,
        o.matrix.run.rationales,
        o.matrix.run.idle_s,
        o.matrix.run.foreground_s,
        wall_s / 60.0
    ));
    md.push_str(&report::table(done, p));
    let ratios = report::ratios(done);
    if !ratios.is_empty() {
        md.push_str("\nsotto / baseline (below 1: sotto needs less):\n\n");
        md.push_str(&ratios);
    }
    for (row, why) in failed {
        md.push_str(&format!("\n- {} failed: {why}\n", row.name));
    }
    if !speeds.is_empty() {
        md.push_str(
            "\nPrefill and decode speed of one text, the runners taking turns; each ratio is the median of \
             sotto's runs over the llama.cpp run beside each (ungoverned: within 5% passes):\n\n",
        );
        md.push_str(&speed::table(speeds));
    }
    let cpu: Vec<Vec<(f64, f64)>> =
        done.iter().map(|d| d.measured.windows.iter().map(|&(t, p, _)| (t, p)).collect()).collect();
    let latency: Vec<Vec<f64>> = done
        .iter()
        .map(|d| d.measured.requests.iter().filter(|r| r.phase == "verdict").map(|r| r.ms).collect())
        .collect();
    let chart_rows: Vec<chart::Row> = done
        .iter()
        .zip(cpu.iter().zip(&latency))
        .map(|(d, (cpu, latency_ms))| chart::Row {
            name: &d.row.name,
            cpu,
            latency_ms,
            accuracy: d.measured.scores.accuracy,
            p95_ms: d.measured.verdict_ms.p95,
        })
        .collect();
    let promises =
        chart::Promises { cpu_mean: p.cpu_mean, cpu_peak: p.cpu_peak, p95_ms: p.p95_ms, accuracy: p.accuracy };
    match chart::draw(&o.out.join("charts"), &chart_rows, &promises) {
        Ok(files) => {
            md.push_str("\nCharts:\n\n");
            for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")) {
                let rel = f.strip_prefix(&o.out).unwrap_or(f);
                md.push_str(&format!("- [{}]({})\n", rel.display(), rel.display()));
            }
        }
        Err(e) => md.push_str(&format!("\nCharts could not be drawn: {e:#}\n")),
    }
    std::fs::write(o.out.join("table.md"), &md)?;
    report::write_csv(&o.out, done)?;
    let data = json!({
        "meta": o.meta,
        "run": {"events": events, "rationales": o.matrix.run.rationales,
            "idle_s": o.matrix.run.idle_s, "foreground_s": o.matrix.run.foreground_s, "wall_s": wall_s},
        "rows": done.iter().map(|d| json!({
            "name": d.row.name, "kind": format!("{:?}", d.row.kind).to_lowercase(), "model": d.row.model,
            "set": d.row.set, "threads": d.row.threads, "threads_batch": d.row.threads_batch,
            "model_bytes": d.model_bytes, "checks": report::checks(d.measured, p), "measured": d.measured,
        })).collect::<Vec<_>>(),
        "speed": speeds,
        "failed": failed.iter().map(|(r, why)| json!({"name": r.name, "error": why})).collect::<Vec<_>>(),
    });
    std::fs::write(o.out.join("run.json"), serde_json::to_string_pretty(&data)?)?;
    println!("{md}");
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("sotto default · gemma3-270m"), "sotto-default-gemma3-270m");
        assert_eq!(slug("baseline, 1/1 (exp 13)"), "baseline-1-1-exp-13");
        assert_eq!(slug("Gemma 3 / 35% idle"), "gemma-3-35-idle");
        assert_eq!(slug("--Qwen2.5__1B--"), "qwen2-5-1b");
        assert_eq!(slug("/// "), "row");
    }

    #[test]
    fn the_spread_takes_events_from_the_whole_split() {
        let line = |i: usize| {
            serde_json::from_value::<LabelledEvent>(json!({"id": format!("e{i}"), "label": "benign",
                "techniques": [], "os": "linux", "format": "ecs", "note": "", "event": {}}))
            .unwrap()
        };
        let events: Vec<LabelledEvent> = (0..10).map(line).collect();
        let ids = |v: Vec<LabelledEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(spread(&events, 3)), ["e0", "e3", "e6"]);
        assert_eq!(ids(spread(&events, 0)).len(), 10);
        assert_eq!(ids(spread(&events, 50)).len(), 10);
    }
}
