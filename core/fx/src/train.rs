//! The trainer: runs the schedule epoch by epoch — freeze per the plan, train the student (task
//! loss + consistency with the teacher), EMA the teacher after the pass, evaluate every
//! (dataset, task), append metric rows, checkpoint atomically.
//!
//! The engine has no UI: it reports through a callback of [`Progress`] values.

use crate::config::{Experiment, ModelRole, Precision, SegLoss};
use crate::dino::{criterion, DecodeOptions, Targets};
use crate::dist::GlobalBatch;
use crate::eval::auc::mean_auc;
use crate::eval::dice::DiceAccumulator;
use crate::model::{Heads, Model};
use crate::optim::AdamW;
use crate::registry::Registry;
use crate::schedule::{self, EpochPlan, Group};
use crate::store::{CheckpointState, Evaluated, MetricRow, RunInfo, RunStore, Trained};
use crate::swin::SwinConfig;
use anyhow::{anyhow, bail, Context, Result};
use fx_data::augment::Augment;
use fx_data::loader::{pass_order, Batch, Loader, LoaderConfig};
use fx_data::rng::mix;
use fx_plugin::{Dataset, SampleRecord, Split, Task};
use fx_shim::{Autocast, LowPrecision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

mod evaluate;

/// Set by a signal handler (or a test) to stop after the current step; the run is marked stopped
/// and resumes at the last completed epoch.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Set (by the control socket) to hold training after the current step until cleared.
pub static PAUSE: AtomicBool = AtomicBool::new(false);

pub struct OpenedDataset {
    pub name: String,
    pub dataset: Arc<dyn Dataset>,
    pub tasks: Vec<Task>,
    pub train: Arc<Vec<SampleRecord>>,
    pub test: Arc<Vec<SampleRecord>>,
}

/// Opens every dataset of an experiment and reads its train and test indexes.
pub fn open_datasets(exp: &Experiment, file: &str, registry: &Registry) -> Result<Vec<OpenedDataset>> {
    let extended;
    let registry = if exp.plugins.is_empty() {
        registry
    } else {
        let mut r = registry.clone();
        r.isolation = exp.plugin_isolation;
        extended = r.with_libraries(file, &exp.plugins)?;
        &extended
    };
    // Every missing root at once, before any plugin runs: a real-data experiment on a machine
    // without the data should say so in one message, and name the phantom twin that runs anyway.
    let missing: Vec<String> = exp
        .datasets
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let r = d.root.as_ref().filter(|r| !r.is_dir())?;
            let why = if r.exists() { "is not a folder" } else { "does not exist" };
            Some(format!("  datasets[{i}] ({}): {} {why}", d.name(), r.display()))
        })
        .collect();
    if !missing.is_empty() {
        let twin = match &exp.phantom_twin {
            Some(t) => format!("\nTo run the same schedule on phantom data: fx-tui {}", t.display()),
            None => String::new(),
        };
        bail!("{file}: {} dataset root(s) missing:\n{}{twin}", missing.len(), missing.join("\n"));
    }
    let mut out = Vec::new();
    for (i, cfg) in exp.datasets.iter().enumerate() {
        let ds = registry.open(file, i, cfg, exp.cache_spec().as_ref())?;
        let offered = ds.desc().tasks();
        let tasks = match &cfg.tasks {
            Some(ts) => {
                for t in ts {
                    if !offered.contains(t) {
                        bail!(
                            "{file}: datasets[{i}] ({}): task `{t}` requested but the dataset has no {t} labels (it offers: {})",
                            cfg.name(),
                            offered.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    }
                }
                ts.clone()
            }
            // By default every task the dataset has labels for and whose branch the experiment selects.
            None => offered.iter().copied().filter(|t| exp.train.branch_on(*t)).collect(),
        };
        if let Some(t) = tasks.iter().find(|t| !exp.train.branch_on(**t)) {
            bail!(
                "{file}: datasets[{i}] ({}): task `{t}` requested but train.branches = \"{}\" leaves its branch out",
                cfg.name(),
                exp.train.branches
            );
        }
        let tasks: Vec<Task> = Task::ALL.into_iter().filter(|t| tasks.contains(t)).collect();
        if tasks.is_empty() {
            // A dataset whose tasks all lie outside the selected branches does not take part.
            continue;
        }
        let index = |split: Split| -> Result<Arc<Vec<SampleRecord>>> {
            let v = ds
                .index(split)
                .map_err(|e| anyhow!("{file}: datasets[{i}] ({}): {} split: {e}", cfg.name(), split.as_str()))?;
            Ok(Arc::new(v))
        };
        let (mut train, test) = (index(Split::Train)?, index(Split::Test)?);
        let shots = exp.finetune.shots;
        if shots > 0 {
            if shots > train.len() {
                bail!(
                    "{file}: finetune.shots = {shots} but datasets[{i}] ({}) has {} training images",
                    cfg.name(),
                    train.len()
                );
            }
            // Few-shot: the same `shots` images for every epoch, drawn once with the seed.
            let pick = pass_order(train.len(), 1.0, mix(&[exp.seed, i as u64, 4]), true);
            train = Arc::new(pick[..shots].iter().map(|&k| train[k].clone()).collect());
        }
        if train.is_empty() {
            bail!("{file}: datasets[{i}] ({}): the train split is empty", cfg.name());
        }
        if test.is_empty() {
            bail!("{file}: datasets[{i}] ({}): the test split is empty", cfg.name());
        }
        out.push(OpenedDataset { name: cfg.name().to_string(), dataset: ds, tasks, train, test });
    }
    if out.iter().any(|d| d.tasks.contains(&Task::Loc)) {
        let problems = exp.model.dino.problems(exp.model.image_size);
        if !problems.is_empty() {
            bail!("{file}: {}", problems.join("; "));
        }
    }
    if out.is_empty() {
        bail!("{file}: no dataset has a task in the selected branches (train.branches = \"{}\")", exp.train.branches);
    }
    Ok(out)
}

/// "auto" → CUDA when available, else CPU.
pub fn resolve_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "cuda:0" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        d if d.starts_with("cuda") => {
            let n: usize = d.strip_prefix("cuda:").map(|n| n.parse()).transpose()?.unwrap_or(0);
            if n < tch::Cuda::device_count() as usize {
                Ok(Device::Cuda(n))
            } else {
                bail!("device {d} requested but {} CUDA device(s) are available", tch::Cuda::device_count())
            }
        }
        other => bail!("unknown device `{other}`; expected auto, cpu, cuda or cuda:N"),
    }
}

pub fn swin_config(exp: &Experiment) -> Result<SwinConfig> {
    let mut c = SwinConfig::named(&exp.model.arch, exp.model.image_size)?;
    if let Some(dp) = exp.model.drop_path {
        c.drop_path_rate = dp;
    }
    Ok(c)
}

/// A hot-add's new experiment.toml and plan.json, written before either of them.
const HOT_ADD_JOURNAL: &str = "hot_add.json";

/// Writes the experiment and plan a hot-add journal holds, then removes the journal.
fn complete_hot_add(run: &RunStore) -> Result<()> {
    let path = run.path(HOT_ADD_JOURNAL);
    if !path.exists() {
        return Ok(());
    }
    let j: serde_json::Value = run.read_json(HOT_ADD_JOURNAL)?;
    let exp = j["experiment"].as_str().ok_or_else(|| anyhow!("{}: no experiment", path.display()))?;
    crate::store::write_atomic(&run.path("experiment.toml"), exp.as_bytes())?;
    run.write_json("plan.json", &j["plan"])?;
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(())
}

/// Experiment keys a resumed run may change: they cannot change what is trained or measured.
pub const SAFE_TO_CHANGE: [&str; 9] = [
    "train.log_every",
    "train.workers",
    "train.prefetch",
    "device",
    "eval.batch_size",
    "data",
    "output_dir",
    "plugin_isolation",
    "share_with_group",
];

