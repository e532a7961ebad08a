//! `sotto bench ...`: run a benchmark, print its table, and save the raw data with the exact
//! command, the model hashes, the llama.cpp binding version and the CPU.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sotto_models::{fetch, store};

use crate::cli::{BenchGovernorArgs, BenchServeArgs};

/// The llama.cpp every run measures: the binding and the sys crate that vendors llama.cpp.
/// The crate ships llama.cpp without its git metadata (its build-info says "unknown"), so the
/// revision is named by the llama-cpp-rs commit whose submodule pins it, and fixed by a hash
/// of the vendored sources: in the crate's folder,
/// `find llama.cpp/{src,include,ggml/src,ggml/include} -type f | LC_ALL=C sort | xargs sha256sum | sha256sum`.
const LLAMA_CPP: &str = "llama-cpp-2 0.1.160, llama-cpp-sys-2 0.1.161: llama.cpp as pinned by llama-cpp-rs commit \
     e7af607ebd5ec2932709ef918c17cca2f9b0fce4 (sources sha256 416d0b44893ec218fa8e03d2a4091bc29e1988ae58f12e4510cb2421f1900154), \
     ggml 0.26.0, no OpenMP, AVX2/FMA/F16C/BMI2";

pub fn governor(models_dir: &Path, args: BenchGovernorArgs) -> anyhow::Result<ExitCode> {
    let mut models = Vec::new();
    let mut model_meta = Vec::new();
    for m in &args.models {
        let path = store::resolve(Some(m), models_dir);
        anyhow::ensure!(path.exists(), "model `{m}` not found at {}; run `sotto models fetch`", path.display());
        let sha = fetch::sha256_file(&path)?;
        model_meta.push(serde_json::json!({"model": m, "path": path.display().to_string(), "sha256": sha}));
        models.push((m.clone(), path));
    }
    let options = sotto_bench::governor::Options {
        models,
        requests: args.requests,
        max_tokens: args.max_tokens,
        chunk: args.chunk,
        idle: Duration::from_secs(args.idle),
        foreground: Duration::from_secs(args.foreground),
        foreground_only: args.foreground_only,
        exe: std::env::current_exe()?,
    };
    let mut data = sotto_bench::governor::run(&options)?;
    data["command"] = std::env::args().collect::<Vec<_>>().join(" ").into();
    data["models"] = model_meta.into();
    data["llama_cpp_2"] = LLAMA_CPP.into();
    data["cpu"] = cpu_model().into();
    save(&data, args.out.as_deref())
}

