//! The governor as the engine sees it: one object, called on the engine thread at thread start,
//! at request start, before each prefill chunk (how big?) and after every step (how long to
//! rest?). It reads two clocks per step and sleeps when the mean budget says so; it never
//! spins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::process_cpu_time;
use crate::pacer::{Pacer, ThreadPlan, chunk_for, step_target};
use crate::{Budgets, Priority, SchedClass};

/// What the engine has just done a step of. The cost of a prompt token differs by an order of
/// magnitude between a plain prefill (one output, at the end) and a chunk whose every token
/// produces an output (embeddings, scoring: with Gemma 3's 262k-word vocabulary the output
/// layer is most of the work), so each kind learns its own cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A prompt chunk with at most one output.
    Prefill,
    /// A prompt chunk whose every token produces an output (an embedding or logits).
    Outputs,
    /// One generated token.
    Decode,
}

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
    /// The class critical requests run in (`None`: `class`). A critical alert must make
    /// progress beside a busy foreground, where `SCHED_IDLE` would starve it.
    critical_class: Option<SchedClass>,
    /// The class the engine thread is in now.
    current: SchedClass,
    /// The budgets' thread plan until the engine says what it runs with
    /// ([`Governor::on_thread_start`]); chunks are sized for the threads that really run.
    plan: ThreadPlan,
    pacer: Pacer,
    cpus: f64,
    /// The mean budget of the request being evaluated.
    mean: f64,
    epoch: Instant,
    step_started: Instant,
    /// Smoothed wall time per prompt token of [`Phase::Prefill`] and [`Phase::Outputs`]
    /// chunks, learned from the chunks run so far.
    per_token: [Option<Duration>; 2],
    stats: Arc<GovernorStats>,
}

impl Governor {
    /// A governor for `budgets` on a machine of `cpus` CPUs.
    pub fn new(budgets: Budgets, class: SchedClass, cpus: f64) -> Self {
        let now = Instant::now();
        Governor {
            budgets,
            class,
            critical_class: None,
            current: class,
            plan: ThreadPlan::from_budgets(budgets.cpu_mean, budgets.cpu_peak, cpus),
            pacer: Pacer::new(budgets.cpu_mean, budgets.cpu_peak, cpus),
            cpus,
            mean: budgets.cpu_mean,
            epoch: now,
            step_started: now,
            per_token: [None; 2],
            stats: Arc::default(),
        }
    }

    /// Run critical requests in `class` instead of the configured one.
    pub fn with_critical_class(mut self, class: SchedClass) -> Self {
        self.critical_class = Some(class);
        self
    }

    /// The thread plan the engine should create its context with (the budgets' own, unless
    /// the engine has said it runs with other threads).
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

    /// On the engine thread, before any inference: set its scheduling class, and size chunks
    /// from here on for `threads`, the threads the engine runs with (a configured thread count
    /// overrides the budgets' plan; sized for the plan, a chunk of two threads would run twice
    /// the CPU the peak leaves a window, and its rest would leave windows idle).
    pub fn on_thread_start(&mut self, threads: ThreadPlan) {
        match self.class.apply_to_current_thread() {
            Ok(()) => tracing::info!(class = %self.class, "inference thread scheduling class set"),
            Err(e) => tracing::warn!(class = %self.class, error = %e, "could not set the scheduling class"),
        }
        let busy = f64::from(threads.prefill.max(threads.decode)) / self.cpus;
        if busy > self.budgets.cpu_peak + 1e-9 {
            tracing::warn!(
                threads_batch = threads.prefill,
                threads = threads.decode,
                cpus = self.cpus,
                peak = self.budgets.cpu_peak,
                "more threads than the peak budget allows: prompt chunks are cut to hold the peak, but a step \
                 that cannot be cut (one generated token) may take a window over it"
            );
        }
        self.plan = threads;
    }

    /// A request of `priority` starts: the bucket refills for the idle time before it and
    /// holds that priority's mean until the next request.
    pub fn on_request_start(&mut self, priority: Priority) {
        let now = self.now();
        self.pacer.begin(now, process_cpu_time());
        let class = match priority {
            Priority::Critical => self.critical_class.unwrap_or(self.class),
            _ => self.class,
        };
        if class != self.current {
            match class.apply_to_current_thread() {
                Ok(()) => self.current = class,
                Err(e) => tracing::warn!(%class, error = %e, "could not change the scheduling class for this request"),
            }
        }
        self.mean = self.budgets.mean_for(priority);
        self.pacer.set_mean(self.mean);
        self.step_started = Instant::now();
    }

