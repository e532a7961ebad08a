//! The calibration `sotto plan` predicts from: the fetched default models run here, at the
//! budget's thread plan, ungoverned and at the budget, each through `sotto generate --json`
//! in a process of its own (a process-wide governor cannot be two budgets at once); and,
//! ungoverned, the default model re-quantized to Q4_0 and Q8_0 by llama.cpp's quantizer (the
//! rates of llama.cpp's tiled kernels) and a synthetic 2048-wide Q4_0 llama
//! (`sotto_models::synth`: how the cost per weight falls on wider matrices), both kept in the
//! cache directory. Each figure is the fastest of [`RUNS`] runs: on a shared machine noise
//! only ever slows a run down. About two minutes; cached in the state directory under
//! everything that changes the figures (CPU, usable CPUs, threads, budgets, chunk, scheduling
//! class, sotto's version, the models' files), so a second `plan` answers at once.
//! `--recalibrate` measures again.
//!
//! Must not: reuse a calibration taken under another key, or keep one that failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sotto_models::GgufHeader;
use sotto_models::predict::{Chunking, Fit, Point, Shape};

/// Everything that changes what a calibration measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub cpu: String,
    pub cpus: f64,
    pub threads: u32,
    pub threads_batch: u32,
    /// Fractions of the machine.
    pub cpu_mean: f64,
    pub cpu_peak: f64,
    pub sched: String,
    /// The largest prompt chunk.
    pub chunk: u32,
    pub version: String,
    /// (file name, bytes) of each model measured.
    pub models: Vec<(String, u64)>,
}

/// One calibration: its key, each model's figures, and the fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub key: Key,
    pub date: String,
    pub points: Vec<(String, Point)>,
    pub fit: Fit,
}

/// How calibrations are measured: raised whenever what a run measures changes (its text, or
/// how the governor cuts and paces it), so that a cached calibration of an older build is
/// measured again. 2: the governor sizes chunks for the configured threads, and a point's
/// shape holds its output matrix's bytes.
const METHOD: u32 = 2;

/// sotto's version and the calibration [`METHOD`], for the key.
pub fn version() -> String {
    format!("{} calibration {METHOD}", env!("CARGO_PKG_VERSION"))
}

/// Tokens generated per calibration run.
const GENERATE: u32 = 24;
/// Runs per calibration figure; the fastest counts.
pub const RUNS: usize = 3;
/// The synthetic calibration model's file, in the cache directory.
const SYNTHETIC: &str = "synth-calibration-llama-4x2048-q4_0.gguf";
/// Bytes of the calibration text the synthetic model reads: its vocabulary is bytes, so this
/// is its prompt's length in tokens, about the other models' count.
const SYNTHETIC_TEXT: usize = 300;

/// The text every calibration run reads (about 250 tokens): the bench's prompt with one event.
pub fn text() -> String {
    let full = sotto_bench::workload::speed_text();
    // Up to the second event: the instructions and one event, ending with the answer cue.
    match full.match_indices("\n\nEvent:").nth(1) {
        Some((at, _)) => format!("{}\n\nVerdict:", &full[..at]),
        None => full,
    }
}

/// Where calibrations are kept.
pub fn cache_path() -> PathBuf {
    crate::config::state_dir().join("calibration.json")
}

/// `model` re-quantized to `to` in `dir`, made unless it is there (a `.partial` file until
/// llama.cpp has finished).
pub fn requantized(model: &Path, to: sotto_engine::QuantType, dir: &Path) -> anyhow::Result<PathBuf> {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = dir.join(format!("{stem}.requant-{}.gguf", to.name()));
    if !out.exists() {
        std::fs::create_dir_all(dir)?;
        let partial = out.with_extension("partial");
        sotto_engine::quantize(model, &partial, to, 2)?;
        std::fs::rename(&partial, &out)?;
    }
    Ok(out)
}