/// Write a run's raw data where `--out` says, if it says.
fn save(data: &serde_json::Value, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(out) = out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(out, serde_json::to_string_pretty(data)?)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("raw data written to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// The GGUF a benchmark runs: `model` (a path or a catalog id), which must have been fetched.
fn model_path(model: &str, models_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = store::resolve(Some(model), models_dir);
    anyhow::ensure!(path.exists(), "model `{model}` not found at {}; run `sotto models fetch`", path.display());
    Ok(path)
}

/// A benchmark's raw data with what reproduces it (the command, the model's sha256, the
/// CPU), printed or written to `out`.
fn record(mut data: serde_json::Value, model: &str, path: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    data["command"] = std::env::args().collect::<Vec<_>>().join(" ").into();
    data["model"] = serde_json::json!({"model": model, "sha256": fetch::sha256_file(path)?});
    data["cpu"] = cpu_model().into();
    save(&data, out)
}

pub fn analyze(models_dir: &Path, args: crate::cli::BenchAnalyzeArgs) -> anyhow::Result<ExitCode> {
    let path = model_path(&args.model, models_dir)?;
    let file = args.corpus.clone().unwrap_or_else(super::head::default_corpus);
    let split = sotto_analyze::head::train::Split::load(&file)?;
    let side =
        if args.corpus.is_some() { split.items.iter().collect() } else { split.side(sotto_events::eval::Side::Test) };
    let corpus = side.into_iter().map(|i| (i.label.to_string(), i.event.clone())).collect();
    let options = sotto_bench::analyze::Options {
        model: path.clone(),
        model_id: args.model.clone(),
        corpus,
        events: args.events,
        rate: args.rate,
        rationales: args.rationales,
    };
    let data = sotto_bench::analyze::run(&options)?;
    record(data, &args.model, &path, args.out.as_deref())
}

pub fn serve(models_dir: &Path, args: BenchServeArgs) -> anyhow::Result<ExitCode> {
    let path = model_path(&args.model, models_dir)?;
    let options = sotto_bench::serve::Options {
        model: path.clone(),
        model_id: args.model.clone(),
        requests: args.requests,
        max_tokens: args.max_tokens,
    };
    let data = sotto_bench::serve::run(&options)?;
    record(data, &args.model, &path, args.out.as_deref())
}

pub fn soak(models_dir: &Path, args: crate::cli::BenchSoakArgs) -> anyhow::Result<ExitCode> {
    let path = model_path(&args.model, models_dir)?;
    let options = sotto_bench::soak::Options {
        exe: std::env::current_exe()?,
        model: args.model.clone(),
        models_dir: models_dir.to_path_buf(),
        requests: args.requests,
        clients: args.clients,
    };
    let data = sotto_bench::soak::run(&options)?;
    record(data, &args.model, &path, args.out.as_deref())
}

/// The baseline's python: `--baseline-python`, else the environment `scripts/baseline` keeps,
/// built by it first when this is a source checkout and it is missing. `None`: the baseline
/// rows fail with the reason, the others run.
fn baseline_python(given: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    if given.is_some() {
        return given;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/baseline");
    if !script.exists() {
        return None;
    }
    let out = std::process::Command::new("bash").arg(&script).arg("--path").output().ok()?;
    if !out.status.success() {
        eprintln!("the baseline could not be built: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().into()).filter(|p: &std::path::PathBuf| p.exists())
}

pub fn run(models_dir: &Path, args: crate::cli::BenchRunArgs) -> anyhow::Result<ExitCode> {
    use sotto_bench::matrix::{self, Matrix, Setup};
    let text = std::fs::read_to_string(&args.matrix).with_context(|| format!("reading {}", args.matrix.display()))?;
    let parsed = Matrix::parse(&text).with_context(|| format!("{}", args.matrix.display()))?;
    let mut models = std::collections::BTreeMap::new();
    let mut hashes = serde_json::Map::new();
    for model in parsed.rows().into_iter().map(|r| r.model).chain(parsed.speed_models()) {
        if let std::collections::btree_map::Entry::Vacant(slot) = models.entry(model) {
            let path = model_path(slot.key(), models_dir)?;
            hashes.insert(slot.key().clone(), fetch::sha256_file(&path)?.into());
            slot.insert(path);
        }
    }
    let file = args.corpus.clone().unwrap_or_else(super::head::default_corpus);
    let split = sotto_analyze::head::train::Split::load(&file)?;
    let events = if args.corpus.is_some() {
        split.items.clone()
    } else {
        split.side(sotto_events::eval::Side::Test).into_iter().cloned().collect()
    };
    let needs_baseline = parsed.speed.is_some() || parsed.rows().iter().any(|r| r.kind == matrix::spec::Kind::Baseline);
    let python = if needs_baseline { baseline_python(args.baseline_python.clone()) } else { None };
    let baseline_build = python
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p.parent()?.parent()?.join("build.txt")).ok())
        .map(|s| s.trim().replace('\n', "; "));
    let meta = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "cpu": cpu_model(),
        "cpus": sotto_governor::available_cpus(),
        "models_sha256": hashes,
        "llama_cpp": LLAMA_CPP,
        "baseline": baseline_build.unwrap_or_else(|| "not built".into()),
        "events": format!("{} ({})", file.display(), if args.corpus.is_some() { "all" } else { "held-out test families" }),
        "date": date(),
    });
    let options = matrix::Options {
        matrix: parsed,
        matrix_text: text,
        events,
        setup: Setup {
            exe: std::env::current_exe()?,
            models_dir: models_dir.to_path_buf(),
            baseline_python: python,
            logs: args.out.join("logs"),
        },
        models,
        out: args.out.clone(),
        meta,
    };
    matrix::run(&options)?;
    eprintln!("written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Today, as `date -u +%F` prints it.
pub(crate) fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
