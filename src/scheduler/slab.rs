//! The running executions' records, by id: a slab, so starting or ending a
//! run neither allocates nor hashes.
//!
//! A hash map of boxed records cost, per run, a box from glibc and a hash
//! insert and remove; in a burst of a hundred thousand runs the box alone
//! was a sixth of a fire (more runs are started in a burst than glibc's
//! per-thread cache holds, so each went through the arena). Here a record
//! lives in a slot of one vector, which grows to the most runs ever alive
//! at once and is reused from then on.
//!
//! An id is the slot in its low 32 bits and the slot's use count in its
//! high 32, so an id names one run only: a late message for an ended run
//! finds nothing, even once its slot holds another. No id is 0 (use
//! counts start at 1), which the scheduler keeps for a run it does not
//! track.

/// Records by id, in slots reused as runs end.
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Empty slots, the most recently emptied last (reused first: its
    /// memory is the likeliest in cache).
    free: Vec<u32>,
    len: usize,
}

struct Slot<T> {
    /// Uses of this slot so far, the current one included.
    uses: u32,
    value: Option<T>,
}

fn split(id: u64) -> (usize, u32) {
    ((id & u64::from(u32::MAX)) as usize, (id >> 32) as u32)
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its id.
    pub fn insert(&mut self, value: T) -> u64 {
        self.len += 1;
        let at = match self.free.pop() {
            Some(at) => at as usize,
            None => {
                self.slots.push(Slot {
                    uses: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[at];
        // Wrapping skips 0, so no id is 0.
        slot.uses = slot.uses.checked_add(1).unwrap_or(1);
        slot.value = Some(value);
        (u64::from(slot.uses) << 32) | at as u64
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        let (at, uses) = split(id);
        self.slots
            .get(at)
            .filter(|s| s.uses == uses)
            .and_then(|s| s.value.as_ref())
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let (at, uses) = split(id);
        self.slots
            .get_mut(at)
            .filter(|s| s.uses == uses)
            .and_then(|s| s.value.as_mut())
    }

    pub fn remove(&mut self, id: u64) -> Option<T> {
        let (at, uses) = split(id);
        let slot = self.slots.get_mut(at).filter(|s| s.uses == uses)?;
        let value = slot.value.take()?;
        self.free.push(at as u32);
        self.len -= 1;
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }

    /// Empties every slot (their room stays, as after any run).
    pub fn clear(&mut self) {
        for (at, slot) in self.slots.iter_mut().enumerate() {
            if slot.value.take().is_some() {
                self.free.push(at as u32);
            }
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_one_use_of_a_slot() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_ne!(a, 0);
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None);
        // The slot is reused under a new id; the old one finds nothing.
        let c = slab.insert("c");
        assert_eq!(c & 0xffff_ffff, a & 0xffff_ffff);
        assert_ne!(c, a);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.len(), 2);
        *slab.get_mut(b).unwrap() = "B";
        let mut all: Vec<_> = slab.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, ["B", "c"]);
        slab.clear();
        assert_eq!(slab.len(), 0);
        assert_eq!(slab.get(b), None);
        // Room is kept: no slot is added for the next two.
        slab.insert("d");
        slab.insert("e");
        assert_eq!(slab.slots.len(), 2);
    }

    #[test]
    fn a_slot_used_four_billion_times_never_makes_id_0() {
        let mut slab = Slab::default();
        let a = slab.insert(1);
        slab.remove(a);
        slab.slots[0].uses = u32::MAX;
        let b = slab.insert(2);
        assert_ne!(b, 0);
        assert_eq!(b >> 32, 1);
        assert_eq!(slab.get(b), Some(&2));
    }
}
