//! The resource sampler shared by tests, the bench and (later) `/metrics`: process and system
//! CPU every 20 ms, folded into 100 ms windows as ../shared/MEASURING.md defines them.
//!
//! Process CPU comes from the kernel's per-process CPU clock (`clock_getcpuclockid`,
//! nanoseconds, exited threads included), never the 10 ms ticks of `/proc/PID/stat`; system CPU is 1 - (idle + iowait) / total from
//! `/proc/stat`. Percentages are of the whole machine (`cpus`). The window arithmetic is a pure
//! function of the samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pacer::WINDOW;

/// How often the sampler reads the counters.
pub const PERIOD: Duration = Duration::from_millis(20);

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Since the sampler started.
    pub at: Duration,
    /// Process CPU time, all threads.
    pub process_ns: u64,
    /// System jiffies busy and total (all CPUs).
    pub system_busy: u64,
    pub system_total: u64,
}

/// Figures over the 100 ms windows of one run, in percent of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuFigures {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub peak: f64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub windows: usize,
    /// Windows where the process used more than 1% of the machine.
    pub active_windows: usize,
    /// Process CPU over the active windows.
    pub process: CpuFigures,
    /// System CPU over the same active windows.
    pub system: CpuFigures,
    /// Process CPU mean over every window, idle ones included.
    pub process_mean_all: f64,
    /// Peak resident set (VmHWM), bytes.
    pub peak_rss: u64,
}

/// Per-window (process %, system %) from samples taken every `PERIOD`: each window spans the
/// samples nearest to 100 ms apart, and is normalised by its real length.
pub fn windows(samples: &[Sample], cpus: f64) -> Vec<(f64, f64)> {
    let step = (WINDOW.as_nanos() / PERIOD.as_nanos()).max(1) as usize;
    samples
        .windows(step + 1)
        .step_by(step)
        .filter_map(|w| {
            let (a, b) = (w[0], w[step]);
            let wall = b.at.checked_sub(a.at)?.as_nanos() as f64;
            if wall <= 0.0 {
                return None;
            }
            let proc = (b.process_ns.saturating_sub(a.process_ns)) as f64 / wall / cpus * 100.0;
            let total = b.system_total.saturating_sub(a.system_total) as f64;
            let sys =
                if total > 0.0 { b.system_busy.saturating_sub(a.system_busy) as f64 / total * 100.0 } else { 0.0 };
            Some((proc, sys))
        })
        .collect()
}

/// The `p`th percentile (0 to 100) of `values`, in any order, by nearest rank: the smallest
/// value that at least `p`% of the values are less than or equal to; 0 for no values. The one
/// percentile of sotto: the bench, the evaluations and `figures` all report through it.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    nearest_rank(&sorted, p)
}

/// `percentile` of values already sorted ascending.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean and percentiles (nearest rank) of `values`.
pub fn figures(values: &[f64]) -> CpuFigures {
    if values.is_empty() {
        return CpuFigures::default();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    CpuFigures {
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: nearest_rank(&v, 50.0),
        p95: nearest_rank(&v, 95.0),
        p99: nearest_rank(&v, 99.0),
        peak: nearest_rank(&v, 100.0),
    }
}

/// Summarise samples into a report.
pub fn report(samples: &[Sample], cpus: f64, peak_rss: u64) -> Report {
    let w = windows(samples, cpus);
    let active: Vec<(f64, f64)> = w.iter().copied().filter(|&(p, _)| p > 1.0).collect();
    let procs: Vec<f64> = active.iter().map(|x| x.0).collect();
    let syss: Vec<f64> = active.iter().map(|x| x.1).collect();
    Report {
        windows: w.len(),
        active_windows: active.len(),
        process: figures(&procs),
        system: figures(&syss),
        process_mean_all: figures(&w.iter().map(|x| x.0).collect::<Vec<_>>()).mean,
        peak_rss,
    }
}

/// Process CPU of `pid` in nanoseconds, threads that already exited included. ggml (built
/// without OpenMP) starts and joins its worker threads on every graph, so a sum over the
/// threads alive now would miss most of the work: use the kernel's per-process CPU clock.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-pointer; the kernel validates the pid.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } == 0 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid out-pointer for the clock just obtained.
        if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
            return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
        }
    }
    live_threads_cpu_ns(pid)
}

/// Sum of `/proc/PID/task/*/schedstat`: only threads alive now (the fallback).
fn live_threads_cpu_ns(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in dir.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(total)
}

/// (busy, total) jiffies over all CPUs from `/proc/stat`.
pub fn system_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&stat)
}

