//! Experiment configuration: one TOML file, overridable key by key with `--set key=value`.
//!
//! Every table denies unknown keys; errors name the file, line and column, the key and what was
//! expected, with a did-you-mean for misspelt keys.

use anyhow::{anyhow, bail, Result};
use fx_data::augment::Augment;
use fx_plugin::LabelMode;
use fx_plugin::Task;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Run name prefix: `runs/<name>-<yyyymmdd-hhmmss>`.
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
    #[serde(default = "default_device")]
    pub device: String,
    /// Folder that receives the run directories.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub student_teacher: StudentTeacherConfig,
    #[serde(default)]
    pub lock_release: LockReleaseConfig,
    #[serde(default)]
    pub augment: AugmentConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub finetune: FinetuneConfig,
    /// Plugin libraries (cdylib built with `fx_plugin::export_plugins!`) whose plugins the datasets
    /// may name, besides the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PathBuf>,
    /// Folders of dataset files (TOMLs of `[[datasets]]` tables, as for `fx-tui add`) that the
    /// live viewer's add key offers while the run trains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PathBuf>,
    /// Run directories readable by the owner's group (0750; viewers of teammates), instead of the
    /// owner's only (0700). The control socket stays the owner's either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_with_group: bool,
    /// Where plugin libraries' code runs: "auto" (a child process for libraries that are not
    /// part of this fx build, so a crash in one cannot take the trainer down), "process", "none".
    #[serde(default)]
    pub plugin_isolation: crate::dynlib::Isolation,
    /// For an experiment on real datasets: its phantom twin, named when dataset roots are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phantom_twin: Option<PathBuf>,
    pub datasets: Vec<DatasetConfig>,
}

fn default_seed() -> u64 {
    0
}
fn default_device() -> String {
    "auto".into()
}
fn default_output_dir() -> PathBuf {
    "runs".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// swin_base (the paper's), swin_small, swin_tiny, swin_test (~1 M params) or swin_nano.
    pub arch: String,
    #[serde(default = "default_image_size")]
    pub image_size: i64,
    /// Stochastic depth; the architecture's default when absent (0.2 for swin_base).
    pub drop_path: Option<f64>,
    /// Initial backbone weights (timm or Ark Swin state dict, .safetensors).
    pub weights: Option<PathBuf>,
    /// UperNet pyramid-pooling channels (paper: 256).
    #[serde(default = "default_ppm_channels")]
    pub ppm_channels: i64,
    /// UperNet FPN channels (paper: 128).
    #[serde(default = "default_fpn_channels")]
    pub fpn_channels: i64,
    /// Sizes of the localization branch (DINO); the defaults are the paper's.
    #[serde(default)]
    pub dino: crate::dino::DinoConfig,
}

fn default_ppm_channels() -> i64 {
    crate::upernet::PPM_CHANNELS
}
fn default_fpn_channels() -> i64 {
    crate::upernet::FPN_CHANNELS
}

fn default_image_size() -> i64 {
    224
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Number of cycles; a cycle trains every (dataset, task) once.
    pub cycles: usize,
    /// Print a progress line every this many steps.
    pub log_every: usize,
    /// Loader worker threads (decode + augment); 0 = number of CPU cores.
    pub workers: usize,
    /// Samples a loader may hold ready ahead of the trainer, in batches.
    pub prefetch: usize,
    /// Which branches train (paper Section 3.1): any of "C", "L", "S" — "CLS" is Foundation X-CLS,
    /// "LS" Foundation X-LS, "C" Foundation X-C, ...
    pub branches: String,
    /// The order of the (dataset, task) epochs within a cycle.
    pub order: Order,
    /// Arithmetic of the forward passes (training and evaluation): "auto" (bf16 where the device
    /// computes it natively, fp32 otherwise), "fp32", "bf16" or "fp16" (with gradient scaling).
    /// Weights, optimizer moments, losses and metrics stay fp32 in every case.
    pub precision: Precision,
    /// In a data-parallel job, the segmentation decoder's BatchNorm layers normalise with the
    /// statistics of the global batch (torch.nn.SyncBatchNorm) instead of each rank's slice: the
    /// job then trains segmentation as one process with the global batch. No effect in one process.
    pub sync_batchnorm: bool,
    /// Recompute the activations of the backbone's Swin blocks and of the DINO encoder's layers
    /// in the backward instead of keeping them (timm's `set_grad_checkpointing`, DINO's
    /// `use_checkpoint`): the memory of one block's activations instead of all of them, for one
    /// more forward of each (the loc step at Swin-B 224, batch 8, on 2 CPU cores: 10.6 → 7.0 GB
    /// peak, no measurable slowdown). The gradients, and so the run, are exactly those without it.
    pub activation_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 24,
            cycles: 1,
            log_every: 10,
            workers: 0,
            prefetch: 4,
            branches: "CLS".into(),
            order: Order::Dataset,
            precision: Precision::Auto,
            sync_batchnorm: false,
            activation_checkpointing: false,
        }
    }
}

/// How a cycle walks its (dataset, task) pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Dataset-major: each dataset in turn, its cls, then loc, then seg task (the paper's
    /// pretraining cycle, Section 3.3).
    #[default]
    Dataset,
    /// Task-major: every dataset's cls task, then every loc task, then every seg task (the
    /// paper's Table 8 organ schedule: localize heart, left lung, right lung, then segment them).
    Task,
}

impl Order {
    pub const ALL: [Order; 2] = [Order::Dataset, Order::Task];

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Dataset => "dataset",
            Order::Task => "task",
        }
    }
}

