//! `sotto eval`: run a labelled file (by default the corpus's held-out test families) through
//! one or more analysis designs and print one row per design (accuracy, malicious recall,
//! benign false-positive rate, technique hit rate, verdict latency, CPU-seconds per event),
//! with every outcome as JSON.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;

use sotto_analyze::eval::{Candidate, run_suite, table};
use sotto_analyze::head::train::{Split, TrainOptions, train};
use sotto_events::LabelledEvent;
use sotto_events::eval::Side;

use crate::cli::{EvalArgs, EvalSplit};

/// The designs named, with `head-lexical` trained here on the training side of `split`.
fn designs(names: &[String], split: &Split) -> anyhow::Result<Vec<Candidate>> {
    let mut designs = if names.iter().any(|n| n == "all") {
        Candidate::all()
    } else {
        names.iter().map(|n| Candidate::parse(n).map_err(anyhow::Error::msg)).collect::<anyhow::Result<Vec<_>>>()?
    };
    for d in &mut designs {
        if d.name == "head-lexical" {
            let samples = split.training_samples().map_err(anyhow::Error::msg)?;
            let options = TrainOptions { evidence: false, ..TrainOptions::default() };
            d.head = Some(Arc::new(train(&samples, split.sha256.clone(), &options)?));
        }
    }
    Ok(designs)
}

pub fn run(models_dir: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load_with([("model.path", "--model", args.model.clone())])?;
    let suite_path = args.suite.clone().unwrap_or_else(super::head::default_corpus);
    let split = Split::load(&suite_path).with_context(|| format!("reading {}", suite_path.display()))?;
    let designs = designs(&args.designs, &split)?;
    let mut suite: Vec<LabelledEvent> = match args.split {
        EvalSplit::All => split.items.clone(),
        EvalSplit::Test => split.side(Side::Test).into_iter().cloned().collect(),
        EvalSplit::Train => split.side(Side::Train).into_iter().cloned().collect(),
    };
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
            "split": format!("{:?}", args.split).to_lowercase(),
            "events": suite.len(),
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
