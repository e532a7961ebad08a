//! How urgent a request is: the one priority the engine's queue orders by and the governor
//! budgets by. It lives here, in the lowest crate, so that neither needs a mapping to the
//! other's type.
//!
//! Must not: know about queues or budgets; it is a plain value.

/// How urgent a request is. Critical requests are served before normal ones, normal before
/// background; within a priority, first come first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Background work (batch re-analysis): served when nothing else waits.
    Background,
    #[default]
    Normal,
    /// A live alert someone is waiting on.
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Critical, Priority::Normal, Priority::Background];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "high" => Ok(Priority::Critical),
            "normal" | "default" => Ok(Priority::Normal),
            "background" | "low" => Ok(Priority::Background),
            other => Err(format!("unknown priority `{other}`: expected critical, normal or background")),
        }
    }
}
