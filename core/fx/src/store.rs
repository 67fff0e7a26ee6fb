//! The run directory: what survives an SSH drop, a crash or a kill -9.
//!
//! ```text
//! runs/<name>-<yyyymmdd-hhmmss>/
//!   experiment.toml   the exact config used (after --set overrides)
//!   plan.json         the schedule
//!   run.json          status, pid, host, start, heartbeat, progress
//!   metrics.jsonl     append-only metric rows
//!   events.jsonl      append-only events (schedule, warnings, skipped samples, errors)
//!   checkpoints/      last.json → epoch-NNNN/{student,teacher,optimizer}.safetensors + state.json
//!   predictions/      the last evaluation's scores and labels (CSV)
//! ```
//! Appends are whole lines written with one `write` and fsynced; readers drop a torn last line.
//! Checkpoints are written to a temporary folder, fsynced, renamed, and only then pointed to.

use anyhow::{anyhow, bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

// The run-directory contract (records, atomic writes, JSON-lines appends, the lock) is fx-run's;
// the trainer writes through it.
pub use fx_run::files::LOCK as LOCK_FILE;
pub use fx_run::io::{append_lines, read_jsonl, write_atomic};
pub use fx_run::lock::RunLock;
pub use fx_run::{Evaluated, Event, MetricRow, PerLabel, RunInfo, Sym, Trained};

/// What a checkpoint records beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The last completed epoch (1-based); training resumes at epoch + 1.
    pub epoch: usize,
    /// The run's seed: every epoch's RNG streams derive from (seed, epoch), so this is the RNG state.
    pub seed: u64,
    pub wall_time: f64,
    pub skipped_samples: usize,
    /// The resolved experiment the checkpoint was trained under (JSON): `--resume` refuses an
    /// experiment.toml edited since, except for the keys that cannot change the results.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub experiment: serde_json::Value,
}

pub struct RunStore {
    pub dir: PathBuf,
    /// False on the ranks > 0 of a data-parallel job: they read the run directory (experiment,
    /// plan, checkpoints) and write nothing; rank 0 writes for the job.
    writer: bool,
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl RunStore {
    /// Creates `<output_dir>/<name>-<yyyymmdd-hhmmss>` (suffixing -2, -3 … if it exists).
    pub fn create(output_dir: &Path, name: &str, experiment_toml: &str) -> Result<RunStore> {
        fs::create_dir_all(output_dir)
            .with_context(|| format!("creating the output folder {}", output_dir.display()))?;
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let mut dir = output_dir.join(format!("{name}-{stamp}"));
        let mut k = 2;
        while dir.exists() {
            dir = output_dir.join(format!("{name}-{stamp}-{k}"));
            k += 1;
        }
        fs::create_dir_all(dir.join("checkpoints"))?;
        fs::create_dir_all(dir.join("predictions"))?;
        // Where datasets (a TOML, with their plugin libraries) are dropped to join while training.
        fs::create_dir_all(dir.join("plugins"))?;
        // The owner's only, whatever the umask (the run holds its control socket), unless the
        // experiment shares its runs with its group (readable, for viewers; control stays the owner's).
        {
            use std::os::unix::fs::PermissionsExt;
            let group = toml::from_str::<toml::Table>(experiment_toml)
                .ok()
                .and_then(|t| t.get("share_with_group").and_then(|v| v.as_bool()))
                .unwrap_or(false);
            let mode = if group { 0o750 } else { 0o700 };
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .with_context(|| format!("{}: cannot set its mode {mode:o}", dir.display()))?;
        }
        write_atomic(&dir.join("experiment.toml"), experiment_toml.as_bytes())?;
        Ok(RunStore { dir, writer: true })
    }

    pub fn open(dir: &Path) -> Result<RunStore> {
        if !dir.join("experiment.toml").is_file() {
            bail!("{}: not a run directory (no experiment.toml)", dir.display());
        }
        Ok(RunStore { dir: dir.to_path_buf(), writer: true })
    }

    /// The same directory, read-only for this process (a data-parallel rank other than 0): every
    /// write below does nothing.
    pub fn reader(self) -> RunStore {
        RunStore { writer: false, ..self }
    }

    pub fn is_writer(&self) -> bool {
        self.writer
    }

    /// Takes the run's lock, or says which process holds it.
    pub fn lock(&self) -> Result<RunLock> {
        fx_run::lock::take(&self.dir)
    }

    /// Whether a trainer holds the run's lock now.
    pub fn is_locked(&self) -> bool {
        fx_run::lock::is_locked(&self.dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        write_atomic(&self.path(name), serde_json::to_string_pretty(value)?.as_bytes())
    }

    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let p = self.path(name);
        let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: malformed", p.display()))
    }

    pub fn append_metrics(&self, rows: &[MetricRow]) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        append_lines(&self.path("metrics.jsonl"), rows)
    }

