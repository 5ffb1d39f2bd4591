//! Schedules as instants: a cron expression or `@every` period, evaluated in
//! a time zone with an explicit DST policy.
//!
//! The rule is Debian/Vixie cron's. A *fixed-time* job (minute and hour not
//! starting with `*`) names wall-clock times, so a DST change needs a
//! decision: a time skipped by a spring-forward gap runs once at the first
//! instant after the gap (`gap = "shift"`) or not at all (`skip`); a time
//! repeated by an autumn fold runs at its first occurrence (`fold =
//! "first"`), its last, or both. Every other job follows real time: it fires
//! at each instant whose local time matches, so it never fires in a gap and
//! fires twice in a fold. The rule applies to 6-field expressions too.
//!
//! Everything here is pure: "now" is always a parameter.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::cron::{CronError, CronExpr};

/// What a fixed-time job does when its time falls in a spring-forward gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GapPolicy {
    /// Run once at the first instant after the gap.
    #[default]
    Shift,
    /// Do not run that day.
    Skip,
}

/// What a fixed-time job does when its time occurs twice in an autumn fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FoldPolicy {
    /// Run at the first occurrence only.
    #[default]
    First,
    /// Run at the second occurrence only.
    Last,
    /// Run at both.
    Both,
}

/// The DST policy of a job; only fixed-time cron jobs consult it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DstPolicy {
    pub gap: GapPolicy,
    pub fold: FoldPolicy,
}

/// The `@every` period; fire instants are the Unix epoch plus whole
/// multiples of it, so they do not depend on when the daemon started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Every(Duration);

impl Every {
    /// The period.
    pub fn period(&self) -> Duration {
        self.0
    }
}

/// A parsed schedule expression: what the user wrote in `schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleExpr {
    Cron(CronExpr),
    Every(Every),
}

/// Macros and what they stand for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Longest period `@every` accepts: longer ones are almost certainly a typo
/// and would overflow nothing but a reader's patience.
const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);

impl ScheduleExpr {
    /// Parses a cron expression, a macro, or `@every <duration>`.
    ///
    /// # Errors
    /// A [`CronError`] with a span inside `text`.
    pub fn parse(text: &str) -> Result<ScheduleExpr, CronError> {
        let trimmed = text.trim_start();
        let lead = text.len() - trimmed.len();
        let trimmed = trimmed.trim_end();
        if !trimmed.starts_with('@') {
            return CronExpr::parse(text).map(ScheduleExpr::Cron);
        }
        let span = lead..lead + trimmed.len();
        if let Some(rest) = trimmed.strip_prefix("@every") {
            let dur_text = rest.trim();
            let dur_at = lead + trimmed.len() - rest.trim_start().len();
            let dur_span = dur_at..dur_at + dur_text.len();
            if dur_text.is_empty() || !rest.starts_with(char::is_whitespace) {
                return Err(CronError {
                    span,
                    message: "`@every` needs a duration".into(),
                    hint: Some("for example `@every 90s` or `@every 1h 30m`".into()),
                });
            }
            let dur = humantime::parse_duration(dur_text).map_err(|e| CronError {
                span: dur_span.clone(),
                message: format!("invalid duration `{dur_text}`: {e}"),
                hint: Some("durations look like `90s`, `5m`, `1h 30m`, `500ms`".into()),
            })?;
            if dur < Duration::from_millis(1) {
                return Err(CronError {
                    span: dur_span,
                    message: format!("`@every {dur_text}` is shorter than 1ms"),
                    hint: None,
                });
            }
            if dur > MAX_EVERY {
                return Err(CronError {
                    span: dur_span,
                    message: format!("`@every {dur_text}` is longer than a year"),
                    hint: Some("use a cron expression for yearly schedules".into()),
                });
            }
            return Ok(ScheduleExpr::Every(Every(dur)));
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some((_, expansion)) = MACROS.iter().find(|(m, _)| *m == lower) {
            return CronExpr::parse(expansion).map(ScheduleExpr::Cron);
        }
        let hint = if lower == "@reboot" {
            "driftcron has no boot event; use a schedule, or trigger the job through the API"
                .to_string()
        } else {
            let names: Vec<&str> = MACROS.iter().map(|(m, _)| *m).collect();
            format!("known macros: {}, @every <duration>", names.join(" "))
        };
        Err(CronError {
            span,
            message: format!("unknown macro `{trimmed}`"),
            hint: Some(hint),
        })
    }
}

/// A schedule in a time zone: turns "after this instant" into the next fire
/// instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schedule {
    pub expr: ScheduleExpr,
    pub tz: Tz,
    pub dst: DstPolicy,
}

