//! How fast a model will run on this machine, predicted from what it is made of and from a
//! calibration measured here (seed 004: tiers picked from RAM and core count promised 15 s
//! and delivered minutes). Pure arithmetic; the calibration itself is measured by `sotto plan`.
//!
//! Per token, at a fixed thread count:
//! - decode reads every weight it multiplies, and each layer costs a little beyond its bytes
//!   (its operations dispatched, the threads joined after each):
//!   `decode_s = Σ bytes[kernel] / bandwidth[kernel] + layers × per_layer`. The output
//!   matrix is read in full for every token (tied: the token embedding itself), the token
//!   embedding only one row at a time. The bandwidth is per kernel class because unpacking a
//!   block costs more for some types, and each tensor's bytes go under their own class: a
//!   quantized file keeps its output matrix in another type than its layers (Gemma 3's Q4_0
//!   re-quantization is three quarters Q8_0 bytes, which streamed 45% faster than Q4_0 on an
//!   EPYC; counted as Q4_0 they put a 3B Q4_0 model 19% under). K-quants are measured on a
//!   K-quant file of their own: in the shipped models they are a quarter of the bytes or
//!   less, and as a residual their bandwidth came out 48 GB/s. The per-layer cost is
//!   told apart by models of 4, 18 and 40 layers in the calibration; without it,
//!   SmolLM2's 30 narrow layers re-quantized decoded 20-44% slower than predicted and a
//!   24-layer 0.5B model 12-31% (2026-12-03). A per-row term was tried before it and left
//!   out: fitted on models of 4 to 30 layers it took SmolLM2's slow Q4_1 decode for a cost
//!   of rows and put a 0.5B model 50% over.
//! - prefill is compute-bound: `prefill_s = layer_params × cost[kernel] + rows × per_row`.
//!   The cost depends on the weights' type, because llama.cpp multiplies Q4_0 and Q8_0
//!   matrices with its tiled kernels and other types one dot product at a time (1.3 to 1.7
//!   times slower per weight here); the per-row term is what makes wide matrices cheaper per
//!   weight than narrow ones. The calibration measures a synthetic 2048-wide Q4_0 model
//!   beside the shipped ones (576 and 640 wide), so that the row term is fitted, not guessed.
//! - under a budget, prefill runs in chunks the governor sizes to its step target from the
//!   cost per token it has learned so far: a chunk of `n` tokens costs `n` prefill tokens plus
//!   a share of what one token at a time costs beyond them (one decode step's streaming of the
//!   layers' weights, less a prefill token): measured for Q4_0 layers, all of it once a chunk
//!   for the other classes (the `chunking` module says why). The output matrix is left out of
//!   the streamed token: a prompt chunk runs it for its last token only, never for a chunk in the middle (with Gemma 3's 262k vocabulary it is 72% of a decoded
//!   token's reads; counted, it made Gemma's chunks look half as large as they were). The
//!   predictor replays that loop ([`Chunking::prompt_s`]), so a model too big for the target
//!   prefills one token at a time, at the layers' decode speed. What the duty cycle costs
//!   beyond that is a ratio measured on the calibration models, one for Q4_0 layers and one
//!   for the rest: the Q4_0 curve is measured back to back, and between the governor's rests
//!   the same chunks ran faster (a 1B model's chunks of 4 at 2 threads, 10.75 ms a token
//!   governed against 13.3 back to back), so with the shipped models' ratio (0.32 at 2
//!   threads and 35/50) every Q4_0 model came out 18-45% slow there and two held-out rows
//!   missed 25% (`bench/runs/2026-12-04-epyc-2cpu-plan-chunks-2`). The calibration runs
//!   every model at the budget, and each class's ratio is fitted on its own models (with the
//!   other class's ratio fitted on the shipped models only, a 40-layer Q4_K_M model came out
//!   25% fast at 2 threads, `bench/runs/2026-12-04-epyc-2cpu-plan-repacked`). The Q4_0
//!   ratio is a residual, not a duty cycle: it came out 0.79 at 1 thread and 35/50, above
//!   the 0.70 duty cycle there, because it also takes back what the back-to-back curve
//!   charges in excess (`bench/runs/2026-12-04-epyc-2cpu-plan-all`, 48 of 48 rows within 25%).
//!   Attention as a term of its own was tried and left out (656d592, 3a73ff0, reverted;
//!   `bench/runs/2026-12-04-epyc-2cpu-plan-attention*`). It is real: llama.cpp's CPU flash
//!   attention runs a chunk under 64 tokens one query row at a time, about 2.5 times as dear
//!   per context token as its tiled kernel, so the 40-layer 512-wide model prefilled 1.9 times
//!   slower in chunks of 32 than of 128. But fitted apart (on that model's prompts at two
//!   lengths and two chunk sizes) it took the shipped models' slowdown at the budget for
//!   attention, the budget's ratio rose from 0.6 to 0.72, and 1B-3B models, which have little
//!   attention per weight, came out 26% faster than measured at 35/50 (15 of 20 held-out rows
//!   within 25%, against 18-19 without it). What those models lose in the governor's small
//!   chunks was the matrix kernels' efficiency on so few columns, now measured (above); the
//!   wide model it is measured on has little attention, so row-by-row attention is still
//!   left out.
//!
//! Must not: read RAM or core count to guess a tier (the calibration is the only source of
//! speed), or extrapolate a row or layer term that came out negative (the fit goes without
//! it).

