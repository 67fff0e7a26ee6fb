//! Segmentation branch: a UperNet-style decoder shared by all datasets (Xiao et al. 2018, as the
//! authors' code configures it) and one Conv3×3 head per dataset.
//!
//! Pyramid pooling on stage 4 (bins 1/2/4/6: AdaptiveAvgPool → Conv1×1 to 256 → BN → ReLU, upsampled
//! and concatenated with stage 4, then Conv3×3 back to the stage width + BN + ReLU), FPN fusion of the
//! four levels to 128 channels at stride 4 (lateral Conv1×1, top-down add, Conv3×3 smoothing,
//! upsample, concat, Conv3×3 fuse). At Swin-B size the decoder has 21.2 M parameters (paper: 20.9 M).

use tch::{nn, nn::Module, nn::ModuleT, Tensor};

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
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train).relu()
    }
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

    /// `stages`: the backbone's stage maps, NCHW, strides 4/8/16/32.
    pub fn forward(&self, stages: &[Tensor], train: bool) -> SegFeatures {
        let top = stages.last().unwrap();
        let (h, w) = (top.size()[2], top.size()[3]);
        let mut pooled = vec![top.shallow_clone()];
        for (bin, m) in PPM_BINS.iter().zip(&self.ppm) {
            pooled.push(resize(&m.forward(&top.adaptive_avg_pool2d([*bin, *bin]), train), h, w));
        }
        let stage4 = self.bottleneck.forward(&Tensor::cat(&pooled, 1), train);
        // Laterals: the top level comes from the pyramid pooling output.
        let n = stages.len();
        let mut lat: Vec<Tensor> = (0..n)
            .map(|i| {
                if i + 1 == n {
                    self.lateral[i].forward(&stage4, train)
                } else {
                    self.lateral[i].forward(&stages[i], train)
                }
            })
            .collect();
        for i in (0..n - 1).rev() {
            let (hh, ww) = (lat[i].size()[2], lat[i].size()[3]);
            lat[i] = &lat[i] + resize(&lat[i + 1], hh, ww);
        }
        let (h0, w0) = (lat[0].size()[2], lat[0].size()[3]);
        let mut outs: Vec<Tensor> = (0..n - 1).map(|i| resize(&self.fpn[i].forward(&lat[i], train), h0, w0)).collect();
        outs.push(resize(&lat[n - 1], h0, w0));
        let fused = self.fuse.forward(&Tensor::cat(&outs, 1), train);
        SegFeatures { fused, stage4 }
    }
}

/// One dataset's segmentation head: Conv3×3(128 → K) on the fused map, logits upsampled
/// bilinearly to the input size (sigmoid outside: masks are multi-label).
pub fn seg_head(p: nn::Path, fpn: i64, classes: i64) -> nn::Conv2D {
    nn::conv2d(p, fpn, classes, 3, nn::ConvConfig { padding: 1, ..Default::default() })
}

pub fn head_logits(head: &nn::Conv2D, fused: &Tensor, h: i64, w: i64) -> Tensor {
    resize(&head.forward(fused), h, w)
}