/// "key: old → new" for every leaf that differs between two experiments (as JSON), except
/// [`SAFE_TO_CHANGE`] and datasets hot-added after the old one (they carry `joined_cycle`). An
/// old checkpoint without its experiment (Null) compares as equal.
pub fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn flat(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| flat(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
            serde_json::Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                a.iter().enumerate().for_each(|(i, v)| flat(&format!("{prefix}.{i}"), v, out))
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    if old.is_null() {
        return Vec::new();
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flat("", old, &mut a);
    flat("", new, &mut b);
    let old_n = old["datasets"].as_array().map(|a| a.len()).unwrap_or(0);
    let added: Vec<String> = new["datasets"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .filter(|(i, d)| *i >= old_n && !d["joined_cycle"].is_null())
                .map(|(i, _)| format!("datasets.{i}."))
                .collect()
        })
        .unwrap_or_default();
    // A hot-add may also bring plugin libraries: the list may grow with the datasets.
    let plugins_grew = !added.is_empty() && {
        let (o, n) = (
            old["plugins"].as_array().cloned().unwrap_or_default(),
            new["plugins"].as_array().cloned().unwrap_or_default(),
        );
        n.len() >= o.len() && n[..o.len()] == o[..]
    };
    let safe = |k: &str| {
        SAFE_TO_CHANGE.iter().any(|s| k == *s || k.starts_with(&format!("{s}.")))
            || added.iter().any(|p| k.starts_with(p.as_str()))
            || (k == "plugins" && plugins_grew)
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !safe(k) && a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                a.get(k).map(String::as_str).unwrap_or("(absent)"),
                b.get(k).map(String::as_str).unwrap_or("(absent)")
            )
        })
        .collect()
}

/// model.json: architecture, parameter counts per component, and the label names of every
/// dataset's heads (what `predict` and `export-model` need to rebuild the model without the data).
pub fn model_json(exp: &Experiment, student: &Model, datasets: &[OpenedDataset]) -> serde_json::Value {
    let parameters: serde_json::Map<String, serde_json::Value> =
        student.component_params().into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
    let labels: BTreeMap<String, crate::predict::HeadLabels> = datasets
        .iter()
        .map(|d| {
            let desc = d.dataset.desc();
            let of = |t: Task| if d.tasks.contains(&t) { desc.labels(t).to_vec() } else { Vec::new() };
            (d.name.clone(), crate::predict::HeadLabels { cls: of(Task::Cls), loc: of(Task::Loc), seg: of(Task::Seg) })
        })
        .collect();
    serde_json::json!({ "arch": exp.model.arch, "image_size": exp.model.image_size, "parameters": parameters, "labels": labels })
}

/// The heads the experiment needs: one per (dataset, task) it trains.
pub fn heads(exp: &Experiment, datasets: &[OpenedDataset]) -> Heads {
    let of = |task: Task| {
        datasets
            .iter()
            .filter(|d| d.tasks.contains(&task))
            .map(|d| (d.name.clone(), d.dataset.desc().labels(task).len() as i64))
            .collect()
    };
    Heads {
        cls: of(Task::Cls),
        seg: of(Task::Seg),
        loc: of(Task::Loc),
        seg_channels: (exp.model.ppm_channels, exp.model.fpn_channels),
        dino: exp.model.dino.clone(),
    }
}

pub fn tasks_of(datasets: &[OpenedDataset]) -> Vec<(String, Vec<Task>)> {
    datasets.iter().map(|d| (d.name.clone(), d.tasks.clone())).collect()
}

/// What the trainer reports while it runs.
pub enum Progress<'a> {
    Started { run_dir: &'a Path, device: String, params: i64, first_epoch: usize, epochs: usize },
    Step(StepReport<'a>),
    Epoch { plan: &'a EpochPlan, rows: &'a [MetricRow], train_s: f64, eval_s: f64, skipped: usize },
    Warning(String),
    Finished { status: &'a str, wall_s: f64 },
}

pub struct StepReport<'a> {
    pub plan: &'a EpochPlan,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    /// Mean loss over the window since the last report.
    pub loss: f64,
    pub img_per_s: f64,
    pub eta_epoch_s: f64,
    pub eta_run_s: f64,
    /// Each rank's own img/s in a data-parallel job (img_per_s is their sum); empty alone.
    pub rank_img_per_s: Vec<f64>,
}

pub struct Trainer {
    pub exp: Experiment,
    pub run: RunStore,
    pub device: Device,
    pub datasets: Vec<OpenedDataset>,
    pub plan: Vec<EpochPlan>,
    pub student: Model,
    pub teacher: Option<Model>,
    /// `train.precision` resolved for the device: never `Auto`.
    pub precision: Precision,
    opt: AdamW,
    /// Index into `plan` of the next epoch to train.
    next: usize,
    wall_offset: f64,
    skipped_total: usize,
    eval_cache: BTreeMap<String, Vec<Batch>>,
    started: String,
    /// When this process took the run over; wall times add the checkpointed offset.
    t0: Instant,
    /// Mean loss of the recent log windows (progress.json's sparkline).
    loss_history: Vec<f64>,
    /// The plugins the run was opened with, for datasets added while it trains.
    registry: Registry,
    /// (dataset, sample id) whose load warnings this process has recorded: once each, not every epoch.
    warned: std::collections::HashSet<(String, String)>,
    /// Held while this trainer lives: no second trainer on the same run (rank 0's in a job).
    _lock: Option<crate::store::RunLock>,
    /// The data-parallel job this trainer is a rank of; None alone.
    world: Option<crate::dist::World>,
}

fn model_pair(exp: &Experiment, device: Device, heads: &Heads) -> Result<(Model, Option<Model>)> {
    let cfg = swin_config(exp)?;
    tch::manual_seed(exp.seed as i64);
    let student = Model::new(device, &cfg, heads)?;
    if let Some(w) = &exp.model.weights {
        let report = crate::swin::load_timm_weights(&student.vs, "backbone", w)?;
        if report.loaded == 0 {
            bail!("{}: no backbone weights matched (layout {}); is it a Swin state dict?", w.display(), report.layout);
        }
    }
    let teacher = if exp.student_teacher.enabled {
        let mut t = Model::new(device, &cfg, heads)?;
        t.copy_from(&student)?;
        for (_, v) in t.named_variables() {
            let _ = v.set_requires_grad(false);
        }
        Some(t)
    } else {
        None
    };
    Ok((student, teacher))
}

fn lr_map(exp: &Experiment) -> BTreeMap<Group, f64> {
    Group::ALL.into_iter().filter_map(|g| exp.optimizer.lr.of(g).map(|lr| (g, lr))).collect()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn fingerprint() -> String {
    format!(
        "fx {} / tch 0.24.0 / libtorch {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("FX_LIBTORCH_LIB").unwrap_or("?")
    )
}

fn write_vars(model: &Model, path: &Path) -> Result<()> {
    let vars = model.named_variables();
    Tensor::write_safetensors(&vars, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A variable of one dataset's heads (its cls head, loc decoder or seg head).
pub fn head_of(var: &str, dataset: &str) -> bool {
    ["cls_head", "loc_decoder", "seg_head"].iter().any(|g| {
        var.strip_prefix(g)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_prefix(dataset))
            .is_some_and(|r| r.starts_with('.'))
    })
}

/// Loads a model's variables from a checkpoint file: every variable must be present with its
/// shape, except those for which `may_miss` holds (they keep their values); returns those.
pub fn read_vars_except(model: &Model, path: &Path, may_miss: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let file: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect();
    let mut missing = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in model.named_variables() {
            let Some(src) = file.get(&name) else {
                if may_miss(&name) {
                    missing.push(name);
                    continue;
                }
                bail!("{}: missing `{name}`", path.display());
            };
            if src.size() != var.size() {
                bail!("{}: `{name}` has shape {:?}, the model expects {:?}", path.display(), src.size(), var.size());
            }
            var.shallow_clone().copy_(src);
        }
        Ok(())
    })?;
    Ok(missing)
}

/// The datasets (and plugin libraries) of a file queued by `fx-tui add`: `[[datasets]]` tables as
/// in an experiment, optionally `plugins = [...]`; nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedDatasets {
    #[serde(default)]
    pub plugins: Vec<PathBuf>,
    pub datasets: Vec<crate::config::DatasetConfig>,
}

/// The folder of a run where a TOML of `[[datasets]]` (and the plugin libraries it names) can be
/// dropped to hot-add datasets while the run trains.
pub const DROP_DIR: &str = "plugins";

pub fn parse_added_datasets(file: &Path, text: &str) -> Result<AddedDatasets> {
    let a: AddedDatasets = toml::from_str(text).map_err(|e| anyhow!("{}: {}", file.display(), e.message()))?;
    if a.datasets.is_empty() {
        bail!("{}: no [[datasets]] table", file.display());
    }
    Ok(a)
}

/// What finetuning took from the pretrained model.
#[derive(Debug, Default, serde::Serialize)]
pub struct Pretrained {
    pub file: String,
    /// Variables copied (same name and shape).
    pub loaded: usize,
    /// Variables of this model the file lacks: new heads or branches, trained from scratch.
    pub fresh: Vec<String>,
    /// Same name, other shape (e.g. a head with another label count): trained from scratch.
    pub reshaped: Vec<String>,
}

