//! Cron expressions: parsing into compact bitsets and finding the next
//! matching *naive* (wall-clock) time.
//!
//! This module knows nothing of time zones: [`super::schedule`] maps the
//! naive times found here onto real instants and applies the DST rules. The
//! split keeps the calendar search testable on its own and lets the
//! scheduler store a whole expression in a few dozen bytes (a parsed
//! schedule per job must stay small; see DESIGN.md, "The bounded scheduler").
//!
//! Accepted syntax (Vixie cron plus the usual extensions):
//! - 5 fields (`min hour dom month dow`) or 6 with seconds first;
//! - `*`, `?` (day fields), numbers, names (`JAN`, `mon`), ranges `a-b`,
//!   steps `*/s`, `a/s`, `a-b/s`, lists `a,b,c`;
//! - day of month: `L` (last day), `LW` (last weekday), `15W` (weekday
//!   nearest the 15th, within the month);
//! - day of week: `0`–`7` (0 and 7 are Sunday), `5L` / `FRIL` (last Friday),
//!   `MON#2` (second Monday).
//!
//! Day of month and day of week combine with Vixie cron's rule: if either
//! field starts with `*` (or is `?`) a day must match both; otherwise a day
//! matching either fires.

use std::fmt;
use std::ops::Range;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

/// Longest expression accepted. Bounds parsing work on hostile input; no
/// legitimate expression comes close.
pub const MAX_EXPR_LEN: usize = 1024;

/// How far ahead the calendar search looks. The Gregorian calendar repeats
/// every 400 years, weekdays included, so an expression with no match in
/// 400 years has none at all.
const SEARCH_YEARS: i32 = 400;

