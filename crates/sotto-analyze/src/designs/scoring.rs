//! The label-scoring design (`fast`): one prefill of the prompt (examples included), then the
//! log-probabilities of the three labels; optionally calibrated against a content-free event,
//! or blended with the bank vote. Techniques and a rationale are generated only when asked.

use std::sync::Mutex;

use sotto_engine::{Admission, EngineError, Request, Task};
use sotto_events::Event;

use super::{Answer, Context, Cost, Design, LABELS, Near, VOTE_NEIGHBOURS, from_probabilities, tail};
use crate::analyzer::{AnalyzeError, Detail};
use crate::bank::Bank;
use crate::prompt;

#[derive(Default)]
pub(crate) struct Scoring {
    /// Label log-probabilities of the content-free event, computed on first use.
    calibration: Mutex<Option<[f64; 3]>>,
}

impl Design for Scoring {
    async fn verdict(
        &self,
        cx: &Context,
        event: &Event,
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Answer, AnalyzeError> {
        let o = cx.options;
        let near = cx.neighbours(event, if o.blend { VOTE_NEIGHBOURS.max(o.retrieve) } else { o.retrieve });
        let shots = cx.shots(&near);
        let mut scores = self.label_scores(cx, event, &shots, admission, cost).await?;
        if o.calibrate {
            let base = self.calibration(cx, admission).await?;
            for (s, b) in scores.iter_mut().zip(base) {
                *s -= b;
            }
        }
        let mut probs = softmax(scores);
        if o.blend {
            let (vote, closest) = Bank::vote(tail(&near, VOTE_NEIGHBOURS));
            probs = blend(probs, vote, closest);
        }
        let mut verdict = from_probabilities(probs);
        let label = verdict.verdict;
        if cx.wants_rationale(detail, label) {
            (verdict.techniques, verdict.rationale) = cx.details(event, &shots, label, admission, cost).await?;
        }
        Ok(verdict.into())
    }
}

impl Scoring {
    /// Raw log-probabilities of the three labels for `event`, and those of the content-free
    /// event used for calibration. For studying the design.
    pub async fn raw(&self, cx: &Context, event: &Event) -> Result<([f64; 3], [f64; 3]), AnalyzeError> {
        let mut cost = Cost::default();
        let shots = cx.shots(&cx.neighbours(event, cx.options.retrieve));
        let scores = self.label_scores(cx, event, &shots, Admission::default(), &mut cost).await?;
        Ok((scores, self.calibration(cx, Admission::default()).await?))
    }

    /// Log-probabilities of " malicious", " suspicious", " benign" after `Verdict:`.
    async fn label_scores(
        &self,
        cx: &Context,
        event: &Event,
        shots: &[prompt::Shot],
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<[f64; 3], AnalyzeError> {
        let layout = prompt::lines(cx.style, event, true, shots);
        let continuations = LABELS.iter().map(|l| format!(" {l}")).collect();
        let request = Request {
            task: Task::Score(continuations),
            answer_prefix: Some("Verdict:".into()),
            ..prompt::request(layout, 0).admitted(admission)
        };
        let scores = cx.run(request, admission, cost).await?.scores;
        let scores = scores.ok_or(AnalyzeError::Engine(EngineError::Stopped))?;
        Ok([scores[0], scores[1], scores[2]])
    }

    /// Computed once; its cost is not charged to the event that happened to need it first.
    async fn calibration(&self, cx: &Context, admission: Admission) -> Result<[f64; 3], AnalyzeError> {
        if let Some(c) = *self.calibration.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(c);
        }
        let blank = sotto_events::parse_json(&serde_json::json!({"command_line": "N/A"})).expect("parses");
        let mut ignored = Cost::default();
        let near: Vec<Near<'_>> = cx.neighbours(&blank, cx.options.retrieve);
        let c = self.label_scores(cx, &blank, &cx.shots(&near), admission, &mut ignored).await?;
        *self.calibration.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
        tracing::debug!(malicious = c[0], suspicious = c[1], benign = c[2], "label calibration");
        Ok(c)
    }
}

fn softmax(x: [f64; 3]) -> [f64; 3] {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = x.map(|v| (v - max).exp());
    let sum: f64 = e.iter().sum();
    e.map(|v| v / sum)
}

/// `closest × vote + (1 − closest) × model`: a close bank example outweighs the model's own
/// judgement, a distant one leaves it to the model.
fn blend(model: [f64; 3], vote: [f64; 3], closest: f64) -> [f64; 3] {
    let w = closest.clamp(0.0, 1.0);
    [0, 1, 2].map(|i| w * vote[i] + (1.0 - w) * model[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax([-1.0, -3.0, -0.5]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[2] > p[0] && p[0] > p[1]);
    }

    #[test]
    fn blending_follows_the_closeness_of_the_closest_example() {
        let model = [0.8, 0.1, 0.1];
        let vote = [0.1, 0.1, 0.8];
        assert_eq!(blend(model, vote, 0.0), model);
        assert_eq!(blend(model, vote, 1.0), vote);
        let half = blend(model, vote, 0.5);
        assert!((half.iter().sum::<f64>() - 1.0).abs() < 1e-12 && (half[0] - 0.45).abs() < 1e-12);
    }
}
