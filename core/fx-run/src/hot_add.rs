//! Hot-add as a reader sees it: the dataset files the viewer's add key offers (TOMLs of
//! `[[datasets]]` tables in the experiment's `watch` folders whose datasets are not in the run
//! yet), and the run's queue (`pending/` and its `added/` and `refused/` folders). Validation and
//! queueing are the engine's (`fx::train::queue_added`, reached through the trainer's control
//! socket: `add FILE`).

use crate::experiment::ExperimentInfo;
use std::path::{Path, PathBuf};

/// Where queued files wait, relative to the run directory; `added/` and `refused/` inside it.
pub const PENDING: &str = "pending";

/// A dataset file the user may add: its path and the names of its datasets.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub file: PathBuf,
    pub datasets: Vec<String>,
}

/// The `*.toml` files of the experiment's `watch` folders (sorted) that hold `[[datasets]]`
/// tables, none of whose datasets is in the run yet. A file that does not parse is offered too
/// (with no names): adding it gets the engine's error, which says what is wrong.
pub fn candidates(info: &ExperimentInfo) -> Vec<Candidate> {
    let in_run: Vec<&str> = info.datasets.iter().map(|d| d.name.as_str()).collect();
    let mut out = Vec::new();
    for dir in &info.watch {
        let Ok(list) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = list
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let names = std::fs::read_to_string(&file).ok().and_then(|t| dataset_names(&t));
            match names {
                Some(n) if n.is_empty() => {}
                Some(n) if n.iter().any(|d| in_run.contains(&d.as_str())) => {}
                Some(n) => out.push(Candidate { file, datasets: n }),
                None => out.push(Candidate { file, datasets: Vec::new() }),
            }
        }
    }
    out
}

/// The dataset names of a `[[datasets]]` file (`name`, or else `plugin`); `None` when it is not
/// TOML.
fn dataset_names(text: &str) -> Option<Vec<String>> {
    let t: toml::Table = toml::from_str(text).ok()?;
    let list = t.get("datasets").and_then(|d| d.as_array()).cloned().unwrap_or_default();
    Some(
        list.iter()
            .filter_map(|d| d.as_table())
            .filter_map(|d| d.get("name").or_else(|| d.get("plugin")).and_then(|v| v.as_str()).map(String::from))
            .collect(),
    )
}

/// The run's hot-add queue: file names waiting for the next epoch boundary, added, and refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Queue {
    pub pending: Vec<String>,
    pub added: Vec<String>,
    pub refused: Vec<String>,
}

impl Queue {
    pub fn read(run_dir: &Path) -> Queue {
        let names = |d: PathBuf| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .map(|l| {
                    l.flatten()
                        .filter(|e| e.path().is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".toml"))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let p = run_dir.join(PENDING);
        Queue { pending: names(p.clone()), added: names(p.join("added")), refused: names(p.join("refused")) }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.added.is_empty() && self.refused.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_watched_files_whose_datasets_are_new() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::write(w.join("b.toml"), "[[datasets]]\nplugin = \"phantom-tbx\"\n").unwrap();
        std::fs::write(w.join("a.toml"), "[[datasets]]\nname = \"nih2\"\nplugin = \"phantom-nih\"\n").unwrap();
        std::fs::write(w.join("in.toml"), "[[datasets]]\nplugin = \"phantom-cxp\"\n").unwrap();
        std::fs::write(w.join("bad.toml"), "[[datasets]\n").unwrap();
        std::fs::write(w.join("notes.txt"), "[[datasets]]\nplugin = \"x\"\n").unwrap();
        let info = ExperimentInfo::parse(&format!(
            "watch = [{:?}]\n[[datasets]]\nplugin = \"phantom-cxp\"\n",
            w.display().to_string()
        ))
        .unwrap();
        let c = candidates(&info);
        let files: Vec<String> = c.iter().map(|c| c.file.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(files, ["a.toml", "b.toml", "bad.toml"]);
        assert_eq!(c[0].datasets, ["nih2"]);
        assert!(c[2].datasets.is_empty());
    }

    #[test]
    fn the_queue_lists_pending_added_and_refused_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PENDING);
        std::fs::create_dir_all(p.join("added")).unwrap();
        std::fs::create_dir_all(p.join("refused")).unwrap();
        std::fs::write(p.join("1-x.toml"), "").unwrap();
        std::fs::write(p.join("refused/0-y.toml"), "").unwrap();
        let q = Queue::read(dir.path());
        assert_eq!((q.pending, q.added, q.refused), (vec!["1-x.toml".into()], vec![], vec!["0-y.toml".into()]));
        assert!(Queue::read(&dir.path().join("none")).is_empty());
    }
}
