//! Setting a run up: the experiment's datasets opened through their plugins, the device, the
//! backbone and head sizes, the student/teacher pair, and the trainer's two constructors —
//! [`Trainer::create`] (a new run) and [`Trainer::resume_in`] (a run directory, any rank of a job).

use super::*;

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
        // A dataset's own decoder sizes, checked the same way.
        for d in out.iter().filter(|d| d.tasks.contains(&Task::Loc)) {
            let problems = loc_dino(exp, &d.name).problems(exp.model.image_size);
            if !problems.is_empty() {
                bail!("{file}: dataset {} ([datasets.heads.loc] over [model.dino]): {}", d.name, problems.join("; "));
            }
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

/// model.json: architecture, parameter counts per component, and the label names of every
/// dataset's heads (what `predict` and `export-model` need to rebuild the model without the data).
pub fn model_json(
    exp: &Experiment,
    student: &Model,
    datasets: &[OpenedDataset],
) -> Result<fx_run::ModelInfo<crate::dino::DinoConfig>> {
    let labels: BTreeMap<String, crate::predict::HeadLabels> = datasets
        .iter()
        .map(|d| {
            let desc = d.dataset.desc();
            let of = |t: Task| if d.tasks.contains(&t) { desc.labels(t).to_vec() } else { Vec::new() };
            (d.name.clone(), crate::predict::HeadLabels { cls: of(Task::Cls), loc: of(Task::Loc), seg: of(Task::Seg) })
        })
        .collect();
    // The heads as specified (kinds, label modes, decoder sizes): what predict rebuilds.
    let h = heads(exp, datasets)?;
    Ok(fx_run::ModelInfo {
        arch: exp.model.arch.clone(),
        image_size: exp.model.image_size,
        parameters: student.component_params().into_iter().collect(),
        labels,
        cls_heads: h.cls,
        seg_heads: h.seg,
        loc_dino: h.loc_dino,
    })
}

/// A dataset's classification head: the experiment's `[datasets.heads.cls]` over what the
/// dataset's plugin declares (its labels, and whether they are mutually exclusive).
pub fn cls_head_spec(exp: &Experiment, d: &OpenedDataset) -> Result<ClsHeadSpec> {
    let desc = d.dataset.desc();
    let cfg = exp.heads_of(&d.name).cls;
    let plugin = plugin_head_spec(exp, d, Task::Cls, cfg.plugin.as_deref(), &cfg.options)?;
    Ok(ClsHeadSpec {
        labels: desc.cls_labels.len() as i64,
        hidden: cfg.hidden,
        dropout: cfg.dropout,
        mode: cfg.mode.unwrap_or(desc.cls_mode),
        plugin,
    })
}

/// A dataset's segmentation head: its seg labels with the experiment's `[datasets.heads.seg]`.
pub fn seg_head_spec(exp: &Experiment, d: &OpenedDataset) -> Result<SegHeadSpec> {
    let cfg = exp.heads_of(&d.name).seg;
    let plugin = plugin_head_spec(exp, d, Task::Seg, cfg.plugin.as_deref(), &cfg.options)?;
    Ok(SegHeadSpec { labels: d.dataset.desc().seg_labels.len() as i64, widths: cfg.widths, mode: cfg.mode, plugin })
}

/// A plugin head (`[datasets.heads.<task>] plugin = "<kind>"`): the library of the experiment's
/// `plugins` that offers it, recorded with its hash (a resume or predict refuses a library that
/// changed) and the head's options.
fn plugin_head_spec(
    exp: &Experiment,
    d: &OpenedDataset,
    task: Task,
    kind: Option<&str>,
    options: &toml::Table,
) -> Result<Option<fx_run::PluginHeadSpec>> {
    let Some(kind) = kind else { return Ok(None) };
    let lib = crate::head_plugin::find(&exp.plugins, kind, task)
        .with_context(|| format!("datasets {}: heads.{task}.plugin", d.name))?;
    Ok(Some(fx_run::PluginHeadSpec {
        kind: kind.to_string(),
        library: lib.path.clone(),
        sha256: lib.sha256.clone(),
        options: serde_json::to_value(options)?,
    }))
}

/// The DINO sizes of a dataset's decoder: `[model.dino]` with its `[datasets.heads.loc]`.
pub fn loc_dino(exp: &Experiment, dataset: &str) -> crate::dino::DinoConfig {
    exp.heads_of(dataset).loc.apply(&exp.model.dino)
}

/// The heads the experiment needs: one per (dataset, task) it trains.
pub fn heads(exp: &Experiment, datasets: &[OpenedDataset]) -> Result<Heads> {
    let of = |task: Task| {
        datasets
            .iter()
            .filter(|d| d.tasks.contains(&task))
            .map(|d| (d.name.clone(), d.dataset.desc().labels(task).len() as i64))
            .collect()
    };
    Ok(Heads {
        cls: datasets
            .iter()
            .filter(|d| d.tasks.contains(&Task::Cls))
            .map(|d| Ok((d.name.clone(), cls_head_spec(exp, d)?)))
            .collect::<Result<_>>()?,
        seg: datasets
            .iter()
            .filter(|d| d.tasks.contains(&Task::Seg))
            .map(|d| Ok((d.name.clone(), seg_head_spec(exp, d)?)))
            .collect::<Result<_>>()?,
        loc: of(Task::Loc),
        seg_channels: (exp.model.ppm_channels, exp.model.fpn_channels),
        dino: exp.model.dino.clone(),
        loc_dino: datasets
            .iter()
            .filter(|d| d.tasks.contains(&Task::Loc))
            .map(|d| (d.name.clone(), loc_dino(exp, &d.name)))
            .filter(|(_, c)| *c != exp.model.dino)
            .collect(),
    })
}

pub fn tasks_of(datasets: &[OpenedDataset]) -> Vec<(String, Vec<Task>)> {
    datasets.iter().map(|d| (d.name.clone(), d.tasks.clone())).collect()
}

pub(super) fn model_pair(exp: &Experiment, device: Device, heads: &Heads) -> Result<(Model, Option<Model>)> {
    let cfg = swin_config(exp)?;
    tch::manual_seed(exp.seed as i64);
    let mut student = Model::new(device, &cfg, heads)?;
    student.set_activation_checkpointing(exp.train.activation_checkpointing);
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

pub(super) fn lr_map(exp: &Experiment) -> BTreeMap<Group, f64> {
    Group::ALL.into_iter().filter_map(|g| exp.optimizer.lr.of(g).map(|lr| (g, lr))).collect()
}

pub(super) fn host() -> String {
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

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
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
    pub const ALLOW_CHANGED_PLUGINS: &str = crate::dynlib::ALLOW_CHANGED_PLUGINS;

    /// The plugin libraries the run's datasets come from (the experiment's `plugins`, and discovered
    /// libraries providing one of its plugins) with their SHA-256. A library whose hash differs from
    /// the one recorded in the run's plugins.json is refused (its code is not the code the run
    /// trained with) unless FX_ALLOW_CHANGED_PLUGINS=1.
    pub(super) fn check_plugin_libraries(
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
        let (student, mut teacher) = model_pair(&exp, device, &heads(&exp, &datasets)?)?;
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
        run.write_json("model.json", &model_json(&exp, &student, &datasets)?)?;
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
        let drop_watch = world.is_none().then(|| super::hot_add::DropWatch::new(&run.path(DROP_DIR)));
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
            disabled: Default::default(),
            drop_watch,
            eval_cache: BTreeMap::new(),
            eval_memo: BTreeMap::new(),
            started,
            t0: Instant::now(),
            loss_history: Vec::new(),
            registry: registry.clone(),
            warned: Default::default(),
            _lock: lock,
            world,
            control: Control::default(),
        })
    }
}
