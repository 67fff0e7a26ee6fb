//! Foundation X's model: the shared Swin backbone, one classification head per dataset, and the
//! segmentation branch (one UperNet decoder, one head per dataset).
//!
//! Variable names start with their parameter group (`backbone.`, `cls_head.<dataset>.`,
//! `seg_decoder.`, `seg_head.<dataset>.`), which is how freezing, learning rates, the teacher's EMA
//! and checkpoints address them.

use crate::dino::{DecodeOptions, DinoConfig, LocDecoder, LocEncoder, LocOutput};
use crate::swin::{Swin, SwinConfig, SwinFeatures};
use crate::upernet::{SegHead, SegHeadSpec, UperNet};
use anyhow::Result;
use fx_plugin::LabelMode;

use std::collections::BTreeMap;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// One normalisation for the shared backbone (ImageNet statistics, as the Ark/timm weights expect);
/// the grayscale radiograph is replicated to the three input channels.
pub const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const STD: [f64; 3] = [0.229, 0.224, 0.225];

/// What heads to build: per task, dataset name → its classification head, or its number of labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heads {
    pub cls: BTreeMap<String, ClsHeadSpec>,
    pub seg: BTreeMap<String, SegHeadSpec>,
    pub loc: BTreeMap<String, i64>,
    /// UperNet widths (pyramid pooling, FPN).
    pub seg_channels: (i64, i64),
    /// Sizes of the localization branch.
    pub dino: DinoConfig,
    /// A dataset's DINO decoder sizes where they differ from `dino` (`[datasets.heads.loc]`).
    pub loc_dino: BTreeMap<String, DinoConfig>,
}

impl Heads {
    /// The DINO sizes of `dataset`'s decoder.
    pub fn dino_of(&self, dataset: &str) -> &DinoConfig {
        self.loc_dino.get(dataset).unwrap_or(&self.dino)
    }
}

/// A classification head as built (model.json's record, in fx-run).
pub use fx_run::ClsHeadSpec;

/// Class scores from a head's logits: a sigmoid per label, or the softmax over the labels.
pub fn cls_probabilities(spec: &ClsHeadSpec, logits: &Tensor) -> Tensor {
    match spec.mode {
        LabelMode::MultiLabel => logits.sigmoid(),
        LabelMode::MultiClass => logits.softmax(-1, Kind::Float),
    }
}

/// A dataset's classification head (see [`ClsHeadSpec`]). A linear head keeps the variable names
/// `cls_head.<dataset>.weight/bias`; an mlp's are `.<i>.*` per hidden layer and `.out.*`; a plugin
/// head's are the names its library declares.
pub struct ClsHead {
    pub spec: ClsHeadSpec,
    body: ClsBody,
}

/// What computes the logits: layers built here, or a plugin library's forward over parameters
/// created here from its declaration (so the optimiser, the EMA, freezing and checkpoints see
/// them like any other variable).
enum ClsBody {
    Layers { hidden: Vec<nn::Linear>, out: nn::Linear },
    Plugin { head: crate::head_plugin::PluginHead, params: Vec<Tensor> },
}

impl ClsHead {
    pub fn new(p: nn::Path, input: i64, spec: &ClsHeadSpec) -> Result<ClsHead> {
        if let Some(plug) = &spec.plugin {
            let (head, params) = crate::head_plugin::build(&p, plug, fx_plugin::Task::Cls, spec.labels, input)?;
            if head.decl.inputs.contains(&fx_plugin::head::HeadInput::Fused) {
                anyhow::bail!("head plugin `{}`: a classification head reads pooled or map, not fused", plug.kind);
            }
            return Ok(ClsHead { spec: spec.clone(), body: ClsBody::Plugin { head, params } });
        }
        let mut width = input;
        let mut hidden = Vec::new();
        for (i, &w) in spec.hidden.iter().enumerate() {
            hidden.push(nn::linear(&p / i, width, w, Default::default()));
            width = w;
        }
        let out = if spec.hidden.is_empty() {
            nn::linear(p, width, spec.labels, Default::default())
        } else {
            nn::linear(&p / "out", width, spec.labels, Default::default())
        };
        Ok(ClsHead { spec: spec.clone(), body: ClsBody::Layers { hidden, out } })
    }