/// The six fields, in seconds-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Inclusive bounds of plain numbers in this field.
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an expression was rejected, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// Byte range inside the expression that the message is about.
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl CronError {
    fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        CronError {
            span,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed cron expression: about 40 bytes, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CronExpr {
    seconds: u64,
    minutes: u64,
    /// Bits 0..=23.
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// `nW`: bits 1..=31, the weekday nearest day n.
    dom_nearest_weekday: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    dow: u8,
    /// `nL`: bits 0..=6, the last such weekday of the month.
    dow_last: u8,
    /// `d#k`: for weekday d, bit k (1..=5).
    dow_nth: [u8; 7],
    dom_last: bool,
    dom_last_weekday: bool,
    /// Both day fields restricted: a day matching either fires.
    day_or: bool,
    /// Neither minute nor hour starts with `*`: the job names wall-clock
    /// times, so the DST gap/fold policies apply to it.
    fixed_time: bool,
    /// Written with a seconds field.
    has_seconds: bool,
}

impl CronExpr {
    /// Parses a 5- or 6-field expression (not the `@` macros; see
    /// [`super::schedule::ScheduleExpr`]).
    ///
    /// # Errors
    /// A [`CronError`] whose span points at the offending part.
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        if expr.len() > MAX_EXPR_LEN {
            return Err(CronError::new(
                0..expr.len(),
                format!(
                    "cron expression is {} bytes long; the limit is {MAX_EXPR_LEN}",
                    expr.len()
                ),
            ));
        }
        let parts = split_fields(expr);
        let fields: &[Field] = match parts.len() {
            5 => &[
                Field::Minute,
                Field::Hour,
                Field::DayOfMonth,
                Field::Month,
                Field::DayOfWeek,
            ],
            6 => &[
                Field::Second,
                Field::Minute,
                Field::Hour,
                Field::DayOfMonth,
                Field::Month,
                Field::DayOfWeek,
            ],
            0 => {
                return Err(CronError::new(0..expr.len(), "empty cron expression")
                    .hint("write 5 fields (`min hour dom month dow`), 6 with seconds first, or a macro such as `@daily`"));
            }
            n => {
                let span = 0..expr.len();
                return Err(CronError::new(
                    span,
                    format!("cron expression has {n} fields; expected 5 or 6"),
                )
                .hint("5 fields are `min hour dom month dow`; 6 fields put seconds first"));
            }
        };
        let mut out = CronExpr {
            seconds: 1,
            minutes: 0,
            hours: 0,
            dom: 0,
            dom_nearest_weekday: 0,
            months: 0,
            dow: 0,
            dow_last: 0,
            dow_nth: [0; 7],
            dom_last: false,
            dom_last_weekday: false,
            day_or: false,
            fixed_time: false,
            has_seconds: parts.len() == 6,
        };
        let mut dom_star = false;
        let mut dow_star = false;
        let mut minute_star = false;
        let mut hour_star = false;
        for (&field, &(start, text)) in fields.iter().zip(parts.iter()) {
            let star = text.starts_with('*') || text == "?";
            match field {
                Field::Second => out.seconds = parse_plain(field, text, start)?,
                Field::Minute => {
                    out.minutes = parse_plain(field, text, start)?;
                    minute_star = star;
                }
                Field::Hour => {
                    out.hours = parse_plain(field, text, start)? as u32;
                    hour_star = star;
                }
                Field::Month => out.months = parse_plain(field, text, start)? as u16,
                Field::DayOfMonth => {
                    parse_dom(text, start, &mut out)?;
                    dom_star = star;
                }
                Field::DayOfWeek => {
                    parse_dow(text, start, &mut out)?;
                    dow_star = star;
                }
            }
        }
        out.day_or = !dom_star && !dow_star;
        out.fixed_time = !minute_star && !hour_star;
        Ok(out)
    }

    /// Whether the job names wall-clock times (minute and hour fields do
    /// not start with `*`), so that DST gaps and folds need a policy.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Whether the expression was written with a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// The first naive time at or after `from` (whole seconds) that matches,
    /// or `None` if nothing matches within 400 years (then nothing ever
    /// will).
    pub fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = from.year().saturating_add(SEARCH_YEARS);
        let mut date = from.date();
        let (mut h, mut mi, mut s) = (from.hour(), from.minute(), from.second());
        loop {
            if date.year() > limit {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                date = self.next_month_start(date)?;
                (h, mi, s) = (0, 0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.succ_opt()?;
                (h, mi, s) = (0, 0, 0);
                continue;
            }
            let Some(nh) = next_bit(u64::from(self.hours), h) else {
                date = date.succ_opt()?;
                (h, mi, s) = (0, 0, 0);
                continue;
            };
            if nh != h {
                (h, mi, s) = (nh, 0, 0);
            }
            let Some(nm) = next_bit(self.minutes, mi) else {
                (h, mi, s) = (h + 1, 0, 0);
                if h == 24 {
                    date = date.succ_opt()?;
                    h = 0;
                }
                continue;
            };
            if nm != mi {
                (mi, s) = (nm, 0);
            }
            let Some(ns) = next_bit(self.seconds, s) else {
                (mi, s) = (mi + 1, 0);
                if mi == 60 {
                    (h, mi) = (h + 1, 0);
                    if h == 24 {
                        date = date.succ_opt()?;
                        h = 0;
                    }
                }
                continue;
            };
            let time = NaiveTime::from_hms_opt(h, mi, ns)?;
            return Some(date.and_time(time));
        }
    }

    fn next_month_start(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut y = date.year();
        let mut m = date.month() + 1;
        loop {
            if m > 12 {
                m = 1;
                y = y.checked_add(1)?;
            }
            if self.months & (1 << m) != 0 {
                return NaiveDate::from_ymd_opt(y, m, 1);
            }
            m += 1;
        }
    }

    /// Whether a calendar day matches the day-of-month / day-of-week pair.
    pub fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.dom_matches(date);
        let dow = self.dow_matches(date);
        if self.day_or { dom || dow } else { dom && dow }
    }

    fn dom_matches(&self, date: NaiveDate) -> bool {
        let day = date.day();
        if self.dom & (1 << day) != 0 {
            return true;
        }
        let len = month_len(date.year(), date.month());
        if self.dom_last && day == len {
            return true;
        }
        if self.dom_last_weekday && day == nearest_weekday(date.year(), date.month(), len) {
            return true;
        }
        if self.dom_nearest_weekday != 0 {
            let mut bits = self.dom_nearest_weekday;
            while bits != 0 {
                let n = bits.trailing_zeros();
                bits &= bits - 1;
                if n <= len && nearest_weekday(date.year(), date.month(), n) == day {
                    return true;
                }
            }
        }
        false
    }

    fn dow_matches(&self, date: NaiveDate) -> bool {
        let wd = date.weekday().num_days_from_sunday() as usize;
        if self.dow & (1 << wd) != 0 {
            return true;
        }
        let day = date.day();
        if self.dow_last & (1 << wd) != 0 && day + 7 > month_len(date.year(), date.month()) {
            return true;
        }
        let nth = day.div_ceil(7);
        self.dow_nth[wd] & (1 << nth) != 0
    }
}

