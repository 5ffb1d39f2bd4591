//! The scheduler task: the single owner of the job registry, the timer
//! index, the queues and every execution. Everything else talks to it
//! through bounded commands and reads snapshots, so no structure has two
//! writers and every run it starts is held by one of its lanes (see
//! `tasks.rs`) and tracked by a record.

use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use crate::fxhash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::clock::{Clock, delta};
use super::executor::{ExecResult, ExecShared, ExecStart, Outcome, group_alive, signal_group};
use super::ids::{RunId, SpecDigest, run_id};
use super::schedules::{ScheduleId, Schedules};
use super::shared::SharedSlice;
use super::slab::Slab;
use super::state::{
    ApplyReport, AuditReport, Counters, DURATION_BUCKETS_MS, ExecutionState, JobCounts, JobFilter,
    JobState, LATENESS_BUCKETS_MS, LeakReason, LeakedTask, OutcomeRecord, RunningState,
    ShutdownReport,
};
use super::tasks::{Tasks, panic_message};
use super::timers::TimerIndex;
use super::{Fault, Runner, SchedulerConfig, SchedulerError};
use crate::plan::{Plan, spec_digest};
use crate::spec::job::{CatchUp, Concurrency, JitterMode, OnRemove};
use crate::spec::{JobId, JobSpec};
use futures_util::FutureExt;

/// Finished outcomes kept per job. A ring: memory per job is fixed,
/// whatever the number of runs.
pub const OUTCOME_RING: usize = 8;

/// Longest the timer sleeps without re-reading the wall clock, so a clock
/// jump is noticed within this even when nothing is due.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Most past-due slots enumerated for one job on one wake. Beyond it the
/// rest are counted as missed in one step (a machine suspended for a day
/// must not make an every-second job enumerate 86,400 slots).
pub const MAX_SLOT_SCAN: usize = 10_000;

/// Extra time past timeout + kill grace before a still-running execution
/// is called leaked: SIGKILL and reaping take a moment.
pub const LEAK_SLACK: Duration = Duration::from_secs(2);

/// How long shutdown's last phase waits for runs' own tasks (see
/// `ExecShared::detach`) to be gone after their lanes dropped them: an
/// abort takes effect at the task's next await, which a fork or exec in
/// progress delays.
pub const SHUTDOWN_REAP: Duration = Duration::from_secs(2);

/// Grace used for SIGTERM → SIGKILL at shutdown when a job's own is longer:
/// shutdown is bounded.
pub const SHUTDOWN_KILL_GRACE: Duration = Duration::from_secs(5);

/// Timers handled per turn of the loop. A burst of due jobs is handled in
/// batches with completions drained in between, so finished executions
/// are released as the burst goes instead of piling up until its end.
const FIRE_BATCH: usize = 256;

/// The revision runs see before the first apply.
static NO_REVISION: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));

/// Violations remembered between two audits.
const MAX_NOTICED: usize = 32;

/// What a run returns: its result, or the panic that ended it.
type ExecOutput = Result<ExecResult, Box<dyn Any + Send>>;

/// An execution's future as its lane drives it: a panicking runner
/// ends its execution, not the scheduler.
type RunFuture = futures_util::future::CatchUnwind<
    AssertUnwindSafe<Pin<Box<dyn Future<Output = ExecResult> + Send>>>,
>;

/// A run as the scheduler starts it and, if it waits, its lane drives
/// it: what it returns, tagged with its execution's id. Every panic of
/// the run ends the run, not the scheduler or its lane: one while it is
/// polled, and one while its future is dropped (it would otherwise be
/// dropped outside any guard). A run that ended and then
/// panicked while dropped keeps its result: the bug is in its clean-up,
/// which is logged.
struct ExecTask {
    exec: u64,
    fut: Option<RunFuture>,
}

impl ExecTask {
    fn new(exec: u64, fut: Pin<Box<dyn Future<Output = ExecResult> + Send>>) -> Self {
        ExecTask {
            exec,
            fut: Some(AssertUnwindSafe(fut).catch_unwind()),
        }
    }
}

impl Future for ExecTask {
    type Output = (u64, ExecOutput);

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let exec = self.exec;
        let Some(fut) = self.fut.as_mut() else {
            return std::task::Poll::Pending;
        };
        // A lane drops a run as soon as it is ready, before posting its
        // end (see `Drop` below).
        fut.poll_unpin(cx).map(|out| (exec, out))
    }
}

impl Drop for ExecTask {
    fn drop(&mut self) {
        let fut = self.fut.take();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| drop(fut))) {
            tracing::error!(
                exec = self.exec,
                panic = %panic_message(&*panic),
                "a run panicked while its future was dropped"
            );
        }
    }
}

