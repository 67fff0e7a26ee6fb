//! Using a trained Foundation X model: the model card that travels with its weights, loading a
//! model from a run directory, a checkpoint or an exported model file, exporting one, and
//! inference on new images (classification scores, detections, masks at the original size).
//!
//! An exported model file is a `.safetensors` whose header metadata holds the card as JSON under
//! `fx`. The backbone's tensors keep timm's names (`patch_embed.proj.weight`, `layers.0.blocks…`),
//! so timm's Swin loads them as they are; the branches and heads are stored as `fx.<name>`.

use crate::config::{Experiment, ModelRole};
use crate::dino::{DecodeOptions as DinoDecode, DinoConfig};
use crate::model::{ClsHeadSpec, Heads, Model};
use crate::store::RunStore;
use crate::swin::SwinConfig;
use crate::upernet::SegHeadSpec;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Label names of one dataset's heads (model.json's record, in fx-run).
pub use fx_run::HeadLabels;

/// Everything needed to rebuild and use a model besides its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub arch: String,
    pub image_size: i64,
    pub ppm_channels: i64,
    pub fpn_channels: i64,
    pub dino: DinoConfig,
    /// Per dataset, the label names of its heads.
    pub datasets: BTreeMap<String, HeadLabels>,
    /// Per dataset, its classification head (missing: the paper's Linear, sigmoid per label, as
    /// every run recorded before heads had kinds).
    #[serde(default)]
    pub cls_heads: BTreeMap<String, ClsHeadSpec>,
    /// Per dataset, its DINO decoder sizes where they differ from `dino`.
    #[serde(default)]
    pub loc_dino: BTreeMap<String, DinoConfig>,
    /// Per dataset, its segmentation head (missing: the paper's Conv3×3, sigmoid per label).
    #[serde(default)]
    pub seg_heads: BTreeMap<String, SegHeadSpec>,
    /// How an image becomes the model's input.
    pub preprocessing: String,
    /// Where the weights come from: run directory, model (teacher/student), epoch.
    pub run: String,
    pub model: String,
    pub epoch: usize,
    /// Final metrics of that model in its run: "dataset/task/metric" → value (×100).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

pub const CARD_FORMAT: &str = "fx-model-1";
pub const PREPROCESSING: &str =
    "grayscale in [0,1] (fx image input: DICOM LUTs and window, MetaImage min-max, PNG/JPEG full range), \
    resized to image_size x image_size (aspect not kept), replicated to 3 channels, normalised with ImageNet mean/std";

impl ModelCard {
    pub fn heads(&self) -> Heads {
        let of = |f: fn(&HeadLabels) -> &Vec<String>| -> BTreeMap<String, i64> {
            self.datasets
                .iter()
                .filter(|(_, h)| !f(h).is_empty())
                .map(|(d, h)| (d.clone(), f(h).len() as i64))
                .collect()
        };
        Heads {
            cls: of(|h| &h.cls)
                .into_iter()
                .map(|(d, n)| {
                    let spec = self.cls_heads.get(&d).cloned().unwrap_or_else(|| ClsHeadSpec::linear(n));
                    (d, spec)
                })
                .collect(),
            loc: of(|h| &h.loc),
            seg: of(|h| &h.seg)
                .into_iter()
                .map(|(d, n)| {
                    let spec = self.seg_heads.get(&d).cloned().unwrap_or_else(|| SegHeadSpec::conv(n));
                    (d, spec)
                })
                .collect(),
            seg_channels: (self.ppm_channels, self.fpn_channels),
            dino: self.dino.clone(),
            loc_dino: self.loc_dino.clone(),
        }
    }

    pub fn swin(&self) -> Result<SwinConfig> {
        SwinConfig::named(&self.arch, self.image_size)
    }

