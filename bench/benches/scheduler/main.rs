//! Side-by-side scheduler benchmark: driftcron, tokio-cron-scheduler,
//! apalis-cron and a bare min-heap dispatcher, N jobs each firing every
//! second on the same boundary.
//!
//! `cargo bench --manifest-path bench/Cargo.toml --bench scheduler -- [OPTIONS]`
//!
//! Each (implementation, N) runs in a child process (this binary re-run
//! with `--child`), so its RSS and CPU time are its own; the parent kills
//! a child that overruns and reports it. See bench/README.md.

mod impls;
mod measure;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use impls::Impl;
use measure::US_PER_S;

const USAGE: &str = "\
usage: cargo bench --manifest-path bench/Cargo.toml --bench scheduler -- [OPTIONS]

  --window SECS         measured window per run (default 10)
  --jobs LIST           job counts, comma-separated (default 1000,10000,100000)
  --impl LIST           driftcron,tokio-cron-scheduler,apalis-cron,heap,heap-spawn,heap-lanes
                        (default: all)
  --grace SECS          time after the window for late fires to land (default 2)
  --setup-timeout SECS  a run whose setup takes longer is killed (default 120)
  --json                one JSON object per line instead of a table
  --soak                instead: 1,000,000 driftcron executions, RSS flatness
  --idle                instead: driftcron's CPU and thread wake-ups over the
                        window with --jobs jobs that are not due (yearly)
  --soak-jobs N         soak: jobs (default 1000)
  --soak-every DUR      soak: `@every` period (default 100ms)
  --soak-execs N        soak: executions to reach (default 1000000)
  --soak-read full|counters
                        soak: what each reading asks the scheduler for: its
                        full state, every job with its outcome ring
                        (default), or the counters alone
  --soak-trim           soak: `malloc_trim(0)` after setup and after each
                        reading, as the daemon's `/api/v1/state` does after
                        its answer (default: never, as the daemon between
                        runs)";

/// Seconds between the end of setup and the window's first slot (at
/// least; the window starts on a whole second).
const WARMUP_US: i64 = 1_500_000;

/// Extra time a child gets past its window before it is called hung.
const RUN_SLACK: Duration = Duration::from_secs(60);

