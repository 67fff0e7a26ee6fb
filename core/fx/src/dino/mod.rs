//! Foundation X's localization branch: DINO (Zhang et al. 2023) with ONE shared deformable encoder
//! and ONE decoder per localization dataset.
//!
//! - `loc_encoder`: the input projections of the backbone's stages at strides 8/16/32 (LayerNorm →
//!   Conv1×1 → GroupNorm) plus a stride-2 Conv3×3 level, the level embedding, and the deformable
//!   encoder layers — shared by every dataset.
//! - `loc_decoder.<dataset>`: that dataset's two-stage (mixed) query selection, learned content
//!   queries, denoising label book, decoder layers (self-attention, deformable cross-attention, FFN)
//!   with iterative box refinement and look-forward-twice, and its class / box heads.
//!
//! Boxes are (cx, cy, w, h) normalised to the image, as DINO predicts them.

pub mod criterion;
pub mod msda;

use crate::recompute::{self, Params};
use msda::{xavier_linear, MsDeformAttn};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tch::{nn, nn::Module, Kind, Tensor};

/// Sizes of the localization branch. The defaults are the paper's (Swin-B, Table 7 / DINO-4scale).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DinoConfig {
    pub hidden_dim: i64,
    pub heads: i64,
    /// Sampling points per head and level.
    pub points: i64,
    pub encoder_layers: i64,
    pub decoder_layers: i64,
    pub ffn_dim: i64,
    /// Matching queries per image (two-stage selection picks this many encoder tokens).
    pub num_queries: i64,
    /// Denoising queries per image (positive + negative pairs are built from them, DINO's 100).
    pub dn_number: i64,
    pub label_noise: f64,
    pub box_noise: f64,
    /// Detections kept per image at inference: top (query, class) pairs.
    pub num_select: i64,
    /// Sine position encoding temperature (DINO: 20).
    pub pos_temperature: f64,
    /// GroupNorm groups of the input projections (32 in the paper; must divide hidden_dim).
    pub gn_groups: i64,
    /// Gradient-norm clip of the localization step (DINO: 0.1; 0 = off).
    pub clip_max_norm: f64,
}

impl Default for DinoConfig {
    fn default() -> Self {
        DinoConfig {
            hidden_dim: 256,
            heads: 8,
            points: 4,
            encoder_layers: 6,
            decoder_layers: 6,
            ffn_dim: 2048,
            num_queries: 900,
            dn_number: 100,
            label_noise: 0.5,
            box_noise: 1.0,
            num_select: 300,
            pos_temperature: 20.0,
            gn_groups: 32,
            clip_max_norm: 0.1,
        }
    }
}

/// Feature levels: stages at strides 8/16/32 plus one extra stride-2 level.
pub const LEVELS: i64 = 4;

impl DinoConfig {
    /// Encoder tokens for a square input: the two-stage selection cannot pick more queries.
    pub fn tokens(image_size: i64) -> i64 {
        let mut s = 0;
        let mut side = image_size / 8;
        for _ in 0..LEVELS {
            s += side * side;
            side = (side + 1) / 2;
        }
        s
    }

    /// Problems with the sizes, as messages naming the key.
    pub fn problems(&self, image_size: i64) -> Vec<String> {
        let mut out = Vec::new();
        if self.hidden_dim <= 0 || self.heads <= 0 || self.hidden_dim % self.heads != 0 {
            out.push(format!(
                "model.dino.hidden_dim ({}) must be a positive multiple of model.dino.heads ({})",
                self.hidden_dim, self.heads
            ));
        }
        if self.hidden_dim % 4 != 0 {
            out.push(format!(
                "model.dino.hidden_dim ({}) must be a multiple of 4 (box position encoding)",
                self.hidden_dim
            ));
        }
        if self.gn_groups <= 0 || self.hidden_dim % self.gn_groups != 0 {
            out.push(format!(
                "model.dino.gn_groups ({}) must divide model.dino.hidden_dim ({})",
                self.gn_groups, self.hidden_dim
            ));
        }
        for (k, v) in [
            ("points", self.points),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("ffn_dim", self.ffn_dim),
            ("num_queries", self.num_queries),
            ("num_select", self.num_select),
        ] {
            if v <= 0 {
                out.push(format!("model.dino.{k} must be positive, got {v}"));
            }
        }
        let tokens = Self::tokens(image_size);
        if self.num_queries > tokens {
            out.push(format!(
                "model.dino.num_queries ({}) exceeds the {tokens} encoder tokens of a {image_size}-px image; the two-stage selection picks queries among them",
                self.num_queries
            ));
        }
        if self.dn_number < 0 || !(0.0..=1.0).contains(&self.label_noise) || self.box_noise < 0.0 {
            out.push("model.dino: dn_number ≥ 0, label_noise in [0, 1] and box_noise ≥ 0 expected".into());
        }
        out
    }
}

