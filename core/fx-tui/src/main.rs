//! fx-tui: the Foundation X command line.
//!
//! `fx-tui EXPERIMENT` trains: in a terminal the trainer runs as its own detached process
//! (setsid, output to the run's trainer.log) and the live viewer attaches to its run directory;
//! without a terminal (or with --headless) it trains in this process and prints progress lines.
//! `fx-tui attach` re-attaches, `fx-tui runs` lists runs, `fx-tui ctl` sends pause/resume/stop/
//! export, `fx-tui plan` prints the schedule, `fx-tui features` extracts backbone features.

mod bench;
mod control;
mod data;
mod export;
mod headless;
mod launch;
mod plan;
mod predict;
mod runs;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::{resolve_device, Trainer};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "fx-tui",
    version,
    about = "Foundation X: one model for chest X-ray classification, localization and segmentation"
)]
#[command(args_conflicts_with_subcommands = true)]
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
    /// Viewer: ASCII glyphs and borders (automatic when the locale is not UTF-8).
    #[arg(long)]
    ascii: bool,
    /// Data-parallel training with N worker processes on this node (one per GPU; on the CPU, N
    /// processes sharing the cores), through c10d, as `torchrun --nproc-per-node N` would start
    /// them. `train.batch_size` is per worker. Under torchrun or Slurm, leave this out: fx reads
    /// their variables (RANK, WORLD_SIZE, ... or SLURM_PROCID, SLURM_NTASKS, ...).
    #[arg(long, value_name = "N", default_value_t = 1)]
    nproc_per_node: usize,
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
    /// What fx reads from each dataset: per split the images, labels (positive/negative/unknown),
    /// boxes, mask coverage, image sizes and warnings; or one JSON line per sample.
    Data {
        experiment: PathBuf,
        /// Only these datasets (by name); repeatable.
        #[arg(long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        #[arg(long, value_enum, default_value = "all")]
        split: data::SplitArg,
        #[arg(long, value_enum, default_value = "text")]
        format: data::DataFormat,
        /// Decode every image (all cores) and list the unreadable ones; exit status 1 if any.
        #[arg(long)]
        check: bool,
        /// Also write each sample's decoded image as fx sees it (8-bit PNG after the DICOM LUTs
        /// and window) under `DIR/<dataset>/` — to look at, or to feed `predict`.
        #[arg(long, value_name = "DIR")]
        save_images: Option<PathBuf>,
        /// At most N samples per dataset and split.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Decode every image of the experiment's datasets into the preprocessing cache (all cores,
    /// progress bar), so training reads small cached images from its first epoch on.
    Prepare {
        experiment: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Run a trained model on new images (DICOM, PNG, JPEG, MetaImage, or folders of them):
    /// classification scores, detections and masks in ORIGINAL pixels, and an overlay per image.
    Predict {
        /// A run directory (its last checkpoint), a checkpoint file, or a model file (export-model).
        model: PathBuf,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long, default_value = "predictions")]
        out: PathBuf,
        /// Only these datasets' heads (repeatable; default: every head of the model).
        #[arg(long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        #[arg(long, default_value = "cls,loc,seg")]
        tasks: String,
        /// Detections scoring below this are dropped.
        #[arg(long, default_value_t = 0.3)]
        threshold: f32,
        /// Which model of a run: teacher (the paper's) or student.
        #[arg(long = "model", value_name = "teacher|student", default_value = "teacher")]
        role: String,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Skip the overlay PNGs.
        #[arg(long)]
        no_overlays: bool,
    },
    /// Write a run's teacher (or student) as one portable .safetensors model file: backbone under
    /// timm's names, heads and the model card (architecture, datasets, labels, preprocessing,
    /// provenance, final metrics) in it; usable by predict, features and `[finetune] from`.
    ExportModel {
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long = "model", value_name = "teacher|student", default_value = "teacher")]
        role: String,
    },
    /// (internal) Serve a plugin library's datasets to an fx process over stdin/stdout.
    #[command(hide = true)]
    PluginHost { library: PathBuf },
    /// Re-attach the live viewer to a running or finished run (default: the newest in --runs-dir).
    Attach {
        run: Option<PathBuf>,
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        #[arg(long)]
        ascii: bool,
    },
    /// The runs browser (in a terminal; `fx-tui` alone opens it too): every run under the output
    /// folders with status, progress, latest metrics and tags; filter, sort, group by sweep, open,
    /// pause/resume/stop, tag, delete, and compare marked runs. Piped: a plain table.
    Runs {
        /// Output folders to list (repeatable).
        #[arg(long = "dir", visible_alias = "runs-dir", value_name = "DIR", default_value = "runs")]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        ascii: bool,
    },
    /// Compare runs: an overlay chart per metric (PNG + SVG, one line per run, the legend naming
    /// the experiment keys in which the runs differ), config-diff.md, and the final and best
    /// values (CSV, Markdown, LaTeX).
    Compare {
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// DATASET/TASK[/METRIC] to chart (repeatable; default: every main metric).
        #[arg(long, value_name = "DATASET/TASK/METRIC")]
        metric: Vec<String>,
        /// teacher or student (default: the teacher when the runs have its rows).
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value = "compare")]
        out: PathBuf,
    },
    /// Run every combination of --grid values as its own run, one after another (headless), then
    /// write the ablation report over them into `<output_dir>/<name>-sweep-report`.
    Sweep {
        experiment: PathBuf,
        /// KEY=V1,V2,...; `lock_release` and `student_teacher` mean their `.enabled` switch.
        #[arg(long = "grid", value_name = "KEY=V1,V2", required_unless_present = "seeds")]
        grid: Vec<String>,
        /// Run every cell with each of these seeds (the same as --grid seed=0,1,2); the report
        /// then shows each cell as mean ± std over its seeds.
        #[arg(long, value_name = "S1,S2,...")]
        seeds: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        device: Option<String>,
        /// Train in this process and print progress lines (automatic without a terminal); in a
        /// terminal the sweep runs detached and the viewer follows each of its runs in turn.
        #[arg(long)]
        headless: bool,
        #[arg(long)]
        ascii: bool,
    },
    /// List the dataset plugins: built in, and those of plugin libraries (--load LIB.so, or an
    /// experiment's `plugins`).
    Plugins {
        #[arg(long = "load", value_name = "LIB")]
        load: Vec<PathBuf>,
        /// Also load the plugin libraries this experiment lists.
        experiment: Option<PathBuf>,
    },
    /// Hot-add datasets to a run while it trains: FILE holds `[[datasets]]` tables (and optionally
    /// `plugins = [...]`) as in an experiment. They are checked here, then the trainer adds them at
    /// its next epoch boundary, from the next cycle on, with their own heads.
    Add { run: PathBuf, file: PathBuf },
    /// Send a command to a run's trainer: pause, resume, stop, export, ping.
    Ctl { run: PathBuf, command: String },
    /// Charts (PNG + SVG, the paper's Figure 2 per dataset × task) and tables (CSV, Markdown,
    /// LaTeX) of one run.
    Export {
        run: PathBuf,
        #[arg(long, default_value = "report")]
        out: PathBuf,
        /// Also chart the student (the teacher is always charted).
        #[arg(long)]
        student: bool,
        /// Charts and tables only: no gallery of the model's overlays (which loads the model;
        /// without it the export runs in the small libtorch-free process).
        #[arg(long)]
        no_gallery: bool,
        /// Chart only these cycles: A-B, A, or last:N (the tables cover the whole run).
        #[arg(long, value_name = "A-B|A|last:N")]
        cycles: Option<String>,
    },
    /// Ablation table across runs (e.g. Lock-Release × Student-Teacher): one row per run, the
    /// experiment keys that differ between them, and the final teacher metrics.
    Report {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "report")]
        out: PathBuf,
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
        /// The branch whose training step is timed: cls, loc (DINO at the paper's sizes) or seg;
        /// or `input`: decode and loader throughput of the image files in --images.
        #[arg(long, default_value = "cls")]
        task: String,
        /// train.precision of the timed step: auto (bf16 where native), fp32, bf16 or fp16.
        #[arg(long, default_value = "auto")]
        precision: String,
        /// For --task input: a folder of image files (make bench writes 2048×2048 ones).
        #[arg(long)]
        images: Option<PathBuf>,
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
        /// Image files (DICOM, MetaImage, PNG, JPEG, ...) or one .safetensors holding `input` (N, 3, H, W).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