/// Time the soak child gets once set up.
const SOAK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Executions after which the soak reads RSS (those up to its target; the
/// first is the reference, taken once every job's outcome ring is full).
const SOAK_CHECKPOINTS: [u64; 7] = [
    10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
];

#[derive(Debug, Clone)]
struct Opts {
    window: u32,
    grace: u32,
    jobs: Vec<usize>,
    impls: Vec<Impl>,
    json: bool,
    soak: bool,
    idle: bool,
    setup_timeout: Duration,
    soak_jobs: usize,
    soak_every: String,
    soak_execs: u64,
    /// Soak readings ask for counters only (`--soak-read counters`).
    soak_counters_only: bool,
    /// The soak trims the heap after setup and after each reading.
    soak_trim: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            window: 10,
            grace: 2,
            jobs: vec![1_000, 10_000, 100_000],
            impls: Impl::ALL.to_vec(),
            json: false,
            soak: false,
            idle: false,
            setup_timeout: Duration::from_secs(120),
            soak_jobs: 1_000,
            soak_every: "100ms".into(),
            soak_execs: 1_000_000,
            soak_counters_only: false,
            soak_trim: false,
        }
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    fn num<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T, String> {
        v.and_then(|s| s.replace('_', "").parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--window" => o.window = num(a, it.next())?,
            "--grace" => o.grace = num(a, it.next())?,
            "--setup-timeout" => o.setup_timeout = Duration::from_secs(num(a, it.next())?),
            "--jobs" => {
                let list = it.next().ok_or("--jobs needs a list")?;
                o.jobs = list
                    .split(',')
                    .map(|s| num("--jobs", Some(&s.trim().to_string())))
                    .collect::<Result<_, _>>()?;
            }
            "--impl" => {
                let list = it.next().ok_or("--impl needs a list")?;
                o.impls = list
                    .split(',')
                    .map(|s| Impl::parse(s.trim()).ok_or(format!("unknown implementation {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--json" => o.json = true,
            "--soak" => o.soak = true,
            "--idle" => o.idle = true,
            "--soak-jobs" => o.soak_jobs = num(a, it.next())?,
            "--soak-every" => o.soak_every = it.next().ok_or("--soak-every needs a value")?.clone(),
            "--soak-execs" => o.soak_execs = num(a, it.next())?,
            "--soak-read" => {
                o.soak_counters_only = match it.next().map(String::as_str) {
                    Some("full") => false,
                    Some("counters") => true,
                    _ => return Err("--soak-read needs full or counters".into()),
                }
            }
            "--soak-trim" => o.soak_trim = true,
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.window == 0 || o.jobs.contains(&0) || o.impls.is_empty() {
        return Err("window, job counts and implementations must be non-empty".into());
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child") => child(&args[1..]),
        Some("--child-soak") => child_soak(&args[1..]),
        Some("--child-idle") => child_idle(&args[1..]),
        _ => {}
    }
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if opts.idle {
        parent_idle(&opts);
    } else if opts.soak {
        parent_soak(&opts);
    } else {
        parent_bench(&opts);
    }
}

// --- results -----------------------------------------------------------

/// One (implementation, N) result: the JSON line, and what the table shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Row {
    #[serde(rename = "impl")]
    imp: String,
    jobs: usize,
    /// Fires recorded for slots in the window / jobs × window seconds.
    fire_ratio: f64,
    late_p50_ms: Option<f64>,
    late_p99_ms: Option<f64>,
    late_max_ms: Option<f64>,
    rss_bytes_per_job: Option<f64>,
    /// The same, read once set up (after a heap trim) and before the first
    /// fire: what the jobs cost at rest, without what the runs left behind.
    rss_setup_bytes_per_job: Option<f64>,
    cpu_pct: Option<f64>,
    setup_s: Option<f64>,
    fires: u64,
    expected: u64,
    /// Fires before their slot (counted as 0 ms late).
    early: u64,
    late_p99_vs_heap: Option<f64>,
    note: Option<String>,
}

impl Row {
    fn failed(imp: Impl, jobs: usize, window: u32, setup_s: Option<f64>, note: String) -> Row {
        Row {
            imp: imp.name().into(),
            jobs,
            expected: jobs as u64 * u64::from(window),
            setup_s,
            note: Some(note),
            ..Row::default()
        }
    }
}

fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}

// --- child side ----------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn emit(tag: &str, body: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{tag} {body}");
    let _ = out.flush();
}

/// `--child IMPL JOBS WINDOW GRACE`: one measured run; prints `SETUP secs`
/// then `RESULT {json}` and exits without shutting the scheduler down.
fn child(args: &[String]) -> ! {
    let imp = args
        .first()
        .and_then(|s| Impl::parse(s))
        .expect("child impl");
    let arg = |i: usize| -> u64 { args.get(i).and_then(|s| s.parse().ok()).expect("child arg") };
    let (n, window, grace) = (arg(1) as usize, arg(2) as u32, arg(3) as i64);

    // driftcron as `driftcron run` sets it up: its allocator settings come
    // before any thread (the peers run as they ship).
    if imp == Impl::Driftcron {
        driftcron::memory::tune_allocator();
    }
    measure::prefault(if imp.knows_slot() { 0 } else { n });
    let rt = runtime();
    rt.block_on(tokio::task::yield_now());
    let rss_base = measure::rss_bytes();

    let t0 = Instant::now();
    let keep = match rt.block_on(impls::setup(imp, n)) {
        Ok(k) => k,
        Err(e) => {
            let row = Row::failed(imp, n, window, Some(t0.elapsed().as_secs_f64()), e);
            emit("RESULT", &serde_json::to_string(&row).expect("json"));
            std::process::exit(0);
        }
    };
    let setup_s = t0.elapsed().as_secs_f64();
    measure::trim_heap();
    let rss_setup = measure::rss_bytes();
    emit("SETUP", &format!("{setup_s:.3}"));

    let w0 = (measure::now_us() + WARMUP_US).div_euclid(US_PER_S) * US_PER_S + US_PER_S;
    measure::open_window(w0, window);
    measure::sleep_until_us(w0);
    let (cpu0, wall0) = (measure::cpu_secs(), Instant::now());
    let w_end = w0 + i64::from(window) * US_PER_S;
    measure::sleep_until_us(w_end);
    let (cpu, wall) = (measure::cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    measure::sleep_until_us(w_end + grace * US_PER_S);
    measure::close_window();
    let rss_after = measure::rss_bytes();
    let late = measure::lateness();

    let expected = n as u64 * u64::from(window);
    let row = Row {
        imp: imp.name().into(),
        jobs: n,
        fire_ratio: round(late.count as f64 / expected as f64, 4),
        late_p50_ms: Some(late.p50_ms),
        late_p99_ms: Some(late.p99_ms),
        late_max_ms: Some(round(late.max_ms, 3)),
        rss_bytes_per_job: Some(round((rss_after as f64 - rss_base as f64) / n as f64, 1)),
        rss_setup_bytes_per_job: Some(round((rss_setup as f64 - rss_base as f64) / n as f64, 1)),
        cpu_pct: Some(round(cpu / wall * 100.0, 1)),
        setup_s: Some(round(setup_s, 3)),
        fires: late.count,
        expected,
        early: late.early,
        late_p99_vs_heap: None,
        note: impls::note(imp),
    };
    emit("RESULT", &serde_json::to_string(&row).expect("json"));
    // The peers have no bounded shutdown; the process exit is the cleanup.
    drop(keep);
    std::process::exit(0);
}

/// One soak reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// `state().counters.succeeded` when it was taken.
    executions: u64,
    /// RSS as it stands.
    rss: u64,
    /// Bytes glibc has handed out and not had back (`mallinfo2`: in-use
    /// heap chunks plus mapped blocks): live memory, read without touching
    /// the heap.
    heap_in_use: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SoakResult {
    #[serde(rename = "impl")]
    imp: String,
    jobs: usize,
    every: String,
    setup_s: f64,
    /// Taken after 10,000 executions, then at 50k, 100k, 200k, 500k and the
    /// end (those below the target).
    checkpoints: Vec<Checkpoint>,
    executions: u64,
    /// `--soak-trim`: `malloc_trim(0)` after setup and after each reading.
    trimmed: bool,
    /// Last over first reading.
    rss_ratio: f64,
    heap_ratio: f64,
    wall_s: f64,
    executions_per_s: f64,
    late_p50_ms: f64,
    late_p99_ms: f64,
    late_max_ms: f64,
    fires: u64,
    skipped_forbid: u64,
    missed_misfire: u64,
    global_queue_overflow: u64,
}

/// `--child-soak JOBS EVERY EXECS READ TRIM`: driftcron alone, until EXECS
/// executions have succeeded, reading RSS at checkpoints; READ is `full`
/// or `counters` (see `--soak-read`), TRIM `trim` or `keep` (`--soak-trim`).
fn child_soak(args: &[String]) -> ! {
    let n: usize = args
        .first()
        .and_then(|s| s.parse().ok())
        .expect("soak jobs");
    let every = args.get(1).cloned().expect("soak every");
    let target: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .expect("soak execs");
    let filter = || match args.get(3).map(String::as_str) {
        Some("counters") => driftcron::scheduler::JobFilter::None,
        _ => driftcron::scheduler::JobFilter::All,
    };
    // The daemon never trims its heap between runs; the harness does so
    // only when asked (see `--soak-trim`), since a trim changes what the
    // next reading sees: free pages it returned are faulted back in, a
    // varying number of them, as runs reuse the holes they were in.
    let trim = args.get(4).map(String::as_str) == Some("trim");

    driftcron::memory::tune_allocator();
    measure::prefault(0);
    let rt = runtime();
    let t0 = Instant::now();
    let sched = match rt.block_on(impls::driftcron(n, &format!("@every {every}"))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak setup failed: {e}");
            std::process::exit(1);
        }
    };
    let setup_s = t0.elapsed().as_secs_f64();
    if trim {
        measure::trim_heap();
    }
    measure::open_forever();
    emit("SETUP", &format!("{setup_s:.3}"));

    // The runner's own count (an atomic) spots each checkpoint within
    // 10 ms, so the state is asked for only there: every reading follows
    // one (dropped) snapshot, the same size each time once the outcome
    // rings are full (or, with `--soak-read counters`, only the counters:
    // the full snapshot of 1,000 jobs is itself about 0.9 MiB, in three
    // blocks).
    let started = Instant::now();
    let (checkpoints, state, wall_s) = rt.block_on(async {
        let mut checkpoints = Vec::new();
        let marks = SOAK_CHECKPOINTS.iter().copied().filter(|&c| c < target);
        for mark in marks.chain([target]) {
            while measure::recorded() < mark {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let state = loop {
                let state = sched.state_of(filter()).await.expect("scheduler running");
                if state.counters.succeeded >= mark {
                    break state;
                }
                drop(state);
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let wall_s = started.elapsed().as_secs_f64();
            let counters = state.counters.clone();
            drop(state);
            checkpoints.push(Checkpoint {
                executions: counters.succeeded,
                rss: measure::rss_bytes(),
                heap_in_use: measure::heap_in_use(),
            });
            if trim {
                measure::trim_heap();
            }
            if mark == target {
                return (checkpoints, counters, wall_s);
            }
        }
        unreachable!("the target is the last mark")
    });
    let late = measure::lateness();
    let c = &state;
    let (first, last) = (&checkpoints[0], &checkpoints[checkpoints.len() - 1]);
    let res = SoakResult {
        imp: "driftcron-soak".into(),
        jobs: n,
        every,
        setup_s: round(setup_s, 3),
        executions: c.succeeded,
        trimmed: trim,
        rss_ratio: round(last.rss as f64 / first.rss.max(1) as f64, 4),
        heap_ratio: round(last.heap_in_use as f64 / first.heap_in_use.max(1) as f64, 4),
        wall_s: round(wall_s, 2),
        executions_per_s: round(c.succeeded as f64 / wall_s, 0),
        late_p50_ms: late.p50_ms,
        late_p99_ms: late.p99_ms,
        late_max_ms: round(late.max_ms, 3),
        fires: c.fires,
        skipped_forbid: c.skipped_forbid,
        missed_misfire: c.missed_misfire,
        global_queue_overflow: c.global_queue_overflow,
        checkpoints,
    };
    emit("RESULT", &serde_json::to_string(&res).expect("json"));
    drop(sched);
    std::process::exit(0);
}

// --- parent side ---------------------------------------------------------

enum ChildEnd {
    /// The `RESULT` line's JSON, and the setup time seen.
    Result(String),
    /// Killed or died; why, and the setup time if setup finished.
    Failed(String, Option<f64>),
}

/// Runs this binary with `args`, reading its `SETUP`/`RESULT` lines, and
/// kills it (by its own pid) if setup or the run overruns.
fn run_child(args: &[String], setup_timeout: Duration, run_timeout: Duration) -> ChildEnd {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = match Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return ChildEnd::Failed(format!("could not start child: {e}"), None),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut deadline = Instant::now() + setup_timeout;
    let mut setup_s: Option<f64> = None;
    let end = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(s) = line.strip_prefix("SETUP ") {
                    setup_s = s.trim().parse().ok();
                    deadline = Instant::now() + run_timeout;
                } else if let Some(json) = line.strip_prefix("RESULT ") {
                    break ChildEnd::Result(json.to_string());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let why = match setup_s {
                    None => format!("killed: setup exceeded {} s", setup_timeout.as_secs()),
                    Some(_) => format!(
                        "killed: run not finished {} s after setup",
                        run_timeout.as_secs()
                    ),
                };
                break ChildEnd::Failed(why, setup_s);
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_or("unknown".into(), |st| st.to_string());
                return ChildEnd::Failed(
                    format!("child exited without a result ({status})"),
                    setup_s,
                );
            }
        }
    };
    let _ = child.wait();
    end
}

fn parent_bench(o: &Opts) {
    let started = Instant::now();
    let run_timeout = Duration::from_secs(u64::from(o.window + o.grace) + 3) + RUN_SLACK;
    let mut rows: Vec<Row> = Vec::new();
    for &n in &o.jobs {
        for &imp in &o.impls {
            eprintln!("[bench] {} with {n} jobs ...", imp.name());
            let args = [
                "--child".to_string(),
                imp.name().to_string(),
                n.to_string(),
                o.window.to_string(),
                o.grace.to_string(),
            ];
            let t = Instant::now();
            let row = match run_child(&args, o.setup_timeout, run_timeout) {
                ChildEnd::Result(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                    Row::failed(imp, n, o.window, None, format!("bad child output: {e}"))
                }),
                ChildEnd::Failed(why, setup_s) => Row::failed(imp, n, o.window, setup_s, why),
            };
            eprintln!(
                "[bench]   done in {:.1} s (setup {}){}",
                t.elapsed().as_secs_f64(),
                row.setup_s.map_or("-".into(), |s| format!("{s:.2} s")),
                row.note
                    .as_ref()
                    .map_or(String::new(), |n| format!(": {n}")),
            );
            rows.push(row);
        }
    }
    // p99 against the bare heap of the same N, same run.
    let heap_p99: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.imp == Impl::Heap.name())
        .filter_map(|r| Some((r.jobs, r.late_p99_ms?)))
        .collect();
    for r in &mut rows {
        let base = heap_p99.iter().find(|(n, _)| *n == r.jobs).map(|(_, p)| *p);
        if let (Some(p), Some(b)) = (r.late_p99_ms, base)
            && b > 0.0
        {
            r.late_p99_vs_heap = Some(round(p / b, 2));
        }
    }
    if o.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
    } else {
        print_table(&rows, o.window);
    }
    let cmp = [
        compare(&rows, Impl::Apalis, 100_000),
        compare(&rows, Impl::TokioCron, 10_000),
        compare(&rows, Impl::HeapSpawn, 100_000),
        compare(&rows, Impl::HeapLanes, 100_000),
    ];
    for line in cmp.into_iter().flatten() {
        if o.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    eprintln!(
        "[bench] total wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn opt(v: Option<f64>, places: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.places$}"))
}

