//! `sotto service print|install`: a systemd unit (or a launchd plist) that runs `sotto serve`
//! with the configured budgets enforced a second time by the service manager (`CPUQuota`,
//! `MemoryMax`, the idle scheduling class) and the usual sandboxing.
//!
//! Rendering is pure ([`render_systemd`], [`render_launchd`]): the configuration and the facts
//! about this machine go in, the file's text comes out. The unit is self-contained: values that
//! came from the environment or `--set` are written into its command line, so the daemon runs
//! with the budgets the unit's limits were computed from.
//!
//! Must not: run systemctl or launchctl (it prints the next commands), overwrite a different
//! file without `--force`, or write a secret into a unit file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sotto_governor::{CgroupMode, SchedClass};

use crate::cmd::config::ConfigArgs;
use crate::config::{Config, KEYS, Kind, Source};

/// launchd's name for the job; a reverse-DNS label under no real company's domain.
pub const LAUNCHD_LABEL: &str = "dev.sotto.daemon";

/// The user and group a launchd system daemon runs as.
pub const LAUNCHD_USER: &str = "nobody";
pub const LAUNCHD_GROUP: &str = "nobody";

#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A system-wide service instead of one for the current user
    #[arg(long)]
    pub system: bool,
    /// A launchd plist instead of a systemd unit (the default on macOS)
    #[arg(long)]
    pub launchd: bool,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Print the path and the content; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace an existing file that differs
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Print the unit (or plist) for this configuration
    Print(ServiceArgs),
    /// Write the unit (or plist) where the service manager looks for it, and print the next steps
    Install(InstallArgs),
}

/// What the rendering needs besides the configuration.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// The sotto executable, absolute.
    pub exe: PathBuf,
    /// The arguments after it: `serve`, then `--config` and `--set` as needed.
    pub args: Vec<String>,
    /// A system service (root's manager) rather than a user's.
    pub system: bool,
    /// `SOTTO_MODELS` for the daemon, absolute.
    pub models_dir: PathBuf,
    /// The machine's CPUs, as the governor counts them; `CPUQuota` is computed from it.
    pub cpus: f64,
    /// launchd only: where standard output and error go.
    pub logs_dir: PathBuf,
    /// launchd only: `STATE_DIRECTORY` for a system daemon (systemd sets it itself).
    pub state_dir: Option<PathBuf>,
}

/// systemd's `CPUQuota` is a percentage of ONE CPU: a 50% peak on a 2-CPU machine is `100%`.
pub fn cpu_quota(peak: f64, cpus: f64) -> u64 {
    (peak * cpus * 100.0).round().max(1.0) as u64
}

/// The `serve` command line: `--config` when a file was read, and a `--set` for each value that
/// came from the environment or a flag (the service manager sees neither).
pub fn serve_args(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut args = vec!["serve".to_string()];
    if let Some(file) = &config.file {
        let file = std::path::absolute(file).with_context(|| format!("locating {}", file.display()))?;
        args.extend(["--config".to_string(), text(&file)?]);
    }
    for k in KEYS {
        let source = config.sources.get(k.name).cloned().unwrap_or(Source::Default);
        if !matches!(source, Source::Env(_) | Source::Cli) {
            continue;
        }
        if k.kind == Kind::Secret {
            anyhow::bail!(
                "{} comes from {source}; a unit file must not hold it: put the token in a file readable by the \
                 service only, and set server.token_file in the config file",
                k.name
            );
        }
        args.extend(["--set".to_string(), format!("{}={}", k.name, config.value(k.name))]);
    }
    Ok(args)
}

fn text(p: &Path) -> anyhow::Result<String> {
    p.to_str().map(str::to_string).with_context(|| format!("{} is not valid UTF-8", p.display()))
}