/// inverse of the sigmoid, clamped as DINO does (eps 1e-3).
pub fn inverse_sigmoid(x: &Tensor) -> Tensor {
    let x = x.clamp(0.0, 1.0);
    (x.clamp_min(1e-3) / (x.neg() + 1.0).clamp_min(1e-3)).log()
}

/// Sine encoding of normalised coordinates (…, K) → (…, K·dim): per coordinate dim/2 sines
/// interleaved with dim/2 cosines at frequencies temperature^(2i/dim), after scaling by 2π.
pub fn sine_embed(coords: &Tensor, dim: i64, temperature: f64) -> Tensor {
    let device = coords.device();
    let dim_t: Vec<f32> = (0..dim).map(|i| temperature.powf(2.0 * (i / 2) as f64 / dim as f64) as f32).collect();
    let dim_t = Tensor::from_slice(&dim_t).to_device(device);
    let scaled = coords.unsqueeze(-1) * (2.0 * std::f64::consts::PI) / dim_t; // (…, K, dim)
    let sin = scaled.slice(-1, 0, dim, 2).sin();
    let cos = scaled.slice(-1, 1, dim, 2).cos();
    let mut shape = coords.size();
    let k = shape.pop().unwrap();
    shape.push(k * dim);
    Tensor::stack(&[sin, cos], -1).flatten(-2, -1).reshape(shape.as_slice())
}

/// Position encoding of every location of the levels, (S, D): (y, x) of pixel centres normalised
/// to [0, 1], DINO's PositionEmbeddingSineHW with temperature `t` for both axes.
fn level_positions(shapes: &[(i64, i64)], d: i64, t: f64, device: tch::Device) -> Tensor {
    let mut pts = Vec::new();
    for &(h, w) in shapes {
        for i in 0..h {
            for j in 0..w {
                pts.push((i as f32 + 0.5) / h as f32);
                pts.push((j as f32 + 0.5) / w as f32);
            }
        }
    }
    let n = pts.len() as i64 / 2;
    sine_embed(&Tensor::from_slice(&pts).view([n, 2]).to_device(device), d / 2, t)
}

/// Centre of every location, (S, 2) as (x, y) in [0, 1]: the encoder's reference points.
fn level_centres(shapes: &[(i64, i64)], device: tch::Device) -> Tensor {
    let mut pts = Vec::new();
    for &(h, w) in shapes {
        for i in 0..h {
            for j in 0..w {
                pts.push((j as f32 + 0.5) / w as f32);
                pts.push((i as f32 + 0.5) / h as f32);
            }
        }
    }
    let n = pts.len() as i64 / 2;
    Tensor::from_slice(&pts).view([n, 2]).to_device(device)
}

struct InputProj {
    norm: Option<nn::LayerNorm>,
    conv: nn::Conv2D,
    gn: nn::GroupNorm,
}

struct EncoderLayer {
    attn: MsDeformAttn,
    norm1: nn::LayerNorm,
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm2: nn::LayerNorm,
}

impl EncoderLayer {
    /// `x`: (B, S, D) tokens, `pos` their position embedding, `reference` their centres.
    fn forward(&self, x: &Tensor, pos: &Tensor, reference: &Tensor, shapes: &[(i64, i64)]) -> Tensor {
        let a = self.attn.forward(&(x + pos), reference, x, shapes);
        let x = self.norm1.forward(&(x + a));
        let f = self.linear2.forward(&self.linear1.forward(&x).relu());
        self.norm2.forward(&(x + f))
    }
}