fn print_table(rows: &[Row], window: u32) {
    println!(
        "{:<21} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10} {:>9} {:>6} {:>8} {:>8}  note",
        "impl",
        "jobs",
        "fires",
        "p50 ms",
        "p99 ms",
        "max ms",
        "B/job",
        "at rest",
        "cpu%",
        "setup s",
        "p99/heap"
    );
    for r in rows {
        let mut note = r.note.clone().unwrap_or_default();
        if r.imp == Impl::TokioCron.name() && r.late_p99_ms.is_some() {
            note = format!("lateness vs k-th second {note}").trim().to_string();
        }
        if r.early > 0 {
            note = format!("{note} {} early", r.early).trim().to_string();
        }
        println!(
            "{:<21} {:>7} {:>7.4} {:>9} {:>9} {:>9} {:>10} {:>9} {:>6} {:>8} {:>8}  {note}",
            r.imp,
            r.jobs,
            r.fire_ratio,
            opt(r.late_p50_ms, 2),
            opt(r.late_p99_ms, 2),
            opt(r.late_max_ms, 2),
            opt(r.rss_bytes_per_job, 0),
            opt(r.rss_setup_bytes_per_job, 0),
            opt(r.cpu_pct, 1),
            opt(r.setup_s, 2),
            opt(r.late_p99_vs_heap, 2),
        );
    }
    println!(
        "(window {window} s; fires = recorded / jobs × window; B/job after the window, at rest = once set up;\n p99/heap = p99 over the bare heap's at the same N)"
    );
}

