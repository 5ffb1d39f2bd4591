//! The executions' tasks: a few long-lived lanes, one per tokio worker,
//! each driving the runs handed to it, with every end reported through one
//! bounded channel.
//!
//! A tokio task per run costs more than a no-op run: an over-aligned
//! allocation (`posix_memalign`, which fragments glibc's heap), a mutex on
//! the runtime's owned-task list at spawn and again at the end, and a trip
//! through a worker's run queue. A profile of the 100k-job benchmark put
//! a sixth of the scheduler's time in those two list operations and in
//! `memalign`. A lane instead keeps its runs in a `FuturesUnordered`:
//! one ordinary allocation per run, no lock, and runs handed over a batch
//! at a time (one lock and one wake-up per lane per batch).
//!
//! Ownership stays whole: every run lives in exactly one lane, which this
//! structure owns; aborting the lanes (shutdown's last step, or this
//! structure being dropped with its scheduler) drops every run they hold,
//! and a dropped run's child is killed with its process group.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::task::JoinHandle;

/// Most run ends a lane takes in one turn before it lets the worker run
/// other tasks (the scheduler among them).
const LANE_TURN: usize = 128;

/// How a run's end reaches the scheduler.
enum Reply<T> {
    /// Room taken in the channel when the run was handed over, so the run
    /// ends with a plain synchronous send.
    Reserved(OwnedPermit<T>),
    /// The channel was full then: the run waits for room (nothing is
    /// dropped).
    Wait(mpsc::Sender<T>),
}

struct Run<F: Future> {
    fut: F,
    reply: Reply<F::Output>,
}

/// What the scheduler and one lane share: runs handed over and not yet
/// taken (at most the runs alive at once), and the lane's wake-up.
struct Inbox<F: Future> {
    runs: Mutex<Vec<Run<F>>>,
    ready: Notify,
}

struct Lane<F: Future> {
    inbox: Arc<Inbox<F>>,
    /// Pushed since the last [`Tasks::flush`].
    staged: Vec<Run<F>>,
    task: JoinHandle<()>,
}

/// Runs futures in lanes; their outputs come back, in completion order,
/// through [`next`](Self::next).
pub(super) struct Tasks<F: Future> {
    tx: mpsc::Sender<F::Output>,
    rx: mpsc::Receiver<F::Output>,
    /// Started on first use, from inside the runtime.
    lanes: Vec<Lane<F>>,
    /// The lane the next run goes to (round robin).
    turn: usize,
    /// Pushed and not yet received: what the audit compares with the
    /// tracked executions.
    live: usize,
}

impl<F> Tasks<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// `bound` is the channel's capacity. A run whose output finds it
    /// full waits for room (nothing is dropped), so a bound at least the
    /// number of runs alive at once (`max_running`) never makes one wait.
    pub fn new(bound: usize) -> Self {
        let (tx, rx) = mpsc::channel(bound.max(1));
        Tasks {
            tx,
            rx,
            lanes: Vec::new(),
            turn: 0,
            live: 0,
        }
    }

    /// Hands `fut` to a lane. It starts at the next [`flush`](Self::flush):
    /// a burst is handed over in one go, one lock and one wake-up per lane.
    pub fn push(&mut self, fut: F) {
        if self.lanes.is_empty() {
            self.start_lanes();
        }
        self.live += 1;
        let reply = match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Reply::Reserved(permit),
            Err(full) => Reply::Wait(full.into_inner()),
        };
        let at = self.turn % self.lanes.len();
        self.turn = self.turn.wrapping_add(1);
        self.lanes[at].staged.push(Run { fut, reply });
    }

    /// Starts everything pushed since the last flush.
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            if lane.staged.is_empty() {
                continue;
            }
            lane.inbox
                .runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&mut lane.staged);
            lane.inbox.ready.notify_one();
        }
    }

    /// One lane per worker of the current runtime: runs spread over every
    /// core, and no more lanes than there are cores to run them.
    fn start_lanes(&mut self) {
        let n = tokio::runtime::Handle::try_current()
            .map_or(1, |h| h.metrics().num_workers())
            .max(1);
        self.lanes = (0..n)
            .map(|_| {
                let inbox = Arc::new(Inbox {
                    runs: Mutex::new(Vec::new()),
                    ready: Notify::new(),
                });
                Lane {
                    task: tokio::spawn(drive(Arc::clone(&inbox))),
                    inbox,
                    staged: Vec::new(),
                }
            })
            .collect();
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Lanes that ended on their own. A lane only ends when aborted, so
    /// one that did took its runs with it: the audit reports it.
    pub fn dead_lanes(&self) -> usize {
        self.lanes.iter().filter(|l| l.task.is_finished()).count()
    }

    /// The next output. Pending for ever when no run is live: guard the
    /// call with [`is_empty`](Self::is_empty).
    pub async fn next(&mut self) -> F::Output {
        // `self` holds a sender, so the channel never closes.
        let out = self.rx.recv().await.expect("Tasks holds a sender");
        self.live -= 1;
        out
    }

    /// An output that is ready now, if any.
    pub fn try_next(&mut self) -> Option<F::Output> {
        let out = self.rx.try_recv().ok()?;
        self.live -= 1;
        Some(out)
    }

    /// Aborts every lane, dropping the runs they hold (and those handed
    /// over but not yet taken). Returns the lanes' handles: once they are
    /// awaited, every run's future is gone.
    pub fn abort(&mut self) -> Vec<JoinHandle<()>> {
        self.live = 0;
        self.lanes
            .drain(..)
            .map(|lane| {
                lane.task.abort();
                lane.task
            })
            .collect()
    }
}

