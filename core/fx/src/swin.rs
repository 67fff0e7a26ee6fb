//! Swin Transformer backbone (Liu et al. 2021) in tch, with timm-compatible parameter names.
//!
//! Parameter names follow timm ≥ 0.9 (`layers.{i}.downsample` at the START of stage i ≥ 1); weights
//! in the old timm ≤ 0.6 / Ark layout (downsample at the END of stage i) are renamed on load, see
//! [`load_timm_weights`]. Buffers that timm may store (`relative_position_index`, `attn_mask`) are
//! recomputed here, never loaded.

use crate::recompute;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// Architecture of a Swin backbone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwinConfig {
    pub img_size: i64,
    pub patch_size: i64,
    pub in_chans: i64,
    pub embed_dim: i64,
    pub depths: Vec<i64>,
    pub num_heads: Vec<i64>,
    pub window_size: i64,
    pub mlp_ratio: f64,
    pub drop_path_rate: f64,
}

impl SwinConfig {
    /// The named architectures: timm's three ImageNet sizes plus a ~1 M-parameter test size.
    pub fn named(arch: &str, img_size: i64) -> Result<SwinConfig> {
        let (embed_dim, depths, num_heads, window_size) = match arch {
            "swin_base" => (128, vec![2, 2, 18, 2], vec![4, 8, 16, 32], 7),
            "swin_small" => (96, vec![2, 2, 18, 2], vec![3, 6, 12, 24], 7),
            "swin_tiny" => (96, vec![2, 2, 6, 2], vec![3, 6, 12, 24], 7),
            // Test size: ~1.2 M parameters, head dim 24 like the big ones' 32, window 4 so 64 px
            // inputs still exercise shifted windows in stages 1 and 2.
            "swin_test" => (24, vec![2, 2, 2, 2], vec![1, 2, 4, 8], 4),
            // Smallest useful size for unit tests; the same shape as the committed timm fixture.
            "swin_nano" => (16, vec![2, 2, 2, 2], vec![1, 2, 4, 8], 4),
            other => bail!("unknown Swin architecture `{other}`; expected one of {}", Self::ARCHS.join(", ")),
        };
        Ok(SwinConfig {
            img_size,
            patch_size: 4,
            in_chans: 3,
            embed_dim,
            depths,
            num_heads,
            window_size,
            mlp_ratio: 4.0,
            drop_path_rate: if arch == "swin_base" { 0.2 } else { 0.1 },
        })
    }

