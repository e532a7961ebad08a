//! Counters and histograms for `GET /metrics`, rendered in the Prometheus text format.
//!
//! Updated once per request (never per token) and read only when scraped. Must not: start a
//! sampling thread or timer (the idle promise), or take a lock the engine thread also takes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sotto_engine::{EngineStatus, Stats};

/// Upper bounds (seconds) of the latency buckets: the promise is p95 ≤ 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0];
const WAIT_BUCKETS: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Facts about the budgets and the machine, fixed at start.
#[derive(Debug, Clone, Copy)]
pub struct Governance {
    pub cpu_mean: f64,
    pub cpu_peak: f64,
    /// Mean budgets of critical and background requests (normal ones get `cpu_mean`).
    pub cpu_mean_critical: f64,
    pub cpu_mean_background: f64,
    pub memory: u64,
    pub cpus: f64,
    pub threads: u32,
    pub threads_batch: u32,
    /// The `cpu.max` sotto wrote for itself, in CPUs, when `budget.cgroup` applied one.
    pub cgroup_cpus: Option<f64>,
}

impl Governance {
    /// The facts for `budgets` on `cpus` CPUs with the engine's thread counts.
    pub fn new(budgets: &sotto_governor::Budgets, cpus: f64, threads: u32, threads_batch: u32) -> Self {
        use sotto_governor::Urgency;
        Governance {
            cpu_mean: budgets.cpu_mean,
            cpu_peak: budgets.cpu_peak,
            cpu_mean_critical: budgets.mean_for(Urgency::Critical),
            cpu_mean_background: budgets.mean_for(Urgency::Background),
            memory: budgets.mem,
            cpus,
            threads,
            threads_batch,
            cgroup_cpus: None,
        }
    }
}

impl Default for Governance {
    /// The default budgets on 2 CPUs with one thread per phase (tests).
    fn default() -> Self {
        Governance::new(&sotto_governor::Budgets::default(), 2.0, 1, 1)
    }
}

/// Everything `/metrics` reports that the server counts itself.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    queue_wait: Mutex<Histogram>,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    /// Smoothed service time of one request in ms: what a full queue's `Retry-After` is
    /// computed from.
    service_ms: AtomicU64,
    /// HTTP connections open now, and those refused because `max_connections` were open.
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            queue_wait: Mutex::new(Histogram::new(WAIT_BUCKETS)),
            prompt_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            service_ms: AtomicU64::new(1000),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }
}

/// How a request ended, as counted in `sotto_requests_total{outcome}`.
pub mod outcome {
    pub const OK: &str = "ok";
    pub const CLIENT_ERROR: &str = "client_error";
    pub const QUEUE_FULL: &str = "queue_full";
    pub const DEADLINE: &str = "deadline_exceeded";
    pub const CANCELLED: &str = "cancelled";
    pub const ERROR: &str = "error";
}

