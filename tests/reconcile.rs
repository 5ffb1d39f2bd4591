//! The reconcile step: ordered, stops at the first failure, always records
//! status, never applies an invalid revision, short-circuits an unchanged one.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use driftcron::reconcile::{Condition, Outcome, Reconciler};
use driftcron::scheduler::{Scheduler, SchedulerConfig, SystemClock};
use driftcron::snapshot::Snapshot;

fn snap(rev: &str, files: &[(&str, &str)]) -> Result<Snapshot, String> {
    Ok(Snapshot::from_texts(rev, files))
}

const JOB: &str = "schedule = \"@yearly\"\ncommand = [\"true\"]\n";

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap()
}

#[tokio::test]
async fn invalid_revisions_stall_and_the_last_good_one_keeps_running() {
    let sched = Arc::new(Scheduler::start(
        SchedulerConfig::default(),
        Arc::new(SystemClock),
    ));
    let mut r = Reconciler::new(sched.clone());

    let out = r
        .reconcile(snap("r1", &[("a.toml", JOB), ("b.toml", JOB)]), t(0))
        .await;
    assert_eq!(
        out,
        Outcome::Applied {
            created: 2,
            updated: 0,
            deleted: 0
        }
    );
    assert_eq!(r.status().applied_revision.as_deref(), Some("r1"));
    assert!(matches!(
        r.status().conditions[..],
        [Condition::Ready { .. }]
    ));

    // Same revision again: nothing to do.
    assert_eq!(
        r.reconcile(snap("r1", &[("a.toml", JOB), ("b.toml", JOB)]), t(1))
            .await,
        Outcome::Unchanged
    );

    // r2 deletes b and breaks a: not applied, with the error located.
    let bad = "schedule = \"61 * * * *\"\ncommand = [\"true\"]\n";
    let out = r.reconcile(snap("r2", &[("a.toml", bad)]), t(2)).await;
    assert_eq!(out, Outcome::Stalled { errors: 1 });
    let st = r.status();
    assert_eq!(
        (
            st.observed_revision.as_deref(),
            st.applied_revision.as_deref()
        ),
        (Some("r2"), Some("r1"))
    );
    let Condition::Stalled {
        diagnostics, since, ..
    } = &st.conditions[0]
    else {
        panic!("{st:?}")
    };
    assert_eq!(*since, t(2));
    assert!(
        diagnostics[0].starts_with("a.toml:1:13: invalid schedule"),
        "{diagnostics:?}"
    );
    assert_eq!(
        sched.state().await.unwrap().jobs.len(),
        2,
        "the last good revision keeps running"
    );

    // The same bad revision later keeps its original `since`.
    r.reconcile(snap("r2", &[("a.toml", bad)]), t(5)).await;
    assert!(matches!(r.status().conditions[0], Condition::Stalled { since, .. } if since == t(2)));

    // A fetch failure is recorded with its first time, and clears on success.
    r.reconcile(Err("connection refused".into()), t(6)).await;
    r.reconcile(Err("connection refused".into()), t(9)).await;
    assert!(
        r.status()
            .conditions
            .iter()
            .any(|c| matches!(c, Condition::FetchFailed { since, .. } if *since == t(6)))
    );
    let out = r.reconcile(snap("r3", &[("a.toml", JOB)]), t(10)).await;
    assert_eq!(
        out,
        Outcome::Applied {
            created: 0,
            updated: 0,
            deleted: 1
        }
    );
    assert!(
        matches!(r.status().conditions[..], [Condition::Ready { ref revision, .. }] if revision == "r3")
    );
    assert_eq!(r.status().last_attempt, Some(t(0) + TimeDelta::seconds(10)));
    sched.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_revert_to_the_applied_revision_clears_the_stall_and_the_view_follows() {
    let sched = Arc::new(Scheduler::start(
        SchedulerConfig::default(),
        Arc::new(SystemClock),
    ));
    let mut r = Reconciler::new(sched.clone());
    assert!(r.view().observed_jobs.is_none());
    r.reconcile(snap("r1", &[("a.toml", JOB)]), t(0)).await;
    let v = r.view();
    assert_eq!(v.applied_jobs.len(), 1);
    assert_eq!(v.observed_jobs.as_ref().map(|j| j.len()), Some(1));
    assert_eq!(v.last_fetch_ok, Some(t(0)));

    // A bad head: nothing observed to compare with, the applied jobs stay.
    r.reconcile(snap("r2", &[("a.toml", "schedule = 1\n")]), t(1))
        .await;
    let v = r.view();
    assert!(v.observed_jobs.is_none());
    assert_eq!(v.applied_jobs.len(), 1);

    // Reverted to r1: unchanged for the scheduler, but the status must not
    // still say Stalled about a revision git no longer holds.
    let out = r.reconcile(snap("r1", &[("a.toml", JOB)]), t(2)).await;
    assert_eq!(out, Outcome::Unchanged);
    assert!(
        matches!(r.status().conditions[..], [Condition::Ready { ref revision, .. }] if revision == "r1"),
        "{:?}",
        r.status()
    );
    assert_eq!(r.view().observed_jobs.map(|j| j.len()), Some(1));

    // A failing fetch keeps the last successful time.
    r.reconcile(Err("timeout".into()), t(3)).await;
    assert_eq!(r.view().last_fetch_ok, Some(t(2)));
    sched.shutdown(std::time::Duration::from_secs(1)).await;
}

/// The reconciler records what it applied by carrying unchanged jobs
/// over: after any sequence of revisions, an unchanged revision under a
/// new name plans nothing, and each change touches only its job.
#[tokio::test]
async fn applied_jobs_are_recorded_through_creates_updates_and_deletes() {
    let sched = Arc::new(Scheduler::start(
        SchedulerConfig::default(),
        Arc::new(SystemClock),
    ));
    let mut r = Reconciler::new(sched.clone());
    const OTHER: &str = "schedule = \"@monthly\"\ncommand = [\"true\"]\n";
    // The files of each revision, and (created, updated, deleted).
    type Step<'a> = (&'a [(&'a str, &'a str)], (usize, usize, usize));
    let steps: [Step; 4] = [
        (
            &[("a.toml", JOB), ("b.toml", JOB), ("c.toml", JOB)],
            (3, 0, 0),
        ),
        (
            &[("a.toml", JOB), ("b.toml", OTHER), ("d.toml", JOB)],
            (1, 1, 1),
        ),
        (&[("b.toml", OTHER), ("d.toml", OTHER)], (0, 1, 1)),
        (
            &[("a.toml", JOB), ("b.toml", JOB), ("d.toml", OTHER)],
            (1, 1, 0),
        ),
    ];
    for (n, (files, (created, updated, deleted))) in steps.into_iter().enumerate() {
        let out = r
            .reconcile(snap(&format!("r{n}"), files), t(n as i64))
            .await;
        assert_eq!(
            out,
            Outcome::Applied {
                created,
                updated,
                deleted
            },
            "step {n}"
        );
        let again = r
            .reconcile(snap(&format!("r{n}'"), files), t(n as i64))
            .await;
        assert_eq!(
            again,
            Outcome::Applied {
                created: 0,
                updated: 0,
                deleted: 0
            },
            "step {n}, same files under a new revision"
        );
    }
    let jobs: Vec<String> = sched
        .state()
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(jobs, ["a", "b", "d"]);
    sched.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_tree_wide_error_reads_without_an_empty_file_name() {
    let sched = Arc::new(Scheduler::start(
        SchedulerConfig::default(),
        Arc::new(SystemClock),
    ));
    let mut r = Reconciler::new(sched.clone());
    let files = [
        ("driftcron.toml", "[limits]\nmax_jobs = 2\n"),
        ("a.toml", JOB),
        ("b.toml", JOB),
        ("c.toml", JOB),
    ];
    let out = r.reconcile(snap("r1", &files), t(0)).await;
    assert!(matches!(out, Outcome::Stalled { .. }), "{out:?}");
    let Condition::Stalled { diagnostics, .. } = &r.status().conditions[0] else {
        panic!("{:?}", r.status())
    };
    assert!(
        diagnostics[0].starts_with("3 job files exceed the limit of 2"),
        "{diagnostics:?}"
    );
    sched.shutdown(std::time::Duration::from_secs(1)).await;
}