// Hand-written so that a wrong value names the key and the accepted values; serde's own enum
// error ("unknown variant") names neither the key nor what each value means.
impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        Order::ALL.into_iter().find(|o| v.as_str() == Some(o.as_str())).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "train.order must be \"dataset\" (each dataset's tasks in turn) or \"task\" \
                 (every dataset's cls, then loc, then seg task), got {v}"
            ))
        })
    }
}

/// `train.precision`: the arithmetic of the forward passes under autocast (`torch.autocast`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 on CUDA and on CPUs with native bf16 instructions (AVX-512 BF16 or AMX), fp32 elsewhere.
    #[default]
    Auto,
    Fp32,
    Bf16,
    /// fp16 autocast with a dynamic gradient scale (`torch.amp.GradScaler`).
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Precision::Auto, Precision::Fp32, Precision::Bf16, Precision::Fp16];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// What "auto" means on `device`; the explicit values stay as they are.
    pub fn resolve(self, device: tch::Device) -> Precision {
        match self {
            Precision::Auto if device.is_cuda() || cpu_has_native_bf16() => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            p => p,
        }
    }
}

/// Whether this CPU computes bf16 natively (without it, bf16 matmuls are emulated and slower
/// than fp32): the `avx512_bf16` or `amx_bf16` flag in /proc/cpuinfo.
pub fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
        })
        .unwrap_or(false)
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        Precision::ALL.into_iter().find(|o| v.as_str() == Some(o.as_str())).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "train.precision must be \"auto\" (bf16 where the device computes it natively), \"fp32\", \"bf16\" \
                 or \"fp16\", got {v}"
            ))
        })
    }
}

impl TrainConfig {
    /// Whether the branch of `task` is selected by `branches`.
    pub fn branch_on(&self, task: Task) -> bool {
        let letter = match task {
            Task::Cls => 'C',
            Task::Loc => 'L',
            Task::Seg => 'S',
        };
        self.branches.contains(letter)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub lr: LrConfig,
    /// How the rates change from cycle to cycle.
    pub lr_schedule: LrSchedule,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lr: LrConfig::default(),
            lr_schedule: LrSchedule::default(),
        }
    }
}

/// Step-wise learning-rate schedule, applied at cycle boundaries (as the authors' code does): the
/// first `warmup_cycles` run at `warmup_factor` × the rates, then a cosine decays the factor from
/// 1 towards `min_factor` over the remaining cycles. `decay = "none"` keeps the rates constant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrSchedule {
    pub warmup_cycles: usize,
    pub warmup_factor: f64,
    pub decay: LrDecay,
    pub min_factor: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDecay {
    None,
    Cosine,
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule { warmup_cycles: 1, warmup_factor: 0.05, decay: LrDecay::Cosine, min_factor: 0.0 }
    }
}

