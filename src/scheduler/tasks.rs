//! The executions' tasks: a few long-lived lanes, one per tokio worker,
//! each driving the runs handed to it and posting their ends back.
//!
//! A tokio task per run costs more than a no-op run: an over-aligned
//! allocation (`posix_memalign`, which fragments glibc's heap), a mutex on
//! the runtime's owned-task list at spawn and again at the end, and a trip
//! through a worker's run queue. A profile of the 100k-job benchmark put
//! a sixth of the scheduler's time in those two list operations and in
//! `memalign`. A lane instead keeps its runs in a `FuturesUnordered`:
//! one ordinary allocation per run, no lock, and runs handed over and
//! their ends posted back a batch at a time (one lock and one wake-up per
//! batch, where a bounded channel cost a semaphore, a list push and a
//! wake-up per run).
//!
//! A run starts where it fires: [`Tasks::push`] polls it once, on the
//! scheduler's own task, and only a run that is not done by then is
//! handed to a lane. A run that ends at once (a no-op, a run refused
//! before it starts) then costs no hand-over, no wake-up of another
//! worker and no end posted back; its future is allocated, run and freed
//! on one thread. A process run never ends at once: its first poll finds
//! its own task just spawned, and it goes to a lane like before, for the
//! price of that one poll. This is asyncio's eager task start (Python
//! 3.12) for the same reason: most of the time, the hand-over costs more
//! than the run. With the benchmark's no-op runs, it halved the
//! scheduler's CPU at 100k jobs and took its p99 lateness from 85–109 ms
//! to 61 ms. The waker of that first poll is a no-op: the lane polls
//! every run it takes once before waiting on it, which registers the
//! lane's own.
//!
//! Ownership stays whole: every run lives in exactly one lane, which this
//! structure owns; aborting the lanes (shutdown's last step, or this
//! structure being dropped with its scheduler) drops every run they hold.
//! A dropped run's child is killed with its process group; a process run
//! lives in a task of its own, aborted when its run is dropped, which
//! shutdown waits for (boundedly, see `ExecShared::detach`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Most run ends a lane takes in one turn before it lets the worker run
/// other tasks (the scheduler among them).
const LANE_TURN: usize = 128;

/// A queue and the wake-up of its one reader. Its length is bounded by
/// construction, not by a capacity: an inbox holds runs handed over and
/// not yet taken, the outbox ends not yet received, and either is at most
/// the runs alive at once, which the scheduler bounds (`max_running`).
struct Mailbox<T> {
    items: Mutex<VecDeque<T>>,
    ready: Notify,
}