    pub const ARCHS: [&'static str; 5] = ["swin_base", "swin_small", "swin_tiny", "swin_test", "swin_nano"];

    pub fn num_stages(&self) -> usize {
        self.depths.len()
    }

    /// Channels of stage i's output.
    pub fn stage_dim(&self, i: usize) -> i64 {
        self.embed_dim << i
    }

    pub fn num_features(&self) -> i64 {
        self.stage_dim(self.num_stages() - 1)
    }

    /// Token grid side of stage i.
    pub fn stage_resolution(&self, i: usize) -> i64 {
        (self.img_size / self.patch_size) >> i
    }

    /// timm's rule: a window never exceeds the stage's resolution, and a stage whose resolution
    /// fits in one window does not shift.
    pub fn window_and_shift(&self, i: usize) -> (i64, i64) {
        let res = self.stage_resolution(i);
        if res <= self.window_size {
            (res, 0)
        } else {
            (self.window_size, self.window_size / 2)
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.depths.len() != self.num_heads.len() || self.depths.is_empty() {
            bail!("depths and num_heads must be non-empty and of equal length");
        }
        let reduction = self.patch_size << (self.num_stages() - 1);
        if self.img_size % reduction != 0 {
            bail!(
                "image size {} must be a multiple of {} (patch {} × 2^{} merges)",
                self.img_size,
                reduction,
                self.patch_size,
                self.num_stages() - 1
            );
        }
        for i in 0..self.num_stages() {
            let (w, _) = self.window_and_shift(i);
            let res = self.stage_resolution(i);
            if res % w != 0 {
                bail!(
                    "stage {i} resolution {res} is not a multiple of the window size {w}; choose an image size \
                     whose stage resolutions ({}) divide by the window",
                    (0..self.num_stages()).map(|j| self.stage_resolution(j).to_string()).collect::<Vec<_>>().join("/")
                );
            }
            if self.stage_dim(i) % self.num_heads[i] != 0 {
                bail!("stage {i}: {} channels do not divide into {} heads", self.stage_dim(i), self.num_heads[i]);
            }
        }
        Ok(())
    }
}

/// Features of one forward pass.
pub struct SwinFeatures {
    /// Each stage's output, NHWC, before the final LayerNorm.
    pub stages: Vec<Tensor>,
    /// LayerNorm'd last stage averaged over H and W: the classification (and consistency) feature.
    pub pooled: Tensor,
}

impl SwinFeatures {
    /// The features of the first `n` images of the batch (views, no copy).
    pub fn first(&self, n: i64) -> SwinFeatures {
        SwinFeatures {
            stages: self.stages.iter().map(|s| s.narrow(0, 0, n)).collect(),
            pooled: self.pooled.narrow(0, 0, n),
        }
    }
}

fn drop_path(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let keep = 1.0 - p;
    let mut shape = vec![x.size()[0]];
    shape.extend(std::iter::repeat_n(1, x.dim() - 1));
    // Per-sample Bernoulli on the device: no host round trip.
    let mask = (Tensor::rand(shape.as_slice(), (x.kind(), x.device())) + keep).floor();
    x * mask / keep
}

struct WindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    rel_table: Tensor,
    rel_index: Tensor,
    num_heads: i64,
    scale: f64,
}

/// timm's relative position index: for tokens i=(hi,wi), j=(hj,wj) of a w×w window,
/// (hi-hj+w-1)·(2w-1) + (wi-wj+w-1).
pub fn relative_position_index(w: i64) -> Vec<i64> {
    let n = w * w;
    let mut idx = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let (hi, wi) = (i / w, i % w);
            let (hj, wj) = (j / w, j % w);
            idx.push((hi - hj + w - 1) * (2 * w - 1) + (wi - wj + w - 1));
        }
    }
    idx
}

impl WindowAttention {
    fn new(p: nn::Path, dim: i64, num_heads: i64, window: i64) -> Self {
        let qkv = nn::linear(&p / "qkv", dim, 3 * dim, Default::default());
        let proj = nn::linear(&p / "proj", dim, dim, Default::default());
        let rel_table = p.var(
            "relative_position_bias_table",
            &[(2 * window - 1) * (2 * window - 1), num_heads],
            nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        );
        let rel_index = Tensor::from_slice(&relative_position_index(window)).to_device(p.device());
        WindowAttention { qkv, proj, rel_table, rel_index, num_heads, scale: ((dim / num_heads) as f64).powf(-0.5) }
    }

    /// x: (B·nW, N, C); mask: (nW, N, N) additive, or None.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (bw, n, c) = x.size3().unwrap();
        let qkv = self.qkv.forward(x).reshape([bw, n, 3, self.num_heads, c / self.num_heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0) * self.scale, qkv.get(1), qkv.get(2));
        let bias = self.rel_table.index_select(0, &self.rel_index).view([n, n, self.num_heads]).permute([2, 0, 1]);
        let mut attn = q.matmul(&k.transpose(-2, -1)) + bias.unsqueeze(0);
        if let Some(mask) = mask {
            let nw = mask.size()[0];
            attn = (attn.view([bw / nw, nw, self.num_heads, n, n]) + mask.unsqueeze(1).unsqueeze(0)).view([
                bw,
                self.num_heads,
                n,
                n,
            ]);
        }
        let out = attn.softmax(-1, attn.kind()).matmul(&v).transpose(1, 2).reshape([bw, n, c]);
        self.proj.forward(&out)
    }
}

/// (B, H, W, C) → (B·nW, w, w, C), windows in row-major order per image.
fn window_partition(x: &Tensor, w: i64) -> Tensor {
    let (b, h, wd, c) = x.size4().unwrap();
    x.view([b, h / w, w, wd / w, w, c]).permute([0, 1, 3, 2, 4, 5]).reshape([-1, w, w, c])
}

