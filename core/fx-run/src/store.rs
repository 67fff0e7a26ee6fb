//! Incremental, read-only view of a run directory.
//!
//! [`Store::refresh`] costs one `stat` per file when nothing changed. Small JSON/TOML files are
//! re-read whole when their size, mtime or inode changes (the trainer replaces them atomically).
//! JSON-lines files are read from the remembered offset: only appended bytes are read, only
//! complete lines are consumed (a torn last line stays unread until its newline arrives or the
//! trainer cuts it off), and a file that shrank or was replaced (a resume rewrites
//! `metrics.jsonl`) is read again from the start. Missing files are simply empty.

use crate::{EpochPlan, Event, ExperimentInfo, MetricRow, ModelInfo, Progress, RunInfo};
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies one version of a file cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sig {
    len: u64,
    mtime: Option<SystemTime>,
    ino: u64,
}

fn sig(path: &Path) -> Option<Sig> {
    let m = fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Sig { len: m.len(), mtime: m.modified().ok(), ino })
}

/// A small file read whole whenever its signature changes.
#[derive(Debug)]
struct Whole {
    name: &'static str,
    sig: Option<Sig>,
}

/// An append-only JSON-lines file read incrementally.
#[derive(Debug)]
struct Tail {
    name: &'static str,
    sig: Option<Sig>,
    /// Bytes consumed: always just past a newline.
    offset: u64,
}

/// The run directory as last read. Fields mirror the files; a missing file is `None` / empty.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    pub experiment: Option<ExperimentInfo>,
    pub plan: Vec<EpochPlan>,
    pub run: Option<RunInfo>,
    pub progress: Option<Progress>,
    /// model.json (empty when missing or unreadable).
    pub model: ModelInfo,
    /// The hot-add queue (`pending/`), read at every refresh.
    pub queue: crate::hot_add::Queue,
    pub metrics: Vec<MetricRow>,
    pub events: Vec<Event>,
    /// The last problem met reading each file (malformed content), by file name.
    pub problems: Vec<(String, String)>,
    /// Incremented by every refresh that changed something.
    pub version: u64,
    /// Total bytes read from disk so far (tests use it to check reads are incremental).
    pub bytes_read: u64,
    experiment_f: Whole,
    plan_f: Whole,
    run_f: Whole,
    progress_f: Whole,
    model_f: Whole,
    metrics_f: Tail,
    events_f: Tail,
}

impl Store {
    /// A store for `dir`, already refreshed once. Nothing needs to exist yet.
    pub fn open(dir: &Path) -> Store {
        let mut s = Store {
            dir: dir.to_path_buf(),
            experiment: None,
            plan: Vec::new(),
            run: None,
            progress: None,
            model: Default::default(),
            queue: Default::default(),
            metrics: Vec::new(),
            events: Vec::new(),
            problems: Vec::new(),
            version: 0,
            bytes_read: 0,
            experiment_f: Whole { name: "experiment.toml", sig: None },
            plan_f: Whole { name: "plan.json", sig: None },
            run_f: Whole { name: "run.json", sig: None },
            progress_f: Whole { name: "progress.json", sig: None },
            model_f: Whole { name: "model.json", sig: None },
            metrics_f: Tail { name: "metrics.jsonl", sig: None, offset: 0 },
            events_f: Tail { name: "events.jsonl", sig: None, offset: 0 },
        };
        s.refresh();
        s
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Picks up whatever changed on disk since the last call; true when anything did.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        let dir = self.dir.clone();
        let queue = crate::hot_add::Queue::read(&dir);
        if queue != self.queue {
            self.queue = queue;
            changed = true;
        }

        if let Some(text) = whole(&dir, &mut self.experiment_f, &mut self.bytes_read, &mut changed) {
            self.experiment = text.and_then(|t| match ExperimentInfo::parse(&t) {
                Ok(e) => Some(e),
                Err(e) => {
                    set_problem(&mut self.problems, "experiment.toml", e.to_string());
                    None
                }
            });
        }
        if let Some(text) = whole(&dir, &mut self.plan_f, &mut self.bytes_read, &mut changed) {
            self.plan = text.and_then(|t| parse_json(&t, "plan.json", &mut self.problems)).unwrap_or_default();
        }
        if let Some(text) = whole(&dir, &mut self.run_f, &mut self.bytes_read, &mut changed) {
            self.run = text.and_then(|t| parse_json(&t, "run.json", &mut self.problems));
        }
        if let Some(text) = whole(&dir, &mut self.progress_f, &mut self.bytes_read, &mut changed) {
            self.progress = text.and_then(|t| parse_json(&t, "progress.json", &mut self.problems));
        }
        if let Some(text) = whole(&dir, &mut self.model_f, &mut self.bytes_read, &mut changed) {
            self.model = text.and_then(|t| parse_json(&t, "model.json", &mut self.problems)).unwrap_or_default();
        }
        tail(&dir, &mut self.metrics_f, &mut self.metrics, &mut self.problems, &mut self.bytes_read, &mut changed);
        tail(&dir, &mut self.events_f, &mut self.events, &mut self.problems, &mut self.bytes_read, &mut changed);

        if changed {
            self.version += 1;
        }
        changed
    }
}

