//! Segmentation branch: a UperNet-style decoder shared by all datasets (Xiao et al. 2018, as the
//! authors' code configures it) and one Conv3×3 head per dataset.
//!
//! Pyramid pooling on stage 4 (bins 1/2/4/6: AdaptiveAvgPool → Conv1×1 to 256 → BN → ReLU, upsampled
//! and concatenated with stage 4, then Conv3×3 back to the stage width + BN + ReLU), FPN fusion of the
//! four levels to 128 channels at stride 4 (lateral Conv1×1, top-down add, Conv3×3 smoothing,
//! upsample, concat, Conv3×3 fuse). At Swin-B size the decoder has 21.2 M parameters (paper: 20.9 M).

use crate::dist::GlobalBatch;
use anyhow::Result;
use fx_plugin::LabelMode;
use tch::{nn, nn::Module, nn::ModuleT, Kind, Tensor};

pub const PPM_BINS: [i64; 4] = [1, 2, 4, 6];
pub const PPM_CHANNELS: i64 = 256;
pub const FPN_CHANNELS: i64 = 128;

/// Conv (no bias) → BatchNorm → ReLU, the UperNet building block.
struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBnRelu {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64) -> Self {
        let cfg = nn::ConvConfig { padding: k / 2, bias: false, ..Default::default() };
        ConvBnRelu {
            conv: nn::conv2d(&p / "conv", cin, cout, k, cfg),
            bn: nn::batch_norm2d(&p / "bn", cout, Default::default()),
        }
    }
    /// `sync`: the job's global batch, whose statistics a training BatchNorm uses (SyncBatchNorm).
    fn forward(&self, x: &Tensor, train: bool, sync: Option<&GlobalBatch>) -> Result<Tensor> {
        let y = self.conv.forward(x);
        let y = match sync {
            Some(g) if train => sync_batch_norm(&self.bn, &y, g)?,
            _ => self.bn.forward_t(&y, train),
        };
        Ok(y.relu())
    }
}

/// tch's BatchNorm defaults (PyTorch's): the ones `nn::batch_norm2d(.., Default::default())` uses.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// torch.nn.SyncBatchNorm: `bn` in training mode on `x` (N, C, H, W) normalised with the mean and
/// variance of the job's global batch (every rank's slice), not this rank's slice; the running
/// statistics are updated with them, and gradients flow through them to every rank. A job then
/// computes what one process computes on the global batch.
pub fn sync_batch_norm(bn: &nn::BatchNorm, x: &Tensor, global: &GlobalBatch) -> Result<Tensor> {
    let c = x.size()[1];
    let xf = x.to_kind(Kind::Float);
    // Sums of x − K for a constant K (the running mean): E[(x−K)²] − E[x−K]² keeps its
    // precision in fp32 when |mean| ≫ std, where E[x²] − E[x]² would not.
    let shift = bn.running_mean.detach().to_kind(Kind::Float);
    let d = &xf - shift.view([1, c, 1, 1]);
    let local = Tensor::cat(
        &[
            d.sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Float),
            d.square().sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Float),
            Tensor::full([1], (xf.numel() as i64 / c) as f64, (Kind::Float, x.device())),
        ],
        0,
    );
    let global = global.sum(&local)?;
    let n = global.narrow(0, 2 * c, 1);
    let mean_d = global.narrow(0, 0, c) / &n;
    let var = (global.narrow(0, c, c) / &n - mean_d.square()).clamp_min(0.0);
    let mean = &mean_d + &shift;
    tch::no_grad(|| {
        // Running statistics as BatchNorm keeps them: the variance unbiased (n − 1), all on
        // the device (no host synchronisation).
        let unbiased = &var * &n / (&n - 1.0).clamp_min(1.0);
        let mut rm = bn.running_mean.shallow_clone();
        let mut rv = bn.running_var.shallow_clone();
        rm.copy_(&(&rm * (1.0 - BN_MOMENTUM) + mean.detach() * BN_MOMENTUM));
        rv.copy_(&(&rv * (1.0 - BN_MOMENTUM) + unbiased.detach() * BN_MOMENTUM));
    });
    let view = |t: &Tensor| t.view([1, c, 1, 1]);
    let mut y = (&xf - view(&mean)) * view(&(&var + BN_EPS).rsqrt());
    if let Some(w) = &bn.ws {
        y *= view(w);
    }
    if let Some(b) = &bn.bs {
        y += view(b);
    }
    Ok(y.to_kind(x.kind()))
}

fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    let s = x.size();
    if s[2] == h && s[3] == w {
        return x.shallow_clone();
    }
    x.upsample_bilinear2d([h, w], false, None, None)
}

pub struct UperNet {
    ppm: Vec<ConvBnRelu>,
    bottleneck: ConvBnRelu,
    lateral: Vec<ConvBnRelu>,
    fpn: Vec<ConvBnRelu>,
    fuse: ConvBnRelu,
}