/// One word of a systemd command line or assignment: specifiers (`%`) and, in `ExecStart`,
/// variables (`$`) doubled; quoted with C escapes when it holds spaces, quotes or controls.
fn systemd_word(s: &str, exec: bool) -> String {
    let mut w = s.replace('%', "%%");
    if exec {
        w = w.replace('$', "$$");
    }
    let plain = !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || c.is_control() || "\"'\\;".contains(c));
    if plain {
        return w;
    }
    let mut q = String::from("\"");
    for c in w.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => q.push_str(&format!("\\x{:02x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A one-line summary of the budgets, for the generated files' headers.
fn budget_summary(config: &Config, cpus: f64) -> String {
    format!(
        "CPU mean {} and peak {} of {cpus} CPUs, memory {}, inference threads {}",
        config.value("budget.cpu_mean"),
        config.value("budget.cpu_peak"),
        config.value("budget.memory"),
        config.budget.sched
    )
}

/// The systemd unit.
pub fn render_systemd(config: &Config, o: &UnitOptions) -> String {
    let exec: Vec<String> =
        std::iter::once(o.exe.to_string_lossy().into_owned()).chain(o.args.iter().cloned()).collect();
    let exec: Vec<String> = exec.iter().map(|w| systemd_word(w, true)).collect();
    let memory = config.budget.memory;
    let grace = config.server.shutdown_grace;
    let stop = grace.as_secs() + u64::from(grace.subsec_nanos() > 0) + 10;
    let sched = match config.budget.sched {
        SchedClass::Idle | SchedClass::Background => "CPUSchedulingPolicy=idle\nNice=19\n".to_string(),
        SchedClass::Nice(n) => format!("Nice={n}\n"),
        SchedClass::Normal => String::new(),
    };
    // The unprivileged daemon may move a critical request out of the idle class to
    // budget.sched_critical's nice value, and no higher.
    let sched = match config.budget.sched_critical {
        SchedClass::Nice(n) => format!("{sched}LimitNICE=+{n}\n"),
        SchedClass::Normal => format!("{sched}LimitNICE=+0\n"),
        SchedClass::Idle | SchedClass::Background => sched,
    };
    let models = format!("SOTTO_MODELS={}", o.models_dir.to_string_lossy());
    // A system service runs as a user of its own that systemd creates for it (which owns the
    // state directory, models included, and nothing else), with no capabilities at all.
    let user = if o.system { "DynamicUser=yes\nCapabilityBoundingSet=\nAmbientCapabilities=\n" } else { "" };
    // With its own cgroup cpu.max, sotto writes the delegated cgroup tree: it must stay
    // writable; otherwise the whole tree is read-only.
    let cgroups = if config.budget.cgroup == CgroupMode::Off { "ProtectControlGroups=yes\n" } else { "Delegate=yes\n" };
    format!(
        "# sotto.service: generated by `sotto service install`; running it again replaces this file.\n\
         # Budgets: {summary}.\n\
         # The governor keeps to them; CPUQuota (the peak) and MemoryMax hold even if it does not.\n\
         \n\
         [Unit]\n\
         Description=sotto: local LLM analysis of endpoint-security events\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         Environment={models}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         TimeoutStopSec={stop}\n\
         {sched}\
         IOSchedulingClass=idle\n\
         CPUQuota={quota}%\n\
         MemoryMax={memory}\n\
         MemoryHigh={high}\n\
         StateDirectory=sotto\n\
         StateDirectoryMode=0700\n\
         {user}\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         {cgroups}\
         RestrictNamespaces=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service {landlock}\n\
         SystemCallErrorNumber=EPERM\n\
         \n\
         [Install]\n\
         WantedBy={wanted}\n",
        summary = budget_summary(config, o.cpus),
        exec = exec.join(" "),
        models = systemd_word(&models, false),
        quota = cpu_quota(config.budget.cpu_peak, o.cpus),
        high = memory - memory / 10,
        wanted = if o.system { "multi-user.target" } else { "default.target" },
        // Named one by one: systemd 252 (Debian 12) has no `@sandbox` group, and
        // `@system-service` lacks them there, so the daemon could not sandbox itself.
        landlock = "landlock_create_ruleset landlock_add_rule landlock_restrict_self",
    )
}

/// A launchd job as `launchd.plist(5)` names its keys. Serialised by the `plist` crate, which
/// writes the XML, its escaping and its value types; the order of the fields is the order of
/// the keys in the file.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct LaunchdJob {
    label: &'static str,
    program_arguments: Vec<String>,
    run_at_load: bool,
    keep_alive: KeepAlive,
    process_type: &'static str,
    #[serde(rename = "LowPriorityIO")]
    low_priority_io: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nice: Option<i32>,
    /// Set for a system daemon only: a user's agent runs as that user.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_name: Option<&'static str>,
    /// Sorted by name (a `BTreeMap`), so the file does not change from one run to the next.
    environment_variables: std::collections::BTreeMap<&'static str, String>,
    standard_out_path: String,
    standard_error_path: String,
}

/// launchd restarts the daemon only when it did not exit successfully.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeepAlive {
    successful_exit: bool,
}