fn set_problem(problems: &mut Vec<(String, String)>, file: &str, msg: String) {
    problems.retain(|(f, _)| f != file);
    problems.push((file.to_string(), msg));
}

fn clear_problem(problems: &mut Vec<(String, String)>, file: &str) {
    problems.retain(|(f, _)| f != file);
}

fn parse_json<T: DeserializeOwned>(text: &str, file: &str, problems: &mut Vec<(String, String)>) -> Option<T> {
    match serde_json::from_str(text) {
        Ok(v) => {
            clear_problem(problems, file);
            Some(v)
        }
        Err(e) => {
            set_problem(problems, file, e.to_string());
            None
        }
    }
}

/// `None` = unchanged; `Some(None)` = now missing (or unreadable); `Some(Some(text))` = new content.
fn whole(dir: &Path, f: &mut Whole, bytes: &mut u64, changed: &mut bool) -> Option<Option<String>> {
    let now = sig(&dir.join(f.name));
    if now == f.sig {
        return None;
    }
    f.sig = now;
    *changed = true;
    if now.is_none() {
        return Some(None);
    }
    match fs::read_to_string(dir.join(f.name)) {
        Ok(t) => {
            *bytes += t.len() as u64;
            Some(Some(t))
        }
        Err(_) => Some(None),
    }
}

fn tail<T: DeserializeOwned>(
    dir: &Path,
    f: &mut Tail,
    rows: &mut Vec<T>,
    problems: &mut Vec<(String, String)>,
    bytes: &mut u64,
    changed: &mut bool,
) {
    let path = dir.join(f.name);
    let now = sig(&path);
    if now == f.sig {
        return;
    }
    let prev = f.sig;
    f.sig = now;
    let Some(now) = now else {
        // Gone: mirror that.
        if !rows.is_empty() || f.offset > 0 {
            rows.clear();
            f.offset = 0;
            *changed = true;
        }
        return;
    };
    let replaced = prev.is_some_and(|p| p.ino != now.ino) || now.len < f.offset;
    if replaced {
        rows.clear();
        f.offset = 0;
        clear_problem(problems, f.name);
        *changed = true;
    }
    if now.len <= f.offset {
        return;
    }
    let mut buf = Vec::with_capacity((now.len - f.offset) as usize);
    let read = File::open(&path).and_then(|mut file| {
        file.seek(SeekFrom::Start(f.offset))?;
        file.take(now.len - f.offset).read_to_end(&mut buf)
    });
    if read.is_err() {
        // Retry on the next refresh.
        f.sig = prev;
        return;
    }
    *bytes += buf.len() as u64;
    // Only complete lines; a torn tail waits for its newline (or for the trainer to cut it).
    let Some(end) = buf.iter().rposition(|&b| b == b'\n').map(|i| i + 1) else {
        return;
    };
    for (i, line) in buf[..end].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(v) => {
                rows.push(v);
                *changed = true;
            }
            Err(e) => {
                set_problem(problems, f.name, format!("line at byte {}: {e}", f.offset as usize + offset_of(&buf, i)))
            }
        }
    }
    f.offset += end as u64;
}

/// Byte offset of the i-th line of `buf`.
fn offset_of(buf: &[u8], line: usize) -> usize {
    if line == 0 {
        return 0;
    }
    buf.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(line - 1).map(|(p, _)| p + 1).unwrap_or(0)
}
