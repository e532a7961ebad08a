//! The governor's chunking of a prompt, replayed: how many tokens each chunk holds under a
//! step target and what a chunk of `n` tokens costs, so that [`super::Fit`] predicts the prompt
//! the way the governor will cut it (`Governor::next_chunk`, `pacer::chunk_for`).
//!
//! Must not: guess what small chunks cost (unmeasured, a chunk streams the weights once), or
//! apply what was measured on Q4_0 to another kernel class.

use serde::{Deserialize, Serialize};

use super::Kernel;

/// The governor's chunking of a prompt: its step target in seconds (`None`: no limit), the
/// largest chunk, and what small chunks cost beyond their tokens, measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Chunking {
    pub target_s: Option<f64>,
    pub max: f64,
    /// At each of [`SMALL_CHUNKS`] tokens, what a chunk's token costs beyond a prompt token of a
    /// chunk of `max`, as a fraction of what a chunk of one costs beyond it: 1 at one token, 0 at
    /// `max`. `None`: not measured, and a chunk costs one streaming of the weights and `n − 1`
    /// prompt tokens.
    #[serde(default)]
    pub small: Option<[f64; SMALL_CHUNKS.len()]>,
}

/// The chunk sizes whose cost the calibration measures, beside one token and the largest chunk
/// (each share came out alike in every calibration on a 2-vCPU EPYC on 2026-12-04: 2 and 3
/// tokens 0.8-1.0, 4 about 0.5, 6 0.55-0.65, 8 0.4-0.55, 16 and 32 0.15-0.25;
/// `bench/runs/2026-12-04-epyc-2cpu-plan-chunks*`).
pub const SMALL_CHUNKS: [f64; 7] = [2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0];

/// The governor's first chunk, before it has learned a cost (`Governor::next_chunk`).
const FIRST_CHUNK: f64 = 8.0;

impl Chunking {
    /// The chunk the governor picks once it has learned a cost of `per_token` seconds a token
    /// (`pacer::chunk_for`).
    pub fn tokens(&self, per_token: f64) -> f64 {
        match self.target_s {
            Some(t) if per_token > 0.0 => (t / per_token).floor().clamp(1.0, self.max.max(1.0)),
            _ => self.max.max(1.0),
        }
    }

    /// This chunking for layers of `kernel`: small chunks cost what was measured for Q4_0
    /// layers only. llama.cpp repacks Q4_0 (x86 with AVX2, ARM with dot products;
    /// `ggml-cpu/repack.cpp`) and multiplies it four prompt tokens at a time, and what is left
    /// over one token at a time, a full pass over the weights each: a synthetic 1B Q4_0 model
    /// at 2 threads took 17.5 ms a token one at a time, 10 ms in chunks of 128, and 17.1, 13.3
    /// and 12.9 ms in chunks of 2, 4 and 8, where one streaming a chunk said 13.8, 11.9 and
    /// 10.9 (the governor cuts it into chunks of 3 to 5 at 35/50, and it ran 30-36% slower than
    /// predicted there). The other classes keep one streaming a chunk: charged the Q4_0 curve,
    /// the budget's ratio fitted on Gemma's Q5_0 and SmolLM2's Q4_1 rose from 0.32 to 0.48 at 2
    /// threads, above the duty cycle's 0.35.
    pub fn for_kernel(self, kernel: Kernel) -> Chunking {
        if Chunking::repacked(kernel) { self } else { Chunking { small: None, ..self } }
    }

    /// Whether llama.cpp repacks `kernel`'s layers, whose small chunks cost what the
    /// calibration measured ([`Chunking::for_kernel`]).
    pub fn repacked(kernel: Kernel) -> bool {
        kernel == Kernel::Q4_0
    }

    /// What a chunk of `n` tokens costs beyond `n` prompt tokens, in units of what one token
    /// alone costs beyond one: measured ([`Chunking::small`], interpolated, `n` times its
    /// fraction), else one (the chunk streams the weights once).
    pub fn excess(&self, n: f64) -> f64 {
        let Some(small) = self.small else { return 1.0 };
        let n = n.clamp(1.0, self.max.max(1.0));
        let known = std::iter::once((1.0, 1.0))
            .chain(SMALL_CHUNKS.iter().copied().zip(small).filter(|(at, _)| *at < self.max))
            .chain(std::iter::once((self.max.max(1.0), 0.0)));
        let mut below = (1.0, 1.0);
        for (at, f) in known {
            if n <= at {
                let f = if at > below.0 { below.1 + (f - below.1) * (n - below.0) / (at - below.0) } else { f };
                return n * f.clamp(0.0, 1.0);
            }
            below = (at, f);
        }
        0.0
    }

    /// Seconds to prefill `tokens` prompt tokens the way the governor cuts them, at a raw cost
    /// of `prefill_s` a token and `first_s` for a chunk's first token (the weights it streams
    /// through). It replays the governor's loop: each chunk costs one first token and `n − 1`
    /// prefill tokens, and the next chunk is sized from the running average of the cost per
    /// token (a quarter of the newest), which settles where a chunk takes the step target. A
    /// cold governor (a fresh process) starts with a small chunk; a warm one (a daemon after
    /// its first prompt) with what it learned.
    /// Without a target the prompt goes in the largest chunks, at the raw cost.
    pub fn prompt_s(&self, tokens: f64, prefill_s: f64, first_s: f64, warm: bool) -> f64 {
        let tokens = tokens.max(0.0).round();
        if self.target_s.is_none() || prefill_s <= 0.0 {
            return tokens * prefill_s;
        }
        let learned = if warm { self.replay(WARM_UP, prefill_s, first_s, None).1 } else { None };
        self.replay(tokens, prefill_s, first_s, learned).0
    }

