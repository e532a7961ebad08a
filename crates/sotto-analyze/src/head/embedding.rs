//! The LLM's block of a head's features: the model's own reading of a short, fixed rendering
//! of the event (one prefill, no generation), mean-pooled from its last hidden states by the
//! engine (`Task::Embed`), then standardised with the training events' mean and spread.
//!
//! A head with this block belongs to one model file, named by its sha256: another model's
//! hidden states mean nothing to its weights. sotto ships one such head per default model
//! (`heads/<catalog id>.json`) and picks it by the loaded model's size, then its hash.
//! Must not: change [`text`] without bumping [`RENDERING`] (a head records the rendering it
//! was trained on, and one of another rendering is refused).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sotto_events::Event;

use super::Head;

/// The version of [`text`]; a head trained on another rendering is refused.
pub const RENDERING: u32 = 1;

/// Characters of the command line put into the rendering; the engine reads at most
/// `EMBED_TOKENS` tokens of it anyway.
const COMMAND_CHARS: usize = 400;

/// The heads sotto ships for its default models.
const SHIPPED: [(&str, &str); 2] = [
    ("smollm2-135m", include_str!("../../heads/smollm2-135m.json")),
    ("gemma3-270m", include_str!("../../heads/gemma3-270m.json")),
];

/// What ties a head's embedding block to a model, and how the block is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// sha256 of the GGUF file whose hidden states the head was trained on.
    pub model_sha256: String,
    pub model_size: u64,
    /// The file's name when trained, for people reading the head.
    pub model_file: String,
    /// Length of an embedding (the model's hidden size).
    pub dim: usize,
    pub rendering: u32,
    /// Per dimension: the training embeddings' mean and standard deviation.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Cascade: the event is embedded only when the lexical head's confidence is below this
    /// (chosen out of fold: the cheapest cut that loses no accuracy against always embedding).
    pub embed_below: f32,
    /// Out-of-fold figures of the cascade, for people reading the head.
    pub cascade: CascadeFigures,
}

/// How the cascade did out of fold on the training families.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CascadeFigures {
    pub lexical_accuracy: f64,
    pub always_accuracy: f64,
    pub cascade_accuracy: f64,
    /// Share of events the cascade embedded.
    pub embedded_share: f64,
}

/// The text the model embeds: parent, image and command line, each on a line, machine-
/// specific values left as they are (the model reads them as text).
pub fn text(event: &Event) -> String {
    let field = |v: &Option<String>| v.as_deref().unwrap_or("-").to_string();
    let image = event.process_path.clone().or_else(|| event.process_name.clone());
    let parent = event.parent_path.clone().or_else(|| event.parent_name.clone());
    let command: String = event.command_line.as_deref().unwrap_or("-").chars().take(COMMAND_CHARS).collect();
    format!(
        "Parent: {}\nProcess: {}\nUser: {}\nCommand: {}",
        field(&parent),
        field(&image),
        field(&event.user),
        command
    )
}

impl Spec {
    /// The block as the head reads it: standardised per dimension, scaled to about unit
    /// length like the other blocks.
    pub fn block(&self, embedding: &[f32]) -> Vec<f32> {
        let scale = (self.dim as f32).sqrt();
        embedding.iter().zip(self.mean.iter().zip(&self.std)).map(|(e, (m, s))| (e - m) / s.max(1e-6) / scale).collect()
    }

    /// Mean and standard deviation per dimension of `embeddings`.
    pub fn moments(embeddings: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
        let dim = embeddings.first().map_or(0, Vec::len);
        let n = embeddings.len().max(1) as f64;
        let mut mean = vec![0f64; dim];
        for e in embeddings {
            for (m, v) in mean.iter_mut().zip(e) {
                *m += f64::from(*v) / n;
            }
        }
        let mut var = vec![0f64; dim];
        for e in embeddings {
            for ((s, v), m) in var.iter_mut().zip(e).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2) / n;
            }
        }
        (mean.iter().map(|v| *v as f32).collect(), var.iter().map(|v| v.sqrt() as f32).collect())
    }
}

