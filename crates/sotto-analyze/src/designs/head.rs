//! The head design (the default): the trained verdict head labels the event from its
//! features; when a head for the loaded model exists and the lexical head is unsure, the
//! model's embedding of the event joins the features (the cascade), if the engine is free:
//! a verdict does not queue behind other work. The model writes a rationale, given the
//! verdict, only when asked.

use std::sync::Arc;

use sotto_engine::{Admission, EngineError, Priority, Request};
use sotto_events::Event;
use sotto_events::eval::Label;

use super::{Answer, Context, Cost, Design};
use crate::analyzer::{AnalyzeError, Detail, Embeddings};
use crate::head::{Head, embedding};
use crate::prompt;

pub(crate) struct HeadDesign {
    /// Asked first: lexical and evidence features.
    pub lexical: Arc<Head>,
    /// Also reads the loaded model's embedding, if there is a head for it.
    pub embedded: Option<Arc<Head>>,
}

impl HeadDesign {
    /// The shipped lexical head, and the shipped head for the model at `model`, if any.
    pub fn shipped(model: &std::path::Path) -> Self {
        HeadDesign { lexical: Arc::new(Head::shipped().clone()), embedded: embedding::shipped_for(model) }
    }
}

impl Design for HeadDesign {
    async fn verdict(
        &self,
        cx: &Context,
        event: &Event,
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Answer, AnalyzeError> {
        let lexical = self.lexical.judge(event);
        let judged = match (&self.embedded, cx.options.embeddings) {
            (Some(head), policy) if policy != Embeddings::Off => {
                let cut = head.embedding.as_ref().map_or(1.0, |s| f64::from(s.embed_below));
                let unsure = lexical.verdict.confidence < cut;
                // In the cascade a verdict never waits behind other work (a generation, another
                // event's embedding) or a model load: the lexical head answers instead.
                let status = cx.engine.status();
                let free = status.loaded && !status.busy && status.queued == 0;
                if policy == Embeddings::Cascade && unsure && !free {
                    cost.embedding_skipped = true;
                }
                if policy == Embeddings::Always || (unsure && free) {
                    let request = Request::embed(embedding::text(event)).admitted(admission);
                    match cx.run(request, admission, cost).await {
                        Ok(reply) => {
                            cost.embedded = true;
                            head.judge_with(event, reply.embedding.as_deref())
                        }
                        // The deadline passed while the model read the event: the lexical
                        // verdict, on time, is worth more than a better one too late.
                        Err(AnalyzeError::Engine(EngineError::DeadlineWhileRunning { .. })) => {
                            cost.embedding_skipped = true;
                            lexical
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    lexical
                }
            }
            _ => lexical,
        };
        let mut verdict = judged.verdict;
        let evidence = judged.evidence;
        let label = verdict.verdict;
        if cx.wants_rationale(detail, label) {
            let request = rationale_request(cx, event, label, &evidence).admitted(admission);
            match cx.run(request, admission, cost).await {
                Ok(reply) => verdict.rationale = Some(reply.text.trim().to_string()).filter(|r| !r.is_empty()),
                // The verdict stands without its explanation when the deadline passes while
                // the model writes it (a cut sentence would mislead).
                Err(AnalyzeError::Engine(EngineError::DeadlineWhileRunning { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Answer { verdict, evidence })
    }
}

impl HeadDesign {
    /// Evaluate the rationale prompt's fixed part (instructions and examples) once, at
    /// background priority, so that its prefix is cached (and persisted, where the prefix
    /// cache has a directory) before the first rationale is asked for: without it, the first
    /// one waits for about 600 tokens of prefill (6 s at 35% of 2 CPUs).
    pub async fn prewarm(&self, cx: &Context) -> Result<(), AnalyzeError> {
        let event = sotto_events::parse_json(&serde_json::json!({"command_line": "whoami", "os": "linux"}))
            .expect("a literal event parses");
        let admission = Admission { priority: Priority::Background, deadline: None };
        let request =
            Request { max_tokens: 1, ..rationale_request(cx, &event, Label::Benign, &[]).admitted(admission) };
        cx.run(request, admission, &mut Cost::default()).await.map(drop)
    }
}

/// The request for a rationale of `label` on `event`. A stop at the line's end instead of a
/// grammar: a bounded repetition in GBNF costs more per token than the sentence itself
/// (measured: 4.5 against 1.5 CPU-seconds per rationale with Gemma 3 270M). The event is cut
/// to a token budget: what a rationale waits for is the prefill of the part of its prompt
/// that is not cached.
fn rationale_request(cx: &Context, event: &Event, label: Label, evidence: &[String]) -> Request {
    let fitted = prompt::fit_event(event, prompt::RATIONALE_EVENT_TOKENS, &|text| cx.engine.count_tokens(text));
    let layout = prompt::rationale(cx.style, &fitted, label, evidence);
    Request {
        answer_prefix: Some("Rationale:".into()),
        stop: vec!["\n".into()],
        ..prompt::request(layout, RATIONALE_TOKENS)
    }
}

/// Most tokens of one rationale sentence (they average 17 with Gemma 3 270M; a token takes
/// about 30 ms at 35% of 2 CPUs).
const RATIONALE_TOKENS: u32 = 32;
