//! `sotto bench plan --out DIR`: the predictor of `sotto plan` against measured latency,
//! beyond the two tiny models it is calibrated on. At 1 and 2 threads, ungoverned and at the
//! default budget, it calibrates on the shipped models (in this run) and then runs every
//! model of the validation set through the engine (`sotto generate --json`, the calibration
//! text), comparing the predicted prefill + decode time with the measured one:
//! - the shipped models themselves, and the calibration's own variants (in-sample);
//! - their Q8_0 and Q4_0 re-quantizations, through llama.cpp's quantizer;
//! - synthetic llama-architecture GGUFs of about 0.5B, 1B and 3B parameters with random
//!   weights (`scripts/synth-gguf`): speed does not depend on the weights' values.
//!
//! Each row is the fastest of its runs, as each calibration figure is: noise on a shared
//! machine only ever slows a run down, and a single run of a short row can be a third slower
//! than the next one. A row runs until its two fastest runs agree (`calibrate::AGREE`), at
//! most [`MAX_RUNS`] times, and not again once its runs add up to [`RUNS_WITHIN_S`] (the 3B
//! rows at the budget take minutes a run).
//!
//! The machine's speed also drifts between the calibration and a row minutes later (on this
//! 2-vCPU machine the same 2-thread row measured 30% apart across runs, and the calibration's
//! own model 60%). So the reference model (the first shipped one, a calibration model) runs
//! side by side with every row, before each of its runs and after the last, at the row's
//! threads and budget; its speed then against its speed in the calibration is the drift, and
//! a second error column gives the prediction scaled by it (prefill and decode each). Rows
//! are judged on the plain error, as the issue defines it. Measured here (2026-12-03), the
//! short reference's own run-to-run noise made the scaled error worse for about as many rows
//! as it made better; it rescued a whole block whose calibration fell in a slow minute (every
//! row drifted the same way, 0.5 to 0.75), so it stays a diagnostic: a plain miss beside a
//! drift far from 1 was the machine, one beside a drift near 1 was the predictor. With the
//! calibration in passes until its runs agree (the next run, 2026-12-03), the plain error
//! held 18 of 20 held-out rows within 25% (largest 27.3%, against 84.9% before), and the
//! scaled one 16 (one reference drifted 2.5 in prefill beside a row: a noisy reference can
//! spoil a good row), which keeps it a diagnostic.
//!
//! Each block is calibrated twice, before its rows and again after them, and predicts from
//! each figure's faster measurement (`Calibration::fastest_with`): on this EPYC (2026-12-04)
//! a block's calibration fell in a slow stretch and the reference then ran its rows at 0.7 to
//! 0.8 of its calibrated time, which put six rows 23-35% over while their drift-scaled
//! errors stayed within 9%. Two runs after it held 18 and 19 of 20 held-out rows within 25%;
//! every held-out miss was at 2 threads and 35/50 beside a reference 1.26-1.39 times slower
//! than calibrated (`bench/runs/2026-12-04-epyc-2cpu-plan-mix*`). With small Q4_0 chunks
//! costed as measured, 46 of 48 rows held, every in-sample one among them; the two misses were
//! Q4_0 models at 2 threads and 35/50 predicted 30-33% slow beside a drift near 1
//! (`bench/runs/2026-12-04-epyc-2cpu-plan-chunks-2`). With the budget's ratio of Q4_0 layers
//! measured on the calibration's Q4_0 models at the budget, every held-out row held (largest
//! 14.9%), and 47 of 48 in all: the deep Q4_K_M calibration model at 2 threads and 35/50 was
//! measured 25.2% slower than predicted, prefill and decode alike, where the run before had it
//! at −2.1% (`bench/runs/2026-12-04-epyc-2cpu-plan-repacked`). With every calibration model
//! at the budget, and the other ratio fitted on all the non-Q4_0 ones, all 48 rows held
//! (held-out largest 22.4%, in-sample 17.8%; `bench/runs/2026-12-04-epyc-2cpu-plan-all`).
//!
//! The generated files live in a work folder outside the repository (kept between runs,
//! several GB); the error table and every figure go to `--out`.
//!
//! Must not: judge a row on a calibration it was part of without saying so, hide a row that
//! failed (it is listed with its error), or judge a row on the drift-scaled error.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde::{Deserialize, Serialize};
use sotto_models::GgufHeader;
use sotto_models::predict::Shape;

