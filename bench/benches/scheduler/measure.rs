//! Measurement primitives shared by every implementation: the window gate,
//! a fixed-size lateness histogram (no per-sample storage, so a million
//! fires cost nothing extra), and readings from `/proc/self`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub const US_PER_S: i64 = 1_000_000;

/// 10 µs buckets below 10 ms, where the good schedulers live.
const FINE_US: u64 = 10;
const FINE_N: usize = 1_000;
/// 1 ms buckets from 0 to 60 s; later fires land in `OVERFLOW`.
const COARSE_N: usize = 60_000;

static FINE: [AtomicU64; FINE_N] = [const { AtomicU64::new(0) }; FINE_N];
static COARSE: [AtomicU64; COARSE_N] = [const { AtomicU64::new(0) }; COARSE_N];
static OVERFLOW: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicU64 = AtomicU64::new(0);
static EARLY: AtomicU64 = AtomicU64::new(0);
static MAX_US: AtomicU64 = AtomicU64::new(0);

/// Slots `[START, END)` (µs since the epoch) are measured; before the window
/// opens nothing is, and after it closes nothing more is.
static START_US: AtomicI64 = AtomicI64::new(i64::MAX);
static END_US: AtomicI64 = AtomicI64::new(i64::MIN);
static SLOTS: AtomicU32 = AtomicU32::new(0);
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Per-job fire counters, for schedulers whose callbacks are not told which
/// slot they run for (tokio-cron-scheduler).
static NTH: OnceLock<Box<[AtomicU32]>> = OnceLock::new();

/// Wall-clock time in µs since the epoch (schedules are wall-clock).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Sleeps the calling OS thread until the wall clock reads `at_us`.
pub fn sleep_until_us(at_us: i64) {
    loop {
        let left = at_us - now_us();
        if left <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(left as u64));
    }
}

/// Touches every page the harness will write during the run, so the
/// baseline RSS already includes them and "bytes per job" is the
/// scheduler's alone.
pub fn prefault(per_job_counters: usize) {
    for b in FINE.iter().chain(COARSE.iter()) {
        b.store(0, Relaxed);
    }
    if per_job_counters > 0 {
        let nth: Box<[AtomicU32]> = (0..per_job_counters).map(|_| AtomicU32::new(0)).collect();
        let _ = NTH.set(nth);
    }
}

/// Opens the window: `slots` whole seconds starting at `start_us`.
pub fn open_window(start_us: i64, slots: u32) {
    SLOTS.store(slots, Relaxed);
    END_US.store(start_us + i64::from(slots) * US_PER_S, Relaxed);
    START_US.store(start_us, Relaxed);
}

/// Measures every slot from now on (soak mode).
pub fn open_forever() {
    SLOTS.store(u32::MAX, Relaxed);
    END_US.store(i64::MAX, Relaxed);
    START_US.store(i64::MIN, Relaxed);
}

pub fn close_window() {
    CLOSED.store(true, Relaxed);
}

/// A fire for a known slot (the scheduler says which).
#[inline]
pub fn record_slot(slot_us: i64, fired_us: i64) {
    if CLOSED.load(Relaxed) || slot_us < START_US.load(Relaxed) || slot_us >= END_US.load(Relaxed) {
        return;
    }
    record(fired_us - slot_us);
}

/// A fire of job `job` whose slot is not known: the k-th fire inside the
/// window (by fire time) is taken as the fire for the window's k-th second.
/// A skipped slot thus shows as a missing fire and as later fires of that
/// job being a second (or more) late.
#[inline]
pub fn record_nth(job: usize, fired_us: i64) {
    let start = START_US.load(Relaxed);
    if CLOSED.load(Relaxed) || fired_us < start || fired_us >= END_US.load(Relaxed) {
        return;
    }
    let Some(nth) = NTH.get().and_then(|n| n.get(job)) else {
        return;
    };
    let k = nth.fetch_add(1, Relaxed);
    if k >= SLOTS.load(Relaxed) {
        return;
    }
    record(fired_us - (start + i64::from(k) * US_PER_S));
}

/// Fires recorded so far.
pub fn recorded() -> u64 {
    COUNT.load(Relaxed)
}

fn record(late_us: i64) {
    COUNT.fetch_add(1, Relaxed);
    let late = if late_us < 0 {
        EARLY.fetch_add(1, Relaxed);
        0
    } else {
        late_us as u64
    };
    MAX_US.fetch_max(late, Relaxed);
    let fine = (late / FINE_US) as usize;
    if fine < FINE_N {
        FINE[fine].fetch_add(1, Relaxed);
    } else if let Some(b) = COARSE.get((late / 1_000) as usize) {
        b.fetch_add(1, Relaxed);
    } else {
        OVERFLOW.fetch_add(1, Relaxed);
    }
}

/// What the histogram says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lateness {
    pub count: u64,
    /// Fires before their slot (counted as 0 ms late).
    pub early: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Reads the histogram. Percentiles are bucket upper edges (10 µs below
/// 10 ms, 1 ms above), capped at the maximum, which is exact.
pub fn lateness() -> Lateness {
    let count = COUNT.load(Relaxed);
    let buckets = || {
        let fine = FINE
            .iter()
            .enumerate()
            .map(|(i, b)| ((i as u64 + 1) * FINE_US, b.load(Relaxed)));
        // Coarse buckets below 10 ms are never written.
        let coarse = COARSE
            .iter()
            .enumerate()
            .map(|(i, b)| ((i as u64 + 1) * 1_000, b.load(Relaxed)));
        fine.chain(coarse)
    };
    let pct = |p: f64| -> f64 {
        if count == 0 {
            return 0.0;
        }
        let rank = ((p * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (edge_us, n) in buckets() {
            seen += n;
            if seen >= rank {
                return edge_us.min(MAX_US.load(Relaxed)) as f64 / 1_000.0;
            }
        }
        // In the overflow bucket: report the maximum.
        MAX_US.load(Relaxed) as f64 / 1_000.0
    };
    Lateness {
        count,
        early: EARLY.load(Relaxed),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: MAX_US.load(Relaxed) as f64 / 1_000.0,
    }
}

fn sysconf(name: libc::c_int) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 { v as u64 } else { 0 }
}

/// Resident set size in bytes (`/proc/self/statm`, second field).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * sysconf(libc::_SC_PAGESIZE)
}

/// CPU time (user + system, all threads) in seconds (`/proc/self/stat`).
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: field 3 (state) is index 0, so utime (14) and stime (15) are
    // indexes 11 and 12.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    let ticks: u64 = f.iter().sum();
    ticks as f64 / sysconf(libc::_SC_CLK_TCK).max(1) as f64
}

/// Bytes glibc has handed out and not had back: in-use heap chunks plus
/// mapped blocks (`mallinfo2`), which reading does not disturb. Chunks in
/// glibc's per-thread caches count as in use.
pub fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads glibc's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Gives freed heap memory back to the kernel, so setup garbage (TOML text,
/// parse trees) does not count as the scheduler's memory.
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