    pub fn metrics(&self) -> Result<Vec<MetricRow>> {
        read_jsonl(&self.path("metrics.jsonl"))
    }

    pub fn event(&self, level: &str, kind: &str, message: impl Into<String>, data: serde_json::Value) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        let e = Event { time: now(), level: level.into(), kind: kind.into(), message: message.into(), data };
        append_lines(&self.path("events.jsonl"), &[e])
    }

    pub fn events(&self) -> Result<Vec<Event>> {
        read_jsonl(&self.path("events.jsonl"))
    }

    /// Keeps only the metric rows of completed epochs (≤ `epoch`): rows of an epoch whose
    /// checkpoint never landed would otherwise be duplicated when that epoch runs again.
    pub fn truncate_metrics(&self, epoch: usize) -> Result<usize> {
        let rows = self.metrics()?;
        let keep: Vec<&MetricRow> = rows.iter().filter(|r| r.epoch <= epoch).collect();
        let dropped = rows.len() - keep.len();
        if !self.writer {
            return Ok(dropped);
        }
        let mut buf = String::new();
        for r in &keep {
            buf.push_str(&serde_json::to_string(r)?);
            buf.push('\n');
        }
        write_atomic(&self.path("metrics.jsonl"), buf.as_bytes())?;
        Ok(dropped)
    }

    /// Writes a checkpoint folder atomically and points `checkpoints/last.json` at it; older
    /// checkpoint folders are removed afterwards.
    pub fn save_checkpoint(
        &self,
        state: &CheckpointState,
        files: &[(&str, &dyn Fn(&Path) -> Result<()>)],
    ) -> Result<PathBuf> {
        let ck = self.path("checkpoints");
        let name = format!("epoch-{:04}", state.epoch);
        if !self.writer {
            return Ok(ck.join(name));
        }
        fs::create_dir_all(&ck)?;
        let tmp = ck.join(format!("{name}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for (file, write) in files {
            let p = tmp.join(file);
            write(&p)?;
            File::open(&p)?.sync_all()?;
        }
        write_atomic(&tmp.join("state.json"), serde_json::to_string_pretty(state)?.as_bytes())?;
        let dst = ck.join(&name);
        let _ = fs::remove_dir_all(&dst);
        fs::rename(&tmp, &dst)?;
        if let Ok(d) = File::open(&ck) {
            let _ = d.sync_all();
        }
        write_atomic(
            &ck.join("last.json"),
            serde_json::json!({ "epoch": state.epoch, "dir": name }).to_string().as_bytes(),
        )?;
        for entry in fs::read_dir(&ck)?.flatten() {
            let n = entry.file_name().to_string_lossy().to_string();
            if n.starts_with("epoch-") && n != name {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(dst)
    }

    /// The last complete checkpoint: its folder and state.
    pub fn last_checkpoint(&self) -> Result<Option<(PathBuf, CheckpointState)>> {
        let ck = self.path("checkpoints");
        let last = ck.join("last.json");
        if !last.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&last).with_context(|| format!("{}: cannot read", last.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: malformed", last.display()))?;
        let name = v["dir"].as_str().ok_or_else(|| anyhow!("{}: no `dir`", last.display()))?;
        // A checkpoint is a folder of this run's checkpoints/: nothing else is ever followed.
        let one_folder = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']);
        if !one_folder {
            bail!("{}: `dir` = {name:?} is not a folder of {}", last.display(), ck.display());
        }
        let dir = ck.join(name);
        let state_file = dir.join("state.json");
        let state_text = fs::read_to_string(&state_file)
            .with_context(|| format!("{}: cannot read the checkpoint's state", state_file.display()))?;
        let state: CheckpointState =
            serde_json::from_str(&state_text).with_context(|| format!("{}: malformed", state_file.display()))?;
        Ok(Some((dir, state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn row(epoch: usize) -> MetricRow {
        MetricRow {
            epoch,
            cycle: 1,
            trained: Trained { dataset: "a".into(), task: "cls".into(), mode: "Release".into() },
            eval: Evaluated { dataset: "a".into(), task: "cls".into() },
            model: "teacher".into(),
            metric: "auc".into(),
            value: 50.0 + epoch as f64,
            focused: true,
            per_label: Default::default(),
            wall_time: 1.0,
        }
    }

    #[test]
    fn torn_last_line_is_dropped_and_appends_continue_cleanly() {
        let tmp = std::env::temp_dir().join(format!("fx-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let run = RunStore::create(&tmp, "t", "name='t'").unwrap();
        run.append_metrics(&[row(1), row(2)]).unwrap();
        // Simulate a crash in the middle of an append.
        let mut f = std::fs::OpenOptions::new().append(true).open(run.path("metrics.jsonl")).unwrap();
        f.write_all(b"{\"epoch\":3,\"cyc").unwrap();
        drop(f);
        assert_eq!(run.metrics().unwrap().len(), 2);
        run.append_metrics(&[row(3)]).unwrap();
        let epochs: Vec<usize> = run.metrics().unwrap().iter().map(|r| r.epoch).collect();
        assert_eq!(epochs, [1, 2, 3], "the torn fragment is cut, the new row follows on its own line");
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn truncate_then_append_has_no_duplicates() {
        let tmp = std::env::temp_dir().join(format!("fx-store2-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let run = RunStore::create(&tmp, "t", "name='t'").unwrap();
        run.append_metrics(&[row(1), row(2), row(3)]).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(run.path("metrics.jsonl")).unwrap();
        f.write_all(b"{\"epoch\":4,").unwrap();
        drop(f);
        assert_eq!(run.truncate_metrics(2).unwrap(), 1);
        run.append_metrics(&[row(3)]).unwrap();
        let epochs: Vec<usize> = run.metrics().unwrap().iter().map(|r| r.epoch).collect();
        assert_eq!(epochs, [1, 2, 3]);
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn checkpoint_points_to_the_newest_complete_folder() {
        let tmp = std::env::temp_dir().join(format!("fx-store3-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let run = RunStore::create(&tmp, "t", "name='t'").unwrap();
        assert!(run.last_checkpoint().unwrap().is_none());
        for epoch in 1..=2 {
            let st = CheckpointState {
                epoch,
                seed: 1,
                wall_time: 0.0,
                skipped_samples: 0,
                experiment: serde_json::Value::Null,
            };
            let w = |p: &Path| -> Result<()> { Ok(fs::write(p, b"x")?) };
            run.save_checkpoint(&st, &[("student.safetensors", &w)]).unwrap();
        }
        let (dir, st) = run.last_checkpoint().unwrap().unwrap();
        assert_eq!(st.epoch, 2);
        assert!(dir.join("student.safetensors").exists());
        assert!(!run.path("checkpoints/epoch-0001").exists());
        let _ = fs::remove_dir_all(&tmp);
    }

    /// Run directories are the owner's only, or its group's too when the experiment says so.
    #[test]
    fn run_directories_are_private_unless_shared_with_the_group() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let private = RunStore::create(tmp.path(), "p", "name='p'").unwrap();
        assert_eq!(fs::metadata(&private.dir).unwrap().permissions().mode() & 0o777, 0o700);
        let shared = RunStore::create(tmp.path(), "s", "name='s'\nshare_with_group = true").unwrap();
        assert_eq!(fs::metadata(&shared.dir).unwrap().permissions().mode() & 0o777, 0o750);
    }

    /// last.json may only name a folder of the run's checkpoints/, and a missing state.json is
    /// an error naming its path.
    #[test]
    fn last_checkpoint_is_confined_and_named() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunStore::create(tmp.path(), "t", "name='t'").unwrap();
        let ck = run.path("checkpoints");
        std::fs::create_dir_all(ck.join("epoch-0001")).unwrap();
        std::fs::write(ck.join("last.json"), r#"{"dir": "../.."}"#).unwrap();
        let e = format!("{:#}", run.last_checkpoint().unwrap_err());
        assert!(e.contains("last.json") && e.contains("is not a folder of"), "{e}");
        std::fs::write(ck.join("last.json"), r#"{"dir": "epoch-0001"}"#).unwrap();
        let e = format!("{:#}", run.last_checkpoint().unwrap_err());
        assert!(e.contains("epoch-0001/state.json"), "{e}");
    }
}