impl Params for EncoderLayer {
    fn params(&self) -> Vec<Tensor> {
        let mut p = self.attn.params();
        for l in [&self.linear1, &self.linear2] {
            p.extend(l.params());
        }
        for n in [&self.norm1, &self.norm2] {
            p.extend(n.params());
        }
        p
    }
}

/// What the shared encoder gives the decoders.
pub struct Memory {
    /// (B, S, D) encoded tokens of the four levels.
    pub tokens: Tensor,
    pub shapes: Vec<(i64, i64)>,
}

/// The shared part: input projections, level embedding, deformable encoder.
pub struct LocEncoder {
    proj: Vec<InputProj>,
    level_embed: Tensor,
    /// Shared (Arc) so that a checkpointed layer can be recomputed in the backward.
    layers: Vec<Arc<EncoderLayer>>,
    cfg: DinoConfig,
    /// `train.activation_checkpointing`: each layer is recomputed in the backward.
    pub activation_checkpointing: bool,
}

impl LocEncoder {
    /// `stage_dims`: channels of the backbone stages at strides 8, 16, 32.
    pub fn new(p: &nn::Path, stage_dims: &[i64], cfg: &DinoConfig) -> LocEncoder {
        let d = cfg.hidden_dim;
        let gn = |p: nn::Path| nn::group_norm(p, cfg.gn_groups, d, Default::default());
        let conv = |p: nn::Path, i: i64, k: i64, stride: i64| {
            let c = nn::ConvConfig {
                stride,
                padding: k / 2,
                ws_init: msda::xavier(i * k * k, d * k * k),
                bs_init: nn::Init::Const(0.0),
                ..Default::default()
            };
            nn::conv2d(p, i, d, k, c)
        };
        let pp = p / "input_proj";
        let mut proj: Vec<InputProj> = stage_dims
            .iter()
            .enumerate()
            .map(|(l, &c)| {
                let q = &pp / l;
                InputProj {
                    norm: Some(nn::layer_norm(&q / "norm", vec![c], Default::default())),
                    conv: conv(&q / "conv", c, 1, 1),
                    gn: gn(&q / "gn"),
                }
            })
            .collect();
        // The extra level: stride-2 Conv3×3 on the LayerNorm'd last stage.
        let last = *stage_dims.last().unwrap();
        let q = &pp / stage_dims.len();
        proj.push(InputProj { norm: None, conv: conv(&q / "conv", last, 3, 2), gn: gn(&q / "gn") });
        let level_embed = p.var("level_embed", &[LEVELS, d], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let layers = (0..cfg.encoder_layers)
            .map(|i| {
                let q = p / "layers" / i;
                recompute::module(EncoderLayer {
                    attn: MsDeformAttn::new(&(&q / "self_attn"), d, cfg.heads, LEVELS, cfg.points),
                    norm1: nn::layer_norm(&q / "norm1", vec![d], Default::default()),
                    linear1: xavier_linear(&q / "linear1", d, cfg.ffn_dim),
                    linear2: xavier_linear(&q / "linear2", cfg.ffn_dim, d),
                    norm2: nn::layer_norm(&q / "norm2", vec![d], Default::default()),
                })
            })
            .collect();
        LocEncoder { proj, level_embed, layers, cfg: cfg.clone(), activation_checkpointing: false }
    }

    /// `stages`: the backbone's NHWC outputs at strides 8, 16, 32.
    pub fn forward(&self, stages: &[Tensor]) -> Memory {
        let mut maps = Vec::with_capacity(LEVELS as usize);
        let mut last_normed = None;
        for (s, proj) in stages.iter().zip(&self.proj) {
            let x = proj.norm.as_ref().unwrap().forward(s).permute([0, 3, 1, 2]);
            maps.push(proj.gn.forward(&proj.conv.forward(&x)));
            last_normed = Some(x);
        }
        let extra = &self.proj[stages.len()];
        maps.push(extra.gn.forward(&extra.conv.forward(&last_normed.expect("at least one stage"))));
        let shapes: Vec<(i64, i64)> = maps.iter().map(|m| (m.size()[2], m.size()[3])).collect();
        let device = maps[0].device();
        let d = self.cfg.hidden_dim;
        let src = Tensor::cat(&maps.iter().map(|m| m.flatten(2, 3).transpose(1, 2)).collect::<Vec<_>>(), 1);
        let lvl: Vec<i64> =
            shapes.iter().enumerate().flat_map(|(l, (h, w))| std::iter::repeat_n(l as i64, (h * w) as usize)).collect();
        let pos = level_positions(&shapes, d, self.cfg.pos_temperature, device)
            + self.level_embed.index_select(0, &Tensor::from_slice(&lvl).to_device(device));
        let b = src.size()[0];
        let s = src.size()[1];
        // Every image fills its maps (no padding), so every level shares the same reference point.
        let reference = level_centres(&shapes, device).view([1, s, 1, 2]).expand([b, s, LEVELS, 2], false);
        let mut x = src;
        for layer in &self.layers {
            x =
                if self.activation_checkpointing {
                    let (reference, shapes) = (reference.shallow_clone(), shapes.clone());
                    recompute::segment(layer, &[&x, &pos], move |l, xs| {
                        vec![l.forward(&xs[0], &xs[1], &reference, &shapes)]
                    })
                    .swap_remove(0)
                } else {
                    layer.forward(&x, &pos, &reference, &shapes)
                };
        }
        Memory { tokens: x, shapes }
    }
}

/// Standard multi-head self-attention (nn.MultiheadAttention's parameters: in_proj, out_proj).
struct SelfAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    heads: i64,
}

