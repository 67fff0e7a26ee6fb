#!/usr/bin/env python3
"""Generate the reference fixtures that fx's Rust tests compare against.

Everything here comes from the independent reference libraries (timm for the
Swin Transformer, scikit-learn for ROC AUC), never from fx's own code.

Produces (under fixtures/, relative to the repository root):

  fixtures/swin/config.json                  model hyper-parameters, per-stage effective window/shift,
                                             resolutions/channels, parameter counts, provenance
  fixtures/swin/weights_timm_new.safetensors state_dict in the current timm (>= 0.9) layout:
                                             downsample at the START of stage i (i >= 1), head.fc.*
  fixtures/swin/weights_timm_old.safetensors the same tensors in the old timm <= 0.6 / Ark / Microsoft layout:
                                             downsample at the END of stage i-1, head.*
  fixtures/swin/io.safetensors               input (2,3,64,64); patch_embed, stage0..stage3 (NHWC outputs of
                                             model.patch_embed / model.layers[i]); norm (final LayerNorm, NHWC);
                                             pooled (2,128); logits (2,5)
  fixtures/auc/cases.json                    ROC-AUC cases with per-class sklearn.metrics.roc_auc_score values

The Swin weights are NOT timm's init: every parameter is overwritten, seeded, with values of a clearly
non-trivial scale (relative-position tables ~N(0,1), LayerNorm weight 1+N(0,0.2) / bias N(0,0.2),
Linear/Conv weights N(0,1/fan_in), biases N(0,0.1)) so that wrong bias indexing, shift masks,
patch-merging order or LayerNorm placement give large output differences. No pretrained weights are
downloaded.

Committed fixtures were produced with: torch 2.11.0 (CPU, 1 thread), timm 1.0.31, torchvision 0.26.0,
scikit-learn 1.9.1, numpy 2.4.6, safetensors 0.8.0 (config.json records the versions actually used).

Rerun with `make fixtures` (or `python3 scripts/make_fixtures.py`). The script is deterministic and
idempotent: it overwrites the files above and self-checks them (reloads the weights into fresh timm
models, including through timm's own old->new checkpoint converter, and reproduces the outputs exactly).
"""
import os

# Single-threaded and deterministic; must be set before torch / numpy are imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["TIMM_FUSED_ATTN"] = "0"  # timm's explicit (non-SDPA) attention path; mathematically the same

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import sklearn
import timm
import safetensors
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score
from timm.models import swin_transformer as swin_mod
from timm.models.swin_transformer import SwinTransformer, PatchMerging

try:
    import torchvision
    TORCHVISION_VERSION = torchvision.__version__
except Exception:  # torchvision is only a transitive dependency of timm
    TORCHVISION_VERSION = None

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"

SWIN_CFG = dict(
    img_size=64, patch_size=4, in_chans=3, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
    window_size=4, mlp_ratio=4.0, qkv_bias=True, num_classes=5, drop_path_rate=0.0,
)
# Non-persistent buffers that our code recomputes. timm >= 1.0 does not even put them in state_dict(),
# but old (<= 0.6 / Ark / Microsoft) checkpoints contain them and a loader must skip them.
DROP_PATTERNS = ("relative_position_index", "attn_mask")


def build_swin(seed: int) -> SwinTransformer:
    torch.manual_seed(seed)
    return SwinTransformer(**SWIN_CFG).eval()


