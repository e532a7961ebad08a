//! The matrix file of `sotto bench run --matrix FILE.toml`: what to send, the promises to judge
//! against, and the rows. A row is either sotto (`sotto serve` with `--set` pairs: the model,
//! thread plan, budgets, scheduling class, prefix cache, analysis design, any configuration
//! key) or the baseline (llama-cpp-python's server at the seeds' settings). A row that names
//! several models stands for one row per model.
//!
//! Must not: accept a key it does not know (`deny_unknown_fields`: a typo must not silently
//! leave a row at its default), or a row that cannot run (checked in [`Matrix::parse`]).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole matrix file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    #[serde(default)]
    pub run: RunSpec,
    #[serde(default)]
    pub promises: Promises,
    #[serde(rename = "row", default)]
    pub rows: Vec<RowSpec>,
    /// Raw prefill and decode speed against llama.cpp's; absent: not measured.
    pub speed: Option<SpeedSpec>,
}

/// The speed comparison: every model of the matrix at each thread count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeedSpec {
    /// Thread counts, each used for prefill and decode alike.
    pub threads: Vec<u32>,
    /// Tokens generated per run.
    pub generate: u32,
    /// Runs of each cell, interleaved; the best and the median are reported.
    pub repeats: usize,
    /// Models measured, catalog ids or GGUF paths; empty: every model the rows name.
    pub models: Vec<String>,
}

impl Default for SpeedSpec {
    fn default() -> Self {
        SpeedSpec { threads: vec![1, 2], generate: 64, repeats: 5, models: Vec::new() }
    }
}

/// What every row is sent and for how long it is watched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    /// Events of the evaluation split sent to every row, one at a time; 0: all of them.
    pub events: usize,
    /// Events the row flagged, sent again with `detail=full` for the rationale's latency.
    pub rationales: usize,
    /// Seconds of no requests after the stream, for the idle figure (MEASURING.md: 30).
    pub idle_s: f64,
    /// Seconds of the SHA-256 foreground workload, alone and beside a stream (MEASURING.md: 10).
    pub foreground_s: f64,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec { events: 0, rationales: 10, idle_s: 30.0, foreground_s: 10.0 }
    }
}

/// The promises each figure is judged against (README: the defaults of the budgets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Promises {
    /// Correctness, MEASURING.md's accuracy, 0..1.
    pub accuracy: f64,
    /// p95 latency, verdict and rationale alike, ms.
    pub p95_ms: f64,
    /// p99 / p50 of the verdict latency must stay under this.
    pub tail_ratio: f64,
    /// Process CPU over the active 100 ms windows, % of the machine.
    pub cpu_mean: f64,
    /// p99 and peak of those windows ("no spikes"), % of the machine.
    pub cpu_peak: f64,
    /// Idle process CPU, % of the machine.
    pub idle_cpu: f64,
    /// Peak RSS, MiB.
    pub rss_mib: f64,
    /// The foreground workload's slowdown beside the stream, %: sotto must not take more from
    /// the user than its mean CPU budget.
    pub foreground_impact: f64,
}

impl Default for Promises {
    fn default() -> Self {
        Promises {
            accuracy: 0.80,
            p95_ms: 2500.0,
            tail_ratio: 2.0,
            cpu_mean: 35.0,
            cpu_peak: 50.0,
            idle_cpu: 2.0,
            rss_mib: 6144.0,
            foreground_impact: 35.0,
        }
    }
}

/// Who answers a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `sotto serve`, asked through `POST /v1/analyze`.
    Sotto,
    /// llama-cpp-python's OpenAI server, asked the `naive` design's question through
    /// `POST /v1/chat/completions`, its answer read leniently.
    Baseline,
}

/// One row as written: `models` expands it to one row per model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub name: String,
    pub kind: Kind,
    /// Catalog ids or GGUF paths.
    pub models: Vec<String>,
    /// Sotto rows: configuration keys and values, as `sotto serve --set key=value`.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Baseline rows: `n_threads`.
    pub threads: Option<u32>,
    /// Baseline rows: `n_threads_batch`; absent: the server's default.
    pub threads_batch: Option<u32>,
}

/// One row to run: a [`RowSpec`] for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `<name> · <model>`.
    pub name: String,
    pub kind: Kind,
    pub model: String,
    /// `key=value` pairs for `--set`.
    pub set: Vec<String>,
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
}

