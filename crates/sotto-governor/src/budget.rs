//! Budgets: CPU as a fraction of the whole machine, memory in bytes, and their parsers.

use crate::Priority;

/// Why a budget, or the text of one, is refused. The messages are what the user reads after
/// the key's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// A priority's mean budget (`which`: critical or background) is 0 or above the peak.
    #[error(
        "the {which} mean budget {:.0}% must be above 0% and at most the peak budget {:.0}%",
        .mean * 100.0,
        .peak * 100.0
    )]
    PriorityMean { which: &'static str, mean: f64, peak: f64 },
    /// The mean budget is not in (0, 1].
    #[error("cpu mean budget {:.0}% must be in (0, 100]", .0 * 100.0)]
    Mean(f64),
    /// The peak budget is not in (0, 1].
    #[error("cpu peak budget {:.0}% must be in (0, 100]", .0 * 100.0)]
    Peak(f64),
    /// The mean budget is above the peak budget.
    #[error("the cpu mean budget cannot exceed the peak budget")]
    MeanAbovePeak,
    /// The text is not a number, with or without `%`.
    #[error("`{0}` is not a percentage (e.g. 35%)")]
    NotAPercentage(String),
    /// The percentage is 0 or above 100%.
    #[error("`{0}` must be between 0% and 100%")]
    PercentageOutOfRange(String),
    /// The text does not start with a number.
    #[error("`{0}` is not a size (e.g. 6GiB)")]
    NotASize(String),
    /// The number is followed by something other than a known unit.
    #[error("`{0}` is not a size unit (use MiB, GiB, MB, GB)")]
    UnknownUnit(String),
}

/// The promises, as numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    /// Mean CPU over time, fraction of the machine (0.35 = 35%).
    pub cpu_mean: f64,
    /// CPU in any 100 ms window, fraction of the machine.
    pub cpu_peak: f64,
    /// Peak memory in bytes, model included.
    pub mem: u64,
    /// Mean budget for critical requests (a live alert someone waits on); `None`: `cpu_mean`.
    pub critical_mean: Option<f64>,
    /// Mean budget for background requests (batch re-analysis); `None`: `cpu_mean`.
    pub background_mean: Option<f64>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets { cpu_mean: 0.35, cpu_peak: 0.50, mem: 6 << 30, critical_mean: None, background_mean: None }
    }
}

impl Budgets {
    /// The mean budget that applies to a request of `priority`.
    pub fn mean_for(&self, priority: Priority) -> f64 {
        match priority {
            Priority::Critical => self.critical_mean.unwrap_or(self.cpu_mean),
            Priority::Normal => self.cpu_mean,
            Priority::Background => self.background_mean.unwrap_or(self.cpu_mean),
        }
    }

    /// Check the budgets make sense together.
    pub fn validate(&self) -> Result<(), BudgetError> {
        for (which, mean) in [("critical", self.critical_mean), ("background", self.background_mean)] {
            if let Some(m) = mean
                && !(m > 0.0 && m <= self.cpu_peak)
            {
                return Err(BudgetError::PriorityMean { which, mean: m, peak: self.cpu_peak });
            }
        }
        if !(self.cpu_mean > 0.0 && self.cpu_mean <= 1.0) {
            return Err(BudgetError::Mean(self.cpu_mean));
        }
        if !(self.cpu_peak > 0.0 && self.cpu_peak <= 1.0) {
            return Err(BudgetError::Peak(self.cpu_peak));
        }
        if self.cpu_mean > self.cpu_peak {
            return Err(BudgetError::MeanAbovePeak);
        }
        Ok(())
    }
}

/// `35%`, `35` or `0.35` → 0.35.
pub fn parse_percent(s: &str) -> Result<f64, BudgetError> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num.parse().map_err(|_| BudgetError::NotAPercentage(s.to_string()))?;
    let f = if pct || v > 1.0 { v / 100.0 } else { v };
    if !(f > 0.0 && f <= 1.0) {
        return Err(BudgetError::PercentageOutOfRange(s.to_string()));
    }
    Ok(f)
}

/// `6GiB`, `512MiB`, `6GB`, `1000000` → bytes.
pub fn parse_bytes(s: &str) -> Result<u64, BudgetError> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| BudgetError::NotASize(s.to_string()))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        other => return Err(BudgetError::UnknownUnit(other.to_string())),
    };
    Ok((v * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("35%").unwrap(), 0.35);
        assert_eq!(parse_percent("50").unwrap(), 0.5);
        assert_eq!(parse_percent("0.2").unwrap(), 0.2);
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("150%").is_err());
        assert_eq!(parse_percent("lots").unwrap_err().to_string(), "`lots` is not a percentage (e.g. 35%)");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("6GiB").unwrap(), 6 << 30);
        assert_eq!(parse_bytes("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(
            parse_bytes("6 parsecs").unwrap_err().to_string(),
            "`parsecs` is not a size unit (use MiB, GiB, MB, GB)"
        );
    }

    #[test]
    fn mean_above_peak_is_refused() {
        let b = Budgets { cpu_mean: 0.6, cpu_peak: 0.5, mem: 1, ..Budgets::default() };
        assert!(b.validate().unwrap_err().to_string().contains("exceed"));
        assert!(Budgets::default().validate().is_ok());
        let b = Budgets { background_mean: Some(0.6), ..Budgets::default() };
        assert_eq!(
            b.validate().unwrap_err().to_string(),
            "the background mean budget 60% must be above 0% and at most the peak budget 50%"
        );
    }

    #[test]
    fn each_urgency_gets_its_mean() {
        let b = Budgets { critical_mean: Some(0.5), background_mean: Some(0.1), ..Budgets::default() };
        assert_eq!(b.mean_for(Priority::Critical), 0.5);
        assert_eq!(b.mean_for(Priority::Normal), 0.35);
        assert_eq!(b.mean_for(Priority::Background), 0.1);
        assert_eq!(Budgets::default().mean_for(Priority::Background), 0.35);
    }
}
