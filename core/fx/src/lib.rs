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

/// Panics unless libtorch's CUDA part was linked (the `--no-as-needed -ltorch` link arguments):
/// without it, a CUDA machine would silently train on the CPU.
pub fn assert_cuda_linked() {
    assert!(
        tch::utils::has_cudart(),
        "libtorch was linked without its CUDA part (tch::utils::has_cudart() is false): the build must pass \
         -Wl,--no-as-needed -ltorch (see build/link_libtorch.rs)"
    );
}
