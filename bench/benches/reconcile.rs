//! Reconcile at scale: 10,000 jobs in 1,000 team folders (each with a
//! `_defaults.toml`), read from disk, validated, diffed and applied to a
//! running scheduler — cold, and after a one-file change.
//!
//! What is timed is what the daemon (`driftcron run --source folder`) does:
//! the folder read, then `Reconciler::reconcile` (load, plan, apply, and
//! recording what was applied). A one-file change is timed twice: as the
//! watcher triggers it (the folder watch names the changed path; the read
//! starts after the watcher's event, as the daemon's does after its
//! debounce) and as the poll's full walk finds it.
//!
//! Peer measured in the same run: parsing the same files with the `toml`
//! crate alone (the floor for any loader that reads every file).
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench reconcile [-- --jobs N --reps R]`

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use driftcron::reconcile::{Outcome as Reconciled, Reconciler};
use driftcron::scheduler::{
    ExecResult, ExecStart, Outcome, Runner, Scheduler, SchedulerConfig, SystemClock,
};
use driftcron::source::{
    Changes, FolderCache, FolderWatch, read_folder, read_folder_cached, read_folder_changed,
    watch_folder,
};

struct Noop;

impl Runner for Noop {
    fn run(&self, _start: ExecStart<'_>) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
        Box::pin(async { ExecResult::ended(Outcome::Succeeded) })
    }
}

const SCHEDULES: [&str; 6] = [
    "0 3 * * *",
    "*/15 * * * *",
    "30 2 * * MON-FRI",
    "@hourly",
    "0 9 * * MON#1",
    "@every 10m",
];
const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];

fn job(i: usize, variant: usize) -> String {
    format!(
        "description = \"Job {i}: nightly work for shard {s}\"\nschedule = \"{}\"\ncommand = [\"/usr/bin/env\", \"true\", \"--shard\", \"{s}\"]\ntimeout = \"{}m\"\nretries = {}\nlabels = {{ shard = \"s{s}\" }}\n",
        SCHEDULES[(i + variant) % SCHEDULES.len()],
        5 + (i + variant) % 50,
        i % 3,
        s = i % 97,
    )
}

fn generate(root: &Path, jobs: usize) {
    let per_folder = 10;
    for t in 0..jobs.div_ceil(per_folder) {
        let dir = root.join(format!("team{t:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("_defaults.toml"),
            format!(
                "timezone = \"{}\"\nlabels = {{ team = \"team{t}\" }}\nkill_grace = \"20s\"\n",
                ZONES[t % ZONES.len()]
            ),
        )
        .unwrap();
        for j in 0..per_folder {
            let i = t * per_folder + j;
            if i < jobs {
                std::fs::write(dir.join(format!("job{j:02}.toml")), job(i, 0)).unwrap();
            }
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How a read learns what changed.
enum Read<'w> {
    /// Every file is stat'ed (the daemon's start, poll and SIGHUP).
    Full,
    /// The watcher names the changed paths (the daemon's change events).
    Watched(&'w FolderWatch),
}

/// read → load → plan → apply → record, as the daemon does it; returns the
/// time, what was applied, and whether the read used named paths.
async fn reconcile(
    root: &Path,
    rec: &mut Reconciler,
    cache: &mut FolderCache,
    read: Read<'_>,
) -> (Duration, Reconciled, bool) {
    let t = Instant::now();
    let (snap, named) = match read {
        Read::Watched(w) => match w.take_changes() {
            Changes::Paths(p) => (read_folder_changed(root, cache, &p), true),
            Changes::Unknown => (read_folder_cached(root, cache), false),
        },
        Read::Full => (read_folder_cached(root, cache), false),
    };
    let outcome = rec.reconcile(Ok(snap.unwrap()), Utc::now()).await;
    (t.elapsed(), outcome, named)
}

/// Waits for the watcher's event about a change, then as long again as the
/// daemon's debounce, so the read starts where the daemon's does.
async fn settle(w: &mut FolderWatch) {
    tokio::time::timeout(Duration::from_secs(10), w.nudges.recv())
        .await
        .expect("the watcher reports the change");
    tokio::time::sleep(Duration::from_millis(150)).await;
    while w.nudges.try_recv().is_ok() {}
}

fn updated(o: &Reconciled) -> usize {
    match o {
        Reconciled::Applied {
            created,
            updated,
            deleted,
        } => created + updated + deleted,
        other => panic!("not applied: {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let jobs = arg("--jobs", 10_000);
    let reps = arg("--reps", 5).max(1);
    // The allocator as `driftcron run` sets it up, before any thread.
    driftcron::memory::tune_allocator();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("schedules");
    generate(&root, jobs);
    if jobs > 10_000 {
        // The default limit; the reconciler takes it from the settings.
        std::fs::write(
            root.join("driftcron.toml"),
            format!("[limits]\nmax_jobs = {jobs}\n"),
        )
        .unwrap();
    }
    // A repository's files are older than the folder cache's racy-clean
    // window (files changed within a second of a walk are re-read).
    std::thread::sleep(Duration::from_millis(2100));
    eprintln!(
        "[reconcile] {jobs} jobs in {} folders, {reps} repetitions",
        jobs.div_ceil(10)
    );

    let (mut cold, mut one, mut polled, mut peer) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut named = 0;
    for rep in 0..reps {
        rt.block_on(async {
            let sched = Arc::new(Scheduler::start_with_runner(
                SchedulerConfig::default(),
                Arc::new(SystemClock),
                Arc::new(Noop),
            ));
            let mut rec = Reconciler::new(sched.clone());
            let mut cache = FolderCache::default();
            // As the daemon: the watch starts before the first (full) read.
            let mut watch = watch_folder(&root).unwrap();
            let _ = watch.take_changes();
            let (t_cold, created, _) = reconcile(&root, &mut rec, &mut cache, Read::Full).await;
            assert_eq!(updated(&created), jobs);
            cold.push(t_cold);
            // One file changes (and the rest are older than the racy-clean
            // window, as in a real repository).
            let file = root.join("team0000/job00.toml");
            std::fs::write(&file, job(0, rep + 1)).unwrap();
            settle(&mut watch).await;
            let (t_one, changed, was_named) =
                reconcile(&root, &mut rec, &mut cache, Read::Watched(&watch)).await;
            assert_eq!(updated(&changed), 1);
            named += usize::from(was_named);
            one.push(t_one);
            // The same change found by the poll's full walk.
            std::fs::write(&file, job(0, 0)).unwrap();
            let (t_poll, changed, _) = reconcile(&root, &mut rec, &mut cache, Read::Full).await;
            assert_eq!(updated(&changed), 1);
            polled.push(t_poll);
            sched.shutdown(Duration::from_secs(1)).await;
        });
        // Peer: parse every file with the toml crate alone.
        let t = Instant::now();
        let snap = read_folder(&root).unwrap();
        let mut n = 0;
        for f in &snap.files {
            let v: toml::Table = toml::from_str(std::str::from_utf8(&f.bytes).unwrap()).unwrap();
            n += v.len();
        }
        assert!(n > 0);
        peer.push(t.elapsed());
    }
    let (c, o, f, p) = (median(cold), median(one), median(polled), median(peer));
    println!(
        "reconcile of {jobs} jobs in {} folders (median of {reps}):",
        jobs.div_ceil(10)
    );
    println!(
        "  cold read+load+plan+apply          {:8.1} ms   target <= 1000 ms   ({:.1}x the toml-only parse)",
        ms(c),
        ms(c) / ms(p)
    );
    println!(
        "  one-file change, watched           {:8.1} ms   target <=   50 ms   ({:.1}x the toml-only parse; {named} of {reps} reads used the named path)",
        ms(o),
        ms(o) / ms(p)
    );
    println!(
        "  one-file change, poll (full walk)  {:8.1} ms                       ({:.1}x the toml-only parse)",
        ms(f),
        ms(f) / ms(p)
    );
    println!("  peer: read + toml parse            {:8.1} ms", ms(p));
}
