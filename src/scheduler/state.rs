//! What the scheduler is running, as data: the snapshot the drift report,
//! the API and the tests read. Serialize-only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{RunId, SpecDigest};
use super::shared::SharedSlice;
use crate::spec::JobId;

/// Upper bounds (seconds) of the lateness histogram's buckets: how long
/// after its slot a run started (jitter and queueing included). A healthy
/// scheduler lives in the first three; the rest say how bad it got.
pub const LATENESS_BUCKETS: [f64; 10] =
    [0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0];

/// Upper bounds (seconds) of the run duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 10] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// [`LATENESS_BUCKETS`] in milliseconds, what a run is observed in: an
/// observation per run compares integers, where converting each to
/// seconds was a floating-point division per run (a tenth of a run's end
/// in a profile). Every bound is a whole number of milliseconds (tested).
pub const LATENESS_BUCKETS_MS: [u64; 10] = ms_bounds(&LATENESS_BUCKETS);

/// [`DURATION_BUCKETS`] in milliseconds (see [`LATENESS_BUCKETS_MS`]).
pub const DURATION_BUCKETS_MS: [u64; 10] = ms_bounds(&DURATION_BUCKETS);

const fn ms_bounds(secs: &[f64; 10]) -> [u64; 10] {
    let mut ms = [0; 10];
    let mut i = 0;
    while i < 10 {
        // Rounded: 0.005 s is not exactly representable, 5 ms is.
        ms[i] = (secs[i] * 1000.0 + 0.5) as u64;
        i += 1;
    }
    ms
}

/// A fixed-size histogram owned by the scheduler task (no atomics: one
/// writer). Cumulative since start, like the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations at or below each bound and above the one before (not
    /// cumulative), then those above the last bound.
    pub buckets: [u64; 11],
    /// Sum of observations, milliseconds.
    pub sum_ms: u64,
    pub count: u64,
}

impl Histogram {
    /// Records one observation of `ms` milliseconds against `bounds_ms`
    /// (upper bounds in milliseconds, such as [`LATENESS_BUCKETS_MS`]).
    pub fn observe(&mut self, bounds_ms: &[u64; 10], ms: u64) {
        let i = bounds_ms
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(bounds_ms.len());
        self.buckets[i] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.count += 1;
    }
}

/// Totals since start. Every skip, drop and overflow has a named counter:
/// nothing the scheduler decides not to do is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Slots that came due (each slot once, whatever happened to it).
    pub fires: u64,
    /// Executions started (scheduled, retried, caught up or triggered).
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub spawn_failed: u64,
    /// A run was due while another ran and `concurrency = "forbid"`.
    pub skipped_forbid: u64,
    /// A run was due while `max_instances` ran (`concurrency = "allow"`).
    pub skipped_max_instances: u64,
    /// Running executions cancelled by `concurrency = "replace"`.
    pub replaced: u64,
    /// A run found the job's own queue full (`concurrency = "queue"`).
    pub job_queue_overflow: u64,
    /// A run found the global queue (`max_queued`) full.
    pub global_queue_overflow: u64,
    /// Slots passed over because the timer woke past them (clock jump,
    /// suspend, overload) and `catch_up` did not run them.
    pub missed_misfire: u64,
    /// Queued runs that could not start within `starting_deadline`.
    pub missed_starting_deadline: u64,
    /// Queued runs dropped because their job changed or left git.
    pub dropped_on_change: u64,
    /// Runs dropped from queues at shutdown.
    pub dropped_on_shutdown: u64,
    pub retries_scheduled: u64,
    /// A retry would have landed past the job's next slot.
    pub retries_abandoned: u64,
    pub triggered: u64,
    /// Executions whose process group needed SIGKILL.
    pub killed: u64,
    /// Processes left in a run's group after its leader exited, killed.
    pub stragglers_killed: u64,
    pub audit_runs: u64,
    pub audit_violations: u64,
    /// Start minus slot of every scheduled run's first attempt
    /// ([`LATENESS_BUCKETS`]; retries and manual triggers are not late).
    pub lateness: Histogram,
    /// Finish minus start of every run that started ([`DURATION_BUCKETS`]).
    pub duration: Histogram,
}

/// One execution in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionState {
    pub run_id: RunId,
    pub job: JobId,
    /// Process group id (0 until spawned, and for HTTP runs).
    pub pid: u32,
    pub attempt: u32,
    /// The spec generation it was started from.
    pub generation: u64,
    pub scheduled_at: DateTime<Utc>,
    pub started: DateTime<Utc>,
    /// When its timeout expires, if it has one.
    pub deadline: Option<DateTime<Utc>>,
    pub manual: bool,
    /// Cancellation requested (replace, removal, shutdown) and when.
    pub cancelling_since: Option<DateTime<Utc>>,
    /// Its job left git or changed, and when.
    pub orphaned_since: Option<DateTime<Utc>>,
}

/// The outcome of a finished execution (kept in a short ring per job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub run_id: RunId,
    pub attempt: u32,
    /// `succeeded`, `failed`, `timed_out`, `cancelled` or `spawn_failed`.
    /// Borrowed from a static name when the scheduler builds it: a full
    /// snapshot holds eight of these per job, and an owned copy of each
    /// name was one more allocation per outcome per snapshot.
    pub outcome: std::borrow::Cow<'static, str>,
    pub exit_code: Option<i32>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}

