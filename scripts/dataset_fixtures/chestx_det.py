#!/usr/bin/env python3
"""Miniature copy of the ChestX-Det download (Deepwise AI Lab; github.com/Deepwise-AILab/
ChestX-Det-Dataset, images from resource.deepwise.com/ChestX-Det/{train,test}_data.zip) for the fx
`chestx-det` plugin, with the labels fx must read computed independently of fx.

Layout written under fixtures/datasets/chestx-det/ (deleted and recreated):

  ChestX_Det_train.json   a JSON list, one object per image, keys in the published order:
  ChestX_Det_test.json    {"file_name": "36199.png", "syms": [...], "boxes": [[x1, y1, x2, y2], ...],
                           "polygons": [[[x, y], ...], ...]} — syms[i], boxes[i] and polygons[i]
                           describe the same finding; integer pixel coordinates; one line, written
                           with json.dumps' default separators as the published files are; images
                           without findings have empty lists; each box is the min/max of its
                           polygon's vertices (as in the published files); polygons may repeat a
                           vertex (as published ones do)
  train/<n>.png, test/<n>.png   8-bit grayscale PNG (one RGBA, as some NIH PNGs are)
  expected.jsonl          what fx must read with the default options (official train/test, val
                          empty)

The 13 categories, spelled as the README and JSON spell them: Atelectasis, Calcification,
Cardiomegaly, Consolidation, Diffuse Nodule, Effusion, Emphysema, Fibrosis, Fracture, Mass, Nodule,
Pleural Thickening, Pneumothorax.

Masks (expected pixel counts): per category, the union of that category's polygons, a pixel being
inside when its centre (x + 0.5, y + 0.5) is inside a polygon by the even-odd rule with half-open
edges (fx's documented rule in core/fx-data/src/masks.rs). This script tests each pixel centre
with its own crossing count in exact rational arithmetic (a centre on a left/top edge is in, on a
right/bottom edge is out).

Deliberate anomalies (not in expected.jsonl): the last entry of ChestX_Det_train.json names a PNG
that is not in train/; train/ holds one PNG that no entry names.

Deterministic, idempotent, self-checking. Run from the repository root:
    python3 scripts/dataset_fixtures/chestx_det.py
"""

import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

NAME = "chestx-det"
CATEGORIES = ["Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "Diffuse Nodule",
              "Effusion", "Emphysema", "Fibrosis", "Fracture", "Mass", "Nodule",
              "Pleural Thickening", "Pneumothorax"]
SIZE_LIMIT = 300_000


def inside(poly, cx, cy):
    """Even-odd test of the point (cx, cy) (Fractions): the number of polygon edges crossing the
    horizontal line y = cy at or left of cx is odd. An edge crosses when exactly one of its ends
    has y <= cy (half-open: a vertex on the line counts once, horizontal edges never)."""
    n, count = len(poly), 0
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        x0, y0, x1, y1 = Fraction(x0), Fraction(y0), Fraction(x1), Fraction(y1)
        if (y0 <= cy) != (y1 <= cy):
            x = x0 + (cy - y0) * (x1 - x0) / (y1 - y0)
            if x <= cx:
                count += 1
    return count % 2 == 1


def rasterize(polys, w, h):
    m = np.zeros((h, w), np.uint8)
    for poly in polys:
        xs = [p[0] for p in poly]
        ys = [p[1] for p in poly]
        for y in range(max(0, min(ys) - 1), min(h, max(ys) + 1)):
            for x in range(max(0, min(xs) - 1), min(w, max(xs) + 1)):
                if inside(poly, Fraction(2 * x + 1, 2), Fraction(2 * y + 1, 2)):
                    m[y, x] = 1
    return m


def picture(seed, w, h, dark):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.2 + 0.4 * xx / (w - 1) + 0.2 * yy / (h - 1) + 0.2 * dark + rng.normal(0, 0.02, (h, w))
    return (np.clip(v, 0, 1) * 255).round().astype(np.uint8)