impl Metrics {
    pub fn count(&self, endpoint: &'static str, outcome: &'static str) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((endpoint, outcome)).or_default() += 1;
    }

    /// A request completed: its latency, queue wait and token counts.
    pub fn completed(&self, endpoint: &'static str, latency: Duration, stats: &Stats) {
        self.completed_tokens(endpoint, latency, stats.prompt_tokens, stats.cached_tokens, stats.generated_tokens);
        self.queue_wait.lock().unwrap_or_else(|p| p.into_inner()).observe(stats.queued.as_secs_f64());
        let service = (stats.prefill + stats.decode).as_millis() as u64;
        let old = self.service_ms.load(Ordering::Relaxed);
        self.service_ms.store((old * 7 + service) / 8, Ordering::Relaxed);
    }

    /// A request made of several engine requests (an analysis) completed.
    pub fn completed_tokens(
        &self,
        endpoint: &'static str,
        latency: Duration,
        prompt: usize,
        cached: usize,
        generated: usize,
    ) {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(latency.as_secs_f64());
        self.prompt_tokens.fetch_add(prompt as u64, Ordering::Relaxed);
        self.cached_tokens.fetch_add(cached as u64, Ordering::Relaxed);
        self.generated_tokens.fetch_add(generated as u64, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Seconds a refused client should wait: the queue ahead of it at the smoothed service time.
    pub fn retry_after(&self, queued: usize) -> u64 {
        let ms = self.service_ms.load(Ordering::Relaxed).max(100) * (queued as u64 + 1);
        ms.div_ceil(1000).clamp(1, 120)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, engine: &EngineStatus, gov: &Governance, paced: Duration) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, kind: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge("sotto_queue_depth", "Requests waiting for the engine.", "gauge", engine.queued as f64);
        gauge(
            "sotto_queue_capacity",
            "Requests the queue holds before answering 429.",
            "gauge",
            engine.capacity as f64,
        );
        gauge("sotto_engine_busy", "1 while a request is being evaluated.", "gauge", f64::from(u8::from(engine.busy)));
        gauge("sotto_model_loaded", "1 while the model is in memory.", "gauge", f64::from(u8::from(engine.loaded)));
        gauge(
            "sotto_model_loads_total",
            "Model loads (1 + reloads after keep_alive or a panic).",
            "counter",
            engine.loads as f64,
        );
        gauge(
            "sotto_engine_preemptions_total",
            "Running requests set aside for a more urgent one (each resumed from its KV state).",
            "counter",
            engine.preemptions as f64,
        );
        gauge("sotto_engine_parked", "Requests set aside right now.", "gauge", engine.parked as f64);
        gauge(
            "sotto_engine_panics_total",
            "Panics caught on the engine thread (each failed one request and reloaded the model).",
            "counter",
            engine.panics as f64,
        );
        gauge(
            "sotto_engine_down",
            "1 while the engine reloads after a panic.",
            "gauge",
            f64::from(u8::from(engine.down)),
        );
        gauge(
            "sotto_prefix_cache_entries",
            "Prefix KV snapshots held in memory.",
            "gauge",
            engine.prefix_entries as f64,
        );
        gauge(
            "sotto_prefix_cache_bytes",
            "Bytes of prefix KV snapshots in memory.",
            "gauge",
            engine.prefix_bytes as f64,
        );
        let tokens = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        gauge(
            "sotto_prompt_tokens_total",
            "Prompt tokens of completed requests.",
            "counter",
            tokens(&self.prompt_tokens),
        );
        gauge(
            "sotto_prompt_tokens_cached_total",
            "Prompt tokens served from the prefix cache instead of evaluated.",
            "counter",
            tokens(&self.cached_tokens),
        );
        gauge("sotto_generated_tokens_total", "Generated tokens.", "counter", tokens(&self.generated_tokens));
        gauge("sotto_http_connections", "HTTP connections open now.", "gauge", tokens(&self.connections_open));
        gauge(
            "sotto_http_connections_refused_total",
            "HTTP connections answered 503 because the connection limit was reached.",
            "counter",
            tokens(&self.connections_refused),
        );
        gauge(
            "sotto_process_cpu_seconds_total",
            "CPU time of the whole process, all threads.",
            "counter",
            sotto_engine::process_cpu_time().as_secs_f64(),
        );
        if let Some(rss) = resident_bytes() {
            gauge("sotto_process_resident_memory_bytes", "Resident memory now.", "gauge", rss as f64);
        }
        let peak = sotto_governor::sampler::peak_rss(std::process::id());
        if peak > 0 {
            gauge("sotto_process_resident_memory_peak_bytes", "Peak resident memory.", "gauge", peak as f64);
        }
        gauge(
            "sotto_governor_paced_seconds_total",
            "Time the engine slept to hold the mean CPU budget.",
            "counter",
            paced.as_secs_f64(),
        );
        gauge("sotto_budget_cpu_mean_ratio", "Mean CPU budget, fraction of the machine.", "gauge", gov.cpu_mean);
        gauge("sotto_budget_cpu_peak_ratio", "Peak CPU budget, fraction of the machine.", "gauge", gov.cpu_peak);
        gauge("sotto_budget_memory_bytes", "Memory budget.", "gauge", gov.memory as f64);
        gauge(
            "sotto_cgroup_cpu_max_cpus",
            "The cpu.max sotto wrote for itself, in CPUs (0: none).",
            "gauge",
            gov.cgroup_cpus.unwrap_or(0.0),
        );
        gauge("sotto_machine_cpus", "CPUs this process may use (affinity, cgroup cpu.max).", "gauge", gov.cpus);
        let _ = writeln!(
            out,
            "# HELP sotto_thread_plan Threads per phase, planned from the budgets.\n# TYPE sotto_thread_plan gauge\n\
             sotto_thread_plan{{phase=\"prefill\"}} {}\nsotto_thread_plan{{phase=\"decode\"}} {}",
            gov.threads_batch, gov.threads
        );
        let _ = writeln!(
            out,
            "# HELP sotto_budget_cpu_mean_by_priority_ratio Mean CPU budget per request priority.\n\
             # TYPE sotto_budget_cpu_mean_by_priority_ratio gauge\n\
             sotto_budget_cpu_mean_by_priority_ratio{{priority=\"critical\"}} {}\n\
             sotto_budget_cpu_mean_by_priority_ratio{{priority=\"normal\"}} {}\n\
             sotto_budget_cpu_mean_by_priority_ratio{{priority=\"background\"}} {}",
            gov.cpu_mean_critical, gov.cpu_mean, gov.cpu_mean_background
        );
        let _ = writeln!(out, "# HELP sotto_requests_total Requests by endpoint and outcome.");
        let _ = writeln!(out, "# TYPE sotto_requests_total counter");
        for ((endpoint, outcome), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "sotto_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP sotto_request_duration_seconds Latency of completed requests.");
        let _ = writeln!(out, "# TYPE sotto_request_duration_seconds histogram");
        for (endpoint, h) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            h.render(&mut out, "sotto_request_duration_seconds", &format!("endpoint=\"{endpoint}\""));
        }
        let _ = writeln!(out, "# HELP sotto_queue_wait_seconds Time requests waited for the engine.");
        let _ = writeln!(out, "# TYPE sotto_queue_wait_seconds histogram");
        self.queue_wait.lock().unwrap_or_else(|p| p.into_inner()).render(&mut out, "sotto_queue_wait_seconds", "");
        out
    }
}

