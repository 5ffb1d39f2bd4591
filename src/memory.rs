//! The daemon's allocator settings.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core) and keeps what is freed in it for reuse. A daemon whose tokio
//! workers and blocking threads take turns building large, short-lived
//! things (a reconcile of 100,000 jobs, a 30 MB `/api/v1/state` answer)
//! ends up holding the peak of every arena at once: measured at 50,000
//! jobs, RSS went from 116 MB after the first apply to 320 MB after a few
//! API reads, and a million short runs grew it by 13% (3% with one arena).
//! Fewer arenas bound that; the daemon allocates rarely enough that the
//! lock they share is not a bottleneck.

/// Arenas the daemon uses unless `MALLOC_ARENA_MAX` says otherwise.
pub const MALLOC_ARENAS: i32 = 2;

/// Limits glibc's arenas to [`MALLOC_ARENAS`], before the runtime starts
/// its threads. An operator's own `MALLOC_ARENA_MAX` wins. Returns whether
/// the limit was set (not on other C libraries).
pub fn limit_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(MALLOC_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt only changes a glibc tunable; M_ARENA_MAX is valid
    // at any time and affects arenas created afterwards.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: i32) -> bool {
    false
}

/// Hands freed memory back to the kernel after a one-off peak (a large API
/// answer): glibc keeps it otherwise, and RSS stays at the peak.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it is always safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
