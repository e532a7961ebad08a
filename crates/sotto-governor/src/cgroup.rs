//! An outer guarantee for the peak budget: where the process runs in a delegated cgroup v2
//! (systemd `Delegate=yes`, a container runtime that hands over its subtree), sotto can put
//! itself in a child cgroup whose `cpu.max` the kernel enforces even if the governor were
//! wrong. The governor stays the mechanism that shapes the load; this only caps it.
//!
//! Must not: touch anything outside the process's own cgroup subtree, or run unless the
//! configuration asks for it (`budget.cgroup`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::machine::cgroup_v2_path;

/// The child cgroup sotto moves into.
pub const CHILD: &str = "sotto";

/// Period written to `cpu.max`: the 100 ms window every CPU figure is measured over.
pub const PERIOD_US: u64 = 100_000;

/// Why the cap could not be set, or `budget.cgroup` could not be read. Every message says
/// which file refused and what would make it work.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `budget.cgroup` is none of off, auto, require.
    #[error("`{0}` is not a cgroup mode (off, auto or require)")]
    UnknownMode(String),
    /// `/proc/self/cgroup` has no cgroup v2 (`0::`) line.
    #[error("this process is not in a cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)")]
    NotV2,
    /// The process is in the root cgroup, which is never delegated.
    #[error("this process is in the root cgroup; run it in a delegated one (systemd Delegate=yes)")]
    Root,
    /// The parent cgroup does not offer the cpu controller to its children.
    #[error(
        "the cpu controller is not available in {} (cgroup.controllers: `{}`); delegate it (systemd Delegate=yes)",
        .parent.display(),
        .controllers.trim()
    )]
    NoCpuController { parent: PathBuf, controllers: String },
    /// A cgroup file or directory could not be read, written or made (`what`: "read",
    /// "create", "write `VALUE` to"). The I/O error is part of the message, not a `source`,
    /// so that it is printed once.
    #[error("cannot {what} {}: {error}{}", .path.display(), hint(.error))]
    Io { what: String, path: PathBuf, error: io::Error },
}

/// What an I/O error on a cgroup file usually means.
fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => " (the cgroup is not delegated to this user; systemd: Delegate=yes)",
        io::ErrorKind::NotFound => " (no cgroup v2 there)",
        _ => "",
    }
}

/// What to do about `cpu.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// Leave cgroups alone (default: the governor holds the budgets by itself).
    #[default]
    Off,
    /// Try; if the cgroup is not delegated, log why and go on without it.
    Auto,
    /// Try; if it cannot be done, refuse to start.
    Require,
}

impl FromStr for CgroupMode {
    type Err = CgroupError;

    fn from_str(s: &str) -> Result<Self, CgroupError> {
        match s.trim() {
            "off" => Ok(CgroupMode::Off),
            "auto" => Ok(CgroupMode::Auto),
            "require" => Ok(CgroupMode::Require),
            other => Err(CgroupError::UnknownMode(other.to_string())),
        }
    }
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupMode::Off => "off",
            CgroupMode::Auto => "auto",
            CgroupMode::Require => "require",
        })
    }
}

/// The `cpu.max` line for a quota of `cpus` CPUs.
pub fn cpu_max_line(cpus: f64) -> String {
    let quota = ((cpus * PERIOD_US as f64).round() as u64).max(1000);
    format!("{quota} {PERIOD_US}")
}

/// Where the limit was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The child cgroup's directory.
    pub dir: PathBuf,
    /// What its `cpu.max` now holds.
    pub cpu_max: String,
}

