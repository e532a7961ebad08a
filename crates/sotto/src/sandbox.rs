//! The daemon's own filesystem sandbox on Linux, with Landlock: once `sotto serve` has read
//! its configuration, the process may read only the model, the directories the governor and
//! llama.cpp read (`/proc`, `/sys`), and write only its state directory (the prefix cache).
//! Everything else (home directories, keys, other services' files) is refused by the kernel,
//! whatever a bug in a parser or in llama.cpp would try.
//!
//! Landlock restricts the calling thread and the threads it starts afterwards, so this runs
//! before the async runtime and the engine thread exist.
//!
//! Must not: fail a start where the kernel lacks Landlock in `auto` mode (it says so and goes
//! on), or start unsandboxed in `require` mode.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `server.sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No sandbox.
    Off,
    /// The sandbox where the kernel has Landlock; a warning where it does not.
    #[default]
    Auto,
    /// Refuse to start without a fully enforced sandbox.
    Require,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "auto" => Ok(Mode::Auto),
            "require" => Ok(Mode::Require),
            other => Err(format!("`{other}` is not a sandbox mode: expected off, auto or require")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::Auto => "auto",
            Mode::Require => "require",
        })
    }
}

/// What the sandboxed process may touch. Paths that do not exist are left out (nothing can be
/// read from them anyway).
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// Read (and map, and execute) files beneath these.
    pub read: Vec<PathBuf>,
    /// Read, create, write and remove files beneath these.
    pub write: Vec<PathBuf>,
}

/// How far the kernel enforced the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    /// An older Landlock ABI: some kinds of access stay unrestricted.
    Partly,
    /// No Landlock in this kernel (or not enabled).
    Not,
}

/// Restrict the calling thread, and every thread it starts from now on, to `allowed`.
#[cfg(target_os = "linux")]
pub fn restrict(allowed: &Allowed) -> Result<Enforced, String> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
    };
    let abi = ABI::V5;
    let existing = |paths: &[PathBuf]| paths.iter().filter(|p| p.exists()).cloned().collect::<Vec<_>>();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(existing(&allowed.read), AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(existing(&allowed.write), AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partly,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

/// Other systems have no Landlock.
#[cfg(not(target_os = "linux"))]
pub fn restrict(_: &Allowed) -> Result<Enforced, String> {
    Ok(Enforced::Not)
}

/// Apply `mode` to `allowed` for the daemon: log what holds, refuse to start where `require`
/// cannot be met.
pub fn apply(mode: Mode, allowed: &Allowed) -> anyhow::Result<()> {
    if mode == Mode::Off {
        tracing::info!("server.sandbox = off: no filesystem sandbox");
        return Ok(());
    }
    let outcome = restrict(allowed);
    match (outcome, mode) {
        (Ok(Enforced::Fully), _) => {
            tracing::info!(read = ?allowed.read, write = ?allowed.write, "filesystem sandbox (Landlock) enforced");
            Ok(())
        }
        (Ok(Enforced::Partly), Mode::Auto) => {
            tracing::warn!("this kernel's Landlock is older: the filesystem sandbox is only partly enforced");
            Ok(())
        }
        (Ok(Enforced::Not), Mode::Auto) => {
            tracing::warn!("this kernel has no Landlock (or it is not enabled): no filesystem sandbox");
            Ok(())
        }
        (Err(e), Mode::Auto) => {
            tracing::warn!(error = %e, "no filesystem sandbox");
            Ok(())
        }
        (Ok(how), _) => anyhow::bail!("server.sandbox = require, but Landlock is enforced {how:?}, not fully"),
        (Err(e), _) => anyhow::bail!("server.sandbox = require: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Off, Mode::Auto, Mode::Require] {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        assert!("yes".parse::<Mode>().unwrap_err().contains("off, auto or require"));
    }

    /// Landlock restricts the calling thread only, so the test restricts a thread of its own.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_path_outside_the_sandbox_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (models, state, outside) =
            (root.path().join("models"), root.path().join("state"), root.path().join("home"));
        for d in [&models, &state, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(models.join("m.gguf"), b"weights").unwrap();
        std::fs::write(outside.join("secret"), b"key").unwrap();
        let allowed = Allowed { read: vec![models.clone()], write: vec![state.clone()] };
        let (models2, state2, outside2) = (models.clone(), state.clone(), outside.clone());
        let seen = std::thread::spawn(move || {
            let enforced = restrict(&allowed).unwrap();
            let read_model = std::fs::read(models2.join("m.gguf")).is_ok();
            let write_state = std::fs::write(state2.join("prefix"), b"kv").is_ok();
            let read_secret = std::fs::read(outside2.join("secret")).map_err(|e| e.kind());
            let write_models = std::fs::write(models2.join("evil"), b"x").map_err(|e| e.kind());
            (enforced, read_model, write_state, read_secret, write_models)
        })
        .join()
        .unwrap();
        let (enforced, read_model, write_state, read_secret, write_models) = seen.clone();
        assert!(read_model && write_state, "what is allowed still works: {seen:?}");
        let landlock = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map_or(enforced != Enforced::Not, |l| l.contains("landlock"));
        if landlock {
            assert_eq!(read_secret, Err(std::io::ErrorKind::PermissionDenied), "{seen:?}");
            assert_eq!(write_models, Err(std::io::ErrorKind::PermissionDenied), "{seen:?}");
        } else {
            assert_eq!(enforced, Enforced::Not, "no Landlock here, and the sandbox says so");
            assert!(read_secret.is_ok(), "{seen:?}");
        }
        // This thread was never restricted.
        assert!(std::fs::read(outside.join("secret")).is_ok());
    }
}
