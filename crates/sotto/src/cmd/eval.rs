//! `sotto eval`: run the committed evaluation suite through one or more analysis designs and
//! print the table (accuracy, per-class precision/recall/F1, detection and false-positive
//! rates, technique hit rate, latency), with every outcome as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sotto_analyze::eval::{Design, run_suite, table};
use sotto_events::eval::load_suite;

use crate::cli::EvalArgs;

/// The suite committed with the sources.
pub fn default_suite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/events.jsonl")
}

fn designs(names: &[String]) -> anyhow::Result<Vec<Design>> {
    if names.iter().any(|n| n == "all") {
        return Ok(Design::all());
    }
    names.iter().map(|n| Design::parse(n).map_err(anyhow::Error::msg)).collect()
}

pub fn run(models_dir: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.config.load()?;
    if let Some(m) = &args.model {
        config.model.path = m.clone();
    }
    let designs = designs(&args.designs)?;
    let suite_path = args.suite.clone().unwrap_or_else(default_suite);
    let mut suite = load_suite(&suite_path).with_context(|| format!("reading {}", suite_path.display()))?;
    if let Some(k) = args.every.filter(|&k| k > 1) {
        suite = suite.into_iter().enumerate().filter(|(i, _)| i % k == 0).map(|(_, e)| e).collect();
    }
    let engine = super::analyze::start_engine(models_dir, &config)?;
    let info = engine.info().clone();
    eprintln!(
        "eval: {} events, {} ({}), threads {}/{}",
        suite.len(),
        info.path.display(),
        info.template,
        info.threads,
        info.threads_batch
    );
    let runs = run_suite(&engine, &suite, &designs, config.analyze.max_field_chars, |d, i, n| {
        if i % 25 == 0 || i == n {
            eprintln!("eval: {d} {i}/{n}");
        }
    })?;
    writeln!(std::io::stdout().lock(), "{}", table(&info.path, &runs))?;
    if let Some(path) = &args.out {
        let json = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "model": info.path.display().to_string(),
            "template": info.template.to_string(),
            "threads": [info.threads, info.threads_batch],
            "budget": { "cpu_mean": config.budget.cpu_mean, "cpu_peak": config.budget.cpu_peak },
            "suite": suite_path.display().to_string(),
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