/// driftcron against one peer at one N: driftcron's figure over the peer's.
fn compare(rows: &[Row], peer: Impl, n: usize) -> Option<String> {
    let find = |name: &str| rows.iter().find(|r| r.imp == name && r.jobs == n);
    let (d, p) = (find(Impl::Driftcron.name())?, find(peer.name())?);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    };
    Some(format!(
        "driftcron vs {} @ {n} jobs: fires {:.4} vs {:.4}; p99 {} vs {} ms ({}); \
         bytes/job {} vs {} ({}); cpu {} vs {} % ({})",
        peer.name(),
        d.fire_ratio,
        p.fire_ratio,
        opt(d.late_p99_ms, 2),
        opt(p.late_p99_ms, 2),
        ratio(d.late_p99_ms, p.late_p99_ms),
        opt(d.rss_bytes_per_job, 0),
        opt(p.rss_bytes_per_job, 0),
        ratio(d.rss_bytes_per_job, p.rss_bytes_per_job),
        opt(d.cpu_pct, 1),
        opt(p.cpu_pct, 1),
        ratio(d.cpu_pct, p.cpu_pct),
    ))
}

fn parent_soak(o: &Opts) {
    let started = Instant::now();
    eprintln!(
        "[soak] driftcron: {} jobs @every {} until {} executions ...",
        o.soak_jobs, o.soak_every, o.soak_execs
    );
    let args = [
        "--child-soak".to_string(),
        o.soak_jobs.to_string(),
        o.soak_every.clone(),
        o.soak_execs.to_string(),
        if o.soak_counters_only {
            "counters"
        } else {
            "full"
        }
        .to_string(),
        if o.soak_trim { "trim" } else { "keep" }.to_string(),
    ];
    let json = match run_child(&args, o.setup_timeout, SOAK_TIMEOUT) {
        ChildEnd::Result(json) => json,
        ChildEnd::Failed(why, _) => {
            eprintln!("[soak] failed: {why}");
            std::process::exit(1);
        }
    };
    let r: SoakResult = match serde_json::from_str(&json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[soak] bad child output: {e}");
            std::process::exit(1);
        }
    };
    if o.json {
        println!("{json}");
    } else {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "driftcron soak: {} jobs @every {}, {} executions in {:.1} s ({:.0}/s); readings ask for {}{}",
            r.jobs,
            r.every,
            r.executions,
            r.wall_s,
            r.executions_per_s,
            if o.soak_counters_only {
                "the counters"
            } else {
                "the full state"
            },
            if r.trimmed {
                "; heap trimmed after setup and each reading"
            } else {
                ""
            }
        );
        let first = r.checkpoints.first().cloned().unwrap_or_default();
        println!("  executions        RSS MiB  (x first)  heap in use MiB  (x first)");
        for cp in &r.checkpoints {
            println!(
                "  {:>10} {:>14.2} {:>10.4} {:>16.3} {:>10.4}",
                cp.executions,
                mib(cp.rss),
                cp.rss as f64 / first.rss.max(1) as f64,
                mib(cp.heap_in_use),
                cp.heap_in_use as f64 / first.heap_in_use.max(1) as f64,
            );
        }
        println!(
            "  RSS ratio {} / {} executions: {:.4} (heap in use {:.4})",
            r.executions, first.executions, r.rss_ratio, r.heap_ratio
        );
        println!(
            "  lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; fires {}, skipped (forbid) {}, \
             missed {}, queue overflow {}",
            r.late_p50_ms,
            r.late_p99_ms,
            r.late_max_ms,
            r.fires,
            r.skipped_forbid,
            r.missed_misfire,
            r.global_queue_overflow
        );
    }
    eprintln!(
        "[soak] total wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// --- idle ------------------------------------------------------------------

/// A schedule that is not due during any window (midnight, January 1st).
const NOT_DUE: &str = "0 0 0 1 1 *";

/// One idle reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IdleResult {
    #[serde(rename = "impl")]
    imp: String,
    jobs: usize,
    window_s: f64,
    cpu_s: f64,
    cpu_pct: f64,
    /// Context switches of all the process's threads over the window: how
    /// often anything woke up.
    wakeups: u64,
    wakeups_per_s: f64,
}

