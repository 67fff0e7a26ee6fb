//! `model.json`: the model as built — parameter counts per component, each dataset's label names
//! per task, and each head's kind — written by the trainer at creation and after a hot-add. The
//! model card (predict, export-model) rebuilds the heads from it; the viewer shows them.

pub use fx_plugin::LabelMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `model.json`. `D` is the DINO decoder's sizes: fx's `DinoConfig` for the trainer and predict,
/// raw JSON for readers that only show the other fields. Every field has a default, so a run
/// written before a field existed still reads (its heads then read as the paper's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelInfo<D = serde_json::Value> {
    pub arch: String,
    pub image_size: i64,
    /// Trainable parameters per component (`backbone`, `cls_head.<dataset>`, ...).
    pub parameters: BTreeMap<String, i64>,
    /// dataset → its heads' label names.
    pub labels: BTreeMap<String, HeadLabels>,
    pub cls_heads: BTreeMap<String, ClsHeadSpec>,
    pub seg_heads: BTreeMap<String, SegHeadSpec>,
    /// dataset → its DINO decoder's sizes.
    pub loc_dino: BTreeMap<String, D>,
}

impl<D> ModelInfo<D> {
    /// The kind of a dataset's head for a task ("linear" | "mlp", "conv" | "conv_stack") and how
    /// its labels relate; `None` where model.json records no kind (loc, or a run from before
    /// heads had kinds).
    pub fn head_kind(&self, dataset: &str, task: &str) -> Option<(&str, LabelMode)> {
        match task {
            "cls" => self.cls_heads.get(dataset).map(|h| (h.kind(), h.mode)),
            "seg" => self.seg_heads.get(dataset).map(|h| (h.kind(), h.mode)),
            _ => None,
        }
    }
}

/// Label names of one dataset's heads (empty: the model has no head for that task).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadLabels {
    #[serde(default)]
    pub cls: Vec<String>,
    #[serde(default)]
    pub loc: Vec<String>,
    #[serde(default)]
    pub seg: Vec<String>,
}

/// A classification head as built: on the backbone's pooled feature, `hidden` layers (none: the
/// paper's single Linear) then the output Linear over `labels`; `mode` says how the labels relate
/// (sigmoid per label, or softmax over them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClsHeadSpec {
    pub labels: i64,
    #[serde(default)]
    pub hidden: Vec<i64>,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default)]
    pub mode: LabelMode,
    /// A head whose forward a plugin library implements (then `hidden` and `dropout` are unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginHeadSpec>,
}

/// A head implemented by a plugin library: which head, from which library (and the library's
/// SHA-256 when the run was created), with which options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginHeadSpec {
    pub kind: String,
    pub library: std::path::PathBuf,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub options: serde_json::Value,
}

impl PluginHeadSpec {
    /// One line for `plan`: "plugin csra (libfx_csra.so) → 3, multi_label".
    pub fn describe(&self, labels: i64, mode: LabelMode) -> String {
        let file = self.library.file_name().unwrap_or_default().to_string_lossy();
        format!("plugin {} ({file}) → {labels}, {}", self.kind, mode.as_str())
    }
}

impl ClsHeadSpec {
    /// The paper's head: one Linear, sigmoid per label.
    pub fn linear(labels: i64) -> ClsHeadSpec {
        ClsHeadSpec { labels, hidden: Vec::new(), dropout: 0.0, mode: LabelMode::MultiLabel, plugin: None }
    }

    /// "linear", "mlp", or the plugin head's name.
    pub fn kind(&self) -> &str {
        match &self.plugin {
            Some(p) => &p.kind,
            None if self.hidden.is_empty() => "linear",
            None => "mlp",
        }
    }

    /// One line for `plan` and the viewer: "mlp 512 → 3, multi_class".
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.hidden.iter().map(|w| w.to_string()).collect();
        let dropout = if self.dropout > 0.0 { format!(", dropout {}", self.dropout) } else { String::new() };
        match (&self.plugin, self.hidden.is_empty()) {
            (Some(p), _) => p.describe(self.labels, self.mode),
            (None, true) => format!("linear → {}, {}", self.labels, self.mode.as_str()),
            (None, false) => format!("mlp {} → {}{dropout}, {}", widths.join("-"), self.labels, self.mode.as_str()),
        }
    }
}

/// A segmentation head as built, on the decoder's fused stride-4 map: `widths` Conv3×3 + ReLU
/// layers (none: the paper's single Conv3×3), then the output Conv3×3 over the `labels` (plus a
/// background channel when they are mutually exclusive: `mode` multi_class).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegHeadSpec {
    pub labels: i64,
    #[serde(default)]
    pub widths: Vec<i64>,
    #[serde(default)]
    pub mode: LabelMode,
    /// A head whose forward a plugin library implements (then `widths` is unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginHeadSpec>,
}

impl SegHeadSpec {
    /// The paper's head: one Conv3×3, a sigmoid per label.
    pub fn conv(labels: i64) -> SegHeadSpec {
        SegHeadSpec { labels, widths: Vec::new(), mode: LabelMode::MultiLabel, plugin: None }
    }

    /// "conv", "conv_stack", or the plugin head's name.
    pub fn kind(&self) -> &str {
        match &self.plugin {
            Some(p) => &p.kind,
            None if self.widths.is_empty() => "conv",
            None => "conv_stack",
        }
    }

    /// One line for `plan`: "conv_stack 64-32 → 3, multi_class".
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        match (&self.plugin, self.widths.is_empty()) {
            (Some(p), _) => p.describe(self.labels, self.mode),
            (None, true) => format!("conv → {}, {}", self.labels, self.mode.as_str()),
            (None, false) => format!("conv_stack {} → {}, {}", widths.join("-"), self.labels, self.mode.as_str()),
        }
    }

    /// Channels of the logits: the labels, and the background first for multi_class.
    pub fn channels(&self) -> i64 {
        self.labels + (self.mode == LabelMode::MultiClass) as i64
    }
}
