//! The command line's definitions (clap): every command, its arguments and their help.

use crate::data;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fx-tui",
    version,
    about = "Foundation X: one model for chest X-ray classification, localization and segmentation"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Experiment TOML to train (e.g. experiments/demo.toml).
    pub experiment: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Print progress lines instead of the live viewer (automatic without a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Device: auto (CUDA when available), cpu, cuda, cuda:N. Overrides the experiment's `device`.
    #[arg(long)]
    pub device: Option<String>,
    /// Override any experiment key, e.g. --set train.cycles=3 --set datasets.0.root=/data/x
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue a run directory after its last complete epoch.
    #[arg(long, value_name = "RUN", conflicts_with = "experiment")]
    pub resume: Option<PathBuf>,
    /// Viewer: ASCII glyphs and borders (automatic when the locale is not UTF-8).
    #[arg(long)]
    pub ascii: bool,
    /// Data-parallel training with N worker processes on this node (one per GPU; on the CPU, N
    /// processes sharing the cores), through c10d, as `torchrun --nproc-per-node N` would start
    /// them. `train.batch_size` is per worker. Under torchrun or Slurm, leave this out: fx reads
    /// their variables (RANK, WORLD_SIZE, ... or SLURM_PROCID, SLURM_NTASKS, ...).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nproc_per_node: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
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
    PluginHost {
        library: PathBuf,
    },
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
    Compare(fx_export::cli::CompareArgs),
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
    Add {
        run: PathBuf,
        file: PathBuf,
    },
    /// Send a command to a run's trainer: pause, resume, stop, export, ping.
    Ctl {
        run: PathBuf,
        command: String,
    },
    /// Charts (PNG + SVG, the paper's Figure 2 per dataset × task) and tables (CSV, Markdown,
    /// LaTeX) of one run, and a gallery of the model's overlays on test images.
    Export {
        #[command(flatten)]
        args: fx_export::cli::ExportArgs,
        /// Charts and tables only: no gallery of the model's overlays (which loads the model;
        /// without it the export runs in the small libtorch-free process).
        #[arg(long)]
        no_gallery: bool,
    },
    Report(fx_export::cli::ReportArgs),
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
        /// train.activation_checkpointing of the timed step: recompute the Swin blocks and the
        /// DINO encoder layers in the backward (compare the peak memory printed at the end).
        #[arg(long)]
        activation_checkpointing: bool,
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
