//! `GET /metrics` in the Prometheus text format (0.0.4), written by `prometheus-client`.
//!
//! Two kinds of figure. What the server counts itself (requests, latency, queue wait, tokens,
//! connections) is held in prometheus-client metrics registered once in [`Metrics`]'s registry
//! and updated once per request (never per token). What other parts own (the engine's status,
//! the governor's paced time, the budgets, the process's CPU and memory) is read when
//! `/metrics` is scraped and written by a custom collector, [`Scrape`], made for that one
//! scrape: no gauge holds a copy of it that could go stale between scrapes, and nothing
//! samples in the meantime.
//!
//! Must not: start a sampling thread or timer (the idle promise), or take a lock the engine
//! thread also takes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, MetricEncoder,
    prometheus_text,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use sotto_engine::{EngineStatus, Stats};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency buckets: the promise is p95 ≤ 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0];
const WAIT_BUCKETS: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The resources the daemon runs with, fixed at start: its budgets, the machine and the thread
/// plan (shown on `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct Resources {
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

impl Resources {
    /// The facts for `budgets` on `cpus` CPUs with the engine's thread counts.
    pub fn new(budgets: &sotto_governor::Budgets, cpus: f64, threads: u32, threads_batch: u32) -> Self {
        use sotto_governor::Priority;
        Resources {
            cpu_mean: budgets.cpu_mean,
            cpu_peak: budgets.cpu_peak,
            cpu_mean_critical: budgets.mean_for(Priority::Critical),
            cpu_mean_background: budgets.mean_for(Priority::Background),
            memory: budgets.mem,
            cpus,
            threads,
            threads_batch,
            cgroup_cpus: None,
        }
    }
}

impl Default for Resources {
    /// The default budgets on 2 CPUs with one thread per phase (tests).
    fn default() -> Self {
        Resources::new(&sotto_governor::Budgets::default(), 2.0, 1, 1)
    }
}

