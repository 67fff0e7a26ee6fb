//! Hot-add: datasets queued while a run trains (`fx-tui add`, or files dropped into the run's
//! `plugins/` folder) join at an epoch boundary, journalled so that a crash mid-way resumes.

use super::*;

/// A hot-add's new experiment.toml and plan.json, written before either of them.
pub(super) const HOT_ADD_JOURNAL: &str = "hot_add.json";

/// Writes the experiment and plan a hot-add journal holds, then removes the journal.
pub(super) fn complete_hot_add(run: &RunStore) -> Result<()> {
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

/// The datasets (and plugin libraries) of a file queued by `fx-tui add`: `[[datasets]]` tables as
/// in an experiment, optionally `plugins = [...]`; nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedDatasets {
    #[serde(default)]
    pub plugins: Vec<PathBuf>,
    /// When the datasets join: "next_cycle" (default: the paper's cycle order stays intact) or
    /// "next_epoch".
    #[serde(default)]
    pub join: Join,
    pub datasets: Vec<crate::config::DatasetConfig>,
}

/// When hot-added datasets start training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// From the next cycle on, or from the coming one when no epoch of it has trained yet.
    #[default]
    NextCycle,
    /// At the next epoch that starts a (dataset, task) pair: their epochs of the current cycle
    /// come first, then the rest of the cycle.
    NextEpoch,
}

/// The folder of a run where a TOML of `[[datasets]]` (and the plugin libraries it names) can be
/// dropped to hot-add datasets while the run trains.
pub const DROP_DIR: &str = "plugins";

/// What tells the trainer that something landed in RUN/plugins/ while an epoch runs: a notify
/// watcher, and a look every [`DropWatch::FALLBACK`] for filesystems without change events (NFS).
/// A dropped file is then queued at once (`dataset_dropped`, the viewer shows it waiting); it
/// joins at the epoch boundary, the only place a dataset can.
pub(super) struct DropWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    changed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    last_look: std::time::Instant,
}

impl DropWatch {
    pub(super) const FALLBACK: std::time::Duration = std::time::Duration::from_secs(10);

    pub(super) fn new(folder: &Path) -> DropWatch {
        use notify::Watcher;
        let changed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = changed.clone();
        let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        })
        .ok()
        .and_then(|mut w| w.watch(folder, notify::RecursiveMode::NonRecursive).is_ok().then_some(w));
        DropWatch { _watcher: watcher, changed, last_look: std::time::Instant::now() }
    }

    /// Whether to look into the folder now: something changed in it, or the fallback is due.
    pub(super) fn due(&mut self) -> bool {
        let due = self.changed.swap(false, std::sync::atomic::Ordering::Relaxed)
            || self.last_look.elapsed() >= Self::FALLBACK;
        if due {
            self.last_look = std::time::Instant::now();
        }
        due
    }
}

pub fn parse_added_datasets(file: &Path, text: &str) -> Result<AddedDatasets> {
    let a: AddedDatasets = toml::from_str(text).map_err(|e| anyhow!("{}: {}", file.display(), e.message()))?;
    if a.datasets.is_empty() {
        bail!("{}: no [[datasets]] table", file.display());
    }
    Ok(a)
}

/// The one validation of a hot-add, whoever asks (`fx-tui add`, the drop folder, the viewer):
/// every name is free, the plugin libraries load, every dataset opens, and each task a new dataset
/// trains has its branch in the run's model (`branches`: the tasks the run's plan trains; a run
/// gains heads, never branches). Returns the experiment with the new datasets appended and all its
/// datasets opened.
pub fn check_added(
    exp: &Experiment,
    branches: &[Task],
    added: &AddedDatasets,
    label: &str,
    registry: &Registry,
) -> Result<(Experiment, Vec<OpenedDataset>)> {
    let mut exp = exp.clone();
    for (i, d) in added.datasets.iter().enumerate() {
        if exp.datasets.iter().any(|o| o.name() == d.name()) {
            bail!(
                "{label}: datasets[{i}]: a dataset named `{}` is already in the run; give it another `name`",
                d.name()
            );
        }
        exp.datasets.push(d.clone());
    }
    exp.plugins.extend(added.plugins.iter().cloned());
    // The branches first, each new dataset opened alone: a dataset that needs a branch the run
    // lacks is refused for that, not for a model size the branch would have had to fit.
    let mut libs = registry.clone();
    libs.isolation = exp.plugin_isolation;
    let libs = libs.with_libraries(label, &exp.plugins)?;
    for (i, d) in added.datasets.iter().enumerate() {
        let offered = libs.open(label, i, d, exp.cache_spec().as_ref())?.desc().tasks();
        let tasks =
            d.tasks.clone().unwrap_or_else(|| offered.into_iter().filter(|t| exp.train.branch_on(*t)).collect());
        if let Some(t) = tasks.iter().find(|t| **t != Task::Cls && !branches.contains(t)) {
            bail!(
                "{label}: datasets[{i}] ({}) trains {t}, but the run's model has no {t} branch (no dataset of the run \
                 trains {t}); leave it out with `tasks`",
                d.name()
            );
        }
    }
    let datasets = open_datasets(&exp, label, registry)?;
    Ok((exp, datasets))
}

