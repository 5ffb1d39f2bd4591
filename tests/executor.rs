//! Real-process tests of the executor and of the scheduler's process
//! handling: real `/bin/sh`, real signals, real time.
//!
//! - timeout → SIGTERM to the group → SIGKILL after `kill_grace`, for a
//!   child and a grandchild that both ignore SIGTERM;
//! - a child that obeys SIGTERM is not SIGKILLed;
//! - output capped to its tail, stdout and stderr both captured;
//! - the environment: minimal base + job env + DRIFTCRON_*; nothing else
//!   from the daemon's own environment; a scheduled run's retry keeps its
//!   slot and run id and counts its attempt;
//! - spawn failures and `workdir`;
//! - through the [`Scheduler`]: a removed job's run (`on_remove = "drain"`
//!   is reported as leaked after the grace and cleared once dead;
//!   `"cancel"` terminates it), `concurrency = "replace"` killing a run
//!   that ignores SIGTERM (grandchild included) as the next one starts,
//!   bounded and idempotent `shutdown`, and the audit finding an orphan
//!   process group and the injected faults.
//!
//! Every wait polls with a deadline rather than sleeping a fixed time, so
//! the tests hold on a loaded 2-core machine.
//!
//! Note on "dead": in some containers PID 1 does not reap orphans, so a
//! killed grandchild stays a zombie forever. A zombie is dead (it runs
//! nothing and holds no resources but its pid), so [`alive`] treats it as
//! gone. Scheduler tests `exec` the long-running program so a run's group
//! holds only its leader, which tokio reaps; the `replace` test keeps a
//! grandchild on purpose, and checks its group with the zombie-blind
//! [`executor::group_alive`] rather than `kill(-pgid, 0)`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use driftcron::plan::{Plan, diff};
use driftcron::scheduler::executor::{
    self, ExecRequest, ExecResult, ExecShared, ExecStart, Outcome,
};
use driftcron::scheduler::state::{LeakReason, RunningState};
use driftcron::scheduler::{Fault, Scheduler, SchedulerConfig, SchedulerError, SystemClock};
use driftcron::snapshot::{Snapshot, SourceFile};
use driftcron::spec::{JobId, JobSpec, LoadOptions, Loaded, load};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A schedule that does not fire while a test runs (midnight, January 1st):
/// every run in these tests is triggered or direct.
const NEVER_DURING_TESTS: &str = "0 0 1 1 *";

