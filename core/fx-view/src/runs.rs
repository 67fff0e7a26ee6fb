//! The runs index: one light summary per run directory under the output folders the browser
//! knows, read lazily and kept current cheaply.
//!
//! A summary costs `run.json`, the top of `experiment.toml` (name, tags), and the last
//! [`TAIL_BYTES`] of `metrics.jsonl` (the latest main metric per task); never the whole metric
//! history, so 500 runs open in a fraction of a second. [`Runs::refresh`] re-lists the folders and
//! re-reads only the runs whose `run.json`, `metrics.jsonl` or `tags` changed (one `stat` each).
//!
//! Tags are the one thing the browser writes into a run directory: `tags` (one tag per line),
//! replaced atomically. A deleted run is moved to `<folder>/.trash/`, never unlinked.

use fx_run::facts::{self, default_metric};
use fx_run::{MetricRow, RunInfo};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How much of `metrics.jsonl` a summary reads (from the end): a few epochs of rows at the
/// paper's 20 (dataset, task) pairs with teacher, student and per-label values.
pub const TAIL_BYTES: u64 = 256 * 1024;

/// A running run whose heartbeat is older than this is flagged stale (the trainer writes
/// `run.json` at least once per epoch; a minute-long epoch is normal, an hour is not).
pub const STALE_AFTER_S: i64 = 30 * 60;

/// The file holding a run's tags, one per line.
pub const TAGS_FILE: &str = fx_run::files::TAGS;

/// Where deleted runs go, inside their output folder.
pub const TRASH_DIR: &str = fx_run::files::TRASH;

/// A run's state as the browser shows and filters it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Running,
    Paused,
    Finished,
    Stopped,
    Failed,
    /// A run directory whose trainer has not written `run.json` yet.
    NotStarted,
    /// A status this viewer does not know (a newer trainer): shown as written.
    Other(String),
}

impl Status {
    pub fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "paused" => Status::Paused,
            "finished" => Status::Finished,
            "stopped" => Status::Stopped,
            "failed" => Status::Failed,
            "" => Status::NotStarted,
            other => Status::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Finished => "finished",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
            Status::NotStarted => "new",
            Status::Other(s) => s,
        }
    }

    /// A trainer owns the run (it can be paused, resumed, stopped; not deleted).
    pub fn is_live(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// One row of the browser.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub dir: PathBuf,
    /// The run directory's name (`<name>-<date>-<time>`): unique within a folder.
    pub id: String,
    /// The experiment's name.
    pub name: String,
    pub status: Status,
    /// Live by `run.json` but the heartbeat is old or the trainer is gone (see [`Runs::mark_gone`]).
    pub stale: bool,
    /// The trainer's lock is not held although `run.json` says it trains.
    pub gone: bool,
    pub epochs_done: usize,
    pub epochs_total: usize,
    pub device: String,
    /// Processes training the run together (1 unless the trainer records more).
    pub world_size: usize,
    /// `started` of run.json as the trainer wrote it (its local time, RFC 3339).
    pub started_text: String,
    /// Unix seconds.
    pub started: Option<i64>,
    pub heartbeat: Option<i64>,
    /// The latest main metric (auc, map40, dice) per task, mean over the datasets evaluated in
    /// the tail read; the teacher's when it has rows, else the student's.
    pub main: BTreeMap<String, f64>,
    pub tags: Vec<String>,
    /// The sweep the run belongs to (the `<name>-sweep.json` that lists it).
    pub sweep: Option<String>,
    pub error: Option<String>,
}

impl RunRow {
    /// Seconds between the start and the last heartbeat (the run's duration so far).
    pub fn duration(&self) -> Option<i64> {
        Some((self.heartbeat? - self.started?).max(0))
    }

    /// Progress in 0..=1.
    pub fn progress(&self) -> f64 {
        if self.epochs_total == 0 {
            0.0
        } else {
            (self.epochs_done as f64 / self.epochs_total as f64).min(1.0)
        }
    }

    /// Whether the row matches a filter text: every word appears in the id, name, status, device,
    /// sweep or a tag (case-insensitive).
    pub fn matches(&self, filter: &str) -> bool {
        let hay = format!(
            "{} {} {} {} {} {}",
            self.id,
            self.name,
            self.status.as_str(),
            self.device,
            self.sweep.as_deref().unwrap_or(""),
            self.tags.join(" ")
        )
        .to_lowercase();
        filter.split_whitespace().all(|w| hay.contains(&w.to_lowercase()))
    }
}

/// What identifies one version of a file cheaply.
type Sig = Option<(u64, Option<SystemTime>)>;

