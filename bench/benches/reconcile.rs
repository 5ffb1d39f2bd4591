//! Reconcile at scale: 10,000 jobs in 1,000 team folders (each with a
//! `_defaults.toml`), read from disk, validated, diffed and applied to a
//! running scheduler — cold, and after a one-file change.
//!
//! Peer measured in the same run: parsing the same files with the `toml`
//! crate alone (the floor for any loader that reads every file).
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench reconcile [-- --jobs N --reps R]`

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use driftcron::plan::{diff, spec_digest};
use driftcron::scheduler::{
    ExecRequest, ExecResult, Outcome, Runner, Scheduler, SchedulerConfig, SystemClock,
};
use driftcron::source::{FolderCache, read_folder, read_folder_cached};
use driftcron::spec::load::{LoadCache, load_cached};
use driftcron::spec::{JobId, LoadOptions};

struct Noop;

impl Runner for Noop {
    fn run(&self, _req: ExecRequest) -> Pin<Box<dyn Future<Output = ExecResult> + Send>> {
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

/// read → load → diff → apply; returns the time and the new digests.
/// The daemon's path: the folder and load caches persist across reconciles.
async fn reconcile(
    root: &Path,
    sched: &Scheduler,
    applied: &BTreeMap<JobId, u64>,
    rev: &str,
    caches: &mut (FolderCache, LoadCache),
) -> (Duration, BTreeMap<JobId, u64>, usize) {
    let t = Instant::now();
    let snap = read_folder_cached(root, &mut caches.0).unwrap();
    let loaded = load_cached(
        &snap,
        &LoadOptions {
            now: Utc::now(),
            max_jobs: Some(1_000_000),
        },
        &mut caches.1,
    );
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics.first());
    let plan = diff(&loaded.desired.jobs, applied);
    let changed = plan.create.len() + plan.update.len() + plan.delete.len();
    sched.apply(plan, rev).await.unwrap();
    let elapsed = t.elapsed();
    let digests = loaded
        .desired
        .jobs
        .iter()
        .map(|(id, s)| (id.clone(), spec_digest(s)))
        .collect();
    (elapsed, digests, changed)
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("schedules");
    generate(&root, jobs);
    // A repository's files are older than the folder cache's racy-clean
    // window (files changed within a second of a walk are re-read).
    std::thread::sleep(Duration::from_millis(2100));
    eprintln!(
        "[reconcile] {jobs} jobs in {} folders, {reps} repetitions",
        jobs.div_ceil(10)
    );

    let (mut cold, mut one, mut peer) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        rt.block_on(async {
            let sched = Scheduler::start_with_runner(
                SchedulerConfig::default(),
                Arc::new(SystemClock),
                Arc::new(Noop),
            );
            let mut caches = (FolderCache::default(), LoadCache::default());
            let (t_cold, applied, created) =
                reconcile(&root, &sched, &BTreeMap::new(), "cold", &mut caches).await;
            assert_eq!(created, jobs);
            cold.push(t_cold);
            // One file changes (and the rest are older than the racy-clean
            // window, as in a real repository).
            let file = root.join("team0000/job00.toml");
            std::fs::write(&file, job(0, rep + 1)).unwrap();
            let (t_one, _, changed) = reconcile(&root, &sched, &applied, "one", &mut caches).await;
            assert_eq!(changed, 1);
            one.push(t_one);
            std::fs::write(&file, job(0, 0)).unwrap();
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
    let (c, o, p) = (median(cold), median(one), median(peer));
    println!(
        "reconcile of {jobs} jobs in {} folders (median of {reps}):",
        jobs.div_ceil(10)
    );
    println!(
        "  cold read+load+plan+apply  {:8.1} ms   target <= 1000 ms   ({:.1}x the toml-only parse)",
        ms(c),
        ms(c) / ms(p)
    );
    println!(
        "  one-file change            {:8.1} ms   target <=   50 ms   ({:.1}x the toml-only parse)",
        ms(o),
        ms(o) / ms(p)
    );
    println!("  peer: read + toml parse    {:8.1} ms", ms(p));
}