impl LrSchedule {
    /// The factor of the rates in cycle `cycle` (1-based) of `cycles`.
    pub fn factor(&self, cycle: usize, cycles: usize) -> f64 {
        if cycle <= self.warmup_cycles {
            return self.warmup_factor;
        }
        match self.decay {
            LrDecay::None => 1.0,
            LrDecay::Cosine => {
                let span = cycles.saturating_sub(self.warmup_cycles).max(1) as f64;
                let t = (cycle - self.warmup_cycles - 1) as f64 / span;
                self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Learning rate of each parameter group (paper: backbone 1e-5, the rest 1e-4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrConfig {
    pub backbone: f64,
    pub cls_head: f64,
    pub loc_encoder: f64,
    pub loc_decoder: f64,
    pub seg_decoder: f64,
    pub seg_head: f64,
}

impl Default for LrConfig {
    fn default() -> Self {
        LrConfig {
            backbone: 1e-5,
            cls_head: 1e-4,
            loc_encoder: 1e-4,
            loc_decoder: 1e-4,
            seg_decoder: 1e-4,
            seg_head: 1e-4,
        }
    }
}

impl LrConfig {
    /// The rate of a parameter group.
    pub fn of(&self, g: crate::group::Group) -> Option<f64> {
        use crate::group::Group::*;
        Some(match g {
            Backbone => self.backbone,
            ClsHead => self.cls_head,
            LocEncoder => self.loc_encoder,
            LocDecoder => self.loc_decoder,
            SegDecoder => self.seg_decoder,
            SegHead => self.seg_head,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudentTeacherConfig {
    pub enabled: bool,
    /// teacher ← momentum·teacher + (1 − momentum)·student after each training pass.
    pub momentum: f64,
    /// total = (1 − w)·task + w·consistency.
    pub consistency_weight: f64,
}

impl Default for StudentTeacherConfig {
    fn default() -> Self {
        StudentTeacherConfig { enabled: true, momentum: 0.8, consistency_weight: 0.5 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockReleaseConfig {
    pub enabled: bool,
    /// The paper found Lock-Release ineffective for classification, so it is off there by default.
    pub classification: bool,
    /// Fraction of the training set a Lock pass sees.
    pub lock_fraction: f64,
}

impl Default for LockReleaseConfig {
    fn default() -> Self {
        LockReleaseConfig { enabled: true, classification: false, lock_fraction: 0.5 }
    }
}

/// How much of a finetuned model trains (paper Section 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinetuneMode {
    /// Everything on the task's path trains.
    #[default]
    Full,
    /// Backbone, loc encoder and seg decoder frozen: only the task's head trains (for localization
    /// its whole decoder, the paper's "new task head"); the Lock flags on the full data.
    HeadOnly,
}

/// Finetuning from a pretrained Foundation X model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneConfig {
    /// A run directory (its last checkpoint's teacher) or a checkpoint file (.safetensors).
    /// Variables with the same name and shape are loaded; the others — a new dataset's head, a
    /// head with another label count — start fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    pub mode: FinetuneMode,
    /// Few-shot: train on this many images of each dataset's train split, drawn with the seed
    /// (paper Table 6: 3 to 24); 0 = all.
    pub shots: usize,
}

/// Per-task augmentation, defaults after the paper: classification RandomResizedCrop + flip +
/// rotation ±7°; segmentation shift-scale-rotate ±10° + brightness/contrast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    pub cls: Augment,
    pub loc: Augment,
    pub seg: Augment,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            cls: Augment { crop_scale: [0.08, 1.0], rotation: 7.0, hflip: true, ..Augment::none() },
            loc: Augment::none(),
            seg: Augment { crop_scale: [0.8, 1.0], rotation: 10.0, brightness: 0.2, contrast: 0.2, ..Augment::none() },
        }
    }
}

impl AugmentConfig {
    pub fn of(&self, task: Task) -> &Augment {
        match task {
            Task::Cls => &self.cls,
            Task::Loc => &self.loc,
            Task::Seg => &self.seg,
        }
    }
}

/// Which loss trains the segmentation heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegLoss {
    /// Soft Dice pooled over the batch (smooth 1), as the paper.
    Dice,
    /// Soft Dice + pixel-wise BCE, averaged.
    DiceBce,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    pub seg: SegLoss,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig { seg: SegLoss::Dice }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRole {
    Teacher,
    Student,
}

impl ModelRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelRole::Teacher => "teacher",
            ModelRole::Student => "student",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Which models are evaluated after every epoch.
    pub models: Vec<ModelRole>,
    /// Cap on the test samples evaluated per dataset (0 = all): one number for every task, or
    /// per task, `{ cls = 100, loc = 50 }` (a task left out: all).
    pub max_samples: MaxSamples,
    pub batch_size: usize,
}

/// `eval.max_samples`: the first n test samples of a dataset are evaluated (0 = all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxSamples {
    pub cls: usize,
    pub loc: usize,
    pub seg: usize,
}

impl MaxSamples {
    pub fn all(n: usize) -> MaxSamples {
        MaxSamples { cls: n, loc: n, seg: n }
    }

    /// The cap of `task`'s evaluation, 0 = none.
    pub fn of(&self, task: Task) -> usize {
        match task {
            Task::Cls => self.cls,
            Task::Loc => self.loc,
            Task::Seg => self.seg,
        }
    }
}

// One number when the three are equal (as files written before per-task caps), else a table.
impl Serialize for MaxSamples {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.cls == self.loc && self.loc == self.seg {
            return s.serialize_u64(self.cls as u64);
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("cls", &self.cls)?;
        m.serialize_entry("loc", &self.loc)?;
        m.serialize_entry("seg", &self.seg)?;
        m.end()
    }
}

// Hand-written so that a wrong value names the key and both accepted forms.
impl<'de> Deserialize<'de> for MaxSamples {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let count = |v: &toml::Value| v.as_integer().and_then(|n| usize::try_from(n).ok());
        let wrong = |v: &toml::Value| {
            serde::de::Error::custom(format!(
                "eval.max_samples must be a count of test samples (0 = all) or one per task, \
                 {{ cls = 100, loc = 50, seg = 100 }}, got {v}"
            ))
        };
        if let Some(n) = count(&v) {
            return Ok(MaxSamples::all(n));
        }
        let table = v.as_table().ok_or_else(|| wrong(&v))?;
        let mut m = MaxSamples::default();
        for (k, n) in table {
            let n = count(n).ok_or_else(|| wrong(&v))?;
            match k.as_str() {
                "cls" => m.cls = n,
                "loc" => m.loc = n,
                "seg" => m.seg = n,
                _ => return Err(wrong(&v)),
            }
        }
        Ok(m)
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            models: vec![ModelRole::Teacher, ModelRole::Student],
            max_samples: MaxSamples::all(0),
            batch_size: 64,
        }
    }
}

/// The preprocessing cache of file datasets: each image is decoded once (DICOM, MetaImage, ...)
/// and stored reduced, so epochs after the first (and other runs, and `fx-tui prepare`) read
/// small 16-bit entries instead of decoding again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub cache: bool,
    /// Default: `<output_dir>/cache`, shared by the runs of that folder (entries are keyed by file
    /// identity and decoding parameters, so experiments never read each other's stale entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Cached images keep their longest side at most `cache_scale` × `model.image_size`, room for
    /// the random-resized crops of augmentation.
    pub cache_scale: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { cache: true, cache_dir: None, cache_scale: 2 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The dataset's name in this experiment (metrics, heads, charts). Defaults to the plugin name.
    pub name: Option<String>,
    pub plugin: String,
    /// Folder of the dataset's native files.
    pub root: Option<PathBuf>,
    /// Tasks to train; defaults to every task the dataset has labels for.
    pub tasks: Option<Vec<Task>>,
    /// Plugin-specific options.
    #[serde(default)]
    pub options: toml::Table,
    /// The cycle from which the dataset takes part: set by `fx-tui add` when a dataset joins a
    /// run while it trains (earlier cycles are planned without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_cycle: Option<usize>,
    /// Set with `joined_cycle` when the dataset was hot-added with `join = "next_epoch"`: in its
    /// joining cycle its epochs come first from this epoch on (at the first (dataset, task) pair
    /// that starts there or later: a Lock epoch is never parted from its Release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_epoch: Option<usize>,
    /// The dataset's heads (`[datasets.heads.cls]`); unset keys take the plugin's declaration and
    /// the defaults. Left out of the resolved experiment when default, so that runs recorded before
    /// the key existed resume unchanged.
    #[serde(default, skip_serializing_if = "HeadsConfig::is_default")]
    pub heads: HeadsConfig,
}

/// Per-dataset head settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadsConfig {
    pub cls: ClsHeadConfig,
    pub loc: LocHeadConfig,
    pub seg: SegHeadConfig,
}

/// The segmentation head of one dataset, on the decoder's fused stride-4 map.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegHeadConfig {
    /// "conv" (the paper's: one Conv3×3) or "conv_stack" (Conv3×3 + ReLU per `widths` entry, then
    /// the output Conv3×3).
    pub kind: SegHeadKind,
    pub widths: Vec<i64>,
    /// "multi_label" (default: a sigmoid per label, masks may overlap) or "multi_class" (softmax
    /// over a background class and the labels, cross-entropy; masks must not overlap).
    pub mode: LabelMode,
    /// A head from a plugin library of the experiment's `plugins`, instead of `kind`; `options`
    /// are handed to it.
    pub plugin: Option<String>,
    pub options: toml::Table,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegHeadKind {
    #[default]
    Conv,
    ConvStack,
}

/// The dataset's DINO decoder sizes where they differ from `[model.dino]` (the encoder is shared,
/// so its sizes are not per dataset): a small dataset may want fewer queries, layers or denoising
/// queries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocHeadConfig {
    pub num_queries: Option<i64>,
    pub decoder_layers: Option<i64>,
    pub dn_number: Option<i64>,
}

impl LocHeadConfig {
    pub fn is_default(&self) -> bool {
        *self == LocHeadConfig::default()
    }

