//! `sotto plan`: what each model of the catalogue would do on this machine under the
//! configured budget, before anyone downloads it. For every model and quantization: RAM, and
//! the p50/p95 latency of the standard event's verdict (its embedding: a prefill that runs the
//! output matrix for every token, no generation) and of its rationale (the uncached part of
//! the prompt, then one sentence), from the calibration (`calibrate.rs`) and the predictor
//! (`sotto_models::predict`). Models that keep every promise are marked, one is recommended,
//! and the main constraint of each other one is named. `--budget` and `--event-tokens`
//! answer "what if" questions.
//!
//! Must not: tier models by RAM or core count (seed 004), or predict correctness: the
//! catalogue's published benchmark figures are shown as published, and `sotto eval` measures.

use std::process::ExitCode;

use serde::Serialize;
use sotto_models::known::{self, KnownModel};
use sotto_models::memory::{self, KvType};
use sotto_models::predict::{Fit, PerToken};

pub mod calibrate;
pub mod validate;

use crate::cli::PlanArgs;

/// The standard event, in tokens (see `sotto-analyze`): the embedding reads at most
/// `EMBED_TOKENS` of the event's rendering; a rationale prompt holds at most
/// `RATIONALE_EVENT_TOKENS` of the event, plus the verdict, its evidence and the answer cue
/// (`RATIONALE_FIXED`) after the cached instructions; a rationale sentence averages 17 tokens
/// with Gemma 3 270M and is cut at 32.
const EMBED_TOKENS: f64 = sotto_engine::EMBED_TOKENS as f64;
const RATIONALE_EVENT_TOKENS: f64 = 72.0;
const RATIONALE_FIXED: f64 = 48.0;
const RATIONALE_P50: f64 = 17.0;
const RATIONALE_P95: f64 = 32.0;
/// The p95 event is this much longer than the median one.
const P95_EVENT: f64 = 1.5;

/// Token counts of the standard event at its median and at its p95.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Standard {
    pub verdict_tokens: (f64, f64),
    pub rationale_prompt: (f64, f64),
    pub rationale_output: (f64, f64),
}

impl Standard {
    pub fn new(event_tokens: f64) -> Standard {
        let p95 = event_tokens * P95_EVENT;
        Standard {
            verdict_tokens: (event_tokens.min(EMBED_TOKENS), p95.min(EMBED_TOKENS)),
            rationale_prompt: (
                event_tokens.min(RATIONALE_EVENT_TOKENS) + RATIONALE_FIXED,
                p95.min(RATIONALE_EVENT_TOKENS) + RATIONALE_FIXED,
            ),
            rationale_output: (RATIONALE_P50, RATIONALE_P95),
        }
    }
}

/// What one model in one quantization is predicted to do.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub quant: String,
    pub file_bytes: u64,
    pub ram_bytes: u64,
    /// ms at the median and the p95 event.
    pub verdict_ms: (f64, f64),
    pub rationale_ms: (f64, f64),
    /// Governed tokens/s.
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub keeps: bool,
    /// Empty when every promise is kept.
    pub constraint: String,
    /// Published cybersecurity figures, "name score".
    pub benchmarks: Vec<String>,
}

/// The promises a row is judged against.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Promises {
    pub p95_ms: f64,
    pub memory: u64,
    pub cpu_mean: f64,
}

/// What every prediction of one plan shares.
pub struct Setting<'a> {
    pub fit: &'a Fit,
    pub standard: Standard,
    pub promises: Promises,
    /// The engine's context (capped by each model's own) and largest prompt chunk.
    pub n_ctx: u64,
    pub chunk: u64,
    /// Bytes kept for prefix snapshots.
    pub snapshots: u64,
}