/// The variants a calibration measures ungoverned: the first shipped model (the default one)
/// in Q4_0 and Q8_0, and the synthetic wide model, made in `dir` unless they are there.
pub fn variants(shipped: &[PathBuf], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Some(first) = shipped.first() else { return Ok(Vec::new()) };
    let mut out: Vec<PathBuf> = [sotto_engine::QuantType::Q4_0, sotto_engine::QuantType::Q8_0]
        .into_iter()
        .map(|to| requantized(first, to, dir))
        .collect::<anyhow::Result<_>>()?;
    let synthetic = dir.join(SYNTHETIC);
    if !synthetic.exists() {
        std::fs::create_dir_all(dir)?;
        sotto_models::synth::write_llama(&synthetic, &sotto_models::synth::Dims::CALIBRATION).map_err(|e| {
            anyhow::anyhow!("cannot write the synthetic calibration model {}: {e}", synthetic.display())
        })?;
    }
    out.push(synthetic);
    Ok(out)
}

/// The text `model` reads: the calibration text, cut for the synthetic model, whose tokens are
/// bytes.
pub fn text_for(model: &Path, text: &str) -> String {
    if model.file_name().is_some_and(|f| f == SYNTHETIC) {
        let mut end = SYNTHETIC_TEXT.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    } else {
        text.to_owned()
    }
}

/// The governor's chunking at the key's threads and budget.
pub fn chunking(key: &Key) -> Chunking {
    let target = sotto_governor::pacer::step_target(key.threads_batch, key.cpu_mean, key.cpu_peak, key.cpus);
    Chunking { target_s: target.map(|d| d.as_secs_f64()), max: f64::from(key.chunk) }
}

/// The cached calibration for `key`, unless `fresh`; else one measured now (and cached).
pub fn load_or_measure(
    key: &Key,
    models: &[PathBuf],
    variants: &[PathBuf],
    fresh: bool,
    say: &dyn Fn(&str),
) -> anyhow::Result<Calibration> {
    let path = cache_path();
    let mut cached: Vec<Calibration> =
        std::fs::read_to_string(&path).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    if !fresh && let Some(c) = cached.iter().find(|c| &c.key == key) {
        return Ok(c.clone());
    }
    say(&format!(
        "calibrating: {} at {} thread(s) ({} for prompts), ungoverned and at {:.0}/{:.0}% (about two minutes, once)",
        models.iter().filter_map(|m| m.file_name()).map(|f| f.to_string_lossy()).collect::<Vec<_>>().join(" and "),
        key.threads,
        key.threads_batch,
        key.cpu_mean * 100.0,
        key.cpu_peak * 100.0
    ));
    let calibration = measure(key, models, variants)?;
    cached.retain(|c| &c.key != key);
    cached.push(calibration.clone());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&cached)?)?;
    Ok(calibration)
}

/// Measures `models` ungoverned and at the budget, and `variants` ungoverned, and fits them.
pub fn measure(key: &Key, models: &[PathBuf], variants: &[PathBuf]) -> anyhow::Result<Calibration> {
    let text = text();
    let mut points = Vec::new();
    let at_budget = models.iter().map(|m| (m, true)).chain(variants.iter().map(|m| (m, false)));
    for (model, at_budget) in at_budget {
        let header = GgufHeader::read(model)?;
        let text = text_for(model, &text);
        let raw = fastest(key, model, &text, None, RUNS, f64::INFINITY)?;
        let governed = if at_budget {
            let g = fastest(key, model, &text, Some((key.cpu_mean, key.cpu_peak)), RUNS, f64::INFINITY)?;
            Some((g.prefill_tok_s, g.decode_tok_s))
        } else {
            None
        };
        let name = model.file_name().map_or_else(|| model.display().to_string(), |f| f.to_string_lossy().into());
        let point = Point {
            shape: Shape::from_header(&header),
            prefill_tok_s: raw.prefill_tok_s,
            decode_tok_s: raw.decode_tok_s,
            governed,
            prompt_tokens: raw.prompt_tokens,
        };
        points.push((name, point));
    }
    let fit = Fit::from_points(&points.iter().map(|p| p.1).collect::<Vec<_>>(), chunking(key))
        .ok_or_else(|| anyhow::anyhow!("the calibration measured no speed"))?;
    Ok(Calibration { key: key.clone(), date: super::super::bench::date(), points, fit })
}