/// The shipped head for the model at `path`, if sotto ships one: matched by file size first,
/// so only a file of a known model's size is hashed, and only once per process.
pub fn shipped_for(path: &Path) -> Option<Arc<Head>> {
    type Seen = Vec<(PathBuf, u64, Option<Arc<Head>>)>;
    static SEEN: Mutex<Seen> = Mutex::new(Vec::new());
    let size = std::fs::metadata(path).ok()?.len();
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, head)) = seen.iter().find(|(p, s, _)| p == path && *s == size) {
        return head.clone();
    }
    let head = find_shipped(path, size).map(Arc::new);
    match &head {
        Some(h) => tracing::info!(
            model = %path.display(),
            embed_below = h.embedding.as_ref().map(|s| s.embed_below),
            "the verdict head for this model reads its embeddings when the lexical head is unsure"
        ),
        None => tracing::info!(
            model = %path.display(),
            "no verdict head reads this model's embeddings (`sotto head train --model` makes one); the lexical head decides alone"
        ),
    }
    seen.push((path.to_path_buf(), size, head.clone()));
    head
}

fn find_shipped(path: &Path, size: u64) -> Option<Head> {
    let candidates: Vec<Head> = SHIPPED
        .iter()
        .filter_map(|(id, json)| match Head::from_json(json, &format!("<shipped {id}>")) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(head = id, error = %e, "a shipped model head does not fit this build");
                None
            }
        })
        .filter(|h| h.embedding.as_ref().is_some_and(|s| s.model_size == size))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let sha = sha256_file(path).ok()?;
    candidates.into_iter().find(|h| h.embedding.as_ref().is_some_and(|s| s.model_sha256 == sha))
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sotto_models::fetch::sha256_file(path).map_err(std::io::Error::other)
}

/// The shipped model heads, by catalogue id (for tests and `sotto head` reports).
pub fn shipped() -> Vec<(&'static str, Head)> {
    SHIPPED
        .iter()
        .map(|(id, json)| (*id, Head::from_json(json, id).expect("a shipped model head fits this build")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shipped_model_heads_fit_this_build_and_the_committed_corpus() {
        let corpus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/corpus/events.jsonl");
        let split = super::super::train::Split::load(&corpus).unwrap();
        for (id, head) in shipped() {
            let spec = head.embedding.as_ref().expect("a model head reads embeddings");
            assert_eq!(head.provenance.corpus_sha256, split.sha256, "{id}: run `sotto head train --model {id}`");
            let model = sotto_models::catalog::find(id).expect("a catalogue model");
            assert_eq!(spec.model_sha256, model.sha256, "{id} was trained on another file");
            assert!(spec.embed_below > 0.0 && spec.cascade.embedded_share < 0.5, "{id}: {:?}", spec.cascade);
        }
    }

    #[test]
    fn a_file_of_a_known_models_size_but_other_bytes_gets_no_model_head() {
        let (_, head) = &shipped()[0];
        let size = head.embedding.as_ref().unwrap().model_size;
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(size).unwrap(); // sparse: hashed, then refused
        assert!(shipped_for(file.path()).is_none());
        let small = tempfile::NamedTempFile::new().unwrap();
        assert!(shipped_for(small.path()).is_none());
    }

    #[test]
    fn the_rendering_names_each_field_and_caps_the_command_line() {
        let e = sotto_events::parse_json(&json!({"process_name": "C:\\Windows\\System32\\cmd.exe",
            "parent_name": "explorer.exe", "command_line": format!("cmd /c {}", "x".repeat(5000))}))
        .unwrap();
        let t = text(&e);
        assert!(
            t.starts_with("Parent: explorer.exe\nProcess: C:\\Windows\\System32\\cmd.exe\nUser: -\nCommand: cmd /c")
        );
        assert!(t.len() < 500, "{}", t.len());
    }

    #[test]
    fn moments_and_blocks_standardise_each_dimension() {
        let es = vec![vec![1.0, 0.0], vec![3.0, 0.0]];
        let (mean, std) = Spec::moments(&es);
        assert_eq!(mean, [2.0, 0.0]);
        assert_eq!(std, [1.0, 0.0]);
        let spec = Spec {
            model_sha256: String::new(),
            model_size: 0,
            model_file: String::new(),
            dim: 2,
            rendering: RENDERING,
            mean,
            std,
            embed_below: 1.0,
            cascade: CascadeFigures::default(),
        };
        let b = spec.block(&[3.0, 0.0]);
        assert!((b[0] - 1.0 / 2f32.sqrt()).abs() < 1e-6 && b[1] == 0.0, "{b:?}");
    }
}