    /// The card of a run: its experiment and the heads recorded in model.json.
    pub fn of_run(run: &Path, role: ModelRole, epoch: usize) -> Result<ModelCard> {
        let store = RunStore::open(run)?;
        let exp = Experiment::load(&store.path("experiment.toml"), &[])?;
        let mj: fx_run::ModelInfo<DinoConfig> =
            store.read_json("model.json").with_context(|| format!("{}: no model.json", run.display()))?;
        if mj.labels.is_empty() {
            bail!(
                "{}: model.json has no head labels (a run made before fx recorded them); resume it once to record them",
                run.display()
            );
        }
        let mut metrics = BTreeMap::new();
        if let Ok(rows) = store.metrics() {
            for r in rows.iter().filter(|r| r.model == role.as_str()) {
                metrics.insert(format!("{}/{}/{}", r.eval.dataset, r.eval.task, r.metric), r.value);
            }
        }
        Ok(ModelCard {
            format: CARD_FORMAT.into(),
            arch: exp.model.arch.clone(),
            image_size: exp.model.image_size,
            ppm_channels: exp.model.ppm_channels,
            fpn_channels: exp.model.fpn_channels,
            dino: exp.model.dino.clone(),
            datasets: mj.labels,
            cls_heads: mj.cls_heads,
            loc_dino: mj.loc_dino,
            seg_heads: mj.seg_heads,
            preprocessing: PREPROCESSING.into(),
            run: run.display().to_string(),
            model: role.as_str().into(),
            epoch,
            metrics,
        })
    }
}

/// A model ready for inference, with its card.
pub struct Loaded {
    pub card: ModelCard,
    pub model: Model,
}

/// Loads a model from a run directory (its last checkpoint), a checkpoint file inside a run
/// (`checkpoints/epoch-NNNN/teacher.safetensors`), or an exported model file.
pub fn load(path: &Path, role: ModelRole, device: Device) -> Result<Loaded> {
    let (card, weights) = if path.is_dir() {
        let store = RunStore::open(path)?;
        let (ck, state) =
            store.last_checkpoint()?.ok_or_else(|| anyhow!("{}: the run has no checkpoint yet", path.display()))?;
        let file = ck.join(format!("{}.safetensors", role.as_str()));
        if !file.is_file() {
            bail!(
                "{}: no {} weights in its last checkpoint (a run without a teacher has only the student)",
                path.display(),
                role.as_str()
            );
        }
        (ModelCard::of_run(path, role, state.epoch)?, file)
    } else if path.is_file() {
        match read_card(path)? {
            Some(card) => (card, path.to_path_buf()),
            None => {
                // A checkpoint of a run: RUN/checkpoints/epoch-NNNN/<model>.safetensors.
                let run = path
                    .parent()
                    .and_then(|p| p.parent())
                    .and_then(|p| p.parent())
                    .filter(|r| r.join("experiment.toml").is_file());
                let Some(run) = run else {
                    bail!("{}: neither an fx model file (no `fx` model card in its header) nor a checkpoint inside a run directory", path.display());
                };
                let role = if path.file_stem().is_some_and(|s| s == "student") {
                    ModelRole::Student
                } else {
                    ModelRole::Teacher
                };
                let epoch = path
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("epoch-"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (ModelCard::of_run(run, role, epoch)?, path.to_path_buf())
            }
        }
    } else {
        bail!("{}: no such run directory, checkpoint or model file", path.display());
    };
    let model = Model::new(device, &card.swin()?, &card.heads())?;
    let tensors = read_model_tensors(&weights)?;
    let mut missing = Vec::new();
    tch::no_grad(|| {
        for (name, var) in model.named_variables() {
            match tensors.get(&name) {
                Some(t) if t.size() == var.size() => {
                    var.shallow_clone().copy_(&t.to_kind(var.kind()).to_device(device));
                }
                _ => missing.push(name),
            }
        }
    });
    if !missing.is_empty() {
        bail!(
            "{}: {} tensor(s) of the model are missing or have another shape, e.g. {}",
            weights.display(),
            missing.len(),
            missing[..missing.len().min(3)].join(", ")
        );
    }
    Ok(Loaded { card, model })
}

/// The tensors of a checkpoint or an exported model file, by fx's variable names.
pub fn read_model_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let exported = read_card(path)?.is_some();
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
    Ok(tensors
        .into_iter()
        .map(|(n, t)| {
            let name = if !exported {
                n
            } else if let Some(rest) = n.strip_prefix("fx.") {
                rest.to_string()
            } else {
                format!("backbone.{n}")
            };
            (name, t)
        })
        .collect())
}

