//! `sotto serve`: the daemon. Loads the configured model under the governor, then serves the
//! HTTP API until SIGTERM or Ctrl-C, and shuts down in bounded time.
//!
//! The signal handlers are installed before anything else: a SIGTERM while the model loads
//! lets the load return, then exits 0 without serving (with the default action it killed the
//! process).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use sotto_engine::{Engine, EngineConfig};
use sotto_governor::{CgroupMode, Governor, available_cpus};
use sotto_models::{catalog, store};
use sotto_server::{AppState, ModelName, Resources, Settings};

use crate::cmd::config::ConfigArgs;
use crate::config::{Config, state_dir};

/// The API's name for the model at `path`: its catalog id when it is a catalog file, else the
/// file stem; the file name and stem are accepted too.
pub fn model_name(path: &Path) -> ModelName {
    let file = path.file_name().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let id = catalog::CATALOG.iter().find(|e| e.file_name == file).map_or_else(|| stem.clone(), |e| e.id.to_string());
    let created = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let aliases = [file, stem].into_iter().filter(|a| *a != id).collect();
    ModelName { id, aliases, created }
}

/// Everything `serve` starts from a validated configuration.
pub fn engine_config(config: &Config, models_dir: &Path, governor: &Governor) -> anyhow::Result<EngineConfig> {
    let path = store::resolve(Some(&config.model.path), models_dir);
    if !path.exists() && catalog::find(&config.model.path).is_some() {
        anyhow::bail!(
            "model `{}` is not in {}; run `sotto models fetch {}` first",
            config.model.path,
            models_dir.display(),
            config.model.path
        );
    }
    let plan = governor.plan();
    let prefix_dir = match (&config.cache.dir, config.cache.persist) {
        (_, false) => None,
        (Some(dir), true) => Some(dir.clone()),
        (None, true) => Some(state_dir().join("prefix")),
    };
    Ok(EngineConfig {
        n_ctx: config.model.n_ctx,
        threads: config.model.threads.unwrap_or(plan.decode),
        threads_batch: config.model.threads_batch.or(config.model.threads).unwrap_or(plan.prefill),
        chunk: config.model.chunk,
        queue: config.server.queue,
        template: config.model.template.clone(),
        kv_type: config.model.kv_type,
        mem_budget: Some(config.budget.memory),
        prefix_cache: config.cache.prefix as usize,
        prefix_dir,
        prefix_disk: config.cache.disk,
        keep_alive: config.model.keep_alive,
        ..EngineConfig::new(path)
    })
}

/// `budget.cgroup`: cap the whole process at `cpus` with its own cgroup `cpu.max`. Returns
/// the cap when one was written; `auto` logs why not and goes on, `require` refuses to start.
pub fn apply_cgroup(mode: CgroupMode, cpus: f64) -> anyhow::Result<Option<f64>> {
    if mode == CgroupMode::Off {
        return Ok(None);
    }
    let outcome = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| anyhow::anyhow!("cannot read /proc/self/cgroup: {e}"))
        .and_then(|own| {
            let root = Path::new("/sys/fs/cgroup");
            Ok(sotto_governor::cgroup::apply_cpu_max(root, &own, std::process::id(), cpus)?)
        });
    match outcome {
        Ok(applied) => {
            tracing::info!(dir = %applied.dir.display(), cpu_max = %applied.cpu_max, "cgroup cpu.max set");
            Ok(Some(cpus))
        }
        Err(e) if mode == CgroupMode::Auto => {
            tracing::warn!(error = %e, "budget.cgroup = auto: no cgroup cpu.max; the governor alone holds the budget");
            Ok(None)
        }
        Err(e) => anyhow::bail!("budget.cgroup = require: {e}"),
    }
}