/// What the decoder produces: the fused stride-4 map (input of the heads and a consistency
/// feature) and the projected stage-4 map (the other consistency feature).
pub struct SegFeatures {
    pub fused: Tensor,
    pub stage4: Tensor,
}

impl UperNet {
    /// `dims`: channels of the four backbone stages; `ppm`/`fpn`: the decoder widths (paper 256/128).
    pub fn new(p: &nn::Path, dims: &[i64], ppm: i64, fpn: i64) -> UperNet {
        let top = *dims.last().unwrap();
        let ppm_convs = (0..PPM_BINS.len()).map(|i| ConvBnRelu::new(p / "ppm" / i, top, ppm, 1)).collect();
        let bottleneck = ConvBnRelu::new(p / "bottleneck", top + PPM_BINS.len() as i64 * ppm, top, 3);
        let lateral = dims.iter().enumerate().map(|(i, &c)| ConvBnRelu::new(p / "lateral" / i, c, fpn, 1)).collect();
        let fpn_convs = (0..dims.len() - 1).map(|i| ConvBnRelu::new(p / "fpn" / i, fpn, fpn, 3)).collect();
        let fuse = ConvBnRelu::new(p / "fuse", dims.len() as i64 * fpn, fpn, 3);
        let (ppm, fpn) = (ppm_convs, fpn_convs);
        UperNet { ppm, bottleneck, lateral, fpn, fuse }
    }

    /// `stages`: the backbone's stage maps, NCHW, strides 4/8/16/32. `sync`: in a data-parallel
    /// job with `train.sync_batchnorm`, the BatchNorm layers use the global batch's statistics.
    pub fn forward(&self, stages: &[Tensor], train: bool, sync: Option<&GlobalBatch>) -> Result<SegFeatures> {
        let top = stages.last().unwrap();
        let (h, w) = (top.size()[2], top.size()[3]);
        let mut pooled = vec![top.shallow_clone()];
        for (bin, m) in PPM_BINS.iter().zip(&self.ppm) {
            pooled.push(resize(&m.forward(&top.adaptive_avg_pool2d([*bin, *bin]), train, sync)?, h, w));
        }
        let stage4 = self.bottleneck.forward(&Tensor::cat(&pooled, 1), train, sync)?;
        // Laterals: the top level comes from the pyramid pooling output.
        let n = stages.len();
        let mut lat = (0..n)
            .map(|i| self.lateral[i].forward(if i + 1 == n { &stage4 } else { &stages[i] }, train, sync))
            .collect::<Result<Vec<Tensor>>>()?;
        for i in (0..n - 1).rev() {
            let (hh, ww) = (lat[i].size()[2], lat[i].size()[3]);
            lat[i] = &lat[i] + resize(&lat[i + 1], hh, ww);
        }
        let (h0, w0) = (lat[0].size()[2], lat[0].size()[3]);
        let mut outs = (0..n - 1)
            .map(|i| Ok(resize(&self.fpn[i].forward(&lat[i], train, sync)?, h0, w0)))
            .collect::<Result<Vec<Tensor>>>()?;
        outs.push(resize(&lat[n - 1], h0, w0));
        let fused = self.fuse.forward(&Tensor::cat(&outs, 1), train, sync)?;
        Ok(SegFeatures { fused, stage4 })
    }
}

/// A segmentation head as built (model.json's record, in fx-run).
pub use fx_run::SegHeadSpec;

/// Per-label probabilities (B, labels, H, W) from a seg head's logits, for the soft Dice: a
/// sigmoid per label, or the softmax over background and labels without the background.
pub fn seg_probabilities(spec: &SegHeadSpec, logits: &Tensor) -> Tensor {
    match spec.mode {
        LabelMode::MultiLabel => logits.sigmoid(),
        LabelMode::MultiClass => logits.softmax(1, Kind::Float).narrow(1, 1, spec.labels),
    }
}

/// Per-label scores whose threshold at 0.5 is the predicted mask (evaluation, predict): the
/// sigmoid per label, or for exclusive labels the one-hot of each pixel's most probable class
/// (background included) — with three labels a pixel's winning probability may be below 0.5.
pub fn mask_scores(spec: &SegHeadSpec, logits: &Tensor) -> Tensor {
    match spec.mode {
        LabelMode::MultiLabel => logits.sigmoid(),
        LabelMode::MultiClass => {
            let winner = logits.argmax(1, true);
            let classes = Tensor::arange(spec.channels(), (tch::Kind::Int64, logits.device())).view([1, -1, 1, 1]);
            winner.eq_tensor(&classes).to_kind(Kind::Float).narrow(1, 1, spec.labels)
        }
    }
}

/// A dataset's segmentation head (see [`SegHeadSpec`]). The paper's single conv keeps the names
/// `seg_head.<dataset>.weight/bias`; a stack's are `.<i>.*` per layer and `.out.*`; a plugin
/// head's are the names its library declares.
pub struct SegHead {
    pub spec: SegHeadSpec,
    body: SegBody,
}

