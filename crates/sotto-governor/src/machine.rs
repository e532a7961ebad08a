//! "The machine": the CPUs this process may actually use, from `sched_getaffinity` and a
//! cgroup v2 `cpu.max` already imposed on it. Budgets are fractions of this, not of `nproc`.

use std::path::Path;

/// What the process may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// CPUs in the affinity mask.
    pub affinity_cpus: usize,
    /// CPU quota from cgroup v2 `cpu.max` (quota / period), if one is set.
    pub cgroup_cpus: Option<f64>,
}

impl Machine {
    /// Read the current process's limits.
    pub fn detect() -> Self {
        Machine { affinity_cpus: affinity_cpus(), cgroup_cpus: cgroup_quota() }
    }

    /// The machine's size in CPUs: the smaller of the two limits.
    pub fn cpus(&self) -> f64 {
        let a = self.affinity_cpus.max(1) as f64;
        self.cgroup_cpus.map_or(a, |c| c.min(a))
    }
}

/// Shorthand for `Machine::detect().cpus()`.
pub fn available_cpus() -> f64 {
    Machine::detect().cpus()
}

#[cfg(target_os = "linux")]
fn affinity_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the size passed is its real size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let n = libc::CPU_COUNT(&set);
            if n > 0 {
                return n as usize;
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(not(target_os = "linux"))]
fn affinity_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cgroup_quota() -> Option<f64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup_v2_path(&cgroup)?;
    // The tightest quota on the way up to the root applies.
    let mut dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let mut best: Option<f64> = None;
    loop {
        if let Some(q) = std::fs::read_to_string(dir.join("cpu.max")).ok().and_then(|s| parse_cpu_max(&s)) {
            best = Some(best.map_or(q, |b: f64| b.min(q)));
        }
        if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
            break;
        }
    }
    best
}

/// The unified-hierarchy path from `/proc/self/cgroup` (the `0::` line).
pub fn cgroup_v2_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// `cpu.max` content → CPUs (`50000 100000` → 0.5); `max ...` → no limit.
pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next().and_then(|p| p.parse().ok()).unwrap_or(100_000.0);
    if quota == "max" || period <= 0.0 {
        return None;
    }
    quota.parse::<f64>().ok().map(|q| q / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parses() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn the_smaller_limit_wins() {
        assert_eq!(Machine { affinity_cpus: 4, cgroup_cpus: Some(1.5) }.cpus(), 1.5);
        assert_eq!(Machine { affinity_cpus: 2, cgroup_cpus: Some(8.0) }.cpus(), 2.0);
        assert_eq!(Machine { affinity_cpus: 2, cgroup_cpus: None }.cpus(), 2.0);
        assert!(Machine::detect().cpus() >= 0.01);
    }

    #[test]
    fn v2_path() {
        assert_eq!(cgroup_v2_path("0::/user.slice/x.scope\n"), Some("/user.slice/x.scope"));
        assert_eq!(cgroup_v2_path("12:cpu:/a\n"), None);
    }
}
