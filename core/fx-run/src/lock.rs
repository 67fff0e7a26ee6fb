//! The trainer's exclusive hold on a run: an advisory lock (flock) on `RUN/trainer.lock`, held
//! for the trainer's lifetime and released by the kernel when the process ends in any way
//! (kill -9 included). "Is a trainer alive?" asks the lock, never a pid that may have been reused.

use crate::files;
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Held while alive; dropping it (or the process ending) releases the run.
pub struct RunLock {
    _file: fs::File,
}

/// Takes the run's lock, or says which process holds it.
pub fn take(run_dir: &Path) -> Result<RunLock> {
    let path = run_dir.join(files::LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open the run lock", path.display()))?;
    // SAFETY: flock on a descriptor this function owns. A few tries: `is_locked` probes take the
    // lock for an instant, and a trainer starting at that instant must not be refused.
    let taken = (0..5).any(|i| {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) == 0
    });
    if !taken {
        let pid = fs::read_to_string(run_dir.join(files::RUN))
            .ok()
            .and_then(|t| serde_json::from_str::<crate::RunInfo>(&t).ok())
            .map(|i| i.pid.to_string())
            .unwrap_or_else(|| "?".into());
        bail!(
            "{} is being trained by another process (pid {pid}, holding {}); attach to it with: fx-tui attach {}",
            run_dir.display(),
            path.display(),
            run_dir.display()
        );
    }
    Ok(RunLock { _file: file })
}

/// Whether a trainer holds the run's lock now.
pub fn is_locked(run_dir: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new().read(true).open(run_dir.join(files::LOCK)) else { return false };
    // SAFETY: as above; a successful probe is released at once.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if free {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    !free
}