impl Matrix {
    /// Parses and checks a matrix file.
    pub fn parse(text: &str) -> anyhow::Result<Matrix> {
        let matrix: Matrix = toml::from_str(text)?;
        anyhow::ensure!(!matrix.rows.is_empty() || matrix.speed.is_some(), "the matrix has no [[row]] and no [speed]");
        for r in &matrix.rows {
            anyhow::ensure!(!r.models.is_empty(), "row `{}`: `models` is empty", r.name);
            match r.kind {
                Kind::Sotto => anyhow::ensure!(
                    r.threads.is_none() && r.threads_batch.is_none(),
                    "row `{}`: a sotto row sets its threads with set = {{ \"model.threads\" = ... }}",
                    r.name
                ),
                Kind::Baseline => {
                    anyhow::ensure!(r.set.is_empty(), "row `{}`: a baseline row takes no `set`", r.name);
                    anyhow::ensure!(r.threads.is_some(), "row `{}`: a baseline row needs `threads`", r.name);
                }
            }
            for (key, value) in &r.set {
                anyhow::ensure!(
                    !matches!(value, toml::Value::Array(_) | toml::Value::Table(_)),
                    "row `{}`: `{key}` must be a string, number or boolean",
                    r.name
                );
            }
        }
        let rows = matrix.rows();
        let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            anyhow::bail!("two rows are named `{}`", w[0]);
        }
        Ok(matrix)
    }

    /// Every row, one per model, in file order, grouped by model (so that a model's rows run
    /// side by side, minutes apart).
    pub fn rows(&self) -> Vec<Row> {
        let mut models: Vec<&str> = Vec::new();
        for m in self.rows.iter().flat_map(|r| &r.models) {
            if !models.contains(&m.as_str()) {
                models.push(m);
            }
        }
        models
            .iter()
            .flat_map(|&model| {
                self.rows.iter().filter(move |r| r.models.iter().any(|m| m == model)).map(move |r| Row {
                    name: format!("{} · {model}", r.name),
                    kind: r.kind,
                    model: model.to_string(),
                    set: r.set.iter().map(|(k, v)| format!("{k}={}", text(v))).collect(),
                    threads: r.threads,
                    threads_batch: r.threads_batch,
                })
            })
            .collect()
    }

    /// The models `[speed]` measures: its own list, else every model the rows name, in order.
    pub fn speed_models(&self) -> Vec<String> {
        let Some(speed) = &self.speed else { return Vec::new() };
        if !speed.models.is_empty() {
            return speed.models.clone();
        }
        let mut models: Vec<String> = Vec::new();
        for m in self.rows.iter().flat_map(|r| &r.models) {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
        models
    }
}

/// A TOML scalar as `--set` takes it: strings without their quotes.
fn text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
        [run]
        events = 40
        [[row]]
        name = "default"
        kind = "sotto"
        models = ["smollm2", "gemma3"]
        set = { "budget.cpu_mean" = "35%", "cache.prefix" = 0, "model.threads" = 1 }
        [[row]]
        name = "seeds 1/1"
        kind = "baseline"
        models = ["gemma3"]
        threads = 1
        threads_batch = 1
    "#;

    #[test]
    fn rows_expand_per_model_and_group_by_model() {
        let m = Matrix::parse(TWO).unwrap();
        assert_eq!(m.run.events, 40);
        assert_eq!(m.run.idle_s, 30.0, "unset run keys keep their defaults");
        let rows = m.rows();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["default · smollm2", "default · gemma3", "seeds 1/1 · gemma3"]);
        assert_eq!(rows[0].set, ["budget.cpu_mean=35%", "cache.prefix=0", "model.threads=1"]);
        assert_eq!((rows[2].threads, rows[2].threads_batch), (Some(1), Some(1)));
    }

    #[test]
    fn mistakes_are_refused_with_the_row_named() {
        let unknown = TWO.replace("events = 40", "event = 40");
        assert!(Matrix::parse(&unknown).unwrap_err().to_string().contains("event"));
        let threads_on_sotto = TWO.replace("models = [\"smollm2\", \"gemma3\"]", "models = [\"x\"]\nthreads = 2");
        assert!(Matrix::parse(&threads_on_sotto).unwrap_err().to_string().contains("row `default`"));
        let no_threads = TWO.replace("threads = 1\n", "");
        assert!(Matrix::parse(&no_threads).unwrap_err().to_string().contains("needs `threads`"));
        let twice = format!("{TWO}\n[[row]]\nname = \"default\"\nkind = \"sotto\"\nmodels = [\"gemma3\"]\n");
        assert!(Matrix::parse(&twice).unwrap_err().to_string().contains("two rows are named `default · gemma3`"));
        assert!(Matrix::parse("[run]\nevents = 1\n").is_err());
    }

    #[test]
    fn speed_measures_the_rows_models_unless_it_names_its_own() {
        let m = Matrix::parse(&format!("{TWO}\n[speed]\nrepeats = 2\n")).unwrap();
        assert_eq!(m.speed_models(), ["smollm2", "gemma3"]);
        assert_eq!(m.speed.as_ref().unwrap().generate, 64, "unset speed keys keep their defaults");
        let alone = Matrix::parse("[speed]\nmodels = [\"gemma3\"]\nthreads = [2]\n").unwrap();
        assert!(alone.rows().is_empty());
        assert_eq!(alone.speed_models(), ["gemma3"]);
        assert!(Matrix::parse(TWO).unwrap().speed_models().is_empty());
    }

    #[test]
    fn the_shipped_matrix_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/matrix.toml");
        let m = Matrix::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rows = m.rows();
        for kind in [Kind::Sotto, Kind::Baseline] {
            assert!(rows.iter().any(|r| r.kind == kind), "the default matrix has {kind:?} rows");
        }
    }
}
