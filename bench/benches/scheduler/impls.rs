//! The four implementations under test, each set up with N jobs that fire
//! every second and record each fire in [`measure`].

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use apalis::prelude::{Event, Monitor, WorkerBuilder};
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use driftcron::scheduler::{
    ExecResult, ExecStart, Outcome, Runner, Scheduler, SchedulerConfig, SystemClock,
};
use driftcron::snapshot::{Snapshot, SourceFile};
use driftcron::spec::{self, LoadOptions};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::measure::{self, US_PER_S, now_us};

/// Every second, on the second (6 fields, seconds first).
pub const EVERY_SECOND: &str = "* * * * * *";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Heap,
    /// The bare heap, but each fire runs as a tokio task of its own: what
    /// one task per execution costs by itself, whoever schedules it.
    HeapSpawn,
    /// The bare heap, but each fire runs as a future handed to one of a
    /// few lane tasks, a batch at a time: the cheapest hand-off known here,
    /// and the one driftcron's scheduler uses.
    HeapLanes,
    Driftcron,
    TokioCron,
    Apalis,
}

impl Impl {
    pub const ALL: [Impl; 6] = [
        Impl::Heap,
        Impl::HeapSpawn,
        Impl::HeapLanes,
        Impl::Driftcron,
        Impl::TokioCron,
        Impl::Apalis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Heap => "bare-heap",
            Impl::HeapSpawn => "heap-spawn",
            Impl::HeapLanes => "heap-lanes",
            Impl::Driftcron => "driftcron",
            Impl::TokioCron => "tokio-cron-scheduler",
            Impl::Apalis => "apalis-cron",
        }
    }

    pub fn parse(s: &str) -> Option<Impl> {
        match s {
            "heap" | "bare-heap" => Some(Impl::Heap),
            "heap-spawn" => Some(Impl::HeapSpawn),
            "heap-lanes" => Some(Impl::HeapLanes),
            "driftcron" => Some(Impl::Driftcron),
            "tokio-cron-scheduler" | "tcs" | "tokio-cron" => Some(Impl::TokioCron),
            "apalis-cron" | "apalis" => Some(Impl::Apalis),
            _ => None,
        }
    }

    /// Whether callbacks learn their intended slot (else lateness is
    /// counted against the k-th second of the window).
    pub fn knows_slot(self) -> bool {
        self != Impl::TokioCron
    }
}

/// Whatever must stay alive for the jobs to keep firing.
pub type Keep = Box<dyn Any + Send>;

/// Sets up `n` every-second jobs and returns once all are scheduled.
pub async fn setup(imp: Impl, n: usize) -> Result<Keep, String> {
    Ok(match imp {
        Impl::Heap => Box::new(heap(n, Handoff::Inline)),
        Impl::HeapSpawn => Box::new(heap(n, Handoff::Spawn)),
        Impl::HeapLanes => Box::new(heap(n, Handoff::lanes(LANES))),
        Impl::Driftcron => Box::new(driftcron(n, EVERY_SECOND).await?),
        Impl::TokioCron => Box::new(tokio_cron(n).await?),
        Impl::Apalis => Box::new(apalis(n).await?),
    })
}

/// Anything the implementation reported that the figures do not show.
pub fn note(imp: Impl) -> Option<String> {
    match imp {
        Impl::Apalis if APALIS_ERRORS.load(Relaxed) > 0 => {
            Some(format!("{} worker errors", APALIS_ERRORS.load(Relaxed)))
        }
        _ => None,
    }
}

// --- driftcron ---------------------------------------------------------

/// One job file: every job has its own description and labels, so the
/// specs are distinct the way a real repository's are.
fn job_toml(i: usize, schedule: &str) -> String {
    format!(
        "description = \"Bench job {i}: sweeps shard {shard} for team {team}.\"\n\
         schedule = \"{schedule}\"\n\
         command = [\"noop\"]\n\
         labels = {{ team = \"team-{team}\", shard = \"s{shard}\", job = \"j{i}\" }}\n",
        shard = i % 97,
        team = i % 13,
    )
}

/// The no-op runner: records the fire against its exact slot and succeeds.
struct NoopRunner;

impl Runner for NoopRunner {
    fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        let slot = start.scheduled_at.timestamp_micros();
        Box::pin(async move {
            measure::record_slot(slot, now_us());
            ExecResult::ended(Outcome::Succeeded)
        })
    }
}