/// Splits on ASCII whitespace, keeping each field's byte offset.
fn split_fields(expr: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &expr[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &expr[s..]));
    }
    out
}

/// Splits a field on commas, keeping each term's byte offset.
fn terms(text: &str, offset: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = offset;
    text.split(',').map(move |t| {
        let at = pos;
        pos += t.len() + 1;
        (at, t)
    })
}

fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    if rest == 0 {
        None
    } else {
        Some(from + rest.trailing_zeros())
    }
}

/// Days in a month.
pub fn month_len(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        _ => 28,
    }
}

/// The weekday (Mon–Fri) nearest day `n` of the month, never leaving the
/// month (Quartz's `W`): a Saturday moves back to Friday unless that leaves
/// the month, a Sunday moves on to Monday unless that leaves the month.
fn nearest_weekday(year: i32, month: u32, n: u32) -> u32 {
    let Some(date) = NaiveDate::from_ymd_opt(year, month, n) else {
        return 0;
    };
    let len = month_len(year, month);
    match date.weekday() {
        Weekday::Sat if n == 1 => 3,
        Weekday::Sat => n - 1,
        Weekday::Sun if n == len => n - 2,
        Weekday::Sun => n + 1,
        _ => n,
    }
}

/// A number or a name, checked against the field's bounds.
fn parse_value(field: Field, text: &str, at: usize) -> Result<u32, CronError> {
    let span = at..at + text.len();
    let upper = text.to_ascii_uppercase();
    let names: &[&str] = match field {
        Field::Month => &MONTH_NAMES,
        Field::DayOfWeek => &DAY_NAMES,
        _ => &[],
    };
    if let Some(i) = names.iter().position(|n| *n == upper) {
        let base = if field == Field::Month { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    if text.is_empty() {
        return Err(CronError::new(
            span,
            format!("empty value in the {field} field"),
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        let mut err = CronError::new(span, format!("`{text}` is not valid in the {field} field"));
        if !names.is_empty() {
            err = err.hint(format!("use a number or one of {}", names.join(", ")));
        }
        return Err(err);
    }
    let (lo, hi) = field.bounds();
    match text.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(CronError::new(
            span,
            format!("{text} is out of range for the {field} field ({lo}-{hi})"),
        )),
    }
}

fn parse_step(field: Field, text: &str, at: usize) -> Result<u32, CronError> {
    let span = at..at + text.len();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CronError::new(
            span,
            format!("step `{text}` in the {field} field is not a number"),
        ));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(CronError::new(span, format!("step 0 in the {field} field"))
            .hint("a step must be at least 1")),
        Ok(v) if v <= 100 => Ok(v),
        _ => Err(CronError::new(
            span,
            format!("step {text} in the {field} field is larger than the field"),
        )),
    }
}

/// Parses one term made of numbers, names, ranges and steps into a bitset.
/// Bit positions are the field's values; for day of week, 7 folds onto 0.
fn parse_range_term(field: Field, term: &str, at: usize) -> Result<u64, CronError> {
    let (lo, hi) = field.bounds();
    let (range, step) = match term.split_once('/') {
        Some((r, s)) => (r, Some(parse_step(field, s, at + r.len() + 1)?)),
        None => (term, None),
    };
    let (start, end) = if range == "*" || range == "?" {
        if range == "?" && !matches!(field, Field::DayOfMonth | Field::DayOfWeek) {
            return Err(CronError::new(
                at..at + 1,
                "`?` is only valid in the day-of-month and day-of-week fields",
            )
            .hint("use `*`"));
        }
        let hi = if field == Field::DayOfWeek { 7 } else { hi };
        (lo, hi)
    } else if let Some((a, b)) = range.split_once('-') {
        let a_v = parse_value(field, a, at)?;
        let b_v = parse_value(field, b, at + a.len() + 1)?;
        if b_v < a_v {
            let err = CronError::new(
                at..at + range.len(),
                format!("range {range} in the {field} field runs backwards"),
            );
            let hint = if field == Field::DayOfWeek {
                "write a wrapping range as two parts, for example `FRI-SAT,SUN`, or use 7 for Sunday (`5-7`)"
            } else {
                "write the smaller value first, or split a wrapping range into two (`22-23,0-2`)"
            };
            return Err(err.hint(hint));
        }
        (a_v, b_v)
    } else {
        let v = parse_value(field, range, at)?;
        // `a/s` means from a to the end of the field.
        let end = if step.is_some() {
            if field == Field::DayOfWeek { 7 } else { hi }
        } else {
            v
        };
        (v, end)
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        let bit = if field == Field::DayOfWeek && v == 7 {
            0
        } else {
            v
        };
        bits |= 1 << bit;
        v += step;
    }
    Ok(bits)
}

/// Fields with nothing but numbers, names, ranges, steps and lists.
fn parse_plain(field: Field, text: &str, at: usize) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for (t_at, term) in terms(text, at) {
        if term.is_empty() {
            return Err(CronError::new(
                t_at..t_at + 1,
                format!("empty item in the {field} field list"),
            ));
        }
        bits |= parse_range_term(field, term, t_at)?;
    }
    Ok(bits)
}

