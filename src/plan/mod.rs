//! The pure diff between what git asks for and what the scheduler runs.
//!
//! `diff(desired, running)` is used by the daemon (to apply) and, later, by
//! `driftcron plan` (to show a pull request's effect). It compares spec
//! digests, so it is cheap for ten thousand jobs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::spec::{JobId, JobSpec};

/// A stable digest of a job spec: FNV-1a over its `Hash` feed. Stable for a
/// given build (it names a spec version in running state and reports; it is
/// not persisted).
pub fn spec_digest(spec: &JobSpec) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    spec.hash(&mut h);
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What must change to make the running jobs match git.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub create: Vec<Arc<JobSpec>>,
    pub update: Vec<Arc<JobSpec>>,
    pub delete: Vec<JobId>,
    pub unchanged: Vec<JobId>,
}

impl Plan {
    /// Whether applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Diffs desired specs against running ones (id → digest).
pub fn diff(desired: &BTreeMap<JobId, JobSpec>, running: &BTreeMap<JobId, u64>) -> Plan {
    let mut plan = Plan::default();
    for (id, spec) in desired {
        match running.get(id) {
            None => plan.create.push(Arc::new(spec.clone())),
            Some(&d) if d == spec_digest(spec) => plan.unchanged.push(id.clone()),
            Some(_) => plan.update.push(Arc::new(spec.clone())),
        }
    }
    plan.delete = running
        .keys()
        .filter(|id| !desired.contains_key(*id))
        .cloned()
        .collect();
    plan
}
