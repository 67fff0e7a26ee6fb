//! Comparing runs: what the runs browser's comparison screen and `fx-tui compare` (fx-export)
//! both show. The metric keys of a run, a key's points per model, the best focused value, the
//! experiment flattened to `--set` keys, the keys in which runs differ (the legend and the config
//! diff), and seed groups (runs that differ only in `seed`). Pure functions of stores and configs.

use crate::facts::{self, Point};
use crate::store::Store;
use crate::MetricRow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One (dataset, task, metric): a row of the final table, a column of the ablation table; for
/// charts, the metric is the task's main one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub dataset: String,
    pub task: String,
    pub metric: String,
}

/// Whether a metric row is of `k`.
pub fn matches(m: &MetricRow, k: &Key) -> bool {
    m.eval.dataset == k.dataset && m.eval.task == k.task && m.metric == k.metric
}

/// Every (dataset, task, metric) with rows: pairs in fx-view's order (experiment, then plan and
/// metrics), each task's main metric first, then the others in the order met.
pub fn keys(store: &Store) -> Vec<Key> {
    let mut out = Vec::new();
    for (dataset, task) in facts::pairs(store) {
        let mut metrics: Vec<String> = Vec::new();
        for m in store.metrics.iter().filter(|m| m.eval.dataset == dataset && m.eval.task == task) {
            if !metrics.iter().any(|x| *x == m.metric) {
                metrics.push(m.metric.to_string());
            }
        }
        let main = facts::default_metric(&task);
        metrics.sort_by_key(|m| m != main);
        for metric in metrics {
            out.push(Key { dataset: dataset.clone(), task: task.clone(), metric });
        }
    }
    out
}

/// The points of one key and model, by epoch (one per epoch: the first row written).
pub fn points(rows: &[MetricRow], key: &Key, model: &str) -> Vec<Point> {
    let mut points: Vec<Point> = rows
        .iter()
        .filter(|m| m.model == model && matches(m, key))
        .map(|m| Point { epoch: m.epoch, value: m.value, focused: m.focused })
        .collect();
    points.sort_by_key(|p| p.epoch);
    points.dedup_by_key(|p| p.epoch);
    points
}

/// The best focused value and the (first) epoch it was reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Best {
    pub value: f64,
    pub epoch: usize,
}

pub fn best_focused(points: &[Point]) -> Option<Best> {
    let mut best: Option<Best> = None;
    for p in points.iter().filter(|p| p.focused && p.value.is_finite()) {
        if best.is_none_or(|b| p.value > b.value) {
            best = Some(Best { value: p.value, epoch: p.epoch });
        }
    }
    best
}

/// Keys never compared: where the run was written and what it is called (the row label).
const NOT_SWITCHES: [&str; 2] = ["output_dir", "name"];

/// `experiment.toml` flattened to dotted keys as `--set` addresses them (`datasets.0.plugin`).
pub fn flatten(table: &toml::Table) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&key(k), v, out);
                }
            }
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_table()) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&key(&i.to_string()), v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), show(other));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (k, v) in table {
        walk(k, v, &mut out);
    }
    out
}

