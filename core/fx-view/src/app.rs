//! The terminal event loop.
//!
//! Redraw discipline (users are on SSH): a frame is drawn only when the store changed on disk,
//! a key changed the state, the terminal was resized, or the coarse heartbeat age shown changed
//! (10 s steps under a minute, then minutes). Between those the loop sleeps in `poll(2)` on the
//! terminal for up to `ViewOptions::poll` and then `stat`s the run files; nothing is drawn at a
//! fixed rate. ratatui diffs frames, so a redraw sends only the changed cells.
//!
//! The terminal is restored on every exit path: normal return, error return, and panic (a panic
//! hook restores it before the previous hook prints the message). A terminal that hangs up
//! (closed SSH link, killed tmux pane) is detected by our own `poll(2)` (POLLHUP/POLLERR) before
//! crossterm reads from it, because crossterm 0.29 spins on a dead tty (crossterm issue #793);
//! the viewer then returns an error instead of spinning.

use crate::browser::{Browser, BrowserAction, Comparison};
use crate::runs::Runs;
use crate::state::{Action, Drawn, State, ViewExit};
use crate::theme::Theme;
use crate::ui::{self, View};
use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyEventKind};
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use fx_run::facts;
use fx_run::store::Store;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the viewer looks and behaves.
#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// ASCII glyphs and borders instead of unicode (`--ascii`).
    pub ascii: bool,
    /// Longest wait for input before the run files are checked again (default 250 ms).
    pub poll: Duration,
    /// Whether the quit dialog offers "stop training" (the caller can deliver a stop request).
    pub can_stop: bool,
    /// Return [`ViewExit::Done`] once the run has finished (a sweep then shows its next run).
    pub exit_when_done: bool,
}

/// Delivers a command ("pause", "resume", "export") to the trainer and returns its reply, or why
/// it could not be delivered. The binary implements it over the run's control socket.
pub type Control<'a> = &'a dyn Fn(&str) -> Result<String, String>;

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions { ascii: false, poll: Duration::from_millis(250), can_stop: true, exit_when_done: false }
    }
}

/// Shows the run in `run_dir` until the user quits. Needs a terminal (stdin or /dev/tty).
/// Errors: the terminal could not be set up, or it failed or hung up while viewing.
pub fn run(run_dir: &Path, opts: ViewOptions, control: Option<Control>) -> Result<ViewExit> {
    let tty = tty::Tty::open().context("the viewer needs a terminal")?;
    let _guard = TerminalGuard::enter().context("setting up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout())).context("setting up the terminal")?;
    terminal.clear()?;
    let theme = Theme::new(opts.ascii);
    let mut store = Store::open(run_dir);
    let mut state = State::new(opts.can_stop);
    let mut dirty = true;
    let mut shown_age: Option<String> = None;
    let mut last_refresh = Instant::now();
    // The run directory is re-read when notify reports a change in it (checked at every wake-up,
    // at most every `opts.poll`), and every `opts.poll × 8` as the fallback for filesystems
    // without change events (NFS); without a watcher, every `opts.poll / 2` as before.
    let changed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = watch(&[run_dir.to_path_buf()], changed.clone());
    let fallback = if watcher.is_some() { opts.poll * 8 } else { opts.poll / 2 };
    loop {
        let now = unix_now();
        let age = facts::heartbeat_age(&store, Some(now));
        if age != shown_age {
            shown_age = age;
            dirty = true;
        }
        if dirty {
            let mut drawn = Drawn::default();
            terminal
                .draw(|f| drawn = ui::draw(f, &View { store: &store, state: &state, theme: &theme, now: Some(now) }))
                .context("drawing")?;
            state.after_draw(drawn);
            dirty = false;
        }
        // Sleep until input, a signal (resize) or the poll interval; a dead terminal is an error.
        tty.wait(opts.poll).context("terminal closed")?;
        // Drain whatever crossterm has: keys, and the resize it learns of through SIGWINCH.
        while event::poll(Duration::ZERO).context("reading the terminal")? {
            match event::read().context("reading the terminal")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    match state.handle_key(k, facts::is_running(&store)) {
                        Action::Exit(e) => return Ok(e),
                        Action::Redraw => dirty = true,
                        Action::Send(cmd) => {
                            state.message = Some(match control {
                                Some(send) => match send(cmd) {
                                    Ok(reply) => format!("{cmd}: {reply}"),
                                    Err(why) => format!("{cmd} failed: {why}"),
                                },
                                None => format!("{cmd}: no trainer connection"),
                            });
                            dirty = true;
                        }
                        Action::OpenAdd => {
                            let info = store.experiment.clone().unwrap_or_default();
                            state.open_add(fx_run::hot_add::candidates(&info));
                            dirty = true;
                        }
                        Action::Add(file) => {
                            let cmd = format!("add {}", file.display());
                            state.message = Some(match control {
                                Some(send) => match send(&cmd) {
                                    Ok(reply) => reply,
                                    Err(why) => format!(
                                        "add: the trainer does not answer ({why}); fx-tui add RUN FILE queues it for the resume"
                                    ),
                                },
                                None => "add: no trainer connection".into(),
                            });
                            dirty = true;
                        }
                        Action::None => {}
                    }
                }
                Event::Resize(..) => {
                    terminal.autoresize().context("resizing")?;
                    dirty = true;
                }
                _ => {}
            }
        }
        if changed.swap(false, std::sync::atomic::Ordering::Relaxed) || last_refresh.elapsed() >= fallback {
            last_refresh = Instant::now();
            if store.refresh() {
                dirty = true;
            }
            if opts.exit_when_done && store.run.as_ref().is_some_and(|r| r.status == "finished") {
                return Ok(ViewExit::Done);
            }
        }
    }
}

