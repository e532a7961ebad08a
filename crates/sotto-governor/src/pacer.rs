//! Pacing arithmetic: pure functions of (measurements, time), tested without sleeping.
//!
//! - The **peak** budget is held by construction: the thread plan never runs more threads
//!   than the budget allows, so no 100 ms window can exceed it.
//! - The **mean** budget is held by a token bucket over the process's CPU time. It refills at
//!   `mean × cpus` CPU-seconds per wall second; when a step overdraws it the engine sleeps
//!   exactly long enough to pay the debt back. A step is never so long that the rest after
//!   it fills a whole 100 ms window (see [`step_target`]): an idle window would leave the
//!   active period (MEASURING.md), and the mean over the windows left would rise above the
//!   budget.

use std::time::Duration;

/// Window over which every CPU figure is measured (../shared/MEASURING.md).
pub const WINDOW: Duration = Duration::from_millis(100);

/// Threads for each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPlan {
    /// Prompt processing (`n_threads_batch`).
    pub prefill: u32,
    /// Generation (`n_threads`).
    pub decode: u32,
}

impl ThreadPlan {
    /// The thread count, within the peak budget (a busy thread is `1 / cpus` of the machine;
    /// at least 1), that runs fastest once the mean budget is paid for. More threads buy latency at a CPU cost: a second thread spin-waits inside
    /// ggml (CPU/wall 2.0 for about 1.5× the speed, seed 001 and issue 3). When the mean
    /// budget binds, the pacer lets `n` threads run only `mean × cpus / n` of the time, so a
    /// thread that adds less speed than CPU makes the request slower, not faster. Ties go to
    /// fewer threads (less CPU for the same speed).
    pub fn from_budgets(mean: f64, peak: f64, cpus: f64) -> Self {
        let most = max_threads(peak, cpus);
        let mut best = (1, sustained_speed(1, mean, cpus));
        for n in 2..=most {
            let s = sustained_speed(n, mean, cpus);
            if s > best.1 * 1.02 {
                best = (n, s);
            }
        }
        ThreadPlan { prefill: best.0, decode: best.0 }
    }
}

/// Speed-up of `n` threads over one: `n^THREAD_SCALING`. 0.585 is log2(1.5), the measured
/// 1.5× of two threads; it is conservative for prefill, which scales a little better.
pub const THREAD_SCALING: f64 = 0.585;

fn max_threads(peak: f64, cpus: f64) -> u32 {
    ((peak * cpus) + 1e-9).floor().max(1.0) as u32
}

/// Relative speed of `n` threads held to a mean of `mean` of `cpus` CPUs.
fn sustained_speed(n: u32, mean: f64, cpus: f64) -> f64 {
    let n = f64::from(n);
    n.powf(THREAD_SCALING) * (mean * cpus / n).min(1.0)
}

/// Token bucket over CPU time.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// The machine's CPUs and the peak budget, to re-derive rate and capacity per request.
    cpus: f64,
    peak: f64,
    /// CPU-seconds earned per wall second: mean budget × machine CPUs.
    rate: f64,
    /// Most CPU-seconds that may be saved up: a burst of this size on top of the mean.
    capacity: f64,
    level: f64,
    last_wall: Option<Duration>,
    last_cpu: Duration,
}

impl Pacer {
    /// A bucket for `mean` (fraction of the machine) on `cpus` CPUs. Its capacity is the
    /// headroom between mean and peak over one window, so a full bucket cannot lift a window
    /// above the peak.
    pub fn new(mean: f64, peak: f64, cpus: f64) -> Self {
        let mut p =
            Pacer { cpus, peak, rate: 0.0, capacity: 0.0, level: 0.0, last_wall: None, last_cpu: Duration::ZERO };
        p.set_mean(mean);
        p.level = p.capacity;
        p
    }

    /// Hold a different mean from now on (a request of another priority). Credit already
    /// saved is kept up to the new capacity.
    pub fn set_mean(&mut self, mean: f64) {
        self.rate = mean * self.cpus;
        self.capacity = ((self.peak - mean).max(0.0) * self.cpus * WINDOW.as_secs_f64()).max(1e-3);
        self.level = self.level.min(self.capacity);
    }

    /// Start measuring at (`wall`, `cpu`) without charging what happened before (between
    /// requests the engine is idle; the bucket refills for that time).
    pub fn begin(&mut self, wall: Duration, cpu: Duration) {
        self.level = (self.level + self.earned_until(wall)).min(self.capacity);
        self.last_cpu = cpu;
    }

