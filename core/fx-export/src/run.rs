//! One run directory, read through fx-view's store.

use anyhow::{bail, Result};
use fx_run::store::Store;
use std::path::{Path, PathBuf};

/// A run directory as read for export.
pub struct Run {
    pub dir: PathBuf,
    pub store: Store,
    /// The experiment's name, or the directory's name when experiment.toml has none.
    pub name: String,
    /// The whole `experiment.toml` (for the switches [`crate::report`] compares); `None` when
    /// missing or malformed.
    pub config: Option<toml::Table>,
    /// Problems the reader met (malformed lines or files), as "file: message".
    pub warnings: Vec<String>,
}

impl Run {
    /// Reads `dir`; fails, naming it, when it is missing or is not an fx run directory (one with
    /// `run.json` or `experiment.toml`, which the trainer writes when it creates a run).
    pub fn open(dir: &Path) -> Result<Run> {
        if !dir.exists() {
            bail!("{}: no such run directory", dir.display());
        }
        if !dir.is_dir() {
            bail!("{} is not a run directory (it is a file)", dir.display());
        }
        if !dir.join("run.json").is_file() && !dir.join("experiment.toml").is_file() {
            bail!(
                "{} is not an fx run directory (it has neither run.json nor experiment.toml; \
                 runs live under the experiment's output_dir, e.g. runs/<name>-<date>-<time>)",
                dir.display()
            );
        }
        let store = Store::open(dir);
        let warnings = store.problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        // fx-view keeps only the few keys the viewer shows; the report compares every key.
        let config = std::fs::read_to_string(dir.join("experiment.toml")).ok().and_then(|t| toml::from_str(&t).ok());
        let name = store
            .experiment
            .as_ref()
            .map(|e| e.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        Ok(Run { dir: dir.to_path_buf(), store, name, config, warnings })
    }

    /// Fails with a clear message when the run has no metric rows (yet).
    pub fn require_metrics(&self) -> Result<()> {
        if !self.store.metrics.is_empty() {
            return Ok(());
        }
        let file = self.dir.join("metrics.jsonl");
        let why = if !file.exists() {
            "has no metrics.jsonl".to_string()
        } else if let Some((_, problem)) = self.store.problems.iter().find(|(f, _)| f == "metrics.jsonl") {
            format!("has no readable metric rows in metrics.jsonl ({problem})")
        } else {
            "has an empty metrics.jsonl".to_string()
        };
        bail!(
            "{} {why}: nothing to export yet (a run writes its first rows when epoch 1 has been evaluated)",
            self.dir.display()
        )
    }
}