fn sig(path: &Path) -> Sig {
    fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| (m.len(), m.modified().ok()))
}

#[derive(Debug)]
struct Entry {
    row: RunRow,
    sigs: [Sig; 4],
}

fn sigs(dir: &Path) -> [Sig; 4] {
    [
        sig(&dir.join("run.json")),
        sig(&dir.join("metrics.jsonl")),
        sig(&dir.join(TAGS_FILE)),
        sig(&dir.join("experiment.toml")),
    ]
}

/// The runs under some output folders.
#[derive(Debug, Default)]
pub struct Runs {
    pub folders: Vec<PathBuf>,
    entries: Vec<Entry>,
    /// Folders that could not be read, with why.
    pub problems: Vec<String>,
    /// Incremented by every refresh that changed a row.
    pub version: u64,
    /// Summaries read from disk so far (tests check that refreshes are incremental).
    pub reads: u64,
}

impl Runs {
    pub fn open(folders: &[PathBuf]) -> Runs {
        // A folder named twice is listed once (its runs would otherwise appear twice).
        let mut unique: Vec<PathBuf> = Vec::new();
        for f in folders {
            if !unique.contains(f) {
                unique.push(f.clone());
            }
        }
        let mut r = Runs { folders: unique, ..Default::default() };
        r.refresh();
        r
    }

    /// The rows, in folder order then newest first.
    pub fn rows(&self) -> Vec<&RunRow> {
        self.entries.iter().map(|e| &e.row).collect()
    }

    pub fn row(&self, dir: &Path) -> Option<&RunRow> {
        self.entries.iter().find(|e| e.row.dir == dir).map(|e| &e.row)
    }

