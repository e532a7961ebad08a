//! The calibration `sotto plan` predicts from: the fetched default models run here, at the budget's
//! thread plan, ungoverned and at the budget, each through `sotto generate --json` in a process of
//! its own (a process-wide governor cannot be two budgets at once); and, the same two ways, the
//! default model re-quantized to Q4_0 and Q8_0 by llama.cpp's quantizer (the rates of llama.cpp's tiled
//! kernels), a synthetic 4-layer 2048-wide Q4_0 llama (`sotto_models::synth`: how the cost per
//! weight falls on wider matrices; run again in chunks of 1 to 32 tokens, what the governor's
//! small chunks cost, [`small_costs`]), a 40-layer 512-wide one (the decode cost per layer) and that
//! one in Q4_K_M (the K-quants' bandwidth), all kept in the cache directory. The budget's ratio is
//! two, one for the Q4_0 layers llama.cpp repacks (`Fit::governed_repacked`) and one for the rest,
//! each fitted on every model of its class. Each figure is the
//! fastest of its runs: on a shared machine noise only ever slows a run down. The runs go in passes
//! over every figure (a model's ungoverned run beside its governed one, so the budget's ratio is
//! measured side by side), at least [`MIN_RUNS`] and at most [`RUNS`] of each, until each figure's
//! two fastest runs agree within [`AGREE`]: a slow stretch then costs one run of each figure, not
//! all of one figure's runs, and a noisy machine is measured longer instead of wrongly. Two to four
//! minutes (27 runs, 2 min 47 s, on 2 CPUs on 2026-12-03; with the small chunks, 40 runs, 1 min 26 s
//! on a faster EPYC on 2026-12-04; with every model at the budget too, 47 to 58 runs, 2 min 2 s
//! for `plan --recalibrate` on that EPYC); cached in the state directory under
//! everything that changes the figures (CPU, usable CPUs, threads, budgets, chunk, scheduling
//! class, sotto's version, the models' files), so a second `plan` answers at once. `--recalibrate`
//! measures again.
//!
//! Must not: reuse a calibration taken under another key, or keep one that failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sotto_models::GgufHeader;
use sotto_models::predict::{Chunking, Fit, Point, SMALL_CHUNKS, Shape};

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
    /// The wide synthetic model's ungoverned prefill tokens/s in chunks of each of
    /// [`SMALL_CHUNKS`] under the key's chunk, and of one token (empty: not measured).
    #[serde(default)]
    pub chunks: Vec<(f64, f64)>,
    /// Runs taken, all figures together.
    #[serde(default)]
    pub runs: usize,
}

/// How calibrations are measured: raised whenever what a run measures changes (its text, or
/// how the governor cuts and paces it), so that a cached calibration of an older build is
/// measured again. 2: the governor sizes chunks for the configured threads, and a point's
/// shape holds its output matrix's bytes. 3: runs go in passes until the fastest two agree.
/// 4: a second synthetic model, deep and narrow, for the decode cost per layer. 5: a point's
/// shape holds its bytes by kernel class. 6: the deep model in Q4_K_M too. 7: the wide model
/// in small chunks too. 8: the variants at the budget too.
const METHOD: u32 = 8;

/// sotto's version and the calibration [`METHOD`], for the key.
pub fn version() -> String {
    format!("{} calibration {METHOD}", env!("CARGO_PKG_VERSION"))
}

/// Tokens generated per calibration run.
const GENERATE: u32 = 24;
/// Most runs of one calibration figure, and the fewest; the fastest counts.
pub const RUNS: usize = 5;
pub const MIN_RUNS: usize = 2;
/// Two runs agree when the slower is within this fraction of the faster, prefill and decode
/// each.
pub const AGREE: f64 = 0.10;
/// The synthetic calibration models' files, in the cache directory, and their shapes.
const WIDE: &str = "synth-calibration-llama-4x2048-q4_0.gguf";
const DEEP: &str = "synth-calibration-llama-40x512-q4_0.gguf";
const SYNTHETIC: [(&str, sotto_models::synth::Dims); 2] =
    [(WIDE, sotto_models::synth::Dims::WIDE), (DEEP, sotto_models::synth::Dims::DEEP)];
