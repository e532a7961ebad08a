//! Scoring an evaluation run: accuracy, per-class precision/recall/F1, malicious-vs-benign
//! detection at the verdict threshold, technique hit rate and latency. Pure functions over the
//! per-event outcomes, so the figures are tested without a model.
//!
//! Must not: drop an event from the denominator because its answer could not be read (an
//! unreadable answer is a wrong answer).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sotto_engine::Engine;
use sotto_events::eval::{Label, LabelledEvent};
use sotto_governor::percentile;

use crate::{Admission, Analyzer, Detail, Embeddings, Mode, Options};

const LABELS: [Label; 3] = [Label::Malicious, Label::Suspicious, Label::Benign];

/// One labelled event, graded: what was expected and what the analysis said.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub id: String,
    pub format: String,
    pub os: String,
    pub expected: Label,
    /// `None` when analysis failed or the answer named no verdict.
    pub predicted: Option<Label>,
    pub confidence: Option<f64>,
    pub expected_techniques: Vec<String>,
    pub predicted_techniques: Vec<String>,
    pub latency_ms: f64,
    /// The model's embedding of the event was part of the verdict.
    pub embedded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClassScores {
    pub label: Label,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: usize,
    /// MEASURING.md's accuracy: a malicious or suspicious event is right when flagged (either
    /// label), a benign one when not.
    pub accuracy: f64,
    /// Exact three-way agreement.
    pub exact: f64,
    pub macro_f1: f64,
    pub classes: Vec<ClassScores>,
    /// `confusion[expected][predicted]`, in the order malicious, suspicious, benign, none.
    pub confusion: [[usize; 4]; 3],
    /// Malicious events flagged (verdict malicious or suspicious).
    pub detection_rate: f64,
    /// Benign events flagged (verdict malicious or suspicious).
    pub false_positive_rate: f64,
    /// Events with expected techniques where a predicted technique matches one of them (a
    /// sub-technique matches its parent and siblings).
    pub technique_hit_rate: f64,
    /// Answers that named no verdict, or failed.
    pub unanswered: usize,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_mean_ms: f64,
    /// Process CPU time over the run divided by the events (filled in by [`run_suite`]).
    pub cpu_s_per_event: f64,
    /// Share of events whose verdict used the model's embedding.
    pub embedded_share: f64,
}

fn index(label: Label) -> usize {
    LABELS.iter().position(|&l| l == label).expect("three labels")
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

fn base(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// Score a run.
pub fn score(outcomes: &[Graded]) -> Report {
    let mut confusion = [[0usize; 4]; 3];
    for o in outcomes {
        let col = o.predicted.map_or(3, index);
        confusion[index(o.expected)][col] += 1;
    }
    let correct: usize = (0..3).map(|i| confusion[i][i]).sum();
    let flag_correct = confusion[0][0] + confusion[0][1] + confusion[1][0] + confusion[1][1] + confusion[2][2];
    let classes: Vec<ClassScores> = LABELS
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = (0..3).map(|r| confusion[r][i]).sum();
            let precision = ratio(confusion[i][i], predicted);
            let recall = ratio(confusion[i][i], support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassScores { label, precision, recall, f1, support }
        })
        .collect();
    let flagged = |row: &[usize; 4]| row[0] + row[1];
    let mal: usize = confusion[0].iter().sum();
    let ben: usize = confusion[2].iter().sum();
    let with_techniques: Vec<&Graded> = outcomes.iter().filter(|o| !o.expected_techniques.is_empty()).collect();
    let hits = with_techniques
        .iter()
        .filter(|o| o.predicted_techniques.iter().any(|p| o.expected_techniques.iter().any(|e| base(e) == base(p))))
        .count();
    let latencies: Vec<f64> = outcomes.iter().map(|o| o.latency_ms).collect();
    Report {
        events: outcomes.len(),
        accuracy: ratio(flag_correct, outcomes.len()),
        exact: ratio(correct, outcomes.len()),
        macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / 3.0,
        classes,
        confusion,
        detection_rate: ratio(flagged(&confusion[0]), mal),
        false_positive_rate: ratio(flagged(&confusion[2]), ben),
        technique_hit_rate: ratio(hits, with_techniques.len()),
        unanswered: outcomes.iter().filter(|o| o.predicted.is_none()).count(),
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        latency_mean_ms: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<f64>() / latencies.len() as f64
        },
        cpu_s_per_event: 0.0,
        embedded_share: outcomes.iter().filter(|o| o.embedded).count() as f64 / outcomes.len().max(1) as f64,
    }
}

