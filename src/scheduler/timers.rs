//! The one timer structure: every pending deadline of every job, earliest
//! first, keyed so that re-keying replaces the old entry.
//!
//! Cron deadlines are few and shared: a hundred thousand jobs on
//! `* * * * * *` have one deadline between them, and a minute's jobs at
//! most sixty. So keys are grouped by deadline. Each distinct deadline is a
//! bucket holding its keys in a doubly linked list, in the order they were
//! set; the buckets sit in a 4-ary min-heap by deadline, and a hash map
//! finds a deadline's bucket. Links live in a dense table indexed by key
//! (keys are small integers the scheduler hands out: a job's registry slot
//! and the timer's kind), 12 bytes a key.
//!
//! A burst is then O(1) a fire: popping takes the head of the earliest
//! bucket, and re-arming a key for the next slot appends it to the bucket
//! the previous key went to (remembered, so not even a hash). The heap
//! only moves when a deadline appears or empties: O(log d) for d distinct
//! deadlines, never more than O(log n). A heap entry per key, as before,
//! paid a sift through the nine levels of a 4-ary heap of a hundred
//! thousand entries for every fire: a sixth of the scheduler's time in a
//! burst.
//!
//! No stale entry can survive a change: a key has at most one link, every
//! set unlinks it first, and a bucket leaves the heap and the map the
//! moment its last key leaves it. Keys due at the same instant pop in the
//! order they were set (a re-key sets again, so it goes last).

use chrono::{DateTime, Utc};

use crate::fxhash::FxHashMap;

/// Children per heap node: the heap holds distinct deadlines, so it is
/// small, but a burst empties its top bucket and the next sift should be
/// shallow.
const ARITY: usize = 4;

/// "No key" and "no bucket" in links.
const NONE: u32 = u32::MAX;

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

/// A key's place: its bucket and its neighbours there.
#[derive(Debug, Clone, Copy)]
struct Link {
    bucket: u32,
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    bucket: NONE,
    prev: NONE,
    next: NONE,
};

/// The keys due at one deadline, oldest first.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    at_ns: i64,
    head: u32,
    tail: u32,
    len: u32,
    /// Its index in the heap.
    slot: u32,
}

/// A heap entry: the deadline is copied in so that sifting compares
/// without following the bucket id.
#[derive(Debug, Clone, Copy)]
struct Top {
    at_ns: i64,
    bucket: u32,
}

/// Deadlines keyed by small integers.
#[derive(Debug, Default)]
pub struct TimerIndex {
    /// By key.
    links: Vec<Link>,
    /// By bucket id; ids of emptied buckets wait in `free` for reuse.
    buckets: Vec<Bucket>,
    free: Vec<u32>,
    heap: Vec<Top>,
    by_at: FxHashMap<i64, u32>,
    /// The bucket the last set went to: a burst re-arms every key for the
    /// same next deadline.
    last: Option<(i64, u32)>,
    len: usize,
    /// Deadlines set, `now`s asked about, and deadlines handed out: three
    /// memos, as a fire does one of each.
    set_conv: Conv,
    now_conv: Conv,
    out_conv: Conv,
}