impl Pretrained {
    fn summary(&self, from: &Path) -> String {
        let groups = |v: &[String]| {
            let mut g: Vec<String> = v.iter().map(|n| n.split('.').take(2).collect::<Vec<_>>().join(".")).collect();
            g.dedup();
            g.join(", ")
        };
        format!(
            "finetuning from {} ({}): {} variables loaded; from scratch: {} new [{}], {} reshaped [{}]",
            from.display(),
            self.file,
            self.loaded,
            self.fresh.len(),
            groups(&self.fresh),
            self.reshaped.len(),
            groups(&self.reshaped)
        )
    }
}

/// The checkpoint file a finetune starts from: a run directory's last checkpoint (its teacher,
/// the model the paper uses after pretraining; the student when the run had none), or a file.
/// `from` may also be a run name prefix (`runs/organs_ls-phantom`): the newest run
/// `runs/organs_ls-phantom-<yyyymmdd-hhmmss>`.
pub fn pretrained_file(from: &Path) -> Result<PathBuf> {
    if from.is_file() {
        return Ok(from.to_path_buf());
    }
    let from = if from.is_dir() { from.to_path_buf() } else { newest_run(from)? };
    let run = RunStore::open(&from)?;
    let (ck, _) = run
        .last_checkpoint()?
        .ok_or_else(|| anyhow!("finetune.from: the run {} has no checkpoint yet", from.display()))?;
    let teacher = ck.join("teacher.safetensors");
    Ok(if teacher.is_file() { teacher } else { ck.join("student.safetensors") })
}

fn newest_run(prefix: &Path) -> Result<PathBuf> {
    let parent = prefix.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = prefix.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let is_run_of = |name: &str| {
        name.strip_prefix(&stem).and_then(|rest| rest.strip_prefix('-')).is_some_and(|t| {
            t.len() == 15 && t.as_bytes()[8] == b'-' && t.bytes().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
        })
    };
    let mut runs: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| is_run_of(&n.to_string_lossy())))
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs.pop().ok_or_else(|| {
        anyhow!(
            "finetune.from: {} is not a checkpoint file, a run directory, or the name of a run in {} (no {stem}-<yyyymmdd-hhmmss> there); train the pretraining experiment first or give the path",
            prefix.display(),
            parent.display()
        )
    })
}

/// Copies every variable of the pretrained file that this model has with the same shape.
pub fn load_pretrained(model: &Model, from: &Path) -> Result<Pretrained> {
    let path = pretrained_file(from)?;
    // A checkpoint, or a model file from `fx-tui export-model` (its names map back to fx's).
    let file: BTreeMap<String, Tensor> = crate::predict::read_model_tensors(&path)?;
    let mut out = Pretrained { file: path.display().to_string(), ..Default::default() };
    tch::no_grad(|| {
        for (name, var) in model.named_variables() {
            match file.get(&name) {
                Some(src) if src.size() == var.size() => {
                    var.shallow_clone().copy_(src);
                    out.loaded += 1;
                }
                Some(_) => out.reshaped.push(name),
                None => out.fresh.push(name),
            }
        }
    });
    if out.loaded == 0 {
        bail!("finetune.from: {} shares no variable with this model; is it a Foundation X checkpoint?", path.display());
    }
    Ok(out)
}

impl Trainer {
    /// Creates a run directory for an experiment without building the model: validates the
    /// datasets, stores the resolved experiment and the plan. A trainer process (this one or a
    /// detached one) then takes it over with [`Trainer::resume`].
    pub fn prepare(exp: &Experiment, file: &str, registry: &Registry) -> Result<RunStore> {
        let datasets = open_datasets(exp, file, registry)?;
        if let Some(w) = &exp.model.weights {
            if !w.is_file() {
                bail!("{file}: model.weights: {} does not exist", w.display());
            }
        }
        if let Some(from) = &exp.finetune.from {
            pretrained_file(from).map_err(|e| anyhow!("{file}: {e}"))?;
        }
        let plan = schedule::plan(exp, &tasks_of(&datasets));
        let resolved = toml::to_string(exp).context("serialising the resolved experiment")?;
        let run = RunStore::create(&exp.output_dir, &exp.name, &resolved)?;
        run.write_json("plan.json", &plan)?;
        run.event("info", "created", format!("run created from {file}"), serde_json::json!({ "epochs": plan.len() }))?;
        for d in &datasets {
            let warnings = d.dataset.warnings();
            for w in warnings.iter().take(20) {
                run.event(
                    "warn",
                    "dataset_warning",
                    format!("{}: {w}", d.name),
                    serde_json::json!({ "dataset": d.name }),
                )?;
            }
            if warnings.len() > 20 {
                run.event(
                    "warn",
                    "dataset_warnings",
                    format!("{}: {} warnings while reading the annotations (first 20 listed)", d.name, warnings.len()),
                    serde_json::json!({ "dataset": d.name, "count": warnings.len() }),
                )?;
            }
        }
        Ok(run)
    }

    /// Starts a new run of an experiment in this process.
    pub fn create(exp: Experiment, file: &str, registry: &Registry, device: Device) -> Result<Trainer> {
        let run = Self::prepare(&exp, file, registry)?;
        Self::resume(&run.dir, registry, Some(device))
    }

    /// Set to 1 to resume a run whose plugin libraries changed since it started.
    pub const ALLOW_CHANGED_PLUGINS: &str = "FX_ALLOW_CHANGED_PLUGINS";

    /// The plugin libraries the run's datasets come from (the experiment's `plugins`, and discovered
    /// libraries providing one of its plugins) with their SHA-256. A library whose hash differs from
    /// the one recorded in the run's plugins.json is refused (its code is not the code the run
    /// trained with) unless FX_ALLOW_CHANGED_PLUGINS=1.
    fn check_plugin_libraries(
        run: &RunStore,
        exp: &Experiment,
        registry: &Registry,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let mut now = std::collections::BTreeMap::new();
        let mut paths: Vec<std::path::PathBuf> = exp.plugins.clone();
        paths.extend(exp.datasets.iter().filter_map(|d| registry.library_of(&d.plugin).map(Path::to_path_buf)));
        for p in paths {
            let key = std::fs::canonicalize(&p).unwrap_or(p.clone()).display().to_string();
            if let std::collections::btree_map::Entry::Vacant(slot) = now.entry(key) {
                slot.insert(crate::dynlib::sha256_hex(&p)?);
            }
        }
        let before: std::collections::BTreeMap<String, String> =
            run.read_json(fx_run::files::PLUGINS).unwrap_or_default();
        let changed: Vec<String> =
            now.iter().filter(|(p, h)| before.get(*p).is_some_and(|b| b != *h)).map(|(p, _)| p.clone()).collect();
        if !changed.is_empty() && std::env::var(Self::ALLOW_CHANGED_PLUGINS).as_deref() != Ok("1") {
            bail!(
                "{}: plugin librar{} changed since the run used {}: {} (its SHA-256 differs from the run's {}); \
             resume with the libraries it trained with, or set {}=1 to resume anyway",
                run.dir.display(),
                if changed.len() == 1 { "y" } else { "ies" },
                if changed.len() == 1 { "it" } else { "them" },
                changed.join(", "),
                fx_run::files::PLUGINS,
                Self::ALLOW_CHANGED_PLUGINS
            );
        }
        Ok(now)
    }

    /// Re-opens a run directory and continues after its last complete checkpoint. Metric rows of an
    /// epoch that never reached its checkpoint are dropped, so none is lost or duplicated.
    pub fn resume(dir: &Path, registry: &Registry, device_override: Option<Device>) -> Result<Trainer> {
        Self::resume_in(dir, registry, device_override, None)
    }

