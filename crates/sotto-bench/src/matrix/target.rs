//! Who answers a row: a real `sotto serve` asked through `POST /v1/analyze`, or the baseline,
//! llama-cpp-python's OpenAI server asked the `naive` design's question through
//! `POST /v1/chat/completions`, its answer read leniently. Each runs as a process of its own on
//! a free loopback port, so the sampler measures exactly the server.
//!
//! Must not: let the user's configuration reach a sotto row (its own config directory, and no
//! `SOTTO_*` variable but the models directory), or count an answer it could not read as
//! right.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sotto_events::LabelledEvent;
use sotto_events::eval::Label;

use super::spec::{Kind, Row};
use crate::client::Client;
use crate::process::{Server, free_addr};

/// What every row needs from the machine.
pub struct Setup {
    /// The `sotto` executable.
    pub exe: PathBuf,
    pub models_dir: PathBuf,
    /// The baseline environment's python (`scripts/baseline --path`); `None`: baseline rows fail.
    pub baseline_python: Option<PathBuf>,
    /// Where each server's log goes (`<row slug>.log`).
    pub logs: PathBuf,
}

/// One answer, as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Request to the last byte of the answer.
    pub ms: f64,
    pub status: u16,
    /// `None`: no verdict could be read (a failure, or an answer that names none).
    pub verdict: Option<Label>,
    pub techniques: Vec<String>,
    /// Why there is no verdict.
    pub error: Option<String>,
}

/// A started server of one row.
pub struct Target {
    server: Server,
    client: Client,
    kind: Kind,
    /// A fresh state directory (prefix snapshots) per sotto row; removed at the end.
    state: Option<PathBuf>,
    /// From the spawn to the first 200 of the readiness path.
    pub ready_s: f64,
}

/// Longest wait for one answer (a baseline answer on a slow machine takes tens of seconds).
const ANSWER_LIMIT: Duration = Duration::from_secs(300);