impl<T> Mailbox<T> {
    fn new() -> Arc<Self> {
        Arc::new(Mailbox {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Nothing panics while holding it; if something did, the queue
        // itself is still whole.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `more` (emptying it) and wakes the reader: one lock and one
    /// wake-up for a whole batch.
    fn post(&self, more: &mut VecDeque<T>) {
        if more.is_empty() {
            return;
        }
        self.lock().append(more);
        self.ready.notify_one();
    }

    /// Swaps everything posted into `into`, which must be empty (so both
    /// keep their room and nothing is copied).
    fn take(&self, into: &mut VecDeque<T>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut *self.lock(), into);
    }
}

struct Lane<F: Future> {
    inbox: Arc<Mailbox<F>>,
    /// Pushed since the last [`Tasks::flush`].
    staged: VecDeque<F>,
    task: JoinHandle<()>,
}

/// Runs futures in lanes; their outputs come back, in completion order
/// per lane, through [`next`](Self::next).
pub(super) struct Tasks<F: Future> {
    /// Every lane posts its runs' ends here.
    outbox: Arc<Mailbox<F::Output>>,
    /// Ends taken from the outbox and not yet returned.
    received: VecDeque<F::Output>,
    /// Started on first use, from inside the runtime.
    lanes: Vec<Lane<F>>,
    /// The lane the next run goes to (round robin).
    turn: usize,
    /// Pushed and not yet returned: what the audit compares with the
    /// tracked executions.
    live: usize,
    /// Lanes that ended on their own (see [`lost_lanes`](Self::lost_lanes)).
    lost: usize,
}

impl<F> Tasks<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub fn new() -> Self {
        Tasks {
            outbox: Mailbox::new(),
            received: VecDeque::new(),
            lanes: Vec::new(),
            turn: 0,
            live: 0,
            lost: 0,
        }
    }

    /// Starts `fut`: polls it once here, and if it is not done, hands it
    /// to a lane. The hand-over happens at the next [`flush`](Self::flush):
    /// a burst is handed over in one go, one lock and one wake-up per lane.
    /// A run that is done at once has its output ready for
    /// [`try_next`](Self::try_next).
    pub fn push(&mut self, mut fut: F)
    where
        F: Unpin,
    {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let first = std::pin::Pin::new(&mut fut).poll(&mut cx);
        // Counted once the poll returned: a future that panics in it (none
        // of the scheduler's: `ExecTask` catches) was never started.
        self.live += 1;
        if let Poll::Ready(out) = first {
            self.received.push_back(out);
            return;
        }
        if self.lanes.is_empty() {
            self.start_lanes();
        }
        let at = self.turn % self.lanes.len();
        self.turn = self.turn.wrapping_add(1);
        self.lanes[at].staged.push_back(fut);
    }

    /// Starts everything pushed since the last flush.
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            if lane.task.is_finished() {
                // A lane only ends when aborted, and runs cannot panic it
                // (see `ExecTask`); if one died anyway, the runs it held
                // went with it, but what it had not taken yet goes to its
                // replacement.
                self.lost += 1;
                if let Some(Err(e)) = (&mut lane.task).now_or_never() {
                    let why = if e.is_panic() {
                        panic_message(&*e.into_panic())
                    } else {
                        e.to_string()
                    };
                    tracing::error!(%why, "an execution lane died; the runs it held are lost");
                }
                let mut rescued = VecDeque::new();
                lane.inbox.take(&mut rescued);
                rescued.append(&mut lane.staged);
                *lane = Lane::start(&self.outbox);
                lane.staged = rescued;
            }
            lane.inbox.post(&mut lane.staged);
        }
    }

    /// One lane per worker of the current runtime: runs spread over every
    /// core, and no more lanes than there are cores to run them.
    fn start_lanes(&mut self) {
        let n = tokio::runtime::Handle::try_current()
            .map_or(1, |h| h.metrics().num_workers())
            .max(1);
        self.lanes = (0..n).map(|_| Lane::start(&self.outbox)).collect();
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Stops every lane as a bug would (`Fault::LaneDied`).
    pub fn abort_lanes(&self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }

    /// Lanes that ended on their own, replaced or not yet: each took the
    /// runs it held with it, which never report, so the audit says so for
    /// as long as the scheduler lives.
    pub fn lost_lanes(&self) -> usize {
        self.lost + self.lanes.iter().filter(|l| l.task.is_finished()).count()
    }

    /// The next output. Pending for ever when no run is live: guard the
    /// call with [`is_empty`](Self::is_empty). Cancel-safe: an output is
    /// only taken when it is returned.
    pub async fn next(&mut self) -> F::Output {
        loop {
            if let Some(out) = self.try_next() {
                return out;
            }
            // A post after the look above leaves a permit, so this
            // returns at once.
            self.outbox.ready.notified().await;
        }
    }

    /// An output that is ready now, if any.
    pub fn try_next(&mut self) -> Option<F::Output> {
        if self.received.is_empty() {
            self.outbox.take(&mut self.received);
        }
        let out = self.received.pop_front()?;
        debug_assert!(self.live > 0, "an end for a run that was not pushed");
        self.live = self.live.saturating_sub(1);
        Some(out)
    }

    /// Aborts every lane, dropping the runs they hold (and those handed
    /// over but not yet taken). Returns the lanes' handles: once they are
    /// awaited, every run's future is gone.
    pub fn abort(&mut self) -> Vec<JoinHandle<()>> {
        self.live = 0;
        self.received.clear();
        // A lane still in its last turn posts to the old outbox, not to
        // whatever lanes come next.
        self.outbox = Mailbox::new();
        self.lanes
            .drain(..)
            .map(|lane| {
                lane.task.abort();
                lane.task
            })
            .collect()
    }
}