use serde::{Deserialize, Serialize};

use crate::GgufHeader;

mod chunking;

pub use chunking::{Chunking, SMALL_CHUNKS};

/// How llama.cpp multiplies a weight type during prefill on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// Tiled matrix kernels (Q4_0).
    Q4_0,
    /// Tiled matrix kernels (Q8_0).
    Q8_0,
    /// Q4_1: one dot product at a time.
    Q4_1,
    /// Every other type (K-quants, Q5_0, ...): one dot product at a time.
    Other,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [Kernel::Q4_0, Kernel::Q8_0, Kernel::Q4_1, Kernel::Other];

    /// The place of the class in [`Kernel::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class of a ggml type id.
    pub fn of_type(ggml_type: u32) -> Kernel {
        match ggml_type {
            2 => Kernel::Q4_0,
            3 => Kernel::Q4_1,
            8 => Kernel::Q8_0,
            _ => Kernel::Other,
        }
    }

    /// The class of a quantization name (`Q4_K_M`, `Q8_0`, ...).
    pub fn of_quant(name: &str) -> Kernel {
        match name.to_ascii_uppercase().as_str() {
            "Q4_0" => Kernel::Q4_0,
            "Q4_1" => Kernel::Q4_1,
            "Q8_0" => Kernel::Q8_0,
            _ => Kernel::Other,
        }
    }
}

/// What the predictor needs of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Bytes a decoded token reads: every weight but the token embedding's unused rows.
    pub decode_bytes: f64,
    /// Of those, the output matrix's (tied: the token embedding's).
    #[serde(default)]
    pub output_bytes: f64,
    /// Parameters every prompt token is multiplied with: the layers' weights.
    pub layer_params: f64,
    /// Parameters of the output matrix (tied: the token embedding). A prompt chunk runs it
    /// for its last token; an embedding request for every token (llama.cpp computes the
    /// vocabulary's logits for each output).
    pub output_params: f64,
    /// Output rows of every layer matrix, summed: dot products per token.
    pub rows: f64,
    /// Transformer blocks: each costs a decoded token its operations' dispatch and thread
    /// barriers beyond the bytes it reads.
    #[serde(default)]
    pub layers: f64,
    /// The kernel class of most layer weights.
    pub kernel: Kernel,
    /// `decode_bytes` by the kernel class that reads them, in [`Kernel::ALL`]'s order (a
    /// quantized file keeps its output matrix in another type than its layers: Gemma 3's Q4_0
    /// re-quantization is three quarters Q8_0 bytes); all 0: every byte `kernel`'s (a
    /// catalogue entry).
    #[serde(default)]
    pub decode_mix: [f64; 4],
    /// The output matrix's kernel class; `None`: `kernel`.
    #[serde(default)]
    pub output_kernel: Option<Kernel>,
}

impl Shape {
    /// From the tensors of a GGUF file: exact sizes per tensor.
    pub fn from_header(header: &GgufHeader) -> Shape {
        let bytes = |t: &crate::gguf::TensorInfo| t.bytes().unwrap_or(0) as f64;
        let has_output = header.tensors.iter().any(|t| t.name == "output.weight");
        let output = if has_output { "output.weight" } else { "token_embd.weight" };
        let (mut decode_bytes, mut output_bytes, mut layer_params, mut output_params, mut rows) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut by_kernel = std::collections::BTreeMap::<Kernel, f64>::new();
        let mut blocks = std::collections::BTreeSet::<&str>::new();
        // Vectors (norms, biases) go with the layers' kernel once it is known.
        let (mut mix, mut vectors) = ([0.0; 4], 0.0);
        let mut output_kernel = None;
        for t in &header.tensors {
            if t.name != "token_embd.weight" || !has_output {
                decode_bytes += bytes(t);
                if t.dims.len() >= 2 {
                    mix[Kernel::of_type(t.ggml_type).index()] += bytes(t);
                } else {
                    vectors += bytes(t);
                }
            }
            if let Some(rest) = t.name.strip_prefix("blk.") {
                blocks.insert(rest.split('.').next().unwrap_or(rest));
                layer_params += t.elements() as f64;
                if t.dims.len() >= 2 {
                    rows += t.dims[1..].iter().product::<u64>() as f64;
                    *by_kernel.entry(Kernel::of_type(t.ggml_type)).or_default() += t.elements() as f64;
                }
            }
            if t.name == output {
                output_params = t.elements() as f64;
                output_bytes = bytes(t);
                output_kernel = Some(Kernel::of_type(t.ggml_type));
            }
        }
        let kernel = by_kernel.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(Kernel::Other, |k| k.0);
        mix[kernel.index()] += vectors;
        Shape {
            decode_bytes,
            output_bytes,
            layer_params,
            output_params,
            rows,
            layers: blocks.len() as f64,
            kernel,
            decode_mix: mix,
            output_kernel,
        }
    }