    /// [`Trainer::resume`] as one rank of a data-parallel job: rank 0 locks and writes the run
    /// directory, the others only read it; every rank starts from rank 0's weights. On CUDA each
    /// rank trains on the GPU of its local rank.
    pub fn resume_in(
        dir: &Path,
        registry: &Registry,
        device_override: Option<Device>,
        world: Option<crate::dist::World>,
    ) -> Result<Trainer> {
        let mut run = RunStore::open(dir)?;
        let writer = world.as_ref().is_none_or(|w| w.is_writer());
        // First of all: two trainers would interleave rows and checkpoints.
        let lock = if writer { Some(run.lock()?) } else { None };
        if writer {
            complete_hot_add(&run)?;
        } else {
            run = run.reader();
        }
        if let Some(w) = &world {
            // The other ranks read experiment.toml and plan.json once rank 0 has settled them.
            w.barrier()?;
        }
        let file = run.path("experiment.toml");
        let exp = Experiment::load(&file, &[])?;
        let device = match device_override {
            Some(d) => d,
            None => resolve_device(&exp.device)?,
        };
        let device = match (&world, device) {
            (Some(w), Device::Cuda(_)) => Device::Cuda(w.local_rank),
            (_, d) => d,
        };
        let label = file.display().to_string();
        let datasets = open_datasets(&exp, &label, registry)?;
        let libraries = Self::check_plugin_libraries(&run, &exp, registry)?;
        let plan = schedule::plan(&exp, &tasks_of(&datasets));
        let stored: Vec<EpochPlan> = run.read_json("plan.json")?;
        if stored != plan {
            bail!(
                "{}: the schedule computed now differs from the run's plan.json (did a dataset change?)",
                dir.display()
            );
        }
        let (student, mut teacher) = model_pair(&exp, device, &heads(&exp, &datasets))?;
        let o = &exp.optimizer;
        let mut opt = AdamW::new(o.beta1, o.beta2, o.eps, o.weight_decay, lr_map(&exp));
        let precision = exp.train.precision.resolve(device);
        if precision == Precision::Fp16 {
            opt.scaler = Some(fx_shim::GradScaler::new(device));
        }
        let (next, wall_offset, skipped_total) = match run.last_checkpoint()? {
            Some((ck, state)) => {
                // The checkpoint's experiment read back through this build (defaults of keys added
                // since filled in) before comparing.
                let old = serde_json::from_value::<Experiment>(state.experiment.clone())
                    .ok()
                    .and_then(|e| serde_json::to_value(e).ok())
                    .unwrap_or(serde_json::Value::Null);
                let changed = changed_keys(&old, &serde_json::to_value(&exp)?);
                if !changed.is_empty() {
                    bail!(
                        "{}: experiment.toml differs from the experiment its last checkpoint was trained under, in {}; \
                         restore those values to resume, or start a new run (only {} may change)",
                        file.display(),
                        changed.join(", "),
                        SAFE_TO_CHANGE.join(", ")
                    );
                }
                // Heads of a dataset added after this checkpoint keep their fresh initialisation
                // (the teacher's copied from the student's).
                let added = |name: &str| {
                    exp.datasets.iter().filter(|d| d.joined_cycle.is_some()).any(|d| head_of(name, d.name()))
                };
                let fresh = read_vars_except(&student, &ck.join("student.safetensors"), &added)?;
                if let Some(t) = &teacher {
                    read_vars_except(t, &ck.join("teacher.safetensors"), &added)?;
                    t.copy_vars_from(&student, &|name| fresh.iter().any(|f| f == name));
                }
                opt.load(&ck.join("optimizer.safetensors"), device)?;
                (state.epoch, state.wall_time, state.skipped_samples)
            }
            None => {
                if let Some(from) = &exp.finetune.from {
                    let loaded = load_pretrained(&student, from)?;
                    if let Some(t) = teacher.as_mut() {
                        t.copy_from(&student)?;
                    }
                    run.event("info", "finetune_loaded", loaded.summary(from), serde_json::to_value(&loaded)?)?;
                }
                (0, 0.0, 0)
            }
        };
        let dropped = run.truncate_metrics(next)?;
        run.write_json("model.json", &model_json(&exp, &student, &datasets))?;
        let previous = run.read_json::<RunInfo>("run.json").ok();
        let started = previous.as_ref().map(|r| r.started.clone()).unwrap_or_else(crate::store::now);
        // A run that never started (prepared for a detached trainer) is not a resume.
        if previous.is_some() {
            run.event(
                "info",
                "resumed",
                format!("resumed after epoch {next}; {dropped} metric row(s) of an unfinished epoch dropped"),
                serde_json::json!({ "epoch": next, "dropped_rows": dropped }),
            )?;
        }
        run.event(
            "info",
            "precision",
            format!(
                "forward passes in {} (train.precision = \"{}\"); weights, moments, losses and metrics in fp32",
                precision.as_str(),
                exp.train.precision.as_str()
            ),
            serde_json::json!({ "precision": precision.as_str(), "configured": exp.train.precision.as_str() }),
        )?;
        if let Some(w) = &world {
            // Every rank from rank 0's weights, as DDP does at construction: identical even where
            // an initialisation drew from a thread's RNG.
            let mut vars: Vec<Tensor> = student.named_variables().into_iter().map(|(_, v)| v).collect();
            if let Some(t) = &teacher {
                vars.extend(t.named_variables().into_iter().map(|(_, v)| v));
            }
            w.broadcast(&vars)?;
            run.event(
                "info",
                "distributed",
                format!(
                    "data-parallel over {} ranks (c10d: Gloo{}): global batch {} = {} per rank × {}",
                    w.size,
                    if device.is_cuda() { format!(", GPU tensors through {}", w.gpu_backend()) } else { String::new() },
                    exp.train.batch_size * w.size,
                    exp.train.batch_size,
                    w.size
                ),
                serde_json::json!({ "world_size": w.size, "batch_per_rank": exp.train.batch_size, "gpu_backend": w.gpu_backend() }),
            )?;
        }
        if !libraries.is_empty() {
            run.write_json(fx_run::files::PLUGINS, &libraries)?;
            run.event(
                "info",
                "plugin_libraries",
                format!(
                    "{} plugin librar{} (path: SHA-256)",
                    libraries.len(),
                    if libraries.len() == 1 { "y" } else { "ies" }
                ),
                serde_json::to_value(&libraries)?,
            )?;
        }
        Ok(Trainer {
            exp,
            run,
            device,
            datasets,
            plan,
            student,
            teacher,
            precision,
            opt,
            next,
            wall_offset,
            skipped_total,
            eval_cache: BTreeMap::new(),
            started,
            t0: Instant::now(),
            loss_history: Vec::new(),
            registry: registry.clone(),
            warned: Default::default(),
            _lock: lock,
            world,
        })
    }

    pub fn next_epoch(&self) -> usize {
        self.next
    }

    fn info(&self, status: &str, error: Option<String>) -> RunInfo {
        RunInfo {
            status: status.into(),
            pid: std::process::id(),
            host: host(),
            started: self.started.clone(),
            heartbeat: crate::store::now(),
            device: crate::swin::device_name(self.device),
            epochs_done: self.next,
            epochs_total: self.plan.len(),
            fingerprint: fingerprint(),
            error,
            world_size: 0,
        }
    }

    fn wall(&self) -> f64 {
        self.wall_offset + self.t0.elapsed().as_secs_f64()
    }

