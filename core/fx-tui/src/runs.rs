//! `fx-tui runs` / `fx-tui` alone: the runs browser in a terminal, a plain table when piped; and
//! `fx-tui compare`: the comparison of several runs written as files.

use crate::control;
use anyhow::{Context, Result};
use fx_view::runs::{Runs, Status};
use std::path::{Path, PathBuf};

/// Run directories under `runs_dir`, newest first (by their experiment.toml's time).
pub fn list(runs_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::read_dir(runs_dir).with_context(|| format!("reading {}", runs_dir.display()))?;
    Ok(Runs::open(&[runs_dir.to_path_buf()]).rows().iter().map(|r| r.dir.clone()).collect())
}

/// The browser until the user quits, in the light `fx-light` process when it is installed.
pub fn browse(folders: &[PathBuf], ascii: bool) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec!["browse".into()];
    for f in folders {
        args.push("--dir".into());
        args.push(f.as_os_str().to_owned());
    }
    if ascii {
        args.push("--ascii".into());
    }
    crate::exec_light(&args)?;
    let opts = fx_view::ViewOptions { ascii: ascii || !fx_view::locale_is_utf8(), ..Default::default() };
    fx_view::browse_runs(folders, opts)
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
    println!(
        "{:40} {:22} {:>9} {:>10} {:>6} {:>6} {:>6}  tags",
        "run", "status", "epochs", "heartbeat", "cls", "loc", "seg"
    );
    for r in rows {
        let mut status = r.status.as_str().to_string();
        if r.gone {
            status.push_str(" (trainer gone)");
        } else if r.stale {
            status.push_str(" (stale)");
        }
        let epochs = if r.status == Status::NotStarted {
            "-".to_string()
        } else {
            format!("{}/{}", r.epochs_done, r.epochs_total)
        };
        let age = r.heartbeat.map(|h| format!("{} ago", fx_run::facts::fmt_age(now - h))).unwrap_or_else(|| "-".into());
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
