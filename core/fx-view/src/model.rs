//! The records of a run directory as the viewer reads them.
//!
//! run.json, metrics and events rows are fx-run's records (shared with the trainer). The plan,
//! progress and experiment views below are the viewer's lenient readings of what fx::schedule
//! and the trainer write: every field has a default, unknown fields are ignored, so a newer or
//! older trainer never makes the viewer fail.

use serde::Deserialize;

// The records both sides share (one definition, in the run-directory contract).
pub use fx_run::{Evaluated, Event, MetricRow, PerLabel, RunInfo, Sym, Trained};

/// The parameter groups, in the order the schedule and the screens show them.
pub const GROUPS: [&str; 6] = ["backbone", "cls_head", "loc_encoder", "loc_decoder", "seg_decoder", "seg_head"];

/// Groups with one instance per dataset (the others are shared by every dataset).
pub fn group_is_per_dataset(group: &str) -> bool {
    matches!(group, "cls_head" | "loc_decoder" | "seg_head")
}

/// The per-dataset head group of a task.
pub fn head_group(task: &str) -> &'static str {
    match task {
        "loc" => "loc_decoder",
        "seg" => "seg_head",
        _ => "cls_head",
    }
}

/// Trainable flag of each group in one epoch; `None` = not on that task's path ("-").
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Trainable {
    pub backbone: Option<bool>,
    pub cls_head: Option<bool>,
    pub loc_encoder: Option<bool>,
    pub loc_decoder: Option<bool>,
    pub seg_decoder: Option<bool>,
    pub seg_head: Option<bool>,
}

impl Trainable {
    pub fn get(&self, group: &str) -> Option<bool> {
        match group {
            "backbone" => self.backbone,
            "cls_head" => self.cls_head,
            "loc_encoder" => self.loc_encoder,
            "loc_decoder" => self.loc_decoder,
            "seg_decoder" => self.seg_decoder,
            "seg_head" => self.seg_head,
            _ => None,
        }
    }

    /// The groups that train, in [`GROUPS`] order.
    pub fn trained(&self) -> Vec<&'static str> {
        GROUPS.into_iter().filter(|g| self.get(g) == Some(true)).collect()
    }

    /// The groups on the path that are frozen, in [`GROUPS`] order.
    pub fn frozen(&self) -> Vec<&'static str> {
        GROUPS.into_iter().filter(|g| self.get(g) == Some(false)).collect()
    }
}

/// One epoch of `plan.json`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EpochPlan {
    pub epoch: usize,
    pub cycle: usize,
    pub dataset: String,
    pub task: String,
    pub mode: String,
    pub fraction: f64,
    pub trainable: Trainable,
}

/// `progress.json` (optional; written by the trainer while an epoch runs).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: Option<f64>,
    pub img_per_s: Option<f64>,
    pub eta_epoch_s: Option<f64>,
    pub eta_run_s: Option<f64>,
    pub mode: String,
    pub dataset: String,
    pub task: String,
    /// Either a list of group names or a `{group: bool|null}` object; see [`Progress::trained_groups`].
    pub trainable: serde_json::Value,
    pub loss_history: Vec<f64>,
    /// A data-parallel job: each rank's img/s (img_per_s is their sum); empty for one process.
    pub rank_img_per_s: Vec<f64>,
}

impl Progress {
    /// The trainable groups, whichever shape `trainable` has.
    pub fn trained_groups(&self) -> Option<Vec<String>> {
        match &self.trainable {
            serde_json::Value::Array(a) => Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
            serde_json::Value::Object(o) => Some(
                GROUPS
                    .iter()
                    .filter(|g| o.get(**g).and_then(|v| v.as_bool()) == Some(true))
                    .map(|g| g.to_string())
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// One `[[datasets]]` entry of `experiment.toml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetEntry {
    pub plugin: String,
    pub name: String,
    pub tasks: Vec<String>,
}

/// What the viewer needs from `experiment.toml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentInfo {
    pub name: String,
    pub arch: String,
    pub image_size: Option<i64>,
    pub cycles: Option<i64>,
    pub batch_size: Option<i64>,
    pub datasets: Vec<DatasetEntry>,
}

impl ExperimentInfo {
    /// Reads the few keys the viewer shows; anything else in the file is ignored.
    pub fn parse(text: &str) -> Result<ExperimentInfo, toml::de::Error> {
        let v: toml::Table = toml::from_str(text)?;
        let s = |t: Option<&toml::Value>| t.and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let int = |t: Option<&toml::Value>| t.and_then(|v| v.as_integer());
        let model = v.get("model").and_then(|m| m.as_table());
        let train = v.get("train").and_then(|m| m.as_table());
        let datasets = v
            .get("datasets")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_table())
                    .map(|d| {
                        let plugin = s(d.get("plugin"));
                        let name =
                            d.get("name").and_then(|n| n.as_str()).map(String::from).unwrap_or_else(|| plugin.clone());
                        let tasks = d
                            .get("tasks")
                            .and_then(|t| t.as_array())
                            .map(|t| t.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                            .unwrap_or_default();
                        DatasetEntry { plugin, name, tasks }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ExperimentInfo {
            name: s(v.get("name")),
            arch: s(model.and_then(|m| m.get("arch"))),
            image_size: int(model.and_then(|m| m.get("image_size"))),
            cycles: int(train.and_then(|m| m.get("cycles"))),
            batch_size: int(train.and_then(|m| m.get("batch_size"))),
            datasets,
        })
    }
}
