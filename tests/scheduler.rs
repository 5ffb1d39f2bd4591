//! Scheduling semantics under tokio's paused clock: policies, misfires and
//! catch-up, clock jumps, DST, retries, jitter, apply and shutdown.
//!
//! Executions here run through `SimRunner`, which takes virtual time
//! instead of starting processes (real processes are tested in
//! tests/executor.rs): `command = ["sim", "<duration>", "ok" | "fail"]`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use driftcron::plan::{Plan, diff};
use driftcron::scheduler::{
    Clock, ExecResult, ExecStart, JobFilter, LEAK_SLACK, OUTCOME_RING, Outcome, Runner, Scheduler,
    SchedulerConfig, SchedulerError, TestClock,
};
use driftcron::snapshot::Snapshot;
use driftcron::spec::{JobId, JobSpec, LoadOptions, load};

/// One start seen by the runner.
#[derive(Debug, Clone)]
struct Start {
    run_id: String,
    attempt: u32,
    at: DateTime<Utc>,
}

#[derive(Clone)]
struct SimRunner {
    clock: TestClock,
    starts: Arc<Mutex<Vec<Start>>>,
}

impl Runner for SimRunner {
    fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        let req = start.to_request();
        let clock = self.clock.clone();
        self.starts.lock().unwrap().push(Start {
            run_id: req.run_id(),
            attempt: req.attempt,
            at: clock.now(),
        });
        if let driftcron::spec::job::Executor::Exec { argv } = &req.spec.executor {
            match argv.get(1) {
                Some("drop-panic") => {
                    return Box::pin(EndsThenPanicsOnDrop(PanicOnDrop, clock.now()));
                }
                Some("panic-in-run") => panic!("runner bug before its future"),
                _ => {}
            }
        }
        Box::pin(async move {
            let argv = match &req.spec.executor {
                driftcron::spec::job::Executor::Exec { argv } => argv.clone(),
                _ => Default::default(),
            };
            if argv.get(1).is_some_and(|a| a == "panic") {
                panic!("runner bug");
            }

            let dur = humantime::parse_duration(argv.get(1).map_or("0s", |s| s)).unwrap();
            let ok = argv.get(2).is_none_or(|s| s == "ok");
            let outcome = tokio::select! {
                _ = tokio::time::sleep(dur) => if ok { Outcome::Succeeded } else { Outcome::Failed { code: Some(1), signal: None } },
                _ = req.shared.cancelled() => Outcome::Cancelled,
            };
            ExecResult {
                outcome,
                output: Vec::new(),
                output_dropped: 0,
                killed: false,
                stragglers_killed: false,
                // A runner may leave the end time to the scheduler.
                finished: (argv.get(3).is_none_or(|a| a != "unstamped")).then(|| clock.now()),
            }
        })
    }
}

struct PanicOnDrop;

/// A run that succeeds at once and panics when its future is dropped.
struct EndsThenPanicsOnDrop(PanicOnDrop, DateTime<Utc>);

impl Future for EndsThenPanicsOnDrop {
    type Output = ExecResult;

    fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<ExecResult> {
        let mut result = ExecResult::ended(Outcome::Succeeded);
        result.finished = Some(self.1);
        std::task::Poll::Ready(result)
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("runner bug on drop");
    }
}

const T0: &str = "2026-06-01T00:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Loads jobs from `(path, toml)` pairs.
fn jobs(files: &[(&str, &str)]) -> BTreeMap<JobId, Arc<JobSpec>> {
    let snapshot = Snapshot::from_texts("test", files);
    let loaded = load(
        &snapshot,
        &LoadOptions {
            now: at(T0),
            max_jobs: None,
        },
    );
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    loaded.desired.jobs
}

fn create_all(j: &BTreeMap<JobId, Arc<JobSpec>>) -> Plan {
    diff(j, &BTreeMap::new())
}

struct Harness {
    clock: TestClock,
    starts: Arc<Mutex<Vec<Start>>>,
    sched: Scheduler,
}

impl Harness {
    fn new(config: SchedulerConfig) -> Self {
        Harness::at(config, at(T0))
    }

    fn at(config: SchedulerConfig, start: DateTime<Utc>) -> Self {
        let clock = TestClock::new(start);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let runner = SimRunner {
            clock: clock.clone(),
            starts: starts.clone(),
        };
        let sched = Scheduler::start_with_runner(config, Arc::new(clock.clone()), Arc::new(runner));
        Harness {
            clock,
            starts,
            sched,
        }
    }

    async fn apply(&self, files: &[(&str, &str)]) {
        self.sched
            .apply(create_all(&jobs(files)), "rev1")
            .await
            .unwrap();
    }

    /// Offsets (seconds from T0) of every start of `job`.
    fn starts_of(&self, job: &str) -> Vec<i64> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.run_id.starts_with(&format!("{job}@")))
            .map(|s| (s.at - at(T0)).num_seconds())
            .collect()
    }

    /// Run ids of every start, in start order.
    fn run_ids(&self) -> Vec<String> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.run_id.clone())
            .collect()
    }
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_running: 100,
        max_queued: 100,
        ..SchedulerConfig::default()
    }
}

async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn forbid_skips_and_counts_overlapping_runs() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\n",
    )])
    .await;
    wait(41).await;
    assert_eq!(h.starts_of("j"), [10, 40]);
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.skipped_forbid, 2);
    assert_eq!(s.counters.fires, 4);
}

/// An end its runner did not stamp takes the scheduler's clock, the one
/// its start came from: the test clock here, years from the real one.
#[tokio::test(start_paused = true)]
async fn an_unstamped_end_is_timed_by_the_schedulers_clock() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"3s\", \"ok\", \"unstamped\"]\n",
    )])
    .await;
    wait(15).await;
    let s = h.sched.state().await.unwrap();
    let r = &s.job("j").unwrap().recent[0];
    assert_eq!(r.outcome, "succeeded");
    assert_eq!(r.finished - r.started, chrono::TimeDelta::seconds(3));
}