    /// `decode_bytes` by kernel class: the mix read from the file, else all `kernel`'s.
    pub fn decode_mix(&self) -> Vec<(Kernel, f64)> {
        if self.decode_mix.iter().all(|b| *b == 0.0) {
            return vec![(self.kernel, self.decode_bytes)];
        }
        Kernel::ALL.into_iter().zip(self.decode_mix).filter(|(_, b)| *b > 0.0).collect()
    }

    /// From a catalogue entry's figures: weights of one file spread evenly over its
    /// parameters; `rows` per layer from its dimensions.
    pub fn from_figures(f: &Figures, quant: &str) -> Shape {
        let params = f.params.max(1) as f64;
        let embedding = f.embedding_params as f64;
        let bytes_per_param = f.file_bytes as f64 / params;
        let (decode_params, layer_params) =
            if f.tied { (params, params - embedding) } else { (params - embedding, params - 2.0 * embedding) };
        let per_layer = (f.heads + 2 * f.kv_heads) * f.head_dim + 2 * f.embedding_length + 2 * f.feed_forward_length;
        Shape {
            decode_bytes: decode_params * bytes_per_param,
            output_bytes: embedding * bytes_per_param,
            layer_params: layer_params.max(0.0),
            output_params: embedding,
            rows: (per_layer * f.layers) as f64,
            layers: f.layers as f64,
            kernel: Kernel::of_quant(quant),
            decode_mix: [0.0; 4],
            output_kernel: None,
        }
    }
}

/// A catalogue entry's figures, as [`Shape::from_figures`] reads them.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub params: u64,
    pub embedding_params: u64,
    pub tied: bool,
    pub layers: u64,
    pub embedding_length: u64,
    pub feed_forward_length: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub file_bytes: u64,
}

/// One model measured at one thread count and budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub shape: Shape,
    /// Ungoverned (100/100) tokens/s.
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// At the budget; `None` for a point measured ungoverned only (a kernel class's rate).
    pub governed: Option<(f64, f64)>,
    /// The measured prompt's tokens: the governor's first chunks are small, so what the
    /// budget costs depends on the prompt's length.
    pub prompt_tokens: f64,
}

/// The prompt length [`Fit::governed`] states its per-token figures at: about the standard
/// event.
pub const REFERENCE_PROMPT: f64 = 256.0;

/// The fitted speed of this machine at one thread count and budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Bytes per second a decoded token streams through, per kernel class measured.
    pub bandwidth: Vec<(Kernel, f64)>,
    /// Seconds per layer per decoded token beyond its bytes (0: not fitted).
    #[serde(default)]
    pub decode_per_layer: f64,
    /// Layer parameters per second of prefill, per kernel class measured.
    pub prefill_rate: Vec<(Kernel, f64)>,
    /// Seconds per output row per prompt token beyond the parameters.
    pub prefill_per_row: f64,
    pub chunking: Chunking,
    /// What the budget's duty cycle keeps of the raw speed, beyond the chunking: governed
    /// seconds a token = chunked raw seconds / this.
    pub governed_prefill: f64,
    /// The same for layers whose small chunks cost what the calibration measured
    /// ([`Chunking::repacked`]), fitted on the calibration's models of that class at the
    /// budget; `None`: none measured there, and [`Fit::governed_prefill`] stands.
    #[serde(default)]
    pub governed_repacked: Option<f64>,
    pub governed_decode: f64,
}

/// Seconds per token of one model, raw or at the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerToken {
    pub prefill_s: f64,
    pub decode_s: f64,
    /// A token of an embedding request: a prompt token that also runs the output matrix.
    pub embed_s: f64,
}

