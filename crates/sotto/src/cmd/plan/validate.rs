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
//! Each row is the fastest of up to [`MAX_RUNS`] runs (while its runs add up to under
//! [`RUNS_WITHIN_S`]), as each calibration figure is the fastest of its runs: noise on a
//! shared machine only ever slows a run down, and a single run of a short row can be a third
//! slower than the next one. The generated files live in a work folder outside the
//! repository (kept between runs, several GB); the error table and every figure go to `--out`.
//!
//! Must not: judge a row on a calibration it was part of without saying so, or hide a row
//! that failed (it is listed with its error).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde::Serialize;
use sotto_models::GgufHeader;
use sotto_models::predict::Shape;

use super::calibrate::{self, Key};
use crate::cli::BenchPlanArgs;

/// Where a validation model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Origin {
    /// A shipped model: the calibration fits it (in-sample).
    Calibration,
    Requantized,
    Synthetic,
}

#[derive(Debug, Clone, Serialize)]
struct Model {
    name: String,
    origin: Origin,
    path: PathBuf,
    params: u64,
    file_bytes: u64,
    /// Read once from the header; every thread count and budget predicts from it.
    shape: Shape,
}

#[derive(Debug, Clone, Serialize)]
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
}

/// The largest error a row may have.
const TOLERANCE: f64 = 0.25;
/// Most runs of one row, and the measured time after which a row is not run again.
const MAX_RUNS: usize = 3;
const RUNS_WITHIN_S: f64 = 15.0;

pub fn run(models_dir: &Path, args: BenchPlanArgs) -> anyhow::Result<ExitCode> {
    let work = args.work.clone().unwrap_or_else(|| crate::config::cache_dir().join("plan-validation"));
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&args.out)?;
    let shipped = super::shipped_models(models_dir);
    anyhow::ensure!(shipped.len() == 2, "both shipped models are needed; run `sotto models fetch`");
    let variants = calibrate::variants(&shipped, &work)?;
    let models = prepare(&shipped, &variants, &work, &args.sizes)?;
    let text = calibrate::text();
    let cpus = sotto_governor::available_cpus();
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut calibrations = Vec::new();
    for &threads in &args.threads {
        for (mean, peak, sched) in [(1.0, 1.0, "normal"), (0.35, 0.5, "idle")] {
            let budget = format!("{:.0}/{:.0}", mean * 100.0, peak * 100.0);
            let key = Key {
                cpu: super::super::bench::cpu_model(),
                cpus,
                threads,
                threads_batch: threads,
                cpu_mean: mean,
                cpu_peak: peak,
                sched: sched.to_owned(),
                chunk: 128,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                models: Vec::new(),
            };
            eprintln!("threads {threads}, budget {budget}: calibrating");
            let calibration = calibrate::measure(&key, &shipped, &variants)?;
            for m in &models {
                let t = calibration.fit.governed(&m.shape);
                let row_text = calibrate::text_for(&m.path, &text);
                match calibrate::fastest(&key, &m.path, &row_text, Some((mean, peak)), MAX_RUNS, RUNS_WITHIN_S) {
                    Ok(r) => {
                        let prefill_ms = r.prompt_tokens / r.prefill_tok_s * 1e3;
                        let decode_ms = r.generated_tokens / r.decode_tok_s * 1e3;
                        let predicted_prefill = calibration.fit.prompt_s(&m.shape, r.prompt_tokens, false, false) * 1e3;
                        let predicted_decode = r.generated_tokens * t.decode_s * 1e3;
                        let measured_ms = prefill_ms + decode_ms;
                        let predicted_ms = predicted_prefill + predicted_decode;
                        let row = Row {
                            model: m.name.clone(),
                            origin: m.origin,
                            params: m.params,
                            threads,
                            budget: budget.clone(),
                            predicted_ms,
                            measured_ms,
                            error: predicted_ms / measured_ms - 1.0,
                            prefill_error: predicted_prefill / prefill_ms - 1.0,
                            decode_error: predicted_decode / decode_ms - 1.0,
                            measured: r,
                        };
                        eprintln!(
                            "  {}: predicted {:.0} ms, measured {:.0} ms ({:+.1}%)",
                            m.name,
                            predicted_ms,
                            measured_ms,
                            row.error * 100.0
                        );
                        rows.push(row);
                    }
                    Err(e) => {
                        eprintln!("  {}: failed: {e:#}", m.name);
                        failed.push((m.name.clone(), threads, budget.clone(), format!("{e:#}")));
                    }
                }
            }
            calibrations.push(calibration);
        }
    }
    let md = table(&models, &rows, &failed);
    std::fs::write(args.out.join("table.md"), format!("{}\n{md}", meta_block()))?;
    let data = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "cpu": super::super::bench::cpu_model(),
        "cpus": cpus,
        "date": super::super::bench::date(),
        "models": models,
        "calibrations": calibrations,
        "rows": rows,
        "failed": failed,
    });
    std::fs::write(args.out.join("run.json"), serde_json::to_string_pretty(&data)?)?;
    println!("{md}");
    eprintln!("written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn meta_block() -> String {
    format!(
        "# sotto bench plan\n\n```\ncommand: {}\ncpu: {} ({:.2} CPUs)\ndate: {}\n```\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        super::super::bench::cpu_model(),
        sotto_governor::available_cpus(),
        super::super::bench::date()
    )
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
    s.push_str(
        "\nPredicted against measured time of one request (the calibration text's prefill, then its \
         generated tokens; measured: the fastest of up to 3 runs, prefill and decode each), at each \
         thread count and budget:\n\n\
         | model | origin | threads | budget | prompt / generated tokens | predicted ms | measured ms | error | prefill error | decode error |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let mark = if r.error.abs() <= TOLERANCE { "✅" } else { "❌" };
        s.push_str(&format!(
            "| {} | {:?} | {} | {} | {:.0} / {:.0} | {:.0} | {:.0} | {:+.1}% {mark} | {:+.1}% | {:+.1}% |\n",
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
            r.decode_error * 100.0
        ));
    }
    for (model, threads, budget, why) in failed {
        s.push_str(&format!("\n- {model} at {threads} thread(s), {budget}: failed: {why}\n"));
    }
    let held_out: Vec<&Row> = rows.iter().filter(|r| r.origin != Origin::Calibration).collect();
    let within = held_out.iter().filter(|r| r.error.abs() <= TOLERANCE).count();
    let worst = held_out.iter().map(|r| r.error.abs()).fold(0.0, f64::max);
    s.push_str(&format!(
        "\nHeld-out rows (re-quantized and synthetic) within ±{:.0}%: {within} of {}; the largest error {:.1}%.\n",
        TOLERANCE * 100.0,
        held_out.len(),
        worst * 100.0
    ));
    s
}
