//! `sotto head train`: trains the verdict head from the labelled corpus's training families,
//! writes it, and scores it on the held-out test families (no model needed: the head reads
//! features, not the LLM), with the errors listed by family.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sotto_analyze::eval::percentile;
use sotto_analyze::head::train::{Figures, Split, TrainOptions, train};
use sotto_analyze::head::{Head, features};
use sotto_events::eval::{Label, Side};

use crate::cli::HeadTrainArgs;

/// The corpus committed with the sources.
pub fn default_corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/corpus/events.jsonl")
}

/// Where the shipped head lives in the source tree.
pub fn shipped_head_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sotto-analyze/heads/lexical.json")
}

pub fn train_cmd(args: HeadTrainArgs) -> anyhow::Result<ExitCode> {
    let corpus = args.corpus.clone().unwrap_or_else(default_corpus);
    let split = Split::load(&corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let samples = split.training_samples().map_err(anyhow::Error::msg)?;
    let started = std::time::Instant::now();
    let head = train(&samples, split.sha256.clone(), &TrainOptions::default())?;
    let p = &head.provenance;
    eprintln!(
        "head: trained on {} events in {} families in {:.1} s; alpha {}; out of fold: accuracy {:.3}, recall {:.3}, FPR {:.3}; flag below P(benign) {:.3}",
        p.train_events,
        p.train_families,
        started.elapsed().as_secs_f64(),
        p.alpha,
        p.oof_accuracy,
        p.oof_recall,
        p.oof_fpr,
        head.flag_below
    );
    let out = args.out.clone().unwrap_or_else(shipped_head_path);
    std::fs::write(&out, head.to_json() + "\n").with_context(|| format!("writing {}", out.display()))?;
    eprintln!("head: wrote {}", out.display());
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", test_report(&head, &split, args.show_errors)?)?;
    // A second held-out check: the older suite, written separately and never trained on.
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/events.jsonl");
    if let Ok(items) = sotto_events::load_suite(&suite) {
        let mut truth = Vec::new();
        let mut predicted = Vec::new();
        for item in &items {
            let event = item.parse().map_err(|e| anyhow::anyhow!("{}: {e}", item.id))?;
            truth.push(item.label);
            predicted.push(head.judge(&event).verdict.verdict);
        }
        let f = Figures::of(&truth, &predicted);
        writeln!(
            stdout,
            "older suite (eval/events.jsonl, {} events, never trained on): accuracy {:.3}, malicious recall {:.3}, benign FPR {:.3}",
            items.len(),
            f.accuracy,
            f.recall,
            f.fpr
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The head's figures on the test families, and its errors grouped by family.
pub fn test_report(head: &Head, split: &Split, show_errors: bool) -> anyhow::Result<String> {
    let mut shown = String::new();
    let test = split.side(Side::Test);
    let mut truth = Vec::new();
    let mut predicted = Vec::new();
    let mut errors: BTreeMap<&str, (usize, usize, Label)> = BTreeMap::new();
    let (mut with_t, mut hits) = (0usize, 0usize);
    let mut micros = Vec::new();
    for item in &test {
        let event = item.parse().map_err(|e| anyhow::anyhow!("{}: {e}", item.id))?;
        let t = std::time::Instant::now();
        let j = head.judge(&event);
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        let e = errors.entry(item.family_or_id()).or_insert((0, 0, item.label));
        e.1 += 1;
        if (item.label == Label::Benign) != (j.verdict.verdict == Label::Benign) {
            e.0 += 1;
            if show_errors {
                let s = j.verdict.scores.expect("the head scores");
                shown.push_str(&format!(
                    "- {} ({} → {}, P(benign) {:.2}): {} | {}\n",
                    item.id,
                    item.label,
                    j.verdict.verdict,
                    s.benign,
                    event.command_line.as_deref().unwrap_or("-").chars().take(160).collect::<String>(),
                    j.evidence.join("; ")
                ));
            }
        }
        if !item.techniques.is_empty() {
            with_t += 1;
            let base = |t: &str| t.split('.').next().unwrap_or(t).to_string();
            if j.verdict.techniques.iter().any(|p| item.techniques.iter().any(|x| base(x) == base(p))) {
                hits += 1;
            }
        }
        truth.push(item.label);
        predicted.push(j.verdict.verdict);
    }
    micros.sort_by(f64::total_cmp);
    let f = Figures::of(&truth, &predicted);
    let families = errors.len();
    let mut s = format!(
        "test split: {} events in {} families (train {} events)\n\n| design | accuracy | malicious recall | benign FPR | technique hit | p50 µs | p99 µs |\n|---|---|---|---|---|---|---|\n| head ({} features) | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} |\n\nerrors by family (wrong / events):\n",
        test.len(),
        families,
        split.side(Side::Train).len(),
        features::dimension(),
        f.accuracy,
        f.recall,
        f.fpr,
        if with_t == 0 { 0.0 } else { hits as f64 / with_t as f64 },
        percentile(&micros, 50.0),
        percentile(&micros, 99.0),
    );
    for (family, (wrong, n, label)) in errors.iter().filter(|(_, (w, _, _))| *w > 0) {
        s.push_str(&format!("- {family} ({label}): {wrong}/{n}\n"));
    }
    s.push_str(&shown);
    Ok(s)
}
