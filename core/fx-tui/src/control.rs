//! The control socket's server: `<run>/control.sock`, one line in, one line out. The trainer process serves
//! it (pause, resume, stop, export); viewers and `fx-tui ctl` are clients. A trainer that is gone
//! is reported as such, never waited on.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

pub use fx_run::control::{send, socket_path, trainer_alive};

/// The longest request read: the commands are a few bytes.
const MAX_REQUEST: u64 = 4096;

/// Serves the control socket on a background thread for as long as the process lives. The socket
/// is the owner's only (mode 0600, whatever the umask) and a client of another user (root
/// excepted) is refused by its peer credentials; every client gets its own short-lived thread
/// and read timeout, so a slow or hostile client blocks nobody; requests are bounded and never
/// echoed. `export` runs on the client's thread, never on the training loop.
/// `control`: the trainer's stop and pause requests, which pause/resume/stop set.
pub fn serve(run_dir: &Path, control: fx::train::Control) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(run_dir);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot make it owner-only", path.display()))?;
    let run_dir = run_dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (run_dir, control) = (run_dir.clone(), control.clone());
            std::thread::spawn(move || serve_client(&run_dir, &control, stream));
        }
    });
    Ok(())
}

fn serve_client(run_dir: &Path, control: &fx::train::Control, stream: UnixStream) {
    let mut w = &stream;
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    match peer_uid(&stream) {
        Some(uid) if uid == me || uid == 0 => {}
        _ => {
            let _ = writeln!(w, "refused: the control socket serves its owner only");
            return;
        }
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut reader = BufReader::new(std::io::Read::take(&stream, MAX_REQUEST));
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = if line.len() as u64 >= MAX_REQUEST && !line.ends_with('\n') {
        "request too long; expected pause, resume, stop, export or ping".to_string()
    } else {
        handle(run_dir, control, line.trim())
    };
    let _ = writeln!(w, "{reply}");
}

/// The uid of the process at the other end (SO_PEERCRED).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::unix::io::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a ucred.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

fn handle(run_dir: &Path, control: &fx::train::Control, cmd: &str) -> String {
    match cmd {
        "pause" => {
            control.set_pause(true);
            "pausing after the current step".into()
        }
        "resume" => {
            control.set_pause(false);
            "training continues".into()
        }
        "stop" => {
            control.stop();
            "stopping after the current step (resumable with --resume)".into()
        }
        "export" => match crate::export::export_run(run_dir, &run_dir.join("export")) {
            Ok(n) => format!("exported {n} files to {}", run_dir.join("export").display()),
            Err(e) => format!("export failed: {e:#}"),
        },
        "ping" => "pong".into(),
        // The viewer's add key: the same engine call as `fx-tui add` (validate, then queue).
        add if add.starts_with("add ") => {
            let file = Path::new(add[4..].trim());
            match fx::train::queue_added(run_dir, file, &crate::process::registry()) {
                Ok((_, n)) => format!(
                    "{}: {n} dataset(s) checked and queued; they join at the next epoch boundary",
                    file.display()
                ),
                Err(e) => format!("{}: refused: {e:#}", file.display()),
            }
        }
        // The request is not echoed: a reply never carries what a client sent.
        _ => "unknown command; expected pause, resume, stop, export, ping or add FILE".into(),
    }
}