impl Schedule {
    pub fn new(expr: ScheduleExpr, tz: Tz, dst: DstPolicy) -> Self {
        Schedule { expr, tz, dst }
    }

    /// The first fire instant strictly after `t`, or `None` if there is
    /// none (an expression that can never match).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.expr {
            ScheduleExpr::Every(every) => every_next_after(every.0, t),
            ScheduleExpr::Cron(cron) => {
                if cron.is_fixed_time() {
                    self.fixed_next_after(&cron, t)
                } else {
                    real_next_after(&cron, self.tz, t)
                }
            }
        }
    }

    /// The next `count` fire instants strictly after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count.min(1024));
        let mut at = t;
        while out.len() < count {
            match self.next_after(at) {
                Some(n) => {
                    out.push(n);
                    at = n;
                }
                None => break,
            }
        }
        out
    }

    /// Fixed-time jobs iterate wall-clock slots and map each to instants by
    /// the DST policy. The "first occurrence" and "last occurrence" maps are
    /// each monotonic in the slot, so each chain is searched on its own and
    /// the earlier answer wins (`fold = "both"` takes the union).
    fn fixed_next_after(&self, cron: &CronExpr, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = matches!(self.dst.fold, FoldPolicy::First | FoldPolicy::Both)
            .then(|| self.fixed_chain(cron, t, Occurrence::First))
            .flatten();
        let last = matches!(self.dst.fold, FoldPolicy::Last | FoldPolicy::Both)
            .then(|| self.fixed_chain(cron, t, Occurrence::Last))
            .flatten();
        match (first, last) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn fixed_chain(
        &self,
        cron: &CronExpr,
        t: DateTime<Utc>,
        which: Occurrence,
    ) -> Option<DateTime<Utc>> {
        let tz = self.tz;
        let t = trunc_secs(t);
        // The first slot whose mapped instant can be later than t. For the
        // first occurrence that is t's own wall-clock time (monotonicity);
        // the last occurrence of an earlier slot can still be ahead of t
        // while t is in the first pass of a fold, so start from t's wall
        // time under the smallest nearby offset.
        let mut slot = match which {
            Occurrence::First => local_naive(tz, t),
            Occurrence::Last => {
                let day = TimeDelta::days(1);
                let min_off = [t - day, t, t + day]
                    .iter()
                    .map(|i| offset_secs(tz, *i))
                    .min()
                    .unwrap_or(0);
                t.naive_utc() + TimeDelta::seconds(i64::from(min_off))
            }
        };
        // Slots are consumed in order; each iteration either returns or moves
        // past one slot, and only slots within a DST fold of t can map at or
        // before t, so this ends after at most an hour's worth of slots.
        loop {
            let n = cron.next_naive(slot)?;
            let instant = match tz.from_local_datetime(&n) {
                LocalResult::Single(x) => Some(x.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => {
                    let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                    Some(match which {
                        Occurrence::First => a.min(b),
                        Occurrence::Last => a.max(b),
                    })
                }
                LocalResult::None => match self.dst.gap {
                    GapPolicy::Shift => gap_end(tz, n),
                    GapPolicy::Skip => None,
                },
            };
            if let Some(x) = instant
                && x > t
            {
                return Some(x);
            }
            slot = n.checked_add_signed(TimeDelta::seconds(1))?;
        }
    }
}

#[derive(Clone, Copy)]
enum Occurrence {
    First,
    Last,
}

/// Real-time evaluation: the first instant after `t` whose local time
/// matches. Works segment by segment between offset changes, so a gap's
/// times never match and a fold's times match twice.
fn real_next_after(cron: &CronExpr, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut s = trunc_secs(t) + TimeDelta::seconds(1);
    loop {
        let off = offset_secs(tz, s);
        let off_delta = TimeDelta::seconds(i64::from(off));
        let n = cron.next_naive(s.naive_utc() + off_delta)?;
        let candidate = (n - off_delta).and_utc();
        match first_offset_change(tz, s, off, candidate) {
            // The offset is the same from s to the candidate: it is the
            // first match, and n maps to it uniquely.
            None => return Some(candidate),
            // The wall clock changes pace before the candidate: nothing in
            // [s, change) matched (the candidate is past it), so search on
            // from the change with the new offset.
            Some(change) => s = change,
        }
    }
}

/// The first instant in `(s, until]` whose UTC offset differs from `off`.
/// Probes a day at a time (no zone changes offset twice in a day) and then
/// bisects to the second.
fn first_offset_change(
    tz: Tz,
    s: DateTime<Utc>,
    off: i32,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if tz == Tz::UTC || until <= s {
        return None;
    }
    let mut lo = s;
    loop {
        let hi = (lo + TimeDelta::days(1)).min(until);
        if offset_secs(tz, hi) != off {
            // Invariant: offset(lo) == off, offset(hi) != off.
            let (mut a, mut b) = (lo.timestamp(), hi.timestamp());
            while b - a > 1 {
                let mid = a + (b - a) / 2;
                if offset_secs(tz, DateTime::from_timestamp(mid, 0)?) == off {
                    a = mid;
                } else {
                    b = mid;
                }
            }
            return DateTime::from_timestamp(b, 0);
        }
        if hi >= until {
            return None;
        }
        lo = hi;
    }
}

/// The first instant after the DST gap that swallowed wall time `n`.
fn gap_end(tz: Tz, n: NaiveDateTime) -> Option<DateTime<Utc>> {
    let day = TimeDelta::days(1);
    let before = offset_secs(tz, (n - day).and_utc());
    let after = offset_secs(tz, (n + day).and_utc());
    if after <= before {
        return None;
    }
    // Read as the old offset, n is already past the change; read as the new
    // one, it is still before it. Bisect for the first instant whose wall
    // time is later than n.
    let mut lo = (n - TimeDelta::seconds(i64::from(after)))
        .and_utc()
        .timestamp();
    let mut hi = (n - TimeDelta::seconds(i64::from(before)))
        .and_utc()
        .timestamp();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let wall = local_naive(tz, DateTime::from_timestamp(mid, 0)?);
        if wall > n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

fn every_next_after(period: Duration, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let p = period.as_nanos() as i128;
    let since = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    let k = since.div_euclid(p) + 1;
    let next = k.checked_mul(p)?;
    let secs = i64::try_from(next.div_euclid(1_000_000_000)).ok()?;
    let nanos = next.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos)
}

fn trunc_secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// UTC offset of `tz` at instant `t`, in seconds east of UTC.
pub fn offset_secs(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

fn local_naive(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// Formats an instant as RFC 3339 with the zone's offset at that instant.
pub fn format_instant(t: DateTime<Utc>, tz: Tz) -> String {
    let fmt = if t.timestamp_subsec_nanos() == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Millis
    };
    t.with_timezone(&tz).to_rfc3339_opts(fmt, false)
}

impl fmt::Display for GapPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GapPolicy::Shift => "shift",
            GapPolicy::Skip => "skip",
        })
    }
}

