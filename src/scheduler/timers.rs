//! The one timer structure: every pending deadline of every job, earliest
//! first, keyed so that re-keying replaces the old entry.
//!
//! An ordered set of `(deadline, key)` plus a map `key → deadline`: O(log n)
//! insert, remove and re-key, and no stale entry can survive a change
//! because every insert removes the key's previous entry first.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use chrono::{DateTime, Utc};

/// Deadlines keyed by `K`.
#[derive(Debug)]
pub struct TimerIndex<K: Ord + Hash + Clone> {
    order: BTreeSet<(DateTime<Utc>, K)>,
    by_key: HashMap<K, DateTime<Utc>>,
}

impl<K: Ord + Hash + Clone> Default for TimerIndex<K> {
    fn default() -> Self {
        TimerIndex {
            order: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> TimerIndex<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: K, at: DateTime<Utc>) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.order.remove(&(old, key.clone()));
        }
        self.order.insert((at, key));
    }

    /// Removes `key`'s deadline; returns it if there was one.
    pub fn remove(&mut self, key: &K) -> Option<DateTime<Utc>> {
        let at = self.by_key.remove(key)?;
        self.order.remove(&(at, key.clone()));
        Some(at)
    }

    /// The earliest deadline.
    pub fn peek(&self) -> Option<(DateTime<Utc>, &K)> {
        self.order.first().map(|(t, k)| (*t, k))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, K)> {
        let (at, _) = self.order.first()?;
        if *at > now {
            return None;
        }
        let (at, key) = self.order.pop_first()?;
        self.by_key.remove(&key);
        Some((at, key))
    }

    pub fn get(&self, key: &K) -> Option<DateTime<Utc>> {
        self.by_key.get(key).copied()
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
        self.order.insert((at, key));
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
