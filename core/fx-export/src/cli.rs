//! What `export`, `report` and `compare` print, shared by fx-tui and the light fx-light process.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// A line on stdout that never panics: a sweep prints its report after training with SIGPIPE
/// ignored, and a reader that went away must not turn a finished sweep into a crash.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Charts and tables of one run (the overlay gallery, which runs the model, is fx-tui's).
pub fn print_export(run_dir: &Path, out: &Path, opts: &crate::ExportOptions) -> Result<()> {
    let s = crate::export(run_dir, out, opts)?;
    say(format!("{}: {} charts after epoch {} → {}", s.name, s.charts, s.last_epoch, out.display()));
    for f in &s.files {
        say(format!("  {}", f.display()));
    }
    for w in &s.warnings {
        say(format!("  warning: {w}"));
    }
    Ok(())
}

pub fn print_report(runs: &[PathBuf], out: &Path) -> Result<()> {
    let s = crate::report(runs, out)?;
    say(format!("{} runs: {}", s.runs.len(), s.runs.join(", ")));
    say(format!(
        "keys that differ: {}",
        if s.differing.is_empty() { "none".to_string() } else { s.differing.join(", ") }
    ));
    for f in &s.files {
        say(format!("  {}", f.display()));
    }
    for w in &s.warnings {
        say(format!("  warning: {w}"));
    }
    Ok(())
}

/// `compare RUN... --metric D/T/M --model M --out DIR`.
pub fn print_compare(runs: &[PathBuf], metrics: &[String], model: Option<&str>, out: &Path) -> Result<()> {
    let keys = metrics.iter().map(|m| crate::parse_metric(m)).collect::<Result<Vec<_>>>()?;
    let opts = crate::CompareOptions { keys, model: model.map(String::from), ..Default::default() };
    let s = crate::compare(runs, &opts, out)?;
    for w in &s.warnings {
        eprintln!("fx: warning: {w}");
    }
    say(format!("compared {} runs:", s.runs.len()));
    for (r, l) in s.runs.iter().zip(&s.labels) {
        say(format!("  {l:40} {}", r.display()));
    }
    say(format!("{} files in {}", s.files.len(), s.out.display()));
    for f in &s.files {
        say(format!("  {}", f.display()));
    }
    Ok(())
}