    /// Credit earned since the last reading, which moves to `wall`.
    fn earned_until(&mut self, wall: Duration) -> f64 {
        let earned = self.last_wall.map_or(0.0, |last| wall.saturating_sub(last).as_secs_f64() * self.rate);
        self.last_wall = Some(wall);
        earned
    }

    /// A step has just finished at (`wall`, `cpu`): charge its CPU and return how long to
    /// sleep before the next one (zero when the bucket still has credit).
    pub fn after_step(&mut self, wall: Duration, cpu: Duration) -> Duration {
        if self.last_wall.is_none() {
            self.begin(wall, cpu);
            return Duration::ZERO;
        }
        // Credit earned while the step ran pays for it before the cap applies.
        let used = cpu.saturating_sub(self.last_cpu).as_secs_f64();
        self.level = (self.level + self.earned_until(wall) - used).min(self.capacity);
        self.last_cpu = cpu;
        if self.level >= 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }
}

/// Longest rest after one step: under one window, with a margin, so that every window of a
/// request holds some work and the mean over the active windows is the budget.
pub const REST_MAX: Duration = Duration::from_millis(70);

/// Wall time one prompt chunk should take, or `None` for no limit (as large as the batch).
///
/// `threads` busy threads on `cpus` CPUs run `threads / cpus` of the machine while they work.
/// - When that is within the `peak` budget, the thread plan alone holds every window under
///   the peak, so a chunk only has to leave room for its rest: a chunk of `W` at duty cycle
///   `d = mean × cpus / threads` is followed by `W (1 − d) / d` of rest, which must stay
///   under [`REST_MAX`]. Larger chunks run matrix kernels at full efficiency (a handful of
///   tokens per batch ran prefill 31–38% slower than llama.cpp's own server, issue 13).
///   When the mean needs no rest at all (`d ≥ 1`), there is no limit.
/// - When one thread alone is over the peak (a peak under `1 / cpus`), a window may hold
///   only `peak × cpus / threads` of work: the chunk is that share of one window.
pub fn step_target(threads: u32, mean: f64, peak: f64, cpus: f64) -> Option<Duration> {
    let threads = f64::from(threads.max(1));
    let load = threads / cpus;
    if load > peak + 1e-9 {
        return Some(WINDOW.mul_f64((peak / load).clamp(0.05, 1.0)));
    }
    let duty = mean * cpus / threads;
    if duty >= 1.0 - 1e-9 {
        return None;
    }
    Some(REST_MAX.mul_f64(duty / (1.0 - duty)))
}