    /// Wall time a prompt chunk should take at the threads the engine runs with and the
    /// current request's mean ([`step_target`]).
    pub fn step_target(&self) -> Option<Duration> {
        step_target(self.plan.prefill, self.mean, self.budgets.cpu_peak, self.cpus)
    }

    fn learned(phase: Phase) -> Option<usize> {
        match phase {
            Phase::Prefill => Some(0),
            Phase::Outputs => Some(1),
            Phase::Decode => None,
        }
    }

    /// How many prompt tokens the next chunk of `phase` should hold, at most `max`: as many
    /// as take [`step_target`]'s wall time at the learned cost.
    pub fn next_chunk(&self, phase: Phase, max: usize) -> usize {
        let Some(target) = self.step_target() else {
            return max.max(1);
        };
        match Self::learned(phase).and_then(|i| self.per_token[i]) {
            // Until the first chunk is measured, start small.
            None => max.clamp(1, 8),
            Some(t) => chunk_for(t, target, max),
        }
    }

    /// A step of `tokens` tokens of `phase` has finished; learn its cost and rest if the
    /// budget says so.
    pub fn after_step(&mut self, phase: Phase, tokens: usize) {
        let took = self.step_started.elapsed();
        if let Some(i) = Self::learned(phase)
            && tokens > 0
        {
            let t = took / tokens as u32;
            self.per_token[i] = Some(match self.per_token[i] {
                None => t,
                Some(old) => (old * 3 + t) / 4,
            });
        }
        let rest = self.pacer.after_step(self.now(), process_cpu_time());
        tracing::trace!(?phase, tokens, took_us = took.as_micros() as u64, rest_us = rest.as_micros() as u64, "step");
        if !rest.is_zero() {
            std::thread::sleep(rest);
            self.stats.paced_ns.fetch_add(rest.as_nanos() as u64, Ordering::Relaxed);
        }
        self.step_started = Instant::now();
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy_and_nice() -> (i32, i32) {
        // SAFETY: queries of the calling thread's own scheduling state.
        unsafe { (libc::sched_getscheduler(0), libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)) }
    }

    /// A critical request leaves SCHED_IDLE for its own class (nice 5) and the next request
    /// goes back: an idle-class daemon still answers an alert beside a busy foreground.
    #[test]
    fn critical_requests_run_in_their_own_class_and_the_rest_stay_idle() {
        std::thread::spawn(|| {
            let mut g =
                Governor::new(Budgets::default(), SchedClass::Idle, 2.0).with_critical_class(SchedClass::Nice(5));
            g.on_thread_start(g.plan());
            assert_eq!(policy_and_nice().0, libc::SCHED_IDLE);
            g.on_request_start(Priority::Critical);
            assert_eq!(policy_and_nice(), (libc::SCHED_OTHER, 5));
            g.on_request_start(Priority::Normal);
            assert_eq!(policy_and_nice().0, libc::SCHED_IDLE);
            g.on_request_start(Priority::Background);
            assert_eq!(policy_and_nice().0, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }

    /// Two configured threads on 2 CPUs at 35/50: the chunk target is the window share the
    /// peak leaves two threads (50 ms), not the one-thread plan's 163 ms.
    #[test]
    fn chunks_are_sized_for_the_threads_the_engine_runs() {
        std::thread::spawn(|| {
            let mut g = Governor::new(Budgets::default(), SchedClass::Normal, 2.0);
            assert_eq!(g.plan(), ThreadPlan { prefill: 1, decode: 1 });
            let planned = g.step_target().unwrap();
            assert!((planned.as_secs_f64() - 0.070 * 0.7 / 0.3).abs() < 1e-6, "{planned:?}");
            g.on_thread_start(ThreadPlan { prefill: 2, decode: 2 });
            assert_eq!(g.plan(), ThreadPlan { prefill: 2, decode: 2 });
            assert_eq!(g.step_target(), Some(Duration::from_millis(50)));
        })
        .join()
        .unwrap();
    }
}
