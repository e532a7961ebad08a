//! The CPU governor: budgets as fractions of the machine, a thread plan sized from the peak
//! budget, duty-cycle pacing for the mean budget, and the scheduling class of the inference
//! threads. It never links llama.cpp: the engine calls it through `StepHook`-shaped methods.
//!
//! Must not: spin (pacing sleeps), or read clocks anywhere but at the step boundary.

pub mod budget;
pub mod cgroup;
pub mod clock;
pub mod governor;
pub mod machine;
pub mod pacer;
pub mod priority;
pub mod sampler;
pub mod sched;

pub use budget::{BudgetError, Budgets, parse_bytes, parse_percent};
pub use cgroup::{CgroupError, CgroupMode};
pub use clock::process_cpu_time;
pub use governor::{Governor, GovernorStats, Phase};
pub use machine::{Machine, available_cpus};
pub use pacer::{Pacer, ThreadPlan};
pub use priority::Priority;
pub use sampler::percentile;
pub use sched::{SchedClass, SchedError};
