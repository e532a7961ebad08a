//! Reading and printing configuration values: durations, sizes, percentages, integers,
//! booleans and tokens.
//!
//! Must not: know which key a value belongs to (the caller names it in its error).

use std::fmt;
use std::time::Duration;

use sotto_governor::{parse_bytes, parse_percent};

/// `500ms`, `10s`, `15m`, `2h`; a bare number is seconds. Kept to whole milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 10s, 15m, 2h)");
    let v: f64 = num.parse().map_err(|_| bad())?;
    let ms_per_unit = match unit.trim() {
        "" | "s" | "sec" => 1e3,
        "ms" => 1.0,
        "m" | "min" => 60e3,
        "h" => 3600e3,
        _ => return Err(bad()),
    };
    let ms = (v * ms_per_unit).round();
    if !(ms.is_finite() && ms < 1e15) {
        return Err(format!("{s:?} is too long a duration"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The shortest text `parse_duration` reads back as `d` (whole milliseconds).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

pub(super) fn format_bytes(b: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if b > 0 && b.is_multiple_of(size) {
            return format!("{}{unit}", b / size);
        }
    }
    b.to_string()
}

/// The shortest `N%` that `parse_percent` reads back as exactly `f`; else `f` as a fraction,
/// which it reads back exactly too.
pub(super) fn format_percent(f: f64) -> String {
    (0..=4)
        .map(|digits| format!("{:.digits$}%", f * 100.0))
        .find(|s| parse_percent(s) == Ok(f))
        .unwrap_or_else(|| f.to_string())
}

/// `v.parse()` for a type whose error is an enum (the governor's), not text: its message.
pub(super) fn parse_display<T>(v: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    v.parse().map_err(|e: T::Err| e.to_string())
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (true or false)")),
    }
}

pub(super) fn parse_int<T: std::str::FromStr + PartialOrd + fmt::Display>(
    v: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
    }
}

pub(super) fn percent(v: &str) -> Result<f64, String> {
    parse_percent(v).map_err(|_| format!("{v:?} is not a percentage in (0, 100] (e.g. 35%)"))
}

pub(super) fn bytes(v: &str, min: u64) -> Result<u64, String> {
    match parse_bytes(v) {
        Ok(b) if b >= min => Ok(b),
        Ok(_) => Err(format!("{v:?} is less than the minimum, {}", format_bytes(min))),
        Err(_) => Err(format!("{v:?} is not a size (e.g. 512KiB, 64MiB, 6GiB)")),
    }
}

/// `None` when `v` is one of the words that mean "unset" for this key.
pub(super) fn unless<T>(
    v: &str,
    unset: &[&str],
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if unset.contains(&v) { Ok(None) } else { parse(v).map(Some) }
}

pub(super) fn nonempty(v: &str) -> Result<String, String> {
    if v.is_empty() { Err("must not be empty".into()) } else { Ok(v.to_string()) }
}

pub(super) fn check_token(t: &str) -> Result<String, String> {
    if t.chars().count() < 16 {
        return Err("the token must be at least 16 characters".into());
    }
    if !t.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without spaces (it travels in an HTTP header)".into());
    }
    Ok(t.to_string())
}

/// The name serde gives a unit enum variant (`Detail::Full` → `full`), as its `FromStr` reads it.
pub(super) fn serde_name(v: impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