/// Run-time commands. Senders wait for room in the channel (it is
/// bounded); nothing is dropped.
pub enum Command {
    Apply {
        plan: Plan,
        revision: String,
        reply: oneshot::Sender<ApplyReport>,
    },
    State {
        filter: JobFilter,
        reply: oneshot::Sender<RunningState>,
    },
    Suspend {
        id: JobId,
        reply: oneshot::Sender<Result<(), SchedulerError>>,
    },
    Resume {
        id: JobId,
        reply: oneshot::Sender<Result<(), SchedulerError>>,
    },
    Trigger {
        id: JobId,
        reply: oneshot::Sender<Result<String, SchedulerError>>,
    },
    Audit {
        reply: oneshot::Sender<AuditReport>,
    },
    Shutdown {
        deadline: Duration,
        reply: oneshot::Sender<ShutdownReport>,
    },
    Inject {
        fault: Fault,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerKind {
    Fire,
    Retry,
}

/// A job's slot in the registry. Everything per run and per timer names
/// its job by handle, so the id (a string) is stored once, in the entry,
/// and no fire or finish hashes it. A handle is reused after its job is
/// deleted; the epoch tells versions apart (see `JobEntry::epoch`).
type Handle = u32;

/// A timer's key in the index: the job's handle and the timer's kind.
fn timer_key(job: Handle, kind: TimerKind) -> u32 {
    job * 2 + kind as u32
}

fn timer_of(key: u32) -> (Handle, TimerKind) {
    let kind = if key % 2 == 0 {
        TimerKind::Fire
    } else {
        TimerKind::Retry
    };
    (key / 2, kind)
}

/// Every job, by handle, with an id → handle map for the API's calls.
#[derive(Default)]
struct Registry {
    slots: Vec<Option<JobEntry>>,
    /// Vacant slots, reused before the vector grows.
    free: Vec<Handle>,
    by_id: FxHashMap<JobId, Handle>,
}

impl Registry {
    fn handle(&self, id: &JobId) -> Option<Handle> {
        self.by_id.get(id).copied()
    }

    fn get(&self, h: Handle) -> Option<&JobEntry> {
        self.slots.get(h as usize)?.as_ref()
    }

    fn get_mut(&mut self, h: Handle) -> Option<&mut JobEntry> {
        self.slots.get_mut(h as usize)?.as_mut()
    }

    /// Room for `more` jobs without regrowing: a plan of a hundred thousand
    /// creations reserves once, exactly, instead of doubling past it.
    fn reserve(&mut self, more: usize) {
        let more = more.saturating_sub(self.free.len());
        self.slots.reserve_exact(more);
        self.by_id.reserve(more);
    }

    fn insert(&mut self, entry: JobEntry) -> Handle {
        let id = entry.id().clone();
        let h = match self.free.pop() {
            Some(h) => {
                self.slots[h as usize] = Some(entry);
                h
            }
            None => {
                self.slots.push(Some(entry));
                Handle::try_from(self.slots.len() - 1).expect("fewer than 2^31 jobs")
            }
        };
        self.by_id.insert(id, h);
        h
    }

    fn remove(&mut self, id: &JobId) -> Option<(Handle, JobEntry)> {
        let h = self.by_id.remove(id)?;
        let entry = self.slots[h as usize].take()?;
        self.free.push(h);
        Some((h, entry))
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn iter(&self) -> impl Iterator<Item = (Handle, &JobEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(h, e)| Some((h as Handle, e.as_ref()?)))
    }

    fn values(&self) -> impl Iterator<Item = &JobEntry> {
        self.slots.iter().flatten()
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut JobEntry> {
        self.slots.iter_mut().flatten()
    }
}

/// A run waiting for room.
#[derive(Debug, Clone)]
struct Pending {
    job: Handle,
    /// The job version it belongs to (see `JobEntry::epoch`).
    epoch: u64,
    slot: DateTime<Utc>,
    attempt: u32,
    manual: bool,
}

/// Per-job state: one entry, removed with the job. It is what a job costs
/// the scheduler beyond its spec, a hundred thousand times over at scale,
/// so what is rarely used (a queue, a second concurrent run) is a pointer
/// until used, and the id is the spec's.
struct JobEntry {
    spec: Arc<JobSpec>,
    /// What a fire reads of the spec, copied here (see [`Timing`]).
    timing: Timing,
    digest: u64,
    /// Bumped on each change of this job's spec (shown to users).
    generation: u32,
    /// Unique across all jobs and versions, never reused: a run, queued
    /// run or retry belongs to a job version by epoch, so a job deleted and
    /// created again never inherits the old one's runs.
    epoch: u64,
    next_fire: Option<DateTime<Utc>>,
    /// Run-time override of `enabled` (suspend/resume through the API).
    enabled_override: Option<bool>,
    running: Running,
    queue: JobQueue,
    /// The slot and attempt of a pending retry: boxed, because retries
    /// are rare and the entry is paid for by every job.
    retry: Option<Box<(DateTime<Utc>, u32)>>,
    recent: Ring,
}

/// A job's running executions, in start order. Nearly always none or one,
/// so the first is held inline and only a second concurrent run allocates:
/// a job that ever ran no longer keeps a heap block for this.
#[derive(Debug, Clone, Default)]
struct Running {
    /// The oldest running execution, or 0 (no exec id is 0, see `slab.rs`).
    first: u64,
    /// The others, allocated for a second concurrent run and freed when
    /// they are done: one pointer inline, not a `Vec`'s three words.
    #[allow(clippy::box_collection)] // One word inline is the point.
    rest: Option<Box<Vec<u64>>>,
}

impl Running {
    fn is_empty(&self) -> bool {
        self.first == 0
    }

    fn rest(&self) -> &[u64] {
        self.rest.as_deref().map_or(&[], Vec::as_slice)
    }

    fn len(&self) -> usize {
        usize::from(self.first != 0) + self.rest().len()
    }

    fn push(&mut self, exec: u64) {
        if self.first == 0 {
            self.first = exec;
        } else {
            self.rest.get_or_insert_default().push(exec);
        }
    }

    fn contains(&self, exec: u64) -> bool {
        self.first == exec || self.rest().contains(&exec)
    }

    /// Removes `exec`, keeping start order. Allocates nothing.
    fn remove(&mut self, exec: u64) {
        let Some(rest) = self.rest.as_mut() else {
            if self.first == exec {
                self.first = 0;
            }
            return;
        };
        if self.first == exec {
            self.first = if rest.is_empty() { 0 } else { rest.remove(0) };
        } else {
            rest.retain(|e| *e != exec);
        }
        if rest.is_empty() {
            self.rest = None;
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (self.first != 0)
            .then_some(self.first)
            .into_iter()
            .chain(self.rest().iter().copied())
    }

    fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }
}

/// A job's last `OUTCOME_RING` outcomes, oldest first, held inline in its
/// entry: a fixed 192 bytes per job from the start, where a `VecDeque`
/// cost 32 bytes inline plus a block that grew to 192 (+ allocator header)
/// on the job's first runs.
#[derive(Debug, Clone, Copy)]
struct Ring {
    items: [Finished; OUTCOME_RING],
    /// Index of the oldest item.
    start: u8,
    len: u8,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            items: [Finished::EMPTY; OUTCOME_RING],
            start: 0,
            len: 0,
        }
    }
}

impl Ring {
    /// Adds the newest outcome, dropping the oldest when full.
    fn push(&mut self, f: Finished) {
        let len = usize::from(self.len);
        let start = usize::from(self.start);
        if len < OUTCOME_RING {
            self.items[(start + len) % OUTCOME_RING] = f;
            self.len += 1;
        } else {
            self.items[start] = f;
            self.start = ((start + 1) % OUTCOME_RING) as u8;
        }
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn iter(&self) -> impl Iterator<Item = &Finished> {
        (0..usize::from(self.len))
            .map(move |i| &self.items[(usize::from(self.start) + i) % OUTCOME_RING])
    }
}

/// A finished run as kept in a job's ring: 16 bytes of plain data (the run
/// id is rebuilt from the job id and slot when a snapshot is taken). Eight
/// per job, so a job's history costs 128 bytes, not a kilobyte.
///
/// `packed` holds, from the top bit down: the slot in milliseconds since
/// the epoch (44 bits, signed: years 1692 to 2248, clamped beyond), the
/// exit code (10 bits: exit statuses are 0–255 and HTTP statuses 100–999;
/// `NO_EXIT_CODE` for none), the attempt (7 bits, saturating at 127) and
/// the outcome (3 bits, an index into `OUTCOME_NAMES`).
#[derive(Debug, Clone, Copy)]
struct Finished {
    packed: u64,
    /// Start minus slot, milliseconds (saturating).
    start_delay_ms: i32,
    /// Finish minus start, milliseconds (saturating: 49 days).
    duration_ms: u32,
}

const SLOT_BITS: u32 = 44;
const EXIT_BITS: u32 = 10;
const ATTEMPT_BITS: u32 = 7;
const OUTCOME_BITS: u32 = 3;
const NO_EXIT_CODE: u64 = (1 << EXIT_BITS) - 1;
const _: () = assert!(SLOT_BITS + EXIT_BITS + ATTEMPT_BITS + OUTCOME_BITS == 64);

impl Finished {
    /// Filler for a ring's unused places (never read).
    const EMPTY: Finished = Finished {
        packed: 0,
        start_delay_ms: 0,
        duration_ms: 0,
    };
}
const OUTCOME_NAMES: [&str; 5] = [
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "spawn_failed",
];

impl Finished {
    fn new(
        slot: DateTime<Utc>,
        attempt: u32,
        outcome: &Outcome,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> Self {
        let ms = |d: TimeDelta| d.num_milliseconds();
        let slot_max = (1i64 << (SLOT_BITS - 1)) - 1;
        let slot_ms = slot.timestamp_millis().clamp(-slot_max - 1, slot_max);
        let exit = match outcome {
            Outcome::Failed { code: Some(c), .. } => u64::try_from(*c)
                .ok()
                .filter(|c| *c < NO_EXIT_CODE)
                .unwrap_or(NO_EXIT_CODE),
            Outcome::Succeeded => 0,
            _ => NO_EXIT_CODE,
        };
        let attempt = u64::from(attempt.min((1 << ATTEMPT_BITS) - 1));
        let outcome = OUTCOME_NAMES
            .iter()
            .position(|n| *n == outcome.name())
            .unwrap_or(0) as u64;
        Finished {
            packed: ((slot_ms as u64) << (64 - SLOT_BITS))
                | (exit << (ATTEMPT_BITS + OUTCOME_BITS))
                | (attempt << OUTCOME_BITS)
                | outcome,
            start_delay_ms: ms(delta(started, slot)).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
            duration_ms: ms(delta(finished, started)).clamp(0, i64::from(u32::MAX)) as u32,
        }
    }

    fn slot_ms(&self) -> i64 {
        // Arithmetic shift: the sign comes back.
        (self.packed as i64) >> (64 - SLOT_BITS)
    }

    fn field(&self, shift: u32, bits: u32) -> u64 {
        (self.packed >> shift) & ((1 << bits) - 1)
    }

    fn record(&self, id: &JobId) -> OutcomeRecord {
        let slot = DateTime::from_timestamp_millis(self.slot_ms()).unwrap_or_default();
        let started = slot + TimeDelta::milliseconds(i64::from(self.start_delay_ms));
        let exit = self.field(ATTEMPT_BITS + OUTCOME_BITS, EXIT_BITS);
        let outcome = self.field(0, OUTCOME_BITS) as usize;
        OutcomeRecord {
            run_id: RunId::new(id.clone(), slot),
            attempt: self.field(OUTCOME_BITS, ATTEMPT_BITS) as u32,
            outcome: std::borrow::Cow::Borrowed(
                OUTCOME_NAMES.get(outcome).copied().unwrap_or("succeeded"),
            ),
            exit_code: (exit != NO_EXIT_CODE).then_some(exit as i32),
            started,
            finished: started + TimeDelta::milliseconds(i64::from(self.duration_ms)),
        }
    }
}

/// A job's own queue (`concurrency = "queue"`): one pointer inline, the
/// deque allocated on the first queued run and freed when it empties.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // One word inline is the point.
struct JobQueue(Option<Box<VecDeque<Pending>>>);

impl JobQueue {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    fn push_back(&mut self, p: Pending) {
        self.0.get_or_insert_default().push_back(p);
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let q = self.0.as_mut()?;
        let p = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        p
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// The fields of a spec that a fire reads, copied into its job's entry
/// when it is applied. A burst walks the entries in timer order; the
/// specs are allocations of their own, elsewhere, and reading one per
/// fire was the largest single stall in a profile of a 100k-job burst
/// (a quarter of `fire_due`'s own samples sat on the spec's first load).
/// The schedule itself is held once per distinct schedule (see
/// `schedules.rs`). Every job pays for this, so it is packed: 40 bytes.
#[derive(Debug, Clone, Copy)]
struct Timing {
    schedule: ScheduleId,
    catch_up: CatchUp,
    starting_deadline: StartingDeadline,
    concurrency: Concurrency,
    jitter: JobJitter,
}

/// `starting_deadline` in nanoseconds, `u64::MAX` for none: 8 bytes where
/// an `Option<Duration>` takes 16. A validated spec's is at most 366 days
/// (~3.2e16 ns); a longer one saturates just below the sentinel (584
/// years: never missed, as before), not to "none", which would mean the
/// short default.
#[derive(Debug, Clone, Copy)]
struct StartingDeadline(u64);

impl StartingDeadline {
    fn of(d: Option<Duration>) -> Self {
        StartingDeadline(d.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
        }))
    }

