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

/// Blocks this large or larger that the heap's free space cannot serve are
/// mapped on their own, not carved from a grown heap, and go back to the
/// kernel when freed. `MALLOC_MMAP_THRESHOLD_` or
/// `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES` overrides it.
///
/// glibc starts at 128 KiB but raises the bar to the size of every mapped
/// block freed (up to 32 MiB): after one large snapshot or API answer, the
/// next ones of that size are carved from the heap, whose free space glibc
/// keeps. A daemon read now and then sat at one of two RSS levels half a
/// megabyte apart (1,000 jobs), depending on where the last snapshot had
/// landed. A fixed bar stops the raising. 64 KiB puts the job list of a
/// 1,000-job snapshot (~110 KiB) above it, and the daemon's hot paths
/// (a run starting and ending) allocate far less than that per block.
pub const MMAP_THRESHOLD: usize = 64 * 1024;

/// What [`tune_allocator`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorTuning {
    /// [`MALLOC_ARENAS`] is in force. `false` when the operator set the
    /// arena count, the C library is not glibc, or `mallopt` refused.
    pub arenas: bool,
    /// [`MMAP_THRESHOLD`] is in force; `false` for the same reasons.
    pub mmap_threshold: bool,
}

/// Sets glibc's arena count to [`MALLOC_ARENAS`] and its mapping threshold
/// to [`MMAP_THRESHOLD`], before the runtime starts its threads. An
/// operator's own setting of either wins (see [`operator_sets`]).
pub fn tune_allocator() -> AllocatorTuning {
    AllocatorTuning {
        arenas: !operator_sets("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")
            && mallopt(Param::ArenaMax, MALLOC_ARENAS),
        mmap_threshold: !operator_sets("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")
            && mallopt(
                Param::MmapThreshold,
                i32::try_from(MMAP_THRESHOLD).unwrap_or(i32::MAX),
            ),
    }
}

/// Whether the environment sets a glibc malloc parameter, through its
/// variable (`MALLOC_ARENA_MAX`) or its tunable in `GLIBC_TUNABLES`
/// (`glibc.malloc.arena_max`).
pub fn operator_sets(var: &str, tunable: &str) -> bool {
    std::env::var_os(var).is_some()
        || std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|t| tunables_name(&t.to_string_lossy(), tunable))
}

/// Whether `GLIBC_TUNABLES` (`name=value:name=value`) sets `name`.
fn tunables_name(tunables: &str, name: &str) -> bool {
    tunables
        .split(':')
        .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k == name))
}

enum Param {
    ArenaMax,
    MmapThreshold,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn mallopt(param: Param, value: i32) -> bool {
    let param = match param {
        Param::ArenaMax => libc::M_ARENA_MAX,
        Param::MmapThreshold => libc::M_MMAP_THRESHOLD,
    };
    // SAFETY: mallopt only changes a glibc tunable; both parameters are
    // valid at any time (an arena limit affects arenas created afterwards).
    unsafe { libc::mallopt(param, value) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn mallopt(_param: Param, _value: i32) -> bool {
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

#[cfg(test)]
mod tests {
    use super::tunables_name;

    #[test]
    fn an_operators_tunable_is_found_by_its_exact_name() {
        let t = "glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=131072";
        assert!(tunables_name(t, "glibc.malloc.mmap_threshold"));
        assert!(!tunables_name(t, "glibc.malloc.arena_max"));
        assert!(!tunables_name(t, "glibc.malloc.mmap"));
        assert!(!tunables_name("", "glibc.malloc.arena_max"));
    }
}