fn window_reverse(windows: &Tensor, w: i64, h: i64, wd: i64) -> Tensor {
    let c = *windows.size().last().unwrap();
    let b = windows.size()[0] / ((h / w) * (wd / w));
    windows.view([b, h / w, wd / w, w, w, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b, h, wd, c])
}

/// The shifted-window attention mask of timm: tokens that come from different regions of the
/// rolled image must not attend to each other (−100 before the softmax).
pub fn shifted_window_mask(res: i64, w: i64, shift: i64) -> Vec<f32> {
    let r = res as usize;
    let region = |i: usize| -> usize {
        if i < r - w as usize {
            0
        } else if i < r - shift as usize {
            1
        } else {
            2
        }
    };
    let mut img = vec![0usize; r * r];
    for y in 0..r {
        for x in 0..r {
            img[y * r + x] = region(y) * 3 + region(x);
        }
    }
    let (w, nwin) = (w as usize, r / w as usize);
    let n = w * w;
    let mut mask = Vec::with_capacity(nwin * nwin * n * n);
    for wy in 0..nwin {
        for wx in 0..nwin {
            let ids: Vec<usize> = (0..n).map(|t| img[(wy * w + t / w) * r + wx * w + t % w]).collect();
            for i in 0..n {
                for j in 0..n {
                    mask.push(if ids[i] == ids[j] { 0.0 } else { -100.0 });
                }
            }
        }
    }
    mask
}

struct Block {
    norm1: nn::LayerNorm,
    attn: WindowAttention,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    window: i64,
    shift: i64,
    mask: Option<Tensor>,
    drop_path: f64,
}

impl recompute::Params for Block {
    fn params(&self) -> Vec<Tensor> {
        let mut p = self.norm1.params();
        p.extend(self.attn.qkv.params());
        p.extend(self.attn.proj.params());
        p.push(self.attn.rel_table.shallow_clone());
        p.extend(self.norm2.params());
        p.extend(self.fc1.params());
        p.extend(self.fc2.params());
        p
    }
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        dim: i64,
        heads: i64,
        res: i64,
        window: i64,
        shift: i64,
        mlp_ratio: f64,
        drop_path: f64,
    ) -> Self {
        let hidden = (dim as f64 * mlp_ratio) as i64;
        let mask = (shift > 0).then(|| {
            let nw = (res / window) * (res / window);
            let n = window * window;
            Tensor::from_slice(&shifted_window_mask(res, window, shift)).view([nw, n, n]).to_device(p.device())
        });
        Block {
            norm1: nn::layer_norm(&p / "norm1", vec![dim], Default::default()),
            attn: WindowAttention::new(&p / "attn", dim, heads, window),
            norm2: nn::layer_norm(&p / "norm2", vec![dim], Default::default()),
            fc1: nn::linear(&p / "mlp" / "fc1", dim, hidden, Default::default()),
            fc2: nn::linear(&p / "mlp" / "fc2", hidden, dim, Default::default()),
            window,
            shift,
            mask,
            drop_path,
        }
    }

    /// x: (B, H, W, C).
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let (b, h, w, c) = x.size4().unwrap();
        let mut y = self.norm1.forward(x);
        if self.shift > 0 {
            y = y.roll([-self.shift, -self.shift], [1, 2]);
        }
        let win = window_partition(&y, self.window).view([-1, self.window * self.window, c]);
        let att = self.attn.forward(&win, self.mask.as_ref()).view([-1, self.window, self.window, c]);
        let mut y = window_reverse(&att, self.window, h, w);
        if self.shift > 0 {
            y = y.roll([self.shift, self.shift], [1, 2]);
        }
        let x = x + drop_path(&y, self.drop_path, train);
        let m = self.fc2.forward(&self.fc1.forward(&self.norm2.forward(&x)).gelu("none"));
        let x = x + drop_path(&m, self.drop_path, train);
        x.view([b, h, w, c])
    }
}

/// timm ≥ 0.9 PatchMerging: 2×2 neighbourhoods concatenated in (w-offset, h-offset) order — the same
/// order as timm ≤ 0.6's x0,x1,x2,x3 — then LayerNorm(4C) and a bias-free Linear(4C → 2C).
struct PatchMerging {
    norm: nn::LayerNorm,
    reduction: nn::Linear,
}

