//! `fx-tui export` / `fx-tui report` and the control socket's "export": charts and tables from run
//! directories (the fx-export library).

use anyhow::Result;
use std::path::{Path, PathBuf};

/// Writes the run's charts (teacher and student) and tables into `out`; returns how many files.
pub fn export_run(run_dir: &Path, out: &Path) -> Result<usize> {
    let summary = fx_export::export(run_dir, out, &fx_export::ExportOptions::default().with_student())?;
    Ok(summary.files.len())
}

pub fn print_export(run_dir: &Path, out: &Path, student: bool) -> Result<()> {
    let mut opts = fx_export::ExportOptions::default();
    if student {
        opts = opts.with_student();
    }
    let s = fx_export::export(run_dir, out, &opts)?;
    println!("{}: {} charts after epoch {} → {}", s.name, s.charts, s.last_epoch, out.display());
    for f in &s.files {
        println!("  {}", f.display());
    }
    for w in &s.warnings {
        println!("  warning: {w}");
    }
    Ok(())
}

pub fn print_report(runs: &[PathBuf], out: &Path) -> Result<()> {
    let s = fx_export::report(runs, out)?;
    println!("{} runs: {}", s.runs.len(), s.runs.join(", "));
    println!("keys that differ: {}", if s.differing.is_empty() { "none".to_string() } else { s.differing.join(", ") });
    for f in &s.files {
        println!("  {}", f.display());
    }
    for w in &s.warnings {
        println!("  warning: {w}");
    }
    Ok(())
}