/// Everything `/metrics` reports that the server counts itself.
pub struct Metrics {
    /// Every metric below except `service_ms`, registered once.
    registry: Registry,
    requests: Ordered<[(&'static str, &'static str); 2], Counter>,
    latency: Ordered<[(&'static str, &'static str); 1], Histogram>,
    queue_wait: Histogram,
    prompt_tokens: Counter,
    cached_tokens: Counter,
    generated_tokens: Counter,
    /// HTTP connections open now, and those refused because `max_connections` were open.
    connections_open: Gauge,
    connections_refused: Counter,
    /// Smoothed service time of one request in ms: what a full queue's `Retry-After` is
    /// computed from. Not exposed.
    service_ms: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Ordered::new(Counter::default),
            latency: Ordered::new(|| Histogram::new(LATENCY_BUCKETS.iter().copied())),
            queue_wait: Histogram::new(WAIT_BUCKETS.iter().copied()),
            prompt_tokens: Counter::default(),
            cached_tokens: Counter::default(),
            generated_tokens: Counter::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            service_ms: AtomicU64::new(1000),
        };
        // Each name without `_total` and each help without its final full stop: the encoder
        // adds both.
        let r = &mut m.registry;
        r.register("sotto_prompt_tokens", "Prompt tokens of completed requests", m.prompt_tokens.clone());
        r.register(
            "sotto_prompt_tokens_cached",
            "Prompt tokens served from the prefix cache instead of evaluated",
            m.cached_tokens.clone(),
        );
        r.register("sotto_generated_tokens", "Generated tokens", m.generated_tokens.clone());
        r.register("sotto_http_connections", "HTTP connections open now", m.connections_open.clone());
        r.register(
            "sotto_http_connections_refused",
            "HTTP connections answered 503 because the connection limit was reached",
            m.connections_refused.clone(),
        );
        r.register("sotto_requests", "Requests by endpoint and outcome", m.requests.clone());
        r.register("sotto_request_duration_seconds", "Latency of completed requests", m.latency.clone());
        r.register("sotto_queue_wait_seconds", "Time requests waited for the engine", m.queue_wait.clone());
        m
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
        self.requests.with([("endpoint", endpoint), ("outcome", outcome)], |c| {
            c.inc();
        });
    }

    /// A request completed: its latency, queue wait and token counts.
    pub fn completed(&self, endpoint: &'static str, latency: Duration, stats: &Stats) {
        self.completed_tokens(endpoint, latency, stats.prompt_tokens, stats.cached_tokens, stats.generated_tokens);
        self.queue_wait.observe(stats.queued.as_secs_f64());
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
        self.latency.with([("endpoint", endpoint)], |h| h.observe(latency.as_secs_f64()));
        self.prompt_tokens.inc_by(prompt as u64);
        self.cached_tokens.inc_by(cached as u64);
        self.generated_tokens.inc_by(generated as u64);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Seconds a refused client should wait: the queue ahead of it at the smoothed service time.
    pub fn retry_after(&self, queued: usize) -> u64 {
        let ms = self.service_ms.load(Ordering::Relaxed).max(100) * (queued as u64 + 1);
        ms.div_ceil(1000).clamp(1, 120)
    }

    /// The Prometheus text exposition: what this scrape reads from `engine`, `gov`, `paced`
    /// and the process, then what the server counted.
    pub fn render(&self, engine: &EngineStatus, gov: &Resources, paced: Duration) -> String {
        let scrape = Scrape {
            engine: *engine,
            gov: *gov,
            paced,
            cpu: sotto_engine::process_cpu_time(),
            rss: resident_bytes(),
            peak_rss: sotto_governor::sampler::peak_rss(std::process::id()),
        };
        self.render_with(scrape)
    }

    fn render_with(&self, scrape: Scrape) -> String {
        let mut now = Registry::default();
        now.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(8192);
        prometheus_text::encode(&mut out, &now).expect("writing to a String");
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// What one scrape reads from the parts the server does not own, written by [`Collector`].
/// Help texts here end with their full stop: a collector's are written as they are.
#[derive(Debug)]
struct Scrape {
    engine: EngineStatus,
    gov: Resources,
    /// Time the governor slept so far.
    paced: Duration,
    /// Process CPU time, all threads.
    cpu: Duration,
    /// Resident memory now and its peak; `None` and 0 where the system does not say.
    rss: Option<u64>,
    peak_rss: u64,
}

impl Collector for Scrape {
    fn encode(&self, mut w: DescriptorEncoder) -> fmt::Result {
        let (e, g) = (&self.engine, &self.gov);
        gauge(&mut w, "sotto_queue_depth", "Requests waiting for the engine.", e.queued)?;
        gauge(&mut w, "sotto_queue_capacity", "Requests the queue holds before answering 429.", e.capacity)?;
        gauge(&mut w, "sotto_engine_busy", "1 while a request is being evaluated.", u32::from(e.busy))?;
        gauge(&mut w, "sotto_model_loaded", "1 while the model is in memory.", u32::from(e.loaded))?;
        counter(&mut w, "sotto_model_loads", "Model loads (1 + reloads after keep_alive or a panic).", e.loads)?;
        counter(
            &mut w,
            "sotto_engine_preemptions",
            "Running requests set aside for a more urgent one (each resumed from its KV state).",
            e.preemptions,
        )?;
        gauge(&mut w, "sotto_engine_parked", "Requests set aside right now.", e.parked)?;
        counter(
            &mut w,
            "sotto_engine_panics",
            "Panics caught on the engine thread (each failed one request and reloaded the model).",
            e.panics,
        )?;
        gauge(&mut w, "sotto_engine_down", "1 while the engine reloads after a panic.", u32::from(e.down))?;
        gauge(&mut w, "sotto_prefix_cache_entries", "Prefix KV snapshots held in memory.", e.prefix_entries)?;
        gauge(&mut w, "sotto_prefix_cache_bytes", "Bytes of prefix KV snapshots in memory.", e.prefix_bytes)?;
        counter(
            &mut w,
            "sotto_process_cpu_seconds",
            "CPU time of the whole process, all threads.",
            self.cpu.as_secs_f64(),
        )?;
        if let Some(rss) = self.rss {
            gauge(&mut w, "sotto_process_resident_memory_bytes", "Resident memory now.", rss)?;
        }
        if self.peak_rss > 0 {
            gauge(&mut w, "sotto_process_resident_memory_peak_bytes", "Peak resident memory.", self.peak_rss)?;
        }
        counter(
            &mut w,
            "sotto_governor_paced_seconds",
            "Time the engine slept to hold the mean CPU budget.",
            self.paced.as_secs_f64(),
        )?;
        gauge(&mut w, "sotto_budget_cpu_mean_ratio", "Mean CPU budget, fraction of the machine.", g.cpu_mean)?;
        gauge(&mut w, "sotto_budget_cpu_peak_ratio", "Peak CPU budget, fraction of the machine.", g.cpu_peak)?;
        gauge(&mut w, "sotto_budget_memory_bytes", "Memory budget.", g.memory)?;
        gauge(
            &mut w,
            "sotto_cgroup_cpu_max_cpus",
            "The cpu.max sotto wrote for itself, in CPUs (0: none).",
            g.cgroup_cpus.unwrap_or(0.0),
        )?;
        gauge(&mut w, "sotto_machine_cpus", "CPUs this process may use (affinity, cgroup cpu.max).", g.cpus)?;
        labelled(
            &mut w,
            "sotto_thread_plan",
            "Threads per phase, planned from the budgets.",
            "phase",
            [("prefill", g.threads_batch), ("decode", g.threads)],
        )?;
        labelled(
            &mut w,
            "sotto_budget_cpu_mean_by_priority_ratio",
            "Mean CPU budget per request priority.",
            "priority",
            [("critical", g.cpu_mean_critical), ("normal", g.cpu_mean), ("background", g.cpu_mean_background)],
        )
    }
}

fn gauge(w: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
    const_metric(w, name, help, &ConstGauge::new(value))
}

/// `name` without `_total`: the encoder adds it.
fn counter(w: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeCounterValue) -> fmt::Result {
    const_metric(w, name, help, &ConstCounter::new(value))
}

fn const_metric(w: &mut DescriptorEncoder, name: &str, help: &str, metric: &impl EncodeMetric) -> fmt::Result {
    metric.encode(w.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge with one series per value of the label `key`, in the order given.
fn labelled<V: EncodeGaugeValue + Copy, const N: usize>(
    w: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &'static str,
    series: [(&'static str, V); N],
) -> fmt::Result {
    let mut m = w.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in series {
        ConstGauge::new(n).encode(m.encode_family(&[(key, value)])?)?;
    }
    Ok(())
}

/// A labelled family that writes its series in label order. prometheus-client's `Family` keeps
/// them in a `HashMap`, whose order changes from one process to the next; in order, the same
/// state reads the same (the snapshot test, a person comparing two scrapes).
#[derive(Debug)]
struct Ordered<L, M> {
    series: Arc<Mutex<BTreeMap<L, M>>>,
    new: fn() -> M,
}

impl<L, M> Clone for Ordered<L, M> {
    fn clone(&self) -> Self {
        Ordered { series: self.series.clone(), new: self.new }
    }
}

impl<L: Ord, M> Ordered<L, M> {
    fn new(new: fn() -> M) -> Self {
        Ordered { series: Arc::default(), new }
    }

    /// Call `f` on the series of `labels`, made on first use.
    fn with(&self, labels: L, f: impl FnOnce(&M)) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        f(series.entry(labels).or_insert_with(self.new));
    }
}

impl<L: EncodeLabelSet, M: EncodeMetric + TypedMetric> EncodeMetric for Ordered<L, M> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (labels, metric) in self.series.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
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

    fn stats(queued_ms: u64, prompt: usize, cached: usize, generated: usize) -> Stats {
        Stats {
            prompt_tokens: prompt,
            cached_tokens: cached,
            queued: Duration::from_millis(queued_ms),
            generated_tokens: generated,
            prefill: Duration::from_millis(200),
            decode: Duration::from_millis(300),
            cpu: Duration::ZERO,
            parked: Duration::ZERO,
            finish: FinishReason::Stop,
        }
    }

    /// Two chat requests (one of them refused), an analysis, one connection open and one
    /// refused, on a busy engine with a cgroup cap.
    fn fixed() -> (Metrics, Scrape) {
        let m = Metrics::default();
        m.completed("chat", Duration::from_millis(520), &stats(5, 100, 80, 7));
        m.count("chat", outcome::OK);
        m.count("chat", outcome::QUEUE_FULL);
        m.completed_tokens("analyze", Duration::from_millis(2700), 300, 0, 0);
        m.count("analyze", outcome::OK);
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.connection_refused();
        let engine = EngineStatus {
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
        let gov = Resources { cpu_mean_background: 0.1, cgroup_cpus: Some(1.0), ..Resources::default() };
        let scrape = Scrape {
            engine,
            gov,
            paced: Duration::from_millis(1500),
            cpu: Duration::from_millis(12_250),
            rss: Some(300 << 20),
            peak_rss: 400 << 20,
        };
        (m, scrape)
    }

    /// The whole exposition for a fixed state: a changed name, label, help or bucket shows in
    /// review.
    #[test]
    fn the_exposition_of_a_fixed_state() {
        let (m, scrape) = fixed();
        insta::assert_snapshot!(m.render_with(scrape));
    }

    /// What other tests, the bench and users poll, whatever the snapshot says.
    #[test]
    fn names_and_labels_others_poll_are_kept() {
        let (m, scrape) = fixed();
        let text = m.render_with(scrape);
        for line in [
            "sotto_queue_depth 2",
            "sotto_engine_busy 1",
            "sotto_engine_panics_total 0",
            "sotto_engine_preemptions_total 3",
            "sotto_engine_parked 1",
            "sotto_prompt_tokens_cached_total 80",
            "sotto_generated_tokens_total 7",
            "sotto_http_connections 1",
            "sotto_http_connections_refused_total 1",
            "sotto_requests_total{endpoint=\"chat\",outcome=\"queue_full\"} 1",
            "sotto_request_duration_seconds_bucket{endpoint=\"chat\",le=\"1\"} 1",
            "sotto_request_duration_seconds_bucket{endpoint=\"analyze\",le=\"2.5\"} 0",
            "sotto_request_duration_seconds_bucket{endpoint=\"analyze\",le=\"+Inf\"} 1",
            "sotto_queue_wait_seconds_bucket{le=\"0.01\"} 1",
            "sotto_governor_paced_seconds_total 1.5",
            "sotto_thread_plan{phase=\"prefill\"} 1",
            "sotto_budget_cpu_peak_ratio 0.5",
            "sotto_budget_cpu_mean_by_priority_ratio{priority=\"background\"} 0.1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        for name in ["sotto_model_loads_total", "sotto_process_cpu_seconds_total", "sotto_request_duration_seconds"] {
            assert!(text.contains(&format!("# TYPE {name} ")), "no TYPE line for {name} in\n{text}");
        }
    }

    #[test]
    fn retry_after_follows_service_time() {
        let m = Metrics::default();
        m.completed("chat", Duration::from_millis(520), &stats(5, 100, 80, 7));
        // Smoothed service time: (1000*7 + 500) / 8 = 937 ms; three ahead → 4 × 0.937 s.
        assert_eq!(m.retry_after(3), 4);
        assert_eq!(m.retry_after(1000), 120);
    }
}