/// The launchd plist. launchd has no CPU or memory limits to set: the governor is the only
/// enforcement there; `ProcessType` Background and `LowPriorityIO` keep it out of the way.
pub fn render_launchd(config: &Config, o: &UnitOptions) -> String {
    let (process_type, nice) = match config.budget.sched {
        SchedClass::Idle | SchedClass::Background => ("Background", Some(19)),
        SchedClass::Nice(n) => ("Background", Some(n)),
        SchedClass::Normal => ("Standard", None),
    };
    let mut env = std::collections::BTreeMap::from([("SOTTO_MODELS", o.models_dir.to_string_lossy().into_owned())]);
    if let Some(state) = &o.state_dir {
        env.insert("STATE_DIRECTORY", state.to_string_lossy().into_owned());
    }
    let log = |name: &str| o.logs_dir.join(name).to_string_lossy().into_owned();
    let job = LaunchdJob {
        label: LAUNCHD_LABEL,
        program_arguments: std::iter::once(o.exe.to_string_lossy().into_owned())
            .chain(o.args.iter().cloned())
            .collect(),
        run_at_load: true,
        keep_alive: KeepAlive { successful_exit: false },
        process_type,
        low_priority_io: true,
        nice,
        // A system daemon does not run as root: as `nobody`, which owns only its state directory.
        user_name: o.system.then_some(LAUNCHD_USER),
        group_name: o.system.then_some(LAUNCHD_GROUP),
        environment_variables: env,
        standard_out_path: log("sotto.out.log"),
        standard_error_path: log("sotto.err.log"),
    };
    // Without the root element, so that the two comments can stand above `<plist>`.
    let options = plist::XmlWriteOptions::default().indent(b' ', 2).root_element(false);
    let mut dict = Vec::new();
    plist::to_writer_xml_with_options(&mut dict, &job, &options).expect("a plist of strings, booleans and integers");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Generated by `sotto service install`; running it again replaces this file. -->\n\
         <!-- Budgets: {summary}; kept by the governor. -->\n\
         <plist version=\"1.0\">\n{dict}\n</plist>\n",
        // `--` may not appear inside an XML comment.
        summary = budget_summary(config, o.cpus).replace("--", "- -"),
        dict = String::from_utf8(dict).expect("the plist crate writes UTF-8"),
    )
}