/// Bytes of the calibration text the synthetic models read: their vocabulary is bytes, so
/// this is their prompt's length in tokens, about the other models' count.
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
/// in Q4_0 and Q8_0, and the synthetic wide and deep models, made in `dir` unless they are
/// there.
pub fn variants(shipped: &[PathBuf], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Some(first) = shipped.first() else { return Ok(Vec::new()) };
    let mut out: Vec<PathBuf> = [sotto_engine::QuantType::Q4_0, sotto_engine::QuantType::Q8_0]
        .into_iter()
        .map(|to| requantized(first, to, dir))
        .collect::<anyhow::Result<_>>()?;
    for (name, dims) in SYNTHETIC {
        let synthetic = dir.join(name);
        if !synthetic.exists() {
            std::fs::create_dir_all(dir)?;
            sotto_models::synth::write_llama(&synthetic, &dims).map_err(|e| {
                anyhow::anyhow!("cannot write the synthetic calibration model {}: {e}", synthetic.display())
            })?;
        }
        out.push(synthetic);
    }
    // The deep model in Q4_K_M: K-quant bytes alone (the shipped models' rows are 576 and 640
    // wide, not a multiple of K-quants' 256-weight blocks, so llama.cpp keeps most of their
    // bytes in Q8_0 or Q5_0, and the K-quants' bandwidth was a residual, off by 2-3 times).
    out.push(requantized(&dir.join(DEEP), sotto_engine::QuantType::Q4KM, dir)?);
    Ok(out)
}

/// The text `model` reads: the calibration text, cut for the synthetic model, whose tokens are
/// bytes.
pub fn text_for(model: &Path, text: &str) -> String {
    // A synthetic model's file, or a re-quantization of it (`{stem}.requant-{type}.gguf`).
    let name = model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    if SYNTHETIC.iter().any(|(file, _)| name.starts_with(file.trim_end_matches(".gguf"))) {
        text[..text.floor_char_boundary(SYNTHETIC_TEXT)].to_owned()
    } else {
        text.to_owned()
    }
}

/// The governor's chunking at the key's threads and budget, small chunks not measured.
pub fn chunking(key: &Key) -> Chunking {
    let target = sotto_governor::pacer::step_target(key.threads_batch, key.cpu_mean, key.cpu_peak, key.cpus);
    Chunking { target_s: target.map(|d| d.as_secs_f64()), max: f64::from(key.chunk), small: None }
}

/// The chunk sizes the wide model is measured at: one token and each of [`SMALL_CHUNKS`] under
/// the key's largest chunk (at which it is measured as a variant).
fn small_chunks(key: &Key) -> Vec<f64> {
    std::iter::once(1.0).chain(SMALL_CHUNKS).filter(|n| *n < f64::from(key.chunk)).collect()
}

