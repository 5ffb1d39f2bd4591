//! Wall-clock time, injectable. Schedules are wall-clock; sleeping is
//! monotonic (tokio). The timer re-reads the wall clock on every wake, so a
//! clock jump or a suspended machine shows up as late slots, never as a
//! double fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// Where the scheduler reads "now".
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that follows tokio's clock (so paused-time tests drive it
/// with `tokio::time::advance`) plus an offset that tests can move to
/// simulate clock jumps and suspends.
#[derive(Debug, Clone)]
pub struct TestClock {
    base_wall: DateTime<Utc>,
    base: Instant,
    jump_ns: Arc<AtomicI64>,
}

impl TestClock {
    /// A clock reading `start` now.
    pub fn new(start: DateTime<Utc>) -> Self {
        TestClock {
            base_wall: start,
            base: Instant::now(),
            jump_ns: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Moves the wall clock by `delta` (negative = backwards) without
    /// monotonic time passing, as an NTP step or a resume from suspend does.
    pub fn jump(&self, delta: TimeDelta) {
        self.jump_ns
            .fetch_add(delta.num_nanoseconds().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().duration_since(self.base);
        self.base_wall
            + TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::zero())
            + TimeDelta::nanoseconds(self.jump_ns.load(Ordering::SeqCst))
    }
}

/// `later - earlier`, as chrono computes it, but without its calendar
/// arithmetic when both fall on the same day (nearly every subtraction a
/// run needs: its lateness, its duration). A fire did five of these, and
/// chrono's date difference was a sixth of the scheduler's time.
#[inline]
pub(crate) fn delta(later: DateTime<Utc>, earlier: DateTime<Utc>) -> TimeDelta {
    // `naive_utc` is the stored value; `date_naive` and `time` would each
    // add the (zero) offset first, which costs as much as the rest.
    let (a, b) = (later.naive_utc(), earlier.naive_utc());
    if a.date() == b.date() {
        a.time() - b.time()
    } else {
        later - earlier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_is_chronos_difference() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let cases = [
            ("2026-11-30T10:00:01.250Z", "2026-11-30T10:00:00Z"),
            ("2026-11-30T10:00:00Z", "2026-11-30T10:00:01.250Z"),
            ("2026-12-01T00:00:00.001Z", "2026-11-30T23:59:59.999Z"),
            ("2024-02-29T12:00:00Z", "2023-02-28T12:00:00Z"),
            ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z"),
        ];
        for (a, b) in cases {
            assert_eq!(delta(t(a), t(b)), t(a) - t(b), "{a} - {b}");
        }
        // A leap second (chrono's nanosecond ≥ 1e9) on the same day.
        let day = chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap();
        let leap = day
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let before = day.and_hms_opt(23, 59, 58).unwrap().and_utc();
        assert_eq!(delta(leap, before), leap - before);
        assert_eq!(delta(before, leap), before - leap);
    }
}