/// The model card in a safetensors header, if the file is an exported fx model.
pub fn read_card(path: &Path) -> Result<Option<ModelCard>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| anyhow!("{}: not a safetensors file (shorter than its header length)", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        bail!("{}: not a safetensors file (header length {n})", path.display());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|_| anyhow!("{}: truncated safetensors header", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| anyhow!("{}: the safetensors header is not JSON: {e}", path.display()))?;
    let Some(card) = v.get("__metadata__").and_then(|m| m.get("fx")).and_then(|c| c.as_str()) else { return Ok(None) };
    let card: ModelCard =
        serde_json::from_str(card).map_err(|e| anyhow!("{}: its fx model card does not parse: {e}", path.display()))?;
    if card.format != CARD_FORMAT {
        bail!("{}: model card format {} (this fx reads {CARD_FORMAT})", path.display(), card.format);
    }
    Ok(Some(card))
}

/// Writes a run's teacher (or student) as one portable model file.
pub fn export(run: &Path, role: ModelRole, out: &Path) -> Result<ModelCard> {
    let loaded = load(run, role, Device::Cpu)?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in loaded.model.named_variables() {
        let key = match name.strip_prefix("backbone.") {
            Some(rest) => rest.to_string(),
            None => format!("fx.{name}"),
        };
        named.push((key, t.detach().to_device(Device::Cpu).contiguous()));
    }
    let card = serde_json::to_string(&loaded.card)?;
    write_safetensors(out, &named, &[("fx", &card)])?;
    Ok(loaded.card)
}

/// A safetensors file with header metadata (tch writes none). Float and integer tensors.
fn write_safetensors(path: &Path, tensors: &[(String, Tensor)], metadata: &[(&str, &str)]) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let (dtype, size) = match t.kind() {
            Kind::Float => ("F32", 4),
            Kind::Double => ("F64", 8),
            Kind::Int64 => ("I64", 8),
            Kind::Int => ("I32", 4),
            k => bail!("{name}: tensors of kind {k:?} are not exported"),
        };
        let numel = t.numel();
        let start = data.len();
        data.resize(start + numel * size, 0);
        t.copy_data_u8(&mut data[start..], numel);
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": t.size(), "data_offsets": [start, data.len()] }),
        );
    }
    let meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut h = serde_json::to_vec(&header)?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + h.len() + data.len());
    bytes.extend_from_slice(&(h.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&data);
    crate::store::write_atomic(path, &bytes)
}

/// Inference options.
pub struct PredictOptions {
    pub datasets: Vec<String>,
    pub cls: bool,
    pub loc: bool,
    pub seg: bool,
    /// Detections at or above this score are kept.
    pub threshold: f32,
}

/// One image's predictions for one dataset's heads, in ORIGINAL pixels.
#[derive(Clone, Debug, Default)]
pub struct Prediction {
    pub cls: Vec<f32>,
    /// (label, score, [x0, y0, x1, y1])
    pub boxes: Vec<(usize, f32, [f32; 4])>,
    /// Per seg label: a 0/1 mask at the original size.
    pub masks: Vec<Vec<u8>>,
}