/// What the runs browser asks of its caller (the binary owns the trainer's control socket and
/// run lock; the viewer never links the engine).
pub trait RunOps {
    /// Delivers "pause", "resume" or "stop" to the run's trainer; its reply or why not.
    fn send(&self, run: &Path, cmd: &str) -> Result<String, String>;
    /// Whether the run's trainer process is alive (`None`: cannot tell).
    fn alive(&self, run: &Path) -> Option<bool>;
}

/// How the browser ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrowseExit {
    Quit,
    /// Open this run in the viewer; call [`browse`] again with the same [`Browser`] to come back.
    Open(std::path::PathBuf),
}

/// The runs browser over `runs.folders` until the user quits or opens a run. Refreshes when
/// notify reports a change under the folders (at most 4 times a second) and, as the fallback
/// for filesystems without change events, every `opts.poll × 8`.
pub fn browse(browser: &mut Browser, runs: &mut Runs, opts: &ViewOptions, ops: &dyn RunOps) -> Result<BrowseExit> {
    let tty = tty::Tty::open().context("the runs browser needs a terminal")?;
    let _guard = TerminalGuard::enter().context("setting up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout())).context("setting up the terminal")?;
    terminal.clear()?;
    let theme = Theme::new(opts.ascii);
    let changed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let _watcher = watch(&runs.folders, changed.clone());
    let fallback = opts.poll * 8;
    let mut last_full = Instant::now();
    let mut dirty = true;
    runs.mark_gone(&|d| ops.alive(d));
    loop {
        if dirty {
            terminal.draw(|f| ui::draw_browser(f, browser, runs, &theme)).context("drawing")?;
            dirty = false;
        }
        tty.wait(opts.poll).context("terminal closed")?;
        while event::poll(Duration::ZERO).context("reading the terminal")? {
            match event::read().context("reading the terminal")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let action = browser.handle_key(k, runs);
                    if let Some(exit) = perform(action, browser, runs, ops) {
                        return Ok(exit);
                    }
                    dirty = true;
                }
                Event::Resize(..) => {
                    terminal.autoresize().context("resizing")?;
                    dirty = true;
                }
                _ => {}
            }
        }
        let notified = changed.swap(false, std::sync::atomic::Ordering::Relaxed);
        if notified || last_full.elapsed() >= fallback {
            let full = last_full.elapsed() >= fallback;
            if full {
                last_full = Instant::now();
                dirty |= runs.mark_gone(&|d| ops.alive(d));
            }
            dirty |= runs.refresh();
            dirty |= runs.mark_stale(unix_now());
            if let Some(c) = &mut browser.comparison {
                dirty |= c.refresh(runs);
            }
        }
    }
}

/// Carries out what a key asked for; `Some` leaves the browser.
fn perform(action: BrowserAction, b: &mut Browser, runs: &mut Runs, ops: &dyn RunOps) -> Option<BrowseExit> {
    match action {
        BrowserAction::None | BrowserAction::Redraw => {}
        BrowserAction::Quit => return Some(BrowseExit::Quit),
        BrowserAction::Open(dir) => return Some(BrowseExit::Open(dir)),
        BrowserAction::Send(dir, cmd) => {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            b.message = Some(match ops.send(&dir, cmd) {
                Ok(reply) => format!("{name}: {cmd}: {reply}"),
                Err(why) => format!("{name}: {cmd} failed: {why}"),
            });
            runs.refresh();
        }
        BrowserAction::Tag(dir, text) => {
            b.message = Some(match crate::runs::write_tags(&dir, &text) {
                Ok(tags) if tags.is_empty() => "tags cleared".into(),
                Ok(tags) => format!("tagged {}", tags.join(", ")),
                Err(e) => format!("could not write the tags of {}: {e}", dir.display()),
            });
            runs.refresh();
        }
        BrowserAction::Trash(dir) => {
            // Checked again here: the trainer may have started since the question was asked.
            b.message = Some(if ops.alive(&dir) == Some(true) {
                format!("{} has a live trainer: not deleted", dir.display())
            } else {
                match crate::runs::move_to_trash(&dir) {
                    Ok(to) => {
                        b.marked.remove(&dir);
                        format!("moved to {}", to.display())
                    }
                    Err(e) => format!("could not move {} to the trash: {e}", dir.display()),
                }
            });
            runs.refresh();
        }
        BrowserAction::Compare(dirs, sweep) => b.comparison = Some(Comparison::open(&dirs, sweep)),
    }
    None
}

