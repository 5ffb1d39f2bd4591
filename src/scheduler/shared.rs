//! One job's part of a buffer the whole snapshot shares.
//!
//! A full [`RunningState`](super::RunningState) used to give each job its
//! own `Vec` of recent outcomes: a thousand jobs, a thousand allocations of
//! 800 bytes, freed together when the reader dropped the snapshot. glibc
//! keeps such holes in its heap and hands them out again in an order no
//! one controls, so a daemon read once a minute sat at one of two RSS
//! levels half a megabyte apart, reading by reading (see the soak in the
//! README). Held in one buffer, a snapshot's outcomes are one allocation,
//! which at a few hundred jobs or more is above the daemon's mapping
//! threshold ([`crate::memory`]): unless the heap has a free block that
//! large, it is mapped on its own and goes back to the kernel whole when
//! the snapshot is dropped.
//!
//! The price: one job's state kept alive (cloned out of a snapshot) keeps
//! the whole buffer alive with it.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A slice of a shared buffer. Reads as `&[T]`; serializes as a sequence,
/// so the JSON is that of a `Vec<T>`. 24 bytes, as a `Vec` is: a snapshot
/// holds one per job.
pub struct SharedSlice<T> {
    all: Arc<[T]>,
    /// `all[start..start + len]`, always within `all` (checked where it is
    /// made). `u32`s: a snapshot's outcomes are eight per job at most.
    start: u32,
    len: u32,
}

impl<T> SharedSlice<T> {
    /// `all[at]`, or an empty slice of `all` when `at` is not within it
    /// (a caller's bug, caught in debug builds; never a panic in release).
    pub fn part(all: &Arc<[T]>, at: Range<usize>) -> Self {
        let fits = at.start <= at.end && at.end <= all.len();
        debug_assert!(fits, "{at:?} is not within 0..{}", all.len());
        let (start, len) = match (u32::try_from(at.start), u32::try_from(at.len())) {
            (Ok(start), Ok(len)) if fits => (start, len),
            _ => (0, 0),
        };
        Self {
            all: Arc::clone(all),
            start,
            len,
        }
    }
}

impl<T> Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // In range by construction (`part`, `From<Vec<T>>`).
        let start = self.start as usize;
        &self.all[start..start + self.len as usize]
    }
}

impl<T> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        Self {
            all: Arc::clone(&self.all),
            start: self.start,
            len: self.len,
        }
    }
}

impl<T> From<Vec<T>> for SharedSlice<T> {
    /// A buffer of its own. Longer than `u32::MAX` (never a snapshot's),
    /// it keeps its first `u32::MAX` elements visible.
    fn from(v: Vec<T>) -> Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        Self {
            all: v.into(),
            start: 0,
            len,
        }
    }
}

impl<T> Default for SharedSlice<T> {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<'a, T> IntoIterator for &'a SharedSlice<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Equal when the elements are, whichever buffers hold them.
impl<T: PartialEq> PartialEq for SharedSlice<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for SharedSlice<T> {}

impl<T: Serialize> Serialize for SharedSlice<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

/// Read back on its own: each deserialized slice owns its buffer.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for SharedSlice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_their_own_range_of_one_buffer() {
        let all: Arc<[u32]> = vec![1, 2, 3, 4, 5].into();
        let a = SharedSlice::part(&all, 0..2);
        let b = SharedSlice::part(&all, 2..5);
        let none = SharedSlice::part(&all, 5..5);
        assert_eq!(&*a, &[1, 2]);
        assert_eq!(&*b, &[3, 4, 5]);
        assert!(none.is_empty());
        // One buffer: the parts and `all` share it.
        assert_eq!(Arc::strong_count(&all), 4);
        assert_eq!(std::mem::size_of::<SharedSlice<u32>>(), 24);
    }

    /// Out of range is empty in release builds, not a panic (and a caught
    /// bug in debug builds).
    #[test]
    #[cfg(not(debug_assertions))]
    fn a_part_out_of_range_is_empty() {
        let all: Arc<[u32]> = vec![1, 2, 3].into();
        assert!(SharedSlice::part(&all, 2..9).is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = SharedSlice::part(&all, 3..2);
        assert!(backwards.is_empty());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is not within")]
    fn a_part_out_of_range_is_a_bug_in_debug_builds() {
        let all: Arc<[u32]> = vec![1, 2, 3].into();
        let _ = SharedSlice::part(&all, 2..9);
    }

    #[test]
    fn equal_by_elements_and_serialized_as_a_list() {
        let all: Arc<[u32]> = vec![7, 8, 9].into();
        let part = SharedSlice::part(&all, 1..3);
        let own = SharedSlice::from(vec![8, 9]);
        assert_eq!(part, own);
        assert_ne!(part, SharedSlice::part(&all, 0..2));
        let json = serde_json::to_string(&part).unwrap();
        assert_eq!(json, "[8,9]");
        let back: SharedSlice<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, part);
        assert_eq!(format!("{part:?}"), "[8, 9]");
        assert_eq!(part.iter().sum::<u32>(), 17);
        assert_eq!((&part).into_iter().count(), 2);
    }
}