/// Predicts one model in one file size.
pub fn predict(m: &KnownModel, quant: &str, bytes: u64, setting: &Setting) -> Row {
    let Setting { fit, standard, promises, n_ctx, chunk, snapshots } = setting;
    let (n_ctx, chunk, snapshots) = (*n_ctx, *chunk, *snapshots);
    let shape = m.shape(quant, bytes);
    let t: PerToken = fit.governed(&shape);
    // The daemon's governor has learned the model's cost by the standard event.
    let verdict = |tokens: f64| fit.prompt_s(&shape, tokens, true, true) * 1e3;
    let rationale = |prompt: f64, out: f64| (fit.prompt_s(&shape, prompt, false, true) + out * t.decode_s) * 1e3;
    let ctx = n_ctx.min(m.context).max(1);
    let ram = memory::estimate_dims(&m.dims(bytes), ctx, chunk.min(ctx), KvType::F16, snapshots).total();
    let s = standard;
    let verdict_ms = (verdict(s.verdict_tokens.0), verdict(s.verdict_tokens.1));
    let rationale_ms =
        (rationale(s.rationale_prompt.0, s.rationale_output.0), rationale(s.rationale_prompt.1, s.rationale_output.1));
    let mean = promises.cpu_mean * 100.0;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let constraint = if ram > promises.memory {
        format!("memory: {:.1} GiB needed, {:.1} GiB budget", gib(ram), gib(promises.memory))
    } else if verdict_ms.1 > promises.p95_ms {
        format!("prefill-bound: verdict {:.1} s p95 at {mean:.0}% CPU", verdict_ms.1 / 1e3)
    } else if rationale_ms.1 > promises.p95_ms {
        let decode_share = s.rationale_output.1 * t.decode_s * 1e3 / rationale_ms.1;
        let bound = if decode_share >= 0.5 { "decode-bound" } else { "prefill-bound" };
        format!("{bound}: rationale {:.1} s p95 at {mean:.0}% CPU", rationale_ms.1 / 1e3)
    } else {
        String::new()
    };
    Row {
        id: m.id.clone(),
        name: m.name.clone(),
        quant: quant.to_owned(),
        file_bytes: bytes,
        ram_bytes: ram,
        verdict_ms,
        rationale_ms,
        prefill_tok_s: 1.0 / t.prefill_s,
        decode_tok_s: 1.0 / t.decode_s,
        keeps: constraint.is_empty(),
        constraint,
        benchmarks: m.benchmark.iter().map(|b| format!("{} {:.3}", b.name, b.score)).collect(),
    }
}

/// The recommendation: the largest model (by parameters, then the larger file) that keeps
/// every promise; when none does, the one whose rationale p95 is shortest among those that fit
/// in memory and keep the verdict promise, said to be short of the promise.
pub fn recommend<'r>(rows: &'r [Row], models: &[KnownModel]) -> Option<(&'r Row, bool)> {
    let params = |r: &Row| models.iter().find(|m| m.id == r.id).map_or(0, |m| m.params);
    if let Some(best) = rows.iter().filter(|r| r.keeps).max_by_key(|r| (params(r), r.file_bytes)) {
        return Some((best, true));
    }
    rows.iter()
        .filter(|r| !r.constraint.starts_with("memory") && !r.constraint.contains("verdict"))
        .min_by(|a, b| a.rationale_ms.1.total_cmp(&b.rationale_ms.1))
        .map(|r| (r, false))
}

