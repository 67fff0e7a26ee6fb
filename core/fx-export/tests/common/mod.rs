//! Shared helpers: fixture paths, copies, and an independent reading of metrics.jsonl.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// `finished` / `running` are fx-view's fixtures; `seg` is this crate's.
pub fn fixture(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match name {
        "seg" => root.join("tests/data/seg"),
        other => root.join("../fx-view/tests/data").join(other),
    }
}

/// Copies the files of a run directory (not its sub-folders) into `dst`.
pub fn copy_run(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// File names in a folder, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// One metric row, read straight from the JSON (not through fx-view).
#[derive(Clone, Debug)]
pub struct Row {
    pub epoch: usize,
    pub dataset: String,
    pub task: String,
    pub model: String,
    pub metric: String,
    pub value: f64,
    pub focused: bool,
    pub per_label: BTreeMap<String, f64>,
}

pub fn rows(run: &Path) -> Vec<Row> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Row {
                epoch: v["epoch"].as_u64().unwrap() as usize,
                dataset: v["eval"]["dataset"].as_str().unwrap().into(),
                task: v["eval"]["task"].as_str().unwrap().into(),
                model: v["model"].as_str().unwrap().into(),
                metric: v["metric"].as_str().unwrap().into(),
                value: v["value"].as_f64().unwrap(),
                focused: v["focused"].as_bool().unwrap(),
                per_label: v["per_label"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, x)| (k.clone(), x.as_f64().unwrap())).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The distinct (dataset, task, metric) triples of the rows.
pub fn keys(rows: &[Row]) -> Vec<(String, String, String)> {
    let mut k: Vec<_> = rows.iter().map(|r| (r.dataset.clone(), r.task.clone(), r.metric.clone())).collect();
    k.sort();
    k.dedup();
    k
}

/// The value of the last epoch of a (dataset, task, metric, model).
pub fn last_value(rows: &[Row], d: &str, t: &str, m: &str, model: &str) -> Option<(usize, f64)> {
    rows.iter()
        .filter(|r| r.dataset == d && r.task == t && r.metric == m && r.model == model)
        .max_by_key(|r| r.epoch)
        .map(|r| (r.epoch, r.value))
}

/// The best focused value and the first epoch it was reached.
pub fn best_focused(rows: &[Row], d: &str, t: &str, m: &str, model: &str) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    let mut rs: Vec<&Row> = rows
        .iter()
        .filter(|r| r.dataset == d && r.task == t && r.metric == m && r.model == model && r.focused)
        .collect();
    rs.sort_by_key(|r| r.epoch);
    for r in rs {
        if best.is_none_or(|(v, _)| r.value > v) {
            best = Some((r.value, r.epoch));
        }
    }
    best
}

/// A small RFC 4180 reader: header names and rows of fields.
pub fn csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut records = Vec::new();
    let (mut field, mut record, mut quoted) = (String::new(), Vec::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => field.push(c),
        }
    }
    let mut it = records.into_iter();
    let header = it.next().unwrap_or_default();
    (header, it.collect())
}

/// A column of a CSV row by header name.
pub fn col<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    &row[i]
}

/// Rows of the first pipe table of a Markdown file (header and separator excluded).
pub fn md_rows(md: &str) -> usize {
    md.lines().filter(|l| l.starts_with('|')).count().saturating_sub(2)
}

/// Body rows of a booktabs table: the lines between \midrule and \bottomrule.
pub fn tex_rows(tex: &str) -> usize {
    let body = tex.split("\\midrule").nth(1).unwrap().split("\\bottomrule").next().unwrap();
    body.lines().filter(|l| l.trim_end().ends_with("\\\\")).count()
}