    /// `base` (the experiment's `[model.dino]`) with this dataset's sizes.
    pub fn apply(&self, base: &crate::dino::DinoConfig) -> crate::dino::DinoConfig {
        let mut c = base.clone();
        c.num_queries = self.num_queries.unwrap_or(c.num_queries);
        c.decoder_layers = self.decoder_layers.unwrap_or(c.decoder_layers);
        c.dn_number = self.dn_number.unwrap_or(c.dn_number);
        c
    }
}

impl HeadsConfig {
    fn is_default(&self) -> bool {
        *self == HeadsConfig::default()
    }
}

/// The classification head of one dataset, on the backbone's pooled feature.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClsHeadConfig {
    /// "linear" (the paper's: one Linear) or "mlp" (Linear → GELU → Dropout per `hidden` width,
    /// then the output Linear).
    pub kind: ClsHeadKind,
    /// Hidden widths of an mlp head.
    pub hidden: Vec<i64>,
    /// Dropout after each hidden layer of an mlp head, in training.
    pub dropout: f64,
    /// "multi_label" (sigmoid + BCE) or "multi_class" (softmax + cross-entropy, one-hot labels);
    /// unset: what the dataset's plugin declares (TBX11K: multi_class).
    pub mode: Option<LabelMode>,
    /// A head from a plugin library of the experiment's `plugins` (e.g. "csra"), instead of
    /// `kind`; `options` are handed to it.
    pub plugin: Option<String>,
    pub options: toml::Table,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClsHeadKind {
    #[default]
    Linear,
    Mlp,
}

impl DatasetConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.plugin)
    }
}

/// A head's `plugin` and `options` keys: a plugin head is the whole head (no built-in keys set),
/// needs a library in `plugins`, and only a plugin head takes options.
fn check_plugin_head(
    place: &str,
    plugin: Option<&str>,
    options: &toml::Table,
    builtin_keys_set: bool,
    builtin_keys: &str,
    libraries: &[PathBuf],
) -> Result<()> {
    match plugin {
        Some(k) if builtin_keys_set => bail!("{place}: plugin = \"{k}\" is the whole head; leave {builtin_keys} out"),
        Some(k) if libraries.is_empty() => {
            bail!("{place}: plugin = \"{k}\" needs the library that offers it in the experiment's `plugins`")
        }
        None if !options.is_empty() => bail!("{place}: options belong to a plugin head (plugin = \"...\")"),
        _ => Ok(()),
    }
}

/// A config error that names the file and place.
fn located(path: &Path, text: &str, err: &toml::de::Error) -> anyhow::Error {
    let msg = err.message();
    let place = err
        .span()
        .map(|s| {
            let (line, col) = line_col(text, s.start);
            format!("{}:{}:{}", path.display(), line, col)
        })
        .unwrap_or_else(|| path.display().to_string());
    anyhow!("{place}: {}{}", msg, did_you_mean(msg))
}

