//! Churn on a live scheduler (real clock): jobs created, changed and
//! deleted every 70 ms under every concurrency and `on_remove` policy,
//! with retries, manual triggers, runs that fail, panic or are cancelled,
//! and a global limit small enough to queue. After every apply the audit's
//! core invariant holds: every tracked execution has its task, and every
//! task a tracked execution. Written by a reviewer of the change that
//! replaced the scheduler's `JoinSet` with its own task channel.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use driftcron::plan::{diff, spec_digest};
use driftcron::scheduler::{
    ExecResult, ExecStart, Outcome, Runner, Scheduler, SchedulerConfig, SystemClock,
};
use driftcron::snapshot::Snapshot;
use driftcron::spec::{JobId, JobSpec, LoadOptions, load};

struct R(AtomicU64);
impl Runner for R {
    fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let shared = start.shared();
        Box::pin(async move {
            let d = Duration::from_millis(n * 7919 % 40);
            let outcome = tokio::select! {
                _ = tokio::time::sleep(d) => if n % 3 == 0 { Outcome::Failed{code: Some(1), signal: None} } else { Outcome::Succeeded },
                _ = shared.cancelled() => Outcome::Cancelled,
            };
            if n % 97 == 0 {
                panic!("boom");
            }
            let mut r = ExecResult::ended(outcome);
            r.finished = Some(Utc::now());
            r
        })
    }
}

fn jobs(g: usize) -> BTreeMap<JobId, Arc<JobSpec>> {
    let pol = [
        "concurrency = \"forbid\"",
        "concurrency = \"replace\"",
        "concurrency = \"queue\"\nqueue_depth = 3",
        "concurrency = \"allow\"\nmax_instances = 3",
    ];
    let rm = ["on_remove = \"drain\"", "on_remove = \"cancel\""];
    let mut files = Vec::new();
    for i in 0..40 {
        if (i + g) % 7 == 0 {
            continue;
        }
        // Schedules change too, so the schedule table frees and reuses
        // ids under churn (the final audit checks its counts).
        let sched = ["* * * * * *", "*/2 * * * * *", "1-59/3 * * * * *"][(i + g) % 3];
        files.push((format!("j{i}.toml"), format!("schedule = \"{sched}\"\ncommand = [\"x\", \"{g}\"]\n{}\n{}\nretries = 2\nretry_backoff = \"10ms\"\n", pol[i % 4], rm[(i + g) % 2])));
    }
    let f: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let l = load(
        &Snapshot::from_texts("r", &f),
        &LoadOptions {
            now: Utc::now(),
            max_jobs: None,
        },
    );
    assert!(l.is_valid(), "{:?}", l.diagnostics);
    l.desired.jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_executions_equal_owned_tasks_under_churn() {
    let s = Scheduler::start_with_runner(
        SchedulerConfig {
            max_running: 5,
            max_queued: 8,
            ..SchedulerConfig::default()
        },
        Arc::new(SystemClock),
        Arc::new(R(AtomicU64::new(1))),
    );
    let mut cur = BTreeMap::new();
    for g in 0..40 {
        let next = jobs(g);
        s.apply(diff(&next, &cur), &format!("r{g}")).await.unwrap();
        cur = next
            .iter()
            .map(|(k, v)| (k.clone(), spec_digest(v)))
            .collect();
        for id in cur.keys().take(10) {
            let _ = s.trigger(id).await;
        }
        let a = s.audit().await.unwrap();
        assert_eq!(a.tracked_executions, a.owned_tasks, "{a:?}");
        assert!(a.violations.is_empty(), "generation {g}: {a:?}");
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    let a = s.audit().await.unwrap();
    assert!(a.violations.is_empty(), "{a:?}");
    let st = s.state().await.unwrap();
    assert!(st.counters.started > 0, "{:?}", st.counters);
    let rep = s.shutdown(Duration::from_secs(2)).await;
    assert!(rep.abandoned.is_empty(), "{rep:?}");
}
