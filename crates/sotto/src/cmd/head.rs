//! `sotto head train`: trains the verdict head from the labelled corpus's training families,
//! writes it, and scores it on the held-out test families (no model needed: the head reads
//! features, not the LLM), with the errors listed by family.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sotto_analyze::head::train::{Figures, Split, TrainOptions, train};
use sotto_analyze::head::{Head, features};
use sotto_events::eval::{Label, Side};
use sotto_governor::percentile;

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
    if let Some(model) = &args.model {
        return train_model_head(&args, model, &split);
    }
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

/// `sotto head train --model M`: embeds every corpus event with the model (cached), trains
/// the head that reads the embeddings and its cascade cut, writes it, and compares on the test
/// families: the lexical head alone, always embedding, and the cascade.
fn train_model_head(args: &HeadTrainArgs, model: &str, split: &Split) -> anyhow::Result<ExitCode> {
    use sotto_analyze::head::embedding::{self, Spec};
    use sotto_analyze::head::train::{Sample, train_embedded};

    let models_dir = sotto_models::store::models_dir();
    let path = sotto_models::store::resolve(Some(model), &models_dir);
    anyhow::ensure!(path.exists(), "model `{model}` is not at {}; run `sotto models fetch` first", path.display());
    let name = match sotto_models::catalog::find(model) {
        Some(spec) => spec.id.to_string(),
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
    };
    let sha = embedding::sha256_file(&path).with_context(|| format!("hashing {}", path.display()))?;
    let size = std::fs::metadata(&path)?.len();
    // Every corpus event parsed and rendered once, in the split's order.
    let events: Vec<sotto_events::Event> = split
        .items
        .iter()
        .map(|item| item.parse().map_err(|e| anyhow::anyhow!("{}: {e}", item.id)))
        .collect::<anyhow::Result<_>>()?;
    let renderings: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let text = embedding::text(e);
            (text_key(&text), text)
        })
        .collect();
    let embeddings = embed_corpus(&path, &sha, &renderings, args.threads)?;
    let embedding_of = |i: usize| -> anyhow::Result<&Vec<f32>> {
        embeddings.get(&renderings[i].0).context("an event was not embedded")
    };
    let on_side = |side: Side| (0..split.items.len()).filter(move |&i| split.sides[i] == side);

    let lexical = split.training_samples().map_err(anyhow::Error::msg)?;
    let train_embeddings: Vec<Vec<f32>> =
        on_side(Side::Train).map(|i| embedding_of(i).cloned()).collect::<anyhow::Result<_>>()?;
    let (mean, std) = Spec::moments(&train_embeddings);
    let spec = Spec {
        model_sha256: sha,
        model_size: size,
        model_file: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        dim: train_embeddings.first().map_or(0, Vec::len),
        rendering: embedding::RENDERING,
        mean,
        std,
        embed_below: 1.0,
        cascade: Default::default(),
    };
    let embedded: Vec<Sample> = lexical
        .iter()
        .zip(&train_embeddings)
        .map(|(s, e)| Sample {
            x: s.x.iter().copied().chain(spec.block(e)).collect(),
            label: s.label,
            techniques: s.techniques.clone(),
            family: s.family.clone(),
        })
        .collect();
    let started = std::time::Instant::now();
    let head = train_embedded(&lexical, &embedded, split.sha256.clone(), spec, &TrainOptions::default())?;
    let s = head.embedding.as_ref().expect("an embedding head");
    eprintln!(
        "head: trained on {} dimensions of {} in {:.1} s; out of fold: lexical accuracy {:.3}, always embedding {:.3}, cascade {:.3} embedding {:.0}% (below confidence {:.3})",
        s.dim,
        s.model_file,
        started.elapsed().as_secs_f64(),
        s.cascade.lexical_accuracy,
        s.cascade.always_accuracy,
        s.cascade.cascade_accuracy,
        s.cascade.embedded_share * 100.0,
        s.embed_below
    );
    let out = args.out.clone().unwrap_or_else(|| shipped_head_path().with_file_name(format!("{name}.json")));
    std::fs::write(&out, head.to_json() + "\n").with_context(|| format!("writing {}", out.display()))?;
    eprintln!("head: wrote {}", out.display());

    // The three ways of using it, on the test families.
    let lexical_head = Head::shipped();
    let mut rows =
        String::from("| design | accuracy | malicious recall | benign FPR | embedded |\n|---|---|---|---|---|\n");
    let mut errors: BTreeMap<String, (usize, usize, Label)> = BTreeMap::new();
    for (design, policy) in [("head-evidence", 0), ("head-embed", 2), ("head (cascade)", 1)] {
        let (mut truth, mut predicted, mut n_embedded) = (Vec::new(), Vec::new(), 0usize);
        for i in on_side(Side::Test) {
            let (item, event) = (&split.items[i], &events[i]);
            let lexical = lexical_head.judge(event);
            let embed = policy == 2 || (policy == 1 && lexical.verdict.confidence < f64::from(s.embed_below));
            let verdict = if embed {
                n_embedded += 1;
                head.judge_with(event, Some(embedding_of(i)?)).verdict.verdict
            } else {
                lexical.verdict.verdict
            };
            if policy == 1 {
                let e = errors.entry(item.family_or_id().to_string()).or_insert((0, 0, item.label));
                e.1 += 1;
                e.0 += usize::from((item.label == Label::Benign) != (verdict == Label::Benign));
            }
            truth.push(item.label);
            predicted.push(verdict);
        }
        let f = Figures::of(&truth, &predicted);
        rows.push_str(&format!(
            "| {design} | {:.3} | {:.3} | {:.3} | {:.2} |\n",
            f.accuracy,
            f.recall,
            f.fpr,
            n_embedded as f64 / truth.len().max(1) as f64
        ));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "test split: {} events; model {}\n\n{rows}", split.side(Side::Test).len(), s.model_file)?;
    writeln!(stdout, "cascade errors by family (wrong / events):")?;
    for (family, (wrong, n, label)) in errors.iter().filter(|(_, (w, _, _))| *w > 0) {
        writeln!(stdout, "- {family} ({label}): {wrong}/{n}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The key of a rendering in the embeddings cache.
fn text_key(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))[..24].to_string()
}

