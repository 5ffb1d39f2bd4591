//! The one timer structure: every pending deadline of every job, earliest
//! first, keyed so that re-keying replaces the old entry.
//!
//! An ordered map `(deadline, sequence) → key` plus a map `key → (deadline,
//! sequence)`: O(log n) insert, remove and re-key, and no stale entry can
//! survive a change because every insert removes the key's previous entry
//! first. The sequence number breaks ties in insertion order, so the
//! ordered side compares integers only (a hundred thousand jobs due on the
//! same second would otherwise compare their ids on every operation).

use std::collections::BTreeMap;
use std::hash::Hash;

use chrono::{DateTime, Utc};

use crate::fxhash::FxHashMap;

type Slot = (DateTime<Utc>, u64);

/// Deadlines keyed by `K`.
#[derive(Debug)]
pub struct TimerIndex<K: Hash + Eq + Clone> {
    order: BTreeMap<Slot, K>,
    by_key: FxHashMap<K, Slot>,
    seq: u64,
}

impl<K: Hash + Eq + Clone> Default for TimerIndex<K> {
    fn default() -> Self {
        TimerIndex {
            order: BTreeMap::new(),
            by_key: FxHashMap::default(),
            seq: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> TimerIndex<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: K, at: DateTime<Utc>) {
        self.seq += 1;
        let slot = (at, self.seq);
        if let Some(old) = self.by_key.insert(key.clone(), slot) {
            self.order.remove(&old);
        }
        self.order.insert(slot, key);
    }

    /// Removes `key`'s deadline; returns it if there was one.
    pub fn remove(&mut self, key: &K) -> Option<DateTime<Utc>> {
        let slot = self.by_key.remove(key)?;
        self.order.remove(&slot);
        Some(slot.0)
    }

    /// The earliest deadline.
    pub fn peek(&self) -> Option<(DateTime<Utc>, &K)> {
        self.order.first_key_value().map(|((t, _), k)| (*t, k))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, K)> {
        let ((at, _), _) = self.order.first_key_value()?;
        if *at > now {
            return None;
        }
        let ((at, _), key) = self.order.pop_first()?;
        self.by_key.remove(&key);
        Some((at, key))
    }

    pub fn get(&self, key: &K) -> Option<DateTime<Utc>> {
        self.by_key.get(key).map(|s| s.0)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Keys in the index (for the audit).
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.by_key.keys()
    }

    /// The two halves agree (for the audit: a broken index is a leak).
    pub fn consistent(&self) -> bool {
        self.order.len() == self.by_key.len()
            && self
                .order
                .iter()
                .all(|(t, k)| self.by_key.get(k) == Some(t))
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.order.clear();
        self.by_key.clear();
    }

    #[doc(hidden)]
    /// Test hook: inserts into the ordered half only, as a buggy heap update
    /// would, so the audit has something to find.
    pub fn inject_stale(&mut self, key: K, at: DateTime<Utc>) {
        self.seq += 1;
        self.order.insert((at, self.seq), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn rekey_leaves_no_stale_entry() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut idx = TimerIndex::default();
        idx.set("a", t0 + TimeDelta::seconds(10));
        idx.set("b", t0 + TimeDelta::seconds(5));
        idx.set("a", t0 + TimeDelta::seconds(1));
        assert_eq!(idx.len(), 2);
        assert!(idx.consistent());
        assert_eq!(idx.peek(), Some((t0 + TimeDelta::seconds(1), &"a")));
        assert_eq!(idx.pop_due(t0), None);
        assert_eq!(
            idx.pop_due(t0 + TimeDelta::seconds(5)).map(|e| e.1),
            Some("a")
        );
        assert_eq!(
            idx.pop_due(t0 + TimeDelta::seconds(5)).map(|e| e.1),
            Some("b")
        );
        assert!(idx.is_empty());
        idx.set("c", t0);
        assert_eq!(idx.remove(&"c"), Some(t0));
        assert!(idx.is_empty() && idx.consistent());
        idx.inject_stale("d", t0);
        assert!(!idx.consistent());
    }
}
