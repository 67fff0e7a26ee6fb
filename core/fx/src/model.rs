//! Foundation X's model: the shared Swin backbone and one classification head per dataset.
//!
//! Variable names start with their parameter group (`backbone.`, `cls_head.<dataset>.`), which is
//! how freezing, learning rates, the teacher's EMA and checkpoints address them.

use crate::swin::{Swin, SwinConfig};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// One normalisation for the shared backbone (ImageNet statistics, as the Ark/timm weights expect);
/// the grayscale radiograph is replicated to the three input channels.
pub const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const STD: [f64; 3] = [0.229, 0.224, 0.225];

/// What heads to build: dataset name → number of classification labels.
pub type ClsHeads = BTreeMap<String, i64>;

pub struct Model {
    pub vs: nn::VarStore,
    pub backbone: Swin,
    pub cls_heads: BTreeMap<String, nn::Linear>,
    mean: Tensor,
    std: Tensor,
}

/// Output of the classification path.
pub struct ClsOutput {
    pub logits: Tensor,
    /// The pooled backbone feature: the classification consistency feature.
    pub pooled: Tensor,
}

impl Model {
    pub fn new(device: Device, swin: &SwinConfig, cls_heads: &ClsHeads) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let backbone = Swin::new(&(&root / "backbone"), swin)?;
        let heads = cls_heads
            .iter()
            .map(|(name, &n)| {
                let head = nn::linear(&root / "cls_head" / name.as_str(), swin.num_features(), n, Default::default());
                (name.clone(), head)
            })
            .collect();
        let mean = Tensor::from_slice(&MEAN).view([1, 3, 1, 1]).to_kind(Kind::Float).to_device(device);
        let std = Tensor::from_slice(&STD).view([1, 3, 1, 1]).to_kind(Kind::Float).to_device(device);
        Ok(Model { vs, backbone, cls_heads: heads, mean, std })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Grayscale batch (B, 1, H, W) in [0, 1] → the backbone's normalised 3-channel input.
    pub fn input(&self, gray: &Tensor) -> Tensor {
        (gray.expand([-1, 3, -1, -1], false) - &self.mean) / &self.std
    }

    pub fn cls(&self, x: &Tensor, dataset: &str, train: bool) -> ClsOutput {
        let f = self.backbone.forward(x, train);
        let head = self.cls_heads.get(dataset).unwrap_or_else(|| panic!("no classification head for dataset {dataset}"));
        ClsOutput { logits: head.forward(&f.pooled), pooled: f.pooled }
    }

    /// Variables sorted by name (stable order for the optimiser, EMA and checkpoints).
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Copies every variable of `other` (same architecture) into this model.
    pub fn copy_from(&mut self, other: &Model) -> Result<()> {
        self.vs.copy(&other.vs)?;
        Ok(())
    }

    /// teacher ← momentum·teacher + (1 − momentum)·student, over every variable (parameters and,
    /// were there any, buffers: the reference skips BatchNorm buffers, fx does not).
    pub fn ema_from(&mut self, student: &Model, momentum: f64) {
        let src = student.vs.variables();
        tch::no_grad(|| {
            for (name, mut t) in self.vs.variables() {
                if let Some(s) = src.get(&name) {
                    let _ = t.lerp_(s, 1.0 - momentum);
                }
            }
        });
    }
}
