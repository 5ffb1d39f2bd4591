//! The daemon's allocator settings, in a process of their own: glibc's
//! counters are process-wide, and another test's large blocks would move
//! them. Keep this the only test in this file.

/// After a large block is freed, glibc's default carves blocks up to that
/// size from the heap, where their free space stays resident. With the
/// daemon's fixed threshold, a block above it still gets (and gives back)
/// a mapping of its own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_large_block_freed_does_not_pull_the_next_ones_into_the_heap() {
    use driftcron::memory::{MMAP_THRESHOLD, operator_sets, tune_allocator};

    let operator_set = operator_sets("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold");
    let tuning = tune_allocator();
    assert_eq!(tuning.mmap_threshold, !operator_set, "{tuning:?}");
    if operator_set {
        eprintln!("skipped: the environment sets glibc's mmap threshold");
        return;
    }
    // SAFETY: mallinfo2 only reads glibc's counters.
    let mapped = || unsafe { libc::mallinfo2() }.hblkhd;

    let big = vec![1u8; 8 << 20];
    std::hint::black_box(&big);
    drop(big);
    let before = mapped();
    let block = vec![1u8; 4 * MMAP_THRESHOLD];
    std::hint::black_box(&block);
    assert!(
        mapped() >= before + block.len(),
        "a {} KiB block after an 8 MiB one was freed came from the heap \
         (mapped bytes {} -> {})",
        block.len() >> 10,
        before,
        mapped()
    );
    drop(block);
    assert_eq!(mapped(), before, "the block's mapping went back when freed");
}