/// The model's embedding of each rendering (key, text), from the cache where it has them and
/// computed (unpaced, `threads` threads) where not; new ones are added to the cache.
fn embed_corpus(
    path: &std::path::Path,
    sha: &str,
    renderings: &[(String, String)],
    threads: u32,
) -> anyhow::Result<std::collections::HashMap<String, Vec<f32>>> {
    use sotto_analyze::head::embedding;
    use sotto_engine::{Engine, EngineConfig, NoPacing, Request};

    let cache_dir = crate::config::state_dir().join("embeddings");
    std::fs::create_dir_all(&cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    let cache = cache_dir.join(format!("{}-r{}.jsonl", &sha[..16], embedding::RENDERING));
    let mut known: std::collections::HashMap<String, Vec<f32>> = std::collections::HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&cache) {
        for line in text.lines() {
            if let Ok((k, v)) = serde_json::from_str::<(String, Vec<f32>)>(line) {
                known.insert(k, v);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<&(String, String)> =
        renderings.iter().filter(|(key, _)| !known.contains_key(key) && seen.insert(key)).collect();
    if wanted.is_empty() {
        eprintln!("head: {} embeddings from {}", known.len(), cache.display());
        return Ok(known);
    }
    let config =
        EngineConfig { threads, threads_batch: threads, prefix_cache: 0, prefix_dir: None, ..EngineConfig::new(path) };
    let engine = Engine::start(config, Box::new(NoPacing)).with_context(|| format!("loading {}", path.display()))?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&cache)?;
    let bar = indicatif::ProgressBar::new(wanted.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("embedding {pos}/{len} [{elapsed_precise} < {eta_precise}] {per_sec}")
            .expect("template"),
    );
    let started = std::time::Instant::now();
    let mut tokens = 0usize;
    for (key, text) in wanted {
        let (e, stats) = engine.embed_blocking(Request::embed(text.as_str()))?;
        tokens += stats.prompt_tokens;
        writeln!(file, "{}", serde_json::to_string(&(key, &e))?)?;
        known.insert(key.clone(), e);
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "head: embedded {} renderings ({tokens} tokens) in {:.1} s at {threads} threads; cached in {}",
        bar.position(),
        started.elapsed().as_secs_f64(),
        cache.display()
    );
    Ok(known)
}
