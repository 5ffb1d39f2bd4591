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
