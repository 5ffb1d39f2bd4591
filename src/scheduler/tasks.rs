//! The executions' tasks: each spawned on tokio, owned through the
//! `JoinHandle` its record keeps, and reporting its end through one
//! bounded channel.
//!
//! This replaces a `JoinSet`, which at a hundred thousand runs a second
//! cost more than the runs: per task it allocates a list entry, and every
//! spawn, wake and join takes its mutex (a profile of the 100k-job
//! benchmark put its bookkeeping at a tenth of the scheduler's time). Here
//! a task costs its tokio allocation and one channel message.

use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Spawns tasks whose outputs come back, in completion order, through
/// [`next`](Self::next).
pub(super) struct Tasks<T> {
    tx: mpsc::Sender<T>,
    rx: mpsc::Receiver<T>,
    /// Spawned and not yet received: what the audit compares with the
    /// tracked executions.
    live: usize,
}

impl<T: Send + 'static> Tasks<T> {
    /// `bound` is the channel's capacity. A task whose output finds it
    /// full waits for room (nothing is dropped), so a bound at least the
    /// number of tasks alive at once (`max_running`) never makes one wait.
    pub fn new(bound: usize) -> Self {
        let (tx, rx) = mpsc::channel(bound.max(1));
        Tasks { tx, rx, live: 0 }
    }

    pub fn spawn(&mut self, fut: impl Future<Output = T> + Send + 'static) -> JoinHandle<()> {
        self.live += 1;
        // The channel's room is taken here, so the task ends with a plain
        // synchronous send: its state is the run's future and a permit, not
        // also a pending send (which more than doubled a no-op run's task).
        // With the bound above there is always room; without, the task
        // waits for it.
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => tokio::spawn(async move {
                permit.send(fut.await);
            }),
            Err(full) => {
                let tx = full.into_inner();
                tokio::spawn(async move {
                    // Fails only once the scheduler is gone, and then
                    // nobody is left to tell.
                    let _ = tx.send(fut.await).await;
                })
            }
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The next output. Pending for ever when no task is live: guard the
    /// call with [`is_empty`](Self::is_empty).
    pub async fn next(&mut self) -> T {
        // `self` holds a sender, so the channel never closes.
        let out = self.rx.recv().await.expect("Tasks holds a sender");
        self.live -= 1;
        out
    }

    /// An output that is ready now, if any.
    pub fn try_next(&mut self) -> Option<T> {
        let out = self.rx.try_recv().ok()?;
        self.live -= 1;
        Some(out)
    }

    /// Forgets tasks that were aborted (they never report).
    pub fn forget(&mut self, aborted: usize) {
        self.live = self.live.saturating_sub(aborted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outputs_come_back_and_are_counted() {
        let mut tasks = Tasks::new(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async { 1 });
        tasks.spawn(async move {
            let _ = rx.await;
            2
        });
        // More tasks than the channel holds: the last waits for room.
        tasks.spawn(async { 3 });
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
    async fn aborted_tasks_are_forgotten() {
        let mut tasks: Tasks<u8> = Tasks::new(1);
        let h = tasks.spawn(std::future::pending());
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        tasks.forget(1);
        assert!(tasks.is_empty());
    }
}