    /// The governor's loop over `tokens`: (seconds, the cost per token it learned).
    fn replay(&self, tokens: f64, prefill_s: f64, first_s: f64, mut learned: Option<f64>) -> (f64, Option<f64>) {
        let step = |n: f64| n * prefill_s + (first_s - prefill_s).max(0.0) * self.excess(n);
        let (mut left, mut total) = (tokens, 0.0);
        while left > 0.0 {
            let n = match learned {
                None => FIRST_CHUNK.min(self.max.max(1.0)),
                Some(t) => self.tokens(t),
            }
            .min(left);
            let took = step(n);
            total += took;
            learned = Some(learned.map_or(took / n, |old| (old * 3.0 + took / n) / 4.0));
            left -= n;
        }
        (total, learned)
    }
}

/// Prompt tokens a warm governor has seen before the prompt predicted.
const WARM_UP: f64 = 2048.0;

/// No step target: every chunk as large as allowed.
#[cfg(test)]
pub(super) const UNLIMITED: Chunking = Chunking { target_s: None, max: 128.0, small: None };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunks_replay_the_governor_and_a_model_too_big_prefills_at_decode_speed() {
        let c = Chunking { target_s: Some(0.05), max: 128.0, small: None };
        assert_eq!(c.tokens(0.01), 5.0);
        assert_eq!(c.tokens(0.2), 1.0, "at least one token a chunk");
        assert_eq!(UNLIMITED.tokens(0.2), 128.0);
        // Prefill over the target: 8 tokens first, then one a chunk, each a decode step.
        let (prefill, decode) = (0.2, 0.5);
        let expected = (decode + 7.0 * prefill) + 92.0 * decode;
        assert!((c.prompt_s(100.0, prefill, decode, false) - expected).abs() < 1e-9);
        assert!((c.prompt_s(100.0, prefill, decode, true) - 100.0 * decode).abs() < 1e-9, "warm: no first chunk");
        // Cheap tokens: the chunk grows from 8 until one takes about the target.
        let (prefill, decode) = (0.001, 0.003);
        let total = c.prompt_s(1000.0, prefill, decode, false);
        let settled = 1.0 + (0.05 - decode) / prefill;
        let at_settled = (decode + (settled - 1.0) * prefill) / settled;
        assert!(total / 1000.0 < 1.1 * at_settled && total / 1000.0 >= at_settled * 0.99, "{total}");
        assert!(c.prompt_s(1000.0, prefill, decode, true) <= total, "a warm governor starts settled");
        assert!((UNLIMITED.prompt_s(100.0, 0.01, 0.03, true) - 1.0).abs() < 1e-12, "no target: the raw cost");
    }

    #[test]
    fn small_chunks_cost_what_was_measured_and_the_governor_cuts_them_smaller() {
        let measured = Chunking { small: Some([0.8, 0.6, 0.4, 0.4, 0.4, 0.15, 0.1]), ..UNLIMITED };
        let excess = |n: f64| measured.excess(n);
        assert!((excess(1.0) - 1.0).abs() < 1e-12 && (excess(2.0) - 1.6).abs() < 1e-12);
        assert!((excess(5.0) - 5.0 * 0.4).abs() < 1e-12 && (excess(12.0) - 12.0 * 0.275).abs() < 1e-12, "interpolated");
        assert!((excess(8.0) - 3.2).abs() < 1e-12 && (excess(80.0) - 80.0 * 0.05).abs() < 1e-12);
        assert_eq!(excess(128.0), 0.0, "the largest chunk is the raw prefill itself");
        assert_eq!(UNLIMITED.excess(4.0), 1.0, "not measured: one streaming of the weights a chunk");
        let capped = Chunking { max: 8.0, ..measured };
        assert!(
            (capped.excess(7.0) - 7.0 * 0.2).abs() < 1e-12,
            "0 at the largest chunk, whatever was measured past it"
        );
        // A 1B model at 2 threads (10 ms a prompt token in large chunks, 17.5 ms one at a time)
        // against a 50 ms step: chunks of 3 at 14.1 ms a token, not 4 at 11.9.
        let plain = Chunking { target_s: Some(0.05), max: 128.0, small: None };
        let small = Chunking { small: Some([0.9, 0.675, 0.45, 0.42, 0.4, 0.15, 0.1]), ..plain };
        let (prefill, first) = (0.010, 0.0175);
        let at = |c: Chunking| c.prompt_s(1200.0, prefill, first, true) / 1200.0;
        assert!((at(plain) - (first + 3.0 * prefill) / 4.0).abs() < 2e-4, "{}", at(plain));
        let per_chunk_of_3 = 3.0 * prefill + (first - prefill) * 3.0 * 0.675;
        assert!((at(small) - per_chunk_of_3 / 3.0).abs() < 2e-4, "{}", at(small));
        // Measured on Q4_0, the curve is Q4_0's: other kernel classes keep one streaming a chunk.
        assert_eq!(small.for_kernel(Kernel::Q4_0), small);
        for k in [Kernel::Q8_0, Kernel::Q4_1, Kernel::Other] {
            assert_eq!(small.for_kernel(k), plain, "{k:?}");
        }
    }
}