/// Move process `pid` into `<own cgroup>/sotto` under the cgroup2 mount `root` and cap it at
/// `cpus` CPUs. `proc_self_cgroup` is the content of `/proc/self/cgroup`. Every failure says
/// which file refused and what would make it work.
pub fn apply_cpu_max(root: &Path, proc_self_cgroup: &str, pid: u32, cpus: f64) -> Result<Applied, CgroupError> {
    let rel = cgroup_v2_path(proc_self_cgroup).ok_or(CgroupError::NotV2)?;
    let own = root.join(rel.trim().trim_start_matches('/'));
    let rel = rel.trim();
    // Already moved (a restart inside the same cgroup, or a second call): just set the limit.
    let child = if own.file_name().is_some_and(|n| n == CHILD) { own.clone() } else { own.join(CHILD) };
    let parent = child.parent().expect("the child has a parent").to_path_buf();
    if rel == "/" || rel.is_empty() {
        return Err(CgroupError::Root);
    }
    let controllers = read(&parent.join("cgroup.controllers"))?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return Err(CgroupError::NoCpuController { parent, controllers });
    }
    if !child.is_dir() {
        std::fs::create_dir(&child).map_err(|e| fail("create", &child, e))?;
    }
    // A cgroup with processes in it cannot hand controllers to its children, so move first.
    write(&child.join("cgroup.procs"), &pid.to_string())?;
    let enabled = read(&parent.join("cgroup.subtree_control")).unwrap_or_default();
    if !enabled.split_whitespace().any(|c| c == "cpu") {
        write(&parent.join("cgroup.subtree_control"), "+cpu")?;
    }
    let line = cpu_max_line(cpus);
    write(&child.join("cpu.max"), &line)?;
    Ok(Applied { dir: child, cpu_max: line })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| fail("read", path, e))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| fail(&format!("write `{value}` to"), path, e))
}

fn fail(what: &str, path: &Path, error: io::Error) -> CgroupError {
    CgroupError::Io { what: what.to_string(), path: path.to_path_buf(), error }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree shaped like a delegated cgroup2 mount.
    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("system.slice/sotto.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        root
    }

    #[test]
    fn the_line_is_quota_and_period() {
        assert_eq!(cpu_max_line(1.0), "100000 100000");
        assert_eq!(cpu_max_line(0.7), "70000 100000");
        assert_eq!(cpu_max_line(0.001), "1000 100000", "the kernel's minimum quota");
    }

    #[test]
    fn moves_into_a_child_and_caps_it() {
        let root = fake_root("cpuset cpu io memory pids\n");
        let got = apply_cpu_max(root.path(), "0::/system.slice/sotto.service\n", 4242, 1.0).unwrap();
        let child = root.path().join("system.slice/sotto.service/sotto");
        assert_eq!(got, Applied { dir: child.clone(), cpu_max: "100000 100000".into() });
        assert_eq!(std::fs::read_to_string(child.join("cgroup.procs")).unwrap(), "4242");
        assert_eq!(std::fs::read_to_string(child.join("cpu.max")).unwrap(), "100000 100000");
        let parent = root.path().join("system.slice/sotto.service/cgroup.subtree_control");
        assert_eq!(std::fs::read_to_string(parent).unwrap(), "+cpu");
        // Restarted inside the child: the limit is set again, no grandchild is made.
        let again = apply_cpu_max(root.path(), "0::/system.slice/sotto.service/sotto\n", 4243, 0.5).unwrap();
        assert_eq!(again.dir, child);
        assert_eq!(std::fs::read_to_string(child.join("cpu.max")).unwrap(), "50000 100000");
    }

    #[test]
    fn refusals_say_why() {
        let root = fake_root("memory pids\n");
        let err = |own: &str| apply_cpu_max(root.path(), own, 1, 1.0).unwrap_err().to_string();
        let e = err("0::/system.slice/sotto.service\n");
        assert!(e.contains("cpu controller is not available") && e.contains("Delegate=yes"), "{e}");
        let e = err("1:cpu:/\n");
        assert!(e.contains("not in a cgroup v2"), "{e}");
        let e = err("0::/\n");
        assert!(e.contains("root cgroup"), "{e}");
        let e = err("0::/elsewhere.scope\n");
        assert!(
            e.contains("cannot read") && e.contains("elsewhere.scope") && e.contains("(no cgroup v2 there)"),
            "{e}"
        );
        assert_eq!("require".parse::<CgroupMode>().unwrap(), CgroupMode::Require);
        assert!("sometimes".parse::<CgroupMode>().unwrap_err().to_string().contains("off, auto or require"));
    }
}