fn parse_dom(text: &str, at: usize, out: &mut CronExpr) -> Result<(), CronError> {
    let field = Field::DayOfMonth;
    for (t_at, term) in terms(text, at) {
        let upper = term.to_ascii_uppercase();
        let span = t_at..t_at + term.len();
        if upper == "L" {
            out.dom_last = true;
        } else if upper == "LW" || upper == "WL" {
            out.dom_last_weekday = true;
        } else if let Some(n) = upper.strip_suffix('W') {
            if n.contains(['-', '/', '*']) {
                return Err(
                    CronError::new(span, format!("`{term}`: W takes a single day"))
                        .hint("write `15W` for the weekday nearest the 15th"),
                );
            }
            let v = parse_value(field, &term[..n.len()], t_at)?;
            out.dom_nearest_weekday |= 1 << v;
        } else if upper.starts_with('L') {
            return Err(CronError::new(
                span,
                format!("`{term}` is not valid in the {field} field"),
            )
            .hint("`L` is the last day of the month, `LW` the last weekday"));
        } else {
            if term.is_empty() {
                return Err(CronError::new(
                    t_at..t_at + 1,
                    format!("empty item in the {field} field list"),
                ));
            }
            out.dom |= parse_range_term(field, term, t_at)? as u32;
        }
    }
    Ok(())
}