/// The built-in plugins plus every plugin library beside this executable and in FX_PLUGIN_PATH.
fn registry() -> Registry {
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
static CONTROL: std::sync::OnceLock<fx::train::Control> = std::sync::OnceLock::new();

fn process_control() -> fx::train::Control {
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
fn install_signal_handlers() {
    let _ = process_control();
    unsafe {
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn interactive(args: &TrainArgs) -> bool {
    !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Two trainers on one run directory would interleave their rows: refuse a run whose trainer lives.
/// (The trainer itself takes the run's lock; this check only gives the viewer's parent the same
/// answer before it spawns anything.)
fn ensure_no_live_trainer(run_dir: &Path) -> Result<()> {
    let store = fx::store::RunStore::open(run_dir)?;
    let info: Option<fx::store::RunInfo> = store.read_json("run.json").ok();
    if let Some(i) = info {
        if store.is_locked() {
            anyhow::bail!(
                "{} is being trained by pid {} (status {}); attach to it with: fx-tui attach {}",
                run_dir.display(),
                i.pid,
                i.status,
                run_dir.display()
            );
        }
    }
    Ok(())
}

fn train(cli: &Cli) -> Result<()> {
    let args = &cli.train;
    let registry = registry();
    let rendezvous = fx::dist::Rendezvous::from_env()?;
    if args.nproc_per_node == 0 {
        anyhow::bail!("--nproc-per-node must be at least 1");
    }
    if args.nproc_per_node > 1 && rendezvous.is_some() {
        anyhow::bail!(
            "--nproc-per-node starts its own workers, but this process is already a rank of a job (RANK/WORLD_SIZE or \
             SLURM_NTASKS are set): leave --nproc-per-node out under torchrun or srun"
        );
    }
    // Rank 0 of a job takes the run's lock; the other ranks only read the run.
    if let Some(run) = args.resume.as_ref().filter(|_| rendezvous.as_ref().is_none_or(|r| r.rank == 0)) {
        ensure_no_live_trainer(run)?;
    }
    let device_override = args.device.as_deref().map(resolve_device).transpose()?;
    if let Some(r) = &rendezvous {
        return train_rank(cli, r, device_override, &registry);
    }
    if args.nproc_per_node > 1 && !interactive(args) {
        let run_dir = match (&args.resume, &cli.experiment) {
            (Some(run), _) => fx::store::RunStore::open(run)?.dir,
            (None, Some(path)) => {
                let exp = Experiment::load(path, &args.set)?;
                Trainer::prepare(&exp, &path.display().to_string(), &registry)?.dir
            }
            (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
        };
        // The workers stop on Ctrl-C themselves (same process group); the launcher waits for them.
        install_signal_handlers();
        return launch::run(&run_dir, &launch::Workers { count: args.nproc_per_node, device: args.device.as_deref() });
    }
    if interactive(args) {
        // The trainer gets its own process and session: closing this terminal, losing the SSH
        // link or quitting the viewer never touches it.
        let run_dir = match (&args.resume, &cli.experiment) {
            (Some(run), _) => fx::store::RunStore::open(run)?.dir,
            (None, Some(path)) => {
                let exp = Experiment::load(path, &args.set)?;
                Trainer::prepare(&exp, &path.display().to_string(), &registry)?.dir
            }
            (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
        };
        let pid = spawn_trainer(&run_dir, args.device.as_deref(), args.nproc_per_node)?;
        eprintln!("fx: trainer pid {pid}, run {} (log: trainer.log)", run_dir.display());
        return view(&run_dir, args.ascii);
    }
    let mut trainer = match (&args.resume, &cli.experiment) {
        (Some(run), _) => Trainer::resume(run, &registry, device_override)?,
        (None, Some(path)) => {
            let exp = Experiment::load(path, &args.set)?;
            let device = match device_override {
                Some(d) => d,
                None => resolve_device(&exp.device)?,
            };
            Trainer::create(exp, &path.display().to_string(), &registry, device)?
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
    };
    install_signal_handlers();
    trainer.set_control(process_control());
    if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
        // Training works without it; viewers then cannot pause or stop this run.
        let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
    }
    let mut printer = headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
    let status = trainer.run(&mut |p| printer.on(p))?;
    let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
    if status == "stopped" {
        printer.line(&format!("stopped; continue with: fx-tui --resume {}", trainer.run_dir().display()));
    }
    Ok(())
}

/// One rank of a data-parallel job (started by `--nproc-per-node`, torchrun or srun): joins the
/// c10d group; rank 0 creates the run (or takes the --resume one) and tells the others where it
/// is; every rank trains its slice; rank 0 prints and writes.
fn train_rank(
    cli: &Cli,
    r: &fx::dist::Rendezvous,
    device_override: Option<tch::Device>,
    registry: &Registry,
) -> Result<()> {
    let args = &cli.train;
    let world = fx::dist::World::join(r)?;
    let mine = if world.rank == 0 {
        Some(match (&args.resume, &cli.experiment) {
            (Some(run), _) => fx::store::RunStore::open(run)?.dir,
            (None, Some(path)) => {
                let exp = Experiment::load(path, &args.set)?;
                Trainer::prepare(&exp, &path.display().to_string(), registry)?.dir
            }
            (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
        })
    } else {
        None
    };
    let run_dir = world.share_run_dir(mine.as_deref())?;
    let rank = world.rank;
    let mut trainer = Trainer::resume_in(&run_dir, registry, device_override, Some(world))?;
    install_signal_handlers();
    trainer.set_control(process_control());
    if rank == 0 {
        if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
            let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
        }
    }
    let mut printer = headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
    let status = trainer.run(&mut |p| printer.on(p))?;
    if rank == 0 {
        let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
        if status == "stopped" {
            printer.line(&format!(
                "stopped; continue with: fx-tui --resume {} --nproc-per-node N",
                trainer.run_dir().display()
            ));
        }
    }
    Ok(())
}

/// Starts `fx-tui --resume RUN --headless` in a new session with its output in RUN/trainer.log
/// (with `--nproc-per-node N`, the launcher of N workers).
fn spawn_trainer(run_dir: &Path, device: Option<&str>, nproc_per_node: usize) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(run_dir.join("trainer.log"))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--resume").arg(run_dir).arg("--headless");
    if nproc_per_node > 1 {
        cmd.arg("--nproc-per-node").arg(nproc_per_node.to_string());
    }
    if let Some(d) = device {
        cmd.arg("--device").arg(d);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the trainer process")?;
    let pid = child.id();
    // Reap it when it ends (a viewer left open would otherwise keep a zombie).
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// The live viewer on a run directory; quitting asks detach or stop when the trainer runs.
/// The viewer on a run: this process becomes the light `fx-light` process (see [`exec_light`]),
/// so viewing never holds libtorch's memory.
fn view(run_dir: &Path, ascii: bool) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec!["view".into(), run_dir.as_os_str().to_owned()];
    if ascii {
        args.push("--ascii".into());
    }
    exec_light(&args)?;
    view_until(run_dir, ascii, false).map(|_| ())
}

/// Replaces this process with `fx-light ARGS` from beside this executable: the commands that need
/// no libtorch run without it (loading libtorch with its CUDA libraries costs ~350 MB before
/// main). Returns only when there is no such binary (a partial build); the caller then does the
/// work in this process.
pub(crate) fn exec_light(args: &[std::ffi::OsString]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let Some(bin) =
        std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("fx-light"))).filter(|b| b.is_file())
    else {
        return Ok(());
    };
    let err = std::process::Command::new(&bin).args(args).exec();
    Err(anyhow::anyhow!("starting {}: {err}", bin.display()))
}

/// The viewer in this process; with `until_done` it also returns when the run finishes (a sweep
/// then shows its next run).
fn view_until(run_dir: &Path, ascii: bool, until_done: bool) -> Result<fx_view::ViewExit> {
    let opts = fx_view::ViewOptions {
        ascii: ascii || !fx_view::locale_is_utf8(),
        exit_when_done: until_done,
        ..Default::default()
    };
    fx_view::attach(run_dir, opts)
}

/// `fx-tui add RUN FILE`: validates the datasets against the run (names free, plugins and
/// options good, the model has the branches they need), then queues the file in RUN/pending/.
fn add_datasets(run: &Path, file: &Path) -> Result<()> {
    let store = fx::store::RunStore::open(run)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let added = fx::train::parse_added_datasets(file, &text)?;
    let mut exp = Experiment::load(&store.path("experiment.toml"), &[])?;
    let known: Vec<String> = exp.datasets.iter().map(|d| d.name().to_string()).collect();
    for (i, d) in added.datasets.iter().enumerate() {
        if known.iter().any(|k| k == d.name()) {
            anyhow::bail!(
                "{}: datasets[{i}]: a dataset named `{}` is already in the run; give it another `name`",
                file.display(),
                d.name()
            );
        }
    }
    // The branches the run's model has: the tasks its plan trains.
    let plan: Vec<fx::schedule::EpochPlan> = store.read_json("plan.json")?;
    let before: Vec<fx_plugin::Task> = plan.iter().map(|p| p.task).collect();
    exp.plugins.extend(added.plugins.iter().cloned());
    let label = file.display().to_string();
    // The model can gain heads, not branches: a loc or seg task needs the run to have that branch.
    let reg = registry().with_libraries(&label, &exp.plugins)?;
    for (i, d) in added.datasets.iter().enumerate() {
        let ds = reg.open(&label, i, d, exp.cache_spec().as_ref())?;
        let tasks: Vec<fx_plugin::Task> = match &d.tasks {
            Some(t) => t.clone(),
            None => ds.desc().tasks().into_iter().filter(|t| exp.train.branch_on(*t)).collect(),
        };
        for t in tasks {
            if t != fx_plugin::Task::Cls && !before.contains(&t) {
                anyhow::bail!(
                    "{label}: datasets[{i}] ({}) trains {t}, but the run's model has no {t} branch (no dataset of the run trains {t}); leave it out with `tasks`",
                    d.name()
                );
            }
        }
    }
    exp.datasets.extend(added.datasets.iter().cloned());
    fx::train::open_datasets(&exp, &label, &registry())?;
    let pending = store.path("pending");
    std::fs::create_dir_all(&pending)?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "datasets".into());
    let dst = pending.join(format!("{}-{stem}.toml", chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")));
    fx::store::write_atomic(&dst, text.as_bytes())?;
    let alive = control::trainer_alive(run) == Some(true);
    println!(
        "queued {} dataset(s) as {}; {}",
        added.datasets.len(),
        dst.display(),
        if alive {
            "the trainer adds them at its next epoch boundary (events.jsonl: dataset_added)"
        } else {
            "they join when the run resumes (fx-tui --resume RUN)"
        }
    );
    Ok(())
}

/// The combinations of a sweep grid, each a list of `key=value` overrides.
fn combinations(grid: &[String]) -> Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for g in grid {
        let (key, values) = g
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--grid {g}: expected KEY=V1,V2 (e.g. lock_release=true,false)"))?;
        let key = match key {
            "lock_release" | "student_teacher" => format!("{key}.enabled"),
            k => k.to_string(),
        };
        let values: Vec<&str> = values.split(',').filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            anyhow::bail!("--grid {g}: no values");
        }
        let mut next = Vec::new();
        for c in &out {
            for v in &values {
                let mut combo = c.clone();
                combo.push(format!("{key}={v}"));
                next.push(combo);
            }
        }
        out = next;
    }
    Ok(out)
}

/// Every combination of the grid as its overrides and resolved experiment: all are validated
/// before the first one trains.
fn sweep_experiments(path: &Path, grid: &[String], set: &[String]) -> Result<Vec<(Vec<String>, Experiment)>> {
    combinations(grid)?
        .into_iter()
        .map(|c| {
            let mut overrides = set.to_vec();
            overrides.extend(c.iter().cloned());
            Experiment::load(path, &overrides).map(|e| (c, e))
        })
        .collect()
}

fn sweep(path: &Path, grid: &[String], set: &[String], device: Option<&str>) -> Result<()> {
    let registry = registry();
    let exps = sweep_experiments(path, grid, set)?;
    install_signal_handlers();
    let total = exps.len();
    let mut runs = Vec::new();
    let base = Experiment::load(path, set)?;
    std::fs::create_dir_all(&base.output_dir)?;
    let state_file = sweep_state_file(&base);
    for (k, (combo, mut exp)) in exps.into_iter().enumerate() {
        let tag: Vec<String> = combo.iter().map(|o| o.replace(".enabled", "").replace('=', "-")).collect();
        exp.name = format!("{}-{}", exp.name, tag.join("-"));
        export::say!("sweep {}/{total}: {} ({})", k + 1, exp.name, combo.join(" "));
        let device = match device {
            Some(d) => resolve_device(d)?,
            None => resolve_device(&exp.device)?,
        };
        let mut trainer = Trainer::create(exp, &path.display().to_string(), &registry, device)?;
        trainer.set_control(process_control());
        runs.push(trainer.run_dir());
        write_sweep_state(&state_file, &runs, total, "running")?;
        // Viewers following the sweep pause, resume and stop its runs through the socket.
        if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
            let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
        }
        let mut printer =
            headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
        let status = trainer.run(&mut |p| printer.on(p))?;
        let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
        if status != "finished" {
            write_sweep_state(&state_file, &runs, total, "stopped")?;
            export::say!("sweep stopped during {}", trainer.run_dir().display());
            break;
        }
    }
    if runs.len() == total {
        write_sweep_state(&state_file, &runs, total, "finished")?;
    }
    fx_export::cli::print_report(&runs, &base.output_dir.join(format!("{}-sweep-report", base.name)))
}

/// `<output_dir>/<name>-sweep.json`: the sweep's runs so far, for a viewer following it.
fn sweep_state_file(base: &Experiment) -> PathBuf {
    base.output_dir.join(format!("{}-sweep.json", base.name))
}

fn write_sweep_state(file: &Path, runs: &[PathBuf], total: usize, status: &str) -> Result<()> {
    let v = serde_json::json!({ "runs": runs, "total": total, "status": status });
    fx::store::write_atomic(file, serde_json::to_string_pretty(&v)?.as_bytes())
}

/// A sweep in a terminal: the sweep runs as its own detached process (closing the terminal or
/// quitting the viewer never stops it) and the viewer shows each of its runs in turn, moving on
/// when one finishes. `q` then detach leaves the sweep running; stop ends it after the current run's
/// step.
fn sweep_in_viewer(path: &Path, grid: &[String], set: &[String], device: Option<&str>, ascii: bool) -> Result<()> {
    use std::os::unix::process::CommandExt;
    // Everything is validated here, where the errors can be read.
    sweep_experiments(path, grid, set)?;
    let base = Experiment::load(path, set)?;
    std::fs::create_dir_all(&base.output_dir)?;
    let state_file = sweep_state_file(&base);
    let _ = std::fs::remove_file(&state_file);
    let log_path = base.output_dir.join(format!("{}-sweep.log", base.name));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("sweep").arg(path).arg("--headless");
    for g in grid {
        cmd.arg("--grid").arg(g);
    }
    for s in set {
        cmd.arg("--set").arg(s);
    }
    if let Some(d) = device {
        cmd.arg("--device").arg(d);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the sweep process")?;
    eprintln!("fx: sweep pid {}, log {}", child.id(), log_path.display());
    let mut shown = 0usize;
    loop {
        // Wait for the next run of the sweep to appear (or the sweep to end).
        let (runs, total, status) = loop {
            if let Ok(text) = std::fs::read_to_string(&state_file) {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let runs: Vec<PathBuf> = v["runs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(PathBuf::from)).collect())
                    .unwrap_or_default();
                let status = v["status"].as_str().unwrap_or("").to_string();
                if runs.len() > shown || status != "running" {
                    break (runs, v["total"].as_u64().unwrap_or(0) as usize, status);
                }
            }
            if child.try_wait()?.is_some() && !state_file.exists() {
                anyhow::bail!("the sweep process ended before its first run; see {}", log_path.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        if runs.len() <= shown {
            println!(
                "sweep {status}: {} of {total} runs; report in {}",
                runs.len(),
                base.output_dir.join(format!("{}-sweep-report", base.name)).display()
            );
            return Ok(());
        }
        let run = &runs[shown];
        shown += 1;
        // The last run stays on screen when it finishes, with the sweep's final numbers.
        match view_until(run, ascii, shown < total)? {
            fx_view::ViewExit::Done => continue,
            fx_view::ViewExit::Quit if shown == total => {
                println!(
                    "sweep of {total} runs done; report in {}",
                    base.output_dir.join(format!("{}-sweep-report", base.name)).display()
                );
                return Ok(());
            }
            fx_view::ViewExit::Stop => {
                println!("the sweep stops after this run's current step (log: {})", log_path.display());
                return Ok(());
            }
            _ => {
                println!(
                    "the sweep goes on in the background (log: {}); follow a run with: fx-tui attach",
                    log_path.display()
                );
                return Ok(());
            }
        }
    }
}

fn model_role(s: &str) -> Result<fx::config::ModelRole> {
    match s {
        "teacher" => Ok(fx::config::ModelRole::Teacher),
        "student" => Ok(fx::config::ModelRole::Student),
        other => anyhow::bail!("--model must be teacher or student, got `{other}`"),
    }
}

fn main() {
    // A closed pipe (`fx-tui runs | head -1`) ends a one-shot command quietly, as it does `cat`;
    // training ignores SIGPIPE (install_signal_handlers) and never panics on a closed stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    fx::assert_cuda_linked();
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Plan { experiment, format, set }) => {
            plan::print(experiment, set, matches!(format, Format::Json), &registry())
        }
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
        Some(Command::Bench { task, images, image_size, .. }) if task == "input" => match images {
            Some(dir) => bench::input(dir, (*image_size).max(1) as usize),
            None => Err(anyhow::anyhow!("bench --task input needs --images DIR")),
        },
        Some(Command::Bench { arch, image_size, batch_size, steps, device, task, precision, .. }) => bench::run(
            &bench::BenchArgs {
                arch: arch.clone(),
                image_size: *image_size,
                batch_size: *batch_size,
                steps: *steps,
                device: device.clone(),
                task: task.clone(),
                precision: precision.clone(),
            },
            &registry(),
        ),
        Some(Command::Attach { run, runs_dir, ascii }) => (|| {
            let dir = match run {
                Some(r) => r.clone(),
                None => runs::list(runs_dir)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("no runs in {}", runs_dir.display()))?,
            };
            fx::store::RunStore::open(&dir)?;
            view(&dir, *ascii)
        })(),
        Some(Command::Runs { dirs, ascii }) => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                runs::browse(dirs, *ascii)
            } else {
                runs::print(dirs)
            }
        }
        Some(Command::Compare { runs: dirs, metric, model, out }) => (|| {
            let mut args: Vec<std::ffi::OsString> = vec!["compare".into()];
            args.extend(dirs.iter().map(|r| r.as_os_str().to_owned()));
            for m in metric {
                args.extend(["--metric".into(), m.into()]);
            }
            if let Some(m) = model {
                args.extend(["--model".into(), m.into()]);
            }
            args.extend(["--out".into(), out.as_os_str().to_owned()]);
            exec_light(&args)?;
            fx_export::cli::print_compare(dirs, metric, model.as_deref(), out)
        })(),
        Some(Command::Sweep { experiment, grid, seeds, set, device, headless, ascii }) => {
            let mut grid = grid.clone();
            if let Some(s) = seeds {
                grid.push(format!("seed={s}"));
            }
            let grid = &grid;
            let tty = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
            if *headless || !tty {
                sweep(experiment, grid, set, device.as_deref())
            } else {
                sweep_in_viewer(experiment, grid, set, device.as_deref(), *ascii)
            }
        }
        Some(Command::Plugins { load, experiment }) => (|| {
            let mut libs = load.clone();
            if let Some(e) = experiment {
                libs.extend(Experiment::load(e, &[])?.plugins);
            }
            let r = registry().with_libraries("--load", &libs)?;
            println!(
                "plugin ABI {} — libraries are searched beside fx-tui and in FX_PLUGIN_PATH",
                fx_plugin::ABI_VERSION
            );
            for (name, summary, from) in r.describe() {
                println!("{name:16} {from}\n{:16} {summary}", "");
            }
            Ok(())
        })(),
        Some(Command::Add { run, file }) => add_datasets(run, file),
        Some(Command::Ctl { run, command }) => control::send(run, command).map(|reply| println!("{reply}")),
        Some(Command::Export { run, out, student, no_gallery: true, cycles }) => (|| {
            let mut args: Vec<std::ffi::OsString> =
                vec!["export".into(), run.as_os_str().to_owned(), "--out".into(), out.as_os_str().to_owned()];
            if *student {
                args.push("--student".into());
            }
            if let Some(c) = cycles {
                args.extend(["--cycles".into(), c.into()]);
            }
            exec_light(&args)?;
            fx_export::cli::print_export(run, out, &export::options(*student, cycles.clone()))
        })(),
        Some(Command::Export { run, out, student, no_gallery: false, cycles }) => {
            export::print_export(run, out, &export::options(*student, cycles.clone()), &registry())
        }
        Some(Command::Report { runs, out }) => (|| {
            let mut args: Vec<std::ffi::OsString> = vec!["report".into()];
            args.extend(runs.iter().map(|r| r.as_os_str().to_owned()));
            args.extend(["--out".into(), out.as_os_str().to_owned()]);
            exec_light(&args)?;
            fx_export::cli::print_report(runs, out)
        })(),
        Some(Command::Data { experiment, datasets, split, format, check, save_images, limit, set }) => {
            let args = data::DataArgs {
                experiment,
                set,
                datasets,
                split: *split,
                format: *format,
                check: *check,
                save_images: save_images.as_deref(),
                limit: *limit,
            };
            match data::run(&args, &registry()) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
        Some(Command::Prepare { experiment, set }) => data::prepare(experiment, set, &registry()),
        Some(Command::PluginHost { library }) => fx::dynlib::serve_plugin_host(library),
        Some(Command::Predict {
            model,
            inputs,
            out,
            datasets,
            tasks,
            threshold,
            role,
            device,
            batch_size,
            no_overlays,
        }) => (|| {
            let args = predict::PredictArgs {
                model,
                inputs,
                out,
                datasets,
                tasks,
                threshold: *threshold,
                role: model_role(role)?,
                device: resolve_device(device)?,
                batch_size: *batch_size,
                overlays: !no_overlays,
            };
            predict::run(&args)
        })(),
        Some(Command::ExportModel { run, out, role }) => (|| predict::export_model(run, model_role(role)?, out))(),
        // `fx-tui` alone: the runs browser in a terminal, the usage otherwise.
        None if cli.experiment.is_none() && cli.train.resume.is_none() => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                runs::browse(&[PathBuf::from("runs")], cli.train.ascii)
            } else {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                std::process::exit(2);
            }
        }
        None => train(&cli),
    };
    if let Err(e) = result {
        eprintln!("fx-tui: error: {e:#}");
        std::process::exit(2);
    }
}