impl TimerIndex {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: u32, at: DateTime<Utc>) {
        // The one value that means "no key" in the lists; the scheduler's
        // keys (twice a registry slot, plus one) never reach it.
        debug_assert_ne!(key, NONE);
        let ns = self.set_conv.ns(at);
        let k = key as usize;
        if k >= self.links.len() {
            self.links.resize(k + 1, UNLINKED);
        }
        self.unlink(key);
        let b = self.bucket_for(ns);
        self.append(key, b);
    }

    /// Removes `key`'s deadline; returns it if there was one.
    pub fn remove(&mut self, key: u32) -> Option<DateTime<Utc>> {
        self.unlink(key).map(from_ns)
    }

    /// The earliest deadline, and the key that pops first there (`u32::MAX`
    /// for a deadline with no key, which only `inject_stale` leaves).
    pub fn peek(&self) -> Option<(DateTime<Utc>, u32)> {
        let top = self.heap.first()?;
        Some((from_ns(top.at_ns), self.buckets[top.bucket as usize].head))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, u32)> {
        let now_ns = self.now_conv.ns(now);
        loop {
            let top = *self.heap.first()?;
            if top.at_ns > now_ns {
                return None;
            }
            let key = self.buckets[top.bucket as usize].head;
            if key == NONE {
                // An empty bucket (only `inject_stale` makes one): gone.
                self.drop_bucket(top.bucket);
                continue;
            }
            self.unlink(key);
            return Some((self.out_conv.at(top.at_ns), key));
        }
    }

    pub fn get(&self, key: u32) -> Option<DateTime<Utc>> {
        match self.links.get(key as usize)?.bucket {
            NONE => None,
            b => Some(from_ns(self.buckets[b as usize].at_ns)),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys in the index (for the audit).
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.bucket != NONE)
            .map(|(k, _)| k as u32)
    }

    /// Links, buckets, heap and map all agree, and the heap is ordered
    /// (for the audit: a broken index is a leak).
    pub fn consistent(&self) -> bool {
        let mut listed = 0usize;
        let heap_ok = self.heap.iter().enumerate().all(|(i, top)| {
            let Some(b) = self.buckets.get(top.bucket as usize) else {
                return false;
            };
            let mut n = 0u32;
            let mut prev = NONE;
            let mut at = b.head;
            while at != NONE && n <= b.len {
                match self.links.get(at as usize) {
                    Some(l) if l.bucket == top.bucket && l.prev == prev => {
                        (prev, at) = (at, l.next);
                        n += 1;
                    }
                    _ => return false,
                }
            }
            listed += n as usize;
            n == b.len
                && b.len > 0
                && b.tail == prev
                && b.slot == i as u32
                && b.at_ns == top.at_ns
                && self.by_at.get(&top.at_ns) == Some(&top.bucket)
                && (i == 0 || self.heap[(i - 1) / ARITY].at_ns < top.at_ns)
        });
        heap_ok
            && listed == self.len
            && self.keys().count() == self.len
            && self.by_at.len() == self.heap.len()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.links.clear();
        self.buckets.clear();
        self.free.clear();
        self.heap.clear();
        self.by_at.clear();
        self.last = None;
        self.len = 0;
    }

    #[doc(hidden)]
    /// Test hook: leaves a deadline in the heap with no key in it, as a
    /// removal that forgot its bucket would, so the audit has something to
    /// find.
    pub fn inject_stale(&mut self, at: DateTime<Utc>) {
        // In the heap, unknown to the map: found even when a real bucket
        // waits at the same deadline.
        self.new_bucket(to_ns(at));
    }

    /// The bucket for deadline `ns`, made if there is none.
    fn bucket_for(&mut self, ns: i64) -> u32 {
        if let Some((at, b)) = self.last
            && at == ns
        {
            return b;
        }
        let b = match self.by_at.get(&ns) {
            Some(&b) => b,
            None => {
                let b = self.new_bucket(ns);
                self.by_at.insert(ns, b);
                b
            }
        };
        self.last = Some((ns, b));
        b
    }

    /// An empty bucket for `ns`, placed in the heap (not in the map).
    fn new_bucket(&mut self, ns: i64) -> u32 {
        let bucket = Bucket {
            at_ns: ns,
            head: NONE,
            tail: NONE,
            len: 0,
            slot: self.heap.len() as u32,
        };
        let b = match self.free.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        self.heap.push(Top {
            at_ns: ns,
            bucket: b,
        });
        self.sift_up(self.heap.len() - 1);
        b
    }

    fn append(&mut self, key: u32, b: u32) {
        let bucket = &mut self.buckets[b as usize];
        let tail = bucket.tail;
        bucket.tail = key;
        bucket.len += 1;
        if tail == NONE {
            bucket.head = key;
        } else {
            self.links[tail as usize].next = key;
        }
        self.links[key as usize] = Link {
            bucket: b,
            prev: tail,
            next: NONE,
        };
        self.len += 1;
    }

    /// Takes `key` out of its bucket, and the bucket out of the heap if it
    /// emptied; returns the deadline it had.
    fn unlink(&mut self, key: u32) -> Option<i64> {
        let link = *self.links.get(key as usize)?;
        if link.bucket == NONE {
            return None;
        }
        self.links[key as usize] = UNLINKED;
        self.len -= 1;
        if link.prev != NONE {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next != NONE {
            self.links[link.next as usize].prev = link.prev;
        }
        let bucket = &mut self.buckets[link.bucket as usize];
        if link.prev == NONE {
            bucket.head = link.next;
        }
        if link.next == NONE {
            bucket.tail = link.prev;
        }
        bucket.len -= 1;
        let at = bucket.at_ns;
        if bucket.len == 0 {
            self.drop_bucket(link.bucket);
        }
        Some(at)
    }

    /// Removes an (empty) bucket from the heap and the map.
    fn drop_bucket(&mut self, b: u32) {
        let Bucket { at_ns, slot, .. } = self.buckets[b as usize];
        // An injected stale bucket is not the one the map knows.
        if self.by_at.get(&at_ns) == Some(&b) {
            self.by_at.remove(&at_ns);
        }
        if self.last.is_some_and(|(_, l)| l == b) {
            self.last = None;
        }
        self.free.push(b);
        let i = slot as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(i, last);
        self.heap.pop();
        if i < last {
            self.place(i);
            if i > 0 && self.heap[i].at_ns < self.heap[(i - 1) / ARITY].at_ns {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
    }

    #[inline]
    fn place(&mut self, i: usize) {
        self.buckets[self.heap[i].bucket as usize].slot = i as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        let e = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if e.at_ns >= self.heap[parent].at_ns {
                break;
            }
            self.heap[i] = self.heap[parent];
            self.place(i);
            i = parent;
        }
        self.heap[i] = e;
        self.place(i);
    }

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
                if self.heap[c].at_ns < self.heap[best].at_ns {
                    best = c;
                }
            }
            if self.heap[best].at_ns >= e.at_ns {
                break;
            }
            self.heap[i] = self.heap[best];
            self.place(i);
            i = best;
        }
        self.heap[i] = e;
        self.place(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn rekey_leaves_no_stale_entry() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let (a, b, c) = (0, 1, 2);
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
        idx.inject_stale(t0);
        assert!(!idx.consistent());
        idx.clear();
        // Found even where a live key waits at the same deadline, and
        // dropping it leaves that key's bucket alone.
        idx.set(a, t0);
        idx.inject_stale(t0);
        assert!(!idx.consistent());
        let popped: Vec<u32> = std::iter::from_fn(|| idx.pop_due(t0).map(|e| e.1)).collect();
        assert_eq!(popped, vec![a]);
        idx.inject_stale(t0);
        // The index never hands out the empty deadline: it drops it.
        assert_eq!(idx.pop_due(t0 + TimeDelta::days(1)), None);
        assert!(idx.is_empty() && idx.consistent());
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
            if seq % 97 == 0 {
                assert!(idx.consistent());
            }
        }
        assert!(idx.consistent());
        model.sort();
        let popped: Vec<u32> =
            std::iter::from_fn(|| idx.pop_due(t0 + TimeDelta::days(1)).map(|e| e.1)).collect();
        assert_eq!(popped, model.iter().map(|e| e.2).collect::<Vec<_>>());
    }

    /// A burst: every key due at once, each re-armed a second later as it
    /// pops. Order is kept across rounds, and the heap never holds more
    /// than the two deadlines involved.
    #[test]
    fn a_burst_rearms_in_order_through_two_buckets() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut idx = TimerIndex::default();
        for k in 0..1_000 {
            idx.set(k, t0);
        }
        for round in 0..3 {
            let now = t0 + TimeDelta::seconds(round);
            let mut popped = Vec::new();
            while let Some((at, k)) = idx.pop_due(now) {
                assert_eq!(at, now);
                popped.push(k);
                idx.set(k, now + TimeDelta::seconds(1));
                assert!(idx.heap.len() <= 2);
            }
            assert_eq!(popped, (0..1_000).collect::<Vec<_>>());
            assert!(idx.consistent() && idx.len() == 1_000);
        }
        // Moving a key out and back puts it last in its old deadline.
        let next = t0 + TimeDelta::seconds(3);
        idx.set(5, next + TimeDelta::seconds(9));
        idx.set(5, next);
        assert_eq!(idx.peek(), Some((next, 0)));
        let order: Vec<u32> = std::iter::from_fn(|| idx.pop_due(next).map(|e| e.1)).collect();
        assert_eq!(order.last(), Some(&5));
        assert!(idx.is_empty() && idx.consistent() && idx.buckets.len() <= 3);
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