use super::calibrate::{self, Key};
use crate::cli::BenchPlanArgs;

/// Where a validation model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Origin {
    /// A shipped model: the calibration fits it (in-sample).
    Calibration,
    Requantized,
    Synthetic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Model {
    name: String,
    origin: Origin,
    path: PathBuf,
    params: u64,
    file_bytes: u64,
    /// Read once from the header; every thread count and budget predicts from it.
    shape: Shape,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    model: String,
    origin: Origin,
    params: u64,
    threads: u32,
    budget: String,
    predicted_ms: f64,
    measured_ms: f64,
    /// (predicted − measured) / measured.
    error: f64,
    prefill_error: f64,
    decode_error: f64,
    measured: calibrate::Run,
    /// Runs of the row the measurement is the fastest of.
    #[serde(default)]
    runs: usize,
    /// The reference model beside this row (the fastest of its runs).
    reference: calibrate::Run,
    /// The reference's (prefill, decode) seconds a token beside the row over those of the
    /// calibration: above 1, the machine ran slower than when it was calibrated.
    drift: (f64, f64),
    /// The error of the prediction scaled by `drift`.
    drift_error: f64,
}

/// The largest error a row may have.
const TOLERANCE: f64 = 0.25;
/// Most runs of one row, and the measured time after which a row is not run again.
const MAX_RUNS: usize = 4;
const RUNS_WITHIN_S: f64 = 60.0;

