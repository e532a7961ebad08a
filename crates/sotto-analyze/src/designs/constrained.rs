//! The constrained design: the model writes the whole verdict as JSON under the verdict
//! schema's grammar, after the curated examples (and retrieved ones, if configured) or with
//! none (zero-shot).

use sotto_engine::{Admission, Request};
use sotto_events::Event;

use super::{Answer, Context, Cost, Design};
use crate::analyzer::{AnalyzeError, Detail};
use crate::prompt::{self, Style};
use crate::verdict;

pub(crate) struct Constrained {
    /// Show the curated examples before the event.
    pub examples: bool,
}

impl Design for Constrained {
    async fn verdict(
        &self,
        cx: &Context,
        event: &Event,
        _detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Answer, AnalyzeError> {
        let near = cx.neighbours(event, if self.examples { cx.options.retrieve } else { 0 });
        let layout = prompt::json(cx.style, event, self.examples, &cx.shots(&near));
        let schema = sotto_engine::grammar::from_json_schema(verdict::SCHEMA).expect("the verdict schema converts");
        let grammar = match cx.style {
            Style::Completion => prompt::with_leading_space(schema),
            Style::Chat => schema,
        };
        let request = Request {
            answer_prefix: prompt::json_answer_prefix(cx.style),
            grammar: Some(grammar),
            ..prompt::request(layout, 160).admitted(admission)
        };
        let text = cx.run(request, admission, cost).await?.text;
        verdict::from_json(text.trim()).map(Answer::from).map_err(AnalyzeError::Unparsed)
    }
}