@torch.no_grad()
def scramble_params(model: nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded values of non-trivial scale."""
    g = torch.Generator().manual_seed(seed)

    def randn(t):
        return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)

    done = set()
    for mname, m in model.named_modules():
        pre = f"{mname}." if mname else ""
        if isinstance(m, nn.LayerNorm):
            m.weight.copy_(1.0 + 0.2 * randn(m.weight))
            m.bias.copy_(0.2 * randn(m.bias))
            done |= {pre + "weight", pre + "bias"}
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(randn(m.weight) / fan_in ** 0.5)
            done.add(pre + "weight")
            if m.bias is not None:
                m.bias.copy_(0.1 * randn(m.bias))
                done.add(pre + "bias")
        elif isinstance(m, swin_mod.WindowAttention):
            m.relative_position_bias_table.copy_(randn(m.relative_position_bias_table))
            done.add(pre + "relative_position_bias_table")
    missing = {n for n, _ in model.named_parameters()} - done
    assert not missing, f"parameters not overwritten: {sorted(missing)}"


@torch.no_grad()
def run_swin(model: SwinTransformer, x: torch.Tensor) -> dict:
    out = {}
    h = model.patch_embed(x)
    out["patch_embed"] = h
    for i, layer in enumerate(model.layers):
        h = layer(h)
        out[f"stage{i}"] = h
    feats = model.norm(h)
    out["norm"] = feats
    out["pooled"] = model.forward_head(feats, pre_logits=True)
    out["logits"] = model.forward_head(feats)
    # the staged run must be exactly what the public entry points produce
    assert torch.equal(out["logits"], model(x))
    assert torch.equal(out["pooled"], model.forward_head(model.forward_features(x), pre_logits=True))
    return out


def to_old_key(k: str) -> str:
    k = re.sub(r"^layers\.(\d+)\.downsample\.", lambda mo: f"layers.{int(mo.group(1)) - 1}.downsample.", k)
    if k.startswith("head.fc."):
        k = "head." + k[len("head.fc."):]
    return k


def old_patch_merging(pm: PatchMerging, x: torch.Tensor) -> torch.Tensor:
    """PatchMerging as in timm <= 0.6 / the Microsoft original (token input, explicit strided concat)."""
    x0 = x[:, 0::2, 0::2, :]
    x1 = x[:, 1::2, 0::2, :]
    x2 = x[:, 0::2, 1::2, :]
    x3 = x[:, 1::2, 1::2, :]
    B, H2, W2, _ = x0.shape
    xc = torch.cat([x0, x1, x2, x3], -1).view(B, H2 * W2, -1)
    return pm.reduction(pm.norm(xc)).view(B, H2, W2, -1)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


@torch.no_grad()
def sensitivity(model: SwinTransformer, x: torch.Tensor, ref: dict) -> dict:
    """Max abs diff that plausible porting bugs cause in each stage output and the logits (documents that the fixture catches them)."""
    res = {}

    def logits_of(m):
        out = run_swin(m, x)
        return {k: round(max_abs(out[k], ref[k]), 6) for k in ("stage0", "stage1", "stage2", "stage3", "logits")}

    # 1. shift mask ignored
    m = copy.deepcopy(model)
    for layer in m.layers:
        for blk in layer.blocks:
            blk.attn_mask = None
    res["no_shift_mask"] = logits_of(m)
    # 2. relative position index transposed (bias[i,j] <-> bias[j,i])
    m = copy.deepcopy(model)
    for layer in m.layers:
        for blk in layer.blocks:
            blk.attn.relative_position_index = blk.attn.relative_position_index.t().contiguous()
    res["rel_pos_index_transposed"] = logits_of(m)
    # 3. patch-merging concat order x0,x2,x1,x3 (row/col swapped)
    m = copy.deepcopy(model)
    for layer in m.layers[1:]:
        pm = layer.downsample

        def fwd(h, pm=pm):
            B, H, W, C = h.shape
            h = h.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).flatten(3)
            return pm.reduction(pm.norm(h))
        pm.forward = fwd
    res["merge_order_swapped"] = logits_of(m)
    # 4. tanh-approximate GELU instead of exact erf GELU
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.GELU):
            mod.approximate = "tanh"
    res["gelu_tanh"] = logits_of(m)
    # 5. LayerNorm eps 1e-6 instead of 1e-5
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.eps = 1e-6
    res["layernorm_eps_1e-6"] = logits_of(m)
    # 6. attention mask -inf instead of -100 (should be ~0: exp(-100) underflows next to O(1) logits)
    m = copy.deepcopy(model)
    for layer in m.layers:
        for blk in layer.blocks:
            if blk.attn_mask is not None:
                blk.attn_mask = blk.attn_mask.masked_fill(blk.attn_mask != 0, float("-inf"))
    res["mask_minus_inf"] = logits_of(m)
    return {k: {kk: float(f"{vv:.3g}") for kk, vv in v.items()} for k, v in res.items()}


def make_swin() -> None:
    out_dir = FIX / "swin"
    out_dir.mkdir(parents=True, exist_ok=True)

    model = build_swin(seed=0)
    scramble_params(model, seed=1)

    g = torch.Generator().manual_seed(2)
    x = torch.randn((2, 3, 64, 64), generator=g, dtype=torch.float32)
    ref = run_swin(model, x)
    for k, v in ref.items():
        assert v.dtype == torch.float32 and torch.isfinite(v).all(), k
    scales = {k: round(v.double().std().item(), 4) for k, v in ref.items()}
    for k in ("stage0", "stage1", "stage2", "stage3", "pooled", "logits"):
        assert 0.1 < scales[k] < 20, f"{k} not O(1): std {scales[k]}"

    # ---- weights, new layout
    full_sd = model.state_dict()
    dropped = sorted(k for k in full_sd if any(p in k for p in DROP_PATTERNS))
    sd = {k: v.detach().clone().contiguous() for k, v in full_sd.items() if k not in dropped}
    assert set(sd) == {n for n, _ in model.named_parameters()}, "state_dict has non-parameter entries"
    save_file(sd, str(out_dir / "weights_timm_new.safetensors"), metadata={"format": "pt"})

    # ---- weights, old layout (pure rename; see merge-order check below)
    old_sd = {to_old_key(k): v for k, v in sd.items()}
    assert len(old_sd) == len(sd)
    save_file(old_sd, str(out_dir / "weights_timm_old.safetensors"), metadata={"format": "pt"})

    # ---- io
    io = {"input": x}
    io.update(ref)
    io = {k: v.detach().contiguous() for k, v in io.items()}
    save_file(io, str(out_dir / "io.safetensors"), metadata={"format": "pt"})

    # ---- merge-order check: old strided concat == new reshape/permute, on the real stage outputs
    merge_diffs = []
    with torch.no_grad():
        for i in range(1, len(model.layers)):
            pm = model.layers[i].downsample
            h = ref[f"stage{i - 1}"]
            merge_diffs.append(max_abs(pm(h), old_patch_merging(pm, h)))
    merge_order_compatible = all(d == 0.0 for d in merge_diffs)
    assert merge_order_compatible, merge_diffs

    # ---- self-check 1: fresh model, strict load of the new-layout file
    fresh = build_swin(seed=123)
    missing, unexpected = fresh.load_state_dict(load_file(str(out_dir / "weights_timm_new.safetensors")), strict=True)
    assert not missing and not unexpected
    io_back = load_file(str(out_dir / "io.safetensors"))
    got = run_swin(fresh, io_back["input"])
    for k in io_back:
        if k != "input":
            d = max_abs(got[k], io_back[k])
            assert d == 0.0, f"new-layout reload mismatch on {k}: {d}"
    # ---- self-check 2: old-layout file through timm's own old->new converter (checkpoint_filter_fn)
    fresh_old = build_swin(seed=456)
    old_loaded = load_file(str(out_dir / "weights_timm_old.safetensors"))
    assert "layers.0.downsample.reduction.weight" in old_loaded and "head.weight" in old_loaded
    assert "layers.3.downsample.reduction.weight" not in old_loaded
    converted = swin_mod.checkpoint_filter_fn(old_loaded, fresh_old)
    fresh_old.load_state_dict(converted, strict=True)
    got_old = run_swin(fresh_old, io_back["input"])
    assert max_abs(got_old["logits"], io_back["logits"]) == 0.0
    assert max_abs(got_old["pooled"], io_back["pooled"]) == 0.0

    sens = sensitivity(model, x, ref)

    # ---- config
    stages = []
    res = model.patch_embed.grid_size
    for i, layer in enumerate(model.layers):
        blk_info = []
        for blk in layer.blocks:
            blk_info.append(dict(window_size=list(blk.window_size), shift_size=list(blk.shift_size),
                                 rel_pos_table_shape=list(blk.attn.relative_position_bias_table.shape),
                                 num_windows_per_image=int((layer.output_resolution[0] // blk.window_size[0])
                                                           * (layer.output_resolution[1] // blk.window_size[1]))))
        stages.append(dict(
            stage=i,
            input_resolution=list(layer.input_resolution),
            resolution=list(layer.output_resolution),
            in_channels=int(layer.dim),
            channels=int(layer.blocks[0].dim),
            num_heads=SWIN_CFG["num_heads"][i],
            head_dim=int(layer.blocks[0].dim) // SWIN_CFG["num_heads"][i],
            has_downsample=not isinstance(layer.downsample, nn.Identity),
            effective_window_size=blk_info[0]["window_size"][0],
            effective_shift_size=max(b["shift_size"][0] for b in blk_info),
            blocks=blk_info,
        ))
    n_total = sum(p.numel() for p in model.parameters())
    n_head = sum(p.numel() for p in model.head.parameters())
    cfg = dict(
        description="timm SwinTransformer with non-trivial seeded weights; see scripts/make_fixtures.py",
        img_size=SWIN_CFG["img_size"],
        patch_size=SWIN_CFG["patch_size"],
        in_chans=SWIN_CFG["in_chans"],
        embed_dim=SWIN_CFG["embed_dim"],
        depths=list(SWIN_CFG["depths"]),
        num_heads=list(SWIN_CFG["num_heads"]),
        window_size=SWIN_CFG["window_size"],
        mlp_ratio=SWIN_CFG["mlp_ratio"],
        qkv_bias=SWIN_CFG["qkv_bias"],
        num_classes=SWIN_CFG["num_classes"],
        num_features=int(model.num_features),
        layer_norm_eps=model.norm.eps,
        gelu="exact (erf), torch.nn.GELU(approximate='none')",
        attn_mask_value=-100.0,
        attention_scale="head_dim ** -0.5, applied to q before q @ k^T",
        timm_fused_attn=bool(model.layers[0].blocks[0].attn.fused_attn),
        stages=stages,
        effective_window_per_stage=[s["effective_window_size"] for s in stages],
        effective_shift_per_stage=[s["effective_shift_size"] for s in stages],
        resolution_per_stage=[s["resolution"][0] for s in stages],
        channels_per_stage=[s["channels"] for s in stages],
        num_params_without_head=n_total - n_head,
        num_params_with_head=n_total,
        num_params_head=n_head,
        num_tensors=len(sd),
        dropped_buffer_patterns=list(DROP_PATTERNS),
        dropped_keys=dropped,
        dropped_note=("timm >= 1.0 registers relative_position_index and attn_mask as non-persistent buffers, so "
                      "state_dict() has none to drop (dropped_keys is empty); old timm <= 0.6 / Ark checkpoints "
                      "do contain them (layers.i.blocks.j.attn.relative_position_index, "
                      "layers.i.blocks.j.attn_mask): a loader must skip them and recompute."),
        merge_order_compatible=merge_order_compatible,
        merge_order_note=("old PatchMerging cat([x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]]) over "
                          "(H,W) == new reshape(B,H/2,2,W/2,2,C).permute(0,1,3,4,2,5).flatten(3); i.e. 4C channel "
                          "index = (2*dw + dh)*C + c. Checked numerically (max abs diff 0 on every downsample); "
                          "weights_timm_old is a pure key rename, no tensor permuted. timm's own "
                          "checkpoint_filter_fn converts old->new by renaming only, and the old file loaded "
                          "through it reproduces the logits exactly."),
        old_layout_rename=("layers.{i}.downsample.* (new, i>=1) -> layers.{i-1}.downsample.* (old); "
                           "head.fc.{weight,bias} -> head.{weight,bias}; all other keys identical"),
        param_init=("timm init (torch.manual_seed(0)) then every parameter overwritten from "
                    "torch.Generator().manual_seed(1) in named_modules order: LayerNorm weight 1+0.2*N, "
                    "bias 0.2*N; Linear/Conv2d weight N/sqrt(fan_in), bias 0.1*N; "
                    "relative_position_bias_table N(0,1)"),
        input_init="torch.randn((2,3,64,64), generator=torch.Generator().manual_seed(2))",
        io_tensors={k: list(v.shape) for k, v in io.items()},
        io_layout=("stage tensors are NHWC exactly as model.layers[i] returns them; patch_embed is NHWC "
                   "after its LayerNorm; norm = model.norm(stage3); pooled = mean over H,W of norm; "
                   "logits = head.fc(pooled)"),
        io_std=scales,
        sensitivity_max_abs_diff=sens,
        versions=dict(torch=torch.__version__, timm=timm.__version__, torchvision=TORCHVISION_VERSION,
                      safetensors=safetensors.__version__, numpy=np.__version__, python=sys.version.split()[0],
                      scikit_learn=sklearn.__version__),
    )
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------
# ROC AUC
# ----------------------------------------------------------------------------------------------------------

def auc_case(name: str, scores: np.ndarray, labels) -> dict:
    """labels: float array with NaN for unknown."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    N, C = scores.shape
    assert labels.shape == (N, C)
    per_class = []
    for c in range(C):
        known = ~np.isnan(labels[:, c])
        y = labels[known, c].astype(np.int64)
        s = scores[known, c]
        if y.size == 0 or y.min() == y.max():
            per_class.append(None)
        else:
            per_class.append(float(roc_auc_score(y, s)))
    valid = [v for v in per_class if v is not None]
    mean = float(np.mean(valid)) if valid else None
    return {
        "name": name,
        "scores": [[float(v) for v in row] for row in scores],
        "labels": [[None if np.isnan(v) else int(v) for v in row] for row in labels],
        "per_class": per_class,
        "mean": mean,
    }


def correlated_labels(rng, scores, strength=1.0):
    """Labels that depend on the scores (AUCs away from 0.5) but are not separable."""
    z = (scores - scores.mean(0)) / (scores.std(0) + 1e-12)
    p = 1.0 / (1.0 + np.exp(-strength * z))
    return (rng.random(scores.shape) < p).astype(np.float64)


def make_auc() -> None:
    out_dir = FIX / "auc"
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    cases = []

    # (a) continuous scores
    s = rng.normal(size=(50, 3))
    cases.append(auc_case("a_continuous_n50_c3", s, correlated_labels(rng, s, 1.5)))

    # (b) heavy ties: scores rounded to 1 decimal
    s = np.round(rng.random((200, 4)), 1)
    cases.append(auc_case("b_heavy_ties_n200_c4", s, correlated_labels(rng, s, 2.0)))

    # (c) one class with all scores equal (AUC 0.5)
    s = rng.normal(size=(30, 2))
    s[:, 1] = 0.25
    y = correlated_labels(rng, s, 1.0)
    y[:3, 1] = [0, 1, 0]  # make sure class 1 has both labels
    cases.append(auc_case("c_constant_scores_n30_c2", s, y))

    # (d) only-negatives class, unknown labels mixed in, only-positives-among-known class, all-unknown class
    s = rng.normal(size=(40, 5))
    y = correlated_labels(rng, s, 1.0)
    y[:, 1] = 0.0                                   # only negatives -> null
    unk = rng.random(40) < 0.3
    y[unk, 2] = np.nan                              # unknown labels, still both classes among known
    y[:2, 2] = [0, 1]
    y[:, 3] = 1.0                                   # only positives among known -> null
    y[rng.random(40) < 0.3, 3] = np.nan
    y[:, 4] = np.nan                                # nothing known -> null
    y[:4, 0] = [0, 1, 0, 1]
    cases.append(auc_case("d_degenerate_and_unknown_n40_c5", s, y))

    # (e) perfect separation (1.0), perfectly inverted (0.0), and a normal class
    s = rng.normal(size=(24, 3))
    y = np.zeros((24, 3))
    y[:, 0] = (s[:, 0] > np.median(s[:, 0])).astype(np.float64)
    y[:, 1] = (s[:, 1] < np.median(s[:, 1])).astype(np.float64)
    y[:, 2] = correlated_labels(rng, s[:, 2:3], 1.0)[:, 0]
    y[:2, 2] = [0, 1]
    cases.append(auc_case("e_perfect_and_inverted_n24_c3", s, y))

    # (f) large, float32-representable scores with ~10% ties
    s = rng.normal(size=(1000, 5)).astype(np.float32)
    for c in range(5):
        dup = rng.random(1000) < 0.10
        src = rng.integers(0, 1000, size=int(dup.sum()))
        s[dup, c] = s[src, c]
    s = s.astype(np.float64)
    assert np.array_equal(s.astype(np.float32).astype(np.float64), s)
    cases.append(auc_case("f_float32_ties_n1000_c5", s, correlated_labels(rng, s, 1.0)))

    # self-checks of the expectations stated in the brief
    by = {c["name"]: c for c in cases}
    assert by["c_constant_scores_n30_c2"]["per_class"][1] == 0.5
    pc = by["d_degenerate_and_unknown_n40_c5"]["per_class"]
    assert pc[1] is None and pc[3] is None and pc[4] is None and pc[0] is not None and pc[2] is not None
    pe = by["e_perfect_and_inverted_n24_c3"]["per_class"]
    assert pe[0] == 1.0 and pe[1] == 0.0
    for c in cases:
        assert c["mean"] is not None
        # ties actually present where promised
    tie_frac = [1 - len(np.unique(np.array(by["f_float32_ties_n1000_c5"]["scores"])[:, j])) / 1000 for j in range(5)]
    assert all(0.05 < t < 0.2 for t in tie_frac), tie_frac

    # top level is a plain list of cases (the versions that made it are in fixtures/swin/config.json);
    # one matrix row per line keeps the file small and diffable
    def rows(m):
        return "[\n" + ",\n".join("    " + json.dumps(r) for r in m) + "\n   ]"

    text = "[\n" + ",\n".join(
        "  {\n"
        f'   "name": {json.dumps(c["name"])},\n'
        f'   "scores": {rows(c["scores"])},\n'
        f'   "labels": {rows(c["labels"])},\n'
        f'   "per_class": {json.dumps(c["per_class"])},\n'
        f'   "mean": {json.dumps(c["mean"])}\n'
        "  }" for c in cases) + "\n]\n"
    assert json.loads(text) == cases
    (out_dir / "cases.json").write_text(text)


def main() -> None:
    make_swin()
    make_auc()
    total = 0
    for p in sorted(FIX.rglob("*")):
        if p.is_file():
            n = p.stat().st_size
            total += n
            print(f"{n:>10,d}  {p.relative_to(ROOT)}")
    print(f"{total:>10,d}  total")


if __name__ == "__main__":
    main()