/// (line, column) of `key` (dotted: "train.batch_size") in a TOML text: the line that assigns its
/// last segment inside the table of the others, or a dotted assignment at the top level.
fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, field) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(h) = t.strip_prefix('[') {
            current = h.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        let assigned = |k: &str| t.strip_prefix(k).is_some_and(|r| r.trim_start().starts_with('='));
        if (current == table && assigned(field)) || (current.is_empty() && assigned(key)) {
            return Some((i + 1, line.len() - t.len() + 1));
        }
    }
    None
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// serde says "unknown field `lrr`, expected one of `a`, `b`"; add the closest candidate.
fn did_you_mean(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("unknown field `") else { return String::new() };
    let Some((field, expected)) = rest.split_once('`') else { return String::new() };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(field, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Applies one `key.path=value` override to a TOML document. The value is parsed as TOML (numbers,
/// booleans, arrays, inline tables), falling back to a plain string. List items (the datasets) are
/// addressed by index: `datasets.0.root=/data/chexpert`.
/// `extends = "base.toml"` (relative to the file): the base experiment's document with this one's
/// keys on top — tables merge key by key, any other value (arrays such as `datasets` included)
/// replaces the base's. Bases may extend further; a cycle is an error naming the chain.
fn resolve_extends(path: &Path, mut doc: toml::Table, chain: &mut Vec<PathBuf>) -> Result<toml::Table> {
    let Some(base) = doc.remove("extends") else { return Ok(doc) };
    let toml::Value::String(base) = base else {
        bail!("{}: `extends` must be a file name (string), e.g. extends = \"organs_ls.toml\"", path.display())
    };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&base);
    let key = base_path.canonicalize().unwrap_or_else(|_| base_path.clone());
    if chain.contains(&key) {
        bail!("{}: `extends` loops back to {}", path.display(), base_path.display());
    }
    chain.push(key);
    let text = std::fs::read_to_string(&base_path)
        .map_err(|e| anyhow!("{}: extends = \"{base}\": cannot read {}: {e}", path.display(), base_path.display()))?;
    let base_doc: toml::Table = toml::from_str(&text).map_err(|e| located(&base_path, &text, &e))?;
    let mut merged = resolve_extends(&base_path, base_doc, chain)?;
    merge_into(&mut merged, doc);
    Ok(merged)
}

fn merge_into(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge_into(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

pub fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {assignment}: expected key=value, e.g. --set train.cycles=3"))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment}: empty key segment");
    }
    set_path(doc, &parts, value, assignment)
}

fn set_path(table: &mut toml::Table, parts: &[&str], value: toml::Value, assignment: &str) -> Result<()> {
    let (part, rest) = (parts[0], &parts[1..]);
    if rest.is_empty() {
        table.insert(part.to_string(), value);
        return Ok(());
    }
    match table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default())) {
        toml::Value::Table(t) => set_path(t, rest, value, assignment),
        toml::Value::Array(items) => {
            let len = items.len();
            let idx: usize = rest[0]
                .parse()
                .map_err(|_| anyhow!("--set {assignment}: `{part}` is a list; address an item as {part}.N.key"))?;
            let item = items
                .get_mut(idx)
                .ok_or_else(|| anyhow!("--set {assignment}: `{part}` has {len} items, no index {idx}"))?;
            match (item, rest.len()) {
                (toml::Value::Table(t), n) if n > 1 => set_path(t, &rest[1..], value, assignment),
                _ => bail!("--set {assignment}: address a key inside `{part}.{idx}`"),
            }
        }
        _ => bail!("--set {assignment}: `{part}` is a value, not a table"),
    }
}