/// A notify watcher over the folders (recursive: the run directories' files change inside them)
/// that raises `flag` on every event; `None` when the platform or filesystem cannot watch (the
/// caller's slow poll then does all the work).
fn watch(
    folders: &[std::path::PathBuf],
    flag: Arc<std::sync::atomic::AtomicBool>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    })
    .ok()?;
    let mut any = false;
    for f in folders {
        any |= w.watch(f, notify::RecursiveMode::Recursive).is_ok();
    }
    any.then_some(w)
}

/// The viewer on one run with the trainer's control socket wired in, and what to do after it:
/// a stop asked in the viewer is sent, and the user is told how to come back. What `fx-tui
/// EXPERIMENT`, `fx-tui attach` and the light `fx-view` binary all run.
pub fn attach(run_dir: &Path, opts: ViewOptions) -> Result<ViewExit> {
    let send = |cmd: &str| fx_run::control::send(run_dir, cmd).map_err(|e| format!("{e:#}"));
    let exit = run(run_dir, opts, Some(&send))?;
    let dir = run_dir.display();
    match exit {
        ViewExit::Quit | ViewExit::Done => {}
        ViewExit::Detach => println!("detached; training goes on. Re-attach with: fx-tui attach {dir}"),
        ViewExit::Stop => match fx_run::control::send(run_dir, "stop") {
            Ok(reply) => println!("{reply}. Resume with: fx-tui --resume {dir}"),
            Err(e) => println!("could not stop the trainer: {e:#}"),
        },
    }
    Ok(exit)
}

/// The control socket and run lock of fx-run, for the browser.
struct SocketOps;

impl RunOps for SocketOps {
    fn send(&self, run: &Path, cmd: &str) -> Result<String, String> {
        fx_run::control::send(run, cmd).map_err(|e| format!("{e:#}"))
    }

    fn alive(&self, run: &Path) -> Option<bool> {
        fx_run::control::trainer_alive(run)
    }
}

/// The runs browser until the user quits; a run opened from it shows in the viewer, and leaving
/// the viewer comes back to the browser as it was.
pub fn browse_runs(folders: &[std::path::PathBuf], opts: ViewOptions) -> Result<()> {
    let mut browser = Browser::default();
    let mut runs = Runs::open(folders);
    loop {
        match browse(&mut browser, &mut runs, &opts, &SocketOps)? {
            BrowseExit::Quit => return Ok(()),
            BrowseExit::Open(dir) => {
                let send = |cmd: &str| fx_run::control::send(&dir, cmd).map_err(|e| format!("{e:#}"));
                let exit = run(&dir, opts.clone(), Some(&send))?;
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                browser.message = Some(match exit {
                    ViewExit::Stop => match fx_run::control::send(&dir, "stop") {
                        Ok(reply) => format!("{name}: stop: {reply}"),
                        Err(e) => format!("{name}: could not stop the trainer: {e:#}"),
                    },
                    ViewExit::Detach => format!("{name}: detached, training goes on"),
                    _ => format!("back from {name}"),
                });
                runs.refresh();
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Raw mode + alternate screen while alive; restores the terminal when dropped and, through a
/// panic hook, when anything panics first.
struct TerminalGuard {
    prev_hook: Arc<Hook>,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        let prev_hook: Arc<Hook> = Arc::new(std::panic::take_hook());
        let chained = prev_hook.clone();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            chained(info);
        }));
        let guard = TerminalGuard { prev_hook };
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        // The hook cannot be changed while panicking; ours stays then (it only restores).
        if !std::thread::panicking() {
            let _ = std::panic::take_hook();
            let prev = self.prev_hook.clone();
            std::panic::set_hook(Box::new(move |info| prev(info)));
        }
    }
}

#[cfg(unix)]
mod tty {
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::Duration;

    /// The terminal crossterm reads from: stdin when it is a tty, else /dev/tty.
    pub struct Tty {
        fd: RawFd,
        _file: Option<File>,
    }

    impl Tty {
        pub fn open() -> io::Result<Tty> {
            // SAFETY: isatty on a file descriptor number has no memory effects.
            if unsafe { libc::isatty(0) } == 1 {
                return Ok(Tty { fd: 0, _file: None });
            }
            let f = File::open("/dev/tty")?;
            Ok(Tty { fd: f.as_raw_fd(), _file: Some(f) })
        }

        /// Waits up to `timeout` for input. Ok(true): input is ready; Ok(false): timeout or a
        /// signal; Err: the terminal hung up or failed.
        pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
            let mut p = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&mut p, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
            }
            if r == 0 {
                return Ok(false);
            }
            if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the terminal hung up"));
            }
            Ok(p.revents & libc::POLLIN != 0)
        }
    }
}

#[cfg(not(unix))]
mod tty {
    use std::io;
    use std::time::Duration;

    pub struct Tty;

    impl Tty {
        pub fn open() -> io::Result<Tty> {
            Ok(Tty)
        }

        pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
            crossterm::event::poll(timeout)
        }
    }
}