/// What the sandboxed daemon may read and write: the model and the models directory, an
/// explicit head file, what the governor and llama.cpp read (`/proc`, `/sys`), and the state
/// directory (the prefix cache), created first; with `budget.cgroup`, the cgroup tree too.
fn sandbox_paths(config: &Config, models_dir: &Path) -> anyhow::Result<crate::sandbox::Allowed> {
    let model = store::resolve(Some(&config.model.path), models_dir);
    let mut read = vec![models_dir.to_path_buf(), PathBuf::from("/proc"), PathBuf::from("/sys")];
    read.extend(model.parent().map(Path::to_path_buf));
    read.extend(std::fs::canonicalize(&model).ok().and_then(|m| m.parent().map(Path::to_path_buf)));
    read.extend(config.analyze.head.clone());
    read.sort();
    read.dedup();
    let mut write = vec![state_dir()];
    write.extend(config.cache.dir.clone());
    if config.budget.cgroup != CgroupMode::Off {
        write.push(PathBuf::from("/sys/fs/cgroup"));
    }
    for dir in &write {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(crate::sandbox::Allowed { read, write })
}

pub fn run(models_dir: &Path, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    // Before any thread starts: Landlock holds for the threads started after it.
    crate::sandbox::apply(config.server.sandbox, &sandbox_paths(&config, models_dir)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sotto-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut signals = runtime.block_on(async { Signals::install() })?;
    let budgets = config.budgets();
    let cpus = available_cpus();
    let cgroup_cpus = apply_cgroup(config.budget.cgroup, budgets.cpu_peak * cpus)?;
    let governor = Governor::new(budgets, config.budget.sched, cpus).with_critical_class(config.budget.sched_critical);
    let paced = governor.stats();
    let engine_config = engine_config(&config, models_dir, &governor)?;
    let path = engine_config.model.clone();
    tracing::info!(model = %path.display(), "loading the model");
    let loading = runtime.block_on(async {
        let mut load = tokio::task::spawn_blocking(move || Engine::start(engine_config, Box::new(governor)));
        tokio::select! {
            loaded = &mut load => Ok(loaded),
            name = signals.recv() => {
                tracing::info!("{name} received while the model loads; exiting once the load returns");
                Err(load.await)
            }
        }
    });
    let engine = match loading {
        Ok(loaded) => loaded.context("the loading thread failed")?,
        Err(abandoned) => {
            // An engine that did load is dropped here, outside the runtime: its thread joins.
            drop(abandoned);
            tracing::info!("stopped before serving");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let engine = Arc::new(engine.with_context(|| format!("loading {}", path.display()))?);
    let info = engine.info().clone();
    let analyzer = Arc::new(super::analyze::analyzer(engine.clone(), &config)?);
    let settings = Settings {
        token: config.server.token.clone(),
        max_body: config.server.max_body as usize,
        max_tokens: config.server.max_tokens,
        default_deadline: config.server.default_deadline,
        shutdown_grace: config.server.shutdown_grace,
        max_connections: config.server.max_connections,
        header_timeout: config.server.header_timeout,
        body_timeout: config.server.body_timeout,
        default_detail: config.analyze.detail,
        ..Settings::default()
    };
    let resources = Resources { cgroup_cpus, ..Resources::new(&budgets, cpus, info.threads, info.threads_batch) };
    let name = model_name(&path);
    let warm = analyzer.clone();
    let prefix_cache = config.cache.prefix > 0;
    let state = AppState::new(engine, Some(analyzer), name.clone(), settings, resources, paced);
    runtime.block_on(async {
        // The rationale prompt's shared part, evaluated once at background priority (loaded
        // from the prefix directory when an earlier run persisted it).
        // With the prefix cache off there is nothing to keep it in: the work would be wasted.
        if prefix_cache {
            tokio::spawn(async move {
                match warm.prewarm().await {
                    Ok(()) => tracing::info!("rationale prompt cached"),
                    Err(e) => tracing::warn!(error = %e, "could not cache the rationale prompt"),
                }
            });
        }
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            %addr, model = %name.id, threads = info.threads, threads_batch = info.threads_batch,
            cpu_mean = budgets.cpu_mean, cpu_peak = budgets.cpu_peak, sched = %config.budget.sched,
            auth = config.server.token.is_some(), "listening"
        );
        let router = sotto_server::app(state.clone());
        let shutdown = async move {
            let name = signals.recv().await;
            tracing::info!("{name} received");
        };
        sotto_server::serve(listener, router, state, shutdown).await.context("serving")
    })?;
    // The router and state are gone: dropping the runtime drops the last engine handle, which
    // joins the engine thread.
    drop(runtime);
    tracing::info!("shutdown complete");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment they are installed: a signal that
/// arrives before anyone waits is kept, not lost and not left to the default action.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the handlers; must run inside the runtime.
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "Ctrl-C",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
