//! The control socket: `<run>/control.sock`, one line in, one line out. The trainer process serves
//! it (pause, resume, stop, export); viewers and `fx-tui ctl` are clients. A trainer that is gone
//! is reported as such, never waited on.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// Serves the control socket on a background thread for as long as the process lives.
/// `export` runs the exporter in that thread, so the training loop never waits for it.
pub fn serve(run_dir: &Path) -> Result<()> {
    let path = socket_path(run_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("binding the control socket {}", path.display()))?;
    let run_dir = run_dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let reply = handle(&run_dir, line.trim());
            let mut w = &stream;
            let _ = writeln!(w, "{reply}");
        }
    });
    Ok(())
}

fn handle(run_dir: &Path, cmd: &str) -> String {
    match cmd {
        "pause" => {
            fx::train::PAUSE.store(true, Ordering::SeqCst);
            "pausing after the current step".into()
        }
        "resume" => {
            fx::train::PAUSE.store(false, Ordering::SeqCst);
            "training continues".into()
        }
        "stop" => {
            fx::train::STOP.store(true, Ordering::SeqCst);
            fx::train::PAUSE.store(false, Ordering::SeqCst);
            "stopping after the current step (resumable with --resume)".into()
        }
        "export" => match crate::export::export_run(run_dir, &run_dir.join("export")) {
            Ok(n) => format!("exported {n} files to {}", run_dir.join("export").display()),
            Err(e) => format!("export failed: {e:#}"),
        },
        "ping" => "pong".into(),
        other => format!("unknown command `{other}`; expected pause, resume, stop, export or ping"),
    }
}

/// Whether the process that wrote run.json is alive.
pub fn trainer_alive(run_dir: &Path) -> Option<bool> {
    // The trainer's run lock, not its pid: a pid can be reused, a dead process holds no lock.
    fx::store::RunStore::open(run_dir).ok().map(|s| s.is_locked())
}

/// Sends one command and returns the trainer's reply.
pub fn send(run_dir: &Path, cmd: &str) -> Result<String> {
    let path = socket_path(run_dir);
    let stream = UnixStream::connect(&path).map_err(|e| match trainer_alive(run_dir) {
        Some(false) => anyhow!("the trainer of {} is not running (its pid is gone)", run_dir.display()),
        _ => anyhow!("cannot reach the trainer at {}: {e}", path.display()),
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut w = &stream;
    writeln!(w, "{cmd}")?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).context("waiting for the trainer's reply")?;
    if reply.is_empty() {
        bail!("the trainer closed the connection without a reply");
    }
    Ok(reply.trim().to_string())
}