    fn get(self) -> Option<Duration> {
        (self.0 != u64::MAX).then(|| Duration::from_nanos(self.0))
    }
}

/// A job's jitter as a fire needs it, in milliseconds: the stable delay
/// is a hash of the job id, worked out once here instead of on every
/// re-arm. A validated spec's jitter is at most 24 hours, well within
/// `u32` milliseconds (longer ones saturate).
#[derive(Debug, Clone, Copy)]
enum JobJitter {
    None,
    /// The stable delay (whole milliseconds).
    Stable(u32),
    Random {
        max_ms: u32,
    },
}

impl Timing {
    /// `spec`'s timing, counting the job as a user of its schedule in
    /// `schedules` (released with [`Schedules::release`] when the entry
    /// changes or goes).
    fn of(spec: &JobSpec, schedules: &mut Schedules) -> Timing {
        let jitter = if spec.jitter.max.is_zero() {
            JobJitter::None
        } else {
            match spec.jitter.mode {
                JitterMode::Stable => JobJitter::Stable(ms_u32(spec.jitter.stable_delay(&spec.id))),
                JitterMode::Random => JobJitter::Random {
                    max_ms: ms_u32(spec.jitter.max).max(1),
                },
            }
        };
        Timing {
            schedule: schedules.intern(spec.schedule),
            catch_up: spec.catch_up,
            starting_deadline: StartingDeadline::of(spec.starting_deadline),
            concurrency: spec.concurrency,
            jitter,
        }
    }

    /// The delay added to a fire: the same one every time (stable), a
    /// fresh one from `rng` (random), or none.
    fn jitter(&self, rng: &mut u64) -> TimeDelta {
        match self.jitter {
            JobJitter::None => TimeDelta::zero(),
            JobJitter::Stable(ms) => TimeDelta::milliseconds(i64::from(ms)),
            JobJitter::Random { max_ms } => {
                // xorshift64: jitter needs spread, not secrecy.
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                TimeDelta::milliseconds((*rng % u64::from(max_ms)) as i64)
            }
        }
    }
}

/// Whole milliseconds of `d`, saturating at `u32::MAX` (~49 days).
fn ms_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl JobEntry {
    fn id(&self) -> &JobId {
        &self.spec.id
    }

    fn active(&self) -> bool {
        self.enabled_override.unwrap_or(self.spec.enabled)
    }
}

/// One execution the core owns. It keeps no run id: that is a function of
/// the job and the slot, rebuilt for the rare reader (snapshots, leaks,
/// shutdown), so the execution holds the only copy.
///
/// Kept inline in the core's slab, which grows only when more runs are
/// alive at once than ever before (a hash map of records also grew later,
/// when its tombstones ran out: a soak saw ~160 KB appear past its first
/// readings).
///
/// It holds no reference to its spec while its job entry is still the
/// version that started it (the entry's is read, see [`run_spec`]): a
/// reference count per run on a spec's cold cache line was the largest
/// cost of a fire after the fire itself. When the entry changes or goes,
/// the run is orphaned and takes the old spec along (see [`Orphaned`]).
struct ExecRecord {
    /// The registry slot it was started from (see `Pending::epoch`).
    handle: Handle,
    generation: u32,
    epoch: u64,
    attempt: u32,
    slot: DateTime<Utc>,
    started: DateTime<Utc>,
    manual: bool,
    /// Cancellation, pid and grace, shared with the run: made when its
    /// runner asks for them (see `ExecStart::shared`), so a runner that
    /// keeps none costs no allocation and no reference count.
    shared: std::cell::OnceCell<Arc<ExecShared>>,
    /// Set once the run is being stopped or left behind: boxed, as most
    /// runs never are, and a slab slot is paid per run alive at once.
    ending: Option<Box<Ending>>,
}

#[derive(Debug, Default)]
struct Ending {
    cancelling_since: Option<DateTime<Utc>>,
    orphaned: Option<Orphaned>,
}

/// A run whose job left git or changed: since when, why, and the spec it
/// was started with, which its entry no longer holds.
#[derive(Debug)]
struct Orphaned {
    since: DateTime<Utc>,
    why: LeakReason,
    spec: Arc<JobSpec>,
}

impl ExecRecord {
    fn cancelling_since(&self) -> Option<DateTime<Utc>> {
        self.ending.as_ref().and_then(|e| e.cancelling_since)
    }

    fn orphaned(&self) -> Option<(DateTime<Utc>, LeakReason)> {
        self.ending
            .as_ref()
            .and_then(|e| e.orphaned.as_ref())
            .map(|o| (o.since, o.why))
    }

    fn ending_mut(&mut self) -> &mut Ending {
        self.ending.get_or_insert_default()
    }

    /// Its process group (0 if it has none, or never asked for its shared
    /// block and so cannot have told one).
    fn pid(&self) -> u32 {
        self.shared
            .get()
            .map_or(0, |s| s.pid.load(Ordering::SeqCst))
    }