/// Resident memory now (`VmRSS`), Linux only.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_engine::FinishReason;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for s in [0.5, 1.5, 1.7, 9.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "e=\"a\"");
        assert!(out.contains("x_bucket{e=\"a\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{e=\"a\",le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{e=\"a\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{e=\"a\"} 4\n"), "{out}");
    }

    #[test]
    fn renders_counters_and_retry_after_follows_service_time() {
        let m = Metrics::default();
        let stats = Stats {
            prompt_tokens: 100,
            cached_tokens: 80,
            queued: Duration::from_millis(5),
            generated_tokens: 7,
            prefill: Duration::from_millis(200),
            decode: Duration::from_millis(300),
            cpu: Duration::ZERO,
            parked: Duration::ZERO,
            finish: FinishReason::Stop,
        };
        m.completed("chat", Duration::from_millis(520), &stats);
        m.count("chat", outcome::OK);
        m.count("chat", outcome::QUEUE_FULL);
        let status = EngineStatus {
            queued: 2,
            capacity: 8,
            busy: true,
            loaded: true,
            loads: 1,
            down: false,
            panics: 0,
            prefix_entries: 1,
            prefix_bytes: 10,
            preemptions: 3,
            parked: 1,
        };
        let gov = Governance { cpu_mean_background: 0.1, ..Governance::default() };
        let text = m.render(&status, &gov, Duration::from_millis(1500));
        for needle in [
            "sotto_queue_depth 2\n",
            "sotto_engine_preemptions_total 3\n",
            "sotto_prompt_tokens_cached_total 80\n",
            "sotto_requests_total{endpoint=\"chat\",outcome=\"queue_full\"} 1\n",
            "sotto_request_duration_seconds_bucket{endpoint=\"chat\",le=\"1\"} 1\n",
            "sotto_governor_paced_seconds_total 1.5\n",
            "sotto_thread_plan{phase=\"prefill\"} 1\n",
            "sotto_budget_cpu_peak_ratio 0.5\n",
            "sotto_budget_cpu_mean_by_priority_ratio{priority=\"background\"} 0.1\n",
            "sotto_cgroup_cpu_max_cpus 0\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Smoothed service time: (1000*7 + 500) / 8 = 937 ms; three ahead → 4 × 0.937 s.
        assert_eq!(m.retry_after(3), 4);
        assert_eq!(m.retry_after(1000), 120);
    }
}
