#!/usr/bin/env python3
"""Miniature copy of VinDr-RibCXR for the `vindr-ribcxr` plugin, with reference labels.

Deletes and recreates fixtures/datasets/vindr-ribcxr (relative to the repository root) as the
release is laid out (the `data/` folder of the download, README of
github.com/vinbigdata-medical/MIDL2021-VinDr-RibCXR):

    train/img/VinDr_RibCXR_train_000.png ...   8-bit grayscale PNG radiographs
    train/Vindr_RibCXR_train_mask.json         pandas "columns" JSON: {"img": {"0": "data/train/img/
                                               VinDr_RibCXR_train_000.png", ...}, "R1": {"0": [{"x":
                                               1027.81, "y": 470.69}, ...], ...}, ..., "L10": {...}}
                                               — one polygon per rib (R1..R10, L1..L10) and image,
                                               the string "None" where a rib is not annotated
    val/img/VinDr_RibCXR_val_000.png ...
    val/Vindr_RibCXR_val_mask.json
    expected.jsonl                             what the plugin must read with its default options

The release has 245 images: 196 in train/ and 49 in val/, which the paper (and Foundation X,
Table 1: 196 / - / 49) uses as the test split. So: train/ → "train", val/ → "test".

Reference semantics (computed here independently of fx): seg labels R1..R10, L1..L10 in that order;
a rib's mask is its polygon filled by the pixel-centre rule of fx's rasterizer (pixel (x, y) covers
[x, x+1) × [y, y+1) and is inside when its centre is, by the even-odd rule). The polygons' vertices
are chosen so that no pixel centre lies within 1e-3 of an edge (far beyond the f32 rounding of the
coordinates fx reads), so any correct point-in-polygon
test gives the same counts. No cls, no boxes (the paper uses VinDr-RibCXR for segmentation only).

Anomalies: the train JSON names an image (index 6) whose PNG is missing (not in expected.jsonl:
skipped when loaded); one rib of one image is "None" (an empty mask).

Deterministic, self-checking. Run from anywhere:  python3 scripts/dataset_fixtures/vindr_ribcxr.py
Requires numpy, Pillow.
"""

import json
import math
import pathlib
import shutil
import sys

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
NAME = "vindr-ribcxr"
SIZE_LIMIT = 300_000
RIBS = [f"R{i}" for i in range(1, 11)] + [f"L{i}" for i in range(1, 11)]

# (split, index, width, height, ribs that are "None")
IMAGES = [
    ("train", 0, 48, 64, []),
    ("train", 1, 52, 66, []),
    ("train", 2, 44, 58, ["L10"]),
    ("train", 3, 50, 70, []),
    ("train", 4, 46, 60, []),
    ("train", 5, 56, 68, []),
    ("val", 0, 50, 62, []),
    ("val", 1, 54, 70, []),
    ("val", 2, 46, 56, []),
]
MISSING = ("train", 6, 48, 60, [])


def file_name(split, k):
    return f"VinDr_RibCXR_{split}_{k:03d}.png"


def rib_polygon(rng, rib, w, h):
    """A curved band, upper edge left to right then lower edge back, as float vertices."""
    side, i = rib[0], int(rib[1:]) - 1
    x_lo, x_hi = (0.06 * w, 0.47 * w) if side == "R" else (0.53 * w, 0.94 * w)
    yc = 0.10 * h + i * 0.082 * h
    n = 6
    xs = [x_lo + (x_hi - x_lo) * j / (n - 1) for j in range(n)]
    bend = [1.6 * math.sin(math.pi * j / (n - 1)) * (1 if side == "R" else 1) for j in range(n)]
    upper = [(x + rng.uniform(-0.3, 0.3), yc - 1.3 - b + rng.uniform(-0.3, 0.3)) for x, b in zip(xs, bend)]
    lower = [(x + rng.uniform(-0.3, 0.3), yc + 1.3 - b + rng.uniform(-0.3, 0.3)) for x, b in zip(xs, bend)]
    pts = upper + lower[::-1]
    return [(round(x, 10), round(y, 10)) for x, y in pts]


def rasterize(pts, w, h):
    """Pixel-centre even-odd fill, or None when a centre is within 1e-3 of an edge crossing."""
    m = np.zeros((h, w), dtype=np.uint8)
    n = len(pts)
    for y in range(h):
        cy = y + 0.5
        xs = []
        for i in range(n):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
            if abs(y0 - cy) <= 1e-3:
                return None  # a vertex near a pixel-centre row: draw the polygon again
            if (y0 <= cy) != (y1 <= cy):
                xs.append(x0 + (cy - y0) * (x1 - x0) / (y1 - y0))
        for x in range(w):
            cx = x + 0.5
            if any(abs(cx - xi) <= 1e-3 for xi in xs):
                return None  # a pixel centre near an edge: draw the polygon again
            if sum(1 for xi in xs if xi > cx) % 2 == 1:
                m[y, x] = 1
    return m


def picture(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.25 + 0.4 * np.abs(xx - w / 2) / w + 0.15 * np.sin(yy / 3.0) + rng.normal(0, 0.03, (h, w))
    return np.clip(np.round(v * 255), 0, 255).astype(np.uint8)


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(7)
    tables = {"train": {"img": {}, **{r: {} for r in RIBS}}, "val": {"img": {}, **{r: {} for r in RIBS}}}
    lines = []
    for n, (split, k, w, h, none) in enumerate(IMAGES + [MISSING]):
        (root / split / "img").mkdir(parents=True, exist_ok=True)
        name = file_name(split, k)
        t = tables[split]
        t["img"][str(k)] = f"data/{split}/img/{name}"
        masks = {}
        for rib in RIBS:
            while True:
                pts = rib_polygon(rng, rib, w, h)
                m = rasterize(pts, w, h)
                if m is not None:
                    break
            if rib in none:
                t[rib][str(k)] = "None"
                masks[rib] = 0
            else:
                t[rib][str(k)] = [{"x": x, "y": y} for x, y in pts]
                masks[rib] = int(m.sum())
                assert masks[rib] > 0, (split, k, rib)
        if (split, k) == MISSING[:2]:
            continue
        Image.fromarray(picture(n, w, h), mode="L").save(root / split / "img" / name)
        lines.append({
            "dataset": NAME, "split": "train" if split == "train" else "test",
            "id": f"{split}/img/{name[:-4]}", "width": w, "height": h,
            "cls": {}, "boxes": [], "masks": masks,
        })
    for split, t in tables.items():
        (root / split / f"Vindr_RibCXR_{split}_mask.json").write_text(json.dumps(t))
    lines.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))

    # Self-checks.
    back = json.loads((root / "train" / "Vindr_RibCXR_train_mask.json").read_text())
    assert list(back.keys()) == ["img"] + RIBS and len(back["img"]) == 7 and back["L10"]["2"] == "None"
    for d in lines:
        im = Image.open(root / (d["id"] + ".png"))
        assert im.mode == "L" and im.size == (d["width"], d["height"]) and d["width"] != d["height"]
    assert not (root / "train" / "img" / file_name("train", 6)).exists()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < SIZE_LIMIT, size
    print(f"{root}: {len(lines)} samples, {size} bytes")
    return lines


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / NAME)
    sys.exit(0)
