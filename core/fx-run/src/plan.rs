//! `plan.json`: the Cyclic + Lock-Release schedule as the trainer computed it, one row per epoch,
//! and the parameter groups it names.
//!
//! One definition serves both sides: the trainer reads and writes [`EpochPlan`] with its own task
//! and mode enums (`EpochPlan<Task, Mode>`, fx::schedule), readers with strings (the default
//! parameters), so a task or mode a newer trainer adds stays readable. Missing fields read as
//! their defaults; unknown fields are ignored.

use serde::{Deserialize, Serialize};

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

/// Trainable flag of each group in one epoch; `None` = not on that task's path (Table 8's "-").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// One epoch of `plan.json`: it trains one task of one dataset in one mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochPlan<T = String, M = String> {
    /// 1-based epoch number over the whole run.
    #[serde(default)]
    pub epoch: usize,
    /// 1-based cycle number.
    #[serde(default)]
    pub cycle: usize,
    #[serde(default)]
    pub dataset: String,
    pub task: T,
    /// "Lock" or "Release".
    pub mode: M,
    /// Fraction of the training split this epoch sees.
    #[serde(default)]
    pub fraction: f64,
    #[serde(default)]
    pub trainable: Trainable,
    /// Factor applied to every group's learning rate in this epoch (warm-up / cosine per cycle).
    #[serde(default = "one")]
    pub lr_factor: f64,
}

fn one() -> f64 {
    1.0
}
