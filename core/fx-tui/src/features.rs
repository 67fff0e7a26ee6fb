//! `fx-tui features`: pooled and per-stage backbone features of images, with what the weights
//! file held.

use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn run(weights: &Path, arch: &str, image_size: i64, device: &str, out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let device = fx::train::resolve_device(device)?;
    let r = fx::features::extract(weights, arch, image_size, inputs, out, device)?;
    println!("weights: {} ({}), {} tensors loaded", weights.display(), r.load.layout, r.load.loaded);
    if !r.load.missing.is_empty() {
        println!("missing (kept at initial values): {}", r.load.missing.join(", "));
    }
    if !r.load.unexpected.is_empty() {
        println!("not part of the backbone (ignored): {}", r.load.unexpected.join(", "));
    }
    println!("{} input(s) → {}", r.inputs, out.display());
    for (name, shape) in &r.outputs {
        println!("  {name:8} {shape:?}");
    }
    Ok(())
}