/// Convolutions built here, or a plugin library's forward over parameters created here.
enum SegBody {
    Layers { convs: Vec<nn::Conv2D>, out: nn::Conv2D },
    Plugin { head: crate::head_plugin::PluginHead, params: Vec<Tensor> },
}

impl SegHead {
    pub fn new(p: nn::Path, fpn: i64, spec: &SegHeadSpec) -> Result<SegHead> {
        if let Some(plug) = &spec.plugin {
            let (head, params) = crate::head_plugin::build(&p, plug, fx_plugin::Task::Seg, spec.channels(), fpn)?;
            if head.decl.inputs != [fx_plugin::head::HeadInput::Fused] {
                anyhow::bail!(
                    "head plugin `{}`: a segmentation head reads the fused map only (inputs = [fused])",
                    plug.kind
                );
            }
            return Ok(SegHead { spec: spec.clone(), body: SegBody::Plugin { head, params } });
        }
        let cfg = nn::ConvConfig { padding: 1, ..Default::default() };
        let mut width = fpn;
        let mut convs = Vec::new();
        for (i, &w) in spec.widths.iter().enumerate() {
            convs.push(nn::conv2d(&p / i, width, w, 3, cfg));
            width = w;
        }
        let out = match spec.widths.is_empty() {
            true => nn::conv2d(p, width, spec.channels(), 3, cfg),
            false => nn::conv2d(&p / "out", width, spec.channels(), 3, cfg),
        };
        Ok(SegHead { spec: spec.clone(), body: SegBody::Layers { convs, out } })
    }

    /// Logits (B, channels, h, w): the head on the fused map, upsampled bilinearly to the input.
    pub fn logits(&self, fused: &Tensor, h: i64, w: i64, train: bool) -> Result<Tensor> {
        let logits = match &self.body {
            SegBody::Layers { convs, out } => {
                let mut x = fused.shallow_clone();
                for c in convs {
                    x = c.forward(&x).relu();
                }
                out.forward(&x)
            }
            SegBody::Plugin { head, params } => {
                let y = head.forward(&[fused], params, train)?;
                let (b, c) = (fused.size()[0], self.spec.channels());
                let want = [b, c, fused.size()[2], fused.size()[3]];
                if y.size() != want {
                    anyhow::bail!(
                        "head plugin `{}` returned logits of shape {:?}, expected {want:?}",
                        head.kind,
                        y.size()
                    );
                }
                y
            }
        };
        Ok(resize(&logits, h, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// With one rank (the sum is the identity), SyncBatchNorm must be BatchNorm: same output,
    /// same gradients for the input and the affine parameters, same running statistics.
    #[test]
    fn sync_batchnorm_of_one_rank_is_batchnorm() {
        tch::manual_seed(3);
        let make = || {
            let vs = nn::VarStore::new(Device::Cpu);
            let bn = nn::batch_norm2d(vs.root() / "bn", 3, Default::default());
            tch::no_grad(|| {
                bn.ws.as_ref().unwrap().shallow_clone().copy_(&Tensor::from_slice(&[0.5f32, 2.0, -1.0]));
                bn.bs.as_ref().unwrap().shallow_clone().copy_(&Tensor::from_slice(&[0.1f32, -0.3, 0.7]));
                bn.running_mean.shallow_clone().copy_(&Tensor::from_slice(&[40.0f32, 1.0, -2.0]));
            });
            (vs, bn)
        };
        // A large mean on channel 0 (the case E[x²] − E[x]² would lose in fp32).
        let offset = Tensor::from_slice(&[50.0f32, 0.0, -3.0]).view([1, 3, 1, 1]);
        let x0 = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu)) * 2.0 + offset;
        let w = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
        let run = |sync: bool| {
            let (_vs, bn) = make();
            let x = x0.copy().set_requires_grad(true);
            let identity = |t: &Tensor| Ok(t * 1.0);
            let g = GlobalBatch { sum: &identity, weight: 1.0 };
            let y = if sync { sync_batch_norm(&bn, &x, &g).unwrap() } else { bn.forward_t(&x, true) };
            let loss = (&y * &w).sum(Kind::Float);
            let g =
                Tensor::run_backward(&[&loss], &[&x, bn.ws.as_ref().unwrap(), bn.bs.as_ref().unwrap()], false, false);
            (y.detach(), g, bn.running_mean.copy(), bn.running_var.copy())
        };
        let (ya, ga, ma, va) = run(false);
        let (yb, gb, mb, vb) = run(true);
        let close = |a: &Tensor, b: &Tensor, tol: f64, what: &str| {
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < tol, "{what} differs by {d}");
        };
        close(&ya, &yb, 1e-4, "output");
        for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
            close(a, b, 1e-3, &format!("gradient {i}"));
        }
        close(&ma, &mb, 1e-4, "running mean");
        close(&va, &vb, 1e-4, "running var");
    }
}
