//! Memory needed to run a model, estimated from its GGUF header before anything is loaded:
//! weights, KV cache, compute buffers and prefix snapshots. Pure arithmetic over header facts,
//! so a budget can refuse a model with a useful message instead of being found out by the OOM
//! killer.

use crate::GgufHeader;

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KvType {
    #[default]
    #[cfg_attr(feature = "clap", value(name = "f16"))]
    F16,
    #[cfg_attr(feature = "clap", value(name = "q8_0"))]
    Q8_0,
    #[cfg_attr(feature = "clap", value(name = "q4_0"))]
    Q4_0,
}

impl KvType {
    /// Bytes per element (block size included).
    pub fn bytes_per_element(self) -> f64 {
        match self {
            KvType::F16 => 2.0,
            KvType::Q8_0 => 34.0 / 32.0,
            KvType::Q4_0 => 18.0 / 32.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }
}

impl std::str::FromStr for KvType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "q8_0" => Ok(KvType::Q8_0),
            "q4_0" => Ok(KvType::Q4_0),
            _ => Err(format!("`{s}` is not a KV cache type (f16, q8_0, q4_0)")),
        }
    }
}

/// Fixed cost of the process itself: runtime, llama.cpp's own tables, thread stacks.
const OVERHEAD: u64 = 48 << 20;

/// The estimate, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The model file, memory-mapped: every page is touched while running.
    pub weights: u64,
    pub kv_cache: u64,
    /// KV bytes per token of context (to say what `n_ctx` would fit).
    pub kv_per_token: u64,
    pub compute: u64,
    pub snapshots: u64,
    pub overhead: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.compute + self.snapshots + self.overhead
    }

    /// Largest context that fits `budget` with everything else unchanged (0 if none does).
    pub fn n_ctx_fitting(&self, budget: u64) -> u64 {
        let fixed = self.weights + self.compute + self.snapshots + self.overhead;
        budget.saturating_sub(fixed).checked_div(self.kv_per_token).unwrap_or(0)
    }
}

/// What the estimate needs of a model: its file size and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub file_bytes: u64,
    pub layers: u64,
    pub embedding_length: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim_k: u64,
    pub head_dim_v: u64,
    pub feed_forward_length: u64,
    pub vocab: u64,
}

impl Dims {
    /// The header's figures; the usual defaults where a key is missing.
    pub fn from_header(header: &GgufHeader) -> Dims {
        let n_embd = header.arch_u64("embedding_length").unwrap_or(0);
        let heads = header.arch_u64("attention.head_count").unwrap_or(1).max(1);
        Dims {
            file_bytes: header.file_size,
            layers: header.arch_u64("block_count").unwrap_or(0),
            embedding_length: n_embd,
            heads,
            kv_heads: header.arch_u64("attention.head_count_kv").unwrap_or(heads),
            head_dim_k: header.arch_u64("attention.key_length").unwrap_or(n_embd / heads),
            head_dim_v: header.arch_u64("attention.value_length").unwrap_or(n_embd / heads),
            feed_forward_length: header.arch_u64("feed_forward_length").unwrap_or(4 * n_embd),
            vocab: match header.get("tokenizer.ggml.tokens") {
                Some(crate::gguf::Value::Array { len, .. }) => *len,
                _ => 32_000,
            },
        }
    }
}

/// Estimate for `header` with a context of `n_ctx` tokens, prefill chunks of `n_batch`, the
/// given KV type, and `snapshots` bytes reserved for saved prefixes.
pub fn estimate(header: &GgufHeader, n_ctx: u64, n_batch: u64, kv: KvType, snapshots: u64) -> MemoryEstimate {
    estimate_dims(&Dims::from_header(header), n_ctx, n_batch, kv, snapshots)
}