impl PatchMerging {
    fn new(p: nn::Path, dim: i64) -> Self {
        PatchMerging {
            norm: nn::layer_norm(&p / "norm", vec![4 * dim], Default::default()),
            reduction: nn::linear(
                &p / "reduction",
                4 * dim,
                2 * dim,
                nn::LinearConfig { bias: false, ..Default::default() },
            ),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, h, w, c) = x.size4().unwrap();
        let x = x.reshape([b, h / 2, 2, w / 2, 2, c]).permute([0, 1, 3, 4, 2, 5]).flatten(3, -1);
        self.reduction.forward(&self.norm.forward(&x))
    }
}

struct Stage {
    downsample: Option<PatchMerging>,
    /// Shared (Arc) so that a checkpointed block can be recomputed in the backward.
    blocks: Vec<Arc<Block>>,
}

/// The backbone. Built under a VarStore path (fx uses `backbone`).
pub struct Swin {
    pub config: SwinConfig,
    patch_proj: nn::Conv2D,
    patch_norm: nn::LayerNorm,
    stages: Vec<Stage>,
    norm: nn::LayerNorm,
    /// `train.activation_checkpointing`: training forwards recompute each block in the backward.
    pub activation_checkpointing: bool,
}

impl Swin {
    pub fn new(p: &nn::Path, config: &SwinConfig) -> Result<Swin> {
        config.validate()?;
        let c = config;
        let patch_proj = nn::conv2d(
            p / "patch_embed" / "proj",
            c.in_chans,
            c.embed_dim,
            c.patch_size,
            nn::ConvConfig { stride: c.patch_size, ..Default::default() },
        );
        let patch_norm = nn::layer_norm(p / "patch_embed" / "norm", vec![c.embed_dim], Default::default());
        let total: i64 = c.depths.iter().sum();
        let mut k = 0;
        let mut stages = Vec::new();
        for i in 0..c.num_stages() {
            let sp = p / "layers" / i;
            let dim = c.stage_dim(i);
            let downsample = (i > 0).then(|| PatchMerging::new(&sp / "downsample", c.stage_dim(i - 1)));
            let (window, shift) = c.window_and_shift(i);
            let res = c.stage_resolution(i);
            let mut blocks = Vec::new();
            for j in 0..c.depths[i] {
                // timm: stochastic depth rate grows linearly over all blocks.
                let dp = if total > 1 { c.drop_path_rate * k as f64 / (total - 1) as f64 } else { 0.0 };
                let sh = if j % 2 == 1 { shift } else { 0 };
                blocks.push(recompute::module(Block::new(
                    &sp / "blocks" / j,
                    dim,
                    c.num_heads[i],
                    res,
                    window,
                    sh,
                    c.mlp_ratio,
                    dp,
                )));
                k += 1;
            }
            stages.push(Stage { downsample, blocks });
        }
        let norm = nn::layer_norm(p / "norm", vec![c.num_features()], Default::default());
        Ok(Swin { config: config.clone(), patch_proj, patch_norm, stages, norm, activation_checkpointing: false })
    }

    /// x: (B, in_chans, H, W), already normalised.
    pub fn forward(&self, x: &Tensor, train: bool) -> SwinFeatures {
        let mut x = self.patch_norm.forward(&self.patch_proj.forward(x).permute([0, 2, 3, 1]));
        let mut stages = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            if let Some(ds) = &stage.downsample {
                x = ds.forward(&x);
            }
            for block in &stage.blocks {
                x = if train && self.activation_checkpointing {
                    recompute::segment(block, &[&x], move |b, xs| vec![b.forward(&xs[0], train)]).swap_remove(0)
                } else {
                    block.forward(&x, train)
                };
            }
            stages.push(x.shallow_clone());
        }
        let pooled = self.norm.forward(&x).mean_dim([1i64, 2].as_slice(), false, x.kind());
        SwinFeatures { stages, pooled }
    }
}