pub fn run(models_dir: &Path, args: BenchPlanArgs) -> anyhow::Result<ExitCode> {
    if args.retable {
        return retable(&args.out);
    }
    if args.refit {
        return refit(&args.out);
    }
    let work = args.work.clone().unwrap_or_else(|| crate::config::cache_dir().join("plan-validation"));
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&args.out)?;
    let shipped = super::shipped_models(models_dir);
    anyhow::ensure!(shipped.len() == 2, "both shipped models are needed; run `sotto models fetch`");
    let variants = calibrate::variants(&shipped, &work)?;
    let models = prepare(&shipped, &variants, &work, &args.sizes)?;
    let text = calibrate::text();
    let cpus = sotto_governor::available_cpus();
    let meta = Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cpu: super::super::bench::cpu_model(),
        cpus,
        date: super::super::bench::date(),
    };
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut calibrations = Vec::new();
    for &threads in &args.threads {
        for (mean, peak, sched) in [(1.0, 1.0, "normal"), (0.35, 0.5, "idle")] {
            let budget = budget_label(mean, peak);
            let key = Key {
                cpu: super::super::bench::cpu_model(),
                cpus,
                threads,
                threads_batch: threads,
                cpu_mean: mean,
                cpu_peak: peak,
                sched: sched.to_owned(),
                chunk: 128,
                version: calibrate::version(),
                models: Vec::new(),
            };
            eprintln!("threads {threads}, budget {budget}: calibrating");
            let first = calibrate::measure(&key, &shipped, &variants)?;
            let reference = &shipped[0];
            let mut measured = Vec::new();
            for m in &models {
                let row_text = calibrate::text_for(&m.path, &text);
                match beside(&key, (&m.path, &row_text), (reference, &text), Some((mean, peak))) {
                    Ok((r, reference_run, runs)) => {
                        eprintln!("  {}: measured {:.0} ms ({runs} runs)", m.name, r.seconds() * 1e3);
                        measured.push((m, r, reference_run, runs));
                    }
                    Err(e) => {
                        eprintln!("  {}: failed: {e:#}", m.name);
                        failed.push((m.name.clone(), threads, budget.clone(), format!("{e:#}")));
                    }
                }
            }
            // The machine's speed drifts over minutes: calibrated again after the rows, each
            // figure the faster of the two, so that a calibration that fell in a slow stretch
            // does not set the whole block.
            eprintln!("threads {threads}, budget {budget}: calibrating again");
            let calibration = first.fastest_with(&calibrate::measure(&key, &shipped, &variants)?)?;
            let calibrated = reference_speed(&calibration, reference)?;
            for (m, r, reference_run, runs) in measured {
                let measured = Measured { threads, budget: budget.clone(), run: r, reference: reference_run, runs };
                let row = predict(&calibration, calibrated, m, measured);
                eprintln!(
                    "  {}: predicted {:.0} ms, measured {:.0} ms ({:+.1}%; reference at {:.2}/{:.2} of its calibrated time, {:+.1}% scaled by it)",
                    m.name,
                    row.predicted_ms,
                    row.measured_ms,
                    row.error * 100.0,
                    row.drift.0,
                    row.drift.1,
                    row.drift_error * 100.0
                );
                rows.push(row);
            }
            calibrations.push(calibration);
            // After every block, so that a run cut short keeps what it measured.
            write(&args.out, &meta, &models, &rows, &failed, &calibrations)?;
        }
    }
    println!("{}", table(&models, &rows, &failed));
    eprintln!("written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The budget's label in a row: "mean/peak" in percent.
fn budget_label(mean: f64, peak: f64) -> String {
    format!("{:.0}/{:.0}", mean * 100.0, peak * 100.0)
}

/// What a row measured at its threads and budget: its fastest run of `runs`, and the
/// reference's beside it.
struct Measured {
    threads: u32,
    budget: String,
    run: calibrate::Run,
    reference: calibrate::Run,
    runs: usize,
}

/// The row of `m`, as `measured`, predicted from `calibration`, in which the reference ran at
/// `calibrated` (prefill, decode) tokens/s.
fn predict(calibration: &calibrate::Calibration, calibrated: (f64, f64), m: &Model, measured: Measured) -> Row {
    let Measured { threads, budget, run: r, reference: reference_run, runs } = measured;
    let t = calibration.fit.governed(&m.shape);
    let prefill_ms = r.prompt_tokens / r.prefill_tok_s * 1e3;
    let decode_ms = r.generated_tokens / r.decode_tok_s * 1e3;
    let predicted_prefill = calibration.fit.prompt_s(&m.shape, r.prompt_tokens, false, false) * 1e3;
    let predicted_decode = r.generated_tokens * t.decode_s * 1e3;
    let measured_ms = prefill_ms + decode_ms;
    let predicted_ms = predicted_prefill + predicted_decode;
    let drift = (calibrated.0 / reference_run.prefill_tok_s, calibrated.1 / reference_run.decode_tok_s);
    let drifted = predicted_prefill * drift.0 + predicted_decode * drift.1;
    Row {
        model: m.name.clone(),
        origin: m.origin,
        params: m.params,
        threads,
        budget,
        predicted_ms,
        measured_ms,
        error: predicted_ms / measured_ms - 1.0,
        prefill_error: predicted_prefill / prefill_ms - 1.0,
        decode_error: predicted_decode / decode_ms - 1.0,
        measured: r,
        runs,
        reference: reference_run,
        drift,
        drift_error: drifted / measured_ms - 1.0,
    }
}

/// What a run was: its command, machine and day, taken once at its start.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    command: String,
    cpu: String,
    cpus: f64,
    date: String,
}

impl Meta {
    fn block(&self) -> String {
        let Meta { command, cpu, cpus, date } = self;
        format!("# sotto bench plan\n\n```\ncommand: {command}\ncpu: {cpu} ({cpus:.2} CPUs)\ndate: {date}\n```\n")
    }
}

/// The table and every figure measured so far, to `out`.
fn write(
    out: &Path,
    meta: &Meta,
    models: &[Model],
    rows: &[Row],
    failed: &[(String, u32, String, String)],
    calibrations: &[calibrate::Calibration],
) -> anyhow::Result<()> {
    let md = table(models, rows, failed);
    std::fs::write(out.join("table.md"), format!("{}\n{md}", meta.block()))?;
    let data = serde_json::json!({
        "command": meta.command,
        "cpu": meta.cpu,
        "cpus": meta.cpus,
        "date": meta.date,
        "models": models,
        "calibrations": calibrations,
        "rows": rows,
        "failed": failed,
    });
    std::fs::write(out.join("run.json"), serde_json::to_string_pretty(&data)?)?;
    Ok(())
}