/// Prompt tokens per chunk so that one chunk costs about `target` of wall time at the measured
/// `per_token` cost, within `1..=max`.
pub fn chunk_for(per_token: Duration, target: Duration, max: usize) -> usize {
    if per_token.is_zero() {
        return max.max(1);
    }
    ((target.as_secs_f64() / per_token.as_secs_f64()).floor() as usize).clamp(1, max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_plan_weighs_cpu_cost_against_the_mean_budget() {
        // 2 CPUs: a 50/100 budget could run two threads, but pacing would idle them half the
        // time for 1.5x the speed; one thread is faster under that mean.
        assert_eq!(ThreadPlan::from_budgets(0.35, 0.5, 2.0).decode, 1);
        assert_eq!(ThreadPlan::from_budgets(0.5, 1.0, 2.0).decode, 1);
        assert_eq!(ThreadPlan::from_budgets(1.0, 1.0, 2.0).decode, 2, "ungoverned takes both");
        // 8 CPUs at 35/50: the peak allows 4, the mean pays for about 3.
        assert_eq!(ThreadPlan::from_budgets(0.35, 0.5, 8.0).decode, 3);
        assert_eq!(ThreadPlan::from_budgets(0.5, 0.5, 8.0).decode, 4);
        assert_eq!(ThreadPlan::from_budgets(0.05, 0.1, 2.0).decode, 1, "never below one thread");
    }

    #[test]
    fn a_new_mean_changes_the_rate_and_caps_saved_credit() {
        let mut p = Pacer::new(0.35, 0.5, 2.0);
        p.begin(Duration::ZERO, Duration::ZERO);
        p.set_mean(0.10);
        // 100 ms of CPU at a 0.2-CPU rate, with 80 ms capacity and 20 ms earned during the step.
        let s = p.after_step(ms(100), ms(100));
        let debt = 0.100 - 0.080_f64.min((0.5 - 0.35) * 2.0 * 0.1) - 0.020;
        assert!((s.as_secs_f64() - debt / 0.2).abs() < 1e-3, "{s:?}");
        p.set_mean(0.5);
        assert!(p.capacity < 0.001 + 1e-9, "mean = peak leaves no burst");
    }

    #[test]
    fn thread_plan_stays_within_the_peak() {
        assert_eq!(ThreadPlan::from_budgets(0.5, 0.5, 2.0), ThreadPlan { prefill: 1, decode: 1 });
        assert_eq!(ThreadPlan::from_budgets(1.0, 1.0, 2.0), ThreadPlan { prefill: 2, decode: 2 });
        assert_eq!(ThreadPlan::from_budgets(0.5, 0.5, 8.0).prefill, 4);
        assert_eq!(ThreadPlan::from_budgets(0.2, 0.2, 2.0).prefill, 1, "never below one thread");
        assert_eq!(ThreadPlan::from_budgets(0.5, 0.5, 1.5).prefill, 1, "a 1.5-CPU cgroup quota");
    }

    /// Simulate one busy thread on a 2-CPU machine doing 30 ms steps, sleeping as told.
    fn simulate(mean: f64, peak: f64, steps: usize) -> (Duration, Duration) {
        let mut p = Pacer::new(mean, peak, 2.0);
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        p.begin(wall, cpu);
        for _ in 0..steps {
            wall += ms(30);
            cpu += ms(30);
            wall += p.after_step(wall, cpu);
        }
        (wall, cpu)
    }

    #[test]
    fn long_run_mean_converges_to_the_budget() {
        for mean in [0.20, 0.35] {
            let (wall, cpu) = simulate(mean, 0.5, 1000);
            let used = cpu.as_secs_f64() / wall.as_secs_f64() / 2.0;
            assert!((used - mean).abs() < 0.005, "mean {mean}: used {used}");
        }
    }

    #[test]
    fn under_budget_work_is_never_paced() {
        // One thread on 2 CPUs is 50%: a 50% mean budget never has to wait.
        let (wall, cpu) = simulate(0.5, 0.5, 100);
        assert_eq!(wall, cpu);
    }

    #[test]
    fn sleeps_are_short_when_steps_are_short() {
        let mut p = Pacer::new(0.35, 0.5, 2.0);
        p.begin(Duration::ZERO, Duration::ZERO);
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        let mut longest = Duration::ZERO;
        for _ in 0..200 {
            wall += ms(30);
            cpu += ms(30);
            let s = p.after_step(wall, cpu);
            longest = longest.max(s);
            wall += s;
        }
        // 30 ms of work at a 0.7-CPU rate needs about 13 ms of rest: every 100 ms window mixes.
        assert!(longest < ms(20), "{longest:?}");
    }

    #[test]
    fn idle_time_refills_only_up_to_capacity() {
        let mut p = Pacer::new(0.35, 0.5, 2.0);
        p.begin(Duration::ZERO, Duration::ZERO);
        // A long idle pause, then a big step: the saved credit is capped at 30 ms of CPU.
        p.begin(Duration::from_secs(60), Duration::ZERO);
        let s = p.after_step(Duration::from_secs(60) + ms(200), ms(200));
        // 200 ms used, 30 ms capacity + 140 ms earned during the step -> 30 ms of debt at 0.7.
        assert!((s.as_secs_f64() - 0.030 / 0.7).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn steps_are_as_long_as_the_budget_allows() {
        // 1 thread on 2 CPUs is 50%: the plan holds a 50% peak, and a 35% mean is a 70% duty
        // cycle, so 163 ms of work is followed by the longest rest, 70 ms.
        let w = step_target(1, 0.35, 0.5, 2.0).unwrap();
        assert!((w.as_secs_f64() - 0.070 * 0.7 / 0.3).abs() < 1e-6, "{w:?}");
        let rest = w.mul_f64(0.3 / 0.7);
        assert!(rest <= REST_MAX && rest < WINDOW, "the rest leaves no window idle: {rest:?}");
        // Ungoverned, or a mean the threads never exceed: chunks as large as the batch.
        assert_eq!(step_target(2, 1.0, 1.0, 2.0), None);
        assert_eq!(step_target(1, 0.5, 0.5, 2.0), None);
        // A 20% peak on 2 CPUs: one thread is 50%, so a window may hold 40 ms of its work.
        assert_eq!(step_target(1, 0.1, 0.2, 2.0), Some(ms(40)));
        // A low mean: short steps, so the rests between them stay short too.
        assert!(step_target(1, 0.05, 0.5, 2.0).unwrap() < ms(10));
    }

    #[test]
    fn chunk_targets_a_fraction_of_the_window() {
        assert_eq!(chunk_for(ms(5), ms(30), 512), 6);
        assert_eq!(chunk_for(ms(100), ms(30), 512), 1);
        assert_eq!(chunk_for(Duration::from_micros(10), ms(30), 64), 64);
        assert_eq!(chunk_for(Duration::ZERO, ms(30), 64), 64);
    }
}