/// Runs every selected head of every selected dataset on a batch of images, given at the model's
/// input size (`gray`: B × S × S in [0, 1]) with their original sizes.
pub fn infer(
    loaded: &Loaded,
    gray: &[f32],
    originals: &[(usize, usize)],
    opts: &PredictOptions,
) -> Result<BTreeMap<String, Vec<Prediction>>> {
    let s = loaded.card.image_size;
    let b = originals.len() as i64;
    let device = loaded.model.device();
    let x = Tensor::from_slice(gray).view([b, 1, s, s]).to_device(device);
    let x = loaded.model.input(&x);
    let mut out = BTreeMap::new();
    for (name, heads) in &loaded.card.datasets {
        if !opts.datasets.is_empty() && !opts.datasets.contains(name) {
            continue;
        }
        let mut preds = vec![Prediction::default(); originals.len()];
        tch::no_grad(|| -> Result<()> {
            if opts.cls && !heads.cls.is_empty() {
                let head = &loaded.model.cls_heads[name].spec;
                let p = crate::model::cls_probabilities(head, &loaded.model.cls(&x, name, false)?.logits);
                let p = p.to_kind(Kind::Float).to_device(Device::Cpu);
                let v = Vec::<f32>::try_from(&p.flatten(0, -1))?;
                let c = heads.cls.len();
                for (i, pr) in preds.iter_mut().enumerate() {
                    pr.cls = v[i * c..(i + 1) * c].to_vec();
                }
            }
            if opts.loc && !heads.loc.is_empty() {
                let o = loaded.model.loc(&x, name, false, &DinoDecode::default());
                let per = crate::dino::select_detections(
                    o.logits.last().unwrap(),
                    o.boxes.last().unwrap(),
                    loaded.card.dino.num_select,
                );
                for (i, pr) in preds.iter_mut().enumerate() {
                    let (ow, oh) = (originals[i].0 as f32, originals[i].1 as f32);
                    let mut boxes: Vec<(usize, f32, [f32; 4])> = per[i]
                        .iter()
                        .filter(|(score, _, _)| *score >= opts.threshold)
                        .map(|&(score, label, [cx, cy, w, h])| {
                            let b =
                                [(cx - w / 2.0) * ow, (cy - h / 2.0) * oh, (cx + w / 2.0) * ow, (cy + h / 2.0) * oh];
                            (
                                label as usize,
                                score,
                                [b[0].clamp(0.0, ow), b[1].clamp(0.0, oh), b[2].clamp(0.0, ow), b[3].clamp(0.0, oh)],
                            )
                        })
                        .collect();
                    boxes.truncate(crate::eval::map::MAX_DETS);
                    pr.boxes = boxes;
                }
            }
            if opts.seg && !heads.seg.is_empty() {
                let logits = loaded.model.seg(&x, name, false, false, None)?.logits;
                let probs = crate::upernet::mask_scores(&loaded.model.seg_heads[name].spec, &logits);
                for (i, pr) in preds.iter_mut().enumerate() {
                    let (ow, oh) = (originals[i].0 as i64, originals[i].1 as i64);
                    // Probabilities resized to the original image, then thresholded.
                    let p = probs.get(i as i64).unsqueeze(0).upsample_bilinear2d([oh, ow], false, None, None);
                    let m = p.gt(0.5).to_kind(Kind::Uint8).to_device(Device::Cpu);
                    let k = heads.seg.len();
                    let v = Vec::<u8>::try_from(&m.flatten(0, -1))?;
                    let px = (ow * oh) as usize;
                    pr.masks = (0..k).map(|c| v[c * px..(c + 1) * px].to_vec()).collect();
                }
            }
            Ok(())
        })?;
        out.insert(name.clone(), preds);
    }
    Ok(out)
}

/// The run's checkpoint directory, for the card's provenance in messages.
pub fn describe(card: &ModelCard) -> String {
    format!("{} {} (epoch {}) of {}", card.arch, card.model, card.epoch, card.run)
}

/// Model files for `[finetune] from`: an exported model file maps back to fx's names.
pub fn is_model_file(path: &Path) -> bool {
    path.is_file() && read_card(path).ok().flatten().is_some()
}