/// `fx-tui add RUN FILE` (and the viewer's add key): validates FILE's datasets against the run
/// with [`check_added`], then queues it in RUN/pending/, where the trainer takes it at its next
/// epoch boundary. Returns the queued file and the number of datasets.
pub fn queue_added(run_dir: &Path, file: &Path, registry: &Registry) -> Result<(PathBuf, usize)> {
    let store = RunStore::open(run_dir)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let added = parse_added_datasets(file, &text)?;
    let exp = Experiment::load(&store.path("experiment.toml"), &[])?;
    let plan: Vec<EpochPlan> = store.read_json("plan.json")?;
    let branches: Vec<Task> = plan.iter().map(|p| p.task).collect();
    check_added(&exp, &branches, &added, &file.display().to_string(), registry)?;
    let pending = store.path("pending");
    std::fs::create_dir_all(&pending)?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "datasets".into());
    let dst = pending.join(format!("{}-{stem}.toml", chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")));
    crate::store::write_atomic(&dst, text.as_bytes())?;
    Ok((dst, added.datasets.len()))
}

impl Trainer {
    /// Datasets queued by `fx-tui add` (files in RUN/pending/) join the run at an epoch boundary:
    /// from the next cycle on, or from the coming one when no epoch of it has trained yet. The
    /// experiment gains them (with `joined_cycle`), the model and the teacher gain their heads, and
    /// the plan of the remaining cycles is recomputed — the epochs already trained are unchanged.
    /// A dataset that cannot join (bad file, name taken, a branch the model lacks) is refused with
    /// an error event and its file moved to RUN/pending/refused/.
    pub(super) fn add_pending_datasets(&mut self, on: &mut dyn FnMut(Progress)) -> Result<()> {
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
    pub(super) fn queue_dropped_files(&mut self, on: &mut dyn FnMut(Progress)) -> Result<()> {
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

    pub(super) fn add_dataset_file(&mut self, file: &Path) -> Result<String> {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {label}"))?;
        let added = parse_added_datasets(file, &text)?;
        let joined = match self.plan.get(self.next) {
            Some(p) if self.next == 0 || self.plan[self.next - 1].cycle < p.cycle => p.cycle,
            Some(p) => p.cycle + 1,
            None => self.exp.train.cycles + 1,
        };
        let branches: Vec<Task> = self.plan.iter().map(|p| p.task).collect();
        let (mut exp, datasets) = check_added(&self.exp, &branches, &added, &label, &self.registry)?;
        for d in exp.datasets.iter_mut().filter(|d| added.datasets.iter().any(|a| a.name() == d.name())) {
            match (added.join, self.plan.get(self.next)) {
                (Join::NextEpoch, Some(p)) => {
                    d.joined_cycle = Some(p.cycle);
                    d.joined_epoch = Some(self.next + 1);
                }
                _ => d.joined_cycle = Some(joined),
            }
        }
        let plan = schedule::plan(&exp, &tasks_of(&datasets));
        if plan[..self.next.min(plan.len())] != self.plan[..self.next] {
            bail!("internal: adding the dataset would change epochs already trained");
        }
        // The new heads, in the student and (copied) in the teacher.
        let new: Vec<&OpenedDataset> =
            datasets.iter().filter(|d| added.datasets.iter().any(|a| a.name() == d.name)).collect();
        for d in &new {
            let n = |t: Task| d.tasks.contains(&t).then(|| d.dataset.desc().labels(t).len() as i64);
            let l = n(Task::Loc);
            let c = d.tasks.contains(&Task::Cls).then(|| cls_head_spec(&exp, d)).transpose()?;
            let g = d.tasks.contains(&Task::Seg).then(|| seg_head_spec(&exp, d)).transpose()?;
            let dino = loc_dino(&exp, &d.name);
            self.student.add_heads(&d.name, c.as_ref(), l, g.as_ref(), &dino, exp.model.fpn_channels)?;
            if let Some(t) = self.teacher.as_mut() {
                t.add_heads(&d.name, c.as_ref(), l, g.as_ref(), &dino, exp.model.fpn_channels)?;
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
        if let Err(e) = model_json(&exp, &self.student, &datasets).and_then(|m| self.run.write_json("model.json", &m)) {
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
}