#[tokio::test(start_paused = true)]
async fn allow_runs_up_to_max_instances() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\nconcurrency = \"allow\"\nmax_instances = 2\n",
    )])
    .await;
    wait(41).await;
    assert_eq!(h.starts_of("j"), [10, 20, 40]);
    assert_eq!(
        h.sched
            .state()
            .await
            .unwrap()
            .counters
            .skipped_max_instances,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn replace_cancels_the_running_one() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\nconcurrency = \"replace\"\n",
    )])
    .await;
    wait(31).await;
    assert_eq!(h.starts_of("j"), [10, 20, 30]);
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.replaced, 2);
    assert_eq!(s.counters.cancelled, 2);
    assert_eq!(s.job("j").unwrap().active.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn queue_is_bounded_and_overflow_is_counted() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\nconcurrency = \"queue\"\nqueue_depth = 1\n",
    )])
    .await;
    wait(36).await;
    // 10 runs; 20 waits; 30 finds the queue full; 35 (10's end) starts 20's run.
    assert_eq!(h.starts_of("j"), [10, 35]);
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.job_queue_overflow, 1);
    assert_eq!(
        s.job("j").unwrap().active[0].scheduled_at,
        at(T0) + TimeDelta::seconds(20)
    );
}

#[tokio::test(start_paused = true)]
async fn global_limit_queues_then_overflows() {
    let cfg = SchedulerConfig {
        max_running: 1,
        max_queued: 1,
        ..config()
    };
    let h = Harness::new(cfg);
    let job = "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"5s\"]\n";
    h.apply(&[("a.toml", job), ("b.toml", job), ("c.toml", job)])
        .await;
    wait(61).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.running, 1);
    assert_eq!(s.queued, 1);
    assert_eq!(s.counters.global_queue_overflow, 1);
    wait(5).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        s.counters.started, 2,
        "the queued run starts when a slot frees"
    );
}

#[tokio::test(start_paused = true)]
async fn queued_runs_past_starting_deadline_are_missed() {
    let cfg = SchedulerConfig {
        max_running: 1,
        max_queued: 10,
        ..config()
    };
    let h = Harness::new(cfg);
    h.apply(&[
        ("a.toml", "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"30s\"]\n"),
        ("b.toml", "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"1s\"]\nstarting_deadline = \"10s\"\n"),
    ])
    .await;
    wait(95).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.missed_starting_deadline, 1, "{:?}", s.counters);
    assert_eq!(h.starts_of("b"), Vec::<i64>::new());
}