/// What one `sotto generate --json` run measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Run {
    pub prompt_tokens: f64,
    pub generated_tokens: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
}

impl Run {
    /// Seconds the run measured, prefill and decode.
    pub fn seconds(&self) -> f64 {
        self.prompt_tokens / self.prefill_tok_s + self.generated_tokens / self.decode_tok_s
    }

    /// Keeps the faster prefill and the faster decode of this run and `other`.
    pub fn keep_fastest(&mut self, other: &Run) {
        self.prefill_tok_s = self.prefill_tok_s.max(other.prefill_tok_s);
        self.decode_tok_s = self.decode_tok_s.max(other.decode_tok_s);
    }
}

/// The fastest of up to `runs` runs (at least one), prefill and decode each, stopping once the
/// runs add up to `within_s` of measured time: noise on a shared machine only ever slows a run
/// down.
pub fn fastest(
    key: &Key,
    model: &Path,
    text: &str,
    budget: Option<(f64, f64)>,
    runs: usize,
    within_s: f64,
) -> anyhow::Result<Run> {
    fastest_of(runs, within_s, || run(key, model, text, budget))
}

/// The fastest of up to `runs` results of `one` (at least one), prefill and decode each,
/// stopping once they add up to `within_s` of measured time.
pub fn fastest_of(runs: usize, within_s: f64, mut one: impl FnMut() -> anyhow::Result<Run>) -> anyhow::Result<Run> {
    let mut best = one()?;
    let mut spent = best.seconds();
    for _ in 1..runs {
        if spent >= within_s {
            break;
        }
        let r = one()?;
        spent += r.seconds();
        best.keep_fastest(&r);
    }
    Ok(best)
}

/// One `sotto generate --json` run of `text`: ungoverned (`budget` None: 100/100, normal
/// class) or at the budget and the key's class.
pub fn run(key: &Key, model: &Path, text: &str, budget: Option<(f64, f64)>) -> anyhow::Result<Run> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["generate", "--json", "--raw", "--model", &model.display().to_string()]);
    c.args(["--max-tokens", &GENERATE.to_string(), "--prompt", text, "--set", "cache.persist=false"]);
    c.args(["--threads", &key.threads.to_string(), "--threads-batch", &key.threads_batch.to_string()]);
    match budget {
        None => c.args(["--cpu-mean", "100%", "--cpu-peak", "100%", "--sched", "normal"]),
        Some((mean, peak)) => c.args([
            "--cpu-mean",
            &format!("{}%", mean * 100.0),
            "--cpu-peak",
            &format!("{}%", peak * 100.0),
            "--sched",
            &key.sched,
        ]),
    };
    let out = c.output()?;
    anyhow::ensure!(
        out.status.success(),
        "calibration run of {} failed ({}): {}",
        model.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    let number = |k: &str| v[k].as_f64().filter(|x| *x > 0.0).ok_or_else(|| anyhow::anyhow!("no `{k}` in {v}"));
    Ok(Run {
        prompt_tokens: number("prompt_tokens")?,
        generated_tokens: number("generated_tokens")?,
        prefill_tok_s: number("prefill_tok_s")?,
        decode_tok_s: number("decode_tok_s")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_model_reads_a_cut_of_the_text_at_a_character_boundary() {
        let text = "é".repeat(400);
        let cut = text_for(Path::new("/cache").join(SYNTHETIC).as_path(), &text);
        assert!(cut.len() <= SYNTHETIC_TEXT && cut.len() >= SYNTHETIC_TEXT - 1 && text.starts_with(&cut));
        assert_eq!(text_for(Path::new("/m/gemma.gguf"), &text), text);
    }

    #[test]
    fn the_calibration_text_is_the_instructions_and_one_event() {
        let t = text();
        assert_eq!(t.matches("\n\nEvent:").count(), 1, "{t}");
        assert!(t.ends_with("Verdict:"));
    }
}
