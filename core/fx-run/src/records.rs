//! The records of a run directory, one type each, written by the trainer and read by every
//! reader. Readers are tolerant: every field has a default and unknown fields are ignored, so a
//! newer or older trainer never makes a viewer fail; writers produce exactly these fields.

use crate::plan::GROUPS;
use crate::sym::Sym;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `run.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// "running", "paused", "finished", "stopped" or "failed" (a reader keeps any other value).
    pub status: String,
    pub pid: u32,
    pub host: String,
    pub started: String,
    pub heartbeat: String,
    pub device: String,
    /// Last epoch whose metrics and checkpoint are complete.
    pub epochs_done: usize,
    pub epochs_total: usize,
    pub fingerprint: String,
    pub error: Option<String>,
    /// Processes training the run together; absent (0) means one.
    #[serde(skip_serializing_if = "is_zero")]
    pub world_size: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trained {
    pub dataset: Sym,
    pub task: Sym,
    pub mode: Sym,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evaluated {
    pub dataset: Sym,
    pub task: Sym,
}

/// Per-label values of a metric, sorted by label (as the JSON object is written): a flat list,
/// not a tree, so a row with 14 labels costs 14 × 24 bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerLabel(Vec<(Sym, f64)>);

impl PerLabel {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn get(&self, label: &str) -> Option<&f64> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(label)).ok().map(|i| &self.0[i].1)
    }
    pub fn keys(&self) -> impl Iterator<Item = &Sym> {
        self.0.iter().map(|(k, _)| k)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Sym, &f64)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Into<Sym>> FromIterator<(K, f64)> for PerLabel {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(it: I) -> Self {
        let mut v: Vec<(Sym, f64)> = it.into_iter().map(|(k, x)| (k.into(), x)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        // A repeated label keeps its last value, as a JSON object would.
        let mut out: Vec<(Sym, f64)> = Vec::with_capacity(v.len());
        for (k, x) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = x,
                _ => out.push((k, x)),
            }
        }
        PerLabel(out)
    }
}

impl Serialize for PerLabel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for PerLabel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PerLabel, D::Error> {
        let m: std::collections::BTreeMap<Sym, Option<f64>> = Deserialize::deserialize(d)?;
        Ok(PerLabel(m.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect()))
    }
}

/// JSON has no NaN: serde_json writes a non-finite f64 as `null`; read it back as NaN so a row
/// with an undefined metric never makes its file unreadable.
fn f64_or_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One line of `metrics.jsonl`: one metric value of one model on one (dataset, task) after one
/// epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricRow {
    pub epoch: usize,
    pub cycle: usize,
    pub trained: Trained,
    pub eval: Evaluated,
    /// "teacher" or "student".
    pub model: Sym,
    /// "auc", "map40", "dice" (×100, as the paper reports them), and secondary metrics.
    pub metric: Sym,
    /// NaN (written as `null` by JSON) when the metric is undefined, e.g. no test image.
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
    /// The epoch just trained this same dataset and task.
    pub focused: bool,
    /// Per-label values of the same metric, when the task has several labels.
    #[serde(skip_serializing_if = "PerLabel::is_empty")]
    pub per_label: PerLabel,
    /// Seconds since the run started.
    pub wall_time: f64,
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    pub time: String,
    /// "info", "warn" or "error".
    pub level: String,
    pub kind: String,
    pub message: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// `progress.json`: the running epoch's step, loss, speed and ETA, rewritten by the trainer at
/// every log window (optional: absent between runs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    pub epoch: usize,
    pub cycle: usize,
    pub dataset: String,
    pub task: String,
    pub mode: String,
    /// The groups that train in this epoch. An older trainer wrote a `{group: bool|null}`
    /// object; both read as the list.
    #[serde(deserialize_with = "group_list")]
    pub trainable: Option<Vec<String>>,
    pub step: usize,
    pub steps: usize,
    pub loss: Option<f64>,
    pub img_per_s: Option<f64>,
    pub eta_epoch_s: Option<f64>,
    pub eta_run_s: Option<f64>,
    /// Mean loss of the recent log windows (the sparkline).
    pub loss_history: Vec<f64>,
    /// A data-parallel job: each rank's img/s (img_per_s is their sum); empty for one process.
    pub rank_img_per_s: Vec<f64>,
    /// When it was written (local time, RFC 3339).
    pub time: String,
}

impl Progress {
    /// The trainable groups; `None` when the trainer did not say.
    pub fn trained_groups(&self) -> Option<Vec<String>> {
        self.trainable.clone()
    }
}

fn group_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(a) => Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
        serde_json::Value::Object(o) => Some(
            GROUPS
                .iter()
                .filter(|g| o.get(**g).and_then(|v| v.as_bool()) == Some(true))
                .map(|g| g.to_string())
                .collect(),
        ),
        _ => None,
    })
}

/// `<output_dir>/<name>-sweep.json`: a sweep's runs so far, for viewers and the runs browser.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepState {
    pub runs: Vec<std::path::PathBuf>,
    /// Runs the sweep will have when it finishes.
    pub total: usize,
    /// "running", "stopped" or "finished".
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_row_reads_and_writes_the_same_line() {
        let line = r#"{"epoch":1,"cycle":1,"trained":{"dataset":"a","task":"cls","mode":"Release"},"eval":{"dataset":"b","task":"cls"},"model":"teacher","metric":"auc","value":61.5,"focused":false,"per_label":{"x":1.0,"a":2.5},"wall_time":2.0}"#;
        let r: MetricRow = serde_json::from_str(line).unwrap();
        assert_eq!(r.per_label.get("a"), Some(&2.5));
        assert_eq!(r.per_label.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["a", "x"]);
        assert!(r.model == "teacher" && r.eval.dataset == "b");
        let back = serde_json::to_string(&r).unwrap();
        assert_eq!(back, line.replace(r#"{"x":1.0,"a":2.5}"#, r#"{"a":2.5,"x":1.0}"#));
        let no_labels = MetricRow { per_label: PerLabel::default(), ..r };
        assert!(!serde_json::to_string(&no_labels).unwrap().contains("per_label"));
    }

    #[test]
    fn an_undefined_metric_written_as_null_reads_back_as_nan() {
        let row =
            MetricRow { value: f64::NAN, per_label: [("a", f64::NAN)].into_iter().collect(), ..Default::default() };
        let line = serde_json::to_string(&row).unwrap();
        assert!(line.contains("\"value\":null") && line.contains("\"a\":null"), "{line}");
        let back: MetricRow = serde_json::from_str(&line).unwrap();
        assert!(back.value.is_nan() && back.per_label.get("a").unwrap().is_nan());
    }

    #[test]
    fn unknown_fields_and_missing_ones_are_tolerated() {
        let r: MetricRow = serde_json::from_str(r#"{"epoch":3,"future":[1,2]}"#).unwrap();
        assert_eq!((r.epoch, r.model.as_str()), (3, ""));
        let i: RunInfo = serde_json::from_str(r#"{"status":"resharding","world_size":8}"#).unwrap();
        assert_eq!((i.status.as_str(), i.world_size), ("resharding", 8));
        assert!(!serde_json::to_string(&RunInfo::default()).unwrap().contains("world_size"));
    }
}