    /// Re-lists the folders; reads new runs and those whose files changed. True when anything did.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        let mut problems = Vec::new();
        let mut dirs: Vec<(PathBuf, Option<String>)> = Vec::new();
        for folder in &self.folders {
            let sweeps = sweep_members(folder);
            match fs::read_dir(folder) {
                Ok(list) => {
                    let mut here: Vec<(SystemTime, PathBuf)> = list
                        .flatten()
                        .filter(|e| e.file_name() != TRASH_DIR)
                        .map(|e| e.path())
                        .filter(|p| p.join("experiment.toml").is_file() || p.join("run.json").is_file())
                        .map(|p| {
                            let t = p
                                .join("experiment.toml")
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(SystemTime::UNIX_EPOCH);
                            (t, p)
                        })
                        .collect();
                    here.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
                    for (_, p) in here {
                        let id = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        dirs.push((p, sweeps.get(&id).cloned()));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", folder.display())),
            }
        }
        let mut old: BTreeMap<PathBuf, Entry> =
            std::mem::take(&mut self.entries).into_iter().map(|e| (e.row.dir.clone(), e)).collect();
        if old.len() != dirs.len() || dirs.iter().any(|(d, _)| !old.contains_key(d)) {
            changed = true;
        }
        for (dir, sweep) in dirs {
            let now = sigs(&dir);
            let entry = match old.remove(&dir) {
                Some(mut e) if e.sigs == now => {
                    if e.row.sweep != sweep {
                        e.row.sweep = sweep;
                        changed = true;
                    }
                    e
                }
                prev => {
                    self.reads += 1;
                    let mut row = summarize(&dir);
                    row.sweep = sweep;
                    if let Some(p) = prev {
                        row.gone = p.row.gone && row.status.is_live();
                    }
                    changed = true;
                    Entry { row, sigs: now }
                }
            };
            self.entries.push(entry);
        }
        if problems != self.problems {
            self.problems = problems;
            changed = true;
        }
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Marks live rows whose trainer is gone (the caller knows how to tell: the run lock).
    /// True when a mark changed.
    pub fn mark_gone(&mut self, alive: &dyn Fn(&Path) -> Option<bool>) -> bool {
        let mut changed = false;
        for e in &mut self.entries {
            let gone = e.row.status.is_live() && alive(&e.row.dir) == Some(false);
            if gone != e.row.gone {
                e.row.gone = gone;
                changed = true;
            }
        }
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Updates the stale flags for the time `now` (Unix seconds). True when one changed.
    pub fn mark_stale(&mut self, now: i64) -> bool {
        let mut changed = false;
        for e in &mut self.entries {
            let stale = e.row.status.is_live() && e.row.heartbeat.is_some_and(|h| now - h > STALE_AFTER_S);
            if stale != e.row.stale {
                e.row.stale = stale;
                changed = true;
            }
        }
        if changed {
            self.version += 1;
        }
        changed
    }
}

/// `run id → sweep name` from the `<name>-sweep.json` files of an output folder.
fn sweep_members(folder: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(list) = fs::read_dir(folder) else { return out };
    for e in list.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(sweep) = name.strip_suffix("-sweep.json") else { continue };
        let Ok(text) = fs::read_to_string(e.path()) else { continue };
        let Ok(state) = serde_json::from_str::<fx_run::SweepState>(&text) else { continue };
        for r in state.runs {
            if let Some(id) = r.file_name() {
                out.insert(id.to_string_lossy().into_owned(), sweep.to_string());
            }
        }
    }
    out
}

/// Reads one run's summary.
pub fn summarize(dir: &Path) -> RunRow {
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let info: Option<RunInfo> =
        fs::read_to_string(dir.join("run.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let name = experiment_name(dir).unwrap_or_else(|| id.clone());
    let info = info.unwrap_or_default();
    RunRow {
        dir: dir.to_path_buf(),
        id,
        name,
        status: Status::parse(&info.status),
        stale: false,
        gone: false,
        epochs_done: info.epochs_done,
        epochs_total: info.epochs_total,
        device: info.device.clone(),
        world_size: info.world_size.max(1),
        started_text: info.started.clone(),
        started: facts::parse_rfc3339(&info.started),
        heartbeat: facts::parse_rfc3339(&info.heartbeat),
        main: latest_main(&dir.join("metrics.jsonl")),
        tags: read_tags(dir),
        sweep: None,
        error: info.error,
    }
}

/// The experiment's `name`, read from the top of experiment.toml (the trainer writes it first).
fn experiment_name(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("experiment.toml")).ok()?;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if let Some(rest) = line.strip_prefix("name") {
            let rest = rest.trim_start();
            if let Some(v) = rest.strip_prefix('=') {
                if let Ok(toml::Value::String(s)) =
                    toml::from_str::<toml::Table>(&format!("v = {}", v.trim())).map(|t| t["v"].clone())
                {
                    return Some(s);
                }
            }
        }
    }
    None
}

/// The latest main metric per task, mean over datasets, from the tail of metrics.jsonl.
fn latest_main(path: &Path) -> BTreeMap<String, f64> {
    let mut buf = Vec::new();
    let ok = fs::File::open(path).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        f.read_to_end(&mut buf)
    });
    if ok.is_err() {
        return BTreeMap::new();
    }
    // The first line may be cut by the seek, the last may be torn: parse what parses.
    let rows: Vec<MetricRow> = buf.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
    let model = if rows.iter().any(|m| m.model == "teacher") { "teacher" } else { "student" };
    // Latest epoch's value per (dataset, task).
    let mut latest: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for m in rows.iter().filter(|m| m.model == model && m.metric == default_metric(&m.eval.task) && m.value.is_finite())
    {
        let e = latest.entry((m.eval.dataset.to_string(), m.eval.task.to_string())).or_insert((m.epoch, m.value));
        if m.epoch >= e.0 {
            *e = (m.epoch, m.value);
        }
    }
    let mut per_task: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for ((_, task), (_, v)) in latest {
        per_task.entry(task).or_default().push(v);
    }
    per_task.into_iter().map(|(t, v)| (t, v.iter().sum::<f64>() / v.len() as f64)).collect()
}

/// A run's tags (`tags`, one per line; blank lines ignored).
pub fn read_tags(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(TAGS_FILE))
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// Replaces a run's tags (atomically: a temporary file renamed over `tags`). Tags are separated
/// by commas or spaces in `text`; an empty text removes them.
pub fn write_tags(dir: &Path, text: &str) -> std::io::Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for t in text.split([',', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    let path = dir.join(TAGS_FILE);
    if tags.is_empty() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(tags),
        }
    }
    fx_run::write_atomic(&path, (tags.join("\n") + "\n").as_bytes()).map_err(std::io::Error::other)?;
    Ok(tags)
}

/// Moves a run directory into its folder's `.trash/` (created when missing) and returns where
/// it went. Nothing is unlinked: emptying the trash is the user's decision.
pub fn move_to_trash(dir: &Path) -> std::io::Result<PathBuf> {
    let parent = dir.parent().ok_or_else(|| std::io::Error::other("a run directory has a parent folder"))?;
    let trash = parent.join(TRASH_DIR);
    fs::create_dir_all(&trash)?;
    let name = dir.file_name().ok_or_else(|| std::io::Error::other("a run directory has a name"))?;
    let mut to = trash.join(name);
    let mut n = 1;
    while to.exists() {
        to = trash.join(format!("{}.{n}", name.to_string_lossy()));
        n += 1;
    }
    fs::rename(dir, &to)?;
    Ok(to)
}