    /// Logits from the backbone's pooled feature (B, C) and last stage (B, C, H, W); `train`
    /// switches dropout (and is handed to a plugin head). A plugin's failure is an error.
    pub fn forward_t(&self, pooled: &Tensor, map: &Tensor, train: bool) -> Result<Tensor> {
        match &self.body {
            ClsBody::Layers { hidden, out } => {
                let mut h = pooled.shallow_clone();
                for layer in hidden {
                    h = layer.forward(&h).gelu("none");
                    if train && self.spec.dropout > 0.0 {
                        h = h.dropout(self.spec.dropout, true);
                    }
                }
                Ok(out.forward(&h))
            }
            ClsBody::Plugin { head, params } => {
                use fx_plugin::head::HeadInput;
                let inputs: Vec<&Tensor> = head
                    .decl
                    .inputs
                    .iter()
                    .map(|i| match i {
                        HeadInput::Pooled => pooled,
                        // Refused at construction for a classification head.
                        HeadInput::Map | HeadInput::Fused => map,
                    })
                    .collect();
                let logits = head.forward(&inputs, params, train)?;
                let (b, l) = (pooled.size()[0], self.spec.labels);
                if logits.size() != [b, l] {
                    anyhow::bail!(
                        "head plugin `{}` returned logits of shape {:?}, expected [{b}, {l}]",
                        head.kind,
                        logits.size()
                    );
                }
                Ok(logits)
            }
        }
    }
}

pub struct Model {
    pub vs: nn::VarStore,
    pub backbone: Swin,
    pub cls_heads: BTreeMap<String, ClsHead>,
    /// Built only when some dataset trains segmentation.
    pub seg_decoder: Option<UperNet>,
    pub seg_heads: BTreeMap<String, SegHead>,
    /// Built only when some dataset trains localization: one shared encoder, one decoder per dataset.
    pub loc_encoder: Option<LocEncoder>,
    pub loc_decoders: BTreeMap<String, LocDecoder>,
    mean: Tensor,
    std: Tensor,
}

/// BatchNorm running statistics: variables that are state, not parameters. They never get
/// gradients or optimiser steps, but the teacher's EMA and checkpoints include them.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var") || name.ends_with(".num_batches_tracked")
}

pub use crate::amp::fp32;

/// Output of the segmentation path.
pub struct SegOutput {
    /// Mask logits at the input size: (B, K, H, W), or (B, 1 + K, H, W) with the background first
    /// for a multi-class head; [`crate::upernet::seg_probabilities`] reads either as (B, K, H, W).
    pub logits: Tensor,
    /// Consistency features: the fused FPN map and the projected stage-4 map.
    pub fused: Tensor,
    pub stage4: Tensor,
}

/// Output of the classification path.
pub struct ClsOutput {
    pub logits: Tensor,
    /// The pooled backbone feature: the classification consistency feature.
    pub pooled: Tensor,
}

impl Model {
    /// `train.activation_checkpointing`: the Swin blocks and the DINO encoder layers recompute
    /// their activations in the backward (the teacher, which has no backward, does not need it).
    pub fn set_activation_checkpointing(&mut self, on: bool) {
        self.backbone.activation_checkpointing = on;
        if let Some(e) = &mut self.loc_encoder {
            e.activation_checkpointing = on;
        }
    }

    pub fn new(device: Device, swin: &SwinConfig, heads: &Heads) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let backbone = Swin::new(&(&root / "backbone"), swin)?;
        let cls_heads = heads
            .cls
            .iter()
            .map(|(name, spec)| {
                Ok((name.clone(), ClsHead::new(&root / "cls_head" / name.as_str(), swin.num_features(), spec)?))
            })
            .collect::<Result<_>>()?;
        let (ppm, fpn) = heads.seg_channels;
        let dims: Vec<i64> = (0..swin.num_stages()).map(|i| swin.stage_dim(i)).collect();
        let seg_decoder = (!heads.seg.is_empty()).then(|| UperNet::new(&(&root / "seg_decoder"), &dims, ppm, fpn));
        let seg_heads = heads
            .seg
            .iter()
            .map(|(name, spec)| Ok((name.clone(), SegHead::new(&root / "seg_head" / name.as_str(), fpn, spec)?)))
            .collect::<Result<_>>()?;
        let loc_encoder =
            (!heads.loc.is_empty()).then(|| LocEncoder::new(&(&root / "loc_encoder"), &dims[1..], &heads.dino));
        let loc_decoders = heads
            .loc
            .iter()
            .map(|(name, &k)| {
                let decoder = LocDecoder::new(&(&root / "loc_decoder" / name.as_str()), k, heads.dino_of(name));
                (name.clone(), decoder)
            })
            .collect();
        let mean = Tensor::from_slice(&MEAN).view([1, 3, 1, 1]).to_kind(Kind::Float).to_device(device);
        let std = Tensor::from_slice(&STD).view([1, 3, 1, 1]).to_kind(Kind::Float).to_device(device);
        Ok(Model { vs, backbone, cls_heads, seg_decoder, seg_heads, loc_encoder, loc_decoders, mean, std })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Grayscale batch (B, 1, H, W) in [0, 1] → the backbone's normalised 3-channel input.
    pub fn input(&self, gray: &Tensor) -> Tensor {
        (gray.expand([-1, 3, -1, -1], false) - &self.mean) / &self.std
    }