# (file name, w, h, rgba, [(sym, polygon)])
TRAIN = [
    ("36200.png", 64, 50, False, []),
    ("36201.png", 60, 48, False, [("Effusion", [[4, 30], [4, 30], [20, 34], [26, 44], [6, 46]])]),
    ("36205.png", 66, 52, False, [("Nodule", [[10, 10], [16, 9], [17, 15], [11, 16]]),
                                  ("Nodule", [[40, 12], [46, 12], [46, 18], [40, 18]]),
                                  ("Nodule", [[13, 12], [19, 12], [18, 19]]),  # overlaps the first
                                  ("Cardiomegaly", [[22, 28], [44, 26], [48, 44], [20, 46]])]),
    ("36211.png", 58, 46, True, [("Consolidation", [[30, 6], [50, 8], [40, 16], [52, 24], [28, 22]]),
                                 ("Atelectasis", [[34, 10], [44, 10], [44, 20], [34, 20]])]),
    ("36222.png", 62, 48, False, [("Fracture", [[50, 20], [56, 21], [55, 25], [49, 24]]),
                                  ("Pleural Thickening", [[2, 4], [8, 3], [9, 30], [3, 31]])]),
    ("36230.png", 56, 44, False, [("Pneumothorax", [[36, 2], [54, 2], [54, 20], [45, 9]]),
                                  ("Emphysema", [[3, 3], [25, 3], [25, 40], [3, 40]])]),
    ("36238.png", 68, 50, False, [("Diffuse Nodule", [[5, 5], [60, 5], [60, 45], [5, 45], [30, 25]]),
                                  ("Calcification", [[20, 20], [23, 20], [23, 23], [20, 23]])]),
]
TRAIN_MISSING = ("36299.png", 60, 48, False, [("Mass", [[10, 10], [20, 10], [20, 20], [10, 20]])])
TRAIN_UNLISTED = ("36298.png", 60, 46, False, [])
TEST = [
    ("36199.png", 64, 48, False, []),
    ("36302.png", 60, 50, False, [("Effusion", [[40, 30], [40, 30], [40, 32], [52, 36], [58, 46], [42, 46]]),
                                  ("Mass", [[10, 8], [24, 8], [24, 22], [10, 22]]),
                                  ("Fibrosis", [[8, 6], [30, 5], [28, 14], [9, 15]])]),
    ("36310.png", 54, 42, False, [("Nodule", [[20, 20], [26, 20], [26, 26], [20, 26]])]),
]


def entry(name, items):
    boxes = []
    for _, poly in items:
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        boxes.append([min(xs), min(ys), max(xs), max(ys)])
    return {"file_name": name, "syms": [s for s, _ in items], "boxes": boxes,
            "polygons": [poly for _, poly in items]}


def make(root: Path):
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lines = []
    for split, images, extra in (("train", TRAIN, [TRAIN_MISSING]), ("test", TEST, [])):
        (root / split).mkdir()
        for k, (name, w, h, rgba, items) in enumerate(images + [TRAIN_UNLISTED] * (split == "train")):
            masks = {c: np.zeros((h, w), np.uint8) for c in CATEGORIES}
            for sym, poly in items:
                assert all(0 <= x < w and 0 <= y < h for x, y in poly), (name, poly)
                masks[sym] |= rasterize([poly], w, h)
            dark = np.clip(sum(masks.values()), 0, 1)
            px = picture(1000 * (split == "test") + k, w, h, dark)
            img = Image.fromarray(px)
            if rgba:
                img = Image.merge("RGBA", [img, img, img, Image.new("L", img.size, 255)])
            img.save(root / split / name)
            back = np.asarray(Image.open(root / split / name).convert("L"))
            assert back.shape == (h, w) and np.array_equal(back, px)
            if name == TRAIN_UNLISTED[0]:
                continue
            boxes = []
            for e_box, (sym, _) in zip(entry(name, items)["boxes"], items):
                x1, y1, x2, y2 = e_box
                boxes.append({"label": sym, "x": float(x1), "y": float(y1), "w": float(x2 - x1), "h": float(y2 - y1)})
            present = {s for s, _ in items}
            for sym in present:
                assert masks[sym].any(), (name, sym)
            lines.append({"dataset": NAME, "split": split, "id": f"{split}/{Path(name).stem}", "width": w, "height": h,
                          "cls": {c: int(c in present) for c in CATEGORIES}, "boxes": boxes,
                          "masks": {c: int(masks[c].sum()) for c in CATEGORIES}})
        entries = [entry(name, items) for (name, _, _, _, items) in images + extra]
        (root / f"ChestX_Det_{split}.json").write_text(json.dumps(entries))

    lines.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in lines))

    # self-checks: the JSON has the published shape; every expected image exists
    for split in ("train", "test"):
        data = json.loads((root / f"ChestX_Det_{split}.json").read_text())
        for e in data:
            assert list(e.keys()) == ["file_name", "syms", "boxes", "polygons"]
            assert len(e["syms"]) == len(e["boxes"]) == len(e["polygons"])
            assert all(s in CATEGORIES for s in e["syms"])
    for d in lines:
        assert (root / (d["id"] + ".png")).is_file() and d["width"] != d["height"]
    # the rule on a known case: a 4 x 4 axis-aligned square covers exactly 16 pixels
    assert rasterize([[[2, 2], [6, 2], [6, 6], [2, 6]]], 10, 10).sum() == 16
    # a right triangle x + y <= 4: centres on the hypotenuse (a right edge) are out: 3 + 2 + 1
    assert rasterize([[[0, 0], [4, 0], [0, 4]]], 5, 5).sum() == 6
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT, total
    print(f"{root}: {len(lines)} samples, {total} bytes")


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[2]
    make(repo / "fixtures" / "datasets" / NAME)
    sys.exit(0)