/// A scheduler dropped without a shutdown (a panic unwinding through it)
/// takes its runs with it.
impl<F: Future> Drop for Tasks<F> {
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }
}

/// A lane: takes the runs handed over, drives them, and sends each end.
async fn drive<F>(inbox: Arc<Inbox<F>>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut runs = FuturesUnordered::new();
    let mut taken = Vec::new();
    let mut ready = pin!(inbox.ready.notified());
    std::future::poll_fn(|cx| {
        // Polling the fresh waiter registers it, so a hand-over after the
        // take below wakes this lane; one before it is taken now.
        while ready.as_mut().poll(cx).is_ready() {
            ready.set(inbox.ready.notified());
            std::mem::swap(
                &mut *inbox.runs.lock().unwrap_or_else(PoisonError::into_inner),
                &mut taken,
            );
            runs.extend(taken.drain(..).map(finish));
        }
        for _ in 0..LANE_TURN {
            match runs.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => {}
                Poll::Ready(None) | Poll::Pending => return Poll::<()>::Pending,
            }
        }
        // More may be ready: come back after the others have had a turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

async fn finish<F: Future>(run: Run<F>) {
    let out = run.fut.await;
    match run.reply {
        Reply::Reserved(permit) => {
            permit.send(out);
        }
        // Fails only once the scheduler is gone, and then nobody is left
        // to tell.
        Reply::Wait(tx) => {
            let _ = tx.send(out).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;

    type Boxed = Pin<Box<dyn Future<Output = u8> + Send>>;

    fn spawn(tasks: &mut Tasks<Boxed>, fut: impl Future<Output = u8> + Send + 'static) {
        tasks.push(Box::pin(fut));
        tasks.flush();
    }

    #[tokio::test]
    async fn outputs_come_back_and_are_counted() {
        let mut tasks = Tasks::new(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        spawn(&mut tasks, async { 1 });
        spawn(&mut tasks, async move {
            let _ = rx.await;
            2
        });
        // More runs than the channel holds: the last waits for room.
        spawn(&mut tasks, async { 3 });
        assert_eq!(tasks.len(), 3);
        let mut got = vec![tasks.next().await, tasks.next().await];
        assert_eq!(tasks.len(), 1);
        assert!(tasks.try_next().is_none());
        tx.send(()).unwrap();
        got.push(tasks.next().await);
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        assert!(tasks.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_spreads_over_the_lanes_and_all_of_it_ends() {
        let mut tasks = Tasks::new(10_000);
        for i in 0..10_000u32 {
            tasks.push(Box::pin(async move {
                tokio::task::yield_now().await;
                (i % 7) as u8
            }));
        }
        tasks.flush();
        assert_eq!(tasks.lanes.len(), 2);
        let mut sum = 0u64;
        while !tasks.is_empty() {
            sum += u64::from(tasks.next().await);
        }
        assert_eq!(sum, (0..10_000u64).map(|i| i % 7).sum::<u64>());
        assert_eq!(tasks.dead_lanes(), 0);
    }

    #[tokio::test]
    async fn aborting_drops_every_run() {
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Flag(Arc::clone(&dropped));
        let mut tasks: Tasks<Boxed> = Tasks::new(1);
        spawn(&mut tasks, async move {
            let _flag = flag;
            std::future::pending::<u8>().await
        });
        tokio::task::yield_now().await;
        for lane in tasks.abort() {
            assert!(lane.await.unwrap_err().is_cancelled());
        }
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        assert!(tasks.is_empty());
    }
}