/// Parse the aggregate `cpu` line: idle and iowait are not busy.
pub fn parse_proc_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest counted inside user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// Peak RSS (`VmHWM`) of `pid`, bytes.
pub fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A background thread that samples `pid` every `PERIOD` until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
    pid: u32,
    cpus: f64,
}

impl Sampler {
    /// Start sampling `pid` (this process: `std::process::id()`). The first sample is taken
    /// before this returns and the last one after [`Sampler::finish`] is called, so the
    /// samples cover all the work done in between.
    pub fn start(pid: u32, cpus: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let t0 = Instant::now();
        let read = move || {
            let (busy, total) = system_jiffies().unwrap_or((0, 0));
            let process_ns = process_cpu_ns(pid).unwrap_or(0);
            Sample { at: t0.elapsed(), process_ns, system_busy: busy, system_total: total }
        };
        let first = read();
        let thread = std::thread::Builder::new()
            .name("sotto-sampler".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(4096);
                out.push(first);
                let mut next = t0;
                loop {
                    next += PERIOD;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                    let last = flag.load(Ordering::Relaxed);
                    out.push(read());
                    if last {
                        return out;
                    }
                }
            })
            .expect("spawn sampler");
        Sampler { stop, thread: Some(thread), pid, cpus }
    }

    /// Stop and summarise.
    pub fn finish(mut self) -> (Report, Vec<Sample>) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        (report(&samples, self.cpus, peak_rss(self.pid)), samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, process_ms: u64, busy: u64, total: u64) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            process_ns: process_ms * 1_000_000,
            system_busy: busy,
            system_total: total,
        }
    }

    #[test]
    fn windows_are_percent_of_the_machine() {
        // One busy thread on 2 CPUs for 100 ms, then 100 ms idle.
        let samples: Vec<Sample> = (0..=10)
            .map(|i| {
                let t = i * 20;
                s(t, t.min(100), if t <= 100 { t / 10 } else { 10 }, t / 5)
            })
            .collect();
        let w = windows(&samples, 2.0);
        assert_eq!(w.len(), 2);
        assert!((w[0].0 - 50.0).abs() < 1e-9, "{w:?}");
        assert!((w[0].1 - 50.0).abs() < 1e-9, "{w:?}");
        assert!(w[1].0.abs() < 1e-9);
        let r = report(&samples, 2.0, 0);
        assert_eq!((r.windows, r.active_windows), (2, 1));
        assert!((r.process.mean - 50.0).abs() < 1e-9);
        assert!((r.process_mean_all - 25.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let f = figures(&v);
        assert_eq!((f.p50, f.p95, f.p99, f.peak), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(figures(&[]).peak, 0.0);
        // Any order; the rank is rounded up, never interpolated.
        let shuffled = [40.0, 10.0, 30.0, 20.0];
        assert_eq!(percentile(&shuffled, 50.0), 20.0);
        assert_eq!(percentile(&shuffled, 51.0), 30.0);
        assert_eq!(percentile(&shuffled, 0.0), 10.0);
        assert_eq!(percentile(&shuffled, 100.0), 40.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn proc_stat_counts_iowait_as_idle() {
        let (busy, total) = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n").unwrap();
        assert_eq!((busy, total), (150, 1000));
    }

    /// A fixed amount of work on the calling thread; returns the CPU time it took, read from
    /// the thread's own clock (a fixed amount, not "until the clock says so": a broken clock
    /// then fails the test instead of hanging it).
    fn burn() -> u64 {
        let thread_cpu = || {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        };
        let start = thread_cpu();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        thread_cpu() - start
    }

    #[test]
    fn exited_threads_still_count() {
        let before = process_cpu_ns(std::process::id()).unwrap();
        let burned = std::thread::spawn(burn).join().unwrap();
        let used = process_cpu_ns(std::process::id()).unwrap() - before;
        assert!(burned > 0, "the work took no CPU time");
        assert!(used >= burned, "{used} ns counted for a thread that used {burned} ns and exited");
    }

    #[test]
    fn sampling_this_process_sees_its_own_work() {
        let sampler = Sampler::start(std::process::id(), 1.0);
        let burned = burn();
        let (r, samples) = sampler.finish();
        assert!(samples.len() >= 2, "a first and a last sample at least: {samples:?}");
        assert!(samples.windows(2).all(|w| w[0].at <= w[1].at && w[0].process_ns <= w[1].process_ns), "{samples:?}");
        let (first, last) = (samples[0], samples[samples.len() - 1]);
        let seen = last.process_ns - first.process_ns;
        assert!(burned > 0 && seen >= burned, "the samples saw {seen} ns of the {burned} ns burned between them");
        assert!(r.peak_rss > 0);
    }
}
