//! The fx plugin contract.
//!
//! A plugin describes ONE dataset: its name, its tasks (classification, localization,
//! segmentation) with their label names, how to read its native files into a sample index for each
//! split, and how to load one sample. Everything here is plain data that serialises to JSON, so the
//! same contract can cross a C-ABI boundary (a later step loads plugins with libloading); for now the
//! phantom plugin is linked statically.

pub mod abi;
pub mod head;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Version of this contract; a host refuses plugins built against another one.
/// 2: samples carry `image_dims` (pixels reduced by the preprocessing cache).
pub const ABI_VERSION: u32 = 2;

/// The build fingerprint a plugin library carries (NUL-terminated for the C ABI): the fx-plugin
/// API version it was compiled against. The ABI number says how requests are framed; the
/// fingerprint says which version of the types inside them (DatasetDesc, Sample, ...) the library
/// speaks, so a library built against another fx-plugin is refused before it is asked anything.
pub const FINGERPRINT: &str = concat!("fx-plugin ", env!("CARGO_PKG_VERSION"), "\0");

/// [`FINGERPRINT`] without its NUL.
pub fn fingerprint() -> &'static str {
    FINGERPRINT.trim_end_matches('\0')
}

/// The three tasks of Foundation X, in the order a cycle visits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cls,
    Loc,
    Seg,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Cls, Task::Loc, Task::Seg];
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Cls => "cls",
            Task::Loc => "loc",
            Task::Seg => "seg",
        }
    }
    /// The metric the paper reports for this task.
    pub fn metric(self) -> &'static str {
        match self {
            Task::Cls => "auc",
            Task::Loc => "map40",
            Task::Seg => "dice",
        }
    }
    pub fn parse(s: &str) -> Option<Task> {
        match s {
            "cls" => Some(Task::Cls),
            "loc" => Some(Task::Loc),
            "seg" => Some(Task::Seg),
            _ => None,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// What a dataset offers: its tasks and, per task, the label names (classes, box categories, mask
/// channels). A plugin sets what it has and leaves the rest to `..Default::default()` (no labels
/// for a task: the dataset does not offer it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetDesc {
    pub name: String,
    pub description: String,
    pub cls_labels: Vec<String>,
    pub loc_labels: Vec<String>,
    pub seg_labels: Vec<String>,
    /// True when the dataset ships no train/val/test split and the plugin drew one (seeded).
    #[serde(default)]
    pub drawn_split: bool,
    /// The cls labels whose mean AUC is the dataset's reported metric (CheXpert and MIMIC-CXR:
    /// the 5 competition labels); empty = all cls labels. Per-label AUCs are kept for all.
    #[serde(default)]
    pub eval_labels: Vec<String>,
    /// How the cls labels relate: independent findings (several may be present) or mutually
    /// exclusive classes (exactly one per image, e.g. TBX11K's healthy / sick / TB). A library
    /// built before this field existed declares multi-label.
    #[serde(default)]
    pub cls_mode: LabelMode,
}

/// How a task's labels relate, and so how its head is trained and read: a dataset's cls labels
/// (declared by its plugin, `DatasetDesc::cls_mode`), or its seg labels (set in the experiment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// Independent labels: one sigmoid per label (cls: binary cross-entropy, AUC per label; seg:
    /// one mask per label, masks may overlap).
    #[default]
    MultiLabel,
    /// Mutually exclusive labels: softmax (cls: one-hot labels, cross-entropy, one-vs-rest AUC
    /// per class and accuracy; seg: softmax over the labels and a background class, cross-entropy
    /// against each pixel's label).
    MultiClass,
}

impl LabelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelMode::MultiLabel => "multi_label",
            LabelMode::MultiClass => "multi_class",
        }
    }
}

impl DatasetDesc {
    pub fn labels(&self, task: Task) -> &[String] {
        match task {
            Task::Cls => &self.cls_labels,
            Task::Loc => &self.loc_labels,
            Task::Seg => &self.seg_labels,
        }
    }
    /// Tasks the dataset has labels for, in cycle order.
    pub fn tasks(&self) -> Vec<Task> {
        Task::ALL.into_iter().filter(|t| !self.labels(*t).is_empty()).collect()
    }
}