/// The reference model's (prefill, decode) tokens/s in `calibration`, at its budget.
fn reference_speed(calibration: &calibrate::Calibration, reference: &Path) -> anyhow::Result<(f64, f64)> {
    let name = reference.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let point = calibration
        .points
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow::anyhow!("the calibration has no point of the reference model {name}"))?;
    Ok(point.governed.unwrap_or((point.prefill_tok_s, point.decode_tok_s)))
}

/// The row model and the reference model run alternately, the reference before each of the
/// row's runs and after the last: the row's runs as [`calibrate::fastest_of`] takes them.
/// Each is the fastest of its runs, prefill and decode each; and the row's count of runs. A
/// row of the reference itself is its own reference.
fn beside(
    key: &Key,
    row: (&Path, &str),
    reference: (&Path, &str),
    budget: Option<(f64, f64)>,
) -> anyhow::Result<(calibrate::Run, calibrate::Run, usize)> {
    if row.0 == reference.0 {
        let r = calibrate::fastest_of(MAX_RUNS, RUNS_WITHIN_S, || calibrate::run(key, row.0, row.1, budget, None))?;
        return Ok((r.run(), r.run(), r.runs()));
    }
    let mut reference_best = calibrate::Fastest::new(calibrate::run(key, reference.0, reference.1, budget, None)?);
    let row_best = calibrate::fastest_of(MAX_RUNS, RUNS_WITHIN_S, || {
        let r = calibrate::run(key, row.0, row.1, budget, None)?;
        reference_best.add(&calibrate::run(key, reference.0, reference.1, budget, None)?);
        Ok(r)
    })?;
    Ok((row_best.run(), reference_best.run(), row_best.runs()))
}

/// A run.json read back.
struct Written {
    meta: Meta,
    models: Vec<Model>,
    rows: Vec<Row>,
    failed: Vec<(String, u32, String, String)>,
    /// The calibrations as written: read only to predict the rows again (an older build's
    /// calibration may not read back).
    calibrations: serde_json::Value,
}