    /// Runs the remaining epochs. Returns the final status: "finished" or "stopped".
    pub fn run(&mut self, on: &mut dyn FnMut(Progress)) -> Result<String> {
        self.run.write_json("run.json", &self.info("running", None))?;
        on(Progress::Started {
            run_dir: &self.run.dir,
            device: crate::swin::device_name(self.device),
            params: crate::swin::count_params(&self.student.vs, ""),
            first_epoch: self.next + 1,
            epochs: self.plan.len(),
        });
        // A panic inside libtorch or a plugin must still leave the run marked failed, with the reason.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<String> {
            while self.next < self.plan.len() {
                if STOP.load(Ordering::SeqCst) || !self.run_epoch(on)? {
                    return Ok("stopped".into());
                }
            }
            Ok("finished".into())
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow!("the trainer panicked: {}", what.lines().next().unwrap_or("")))
        });
        let w = self.wall();
        match &result {
            Ok(status) => {
                self.run.write_json("run.json", &self.info(status, None))?;
                self.run.event(
                    "info",
                    status,
                    format!("run {status} after epoch {}", self.next),
                    serde_json::Value::Null,
                )?;
                on(Progress::Finished { status, wall_s: w });
            }
            Err(e) => {
                let msg = format!("{e:#}");
                // A full disk may refuse the first tries (the checkpoint that failed may still be
                // releasing space): retry, then say so where a person will see it.
                let mut recorded = false;
                for attempt in 0..3 {
                    if self.run.write_json("run.json", &self.info("failed", Some(msg.clone()))).is_ok() {
                        recorded = true;
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
                }
                if !recorded {
                    eprintln!(
                        "fx: could not record the failure in {} (disk full?); the trainer has stopped and released the run: \
                         free space, then fx-tui --resume {}",
                        self.run.path("run.json").display(),
                        self.run.dir.display()
                    );
                }
                let _ = self.run.event("error", "failed", msg, serde_json::Value::Null);
            }
        }
        result
    }

    /// Trains the next epoch of the plan, updates the teacher, evaluates, appends the metric rows
    /// and checkpoints. Returns false when a stop request interrupted the epoch (nothing of it is
    /// kept; a resume runs it again).
    pub fn run_epoch(&mut self, on: &mut dyn FnMut(Progress)) -> Result<bool> {
        // Hot-add needs every rank to add the same dataset at the same boundary: not yet for a
        // data-parallel job (a dropped dataset waits in plugins/ until a single-process resume).
        if self.world.is_none() {
            self.add_pending_datasets(on)?;
        }
        if self.next >= self.plan.len() {
            return Ok(true);
        }
        let plan = self.plan[self.next].clone();
        let t_train = Instant::now();
        let (skipped, stopped) = self.train_epoch(&plan, on)?;
        if stopped {
            return Ok(false);
        }
        if let Some(w) = &self.world {
            // BatchNorm running statistics are rank 0's on every rank (DDP's broadcast_buffers),
            // so the teachers, evaluations and checkpoints agree.
            let buffers: Vec<Tensor> = self
                .student
                .named_variables()
                .into_iter()
                .filter(|(n, _)| crate::model::is_buffer(n))
                .map(|(_, v)| v)
                .collect();
            w.broadcast(&buffers)?;
        }
        if let Some(t) = self.teacher.as_mut() {
            t.ema_from(&self.student, self.exp.student_teacher.momentum)?;
        }
        let train_s = t_train.elapsed().as_secs_f64();
        let t_eval = Instant::now();
        // In a job every rank evaluates its share of the test batches and all compute the same
        // metrics from the gathered outputs (see `gathered`); rank 0 writes them.
        let rows = self.evaluate(&plan, self.wall())?;
        self.run.append_metrics(&rows)?;
        let eval_s = t_eval.elapsed().as_secs_f64();
        self.skipped_total += skipped;
        self.next += 1;
        self.checkpoint(self.wall())?;
        self.run.write_json("run.json", &self.info("running", None))?;
        if let Some(w) = &self.world {
            w.barrier()?;
        }
        on(Progress::Epoch { plan: &plan, rows: &rows, train_s, eval_s, skipped });
        Ok(true)
    }

    /// The parameters this epoch trains, with their groups; sets requires_grad on every variable.
    fn activate(&self, plan: &EpochPlan) -> Vec<(String, Group, Tensor)> {
        let mut active = Vec::new();
        for (name, var) in self.student.named_variables() {
            if crate::model::is_buffer(&name) {
                continue;
            }
            let on = match Group::of(&name) {
                Some((group, dataset)) => plan.trainable.group(group) && dataset.is_none_or(|d| d == plan.dataset),
                None => false,
            };
            let _ = var.set_requires_grad(on);
            if on {
                active.push((name.clone(), Group::of(&name).unwrap().0, var));
            }
        }
        active
    }

    /// Waits while paused (a stop request ends the wait); run.json and events say so.
    fn hold(&mut self) -> Result<()> {
        self.run.write_json("run.json", &self.info("paused", None))?;
        self.run.event("info", "paused", format!("paused in epoch {}", self.next + 1), serde_json::Value::Null)?;
        while PAUSE.load(Ordering::SeqCst) && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.run.write_json("run.json", &self.info("running", None))?;
        self.run.event("info", "resumed_training", "training continues", serde_json::Value::Null)?;
        Ok(())
    }

    /// [`Trainer::hold`] for a data-parallel job: all ranks wait together, agreeing five times a
    /// second (one tiny all-reduce) whether any rank is still paused or asked to stop. Returns
    /// whether to stop.
    fn hold_job(&mut self) -> Result<bool> {
        self.run.write_json("run.json", &self.info("paused", None))?;
        self.run.event("info", "paused", format!("paused in epoch {}", self.next + 1), serde_json::Value::Null)?;
        let world = self.world.as_ref().expect("a job");
        let stop = loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let flags = Tensor::from_slice(&[
                PAUSE.load(Ordering::SeqCst) as u8 as f32,
                STOP.load(Ordering::SeqCst) as u8 as f32,
            ]);
            world.sum(std::slice::from_ref(&flags))?;
            let (paused, stop) = (flags.double_value(&[0]) > 0.0, flags.double_value(&[1]) > 0.0);
            if stop || !paused {
                break stop;
            }
        };
        if !stop {
            self.run.write_json("run.json", &self.info("running", None))?;
            self.run.event("info", "resumed_training", "training continues", serde_json::Value::Null)?;
        }
        Ok(stop)
    }

    /// progress.json: what a viewer shows between epochs (atomic rewrite per log window).
    fn write_progress(&mut self, r: &StepReport) -> Result<()> {
        if r.loss.is_finite() {
            self.loss_history.push(r.loss);
            let excess = self.loss_history.len().saturating_sub(200);
            self.loss_history.drain(..excess);
        }
        let p = r.plan;
        let trainable: Vec<&str> = Group::ALL.iter().filter(|g| p.trainable.group(**g)).map(|g| g.as_str()).collect();
        self.run.write_json(
            "progress.json",
            &serde_json::json!({
                "epoch": p.epoch, "cycle": p.cycle, "dataset": p.dataset, "task": p.task, "mode": p.mode.as_str(),
                "trainable": trainable, "step": r.step, "steps": r.steps, "loss": r.loss, "img_per_s": r.img_per_s,
                "eta_epoch_s": r.eta_epoch_s, "eta_run_s": r.eta_run_s, "loss_history": self.loss_history,
                "rank_img_per_s": r.rank_img_per_s, "time": crate::store::now(),
            }),
        )
    }

    /// The autocast dtype of this run's forward passes; `None` in fp32.
    pub fn low_precision(&self) -> Option<LowPrecision> {
        match self.precision {
            Precision::Bf16 => Some(LowPrecision::Bf16),
            Precision::Fp16 => Some(LowPrecision::Fp16),
            Precision::Fp32 | Precision::Auto => None,
        }
    }

    fn dataset(&self, name: &str) -> &OpenedDataset {
        self.datasets.iter().find(|d| d.name == name).expect("plan names a dataset of the experiment")
    }

    fn images_tensor(&self, batch: &Batch) -> Tensor {
        let s = batch.size as i64;
        self.upload(Tensor::from_slice(&batch.images).view([batch.len() as i64, 1, s, s]))
    }

    /// A host batch on the training device. On CUDA through pinned memory with a non-blocking
    /// copy, so the step never waits for the transfer (PyTorch's `pin_memory=True` +
    /// `.to(device, non_blocking=True)`); the caching host allocator keeps the pinned buffer alive
    /// until the copy is done. On the CPU the tensor is used as it is.
    fn upload(&self, t: Tensor) -> Tensor {
        if self.device.is_cuda() {
            t.pin_memory(self.device).to_device_(self.device, t.kind(), true, false)
        } else {
            t
        }
    }

    /// Images of the remaining epochs, for the run ETA.
    fn images_left(&self, from: usize) -> f64 {
        self.plan[from..].iter().map(|p| (self.dataset(&p.dataset).train.len() as f64 * p.fraction).round()).sum()
    }

    fn train_epoch(&mut self, plan: &EpochPlan, on: &mut dyn FnMut(Progress)) -> Result<(usize, bool)> {
        let active = self.activate(plan);
        self.opt.set_factor(&lr_map(&self.exp), plan.lr_factor);
        let epoch = plan.epoch as u64;
        tch::manual_seed(mix(&[self.exp.seed, epoch, 0]) as i64 & i64::MAX);
        let ds = self.dataset(&plan.dataset);
        let order = pass_order(ds.train.len(), plan.fraction, mix(&[self.exp.seed, epoch, 2]), true);
        let n_images = order.len();
        let cfg = LoaderConfig {
            size: self.exp.model.image_size as usize,
            batch_size: self.exp.train.batch_size,
            workers: if self.exp.train.workers == 0 { num_cpus() } else { self.exp.train.workers },
            prefetch: self.exp.train.prefetch,
            augment: self.exp.augment.of(plan.task).clone(),
            seed: mix(&[self.exp.seed, epoch, 1]),
            shard: self.world.as_ref().map_or((0, 1), |w| (w.rank, w.size)),
        };
        let world_size = cfg.shard.1;
        // Sizes of the global batches (all ranks together), for each rank's share of the loss.
        let global_len: Vec<usize> =
            (0..n_images.div_ceil(cfg.global_batch())).map(|b| cfg.global_len(b, n_images)).collect();
        let loader = Loader::new(ds.dataset.clone(), ds.train.clone(), order, cfg);
        let steps = loader.len();
        let st = self.exp.student_teacher.clone();
        let w = if st.enabled { st.consistency_weight } else { 0.0 };
        let run_left_after = self.images_left(self.next + 1);
        let mut loss_acc = Tensor::zeros([], (Kind::Float, self.device));
        let (mut window_steps, mut window_images, mut seen) = (0usize, 0usize, 0usize);
        let mut window_local = 0usize;
        let mut window_t = Instant::now();
        let mut skipped = 0usize;
        for (step, batch) in loader.enumerate() {
            for (id, what) in &batch.warnings {
                if self.warned.insert((plan.dataset.clone(), id.clone())) {
                    let msg = format!("{}: sample {id}: {what}", plan.dataset);
                    self.run.event(
                        "warn",
                        "sample_warning",
                        msg.clone(),
                        serde_json::json!({ "dataset": plan.dataset, "id": id }),
                    )?;
                    on(Progress::Warning(msg));
                }
            }
            for (id, why) in &batch.skipped {
                skipped += 1;
                if skipped <= 20 {
                    self.run.event(
                        "warn",
                        "sample_skipped",
                        format!("{}: sample {id} skipped: {why}", plan.dataset),
                        serde_json::json!({ "dataset": plan.dataset, "id": id }),
                    )?;
                    on(Progress::Warning(format!("{}: sample {id} skipped: {why}", plan.dataset)));
                }
            }
            // BatchNorm cannot train on a global batch of one image: at the pyramid pooling's 1×1
            // bin it sees one value per channel, whose unbiased variance (the running_var update)
            // is 0/0 and would poison every later evaluation. PyTorch refuses such a batch
            // ("Expected more than 1 value per channel when training"); fx leaves it out, as
            // drop_last would, and says so. Every rank decides alike (global sizes).
            let lone = plan.task == Task::Seg && plan.trainable.group(Group::SegDecoder) && global_len[step] == 1;
            if lone {
                let msg = format!(
                    "{}: the last batch holds one image, too few for the segmentation decoder's BatchNorm: left out \
                     of this epoch's training",
                    plan.dataset
                );
                self.run.event(
                    "warn",
                    "batch_left_out",
                    msg.clone(),
                    serde_json::json!({ "dataset": plan.dataset }),
                )?;
                on(Progress::Warning(msg));
            }
            // DINO in a job: the loss is normalised by the global batch's boxes (all-reduced, as
            // DINO's own criterion does), scaled to this rank's share so that the share weighting
            // below gives the global batch's loss: boxes_global × n_rank / n_global.
            let num_boxes = match (&self.world, plan.task) {
                (Some(world), Task::Loc) => {
                    let local: usize = batch.boxes.iter().map(|b| b.len()).sum();
                    let t = Tensor::from_slice(&[local as f64]);
                    world.sum(std::slice::from_ref(&t))?;
                    let global = t.double_value(&[0]).max(1.0);
                    Some(global * batch.len() as f64 / global_len[step].max(1) as f64)
                }
                _ => None,
            };
            // In a data-parallel job every rank takes part in every step, even with an empty slice.
            if !lone && (!batch.is_empty() || self.world.is_some()) {
                // A job's segmentation step runs collectives inside its forward and backward (the
                // pooled Dice, SyncBatchNorm): a rank with an empty slice takes part through a
                // stand-in batch of weight 0.
                let stand_in = batch.is_empty() && plan.task == Task::Seg;
                let loss = if batch.is_empty() && !stand_in {
                    None
                } else {
                    let loss = {
                        // The forward passes (student and teacher) under autocast; the outputs
                        // leave the model in fp32, so the loss is fp32. Backward follows the
                        // forward's dtypes.
                        let _autocast = Autocast::new(self.device, self.low_precision());
                        match plan.task {
                            Task::Cls => self.cls_step(plan, &batch, w)?,
                            Task::Loc => {
                                self.loc_step(plan, &batch, w, mix(&[self.exp.seed, epoch, step as u64, 3]), num_boxes)?
                            }
                            Task::Seg => self.seg_step(plan, (!stand_in).then_some(&batch), w)?,
                        }
                    };
                    // This rank's share of the global batch: the ranks' averaged gradient is then
                    // the global batch's (per-sample means; see dist::averaged_gradients).
                    Some(if world_size > 1 {
                        loss * (batch.len() * world_size) as f64 / global_len[step].max(1) as f64
                    } else {
                        loss
                    })
                };
                let scaled = match (self.opt.scaler.as_ref(), &loss) {
                    (Some(scaler), Some(loss)) => Some(scaler.scale_loss(loss)),
                    (_, loss) => loss.as_ref().map(|l| l.shallow_clone()),
                };
                let grads = match (&self.world, &scaled) {
                    (Some(world), scaled) => crate::dist::averaged_gradients(world, scaled.as_ref(), &active)?,
                    (None, Some(scaled)) => crate::optim::gradients(scaled, &active)?,
                    (None, None) => unreachable!("one process steps only non-empty batches"),
                };
                let loss = loss.filter(|_| !stand_in);
                let found_inf = match self.opt.scaler.as_mut() {
                    Some(scaler) => {
                        let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
                        Some(scaler.unscale(&defined)?.shallow_clone())
                    }
                    None => None,
                };
                if plan.task == Task::Loc {
                    criterion::clip_grad_norm(&grads, self.exp.model.dino.clip_max_norm);
                }
                self.opt.step(&active, &grads, found_inf.as_ref())?;
                if let Some(scaler) = self.opt.scaler.as_mut() {
                    scaler.update()?;
                }
                if let Some(loss) = loss {
                    loss_acc += loss.detach();
                }
                window_steps += 1;
                window_local += batch.len();
                window_images += global_len[step].min(batch.len() * world_size);
                seen += global_len[step].min(batch.len() * world_size);
            }
            let last = step + 1 == steps;
            let mut stop = self.world.is_none() && STOP.load(Ordering::SeqCst);
            let mut pause_job = false;
            if (step + 1) % self.exp.train.log_every.max(1) == 0 || last {
                // The one host-device synchronisation of the window: reading the summed loss.
                // A job also agrees here whether any rank was asked to stop: all stop together.
                // (And each rank's throughput, for the viewer.)
                let dt = window_t.elapsed().as_secs_f64().max(1e-9);
                let mut img_per_s = window_images as f64 / dt;
                let mut rank_img_per_s = Vec::new();
                let summed = match &self.world {
                    Some(world) => {
                        // [loss, stop, pause, img/s of rank 0, 1, …]
                        let mut host = vec![0f32; 3 + world_size];
                        host[1] = STOP.load(Ordering::SeqCst) as u8 as f32;
                        host[2] = PAUSE.load(Ordering::SeqCst) as u8 as f32;
                        host[3 + world.rank] = (window_local as f64 / dt) as f32;
                        let all = Tensor::cat(
                            &[
                                loss_acc.view([1]).to_kind(Kind::Float),
                                Tensor::from_slice(&host[1..]).to_device(self.device),
                            ],
                            0,
                        );
                        world.sum(std::slice::from_ref(&all))?;
                        let all =
                            Vec::<f64>::try_from(all.to_kind(Kind::Double)).context("reading the job's totals")?;
                        stop = all[1] > 0.0;
                        pause_job = all[2] > 0.0;
                        rank_img_per_s = all[3..].to_vec();
                        img_per_s = rank_img_per_s.iter().sum();
                        all[0] / world_size as f64
                    }
                    None => loss_acc.double_value(&[]),
                };
                let loss = if window_steps > 0 { summed / window_steps as f64 } else { f64::NAN };
                let eta_epoch_s = (n_images.saturating_sub(seen)) as f64 / img_per_s.max(1e-9);
                let report = StepReport {
                    plan,
                    epochs: self.plan.len(),
                    step: step + 1,
                    steps,
                    loss,
                    img_per_s,
                    eta_epoch_s,
                    eta_run_s: eta_epoch_s + run_left_after / img_per_s.max(1e-9),
                    rank_img_per_s,
                };
                // A window without a step (its batch left out) has no loss to show.
                if window_steps > 0 {
                    self.write_progress(&report)?;
                    on(Progress::Step(report));
                }
                let _ = loss_acc.zero_();
                window_steps = 0;
                window_images = 0;
                window_local = 0;
                window_t = Instant::now();
                self.run.write_json("run.json", &self.info("running", None))?;
            }
            if stop {
                return Ok((skipped, true));
            }
            if PAUSE.load(Ordering::SeqCst) && self.world.is_none() {
                self.hold()?;
                window_t = Instant::now();
            }
            // A job pauses as a whole, at the log window where any rank (rank 0: the viewer's
            // control socket) was asked to.
            if pause_job {
                if self.hold_job()? {
                    return Ok((skipped, true));
                }
                window_t = Instant::now();
            }
        }
        if skipped > 20 {
            self.run.event(
                "warn",
                "samples_skipped",
                format!("{}: {skipped} samples skipped this epoch (first 20 listed)", plan.dataset),
                serde_json::json!({ "dataset": plan.dataset, "count": skipped }),
            )?;
        }
        if seen == 0 {
            // A dataset whose every sample fails (its plugin disabled after repeated crashes, its
            // files gone) trains nothing this epoch; the others go on. The reasons are the
            // sample_skipped events above.
            let msg = format!("{}: every sample of the epoch failed to load; the epoch trained nothing (see the sample_skipped events)", plan.dataset);
            self.run.event(
                "error",
                "epoch_without_samples",
                msg.clone(),
                serde_json::json!({ "dataset": plan.dataset, "epoch": plan.epoch }),
            )?;
            on(Progress::Warning(msg));
        }
        for (name, var) in self.student.named_variables() {
            if !crate::model::is_buffer(&name) {
                let _ = var.set_requires_grad(false);
            }
        }
        Ok((skipped, false))
    }

    /// Classification step: masked BCE-with-logits (unknown labels excluded) plus MSE consistency of
    /// the pooled feature with the teacher's on the same images.
    fn cls_step(&self, plan: &EpochPlan, batch: &Batch, w: f64) -> Result<Tensor> {
        let x = self.student.input(&self.images_tensor(batch));
        let c = self.dataset(&plan.dataset).dataset.desc().cls_labels.len() as i64;
        let labels = self.upload(Tensor::from_slice(&batch.cls).view([batch.len() as i64, c]));
        let known = labels.isnan().logical_not().to_kind(Kind::Float);
        let target = labels.nan_to_num(0.0, None, None);
        let out = self.student.cls(&x, &plan.dataset, true);
        let bce = out.logits.binary_cross_entropy_with_logits::<Tensor>(
            &target,
            Some(known.shallow_clone()),
            None,
            Reduction::Sum,
        );
        let task = bce / known.sum(Kind::Float).clamp_min(1.0);
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| teacher.cls(&x, &plan.dataset, false).pooled);
                let cons = out.pooled.mse_loss(&t, Reduction::Mean);
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }

    /// Localization step: DINO's set criterion on the student's decoder outputs (final, auxiliary,
    /// two-stage proposals, denoising queries) plus the consistency of the selected encoder tokens
    /// and the last decoder layer's outputs with the teacher's. The teacher decodes the queries the
    /// student selected, so the two feature sets correspond query by query; both are
    /// L2-normalised over channels. The consistency reaches the student (the reference computes it
    /// on a detached copy, so it never does).
    ///
    /// `num_boxes`: what the set criterion normalises by; None = this batch's boxes (one process).
    fn loc_step(&self, plan: &EpochPlan, batch: &Batch, w: f64, seed: u64, num_boxes: Option<f64>) -> Result<Tensor> {
        let x = self.student.input(&self.images_tensor(batch));
        let targets = targets_of(batch);
        let train_backbone = plan.trainable.group(Group::Backbone);
        let opts = DecodeOptions { dn_targets: Some(&targets), dn_seed: seed, select: None };
        let out = self.student.loc(&x, &plan.dataset, train_backbone, &opts);
        let (task, _) = match num_boxes {
            Some(n) => criterion::set_criterion_normalised(&out, &targets, n),
            None => criterion::set_criterion(&out, &targets),
        };
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| {
                    teacher.loc(
                        &x,
                        &plan.dataset,
                        false,
                        &DecodeOptions { select: Some(&out.selected), ..Default::default() },
                    )
                });
                let unit = |x: &Tensor| x / x.norm_scalaropt_dim(2, [-1i64].as_slice(), true).clamp_min(1e-6);
                let cons = (unit(&out.selected_tokens).mse_loss(&unit(&t.selected_tokens), Reduction::Mean)
                    + unit(&out.hidden).mse_loss(&unit(&t.hidden), Reduction::Mean))
                    * 0.5;
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }

    fn masks_tensor(&self, batch: &Batch, k: i64) -> Tensor {
        let s = batch.size as i64;
        self.upload(Tensor::from_slice(&batch.masks).view([batch.len() as i64, k, s, s])).to_kind(Kind::Float)
    }

    /// Segmentation step: soft Dice pooled over the batch (smooth 1, optionally + BCE) plus the
    /// consistency of the fused FPN map and the projected stage-4 map with the teacher's, both
    /// L2-normalised over channels. A frozen decoder runs in eval mode (BatchNorm statistics fixed).
    /// `batch`: None for a job rank's stand-in with an empty slice (one blank image, weight 0:
    /// its loss counts 0 and its sums add 0; its own BatchNorm statistics stay untouched).
    fn seg_step(&self, plan: &EpochPlan, batch: Option<&Batch>, w: f64) -> Result<Tensor> {
        let k = self.dataset(&plan.dataset).dataset.desc().seg_labels.len() as i64;
        let (x, target) = match batch {
            Some(b) => (self.student.input(&self.images_tensor(b)), self.masks_tensor(b, k)),
            None => {
                let s = self.exp.model.image_size;
                let blank = Tensor::zeros([1, 1, s, s], (Kind::Float, self.device));
                (self.student.input(&blank), Tensor::zeros([1, k, s, s], (Kind::Float, self.device)))
            }
        };
        // In a job: the pooled Dice's sums over the global batch, and with train.sync_batchnorm
        // the decoder's batch statistics too.
        let sum = |t: &Tensor| self.world.as_ref().expect("a job").sum_differentiable(t);
        let global =
            self.world.is_some().then(|| GlobalBatch { sum: &sum, weight: if batch.is_some() { 1.0 } else { 0.0 } });
        let tr = &plan.trainable;
        let sync = global.as_ref().filter(|_| self.exp.train.sync_batchnorm && tr.group(Group::SegDecoder));
        let train_decoder = tr.group(Group::SegDecoder) && (batch.is_some() || sync.is_some());
        let out = self.student.seg(&x, &plan.dataset, tr.group(Group::Backbone), train_decoder, sync)?;
        let mut task = soft_dice_loss(&out.logits, &target, global.as_ref())?;
        if self.exp.loss.seg == SegLoss::DiceBce {
            let bce = out.logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, Reduction::Mean);
            task = (task + bce) * 0.5;
        }
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| teacher.seg(&x, &plan.dataset, false, false, None))?;
                let cons = (l2_normalised(&out.fused).mse_loss(&l2_normalised(&t.fused), Reduction::Mean)
                    + l2_normalised(&out.stage4).mse_loss(&l2_normalised(&t.stage4), Reduction::Mean))
                    * 0.5;
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }

    /// Datasets queued by `fx-tui add` (files in RUN/pending/) join the run at an epoch boundary:
    /// from the next cycle on, or from the coming one when no epoch of it has trained yet. The
    /// experiment gains them (with `joined_cycle`), the model and the teacher gain their heads, and
    /// the plan of the remaining cycles is recomputed — the epochs already trained are unchanged.
    /// A dataset that cannot join (bad file, name taken, a branch the model lacks) is refused with
    /// an error event and its file moved to RUN/pending/refused/.
    fn add_pending_datasets(&mut self, on: &mut dyn FnMut(Progress)) -> Result<()> {
        self.queue_dropped_files(on)?;
        let dir = self.run.path("pending");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
        files.sort();
        for file in files {
            // A file whose datasets are all in the run already: a hot-add that completed but
            // crashed before moving its file (resume finished its journal).
            let done = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| parse_added_datasets(&file, &t).ok())
                .is_some_and(|a| {
                    !a.datasets.is_empty()
                        && a.datasets
                            .iter()
                            .all(|d| self.exp.datasets.iter().any(|o| o.name() == d.name() && o.joined_cycle.is_some()))
                });
            let outcome = if done {
                Ok(format!("{}: its datasets were already added", file.display()))
            } else {
                self.add_dataset_file(&file)
            };
            let to = |sub: &str| -> Result<()> {
                let d = dir.join(sub);
                std::fs::create_dir_all(&d)?;
                std::fs::rename(&file, d.join(file.file_name().unwrap()))?;
                Ok(())
            };
            match outcome {
                Ok(msg) => {
                    to("added")?;
                    self.run.event(
                        "info",
                        "dataset_added",
                        msg.clone(),
                        serde_json::json!({ "file": file.display().to_string() }),
                    )?;
                    on(Progress::Warning(msg));
                }
                Err(e) => {
                    to("refused")?;
                    let msg = format!("{}: refused: {e:#}", file.display());
                    self.run.event("error", "dataset_refused", msg.clone(), serde_json::Value::Null)?;
                    on(Progress::Warning(msg));
                }
            }
        }
        Ok(())
    }

    /// Files dropped into RUN/plugins/ — a TOML of `[[datasets]]` tables, with the plugin
    /// libraries it names beside it — are queued as `fx-tui add` queues them (relative `plugins`
    /// paths resolve against that folder), and the dropped TOML moves to RUN/plugins/queued/.
    /// The trainer looks at every epoch boundary, where a dataset can join.
    fn queue_dropped_files(&mut self, on: &mut dyn FnMut(Progress)) -> Result<()> {
        let drop = self.run.path(DROP_DIR);
        let Ok(entries) = std::fs::read_dir(&drop) else { return Ok(()) };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
            // A file still being copied waits for the next boundary; one that cannot be read (gone,
            // not UTF-8) is reported and left, never a reason to stop training.
            let fresh = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < std::time::Duration::from_secs(2));
            if fresh {
                continue;
            }
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    let msg = format!("{}: cannot read the dropped file: {e}", file.display());
                    self.run.event("warn", "dataset_dropped", msg.clone(), serde_json::Value::Null)?;
                    on(Progress::Warning(msg));
                    continue;
                }
            };
            // A file that does not parse is queued as it is: the queue refuses it with the reason.
            let queued = match toml::from_str::<toml::Table>(&text) {
                Ok(mut t) => {
                    if let Some(toml::Value::Array(libs)) = t.get_mut("plugins") {
                        for l in libs.iter_mut() {
                            if let toml::Value::String(s) = l {
                                if Path::new(s.as_str()).is_relative() {
                                    *s = drop.join(s.as_str()).display().to_string();
                                }
                            }
                        }
                    }
                    toml::to_string(&t).unwrap_or(text.clone())
                }
                Err(_) => text.clone(),
            };
            let pending = self.run.path("pending");
            std::fs::create_dir_all(&pending)?;
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f");
            crate::store::write_atomic(&pending.join(format!("{stamp}-{name}")), queued.as_bytes())?;
            let done = drop.join("queued");
            std::fs::create_dir_all(&done)?;
            if let Err(e) = std::fs::rename(&file, done.join(&name)) {
                // Queued already; it would be queued again at the next boundary, and then refused
                // as a duplicate: say so now.
                let msg = format!("{}: queued, but it could not be moved aside: {e}", file.display());
                self.run.event("warn", "dataset_dropped", msg.clone(), serde_json::Value::Null)?;
                on(Progress::Warning(msg));
                continue;
            }
            let msg = format!("{}: dropped into the run's {DROP_DIR}/ folder; queued", file.display());
            self.run.event(
                "info",
                "dataset_dropped",
                msg.clone(),
                serde_json::json!({ "file": file.display().to_string() }),
            )?;
            on(Progress::Warning(msg));
        }
        Ok(())
    }

    fn add_dataset_file(&mut self, file: &Path) -> Result<String> {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {label}"))?;
        let added = parse_added_datasets(file, &text)?;
        let joined = match self.plan.get(self.next) {
            Some(p) if self.next == 0 || self.plan[self.next - 1].cycle < p.cycle => p.cycle,
            Some(p) => p.cycle + 1,
            None => self.exp.train.cycles + 1,
        };
        let mut exp = self.exp.clone();
        exp.plugins.extend(added.plugins.iter().cloned());
        for mut d in added.datasets.clone() {
            if exp.datasets.iter().any(|o| o.name() == d.name()) {
                bail!("a dataset named `{}` is already in the run", d.name());
            }
            d.joined_cycle = Some(joined);
            exp.datasets.push(d);
        }
        let exp_file = self.run.path("experiment.toml").display().to_string();
        let datasets = open_datasets(&exp, &exp_file, &self.registry)?;
        let plan = schedule::plan(&exp, &tasks_of(&datasets));
        if plan[..self.next.min(plan.len())] != self.plan[..self.next] {
            bail!("internal: adding the dataset would change epochs already trained");
        }
        // The new heads, in the student and (copied) in the teacher.
        let new: Vec<&OpenedDataset> =
            datasets.iter().filter(|d| added.datasets.iter().any(|a| a.name() == d.name)).collect();
        for d in &new {
            let n = |t: Task| d.tasks.contains(&t).then(|| d.dataset.desc().labels(t).len() as i64);
            let (c, l, g) = (n(Task::Cls), n(Task::Loc), n(Task::Seg));
            self.student.add_heads(&d.name, c, l, g, &exp.model.dino, exp.model.fpn_channels)?;
            if let Some(t) = self.teacher.as_mut() {
                t.add_heads(&d.name, c, l, g, &exp.model.dino, exp.model.fpn_channels)?;
            }
        }
        if let Some(t) = &self.teacher {
            let is_new = |name: &str| new.iter().any(|d| head_of(name, &d.name));
            t.copy_vars_from(&self.student, &is_new);
            // The teacher learns by EMA only.
            for (name, v) in t.vs.variables() {
                if is_new(&name) {
                    let _ = v.set_requires_grad(false);
                }
            }
        }
        let resolved = toml::to_string(&exp).context("serialising the experiment")?;
        // experiment.toml and plan.json change together: a journal holds both first, so a crash
        // between the two writes is completed by the next --resume instead of leaving a run whose
        // experiment and plan disagree.
        self.run.write_json(HOT_ADD_JOURNAL, &serde_json::json!({ "experiment": resolved, "plan": plan }))?;
        complete_hot_add(&self.run)?;
        // The hot-add is applied (its journal completed): a failure from here on is not a refusal.
        if let Err(e) = self.run.write_json("model.json", &model_json(&exp, &self.student, &datasets)) {
            let _ = self.run.event(
                "warn",
                "model_json",
                format!("model.json not rewritten: {e:#}"),
                serde_json::Value::Null,
            );
        }
        let names: Vec<String> = new
            .iter()
            .map(|d| format!("{} ({})", d.name, d.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("+")))
            .collect();
        let epochs = plan.len() - self.plan.len();
        self.exp = exp;
        self.datasets = datasets;
        self.plan = plan;
        Ok(format!("dataset {} joined from cycle {joined}: {epochs} epoch(s) added to the plan", names.join(", ")))
    }

    fn checkpoint(&mut self, wall_time: f64) -> Result<()> {
        let state = CheckpointState {
            epoch: self.next,
            seed: self.exp.seed,
            wall_time,
            skipped_samples: self.skipped_total,
            experiment: serde_json::to_value(&self.exp)?,
        };
        let student = |p: &Path| write_vars(&self.student, p);
        let opt = |p: &Path| self.opt.save(p);
        let teacher = |p: &Path| match &self.teacher {
            Some(t) => write_vars(t, p),
            None => Ok(()),
        };
        let mut files: Vec<(&str, &dyn Fn(&Path) -> Result<()>)> =
            vec![("student.safetensors", &student), ("optimizer.safetensors", &opt)];
        if self.teacher.is_some() {
            files.push(("teacher.safetensors", &teacher));
        }
        self.run.save_checkpoint(&state, &files)?;
        Ok(())
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run.dir.clone()
    }
}