/// Where a sample's pixels come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleSource {
    /// A file in the dataset's native format (PNG, JPEG, DICOM, raw ...).
    File(PathBuf),
    /// A procedurally generated sample, fully determined by this seed.
    Phantom(u64),
}

/// One entry of a split's sample index. Labels may be filled at index time (CSV datasets) or only
/// when the sample is loaded (phantoms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub id: String,
    pub source: SampleSource,
}

/// A box in pixels of the sample's image, corners (x0, y0) inclusive and (x1, y1) exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabeledBox {
    pub label: usize,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// One loaded sample: a grayscale image in [0, 1] (row-major) and its annotations.
///
/// `width` × `height` is the image's ORIGINAL size, the frame of its boxes and masks. The pixels
/// are either that size or, when they come from the preprocessing cache, reduced to
/// `image_dims`; the host's loader then scales boxes and masks to the pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub id: String,
    pub height: usize,
    pub width: usize,
    pub image: Vec<f32>,
    /// (width, height) of `image` when it is smaller than the original; None: width × height.
    pub image_dims: Option<(usize, usize)>,
    /// One value per `cls_labels` entry: 1 present, 0 absent, NaN unknown (excluded from loss and AUC).
    pub cls: Vec<f32>,
    pub boxes: Vec<LabeledBox>,
    /// One binary mask (height × width, 0/1) per `seg_labels` entry; empty when the dataset has no masks.
    pub masks: Vec<Vec<u8>>,
    /// Soft problems with this sample (a multi-frame DICOM of which the first frame is used); the
    /// host records each once per run as an event.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{path}: {what}")]
    Input { path: String, what: String },
    #[error("dataset {dataset}: {what}")]
    Config { dataset: String, what: String },
}

impl PluginError {
    pub fn input(path: impl fmt::Display, what: impl Into<String>) -> Self {
        PluginError::Input { path: path.to_string(), what: what.into() }
    }
    pub fn config(dataset: impl Into<String>, what: impl Into<String>) -> Self {
        PluginError::Config { dataset: dataset.into(), what: what.into() }
    }
}

/// A dataset plugin. Implementations must be cheap to share between loader threads.
pub trait Dataset: Send + Sync {
    fn desc(&self) -> &DatasetDesc;
    /// The sample index of one split, in a fixed order.
    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError>;
    /// Loads one sample. `size_hint` is the model's input size: procedural datasets render at that
    /// size directly; file datasets may ignore it (the host resizes).
    fn load(&self, record: &SampleRecord, size_hint: usize) -> Result<Sample, PluginError>;
    /// A sample's annotations and ORIGINAL size without its pixels (`image` may be empty), for
    /// `fx-tui data`; file datasets read only the image's header. By default: `load`.
    fn labels(&self, record: &SampleRecord, size_hint: usize) -> Result<Sample, PluginError> {
        self.load(record, size_hint)
    }
    /// Soft problems found while opening (a box clipped to its image, a row without coordinates),
    /// one line each naming the file and the place; the host records them in the run's events.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where decoded images are cached and at what size (see fx-data's `cache`): the host fills it
/// from the experiment's `[data]` table; plugins pass it to `fx_data::cache::read_image`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheSpec {
    pub dir: PathBuf,
    /// Images are stored with their longest side at most this (never enlarged).
    pub longest_side: usize,
}

/// How an experiment names a dataset: plugin + root folder + free-form options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// The dataset's name in this experiment (metrics rows, heads, charts).
    pub name: String,
    /// The plugin that reads it.
    pub plugin: String,
    /// Root folder of its native files; procedural datasets have none.
    pub root: Option<PathBuf>,
    /// Plugin-specific options (sizes, seeds ...), as a JSON object.
    pub options: serde_json::Value,
    /// The preprocessing cache, when the host uses one.
    #[serde(default)]
    pub cache: Option<CacheSpec>,
}

/// A plugin as the host's registry sees it: a name and a constructor.
#[derive(Clone)]
pub struct PluginEntry {
    pub name: &'static str,
    pub summary: &'static str,
    pub open: fn(&DatasetSpec) -> Result<Box<dyn Dataset>, PluginError>,
}
