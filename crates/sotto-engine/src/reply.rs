//! The one client of the engine: how a request is admitted ([`Admission`]) and what
//! [`crate::Engine::submit`] hands back ([`Reply`]). Every caller waits for the start, collects
//! the answer or streams it through `Reply`; none reads the reply channel itself.
//!
//! Must not: block a tokio worker (the `_blocking` methods are for threads that may block), or
//! keep a request alive that its caller gave up: dropping a `Reply` drops the channel's
//! receiver, and the engine thread stops the request at its next step.

use std::time::Instant;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::{EngineError, Priority, Request, Stats, Update};

/// Where a request sits in the queue and how long it may wait there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    pub priority: Priority,
    /// If the request has not started by then, it is never evaluated (see
    /// [`Request::deadline`]).
    pub deadline: Option<Instant>,
}

impl Request {
    /// The same request, queued as `admission` says.
    pub fn admitted(self, admission: Admission) -> Request {
        Request { priority: admission.priority, deadline: admission.deadline, ..self }
    }
}

/// Everything a request answered with, collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// The generated text (empty for scoring and embedding requests).
    pub text: String,
    /// The scores of a [`crate::Task::Score`] request.
    pub scores: Option<Vec<f64>>,
    /// The embedding of a [`crate::Task::Embed`] request.
    pub embedding: Option<Vec<f32>>,
}

/// One step of a streamed answer (see [`Reply::next`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// The next piece of generated text.
    Text(String),
    /// The request finished; nothing follows.
    Done(Stats),
}

/// The answer to one request, as it arrives. Dropping it cancels the request, also
/// mid-generation.
#[derive(Debug)]
pub struct Reply {
    updates: UnboundedReceiver<Update>,
    /// When the request was queued: what a deadline that passes before the start reports.
    queued: Instant,
    /// [`Update::Started`] has been read.
    started: bool,
}

impl Reply {
    pub(crate) fn new(updates: UnboundedReceiver<Update>, queued: Instant) -> Self {
        Reply { updates, queued, started: false }
    }

    /// Wait until the engine starts on the request. If `deadline` passes first, the answer is
    /// [`EngineError::DeadlineExceeded`] (and the request, once this reply is dropped, is never
    /// evaluated). Needs a tokio runtime with timers when `deadline` is set.
    pub async fn started(&mut self, deadline: Option<Instant>) -> Result<(), EngineError> {
        if self.started {
            return Ok(());
        }
        let first = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), self.updates.recv()).await {
                Ok(first) => first,
                Err(_) => return Err(EngineError::DeadlineExceeded { waited: self.queued.elapsed() }),
            },
            None => self.updates.recv().await,
        };
        self.start(first)
    }

    /// [`Reply::started`] without a deadline of its own, on a thread that may block (the
    /// request's own deadline still applies in the engine).
    pub fn started_blocking(&mut self) -> Result<(), EngineError> {
        if self.started {
            return Ok(());
        }
        let first = self.updates.blocking_recv();
        self.start(first)
    }

    fn start(&mut self, first: Option<Update>) -> Result<(), EngineError> {
        match first {
            Some(Update::Started) => {
                self.started = true;
                Ok(())
            }
            Some(Update::Failed(e)) => Err(e),
            Some(other) => {
                tracing::error!(?other, "the engine answered before starting");
                Err(EngineError::Stopped)
            }
            None => Err(EngineError::Stopped),
        }
    }

    /// The next piece of text, or the end: the stream of a generation (scores and embeddings
    /// are left out; [`Reply::collect`] has them). A failed request is its error; a reply
    /// that ends without a `Done` is [`EngineError::Stopped`].
    pub async fn next(&mut self) -> Result<Piece, EngineError> {
        loop {
            let update = self.updates.recv().await;
            if let Some(piece) = self.piece(update)? {
                return Ok(piece);
            }
        }
    }

    /// [`Reply::next`] on a thread that may block.
    pub fn next_blocking(&mut self) -> Result<Piece, EngineError> {
        loop {
            let update = self.updates.blocking_recv();
            if let Some(piece) = self.piece(update)? {
                return Ok(piece);
            }
        }
    }

    fn piece(&mut self, update: Option<Update>) -> Result<Option<Piece>, EngineError> {
        let mut ignored = Output::default();
        match update {
            Some(Update::Text(t)) => Ok(Some(Piece::Text(t))),
            other => Ok(self.fold(other, &mut ignored)?.map(Piece::Done)),
        }
    }

    /// The whole answer and its counters, once the request has finished.
    pub async fn collect(mut self) -> Result<(Output, Stats), EngineError> {
        let mut output = Output::default();
        loop {
            let update = self.updates.recv().await;
            if let Some(stats) = self.fold(update, &mut output)? {
                return Ok((output, stats));
            }
        }
    }

    /// [`Reply::collect`] on a thread that may block (the CLI, tests, the bench).
    pub fn collect_blocking(mut self) -> Result<(Output, Stats), EngineError> {
        let mut output = Output::default();
        loop {
            let update = self.updates.blocking_recv();
            if let Some(stats) = self.fold(update, &mut output)? {
                return Ok((output, stats));
            }
        }
    }

    /// Add one update to `output`: the counters when the request is done, `None` while it runs.
    fn fold(&mut self, update: Option<Update>, output: &mut Output) -> Result<Option<Stats>, EngineError> {
        match update {
            Some(Update::Started) => self.started = true,
            Some(Update::Text(t)) => output.text.push_str(&t),
            Some(Update::Scores(s)) => output.scores = Some(s),
            Some(Update::Embedding(e)) => output.embedding = Some(e),
            Some(Update::Done(stats)) => return Ok(Some(stats)),
            Some(Update::Failed(e)) => return Err(e),
            None => return Err(EngineError::Stopped),
        }
        Ok(None)
    }
}