impl Target {
    /// Starts the row's server with `model` (a GGUF path) and waits until it answers.
    pub fn start(row: &Row, model: &Path, setup: &Setup, slug: &str) -> anyhow::Result<Target> {
        let addr = free_addr()?;
        std::fs::create_dir_all(&setup.logs)?;
        let log = std::fs::File::create(setup.logs.join(format!("{slug}.log")))?;
        let (mut command, state, ready) = match row.kind {
            Kind::Sotto => {
                let state = std::env::temp_dir().join(format!("sotto-bench-run-{}-{slug}", std::process::id()));
                std::fs::create_dir_all(&state)?;
                let mut c = sotto_command(setup, &state);
                c.args(["serve", "--set", &format!("server.listen={addr}")]);
                c.args(["--set", &format!("model.path={}", model.display())]);
                for pair in &row.set {
                    c.args(["--set", pair]);
                }
                (c, Some(state), "/ready")
            }
            Kind::Baseline => {
                let Some(python) = &setup.baseline_python else {
                    anyhow::bail!("row `{}` needs the baseline: build it with scripts/baseline", row.name);
                };
                let mut c = Command::new(python);
                c.args(["-m", "llama_cpp.server", "--model", &model.display().to_string()]);
                c.args(["--host", "127.0.0.1", "--port", &addr.port().to_string(), "--n_ctx", "2048"]);
                c.args(["--n_threads", &row.threads.unwrap_or(2).to_string()]);
                if let Some(t) = row.threads_batch {
                    c.args(["--n_threads_batch", &t.to_string()]);
                }
                (c, None, "/v1/models")
            }
        };
        let spawned = Instant::now();
        let child = command.stdout(Stdio::null()).stderr(log).spawn()?;
        let mut server = Server { child, addr };
        let client = Client::new(addr, ANSWER_LIMIT);
        server.wait_ready(&client, ready, Duration::from_secs(300))?;
        Ok(Target { server, client, kind: row.kind, state, ready_s: spawned.elapsed().as_secs_f64() })
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The event's verdict: `detail=verdict` from sotto; the whole answer from the baseline,
    /// whose verdict comes with its explanation.
    pub fn verdict(&self, event: &LabelledEvent) -> Answer {
        match self.kind {
            Kind::Sotto => self.analyze(event, "verdict"),
            Kind::Baseline => self.chat(event),
        }
    }

    /// The event's verdict with a generated rationale (`detail=full`); `None` for the baseline,
    /// whose verdict latency already includes its explanation.
    pub fn rationale(&self, event: &LabelledEvent) -> Option<Answer> {
        (self.kind == Kind::Sotto).then(|| self.analyze(event, "full"))
    }

    fn analyze(&self, event: &LabelledEvent, detail: &str) -> Answer {
        timed(|| {
            let reply = self.client.post(&format!("/v1/analyze?detail={detail}"), event.event.to_string())?;
            if reply.status != 200 {
                return Ok((reply.status, None, Vec::new(), Some(reply.body)));
            }
            let v: Value = serde_json::from_str(&reply.body)?;
            let verdict = serde_json::from_value::<Label>(v["verdict"].clone()).ok();
            let techniques = strings(&v["techniques"]);
            Ok((200, verdict, techniques, None))
        })
    }

    fn chat(&self, event: &LabelledEvent) -> Answer {
        let question = match event.parse() {
            Ok(e) => sotto_analyze::naive_question(&e),
            Err(e) => return Answer::failed(0, format!("the event does not parse: {e}")),
        };
        let body = json!({
            "messages": [{"role": "user", "content": question}],
            "max_tokens": sotto_analyze::NAIVE_MAX_TOKENS,
            "temperature": 0,
        });
        timed(|| {
            let reply = self.client.post("/v1/chat/completions", body.to_string())?;
            if reply.status != 200 {
                return Ok((reply.status, None, Vec::new(), Some(reply.body)));
            }
            let v: Value = serde_json::from_str(&reply.body)?;
            let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
            let verdict = sotto_analyze::verdict::lenient_label(text);
            let techniques = match verdict {
                Some(Label::Benign) | None => Vec::new(),
                Some(_) => sotto_analyze::verdict::techniques_in_text(text),
            };
            let error = verdict.is_none().then(|| format!("no verdict in the answer: {text:?}"));
            Ok((200, verdict, techniques, error))
        })
    }

    /// Waits until the engine has nothing to do: sotto's `/metrics` shows no request busy,
    /// queued or set aside in three readings 100 ms apart. The baseline has no such gauge and
    /// answers one request at a time, so it is quiet once it has answered.
    pub fn wait_quiet(&self, limit: Duration) -> anyhow::Result<()> {
        if self.kind == Kind::Baseline {
            return Ok(());
        }
        let deadline = Instant::now() + limit;
        let mut quiet = 0;
        while quiet < 3 {
            anyhow::ensure!(Instant::now() < deadline, "the server was still busy after {} s", limit.as_secs());
            let reply = self.client.get("/metrics")?;
            anyhow::ensure!(reply.status == 200, "/metrics: {} {}", reply.status, reply.body);
            let idle = ["sotto_engine_busy", "sotto_queue_depth", "sotto_engine_parked"]
                .iter()
                .all(|name| gauge(&reply.body, name) == Some(0.0));
            quiet = if idle { quiet + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// SIGTERM; the exit status's code, if the server was still running.
    pub fn stop(mut self) -> anyhow::Result<Option<i32>> {
        let exit = self.server.terminate()?.and_then(|(status, _)| status.code());
        if let Some(state) = self.state.take() {
            let _ = std::fs::remove_dir_all(state);
        }
        Ok(exit)
    }
}

/// The `sotto` executable with `state` for its state and config directories, and no `SOTTO_*`
/// variable but the models directory: what the user configured must not change what a row
/// measures.
pub fn sotto_command(setup: &Setup, state: &Path) -> Command {
    let mut c = Command::new(&setup.exe);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SOTTO_") {
            c.env_remove(name);
        }
    }
    c.env("XDG_STATE_HOME", state).env("XDG_CONFIG_HOME", state.join("config"));
    c.env("SOTTO_MODELS", &setup.models_dir);
    c
}

impl Answer {
    fn failed(status: u16, error: String) -> Answer {
        Answer { ms: 0.0, status, verdict: None, techniques: Vec::new(), error: Some(error) }
    }
}

type Read = (u16, Option<Label>, Vec<String>, Option<String>);

/// Times `ask`; a transport or decoding error is an answer with no verdict.
fn timed(ask: impl FnOnce() -> anyhow::Result<Read>) -> Answer {
    let started = Instant::now();
    let result = ask();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match result {
        Ok((status, verdict, techniques, error)) => Answer { ms, status, verdict, techniques, error },
        Err(e) => Answer { ms, ..Answer::failed(0, format!("{e:#}")) },
    }
}

/// The value of an unlabelled gauge in a Prometheus text exposition.
fn gauge(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn gauges_are_read_from_the_exposition() {
        let text = "# HELP sotto_engine_busy 1 while busy.\n# TYPE sotto_engine_busy gauge\nsotto_engine_busy 1\n\
                    sotto_engine_busy_seconds 4\nsotto_queue_depth 0\n";
        assert_eq!(gauge(text, "sotto_engine_busy"), Some(1.0));
        assert_eq!(gauge(text, "sotto_queue_depth"), Some(0.0));
        assert_eq!(gauge(text, "sotto_engine_parked"), None);
    }

    #[test]
    fn a_sotto_row_sees_its_own_directories_and_no_user_configuration() {
        let setup =
            Setup { exe: "sotto".into(), models_dir: "/models".into(), baseline_python: None, logs: "/logs".into() };
        let c = sotto_command(&setup, Path::new("/state"));
        let envs: Vec<(&OsStr, Option<&OsStr>)> = c.get_envs().collect();
        let value = |k: &str| envs.iter().find(|(n, _)| *n == k).and_then(|(_, v)| *v);
        assert_eq!(value("XDG_STATE_HOME"), Some(OsStr::new("/state")));
        assert_eq!(value("XDG_CONFIG_HOME"), Some(OsStr::new("/state/config")), "no user config file");
        assert_eq!(value("SOTTO_MODELS"), Some(OsStr::new("/models")));
        for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("SOTTO_")) {
            if name != "SOTTO_MODELS" {
                assert!(envs.contains(&(name.as_os_str(), None)), "{name:?} is removed");
            }
        }
    }
}