impl Fit {
    /// Fits the points (at least one with a positive speed). Decode: a bandwidth per kernel
    /// class, by least squares on relative error. Prefill: a cost per
    /// parameter for each kernel class and one cost per row, by least squares on relative
    /// error (without the rows term when it comes out negative or cannot be told apart). The
    /// budget's ratio: over the points measured at the budget, net of the chunking they went
    /// through.
    pub fn from_points(points: &[Point], chunking: Chunking) -> Option<Fit> {
        let usable: Vec<&Point> = points
            .iter()
            .filter(|p| p.prefill_tok_s > 0.0 && p.decode_tok_s > 0.0 && p.shape.layer_params > 0.0)
            .collect();
        if usable.is_empty() {
            return None;
        }
        let (bandwidth, decode_per_layer) = fit_decode(&usable);
        let (prefill_rate, prefill_per_row) = fit_prefill(&usable);
        if bandwidth.is_empty() || prefill_rate.is_empty() {
            return None;
        }
        let mut fit = Fit {
            bandwidth,
            decode_per_layer,
            prefill_rate,
            prefill_per_row,
            chunking,
            governed_prefill: 1.0,
            governed_repacked: None,
            governed_decode: 1.0,
        };
        let governed: Vec<(&Point, (f64, f64))> = usable.iter().filter_map(|p| Some((*p, p.governed?))).collect();
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64).clamp(1e-3, 1.0));
        // Each point's ratio, net of the chunks it went through.
        let kept = |repacked: bool| {
            mean(
                governed
                    .iter()
                    .filter(|(p, _)| Chunking::repacked(p.shape.kernel) == repacked)
                    .map(|(p, (gp, _))| {
                        let tokens = p.prompt_tokens.max(1.0);
                        let first = fit.first_token_s(&p.shape, 1.0 / p.decode_tok_s);
                        let chunked =
                            chunking.for_kernel(p.shape.kernel).prompt_s(tokens, 1.0 / p.prefill_tok_s, first, false)
                                / tokens;
                        chunked * gp
                    })
                    .collect(),
            )
        };
        let (streamed, repacked) = (kept(false), kept(true));
        fit.governed_prefill = streamed.or(repacked).unwrap_or(1.0);
        fit.governed_repacked = repacked;
        fit.governed_decode = mean(governed.iter().map(|(p, (_, gd))| gd / p.decode_tok_s).collect()).unwrap_or(1.0);
        Some(fit)
    }

    /// What the budget's duty cycle keeps of the raw prefill speed of `kernel`'s layers.
    pub fn governed_prefill_of(&self, kernel: Kernel) -> f64 {
        match self.governed_repacked {
            Some(r) if Chunking::repacked(kernel) => r,
            _ => self.governed_prefill,
        }
    }

    /// Layer parameters per second of prefill for `kernel`, and bytes per second of decode:
    /// its own, else the slowest measured (a kernel the calibration has no model of is not
    /// assumed to be fast).
    fn rate(&self, kernel: Kernel) -> f64 {
        of_kernel(&self.prefill_rate, kernel)
    }

    fn bandwidth(&self, kernel: Kernel) -> f64 {
        of_kernel(&self.bandwidth, kernel)
    }

    /// Seconds to stream `mix`'s bytes, each kernel class at its bandwidth.
    fn streaming_s(&self, mix: &[(Kernel, f64)]) -> f64 {
        mix.iter().map(|(k, b)| b / self.bandwidth(*k)).sum()
    }

    /// Ungoverned seconds per token of `shape` (prompts in chunks as large as allowed).
    pub fn raw(&self, shape: &Shape) -> PerToken {
        let rate = self.rate(shape.kernel);
        let rows = shape.rows * self.prefill_per_row;
        PerToken {
            prefill_s: shape.layer_params / rate + rows,
            decode_s: self.streaming_s(&shape.decode_mix()) + shape.layers * self.decode_per_layer,
            embed_s: (shape.layer_params + shape.output_params) / rate + rows,
        }
    }

    /// Seconds to prefill `tokens` prompt tokens of `shape` at the calibrated budget, in the
    /// chunks the governor would cut; `embed`: every token also runs the output matrix (an
    /// embedding request); `warm`: the governor has learned the model's cost (a daemon after
    /// its first prompt), else it starts with a small chunk (a fresh process).
    pub fn prompt_s(&self, shape: &Shape, tokens: f64, embed: bool, warm: bool) -> f64 {
        let raw = self.raw(shape);
        // An embedding chunk runs the output matrix for every token, its first one included.
        let (per_token, first) =
            if embed { (raw.embed_s, raw.decode_s) } else { (raw.prefill_s, self.first_token_s(shape, raw.decode_s)) };
        self.chunking.for_kernel(shape.kernel).prompt_s(tokens, per_token, first, warm)
            / self.governed_prefill_of(shape.kernel)
    }

    /// A plain prompt chunk's first token, from a decoded token's `decode_s` (predicted, or
    /// measured for a calibration point): the layers' streaming and per-layer cost, without
    /// the output matrix, which a chunk runs for its last token only.
    fn first_token_s(&self, shape: &Shape, decode_s: f64) -> f64 {
        let output = shape.output_bytes / self.bandwidth(shape.output_kernel.unwrap_or(shape.kernel));
        (decode_s - output).max(0.0)
    }

    /// Seconds per token of `shape` at the calibrated budget, prompts of
    /// [`REFERENCE_PROMPT`] tokens in the chunks a warm governor would cut.
    pub fn governed(&self, shape: &Shape) -> PerToken {
        let raw = self.raw(shape);
        PerToken {
            prefill_s: self.prompt_s(shape, REFERENCE_PROMPT, false, true) / REFERENCE_PROMPT,
            decode_s: raw.decode_s / self.governed_decode,
            embed_s: self.prompt_s(shape, REFERENCE_PROMPT, true, true) / REFERENCE_PROMPT,
        }
    }
}

/// The prefill fit: seconds a token `≈ layer_params × cost[kernel] + rows × per_row`. Returns
/// each kernel's rate (1 / cost) and the per-row cost; without the row term (0) when it comes
/// out negative or the points cannot tell it apart from the per-parameter costs (every kernel
/// class measured on one shape only).
fn fit_prefill(points: &[&Point]) -> (Vec<(Kernel, f64)>, f64) {
    let seconds = |p: &Point| 1.0 / p.prefill_tok_s;
    let params = |s: &Shape| vec![(s.kernel, s.layer_params)];
    fit_kernels(points, params, seconds, Some(|s: &Shape| s.rows))
        .or_else(|| fit_kernels(points, params, seconds, None))
        .unwrap_or_default()
}

