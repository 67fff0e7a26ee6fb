//! Feature extraction with a pretrained Swin: what a user of a foundation model wants first.
//! `fx-tui features --weights W --arch A INPUTS... --out F.safetensors` writes the pooled feature
//! and every stage's map (NCHW) for image files or an already-normalised tensor batch.

use crate::model::{MEAN, STD};
use crate::swin::{load_timm_weights, LoadReport, Swin, SwinConfig};
use anyhow::{anyhow, bail, Context, Result};
use fx_data::augment;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub struct FeatureReport {
    pub load: LoadReport,
    pub inputs: usize,
    pub outputs: Vec<(String, Vec<i64>)>,
}

/// Reads the inputs as one normalised (N, 3, H, W) batch: either a single .safetensors file holding
/// a tensor named `input` (or its only tensor), or image files resized to `img_size`.
pub fn load_inputs(inputs: &[PathBuf], img_size: i64) -> Result<Tensor> {
    if inputs.is_empty() {
        bail!("no inputs given");
    }
    if inputs.len() == 1 && inputs[0].extension().is_some_and(|e| e == "safetensors") {
        let p = &inputs[0];
        let mut ts =
            Tensor::read_safetensors(p).with_context(|| format!("{}: not a readable safetensors file", p.display()))?;
        let t = match ts.iter().position(|(n, _)| n == "input") {
            Some(i) => ts.swap_remove(i).1,
            None if ts.len() == 1 => ts.pop().unwrap().1,
            None => bail!("{}: holds {} tensors and none is named `input`", p.display(), ts.len()),
        };
        if t.dim() != 4 || t.size()[1] != 3 || t.size()[2] != t.size()[3] || t.size()[2] % 32 != 0 || t.size()[2] > 4096
        {
            bail!(
                "{}: the input tensor must be (N, 3, S, S) with S a multiple of 32 up to 4096, got {:?}",
                p.display(),
                t.size()
            );
        }
        return Ok(t.to_kind(Kind::Float));
    }
    let s = img_size as usize;
    let mut pixels = Vec::with_capacity(inputs.len() * s * s);
    for p in inputs {
        let g = fx_data::input::decode(p, &Default::default()).map_err(|e| anyhow!(e))?;
        let (_, resized) = augment::resize_gray(g.pixels, g.width, g.height, s);
        pixels.extend_from_slice(&resized);
    }
    let gray = Tensor::from_slice(&pixels).view([inputs.len() as i64, 1, img_size, img_size]);
    let mean = Tensor::from_slice(&MEAN).view([1, 3, 1, 1]).to_kind(Kind::Float);
    let std = Tensor::from_slice(&STD).view([1, 3, 1, 1]).to_kind(Kind::Float);
    Ok((gray.expand([-1, 3, -1, -1], false) - mean) / std)
}

pub fn extract(
    weights: &Path,
    arch: &str,
    img_size: i64,
    inputs: &[PathBuf],
    out: &Path,
    device: Device,
) -> Result<FeatureReport> {
    if !(32..=4096).contains(&img_size) || img_size % 32 != 0 {
        bail!("--image-size must be a multiple of 32 within 32..=4096 (Swin's patches and merges), got {img_size}");
    }
    let x = load_inputs(inputs, img_size)?;
    let size = x.size()[2];
    let cfg = SwinConfig::named(arch, size)?;
    let vs = nn::VarStore::new(device);
    let swin = Swin::new(&(vs.root() / "backbone"), &cfg)?;
    let load = load_timm_weights(&vs, "backbone", weights)?;
    if load.loaded == 0 {
        bail!("{}: no tensor matches a {arch} backbone (layout {})", weights.display(), load.layout);
    }
    let f = tch::no_grad(|| swin.forward(&x.to_device(device), false));
    let mut named: Vec<(String, Tensor)> = vec![("pooled".into(), f.pooled.to_device(Device::Cpu))];
    for (i, s) in f.stages.iter().enumerate() {
        named.push((format!("stage{i}"), s.permute([0, 3, 1, 2]).contiguous().to_device(Device::Cpu)));
    }
    Tensor::write_safetensors(&named, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(FeatureReport {
        load,
        inputs: x.size()[0] as usize,
        outputs: named.iter().map(|(n, t)| (n.clone(), t.size())).collect(),
    })
}
