//! Running the designs against the engine: the fast label-scoring path, full constrained
//! generation (with or without the few-shot examples), and the naive baseline the evaluation
//! compares them with.
//!
//! Must not: block a tokio worker (it awaits the engine's events), or report a verdict the
//! model output does not support.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use sotto_engine::{Engine, EngineError, Event as EngineEvent, Priority, Request, Stats, Task, TemplateUsed};
use sotto_events::Event;
use sotto_events::eval::Label;

use crate::bank::{Bank, Example};
use crate::head::Head;
use crate::prompt::{self, Style};
use crate::verdict::{self, LabelScores, Severity, Verdict};

/// Which design answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Score the three labels by log-probability after one prefill (examples included);
    /// generate techniques and rationale only when asked or when the verdict is not benign.
    Fast,
    /// Generate the whole verdict as grammar-constrained JSON, after the examples.
    Constrained,
    /// As `Constrained`, without the few-shot examples.
    ConstrainedZeroShot,
    /// A plain question, no examples, no constraints; the answer parsed leniently.
    Naive,
    /// The label is the similarity-weighted vote of the closest bank examples (no model);
    /// the model writes the rationale, with the closest examples in its prompt, only when
    /// asked or when the verdict is not benign.
    Retrieval,
    /// The trained verdict head labels the event from its features (no model); the model
    /// writes a rationale, given the verdict, only when asked.
    Head,
}

impl Mode {
    pub const ALL: [Mode; 6] =
        [Mode::Head, Mode::Retrieval, Mode::Fast, Mode::Constrained, Mode::ConstrainedZeroShot, Mode::Naive];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fast => "fast",
            Mode::Constrained => "constrained",
            Mode::ConstrainedZeroShot => "constrained-zero-shot",
            Mode::Naive => "naive",
            Mode::Retrieval => "retrieval",
            Mode::Head => "head",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!("unknown mode `{s}`: expected head, retrieval, fast, constrained, constrained-zero-shot or naive")
        })
    }
}

/// How much of the verdict to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// The label and confidence always; techniques and rationale only for non-benign verdicts.
    #[default]
    Verdict,
    /// Techniques and rationale for every event.
    Full,
}

impl std::str::FromStr for Detail {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "verdict" => Ok(Detail::Verdict),
            "full" => Ok(Detail::Full),
            other => Err(format!("unknown detail `{other}`: expected verdict or full")),
        }
    }
}

/// When the model writes a rationale for a head verdict (the other designs decide for
/// themselves). `detail=full` always gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rationale {
    /// Only on request: the verdict costs no generation.
    #[default]
    Never,
    /// For malicious and suspicious verdicts.
    Flagged,
    /// For every event.
    Always,
}

impl std::str::FromStr for Rationale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(Rationale::Never),
            "flagged" => Ok(Rationale::Flagged),
            "always" => Ok(Rationale::Always),
            other => Err(format!("unknown rationale policy `{other}`: expected never, flagged or always")),
        }
    }
}

/// When the head design asks the model for its embedding of the event (only with a head
/// trained on the loaded model's embeddings; without one, never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Embeddings {
    /// The lexical head alone: no model work for a verdict.
    Off,
    /// Only when the lexical head is unsure (its confidence under the head's cut).
    #[default]
    Cascade,
    /// For every event.
    Always,
}

impl std::str::FromStr for Embeddings {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Embeddings::Off),
            "cascade" => Ok(Embeddings::Cascade),
            "always" => Ok(Embeddings::Always),
            other => Err(format!("unknown embeddings policy `{other}`: expected off, cascade or always")),
        }
    }
}

/// Analyzer settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub mode: Mode,
    /// Head design: when to add the model's embedding of the event.
    pub embeddings: Embeddings,
    /// Head design: when to generate a rationale.
    pub rationale: Rationale,
    /// Fast path: subtract the label scores of a content-free event (contextual calibration),
    /// which removes the model's prior lean towards one label.
    pub calibrate: bool,
    /// Bank examples most like the event, shown to the model right before it (0: none).
    /// Each costs its tokens in prefill whenever the model runs.
    pub retrieve: usize,
    /// Fast path: blend the label vote of the closest bank examples into the model's label
    /// probabilities, weighted by how close the closest example is (no fitted weight).
    pub blend: bool,
    /// Longer event fields are cut to this many characters (about four per token), marked.
    pub max_field_chars: usize,
}