/// What small chunks cost ([`Chunking::small`]) from the wide model's prefill tokens/s in
/// chunks of the key's largest (`large`) and in `chunks` ((tokens, tokens/s), one token
/// among them): at `n` tokens, `(t(n) − t(large)) / (t(1) − t(large))` of seconds a token
/// `t`, within 0 and 1; `None` without the one-token figure or when one token at a time was
/// not slower than the large chunks (nothing to share out).
pub fn small_costs(large: f64, chunks: &[(f64, f64)]) -> Option<[f64; SMALL_CHUNKS.len()]> {
    let seconds = |n: f64| chunks.iter().find(|(at, _)| *at == n).map(|(_, tok_s)| 1.0 / tok_s);
    let (one, large) = (seconds(1.0)?, 1.0 / large);
    if !(one > large && large.is_finite()) {
        return None;
    }
    Some(SMALL_CHUNKS.map(|n| seconds(n).map_or(0.0, |t| ((t - large) / (one - large)).clamp(0.0, 1.0))))
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
        "calibrating: {} at {} thread(s) ({} for prompts), ungoverned and at {:.0}/{:.0}% (two to four minutes, once)",
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

/// A run's (mean, peak) budget; `None`: ungoverned.
type Budget = Option<(f64, f64)>;

/// Measures `models` and `variants` ungoverned and at the budget, the wide model in small
/// chunks too, in passes (see the module's doc), and fits them.
pub fn measure(key: &Key, models: &[PathBuf], variants: &[PathBuf]) -> anyhow::Result<Calibration> {
    // Every header first: a file that is not a model fails before minutes of runs.
    let shapes: Vec<Shape> = models
        .iter()
        .chain(variants)
        .map(|m| GgufHeader::read(m).map(|h| Shape::from_header(&h)))
        .collect::<Result<_, _>>()?;
    let text = text();
    let budget: Budget = Some((key.cpu_mean, key.cpu_peak));
    let figures: Vec<(&PathBuf, String, Budget, Option<f64>)> =
        figures(key, models, variants).into_iter().map(|(m, b, n)| (m, text_for(m, &text), b, n)).collect();
    let mut found: Vec<Option<Fastest>> = vec![None; figures.len()];
    for _ in 0..RUNS {
        for ((model, text, budget, chunk), found) in figures.iter().zip(&mut found) {
            if found.as_ref().is_some_and(Fastest::settled) {
                continue;
            }
            let r = run(key, model, text, *budget, *chunk)?;
            match found {
                Some(f) => f.add(&r),
                None => *found = Some(Fastest::new(r)),
            }
        }
        if found.iter().all(|f| f.as_ref().is_some_and(Fastest::settled)) {
            break;
        }
    }
    let fastest = |model: &PathBuf, budget: Budget| {
        figures
            .iter()
            .zip(&found)
            .find(|((m, _, b, n), _)| *m == model && *b == budget && n.is_none())
            .and_then(|(_, f)| f.as_ref())
    };
    let mut points = Vec::new();
    for (model, shape) in models.iter().chain(variants).zip(shapes) {
        let raw =
            fastest(model, None).map(Fastest::run).ok_or_else(|| anyhow::anyhow!("no run of {}", model.display()))?;
        let governed = fastest(model, budget).map(|g| (g.run().prefill_tok_s, g.run().decode_tok_s));
        let name = model.file_name().map_or_else(|| model.display().to_string(), |f| f.to_string_lossy().into());
        let point = Point {
            shape,
            prefill_tok_s: raw.prefill_tok_s,
            decode_tok_s: raw.decode_tok_s,
            governed,
            prompt_tokens: raw.prompt_tokens,
        };
        points.push((name, point));
    }
    let chunks: Vec<(f64, f64)> = figures
        .iter()
        .zip(&found)
        .filter_map(|((_, _, _, n), f)| Some((n.as_ref().copied()?, f.as_ref()?.run().prefill_tok_s)))
        .collect();
    let fit = fit(key, &points, &chunks)?;
    let runs = found.iter().flatten().map(|f| f.runs).sum();
    Ok(Calibration { key: key.clone(), date: super::super::bench::date(), points, fit, chunks, runs })
}

/// What a calibration runs, in order: (model, budget, forced chunk). Each model's figures next
/// to each other, ungoverned, then at the budget (the budget's ratio, one for the layers
/// llama.cpp repacks and one for the rest, [`Chunking::repacked`], is fitted on every model
/// of its class); the wide model in small chunks after its own.
fn figures<'a>(key: &Key, models: &'a [PathBuf], variants: &'a [PathBuf]) -> Vec<(&'a PathBuf, Budget, Option<f64>)> {
    let budget: Budget = Some((key.cpu_mean, key.cpu_peak));
    let wide = variants.iter().find(|v| v.file_name().is_some_and(|f| f == WIDE));
    models
        .iter()
        .chain(variants)
        .flat_map(|m| [(m, None), (m, budget)])
        .map(|(m, b)| (m, b, None))
        .chain(wide.into_iter().flat_map(|w| small_chunks(key).into_iter().map(move |n| (w, None, Some(n)))))
        .collect()
}

/// The fit of `points`, small chunks costed from `chunks` against the wide model's point.
fn fit(key: &Key, points: &[(String, Point)], chunks: &[(f64, f64)]) -> anyhow::Result<Fit> {
    let large = points.iter().find(|(n, _)| n == WIDE).map(|(_, p)| p.prefill_tok_s);
    let chunking = Chunking { small: large.and_then(|l| small_costs(l, chunks)), ..chunking(key) };
    Fit::from_points(&points.iter().map(|p| p.1).collect::<Vec<_>>(), chunking)
        .ok_or_else(|| anyhow::anyhow!("the calibration measured no speed"))
}

impl Calibration {
    /// The fit taken again from this calibration's figures, by this build's predictor.
    pub fn refit(self) -> anyhow::Result<Calibration> {
        let fit = fit(&self.key, &self.points, &self.chunks)?;
        Ok(Calibration { fit, ..self })
    }