/// One design's run over the suite.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The design (`fast`, `constrained`, ..., `fast-uncalibrated`).
    pub design: String,
    pub report: Report,
    pub outcomes: Vec<Graded>,
    pub wall_s: f64,
}

/// Examples the `-retrieval` designs that let the model pick the label show by default.
const RETRIEVED: usize = 4;

/// A candidate the evaluation compares: a design's name and the analyzer options it stands
/// for.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub options: Options,
    /// A head other than the shipped one (`head-lexical` is trained by the caller).
    pub head: Option<Arc<crate::head::Head>>,
}

impl Candidate {
    /// The names `parse` reads; `-retrieval` takes an optional `:K` (examples per event).
    pub const NAMES: &'static str = "head, head-embed, head-evidence, head-lexical, retrieval[:K], fast, fast-calibrated, fast-blend, fast-retrieval[:K], constrained, constrained-retrieval[:K], constrained-zero-shot, naive";

    /// Every design, for `--designs all`: the four configurations, with and without
    /// retrieval where it applies, and the model-free vote.
    pub fn all() -> Vec<Candidate> {
        [
            "head",
            "head-embed",
            "head-evidence",
            "retrieval",
            "fast-blend",
            "fast-retrieval",
            "fast",
            "fast-calibrated",
            "constrained-retrieval",
            "constrained",
            "constrained-zero-shot",
            "naive",
        ]
        .iter()
        .map(|n| Candidate::parse(n).expect("known names"))
        .collect()
    }

    pub fn parse(name: &str) -> Result<Candidate, String> {
        let (base, k) = match name.split_once(':') {
            Some((b, k)) => {
                let k: usize = k.parse().map_err(|_| format!("`{k}` in `{name}` is not an example count"))?;
                (b, Some(k))
            }
            None => (name, None),
        };
        let with = |mode, calibrate, retrieve| Options { mode, calibrate, retrieve, ..Options::default() };
        let blended = |retrieve| Options { blend: true, ..with(Mode::Fast, false, retrieve) };
        let k_or = |d| k.unwrap_or(d);
        let options = match base {
            "fast" => with(Mode::Fast, false, 0),
            "fast-calibrated" => with(Mode::Fast, true, 0),
            "fast-blend" => blended(0),
            "fast-retrieval" => with(Mode::Fast, false, k_or(RETRIEVED)),
            "constrained" => with(Mode::Constrained, false, 0),
            "constrained-retrieval" => with(Mode::Constrained, false, k_or(RETRIEVED)),
            "constrained-zero-shot" => with(Mode::ConstrainedZeroShot, false, 0),
            "naive" => with(Mode::Naive, false, 0),
            "retrieval" => with(Mode::Retrieval, false, k_or(crate::DEFAULT_RETRIEVE)),
            "head" => with(Mode::Head, false, 0),
            // The head without the model (lexical and evidence features), and with the model's
            // embedding of every event instead of only the unsure ones.
            "head-evidence" | "head-lexical" => Options { embeddings: Embeddings::Off, ..with(Mode::Head, false, 0) },
            "head-embed" => Options { embeddings: Embeddings::Always, ..with(Mode::Head, false, 0) },
            _ => return Err(format!("unknown design `{name}`: expected one of {}", Candidate::NAMES)),
        };
        if k.is_some() && !base.contains("retrieval") {
            return Err(format!("`{name}`: only the retrieval designs take an example count"));
        }
        Ok(Candidate { name: name.to_string(), options, head: None })
    }
}

