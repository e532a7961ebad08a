//! The analysis designs, one module each, behind [`Design`]; what they share is here: the
//! engine client ([`Context::run`]), the rationale policy, the bank look-up, and the details
//! the label-scoring and retrieval designs generate.
//!
//! Must not: block a tokio worker (designs await the engine's events), or report a verdict
//! the model output does not support.

pub(crate) mod constrained;
pub(crate) mod head;
pub(crate) mod naive;
pub(crate) mod retrieval;
pub(crate) mod scoring;

use std::sync::Arc;

use sotto_engine::{Admission, Engine, EngineError, FinishReason, Output, Request, Stats};
use sotto_events::Event;
use sotto_events::eval::Label;

use crate::analyzer::{AnalyzeError, Detail, Options, Rationale};
use crate::bank::{Bank, Example};
use crate::prompt::{self, Style};
use crate::verdict::{self, LabelScores, Severity, Verdict};

/// One way of turning an event into a verdict.
pub(crate) trait Design {
    /// The verdict for `event` (already cut to the configured field length), with what it
    /// cost in `cost`.
    async fn verdict(
        &self,
        cx: &Context,
        event: &Event,
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Answer, AnalyzeError>;
}

/// A design's answer: the verdict, and the features that drove it in words (designs that
/// can name them).
#[derive(Debug)]
pub(crate) struct Answer {
    pub verdict: Verdict,
    pub evidence: Vec<String>,
}

impl From<Verdict> for Answer {
    fn from(verdict: Verdict) -> Self {
        Answer { verdict, evidence: Vec::new() }
    }
}

/// What every design reads: the engine, the prompt style its model wants, the settings.
pub(crate) struct Context {
    pub engine: Arc<Engine>,
    pub style: Style,
    pub options: Options,
}

/// Tokens one event cost, over all its requests.
#[derive(Debug, Default)]
pub(crate) struct Cost {
    pub prompt: usize,
    pub cached: usize,
    pub generated: usize,
    /// The model's embedding of the event was computed.
    pub embedded: bool,
    /// The cascade wanted the embedding, but the engine was busy, so the lexical head answered.
    pub embedding_skipped: bool,
}

impl Cost {
    fn add(&mut self, stats: &Stats) {
        self.prompt += stats.prompt_tokens;
        self.cached += stats.cached_tokens;
        self.generated += stats.generated_tokens;
    }
}

/// A bank example and its similarity to the event.
pub(crate) type Near<'b> = (&'b Example, f32);

/// Neighbours the retrieval vote counts.
pub const VOTE_NEIGHBOURS: usize = 5;

impl Context {
    /// Whether a verdict of `label` gets a generated rationale: `detail=full` always, else
    /// as the rationale policy says.
    pub fn wants_rationale(&self, detail: Detail, label: Label) -> bool {
        match (detail, self.options.rationale) {
            (Detail::Full, _) | (_, Rationale::Always) => true,
            (_, Rationale::Flagged) => label != Label::Benign,
            (_, Rationale::Never) => false,
        }
    }

    /// The `k` bank examples closest to `event`, least similar first (none for `k` 0).
    pub fn neighbours(&self, event: &Event, k: usize) -> Vec<Near<'static>> {
        if k == 0 { Vec::new() } else { Bank::shipped().nearest(event, k) }
    }

    /// The `retrieve` closest of `near` as prompt examples, closest last.
    pub fn shots(&self, near: &[Near<'_>]) -> Vec<prompt::Shot> {
        tail(near, self.options.retrieve).iter().map(|(ex, _)| prompt::Shot::retrieved(ex)).collect()
    }

    /// Submit and await the whole answer. A deadline that passes before the start is
    /// [`AnalyzeError::Deadline`]; one that cuts the answer off is an error too, as a verdict
    /// cut off mid-answer is no verdict.
    pub async fn run(&self, request: Request, admission: Admission, cost: &mut Cost) -> Result<Output, AnalyzeError> {
        let mut reply = self.engine.submit(request)?;
        reply.started(admission.deadline).await.map_err(|e| match e {
            EngineError::DeadlineExceeded { .. } => AnalyzeError::Deadline,
            e => e.into(),
        })?;
        let (output, stats) = reply.collect().await?;
        cost.add(&stats);
        if stats.finish == FinishReason::Deadline {
            let after = stats.queued + stats.prefill + stats.decode;
            return Err(EngineError::DeadlineWhileRunning { after }.into());
        }
        Ok(output)
    }

    /// Techniques (none for benign) and a one-sentence rationale for `label`, generated
    /// under the details grammar after the same prompt the label was scored on.
    pub async fn details(
        &self,
        event: &Event,
        shots: &[prompt::Shot],
        label: Label,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<(Vec<String>, Option<String>), AnalyzeError> {
        let layout = prompt::lines(self.style, event, true, shots);
        let request = Request {
            answer_prefix: Some(format!("Verdict: {label}\nTechniques:")),
            grammar: Some(prompt::details_grammar()),
            ..prompt::request(layout, 80).admitted(admission)
        };
        let text = self.run(request, admission, cost).await?.text;
        let (techniques, rationale) = parse_details(&text);
        Ok((if label == Label::Benign { Vec::new() } else { techniques }, rationale))
    }
}

/// The `k` closest of `near` (sorted least similar first).
pub(crate) fn tail<'a, 'b>(near: &'a [Near<'b>], k: usize) -> &'a [Near<'b>] {
    &near[near.len().saturating_sub(k)..]
}

/// The labels in the order of every per-label array.
pub(crate) const LABELS: [Label; 3] = [Label::Malicious, Label::Suspicious, Label::Benign];

/// The most probable label, its probability as the confidence, and the three probabilities;
/// techniques and rationale are left for the caller.
pub(crate) fn from_probabilities(probs: [f64; 3]) -> Verdict {
    let best = (0..3).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).expect("three labels");
    let label = LABELS[best];
    Verdict {
        verdict: label,
        confidence: probs[best],
        severity: Severity::derive(label, probs[best]),
        techniques: Vec::new(),
        rationale: None,
        scores: Some(LabelScores { malicious: probs[0], suspicious: probs[1], benign: probs[2] }),
    }
}

/// Read ` T1059.001, T1105\nRationale: ...` (the details grammar's output).
fn parse_details(text: &str) -> (Vec<String>, Option<String>) {
    let mut lines = text.lines();
    let techs = lines.next().unwrap_or("").trim();
    let techniques = if techs == "none" { Vec::new() } else { verdict::valid_techniques(techs.split(',')) };
    let rationale =
        lines.find_map(|l| l.strip_prefix("Rationale:")).map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    (techniques, rationale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_parsed_and_validated() {
        let (t, r) = parse_details(" T1059.001, T9999, T1105\nRationale: Downloads and runs a script.\n");
        assert_eq!(t, ["T1059.001", "T1105"]);
        assert_eq!(r.as_deref(), Some("Downloads and runs a script."));
        let (t, r) = parse_details(" none\nRationale: Routine.\n");
        assert!(t.is_empty() && r.as_deref() == Some("Routine."));
    }

    #[test]
    fn the_most_probable_label_wins_with_its_probability() {
        let v = from_probabilities([0.2, 0.1, 0.7]);
        assert_eq!(v.verdict, Label::Benign);
        assert!((v.confidence - 0.7).abs() < 1e-12);
    }
}
