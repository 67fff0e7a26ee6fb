//! fx-tui: the Foundation X command line.
//!
//! `fx-tui EXPERIMENT` trains (headless progress lines; the live viewer attaches to the same run
//! store), `fx-tui --resume RUN` continues a run, `fx-tui plan` prints the schedule without
//! training, `fx-tui features` extracts backbone features.

mod bench;
mod headless;
mod plan;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::{resolve_device, Trainer};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "fx-tui", version, about = "Foundation X: one model for chest X-ray classification, localization and segmentation")]
#[command(args_conflicts_with_subcommands = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Experiment TOML to train (e.g. experiments/demo.toml).
    experiment: Option<PathBuf>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Print progress lines instead of the live viewer (automatic without a terminal).
    #[arg(long)]
    headless: bool,
    /// Device: auto (CUDA when available), cpu, cuda, cuda:N. Overrides the experiment's `device`.
    #[arg(long)]
    device: Option<String>,
    /// Override any experiment key, e.g. --set train.cycles=3 --set datasets.0.root=/data/x
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue a run directory after its last complete epoch.
    #[arg(long, value_name = "RUN", conflicts_with = "experiment")]
    resume: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print the resolved config, datasets, epoch-by-epoch schedule and parameter counts; no training.
    Plan {
        experiment: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Training and evaluation img/s of the real pipeline at full size (default: the paper's Swin-B, 224 px, batch 24).
    Bench {
        #[arg(long, default_value = "swin_base")]
        arch: String,
        #[arg(long, default_value_t = 224)]
        image_size: i64,
        #[arg(long, default_value_t = 24)]
        batch_size: usize,
        /// Timed training steps (one warm-up step runs first).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Write pooled and per-stage backbone features of images (or a normalised tensor batch).
    Features {
        /// timm or Ark Swin weights (.safetensors, either timm layout).
        #[arg(long)]
        weights: PathBuf,
        /// swin_base, swin_small, swin_tiny, swin_test, swin_nano.
        #[arg(long)]
        arch: String,
        /// Input size images are resized to (ignored for a tensor input).
        #[arg(long, default_value_t = 224)]
        image_size: i64,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Output .safetensors: `pooled` (N, C) and `stage0..` (N, C_i, H_i, W_i).
        #[arg(long)]
        out: PathBuf,
        /// Image files (PNG, JPEG; 8/16 bit) or one .safetensors holding `input` (N, 3, H, W).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

fn registry() -> Registry {
    Registry::new(fx_phantom::plugins())
}

extern "C" fn on_stop_signal(_: libc::c_int) {
    fx::train::STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Ctrl-C / SIGTERM stop after the current step (the run resumes at its last complete epoch); a lost
/// SSH terminal (SIGHUP) must not kill training.
fn install_signal_handlers() {
    unsafe {
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn train(cli: &Cli) -> Result<()> {
    let args = &cli.train;
    let registry = registry();
    let device_override = args.device.as_deref().map(resolve_device).transpose()?;
    let mut trainer = match (&args.resume, &cli.experiment) {
        (Some(run), _) => Trainer::resume(run, &registry, device_override)?,
        (None, Some(path)) => {
            let exp = Experiment::load(path, &args.set)?;
            let device = match device_override {
                Some(d) => d,
                None => resolve_device(&exp.device)?,
            };
            let resolved = toml::to_string(&exp).context("serialising the resolved experiment")?;
            Trainer::create(exp, &path.display().to_string(), &resolved, &registry, device)?
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
    };
    if !args.headless && std::io::stdout().is_terminal() {
        eprintln!("fx: the live viewer is not built yet; showing headless progress (same run store).");
    }
    install_signal_handlers();
    let mut printer = headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
    let status = trainer.run(&mut |p| printer.on(p))?;
    if status == "stopped" {
        printer.line(&format!("stopped; continue with: fx-tui --resume {}", trainer.run_dir().display()));
    }
    Ok(())
}

fn main() {
    fx::assert_cuda_linked();
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Plan { experiment, format, set }) => plan::print(experiment, set, matches!(format, Format::Json), &registry()),
        Some(Command::Features { weights, arch, image_size, device, out, inputs }) => (|| {
            let device = resolve_device(device)?;
            let r = fx::features::extract(weights, arch, *image_size, inputs, out, device)?;
            println!("weights: {} ({}), {} tensors loaded", weights.display(), r.load.layout, r.load.loaded);
            if !r.load.missing.is_empty() {
                println!("missing (kept at initial values): {}", r.load.missing.join(", "));
            }
            if !r.load.unexpected.is_empty() {
                println!("not part of the backbone (ignored): {}", r.load.unexpected.join(", "));
            }
            println!("{} input(s) → {}", r.inputs, out.display());
            for (name, shape) in &r.outputs {
                println!("  {name:8} {shape:?}");
            }
            Ok(())
        })(),
        Some(Command::Bench { arch, image_size, batch_size, steps, device }) => bench::run(
            &bench::BenchArgs { arch: arch.clone(), image_size: *image_size, batch_size: *batch_size, steps: *steps, device: device.clone() },
            &registry(),
        ),
        None => train(&cli),
    };
    if let Err(e) = result {
        eprintln!("fx-tui: error: {e:#}");
        std::process::exit(2);
    }
}