    pub fn cls(&self, x: &Tensor, dataset: &str, train: bool) -> Result<ClsOutput> {
        self.cls_on(&self.backbone.forward(x, train), dataset, train)
    }

    /// The classification head on backbone features already computed (an evaluation shares one
    /// backbone pass among the tasks of a dataset).
    pub fn cls_on(&self, f: &SwinFeatures, dataset: &str, train: bool) -> Result<ClsOutput> {
        let head =
            self.cls_heads.get(dataset).unwrap_or_else(|| panic!("no classification head for dataset {dataset}"));
        // The last stage as a map, (B, C, H, W): what a plugin head may read besides the pooled feature.
        let map = f.stages.last().expect("a Swin has stages").permute([0, 3, 1, 2]);
        Ok(ClsOutput { logits: fp32(&head.forward_t(&f.pooled, &map, train)?), pooled: fp32(&f.pooled) })
    }

    /// Segmentation: backbone stages → UperNet → the dataset's head. `train_backbone` switches
    /// drop-path, `train_decoder` the decoder's BatchNorm statistics (a frozen decoder runs in eval
    /// mode so that a Lock epoch leaves its running statistics untouched). `sync`: a training
    /// decoder's BatchNorm statistics over a data-parallel job's global batch.
    pub fn seg(
        &self,
        x: &Tensor,
        dataset: &str,
        train_backbone: bool,
        train_decoder: bool,
        sync: Option<&crate::dist::GlobalBatch>,
    ) -> Result<SegOutput> {
        let f = self.backbone.forward(x, train_backbone);
        let (h, w) = (x.size()[2], x.size()[3]);
        self.seg_on(&f, dataset, (h, w), train_backbone, train_decoder, sync)
    }

    /// The segmentation path after the backbone, on its features; (h, w): the input's size, which
    /// the logits take.
    pub fn seg_on(
        &self,
        f: &SwinFeatures,
        dataset: &str,
        (h, w): (i64, i64),
        train_backbone: bool,
        train_decoder: bool,
        sync: Option<&crate::dist::GlobalBatch>,
    ) -> Result<SegOutput> {
        let stages: Vec<Tensor> = f.stages.iter().map(|s| s.permute([0, 3, 1, 2])).collect();
        let decoder = self.seg_decoder.as_ref().expect("model built without the segmentation branch");
        let d = decoder.forward(&stages, train_decoder, sync)?;
        let head = self.seg_heads.get(dataset).unwrap_or_else(|| panic!("no segmentation head for dataset {dataset}"));
        let logits = head.logits(&d.fused, h, w, train_decoder || train_backbone)?;
        Ok(SegOutput { logits: fp32(&logits), fused: fp32(&d.fused), stage4: fp32(&d.stage4) })
    }

