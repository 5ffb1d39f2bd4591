//! Fixtures the unit tests of several layers share: specs loaded through
//! the real loader, and the running state a scheduler would report for
//! them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::plan::spec_digest;
use crate::scheduler::SpecDigest;
use crate::scheduler::state::{AuditReport, Counters, JobState, LeakedTask, RunningState};
use crate::snapshot::Snapshot;
use crate::spec::{JobId, JobSpec, LoadOptions, load};

/// The instant the fixtures are loaded and reported at (2026-01-01).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

/// `files` (path, TOML) loaded as one revision; they must be valid.
pub fn specs(files: &[(&str, &str)]) -> BTreeMap<JobId, Arc<JobSpec>> {
    let snapshot = Snapshot::from_texts("r", files);
    let l = load(
        &snapshot,
        &LoadOptions {
            now: now(),
            max_jobs: None,
        },
    );
    assert!(l.is_valid(), "{:?}", l.diagnostics);
    l.desired.jobs
}

/// A job running `spec`, first generation, nothing in flight.
pub fn job_state(id: &str, spec: &JobSpec) -> JobState {
    JobState {
        id: JobId::parse(id).unwrap(),
        spec_digest: SpecDigest(spec_digest(spec)),
        generation: 1,
        enabled: true,
        suspended: false,
        overridden: false,
        next_fire: None,
        active: vec![],
        queued: 0,
        recent: Default::default(),
    }
}

/// A scheduler's report of `jobs`, in the order given (a snapshot's are
/// sorted by id).
pub fn running(jobs: Vec<JobState>, leaked: Vec<LeakedTask>, rev: &str) -> RunningState {
    RunningState {
        now: now(),
        revision: Some(rev.into()),
        job_counts: Default::default(),
        jobs,
        running: 0,
        max_running: 64,
        queued: 0,
        max_queued: 1024,
        leaked,
        counters: Counters::default(),
        audit: AuditReport::default(),
    }
}
