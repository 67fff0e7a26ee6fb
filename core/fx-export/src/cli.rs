//! `export`, `report` and `compare`: their arguments (one clap definition, used by fx-tui and by
//! the light fx-light process it hands them to) and what they print.

use anyhow::Result;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Charts (PNG + SVG, the paper's Figure 2 per dataset × task) and tables (CSV, Markdown,
/// LaTeX) of one run.
#[derive(clap::Args, Clone, Debug)]
pub struct ExportArgs {
    pub run: PathBuf,
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Also chart the student (the teacher is always charted).
    #[arg(long)]
    pub student: bool,
    /// Chart only these cycles: A-B, A, or last:N (the tables cover the whole run).
    #[arg(long, value_name = "A-B|A|last:N")]
    pub cycles: Option<String>,
}

impl ExportArgs {
    /// What is charted: the teacher (and the student when asked), over a window of cycles.
    pub fn options(&self) -> crate::ExportOptions {
        let opts = crate::ExportOptions { cycles: self.cycles.clone(), ..Default::default() };
        if self.student {
            opts.with_student()
        } else {
            opts
        }
    }

    /// The same command line again (`export RUN --out DIR ...`), for handing it to fx-light.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> =
            vec!["export".into(), self.run.clone().into(), "--out".into(), self.out.clone().into()];
        if self.student {
            a.push("--student".into());
        }
        if let Some(c) = &self.cycles {
            a.extend(["--cycles".into(), c.into()]);
        }
        a
    }

    pub fn run(&self) -> Result<()> {
        print_export(&self.run, &self.out, &self.options())
    }
}

/// Ablation table across runs (e.g. Lock-Release × Student-Teacher): one row per run, the
/// experiment keys that differ between them, and the final teacher metrics.
#[derive(clap::Args, Clone, Debug)]
pub struct ReportArgs {
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

impl ReportArgs {
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["report".into()];
        a.extend(self.runs.iter().map(|r| r.clone().into()));
        a.extend(["--out".into(), self.out.clone().into()]);
        a
    }

    pub fn run(&self) -> Result<()> {
        print_report(&self.runs, &self.out)
    }
}

/// Compare runs: an overlay chart per metric (PNG + SVG, one line per run, the legend naming
/// the experiment keys in which the runs differ), config-diff.md, and the final and best
/// values (CSV, Markdown, LaTeX).
#[derive(clap::Args, Clone, Debug)]
pub struct CompareArgs {
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// DATASET/TASK[/METRIC] to chart (repeatable; default: every main metric).
    #[arg(long, value_name = "DATASET/TASK/METRIC")]
    pub metric: Vec<String>,
    /// teacher or student (default: the teacher when the runs have its rows).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value = "compare")]
    pub out: PathBuf,
}

impl CompareArgs {
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["compare".into()];
        a.extend(self.runs.iter().map(|r| r.clone().into()));
        for m in &self.metric {
            a.extend(["--metric".into(), m.into()]);
        }
        if let Some(m) = &self.model {
            a.extend(["--model".into(), m.into()]);
        }
        a.extend(["--out".into(), self.out.clone().into()]);
        a
    }

    pub fn run(&self) -> Result<()> {
        print_compare(&self.runs, &self.metric, self.model.as_deref(), &self.out)
    }
}

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
