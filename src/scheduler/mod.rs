//! The bounded scheduler: one task owns every timer, queue and execution;
//! callers hold a [`Scheduler`] handle that sends it bounded commands.
//!
//! Invariants (checked by the audit, reported as leaks when broken):
//! - timer entries == active jobs with a next slot; no entry for a job that
//!   is gone or suspended (one index, re-keyed on every change);
//! - tracked executions == runs started and not yet reported (done at
//!   their first poll, or in a lane), and no lane ended on its own (see
//!   `tasks.rs`);
//! - no process group the scheduler started is alive without an execution.
//!
//! Memory is O(jobs + running executions): per-job state is one registry
//! entry with a fixed-size outcome ring, removed with the job; queues are
//! bounded by `max_queued` and each job's `queue_depth`.

pub mod clock;
mod core;
pub mod executor;
pub mod ids;
mod schedules;
pub mod shared;
mod slab;
pub mod state;
mod tasks;
pub mod timers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OnceCell, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::task::AbortOnDropHandle;

pub use clock::{Clock, SystemClock, TestClock};
pub use core::{LEAK_SLACK, MAX_SLEEP, OUTCOME_RING, SHUTDOWN_KILL_GRACE, SHUTDOWN_REAP};
pub use executor::{ExecRequest, ExecResult, ExecStart, Outcome};
pub use ids::{RunId, SpecDigest, run_id};
pub use shared::SharedSlice;
pub use state::{
    ApplyReport, AuditReport, Counters, JobFilter, LeakReason, RunningState, ShutdownReport,
};

use crate::plan::Plan;
use crate::spec::{JobId, Settings};
use core::{Command, Core};

/// Commands waiting for the scheduler task. Senders wait when it is full
/// (backpressure), so a burst of API calls cannot grow memory.
pub const COMMAND_QUEUE: usize = 64;

/// Runtime bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Executions running at once.
    pub max_running: u32,
    /// Runs waiting for a free slot; beyond it runs are dropped (counted).
    pub max_queued: u32,
    /// How often the invariants are checked.
    pub audit_interval: Duration,
    /// A slot later than this when the timer wakes (and no
    /// `starting_deadline` says otherwise) is a misfire, handled by the
    /// job's `catch_up`.
    pub misfire_threshold: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig::from(&Settings::default())
    }
}

impl From<&Settings> for SchedulerConfig {
    fn from(s: &Settings) -> Self {
        SchedulerConfig {
            max_running: s.scheduler.max_running,
            max_queued: s.scheduler.max_queued,
            audit_interval: Duration::from_secs(30),
            misfire_threshold: Duration::from_secs(60),
        }
    }
}

/// Errors of scheduler calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("no job {0:?} is running")]
    UnknownJob(String),
    #[error("the scheduler has stopped")]
    Stopped,
}

/// Faults the tests inject to prove the audit finds each leak class.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A deadline left in the timer index with no key at it (a removal
    /// that forgot its bucket).
    StaleTimerEntry,
    /// A task in the scheduler's set with no execution record.
    UntrackedTask,
    /// A live process group recorded as started but with no execution.
    OrphanProcessGroup(u32),
    /// Every job's version moves on (its epoch) without its running runs
    /// being orphaned: they lose the spec they run (an update that forgot
    /// to hand the old spec over).
    UnorphanedRuns,
    /// One user of a schedule counted that no job is (a removal that
    /// forgot to release its schedule).
    StaleScheduleUser,
    /// Every execution lane stops, taking the runs it drives (a lane that
    /// panicked or was aborted by mistake).
    LaneDied,
}

/// Runs executions. The scheduler decides *when*; a runner decides *how*.
/// [`ProcessRunner`] is the real one (processes, HTTP); scheduling tests
/// plug a runner that takes virtual time, so policies are tested under
/// tokio's paused clock without real processes racing it.
///
/// The future a runner returns is first polled by the scheduler itself,
/// where the run fires, and then, if it is not done, driven in a lane
/// together with other runs (see `tasks.rs`): it must not block its
/// thread, least of all on that first poll. Work that may
/// block belongs in a task of the run's own, held so that dropping the
/// future aborts it, and owning the run's [`ExecShared::detach`] guard so
/// that shutdown can wait for it to be gone, as [`ProcessRunner`] does.
///
/// A runner takes from the [`ExecStart`] what its future keeps:
/// [`ExecStart::to_request`] for everything, [`ExecStart::shared`] for
/// cancellation alone.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>>;
}