/// A job's `starting_deadline` is its misfire threshold when its timer
/// finds a slot late, in place of the scheduler's `misfire_threshold`
/// whether that is shorter or longer: after a forward jump the timer wakes
/// at 01:04:30, and of two jobs due at 01:00 the one allowed 2 minutes
/// misses its slot while the one allowed 10 minutes runs it.
#[tokio::test(start_paused = true)]
async fn starting_deadline_is_the_misfire_threshold_at_fire_time() {
    for threshold in [Duration::from_secs(60), Duration::from_secs(3600)] {
        let h = Harness::new(SchedulerConfig {
            misfire_threshold: threshold,
            ..config()
        });
        h.apply(&[
            (
                "short.toml",
                "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\nstarting_deadline = \"2m\"\n",
            ),
            (
                "long.toml",
                "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\nstarting_deadline = \"10m\"\n",
            ),
        ])
        .await;
        wait(1).await;
        // The timer, asleep since the apply, wakes at most MAX_SLEEP (30 s)
        // after it: at 01:04:30 on the wall clock.
        h.clock.jump(TimeDelta::hours(1) + TimeDelta::minutes(4));
        wait(30).await;
        assert_eq!(
            h.run_ids(),
            ["long@2026-06-01T01:00:00Z"],
            "misfire_threshold {threshold:?}"
        );
        let s = h.sched.state().await.unwrap();
        assert_eq!(
            (s.counters.fires, s.counters.missed_misfire),
            (2, 1),
            "misfire_threshold {threshold:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn clock_jump_forward_goes_through_catch_up() {
    for (policy, want_runs) in [
        ("catch_up = \"none\"", 0),
        ("catch_up = \"latest\"", 1),
        ("catch_up = \"all\"\nmax_catch_up = 5", 5),
    ] {
        let h = Harness::new(config());
        let toml = format!(
            "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\nconcurrency = \"allow\"\nmax_instances = 10\n{policy}\n"
        );
        h.apply(&[("j.toml", &toml)]).await;
        wait(1).await;
        h.clock.jump(TimeDelta::hours(5) + TimeDelta::minutes(30));
        wait(31).await;
        let s = h.sched.state().await.unwrap();
        assert_eq!(h.starts_of("j").len(), want_runs, "catch_up = {policy}");
        assert_eq!(s.counters.fires, 5, "catch_up = {policy}");
        assert_eq!(
            s.counters.missed_misfire,
            5 - want_runs as u64,
            "catch_up = {policy}"
        );
        // Re-armed for the next hour.
        assert_eq!(
            s.job("j").unwrap().next_fire,
            Some(at("2026-06-01T06:00:00Z"))
        );
    }
}

/// A backward step does not make slots that already ran due again: with
/// the clock back at 00:00:06, before both runs so far, the next slot is
/// still 00:00:30.
#[tokio::test(start_paused = true)]
async fn clock_jump_backward_never_fires_twice() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )])
    .await;
    wait(21).await;
    h.clock.jump(TimeDelta::seconds(-15));
    // The next slot was 00:00:30 before the step, and stays so: a
    // scheduler that recomputed it from the stepped-back clock would say
    // 00:00:10 again.
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        s.job("j").unwrap().next_fire,
        Some(at("2026-06-01T00:00:30Z"))
    );
    wait(30).await;
    // Exactly: a re-fire such as 10, 20, 10, 20, 30 has no two equal
    // neighbours, so a `dedup` comparison would not see it.
    assert_eq!(
        h.run_ids(),
        [
            "j@2026-06-01T00:00:10Z",
            "j@2026-06-01T00:00:20Z",
            "j@2026-06-01T00:00:30Z"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dst_gap_runs_once_after_the_gap() {
    // 01:00 EST on the day New York springs forward.
    let h = Harness::at(config(), at("2026-03-08T06:00:00Z"));
    h.apply(&[(
        "j.toml",
        "schedule = \"30 2 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"sim\", \"0s\"]\n[dst]\ngap = \"shift\"\n",
    )])
    .await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let runs: Vec<String> = h
        .starts
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.run_id.clone())
        .collect();
    assert_eq!(runs, ["j@2026-03-08T07:00:00Z"], "03:00 EDT, once");
}

/// Berlin's clocks go back at 03:00 CEST on 2026-10-25, so 02:30 comes
/// at 00:30 UTC (CEST) and again at 01:30 UTC (CET): `fold` picks which of
/// the two run, and the next day's slot is the usual one.
#[tokio::test(start_paused = true)]
async fn dst_fold_runs_the_occurrences_its_policy_names() {
    for (fold, want) in [
        ("first", &["j@2026-10-25T00:30:00Z"][..]),
        ("last", &["j@2026-10-25T01:30:00Z"]),
        (
            "both",
            &["j@2026-10-25T00:30:00Z", "j@2026-10-25T01:30:00Z"],
        ),
    ] {
        // 01:00 CEST.
        let h = Harness::at(config(), at("2026-10-24T23:00:00Z"));
        h.apply(&[(
            "j.toml",
            &format!(
                "schedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\ncommand = [\"sim\", \"0s\"]\n[dst]\nfold = \"{fold}\"\n"
            ),
        )])
        .await;
        // Until 03:00 CET, past both occurrences.
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        assert_eq!(h.run_ids(), want, "fold = {fold}");
        let s = h.sched.state().await.unwrap();
        assert_eq!(
            s.job("j").unwrap().next_fire,
            Some(at("2026-10-26T01:30:00Z")),
            "fold = {fold}: 02:30 CET the next day"
        );
        assert_eq!(s.counters.missed_misfire, 0, "fold = {fold}");
    }
}

/// With `gap = "skip"`, 02:30 on the day New York springs forward (it does
/// not exist) runs nowhere, neither in nor after the gap, and the next
/// day's 02:30 EDT runs as usual.
#[tokio::test(start_paused = true)]
async fn dst_gap_skip_runs_nothing_that_day() {
    // 01:00 EST on 2026-03-08.
    let h = Harness::at(config(), at("2026-03-08T06:00:00Z"));
    h.apply(&[(
        "j.toml",
        "schedule = \"30 2 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"sim\", \"0s\"]\n[dst]\ngap = \"skip\"\n",
    )])
    .await;
    // Until 03:00 EDT the next day.
    tokio::time::sleep(Duration::from_secs(25 * 3600)).await;
    assert_eq!(h.run_ids(), ["j@2026-03-09T06:30:00Z"]);
    let s = h.sched.state().await.unwrap();
    // Skipped by the schedule, not missed by the scheduler.
    assert_eq!((s.counters.fires, s.counters.missed_misfire), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_and_never_pass_the_next_slot() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"0s\", \"fail\"]\nretries = 5\nretry_backoff = \"10s\"\nretry_max_delay = \"1m\"\n",
    )])
    .await;
    wait(100).await;
    let starts = h.starts.lock().unwrap().clone();
    let attempts: Vec<(i64, u32)> = starts
        .iter()
        .map(|s| ((s.at - at(T0)).num_seconds(), s.attempt))
        .collect();
    // 60 fails; retries after 10s and 20s; the third (40s) would pass the
    // next slot at 120, so it is abandoned.
    assert_eq!(attempts, [(60, 1), (70, 2), (90, 3)]);
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.retries_scheduled, 2);
    assert_eq!(s.counters.retries_abandoned, 1);
    assert!(
        starts.iter().all(|s| s.run_id == "j@2026-06-01T00:01:00Z"),
        "retries keep the slot's run id"
    );
    // Three runs took 0 s each; only the scheduled first attempt counts as
    // late (on time, here): a retry's wait is on purpose.
    let (late, took) = (s.counters.lateness, s.counters.duration);
    assert_eq!((late.count, late.buckets[0], late.sum_ms), (1, 1, 0));
    assert_eq!((took.count, took.buckets[0]), (3, 3));
}

/// Retry delays double from `retry_backoff` until `retry_max_delay` caps
/// them: 10 s, 20 s, 40 s, then 1 min (not 80 s) for every one after. The
/// slots are an hour apart, so no retry is cut short by the next one.
#[tokio::test(start_paused = true)]
async fn retry_delays_double_up_to_retry_max_delay() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\", \"fail\"]\nretries = 7\nretry_backoff = \"10s\"\nretry_max_delay = \"1m\"\n",
    )])
    .await;
    wait(3600 + 600).await;
    let starts = h.starts.lock().unwrap().clone();
    let attempts: Vec<u32> = starts.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, (1..=8).collect::<Vec<_>>());
    assert_eq!(starts[0].at, at("2026-06-01T01:00:00Z"));
    let delays: Vec<i64> = starts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_seconds())
        .collect();
    assert_eq!(delays, [10, 20, 40, 60, 60, 60, 60]);
    assert!(
        starts.iter().all(|s| s.run_id == "j@2026-06-01T01:00:00Z"),
        "retries keep the slot's run id"
    );
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        (
            s.counters.failed,
            s.counters.retries_scheduled,
            s.counters.retries_abandoned
        ),
        (8, 7, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn stable_jitter_is_the_same_across_restarts() {
    let toml = "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"0s\"]\njitter = \"30s\"\n";
    let expected = jobs(&[("team/j.toml", toml)])
        .values()
        .next()
        .unwrap()
        .jitter
        .stable_delay(&JobId::parse("team/j").unwrap());
    for _ in 0..2 {
        let h = Harness::new(config());
        h.apply(&[("team/j.toml", toml)]).await;
        wait(150).await;
        let offsets: Vec<i64> = h
            .starts
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.at - at(T0)).num_milliseconds())
            .collect();
        let want = expected.as_millis() as i64;
        assert_eq!(offsets, [60_000 + want, 120_000 + want]);
        h.sched.shutdown(Duration::from_secs(1)).await;
    }
}