    /// Each figure the faster of this calibration's and `other`'s (the same key's, measured
    /// later), and the fit taken again: a machine whose speed drifts over minutes is measured
    /// at its best over a longer stretch. `other`'s models must be this one's.
    pub fn fastest_with(self, other: &Calibration) -> anyhow::Result<Calibration> {
        let mut points = self.points;
        for (name, p) in &mut points {
            let (_, q) = other
                .points
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| anyhow::anyhow!("the second calibration has no point of {name}"))?;
            p.prefill_tok_s = p.prefill_tok_s.max(q.prefill_tok_s);
            p.decode_tok_s = p.decode_tok_s.max(q.decode_tok_s);
            p.governed = match (p.governed, q.governed) {
                (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
                (a, b) => a.or(b),
            };
        }
        let mut chunks = self.chunks;
        for (n, tok_s) in &mut chunks {
            if let Some((_, q)) = other.chunks.iter().find(|(m, _)| m == n) {
                *tok_s = tok_s.max(*q);
            }
        }
        let fit = fit(&self.key, &points, &chunks)?;
        Ok(Calibration { key: self.key, date: self.date, points, fit, chunks, runs: self.runs + other.runs })
    }
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
}

/// The fastest runs of one figure so far, prefill and decode each, and the second fastest of
/// each: noise only ever slows a run down, so a figure is settled once its two fastest runs
/// agree (within [`AGREE`]), and not before [`MIN_RUNS`].
#[derive(Debug, Clone, Copy)]
pub struct Fastest {
    best: Run,
    /// The second fastest (prefill, decode) tokens/s.
    second: (f64, f64),
    runs: usize,
}

impl Fastest {
    pub fn new(first: Run) -> Fastest {
        Fastest { best: first, second: (0.0, 0.0), runs: 1 }
    }

    pub fn add(&mut self, r: &Run) {
        let keep = |best: &mut f64, second: &mut f64, new: f64| {
            if new > *best {
                *second = *best;
                *best = new;
            } else if new > *second {
                *second = new;
            }
        };
        keep(&mut self.best.prefill_tok_s, &mut self.second.0, r.prefill_tok_s);
        keep(&mut self.best.decode_tok_s, &mut self.second.1, r.decode_tok_s);
        self.runs += 1;
    }

    /// The fastest prefill and the fastest decode, with the first run's token counts.
    pub fn run(&self) -> Run {
        self.best
    }

    pub fn runs(&self) -> usize {
        self.runs
    }

    pub fn settled(&self) -> bool {
        let agree = |best: f64, second: f64| second >= best * (1.0 - AGREE);
        self.runs >= MIN_RUNS
            && agree(self.best.prefill_tok_s, self.second.0)
            && agree(self.best.decode_tok_s, self.second.1)
    }
}

/// The results of `one` until the fastest two agree ([`Fastest::settled`]), at most `runs` of
/// them (at least one), and no more once they add up to `within_s` of measured time.
pub fn fastest_of(runs: usize, within_s: f64, mut one: impl FnMut() -> anyhow::Result<Run>) -> anyhow::Result<Fastest> {
    let first = one()?;
    let mut spent = first.seconds();
    let mut found = Fastest::new(first);
    while found.runs < runs && spent < within_s && !found.settled() {
        let r = one()?;
        spent += r.seconds();
        found.add(&r);
    }
    Ok(found)
}

