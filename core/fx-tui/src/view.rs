//! The live viewer on a run: `attach`, and the viewer a terminal training or sweep opens.

use crate::process::exec_light;
use anyhow::Result;
use std::path::Path;

/// The live viewer on a run directory; quitting asks detach or stop when the trainer runs.
/// The viewer on a run: this process becomes the light `fx-light` process (see [`exec_light`]),
/// so viewing never holds libtorch's memory.
pub fn view(run_dir: &Path, ascii: bool) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec!["view".into(), run_dir.as_os_str().to_owned()];
    if ascii {
        args.push("--ascii".into());
    }
    exec_light(&args)?;
    view_until(run_dir, ascii, false).map(|_| ())
}

/// The viewer in this process; with `until_done` it also returns when the run finishes (a sweep
/// then shows its next run).
pub fn view_until(run_dir: &Path, ascii: bool, until_done: bool) -> Result<fx_view::ViewExit> {
    let opts = fx_view::ViewOptions {
        ascii: ascii || !fx_view::locale_is_utf8(),
        exit_when_done: until_done,
        ..Default::default()
    };
    fx_view::attach(run_dir, opts)
}

/// `fx-tui attach [RUN]`: the viewer on RUN, or on the newest run in `runs_dir`.
pub fn attach(run: Option<&Path>, runs_dir: &Path, ascii: bool) -> Result<()> {
    let dir = match run {
        Some(r) => r.to_path_buf(),
        None => crate::runs::list(runs_dir)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no runs in {}", runs_dir.display()))?,
    };
    fx::store::RunStore::open(&dir)?;
    view(&dir, ascii)
}
