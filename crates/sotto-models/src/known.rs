//! The model catalogue (`catalogue.toml`): GGUF models relevant to endpoint security, with
//! their file size per quantization, their shape, and published cybersecurity benchmark
//! figures with sources. `sotto plan` predicts each one's RAM and latency on this machine
//! before anything is downloaded. The two models `sotto models fetch` installs carry their
//! fetch id (`catalogue_id`); the others are for planning only.
//!
//! Must not: hold a figure without its source (`source`, `files_source`, a benchmark's
//! `source`); sizes computed from the shape say `files_source = "computed"`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::memory::Dims;
use crate::predict::{Figures, Shape};

/// The catalogue as shipped.
pub const CATALOGUE_TOML: &str = include_str!("../catalogue.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: Vec<KnownModel>,
}

/// One model of the catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownModel {
    pub id: String,
    pub name: String,
    pub arch: String,
    pub params: u64,
    pub embedding_params: u64,
    pub tied_embeddings: bool,
    pub layers: u64,
    /// Hybrid models (LFM2): the blocks with attention, which alone hold a KV cache.
    pub attention_layers: Option<u64>,
    pub embedding_length: u64,
    pub feed_forward_length: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab: u64,
    pub context: u64,
    pub sliding_window: Option<u64>,
    pub license: String,
    pub source: String,
    /// The id `sotto models fetch` knows it by, for the models sotto ships.
    pub catalogue_id: Option<String>,
    pub files: Files,
    #[serde(default)]
    pub benchmark: Vec<Benchmark>,
}

/// File sizes in bytes per quantization name (`Q4_K_M`, `Q8_0`, ...), and where they come from.
#[derive(Debug, Clone, Deserialize)]
pub struct Files {
    pub files_source: String,
    #[serde(flatten)]
    pub sizes: BTreeMap<String, u64>,
}

/// A published cybersecurity benchmark figure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub name: String,
    /// 0..1.
    pub score: f64,
    pub source: String,
}

impl KnownModel {
    /// The predictor's view of the model in quantization `quant`, `file_bytes` long.
    pub fn shape(&self, quant: &str, file_bytes: u64) -> Shape {
        let figures = Figures {
            params: self.params,
            embedding_params: self.embedding_params,
            tied: self.tied_embeddings,
            layers: self.layers,
            embedding_length: self.embedding_length,
            feed_forward_length: self.feed_forward_length,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            file_bytes,
        };
        Shape::from_figures(&figures, quant)
    }

    /// The memory estimate's view of the model in the given file size. Only attention blocks
    /// keep a KV cache.
    pub fn dims(&self, file_bytes: u64) -> Dims {
        Dims {
            file_bytes,
            layers: self.attention_layers.unwrap_or(self.layers),
            embedding_length: self.embedding_length,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim_k: self.head_dim,
            head_dim_v: self.head_dim,
            feed_forward_length: self.feed_forward_length,
            vocab: self.vocab,
        }
    }
}

/// Parses a catalogue; every model needs at least one file size and a unique id.
pub fn parse(text: &str) -> Result<Vec<KnownModel>, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("the model catalogue: {e}"))?;
    let mut ids = std::collections::BTreeSet::new();
    for m in &file.model {
        if !ids.insert(m.id.as_str()) {
            return Err(format!("the model catalogue names `{}` twice", m.id));
        }
        if m.files.sizes.is_empty() {
            return Err(format!("the model catalogue gives no file size for `{}`", m.id));
        }
        if m.embedding_params >= m.params || m.layers == 0 {
            return Err(format!("the model catalogue's shape of `{}` is inconsistent", m.id));
        }
    }
    Ok(file.model)
}

/// The shipped catalogue.
pub fn shipped() -> Vec<KnownModel> {
    parse(CATALOGUE_TOML).expect("the shipped catalogue parses (guarded by a test)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_parses_and_every_figure_has_a_source() {
        let models = shipped();
        assert!(models.len() >= 14, "the catalogue lists the issue's models");
        for m in &models {
            assert!(!m.source.is_empty() && !m.files.files_source.is_empty(), "{}", m.id);
            assert_eq!(m.embedding_params, m.vocab * m.embedding_length, "{}: embedding = vocab x n_embd", m.id);
            for b in &m.benchmark {
                assert!((0.0..=1.0).contains(&b.score) && !b.source.is_empty(), "{}: {}", m.id, b.name);
            }
            for (quant, &bytes) in &m.files.sizes {
                let bits = bytes as f64 * 8.0 / m.params as f64;
                assert!((3.0..=9.5).contains(&bits), "{} {quant}: {bits:.2} bits per weight is implausible", m.id);
            }
        }
        for fetchable in crate::CATALOG {
            assert!(
                models.iter().any(|m| m.catalogue_id.as_deref() == Some(fetchable.id)),
                "the fetchable model {} is in the catalogue",
                fetchable.id
            );
        }
    }

    #[test]
    fn mistakes_are_refused_with_the_model_named() {
        let one = r#"
            [[model]]
            id = "x"
            name = "X"
            arch = "llama"
            params = 1000
            embedding_params = 100
            tied_embeddings = true
            layers = 2
            embedding_length = 10
            feed_forward_length = 40
            heads = 2
            kv_heads = 1
            head_dim = 5
            vocab = 10
            context = 2048
            license = "mit"
            source = "here"
            [model.files]
            files_source = "computed"
            Q8_0 = 1000
        "#;
        assert_eq!(parse(one).unwrap()[0].files.sizes["Q8_0"], 1000);
        assert!(parse(&format!("{one}\n{one}")).unwrap_err().contains("`x` twice"));
        assert!(parse(&one.replace("Q8_0 = 1000", "")).unwrap_err().contains("no file size for `x`"));
        assert!(parse(&one.replace("layers = 2", "layerz = 2")).is_err());
    }
}