/// [`estimate`] from a model's dimensions (a catalogue entry has no file to read).
pub fn estimate_dims(d: &Dims, n_ctx: u64, n_batch: u64, kv: KvType, snapshots: u64) -> MemoryEstimate {
    let kv_per_token = (d.layers * d.kv_heads * (d.head_dim_k + d.head_dim_v)) as f64 * kv.bytes_per_element();
    // Activations for one chunk (f32): residual stream, attention scores over the whole
    // context, the feed-forward block, and the logits row.
    let n_embd = d.embedding_length;
    let compute = 4 * (n_batch * (8 * n_embd + 2 * d.feed_forward_length + d.heads * n_ctx) + 2 * d.vocab);
    MemoryEstimate {
        weights: d.file_bytes,
        kv_cache: (kv_per_token * n_ctx as f64) as u64,
        kv_per_token: kv_per_token.ceil() as u64,
        compute,
        snapshots,
        overhead: OVERHEAD,
    }
}

/// Check `est` against `budget`; the error says what would fit.
pub fn check_budget(est: &MemoryEstimate, budget: u64, n_ctx: u64, kv: KvType) -> Result<(), String> {
    if est.total() <= budget {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut advice = Vec::new();
    let fit = est.n_ctx_fitting(budget);
    if fit >= 256 {
        advice.push(format!("a context of at most {} tokens (--n-ctx {})", fit, fit / 256 * 256));
    }
    for smaller in [KvType::Q8_0, KvType::Q4_0] {
        if smaller.bytes_per_element() < kv.bytes_per_element() {
            let kv_bytes = (est.kv_cache as f64 * smaller.bytes_per_element() / kv.bytes_per_element()) as u64;
            if est.total() - est.kv_cache + kv_bytes <= budget {
                advice.push(format!(
                    "KV cache type {} ({:.0} MiB instead of {:.0} MiB)",
                    smaller.name(),
                    mib(kv_bytes),
                    mib(est.kv_cache)
                ));
                break;
            }
        }
    }
    if est.snapshots > 0 && est.total() - est.snapshots <= budget {
        advice.push(format!("a prefix cache below {:.0} MiB (--prefix-cache)", mib(est.snapshots)));
    }
    if est.weights + est.overhead > budget / 2 {
        advice.push("a smaller model or a smaller quantization".into());
    }
    Err(format!(
        "needs about {:.0} MiB (weights {:.0}, KV cache {:.0} for {n_ctx} tokens, compute {:.0}, prefix snapshots {:.0}, overhead {:.0}) but the memory budget is {:.0} MiB; try {}",
        mib(est.total()),
        mib(est.weights),
        mib(est.kv_cache),
        mib(est.compute),
        mib(est.snapshots),
        mib(est.overhead),
        mib(budget),
        if advice.is_empty() { "a larger budget".to_string() } else { advice.join(", or ") }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(kv_cache: u64, kv_per_token: u64) -> MemoryEstimate {
        MemoryEstimate {
            weights: 100 << 20,
            kv_cache,
            kv_per_token,
            compute: 10 << 20,
            snapshots: 0,
            overhead: OVERHEAD,
        }
    }

    #[test]
    fn within_budget_passes() {
        assert!(check_budget(&est(10 << 20, 2560), 1 << 30, 4096, KvType::F16).is_ok());
    }

    #[test]
    fn over_budget_says_what_fits() {
        // 400 MiB of KV for 4096 tokens (100 KiB per token) against a 300 MiB budget.
        let e = est(400 << 20, 100 << 10);
        let err = check_budget(&e, 300 << 20, 4096, KvType::F16).unwrap_err();
        assert!(err.contains("but the memory budget is 300 MiB"), "{err}");
        assert!(err.contains("--n-ctx 1280"), "{err}");
        assert!(err.contains("KV cache type q4_0"), "{err}");
        assert_eq!(e.n_ctx_fitting(300 << 20), (300 - 100 - 10 - 48) * 1024 / 100);
    }

    #[test]
    fn kv_types_parse() {
        assert_eq!("q8_0".parse::<KvType>().unwrap(), KvType::Q8_0);
        assert!("q3".parse::<KvType>().is_err());
    }
}