    /// Asks the run to stop, if it listens (see `ExecStart::shared`).
    fn cancel(&self) {
        if let Some(s) = self.shared.get() {
            s.cancel();
        }
    }
}

/// The spec run `r` was started with: its orphan copy, or its job entry's
/// while that entry is still the version (epoch) that started it. `None`
/// only if an entry changed without orphaning its runs, which the audit
/// reports.
fn run_spec<'a>(jobs: &'a Registry, r: &'a ExecRecord) -> Option<&'a Arc<JobSpec>> {
    match r.ending.as_ref().and_then(|e| e.orphaned.as_ref()) {
        Some(o) => Some(&o.spec),
        None => jobs
            .get(r.handle)
            .filter(|j| j.epoch == r.epoch)
            .map(|j| &j.spec),
    }
}

/// The run id of run `r`; `?@<slot>` if its spec is lost (see
/// [`run_spec`]; the audit reports it).
fn run_id_of_rec(jobs: &Registry, r: &ExecRecord) -> String {
    match run_spec(jobs, r) {
        Some(s) => run_id(&s.id, r.slot),
        None => format!(
            "?@{}",
            r.slot.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
    }
}

pub struct Core {
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    runner: Arc<dyn Runner>,
    rx: mpsc::Receiver<Command>,
    jobs: Registry,
    /// The jobs' schedules, once each (see [`Timing`]).
    schedules: Schedules,
    timers: TimerIndex,
    execs: Slab<ExecRecord>,
    tasks: Tasks<ExecTask>,
    /// The run `Fault::UntrackedTask` injects (in a lane, with no
    /// record), and how to stop it.
    stray: Option<Arc<ExecShared>>,
    /// Process groups started and not yet seen dead.
    groups: FxHashMap<u32, u64>,
    global_queue: VecDeque<Pending>,
    running: usize,
    next_epoch: u64,
    revision: Option<Arc<str>>,
    counters: Counters,
    last_audit: AuditReport,
    /// Violations seen between audits (reported by the next one).
    noticed: Vec<String>,
    rng: u64,
    /// Set while `fire_due` runs: executions started are handed to their
    /// lanes when its batch ends (see there).
    defer_spawns: bool,
}

impl Core {
    pub fn new(
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        runner: Arc<dyn Runner>,
        rx: mpsc::Receiver<Command>,
    ) -> Self {
        let seed = clock.now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1;
        Core {
            clock,
            config,
            runner,
            rx,
            jobs: Registry::default(),
            schedules: Schedules::default(),
            timers: TimerIndex::default(),
            execs: Slab::default(),
            tasks: Tasks::new(),
            stray: None,
            groups: FxHashMap::default(),
            global_queue: VecDeque::new(),
            running: 0,
            next_epoch: 1,
            revision: None,
            counters: Counters::default(),
            last_audit: AuditReport::default(),
            noticed: Vec::new(),
            rng: seed,
            defer_spawns: false,
        }
    }

    /// The loop: commands, completions, timers and the audit, until
    /// shutdown (or every handle is gone).
    pub async fn run(mut self) {
        // Both sleeps live across iterations and are re-armed in place:
        // registering fresh timers on every completion would cost more than
        // the completion itself at a hundred thousand runs a second.
        let wake = tokio::time::sleep(Duration::ZERO);
        let audit = tokio::time::sleep(self.config.audit_interval);
        tokio::pin!(wake, audit);
        let mut armed_for: Option<Instant> = None;
        loop {
            let mut ended = None;
            let now = self.clock.now();
            let sleep_for = match self.timers.peek() {
                Some((t, _)) => (t - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            let target = Instant::now() + sleep_for;
            // Re-arm only when the target moved by more than a millisecond.
            if armed_for.is_none_or(|a| a.max(target) - a.min(target) > Duration::from_millis(1)) {
                wake.as_mut().reset(target);
                armed_for = Some(target);
            }
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown { deadline, reply }) => {
                        let report = self.shutdown(deadline).await;
                        let _ = reply.send(report);
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        self.shutdown(Duration::from_secs(10)).await;
                        return;
                    }
                },
                done = self.tasks.next(), if !self.tasks.is_empty() => ended = Some(done),
                _ = &mut wake => armed_for = None,
                _ = &mut audit => {
                    self.audit();
                    audit.as_mut().reset(Instant::now() + self.config.audit_interval);
                },
            }
            self.take_ends(ended);
            self.fire_due();
        }
    }

    /// Takes `first` (the end that woke the loop, if one did) and every
    /// other end that is ready, in one go, before more runs fire: whichever
    /// branch woke the loop, the ends of runs that were done at once (see
    /// `tasks.rs`) wait for at most one fire batch.
    fn take_ends(&mut self, first: Option<(u64, ExecOutput)>) {
        let Some(done) = first.or_else(|| self.tasks.try_next()) else {
            return;
        };
        let now = self.clock.now();
        self.finished(done, now);
        while let Some(done) = self.tasks.try_next() {
            self.finished(done, now);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Apply {
                plan,
                revision,
                reply,
            } => {
                let r = self.apply(plan, revision);
                let _ = reply.send(r);
            }
            Command::State { filter, reply } => {
                let _ = reply.send(self.snapshot(&filter));
            }
            Command::Suspend { id, reply } => {
                let _ = reply.send(self.set_override(&id, false));
            }
            Command::Resume { id, reply } => {
                let _ = reply.send(self.set_override(&id, true));
            }
            Command::Trigger { id, reply } => {
                let _ = reply.send(self.trigger(&id));
            }
            Command::Audit { reply } => {
                let _ = reply.send(self.audit());
            }
            Command::Inject { fault, reply } => {
                self.inject(fault);
                let _ = reply.send(());
            }
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    /// Computes the job's next slot after `after` and (re)sets its timer.
    fn schedule_next(&mut self, h: Handle, after: DateTime<Utc>) {
        let Some(job) = self.jobs.slots.get_mut(h as usize).and_then(Option::as_mut) else {
            return;
        };
        let next = self.schedules.next_after(job.timing.schedule, after);
        let jitter = job.timing.jitter(&mut self.rng);
        job.next_fire = next;
        let key = timer_key(h, TimerKind::Fire);
        match next {
            Some(t) if job.active() => self.timers.set(key, t + jitter),
            _ => {
                self.timers.remove(key);
            }
        }
    }

    fn apply(&mut self, plan: Plan, revision: String) -> ApplyReport {
        let now = self.clock.now();
        let mut report = ApplyReport {
            unchanged: plan.unchanged.len(),
            ..ApplyReport::default()
        };
        self.jobs.reserve(plan.create.len());
        for spec in plan.create.into_iter().chain(plan.update) {
            let id = spec.id.clone();
            let digest = spec_digest(&spec);
            let h = self.jobs.handle(&id);
            match h.and_then(|h| Some((h, self.jobs.get_mut(h)?))) {
                Some((_, job)) if job.digest == digest => report.unchanged += 1,
                Some((h, job)) => {
                    report.updated += 1;
                    // The id is the spec's, and the new spec's is equal.
                    // Its running runs take the old spec along.
                    let old = std::mem::replace(&mut job.spec, spec.clone());
                    let timing = Timing::of(&spec, &mut self.schedules);
                    self.schedules
                        .release(std::mem::replace(&mut job.timing, timing).schedule);
                    job.digest = digest;
                    job.generation = job.generation.saturating_add(1);
                    self.next_epoch += 1;
                    job.epoch = self.next_epoch;
                    job.retry = None;
                    self.counters.dropped_on_change += job.queue.len() as u64;
                    job.queue.clear();
                    let running = job.running.to_vec();
                    // A slot already due but waiting for its jitter (or for
                    // the timer to run) is not lost by the update.
                    let after = match job.next_fire {
                        Some(n) if n <= now => n - TimeDelta::nanoseconds(1),
                        _ => now,
                    };
                    self.timers.remove(timer_key(h, TimerKind::Retry));
                    for exec in running {
                        self.orphan(
                            exec,
                            now,
                            LeakReason::JobChanged,
                            (&old, spec.on_remove),
                            &mut report,
                        );
                    }
                    self.schedule_next(h, after);
                }
                None => {
                    report.created += 1;
                    let h = self.jobs.insert(JobEntry {
                        timing: Timing::of(&spec, &mut self.schedules),
                        spec,
                        digest,
                        generation: 1,
                        epoch: {
                            self.next_epoch += 1;
                            self.next_epoch
                        },
                        next_fire: None,
                        enabled_override: None,
                        running: Running::default(),
                        queue: JobQueue::default(),
                        retry: None,
                        recent: Ring::default(),
                    });
                    self.schedule_next(h, now);
                }
            }
        }
        for id in plan.delete {
            let Some((h, job)) = self.jobs.remove(&id) else {
                continue;
            };
            report.deleted += 1;
            self.schedules.release(job.timing.schedule);
            self.timers.remove(timer_key(h, TimerKind::Fire));
            self.timers.remove(timer_key(h, TimerKind::Retry));
            self.counters.dropped_on_change += job.queue.len() as u64;
            for exec in job.running.iter() {
                self.orphan(
                    exec,
                    now,
                    LeakReason::JobRemoved,
                    (&job.spec, job.spec.on_remove),
                    &mut report,
                );
            }
        }
        let jobs = &self.jobs;
        let before = self.global_queue.len();
        self.global_queue
            .retain(|p| jobs.get(p.job).is_some_and(|j| j.epoch == p.epoch));
        self.counters.dropped_on_change += (before - self.global_queue.len()) as u64;
        self.revision = Some(Arc::from(revision));
        report
    }

    /// An execution whose job left or changed: cancel it or let it drain.
    /// `started` is the spec it was started with (its entry's until now),
    /// which it keeps from here on; `policy` is what to do with it.
    fn orphan(
        &mut self,
        exec: u64,
        now: DateTime<Utc>,
        why: LeakReason,
        (started, policy): (&Arc<JobSpec>, OnRemove),
        report: &mut ApplyReport,
    ) {
        let Some(rec) = self.execs.get_mut(exec) else {
            return;
        };
        if rec.orphaned().is_some() {
            return;
        }
        rec.ending_mut().orphaned = Some(Orphaned {
            since: now,
            why,
            spec: Arc::clone(started),
        });
        match policy {
            OnRemove::Cancel => {
                report.cancelled += 1;
                rec.ending_mut().cancelling_since.get_or_insert(now);
                rec.cancel();
            }
            OnRemove::Drain => report.draining += 1,
        }
    }

    fn set_override(&mut self, id: &JobId, enabled: bool) -> Result<(), SchedulerError> {
        let now = self.clock.now();
        let h = self
            .jobs
            .handle(id)
            .ok_or_else(|| SchedulerError::UnknownJob(id.to_string()))?;
        let job = self
            .jobs
            .get_mut(h)
            .expect("a handle in the map has an entry");
        job.enabled_override = if enabled == job.spec.enabled {
            None
        } else {
            Some(enabled)
        };
        if !enabled {
            job.retry = None;
            self.timers.remove(timer_key(h, TimerKind::Retry));
            // Queued runs of a suspended job do not start: dropped, counted.
            let mut dropped = job.queue.len();
            job.queue.clear();
            let before = self.global_queue.len();
            self.global_queue.retain(|p| p.job != h || p.manual);
            dropped += before - self.global_queue.len();
            self.counters.dropped_on_change += dropped as u64;
        }
        self.schedule_next(h, now);
        Ok(())
    }

    fn trigger(&mut self, id: &JobId) -> Result<String, SchedulerError> {
        let now = self.clock.now();
        let h = self
            .jobs
            .handle(id)
            .ok_or_else(|| SchedulerError::UnknownJob(id.to_string()))?;
        let job = self.jobs.get(h).expect("a handle in the map has an entry");
        self.counters.triggered += 1;
        let pending = Pending {
            job: h,
            epoch: job.epoch,
            slot: now,
            attempt: 1,
            manual: true,
        };
        let run_id = run_id(id, now);
        self.start_or_queue(pending, now);
        Ok(run_id)
    }

    /// Pops due timers (at most `FIRE_BATCH`) and acts on them. The
    /// executions they start that are not done at their first poll are
    /// handed to their lanes together at the end, one lock and one wake-up
    /// per lane: a hand-over per run woke an
    /// idle worker every few runs, which ran the no-op, found nothing else
    /// and parked again (strace, with a task per run: 16k eventfd writes
    /// and epoll wake-ups for 60k runs). The executions are recorded (and
    /// counted, and seen by the concurrency policies) as they start; only
    /// the hand-over waits for the end of the batch.
    fn fire_due(&mut self) {
        let now = self.clock.now();
        let mut budget = FIRE_BATCH;
        self.defer_spawns = true;
        while budget > 0
            && let Some((deadline, key)) = self.timers.pop_due(now)
        {
            budget -= 1;
            let (h, kind) = timer_of(key);
            match kind {
                TimerKind::Fire => self.on_fire(h, deadline, now),
                TimerKind::Retry => {
                    let Some(job) = self.jobs.get_mut(h) else {
                        continue;
                    };
                    if let Some((slot, attempt)) = job.retry.take().map(|r| *r) {
                        let epoch = job.epoch;
                        self.start_or_queue(
                            Pending {
                                job: h,
                                epoch,
                                slot,
                                attempt,
                                manual: false,
                            },
                            now,
                        );
                    }
                }
            }
        }
        self.defer_spawns = false;
        self.tasks.flush();
    }

    /// A job's timer fired: decide which due slots run (misfire policy),
    /// then re-arm it.
    fn on_fire(&mut self, h: Handle, deadline: DateTime<Utc>, now: DateTime<Utc>) {
        let Some(job) = self.jobs.get(h) else {
            // Cannot happen while the index is consistent; if it does, the
            // next audit says so.
            if self.noticed.len() < MAX_NOTICED {
                self.noticed
                    .push(format!("timer fired for unknown job slot {h}"));
            }
            return;
        };
        let Some(first) = job.next_fire else { return };
        // The jitter this wake was armed with: a slot is due once its
        // jittered time has passed, not its bare time. The deadline is the
        // slot plus that jitter, so the first slot's jittered time is the
        // deadline itself; without jitter (most jobs) no date arithmetic is
        // needed to say so, and chrono's costs more than the rest of a fire.
        let jitter = if deadline > first {
            deadline - first
        } else {
            TimeDelta::zero()
        };
        let first_due = deadline.max(first);
        let Timing {
            schedule,
            catch_up,
            starting_deadline,
            ..
        } = job.timing;
        let epoch = job.epoch;
        let threshold = TimeDelta::from_std(
            starting_deadline
                .get()
                .unwrap_or(self.config.misfire_threshold),
        )
        .unwrap_or(TimeDelta::MAX);
        // Enumerate due slots, keeping only as many as the policy may run.
        let keep = match catch_up {
            CatchUp::All { max } => max.get() as usize + 1,
            _ => 1,
        };
        // Common case first: one due slot, nothing to enumerate or allocate.
        if first_due <= now {
            let next = self.schedules.next_after(schedule, first);
            let after_now = |n: DateTime<Utc>| {
                if jitter.is_zero() {
                    n > now
                } else {
                    n + jitter > now
                }
            };
            if next.is_none_or(after_now) {
                self.counters.fires += 1;
                let on_time = delta(now, first_due) <= threshold;
                let run = on_time || !matches!(catch_up, CatchUp::None);
                if !run {
                    self.counters.missed_misfire += 1;
                    tracing::warn!(job = %self.job_id(h), missed = 1, "slots missed (misfire)");
                }
                self.rearm(h, next);
                if run {
                    self.start_or_queue(
                        Pending {
                            job: h,
                            epoch,
                            slot: first,
                            attempt: 1,
                            manual: false,
                        },
                        now,
                    );
                }
                return;
            }
        }
        let schedule = self.schedules.get(schedule);
        let mut due: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut total = 0usize;
        let mut slot = Some(first);
        let mut capped = false;
        while let Some(s) = slot {
            if s + jitter > now {
                break;
            }
            if total == MAX_SLOT_SCAN {
                capped = true;
                break;
            }
            total += 1;
            if due.len() == keep {
                due.pop_front();
            }
            due.push_back(s);
            slot = schedule.next_after(s);
        }
        if total == 0 {
            // Woken early (jitter moved the deadline): re-arm.
            self.schedule_next(h, first - TimeDelta::seconds(1));
            return;
        }
        if capped {
            // Past the scan cap: estimate the rest from the average gap of
            // the slots seen, and take the newest slots from a window just
            // before now, so `latest`/`all` run the most recent ones.
            let last_seen = *due.back().unwrap_or(&first);
            let gap = ((last_seen - first) / (MAX_SLOT_SCAN as i32 - 1).max(1))
                .max(TimeDelta::milliseconds(1));
            let rest = ((now - jitter - last_seen).num_milliseconds()
                / gap.num_milliseconds().max(1))
            .max(0) as usize;
            total += rest;
            let mut window: VecDeque<DateTime<Utc>> = VecDeque::new();
            let mut s = schedule.next_after(now - jitter - gap * (keep as i32 + 2));
            let mut steps = 0;
            while let Some(t) = s {
                if t + jitter > now || steps == MAX_SLOT_SCAN {
                    break;
                }
                steps += 1;
                if window.len() == keep {
                    window.pop_front();
                }
                window.push_back(t);
                s = schedule.next_after(t);
            }
            if !window.is_empty() {
                due = window;
            }
        }
        self.counters.fires += total as u64;
        let latest = *due.back().expect("total > 0");
        let on_time = now - (latest + jitter) <= threshold;
        let run: Vec<DateTime<Utc>> = match catch_up {
            CatchUp::None => on_time.then_some(latest).into_iter().collect(),
            CatchUp::Latest => vec![latest],
            CatchUp::All { max } => {
                let late: Vec<_> = due
                    .iter()
                    .copied()
                    .filter(|s| *s != latest || !on_time)
                    .collect();
                let skip = late.len().saturating_sub(max.get() as usize);
                let mut v: Vec<_> = late.into_iter().skip(skip).collect();
                if on_time {
                    v.push(latest);
                }
                v
            }
        };
        self.counters.missed_misfire += (total - run.len()) as u64;
        if total > run.len() {
            tracing::warn!(job = %self.job_id(h), missed = total - run.len(), "slots missed (misfire)");
        }
        // Re-arm before starting, so the timer entry always exists for an
        // active job.
        if capped {
            self.schedule_next(h, now);
        } else {
            self.rearm(h, slot);
        }
        for s in run {
            self.start_or_queue(
                Pending {
                    job: h,
                    epoch,
                    slot: s,
                    attempt: 1,
                    manual: false,
                },
                now,
            );
        }
    }

    /// Sets the job's next slot and its timer (with a fresh jitter).
    fn rearm(&mut self, h: Handle, next: Option<DateTime<Utc>>) {
        let Some(job) = self.jobs.slots.get_mut(h as usize).and_then(Option::as_mut) else {
            return;
        };
        job.next_fire = next;
        if let Some(next) = next {
            let jitter = job.timing.jitter(&mut self.rng);
            // Most jobs have none, and chrono's addition is not free.
            let at = if jitter.is_zero() {
                next
            } else {
                next + jitter
            };
            self.timers.set(timer_key(h, TimerKind::Fire), at);
        }
    }

    /// The id of the job in slot `h`, for log lines.
    fn job_id(&self, h: Handle) -> &str {
        self.jobs.get(h).map_or("?", |j| j.id().as_str())
    }

    /// Applies the job's concurrency policy and the global limit, then
    /// starts, queues, or drops (counted) the run. `now` is the caller's
    /// reading of the clock: a fire batch reads it once, not once a run.
    fn start_or_queue(&mut self, p: Pending, now: DateTime<Utc>) {
        let Some(job) = self.jobs.get_mut(p.job) else {
            self.counters.dropped_on_change += 1;
            return;
        };
        if job.epoch != p.epoch {
            self.counters.dropped_on_change += 1;
            return;
        }
        let busy = !job.running.is_empty();
        match job.timing.concurrency {
            Concurrency::Forbid if busy => {
                self.counters.skipped_forbid += 1;
                tracing::info!(job = %job.id(), "run skipped: previous run still going (forbid)");
                return;
            }
            Concurrency::Allow { max_instances }
                if job.running.len() >= max_instances.get() as usize =>
            {
                self.counters.skipped_max_instances += 1;
                return;
            }
            Concurrency::Replace if busy => {
                // Without room for the new run, cancelling the old one
                // would leave nothing running: count the overflow instead.
                if self.running >= self.config.max_running as usize
                    && self.global_queue.len() >= self.config.max_queued as usize
                {
                    self.counters.global_queue_overflow += 1;
                    return;
                }
                for exec in job.running.to_vec() {
                    if let Some(rec) = self.execs.get_mut(exec)
                        && rec.cancelling_since().is_none()
                    {
                        rec.ending_mut().cancelling_since = Some(now);
                        rec.cancel();
                        self.counters.replaced += 1;
                    }
                }
            }
            Concurrency::Queue { depth } if busy => {
                if job.queue.len() < depth.get() as usize {
                    job.queue.push_back(p);
                } else {
                    self.counters.job_queue_overflow += 1;
                }
                return;
            }
            _ => {}
        }
        if self.running >= self.config.max_running as usize {
            if self.global_queue.len() < self.config.max_queued as usize {
                self.global_queue.push_back(p);
            } else {
                self.counters.global_queue_overflow += 1;
                tracing::warn!(job = %self.job_id(p.job), "run dropped: global queue full (max_queued)");
            }
            return;
        }
        self.spawn(p, now);
    }

    fn spawn(&mut self, p: Pending, now: DateTime<Utc>) {
        let Some(job) = self.jobs.get(p.job) else {
            return;
        };
        let exec_id = self.execs.insert(ExecRecord {
            handle: p.job,
            generation: job.generation,
            epoch: p.epoch,
            attempt: p.attempt,
            slot: p.slot,
            started: now,
            manual: p.manual,
            shared: std::cell::OnceCell::new(),
            ending: None,
        });
        let Some(rec) = self.execs.get(exec_id) else {
            return;
        };
        let start = ExecStart::new(
            p.slot,
            p.attempt,
            self.revision.as_ref().unwrap_or(&NO_REVISION),
            &job.spec,
            &rec.shared,
        );
        // A panicking runner ends its execution, not the scheduler: one
        // that panics before it even returns its future included (the
        // panic is handed on to the run, which `ExecTask` catches).
        let runner = &self.runner;
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| runner.run(start))) {
            Ok(fut) => fut,
            Err(panic) => Box::pin(async move { std::panic::resume_unwind(panic) }),
        };
        self.tasks.push(ExecTask::new(exec_id, fut));
        if !self.defer_spawns {
            self.tasks.flush();
        }
        if let Some(job) = self.jobs.get_mut(p.job) {
            job.running.push(exec_id);
        }
        self.running += 1;
        self.counters.started += 1;
        // Lateness is the scheduler's: a retry waits on purpose and a
        // manual trigger has no slot to be late for.
        if p.attempt == 1 && !p.manual {
            let late = delta(now, p.slot).num_milliseconds().max(0) as u64;
            self.counters.lateness.observe(&LATENESS_BUCKETS_MS, late);
        }
        if tracing::enabled!(tracing::Level::INFO)
            && let Some(job) = self.jobs.get(p.job)
        {
            let run_id = run_id(job.id(), p.slot);
            tracing::info!(job = %job.id(), run_id = %run_id, attempt = p.attempt, "run started");
        }
    }

    /// A run ended (or its runner panicked).
    ///
    /// `now` stamps an end whose runner did not: read once per batch of
    /// ends, not per end.
    fn finished(&mut self, (exec_id, done): (u64, ExecOutput), now: DateTime<Utc>) {
        let result = match done {
            Ok(result) => result,
            Err(panic) => {
                let msg = panic_message(&*panic);
                ExecResult::ended(Outcome::SpawnFailed(format!("execution panicked: {msg}")))
            }
        };
        let Some(rec) = self.execs.remove(exec_id) else {
            return;
        };
        // Never before it started: `now` was read before this batch of
        // ends, and an end may start a queued run, with a later reading,
        // that is itself done at once.
        let ended_at = result.finished.unwrap_or(now).max(rec.started);
        self.running -= 1;
        // The executor killed what the run left in its group; remember the
        // group only if something survived that, for the audit to chase.
        let pid = rec.pid();
        if pid != 0 && group_alive(pid) {
            self.groups.insert(pid, exec_id);
        }
        let c = &mut self.counters;
        match &result.outcome {
            Outcome::Succeeded => c.succeeded += 1,
            Outcome::Failed { .. } => c.failed += 1,
            Outcome::TimedOut => c.timed_out += 1,
            Outcome::Cancelled => c.cancelled += 1,
            Outcome::SpawnFailed(_) => c.spawn_failed += 1,
        }
        // A run that never started has no duration.
        if !matches!(result.outcome, Outcome::SpawnFailed(_)) {
            let took = delta(ended_at, rec.started).num_milliseconds().max(0) as u64;
            c.duration.observe(&DURATION_BUCKETS_MS, took);
        }
        c.killed += u64::from(result.killed);
        c.stragglers_killed += u64::from(result.stragglers_killed);
        if tracing::enabled!(tracing::Level::INFO) {
            let spec = run_spec(&self.jobs, &rec);
            tracing::info!(
                job = %spec.map_or("?", |s| s.id.as_str()),
                run_id = %run_id_of_rec(&self.jobs, &rec),
                outcome = result.outcome.name(),
                exit_code = ?match result.outcome {
                    Outcome::Failed { code, .. } => code,
                    Outcome::Succeeded => Some(0),
                    _ => None,
                },
                output_bytes = result.output.len(), output_dropped = result.output_dropped,
                output = %output_preview(&result.output),
                "run finished"
            );
        }
        // A run counts for the job entry that started it (a job deleted and
        // created again is a new entry and does not inherit it).
        if let Some(job) = self.jobs.get_mut(rec.handle)
            && job.running.contains(exec_id)
        {
            job.running.remove(exec_id);
            job.recent.push(Finished::new(
                rec.slot,
                rec.attempt,
                &result.outcome,
                rec.started,
                ended_at,
            ));
            // Retry a failure of the current spec, never past the next slot.
            if result.outcome.is_failure()
                && job.epoch == rec.epoch
                && rec.attempt <= job.spec.retry.retries
                && job.active()
            {
                let delay = TimeDelta::from_std(job.spec.retry.delay(rec.attempt))
                    .unwrap_or(TimeDelta::MAX);
                let due = self.clock.now() + delay;
                if job.next_fire.is_some_and(|n| due >= n) {
                    self.counters.retries_abandoned += 1;
                } else {
                    // One pending retry per job: a newer failure's retry
                    // replaces an older one, which is counted as abandoned.
                    if job.retry.is_some() {
                        self.counters.retries_abandoned += 1;
                    }
                    job.retry = Some(Box::new((rec.slot, rec.attempt + 1)));
                    self.counters.retries_scheduled += 1;
                    self.timers
                        .set(timer_key(rec.handle, TimerKind::Retry), due);
                }
            }
            // The job's own queue goes first.
            if job.running.is_empty()
                && let Some(p) = job.queue.pop_front()
            {
                let now = self.clock.now();
                self.start_or_queue(p, now);
            }
        }
        self.pump();
    }

    /// Starts queued runs while there is room.
    fn pump(&mut self) {
        // Most finishes find nothing queued: no clock read for them.
        if self.global_queue.is_empty() {
            return;
        }
        let now = self.clock.now();
        while self.running < self.config.max_running as usize {
            let Some(p) = self.global_queue.pop_front() else {
                break;
            };
            let late = self
                .jobs
                .get(p.job)
                .and_then(|j| j.timing.starting_deadline.get())
                .and_then(|d| TimeDelta::from_std(d).ok())
                .is_some_and(|d| now - p.slot > d);
            if late {
                self.counters.missed_starting_deadline += 1;
                continue;
            }
            self.start_or_queue(p, now);
        }
    }

    /// Checks the invariants; every violation is counted and described.
    fn audit(&mut self) -> AuditReport {
        let now = self.clock.now();
        let mut v = std::mem::take(&mut self.noticed);
        if !self.timers.consistent() {
            v.push("timer index: its links, buckets and heap disagree (stale entry)".to_string());
        }
        let mut fire_entries = 0;
        for key in self.timers.keys() {
            let (h, kind) = timer_of(key);
            match (self.jobs.get(h), kind) {
                (None, _) => v.push(format!("timer entry for unknown job slot {h}")),
                (Some(j), TimerKind::Fire) => {
                    fire_entries += 1;
                    if !j.active() {
                        v.push(format!("timer entry for suspended job {}", j.id()));
                    }
                }
                (Some(j), TimerKind::Retry) if j.retry.is_none() => {
                    v.push(format!(
                        "retry timer without a pending retry for {}",
                        j.id()
                    ));
                }
                _ => {}
            }
        }
        let expected = self
            .jobs
            .values()
            .filter(|j| j.active() && j.next_fire.is_some())
            .count();
        for (h, j) in self.jobs.iter() {
            if j.active()
                && j.next_fire.is_some()
                && self.timers.get(timer_key(h, TimerKind::Fire)).is_none()
            {
                v.push(format!("active job {} has no timer entry", j.id()));
            }
        }
        let filed = self
            .jobs
            .by_id
            .iter()
            .filter(|(id, h)| self.jobs.get(**h).is_some_and(|j| j.id() == *id))
            .count();
        if filed != self.jobs.len() || self.jobs.values().count() != self.jobs.len() {
            v.push("job registry: id map and slots disagree".to_string());
        }
        if !self.schedules.consistent() || self.schedules.users() != self.jobs.len() as u64 {
            v.push(format!(
                "schedule table: {} users for {} jobs, or its index disagrees",
                self.schedules.users(),
                self.jobs.len()
            ));
        }
        if self.execs.len() != self.tasks.len() {
            v.push(format!(
                "tracked executions ({}) != owned tasks ({})",
                self.execs.len(),
                self.tasks.len()
            ));
        }
        let unowned = self
            .execs
            .values()
            .filter(|r| run_spec(&self.jobs, r).is_none())
            .count();
        if unowned > 0 {
            v.push(format!(
                "{unowned} execution(s) whose job version is gone but which were not orphaned"
            ));
        }
        let lost = self.tasks.lost_lanes();
        if lost > 0 {
            v.push(format!(
                "{lost} execution lane(s) ended on their own, taking their runs"
            ));
        }
        let live: HashSet<u32> = self.execs.values().map(ExecRecord::pid).collect();
        self.groups
            .retain(|pgid, _| live.contains(pgid) || group_alive(*pgid));
        for pgid in self.groups.keys() {
            if !live.contains(pgid) {
                v.push(format!(
                    "process group {pgid} is alive without an execution"
                ));
            }
        }
        self.counters.audit_runs += 1;
        self.counters.audit_violations += v.len() as u64;
        for msg in &v {
            tracing::error!(violation = %msg, "audit: invariant violated");
        }
        self.last_audit = AuditReport {
            at: Some(now),
            timer_entries: fire_entries,
            expected_timer_entries: expected,
            tracked_executions: self.execs.len(),
            owned_tasks: self.tasks.len(),
            violations: v,
        };
        self.last_audit.clone()
    }

    fn inject(&mut self, fault: Fault) {
        let now = self.clock.now();
        match fault {
            Fault::StaleTimerEntry => {
                self.timers.inject_stale(now + TimeDelta::days(1));
            }
            Fault::UntrackedTask => {
                let stop = ExecShared::new(Duration::ZERO);
                let stopped = Arc::clone(&stop);
                self.tasks.push(ExecTask::new(
                    0,
                    Box::pin(async move {
                        stopped.cancelled().await;
                        ExecResult::ended(Outcome::Cancelled)
                    }),
                ));
                self.tasks.flush();
                if let Some(old) = self.stray.replace(stop) {
                    old.cancel();
                }
            }
            Fault::OrphanProcessGroup(pgid) => {
                self.groups.insert(pgid, 0);
            }
            Fault::UnorphanedRuns => {
                for job in self.jobs.values_mut() {
                    self.next_epoch += 1;
                    job.epoch = self.next_epoch;
                }
            }
            Fault::StaleScheduleUser => {
                if let Some(job) = self.jobs.values().next() {
                    self.schedules.intern(job.spec.schedule);
                }
            }
            Fault::LaneDied => self.tasks.abort_lanes(),
        }
    }

    fn snapshot(&self, filter: &JobFilter) -> RunningState {
        let now = self.clock.now();
        let exec_state = |id: &u64| {
            let r = self.execs.get(*id)?;
            let spec = run_spec(&self.jobs, r)?;
            Some(ExecutionState {
                run_id: RunId::new(spec.id.clone(), r.slot),
                job: spec.id.clone(),
                pid: r.pid(),
                attempt: r.attempt,
                generation: u64::from(r.generation),
                scheduled_at: r.slot,
                started: r.started,
                deadline: spec
                    .timeout
                    .and_then(|t| TimeDelta::from_std(t).ok())
                    .map(|t| r.started + t),
                manual: r.manual,
                cancelling_since: r.cancelling_since(),
                orphaned_since: r.orphaned().map(|(t, _)| t),
            })
        };
        let mut queued_global: FxHashMap<Handle, usize> = FxHashMap::default();
        for p in &self.global_queue {
            *queued_global.entry(p.job).or_default() += 1;
        }
        let manual = |j: &JobEntry| {
            j.running
                .iter()
                .any(|e| self.execs.get(e).is_some_and(|r| r.manual))
        };
        let mut counts = JobCounts {
            total: self.jobs.len(),
            ..JobCounts::default()
        };
        for j in self.jobs.values() {
            match (j.active(), j.enabled_override) {
                (true, _) => counts.active += 1,
                (false, Some(false)) => counts.suspended += 1,
                (false, _) => counts.disabled += 1,
            }
            if j.enabled_override.is_some() || manual(j) {
                counts.overridden += 1;
            }
        }
        // Walked twice, in the same order: once for the outcomes, once for
        // the jobs.
        let selected = || -> Box<dyn Iterator<Item = (Handle, &JobEntry)>> {
            match filter {
                JobFilter::All => Box::new(self.jobs.iter()),
                JobFilter::One(id) => Box::new(
                    self.jobs
                        .handle(id)
                        .and_then(|h| Some((h, self.jobs.get(h)?)))
                        .into_iter(),
                ),
                JobFilter::None => Box::new(std::iter::empty()),
            }
        };
        // Every job's outcomes in one buffer (see `SharedSlice`). Mapped
        // from a range, the iterator has a trusted length, so the buffer is
        // allocated once at its size and filled in place: collected into a
        // `Vec` first, it was copied, a second buffer as large (77 MB at
        // 100,000 jobs). There are exactly `total` records (the rings do
        // not change under `&self`); `spare` only keeps that unchecked
        // fact from being a panic.
        let total: usize = selected().map(|(_, j)| j.recent.len()).sum();
        let mut records =
            selected().flat_map(|(_, j)| j.recent.iter().map(move |f| f.record(j.id())));
        let outcomes: Arc<[OutcomeRecord]> = match records.next() {
            Some(first) => {
                let spare = first.clone();
                let mut records = std::iter::once(first).chain(records);
                (0..total)
                    .map(|_| records.next().unwrap_or_else(|| spare.clone()))
                    .collect()
            }
            None => Arc::new([]),
        };
        let mut taken = 0;
        // Sized once: grown by doubling, a hundred thousand jobs' states
        // were copied seventeen times and freed in seventeen sizes.
        let mut jobs: Vec<JobState> = Vec::with_capacity(match filter {
            JobFilter::All => self.jobs.len(),
            JobFilter::One(_) => 1,
            JobFilter::None => 0,
        });
        jobs.extend(selected().map(|(h, j)| JobState {
            id: j.id().clone(),
            spec_digest: SpecDigest(j.digest),
            generation: u64::from(j.generation),
            enabled: j.spec.enabled,
            suspended: !j.active(),
            // Suspended/resumed against git, or running a manual trigger.
            overridden: j.enabled_override.is_some() || manual(j),
            next_fire: j.next_fire,
            active: j.running.iter().filter_map(|e| exec_state(&e)).collect(),
            queued: j.queue.len() + queued_global.get(&h).copied().unwrap_or(0),
            recent: {
                let at = taken..taken + j.recent.len();
                taken = at.end;
                SharedSlice::part(&outcomes, at)
            },
        }));
        // Ids are unique, so unstable is the same order, and it sorts in
        // place: the stable sort's scratch was a copy of the job list.
        jobs.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        RunningState {
            now,
            revision: self.revision.as_deref().map(str::to_string),
            jobs,
            job_counts: counts,
            running: self.running,
            max_running: self.config.max_running,
            queued: self.global_queue.len()
                + self.jobs.values().map(|j| j.queue.len()).sum::<usize>(),
            max_queued: self.config.max_queued,
            leaked: self.leaks(now),
            counters: self.counters.clone(),
            audit: self.last_audit.clone(),
        }
    }

    /// Executions that should not exist any more, and process groups alive
    /// without an execution.
    fn leaks(&self, now: DateTime<Utc>) -> Vec<LeakedTask> {
        let mut out = Vec::new();
        let slack = TimeDelta::from_std(LEAK_SLACK).unwrap_or(TimeDelta::zero());
        for r in self.execs.values() {
            // A run whose spec is lost is reported by the audit.
            let Some(spec) = run_spec(&self.jobs, r) else {
                continue;
            };
            let grace = TimeDelta::from_std(spec.kill_grace).unwrap_or(TimeDelta::zero());
            let reason = match (r.orphaned(), spec.timeout) {
                // A drained run is unwanted once its grace is over; a
                // cancelled one gets the slack that SIGKILL and reaping take.
                (Some((since, why)), _)
                    if now - since
                        > grace
                            + if r.cancelling_since().is_some() {
                                slack
                            } else {
                                TimeDelta::zero()
                            } =>
                {
                    Some(why)
                }
                (_, Some(t))
                    if now - r.started
                        > TimeDelta::from_std(t).unwrap_or(TimeDelta::MAX) + grace + slack =>
                {
                    Some(LeakReason::PastTimeout)
                }
                _ => None,
            };
            if let Some(reason) = reason {
                out.push(LeakedTask {
                    reason,
                    job: spec.id.to_string(),
                    run_id: Some(run_id(&spec.id, r.slot)),
                    pid: r.pid(),
                    started: Some(r.started),
                    age_secs: (now - r.started).num_seconds(),
                });
            }
        }
        let live: HashSet<u32> = self.execs.values().map(ExecRecord::pid).collect();
        for (pgid, _) in self.groups.iter().filter(|(p, _)| !live.contains(p)) {
            if group_alive(*pgid) {
                out.push(LeakedTask {
                    reason: LeakReason::UntrackedProcess,
                    job: String::new(),
                    run_id: None,
                    pid: *pgid,
                    started: None,
                    age_secs: 0,
                });
            }
        }
        out.sort_by(|a, b| (a.job.as_str(), a.pid).cmp(&(b.job.as_str(), b.pid)));
        out
    }

    /// Stop firing, drain within the deadline, then cancel, kill and reap.
    async fn shutdown(&mut self, deadline: Duration) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        self.timers.clear();
        let queued =
            self.global_queue.len() + self.jobs.values().map(|j| j.queue.len()).sum::<usize>();
        self.global_queue.clear();
        for j in self.jobs.values_mut() {
            j.queue.clear();
            j.retry = None;
        }
        self.counters.dropped_on_shutdown += queued as u64;
        report.dropped_queued = queued;

        // Phase 1: let running executions finish.
        let until = Instant::now() + deadline;
        while !self.tasks.is_empty() {
            tokio::select! {
                // Ends already in are taken first: a run that ended counts
                // as drained, even with a deadline that has passed.
                biased;
                done = self.tasks.next() => {
                    if let (_, Ok(r)) = &done && r.killed {
                        report.killed.push(self.run_id_of(done.0));
                    }
                    self.finished(done, self.clock.now());
                    report.drained += 1;
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        // Phase 2: cancel the rest with a bounded grace.
        let mut told = 0usize;
        for rec in self.execs.values() {
            // A run that never asked for its shared block cannot be told;
            // its lane drops it in phase 3.
            let Some(shared) = rec.shared.get() else {
                continue;
            };
            let grace = run_spec(&self.jobs, rec)
                .map_or(SHUTDOWN_KILL_GRACE, |s| s.kill_grace)
                .min(SHUTDOWN_KILL_GRACE);
            shared
                .grace_ms
                .store(grace.as_millis() as u64, Ordering::SeqCst);
            shared.cancel();
            told += 1;
        }
        let stray_told = self.stray.take().inspect(|s| s.cancel()).is_some();
        // Only runs that were told can end because of it: once none is
        // left, waiting out the grace for the others would only delay
        // phase 3, which drops them. Counted down as they end, not found
        // by a scan of every run per end.
        let until = Instant::now() + SHUTDOWN_KILL_GRACE + Duration::from_secs(2);
        while !self.tasks.is_empty() && (stray_told || told > 0) {
            tokio::select! {
                // Ends already in are taken first: a run that ended counts
                // as drained, even with a deadline that has passed.
                biased;
                done = self.tasks.next() => {
                    match &done {
                        (exec, Ok(r)) if r.killed => report.killed.push(self.run_id_of(*exec)),
                        _ => report.cancelled += 1,
                    }
                    if self.execs.get(done.0).is_some_and(|r| r.shared.get().is_some()) {
                        told = told.saturating_sub(1);
                    }
                    self.finished(done, self.clock.now());
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        // Phase 3: whatever is left is killed and its lane aborted.
        for rec in self.execs.values() {
            signal_group(rec.pid(), libc::SIGKILL);
            report.abandoned.push(run_id_of_rec(&self.jobs, rec));
        }
        let detached: Vec<Arc<ExecShared>> = self
            .execs
            .values()
            .filter_map(|r| r.shared.get())
            .filter(|s| s.is_detached())
            .map(Arc::clone)
            .collect();
        for lane in self.abort_all() {
            // An aborted lane's runs are dropped once this returns.
            let _ = lane.await;
        }
        // A run's own task (every process run has one) was aborted with
        // its lane, and stops at its next await: wait for it, boundedly.
        // Its child, dropped with it, takes its process group along.
        let reaped = futures_util::future::join_all(detached.iter().map(|s| s.reaped()));
        if tokio::time::timeout(SHUTDOWN_REAP, reaped).await.is_err() {
            let left = detached.iter().filter(|s| s.is_detached()).count();
            tracing::warn!(left, "runs' own tasks still going after the reap bound");
        }
        self.execs.clear();
        self.running = 0;
        for pgid in self.groups.keys() {
            signal_group(*pgid, libc::SIGKILL);
        }
        tracing::info!(?report, "scheduler stopped");
        report
    }

    /// Stops the injected stray and aborts every lane with the runs it
    /// holds: the last step of a shutdown. (Dropping the core does the
    /// same through its `Tasks`.) Returns the lanes' handles, to await.
    fn abort_all(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        if let Some(stray) = self.stray.take() {
            stray.cancel();
        }
        self.tasks.abort()
    }

    fn run_id_of(&self, exec: u64) -> String {
        self.execs
            .get(exec)
            .map(|r| run_id_of_rec(&self.jobs, r))
            .unwrap_or_default()
    }
}

/// The end of a run's output for a log line: at most 200 characters of its
/// last lines, on one line.
fn output_preview(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let trimmed = text.trim_end();
    let start = trimmed.char_indices().rev().nth(199).map_or(0, |(i, _)| i);
    trimmed[start..].replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs that are done at their first poll.
    struct DoneAtOnce;

    impl Runner for DoneAtOnce {
        fn run(&self, _start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
            Box::pin(std::future::ready(ExecResult::ended(Outcome::Succeeded)))
        }
    }

    /// A run done at once has its end waiting in the scheduler (not in a
    /// lane) when shutdown begins, with no time left: it ended on its own,
    /// so it is drained, not cancelled, and nothing is left running.
    #[tokio::test]
    async fn a_run_that_ended_counts_as_drained_at_a_zero_deadline() {
        let snapshot = crate::snapshot::Snapshot::from_texts(
            "t",
            &[("j.toml", "schedule = \"0 0 1 1 *\"\ncommand = [\"true\"]\n")],
        );
        let loaded = crate::spec::load(
            &snapshot,
            &crate::spec::LoadOptions {
                now: Utc::now(),
                max_jobs: None,
            },
        );
        let plan = crate::plan::diff(&loaded.desired.jobs, &Default::default());
        let id = loaded.desired.jobs.keys().next().expect("one job").clone();
        let (_tx, rx) = mpsc::channel(1);
        let mut core = Core::new(
            SchedulerConfig::default(),
            Arc::new(super::super::clock::SystemClock),
            Arc::new(DoneAtOnce),
            rx,
        );
        core.apply(plan, "r".into());
        core.trigger(&id).expect("the job exists");
        assert_eq!(core.tasks.len(), 1);
        let report = core.shutdown(Duration::ZERO).await;
        assert_eq!((report.drained, report.cancelled), (1, 0));
        assert!(core.tasks.is_empty() && core.execs.len() == 0);
        assert_eq!(core.counters.succeeded, 1);
    }

    /// The sizes the README's memory figures are made of: a change that
    /// grows them should change the README too.
    #[test]
    fn a_job_entry_is_256_bytes_with_a_40_byte_timing() {
        assert_eq!(std::mem::size_of::<Timing>(), 40);
        assert_eq!(std::mem::size_of::<JobEntry>(), 256);
    }

    #[test]
    fn finished_records_are_small_and_round_trip() {
        assert_eq!(std::mem::size_of::<Finished>(), 16);
        let id = JobId::parse("team/job").unwrap();
        let slot = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let started = slot + TimeDelta::milliseconds(1500);
        let finished = started + TimeDelta::seconds(42);
        let f = Finished::new(
            slot,
            3,
            &Outcome::Failed {
                code: Some(7),
                signal: None,
            },
            started,
            finished,
        );
        let r = f.record(&id);
        assert_eq!(r.run_id, "team/job@2026-01-01T00:00:00Z");
        assert_eq!(
            (r.attempt, &*r.outcome, r.exit_code),
            (3, "failed", Some(7))
        );
        assert_eq!((r.started, r.finished), (started, finished));
        let f = Finished::new(slot, 1, &Outcome::TimedOut, started, finished);
        assert_eq!(f.record(&id).exit_code, None);
        // HTTP statuses fit; what does not is shown as no code, never as a
        // wrong one; attempts saturate; slots before 1970 keep their sign.
        let failed = |code| Outcome::Failed {
            code: Some(code),
            signal: None,
        };
        let early = DateTime::from_timestamp(-86_400 * 365 * 200, 0).unwrap();
        for (code, shown) in [
            (599, Some(599)),
            (255, Some(255)),
            (-1, None),
            (70_000, None),
        ] {
            let r = Finished::new(early, 1_000, &failed(code), early, early).record(&id);
            assert_eq!((r.exit_code, r.attempt, r.started), (shown, 127, early));
        }
        let r = Finished::new(slot, 2, &Outcome::SpawnFailed("x".into()), slot, slot).record(&id);
        assert_eq!((&*r.outcome, r.attempt), ("spawn_failed", 2));
    }

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let slot = |i: i64| DateTime::from_timestamp(i, 0).unwrap();
        let mut ring = Ring::default();
        assert_eq!(ring.iter().count(), 0);
        for i in 0..(OUTCOME_RING as i64 * 2 + 3) {
            ring.push(Finished::new(
                slot(i),
                1,
                &Outcome::Succeeded,
                slot(i),
                slot(i),
            ));
            let seen: Vec<i64> = ring.iter().map(|f| f.slot_ms() / 1000).collect();
            let first = (i + 1 - OUTCOME_RING as i64).max(0);
            assert_eq!(seen, (first..=i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn running_keeps_start_order() {
        let mut r = Running::default();
        assert!(r.is_empty() && r.iter().count() == 0);
        for e in [5, 6, 7] {
            r.push(e);
        }
        assert_eq!((r.len(), r.contains(6), r.contains(8)), (3, true, false));
        r.remove(5);
        assert_eq!(r.to_vec(), vec![6, 7]);
        r.remove(7);
        r.push(9);
        assert_eq!(r.to_vec(), vec![6, 9]);
        r.remove(6);
        r.remove(9);
        assert!(r.is_empty() && r.iter().next().is_none());
    }
}