fn home() -> PathBuf {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// What to write, where, and what the user does next.
struct Rendered {
    path: PathBuf,
    content: String,
    /// Made before writing (launchd does not create the log directory).
    logs_dir: Option<PathBuf>,
    next: Vec<String>,
}

fn render(args: &ServiceArgs, models_dir: &Path) -> anyhow::Result<Rendered> {
    let config = args.config.load()?;
    let exe = std::env::current_exe().context("locating the sotto executable")?;
    text(&exe)?;
    let user_models = std::path::absolute(models_dir).with_context(|| format!("locating {}", models_dir.display()))?;
    let launchd = args.launchd || cfg!(target_os = "macos");
    let mut o = UnitOptions {
        exe,
        args: serve_args(&config)?,
        system: args.system,
        models_dir: user_models,
        cpus: sotto_governor::available_cpus(),
        logs_dir: home().join("Library/Logs/sotto"),
        state_dir: None,
    };
    let fetch_note = |dir: &Path| {
        format!(
            "models are read from {0}; fetch them there first: SOTTO_MODELS={1} sotto models fetch",
            dir.display(),
            systemd_word(&dir.to_string_lossy(), false)
        )
    };
    if launchd {
        let file = format!("{LAUNCHD_LABEL}.plist");
        let (path, next) = if args.system {
            let support = PathBuf::from("/Library/Application Support/sotto");
            o.models_dir = support.join("models");
            o.state_dir = Some(support.clone());
            o.logs_dir = PathBuf::from("/Library/Logs/sotto");
            let path = Path::new("/Library/LaunchDaemons").join(file);
            let next = vec![
                fetch_note(&o.models_dir),
                format!(
                    "the daemon runs as {LAUNCHD_USER}: sudo mkdir -p {logs} && sudo chown -R {LAUNCHD_USER}:{LAUNCHD_GROUP} {state} {logs}",
                    state = systemd_word(&support.to_string_lossy(), false),
                    logs = systemd_word(&o.logs_dir.to_string_lossy(), false),
                ),
                format!("sudo launchctl bootstrap system {}", path.display()),
            ];
            (path, next)
        } else {
            let path = home().join("Library/LaunchAgents").join(file);
            (path.clone(), vec![format!("launchctl bootstrap gui/$(id -u) {}", path.display())])
        };
        let content = render_launchd(&config, &o);
        return Ok(Rendered { path, content, logs_dir: Some(o.logs_dir), next });
    }
    let (path, next) = if args.system {
        o.models_dir = PathBuf::from("/var/lib/sotto/models");
        let next = vec![
            "systemctl daemon-reload && systemctl enable --now sotto   (as root)".to_string(),
            fetch_note(&o.models_dir),
        ];
        (PathBuf::from("/etc/systemd/system/sotto.service"), next)
    } else {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .unwrap_or_else(|| home().join(".config"));
        let next = vec![
            "systemctl --user daemon-reload && systemctl --user enable --now sotto".to_string(),
            "to keep it running while you are logged out: loginctl enable-linger \"$USER\"".to_string(),
        ];
        (base.join("systemd/user/sotto.service"), next)
    };
    Ok(Rendered { content: render_systemd(&config, &o), path, logs_dir: None, next })
}

fn install(args: &InstallArgs, models_dir: &Path) -> anyhow::Result<()> {
    let r = render(&args.service, models_dir)?;
    let path = r.path.display();
    if args.dry_run {
        print!("# would write {path}\n{}", r.content);
        println!("# then:\n#   {}", r.next.join("\n#   "));
        return Ok(());
    }
    let root_hint = || if args.service.system { " (a system service needs root: try sudo)" } else { "" };
    match std::fs::read_to_string(&r.path) {
        Ok(existing) if existing == r.content => println!("{path} is already up to date"),
        Ok(_) if !args.force => anyhow::bail!("{path} exists and differs; --force replaces it"),
        _ => {
            if let Some(dir) = r.path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}{}", dir.display(), root_hint()))?;
            }
            std::fs::write(&r.path, &r.content).with_context(|| format!("writing {path}{}", root_hint()))?;
            println!("wrote {path}");
        }
    }
    if let Some(logs) = &r.logs_dir {
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}{}", logs.display(), root_hint()))?;
    }
    println!("next:\n  {}", r.next.join("\n  "));
    Ok(())
}

pub fn run(models_dir: &Path, cmd: ServiceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCommand::Print(args) => print!("{}", render(&args, models_dir)?.content),
        ServiceCommand::Install(args) => install(&args, models_dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