impl Written {
    fn read(dir: &Path) -> anyhow::Result<Written> {
        let path = dir.join("run.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut data: serde_json::Value = serde_json::from_str(&text)?;
        let mut field = |k: &str| data[k].take();
        Ok(Written {
            models: serde_json::from_value(field("models"))?,
            rows: serde_json::from_value(field("rows"))?,
            failed: serde_json::from_value(field("failed"))?,
            calibrations: field("calibrations"),
            meta: serde_json::from_value(data)?,
        })
    }

    /// Every row predicted again by this build from the calibration figures of its block.
    fn refit(mut self) -> anyhow::Result<Written> {
        let calibrations: Vec<calibrate::Calibration> = serde_json::from_value(self.calibrations.take())
            .map_err(|e| anyhow::anyhow!("this build cannot read the run's calibrations: {e}"))?;
        let reference = self.models.first().ok_or_else(|| anyhow::anyhow!("the run lists no model"))?;
        let calibrations = calibrations
            .into_iter()
            .map(|c| {
                let c = c.refit()?;
                let calibrated = reference_speed(&c, &reference.path)?;
                Ok((c, calibrated))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for row in &mut self.rows {
            let (c, calibrated) = calibrations
                .iter()
                .find(|(c, _)| {
                    c.key.threads == row.threads && budget_label(c.key.cpu_mean, c.key.cpu_peak) == row.budget
                })
                .ok_or_else(|| anyhow::anyhow!("no calibration at {} thread(s), {}", row.threads, row.budget))?;
            let m = self
                .models
                .iter()
                .find(|m| m.name == row.model)
                .ok_or_else(|| anyhow::anyhow!("the run lists no model {}", row.model))?;
            let measured = Measured {
                threads: row.threads,
                budget: row.budget.clone(),
                run: row.measured,
                reference: row.reference,
                runs: row.runs,
            };
            *row = predict(c, *calibrated, m, measured);
        }
        Ok(self)
    }

    fn table(&self) -> String {
        table(&self.models, &self.rows, &self.failed)
    }
}

/// `--retable`: `dir`'s table.md written again from its run.json, as measured.
fn retable(dir: &Path) -> anyhow::Result<ExitCode> {
    let run = Written::read(dir)?;
    let md = run.table();
    std::fs::write(dir.join("table.md"), format!("{}\n{md}", run.meta.block()))?;
    println!("{md}");
    Ok(ExitCode::SUCCESS)
}

/// `--refit`: `dir`'s rows predicted again by this build ([`Written::refit`]), the table
/// printed and table.md left as the run predicted it: what a change of the predictor does to
/// figures already measured, a diagnostic beside a new run, not instead of one (a change
/// tuned on a run's rows makes them in-sample).
fn refit(dir: &Path) -> anyhow::Result<ExitCode> {
    let run = Written::read(dir)?.refit()?;
    println!("{}\n{}", run.meta.block(), run.table());
    Ok(ExitCode::SUCCESS)
}

/// The validation set: the shipped models and the calibration's variants (in-sample), the
/// other re-quantizations, and the synthetic models, each made in `work` unless it is there.
fn prepare(shipped: &[PathBuf], variants: &[PathBuf], work: &Path, sizes: &[String]) -> anyhow::Result<Vec<Model>> {
    let mut models = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut add = |name: String, origin: Origin, path: PathBuf| -> anyhow::Result<()> {
        let header = GgufHeader::read(&path)?;
        let (params, file_bytes, shape) = (header.parameter_count(), header.file_size, Shape::from_header(&header));
        models.push(Model { name, origin, params, file_bytes, shape, path });
        Ok(())
    };
    for path in shipped {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        add(stem.clone(), Origin::Calibration, path.clone())?;
        for to in [sotto_engine::QuantType::Q8_0, sotto_engine::QuantType::Q4_0] {
            let out = calibrate::requantized(path, to, work)?;
            let origin = if variants.contains(&out) { Origin::Calibration } else { Origin::Requantized };
            seen.push(out.clone());
            add(format!("{stem} → {}", to.name()), origin, out)?;
        }
    }
    for path in variants.iter().filter(|v| !seen.contains(v)) {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        add(name, Origin::Calibration, path.clone())?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/synth-gguf");
    let tokenizer = &shipped.iter().find(|p| p.to_string_lossy().contains("SmolLM2")).unwrap_or(&shipped[0]);
    for size in sizes {
        let out = work.join(format!("synth-llama-{size}-q4_0.gguf"));
        if !out.exists() {
            anyhow::ensure!(script.exists(), "{} is needed to make the synthetic models", script.display());
            eprintln!("writing the synthetic {size} model");
            let partial = out.with_extension("partial");
            let status = Command::new("bash")
                .arg(&script)
                .args(["--size", size, "--quant", "q4_0", "--tokenizer-from"])
                .arg(tokenizer)
                .arg("--out")
                .arg(&partial)
                .status()?;
            anyhow::ensure!(status.success(), "scripts/synth-gguf --size {size} failed ({status})");
            std::fs::rename(&partial, &out)?;
        }
        add(format!("synthetic llama {size} Q4_0"), Origin::Synthetic, out)?;
    }
    Ok(models)
}

/// The error table: each row ✅ within ±25%, and a summary of the largest error per origin.
fn table(models: &[Model], rows: &[Row], failed: &[(String, u32, String, String)]) -> String {
    let mut s = String::from("Models:\n\n| model | origin | parameters | file MiB |\n|---|---|---|---|\n");
    for m in models {
        s.push_str(&format!(
            "| {} | {:?} | {:.0} M | {:.0} |\n",
            m.name,
            m.origin,
            m.params as f64 / 1e6,
            m.file_bytes as f64 / (1u64 << 20) as f64
        ));
    }
    let agree = calibrate::AGREE * 100.0;
    s.push_str(&format!(
        "\nPredicted against measured time of one request (the calibration text's prefill, then its \
         generated tokens; measured: the fastest of its runs, prefill and decode each, run until the two \
         fastest agree within {agree:.0}%, at most {MAX_RUNS} times and not again past {RUNS_WITHIN_S:.0} s; \
         the count of runs after the time), at each \
         thread count and budget. *Drift*: the reference model's seconds a token (prefill / decode), \
         run beside the row, over those of the calibration (above 1: the machine ran slower than when \
         calibrated); *scaled error*: the prediction scaled by the drift against the measured time, a \
         diagnostic. Rows are judged on the plain error:\n\n\
         | model | origin | threads | budget | prompt / generated tokens | predicted ms | measured ms | error | prefill error | decode error | drift | scaled error |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    ));
    for r in rows {
        let mark = if r.error.abs() <= TOLERANCE { "✅" } else { "❌" };
        // Runs before they were recorded: none shown.
        let runs = if r.runs > 0 { format!(" ({}×)", r.runs) } else { String::new() };
        s.push_str(&format!(
            "| {} | {:?} | {} | {} | {:.0} / {:.0} | {:.0} | {:.0}{runs} | {:+.1}% {mark} | {:+.1}% | {:+.1}% | {:.2} / {:.2} | {:+.1}% |\n",
            r.model,
            r.origin,
            r.threads,
            r.budget,
            r.measured.prompt_tokens,
            r.measured.generated_tokens,
            r.predicted_ms,
            r.measured_ms,
            r.error * 100.0,
            r.prefill_error * 100.0,
            r.decode_error * 100.0,
            r.drift.0,
            r.drift.1,
            r.drift_error * 100.0
        ));
    }
    for (model, threads, budget, why) in failed {
        s.push_str(&format!("\n- {model} at {threads} thread(s), {budget}: failed: {why}\n"));
    }
    let held_out: Vec<&Row> = rows.iter().filter(|r| r.origin != Origin::Calibration).collect();
    let count = |error: fn(&Row) -> f64| {
        let within = held_out.iter().filter(|r| error(r).abs() <= TOLERANCE).count();
        (within, held_out.iter().map(|r| error(r).abs()).fold(0.0, f64::max))
    };
    let (plain, plain_worst) = count(|r| r.error);
    let (scaled, scaled_worst) = count(|r| r.drift_error);
    s.push_str(&format!(
        "\nHeld-out rows (re-quantized and synthetic) within ±{:.0}%: {plain} of {} (the largest error {:.1}%); \
         scaled by the drift, {scaled} of them (the largest {:.1}%).\n",
        TOLERANCE * 100.0,
        held_out.len(),
        plain_worst * 100.0,
        scaled_worst * 100.0
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_run_is_retabled_to_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        let meta =
            Meta { command: "sotto bench plan --out x".into(), cpu: "AMD EPYC".into(), cpus: 2.0, date: "d".into() };
        let rows = [row("m", Origin::Synthetic, -0.1, 0.05)];
        write(dir.path(), &meta, &[], &rows, &[], &[]).unwrap();
        let written = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
        assert!(written.starts_with(&meta.block()) && written.contains("AMD EPYC (2.00 CPUs)"), "{written}");
        std::fs::remove_file(dir.path().join("table.md")).unwrap();
        retable(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("table.md")).unwrap(), written);
    }

    #[test]
    fn a_written_run_is_predicted_again_from_its_calibrations_figures() {
        use sotto_models::predict::{Fit, Kernel, Point};
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta { command: "c".into(), cpu: "AMD EPYC".into(), cpus: 2.0, date: "d".into() };
        let shape = Shape {
            decode_bytes: 100e6,
            output_bytes: 0.0,
            layer_params: 100e6,
            output_params: 0.0,
            rows: 1e5,
            layers: 20.0,
            kernel: Kernel::Q4_1,
            decode_mix: [0.0; 4],
            output_kernel: None,
        };
        let point = Point {
            shape,
            prefill_tok_s: 200.0,
            decode_tok_s: 40.0,
            governed: Some((80.0, 30.0)),
            prompt_tokens: 300.0,
        };
        let key = Key {
            cpu: "test".into(),
            cpus: 2.0,
            threads: 2,
            threads_batch: 2,
            cpu_mean: 0.35,
            cpu_peak: 0.5,
            sched: "idle".into(),
            chunk: 128,
            version: calibrate::version(),
            models: Vec::new(),
        };
        let fit = Fit::from_points(&[point], calibrate::chunking(&key)).unwrap();
        let calibration = calibrate::Calibration {
            key,
            date: "d".into(),
            points: vec![("m.gguf".into(), point)],
            fit,
            chunks: Vec::new(),
            runs: 2,
        };
        let model = Model {
            name: "m".into(),
            origin: Origin::Calibration,
            path: PathBuf::from("/models/m.gguf"),
            params: 1,
            file_bytes: 1,
            shape,
        };
        let run =
            calibrate::Run { prompt_tokens: 300.0, generated_tokens: 24.0, prefill_tok_s: 70.0, decode_tok_s: 28.0 };
        let measured = Measured { threads: 2, budget: "35/50".into(), run, reference: run, runs: 2 };
        let row = predict(&calibration.clone().refit().unwrap(), (80.0, 30.0), &model, measured);
        // The run's row as an older predictor had it.
        let old = Row { predicted_ms: row.predicted_ms * 2.0, error: 9.0, ..row.clone() };
        let models = [model];
        write(dir.path(), &meta, &models, std::slice::from_ref(&old), &[], std::slice::from_ref(&calibration)).unwrap();
        let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
        let again = Written::read(dir.path()).unwrap().refit().unwrap();
        assert_eq!(again.rows.len(), 1);
        assert_eq!((again.rows[0].predicted_ms, again.rows[0].error), (row.predicted_ms, row.error));
        assert_eq!(std::fs::read_to_string(dir.path().join("table.md")).unwrap(), table, "table.md stays");
        // A row whose block has no calibration is refused, not predicted from another block's.
        write(dir.path(), &meta, &models, &[Row { threads: 1, ..old }], &[], &[calibration]).unwrap();
        assert!(Written::read(dir.path()).unwrap().refit().is_err());
    }

    fn row(model: &str, origin: Origin, error: f64, drift_error: f64) -> Row {
        let run =
            calibrate::Run { prompt_tokens: 300.0, generated_tokens: 24.0, prefill_tok_s: 100.0, decode_tok_s: 10.0 };
        Row {
            model: model.into(),
            origin,
            params: 1,
            threads: 2,
            budget: "35/50".into(),
            predicted_ms: 5400.0 * (1.0 + error),
            measured_ms: 5400.0,
            error,
            prefill_error: error,
            decode_error: error,
            measured: run,
            runs: 2,
            reference: run,
            drift: (1.3, 1.3),
            drift_error,
        }
    }

    /// A row is judged on its plain error; the drift-scaled one is shown and counted beside it,
    /// never in its place.
    #[test]
    fn rows_are_judged_on_the_plain_error_and_the_drift_scaled_one_is_shown_beside_it() {
        let rows = [
            row("in-sample", Origin::Calibration, 0.9, 0.9),
            row("drifted", Origin::Synthetic, -0.3, 0.05),
            row("wrong", Origin::Requantized, 0.1, 0.4),
        ];
        let t = table(&[], &rows, &[]);
        assert!(t.contains("| 5400 (2×) | -30.0% ❌ | -30.0% | -30.0% | 1.30 / 1.30 | +5.0% |"), "{t}");
        assert!(t.contains("| +10.0% ✅ | +10.0% | +10.0% | 1.30 / 1.30 | +40.0% |"), "{t}");
        assert!(
            t.contains(
                "within ±25%: 1 of 2 (the largest error 30.0%); scaled by the drift, 1 of them (the largest 40.0%)"
            ),
            "in-sample rows are left out of the count: {t}"
        );
    }
}
