//! Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021), the attention of DINO's
//! encoder and of its decoders' cross-attention.
//!
//! Each query attends to `points` sampled locations per head and per feature level, around its
//! reference point; the sampled values (bilinear, zero outside the map) are mixed with softmax
//! weights predicted from the query. Sampling is `grid_sample`, so the same code runs on CPU and
//! CUDA without a custom kernel (the reference implementation compiles one for CUDA).

use tch::{nn, nn::Module, Kind, Tensor};

/// Spatial shape of each feature level, (height, width), coarse last.
pub type Shapes = Vec<(i64, i64)>;

/// The core of the attention, given projected values and sampling positions:
///
/// - `value`: (B, S, H, Dh) — S = Σ h·w over levels, level-major, row-major inside a level;
/// - `locations`: (B, Q, H, L, P, 2) — (x, y) in [0, 1] of each level's map (align_corners = false);
/// - `weights`: (B, Q, H, L, P) — attention weights (already softmaxed over L·P).
///
/// Returns (B, Q, H·Dh).
pub fn ms_deform_attn(value: &Tensor, shapes: &[(i64, i64)], locations: &Tensor, weights: &Tensor) -> Tensor {
    let (b, _, nh, dh) = value.size4().expect("value is (B, S, H, Dh)");
    let s = locations.size();
    let (q, l, p) = (s[1], s[3], s[4]);
    let sizes: Vec<i64> = shapes.iter().map(|(h, w)| h * w).collect();
    let values = value.split_with_sizes(sizes.as_slice(), 1);
    // grid_sample wants coordinates in [-1, 1]. Sampling runs in fp32 whatever the autocast
    // precision: bf16 has 8 bits of mantissa, too few for sub-pixel positions on a 100-px map.
    let grids = locations.to_kind(Kind::Float) * 2.0 - 1.0;
    let mut sampled = Vec::with_capacity(l as usize);
    for (lvl, ((h, w), v)) in shapes.iter().zip(values).enumerate() {
        // (B, h·w, H, Dh) → (B·H, Dh, h, w)
        let v = v.flatten(2, 3).transpose(1, 2).reshape([b * nh, dh, *h, *w]).to_kind(Kind::Float);
        // (B, Q, H, P, 2) → (B·H, Q, P, 2)
        let g = grids.select(3, lvl as i64).transpose(1, 2).flatten(0, 1);
        // bilinear (0), zero padding (0), align_corners = false: (B·H, Dh, Q, P)
        sampled.push(v.grid_sampler(&g, 0, 0, false));
    }
    // (B·H, Dh, Q, L, P) → (B·H, Dh, Q, L·P)
    let sampled = Tensor::stack(&sampled, -2).flatten(-2, -1);
    let w = weights.transpose(1, 2).reshape([b * nh, 1, q, l * p]).to_kind(Kind::Float);
    (sampled * w).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float).view([b, nh * dh, q]).transpose(1, 2)
}

/// Bilinear sample of one (h, w) map at normalised (x, y), zero outside — grid_sample's
/// definition with align_corners = false, written out for the reference below.
fn bilinear(map: &[f32], h: usize, w: usize, x: f32, y: f32) -> f32 {
    let px = x * w as f32 - 0.5;
    let py = y * h as f32 - 0.5;
    let (x0, y0) = (px.floor(), py.floor());
    let (fx, fy) = (px - x0, py - y0);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= w as f32 || yi >= h as f32 {
            0.0
        } else {
            map[yi as usize * w + xi as usize]
        }
    };
    at(x0, y0) * (1.0 - fx) * (1.0 - fy)
        + at(x0 + 1.0, y0) * fx * (1.0 - fy)
        + at(x0, y0 + 1.0) * (1.0 - fx) * fy
        + at(x0 + 1.0, y0 + 1.0) * fx * fy
}

