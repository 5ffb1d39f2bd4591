//! The one timer structure: every pending deadline of every job, earliest
//! first, keyed so that re-keying replaces the old entry.
//!
//! A 4-ary min-heap of `(deadline, sequence, key)` plus a dense position
//! table `key → heap index`. Keys are small integers handed out by the
//! scheduler (a job's registry slot and the timer's kind), so the position
//! table is a plain vector: no hashing, and an entry costs 16 bytes in the
//! heap plus 4 in the table, where an ordered map and a hash map of job ids
//! cost over a hundred. A node's four children are 64 bytes: one cache
//! line. Insert, remove and re-key are O(log n), and no stale
//! entry can survive a change because a key has at most one heap slot and
//! every set moves that slot. The sequence number breaks ties in insertion
//! order, so a hundred thousand jobs due on the same second fire in the
//! order they were armed, and comparisons stay on integers.

use chrono::{DateTime, Utc};

/// Children per heap node. Four halves the depth of a binary heap, and the
/// four children of a node sit in adjacent memory, so a sift-down touches
/// fewer cache lines.
const ARITY: usize = 4;

/// Position-table value for a key with no deadline.
const ABSENT: u32 = u32::MAX;

/// The deadline as nanoseconds since the epoch: one integer to compare
/// instead of chrono's three fields. Deadlines past 2262 (none a schedule
/// makes: the furthest is a fixed date some 28 years out) wait at 2262.
fn to_ns(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// The last conversion one way, kept: a burst's deadlines are one instant
/// (a hundred thousand jobs on the same second), and chrono's calendar
/// arithmetic for each of them cost more than the heap's sift.
#[derive(Debug, Clone, Copy)]
struct Conv {
    ns: i64,
    at: DateTime<Utc>,
}

impl Default for Conv {
    fn default() -> Self {
        Conv {
            ns: 0,
            at: DateTime::UNIX_EPOCH,
        }
    }
}

impl Conv {
    #[inline]
    fn ns(&mut self, at: DateTime<Utc>) -> i64 {
        if at != self.at {
            *self = Conv { ns: to_ns(at), at };
        }
        self.ns
    }

    #[inline]
    fn at(&mut self, ns: i64) -> DateTime<Utc> {
        if ns != self.ns {
            *self = Conv {
                ns,
                at: from_ns(ns),
            };
        }
        self.at
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at_ns: i64,
    /// Insertion order among equal deadlines. It wraps after 2^32 sets,
    /// which can only reorder ties once, never lose an entry.
    seq: u32,
    key: u32,
}

impl Entry {
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        (self.at_ns, self.seq) < (other.at_ns, other.seq)
    }
}

/// Deadlines keyed by small integers.
#[derive(Debug, Default)]
pub struct TimerIndex {
    heap: Vec<Entry>,
    /// Heap index of each key's entry, or `ABSENT`.
    pos: Vec<u32>,
    seq: u32,
    /// Deadlines set, `now`s asked about, and deadlines handed out: three
    /// memos, as a fire does one of each.
    set_conv: Conv,
    now_conv: Conv,
    out_conv: Conv,
}

impl TimerIndex {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: u32, at: DateTime<Utc>) {
        self.seq = self.seq.wrapping_add(1);
        let entry = Entry {
            at_ns: self.set_conv.ns(at),
            key,
            seq: self.seq,
        };
        let k = key as usize;
        if k >= self.pos.len() {
            self.pos.resize(k + 1, ABSENT);
        }
        match self.pos[k] {
            ABSENT => {
                self.heap.push(entry);
                self.sift_up(self.heap.len() - 1);
            }
            i => {
                let i = i as usize;
                let earlier = entry.before(&self.heap[i]);
                self.heap[i] = entry;
                if earlier {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
        }
    }

    /// Removes `key`'s deadline; returns it if there was one.
    pub fn remove(&mut self, key: u32) -> Option<DateTime<Utc>> {
        let i = *self.pos.get(key as usize)?;
        if i == ABSENT {
            return None;
        }
        Some(from_ns(self.take(i as usize).at_ns))
    }

    /// The earliest deadline.
    pub fn peek(&self) -> Option<(DateTime<Utc>, u32)> {
        self.heap.first().map(|e| (from_ns(e.at_ns), e.key))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, u32)> {
        if self.heap.first()?.at_ns > self.now_conv.ns(now) {
            return None;
        }
        let e = self.take(0);
        Some((self.out_conv.at(e.at_ns), e.key))
    }

    pub fn get(&self, key: u32) -> Option<DateTime<Utc>> {
        match *self.pos.get(key as usize)? {
            ABSENT => None,
            i => Some(from_ns(self.heap[i as usize].at_ns)),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Keys in the index (for the audit).
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.heap.iter().map(|e| e.key)
    }

    /// The heap and the position table agree, and the heap is ordered (for
    /// the audit: a broken index is a leak).
    pub fn consistent(&self) -> bool {
        let placed = self.pos.iter().filter(|p| **p != ABSENT).count();
        placed == self.heap.len()
            && self.heap.iter().enumerate().all(|(i, e)| {
                self.pos.get(e.key as usize) == Some(&(i as u32))
                    && (i == 0 || !e.before(&self.heap[(i - 1) / ARITY]))
            })
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.pos.clear();
    }

    #[doc(hidden)]
    /// Test hook: pushes an entry the position table does not know, as a
    /// buggy heap update would, so the audit has something to find.
    pub fn inject_stale(&mut self, key: u32, at: DateTime<Utc>) {
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Entry {
            at_ns: to_ns(at),
            key,
            seq: self.seq,
        });
        self.sift_up(self.heap.len() - 1);
    }

    /// Removes the entry at heap index `i`.
    fn take(&mut self, i: usize) -> Entry {
        let last = self.heap.len() - 1;
        self.heap.swap(i, last);
        let e = self.heap.pop().expect("non-empty");
        self.forget(e.key);
        if i < last {
            self.place(i);
            // The moved entry may belong above or below `i`.
            if i > 0 && self.heap[i].before(&self.heap[(i - 1) / ARITY]) {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
        e
    }

    fn forget(&mut self, key: u32) {
        if let Some(p) = self.pos.get_mut(key as usize) {
            *p = ABSENT;
        }
    }

    #[inline]
    fn place(&mut self, i: usize) {
        // A key past the table is an injected stale entry: it has no slot.
        if let Some(p) = self.pos.get_mut(self.heap[i].key as usize) {
            *p = i as u32;
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        let e = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if !e.before(&self.heap[parent]) {
                break;
            }
            self.heap[i] = self.heap[parent];
            self.place(i);
            i = parent;
        }
        self.heap[i] = e;
        self.place(i);
    }

    /// Moves the entry at `i` down to its place, bottom-up (Floyd): the
    /// hole goes down along the smaller children to a leaf, then the entry
    /// climbs back from there. The entry is usually the heap's last (a
    /// pop) or a re-armed one a period later, so it belongs near the bottom
    /// and climbs little; the way down costs ARITY - 1 comparisons a level
    /// instead of ARITY. The pop order is the same: (deadline, seq) is a
    /// total order.
    fn sift_down(&mut self, mut i: usize) {
        let e = self.heap[i];
        let n = self.heap.len();
        loop {
            let first = i * ARITY + 1;
            if first >= n {
                break;
            }
            let mut best = first;
            for c in first + 1..(first + ARITY).min(n) {
                if self.heap[c].before(&self.heap[best]) {
                    best = c;
                }
            }
            self.heap[i] = self.heap[best];
            self.place(i);
            i = best;
        }
        self.heap[i] = e;
        self.sift_up(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn rekey_leaves_no_stale_entry() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let (a, b, c, d) = (0, 1, 2, 7);
        let mut idx = TimerIndex::default();
        idx.set(a, t0 + TimeDelta::seconds(10));
        idx.set(b, t0 + TimeDelta::seconds(5));
        idx.set(a, t0 + TimeDelta::seconds(1));
        assert_eq!(idx.len(), 2);
        assert!(idx.consistent());
        assert_eq!(idx.peek(), Some((t0 + TimeDelta::seconds(1), a)));
        assert_eq!(idx.pop_due(t0), None);
        assert_eq!(
            idx.pop_due(t0 + TimeDelta::seconds(5)).map(|e| e.1),
            Some(a)
        );
        assert_eq!(
            idx.pop_due(t0 + TimeDelta::seconds(5)).map(|e| e.1),
            Some(b)
        );
        assert!(idx.is_empty());
        idx.set(c, t0);
        assert_eq!(idx.remove(c), Some(t0));
        assert_eq!(idx.remove(c), None);
        assert!(idx.is_empty() && idx.consistent());
        idx.inject_stale(d, t0);
        assert!(!idx.consistent());
    }

    /// Against a sorted list: same deadlines pop in the order they were
    /// set, whatever re-keys and removals happened in between.
    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut idx = TimerIndex::default();
        let mut model: Vec<(DateTime<Utc>, u64, u32)> = Vec::new();
        let mut seq = 0;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..5_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = (rng % 300) as u32;
            let at = t0 + TimeDelta::seconds((rng >> 20) as i64 % 7);
            model.retain(|e| e.2 != key);
            if rng % 5 == 0 {
                idx.remove(key);
                assert_eq!(idx.get(key), None);
            } else {
                seq += 1;
                idx.set(key, at);
                model.push((at, seq, key));
            }
            assert_eq!(idx.len(), model.len());
        }
        assert!(idx.consistent());
        model.sort();
        let popped: Vec<u32> =
            std::iter::from_fn(|| idx.pop_due(t0 + TimeDelta::days(1)).map(|e| e.1)).collect();
        assert_eq!(popped, model.iter().map(|e| e.2).collect::<Vec<_>>());
    }

    #[test]
    fn deadlines_round_trip_to_the_nanosecond() {
        let mut idx = TimerIndex::default();
        let at = DateTime::from_timestamp(1_767_225_600, 123_456_789).unwrap();
        idx.set(3, at);
        assert_eq!(idx.peek(), Some((at, 3)));
        assert_eq!(idx.pop_due(at - TimeDelta::nanoseconds(1)), None);
        assert_eq!(idx.pop_due(at), Some((at, 3)));
        // Past the nanosecond range: kept, last in line, never early.
        let far = DateTime::from_timestamp(20_000_000_000, 0).unwrap();
        idx.set(1, far);
        idx.set(2, at);
        assert_eq!(idx.pop_due(at).map(|e| e.1), Some(2));
        assert_eq!(idx.pop_due(at + TimeDelta::days(365 * 200)), None);
        assert_eq!(idx.len(), 1);
    }
}