/// A TOML value as a table cell: strings without quotes, floats in their shortest exact form.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        // Configs resolved from f32 fields hold values like 0.800000011920929: show them as the
        // f32 they came from when that is exact.
        toml::Value::Float(f) if (*f as f32) as f64 == *f => format!("{:?}", *f as f32),
        toml::Value::Float(f) => format!("{f:?}"),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(t) => {
            format!("{{{}}}", t.iter().map(|(k, v)| format!("{k} = {}", show(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

/// The experiment keys whose values differ between the configs (a key missing from some runs
/// differs from one present), sorted.
pub fn differing_keys(configs: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut all: Vec<&String> = configs.iter().flat_map(|c| c.keys()).collect();
    all.sort();
    all.dedup();
    all.into_iter()
        .filter(|k| !NOT_SWITCHES.contains(&k.as_str()))
        .filter(|k| configs.windows(2).any(|w| w[0].get(*k) != w[1].get(*k)))
        .cloned()
        .collect()
}

/// Runs whose experiments differ only in `seed`, in first-seen order.
pub fn seed_groups(configs: &[BTreeMap<String, String>]) -> Vec<Vec<usize>> {
    let without_seed = |c: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        c.iter()
            .filter(|(k, _)| k.as_str() != "seed" && !NOT_SWITCHES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut groups: Vec<(BTreeMap<String, String>, Vec<usize>)> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let key = without_seed(c);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// One run in a comparison: its store, its name and its flattened experiment.
pub struct Compared {
    pub dir: PathBuf,
    pub store: Store,
    /// The run directory's name (unique within an output directory).
    pub id: String,
    pub config: BTreeMap<String, String>,
}

impl Compared {
    pub fn open(dir: &Path) -> Compared {
        let store = Store::open(dir);
        let config = std::fs::read_to_string(dir.join("experiment.toml"))
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .map(|t| flatten(&t))
            .unwrap_or_default();
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string());
        Compared { dir: dir.to_path_buf(), store, id, config }
    }
}

/// The keys charted in a comparison: every (dataset, task, metric) of any run, in the first
/// run's order, then the others' new ones.
pub fn union_keys(runs: &[Compared]) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for r in runs {
        for k in keys(&r.store) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// Each run's legend label: the experiment keys in which the runs differ, as `key=value`
/// (`seed=1 backbone=0.001`), each key by the shortest dotted suffix that still tells it from the
/// other differing keys; the run directory's name when nothing differs or a run has no readable
/// experiment. Labels that would still coincide get the directory name appended.
pub fn legend_labels(runs: &[Compared]) -> Vec<String> {
    let configs: Vec<BTreeMap<String, String>> = runs.iter().map(|r| r.config.clone()).collect();
    let differing = differing_keys(&configs);
    let short = short_keys(&differing);
    let mut labels: Vec<String> = runs
        .iter()
        .map(|r| {
            if differing.is_empty() || r.config.is_empty() {
                return r.id.clone();
            }
            differing
                .iter()
                .zip(&short)
                .map(|(k, s)| format!("{s}={}", r.config.get(k).map(String::as_str).unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let counts: Vec<usize> = labels.iter().map(|l| labels.iter().filter(|m| *m == l).count()).collect();
    for (i, n) in counts.into_iter().enumerate() {
        if n > 1 {
            labels[i] = format!("{} ({})", labels[i], runs[i].id);
        }
    }
    labels
}

/// Each key by its shortest dotted suffix that no other key of `keys` ends with
/// (`optimizer.lr.backbone` → `backbone`), `.enabled` switches by their section
/// (`lock_release.enabled` → `lock_release`).
pub fn short_keys(keys: &[String]) -> Vec<String> {
    let trimmed: Vec<&str> = keys.iter().map(|k| k.strip_suffix(".enabled").unwrap_or(k)).collect();
    trimmed
        .iter()
        .map(|k| {
            let parts: Vec<&str> = k.split('.').collect();
            for n in 1..=parts.len() {
                let suffix = parts[parts.len() - n..].join(".");
                let unique =
                    trimmed.iter().filter(|o| **o == suffix || o.ends_with(&format!(".{suffix}"))).count() == 1;
                if unique {
                    return suffix;
                }
            }
            k.to_string()
        })
        .collect()
}

/// The configuration diff: each differing key with every run's value (`-` when missing).
pub fn config_diff(runs: &[Compared]) -> Vec<(String, Vec<String>)> {
    let configs: Vec<BTreeMap<String, String>> = runs.iter().map(|r| r.config.clone()).collect();
    differing_keys(&configs)
        .into_iter()
        .map(|k| {
            let vals = configs.iter().map(|c| c.get(&k).cloned().unwrap_or_else(|| "-".into())).collect();
            (k, vals)
        })
        .collect()
}

/// The final (last evaluated) and best focused value of one run for a key and model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub last: Option<Point>,
    pub best: Option<Best>,
}

pub fn outcome(store: &Store, key: &Key, model: &str) -> Outcome {
    let pts = points(&store.metrics, key, model);
    Outcome { last: pts.last().copied(), best: best_focused(&pts) }
}

/// One seed group's line: at every epoch all its runs have, the mean and the min–max range;
/// focused as in the group's first run.
pub fn group_line(runs: &[&Store], key: &Key, model: &str) -> Vec<(Point, f64, f64)> {
    let series: Vec<Vec<Point>> = runs.iter().map(|s| points(&s.metrics, key, model)).collect();
    let Some(first) = series.first() else { return Vec::new() };
    let mut out = Vec::new();
    for p in first {
        let v: Vec<f64> =
            series.iter().filter_map(|s| s.iter().find(|q| q.epoch == p.epoch).map(|q| q.value)).collect();
        if v.len() < series.len() {
            continue;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        out.push((Point { epoch: p.epoch, value: mean, focused: p.focused }, lo, hi));
    }
    out
}

/// The model shown by default: the teacher when any run has teacher rows.
pub fn default_model(runs: &[Compared]) -> &'static str {
    if runs.iter().any(|r| r.store.metrics.iter().any(|m| m.model == "teacher")) {
        "teacher"
    } else {
        "student"
    }
}

/// The main metric keys (auc, map40, dice) of a comparison, for `--metric` defaults.
pub fn main_keys(runs: &[Compared]) -> Vec<Key> {
    union_keys(runs).into_iter().filter(|k| k.metric == facts::default_metric(&k.task)).collect()
}
