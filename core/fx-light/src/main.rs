//! `fx-light`: fx's commands that need no libtorch, in a process that does not link it.
//!
//! Loading libtorch with its CUDA libraries costs a process ~350 MB of memory before it does
//! anything (measured here: `fx-tui --version` peaks at 473 MB), which a viewer on a shared login
//! node should not pay. `fx-tui` therefore replaces itself (exec) with this binary, found beside
//! it, for what needs no model: the viewer after starting a trainer, `attach`, the runs browser,
//! `report`, `compare`. Users call `fx-tui`; the arguments here mirror its commands.
//!
//! ```text
//! fx-light view [--ascii] RUN                  the live viewer on a run directory
//! fx-light browse [--ascii] [--dir DIR]...     the runs browser (default folder: runs)
//! fx-light export RUN --out DIR [--student]    charts and tables (no overlay gallery)
//! fx-light report RUN... --out DIR             the ablation table
//! fx-light compare RUN... [--metric D/T/M]... [--model M] --out DIR
//! fx-light fabricate DIR [--cycles N]          a finished paper-scale run (benchmarks, tests)
//! fx-light bench RUN                           reading and drawing cost of a run (make bench)
//! ```

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::exit;

#[derive(Parser)]
#[command(name = "fx-light", version, about = "fx without libtorch: viewer, runs browser, export, report, compare")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    View {
        run: PathBuf,
        #[arg(long)]
        ascii: bool,
    },
    Browse {
        #[arg(long = "dir", default_value = "runs")]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        ascii: bool,
    },
    Export(fx_export::cli::ExportArgs),
    Report(fx_export::cli::ReportArgs),
    Compare(fx_export::cli::CompareArgs),
    Fabricate {
        dir: PathBuf,
        #[arg(long, default_value_t = 20)]
        cycles: usize,
    },
    Bench {
        run: PathBuf,
    },
}

fn main() {
    // A trainer started by the fx-tui this process replaced is our child: reap it when it ends
    // (SIG_IGN for SIGCHLD makes the kernel do so), and any that ended before the exec.
    // SAFETY: waitpid and signal with these arguments have no memory effects.
    unsafe {
        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        // A closed pipe (`fx-tui report ... | head`) ends quietly, as it does `cat`.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let opts = |ascii: bool| fx_view::ViewOptions { ascii: ascii || !fx_view::locale_is_utf8(), ..Default::default() };
    let result = match cli.command {
        Command::View { run, ascii } => {
            if run.join("experiment.toml").is_file() || run.join("run.json").is_file() {
                fx_view::attach(&run, opts(ascii)).map(|_| ())
            } else {
                Err(anyhow::anyhow!("{} is not a run directory (no experiment.toml)", run.display()))
            }
        }
        Command::Browse { dirs, ascii } => fx_view::browse_runs(&dirs, opts(ascii)),
        Command::Export(a) => a.run(),
        Command::Report(a) => a.run(),
        Command::Compare(a) => a.run(),
        Command::Fabricate { dir, cycles } => fabricate(&dir, cycles),
        Command::Bench { run } => {
            bench(&run);
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("fx-tui: error: {e:#}");
        exit(2);
    }
}

fn fabricate(dir: &std::path::Path, cycles: usize) -> anyhow::Result<()> {
    let f = fx_run::fabricate::run(dir, "paper-scale", cycles, true, 1)?;
    println!(
        "{}: {} epochs, {} (dataset, task) pairs, {} metric rows ({:.1} MB of metrics.jsonl)",
        dir.display(),
        f.epochs,
        f.pairs,
        f.metric_rows,
        f.metrics_bytes as f64 / 1e6
    );
    Ok(())
}

/// This process's resident and peak resident memory in MB (Linux /proc).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
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
    let store = fx_run::store::Store::open(run);
    let load = t0.elapsed();
    let theme = Theme::new(false);
    let mut term = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    let mut state = State::default();
    let draw = |term: &mut Terminal<TestBackend>, state: &mut State| {
        let mut drawn = Default::default();
        term.draw(|f| {
            drawn = fx_view::ui::draw(f, &fx_view::ui::View { store: &store, state, theme: &theme, now: None })
        })
        .expect("drawing");
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
