//! What this process is, for every command: its plugin registry, its stop and pause control
//! (signals and the control socket share it), the detached children it starts, and the exec into
//! the libtorch-free `fx-light`.

use anyhow::{Context, Result};
use fx::registry::Registry;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The built-in plugins plus every plugin library beside this executable and in FX_PLUGIN_PATH.
pub fn registry() -> Registry {
    let mut plugins = fx_phantom::plugins();
    plugins.extend(fx_files::plugins());
    let mut r = Registry::new(plugins);
    for w in r.discover(&fx::registry::plugin_dirs()) {
        eprintln!("fx: warning: {w}");
    }
    r
}

/// The stop and pause requests of this process's trainers: the signal handlers' and the control
/// socket's (a sweep's trainers share it: a stop ends the sweep).
pub static CONTROL: std::sync::OnceLock<fx::train::Control> = std::sync::OnceLock::new();

pub fn process_control() -> fx::train::Control {
    CONTROL.get_or_init(fx::train::Control::default).clone()
}

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Set before the handlers are installed; stop() is two atomic stores.
    if let Some(c) = CONTROL.get() {
        c.stop();
    }
}

/// Ctrl-C / SIGTERM stop after the current step (the run resumes at its last complete epoch); a lost
/// SSH terminal (SIGHUP) must not kill training.
pub fn install_signal_handlers() {
    let _ = process_control();
    unsafe {
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Replaces this process with `fx-light ARGS` from beside this executable: the commands that need
/// no libtorch run without it (loading libtorch with its CUDA libraries costs ~350 MB before
/// main). Returns only when there is no such binary (a partial build); the caller then does the
/// work in this process.
pub fn exec_light(args: &[std::ffi::OsString]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let Some(bin) =
        std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("fx-light"))).filter(|b| b.is_file())
    else {
        return Ok(());
    };
    let err = std::process::Command::new(&bin).args(args).exec();
    Err(anyhow::anyhow!("starting {}: {err}", bin.display()))
}

/// Starts `cmd` as a detached child: its own session (closing the terminal, losing the SSH link or
/// quitting the viewer never touches it), stdin closed, stdout and stderr appended to `log`.
/// `what` names it in the error. The child is reaped when it ends (a viewer left open would
/// otherwise keep a zombie).
pub fn spawn_detached(mut cmd: std::process::Command, log: &Path, what: &str) -> Result<Detached> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the forked child.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting the {what} process"))?;
    let pid = child.id();
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    std::thread::spawn(move || {
        let _ = child.wait();
        flag.store(true, Ordering::Relaxed);
    });
    Ok(Detached { pid, ended })
}

/// A child started by [`spawn_detached`].
pub struct Detached {
    pub pid: u32,
    ended: Arc<AtomicBool>,
}

impl Detached {
    /// Whether the child has ended (and been reaped).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}