/// Examples shown to the model per event by default. None: the retrieval design's label and
/// techniques do not depend on them, and two of them doubled the latency of a flagged event
/// (Gemma 3 270M, 2 threads: p95 2.9 s against 1.5 s) for the rationale alone.
pub const DEFAULT_RETRIEVE: usize = 0;

/// Neighbours the retrieval vote counts.
pub const VOTE_NEIGHBOURS: usize = 5;

impl Default for Options {
    fn default() -> Self {
        // Measured on the corpus's family-disjoint test split (bench/runs/2026-12-02-eval-head.md):
        // the trained head beat the bank vote and every design that lets the model pick the label.
        Options {
            mode: Mode::Head,
            embeddings: Embeddings::Cascade,
            rationale: Rationale::Never,
            calibrate: false,
            retrieve: DEFAULT_RETRIEVE,
            blend: false,
            max_field_chars: 2000,
        }
    }
}

/// What can go wrong analysing one event.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The engine refused or failed the request (queue full, deadline, shutdown, decode).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The request was still queued when its deadline passed; it was not evaluated.
    #[error("the deadline passed while the event waited in the queue; it was not analysed")]
    Deadline,
    /// The model's answer could not be read as a verdict (naive baseline only: the other
    /// designs are constrained).
    #[error("the model's answer names no verdict: {0:?}")]
    Unparsed(String),
}

/// A verdict with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub mode: Mode,
    pub latency_ms: f64,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub generated_tokens: usize,
    /// Fields were cut to the configured length before analysis.
    pub truncated: bool,
    /// The features that drove the verdict, in words (head design).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// The model's embedding of the event was part of the verdict (head design).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub embedded: bool,
}

/// Admission of one event's requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    pub priority: Priority,
    pub deadline: Option<Instant>,
}

/// Analyses events with one engine.
pub struct Analyzer {
    engine: Arc<Engine>,
    /// The verdict head the head design asks first (lexical and evidence features).
    head: Arc<Head>,
    /// The head that also reads the loaded model's embedding, if there is one for it.
    embedded: Option<Arc<Head>>,
    style: Style,
    options: Options,
    /// Label log-probabilities of the content-free event, computed on first use.
    calibration: Mutex<Option<[f64; 3]>>,
}

const LABELS: [Label; 3] = [Label::Malicious, Label::Suspicious, Label::Benign];

impl Analyzer {
    /// An analyzer for `engine`; the prompt style follows the model (chat template or not).
    pub fn new(engine: Arc<Engine>, options: Options) -> Self {
        let style = match engine.info().template {
            TemplateUsed::Completion => Style::Completion,
            _ => Style::Chat,
        };
        let embedded = match options.mode {
            Mode::Head => crate::head::embedding::shipped_for(&engine.info().path),
            _ => None,
        };
        Analyzer {
            engine,
            head: Arc::new(Head::shipped().clone()),
            embedded,
            style,
            options,
            calibration: Mutex::new(None),
        }
    }

    /// Uses `head` instead of the shipped one: as the embedding head if it reads the model's
    /// embeddings (it must have been trained on the loaded model), else as the lexical head.
    pub fn with_head(mut self, head: Arc<Head>) -> Result<Self, crate::head::HeadError> {
        match &head.embedding {
            Some(spec) => {
                let path = &self.engine.info().path;
                let found = crate::head::embedding::sha256_file(path).unwrap_or_default();
                if found != spec.model_sha256 {
                    return Err(crate::head::HeadError::Model {
                        path: "the configured head".into(),
                        wanted: spec.model_file.clone(),
                        found: path.display().to_string(),
                    });
                }
                self.embedded = Some(head);
            }
            None => self.head = head,
        }
        Ok(self)
    }

    /// The embedding head in use, if any.
    pub fn embedding_head(&self) -> Option<&Head> {
        self.embedded.as_deref()
    }