/// Random jitter draws a fresh delay for every fire, each below its max;
/// every slot still runs once, and a delay is not lateness: nothing is
/// missed, even with a misfire threshold far below the jitter.
#[tokio::test(start_paused = true)]
async fn random_jitter_varies_per_fire_and_stays_below_its_max() {
    let h = Harness::new(SchedulerConfig {
        misfire_threshold: Duration::from_secs(5),
        ..config()
    });
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"0s\"]\njitter = \"50s\"\njitter_mode = \"random\"\n",
    )])
    .await;
    // The slots of minutes 1 to 10 start before 10:50; the 11th is not due.
    wait(651).await;
    let want: Vec<String> = (1..=10)
        .map(|m| format!("j@2026-06-01T00:{m:02}:00Z"))
        .collect();
    assert_eq!(h.run_ids(), want);
    let delays: Vec<i64> = h
        .starts
        .lock()
        .unwrap()
        .iter()
        .zip(1..)
        .map(|(s, m)| (s.at - at(T0)).num_milliseconds() - m * 60_000)
        .collect();
    assert!(delays.iter().all(|d| (0..50_000).contains(d)), "{delays:?}");
    let distinct: std::collections::BTreeSet<i64> = delays.iter().copied().collect();
    assert!(distinct.len() > 1, "the same delay every time: {delays:?}");
    let s = h.sched.state().await.unwrap();
    let c = &s.counters;
    assert_eq!(
        (
            c.fires,
            c.started,
            c.missed_misfire,
            c.missed_starting_deadline
        ),
        (10, 10, 0, 0),
        "{c:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn apply_is_idempotent_and_rekeys_updates() {
    let h = Harness::new(config());
    let v1 = jobs(&[
        (
            "a.toml",
            "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
        (
            "b.toml",
            "schedule = \"@daily\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
    ]);
    let r = h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    assert_eq!((r.created, r.updated, r.deleted), (2, 0, 0));
    let r = h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    assert_eq!(
        (r.created, r.updated, r.unchanged),
        (0, 0, 2),
        "same specs again change nothing"
    );

    // Update a: new schedule, new next fire, bumped generation, no stale timer.
    let v2 = jobs(&[(
        "a.toml",
        "schedule = \"30 * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )]);
    let running: BTreeMap<JobId, u64> = v1
        .iter()
        .map(|(id, s)| (id.clone(), driftcron::plan::spec_digest(s)))
        .collect();
    let plan = diff(&v2, &running);
    assert_eq!((plan.update.len(), plan.delete.len()), (1, 1));
    let r = h.sched.apply(plan, "rev2").await.unwrap();
    assert_eq!((r.updated, r.deleted), (1, 1));
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.revision.as_deref(), Some("rev2"));
    let a = s.job("a").unwrap();
    assert_eq!(
        (a.generation, a.next_fire),
        (2, Some(at("2026-06-01T00:30:00Z")))
    );
    assert!(s.job("b").is_none());
    let audit = h.sched.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
    assert_eq!((audit.timer_entries, audit.expected_timer_entries), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn deleting_a_job_cancels_or_drains_its_run() {
    let h = Harness::new(config());
    let v1 = jobs(&[
        (
            "c.toml",
            "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"10m\"]\non_remove = \"cancel\"\nkill_grace = \"5s\"\n",
        ),
        (
            "d.toml",
            "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"10m\"]\non_remove = \"drain\"\nkill_grace = \"5s\"\n",
        ),
    ]);
    h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    wait(61).await;
    let plan = Plan {
        delete: v1.keys().cloned().collect(),
        ..Plan::default()
    };
    let r = h.sched.apply(plan, "rev2").await.unwrap();
    assert_eq!((r.cancelled, r.draining), (1, 1));
    wait(10).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.cancelled, 1);
    assert!(s.jobs.is_empty());
    // The drained run of a deleted job is a leaked task once its grace passed.
    assert_eq!(s.leaked.len(), 1, "{:?}", s.leaked);
    assert_eq!(s.leaked[0].job, "d");
    assert_eq!(
        s.leaked[0].reason,
        driftcron::scheduler::LeakReason::JobRemoved
    );
    let audit = h.sched.audit().await.unwrap();
    assert_eq!(audit.timer_entries, 0);
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
}

#[tokio::test(start_paused = true)]
async fn suspend_resume_and_trigger() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )])
    .await;
    let id = JobId::parse("j").unwrap();
    h.sched.suspend(&id).await.unwrap();
    wait(61).await;
    assert!(h.starts_of("j").is_empty());
    let s = h.sched.state().await.unwrap();
    let j = s.job("j").unwrap();
    assert!(j.suspended && j.overridden);
    assert_eq!(h.sched.audit().await.unwrap().timer_entries, 0);
    h.sched.resume(&id).await.unwrap();
    h.sched.suspend(&id).await.unwrap();
    let run = h.sched.trigger(&id).await.unwrap();
    assert_eq!(run, "j@2026-06-01T00:01:01Z");
    wait(1).await;
    assert_eq!(h.starts_of("j"), [61]);
    h.sched.resume(&id).await.unwrap();
    wait(60).await;
    assert_eq!(h.starts_of("j"), [61, 120]);
    let s = h.sched.state().await.unwrap();
    assert!(!s.job("j").unwrap().overridden);
    assert_eq!(s.counters.triggered, 1);
    let unknown = JobId::parse("nope").unwrap();
    assert_eq!(
        h.sched.trigger(&unknown).await,
        Err(SchedulerError::UnknownJob("nope".into()))
    );
}

/// A full snapshot holds every job's outcomes in one buffer (see
/// `SharedSlice`): its allocations do not grow with the number of jobs, so
/// a reader's drop leaves no holes in the heap. Each job still reads its
/// own outcomes, oldest first.
#[tokio::test(start_paused = true)]
async fn a_snapshots_outcomes_share_one_buffer() {
    let h = Harness::new(config());
    h.apply(&[
        (
            "a.toml",
            "schedule = \"* * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
        (
            "b.toml",
            "schedule = \"*/2 * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
        (
            "c.toml",
            "schedule = \"0 0 0 1 1 *\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
        (
            "d.toml",
            "schedule = \"*/3 * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
        ),
    ])
    .await;
    wait(5).await;
    let s = h.sched.state().await.unwrap();
    let lens: Vec<usize> = s.jobs.iter().map(|j| j.recent.len()).collect();
    assert!(
        lens[0] > lens[1] && lens[1] > lens[3] && lens[3] > 0,
        "{lens:?}"
    );
    assert_eq!(lens[2], 0);
    // Laid end to end in memory, in some order: one buffer.
    let mut parts: Vec<(usize, usize)> = s
        .jobs
        .iter()
        .filter(|j| !j.recent.is_empty())
        .map(|j| (j.recent.as_ptr() as usize, j.recent.len()))
        .collect();
    parts.sort();
    let size = std::mem::size_of_val(&s.jobs[0].recent[0]);
    for w in parts.windows(2) {
        assert_eq!(w[0].0 + w[0].1 * size, w[1].0, "{parts:?}");
    }
    for j in &s.jobs {
        let run_ids: Vec<String> = j.recent.iter().map(|r| r.run_id.to_string()).collect();
        assert!(
            run_ids.iter().all(|r| r.starts_with(&format!("{}@", j.id))),
            "{run_ids:?}"
        );
        assert!(
            j.recent
                .windows(2)
                .all(|w| w[0].run_id.slot() < w[1].run_id.slot()),
            "oldest first: {run_ids:?}"
        );
    }
    // One job's snapshot reads the same outcomes as the full one.
    let b = h
        .sched
        .state_of(JobFilter::One(JobId::parse("b").unwrap()))
        .await
        .unwrap();
    assert_eq!(b.jobs.len(), 1);
    assert_eq!(b.jobs[0].recent, s.job("b").unwrap().recent);
}

#[tokio::test(start_paused = true)]
async fn disabled_in_git_never_fires_and_has_no_timer() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"* * * * * *\"\ncommand = [\"sim\", \"0s\"]\nenabled = false\n",
    )])
    .await;
    wait(10).await;
    assert!(h.starts_of("j").is_empty());
    let s = h.sched.state().await.unwrap();
    assert!(s.job("j").unwrap().suspended && !s.job("j").unwrap().overridden);
    assert_eq!(h.sched.audit().await.unwrap().timer_entries, 0);
}