/// Run `suite` through each candidate on `engine`, one event at a time, as a deployed daemon
/// would see them. `progress` is called after each event with (design, done, total).
pub fn run_suite(
    engine: &Arc<Engine>,
    suite: &[LabelledEvent],
    designs: &[Candidate],
    max_field_chars: usize,
    mut progress: impl FnMut(&str, usize, usize),
) -> std::io::Result<Vec<Run>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let mut runs = Vec::new();
    for d in designs {
        let design = d.name.clone();
        let mut analyzer = Analyzer::new(engine.clone(), Options { max_field_chars, ..d.options });
        if let Some(head) = &d.head {
            analyzer = analyzer.with_head(head.clone()).map_err(std::io::Error::other)?;
        }
        let started = Instant::now();
        let cpu_start = sotto_engine::process_cpu_time();
        let mut outcomes = Vec::with_capacity(suite.len());
        for (i, item) in suite.iter().enumerate() {
            let t = Instant::now();
            let result = match item.parse() {
                Ok(event) => runtime
                    .block_on(analyzer.analyze(&event, Detail::Verdict, Admission::default()))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("unreadable: {e}")),
            };
            let latency_ms = t.elapsed().as_secs_f64() * 1e3;
            let (predicted, confidence, techniques, embedded, error) = match result {
                Ok(a) => (Some(a.verdict.verdict), Some(a.verdict.confidence), a.verdict.techniques, a.embedded, None),
                Err(e) => (None, None, Vec::new(), false, Some(e)),
            };
            outcomes.push(Graded {
                id: item.id.clone(),
                format: item.format.clone(),
                os: item.os.clone(),
                expected: item.label,
                predicted,
                confidence,
                expected_techniques: item.techniques.clone(),
                predicted_techniques: techniques,
                latency_ms,
                embedded,
                error,
            });
            progress(&design, i + 1, suite.len());
        }
        let mut report = score(&outcomes);
        report.cpu_s_per_event =
            (sotto_engine::process_cpu_time() - cpu_start).as_secs_f64() / suite.len().max(1) as f64;
        runs.push(Run { design, report, outcomes, wall_s: started.elapsed().as_secs_f64() });
    }
    Ok(runs)
}

/// A Markdown table, one row per design.
pub fn table(model: &Path, runs: &[Run]) -> String {
    let mut t = format!(
        "model: {}\n\n| design | accuracy | exact | malicious recall | benign FPR | technique hit | no answer | verdict p50 / p95 / p99 ms | CPU-s per event | embedded |\n|---|---|---|---|---|---|---|---|---|---|\n",
        model.file_name().unwrap_or_default().to_string_lossy()
    );
    for run in runs {
        let r = &run.report;
        t.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.1} / {:.1} / {:.1} | {:.4} | {:.2} |\n",
            run.design,
            r.accuracy,
            r.exact,
            r.detection_rate,
            r.false_positive_rate,
            r.technique_hit_rate,
            r.unanswered,
            r.latency_p50_ms,
            r.latency_p95_ms,
            r.latency_p99_ms,
            r.cpu_s_per_event,
            r.embedded_share,
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(expected: Label, predicted: Option<Label>, exp_t: &[&str], pred_t: &[&str], ms: f64) -> Graded {
        Graded {
            id: "x".into(),
            format: "plain".into(),
            os: "linux".into(),
            expected,
            predicted,
            confidence: None,
            expected_techniques: exp_t.iter().map(|s| s.to_string()).collect(),
            predicted_techniques: pred_t.iter().map(|s| s.to_string()).collect(),
            latency_ms: ms,
            embedded: false,
            error: None,
        }
    }

    #[test]
    fn figures_follow_the_confusion_matrix() {
        use Label::*;
        let run = [
            outcome(Malicious, Some(Malicious), &["T1059.001"], &["T1059.003"], 10.0),
            outcome(Malicious, Some(Suspicious), &["T1105"], &["T1027"], 20.0),
            outcome(Malicious, None, &["T1105"], &[], 30.0),
            outcome(Suspicious, Some(Suspicious), &[], &[], 40.0),
            outcome(Benign, Some(Benign), &[], &[], 50.0),
            outcome(Benign, Some(Malicious), &[], &["T1105"], 60.0),
        ];
        let r = score(&run);
        assert_eq!(r.events, 6);
        assert!((r.exact - 3.0 / 6.0).abs() < 1e-12);
        // Flagged malicious (2 of 3), the suspicious one, and one benign left alone.
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(r.confusion[0], [1, 1, 0, 1]);
        assert_eq!(r.unanswered, 1);
        // Malicious: precision 1/2 (one benign called malicious), recall 1/3.
        let m = r.classes[0];
        assert!((m.precision - 0.5).abs() < 1e-12 && (m.recall - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.detection_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.false_positive_rate - 0.5).abs() < 1e-12);
        // T1059.003 matches T1059.001 through the parent; T1027 does not match T1105.
        assert!((r.technique_hit_rate - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((r.latency_p50_ms, r.latency_p95_ms), (30.0, 60.0));
    }
}