impl<F> Lane<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn start(outbox: &Arc<Mailbox<F::Output>>) -> Self {
        let inbox = Mailbox::new();
        Lane {
            task: tokio::spawn(drive(Arc::clone(&inbox), Arc::clone(outbox))),
            inbox,
            staged: VecDeque::new(),
        }
    }
}

/// A panic's message, when it has one.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
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

/// A lane: takes the runs handed over, drives them, and posts their ends,
/// all the ends of one turn at once.
async fn drive<F>(inbox: Arc<Mailbox<F>>, outbox: Arc<Mailbox<F::Output>>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut runs = FuturesUnordered::new();
    let mut taken = VecDeque::new();
    let mut ended = VecDeque::new();
    let mut ready = pin!(inbox.ready.notified());
    std::future::poll_fn(|cx| {
        // Polling the fresh waiter registers it, so a hand-over after the
        // take below wakes this lane; one before it is taken now.
        while ready.as_mut().poll(cx).is_ready() {
            ready.set(inbox.ready.notified());
            inbox.take(&mut taken);
            runs.extend(taken.drain(..));
        }
        let mut more = true;
        for _ in 0..LANE_TURN {
            match runs.poll_next_unpin(cx) {
                Poll::Ready(Some(out)) => ended.push_back(out),
                Poll::Ready(None) | Poll::Pending => {
                    more = false;
                    break;
                }
            }
        }
        outbox.post(&mut ended);
        if more {
            // More may be ready: come back after the others have had a
            // turn.
            cx.waker().wake_by_ref();
        }
        Poll::<()>::Pending
    })
    .await;
}

impl<F> Default for Tasks<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn default() -> Self {
        Self::new()
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
        let mut tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        spawn(&mut tasks, async { 1 });
        spawn(&mut tasks, async move {
            let _ = rx.await;
            2
        });
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

    #[tokio::test]
    async fn a_run_done_at_once_needs_no_lane() {
        let mut tasks: Tasks<Boxed> = Tasks::new();
        tasks.push(Box::pin(async { 5 }));
        assert!(tasks.lanes.is_empty());
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks.try_next(), Some(5));
        assert!(tasks.is_empty());
        // One that has to wait goes to a lane, and the lane's waker, not
        // the first poll's, is the one that gets it going again.
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        spawn(&mut tasks, async move { rx.await.unwrap_or(0) });
        assert_eq!(tasks.lanes.len(), 1);
        tokio::task::yield_now().await;
        assert!(tasks.try_next().is_none());
        tx.send(9).unwrap();
        assert_eq!(tasks.next().await, 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_spreads_over_the_lanes_and_all_of_it_ends() {
        let mut tasks = Tasks::new();
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
        assert_eq!(tasks.lost_lanes(), 0);
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
        let mut tasks: Tasks<Boxed> = Tasks::new();
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

    /// Runs cannot panic a lane in the scheduler (`ExecTask` catches every
    /// panic); a bare future here can, and stands in for a bug.
    #[tokio::test]
    async fn a_dead_lane_is_replaced_and_counted() {
        let mut tasks = Tasks::new();
        spawn(&mut tasks, async {
            tokio::task::yield_now().await;
            panic!("lane bug")
        });
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(tasks.lost_lanes(), 1);
        // Pushed but not flushed when the lane is found dead: the
        // replacement gets it.
        tasks.push(Box::pin(async {
            tokio::task::yield_now().await;
            7
        }));
        tasks.flush();
        assert_eq!(tasks.lost_lanes(), 1);
        assert_eq!(tasks.next().await, 7);
        // The lost run never reports.
        assert_eq!(tasks.len(), 1);
    }
}