#[tokio::test(start_paused = true)]
async fn memory_per_job_does_not_grow_with_runs() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"* * * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )])
    .await;
    wait(500).await;
    let s = h.sched.state().await.unwrap();
    assert!(s.counters.succeeded >= 499);
    assert_eq!(s.job("j").unwrap().recent.len(), OUTCOME_RING);
    let audit = h.sched.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
    assert_eq!((audit.tracked_executions, audit.owned_tasks), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_idempotent_and_bounded() {
    let h = Harness::new(config());
    h.apply(&[
        (
            "quick.toml",
            "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"2s\"]\n",
        ),
        (
            "slow.toml",
            "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"1h\"]\n",
        ),
    ])
    .await;
    wait(61).await;
    let t = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        h.sched.shutdown(Duration::from_secs(5)),
        h.sched.shutdown(Duration::from_secs(5))
    );
    assert_eq!(a, b);
    assert_eq!((a.drained, a.cancelled), (1, 1), "{a:?}");
    assert!(
        t.elapsed() <= Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(h.sched.shutdown(Duration::from_secs(5)).await, a);
    assert_eq!(h.sched.state().await, Err(SchedulerError::Stopped));
}

#[tokio::test(start_paused = true)]
async fn audit_finds_injected_leaks() {
    use driftcron::scheduler::Fault;
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )])
    .await;
    assert!(h.sched.audit().await.unwrap().violations.is_empty());
    h.sched.inject(Fault::StaleTimerEntry).await.unwrap();
    h.sched.inject(Fault::UntrackedTask).await.unwrap();
    let audit = h.sched.audit().await.unwrap();
    let all = audit.violations.join("\n");
    assert!(all.contains("stale entry"), "{all}");
    assert!(
        all.contains("tracked executions (0) != owned tasks (1)"),
        "{all}"
    );
    assert!(h.sched.state().await.unwrap().counters.audit_violations >= 2);
}

/// A run reads its spec from its job's entry while the entry is the version
/// that started it, and a schedule is held once, counted by its jobs: an
/// entry that moved on without orphaning its runs, and a count that no job
/// accounts for, are each found by the audit.
#[tokio::test(start_paused = true)]
async fn audit_finds_lost_specs_and_stale_schedule_users() {
    use driftcron::scheduler::Fault;
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"1h\"]\n",
    )])
    .await;
    h.sched.trigger(&JobId::parse("j").unwrap()).await.unwrap();
    wait(1).await;
    assert!(h.sched.audit().await.unwrap().violations.is_empty());
    h.sched.inject(Fault::StaleScheduleUser).await.unwrap();
    let all = h.sched.audit().await.unwrap().violations.join("\n");
    assert!(all.contains("schedule table: 2 users for 1 jobs"), "{all}");
    h.sched.inject(Fault::UnorphanedRuns).await.unwrap();
    let all = h.sched.audit().await.unwrap().violations.join("\n");
    assert!(
        all.contains("1 execution(s) whose job version is gone but which were not orphaned"),
        "{all}"
    );
    // The lost run still counts as running and is still stopped at
    // shutdown, named by its slot alone.
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.running, 1);
    let report = h.sched.shutdown(Duration::from_millis(10)).await;
    assert_eq!(
        report.drained + report.cancelled + report.abandoned.len(),
        1,
        "{report:?}"
    );
}