/// The decode fit: seconds a token `≈ Σ bytes[kernel] / bandwidth[kernel] + layers ×
/// per_layer`, each tensor's bytes under its own kernel class; each kernel's bandwidth (empty
/// when the points fit none) and the per-layer cost, without it (0) when it comes out negative
/// or the points cannot tell it apart (no kernel class measured at two depths). When the mix
/// does not fit (a class that only ever appears beside others), every byte goes under the
/// layers' kernel, as before the mix was read.
fn fit_decode(points: &[&Point]) -> (Vec<(Kernel, f64)>, f64) {
    let seconds = |p: &Point| 1.0 / p.decode_tok_s;
    let layers: Option<fn(&Shape) -> f64> = Some(|s| s.layers);
    let mixed = |s: &Shape| s.decode_mix();
    let plain = |s: &Shape| vec![(s.kernel, s.decode_bytes)];
    fit_kernels(points, mixed, seconds, layers)
        .or_else(|| fit_kernels(points, mixed, seconds, None))
        .or_else(|| fit_kernels(points, plain, seconds, layers))
        .or_else(|| fit_kernels(points, plain, seconds, None))
        .unwrap_or_default()
}

/// Seconds `≈ Σ size[kernel] × cost[kernel] (+ extra × per_extra)`, by least squares on
/// relative error: each kernel's rate (1 / cost) and the cost per unit of `extra` (0 without
/// it); `None` unless every cost comes out positive and the extra cost not negative.
fn fit_kernels(
    points: &[&Point],
    size: impl Fn(&Shape) -> Vec<(Kernel, f64)>,
    seconds: impl Fn(&Point) -> f64,
    extra: Option<fn(&Shape) -> f64>,
) -> Option<(Vec<(Kernel, f64)>, f64)> {
    let mut kernels: Vec<Kernel> =
        points.iter().flat_map(|p| size(&p.shape)).filter(|(_, n)| *n > 0.0).map(|(k, _)| k).collect();
    kernels.sort();
    kernels.dedup();
    let unknowns = kernels.len() + usize::from(extra.is_some());
    // Each row of the system is divided by the measured seconds: relative error.
    let system: Vec<(Vec<f64>, f64)> = points
        .iter()
        .map(|p| {
            let y = seconds(p);
            let mut x = vec![0.0; unknowns];
            for (k, n) in size(&p.shape) {
                if let Some(i) = kernels.iter().position(|c| *c == k) {
                    x[i] += n / y;
                }
            }
            if let Some(extra) = extra {
                x[unknowns - 1] = extra(&p.shape) / y;
            }
            (x, 1.0)
        })
        .collect();
    let x = least_squares(&system, unknowns)?;
    let (costs, per_extra) = x.split_at(kernels.len());
    if !costs.iter().all(|c| *c > 0.0) || per_extra.iter().any(|r| *r < 0.0) {
        return None;
    }
    Some((kernels.iter().zip(costs).map(|(k, c)| (*k, 1.0 / c)).collect(), per_extra.first().copied().unwrap_or(0.0)))
}

/// Least squares `A x ≈ b` by the normal equations and Gaussian elimination with partial
/// pivoting; `None` when the system does not determine every unknown (fewer independent rows
/// than unknowns).
fn least_squares(rows: &[(Vec<f64>, f64)], unknowns: usize) -> Option<Vec<f64>> {
    // Each column scaled to unit length first: bytes per token and layers differ by eight
    // orders of magnitude, and the singularity test below compares pivots across columns.
    let norms: Vec<f64> = (0..unknowns).map(|j| rows.iter().map(|(x, _)| x[j] * x[j]).sum::<f64>().sqrt()).collect();
    if norms.iter().any(|n| *n == 0.0 || !n.is_finite()) {
        return None;
    }
    let mut m = vec![vec![0.0; unknowns + 1]; unknowns];
    for (x, b) in rows {
        for i in 0..unknowns {
            for j in 0..unknowns {
                m[i][j] += x[i] / norms[i] * x[j] / norms[j];
            }
            m[i][unknowns] += x[i] / norms[i] * b;
        }
    }
    for col in 0..unknowns {
        let pivot = (col..unknowns).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() <= 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..unknowns).map(|i| m[i][unknowns] / m[i][i] / norms[i]).collect())
}