    /// Adds the heads of a dataset that joins the model after it was built (hot-add). The branches
    /// its tasks need must exist: a run cannot grow a new shared encoder or decoder mid-way.
    pub fn add_heads(
        &mut self,
        dataset: &str,
        cls: Option<&ClsHeadSpec>,
        loc: Option<i64>,
        seg: Option<&SegHeadSpec>,
        dino: &DinoConfig,
        fpn: i64,
    ) -> Result<()> {
        if loc.is_some() && self.loc_encoder.is_none() {
            anyhow::bail!("dataset {dataset}: the run's model has no localization branch (no dataset trained loc when it started)");
        }
        if seg.is_some() && self.seg_decoder.is_none() {
            anyhow::bail!("dataset {dataset}: the run's model has no segmentation branch (no dataset trained seg when it started)");
        }
        let root = self.vs.root();
        if let Some(spec) = cls {
            let head = ClsHead::new(&root / "cls_head" / dataset, self.backbone.config.num_features(), spec)?;
            self.cls_heads.insert(dataset.to_string(), head);
        }
        if let Some(k) = loc {
            self.loc_decoders.insert(dataset.to_string(), LocDecoder::new(&(&root / "loc_decoder" / dataset), k, dino));
        }
        if let Some(spec) = seg {
            self.seg_heads.insert(dataset.to_string(), SegHead::new(&root / "seg_head" / dataset, fpn, spec)?);
        }
        Ok(())
    }

    /// Localization: backbone stages at strides 8/16/32 → the shared encoder → the dataset's
    /// decoder. `train_backbone` switches drop-path.
    pub fn loc(&self, x: &Tensor, dataset: &str, train_backbone: bool, opts: &DecodeOptions) -> LocOutput {
        self.loc_on(&self.backbone.forward(x, train_backbone), dataset, opts)
    }

    /// The localization path after the backbone, on its features.
    pub fn loc_on(&self, f: &SwinFeatures, dataset: &str, opts: &DecodeOptions) -> LocOutput {
        let encoder = self.loc_encoder.as_ref().expect("model built without the localization branch");
        let memory = encoder.forward(&f.stages[1..]);
        let decoder =
            self.loc_decoders.get(dataset).unwrap_or_else(|| panic!("no localization decoder for dataset {dataset}"));
        decoder.forward(&memory, opts)
    }

    /// Parameter count of every component, by the names the schedule and the viewer use:
    /// `backbone`, `cls_head.<dataset>`, `seg_decoder`, `seg_head.<dataset>` (buffers excluded).
    pub fn component_params(&self) -> Vec<(String, i64)> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for (name, t) in self.vs.variables() {
            if is_buffer(&name) {
                continue;
            }
            let key = match crate::group::Group::of(&name) {
                // The input projections are counted apart from the encoder proper, whose size the
                // paper quotes (7.69 M at Swin-B).
                _ if name.starts_with("loc_encoder.input_proj.") => "loc_encoder.input_proj".to_string(),
                Some((g, Some(d))) => format!("{}.{d}", g.as_str()),
                Some((g, None)) => g.as_str().to_string(),
                None => "other".to_string(),
            };
            *counts.entry(key).or_default() += t.numel() as i64;
        }
        // Backbone first, then the branches in the paper's order.
        let order = |k: &str| {
            crate::group::Group::ALL.iter().position(|g| k.split('.').next() == Some(g.as_str())).unwrap_or(99)
        };
        let mut v: Vec<(String, i64)> = counts.into_iter().collect();
        v.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)).then(a.0.cmp(&b.0)));
        v
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

    /// Copies the variables of `other` (same architecture) whose names `pick` selects.
    pub fn copy_vars_from(&self, other: &Model, pick: &dyn Fn(&str) -> bool) {
        let src = other.vs.variables();
        tch::no_grad(|| {
            for (name, v) in self.vs.variables() {
                if pick(&name) {
                    if let Some(s) = src.get(&name) {
                        v.shallow_clone().copy_(s);
                    }
                }
            }
        });
    }

    /// teacher ← momentum·teacher + (1 − momentum)·student, over every variable (parameters and,
    /// were there any, buffers: the reference skips BatchNorm buffers, fx does not).
    /// One foreach call for all tensors (`torch._foreach_lerp_`), not a kernel per tensor.
    pub fn ema_from(&mut self, student: &Model, momentum: f64) -> Result<()> {
        let src = student.vs.variables();
        let pairs: Vec<(Tensor, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter_map(|(name, t)| src.get(&name).map(|s| (t, s.shallow_clone())))
            .collect();
        tch::no_grad(|| {
            fx_shim::foreach_lerp(
                &pairs.iter().map(|p| &p.0).collect::<Vec<_>>(),
                &pairs.iter().map(|p| &p.1).collect::<Vec<_>>(),
                1.0 - momentum,
            )
        })
    }
}
