//! fx: the Foundation X engine (no UI).
//!
//! Model (Swin backbone + per-dataset heads), schedule (Cyclic + Lock-Release plan), training
//! (student, EMA teacher, consistency, per-group AdamW, freezing), evaluation and the run store.
pub mod amp;
pub mod config;
pub mod dino;
pub mod dist;
pub mod dynlib;
pub mod eval;
pub mod features;
pub mod group;
pub mod head_plugin;
pub mod matcher;
pub mod model;
pub mod optim;
pub mod predict;
pub mod recompute;
pub mod registry;
pub mod schedule;
pub mod store;
pub mod swin;
pub mod train;
pub mod upernet;

/// Keeps freed memory in the process instead of handing it back to the kernel after every step.
///
/// glibc's malloc serves blocks above its mmap threshold with fresh mappings and trims the heap
/// whenever its free top exceeds the trim threshold. A training step frees and re-allocates the
/// same activation-sized blocks every step, so with the defaults each step faults its memory in
/// again: measured on a 2-core CPU, a quarter to a third of the process time went to the kernel,
/// and raising both thresholds to 1 GiB made the training step 1.16x (swin_test, 64 px, batch
/// 100) to 1.3x (Swin-B, 224 px, batch 8) faster at the same peak memory (README, `Measured`).
/// PyTorch users get the same by preloading jemalloc or tcmalloc. libtorch's CPU tensors go
/// through this malloc; CUDA memory has its own caching allocator. On a thread other than the
/// main one glibc's heaps hold at most 64 MiB, so larger blocks allocated there are still
/// mapped. Call it once, first thing in `main` (`tests/allocator.rs` checks both settings).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes malloc's own lock and changes only its tuning parameters.
    unsafe {
        // 1 GiB, or glibc's own maximum (32 MiB on 64-bit) where it refuses more.
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 0 {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Panics unless libtorch's CUDA part was linked (the `--no-as-needed -ltorch` link arguments):
/// without it, a CUDA machine would silently train on the CPU.
pub fn assert_cuda_linked() {
    assert!(
        tch::utils::has_cudart(),
        "libtorch was linked without its CUDA part (tch::utils::has_cudart() is false): the build must pass \
         -Wl,--no-as-needed -ltorch (see build/link_libtorch.rs)"
    );
}
