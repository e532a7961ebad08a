//! The scheduling class of the inference threads. Applied on the engine thread itself; the
//! worker threads ggml starts for each graph inherit it (Linux threads inherit policy and nice
//! value from the thread that creates them). Threads serving HTTP and control are untouched.

use std::fmt;
use std::io;

/// Why a scheduling class could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// The text is none of idle, background, normal, nice 0-19.
    #[error("`{0}` is not a scheduling class (idle, background, normal, nice 0-19)")]
    Unknown(String),
    /// Linux refused the nice value (above `RLIMIT_NICE` / systemd `LimitNICE`).
    #[error("setpriority: {0}")]
    SetPriority(io::Error),
    /// Linux refused the policy (leaving `SCHED_IDLE` needs the nice value to allow it).
    #[error("sched_setscheduler: {0}")]
    SetScheduler(io::Error),
    /// macOS refused the QoS class (the error number it returned).
    #[error("pthread_set_qos_class_self_np: error {0}")]
    Qos(i32),
    /// Neither Linux nor macOS: sotto sets no scheduling class here.
    #[error("scheduling classes are not supported on this platform")]
    Unsupported,
}

/// How the kernel should treat inference threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedClass {
    /// Linux `SCHED_IDLE`: runs only when nothing else wants the CPU. macOS: QoS utility.
    #[default]
    Idle,
    /// Linux `nice N` (0..=19) under the normal policy.
    Nice(i32),
    /// Unchanged: normal policy, nice 0.
    Normal,
    /// macOS QoS background (on Linux, the same as `Idle`).
    Background,
}

impl std::str::FromStr for SchedClass {
    type Err = SchedError;

    fn from_str(s: &str) -> Result<Self, SchedError> {
        let t = s.trim();
        match t {
            "idle" => Ok(SchedClass::Idle),
            "normal" => Ok(SchedClass::Normal),
            "background" => Ok(SchedClass::Background),
            _ => {
                let n = t.strip_prefix("nice").map(str::trim).unwrap_or(t);
                match n.parse::<i32>() {
                    Ok(v) if (0..=19).contains(&v) => Ok(SchedClass::Nice(v)),
                    _ => Err(SchedError::Unknown(s.to_string())),
                }
            }
        }
    }
}

impl fmt::Display for SchedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedClass::Idle => f.write_str("idle"),
            SchedClass::Nice(n) => write!(f, "nice {n}"),
            SchedClass::Normal => f.write_str("normal"),
            SchedClass::Background => f.write_str("background"),
        }
    }
}

impl SchedClass {
    /// The default class of critical requests (`budget.sched_critical`): low enough to leave a
    /// busy foreground its share, high enough that a live alert still progresses beside it,
    /// which the idle class does not (issue 11; `bench governor --foreground-only`).
    pub const CRITICAL: SchedClass = SchedClass::Nice(5);

    /// Apply to the calling thread. Errors are returned for logging; inference still runs.
    pub fn apply_to_current_thread(self) -> Result<(), SchedError> {
        imp::apply(self)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{SchedClass, SchedError};

    pub fn apply(class: SchedClass) -> Result<(), SchedError> {
        // SAFETY: plain syscalls on the calling thread (tid 0 / gettid) with valid arguments.
        unsafe {
            let tid = libc::gettid();
            let (policy, nice) = match class {
                // SCHED_IDLE ignores the nice value: it is left as it is.
                SchedClass::Idle | SchedClass::Background => (libc::SCHED_IDLE, None),
                SchedClass::Nice(n) => (libc::SCHED_OTHER, Some(n)),
                SchedClass::Normal => (libc::SCHED_OTHER, Some(0)),
            };
            // The nice value first: leaving SCHED_IDLE is checked against the thread's nice
            // value and RLIMIT_NICE, so an unprivileged thread (systemd's LimitNICE=+5) can
            // move from idle to nice 5, not to nice 0.
            if let Some(nice) = nice
                && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
            {
                return Err(SchedError::SetPriority(std::io::Error::last_os_error()));
            }
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, policy, &param) != 0 {
                return Err(SchedError::SetScheduler(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// The calling thread's policy, for tests.
    #[cfg(test)]
    pub fn current_policy() -> i32 {
        // SAFETY: querying the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::{SchedClass, SchedError};

    pub fn apply(class: SchedClass) -> Result<(), SchedError> {
        let qos = match class {
            SchedClass::Idle | SchedClass::Nice(_) => libc::qos_class_t::QOS_CLASS_UTILITY,
            SchedClass::Background => libc::qos_class_t::QOS_CLASS_BACKGROUND,
            SchedClass::Normal => return Ok(()),
        };
        // SAFETY: sets the QoS class of the calling thread.
        let rc = unsafe { libc::pthread_set_qos_class_self_np(qos, 0) };
        if rc != 0 { Err(SchedError::Qos(rc)) } else { Ok(()) }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::{SchedClass, SchedError};

    pub fn apply(_: SchedClass) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("idle".parse::<SchedClass>().unwrap(), SchedClass::Idle);
        assert_eq!("nice 19".parse::<SchedClass>().unwrap(), SchedClass::Nice(19));
        assert_eq!("nice19".parse::<SchedClass>().unwrap(), SchedClass::Nice(19));
        assert_eq!("normal".parse::<SchedClass>().unwrap(), SchedClass::Normal);
        assert!("nice 40".parse::<SchedClass>().is_err());
        let e = "fast".parse::<SchedClass>().unwrap_err().to_string();
        assert_eq!(e, "`fast` is not a scheduling class (idle, background, normal, nice 0-19)");
        assert_eq!(SchedClass::Nice(5).to_string(), "nice 5");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_applies_to_this_thread_and_its_children_only() {
        std::thread::spawn(|| {
            SchedClass::Idle.apply_to_current_thread().unwrap();
            assert_eq!(imp::current_policy(), libc::SCHED_IDLE);
            let child = std::thread::spawn(imp::current_policy).join().unwrap();
            assert_eq!(child, libc::SCHED_IDLE, "threads started from here inherit SCHED_IDLE");
        })
        .join()
        .unwrap();
        assert_eq!(imp::current_policy(), libc::SCHED_OTHER, "other threads keep normal priority");
    }
}