/// What loading a timm state dict found.
#[derive(Debug, Default, Serialize)]
pub struct LoadReport {
    pub layout: String,
    pub loaded: usize,
    /// Backbone parameters the file lacks (they keep their initial values).
    pub missing: Vec<String>,
    /// File entries that are not backbone parameters (classifier heads, other models' keys).
    pub unexpected: Vec<String>,
    /// Buffers we recompute rather than load.
    pub ignored_buffers: Vec<String>,
}

/// Renames one key of the old timm ≤ 0.6 / Ark layout to the current one:
/// `layers.{i}.downsample.*` (end of stage i) → `layers.{i+1}.downsample.*` (start of stage i+1).
fn old_to_new_key(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("layers.") {
        if let Some((i, tail)) = rest.split_once('.') {
            if tail.starts_with("downsample.") {
                if let Ok(i) = i.parse::<usize>() {
                    return format!("layers.{}.{}", i + 1, tail);
                }
            }
        }
    }
    key.to_string()
}

/// Detects the layout of a timm Swin state dict: old files have a downsample in stage 0.
pub fn detect_layout(keys: &BTreeSet<String>) -> &'static str {
    if keys.iter().any(|k| k.starts_with("layers.0.downsample.")) {
        "timm<=0.6 (downsample at the end of a stage, Ark)"
    } else {
        "timm>=0.9 (downsample at the start of a stage)"
    }
}

/// Reads a safetensors state dict as (name → tensor), stripping common wrappers (`module.`, `model.`,
/// `backbone.`, `state_dict.`) so that checkpoints saved from DataParallel/Ark load too.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let entries = Tensor::read_safetensors(path)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, t) in entries {
        let mut key = name.as_str();
        for prefix in ["module.", "state_dict.", "model.", "backbone."] {
            if let Some(k) = key.strip_prefix(prefix) {
                key = k;
            }
        }
        out.insert(key.to_string(), t);
    }
    Ok(out)
}

/// Loads timm/Ark Swin weights (either layout) into the backbone variables under `prefix` of `vs`.
/// Shape mismatches are errors naming the key and both shapes.
pub fn load_timm_weights(vs: &nn::VarStore, prefix: &str, path: &Path) -> Result<LoadReport> {
    let raw = read_state_dict(path)?;
    let keys: BTreeSet<String> = raw.keys().cloned().collect();
    let layout = detect_layout(&keys);
    let old = layout.starts_with("timm<=0.6");
    let mut report = LoadReport { layout: layout.to_string(), ..Default::default() };
    let mut file: BTreeMap<String, Tensor> = BTreeMap::new();
    for (k, t) in raw {
        if k.ends_with("relative_position_index") || k.ends_with("attn_mask") {
            report.ignored_buffers.push(k);
            continue;
        }
        let k = if old { old_to_new_key(&k) } else { k };
        file.insert(k, t);
    }
    let vars = vs.variables();
    let want: BTreeMap<String, Tensor> = vars
        .into_iter()
        .filter_map(|(name, t)| name.strip_prefix(&format!("{prefix}.")).map(|k| (k.to_string(), t)))
        .collect();
    tch::no_grad(|| -> Result<()> {
        for (k, var) in &want {
            match file.get(k) {
                Some(src) => {
                    if src.size() != var.size() {
                        bail!(
                            "{}: `{k}` has shape {:?} in the file but the model expects {:?} (is the architecture right?)",
                            path.display(),
                            src.size(),
                            var.size()
                        );
                    }
                    var.shallow_clone().copy_(&src.to_kind(var.kind()));
                    report.loaded += 1;
                }
                None => report.missing.push(k.clone()),
            }
        }
        Ok(())
    })?;
    // An fx model file (export-model) also holds its branches and heads under `fx.`: not part of a backbone.
    report.unexpected = file.keys().filter(|k| !want.contains_key(*k) && !k.starts_with("fx.")).cloned().collect();
    Ok(report)
}

/// Number of elements of every variable under a name prefix ("" = all).
pub fn count_params(vs: &nn::VarStore, prefix: &str) -> i64 {
    vs.variables().iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, t)| t.numel() as i64).sum()
}

/// Convenience for callers that want a default device string.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Kind used for all model weights.
pub const KIND: Kind = Kind::Float;
