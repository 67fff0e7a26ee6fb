//! `fx-view`: the viewer and the runs browser in a process that does not link libtorch.
//!
//! Loading libtorch with its CUDA libraries costs a process ~350 MB of memory before it does
//! anything (measured here: `fx-tui --version` peaks at 473 MB), which a viewer on a shared login
//! node should not pay. `fx-tui` therefore replaces itself (exec) with this binary, found beside
//! it, whenever all that is left to do is to view: `fx-tui EXPERIMENT` after starting the
//! trainer, `fx-tui attach`, `fx-tui runs` and `fx-tui` alone. Users need not call it directly.
//!
//! ```text
//! fx-view [--ascii] RUN                    the live viewer on a run directory
//! fx-view runs [--ascii] [--dir DIR]...    the runs browser (default folder: runs)
//! fx-view fabricate DIR [--cycles N]       a finished paper-scale run (benchmarks, tests)
//! fx-view bench RUN                        reading and drawing cost of a run (make bench)
//! ```

use std::path::PathBuf;
use std::process::exit;

fn usage() -> ! {
    eprintln!("usage: fx-view [--ascii] RUN\n       fx-view runs [--ascii] [--dir DIR]...");
    exit(2)
}

fn main() {
    // A trainer started by the fx-tui this process replaced is our child: reap it when it ends
    // (SIG_IGN for SIGCHLD makes the kernel do so), and any that ended before the exec.
    unsafe {
        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("fabricate") => return fabricate(&argv[1..]),
        Some("bench") if argv.len() == 2 => return bench(std::path::Path::new(&argv[1])),
        _ => {}
    }
    let mut args = argv.into_iter().peekable();
    let mut ascii = false;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut run: Option<PathBuf> = None;
    let mut browser = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ascii" => ascii = true,
            "--dir" => dirs.push(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "runs" if run.is_none() && !browser => browser = true,
            "-h" | "--help" => usage(),
            s if s.starts_with('-') => usage(),
            s if run.is_none() && !browser => run = Some(PathBuf::from(s)),
            _ => usage(),
        }
    }
    let opts = fx_view::ViewOptions { ascii: ascii || !fx_view::locale_is_utf8(), ..Default::default() };
    let result = if browser {
        if dirs.is_empty() {
            dirs.push(PathBuf::from("runs"));
        }
        fx_view::app::browse_runs(&dirs, opts)
    } else {
        match run {
            Some(r) if r.join("experiment.toml").is_file() || r.join("run.json").is_file() => {
                fx_view::app::attach(&r, opts).map(|_| ())
            }
            Some(r) => Err(anyhow::anyhow!("{} is not a run directory (no experiment.toml)", r.display())),
            None => usage(),
        }
    };
    if let Err(e) = result {
        eprintln!("fx-view: error: {e:#}");
        exit(2);
    }
}

fn fabricate(args: &[String]) {
    let (Some(dir), rest) = (args.first(), &args[1.min(args.len())..]) else { usage() };
    let cycles = match rest {
        [] => 20,
        [flag, n] if flag == "--cycles" => n.parse().unwrap_or_else(|_| usage()),
        _ => usage(),
    };
    let dir = PathBuf::from(dir);
    match fx_run::fabricate::run(&dir, "paper-scale", cycles, true, 1) {
        Ok(f) => println!(
            "{}: {} epochs, {} (dataset, task) pairs, {} metric rows ({:.1} MB of metrics.jsonl)",
            dir.display(),
            f.epochs,
            f.pairs,
            f.metric_rows,
            f.metrics_bytes as f64 / 1e6
        ),
        Err(e) => {
            eprintln!("fx-view: error: {e:#}");
            exit(2);
        }
    }
}

/// This process's resident and peak resident memory in MB (Linux /proc).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What the viewer pays for a run: reading it, the first screen, a redraw of each screen, memory.
fn bench(run: &std::path::Path) {
    use fx_view::state::{Screen, State};
    use fx_view::theme::Theme;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::time::Instant;
    let (rss0, _) = rss_mb();
    let t0 = Instant::now();
    let store = fx_view::store::Store::open(run);
    let load = t0.elapsed();
    let theme = Theme::new(false);
    let mut term = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    let mut state = State::default();
    let draw = |term: &mut Terminal<TestBackend>, state: &mut State| {
        let mut drawn = Default::default();
        term.draw(|f| drawn = fx_view::ui::draw(f, &fx_view::ui::View { store: &store, state, theme: &theme, now: None })).expect("drawing");
        state.after_draw(drawn);
    };
    draw(&mut term, &mut state);
    let first = t0.elapsed();
    println!("{}: {} metric rows, {} events", run.display(), store.metrics.len(), store.events.len());
    println!("read {:.0} ms, first screen {:.0} ms after start", load.as_secs_f64() * 1e3, first.as_secs_f64() * 1e3);
    for screen in Screen::ALL {
        state.screen = screen;
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            draw(&mut term, &mut state);
        }
        println!("redraw {:9} {:6.2} ms", screen.title(), t.elapsed().as_secs_f64() * 1e3 / n as f64);
    }
    let (rss, hwm) = rss_mb();
    println!("memory: {rss:.1} MB resident ({:.1} MB for the run), peak {hwm:.1} MB", rss - rss0);
}
