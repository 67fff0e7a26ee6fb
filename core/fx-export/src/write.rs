//! Writing the output folder: each file to a temporary name, synced, then renamed over its final
//! name, so a reader (or a crash) never sees a half-written file, and a failure leaves the files
//! already there as they were.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Creates `out` when missing and writes every (file name, bytes) into it; returns the paths.
pub fn all(out: &Path, files: &[(String, Vec<u8>)]) -> Result<Vec<PathBuf>> {
    if out.exists() && !out.is_dir() {
        bail!("{} exists and is not a directory", out.display());
    }
    fs::create_dir_all(out).with_context(|| format!("creating the output folder {}", out.display()))?;
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        written.push(atomic(out, name, bytes)?);
    }
    // The renames themselves are durable once the folder is synced (best effort: not on every OS).
    if let Ok(d) = fs::File::open(out) {
        let _ = d.sync_all();
    }
    Ok(written)
}

fn atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    // A name may hold sub-folders ("seeds/<setting>/<chart>.png").
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fx_run::write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
