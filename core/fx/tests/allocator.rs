//! `fx::keep_freed_memory`: after it, an activation-sized block comes from malloc's heap (kept
//! and reused between steps) instead of a fresh mapping that the kernel must fault in again on
//! every step. Its own test binary: the settings are process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn large_blocks_come_from_the_heap_once_freed_memory_is_kept() {
    // Whether malloc serves a block of `bytes` with a mapping of its own: glibc counts the bytes
    // it holds in such mappings (hblkhd).
    fn mmapped(bytes: usize) -> bool {
        // SAFETY: malloc/free of a block this function owns; mallinfo2 only reads statistics.
        unsafe {
            let before = libc::mallinfo2().hblkhd;
            // black_box: the block must really be allocated (LLVM may drop an unused malloc/free pair).
            let p = std::hint::black_box(libc::malloc(bytes));
            assert!(!p.is_null());
            let mapped = libc::mallinfo2().hblkhd >= before + bytes;
            libc::free(p);
            mapped
        }
    }
    // 48 MiB: above glibc's default threshold even after its dynamic raise (at most 32 MiB), so
    // mapped by default whatever this process freed before; below the 64 MiB of the heap that
    // serves a thread other than the main one (tests run on such threads; so may libtorch's work).
    let block = 48 << 20;
    assert!(mmapped(block), "by default a 48 MiB block is mapped afresh");
    fx::keep_freed_memory();
    assert!(!mmapped(block), "after keep_freed_memory a 48 MiB block comes from the heap");
    // Once freed, it stays in the process for the next step: the heap is not trimmed below it
    // (glibc's default trims a free top above twice the mmap threshold).
    // SAFETY: mallinfo2 only reads malloc's statistics.
    let heap = unsafe { libc::mallinfo2() };
    assert!(heap.fordblks >= block, "the freed block is kept: {} free bytes in the heap", heap.fordblks);
}
