//! The scheduler: one small bounded priority queue in front of the engine thread.
//!
//! Callers push without ever blocking (a full queue is an error the server turns into a 429);
//! the engine thread blocks in the kernel on a condition variable while the queue is empty, so
//! an idle engine costs nothing. Ordering and admission are plain logic on [`Order`], tested
//! without threads.
//!
//! Must not: poll, grow without bound, or hold the lock while a request runs.

use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::{EngineError, Priority, Request, Update};

/// A request with the channel its answer goes to.
pub(crate) struct Job {
    pub request: Request,
    pub reply: UnboundedSender<Update>,
    pub enqueued: Instant,
}

/// The ordering key of a queued item: priority first, then arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    priority: Priority,
    seq: u64,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap pops the greatest: higher priority, then the smaller (older) sequence.
        self.priority.cmp(&other.priority).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Item<T> {
    key: Key,
    value: T,
}

impl<T> PartialEq for Item<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Item<T> {}
impl<T> PartialOrd for Item<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Item<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// What admission did with a new item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<T> {
    /// Queued.
    Queued,
    /// Queued, and to make room the lowest-ranked waiting item was pushed out (it is returned so
    /// its caller can be told).
    QueuedEvicting(T),
    /// The queue is full of items that rank at least as high: refused.
    Full(T),
}

/// Pure ordering and admission: a bounded priority heap. A newcomer to a full queue displaces
/// the lowest-ranked waiting item only if it outranks it (a critical alert is never refused
/// because background work is waiting).
pub(crate) struct Order<T> {
    heap: BinaryHeap<Item<T>>,
    capacity: usize,
    seq: u64,
}

impl<T> Order<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Order { heap: BinaryHeap::with_capacity(capacity + 1), capacity, seq: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn push(&mut self, priority: Priority, value: T) -> Admit<T> {
        self.seq += 1;
        let item = Item { key: Key { priority, seq: self.seq }, value };
        if self.heap.len() < self.capacity {
            self.heap.push(item);
            return Admit::Queued;
        }
        // The lowest-ranked waiting item (a linear scan: the queue is small by design).
        let weakest = self.heap.iter().map(|i| i.key).min().expect("a full queue is not empty");
        if weakest.priority >= priority {
            return Admit::Full(item.value);
        }
        let mut rest: Vec<Item<T>> = std::mem::take(&mut self.heap).into_vec();
        let at = rest.iter().position(|i| i.key == weakest).expect("present");
        let evicted = rest.swap_remove(at);
        self.heap = rest.into();
        self.heap.push(item);
        Admit::QueuedEvicting(evicted.value)
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|i| i.value)
    }

    /// The priority of the item [`Order::pop`] would return.
    pub(crate) fn top(&self) -> Option<Priority> {
        self.heap.peek().map(|i| i.key.priority)
    }

    /// Pop the next item only if it ranks strictly above `priority`: a request set aside for
    /// a more urgent one is served before anything else of its own class.
    pub(crate) fn pop_above(&mut self, priority: Priority) -> Option<T> {
        if self.top()? > priority { self.pop() } else { None }
    }

    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.heap.drain().map(|i| i.value).collect()
    }
}

/// What the engine thread got from [`Queue::pop`].
pub(crate) enum Pop {
    Job(Box<Job>),
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The queue was closed: the engine is shutting down.
    Closed,
}

struct State {
    order: Order<Job>,
    closed: bool,
}

