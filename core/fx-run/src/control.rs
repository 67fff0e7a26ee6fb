//! The client side of the trainer's control socket (`RUN/control.sock`, one line in, one line
//! out: pause, resume, stop, export, ping). The trainer serves it (fx-tui's `control`); viewers,
//! the runs browser and `fx-tui ctl` are clients. A trainer that is gone is reported as such,
//! never waited on.

use crate::files;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(files::SOCKET)
}

/// Whether the run's trainer is alive: `None` when `run_dir` is not a run directory.
pub fn trainer_alive(run_dir: &Path) -> Option<bool> {
    // The trainer's run lock, not its pid: a pid can be reused, a dead process holds no lock.
    run_dir.join(files::EXPERIMENT).is_file().then(|| crate::lock::is_locked(run_dir))
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