/// A lane that dies (a bug: runs cannot panic it) takes the runs it
/// drives: the audit says so for as long as the scheduler lives, the next
/// runs get a new lane, and shutdown still ends, bounded.
#[tokio::test(start_paused = true)]
async fn a_lane_that_dies_is_found_by_the_audit_and_replaced() {
    use driftcron::scheduler::Fault;
    let h = Harness::new(config());
    h.apply(&[
        (
            "long.toml",
            "schedule = \"@daily\"\ncommand = [\"sim\", \"1h\"]\n",
        ),
        (
            "short.toml",
            "schedule = \"@daily\"\ncommand = [\"sim\", \"2s\"]\n",
        ),
    ])
    .await;
    h.sched
        .trigger(&JobId::parse("long").unwrap())
        .await
        .unwrap();
    wait(1).await;
    assert!(h.sched.audit().await.unwrap().violations.is_empty());
    h.sched.inject(Fault::LaneDied).await.unwrap();
    wait(1).await;
    let all = h.sched.audit().await.unwrap().violations.join("\n");
    assert!(all.contains("lane(s) ended on their own"), "{all}");
    // A run started after the death is driven by a new lane to its end.
    h.sched
        .trigger(&JobId::parse("short").unwrap())
        .await
        .unwrap();
    wait(3).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.succeeded, 1, "{:?}", s.counters);
    assert_eq!(s.running, 1, "the lost run never reports");
    let all = h.sched.audit().await.unwrap().violations.join("\n");
    assert!(all.contains("lane(s) ended on their own"), "still: {all}");
    let report = h.sched.shutdown(Duration::from_millis(10)).await;
    assert_eq!(
        report.drained + report.cancelled + report.abandoned.len(),
        1,
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_longer_than_the_period_is_not_a_misfire() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"* * * * * *\"\ncommand = [\"sim\", \"0s\"]\njitter = \"5s\"\n",
    )])
    .await;
    wait(20).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.missed_misfire, 0, "{:?}", s.counters);
    assert!(s.counters.started >= 14, "{:?}", s.counters);
}

#[tokio::test(start_paused = true)]
async fn a_triggered_run_marks_the_job_overridden_while_it_runs() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"@daily\"\ncommand = [\"sim\", \"10s\"]\n",
    )])
    .await;
    let id = JobId::parse("j").unwrap();
    h.sched.trigger(&id).await.unwrap();
    wait(1).await;
    let s = h.sched.state().await.unwrap();
    let j = s.job("j").unwrap();
    assert!(j.overridden && j.active[0].manual);
    wait(10).await;
    assert!(!h.sched.state().await.unwrap().job("j").unwrap().overridden);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_runner_fails_its_run_not_the_scheduler() {
    // `panic`: its future panics when polled; `panic-in-run`: the runner
    // panics before it returns a future at all.
    for how in ["panic", "panic-in-run"] {
        let h = Harness::new(config());
        h.apply(&[(
            "j.toml",
            &format!("schedule = \"@daily\"\ncommand = [\"sim\", \"{how}\"]\n"),
        )])
        .await;
        h.sched.trigger(&JobId::parse("j").unwrap()).await.unwrap();
        wait(1).await;
        let s = h.sched.state().await.unwrap();
        assert_eq!(s.counters.spawn_failed, 1, "{how}");
        assert_eq!(s.job("j").unwrap().recent[0].outcome, "spawn_failed");
        assert_eq!(s.running, 0, "{how}");
        let audit = h.sched.audit().await.unwrap();
        assert!(audit.violations.is_empty(), "{how}: {:?}", audit.violations);
    }
}

/// Runs share a lane: one whose future panics while it is dropped (after
/// it ended) keeps its result, and the lane goes on with the others.
#[tokio::test(start_paused = true)]
async fn a_run_that_panics_on_drop_keeps_its_result_and_its_lane() {
    let h = Harness::new(config());
    h.apply(&[
        (
            "bad.toml",
            "schedule = \"@daily\"\ncommand = [\"sim\", \"drop-panic\"]\n",
        ),
        (
            "good.toml",
            "schedule = \"@daily\"\ncommand = [\"sim\", \"1s\"]\n",
        ),
    ])
    .await;
    for _ in 0..3 {
        h.sched
            .trigger(&JobId::parse("bad").unwrap())
            .await
            .unwrap();
        wait(1).await;
    }
    h.sched
        .trigger(&JobId::parse("good").unwrap())
        .await
        .unwrap();
    wait(2).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.spawn_failed, 0);
    assert_eq!(s.counters.succeeded, 4);
    assert!(s.job("bad").unwrap().active.is_empty());
    assert_eq!(s.job("bad").unwrap().recent[0].outcome, "succeeded");
    assert_eq!(s.job("good").unwrap().recent[0].outcome, "succeeded");
    let audit = h.sched.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
}

// Regressions found in review.

#[tokio::test(start_paused = true)]
async fn a_recreated_job_does_not_inherit_the_old_ones_draining_run() {
    let h = Harness::new(config());
    let toml = "schedule = \"0 * * * * *\"\ncommand = [\"sim\", \"30s\", \"fail\"]\non_remove = \"drain\"\nretries = 3\nretry_backoff = \"5s\"\n";
    let v1 = jobs(&[("j.toml", toml)]);
    h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    wait(61).await;
    h.sched
        .apply(
            Plan {
                delete: v1.keys().cloned().collect(),
                ..Plan::default()
            },
            "rev2",
        )
        .await
        .unwrap();
    h.sched.apply(create_all(&v1), "rev3").await.unwrap();
    wait(40).await; // the old run fails at +90
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        s.counters.retries_scheduled, 0,
        "the old run's failure retried under the new job"
    );
    assert!(
        s.job("j").unwrap().recent.is_empty(),
        "{:?}",
        s.job("j").unwrap().recent
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_during_the_jitter_wait_keeps_the_slot() {
    let h = Harness::new(config());
    let v1 = jobs(&[(
        "j.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\njitter = \"50m\"\n",
    )]);
    h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    let delay = v1
        .values()
        .next()
        .unwrap()
        .jitter
        .stable_delay(&JobId::parse("j").unwrap());
    // Just after the 01:00 slot, before its jittered start.
    tokio::time::sleep(Duration::from_secs(3600 + 1)).await;
    let before = h.starts.lock().unwrap().len();
    let v2 = jobs(&[(
        "j.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\njitter = \"50m\"\ntimeout = \"5m\"\n",
    )]);
    let running: BTreeMap<JobId, u64> = v1
        .iter()
        .map(|(k, v)| (k.clone(), driftcron::plan::spec_digest(v)))
        .collect();
    let r = h.sched.apply(diff(&v2, &running), "rev2").await.unwrap();
    assert_eq!(r.updated, 1);
    let st = h.sched.state().await.unwrap();
    assert_eq!(
        st.job("j").unwrap().next_fire,
        Some(at("2026-06-01T01:00:00Z")),
        "{:?}",
        st.job("j")
    );
    tokio::time::sleep(delay + Duration::from_secs(5)).await;
    let runs: Vec<String> = h.starts.lock().unwrap()[before..]
        .iter()
        .map(|s| s.run_id.clone())
        .collect();
    assert!(
        runs.contains(&"j@2026-06-01T01:00:00Z".to_string()),
        "{runs:?} (jitter {delay:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn a_day_long_jump_counts_every_slot_and_runs_the_newest() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"* * * * * *\"\ncommand = [\"sim\", \"0s\"]\ncatch_up = \"latest\"\n",
    )])
    .await;
    wait(2).await;
    let started_before = h.starts.lock().unwrap().len();
    h.clock.jump(TimeDelta::days(1));
    wait(1).await;
    let s = h.sched.state().await.unwrap();
    let fires = s.counters.fires as f64;
    assert!((fires - 86_400.0).abs() / 86_400.0 < 0.01, "fires {fires}");
    let runs: Vec<Start> = h.starts.lock().unwrap()[started_before..].to_vec();
    let newest = runs.iter().map(|r| r.run_id.clone()).max().unwrap();
    assert!(newest.starts_with("j@2026-06-02T00:00:0"), "{newest}");
}