    pub fn style(&self) -> Style {
        self.style
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// Analyse one event.
    pub async fn analyze(&self, event: &Event, detail: Detail, admission: Admission) -> Result<Analysis, AnalyzeError> {
        let started = Instant::now();
        let mut event = event.clone();
        event.truncate(self.options.max_field_chars);
        let mut cost = Cost::default();
        let mut evidence = Vec::new();
        let near = self.neighbours(&event);
        let verdict = match self.options.mode {
            Mode::Head => self.head_design(&event, detail, admission, &mut cost, &mut evidence).await?,
            Mode::Fast => self.fast(&event, &near, detail, admission, &mut cost).await?,
            Mode::Constrained => self.constrained(&event, &near, true, admission, &mut cost).await?,
            Mode::ConstrainedZeroShot => self.constrained(&event, &near, false, admission, &mut cost).await?,
            Mode::Naive => self.naive(&event, admission, &mut cost).await?,
            Mode::Retrieval => self.retrieval(&event, &near, detail, admission, &mut cost).await?,
        };
        Ok(Analysis {
            verdict,
            mode: self.options.mode,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            prompt_tokens: cost.prompt,
            cached_tokens: cost.cached,
            generated_tokens: cost.generated,
            truncated: event.truncated,
            evidence,
            embedded: cost.embedded,
        })
    }

    /// The head design: the trained head's verdict and evidence; a rationale, given the
    /// verdict, only when asked.
    async fn head_design(
        &self,
        event: &Event,
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
        evidence: &mut Vec<String>,
    ) -> Result<Verdict, AnalyzeError> {
        let lexical = self.head.judge(event);
        let judged = match (&self.embedded, self.options.embeddings) {
            (Some(head), policy) if policy != Embeddings::Off => {
                let cut = head.embedding.as_ref().map_or(1.0, |s| f64::from(s.embed_below));
                if policy == Embeddings::Always || lexical.verdict.confidence < cut {
                    let request = self.admitted(Request::embed(crate::head::embedding::text(event)), admission);
                    let reply = self.run(request, admission, cost).await?;
                    cost.embedded = true;
                    head.judge_with(event, reply.embedding.as_deref())
                } else {
                    lexical
                }
            }
            _ => lexical,
        };
        let mut verdict = judged.verdict;
        *evidence = judged.evidence;
        let label = verdict.verdict;
        if self.wants_rationale(detail, label) {
            // A stop at the line's end instead of a grammar: a bounded repetition in GBNF
            // costs more per token than the sentence itself (measured: 4.5 against 1.5
            // CPU-seconds per rationale with Gemma 3 270M).
            let request = Request {
                answer_prefix: Some("Rationale:".into()),
                stop: vec!["\n".into()],
                ..self.admitted(prompt::request(prompt::rationale(self.style, event, label, evidence), 60), admission)
            };
            let text = self.run(request, admission, cost).await?.text;
            verdict.rationale = Some(text.trim().to_string()).filter(|r| !r.is_empty());
        }
        Ok(verdict)
    }

    async fn fast(
        &self,
        event: &Event,
        near: &[Near<'_>],
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Verdict, AnalyzeError> {
        let shots = self.shots(near);
        let mut scores = self.label_scores(event, &shots, admission, cost).await?;
        if self.options.calibrate {
            let base = self.calibration(admission).await?;
            for (s, b) in scores.iter_mut().zip(base) {
                *s -= b;
            }
        }
        let mut probs = softmax(scores);
        if self.options.blend {
            let (vote, closest) = Bank::vote(tail(near, VOTE_NEIGHBOURS));
            probs = blend(probs, vote, closest);
        }
        let mut verdict = from_probabilities(probs);
        let label = verdict.verdict;
        if self.wants_rationale(detail, label) {
            (verdict.techniques, verdict.rationale) = self.details(event, &shots, label, admission, cost).await?;
        }
        Ok(verdict)
    }

    /// Techniques (none for benign) and a one-sentence rationale for `label`, generated
    /// under the details grammar after the same prompt the label was scored on.
    async fn details(
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
            ..self.admitted(prompt::request(layout, 80), admission)
        };
        let text = self.run(request, admission, cost).await?.text;
        let (techniques, rationale) = parse_details(&text);
        Ok((if label == Label::Benign { Vec::new() } else { techniques }, rationale))
    }

    /// The retrieval design: the label and technique ids from the bank's closest examples,
    /// the rationale from the model.
    async fn retrieval(
        &self,
        event: &Event,
        near: &[Near<'_>],
        detail: Detail,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Verdict, AnalyzeError> {
        let voters = tail(near, VOTE_NEIGHBOURS);
        let mut verdict = from_probabilities(Bank::vote(voters).0);
        let label = verdict.verdict;
        // The closest example with the same label supplies the technique ids (measured: a 0.63
        // hit rate against 0.55 for Gemma 3 270M's own); the model's are the fallback.
        verdict.techniques = voters
            .iter()
            .rev()
            .find(|(ex, _)| ex.label == label && label != Label::Benign)
            .map(|(ex, _)| ex.techniques.clone())
            .unwrap_or_default();
        if self.wants_rationale(detail, label) {
            let (techniques, rationale) = self.details(event, &self.shots(near), label, admission, cost).await?;
            if verdict.techniques.is_empty() {
                verdict.techniques = techniques;
            }
            verdict.rationale = rationale;
        }
        Ok(verdict)
    }

    /// Whether a verdict of `label` gets a generated rationale: `detail=full` always, else
    /// as the rationale policy says.
    fn wants_rationale(&self, detail: Detail, label: Label) -> bool {
        match (detail, self.options.rationale) {
            (Detail::Full, _) | (_, Rationale::Always) => true,
            (_, Rationale::Flagged) => label != Label::Benign,
            (_, Rationale::Never) => false,
        }
    }

    /// Raw log-probabilities of the three labels (malicious, suspicious, benign) for `event`,
    /// and those of the content-free event used for calibration. For studying the fast path.
    pub async fn raw_label_scores(&self, event: &Event) -> Result<([f64; 3], [f64; 3]), AnalyzeError> {
        let mut event = event.clone();
        event.truncate(self.options.max_field_chars);
        let mut cost = Cost::default();
        let shots = self.shots(&self.neighbours(&event));
        let scores = self.label_scores(&event, &shots, Admission::default(), &mut cost).await?;
        Ok((scores, self.calibration(Admission::default()).await?))
    }

    /// Log-probabilities of " malicious", " suspicious", " benign" after `Verdict:`.
    async fn label_scores(
        &self,
        event: &Event,
        shots: &[prompt::Shot],
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<[f64; 3], AnalyzeError> {
        let layout = prompt::lines(self.style, event, true, shots);
        let continuations = LABELS.iter().map(|l| format!(" {l}")).collect();
        let request = Request {
            task: Task::Score(continuations),
            answer_prefix: Some("Verdict:".into()),
            ..self.admitted(prompt::request(layout, 0), admission)
        };
        let scores = self.run(request, admission, cost).await?.scores;
        let scores = scores.ok_or(AnalyzeError::Engine(EngineError::Stopped))?;
        Ok([scores[0], scores[1], scores[2]])
    }

    /// Computed once; its cost is not charged to the event that happened to need it first.
    async fn calibration(&self, admission: Admission) -> Result<[f64; 3], AnalyzeError> {
        if let Some(c) = *self.calibration.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(c);
        }
        let blank = sotto_events::parse_json(&serde_json::json!({"command_line": "N/A"})).expect("parses");
        let mut ignored = Cost::default();
        let shots = self.shots(&self.neighbours(&blank));
        let c = self.label_scores(&blank, &shots, admission, &mut ignored).await?;
        *self.calibration.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
        tracing::debug!(malicious = c[0], suspicious = c[1], benign = c[2], "label calibration");
        Ok(c)
    }

    async fn constrained(
        &self,
        event: &Event,
        near: &[Near<'_>],
        examples: bool,
        admission: Admission,
        cost: &mut Cost,
    ) -> Result<Verdict, AnalyzeError> {
        let layout = prompt::json(self.style, event, examples, &self.shots(near));
        let schema = sotto_engine::grammar::from_json_schema(verdict::SCHEMA).expect("the verdict schema converts");
        let grammar = match self.style {
            Style::Completion => prompt::with_leading_space(schema),
            Style::Chat => schema,
        };
        let request = Request {
            answer_prefix: prompt::json_answer_prefix(self.style),
            grammar: Some(grammar),
            ..self.admitted(prompt::request(layout, 160), admission)
        };
        let text = self.run(request, admission, cost).await?.text;
        verdict::from_json(text.trim()).map_err(AnalyzeError::Unparsed)
    }

    async fn naive(&self, event: &Event, admission: Admission, cost: &mut Cost) -> Result<Verdict, AnalyzeError> {
        let request = self.admitted(prompt::naive(event), admission);
        let text = self.run(request, admission, cost).await?.text;
        let label = verdict::lenient_label(&text).ok_or_else(|| AnalyzeError::Unparsed(text.clone()))?;
        let rationale = text.trim().lines().next().map(str::to_string);
        Ok(Verdict {
            verdict: label,
            confidence: 0.5,
            severity: Severity::derive(label, 0.5),
            techniques: if label == Label::Benign { Vec::new() } else { verdict::techniques_in_text(&text) },
            rationale,
            scores: None,
        })
    }

    /// The bank examples closest to `event`, least similar first: as many as the design
    /// needs (the vote's neighbours, the prompt's examples, or none), looked up once per event.
    fn neighbours(&self, event: &Event) -> Vec<Near<'static>> {
        let o = self.options;
        let k = match o.mode {
            Mode::Naive | Mode::ConstrainedZeroShot | Mode::Head => 0,
            Mode::Retrieval => VOTE_NEIGHBOURS.max(o.retrieve),
            Mode::Fast if o.blend => VOTE_NEIGHBOURS.max(o.retrieve),
            Mode::Fast | Mode::Constrained => o.retrieve,
        };
        if k == 0 { Vec::new() } else { Bank::shipped().nearest(event, k) }
    }

    /// The `retrieve` closest of `near` as prompt examples, closest last.
    fn shots(&self, near: &[Near<'_>]) -> Vec<prompt::Shot> {
        tail(near, self.options.retrieve).iter().map(|(ex, _)| prompt::Shot::retrieved(ex)).collect()
    }

    fn admitted(&self, request: Request, admission: Admission) -> Request {
        Request { priority: admission.priority, deadline: admission.deadline, ..request }
    }

    /// Submit and await the whole reply.
    async fn run(&self, request: Request, admission: Admission, cost: &mut Cost) -> Result<Reply, AnalyzeError> {
        let mut events = self.engine.submit(request)?;
        let first = match admission.deadline {
            Some(d) => tokio::time::timeout_at(d.into(), events.recv()).await.map_err(|_| AnalyzeError::Deadline)?,
            None => events.recv().await,
        };
        match first {
            Some(EngineEvent::Started) => {}
            Some(EngineEvent::Failed(EngineError::DeadlineExceeded { .. })) => return Err(AnalyzeError::Deadline),
            Some(EngineEvent::Failed(e)) => return Err(e.into()),
            _ => return Err(EngineError::Stopped.into()),
        }
        let mut reply = Reply::default();
        loop {
            match events.recv().await {
                Some(EngineEvent::Text(t)) => reply.text.push_str(&t),
                Some(EngineEvent::Scores(s)) => reply.scores = Some(s),
                Some(EngineEvent::Embedding(e)) => reply.embedding = Some(e),
                Some(EngineEvent::Done(stats)) => {
                    cost.add(&stats);
                    return Ok(reply);
                }
                Some(EngineEvent::Failed(e)) => return Err(e.into()),
                Some(EngineEvent::Started) => {}
                None => return Err(EngineError::Stopped.into()),
            }
        }
    }
}

/// What the engine answered one request with.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    scores: Option<Vec<f64>>,
    embedding: Option<Vec<f32>>,
}

#[derive(Debug, Default)]
struct Cost {
    prompt: usize,
    cached: usize,
    generated: usize,
    embedded: bool,
}

impl Cost {
    fn add(&mut self, stats: &Stats) {
        self.prompt += stats.prompt_tokens;
        self.cached += stats.cached_tokens;
        self.generated += stats.generated_tokens;
    }
}

/// A bank example and its similarity to the event.
type Near<'b> = (&'b Example, f32);

/// The `k` closest of `near` (sorted least similar first).
fn tail<'a, 'b>(near: &'a [Near<'b>], k: usize) -> &'a [Near<'b>] {
    &near[near.len().saturating_sub(k)..]
}

/// The most probable label, its probability as the confidence, and the three probabilities;
/// techniques and rationale are left for the caller.
fn from_probabilities(probs: [f64; 3]) -> Verdict {
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

    #[test]
    fn details_are_parsed_and_validated() {
        let (t, r) = parse_details(" T1059.001, T9999, T1105\nRationale: Downloads and runs a script.\n");
        assert_eq!(t, ["T1059.001", "T1105"]);
        assert_eq!(r.as_deref(), Some("Downloads and runs a script."));
        let (t, r) = parse_details(" none\nRationale: Routine.\n");
        assert!(t.is_empty() && r.as_deref() == Some("Routine."));
    }

    #[test]
    fn modes_parse() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("clever".parse::<Mode>().unwrap_err().contains("constrained-zero-shot"));
    }
}