impl SelfAttention {
    fn new(p: &nn::Path, d: i64, heads: i64) -> SelfAttention {
        SelfAttention {
            in_proj_weight: p.var("in_proj_weight", &[3 * d, d], msda::xavier(d, 3 * d)),
            in_proj_bias: p.var("in_proj_bias", &[3 * d], nn::Init::Const(0.0)),
            out_proj: xavier_linear(p / "out_proj", d, d),
            heads,
        }
    }

    /// q = k = `qk`, v = `v`; `mask` (T, T) additive (−inf where a query must not look).
    fn forward(&self, qk: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, t, d) = qk.size3().unwrap();
        let w = self.in_proj_weight.chunk(3, 0);
        let bias = self.in_proj_bias.chunk(3, 0);
        let split = |x: &Tensor, i: usize| {
            x.linear(&w[i], Some(&bias[i])).view([b, t, self.heads, d / self.heads]).transpose(1, 2)
        };
        let (q, k, v) = (split(qk, 0), split(qk, 1), split(v, 2));
        let o = Tensor::scaled_dot_product_attention(&q, &k, &v, mask, 0.0, false, None, false);
        self.out_proj.forward(&o.transpose(1, 2).reshape([b, t, d]))
    }
}

struct DecoderLayer {
    self_attn: SelfAttention,
    norm2: nn::LayerNorm,
    cross_attn: MsDeformAttn,
    norm1: nn::LayerNorm,
    linear1: nn::Linear,
    linear2: nn::Linear,
    norm3: nn::LayerNorm,
}

/// A 3-layer MLP (DINO's box head, ReLU between layers).
struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    fn new(p: &nn::Path, i: i64, h: i64, o: i64, n: usize, zero_last: bool) -> Mlp {
        let mut layers = Vec::new();
        for k in 0..n {
            let (a, b) = (if k == 0 { i } else { h }, if k + 1 == n { o } else { h });
            layers.push(if k + 1 == n && zero_last {
                nn::linear(
                    p / "layers" / k,
                    a,
                    b,
                    nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true },
                )
            } else {
                xavier_linear(p / "layers" / k, a, b)
            });
        }
        Mlp { layers }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.shallow_clone();
        for (k, l) in self.layers.iter().enumerate() {
            x = l.forward(&x);
            if k + 1 < self.layers.len() {
                x = x.relu();
            }
        }
        x
    }
}

/// Ground truth of one image for denoising and the criterion: labels and (cx, cy, w, h) boxes.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub labels: Vec<i64>,
    pub boxes: Vec<[f32; 4]>,
}