/// Loads `n` job files through driftcron's own loader, diffs them against
/// an empty scheduler and applies the plan.
pub async fn driftcron(n: usize, schedule: &str) -> Result<Scheduler, String> {
    let mut files: Vec<SourceFile> = (0..n)
        .map(|i| SourceFile {
            path: format!("bench/j{i}.toml"),
            bytes: job_toml(i, schedule).into_bytes(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let snapshot = Snapshot {
        revision: "bench".into(),
        files,
        problems: vec![],
    };
    let loaded = spec::load(
        &snapshot,
        &LoadOptions {
            now: Utc::now(),
            max_jobs: Some(n),
        },
    );
    drop(snapshot);
    if !loaded.is_valid() {
        let first: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .take(3)
            .map(|d| format!("{d:?}"))
            .collect();
        return Err(format!(
            "driftcron rejected the specs: {}",
            first.join("; ")
        ));
    }
    if loaded.desired.jobs.len() != n {
        return Err(format!(
            "driftcron loaded {} jobs, not {n}",
            loaded.desired.jobs.len()
        ));
    }
    let plan = driftcron::plan::diff(&loaded.desired.jobs, &BTreeMap::new());
    drop(loaded);
    let config = SchedulerConfig {
        max_running: n as u32,
        max_queued: n as u32,
        ..SchedulerConfig::default()
    };
    let sched = Scheduler::start_with_runner(config, Arc::new(SystemClock), Arc::new(NoopRunner));
    let report = sched
        .apply(plan, "bench")
        .await
        .map_err(|e| format!("apply: {e}"))?;
    if report.created != n {
        return Err(format!("apply created {} jobs, not {n}", report.created));
    }
    Ok(sched)
}

// --- tokio-cron-scheduler ----------------------------------------------

async fn tokio_cron(n: usize) -> Result<JobScheduler, String> {
    let sched = JobScheduler::new()
        .await
        .map_err(|e| format!("JobScheduler::new: {e:?}"))?;
    for i in 0..n {
        let job = Job::new_async(EVERY_SECOND, move |_id, _sched| {
            Box::pin(async move { measure::record_nth(i, now_us()) })
        })
        .map_err(|e| format!("Job::new_async: {e:?}"))?;
        sched
            .add(job)
            .await
            .map_err(|e| format!("JobScheduler::add: {e:?}"))?;
    }
    sched
        .start()
        .await
        .map_err(|e| format!("JobScheduler::start: {e:?}"))?;
    Ok(sched)
}

// --- apalis-cron -------------------------------------------------------

static APALIS_STARTED: AtomicUsize = AtomicUsize::new(0);
static APALIS_ERRORS: AtomicU64 = AtomicU64::new(0);

async fn on_tick(tick: Tick) {
    measure::record_slot(tick.get_timestamp() as i64 * US_PER_S, now_us());
}

/// One cron worker per job, all run by one `Monitor` (apalis' way to run
/// several workers). Setup ends when every worker has started.
async fn apalis(n: usize) -> Result<tokio::task::JoinHandle<()>, String> {
    let schedule =
        cron::Schedule::from_str(EVERY_SECOND).map_err(|e| format!("cron schedule: {e}"))?;
    let mut monitor = Monitor::new().on_event(|_, ev| match ev {
        Event::Start => {
            APALIS_STARTED.fetch_add(1, Relaxed);
        }
        Event::Error(_) => {
            APALIS_ERRORS.fetch_add(1, Relaxed);
        }
        _ => {}
    });
    for i in 0..n {
        let schedule = schedule.clone();
        monitor = monitor.register(move |_restarts| {
            WorkerBuilder::new(format!("bench-cron-{i}"))
                .backend(CronScheduler::new(schedule.clone()))
                .build(on_tick)
        });
    }
    let task = tokio::spawn(async move {
        let _ = monitor.run().await;
    });
    while APALIS_STARTED.load(Relaxed) < n {
        if task.is_finished() {
            return Err("apalis monitor exited during setup".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(task)
}

// --- bare heap ---------------------------------------------------------

/// Lanes for `heap-lanes`: one per worker of the benchmark's runtime, as
/// driftcron starts.
const LANES: usize = 2;

/// Fires popped before the heap hands them over (driftcron's batch).
const HANDOFF_BATCH: usize = 256;

type Fire = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the heap hands over a fire.
enum Handoff {
    /// Records it inline: no execution at all.
    Inline,
    /// One `tokio::spawn` per fire.
    Spawn,
    /// A boxed future per fire, given to the lanes a batch at a time.
    Lanes {
        lanes: Vec<Arc<Inbox>>,
        batch: Vec<Fire>,
        turn: usize,
    },
}

/// A lane's inbox: fires handed over and not yet taken, and its wake-up.
#[derive(Default)]
struct Inbox {
    fires: std::sync::Mutex<Vec<Fire>>,
    ready: tokio::sync::Notify,
}

impl Handoff {
    fn lanes(n: usize) -> Handoff {
        Handoff::Lanes {
            lanes: (0..n).map(|_| Arc::new(Inbox::default())).collect(),
            batch: Vec::new(),
            turn: 0,
        }
    }

    /// Starts the lanes' tasks (none for the other modes).
    fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Handoff::Lanes { lanes, .. } = self else {
            return Vec::new();
        };
        lanes
            .iter()
            .map(|inbox| {
                let inbox = Arc::clone(inbox);
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let mut fires = futures_util::stream::FuturesUnordered::new();
                    let mut taken = Vec::new();
                    loop {
                        tokio::select! {
                            () = inbox.ready.notified() => {
                                std::mem::swap(&mut *inbox.fires.lock().expect("lock"), &mut taken);
                                fires.extend(taken.drain(..));
                            }
                            Some(()) = fires.next(), if !fires.is_empty() => {}
                        }
                    }
                })
            })
            .collect()
    }

    fn fire(&mut self, at: i64, now: i64) {
        match self {
            Handoff::Inline => measure::record_slot(at, now),
            Handoff::Spawn => {
                tokio::spawn(async move { measure::record_slot(at, now_us()) });
            }
            Handoff::Lanes { batch, .. } => {
                batch.push(Box::pin(async move { measure::record_slot(at, now_us()) }));
            }
        }
    }

    /// Hands the batch over, split evenly over the lanes.
    fn flush(&mut self) {
        let Handoff::Lanes { lanes, batch, turn } = self else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        let per = batch.len().div_ceil(lanes.len());
        while !batch.is_empty() {
            let part = batch.split_off(batch.len().saturating_sub(per));
            let inbox = &lanes[*turn % lanes.len()];
            *turn += 1;
            inbox.fires.lock().expect("lock").extend(part);
            inbox.ready.notify_one();
        }
    }
}

/// The baseline: one task, one min-heap of `(next fire, job)`, one shared
/// parsed schedule. It sleeps until the earliest entry, pops everything
/// due, hands each fire over as `handoff` says and pushes each job's next
/// fire.
fn heap(n: usize, mut handoff: Handoff) -> Vec<tokio::task::JoinHandle<()>> {
    let schedule = cron::Schedule::from_str(EVERY_SECOND).expect("valid cron");
    let next_after = move |t_us: i64| -> i64 {
        let t = DateTime::<Utc>::from_timestamp_micros(t_us).expect("in range");
        schedule
            .after(&t)
            .next()
            .expect("every second has a next")
            .timestamp_micros()
    };
    let first = next_after(now_us());
    let mut heap: BinaryHeap<Reverse<(i64, u32)>> =
        (0..n as u32).map(|j| Reverse((first, j))).collect();
    let mut tasks = handoff.start();
    tasks.push(tokio::spawn(async move {
        // Every job shares the schedule, so one lookup serves a whole slot.
        let mut memo = (i64::MIN, i64::MIN);
        loop {
            let Some(&Reverse((at, _))) = heap.peek() else {
                return;
            };
            let wait = at - now_us();
            if wait > 0 {
                tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                continue;
            }
            let mut popped = 0;
            while let Some(&Reverse((at, job))) = heap.peek() {
                let now = now_us();
                if at > now {
                    break;
                }
                heap.pop();
                handoff.fire(at, now);
                if memo.0 != at {
                    memo = (at, next_after(at));
                }
                heap.push(Reverse((memo.1, job)));
                popped += 1;
                if popped % HANDOFF_BATCH == 0 {
                    handoff.flush();
                }
            }
            handoff.flush();
        }
    }));
    tasks
}
