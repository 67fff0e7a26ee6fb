//! `fx-tui export` / `fx-tui report` and the control socket's "export": charts and tables from run
//! directories (the fx-export library).

use anyhow::Result;
use std::path::Path;

/// Writes the run's charts and tables into `out`; returns how many files were written.
pub fn export_run(run_dir: &Path, out: &Path) -> Result<usize> {
    let _ = (run_dir, out);
    anyhow::bail!("exporter being wired")
}