/// How the denoising queries of a batch are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DnMeta {
    /// DN queries per image (all groups, positive and negative halves, padded).
    pub pad_size: i64,
    pub groups: i64,
    /// Queries per group: 2 × the batch's largest GT count (positives, then negatives).
    pub single_pad: i64,
}

/// Everything one decoder pass produces.
pub struct LocOutput {
    /// Per decoder layer, (B, K, C) logits and (B, K, 4) sigmoid boxes of the matching queries.
    pub logits: Vec<Tensor>,
    pub boxes: Vec<Tensor>,
    /// Per decoder layer, the denoising queries' outputs (B, pad, C) / (B, pad, 4).
    pub dn_logits: Vec<Tensor>,
    pub dn_boxes: Vec<Tensor>,
    pub dn: Option<DnMeta>,
    /// The two-stage proposals (encoder output) for the selected tokens: (B, K, C), (B, K, 4).
    pub interm_logits: Tensor,
    pub interm_boxes: Tensor,
    /// Indices (B, K) of the encoder tokens the query selection picked.
    pub selected: Tensor,
    /// Consistency features: the selected encoder tokens (B, K, D) and the last decoder layer's
    /// normalised outputs of the matching queries (B, K, D).
    pub selected_tokens: Tensor,
    pub hidden: Tensor,
}

/// One localization dataset's decoder with its query selection and heads.
pub struct LocDecoder {
    enc_output: nn::Linear,
    enc_output_norm: nn::LayerNorm,
    enc_out_class_embed: nn::Linear,
    enc_out_bbox_embed: Mlp,
    tgt_embed: Tensor,
    label_enc: Tensor,
    layers: Vec<DecoderLayer>,
    ref_point_head: Mlp,
    norm: nn::LayerNorm,
    class_embed: nn::Linear,
    bbox_embed: Mlp,
    classes: i64,
    cfg: DinoConfig,
}

/// Class-logit bias so that every class starts at probability 0.01 (focal-loss prior).
fn prior_bias() -> f64 {
    -((1.0 - 0.01) / 0.01f64).ln()
}

/// Optional inputs of a decoder pass.
#[derive(Default)]
pub struct DecodeOptions<'a> {
    /// Build denoising queries from these targets (training only).
    pub dn_targets: Option<&'a [Targets]>,
    /// Seed of the denoising noise (deterministic per step).
    pub dn_seed: u64,
    /// Use these token indices (B, K) instead of selecting — the teacher follows the student's
    /// selection so their consistency features correspond query by query.
    pub select: Option<&'a Tensor>,
}

