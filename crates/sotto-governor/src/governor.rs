//! The governor as the engine sees it: one object, called on the engine thread at thread start,
//! at request start, before each prefill chunk (how big?) and after every step (how long to
//! rest?). It reads two clocks per step and sleeps when the mean budget says so; it never
//! spins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::process_cpu_time;
use crate::pacer::{Pacer, ThreadPlan, chunk_for};
use crate::{Budgets, SchedClass, Urgency};

/// Wall time one prefill chunk should take: well under the 100 ms window, so that work and
/// rest interleave inside every window.
pub const STEP_TARGET: Duration = Duration::from_millis(50);

/// Counters the governor shares with whoever reports (metrics, bench).
#[derive(Debug, Default)]
pub struct GovernorStats {
    /// Nanoseconds spent sleeping to hold the mean budget.
    pub paced_ns: AtomicU64,
}

/// Budget enforcement for one engine.
pub struct Governor {
    budgets: Budgets,
    class: SchedClass,
    plan: ThreadPlan,
    pacer: Pacer,
    epoch: Instant,
    step_started: Instant,
    /// Smoothed wall time per prompt token, learned from the chunks run so far.
    per_token: Option<Duration>,
    stats: Arc<GovernorStats>,
}

impl Governor {
    /// A governor for `budgets` on a machine of `cpus` CPUs.
    pub fn new(budgets: Budgets, class: SchedClass, cpus: f64) -> Self {
        let now = Instant::now();
        Governor {
            budgets,
            class,
            plan: ThreadPlan::from_budgets(budgets.cpu_mean, budgets.cpu_peak, cpus),
            pacer: Pacer::new(budgets.cpu_mean, budgets.cpu_peak, cpus),
            epoch: now,
            step_started: now,
            per_token: None,
            stats: Arc::default(),
        }
    }

    /// The thread plan the engine should create its context with.
    pub fn plan(&self) -> ThreadPlan {
        self.plan
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<GovernorStats> {
        self.stats.clone()
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// On the engine thread, before any inference: set its scheduling class.
    pub fn on_thread_start(&mut self) {
        match self.class.apply_to_current_thread() {
            Ok(()) => tracing::info!(class = %self.class, "inference thread scheduling class set"),
            Err(e) => tracing::warn!(class = %self.class, error = %e, "could not set the scheduling class"),
        }
    }

    /// A request of `urgency` starts: the bucket refills for the idle time before it and
    /// holds that urgency's mean until the next request.
    pub fn on_request_start(&mut self, urgency: Urgency) {
        let now = self.now();
        self.pacer.begin(now, process_cpu_time());
        self.pacer.set_mean(self.budgets.mean_for(urgency));
        self.step_started = Instant::now();
    }

    /// How many prompt tokens the next chunk should hold, at most `max`.
    pub fn next_chunk(&self, max: usize) -> usize {
        match self.per_token {
            // Until the first chunk is measured, start small.
            None => max.min(8),
            Some(t) => chunk_for(t, STEP_TARGET, max),
        }
    }

    /// A step of `tokens` tokens has finished; learn its cost and rest if the budget says so.
    pub fn after_step(&mut self, prefill: bool, tokens: usize) {
        let took = self.step_started.elapsed();
        if prefill && tokens > 0 {
            let t = took / tokens as u32;
            self.per_token = Some(match self.per_token {
                None => t,
                Some(old) => (old * 3 + t) / 4,
            });
        }
        let rest = self.pacer.after_step(self.now(), process_cpu_time());
        if !rest.is_zero() {
            std::thread::sleep(rest);
            self.stats.paced_ns.fetch_add(rest.as_nanos() as u64, Ordering::Relaxed);
        }
        self.step_started = Instant::now();
    }
}
