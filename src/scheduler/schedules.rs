//! The distinct schedules of the scheduler's jobs, each held once and
//! named by a small id.
//!
//! A fire reads its job's schedule to work out the next slot. Copied into
//! every job's entry, a schedule is 56 bytes a job; read from the job's
//! spec, it is a cold cache line a fire (see `Timing` in `core.rs`). Here
//! it is 4 bytes a job, and the few schedules a repository uses stay in
//! cache. Jobs that share a schedule share an id, so the slot memo
//! (see [`Schedules::next_after`]) compares ids instead of whole
//! schedules.
//!
//! Bounded: a schedule is counted by the jobs that use it and released
//! with the last of them; its slot is reused. The table is never larger
//! than the most distinct schedules alive at once.

use chrono::{DateTime, Utc};

use crate::fxhash::FxHashMap;
use crate::spec::schedule::Schedule;

/// A schedule's name in [`Schedules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ScheduleId(u32);

#[derive(Debug)]
struct Slot {
    schedule: Schedule,
    /// Jobs that use it; 0 = free.
    users: u32,
}

#[derive(Debug, Default)]
pub(super) struct Schedules {
    slots: Vec<Slot>,
    by_value: FxHashMap<Schedule, ScheduleId>,
    free: Vec<ScheduleId>,
    /// The last slot computed: `(id, after, next)`. Forgotten when `id` is
    /// freed, since the id may then name another schedule.
    last: Option<(ScheduleId, DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Schedules {
    /// The id of `schedule`, counting one more user.
    pub fn intern(&mut self, schedule: Schedule) -> ScheduleId {
        if let Some(&id) = self.by_value.get(&schedule) {
            self.slots[id.0 as usize].users += 1;
            return id;
        }
        let slot = Slot { schedule, users: 1 };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id.0 as usize] = slot;
                id
            }
            None => {
                // More distinct schedules than `u32` can count cannot be
                // alive: each needs a job, and jobs are bounded far below.
                let id = ScheduleId(u32::try_from(self.slots.len()).unwrap_or(u32::MAX));
                self.slots.push(slot);
                id
            }
        };
        self.by_value.insert(schedule, id);
        id
    }

    /// One user fewer of `id`; the last one frees it.
    pub fn release(&mut self, id: ScheduleId) {
        let Some(slot) = self.slots.get_mut(id.0 as usize) else {
            return;
        };
        if slot.users == 0 {
            return;
        }
        slot.users -= 1;
        if slot.users == 0 {
            self.by_value.remove(&slot.schedule);
            self.free.push(id);
            if self.last.is_some_and(|(l, _, _)| l == id) {
                self.last = None;
            }
        }
    }

    /// The first slot of schedule `id` after `after`, remembering the last
    /// answer. Jobs that share a schedule come due together (every job on
    /// `0 * * * *` at the top of the hour) and are fired one after
    /// another, so consecutive fires ask the same question. Evaluating a
    /// cron expression costs more than the rest of a fire; comparing an id
    /// and an instant costs a few instructions.
    pub fn next_after(&mut self, id: ScheduleId, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some((l, a, next)) = self.last
            && l == id
            && a == after
        {
            return next;
        }
        let next = self.get(id).next_after(after);
        self.last = Some((id, after, next));
        next
    }

    pub fn get(&self, id: ScheduleId) -> Schedule {
        self.slots[id.0 as usize].schedule
    }

    /// Jobs counted over all schedules (what the audit compares with the
    /// jobs), and whether the table agrees with itself.
    pub fn users(&self) -> u64 {
        self.slots.iter().map(|s| u64::from(s.users)).sum()
    }

    pub fn consistent(&self) -> bool {
        let live = self.slots.iter().filter(|s| s.users > 0).count();
        live == self.by_value.len()
            && live + self.free.len() == self.slots.len()
            && self
                .by_value
                .iter()
                .all(|(s, id)| self.slots[id.0 as usize].schedule == *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::schedule::{DstPolicy, ScheduleExpr};

    fn parse(expr: &str) -> Schedule {
        let expr = ScheduleExpr::parse(expr).expect("valid expression");
        Schedule::new(expr, chrono_tz::Tz::UTC, DstPolicy::default())
    }

    #[test]
    fn shared_schedules_share_an_id_and_free_with_their_last_user() {
        let mut t = Schedules::default();
        let (a, b) = (parse("*/5 * * * *"), parse("@hourly"));
        let a1 = t.intern(a);
        let a2 = t.intern(a);
        let b1 = t.intern(b);
        assert_eq!(a1, a2);
        assert_ne!(a1, b1);
        assert_eq!(t.get(a1), a);
        assert_eq!(t.get(b1), b);
        assert_eq!(t.users(), 3);
        t.release(a1);
        assert_eq!(t.get(a2), a, "one user left");
        t.release(a2);
        assert_eq!(t.users(), 1);
        assert!(t.consistent());
        // The freed slot is reused: the table does not grow with churn.
        for _ in 0..1000 {
            let c = t.intern(parse("0 3 * * *"));
            t.release(c);
        }
        assert_eq!(t.slots.len(), 2);
        assert!(t.consistent());
        // Releasing more than was interned is ignored, not wrapped.
        t.release(a1);
        assert_eq!(t.users(), 1);
        assert!(t.consistent());
    }

    /// Found by review: the memo is keyed by id, and a freed id is reused
    /// for the next new schedule, which must not get the old one's slot.
    #[test]
    fn a_reused_id_does_not_answer_with_the_old_schedules_slot() {
        let mut t = Schedules::default();
        let t0: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let hourly = t.intern(parse("0 * * * *"));
        assert_eq!(
            t.next_after(hourly, t0),
            Some(t0 + chrono::TimeDelta::hours(1))
        );
        t.release(hourly);
        let half = t.intern(parse("30 * * * *"));
        assert_eq!(half, hourly, "the freed id is reused");
        assert_eq!(
            t.next_after(half, t0),
            Some(t0 + chrono::TimeDelta::minutes(30))
        );
    }
}
