//! Training a verdict head from labelled events, reproducibly: the same samples give the
//! same head, byte for byte.
//!
//! The classifier is `linfa-logistic`'s multinomial logistic regression (L2, L-BFGS). Its
//! L2 weight is chosen by cross-validation grouped by family, so each fold is scored on
//! families it never saw, which is how the head meets real telemetry. The out-of-fold logits
//! then fit the calibration (a second multinomial regression over the three logits:
//! multi-class Platt scaling) and the flag threshold. Must not: see the test side of the
//! family split (the caller passes training events only), or depend on hash-map order.

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use sotto_events::eval::Label;

use super::{CLASSES, FORMAT, Head, Layout, Neighbour, Provenance, calibrate, sparse};

/// The benign false-positive rate the flag threshold aims at, out of fold.
pub const TARGET_FPR: f64 = 0.04;

/// One training event.
pub struct Sample {
    pub x: Vec<f32>,
    pub label: Label,
    pub techniques: Vec<String>,
    pub family: String,
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Cross-validation folds (families are split among them).
    pub folds: usize,
    /// L2 weights to choose from.
    pub alphas: Vec<f64>,
    pub max_iterations: u64,
    /// Use the evidence block (false: lexical features only, for comparison).
    pub evidence: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { folds: 5, alphas: vec![0.3, 1.0, 3.0], max_iterations: 300, evidence: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot train on {0} events: need at least one of each label and two families")]
    TooFew(usize),
    #[error("logistic regression failed: {0}")]
    Fit(String),
}

fn class_index(l: Label) -> usize {
    CLASSES.iter().position(|c| *c == l).expect("three classes")
}

/// A fitted regression's logits in [`CLASSES`] order (a class absent from its training
/// data gets a very low logit).
struct Fitted {
    w: Array2<f64>,
    b: Array1<f64>,
    classes: Vec<usize>,
}

impl Fitted {
    fn logits(&self, x: &Array2<f64>) -> Array2<f64> {
        let raw = x.dot(&self.w) + &self.b;
        let mut out = Array2::from_elem((x.nrows(), 3), -30.0);
        for (j, &c) in self.classes.iter().enumerate() {
            out.column_mut(c).assign(&raw.column(j));
        }
        out
    }
}

fn fit(x: &Array2<f64>, y: &Array1<usize>, alpha: f64, iterations: u64) -> Result<Fitted, TrainError> {
    let data = Dataset::new(x.clone(), y.clone());
    let model = MultiLogisticRegression::default()
        .alpha(alpha)
        .max_iterations(iterations)
        .fit(&data)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    Ok(Fitted { w: model.params().clone(), b: model.intercept().clone(), classes: model.classes().to_vec() })
}

fn matrix(rows: &[&[f32]]) -> Array2<f64> {
    let d = rows.first().map_or(0, |r| r.len());
    Array2::from_shape_fn((rows.len(), d), |(i, j)| f64::from(rows[i][j]))
}

/// Fold of each sample: families ordered by a stable hash, dealt round-robin.
fn folds(samples: &[Sample], k: usize) -> Vec<usize> {
    let mut families: Vec<&str> = samples.iter().map(|s| s.family.as_str()).collect();
    families.sort_by_key(|f| (fnv(f), *f));
    families.dedup();
    samples.iter().map(|s| families.iter().position(|f| *f == s.family).expect("listed") % k).collect()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Out-of-fold logits for every sample.
fn out_of_fold(
    x: &Array2<f64>,
    y: &Array1<usize>,
    fold: &[usize],
    k: usize,
    alpha: f64,
    it: u64,
) -> Result<Array2<f64>, TrainError> {
    let mut oof = Array2::zeros((x.nrows(), 3));
    for f in 0..k {
        let train: Vec<usize> = (0..x.nrows()).filter(|&i| fold[i] != f).collect();
        let test: Vec<usize> = (0..x.nrows()).filter(|&i| fold[i] == f).collect();
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let model = fit(&x.select(ndarray::Axis(0), &train), &y.select(ndarray::Axis(0), &train), alpha, it)?;
        let logits = model.logits(&x.select(ndarray::Axis(0), &test));
        for (r, &i) in test.iter().enumerate() {
            oof.row_mut(i).assign(&logits.row(r));
        }
    }
    Ok(oof)
}

fn log_loss(logits: &Array2<f64>, y: &Array1<usize>) -> f64 {
    let mut total = 0.0;
    for (row, &c) in logits.rows().into_iter().zip(y) {
        let p = super::softmax([row[0], row[1], row[2]]);
        total -= p[c].max(1e-12).ln();
    }
    total / y.len() as f64
}

/// Trains a head on `samples` (training families only).
pub fn train(samples: &[Sample], corpus_sha256: String, options: &TrainOptions) -> Result<Head, TrainError> {
    train_with_oof(samples, corpus_sha256, options).map(|(head, _)| head)
}

/// Trains a head, and returns with it the calibrated out-of-fold probabilities of every
/// sample (each from a fold that never saw the sample's family).
pub fn train_with_oof(
    samples: &[Sample],
    corpus_sha256: String,
    options: &TrainOptions,
) -> Result<(Head, Vec<[f64; 3]>), TrainError> {
    let families = {
        let mut f: Vec<&str> = samples.iter().map(|s| s.family.as_str()).collect();
        f.sort();
        f.dedup();
        f.len()
    };
    let has_all = CLASSES.iter().all(|c| samples.iter().any(|s| s.label == *c));
    if !has_all || families < 2 {
        return Err(TrainError::TooFew(samples.len()));
    }
    let rows: Vec<&[f32]> = samples.iter().map(|s| s.x.as_slice()).collect();
    let mut x = matrix(&rows);
    if !options.evidence {
        x.slice_mut(ndarray::s![.., super::features::EVIDENCE_AT..super::features::dimension()]).fill(0.0);
    }
    let y: Array1<usize> = samples.iter().map(|s| class_index(s.label)).collect();
    let k = options.folds.clamp(2, families);
    let fold = folds(samples, k);

    let mut best: Option<(f64, f64, Array2<f64>)> = None;
    for &alpha in &options.alphas {
        let oof = out_of_fold(&x, &y, &fold, k, alpha, options.max_iterations)?;
        let loss = log_loss(&oof, &y);
        tracing::info!(alpha, loss, "cross-validated");
        if best.as_ref().is_none_or(|(l, _, _)| loss < *l) {
            best = Some((loss, alpha, oof));
        }
    }
    let (_, alpha, oof) = best.expect("at least one alpha");

    // Calibration: a multinomial regression from the three out-of-fold logits to the label.
    let cal = fit(&oof, &y, 1e-3, options.max_iterations)?;
    let mut scale = [[0.0f32; 3]; 3];
    let mut shift = [-30.0f32; 3];
    for (j, &c) in cal.classes.iter().enumerate() {
        for (kk, row) in scale.iter_mut().enumerate() {
            row[c] = cal.w[[kk, j]] as f32;
        }
        shift[c] = cal.b[j] as f32;
    }
    let probs: Vec<[f64; 3]> = oof.rows().into_iter().map(|r| calibrate(&scale, &shift, [r[0], r[1], r[2]])).collect();

    // The flag threshold: the highest P(benign) cut that keeps out-of-fold false positives
    // at or under the target.
    let mut benign_p: Vec<f64> = probs.iter().zip(&y).filter(|(_, c)| **c == 2).map(|(p, _)| p[2]).collect();
    benign_p.sort_by(f64::total_cmp);
    let allowed = (TARGET_FPR * benign_p.len() as f64).floor() as usize;
    let flag_below = benign_p.get(allowed).copied().unwrap_or(0.5).clamp(0.05, 0.95) as f32;

    let final_model = fit(&x, &y, alpha, options.max_iterations)?;
    let mut weights: [Vec<f32>; 3] = Default::default();
    let mut intercept = [-30.0f32; 3];
    for (j, &c) in final_model.classes.iter().enumerate() {
        weights[c] = final_model.w.column(j).iter().map(|v| *v as f32).collect();
        intercept[c] = final_model.b[j] as f32;
    }
    for w in &mut weights {
        if w.is_empty() {
            *w = vec![0.0; x.ncols()];
        }
    }

    let mut head = Head {
        format: FORMAT,
        layout: Layout::current(),
        provenance: Provenance {
            corpus_sha256,
            train_events: samples.len(),
            train_families: families,
            alpha,
            oof_accuracy: 0.0,
            oof_recall: 0.0,
            oof_fpr: 0.0,
        },
        weights,
        intercept,
        scale,
        shift,
        flag_below,
        evidence: options.evidence,
        embedding: None,
        neighbours: samples
            .iter()
            .filter(|s| s.label != Label::Benign)
            .map(|s| Neighbour {
                label: s.label,
                techniques: s.techniques.clone(),
                x: sparse(&s.x[..super::features::dimension()]).into_iter().map(|(i, v)| (i, round(v))).collect(),
            })
            .collect(),
    };
    let predicted: Vec<Label> = probs.iter().map(|p| head.decide(*p)).collect();
    let truth: Vec<Label> = samples.iter().map(|s| s.label).collect();
    let figures = Figures::of(&truth, &predicted);
    head.provenance.oof_accuracy = figures.accuracy;
    head.provenance.oof_recall = figures.recall;
    head.provenance.oof_fpr = figures.fpr;
    Ok((head, probs))
}

/// Trains a head whose features end with a model's embeddings, and the cascade threshold
/// that decides when they are worth computing.
///
/// `lexical` and `embedded` are the same events in the same order, without and with the
/// embedding block (`spec.block` of each event's embedding). The lexical head trained here
/// equals the shipped one when both come from the same corpus (training is deterministic).
/// The cut is the lowest lexical confidence under which embedding every event keeps the
/// out-of-fold accuracy of always embedding (within half a point).
pub fn train_embedded(
    lexical: &[Sample],
    embedded: &[Sample],
    corpus_sha256: String,
    mut spec: super::embedding::Spec,
    options: &TrainOptions,
) -> Result<Head, TrainError> {
    let (lex_head, lex_oof) = train_with_oof(lexical, corpus_sha256.clone(), options)?;
    let (mut head, emb_oof) = train_with_oof(embedded, corpus_sha256, options)?;
    let truth: Vec<Label> = lexical.iter().map(|s| s.label).collect();
    let confidence = |p: &[f64; 3]| {
        let label = lex_head.decide(*p);
        p[class_index(label)]
    };
    let cascade = |cut: f64| -> (Figures, f64) {
        let mut embedded_n = 0usize;
        let predicted: Vec<Label> = lex_oof
            .iter()
            .zip(&emb_oof)
            .map(|(l, e)| {
                if confidence(l) < cut {
                    embedded_n += 1;
                    head.decide(*e)
                } else {
                    lex_head.decide(*l)
                }
            })
            .collect();
        (Figures::of(&truth, &predicted), embedded_n as f64 / truth.len().max(1) as f64)
    };
    let (always, _) = cascade(f64::INFINITY);
    let (lexical_only, _) = cascade(0.0);
    let mut cuts: Vec<f64> = lex_oof.iter().map(confidence).map(|c| c + 1e-9).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    cuts.push(1.0 + 1e-6);
    let (cut, (figures, share)) = cuts
        .iter()
        .map(|&c| (c, cascade(c)))
        .find(|(_, (f, _))| f.accuracy >= always.accuracy - 0.005 && f.recall >= always.recall - 0.01)
        .unwrap_or((1.0 + 1e-6, cascade(1.0 + 1e-6)));
    spec.embed_below = cut as f32;
    spec.cascade = super::embedding::CascadeFigures {
        lexical_accuracy: lexical_only.accuracy,
        always_accuracy: always.accuracy,
        cascade_accuracy: figures.accuracy,
        embedded_share: share,
    };
    head.embedding = Some(spec);
    Ok(head)
}

/// Four significant decimals: keeps the file small without changing any decision.
fn round(v: f32) -> f32 {
    (v * 1e4).round() / 1e4
}

/// Detection figures as MEASURING.md defines them: a verdict is right when it flags a
/// malicious or suspicious event (either flag counts) and leaves a benign one alone; malicious
/// recall; benign false-positive rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub accuracy: f64,
    pub recall: f64,
    pub fpr: f64,
}

impl Figures {
    pub fn of(truth: &[Label], predicted: &[Label]) -> Figures {
        let mut right = 0usize;
        let (mut mal, mut caught, mut ben, mut flagged) = (0usize, 0usize, 0usize, 0usize);
        for (t, p) in truth.iter().zip(predicted) {
            let ok = (*t == Label::Benign) == (*p == Label::Benign);
            right += usize::from(ok);
            if *t == Label::Malicious {
                mal += 1;
                caught += usize::from(*p != Label::Benign);
            }
            if *t == Label::Benign {
                ben += 1;
                flagged += usize::from(*p != Label::Benign);
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Figures { accuracy: ratio(right, truth.len()), recall: ratio(caught, mal), fpr: ratio(flagged, ben) }
    }
}

/// A labelled file split by family, ready to train or score on.
pub struct Split {
    pub items: Vec<sotto_events::LabelledEvent>,
    pub sides: Vec<sotto_events::eval::Side>,
    /// sha256 of the file, recorded in the head it trains.
    pub sha256: String,
}

impl Split {
    /// Loads a labelled file (the corpus, or the older suite) and splits it by family.
    pub fn load(path: &std::path::Path) -> Result<Split, sotto_events::SuiteError> {
        use sha2::Digest;
        // One read: the text that is parsed is the text that is hashed.
        let text = std::fs::read_to_string(path)
            .map_err(|e| sotto_events::SuiteError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        let items = sotto_events::eval::parse_suite(&text)?;
        let sha256 = format!("{:x}", sha2::Sha256::digest(text.as_bytes()));
        let sides = sotto_events::eval::family_split(&items);
        Ok(Split { items, sides, sha256 })
    }

    /// The events on one side.
    pub fn side(&self, side: sotto_events::eval::Side) -> Vec<&sotto_events::LabelledEvent> {
        self.items.iter().zip(&self.sides).filter(|(_, s)| **s == side).map(|(i, _)| i).collect()
    }

    /// Training samples from the training side; an event that does not parse is an error
    /// naming it (a corpus must parse whole).
    pub fn training_samples(&self) -> Result<Vec<Sample>, String> {
        self.side(sotto_events::eval::Side::Train)
            .into_iter()
            .map(|item| {
                let event = item.parse().map_err(|e| format!("{}: {e}", item.id))?;
                Ok(Sample {
                    x: super::features::extract(&event).x,
                    label: item.label,
                    techniques: item.techniques.clone(),
                    family: item.family_or_id().to_string(),
                })
            })
            .collect()
    }
}