/// The batch's boxes as DINO targets: (cx, cy, w, h) normalised to the image. Boxes thinner than
/// a pixel (an augmentation can crop a box away) carry no signal and are left out.
pub fn targets_of(batch: &Batch) -> Vec<Targets> {
    let s = batch.size as f32;
    batch
        .boxes
        .iter()
        .map(|bs| {
            let mut t = Targets::default();
            for b in bs.iter().filter(|b| b.x1 - b.x0 >= 1.0 && b.y1 - b.y0 >= 1.0) {
                t.labels.push(b.label as i64);
                t.boxes.push([(b.x0 + b.x1) / 2.0 / s, (b.y0 + b.y1) / 2.0 / s, (b.x1 - b.x0) / s, (b.y1 - b.y0) / s]);
            }
            t
        })
        .collect()
}

/// 1 − soft Dice per class, pooled over the batch and pixels (smooth 1), averaged over classes.
/// `global`: in a job, the sums are the global batch's (the loss one process computes).
pub fn soft_dice_loss(logits: &Tensor, target: &Tensor, global: Option<&GlobalBatch>) -> Result<Tensor> {
    let p = logits.sigmoid();
    let dims = [0i64, 2, 3];
    let inter = (&p * target).sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    let denom = p.sum_dim_intlist(dims.as_slice(), false, Kind::Float)
        + target.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    let (inter, denom) = match global {
        Some(g) => {
            let k = inter.size()[0];
            let both = g.sum(&Tensor::cat(&[inter, denom], 0))?;
            (both.narrow(0, 0, k), both.narrow(0, k, k))
        }
        None => (inter, denom),
    };
    let dice = (inter * 2.0 + 1.0) / (denom + 1.0);
    Ok(dice.mean(Kind::Float).neg() + 1.0)
}

/// Unit L2 norm over the channel dimension (dim 1) of an NCHW map.
pub fn l2_normalised(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-6)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A sample id or label as one file-name component: path separators and other characters that
/// are not portable become '_', so an id can never leave its folder.
pub fn file_part(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    out.trim_start_matches('.').to_string()
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