impl LocDecoder {
    pub fn new(p: &nn::Path, classes: i64, cfg: &DinoConfig) -> LocDecoder {
        let d = cfg.hidden_dim;
        let class_cfg = nn::LinearConfig {
            ws_init: msda::xavier(d, classes),
            bs_init: Some(nn::Init::Const(prior_bias())),
            bias: true,
        };
        let layers = (0..cfg.decoder_layers)
            .map(|i| {
                let q = p / "layers" / i;
                DecoderLayer {
                    self_attn: SelfAttention::new(&(&q / "self_attn"), d, cfg.heads),
                    norm2: nn::layer_norm(&q / "norm2", vec![d], Default::default()),
                    cross_attn: MsDeformAttn::new(&(&q / "cross_attn"), d, cfg.heads, LEVELS, cfg.points),
                    norm1: nn::layer_norm(&q / "norm1", vec![d], Default::default()),
                    linear1: xavier_linear(&q / "linear1", d, cfg.ffn_dim),
                    linear2: xavier_linear(&q / "linear2", cfg.ffn_dim, d),
                    norm3: nn::layer_norm(&q / "norm3", vec![d], Default::default()),
                }
            })
            .collect();
        LocDecoder {
            enc_output: xavier_linear(p / "enc_output", d, d),
            enc_output_norm: nn::layer_norm(p / "enc_output_norm", vec![d], Default::default()),
            enc_out_class_embed: nn::linear(p / "enc_out_class_embed", d, classes, class_cfg),
            enc_out_bbox_embed: Mlp::new(&(p / "enc_out_bbox_embed"), d, d, 4, 3, true),
            tgt_embed: p.var("tgt_embed", &[cfg.num_queries, d], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            // One row per class plus one for padding slots (zeroed below).
            label_enc: p.var("label_enc", &[classes + 1, d], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            layers,
            ref_point_head: Mlp::new(&(p / "ref_point_head"), 2 * d, d, d, 2, false),
            norm: nn::layer_norm(p / "norm", vec![d], Default::default()),
            class_embed: nn::linear(p / "class_embed", d, classes, class_cfg),
            bbox_embed: Mlp::new(&(p / "bbox_embed"), d, d, 4, 3, true),
            classes,
            cfg: cfg.clone(),
        }
    }

    pub fn classes(&self) -> i64 {
        self.classes
    }

    /// Two-stage proposals: one box per encoder token, centred on it, 0.05·2^level wide;
    /// returned unsigmoided (B, S, 4), with the mask of tokens whose proposal lies inside the
    /// image (DINO's 0.01 … 0.99 rule).
    fn proposals(shapes: &[(i64, i64)], b: i64, device: tch::Device) -> (Tensor, Tensor) {
        let mut v = Vec::new();
        for (l, &(h, w)) in shapes.iter().enumerate() {
            let wh = 0.05 * 2f32.powi(l as i32);
            for i in 0..h {
                for j in 0..w {
                    v.extend_from_slice(&[(j as f32 + 0.5) / w as f32, (i as f32 + 0.5) / h as f32, wh, wh]);
                }
            }
        }
        let s = v.len() as i64 / 4;
        let p = Tensor::from_slice(&v).view([1, s, 4]).to_device(device);
        let valid = p.gt(0.01).logical_and(&p.lt(0.99)).all_dim(-1, true);
        (inverse_sigmoid(&p).expand([b, s, 4], false), valid.expand([b, s, 1], false))
    }

    /// Denoising queries from the batch's targets (DINO's contrastive denoising): `groups` copies
    /// of every GT box, each as a positive (noise within the box) and a negative (noise beyond it),
    /// labels flipped with probability label_noise/2. Built on the host from the host-side
    /// targets — no device synchronisation.
    fn denoising(
        &self,
        targets: &[Targets],
        seed: u64,
        device: tch::Device,
    ) -> Option<(Tensor, Tensor, Tensor, DnMeta)> {
        let max_gt = targets.iter().map(|t| t.labels.len()).max().unwrap_or(0) as i64;
        if self.cfg.dn_number == 0 || max_gt == 0 {
            return None;
        }
        let groups = (self.cfg.dn_number / max_gt).max(1);
        let single_pad = 2 * max_gt;
        let pad = single_pad * groups;
        let b = targets.len() as i64;
        let mut rng = fx_data::rng::Rng::new(seed);
        let mut labels = vec![self.classes; (b * pad) as usize];
        let mut boxes = vec![0f32; (b * pad * 4) as usize];
        for (i, t) in targets.iter().enumerate() {
            for g in 0..groups {
                for (j, (&label, bx)) in t.labels.iter().zip(&t.boxes).enumerate() {
                    for neg in [false, true] {
                        let slot = i as i64 * pad + g * single_pad + j as i64 + if neg { max_gt } else { 0 };
                        let mut l = label;
                        if rng.f32() < (self.cfg.label_noise * 0.5) as f32 {
                            l = (rng.f32() * self.classes as f32).floor().min(self.classes as f32 - 1.0) as i64;
                        }
                        labels[slot as usize] = l;
                        // Corners jittered by up to box_noise × half the box size: within (0, 1)
                        // of it for positives, (1, 2) for negatives.
                        let [cx, cy, w, h] = *bx;
                        let mut xyxy = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
                        let half = [w / 2.0, h / 2.0, w / 2.0, h / 2.0];
                        for k in 0..4 {
                            let sign = if rng.f32() < 0.5 { -1.0 } else { 1.0 };
                            let part = rng.f32() + if neg { 1.0 } else { 0.0 };
                            xyxy[k] = (xyxy[k] + sign * part * half[k] * self.cfg.box_noise as f32).clamp(0.0, 1.0);
                        }
                        let o = slot as usize * 4;
                        boxes[o] = (xyxy[0] + xyxy[2]) / 2.0;
                        boxes[o + 1] = (xyxy[1] + xyxy[3]) / 2.0;
                        boxes[o + 2] = xyxy[2] - xyxy[0];
                        boxes[o + 3] = xyxy[3] - xyxy[1];
                    }
                }
            }
        }
        let labels = Tensor::from_slice(&labels).view([b, pad]).to_device(device);
        let valid = labels.ne(self.classes).to_kind(Kind::Float).unsqueeze(-1);
        let content = self.label_enc.index_select(0, &labels.flatten(0, 1)).view([b, pad, -1]) * &valid;
        let boxes = Tensor::from_slice(&boxes).view([b, pad, 4]).to_device(device);
        // Padding slots stay at 0 in unsigmoided space, as in DINO.
        let refs = inverse_sigmoid(&boxes) * &valid;
        let meta = DnMeta { pad_size: pad, groups, single_pad };
        Some((content, refs, labels, meta))
    }

    /// Self-attention mask over [DN queries | matching queries]: matching queries cannot see DN
    /// queries, and a DN group cannot see the other groups. Additive, (T, T).
    fn attn_mask(meta: &DnMeta, k: i64, device: tch::Device) -> Tensor {
        let t = meta.pad_size + k;
        let mut m = vec![0f32; (t * t) as usize];
        let blocked = f32::NEG_INFINITY;
        for r in 0..t {
            for c in 0..meta.pad_size {
                let block = if r >= meta.pad_size { true } else { r / meta.single_pad != c / meta.single_pad };
                if block {
                    m[(r * t + c) as usize] = blocked;
                }
            }
        }
        Tensor::from_slice(&m).view([t, t]).to_device(device)
    }

    pub fn forward(&self, memory: &Memory, opts: &DecodeOptions) -> LocOutput {
        let d = self.cfg.hidden_dim;
        let (b, s, _) = memory.tokens.size3().unwrap();
        let device = memory.tokens.device();
        let k = self.cfg.num_queries.min(s);
        // Two-stage query selection: score every encoder token as a proposal, keep the top K.
        let (proposals, valid) = Self::proposals(&memory.shapes, b, device);
        let out_memory =
            self.enc_output_norm.forward(&self.enc_output.forward(&(&memory.tokens * valid.to_kind(Kind::Float))));
        let enc_logits = self.enc_out_class_embed.forward(&out_memory);
        let selected = match opts.select {
            Some(sel) => sel.shallow_clone(),
            None => {
                let score = enc_logits
                    .amax([-1i64].as_slice(), false)
                    .masked_fill(&valid.squeeze_dim(-1).logical_not(), f64::NEG_INFINITY);
                score.topk(k, 1, true, true).1
            }
        };
        let gather = |x: &Tensor, c: i64| x.gather(1, &selected.unsqueeze(-1).expand([b, k, c], false), false);
        let coord_unsig =
            self.enc_out_bbox_embed.forward(&out_memory) + proposals.masked_fill(&valid.logical_not(), 0.0);
        let ref_undetached = gather(&coord_unsig, 4);
        let selected_tokens = gather(&out_memory, d);
        let interm_logits = gather(&enc_logits, self.classes);
        let interm_boxes = ref_undetached.sigmoid();
        // Mixed query selection: positions from the selection, content from learned embeddings.
        let mut tgt = self.tgt_embed.narrow(0, 0, k).unsqueeze(0).expand([b, k, d], false);
        let mut refs_unsig = ref_undetached.detach();
        let mut mask = None;
        let mut dn = None;
        if let Some(targets) = opts.dn_targets {
            if let Some((content, refs, _, meta)) = self.denoising(targets, opts.dn_seed, device) {
                tgt = Tensor::cat(&[content, tgt], 1);
                refs_unsig = Tensor::cat(&[refs, refs_unsig], 1);
                mask = Some(Self::attn_mask(&meta, k, device));
                dn = Some(meta);
            }
        }
        let pad = dn.map_or(0, |m| m.pad_size);
        // Decoder with iterative box refinement; references are detached between layers, but each
        // layer's prediction uses the previous layer's undetached refinement (look-forward-twice).
        let mut x = tgt;
        // `reference` (detached) is where a layer samples and what encodes its query positions;
        // `ref_pred` is the previous layer's undetached refinement that this layer's boxes refine:
        // look-forward-twice, so the box loss of layer i also trains layer i−1's refinement.
        let mut reference = refs_unsig.sigmoid();
        let mut ref_pred = reference.shallow_clone();
        let (mut logits, mut boxes, mut dn_logits, mut dn_boxes) = (vec![], vec![], vec![], vec![]);
        let mut hidden = None;
        for layer in &self.layers {
            let sine = sine_embed(&reference, d / 2, 10000.0);
            let pos = self.ref_point_head.forward(&sine);
            let qk = &x + &pos;
            x = layer.norm2.forward(&(&x + layer.self_attn.forward(&qk, &x, mask.as_ref())));
            let ref_levels = reference.unsqueeze(2).expand([b, pad + k, LEVELS, 4], false);
            x = layer
                .norm1
                .forward(&(&x + layer.cross_attn.forward(&(&x + &pos), &ref_levels, &memory.tokens, &memory.shapes)));
            x = layer.norm3.forward(&(&x + layer.linear2.forward(&layer.linear1.forward(&x).relu())));
            let h = self.norm.forward(&x);
            let pred = (self.bbox_embed.forward(&h) + inverse_sigmoid(&ref_pred)).sigmoid();
            let cls = self.class_embed.forward(&h);
            logits.push(cls.narrow(1, pad, k));
            boxes.push(pred.narrow(1, pad, k));
            if pad > 0 {
                dn_logits.push(cls.narrow(1, 0, pad));
                dn_boxes.push(pred.narrow(1, 0, pad));
            }
            hidden = Some(h.narrow(1, pad, k));
            ref_pred = (self.bbox_embed.forward(&x) + inverse_sigmoid(&reference)).sigmoid();
            reference = ref_pred.detach();
        }
        // Under autocast the heads' outputs are bf16/fp16; the criterion, the matcher and the
        // metrics take them in fp32 (a no-op in fp32 training).
        let fp32 = |v: Vec<Tensor>| v.iter().map(crate::amp::fp32).collect::<Vec<_>>();
        LocOutput {
            logits: fp32(logits),
            boxes: fp32(boxes),
            dn_logits: fp32(dn_logits),
            dn_boxes: fp32(dn_boxes),
            dn,
            interm_logits: crate::amp::fp32(&interm_logits),
            interm_boxes: crate::amp::fp32(&interm_boxes),
            selected,
            selected_tokens: crate::amp::fp32(&selected_tokens),
            hidden: crate::amp::fp32(&hidden.expect("at least one decoder layer")),
        }
    }
}

/// Top-`n` (query, class) pairs per image of the last layer: (score, label, box cxcywh) per image.
pub fn select_detections(logits: &Tensor, boxes: &Tensor, n: i64) -> Vec<Vec<(f32, i64, [f32; 4])>> {
    let (b, k, c) = logits.size3().unwrap();
    let n = n.min(k * c);
    let prob = logits.sigmoid().view([b, k * c]);
    let (scores, idx) = prob.topk(n, 1, true, true);
    let query = idx.divide_scalar_mode(c, "trunc");
    let label = idx.remainder(c);
    let picked = boxes.gather(1, &query.unsqueeze(-1).expand([b, n, 4], false), false);
    let scores = Vec::<f32>::try_from(&scores.to_device(tch::Device::Cpu).flatten(0, -1)).unwrap();
    let label = Vec::<i64>::try_from(&label.to_device(tch::Device::Cpu).flatten(0, -1)).unwrap();
    let picked = Vec::<f32>::try_from(&picked.to_kind(Kind::Float).to_device(tch::Device::Cpu).flatten(0, -1)).unwrap();
    (0..b as usize)
        .map(|i| {
            (0..n as usize)
                .map(|j| {
                    let o = i * n as usize + j;
                    let bx = &picked[o * 4..o * 4 + 4];
                    (scores[o], label[o], [bx[0], bx[1], bx[2], bx[3]])
                })
                .collect()
        })
        .collect()
}