/// Context switches (voluntary and not) summed over every thread.
fn wakeups() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// `--child-idle JOBS WINDOW`: driftcron with JOBS jobs none of which is
/// due, measured over WINDOW seconds.
fn child_idle(args: &[String]) -> ! {
    let arg = |i: usize| -> u64 { args.get(i).and_then(|s| s.parse().ok()).expect("idle arg") };
    let (n, window) = (arg(0) as usize, arg(1));
    driftcron::memory::tune_allocator();
    let rt = runtime();
    let sched = match rt.block_on(impls::driftcron(n, NOT_DUE)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("idle setup failed: {e}");
            std::process::exit(1);
        }
    };
    emit("SETUP", "0");
    // Let the apply's aftermath settle before measuring.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, wake0, t0) = (measure::cpu_secs(), wakeups(), Instant::now());
    std::thread::sleep(Duration::from_secs(window));
    let (cpu, wake, wall) = (
        measure::cpu_secs() - cpu0,
        wakeups() - wake0,
        t0.elapsed().as_secs_f64(),
    );
    let r = IdleResult {
        imp: "driftcron".into(),
        jobs: n,
        window_s: round(wall, 2),
        cpu_s: round(cpu, 3),
        cpu_pct: round(cpu / wall * 100.0, 3),
        wakeups: wake,
        wakeups_per_s: round(wake as f64 / wall, 2),
    };
    emit("RESULT", &serde_json::to_string(&r).expect("json"));
    drop(sched);
    std::process::exit(0);
}