/// The same computation as [`ms_deform_attn`], one sample at a time on the host: the slow,
/// obviously-correct reference its test compares against. Arguments as there, as flat row-major
/// f32 vectors with explicit sizes.
#[allow(clippy::too_many_arguments)]
pub fn ms_deform_attn_direct(
    value: &[f32],
    shapes: &[(i64, i64)],
    locations: &[f32],
    weights: &[f32],
    b: usize,
    q: usize,
    nh: usize,
    dh: usize,
    p: usize,
) -> Vec<f32> {
    let l = shapes.len();
    let s: usize = shapes.iter().map(|(h, w)| (h * w) as usize).sum();
    let mut starts = vec![0usize];
    for (h, w) in shapes {
        starts.push(starts.last().unwrap() + (h * w) as usize);
    }
    let mut out = vec![0f32; b * q * nh * dh];
    for bi in 0..b {
        for qi in 0..q {
            for hi in 0..nh {
                for li in 0..l {
                    let (h, w) = (shapes[li].0 as usize, shapes[li].1 as usize);
                    for d in 0..dh {
                        // This head's channel d of level li as a (h, w) map.
                        let map: Vec<f32> =
                            (0..h * w).map(|k| value[((bi * s + starts[li] + k) * nh + hi) * dh + d]).collect();
                        for pi in 0..p {
                            let loc = ((((bi * q + qi) * nh + hi) * l + li) * p + pi) * 2;
                            let a = weights[(((bi * q + qi) * nh + hi) * l + li) * p + pi];
                            out[((bi * q + qi) * nh + hi) * dh + d] +=
                                a * bilinear(&map, h, w, locations[loc], locations[loc + 1]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Xavier-uniform initialisation of a (fan_out, fan_in) weight.
pub fn xavier(fan_in: i64, fan_out: i64) -> nn::Init {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

/// A linear layer with Xavier-uniform weights and zero bias (DETR's initialisation).
pub fn xavier_linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, nn::LinearConfig { ws_init: xavier(i, o), bs_init: Some(nn::Init::Const(0.0)), bias: true })
}

/// The module: value / output projections and the query → (offsets, weights) predictors.
pub struct MsDeformAttn {
    sampling_offsets: nn::Linear,
    attention_weights: nn::Linear,
    value_proj: nn::Linear,
    output_proj: nn::Linear,
    heads: i64,
    levels: i64,
    points: i64,
}

impl crate::recompute::Params for MsDeformAttn {
    fn params(&self) -> Vec<Tensor> {
        [&self.sampling_offsets, &self.attention_weights, &self.value_proj, &self.output_proj]
            .into_iter()
            .flat_map(|l| l.params())
            .collect()
    }
}

impl MsDeformAttn {
    pub fn new(p: &nn::Path, dim: i64, heads: i64, levels: i64, points: i64) -> MsDeformAttn {
        let zero = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        let sampling_offsets = nn::linear(p / "sampling_offsets", dim, heads * levels * points * 2, zero);
        // Offsets start on a ring per head (head h points at angle 2πh/H), the k-th point k steps
        // out, so that before training the heads already look in different directions.
        let mut bias = Vec::with_capacity((heads * levels * points * 2) as usize);
        for h in 0..heads {
            let t = h as f64 * 2.0 * std::f64::consts::PI / heads as f64;
            let (c, s) = (t.cos(), t.sin());
            let m = c.abs().max(s.abs());
            for _ in 0..levels {
                for k in 0..points {
                    bias.push((c / m * (k + 1) as f64) as f32);
                    bias.push((s / m * (k + 1) as f64) as f32);
                }
            }
        }
        tch::no_grad(|| {
            if let Some(b) = &sampling_offsets.bs {
                b.shallow_clone().copy_(&Tensor::from_slice(&bias).to_device(b.device()));
            }
        });
        MsDeformAttn {
            sampling_offsets,
            attention_weights: nn::linear(p / "attention_weights", dim, heads * levels * points, zero),
            value_proj: xavier_linear(p / "value_proj", dim, dim),
            output_proj: xavier_linear(p / "output_proj", dim, dim),
            heads,
            levels,
            points,
        }
    }

    /// - `query`: (B, Q, D);
    /// - `reference`: (B, Q, L, 2) points (x, y) or (B, Q, L, 4) boxes (cx, cy, w, h), in [0, 1];
    ///   with boxes, offsets are scaled by the box size (DINO's decoder);
    /// - `input`: (B, S, D) the flattened multi-scale maps.
    pub fn forward(&self, query: &Tensor, reference: &Tensor, input: &Tensor, shapes: &[(i64, i64)]) -> Tensor {
        let (b, q, d) = query.size3().expect("query is (B, Q, D)");
        let s = input.size()[1];
        let (nh, l, p) = (self.heads, self.levels, self.points);
        let value = self.value_proj.forward(input).view([b, s, nh, d / nh]);
        let offsets = self.sampling_offsets.forward(query).view([b, q, nh, l, p, 2]);
        let weights = self
            .attention_weights
            .forward(query)
            .view([b, q, nh, l * p])
            .softmax(-1, Kind::Float)
            .view([b, q, nh, l, p]);
        let locations = if reference.size()[3] == 2 {
            // Offsets are in pixels of each level: divide by (w, h).
            let norm: Vec<f32> = shapes.iter().flat_map(|(h, w)| [*w as f32, *h as f32]).collect();
            let norm = Tensor::from_slice(&norm).view([1, 1, 1, l, 1, 2]).to_device(query.device());
            reference.view([b, q, 1, l, 1, 2]) + offsets / norm
        } else {
            let centre = reference.narrow(3, 0, 2).view([b, q, 1, l, 1, 2]);
            let size = reference.narrow(3, 2, 2).view([b, q, 1, l, 1, 2]);
            centre + offsets / p as f64 * size * 0.5
        };
        self.output_proj.forward(&ms_deform_attn(&value, shapes, &locations, &weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn grid_sample_version_equals_direct_computation() {
        tch::manual_seed(3);
        let shapes: Shapes = vec![(5, 7), (3, 4), (2, 2), (1, 1)];
        let (b, q, nh, dh, p) = (2usize, 6usize, 3usize, 4usize, 3usize);
        let l = shapes.len();
        let s: i64 = shapes.iter().map(|(h, w)| h * w).sum();
        let value = Tensor::randn([b as i64, s, nh as i64, dh as i64], (Kind::Float, Device::Cpu));
        // Locations deliberately also outside [0, 1] (zero padding) and on the border.
        let locations =
            Tensor::rand([b as i64, q as i64, nh as i64, l as i64, p as i64, 2], (Kind::Float, Device::Cpu)) * 1.4
                - 0.2;
        let weights = Tensor::rand([b as i64, q as i64, nh as i64, (l * p) as i64], (Kind::Float, Device::Cpu))
            .softmax(-1, Kind::Float)
            .view([b as i64, q as i64, nh as i64, l as i64, p as i64]);
        let fast = ms_deform_attn(&value, &shapes, &locations, &weights);
        assert_eq!(fast.size(), [b as i64, q as i64, (nh * dh) as i64]);
        let flat = |t: &Tensor| Vec::<f32>::try_from(&t.contiguous().flatten(0, -1)).unwrap();
        let slow = ms_deform_attn_direct(&flat(&value), &shapes, &flat(&locations), &flat(&weights), b, q, nh, dh, p);
        let fast = flat(&fast);
        let worst = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        assert!(slow.iter().any(|v| v.abs() > 0.1), "the test must sample non-zero values");
    }

    #[test]
    fn module_shapes_and_gradients() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = MsDeformAttn::new(&vs.root(), 16, 4, 2, 2);
        let shapes: Shapes = vec![(4, 4), (2, 2)];
        let input = Tensor::randn([2, 20, 16], (Kind::Float, Device::Cpu));
        let query = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
        for refdim in [2i64, 4] {
            let reference = Tensor::rand([2, 5, 2, refdim], (Kind::Float, Device::Cpu));
            let out = m.forward(&query, &reference, &input, &shapes);
            assert_eq!(out.size(), [2, 5, 16]);
            out.sum(Kind::Float).backward();
        }
        for (name, t) in vs.variables() {
            assert!(t.grad().defined(), "{name} received no gradient");
        }
    }
}
