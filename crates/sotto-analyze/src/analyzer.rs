//! The analyzer: picks the configured design (`crate::designs`), routes each event to it,
//! and reports the verdict with what it cost. The settings and answer types every design
//! shares live here.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sotto_engine::{Admission, Engine, EngineError, TemplateUsed};
use sotto_events::Event;

use crate::designs::constrained::Constrained;
use crate::designs::head::HeadDesign;
use crate::designs::naive::Naive;
use crate::designs::retrieval::Retrieval;
use crate::designs::scoring::Scoring;
use crate::designs::{Context, Cost, Design};
use crate::head::Head;
use crate::prompt::Style;
use crate::verdict::Verdict;

/// Which design answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Detail {
    /// The label and confidence always; techniques and rationale only for non-benign verdicts.
    #[default]
    Verdict,
    /// Techniques and rationale for every event.
    Full,
}

impl Detail {
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Verdict => "verdict",
            Detail::Full => "full",
        }
    }
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
    /// Only when the lexical head is unsure (its confidence under the head's cut) and the
    /// engine is free: a verdict never waits behind other work.
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
    /// The lexical head was unsure, but the engine was busy with other work, so it answered
    /// without the model's embedding rather than wait.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub embedding_skipped: bool,
}

/// Analyses events with one engine.
pub struct Analyzer {
    cx: Context,
    route: Route,
}

/// The design in use: the analyzer only picks one and routes to it.
enum Route {
    Head(HeadDesign),
    Retrieval(Retrieval),
    Scoring(Scoring),
    Constrained(Constrained),
    Naive(Naive),
}

impl Analyzer {
    /// An analyzer for `engine`; the prompt style follows the model (chat template or not).
    pub fn new(engine: Arc<Engine>, options: Options) -> Self {
        let style = match engine.info().template {
            TemplateUsed::Completion => Style::Completion,
            _ => Style::Chat,
        };
        let route = match options.mode {
            Mode::Head => Route::Head(HeadDesign::shipped(&engine.info().path)),
            Mode::Retrieval => Route::Retrieval(Retrieval),
            Mode::Fast => Route::Scoring(Scoring::default()),
            Mode::Constrained => Route::Constrained(Constrained { examples: true }),
            Mode::ConstrainedZeroShot => Route::Constrained(Constrained { examples: false }),
            Mode::Naive => Route::Naive(Naive),
        };
        Analyzer { cx: Context { engine, style, options }, route }
    }

    /// Uses `head` instead of the shipped one (head design only): as the embedding head if
    /// it reads the model's embeddings (it must have been trained on the loaded model), else
    /// as the lexical head.
    pub fn with_head(mut self, head: Arc<Head>) -> Result<Self, crate::head::HeadError> {
        let Route::Head(design) = &mut self.route else { return Ok(self) };
        match &head.embedding {
            Some(spec) => {
                let path = &self.cx.engine.info().path;
                let found = crate::head::embedding::sha256_file(path).unwrap_or_default();
                if found != spec.model_sha256 {
                    return Err(crate::head::HeadError::Model {
                        path: "the configured head".into(),
                        wanted: spec.model_file.clone(),
                        found: path.display().to_string(),
                    });
                }
                design.embedded = Some(head);
            }
            None => design.lexical = head,
        }
        Ok(self)
    }

    /// The embedding head in use, if any.
    pub fn embedding_head(&self) -> Option<&Head> {
        match &self.route {
            Route::Head(design) => design.embedded.as_deref(),
            _ => None,
        }
    }

    pub fn style(&self) -> Style {
        self.cx.style
    }

    pub fn options(&self) -> Options {
        self.cx.options
    }

    /// Cache what every rationale shares before the first one is asked for (head design; the
    /// other designs have nothing to warm). Runs at background priority: any event comes first.
    pub async fn prewarm(&self) -> Result<(), AnalyzeError> {
        match &self.route {
            Route::Head(d) => d.prewarm(&self.cx).await,
            _ => Ok(()),
        }
    }

    /// Analyse one event.
    pub async fn analyze(&self, event: &Event, detail: Detail, admission: Admission) -> Result<Analysis, AnalyzeError> {
        let started = Instant::now();
        let mut event = event.clone();
        event.truncate(self.cx.options.max_field_chars);
        let mut cost = Cost::default();
        let (cx, e, c) = (&self.cx, &event, &mut cost);
        let answer = match &self.route {
            Route::Head(d) => d.verdict(cx, e, detail, admission, c).await?,
            Route::Retrieval(d) => d.verdict(cx, e, detail, admission, c).await?,
            Route::Scoring(d) => d.verdict(cx, e, detail, admission, c).await?,
            Route::Constrained(d) => d.verdict(cx, e, detail, admission, c).await?,
            Route::Naive(d) => d.verdict(cx, e, detail, admission, c).await?,
        };
        Ok(Analysis {
            verdict: answer.verdict,
            mode: self.cx.options.mode,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            prompt_tokens: cost.prompt,
            cached_tokens: cost.cached,
            generated_tokens: cost.generated,
            truncated: event.truncated,
            evidence: answer.evidence,
            embedded: cost.embedded,
            embedding_skipped: cost.embedding_skipped,
        })
    }

    /// Raw log-probabilities of the three labels (malicious, suspicious, benign) for `event`
    /// under the label-scoring design, and those of the content-free event used for
    /// calibration. For studying that design.
    pub async fn raw_label_scores(&self, event: &Event) -> Result<([f64; 3], [f64; 3]), AnalyzeError> {
        let mut event = event.clone();
        event.truncate(self.cx.options.max_field_chars);
        match &self.route {
            Route::Scoring(d) => d.raw(&self.cx, &event).await,
            _ => Scoring::default().raw(&self.cx, &event).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("clever".parse::<Mode>().unwrap_err().contains("constrained-zero-shot"));
    }
}