impl Experiment {
    /// Reads, overrides and validates an experiment file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("{}: cannot read the experiment: {e}", path.display()))?;
        Self::parse(path, &text, overrides)
    }

    pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<Experiment> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| located(path, text, &e))?;
        let extended = doc.contains_key("extends");
        if extended {
            doc = resolve_extends(path, doc, &mut vec![])?;
        }
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        let exp: Experiment = if overrides.is_empty() && !extended {
            toml::from_str(text).map_err(|e| located(path, text, &e))?
        } else {
            // Re-serialise so that error positions point into the overridden document.
            let merged = toml::to_string(&doc)?;
            let label = PathBuf::from(format!(
                "{} (after {})",
                path.display(),
                if extended { "extends and --set" } else { "--set" }
            ));
            toml::from_str(&merged).map_err(|e| located(&label, &merged, &e))?
        };
        if let Some((key, what)) = exp.out_of_range() {
            let (label, text) = match (overrides.is_empty() && !extended, toml::to_string(&doc)) {
                (true, _) => (path.display().to_string(), text.to_string()),
                (false, Ok(merged)) => (
                    format!("{} (after {})", path.display(), if extended { "extends and --set" } else { "--set" }),
                    merged,
                ),
                (false, Err(_)) => (path.display().to_string(), String::new()),
            };
            let place = match key_position(&text, &key) {
                Some((line, col)) => format!("{label}:{line}:{col}"),
                None => label,
            };
            bail!("{place}: {key} {what}");
        }
        exp.validate(path)?;
        Ok(exp)
    }

    /// The first numeric key outside its range (key, what it must be), before anything uses it:
    /// sizes within what the architecture and memory allow, finite non-negative rates,
    /// probabilities in [0, 1], bounded counts, a run name that is one path component.
    pub fn out_of_range(&self) -> Option<(String, String)> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut check = |ok: bool, key: &str, what: String| {
            if !ok && problems.is_empty() {
                problems.push((key.to_string(), what));
            }
        };
        let n = &self.name;
        check(
            !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0']),
            "name",
            format!("must be a single folder name (it names the run under output_dir), got \"{n}\""),
        );
        let s = self.model.image_size;
        check(
            (32..=4096).contains(&s) && s % 32 == 0,
            "model.image_size",
            format!("must be a multiple of 32 within 32..=4096 (Swin's patches and merges), got {s}"),
        );
        if let Some(dp) = self.model.drop_path {
            check(
                dp.is_finite() && (0.0..1.0).contains(&dp),
                "model.drop_path",
                format!("must be within [0, 1), got {dp}"),
            );
        }
        for (k, v) in [("model.ppm_channels", self.model.ppm_channels), ("model.fpn_channels", self.model.fpn_channels)]
        {
            check((1..=8192).contains(&v), k, format!("must be within 1..=8192, got {v}"));
        }
        let t = &self.train;
        check(
            (1..=4096).contains(&t.batch_size),
            "train.batch_size",
            format!("must be within 1..=4096, got {}", t.batch_size),
        );
        check(
            (1..=100_000).contains(&t.cycles),
            "train.cycles",
            format!("must be within 1..=100000, got {}", t.cycles),
        );
        check(t.log_every >= 1, "train.log_every", format!("must be at least 1, got {}", t.log_every));
        check(
            t.workers <= 256,
            "train.workers",
            format!("must be within 0..=256 (0 = one per core), got {}", t.workers),
        );
        check((1..=256).contains(&t.prefetch), "train.prefetch", format!("must be within 1..=256, got {}", t.prefetch));
        let o = &self.optimizer;
        check(
            o.weight_decay.is_finite() && (0.0..1.0).contains(&o.weight_decay),
            "optimizer.weight_decay",
            format!("must be a finite number within [0, 1), got {}", o.weight_decay),
        );
        check(
            o.eps.is_finite() && o.eps > 0.0,
            "optimizer.eps",
            format!("must be a finite positive number, got {}", o.eps),
        );
        for (k, b) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            check(b.is_finite() && (0.0..1.0).contains(&b), k, format!("must be within [0, 1), got {b}"));
        }
        let lr = &o.lr;
        for (k, v) in [
            ("optimizer.lr.backbone", lr.backbone),
            ("optimizer.lr.cls_head", lr.cls_head),
            ("optimizer.lr.loc_encoder", lr.loc_encoder),
            ("optimizer.lr.loc_decoder", lr.loc_decoder),
            ("optimizer.lr.seg_decoder", lr.seg_decoder),
            ("optimizer.lr.seg_head", lr.seg_head),
        ] {
            check(
                v.is_finite() && (0.0..=10.0).contains(&v),
                k,
                format!("must be a finite learning rate within [0, 10], got {v}"),
            );
        }
        check(
            self.optimizer.lr_schedule.warmup_cycles <= 100_000,
            "optimizer.lr_schedule.warmup_cycles",
            "must be at most 100000".into(),
        );
        let e = &self.eval;
        check(
            (1..=4096).contains(&e.batch_size),
            "eval.batch_size",
            format!("must be within 1..=4096, got {}", e.batch_size),
        );
        check(
            (1..=16).contains(&self.data.cache_scale),
            "data.cache_scale",
            format!("must be within 1..=16, got {}", self.data.cache_scale),
        );
        let st = &self.student_teacher;
        check(st.momentum.is_finite(), "student_teacher.momentum", "must be a finite number".into());
        check(
            self.finetune.shots <= 1_000_000,
            "finetune.shots",
            format!("must be at most 1000000, got {}", self.finetune.shots),
        );
        for (i, d) in self.datasets.iter().enumerate() {
            let h = &d.heads.cls;
            for &w in &h.hidden {
                check(
                    (1..=65536).contains(&w),
                    &format!("datasets.{i}.heads.cls.hidden"),
                    format!("widths must be within 1..=65536, got {w}"),
                );
            }
            check(
                h.dropout.is_finite() && (0.0..1.0).contains(&h.dropout),
                &format!("datasets.{i}.heads.cls.dropout"),
                format!("must be within [0, 1), got {}", h.dropout),
            );
            for &w in &d.heads.seg.widths {
                check(
                    (1..=8192).contains(&w),
                    &format!("datasets.{i}.heads.seg.widths"),
                    format!("widths must be within 1..=8192, got {w}"),
                );
            }
        }
        problems.pop()
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let p = path.display();
        if self.datasets.is_empty() {
            bail!("{p}: `datasets` is empty; add at least one [[datasets]] table");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            if !names.insert(d.name().to_string()) {
                bail!("{p}: datasets[{i}]: the name `{}` is used twice; give one of them `name = \"...\"`", d.name());
            }
        }
        for (i, d) in self.datasets.iter().enumerate() {
            let h = &d.heads.cls;
            let builtin = h.kind != ClsHeadKind::Linear || !h.hidden.is_empty() || h.dropout > 0.0;
            let place = format!("{p}: datasets[{i}] ({}): heads.cls", d.name());
            check_plugin_head(
                &place,
                h.plugin.as_deref(),
                &h.options,
                builtin,
                "kind, hidden and dropout",
                &self.plugins,
            )?;
            match h.kind {
                ClsHeadKind::Linear if !h.hidden.is_empty() || h.dropout > 0.0 => bail!(
                    "{p}: datasets[{i}] ({}): heads.cls: hidden and dropout belong to kind = \"mlp\"; a linear head has neither",
                    d.name()
                ),
                ClsHeadKind::Mlp if h.hidden.is_empty() => bail!(
                    "{p}: datasets[{i}] ({}): heads.cls: kind = \"mlp\" needs its hidden widths, e.g. hidden = [512]",
                    d.name()
                ),
                _ => {}
            }
            let g = &d.heads.seg;
            let builtin = g.kind != SegHeadKind::Conv || !g.widths.is_empty();
            let place = format!("{p}: datasets[{i}] ({}): heads.seg", d.name());
            check_plugin_head(&place, g.plugin.as_deref(), &g.options, builtin, "kind and widths", &self.plugins)?;
            match g.kind {
                SegHeadKind::Conv if !g.widths.is_empty() => bail!(
                    "{p}: datasets[{i}] ({}): heads.seg: widths belong to kind = \"conv_stack\"; a conv head has none",
                    d.name()
                ),
                SegHeadKind::ConvStack if g.widths.is_empty() => bail!(
                    "{p}: datasets[{i}] ({}): heads.seg: kind = \"conv_stack\" needs its widths, e.g. widths = [64]",
                    d.name()
                ),
                _ => {}
            }
        }
        if self.train.batch_size == 0 {
            bail!("{p}: train.batch_size must be at least 1");
        }
        if self.train.cycles == 0 {
            bail!("{p}: train.cycles must be at least 1");
        }
        let b = &self.train.branches;
        if b.is_empty() || !b.chars().all(|c| matches!(c, 'C' | 'L' | 'S')) {
            bail!("{p}: train.branches must be letters of \"CLS\" (e.g. \"CLS\", \"LS\", \"C\"), got \"{b}\"");
        }
        let m = self.student_teacher.momentum;
        if !(0.0..=1.0).contains(&m) {
            bail!("{p}: student_teacher.momentum must be within [0, 1], got {m}");
        }
        let w = self.student_teacher.consistency_weight;
        if !(0.0..=1.0).contains(&w) {
            bail!("{p}: student_teacher.consistency_weight must be within [0, 1], got {w}");
        }
        let f = self.lock_release.lock_fraction;
        if !(f > 0.0 && f <= 1.0) {
            bail!("{p}: lock_release.lock_fraction must be within (0, 1], got {f}");
        }
        for task in Task::ALL {
            let a = self.augment.of(task);
            let [lo, hi] = a.crop_scale;
            if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                bail!("{p}: augment.{task}.crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got [{lo}, {hi}]");
            }
            if !(0.0..=1.0).contains(&a.brightness) || !(0.0..1.0).contains(&a.contrast) {
                bail!("{p}: augment.{task}: brightness must be within [0, 1] and contrast within [0, 1)");
            }
        }
        let ls = &self.optimizer.lr_schedule;
        // Written as "not inside" so that NaN is refused too.
        let in_unit = |x: f64| x > 0.0 && x <= 1.0;
        if !in_unit(ls.warmup_factor) || !(0.0..=1.0).contains(&ls.min_factor) {
            bail!("{p}: optimizer.lr_schedule: warmup_factor must be within (0, 1] and min_factor within [0, 1]");
        }
        if self.model.ppm_channels < 1 || self.model.fpn_channels < 1 {
            bail!("{p}: model.ppm_channels and model.fpn_channels must be at least 1");
        }
        if self.finetune.mode == FinetuneMode::HeadOnly && self.finetune.from.is_none() {
            bail!("{p}: finetune.mode = \"head_only\" needs finetune.from (a run directory or checkpoint file): a head-only finetune of an untrained backbone learns nothing useful");
        }
        if self.eval.models.is_empty() {
            bail!("{p}: eval.models is empty; use [\"teacher\"] and/or [\"student\"]");
        }
        crate::swin::SwinConfig::named(&self.model.arch, self.model.image_size)
            .and_then(|c| c.validate())
            .map_err(|e| anyhow!("{p}: model: {e}"))?;
        if self.device != "auto" && self.device != "cpu" && self.device != "cuda" && !self.device.starts_with("cuda:") {
            bail!("{p}: device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"{}\"", self.device);
        }
        Ok(())
    }

    /// Where and at what size file datasets cache their decoded images (None: no cache).
    pub fn cache_spec(&self) -> Option<fx_plugin::CacheSpec> {
        if !self.data.cache {
            return None;
        }
        let dir = self.data.cache_dir.clone().unwrap_or_else(|| self.output_dir.join("cache"));
        Some(fx_plugin::CacheSpec {
            dir,
            longest_side: self.data.cache_scale.max(1) * self.model.image_size.max(1) as usize,
        })
    }

    /// The models evaluated after each epoch: without a teacher, only the student exists.
    /// The `[[datasets]]` table of the dataset named `name`.
    pub fn dataset(&self, name: &str) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| d.name() == name)
    }

    /// The head settings of dataset `name` (the defaults where it has none).
    pub fn heads_of(&self, name: &str) -> HeadsConfig {
        self.dataset(name).map(|d| d.heads.clone()).unwrap_or_default()
    }

    pub fn eval_models(&self) -> Vec<ModelRole> {
        let mut v: Vec<ModelRole> = self
            .eval
            .models
            .iter()
            .copied()
            .filter(|m| self.student_teacher.enabled || *m == ModelRole::Student)
            .collect();
        if v.is_empty() {
            v.push(ModelRole::Student);
        }
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[model]
arch = "swin_nano"
image_size = 32
[[datasets]]
plugin = "phantom-cxp"
"#;

    #[test]
    fn minimal_parses_with_paper_defaults() {
        let e = Experiment::parse(Path::new("x.toml"), MINIMAL, &[]).unwrap();
        assert_eq!(e.optimizer.lr.backbone, 1e-5);
        assert_eq!(e.optimizer.weight_decay, 1e-4);
        assert_eq!(e.student_teacher.momentum, 0.8);
        assert_eq!(e.train.batch_size, 24);
        assert_eq!(e.datasets[0].name(), "phantom-cxp");
    }

    #[test]
    fn eval_max_samples_is_one_count_or_one_per_task() {
        let parse =
            |v: &str| Experiment::parse(Path::new("x.toml"), &format!("{MINIMAL}[eval]\nmax_samples = {v}\n"), &[]);
        let one = parse("100").unwrap().eval.max_samples;
        assert_eq!([one.of(Task::Cls), one.of(Task::Loc), one.of(Task::Seg)], [100, 100, 100]);
        let per = parse("{ cls = 100, loc = 50 }").unwrap().eval.max_samples;
        assert_eq!([per.of(Task::Cls), per.of(Task::Loc), per.of(Task::Seg)], [100, 50, 0]);
        // Written back as read: a number stays a number (older runs' experiment.toml), a table a table.
        let text = toml::to_string(&EvalConfig { max_samples: per, ..Default::default() }).unwrap();
        assert!(text.contains("cls = 100") && text.contains("loc = 50") && text.contains("seg = 0"), "{text}");
        let text = toml::to_string(&EvalConfig { max_samples: one, ..Default::default() }).unwrap();
        assert!(text.contains("max_samples = 100\n"), "{text}");
        for bad in ["-1", "\"all\"", "{ det = 5 }", "{ cls = 1.5 }"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("eval.max_samples must be") && e.contains("per task, { cls = 100, loc = 50"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_suggests() {
        let text = MINIMAL.replace("image_size = 32", "image_size = 32\nimage_sise = 3");
        let err = Experiment::parse(Path::new("exp.toml"), &text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:6:"), "{err}");
        assert!(err.contains("unknown field `image_sise`"), "{err}");
        assert!(err.contains("did you mean `image_size`"), "{err}");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = MINIMAL.replace("image_size = 32", "image_size = \"big\"");
        let err = Experiment::parse(Path::new("exp.toml"), &text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:5:"), "{err}");
        assert!(err.contains("expected i64"), "{err}");
    }

    #[test]
    fn malformed_toml_is_located() {
        let text = MINIMAL.replace("arch = \"swin_nano\"", "arch = \"swin_nano");
        let err = Experiment::parse(Path::new("bad.toml"), &text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:4:"), "{err}");
    }

    #[test]
    fn overrides_reach_nested_keys_and_list_items() {
        let e = Experiment::parse(
            Path::new("x.toml"),
            MINIMAL,
            &[
                "train.cycles=3".into(),
                "optimizer.lr.backbone=0.001".into(),
                "datasets.0.root=/data/x".into(),
                "name=other".into(),
            ],
        )
        .unwrap();
        assert_eq!(e.train.cycles, 3);
        assert_eq!(e.optimizer.lr.backbone, 1e-3);
        assert_eq!(e.datasets[0].root.as_deref(), Some(Path::new("/data/x")));
        assert_eq!(e.name, "other");
        let err = Experiment::parse(Path::new("x.toml"), MINIMAL, &["train.cycels=3".into()]).unwrap_err().to_string();
        assert!(err.contains("did you mean `cycles`"), "{err}");
        assert!(Experiment::parse(Path::new("x.toml"), MINIMAL, &["train.cycles".into()]).is_err());
    }

    #[test]
    fn lr_schedule_warms_up_then_decays_at_cycle_boundaries() {
        let s = LrSchedule::default();
        assert_eq!(s.factor(1, 5), 0.05);
        assert_eq!(s.factor(2, 5), 1.0);
        let f: Vec<f64> = (2..=5).map(|c| s.factor(c, 5)).collect();
        assert!(f.windows(2).all(|w| w[1] < w[0]), "{f:?}");
        // Cosine over the 4 cycles after warm-up: cos(pi * 3/4) at the last one.
        assert!((s.factor(5, 5) - 0.5 * (1.0 + (std::f64::consts::PI * 0.75).cos())).abs() < 1e-12);
        let none = LrSchedule { warmup_cycles: 0, decay: LrDecay::None, ..s };
        assert!((1..=5).all(|c| none.factor(c, 5) == 1.0));
    }

    #[test]
    fn train_order_defaults_to_dataset_and_a_wrong_value_names_key_and_choices() {
        let e = Experiment::parse(Path::new("x.toml"), MINIMAL, &[]).unwrap();
        assert_eq!(e.train.order, Order::Dataset);
        let text = MINIMAL.replace("[[datasets]]", "[train]\norder = \"task\"\n[[datasets]]");
        assert_eq!(Experiment::parse(Path::new("x.toml"), &text, &[]).unwrap().train.order, Order::Task);
        let text = MINIMAL.replace("[[datasets]]", "[train]\norder = \"tasks\"\n[[datasets]]");
        let err = Experiment::parse(Path::new("exp.toml"), &text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:7:"), "{err}");
        assert!(err.contains("train.order must be \"dataset\""), "{err}");
        assert!(err.contains("or \"task\""), "{err}");
        assert!(err.contains("got \"tasks\""), "{err}");
        let err = Experiment::parse(Path::new("x.toml"), MINIMAL, &["train.order=3".into()]).unwrap_err().to_string();
        assert!(err.contains("train.order must be") && err.contains("got 3"), "{err}");
        // Round trip: run stores and `fx-tui plan` write the experiment back as TOML.
        let e = Experiment::parse(Path::new("x.toml"), MINIMAL, &["train.order=task".into()]).unwrap();
        let back = Experiment::parse(Path::new("y.toml"), &toml::to_string(&e).unwrap(), &[]).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn validation_names_the_key() {
        let err = Experiment::parse(Path::new("x.toml"), MINIMAL, &["student_teacher.momentum=1.5".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("student_teacher.momentum"), "{err}");
        let err =
            Experiment::parse(Path::new("x.toml"), MINIMAL, &["model.image_size=30".into()]).unwrap_err().to_string();
        assert!(err.contains("model.image_size") && err.contains("got 30"), "{err}");
    }

    /// Every case of issue #17's list gets a named range error with its place, before anything
    /// (a planner, a loader thread, an allocation) can panic on it.
    #[test]
    fn out_of_range_values_are_named_errors_with_their_place() {
        for (set, key) in [
            ("model.image_size=0", "model.image_size"),
            ("model.image_size=-64", "model.image_size"),
            ("model.image_size=1000000", "model.image_size"),
            ("train.cycles=100000000", "train.cycles"),
            ("optimizer.lr.backbone=nan", "optimizer.lr.backbone"),
            ("optimizer.lr.cls_head=-1e-3", "optimizer.lr.cls_head"),
            ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
            ("model.drop_path=5.0", "model.drop_path"),
            ("train.workers=100000000", "train.workers"),
            ("name=\"../../x\"", "name"),
        ] {
            let err = Experiment::parse(Path::new("x.toml"), MINIMAL, &[set.to_string()]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("x.toml (after --set):"), "{set}: {err}");
        }
        // In the file itself the error points at the line.
        let text = MINIMAL.replace("[model]", "[train]\nbatch_size = 0\n[model]");
        let err = Experiment::parse(Path::new("x.toml"), &text, &[]).unwrap_err().to_string();
        let line = text.lines().position(|l| l.starts_with("batch_size")).unwrap() + 1;
        assert!(err.starts_with(&format!("x.toml:{line}:1: train.batch_size")), "{err}");
    }
}
