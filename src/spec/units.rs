//! Durations (`90s`, `5m`, `1h 30m`) and sizes (`64KiB`, `1MB`, `4096`).

use std::time::Duration;

/// Why a duration or size did not parse; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

/// Parses a humantime duration.
///
/// # Errors
/// A message naming the text and what went wrong.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(UnitError("empty duration".into()));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError(format!("`{t}` has no unit")));
    }
    humantime::parse_duration(t).map_err(|e| UnitError(format!("invalid duration `{t}`: {e}")))
}

/// Formats a duration the way users write them (`1h 30m`, `90s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1000),
    ("kib", 1024),
    ("k", 1024),
    ("mb", 1000 * 1000),
    ("mib", 1024 * 1024),
    ("m", 1024 * 1024),
    ("gb", 1000 * 1000 * 1000),
    ("gib", 1024 * 1024 * 1024),
    ("g", 1024 * 1024 * 1024),
];

/// Parses a byte size: a number with an optional unit (`B`, `KB`, `KiB`,
/// `MB`, `MiB`, `GB`, `GiB`; case-insensitive).
///
/// # Errors
/// A message naming the text and what went wrong.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(UnitError(format!(
            "invalid size `{t}`: expected a number such as `64KiB`"
        )));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| UnitError(format!("size `{t}` is too large")))?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                UnitError(format!(
                    "unknown size unit `{unit}` in `{t}` (use B, KB, KiB, MB, MiB, GB or GiB)"
                ))
            })?
    };
    n.checked_mul(mult)
        .ok_or_else(|| UnitError(format!("size `{t}` is too large")))
}

/// Formats a byte size with the largest binary unit that divides it.
pub fn format_size(n: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n % m == 0 {
            return format!("{}{unit}", n / m);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("90").unwrap_err().0.contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2 mib").unwrap(), 2 << 20);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999GiB").is_err());
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