/// A TOML basic string holding `s`.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn load_files(files: &[(&str, String)]) -> Loaded {
    let mut files: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile {
            path: (*path).to_string(),
            bytes: text.as_bytes().to_vec(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let snapshot = Snapshot {
        revision: "rev1".into(),
        files,
        problems: vec![],
    };
    load(
        &snapshot,
        &LoadOptions {
            now: Utc::now(),
            max_jobs: None,
        },
    )
}

/// Loads one job `<id>.toml` (the schedule is added) and returns its spec.
fn job(id: &str, body: &str) -> JobSpec {
    job_on(id, NEVER_DURING_TESTS, body)
}

/// Loads one job `<id>.toml` firing on `schedule` and returns its spec.
fn job_on(id: &str, schedule: &str, body: &str) -> JobSpec {
    let text = format!("schedule = {}\n{body}\n", q(schedule));
    let loaded = load_files(&[(&format!("{id}.toml"), text.clone())]);
    assert!(
        loaded.is_valid(),
        "job {id} does not validate:\n{text}\n{:#?}",
        loaded.diagnostics
    );
    let id = JobId::parse(id).unwrap();
    loaded
        .desired
        .jobs
        .get(&id)
        .map(|s| JobSpec::clone(s))
        .expect("the job is loaded")
}

fn create_plan(specs: &[&JobSpec]) -> Plan {
    let desired: BTreeMap<JobId, Arc<JobSpec>> = specs
        .iter()
        .map(|s| (s.id.clone(), Arc::new((*s).clone())))
        .collect();
    diff(&desired, &BTreeMap::new())
}

fn delete_plan(id: &JobId) -> Plan {
    Plan {
        delete: vec![id.clone()],
        ..Plan::default()
    }
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: u32) -> bool {
    assert!(pid > 1, "not a child pid: {pid}");
    // SAFETY: signal 0 only checks existence and permission.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the last ')' (the command name may hold one).
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X' | 'x')
        ),
        Err(_) => false,
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes.
async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the scheduler's state until `check` holds; returns that state.
async fn wait_state(
    s: &Scheduler,
    what: &str,
    within: Duration,
    mut check: impl FnMut(&RunningState) -> bool,
) -> RunningState {
    let until = Instant::now() + within;
    loop {
        let st = s.state().await.expect("scheduler running");
        if check(&st) {
            return st;
        }
        assert!(
            Instant::now() < until,
            "timed out after {within:?} waiting for {what}; last state:\n{st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `spec` directly through the executor. Returns the result, the
/// child's pid (its process group) and how long it took.
async fn run_direct(spec: JobSpec) -> (ExecResult, u32, Duration) {
    let shared = ExecShared::new(spec.kill_grace);
    let req = ExecRequest {
        scheduled_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        attempt: 1,
        revision: "rev1".into(),
        shared: shared.clone(),
        spec: Arc::new(spec),
    };
    let t0 = Instant::now();
    let result = executor::run(req).await;
    (result, shared.pid.load(Ordering::SeqCst), t0.elapsed())
}

/// A schedule that fires at each of the whole seconds `offsets` (under 60)
/// after the current one, and those instants: slots a real-time test can
/// wait for. It names seconds of the minute, so its next slot after these
/// is most of a minute away, well past the test.
fn slots_from_now(offsets: &[i64]) -> (String, Vec<DateTime<Utc>>) {
    use chrono::{DurationRound, TimeDelta};
    let this_second = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let slots: Vec<DateTime<Utc>> = offsets
        .iter()
        .map(|&o| {
            assert!((1..60).contains(&o), "offset {o}");
            this_second + TimeDelta::seconds(o)
        })
        .collect();
    let seconds: Vec<String> = slots.iter().map(|t| t.second().to_string()).collect();
    (format!("{} * * * * *", seconds.join(",")), slots)
}

/// Fails at once, saying why, when an apply landed too late for the slot
/// a test computed (a loaded machine), instead of timing out later on a
/// run that will not come for a minute.
async fn expect_next_fire(s: &Scheduler, job: &str, slot: DateTime<Utc>) {
    let st = s.state().await.unwrap();
    assert_eq!(
        st.job(job).and_then(|j| j.next_fire),
        Some(slot),
        "the apply landed after the test's first slot: rerun on a less loaded machine"
    );
}

/// `<job>@<slot, RFC 3339 UTC to the second>`, spelled out here rather than
/// taken from the library so that a change to the format is noticed.
fn expected_run_id(job: &str, slot: DateTime<Utc>) -> String {
    format!("{job}@{}", slot.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn start() -> Scheduler {
    Scheduler::start(SchedulerConfig::default(), Arc::new(SystemClock))
}

/// A job that ignores SIGTERM, says it is ready (trap in place), then
/// `exec`s a long sleep so its group is one process.
fn stubborn_script(ready: &Path) -> String {
    format!(
        "trap '' TERM; echo ready > {}; exec sleep 30",
        path_str(ready)
    )
}

/// The pid of the one active run of `job`, once spawned.
async fn running_pid(s: &Scheduler, job: &str) -> u32 {
    let st = wait_state(s, "the run to be spawned", Duration::from_secs(5), |st| {
        st.job(job)
            .is_some_and(|j| j.active.len() == 1 && j.active[0].pid != 0)
    })
    .await;
    st.job(job).unwrap().active[0].pid
}

// ---------------------------------------------------------------------------
// 1-2. Timeout, SIGTERM, SIGKILL
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_a_group_that_ignores_sigterm_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let gc_file = dir.path().join("grandchild.pid");
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {}; wait; echo unreachable",
        path_str(&gc_file)
    );
    let spec = job(
        "stubborn",
        &format!(
            "shell = {}\ntimeout = \"1s\"\nkill_grace = \"1s\"",
            q(&script)
        ),
    );
    let (r, pid, took) = run_direct(spec).await;

    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert!(
        r.killed,
        "SIGTERM was ignored, so SIGKILL was needed: {r:?}"
    );
    assert!(
        !String::from_utf8_lossy(&r.output).contains("unreachable"),
        "{r:?}"
    );
    // timeout (1 s) + grace (1 s), and not much more.
    assert!(
        took >= Duration::from_millis(1900),
        "ended too early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");

    let grandchild: u32 = std::fs::read_to_string(&gc_file)
        .expect("the shell wrote its grandchild's pid")
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, 0, "the pid is published");
    assert_ne!(grandchild, pid);
    // SIGKILL went to the group: the child is reaped by the time run()
    // returns; the grandchild is not ours to reap, and dies as soon as the
    // kernel next runs it (a moment on a loaded machine).
    assert!(!alive(pid), "the child {pid} survived");
    let until = Instant::now() + Duration::from_secs(2);
    while alive(grandchild) {
        assert!(
            Instant::now() < until,
            "the grandchild {grandchild} survived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_exits_on_sigterm_is_not_sigkilled() {
    // Plain: the program dies of SIGTERM.
    let spec = job(
        "obedient",
        "command = [\"sleep\", \"30\"]\ntimeout = \"1s\"\nkill_grace = \"3s\"",
    );
    let (r, pid, took) = run_direct(spec).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert!(!r.killed, "SIGTERM was enough: {r:?}");
    assert!(
        took < Duration::from_millis(2900),
        "waited for the kill grace: {took:?}"
    );
    assert!(!alive(pid));

    // A handler: SIGTERM reaches the whole group (the background sleep dies
    // with it, or `wait` would not return), and the handler's output is
    // kept.
    let dir = tempfile::tempdir().unwrap();
    let gc_file = dir.path().join("grandchild.pid");
    let script = format!(
        "trap 'echo got-term; exit 3' TERM; sleep 30 & echo $! > {}; wait",
        path_str(&gc_file)
    );
    let spec = job(
        "handler",
        &format!(
            "shell = {}\ntimeout = \"1s\"\nkill_grace = \"3s\"",
            q(&script)
        ),
    );
    let (r, pid, took) = run_direct(spec).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert!(!r.killed, "{r:?}");
    assert!(
        took < Duration::from_millis(2900),
        "waited for the kill grace: {took:?}"
    );
    assert!(
        String::from_utf8_lossy(&r.output).contains("got-term"),
        "{r:?}"
    );
    let grandchild: u32 = std::fs::read_to_string(&gc_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid));
    assert!(!alive(grandchild));
}

// ---------------------------------------------------------------------------
// 3. Output capping
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_keeps_exactly_the_last_max_output_bytes_of_stdout_and_stderr() {
    // 12,800 lines of 8 bytes ("0000001\n") = 100 KiB on stdout, then,
    // after a pause so the two pipes cannot interleave, a marker on stderr.
    let script = "seq -f '%07g' 1 12800; sleep 0.5; printf 'stderr-tail-marker\\n' >&2";
    let spec = job(
        "chatty",
        &format!(
            "shell = {}\ntimeout = \"4s\"\nmax_output = \"1KiB\"",
            q(script)
        ),
    );
    let mut expected: Vec<u8> = (1..=12800)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    assert_eq!(expected.len(), 100 * 1024);
    expected.extend_from_slice(b"stderr-tail-marker\n");
    let total = expected.len();

    let (r, _, _) = run_direct(spec).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    assert_eq!(r.output.len(), 1024);
    assert_eq!(
        r.output.as_slice(),
        &expected[total - 1024..],
        "the output is not the tail:\n{}",
        String::from_utf8_lossy(&r.output)
    );
    assert!(r.output.ends_with(b"0012800\nstderr-tail-marker\n"));
    assert_eq!(r.output_dropped, (total - 1024) as u64);

    // stderr alone is captured as well.
    let spec = job(
        "quiet",
        "shell = \"echo only-on-stderr >&2\"\nmax_output = \"1KiB\"",
    );
    let (r, _, _) = run_direct(spec).await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(r.output, b"only-on-stderr\n");
    assert_eq!(r.output_dropped, 0);
}

// ---------------------------------------------------------------------------
// 4. Environment
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_minimal_plus_job_env_plus_run_identity() {
    // Variables the test process certainly has (cargo sets them) and a job
    // must not see: the daemon's environment may hold credentials.
    for leak in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME"] {
        assert!(
            std::env::var(leak).is_ok(),
            "{leak} is set in the test process"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let spec = job(
        "env-job",
        &format!(
            "shell = {}\ntimeout = \"4s\"\nenv = {{ GREETING = \"hello world\", APP_MODE = \"test\" }}",
            q(&format!("env > {}", path_str(&out)))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    let run_id = s.trigger(&spec.id).await.unwrap();
    let st = wait_state(&s, "the run to finish", Duration::from_secs(5), |st| {
        st.job("env-job").is_some_and(|j| !j.recent.is_empty())
    })
    .await;
    assert_eq!(st.job("env-job").unwrap().recent[0].outcome, "succeeded");
    s.shutdown(Duration::from_secs(1)).await;

    let text = std::fs::read_to_string(&out).unwrap();
    let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        *env.get(k)
            .unwrap_or_else(|| panic!("{k} is missing from:\n{text}"))
    };

    assert_eq!(get("DRIFTCRON_JOB"), "env-job");
    assert_eq!(get("DRIFTCRON_RUN_ID"), run_id);
    assert_eq!(get("DRIFTCRON_ATTEMPT"), "1");
    assert_eq!(get("DRIFTCRON_REVISION"), "rev1");
    assert_eq!(get("GREETING"), "hello world");
    assert_eq!(get("APP_MODE"), "test");
    assert!(!get("PATH").is_empty());

    // `<job>@<slot, RFC 3339 UTC>`.
    let stamp = run_id
        .strip_prefix("env-job@")
        .unwrap_or_else(|| panic!("run id {run_id}"));
    assert!(stamp.ends_with('Z'), "not UTC: {run_id}");
    let slot = DateTime::parse_from_rfc3339(stamp).unwrap_or_else(|e| panic!("{run_id}: {e}"));
    let scheduled = get("DRIFTCRON_SCHEDULED_AT");
    assert!(scheduled.ends_with('Z'), "not UTC: {scheduled}");
    let scheduled_at = DateTime::parse_from_rfc3339(scheduled).unwrap();
    assert!(
        (Utc::now() - scheduled_at.with_timezone(&Utc))
            .num_seconds()
            .abs()
            < 30
    );
    // The same slot (DRIFTCRON_SCHEDULED_AT is written to the second).
    assert_eq!(
        slot.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        scheduled
    );

    for leak in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "RUST_TEST_THREADS"] {
        assert!(!env.contains_key(leak), "the job saw {leak}:\n{text}");
    }
}

/// A retry is the same run as its first attempt: it names the slot it
/// retries, not the time it starts, and only `DRIFTCRON_ATTEMPT` moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retry_names_its_slot_and_counts_its_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    // Fails on its first attempt, succeeds on its second; each attempt
    // writes its environment to a file of its own.
    let script = format!("env > {d}/env-$DRIFTCRON_ATTEMPT; test \"$DRIFTCRON_ATTEMPT\" -ge 2");
    let s = start();
    let (schedule, slots) = slots_from_now(&[3]);
    let slot = slots[0];
    let spec = job_on(
        "retried",
        &schedule,
        &format!(
            "shell = {}\ntimeout = \"10s\"\nretries = 1\nretry_backoff = \"1s\"",
            q(&script)
        ),
    );
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    expect_next_fire(&s, "retried", slot).await;
    let st = wait_state(&s, "both attempts to end", Duration::from_secs(10), |st| {
        st.job("retried").is_some_and(|j| j.recent.len() == 2)
    })
    .await;
    s.shutdown(Duration::from_secs(1)).await;

    let run_id = expected_run_id("retried", slot);
    let recent = &st.job("retried").unwrap().recent;
    let shown: Vec<_> = recent
        .iter()
        .map(|r| (r.run_id.to_string(), r.attempt, &*r.outcome))
        .collect();
    assert_eq!(
        shown,
        [
            (run_id.clone(), 1, "failed"),
            (run_id.clone(), 2, "succeeded")
        ]
    );
    assert_eq!(st.counters.retries_scheduled, 1, "{:?}", st.counters);
    // The retry started a backoff after the slot, in a later second: a
    // run id or slot taken from the retry's own start would differ.
    let retried_at = recent[1].started;
    assert!(
        retried_at >= slot + chrono::TimeDelta::seconds(1),
        "retry at {retried_at}, slot {slot}"
    );

    let slot_text = slot.to_rfc3339_opts(SecondsFormat::Secs, true);
    for attempt in ["1", "2"] {
        let text = std::fs::read_to_string(dir.path().join(format!("env-{attempt}")))
            .unwrap_or_else(|e| panic!("attempt {attempt} wrote no environment: {e}"));
        let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let got = |k: &str| env.get(k).copied();
        assert_eq!(
            got("DRIFTCRON_ATTEMPT"),
            Some(attempt),
            "attempt {attempt}:\n{text}"
        );
        assert_eq!(
            got("DRIFTCRON_RUN_ID"),
            Some(run_id.as_str()),
            "attempt {attempt}:\n{text}"
        );
        assert_eq!(
            got("DRIFTCRON_SCHEDULED_AT"),
            Some(slot_text.as_str()),
            "attempt {attempt}:\n{text}"
        );
        assert_eq!(
            got("DRIFTCRON_JOB"),
            Some("retried"),
            "attempt {attempt}:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Spawn failures and workdir
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_failure_and_workdir() {
    let spec = job("missing", "command = [\"/nonexistent/prog\"]");
    let (r, pid, _) = run_direct(spec).await;
    assert!(matches!(r.outcome, Outcome::SpawnFailed(_)), "{r:?}");
    assert_eq!(pid, 0, "nothing was spawned");
    assert!(!r.killed);

    // An empty `command` cannot load, but a spec built in code can hold
    // one: it fails to spawn, saying why, rather than panicking.
    let mut spec = job("empty", "command = [\"/bin/true\"]");
    spec.executor = driftcron::spec::job::Executor::Exec {
        argv: driftcron::spec::job::Argv::default(),
    };
    let (r, pid, _) = run_direct(spec).await;
    match &r.outcome {
        Outcome::SpawnFailed(why) => assert!(why.contains("empty"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pid, 0, "nothing was spawned");

    // A relative workdir is refused when loading.
    let loaded = load_files(&[(
        "rel.toml",
        format!(
            "schedule = {}\nshell = \"pwd\"\nworkdir = \"some/dir\"\n",
            q(NEVER_DURING_TESTS)
        ),
    )]);
    assert!(!loaded.is_valid());
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("workdir")),
        "{:#?}",
        loaded.diagnostics
    );

    // An absolute existing one is honoured.
    let dir = tempfile::tempdir().unwrap();
    let real: PathBuf = dir.path().canonicalize().unwrap();
    let spec = job(
        "pwd",
        &format!("shell = \"pwd\"\nworkdir = {}", q(path_str(&real))),
    );
    let (r, _, _) = run_direct(spec).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    assert_eq!(
        String::from_utf8_lossy(&r.output).trim_end(),
        path_str(&real)
    );

    // An absolute missing one cannot spawn.
    let spec = job(
        "nowhere",
        &format!(
            "shell = \"pwd\"\nworkdir = {}",
            q(path_str(&real.join("missing")))
        ),
    );
    let (r, _, _) = run_direct(spec).await;
    assert!(matches!(r.outcome, Outcome::SpawnFailed(_)), "{r:?}");
}

// ---------------------------------------------------------------------------
// 6. A job removed from git while it runs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_job_draining_past_its_grace_is_leaked_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let spec = job(
        "drainer",
        &format!(
            "shell = {}\ntimeout = \"30s\"\nkill_grace = \"1s\"\non_remove = \"drain\"",
            q(&stubborn_script(&ready))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    let run_id = s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "drainer").await;
    wait_for("the trap to be set", Duration::from_secs(5), || {
        ready.exists()
    })
    .await;

    let report = s.apply(delete_plan(&spec.id), "rev2").await.unwrap();
    assert_eq!(
        (report.deleted, report.draining, report.cancelled),
        (1, 1, 0),
        "{report:?}"
    );
    let removed_at = Instant::now();
    let st = s.state().await.unwrap();
    assert!(st.job("drainer").is_none(), "the job left the registry");
    assert_eq!(st.running, 1, "its run drains");
    assert!(
        st.leaked.is_empty(),
        "not leaked within its grace: {:?}",
        st.leaked
    );

    let st = wait_state(&s, "the leak report", Duration::from_secs(5), |st| {
        !st.leaked.is_empty()
    })
    .await;
    assert!(
        removed_at.elapsed() >= Duration::from_millis(900),
        "reported before the grace"
    );
    assert_eq!(st.leaked.len(), 1, "{:?}", st.leaked);
    let leak = &st.leaked[0];
    assert_eq!(leak.reason, LeakReason::JobRemoved);
    assert_eq!(leak.job, "drainer");
    assert_eq!(leak.pid, pid);
    assert_eq!(leak.run_id.as_deref(), Some(run_id.as_str()));
    assert!(alive(pid), "drain does not terminate it");

    // SAFETY: killpg on the run's own group.
    assert_eq!(
        unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) },
        0
    );
    let st = wait_state(&s, "the run to end", Duration::from_secs(5), |st| {
        st.running == 0 && st.leaked.is_empty()
    })
    .await;
    assert_eq!(
        st.counters.failed, 1,
        "killed by a signal we did not send: failed"
    );
    assert!(!alive(pid));
    let audit = s.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{audit:?}");
    s.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_job_draining_is_cleared_by_its_own_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let spec = job(
        "drain-timeout",
        &format!(
            "shell = {}\ntimeout = \"2s\"\nkill_grace = \"1s\"\non_remove = \"drain\"",
            q(&stubborn_script(&ready))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    let run_id = s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "drain-timeout").await;
    wait_for("the trap to be set", Duration::from_secs(5), || {
        ready.exists()
    })
    .await;
    s.apply(delete_plan(&spec.id), "rev2").await.unwrap();

    let st = wait_state(&s, "the leak report", Duration::from_secs(5), |st| {
        !st.leaked.is_empty()
    })
    .await;
    assert_eq!(st.leaked[0].reason, LeakReason::JobRemoved);
    assert_eq!(st.leaked[0].run_id.as_deref(), Some(run_id.as_str()));
    // Timeout at 2 s: SIGTERM (ignored), SIGKILL at 3 s.
    let st = wait_state(&s, "the run to time out", Duration::from_secs(6), |st| {
        st.running == 0 && st.leaked.is_empty()
    })
    .await;
    assert_eq!(
        (st.counters.timed_out, st.counters.killed),
        (1, 1),
        "{:?}",
        st.counters
    );
    assert!(!alive(pid));
    s.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_job_with_on_remove_cancel_is_terminated_and_not_leaked() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let spec = job(
        "canceller",
        &format!(
            "shell = {}\ntimeout = \"30s\"\nkill_grace = \"1s\"\non_remove = \"cancel\"",
            q(&stubborn_script(&ready))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "canceller").await;
    wait_for("the trap to be set", Duration::from_secs(5), || {
        ready.exists()
    })
    .await;

    let report = s.apply(delete_plan(&spec.id), "rev2").await.unwrap();
    assert_eq!(
        (report.deleted, report.cancelled, report.draining),
        (1, 1, 0),
        "{report:?}"
    );
    let removed_at = Instant::now();
    let mut seen_leaked_while_running = false;
    let st = wait_state(
        &s,
        "the cancelled run to end",
        Duration::from_secs(5),
        |st| {
            seen_leaked_while_running |= !st.leaked.is_empty();
            st.running == 0
        },
    )
    .await;
    let took = removed_at.elapsed();
    // SIGTERM was ignored: SIGKILL after the 1 s grace.
    assert!(
        took >= Duration::from_millis(900),
        "ended before the grace: {took:?}"
    );
    assert!(!alive(pid), "the cancelled child {pid} survived");
    assert_eq!(
        (st.counters.cancelled, st.counters.killed),
        (1, 1),
        "{:?}",
        st.counters
    );
    assert!(st.leaked.is_empty(), "{:?}", st.leaked);
    if seen_leaked_while_running {
        eprintln!(
            "note: the cancelled run was reported leaked in the instant between its grace \
             and its SIGKILL being reaped"
        );
    }
    // And it stays clean.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = s.state().await.unwrap();
    assert!(st.leaked.is_empty(), "{:?}", st.leaked);
    let audit = s.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{audit:?}");
    s.shutdown(Duration::from_secs(1)).await;
}

// ---------------------------------------------------------------------------
// 6b. `concurrency = "replace"`
// ---------------------------------------------------------------------------

/// The next slot of a `replace` job cancels the run still going: SIGTERM
/// to its group, SIGKILL after `kill_grace` when ignored, the grandchild
/// included; it is counted, and the new run starts at once, alongside the
/// old one's grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_kills_a_stubborn_run_and_its_grandchild_and_starts_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    // Each run files what it knows under its pid (its process group): its
    // grandchild's pid, that it is ready, and every SIGTERM it gets. The
    // grandchild starts while TERM is ignored, so it ignores it too (an
    // ignored signal stays ignored across fork and exec); the shell then
    // notes TERM and goes on waiting.
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {d}/$$.gc; \
         trap 'echo term >> {d}/$$.term' TERM; echo ready > {d}/$$.ready; \
         while :; do wait; done"
    );
    let s = start();
    let (schedule, slots) = slots_from_now(&[3, 6]);
    let spec = job_on(
        "replaced",
        &schedule,
        &format!(
            "shell = {}\ntimeout = \"30s\"\nkill_grace = \"1s\"\nconcurrency = \"replace\"",
            q(&script)
        ),
    );
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    expect_next_fire(&s, "replaced", slots[0]).await;

    let old = running_pid(&s, "replaced").await;
    wait_for("the first run to be ready", Duration::from_secs(5), || {
        dir.path().join(format!("{old}.ready")).exists()
    })
    .await;
    let grandchild: u32 = std::fs::read_to_string(dir.path().join(format!("{old}.gc")))
        .expect("the shell wrote its grandchild's pid")
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));

    // The second slot: the new run is spawned while the old one is still
    // in its grace.
    let st = wait_state(&s, "the second slot's run", Duration::from_secs(5), |st| {
        st.job("replaced")
            .is_some_and(|j| j.active.iter().any(|e| e.pid != 0 && e.pid != old))
    })
    .await;
    let active = &st.job("replaced").unwrap().active;
    let was = active
        .iter()
        .find(|e| e.pid == old)
        .expect("the old run is still in its grace when the new one starts");
    let now = active.iter().find(|e| e.pid != old).unwrap();
    let new = now.pid;
    assert_eq!(was.run_id, expected_run_id("replaced", slots[0]));
    let cancelled_at = was
        .cancelling_since
        .expect("the old run is being cancelled");
    assert_eq!(now.run_id, expected_run_id("replaced", slots[1]));
    assert_eq!((now.attempt, now.cancelling_since), (1, None));

    let st = wait_state(&s, "the old run to end", Duration::from_secs(5), |st| {
        st.job("replaced").is_some_and(|j| j.active.len() == 1)
    })
    .await;
    let job = st.job("replaced").unwrap();
    assert_eq!(job.active[0].pid, new, "the new run goes on");
    let ended = &job.recent[0];
    assert_eq!(ended.run_id, expected_run_id("replaced", slots[0]));
    assert_eq!(&*ended.outcome, "cancelled");
    // SIGTERM came first and was ignored (the shell noted it and lived on),
    // then SIGKILL, not before the grace.
    assert!(
        std::fs::read_to_string(dir.path().join(format!("{old}.term")))
            .is_ok_and(|t| t.contains("term")),
        "the old run never got SIGTERM"
    );
    let took = (ended.finished - cancelled_at).to_std().unwrap_or_default();
    assert!(
        took >= Duration::from_millis(950),
        "SIGKILLed before its 1 s grace: {took:?}"
    );
    let c = &st.counters;
    assert_eq!(
        (c.started, c.replaced, c.cancelled, c.killed, c.failed),
        (2, 1, 1, 1, 0),
        "{c:?}"
    );

    // The old group is gone, grandchild included; zombies aside (see the
    // module docs), nothing of it is left to signal.
    assert!(!alive(old), "the replaced child {old} survived");
    wait_for(
        "the replaced run's group to be gone",
        Duration::from_secs(2),
        || !alive(grandchild) && !executor::group_alive(old),
    )
    .await;
    assert!(alive(new), "the new run {new} was hit too");
    assert!(executor::group_alive(new));
    let audit = s.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{audit:?}");
    s.shutdown(Duration::from_millis(100)).await;
    assert!(!alive(new));
}

// ---------------------------------------------------------------------------
// 7. Shutdown
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_a_stubborn_child_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let spec = job(
        "stubborn",
        &format!(
            "shell = {}\ntimeout = \"30s\"\nkill_grace = \"1s\"",
            q(&stubborn_script(&ready))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    let run_id = s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "stubborn").await;
    wait_for("the trap to be set", Duration::from_secs(5), || {
        ready.exists()
    })
    .await;

    let deadline = Duration::from_millis(500);
    let t0 = Instant::now();
    let report = s.shutdown(deadline).await;
    let took = t0.elapsed();
    assert_eq!(report.killed, vec![run_id.clone()], "{report:?}");
    assert_eq!((report.drained, report.cancelled), (0, 0), "{report:?}");
    assert!(report.abandoned.is_empty(), "{report:?}");
    // deadline + the job's 1 s grace; bounded by deadline + 5 s + slack.
    assert!(
        took >= deadline + Duration::from_millis(900),
        "took {took:?}"
    );
    assert!(
        took < deadline + Duration::from_secs(5) + Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(!alive(pid), "the child {pid} survived shutdown");

    let t1 = Instant::now();
    let again = s.shutdown(Duration::from_secs(30)).await;
    assert!(
        t1.elapsed() < Duration::from_millis(200),
        "second shutdown took {:?}",
        t1.elapsed()
    );
    assert_eq!(again, report);

    assert_eq!(s.state().await, Err(SchedulerError::Stopped));
    assert_eq!(s.trigger(&spec.id).await, Err(SchedulerError::Stopped));
    assert_eq!(s.audit().await, Err(SchedulerError::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_caps_a_long_kill_grace() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let spec = job(
        "patient",
        &format!(
            "shell = {}\ntimeout = \"30s\"\nkill_grace = \"60s\"",
            q(&stubborn_script(&ready))
        ),
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    let run_id = s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "patient").await;
    wait_for("the trap to be set", Duration::from_secs(5), || {
        ready.exists()
    })
    .await;

    let deadline = Duration::from_millis(100);
    let t0 = Instant::now();
    let report = s.shutdown(deadline).await;
    let took = t0.elapsed();
    assert_eq!(report.killed, vec![run_id], "{report:?}");
    assert!(report.abandoned.is_empty(), "{report:?}");
    // The 60 s grace is cut to SHUTDOWN_KILL_GRACE (5 s).
    assert!(
        took < deadline + driftcron::scheduler::SHUTDOWN_KILL_GRACE + Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_run_that_ends_within_the_deadline() {
    let spec = job("short", "shell = \"sleep 0.3\"\ntimeout = \"10s\"");
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    s.trigger(&spec.id).await.unwrap();
    running_pid(&s, "short").await;
    let t0 = Instant::now();
    let report = s.shutdown(Duration::from_secs(4)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(report.drained, 1, "{report:?}");
    assert!(
        report.killed.is_empty() && report.abandoned.is_empty() && report.cancelled == 0,
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_a_run_that_obeys_sigterm() {
    let spec = job(
        "obedient",
        "command = [\"sleep\", \"30\"]\ntimeout = \"30s\"\nkill_grace = \"3s\"",
    );
    let s = start();
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    s.trigger(&spec.id).await.unwrap();
    let pid = running_pid(&s, "obedient").await;
    let t0 = Instant::now();
    let report = s.shutdown(Duration::from_millis(200)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2900),
        "waited for the grace: {:?}",
        t0.elapsed()
    );
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(report.drained, 0, "{report:?}");
    assert!(
        report.killed.is_empty() && report.abandoned.is_empty(),
        "{report:?}"
    );
    assert!(!alive(pid));
}

// ---------------------------------------------------------------------------
// 8. The audit
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_an_orphan_process_group() {
    let s = start();
    let audit = s.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{audit:?}");

    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    s.inject(Fault::OrphanProcessGroup(pid)).await.unwrap();

    let audit = s.audit().await.unwrap();
    assert!(
        audit
            .violations
            .iter()
            .any(|v| v.contains(&pid.to_string())),
        "no violation names {pid}: {audit:?}"
    );
    let st = s.state().await.unwrap();
    assert!(
        st.leaked.iter().any(|l| l.pid == pid
            && l.reason == LeakReason::UntrackedProcess
            && l.run_id.is_none()),
        "{:?}",
        st.leaked
    );
    assert!(st.counters.audit_violations >= 1);

    child.kill().unwrap();
    child.wait().unwrap();
    let audit = s.audit().await.unwrap();
    assert!(audit.violations.is_empty(), "{audit:?}");
    assert!(s.state().await.unwrap().leaked.is_empty());
    s.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_a_stale_timer_entry() {
    let s = start();
    s.inject(Fault::StaleTimerEntry).await.unwrap();
    let audit = s.audit().await.unwrap();
    assert!(
        audit.violations.iter().any(|v| v.contains("timer")),
        "the stale timer entry went unnoticed: {audit:?}"
    );
    s.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_an_untracked_task() {
    let s = start();
    s.inject(Fault::UntrackedTask).await.unwrap();
    let audit = s.audit().await.unwrap();
    assert!(
        audit.violations.iter().any(|v| v.contains("owned tasks")),
        "{audit:?}"
    );
    assert_eq!((audit.tracked_executions, audit.owned_tasks), (0, 1));
    // The untracked task ends only when shutdown cancels everything.
    let t0 = Instant::now();
    s.shutdown(Duration::from_millis(200)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

/// `ProcessRunner` runs each process in a task of its own (fork and exec
/// block a thread, and a lane's other runs must not wait on them); the
/// lane still owns it: dropping the run's future must kill the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_process_run_kills_its_child() {
    use driftcron::scheduler::{ProcessRunner, Runner};
    let spec = job("held", "command = [\"sleep\", \"30\"]");
    let (revision, spec) = (Arc::from("rev1"), Arc::new(spec));
    let cell = std::cell::OnceCell::new();
    let run = ProcessRunner.run(ExecStart::new(
        "2026-01-01T00:00:00Z".parse().unwrap(),
        1,
        &revision,
        &spec,
        &cell,
    ));
    // The runner asked for the run's shared block, as the scheduler finds it.
    let shared = Arc::clone(cell.get().expect("a process run takes its shared block"));
    // Stands in for the lane: drives the run, then drops it.
    let lane = tokio::spawn(run);
    let until = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        match shared.pid.load(Ordering::SeqCst) {
            0 => {
                assert!(Instant::now() < until, "the child never started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            pid => break pid,
        }
    };
    assert!(alive(pid));
    lane.abort();
    assert!(lane.await.unwrap_err().is_cancelled());
    let until = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < until,
            "the child {pid} outlived its dropped run"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A run's own task stops only at its next await once aborted (a process
/// run's, say, in the middle of a fork): shutdown's last phase waits for
/// it (`ExecShared::detach`), boundedly, instead of returning while it
/// still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_runs_own_task_to_be_gone() {
    use driftcron::scheduler::{Runner, SHUTDOWN_REAP};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    /// Notes when the task's future is dropped.
    struct Gone(Arc<Mutex<Option<Instant>>>);
    impl Drop for Gone {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(Instant::now());
        }
    }

    /// Its own task blocks its thread 400 ms at a time and ignores
    /// cancellation, as a run stuck in fork and exec would.
    struct Stuck(Arc<Mutex<Option<Instant>>>);
    impl Runner for Stuck {
        fn run(&self, start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
            let detached = start.shared().detach();
            let gone = Gone(Arc::clone(&self.0));
            let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                let (_detached, _gone) = (detached, gone);
                loop {
                    std::thread::sleep(Duration::from_millis(400));
                    tokio::task::yield_now().await;
                }
            }));
            Box::pin(async move {
                let _ = task.await;
                ExecResult::ended(Outcome::Cancelled)
            })
        }
    }

    let gone_at = Arc::new(Mutex::new(None));
    let s = Scheduler::start_with_runner(
        SchedulerConfig::default(),
        Arc::new(SystemClock),
        Arc::new(Stuck(Arc::clone(&gone_at))),
    );
    let spec = job("stuck", "command = [\"true\"]");
    s.apply(create_plan(&[&spec]), "rev1").await.unwrap();
    s.trigger(&spec.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let report = s.shutdown(Duration::ZERO).await;
    let returned = Instant::now();
    assert_eq!(report.abandoned.len(), 1, "{report:?}");
    let gone = gone_at
        .lock()
        .unwrap()
        .expect("the run's own task is gone when shutdown returns");
    assert!(gone <= returned);
    // Bounded: the wait ends at the reap bound whatever the task does.
    assert!(returned - gone < SHUTDOWN_REAP);
}