/// The production runner: child processes in their own process group.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    /// A process run blocks its thread now and then (fork and exec, a walk
    /// of `/proc` when its group outlives it), so it gets a task of its
    /// own: the runs sharing its lane never wait on it. The lane still
    /// owns it: dropping the run aborts the task, and an aborted task
    /// drops its child, which kills the child's process group. A tokio
    /// task is nothing next to a process.
    fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        let req = start.to_request();
        // Shutdown waits for the guard: an aborted task stops only at its
        // next await (after a fork in progress, say).
        let detached = req.shared.detach();
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            let _detached = detached;
            executor::run(req).await
        }));
        Box::pin(async move {
            let mut result = match task.await {
                Ok(result) => result,
                // Ends the run as any runner panic does (see `core.rs`).
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only dropping the handle aborts the task, and then
                // nothing polls this any more.
                Err(_) => ExecResult::ended(Outcome::Cancelled),
            };
            // Its end waits in a lane for the scheduler, which may be busy
            // (a burst firing, a large apply): it is timed here, where it
            // happens, spawn failures included.
            result.finished.get_or_insert_with(chrono::Utc::now);
            result
        })
    }
}

/// A handle to the scheduler task. Dropping every handle shuts it down;
/// [`Scheduler::shutdown`] does it explicitly, boundedly and idempotently.
pub struct Scheduler {
    tx: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
    stopped: OnceCell<ShutdownReport>,
}

impl Scheduler {
    /// Starts the scheduler task on the current tokio runtime.
    pub fn start(config: SchedulerConfig, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler::start_with_runner(config, clock, Arc::new(ProcessRunner))
    }

    /// Starts the scheduler with a given runner.
    pub fn start_with_runner(
        config: SchedulerConfig,
        clock: Arc<dyn Clock>,
        runner: Arc<dyn Runner>,
    ) -> Scheduler {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(Core::new(config, clock, runner, rx).run());
        Scheduler {
            tx,
            task: Mutex::new(Some(task)),
            stopped: OnceCell::new(),
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Applies a plan atomically (no timer fires halfway) and idempotently
    /// (a spec already running with the same digest is left alone).
    ///
    /// # Errors
    /// [`SchedulerError::Stopped`] after shutdown.
    pub async fn apply(
        &self,
        plan: Plan,
        revision: impl Into<String>,
    ) -> Result<ApplyReport, SchedulerError> {
        let revision = revision.into();
        self.call(|reply| Command::Apply {
            plan,
            revision,
            reply,
        })
        .await
    }

    /// A snapshot of everything running.
    ///
    /// # Errors
    /// [`SchedulerError::Stopped`] after shutdown.
    pub async fn state(&self) -> Result<RunningState, SchedulerError> {
        self.state_of(JobFilter::All).await
    }

    /// A snapshot listing only the jobs `filter` asks for (counts,
    /// counters and leaks are always complete).
    ///
    /// # Errors
    /// [`SchedulerError::Stopped`] after shutdown.
    pub async fn state_of(&self, filter: JobFilter) -> Result<RunningState, SchedulerError> {
        self.call(|reply| Command::State { filter, reply }).await
    }

    /// Stops firing a job until resumed (running executions go on).
    ///
    /// # Errors
    /// Unknown job, or stopped.
    pub async fn suspend(&self, id: &JobId) -> Result<(), SchedulerError> {
        let id = id.clone();
        self.call(|reply| Command::Suspend { id, reply }).await?
    }

    /// Resumes a suspended job (also one disabled in git: an override).
    ///
    /// # Errors
    /// Unknown job, or stopped.
    pub async fn resume(&self, id: &JobId) -> Result<(), SchedulerError> {
        let id = id.clone();
        self.call(|reply| Command::Resume { id, reply }).await?
    }

    /// Runs a job now (its concurrency policy and the global limit apply).
    /// Returns the run id.
    ///
    /// # Errors
    /// Unknown job, or stopped.
    pub async fn trigger(&self, id: &JobId) -> Result<String, SchedulerError> {
        let id = id.clone();
        self.call(|reply| Command::Trigger { id, reply }).await?
    }

    /// Runs the invariant audit now.
    ///
    /// # Errors
    /// [`SchedulerError::Stopped`] after shutdown.
    pub async fn audit(&self) -> Result<AuditReport, SchedulerError> {
        self.call(|reply| Command::Audit { reply }).await
    }

    #[doc(hidden)]
    /// Test hook: injects a leak for the audit to find.
    pub async fn inject(&self, fault: Fault) -> Result<(), SchedulerError> {
        self.call(|reply| Command::Inject { fault, reply }).await
    }

    /// Stops firing, lets executions finish for up to `deadline`, then
    /// cancels (SIGTERM, then SIGKILL after a grace of at most
    /// [`SHUTDOWN_KILL_GRACE`]) and reaps. Idempotent: later and concurrent
    /// calls get the first call's report.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.stopped
            .get_or_init(|| async {
                let report = self
                    .call(|reply| Command::Shutdown { deadline, reply })
                    .await
                    .unwrap_or_default();
                if let Some(task) = self.task.lock().await.take() {
                    let _ = task.await;
                }
                report
            })
            .await
            .clone()
    }
}