impl fmt::Display for FoldPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FoldPolicy::First => "first",
            FoldPolicy::Last => "last",
            FoldPolicy::Both => "both",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn upcoming(expr: &str, tz: &str, dst: DstPolicy, after: &str, n: usize) -> Vec<String> {
        let tz: Tz = tz.parse().unwrap();
        let s = Schedule::new(ScheduleExpr::parse(expr).unwrap(), tz, dst);
        s.upcoming(at(after), n)
            .into_iter()
            .map(|t| format_instant(t, tz))
            .collect()
    }

    const NY: &str = "America/New_York";

    #[test]
    fn gap_shift_runs_once_after_the_gap() {
        let got = upcoming(
            "30 2 * * *",
            NY,
            DstPolicy::default(),
            "2026-03-07T12:00:00-05:00",
            3,
        );
        assert_eq!(
            got,
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn gap_shift_collapses_several_slots_into_one_run() {
        let got = upcoming(
            "0,30 2 * * *",
            NY,
            DstPolicy::default(),
            "2026-03-08T01:00:00-05:00",
            2,
        );
        assert_eq!(
            got,
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
        // A real 03:00 slot and the shifted ones are one run.
        let got = upcoming(
            "0 2,3 * * *",
            NY,
            DstPolicy::default(),
            "2026-03-08T01:00:00-05:00",
            2,
        );
        assert_eq!(
            got,
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
    }

    #[test]
    fn gap_skip_does_not_run() {
        let dst = DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::First,
        };
        let got = upcoming("30 2 * * *", NY, dst, "2026-03-07T12:00:00-05:00", 1);
        assert_eq!(got, ["2026-03-09T02:30:00-04:00"]);
    }

    #[test]
    fn fold_policies() {
        let after = "2026-10-31T12:00:00-04:00";
        let first = upcoming("30 1 * * *", NY, DstPolicy::default(), after, 2);
        assert_eq!(
            first,
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        let dst = DstPolicy {
            gap: GapPolicy::Shift,
            fold: FoldPolicy::Last,
        };
        let last = upcoming("30 1 * * *", NY, dst, after, 2);
        assert_eq!(
            last,
            ["2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"]
        );
        let dst = DstPolicy {
            gap: GapPolicy::Shift,
            fold: FoldPolicy::Both,
        };
        let both = upcoming("30 1 * * *", NY, dst, after, 3);
        assert_eq!(
            both,
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-02T01:30:00-05:00"
            ]
        );
    }

    #[test]
    fn fold_last_from_inside_the_first_pass() {
        let dst = DstPolicy {
            gap: GapPolicy::Shift,
            fold: FoldPolicy::Last,
        };
        // 01:40 EDT: the 01:30 slot's last occurrence (01:30 EST) is ahead.
        let got = upcoming("30 1 * * *", NY, dst, "2026-11-01T01:40:00-04:00", 1);
        assert_eq!(got, ["2026-11-01T01:30:00-05:00"]);
    }

    #[test]
    fn wildcard_jobs_follow_real_time() {
        // Every 30 minutes through the fold: the repeated hour runs twice.
        let got = upcoming(
            "*/30 * * * *",
            NY,
            DstPolicy::default(),
            "2026-11-01T00:45:00-04:00",
            5,
        );
        assert_eq!(
            got,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00"
            ]
        );
        // ... and nothing inside the gap.
        let got = upcoming(
            "*/30 * * * *",
            NY,
            DstPolicy::default(),
            "2026-03-08T01:15:00-05:00",
            2,
        );
        assert_eq!(
            got,
            ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"]
        );
    }

    #[test]
    fn real_time_finds_the_first_pass_of_a_far_fold() {
        // From February, the first 01:xx on 2026-11-01 is the EDT one.
        let got = upcoming(
            "* 1 1 11 *",
            NY,
            DstPolicy::default(),
            "2026-02-01T00:00:00-05:00",
            1,
        );
        assert_eq!(got, ["2026-11-01T01:00:00-04:00"]);
    }

    #[test]
    fn lord_howe_half_hour_gap() {
        // Lord Howe springs forward 02:00 -> 02:30 on 2026-10-04.
        let got = upcoming(
            "15 2 * * *",
            "Australia/Lord_Howe",
            DstPolicy::default(),
            "2026-10-03T12:00:00+10:30",
            2,
        );
        assert_eq!(
            got,
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
        );
    }

    #[test]
    fn every_is_anchored_on_the_epoch() {
        let got = upcoming(
            "@every 90s",
            "UTC",
            DstPolicy::default(),
            "2026-01-01T00:00:10+00:00",
            2,
        );
        // 2026-01-01T00:00:00Z is 1767225600 s after the epoch = 19635840 * 90.
        assert_eq!(
            got,
            ["2026-01-01T00:01:30+00:00", "2026-01-01T00:03:00+00:00"]
        );
        let got = upcoming(
            "@every 500ms",
            "UTC",
            DstPolicy::default(),
            "2026-01-01T00:00:00.2+00:00",
            2,
        );
        assert_eq!(
            got,
            ["2026-01-01T00:00:00.500+00:00", "2026-01-01T00:00:01+00:00"]
        );
    }

    #[test]
    fn macros_expand() {
        for (m, e) in MACROS {
            assert_eq!(
                ScheduleExpr::parse(m).unwrap(),
                ScheduleExpr::parse(e).unwrap()
            );
        }
        assert_eq!(
            ScheduleExpr::parse("@DAILY").unwrap(),
            ScheduleExpr::parse("0 0 * * *").unwrap()
        );
        assert!(
            ScheduleExpr::parse("@reboot")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("no boot")
        );
        assert!(ScheduleExpr::parse("@every").is_err());
        assert!(ScheduleExpr::parse("@every 0s").is_err());
        assert!(ScheduleExpr::parse("@every banana").is_err());
        assert!(ScheduleExpr::parse("@everyday").is_err());
    }

    #[test]
    fn never_matching_gives_none() {
        let s = Schedule::new(
            ScheduleExpr::parse("0 0 31 2 *").unwrap(),
            Tz::UTC,
            DstPolicy::default(),
        );
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), None);
    }
}