/// The queue shared by callers and the engine thread.
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue { state: Mutex::new(State { order: Order::new(capacity), closed: false }), wake: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the heap inconsistent; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lock().order.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Queue `job` without blocking.
    pub(crate) fn push(&self, job: Job) -> Result<(), EngineError> {
        let mut state = self.lock();
        if state.closed {
            return Err(EngineError::Stopped);
        }
        let capacity = state.order.capacity;
        let priority = job.request.priority;
        match state.order.push(priority, job) {
            Admit::Queued => {}
            Admit::QueuedEvicting(evicted) => {
                let _ = evicted.reply.send(Update::Failed(EngineError::QueueFull(capacity)));
            }
            Admit::Full(_) => return Err(EngineError::QueueFull(capacity)),
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Block until a job arrives, `idle` passes with nothing to do, or the queue closes.
    pub(crate) fn pop(&self, idle: Option<Duration>) -> Pop {
        let deadline = idle.map(|d| Instant::now() + d);
        let mut state = self.lock();
        loop {
            if let Some(job) = state.order.pop() {
                return Pop::Job(Box::new(job));
            }
            if state.closed {
                return Pop::Closed;
            }
            state = match deadline {
                None => self.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Pop::Idle;
                    }
                    self.wake.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    /// Whether a job of a higher priority than `priority` is waiting: the running request
    /// should step aside at its next step (see the worker's preemption).
    pub(crate) fn waiting_above(&self, priority: Priority) -> bool {
        self.lock().order.top().is_some_and(|top| top > priority)
    }

    /// Take the next job without blocking, only if it outranks `priority` (a request set aside
    /// at that priority is resumed otherwise).
    pub(crate) fn pop_above(&self, priority: Priority) -> Option<Box<Job>> {
        self.lock().order.pop_above(priority).map(Box::new)
    }

    /// Block until the queue holds a job (without taking it) or closes; true if a job waits.
    pub(crate) fn wait_for_work(&self) -> bool {
        let mut state = self.lock();
        loop {
            if state.order.len() > 0 {
                return true;
            }
            if state.closed {
                return false;
            }
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Refuse new jobs and answer the waiting ones with [`EngineError::Stopped`].
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let waiting = state.order.drain();
        drop(state);
        for job in waiting {
            let _ = job.reply.send(Update::Failed(EngineError::Stopped));
        }
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_by_priority_then_arrival() {
        let mut q = Order::new(8);
        q.push(Priority::Normal, "n1");
        q.push(Priority::Background, "b1");
        q.push(Priority::Critical, "c1");
        q.push(Priority::Normal, "n2");
        q.push(Priority::Critical, "c2");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["c1", "c2", "n1", "n2", "b1"]);
    }

    #[test]
    fn a_full_queue_refuses_equals_but_lets_higher_priorities_displace_the_weakest() {
        let mut q = Order::new(2);
        assert_eq!(q.push(Priority::Normal, "n1"), Admit::Queued);
        assert_eq!(q.push(Priority::Background, "b1"), Admit::Queued);
        assert_eq!(q.push(Priority::Background, "b2"), Admit::Full("b2"));
        // A normal request displaces the waiting background one, not the older normal one.
        assert_eq!(q.push(Priority::Normal, "n2"), Admit::QueuedEvicting("b1"));
        assert_eq!(q.push(Priority::Normal, "n3"), Admit::Full("n3"));
        // Among equals, the newest waiting item is the weakest.
        assert_eq!(q.push(Priority::Critical, "c1"), Admit::QueuedEvicting("n2"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some("c1"));
        assert_eq!(q.pop(), Some("n1"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn pop_above_takes_only_what_outranks_a_set_aside_request() {
        let mut q = Order::new(4);
        assert_eq!(q.pop_above(Priority::Background), None);
        q.push(Priority::Background, "b1");
        q.push(Priority::Normal, "n1");
        // A set-aside normal request resumes before the waiting normal and background ones.
        assert_eq!(q.pop_above(Priority::Normal), None);
        assert_eq!(q.top(), Some(Priority::Normal));
        q.push(Priority::Critical, "c1");
        assert_eq!(q.pop_above(Priority::Normal), Some("c1"));
        // A set-aside background request yields to the normal one, never to its own class.
        assert_eq!(q.pop_above(Priority::Background), Some("n1"));
        assert_eq!(q.pop_above(Priority::Background), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn priority_parses_and_names_the_problem() {
        assert_eq!("critical".parse::<Priority>().unwrap(), Priority::Critical);
        assert_eq!("Background".parse::<Priority>().unwrap(), Priority::Background);
        let e = "urgent".parse::<Priority>().unwrap_err();
        assert!(e.contains("urgent") && e.contains("critical"), "{e}");
    }

    #[test]
    fn pop_times_out_when_idle_and_returns_closed_after_close() {
        let q = Queue::new(2);
        assert!(matches!(q.pop(Some(Duration::from_millis(5))), Pop::Idle));
        q.close();
        assert!(matches!(q.pop(None), Pop::Closed));
        assert!(!q.wait_for_work());
    }
}