/// One job as the scheduler holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub id: JobId,
    /// Digest of the spec it runs (16 hex digits in JSON).
    pub spec_digest: SpecDigest,
    /// Bumped each time an apply changed the spec.
    pub generation: u64,
    /// Enabled in git.
    pub enabled: bool,
    /// Suspended at run time (API), whatever git says.
    pub suspended: bool,
    /// The run-time state differs from git: suspended or resumed through
    /// the API, or running a manually triggered execution.
    pub overridden: bool,
    /// Next slot (before jitter).
    pub next_fire: Option<DateTime<Utc>>,
    pub active: Vec<ExecutionState>,
    pub queued: usize,
    /// Oldest first. A part of one buffer the whole snapshot's outcomes
    /// share (see [`SharedSlice`]).
    pub recent: SharedSlice<OutcomeRecord>,
}

/// Why an execution is reported as leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakReason {
    /// Its job left git and it outlived the kill grace.
    JobRemoved,
    /// Its job's spec changed and it outlived the kill grace.
    JobChanged,
    /// It is past its timeout plus the kill grace and still not ended.
    PastTimeout,
    /// A process group the scheduler started is alive with no execution.
    UntrackedProcess,
}

/// An execution (or process) that should not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedTask {
    pub reason: LeakReason,
    pub job: String,
    pub run_id: Option<String>,
    pub pid: u32,
    pub started: Option<DateTime<Utc>>,
    /// Seconds since it started (or since it was found).
    pub age_secs: i64,
}

/// The last audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub at: Option<DateTime<Utc>>,
    pub timer_entries: usize,
    pub expected_timer_entries: usize,
    pub tracked_executions: usize,
    /// Runs the lanes hold (handed over and not yet reported). The name
    /// predates the lanes, when each run was a task; it stays for the
    /// API's readers.
    pub owned_tasks: usize,
    /// Each violation found, described.
    pub violations: Vec<String>,
}

/// How many jobs are in each state (always complete, whatever
/// [`JobFilter`] asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub total: usize,
    /// Firing on schedule.
    pub active: usize,
    /// Stopped through the API.
    pub suspended: usize,
    /// `enabled = false` in git (and not resumed through the API).
    pub disabled: usize,
    /// Differing from git at run time (see [`JobState::overridden`]).
    pub overridden: usize,
}

/// Which jobs a snapshot lists: the counts are always there, but a list
/// of a hundred thousand jobs is not what `/metrics` or one job's page
/// should pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFilter {
    All,
    One(crate::spec::JobId),
    None,
}

/// The whole running state at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningState {
    pub now: DateTime<Utc>,
    /// The revision the jobs came from (last applied).
    pub revision: Option<String>,
    /// The jobs the snapshot was asked for ([`JobFilter`]), by id.
    pub jobs: Vec<JobState>,
    pub job_counts: JobCounts,
    pub running: usize,
    pub max_running: u32,
    pub queued: usize,
    pub max_queued: u32,
    pub leaked: Vec<LeakedTask>,
    pub counters: Counters,
    pub audit: AuditReport,
}

impl RunningState {
    pub fn job(&self, id: &str) -> Option<&JobState> {
        self.jobs.iter().find(|j| j.id == *id)
    }
}

/// What `apply` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Running executions cancelled because their job left or changed
    /// (`on_remove = "cancel"`).
    pub cancelled: usize,
    /// Running executions left to finish (`on_remove = "drain"`).
    pub draining: usize,
}

/// What `shutdown` had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Executions that finished on their own within the deadline.
    pub drained: usize,
    /// Executions cancelled after the deadline (SIGTERM was enough).
    pub cancelled: usize,
    /// Executions that needed SIGKILL.
    pub killed: Vec<String>,
    /// Tasks aborted because they did not end even after SIGKILL.
    pub abandoned: Vec<String>,
    /// Queued runs dropped.
    pub dropped_queued: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer bounds pick the bucket the seconds did: the old rule
    /// (`ms / 1000.0 <= bound`) over every millisecond around each bound.
    #[test]
    fn millisecond_bounds_pick_the_buckets_seconds_did() {
        for (secs, ms) in [
            (LATENESS_BUCKETS, LATENESS_BUCKETS_MS),
            (DURATION_BUCKETS, DURATION_BUCKETS_MS),
        ] {
            for (b, m) in secs.iter().zip(ms) {
                assert_eq!(*b * 1000.0, m as f64, "{b} s is a whole number of ms");
            }
            let around = ms.iter().flat_map(|m| m.saturating_sub(2)..m + 3);
            for v in (0..50).chain(around).chain([u64::MAX / 2]) {
                let by_secs = secs
                    .iter()
                    .position(|b| v as f64 / 1000.0 <= *b)
                    .unwrap_or(10);
                let mut h = Histogram::default();
                h.observe(&ms, v);
                assert_eq!(h.buckets[by_secs], 1, "{v} ms");
                assert_eq!((h.count, h.sum_ms), (1, v));
            }
        }
    }
}