/// One `sotto generate --json` run of `text`: ungoverned (`budget` None: 100/100, normal
/// class) or at the budget and the key's class; in chunks of `chunk` tokens, else the key's.
pub fn run(key: &Key, model: &Path, text: &str, budget: Option<(f64, f64)>, chunk: Option<f64>) -> anyhow::Result<Run> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["generate", "--json", "--raw", "--model", &model.display().to_string()]);
    c.args(["--max-tokens", &GENERATE.to_string(), "--prompt", text, "--set", "cache.persist=false"]);
    c.args(["--threads", &key.threads.to_string(), "--threads-batch", &key.threads_batch.to_string()]);
    c.args(["--chunk", &chunk.map_or(key.chunk, |n| n as u32).to_string()]);
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
    use sotto_models::predict::Kernel;

    use super::*;

    #[test]
    fn the_synthetic_model_reads_a_cut_of_the_text_at_a_character_boundary() {
        let text = "é".repeat(400);
        let cut = text_for(Path::new("/cache").join(DEEP).as_path(), &text);
        assert!(cut.len() <= SYNTHETIC_TEXT && cut.len() >= SYNTHETIC_TEXT - 1 && text.starts_with(&cut));
        let requantized = format!("{}.requant-Q4_K_M.gguf", DEEP.trim_end_matches(".gguf"));
        assert_eq!(text_for(&Path::new("/cache").join(requantized), &text), cut, "its tokens are bytes too");
        assert_eq!(text_for(Path::new("/m/gemma.gguf"), &text), text);
    }

    fn run(prefill: f64, decode: f64) -> Run {
        Run { prompt_tokens: 250.0, generated_tokens: 24.0, prefill_tok_s: prefill, decode_tok_s: decode }
    }

    /// A 1-thread 35/50 key with a largest chunk of `chunk`.
    fn key(chunk: u32) -> Key {
        Key {
            cpu: "test".into(),
            cpus: 2.0,
            threads: 1,
            threads_batch: 1,
            cpu_mean: 0.35,
            cpu_peak: 0.5,
            sched: "idle".into(),
            chunk,
            version: version(),
            models: Vec::new(),
        }
    }

    #[test]
    fn two_calibrations_keep_each_figures_faster_and_fit_again() {
        let key = key(128);
        let shape = |bytes: f64, kernel| Shape {
            decode_bytes: bytes,
            output_bytes: 0.0,
            layer_params: bytes * 2.0,
            output_params: 0.0,
            rows: 1e5,
            layers: 20.0,
            kernel,
            decode_mix: [0.0; 4],
            output_kernel: None,
        };
        let point =
            |s, p, d, g| Point { shape: s, prefill_tok_s: p, decode_tok_s: d, governed: g, prompt_tokens: 300.0 };
        let calibration = |points: Vec<(String, Point)>, chunks: Vec<(f64, f64)>| {
            let fit = fit(&key, &points, &chunks).unwrap();
            Calibration { key: key.clone(), date: "d".into(), points, fit, chunks, runs: 10 }
        };
        let (a, b) = (shape(100e6, Kernel::Q4_1), shape(200e6, Kernel::Q4_0));
        // The first calibration fell in a slow minute for prefill, the second for decode; the
        // wide model's small chunks each ran faster in one of them.
        let slow_prefill = calibration(
            vec![("a".into(), point(a, 100.0, 50.0, Some((60.0, 35.0)))), (WIDE.into(), point(b, 80.0, 30.0, None))],
            vec![(1.0, 30.0), (2.0, 40.0), (4.0, 50.0)],
        );
        let slow_decode = calibration(
            vec![("a".into(), point(a, 130.0, 40.0, Some((70.0, 30.0)))), (WIDE.into(), point(b, 100.0, 25.0, None))],
            vec![(1.0, 35.0), (2.0, 38.0), (4.0, 60.0)],
        );
        let both = slow_prefill.clone().fastest_with(&slow_decode).unwrap();
        let a = both.points[0].1;
        assert_eq!((a.prefill_tok_s, a.decode_tok_s, a.governed), (130.0, 50.0, Some((70.0, 35.0))));
        assert_eq!((both.points[1].1.prefill_tok_s, both.points[1].1.decode_tok_s), (100.0, 30.0));
        assert_eq!(both.chunks, vec![(1.0, 35.0), (2.0, 40.0), (4.0, 60.0)]);
        assert_eq!(both.runs, 20);
        let fresh = calibration(both.points.clone(), both.chunks.clone());
        assert_eq!(both.fit, fresh.fit, "fitted again on the faster figures");
        assert_eq!(both.fit.chunking.small, small_costs(100.0, &both.chunks), "small chunks against the wide model");
        assert!(both.fit.chunking.small.is_some());
        assert!(both.fit.raw(&a.shape).prefill_s < slow_prefill.fit.raw(&a.shape).prefill_s);
        // A second calibration of other models is refused, not merged.
        let other = calibration(vec![("c".into(), point(b, 1.0, 1.0, None))], Vec::new());
        assert!(slow_prefill.fastest_with(&other).is_err());
    }

    #[test]
    fn small_chunks_cost_their_share_of_what_one_token_at_a_time_costs_beyond_large_ones() {
        // 10 ms a token in large chunks, 20 ms one at a time.
        let chunks = [(1.0, 50.0), (2.0, 1.0 / 0.018), (4.0, 1.0 / 0.013), (8.0, 1.0 / 0.009)];
        let small = small_costs(100.0, &chunks).unwrap();
        let expected = [0.8, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0];
        assert!(
            small.iter().zip(expected).all(|(f, e)| (f - e).abs() < 1e-9),
            "{small:?}: faster than large is 0, unmeasured 0"
        );
        assert_eq!(small_costs(100.0, &chunks[1..]), None, "without the one-token figure");
        assert_eq!(small_costs(50.0, &chunks), None, "one token at a time no slower than large chunks");
        assert_eq!(small_costs(0.0, &chunks), None);
    }

    #[test]
    fn the_wide_model_is_measured_in_chunks_under_the_keys_largest() {
        assert_eq!(small_chunks(&key(128)), vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0]);
        assert_eq!(small_chunks(&key(8)), vec![1.0, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(small_chunks(&key(1)), Vec::<f64>::new());
    }

    #[test]
    fn every_model_is_measured_ungoverned_and_at_the_budget_and_the_wide_one_in_small_chunks() {
        let key = key(8);
        let path = |n: &str| PathBuf::from(n);
        let models = [path("gemma.gguf"), path("smol.gguf")];
        let variants = [path("gemma.requant-Q8_0.gguf"), path(WIDE)];
        let budget = Some((0.35, 0.5));
        let taken: Vec<(&str, Budget, Option<f64>)> =
            figures(&key, &models, &variants).into_iter().map(|(m, b, n)| (m.to_str().unwrap(), b, n)).collect();
        let chunks = [1.0, 2.0, 3.0, 4.0, 6.0].map(|n| (WIDE, None, Some(n)));
        let expected: Vec<(&str, Budget, Option<f64>)> = [
            ("gemma.gguf", None, None),
            ("gemma.gguf", budget, None),
            ("smol.gguf", None, None),
            ("smol.gguf", budget, None),
            ("gemma.requant-Q8_0.gguf", None, None),
            ("gemma.requant-Q8_0.gguf", budget, None),
            (WIDE, None, None),
            (WIDE, budget, None),
        ]
        .into_iter()
        .chain(chunks)
        .collect();
        assert_eq!(taken, expected);
    }

    /// Noise only slows a run down: a figure is the fastest prefill and the fastest decode, and
    /// it is settled once the two fastest of each agree, never on one run.
    #[test]
    fn a_figure_is_settled_when_its_two_fastest_runs_agree() {
        let mut f = Fastest::new(run(100.0, 20.0));
        assert!(!f.settled(), "one run settles nothing");
        f.add(&run(60.0, 19.5));
        assert!(!f.settled(), "a slow prefill does not confirm the fast one");
        f.add(&run(95.0, 14.0));
        assert!(f.settled(), "prefill 95 of 100 and decode 19.5 of 20 agree");
        assert_eq!((f.run().prefill_tok_s, f.run().decode_tok_s, f.runs()), (100.0, 20.0, 3));
        // A faster run later moves the best up, and the old best becomes the second.
        f.add(&run(130.0, 20.0));
        assert!(!f.settled(), "130 against 100 disagrees");
        assert_eq!(f.run().prefill_tok_s, 130.0);
    }

    /// Runs stop at agreement, at the count, or once they add up to the time allowed, and never
    /// before the first.
    #[test]
    fn runs_stop_at_agreement_the_count_or_the_time() {
        let taken = |speeds: &[f64], runs: usize, within_s: f64| {
            let mut left = speeds.iter();
            let f = fastest_of(runs, within_s, || Ok(run(*left.next().expect("asked for too many runs"), 24.0)))
                .expect("runs");
            (f.runs(), f.run().prefill_tok_s)
        };
        assert_eq!(taken(&[50.0, 100.0, 97.0, 10.0], 5, 1e9), (3, 100.0));
        assert_eq!(taken(&[50.0, 100.0, 70.0, 10.0], 3, 1e9), (3, 100.0));
        // A run of 250 tokens at 10/s is 25 s, plus one second of decode.
        assert_eq!(taken(&[10.0, 10.0], 5, 20.0), (1, 10.0));
    }

    #[test]
    fn the_calibration_text_is_the_instructions_and_one_event() {
        let t = text();
        assert_eq!(t.matches("\n\nEvent:").count(), 1, "{t}");
        assert!(t.ends_with("Verdict:"));
    }
}