#[tokio::test(start_paused = true)]
async fn replace_with_no_room_does_not_cancel_the_running_one() {
    let cfg = SchedulerConfig {
        max_running: 1,
        max_queued: 0,
        ..config()
    };
    let h = Harness::new(cfg);
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\nconcurrency = \"replace\"\n",
    )])
    .await;
    wait(21).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        (s.counters.replaced, s.counters.cancelled),
        (0, 0),
        "{:?}",
        s.counters
    );
    assert_eq!(s.counters.global_queue_overflow, 1);
    assert_eq!(s.running, 1);
}

#[tokio::test(start_paused = true)]
async fn suspending_drops_the_jobs_queued_runs() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"*/10 * * * * *\"\ncommand = [\"sim\", \"25s\"]\nconcurrency = \"queue\"\nqueue_depth = 2\n",
    )])
    .await;
    wait(21).await;
    assert_eq!(h.sched.state().await.unwrap().queued, 1);
    h.sched.suspend(&JobId::parse("j").unwrap()).await.unwrap();
    wait(30).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.queued, 0);
    assert_eq!(
        h.starts_of("j"),
        [10],
        "a queued run started after the suspend"
    );
    assert!(s.counters.dropped_on_change >= 1);
}

/// A clock that panics once told to: the way to make the scheduler task
/// itself fail without a test hook in the scheduler.
struct FailingClock {
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl Clock for FailingClock {
    fn now(&self) -> DateTime<Utc> {
        assert!(
            !self.fail.load(std::sync::atomic::Ordering::SeqCst),
            "clock failed (test)"
        );
        at(T0)
    }
}

/// Sets its flag when dropped: the run's future is gone.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A run that never ends on its own.
struct NeverEnds(Arc<std::sync::atomic::AtomicBool>);

impl Runner for NeverEnds {
    fn run(&self, _start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        let flag = DropFlag(Arc::clone(&self.0));
        Box::pin(async move {
            let _flag = flag;
            std::future::pending().await
        })
    }
}

/// Found by review: with runs as detached tasks, a scheduler task that
/// died (a panic unwinding through it) left its runs going, unowned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_end_with_a_scheduler_task_that_panics() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = Scheduler::start_with_runner(
        config(),
        Arc::new(FailingClock {
            fail: Arc::clone(&fail),
        }),
        Arc::new(NeverEnds(Arc::clone(&dropped))),
    );
    let j = jobs(&[("a.toml", "schedule = \"0 0 1 1 *\"\ncommand = [\"x\"]")]);
    s.apply(create_all(&j), "r1").await.unwrap();
    s.trigger(&JobId::parse("a").unwrap()).await.unwrap();
    assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    // The audit reads the clock: the scheduler task panics.
    assert!(s.audit().await.is_err());
    for _ in 0..100 {
        if dropped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the run outlived its scheduler task");
}

/// A run keeps the spec it was started with when an update replaces its
/// job's (the scheduler holds no reference to the spec per run; an update
/// hands the old one to the runs it orphans). The old timeout is its
/// deadline and the old kill grace decides when it is leaked: with the new
/// spec's 10 minutes of grace it would not be reported yet.
#[tokio::test(start_paused = true)]
async fn an_updated_jobs_run_keeps_the_spec_it_started_with() {
    let h = Harness::new(config());
    let v1 = jobs(&[(
        "j.toml",
        "schedule = \"0 0 * * *\"\ncommand = [\"sim\", \"1h\"]\ntimeout = \"50m\"\nkill_grace = \"5s\"\non_remove = \"drain\"\n",
    )]);
    h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    let id = JobId::parse("j").unwrap();
    h.sched.trigger(&id).await.unwrap();
    wait(1).await;
    let v2 = jobs(&[(
        "j.toml",
        "schedule = \"0 0 * * *\"\ncommand = [\"sim\", \"1h\"]\ntimeout = \"5m\"\nkill_grace = \"10m\"\non_remove = \"drain\"\n",
    )]);
    let running: BTreeMap<JobId, u64> = v1
        .iter()
        .map(|(id, s)| (id.clone(), driftcron::plan::spec_digest(s)))
        .collect();
    let r = h.sched.apply(diff(&v2, &running), "rev2").await.unwrap();
    assert_eq!((r.updated, r.draining), (1, 1));
    let s = h.sched.state().await.unwrap();
    let run = &s.job("j").unwrap().active[0];
    assert_eq!(run.job, "j");
    assert_eq!(
        run.deadline,
        Some(run.started + chrono::TimeDelta::minutes(50))
    );
    assert!(run.orphaned_since.is_some());
    wait(10).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.leaked.len(), 1, "{:?}", s.leaked);
    assert_eq!(
        s.leaked[0].reason,
        driftcron::scheduler::LeakReason::JobChanged
    );
    assert_eq!(
        s.leaked[0].run_id.as_deref(),
        Some(run.run_id.to_string().as_str())
    );
    let audit = h.sched.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
}