fn parent_idle(o: &Opts) {
    if !o.json {
        println!("driftcron idle ({} s window, jobs not due):", o.window);
        println!(
            "  {:>8} {:>8} {:>9} {:>10} {:>12}",
            "jobs", "cpu s", "cpu %", "wake-ups", "wake-ups/s"
        );
    }
    for &n in &o.jobs {
        eprintln!("[idle] driftcron with {n} jobs ...");
        let args = [
            "--child-idle".to_string(),
            n.to_string(),
            o.window.to_string(),
        ];
        let timeout = Duration::from_secs(u64::from(o.window)) + RUN_SLACK;
        let json = match run_child(&args, o.setup_timeout, timeout) {
            ChildEnd::Result(json) => json,
            ChildEnd::Failed(why, _) => {
                eprintln!("[idle] {n} jobs failed: {why}");
                continue;
            }
        };
        if o.json {
            println!("{json}");
            continue;
        }
        match serde_json::from_str::<IdleResult>(&json) {
            Ok(r) => println!(
                "  {:>8} {:>8.3} {:>9.3} {:>10} {:>12.2}",
                r.jobs, r.cpu_s, r.cpu_pct, r.wakeups, r.wakeups_per_s
            ),
            Err(e) => eprintln!("[idle] bad child output: {e}"),
        }
    }
}
