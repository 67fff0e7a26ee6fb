//! `fx-tui sweep`: every combination of a grid as its own run, one after another, then the
//! ablation report over them; in a terminal the sweep runs detached and the viewer follows it.

use crate::process::{install_signal_handlers, process_control, registry, spawn_detached};
use crate::{control, export, headless, view};
use anyhow::Result;
use fx::config::Experiment;
use fx::train::{resolve_device, Trainer};
use std::path::{Path, PathBuf};

/// The combinations of a sweep grid, each a list of `key=value` overrides.
fn combinations(grid: &[String]) -> Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for g in grid {
        let (key, values) = g
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--grid {g}: expected KEY=V1,V2 (e.g. lock_release=true,false)"))?;
        let key = match key {
            "lock_release" | "student_teacher" => format!("{key}.enabled"),
            k => k.to_string(),
        };
        let values: Vec<&str> = values.split(',').filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            anyhow::bail!("--grid {g}: no values");
        }
        let mut next = Vec::new();
        for c in &out {
            for v in &values {
                let mut combo = c.clone();
                combo.push(format!("{key}={v}"));
                next.push(combo);
            }
        }
        out = next;
    }
    Ok(out)
}

/// Every combination of the grid as its overrides and resolved experiment: all are validated
/// before the first one trains.
fn sweep_experiments(path: &Path, grid: &[String], set: &[String]) -> Result<Vec<(Vec<String>, Experiment)>> {
    combinations(grid)?
        .into_iter()
        .map(|c| {
            let mut overrides = set.to_vec();
            overrides.extend(c.iter().cloned());
            Experiment::load(path, &overrides).map(|e| (c, e))
        })
        .collect()
}

pub fn sweep(path: &Path, grid: &[String], set: &[String], device: Option<&str>) -> Result<()> {
    let registry = registry();
    let exps = sweep_experiments(path, grid, set)?;
    install_signal_handlers();
    let total = exps.len();
    let mut runs = Vec::new();
    let base = Experiment::load(path, set)?;
    std::fs::create_dir_all(&base.output_dir)?;
    let state_file = sweep_state_file(&base);
    for (k, (combo, mut exp)) in exps.into_iter().enumerate() {
        let tag: Vec<String> = combo.iter().map(|o| o.replace(".enabled", "").replace('=', "-")).collect();
        exp.name = format!("{}-{}", exp.name, tag.join("-"));
        export::say!("sweep {}/{total}: {} ({})", k + 1, exp.name, combo.join(" "));
        let device = match device {
            Some(d) => resolve_device(d)?,
            None => resolve_device(&exp.device)?,
        };
        let mut trainer = Trainer::create(exp, &path.display().to_string(), &registry, device)?;
        trainer.set_control(process_control());
        runs.push(trainer.run_dir());
        write_sweep_state(&state_file, &runs, total, "running")?;
        // Viewers following the sweep pause, resume and stop its runs through the socket.
        if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
            let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
        }
        let mut printer =
            headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
        let status = trainer.run(&mut |p| printer.on(p))?;
        let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
        if status != "finished" {
            write_sweep_state(&state_file, &runs, total, "stopped")?;
            export::say!("sweep stopped during {}", trainer.run_dir().display());
            break;
        }
    }
    if runs.len() == total {
        write_sweep_state(&state_file, &runs, total, "finished")?;
    }
    fx_export::cli::print_report(&runs, &base.output_dir.join(format!("{}-sweep-report", base.name)))
}

/// `<output_dir>/<name>-sweep.json`: the sweep's runs so far, for a viewer following it.
fn sweep_state_file(base: &Experiment) -> PathBuf {
    base.output_dir.join(format!("{}-sweep.json", base.name))
}

fn write_sweep_state(file: &Path, runs: &[PathBuf], total: usize, status: &str) -> Result<()> {
    let state = fx_run::SweepState { runs: runs.to_vec(), total, status: status.into() };
    fx::store::write_atomic(file, serde_json::to_string_pretty(&state)?.as_bytes())
}

/// A sweep in a terminal: the sweep runs as its own detached process (closing the terminal or
/// quitting the viewer never stops it) and the viewer shows each of its runs in turn, moving on
/// when one finishes. `q` then detach leaves the sweep running; stop ends it after the current run's
/// step.
pub fn sweep_in_viewer(path: &Path, grid: &[String], set: &[String], device: Option<&str>, ascii: bool) -> Result<()> {
    // Everything is validated here, where the errors can be read.
    sweep_experiments(path, grid, set)?;
    let base = Experiment::load(path, set)?;
    std::fs::create_dir_all(&base.output_dir)?;
    let state_file = sweep_state_file(&base);
    let _ = std::fs::remove_file(&state_file);
    let log_path = base.output_dir.join(format!("{}-sweep.log", base.name));
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("sweep").arg(path).arg("--headless");
    for g in grid {
        cmd.arg("--grid").arg(g);
    }
    for s in set {
        cmd.arg("--set").arg(s);
    }
    if let Some(d) = device {
        cmd.arg("--device").arg(d);
    }
    let child = spawn_detached(cmd, &log_path, "sweep")?;
    eprintln!("fx: sweep pid {}, log {}", child.pid, log_path.display());
    let mut shown = 0usize;
    loop {
        // Wait for the next run of the sweep to appear (or the sweep to end).
        let (runs, total, status) = loop {
            if let Ok(text) = std::fs::read_to_string(&state_file) {
                let state: fx_run::SweepState = serde_json::from_str(&text).unwrap_or_default();
                if state.runs.len() > shown || state.status != "running" {
                    break (state.runs, state.total, state.status);
                }
            }
            if child.has_ended() && !state_file.exists() {
                anyhow::bail!("the sweep process ended before its first run; see {}", log_path.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        if runs.len() <= shown {
            println!(
                "sweep {status}: {} of {total} runs; report in {}",
                runs.len(),
                base.output_dir.join(format!("{}-sweep-report", base.name)).display()
            );
            return Ok(());
        }
        let run = &runs[shown];
        shown += 1;
        // The last run stays on screen when it finishes, with the sweep's final numbers.
        match view::view_until(run, ascii, shown < total)? {
            fx_view::ViewExit::Done => continue,
            fx_view::ViewExit::Quit if shown == total => {
                println!(
                    "sweep of {total} runs done; report in {}",
                    base.output_dir.join(format!("{}-sweep-report", base.name)).display()
                );
                return Ok(());
            }
            fx_view::ViewExit::Stop => {
                println!("the sweep stops after this run's current step (log: {})", log_path.display());
                return Ok(());
            }
            _ => {
                println!(
                    "the sweep goes on in the background (log: {}); follow a run with: fx-tui attach",
                    log_path.display()
                );
                return Ok(());
            }
        }
    }
}
