//! The naive baseline: a plain question, no examples, no constraints; the answer read
//! leniently. It is what a user would try first, and what the evaluation measures the other
//! designs against.

use sotto_engine::Admission;
use sotto_events::Event;

use super::{Answer, Context, Cost, Design};
use crate::analyzer::{AnalyzeError, Detail};
use crate::prompt;
use crate::verdict::{self, Severity, Verdict};
use sotto_events::eval::Label;

pub(crate) struct Naive;

impl Design for Naive {
    async fn verdict(
        &self,
        cx: &Context,
        event: &Event,
        _detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Answer, AnalyzeError> {
        let request = prompt::naive(event).admitted(admission);
        let text = cx.run(request, admission, cost).await?.text;
        let label = verdict::lenient_label(&text).ok_or_else(|| AnalyzeError::Unparsed(text.clone()))?;
        let rationale = text.trim().lines().next().map(str::to_string);
        Ok(Answer::from(Verdict {
            verdict: label,
            confidence: 0.5,
            severity: Severity::derive(label, 0.5),
            techniques: if label == Label::Benign { Vec::new() } else { verdict::techniques_in_text(&text) },
            rationale,
            scores: None,
        }))
    }
}