/// The figure of `kernel`, else the smallest.
fn of_kernel(figures: &[(Kernel, f64)], kernel: Kernel) -> f64 {
    figures
        .iter()
        .find(|(k, _)| *k == kernel)
        .or_else(|| figures.iter().min_by(|a, b| a.1.total_cmp(&b.1)))
        .map_or(f64::INFINITY, |(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::chunking::UNLIMITED;
    use super::*;

    fn shape(bytes: f64, params: f64, rows: f64, kernel: Kernel) -> Shape {
        Shape {
            decode_bytes: bytes,
            output_bytes: 0.0,
            layer_params: params,
            output_params: 0.0,
            rows,
            layers: 0.0,
            kernel,
            decode_mix: [0.0; 4],
            output_kernel: None,
        }
    }

    fn deep(layers: f64, s: Shape) -> Shape {
        Shape { layers, ..s }
    }

    /// Seconds a layer costs a decoded token on the machine [`point`] measures.
    const PER_LAYER: f64 = 2e-4;

    /// A machine whose true costs are known: points generated from them are fitted back.
    fn point(s: Shape) -> Point {
        let prefill_per_row = 2e-8;
        let rate = if s.kernel == Kernel::Q4_0 { 2e10 } else { 1.2e10 };
        let bandwidth = |k: Kernel| if k == Kernel::Q4_0 { 8e9 } else { 6e9 };
        let streaming: f64 = s.decode_mix().iter().map(|(k, b)| b / bandwidth(*k)).sum();
        let decode = 1.0 / (streaming + s.layers * PER_LAYER);
        let prefill = 1.0 / (s.layer_params / rate + s.rows * prefill_per_row);
        Point {
            shape: s,
            prefill_tok_s: prefill,
            decode_tok_s: decode,
            governed: Some((prefill * 0.5, decode * 0.7)),
            prompt_tokens: 300.0,
        }
    }

    #[test]
    fn the_fit_finds_its_machine_and_predicts_a_bigger_model() {
        let small = deep(30.0, shape(94e6, 107e6, 155e3, Kernel::Q4_1));
        let requantized = deep(30.0, shape(90e6, 107e6, 155e3, Kernel::Q4_0));
        let wide = deep(18.0, shape(247e6, 100e6, 124e3, Kernel::Q4_1));
        let fit = Fit::from_points(&[point(small), point(requantized), point(wide)], UNLIMITED).unwrap();
        assert_eq!(fit.bandwidth.len(), 2, "{fit:?}");
        assert!((fit.bandwidth(Kernel::Q4_1) / 6e9 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.bandwidth(Kernel::Q4_0) / 8e9 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.decode_per_layer / PER_LAYER - 1.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.prefill_per_row / 2e-8 - 1.0).abs() < 1e-6, "{fit:?}");
        // Wider than any calibration model: fewer rows per parameter, cheaper per parameter.
        let big = deep(28.0, shape(1.7e9, 2.8e9, 774e3, Kernel::Q4_0));
        let truth = point(big);
        let raw = fit.raw(&big);
        assert!((raw.decode_s * truth.decode_tok_s - 1.0).abs() < 1e-6, "Q4_0 has its own bandwidth");
        assert!((raw.prefill_s * truth.prefill_tok_s - 1.0).abs() < 1e-6, "Q4_0 has its own rate");
        let governed = fit.governed(&big);
        assert!((governed.prefill_s * truth.governed.unwrap().0 - 1.0).abs() < 1e-6, "{governed:?}");
        assert!((governed.decode_s * truth.governed.unwrap().1 - 1.0).abs() < 1e-6);
        // A kernel class nobody measured gets the slowest rate, not the fastest.
        let k = deep(28.0, shape(1.7e9, 2.8e9, 774e3, Kernel::Other));
        assert!((fit.raw(&k).prefill_s / (2.8e9 / 1.2e10 + 774e3 * 2e-8) - 1.0).abs() < 1e-6);
        assert!((fit.raw(&k).decode_s / (1.7e9 / 6e9 + 28.0 * PER_LAYER) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn without_a_second_shape_of_one_kernel_the_row_term_is_left_out() {
        // One shape per kernel: the row cost cannot be told from the parameter costs.
        let a = point(shape(94e6, 107e6, 155e3, Kernel::Q4_1));
        let b = point(shape(90e6, 107e6, 155e3, Kernel::Q4_0));
        let fit = Fit::from_points(&[a, b], UNLIMITED).unwrap();
        assert_eq!(fit.prefill_per_row, 0.0);
        assert_eq!(fit.decode_per_layer, 0.0, "no layer count to tell it by");
        for p in [a, b] {
            assert!((fit.raw(&p.shape).prefill_s * p.prefill_tok_s - 1.0).abs() < 1e-9, "each point is fitted exactly");
            assert!((fit.raw(&p.shape).decode_s * p.decode_tok_s - 1.0).abs() < 1e-9, "each point is fitted exactly");
        }
    }

    #[test]
    fn a_prompt_chunk_streams_the_layers_first_and_leaves_the_output_matrix_to_its_last_token() {
        // Half of a decoded token's reads are the output matrix (a large vocabulary).
        let s = Shape { output_bytes: 50e6, ..shape(100e6, 100e6, 10e3, Kernel::Q4_0) };
        let c = Chunking { target_s: Some(0.05), max: 128.0, small: None };
        let fit = Fit {
            bandwidth: vec![(Kernel::Q4_0, 2e9)],
            decode_per_layer: 0.0,
            prefill_rate: vec![(Kernel::Q4_0, 2e10)],
            prefill_per_row: 0.0,
            chunking: c,
            governed_prefill: 1.0,
            governed_repacked: None,
            governed_decode: 1.0,
        };
        let raw = fit.raw(&s);
        assert!((raw.decode_s - 0.05).abs() < 1e-12 && (raw.prefill_s - 0.005).abs() < 1e-12, "{raw:?}");
        // A plain chunk's first token streams the layers only (25 ms): chunks of 6 tokens, not
        // one token a chunk at the full decode step (50 ms, the whole target).
        let plain = fit.prompt_s(&s, 300.0, false, true);
        assert!((plain - c.prompt_s(300.0, raw.prefill_s, 0.025, true)).abs() < 1e-12);
        assert!((plain / 300.0 - (0.025 + 5.0 * 0.005) / 6.0).abs() < 1e-9, "{plain}");
        // An embedding chunk runs the output matrix for every token, the first one included.
        let embed = fit.prompt_s(&s, 300.0, true, true);
        assert!((embed - c.prompt_s(300.0, raw.embed_s, raw.decode_s, true)).abs() < 1e-12);
    }

    #[test]
    fn repacked_layers_keep_the_budgets_ratio_measured_on_their_own_class() {
        // Under the budget, a Q4_1 model keeps 30% of its raw prompt speed and a Q4_0 one 45%
        // (their small chunks ran faster between rests than back to back).
        let at = |s: Shape, kept: f64| {
            let p = point(s);
            Point { governed: Some((p.prefill_tok_s * kept, p.decode_tok_s * 0.7)), ..p }
        };
        let q4_1 = deep(30.0, shape(97e6, 106e6, 155e3, Kernel::Q4_1));
        let q4_0 = deep(4.0, shape(139e6, 243e6, 94e3, Kernel::Q4_0));
        let fit = Fit::from_points(&[at(q4_1, 0.3), at(q4_0, 0.45)], UNLIMITED).unwrap();
        assert!((fit.governed_prefill - 0.3).abs() < 1e-9, "{fit:?}");
        assert!(fit.governed_repacked.is_some_and(|r| (r - 0.45).abs() < 1e-9), "{fit:?}");
        assert!((fit.governed_decode - 0.7).abs() < 1e-9, "decode has one ratio: {fit:?}");
        for (kernel, kept) in [(Kernel::Q4_0, 0.45), (Kernel::Q8_0, 0.3), (Kernel::Q4_1, 0.3), (Kernel::Other, 0.3)] {
            assert!((fit.governed_prefill_of(kernel) - kept).abs() < 1e-9, "{kernel:?}");
        }
        // A held-out Q4_0 model is predicted with its class's ratio.
        let held_out = deep(24.0, shape(241e6, 378e6, 295e3, Kernel::Q4_0));
        let raw = fit.raw(&held_out).prefill_s * 100.0;
        assert!((fit.prompt_s(&held_out, 100.0, false, true) - raw / 0.45).abs() < 1e-9);
        // No Q4_0 point at the budget: its layers take the other ratio.
        let ungoverned = Point { governed: None, ..point(q4_0) };
        let fit = Fit::from_points(&[at(q4_1, 0.3), ungoverned], UNLIMITED).unwrap();
        assert_eq!(fit.governed_repacked, None);
        assert!((fit.governed_prefill_of(Kernel::Q4_0) - 0.3).abs() < 1e-9, "{fit:?}");
        // Only Q4_0 points at the budget: theirs stands for every class.
        let fit = Fit::from_points(&[Point { governed: None, ..point(q4_1) }, at(q4_0, 0.45)], UNLIMITED).unwrap();
        assert!((fit.governed_prefill_of(Kernel::Q4_1) - 0.45).abs() < 1e-9, "{fit:?}");
    }

    #[test]
    fn decode_pays_a_cost_per_layer_told_apart_by_one_kernel_at_three_depths() {
        // The calibration's Q4_0 models: a 4-layer wide one, Gemma's 18 layers (most of its
        // bytes the output matrix), a 32-layer narrow one; SmolLM2's Q4_1 at 30 layers.
        let calibration = [
            deep(4.0, shape(139e6, 243e6, 94e3, Kernel::Q4_0)),
            Shape { output_bytes: 178e6, ..deep(18.0, shape(235e6, 100e6, 124e3, Kernel::Q4_0)) },
            deep(32.0, shape(60e6, 100e6, 180e3, Kernel::Q4_0)),
            deep(30.0, shape(97e6, 106e6, 155e3, Kernel::Q4_1)),
        ];
        let points: Vec<Point> = calibration.into_iter().map(point).collect();
        let fit = Fit::from_points(&points, UNLIMITED).unwrap();
        assert!((fit.decode_per_layer / PER_LAYER - 1.0).abs() < 1e-6, "{fit:?}");
        // A narrow held-out model of 24 layers: without the term its decode would be predicted
        // 14% short.
        let held_out = deep(24.0, shape(241e6, 378e6, 295e3, Kernel::Q4_0));
        assert!((fit.raw(&held_out).decode_s * point(held_out).decode_tok_s - 1.0).abs() < 1e-6);
        // A plain prompt chunk's first token pays the layers' cost too, not the output matrix.
        let gemma = calibration[1];
        let c = Chunking { target_s: Some(0.05), max: 128.0, small: None };
        let fit = Fit { chunking: c, ..fit };
        let raw = fit.raw(&gemma);
        let first = 57e6 / 8e9 + 18.0 * PER_LAYER;
        let chunked = fit.prompt_s(&gemma, 300.0, false, true) * fit.governed_prefill;
        assert!((chunked / c.prompt_s(300.0, raw.prefill_s, first, true) - 1.0).abs() < 1e-9, "{chunked}");
        // Deeper models measured faster per byte (noise): a negative cost is not extrapolated.
        let mut noisy = points.clone();
        noisy[2].decode_tok_s *= 3.0;
        let fit = Fit::from_points(&noisy, UNLIMITED).unwrap();
        assert_eq!(fit.decode_per_layer, 0.0, "{fit:?}");
        assert!(fit.bandwidth.iter().all(|(_, b)| *b > 0.0));
    }

    /// A file of `layers` whose layer weights are `kernel`'s and whose bytes are `mix` (Q4_0,
    /// Q8_0, Q4_1).
    fn mixed(layers: f64, kernel: Kernel, [q4_0, q8_0, q4_1]: [f64; 3]) -> Shape {
        Shape { decode_mix: [q4_0, q8_0, q4_1, 0.0], ..deep(layers, shape(q4_0 + q8_0 + q4_1, 100e6, 124e3, kernel)) }
    }

    #[test]
    fn each_tensor_streams_at_its_own_kernels_bandwidth() {
        // Gemma 3's Q4_0 re-quantization keeps its output matrix in Q8_0 (three quarters of its
        // bytes); SmolLM2's Q4_1 keeps its embedding in Q8_0.
        let calibration = [
            mixed(18.0, Kernel::Q4_0, [56e6, 178e6, 0.0]),
            mixed(18.0, Kernel::Q8_0, [0.0, 285e6, 0.0]),
            mixed(4.0, Kernel::Q4_0, [137e6, 0.0, 0.0]),
            mixed(40.0, Kernel::Q4_0, [50e6, 0.0, 0.0]),
            mixed(30.0, Kernel::Q4_1, [0.0, 30e6, 66e6]),
        ];
        let points: Vec<Point> = calibration.into_iter().map(point).collect();
        let fit = Fit::from_points(&points, UNLIMITED).unwrap();
        assert!((fit.bandwidth(Kernel::Q4_0) / 8e9 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.bandwidth(Kernel::Q8_0) / 6e9 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.decode_per_layer / PER_LAYER - 1.0).abs() < 1e-6, "{fit:?}");
        // A 3B model all in Q4_0, predicted exactly; read as a Q4_0 model only, the Gemma
        // point's Q8_0 bytes would have set Q4_0's bandwidth.
        let big = mixed(28.0, Kernel::Q4_0, [1.67e9, 0.0, 0.0]);
        assert!((fit.raw(&big).decode_s * point(big).decode_tok_s - 1.0).abs() < 1e-6);
        let plain: Vec<Point> =
            points.iter().map(|p| Point { shape: Shape { decode_mix: [0.0; 4], ..p.shape }, ..*p }).collect();
        let as_before = Fit::from_points(&plain, UNLIMITED).unwrap();
        assert!((as_before.raw(&big).decode_s * point(big).decode_tok_s - 1.0).abs() > 0.05, "{as_before:?}");
    }

    #[test]
    fn decode_is_fitted_per_kernel_on_relative_error_and_nothing_fits_no_points() {
        // Two Q4_1 models 10% apart in speed per byte: the fit lands between them.
        let mut a = point(shape(100e6, 100e6, 10e3, Kernel::Q4_1));
        let mut b = point(shape(200e6, 200e6, 40e3, Kernel::Q4_1));
        a.decode_tok_s = 60.0;
        b.decode_tok_s = 33.0;
        let fit = Fit::from_points(&[a, b], UNLIMITED).unwrap();
        let bw = fit.bandwidth(Kernel::Q4_1);
        assert!(bw > 6.0e9 && bw < 6.6e9, "{bw}");
        assert!(Fit::from_points(&[], UNLIMITED).is_none());
    }

    #[test]
    fn catalogue_figures_count_a_tied_output_once() {
        let f = Figures {
            params: 1_000,
            embedding_params: 200,
            tied: true,
            layers: 2,
            embedding_length: 10,
            feed_forward_length: 40,
            heads: 2,
            kv_heads: 1,
            head_dim: 5,
            file_bytes: 500,
        };
        let tied = Shape::from_figures(&f, "Q8_0");
        assert_eq!((tied.decode_bytes, tied.layer_params, tied.output_params), (500.0, 800.0, 200.0));
        assert_eq!(tied.output_bytes, 100.0, "the output's share of the file");
        assert_eq!(tied.rows, (2.0 * ((2.0 + 2.0) * 5.0 + 20.0 + 80.0)), "q, k, v, o, gate, up, down rows");
        assert_eq!(tied.kernel, Kernel::Q8_0);
        let untied = Shape::from_figures(&Figures { tied: false, ..f }, "Q4_K_M");
        assert_eq!((untied.decode_bytes, untied.layer_params), (400.0, 600.0));
        assert_eq!(untied.kernel, Kernel::Other);
    }
}
