//! The CheXpert labeler's output, shared by the datasets labelled with it (CheXpert, MIMIC-CXR):
//! its 14 observations, the 5 whose mean AUC the competitions report, and its values 1.0 / 0.0 /
//! -1.0 (uncertain) / blank (not mentioned), mapped by the options `uncertain` and `blank`.

use crate::dataset::{Options, Table};
use fx_plugin::PluginError;

/// The 14 observations, in CheXpert's column order.
pub const LABELS: [&str; 14] = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
];

/// The five competition labels whose mean AUC is reported.
pub const EVAL_LABELS: [&str; 5] = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"];

/// What -1.0 and blank become.
#[derive(Clone, Copy, Debug)]
pub struct ValueRules {
    pub uncertain: f32,
    pub blank: f32,
}

impl ValueRules {
    /// `uncertain = "ones" | "zeros" | "ignore"` (1, 0, NaN; default ones) and `blank = "zeros" |
    /// "ignore"` (0, NaN; default zeros).
    pub fn from_options(opts: &Options) -> Result<ValueRules, PluginError> {
        let uncertain = match opts.choice("uncertain", &["ones", "zeros", "ignore"])?.as_str() {
            "ones" => 1.0,
            "zeros" => 0.0,
            _ => f32::NAN,
        };
        let blank = if opts.choice("blank", &["zeros", "ignore"])? == "zeros" { 0.0 } else { f32::NAN };
        Ok(ValueRules { uncertain, blank })
    }

    /// One cell: 1.0 / 0.0 / -1.0 / blank; anything else is an error naming the line and column.
    pub fn value(&self, t: &Table, r: usize, c: usize) -> Result<f32, PluginError> {
        let s = t.get(r, c);
        if s.is_empty() {
            return Ok(self.blank);
        }
        match s.parse::<f32>() {
            Ok(1.0) => Ok(1.0),
            Ok(0.0) => Ok(0.0),
            Ok(-1.0) => Ok(self.uncertain),
            _ => Err(PluginError::input(
                t.at(r),
                format!("`{s}` in column `{}` is not 1.0, 0.0, -1.0 or blank", t.header[c]),
            )),
        }
    }
}