pub fn run(models_dir: &std::path::Path, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let (mean, peak) = match &args.budget {
        Some(b) => {
            let (m, p) = b
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("--budget {b:?}: expected MEAN/PEAK, e.g. --budget 35%/50%"))?;
            (Some(m.trim().to_owned()), Some(p.trim().to_owned()))
        }
        None => (None, None),
    };
    let config =
        args.config.load_with([("budget.cpu_mean", "--budget", mean), ("budget.cpu_peak", "--budget", peak)])?;
    anyhow::ensure!(
        args.event_tokens.is_finite() && args.event_tokens >= 1.0,
        "--event-tokens must be a number of tokens, at least 1"
    );
    let budgets = config.budgets();
    let cpus = sotto_governor::available_cpus();
    let plan = sotto_governor::ThreadPlan::from_budgets(budgets.cpu_mean, budgets.cpu_peak, cpus);
    let threads = config.model.threads.unwrap_or(plan.decode);
    let threads_batch = config.model.threads_batch.or(config.model.threads).unwrap_or(plan.prefill);
    let calibration_models = shipped_models(models_dir);
    anyhow::ensure!(
        !calibration_models.is_empty(),
        "no model to calibrate with in {}; run `sotto models fetch` first",
        models_dir.display()
    );
    let key = calibrate::Key {
        cpu: super::bench::cpu_model(),
        cpus,
        threads,
        threads_batch,
        cpu_mean: budgets.cpu_mean,
        cpu_peak: budgets.cpu_peak,
        sched: config.budget.sched.to_string(),
        chunk: config.model.chunk,
        version: calibrate::version(),
        models: calibration_models
            .iter()
            .map(|p| {
                let name = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                (name, std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            })
            .collect(),
    };
    let variants = calibrate::variants(&calibration_models, &crate::config::cache_dir().join("calibration"))?;
    let calibration =
        calibrate::load_or_measure(&key, &calibration_models, &variants, args.recalibrate, &|s| eprintln!("{s}"))?;
    let standard = Standard::new(args.event_tokens);
    let promises = Promises { p95_ms: 2500.0, memory: config.budget.memory, cpu_mean: budgets.cpu_mean };
    let catalogue = known::shipped();
    let setting = Setting {
        fit: &calibration.fit,
        standard,
        promises,
        n_ctx: if config.model.n_ctx == 0 { 4096 } else { u64::from(config.model.n_ctx) },
        chunk: u64::from(config.model.chunk),
        snapshots: config.cache.prefix,
    };
    let mut rows = Vec::new();
    for m in &catalogue {
        for (quant, &bytes) in &m.files.sizes {
            rows.push(predict(m, quant, bytes, &setting));
        }
    }
    let recommended = recommend(&rows, &catalogue);
    if args.json {
        let v = serde_json::json!({
            "calibration": calibration,
            "standard_event": standard,
            "promises": promises,
            "rows": rows,
            "recommended": recommended.map(|(r, keeps)| serde_json::json!({"id": r.id, "quant": r.quant, "keeps_every_promise": keeps})),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", table(&calibration, &standard, &promises, &rows, recommended));
    }
    Ok(ExitCode::SUCCESS)
}

/// The fetched shipped models, the default one first (its re-quantizations calibrate the
/// tiled kernels).
pub fn shipped_models(models_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut specs: Vec<&sotto_models::ModelSpec> = sotto_models::CATALOG.iter().collect();
    specs.sort_by_key(|spec| spec.id != sotto_models::DEFAULT_MODEL);
    specs.into_iter().map(|spec| models_dir.join(spec.file_name)).filter(|p| p.exists()).collect()
}

/// The readable plan.
pub fn table(
    c: &calibrate::Calibration,
    s: &Standard,
    p: &Promises,
    rows: &[Row],
    recommended: Option<(&Row, bool)>,
) -> String {
    let k = &c.key;
    let f = &c.fit;
    let mut out = format!(
        "Budget {:.0}% mean / {:.0}% peak of {:.2} CPUs, {} thread(s) ({} for prompts), class {}; \
         calibrated {} on {}{} ({}).\n",
        k.cpu_mean * 100.0,
        k.cpu_peak * 100.0,
        k.cpus,
        k.threads,
        k.threads_batch,
        k.sched,
        c.date,
        k.models.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
        // Calibrations cached before runs were counted: nothing said.
        if c.runs > 0 { format!(" in {} runs", c.runs) } else { String::new() },
        crate::cmd::plan::calibrate::cache_path().display(),
    );
    let rates: Vec<String> = f.prefill_rate.iter().map(|(k, r)| format!("{:?} {:.1}", k, r / 1e9)).collect();
    let chunks = match f.chunking.target_s {
        Some(t) => format!("prompt chunks of {:.0} ms", t * 1e3),
        None => format!("prompt chunks of up to {:.0} tokens", f.chunking.max),
    };
    let bandwidth: Vec<String> = f.bandwidth.iter().map(|(k, b)| format!("{:?} {:.1}", k, b / 1e9)).collect();
    out.push_str(&format!(
        "Fit: decode streams GB/s by kernel: {} (+{:.0} µs a layer); prefill G layer-params/s by kernel: {} \
         (+{:.1} ns a matrix row); {chunks}; the budget keeps {:.0}% of prefill speed{} and {:.0}% of decode \
         speed.\n",
        bandwidth.join(", "),
        f.decode_per_layer * 1e6,
        rates.join(", "),
        f.prefill_per_row * 1e9,
        f.governed_prefill * 100.0,
        f.governed_repacked.map(|r| format!(" ({:.0}% for Q4_0 layers)", r * 100.0)).unwrap_or_default(),
        f.governed_decode * 100.0
    ));
    out.push_str(&format!(
        "Standard event (median / p95): verdict {:.0} / {:.0} tokens embedded; rationale {:.0} / {:.0} prompt \
         tokens uncached, then {:.0} / {:.0} tokens written. Promises: p95 <= {:.1} s, RAM <= {:.1} GiB.\n\n",
        s.verdict_tokens.0,
        s.verdict_tokens.1,
        s.rationale_prompt.0,
        s.rationale_prompt.1,
        s.rationale_output.0,
        s.rationale_output.1,
        p.p95_ms / 1e3,
        p.memory as f64 / (1u64 << 30) as f64
    ));
    out.push_str(
        "| model | quant | file MiB | RAM MiB | verdict p50 / p95 ms | rationale p50 / p95 ms | prefill / decode tok/s | promises |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for r in rows {
        let mark = if r.keeps { "✅ all kept".to_owned() } else { format!("❌ {}", r.constraint) };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.1} / {:.1} | {mark} |\n",
            r.name,
            r.quant,
            mib(r.file_bytes),
            mib(r.ram_bytes),
            r.verdict_ms.0,
            r.verdict_ms.1,
            r.rationale_ms.0,
            r.rationale_ms.1,
            r.prefill_tok_s,
            r.decode_tok_s,
        ));
    }
    let mut published: Vec<(&str, &[String])> = Vec::new();
    for r in rows.iter().filter(|r| !r.benchmarks.is_empty()) {
        if !published.iter().any(|(name, _)| *name == r.name) {
            published.push((&r.name, &r.benchmarks));
        }
    }
    if !published.is_empty() {
        out.push_str("\nPublished cybersecurity benchmarks (as published, with their sources in the catalogue; not measured here):\n");
        for (name, figures) in published {
            out.push_str(&format!("- {name}: {}\n", figures.join("; ")));
        }
    }
    out.push('\n');
    match recommended {
        Some((r, true)) => out.push_str(&format!(
            "Recommended: {} {} — the largest model that keeps every promise here.\n",
            r.name, r.quant
        )),
        Some((r, false)) => out.push_str(&format!(
            "No model keeps every promise at this budget. Closest: {} {} ({}); a larger budget \
             (--budget) or shorter events (--event-tokens) would change that.\n",
            r.name, r.quant, r.constraint
        )),
        None => out.push_str("No model fits this budget's memory and verdict promise.\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_models::predict::{Chunking, Kernel, Point, Shape};

    fn fit() -> Fit {
        // SmolLM2 and Gemma 3 270M at 1 thread on this 2-core machine, raw and at 35/50.
        let point = |shape: Shape, p: f64, d: f64| Point {
            shape,
            prefill_tok_s: p,
            decode_tok_s: d,
            governed: Some((p * 0.6, d * 0.75)),
            prompt_tokens: 300.0,
        };
        let smol = Shape {
            decode_bytes: 94e6,
            output_bytes: 30e6,
            layer_params: 107e6,
            output_params: 28e6,
            rows: 155e3,
            layers: 30.0,
            kernel: Kernel::Q4_1,
            decode_mix: [0.0; 4],
            output_kernel: None,
        };
        let gemma = Shape {
            decode_bytes: 247e6,
            output_bytes: 138e6,
            layer_params: 100e6,
            output_params: 168e6,
            rows: 124e3,
            layers: 18.0,
            kernel: Kernel::Other,
            decode_mix: [0.0; 4],
            output_kernel: None,
        };
        let chunking = Chunking { target_s: Some(0.163), max: 128.0, small: None };
        Fit::from_points(&[point(smol, 114.5, 48.0), point(gemma, 159.2, 26.3)], chunking).unwrap()
    }

    #[test]
    fn bigger_models_are_slower_and_the_constraint_is_named() {
        let catalogue = known::shipped();
        let fit = fit();
        let setting = Setting {
            fit: &fit,
            standard: Standard::new(64.0),
            promises: Promises { p95_ms: 2500.0, memory: 6 << 30, cpu_mean: 0.35 },
            n_ctx: 4096,
            chunk: 128,
            snapshots: 64 << 20,
        };
        let rows: Vec<Row> =
            catalogue.iter().flat_map(|m| m.files.sizes.iter().map(|(q, &b)| predict(m, q, b, &setting))).collect();
        let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap();
        let small = row("smollm2-135m");
        let big = rows.iter().find(|r| r.id.contains("8b")).expect("an 8B model in the catalogue");
        assert!(big.rationale_ms.1 > 10.0 * small.rationale_ms.1, "{big:?} vs {small:?}");
        assert!(!big.keeps && !big.constraint.is_empty());
        for r in &rows {
            assert!(r.verdict_ms.0 <= r.verdict_ms.1 && r.rationale_ms.0 < r.rationale_ms.1, "{r:?}");
            assert_eq!(r.keeps, r.constraint.is_empty());
        }
        let (pick, keeps) = recommend(&rows, &catalogue).expect("a recommendation");
        if keeps {
            assert!(pick.keeps);
            assert!(rows.iter().filter(|r| r.keeps).all(|r| {
                let p = |id: &str| catalogue.iter().find(|m| m.id == id).unwrap().params;
                p(&r.id) <= p(&pick.id)
            }));
        }
    }

    #[test]
    fn a_memory_budget_below_the_weights_is_the_constraint() {
        let m = &known::shipped()[0];
        let (quant, &bytes) = m.files.sizes.iter().next().unwrap();
        let fit = fit();
        let setting = Setting {
            fit: &fit,
            standard: Standard::new(64.0),
            promises: Promises { p95_ms: 2500.0, memory: bytes / 2, cpu_mean: 0.35 },
            n_ctx: 4096,
            chunk: 128,
            snapshots: 0,
        };
        let r = predict(m, quant, bytes, &setting);
        assert!(r.constraint.starts_with("memory"), "{r:?}");
    }

    #[test]
    fn the_standard_event_is_capped_where_the_analysis_cuts_it() {
        let s = Standard::new(1000.0);
        assert_eq!(s.verdict_tokens, (EMBED_TOKENS, EMBED_TOKENS));
        assert_eq!(s.rationale_prompt.1, RATIONALE_EVENT_TOKENS + RATIONALE_FIXED);
        let short = Standard::new(20.0);
        assert_eq!(short.verdict_tokens, (20.0, 30.0));
    }
}
