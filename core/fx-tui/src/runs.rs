//! `fx-tui runs` / `fx-tui` alone: the runs browser in a terminal, a plain table when piped; and
//! `fx-tui compare`: the comparison of several runs written as files.

use crate::control;
use anyhow::{Context, Result};
use fx_view::app::{BrowseExit, RunOps};
use fx_view::browser::Browser;
use fx_view::runs::{Runs, Status};
use std::path::{Path, PathBuf};

/// The trainer's control socket and run lock, for the browser.
struct Ops;

impl RunOps for Ops {
    fn send(&self, run: &Path, cmd: &str) -> Result<String, String> {
        control::send(run, cmd).map_err(|e| format!("{e:#}"))
    }

    fn alive(&self, run: &Path) -> Option<bool> {
        control::trainer_alive(run)
    }
}

/// Run directories under `runs_dir`, newest first (by their experiment.toml's time).
pub fn list(runs_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::read_dir(runs_dir).with_context(|| format!("reading {}", runs_dir.display()))?;
    Ok(Runs::open(&[runs_dir.to_path_buf()]).rows().iter().map(|r| r.dir.clone()).collect())
}

/// The browser until the user quits; a run opened from it shows in the viewer, and leaving the
/// viewer comes back to the browser as it was.
pub fn browse(folders: &[PathBuf], ascii: bool) -> Result<()> {
    let opts = fx_view::ViewOptions { ascii: ascii || !fx_view::locale_is_utf8(), ..Default::default() };
    let mut browser = Browser::default();
    let mut runs = Runs::open(folders);
    loop {
        match fx_view::app::browse(&mut browser, &mut runs, &opts, &Ops)? {
            BrowseExit::Quit => return Ok(()),
            BrowseExit::Open(dir) => {
                let send = |cmd: &str| control::send(&dir, cmd).map_err(|e| format!("{e:#}"));
                let exit = fx_view::run(&dir, opts.clone(), Some(&send))?;
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                browser.message = Some(match exit {
                    fx_view::ViewExit::Stop => match control::send(&dir, "stop") {
                        Ok(reply) => format!("{name}: stop: {reply}"),
                        Err(e) => format!("{name}: could not stop the trainer: {e:#}"),
                    },
                    fx_view::ViewExit::Detach => format!("{name}: detached, training goes on"),
                    _ => format!("back from {name}"),
                });
                runs.refresh();
            }
        }
    }
}

/// The plain table (stdout is not a terminal): one line per run.
pub fn print(folders: &[PathBuf]) -> Result<()> {
    for f in folders {
        std::fs::read_dir(f).with_context(|| format!("reading {}", f.display()))?;
    }
    let mut runs = Runs::open(folders);
    runs.mark_gone(&|d| control::trainer_alive(d));
    let now = chrono::Local::now().timestamp();
    runs.mark_stale(now);
    let rows = runs.rows();
    if rows.is_empty() {
        println!("no runs in {}", folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
        return Ok(());
    }
    println!("{:40} {:22} {:>9} {:>10} {:>6} {:>6} {:>6}  {}", "run", "status", "epochs", "heartbeat", "cls", "loc", "seg", "tags");
    for r in rows {
        let mut status = r.status.as_str().to_string();
        if r.gone {
            status.push_str(" (trainer gone)");
        } else if r.stale {
            status.push_str(" (stale)");
        }
        let epochs = if r.status == Status::NotStarted { "-".to_string() } else { format!("{}/{}", r.epochs_done, r.epochs_total) };
        let age = r.heartbeat.map(|h| format!("{} ago", fx_view::facts::fmt_age(now - h))).unwrap_or_else(|| "-".into());
        let m = |t: &str| r.main.get(t).map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:40} {status:22} {epochs:>9} {age:>10} {:>6} {:>6} {:>6}  {}",
            r.id,
            m("cls"),
            m("loc"),
            m("seg"),
            r.tags.join(",")
        );
    }
    Ok(())
}

/// `fx-tui compare RUN... --metric D/T/M --model M --out DIR`.
pub fn compare(runs: &[PathBuf], metrics: &[String], model: Option<&str>, out: &Path) -> Result<()> {
    let keys = metrics.iter().map(|m| fx_export::parse_metric(m)).collect::<Result<Vec<_>>>()?;
    let opts = fx_export::CompareOptions { keys, model: model.map(String::from), ..Default::default() };
    let s = fx_export::compare(runs, &opts, out)?;
    for w in &s.warnings {
        eprintln!("fx: warning: {w}");
    }
    println!("compared {} runs:", s.runs.len());
    for (r, l) in s.runs.iter().zip(&s.labels) {
        println!("  {l:40} {}", r.display());
    }
    println!("{} files in {}", s.files.len(), s.out.display());
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}