/// A job updated while it runs, to a spec with `on_remove = "cancel"`: its
/// run is cancelled at the update (where `drain` lets it go on, see above),
/// is counted, ends as cancelled and is not left behind as a leak. The new
/// spec's policy decides: the version that started the run said `drain`.
#[tokio::test(start_paused = true)]
async fn an_update_with_on_remove_cancel_cancels_the_running_run() {
    let h = Harness::new(config());
    let v1 = jobs(&[(
        "j.toml",
        "schedule = \"0 0 * * *\"\ncommand = [\"sim\", \"1h\"]\nkill_grace = \"5s\"\non_remove = \"drain\"\n",
    )]);
    h.sched.apply(create_all(&v1), "rev1").await.unwrap();
    let run = h.sched.trigger(&JobId::parse("j").unwrap()).await.unwrap();
    wait(1).await;
    let v2 = jobs(&[(
        "j.toml",
        "schedule = \"0 0 * * *\"\ncommand = [\"sim\", \"1h\"]\nkill_grace = \"5s\"\non_remove = \"cancel\"\ntimeout = \"2h\"\n",
    )]);
    let running: BTreeMap<JobId, u64> = v1
        .iter()
        .map(|(id, s)| (id.clone(), driftcron::plan::spec_digest(s)))
        .collect();
    let r = h.sched.apply(diff(&v2, &running), "rev2").await.unwrap();
    assert_eq!((r.updated, r.cancelled, r.draining), (1, 1, 0), "{r:?}");
    wait(1).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.counters.cancelled, 1, "{:?}", s.counters);
    assert_eq!(s.running, 0);
    let j = s.job("j").unwrap();
    assert!(j.active.is_empty(), "{:?}", j.active);
    let ended = &j.recent[0];
    assert_eq!(
        (ended.run_id.to_string(), &*ended.outcome),
        (run, "cancelled")
    );
    // Ended at the update, one second in, not after its hour.
    assert_eq!(ended.finished - ended.started, TimeDelta::seconds(1));
    assert!(s.leaked.is_empty(), "{:?}", s.leaked);
}

/// Timeouts are the runner's to enforce (SimRunner does not: its run of an
/// hour ignores its one-minute timeout). A run still going past timeout +
/// kill grace + `LEAK_SLACK` is reported leaked, past its timeout, and not
/// a moment before.
#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_leaked_after_grace_and_slack() {
    let h = Harness::new(config());
    h.apply(&[(
        "j.toml",
        "schedule = \"0 0 * * *\"\ncommand = [\"sim\", \"1h\"]\ntimeout = \"1m\"\nkill_grace = \"5s\"\n",
    )])
    .await;
    let run = h.sched.trigger(&JobId::parse("j").unwrap()).await.unwrap();
    let limit = Duration::from_secs(60 + 5) + LEAK_SLACK;
    tokio::time::sleep(limit).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.running, 1);
    assert!(s.leaked.is_empty(), "at the limit: {:?}", s.leaked);
    wait(1).await;
    let s = h.sched.state().await.unwrap();
    assert_eq!(s.leaked.len(), 1, "{:?}", s.leaked);
    let leak = &s.leaked[0];
    assert_eq!(leak.reason, driftcron::scheduler::LeakReason::PastTimeout);
    assert_eq!(
        (leak.job.as_str(), leak.run_id.as_deref()),
        ("j", Some(run.as_str()))
    );
    assert_eq!(leak.age_secs, limit.as_secs() as i64 + 1);
}

/// A runner that keeps nothing of its start (no shared block, so no way to
/// be told to stop) still cannot outlive a shutdown: it is reported as
/// abandoned and dropped with its lane, without a wait for a cancel it
/// cannot hear (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_listens_is_dropped_at_shutdown() {
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = Scheduler::start_with_runner(
        config(),
        Arc::new(driftcron::scheduler::SystemClock),
        Arc::new(NeverEnds(Arc::clone(&dropped))),
    );
    let j = jobs(&[("a.toml", "schedule = \"0 0 1 1 *\"\ncommand = [\"x\"]")]);
    s.apply(create_all(&j), "r1").await.unwrap();
    let run_id = s.trigger(&JobId::parse("a").unwrap()).await.unwrap();
    let state = s.state().await.unwrap();
    assert_eq!(state.job("a").unwrap().active[0].pid, 0);
    let t0 = std::time::Instant::now();
    let report = s.shutdown(Duration::from_millis(50)).await;
    assert_eq!(report.abandoned, [run_id], "{report:?}");
    // Nothing could tell it to stop, so shutdown does not wait out the
    // cancel phase's grace (7 s) before dropping it.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
}

/// Schedules are held once each and named by a reused id (see
/// `schedules.rs`): a job created, at the same instant, after the last
/// user of another schedule went gets that schedule's id, and must get its
/// own next slot, not the one remembered for the old schedule.
#[tokio::test(start_paused = true)]
async fn a_new_schedule_in_a_freed_slot_gets_its_own_next_fire() {
    let h = Harness::new(config());
    let a = jobs(&[(
        "a.toml",
        "schedule = \"0 * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )]);
    h.sched.apply(create_all(&a), "rev1").await.unwrap();
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        s.job("a").unwrap().next_fire,
        Some(at("2026-06-01T01:00:00Z"))
    );
    let gone = Plan {
        delete: a.keys().cloned().collect(),
        ..Plan::default()
    };
    h.sched.apply(gone, "rev2").await.unwrap();
    let b = jobs(&[(
        "b.toml",
        "schedule = \"30 * * * *\"\ncommand = [\"sim\", \"0s\"]\n",
    )]);
    h.sched.apply(create_all(&b), "rev3").await.unwrap();
    let s = h.sched.state().await.unwrap();
    assert_eq!(
        s.job("b").unwrap().next_fire,
        Some(at("2026-06-01T00:30:00Z"))
    );
    let audit = h.sched.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);
}