fn parse_dow(text: &str, at: usize, out: &mut CronExpr) -> Result<(), CronError> {
    let field = Field::DayOfWeek;
    for (t_at, term) in terms(text, at) {
        let span = t_at..t_at + term.len();
        if let Some((day, nth)) = term.split_once('#') {
            let d = parse_value(field, day, t_at)? % 7;
            let n_at = t_at + day.len() + 1;
            let n = match nth.parse::<u32>() {
                Ok(n) if (1..=5).contains(&n) && nth.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(CronError::new(
                        n_at..n_at + nth.len(),
                        format!("`#{nth}`: the occurrence must be 1 to 5"),
                    )
                    .hint("`MON#2` is the second Monday of the month"));
                }
            };
            out.dow_nth[d as usize] |= 1 << n;
        } else if term.len() > 1 && term.to_ascii_uppercase().ends_with('L') {
            let day = &term[..term.len() - 1];
            let d = parse_value(field, day, t_at)? % 7;
            out.dow_last |= 1 << d;
        } else if term.eq_ignore_ascii_case("L") {
            return Err(
                CronError::new(span, "`L` alone is ambiguous in the day-of-week field")
                    .hint("write `5L` or `FRIL` for the last Friday of the month"),
            );
        } else {
            if term.is_empty() {
                return Err(CronError::new(
                    t_at..t_at + 1,
                    format!("empty item in the {field} field list"),
                ));
            }
            out.dow |= parse_range_term(field, term, t_at)? as u8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn next(expr: &str, from: &str) -> String {
        CronExpr::parse(expr)
            .unwrap()
            .next_naive(dt(from))
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    #[test]
    fn basic_fields() {
        assert_eq!(
            next("30 2 * * *", "2026-01-01 00:00:00"),
            "2026-01-01 02:30:00"
        );
        assert_eq!(
            next("30 2 * * *", "2026-01-01 02:30:00"),
            "2026-01-01 02:30:00"
        );
        assert_eq!(
            next("30 2 * * *", "2026-01-01 02:30:01"),
            "2026-01-02 02:30:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-01-01 00:16:00"),
            "2026-01-01 00:30:00"
        );
        assert_eq!(
            next("0 0 1 1 *", "2026-06-01 00:00:00"),
            "2027-01-01 00:00:00"
        );
        assert_eq!(
            next("15 10 * * * *", "2026-06-01 00:00:00"),
            "2026-06-01 00:10:15"
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(
            next("0 9 * jan mon", "2026-01-01 00:00:00"),
            "2026-01-05 09:00:00"
        );
        assert_eq!(
            next("0 9 * * SUN", "2026-01-01 00:00:00"),
            "2026-01-04 09:00:00"
        );
        assert_eq!(
            next("0 9 * * 7", "2026-01-01 00:00:00"),
            "2026-01-04 09:00:00"
        );
    }

    #[test]
    fn day_fields_or_and_and() {
        // Both restricted: the 13th OR any Friday.
        assert_eq!(
            next("0 0 13 * FRI", "2026-02-01 00:00:00"),
            "2026-02-06 00:00:00"
        );
        // `*/2` starts with a star: odd days AND Mondays.
        assert_eq!(
            next("0 0 */2 * MON", "2026-02-01 00:00:00"),
            "2026-02-09 00:00:00"
        );
        assert_eq!(
            next("0 0 ? * MON", "2026-02-01 00:00:00"),
            "2026-02-02 00:00:00"
        );
    }

    #[test]
    fn last_and_weekday_forms() {
        assert_eq!(
            next("0 0 L * *", "2028-02-01 00:00:00"),
            "2028-02-29 00:00:00"
        );
        assert_eq!(
            next("0 0 L * *", "2027-02-01 00:00:00"),
            "2027-02-28 00:00:00"
        );
        // 2026-05-31 is a Sunday: the last weekday is Friday the 29th.
        assert_eq!(
            next("0 0 LW * *", "2026-05-01 00:00:00"),
            "2026-05-29 00:00:00"
        );
        // Last Friday of January 2026 is the 30th.
        assert_eq!(
            next("0 0 * * 5L", "2026-01-01 00:00:00"),
            "2026-01-30 00:00:00"
        );
        assert_eq!(
            next("0 0 * * FRIL", "2026-01-01 00:00:00"),
            "2026-01-30 00:00:00"
        );
        assert_eq!(
            next("0 0 * * MON#2", "2026-01-01 00:00:00"),
            "2026-01-12 00:00:00"
        );
        // 2026-08-15 is a Saturday: 15W is Friday the 14th.
        assert_eq!(
            next("0 0 15W * *", "2026-08-01 00:00:00"),
            "2026-08-14 00:00:00"
        );
        // 2026-08-01 is a Saturday: 1W does not leave the month, Monday the 3rd.
        assert_eq!(
            next("0 0 1W * *", "2026-08-01 00:00:00"),
            "2026-08-03 00:00:00"
        );
        // 2026-05-31 is a Sunday: 31W stays in May, Friday the 29th.
        assert_eq!(
            next("0 0 31W * *", "2026-05-01 00:00:00"),
            "2026-05-29 00:00:00"
        );
    }

    #[test]
    fn leap_day_and_never() {
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01 00:00:00"),
            "2028-02-29 00:00:00"
        );
        let never = CronExpr::parse("0 0 31 2 *").unwrap();
        assert_eq!(never.next_naive(dt("2026-01-01 00:00:00")), None);
        let never = CronExpr::parse("0 0 30 2 *").unwrap();
        assert_eq!(never.next_naive(dt("2026-01-01 00:00:00")), None);
    }

    #[test]
    fn steps_follow_cronsim() {
        assert_eq!(
            next("10-40/7 * * * *", "2026-01-01 00:25:00"),
            "2026-01-01 00:31:00"
        );
        assert_eq!(
            next("10-40/7 * * * *", "2026-01-01 00:39:00"),
            "2026-01-01 01:10:00"
        );
        assert_eq!(
            next("50/5 * * * *", "2026-01-01 00:51:00"),
            "2026-01-01 00:55:00"
        );
    }

    #[test]
    fn fixed_time_detection() {
        assert!(CronExpr::parse("30 2 * * *").unwrap().is_fixed_time());
        assert!(CronExpr::parse("0-59 0-23 * * *").unwrap().is_fixed_time());
        assert!(!CronExpr::parse("*/5 2 * * *").unwrap().is_fixed_time());
        assert!(!CronExpr::parse("0 * * * *").unwrap().is_fixed_time());
    }

    #[test]
    fn errors_point_at_the_part() {
        let cases: &[(&str, &str, Range<usize>)] = &[
            ("61 * * * *", "out of range", 0..2),
            ("* 24 * * *", "out of range", 2..4),
            ("* * * * * * *", "7 fields", 0..13),
            ("* * *", "3 fields", 0..5),
            ("*/0 * * * *", "step 0", 2..3),
            ("* * * FOO *", "not valid in the month", 6..9),
            ("* * * * FRI-MON", "runs backwards", 8..15),
            ("* * 0 * *", "out of range", 4..5),
            ("1,,2 * * * *", "empty item", 2..3),
            ("* * * * MON#6", "occurrence", 12..13),
            ("? * * * *", "only valid", 0..1),
            ("* * * * L", "ambiguous", 8..9),
            ("99999999999 * * * *", "out of range", 0..11),
            ("", "empty", 0..0),
        ];
        for (expr, needle, span) in cases {
            let err = CronExpr::parse(expr).unwrap_err();
            assert!(err.message.contains(needle), "{expr}: {}", err.message);
            assert_eq!(&err.span, span, "{expr}: {}", err.message);
        }
    }

    #[test]
    fn expression_size_is_small() {
        assert!(std::mem::size_of::<CronExpr>() <= 48);
    }
}
