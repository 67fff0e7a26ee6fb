#!/usr/bin/env python3
"""Miniature copy of the NIH/NLM Montgomery County chest X-ray set (NLM-MontgomeryCXRSet.zip) for
the fx `montgomery` plugin, with the labels fx must read.

Writes fixtures/datasets/montgomery/ (deleted and recreated):

  MontgomerySet/
    CXR_png/MCUCXR_<nnnn>_<0|1>.png          _0 normal, _1 tuberculosis; 8-bit grayscale; portrait
                                             (4020 x 4892 in the real set) or landscape (4892 x 4020)
                                             at the same aspect ratio; a stray Thumbs.db
    ClinicalReadings/MCUCXR_<nnnn>_<0|1>.txt "Patient's Sex: M / Patient's Age: 044Y / finding"
    ManualMask/leftMask/MCUCXR_<nnnn>_<0|1>.png    binary masks at the image size, 8-bit 0/255
    ManualMask/rightMask/MCUCXR_<nnnn>_<0|1>.png   (one written as a 1-bit PNG, which readers must
                                             accept as well)
  expected.jsonl          default options: cls {"Tuberculosis"}, masks {"Left Lung" = leftMask,
                          "Right Lung" = rightMask}
  expected-anatomical.jsonl  options.sides = "anatomical": the two masks swapped

The leftMask lung is drawn on the IMAGE's left (the patient's right), as a third-party visual check
of the real files reports; fx's default keeps the publisher's names, `sides = "anatomical"` swaps.

Deliberate anomalies: MCUCXR_0005_0 has no rightMask file (the plugin lists it; loading it fails,
so it is skipped and counted; not in expected*.jsonl); a mask in leftMask whose image does not exist
(ignored); Thumbs.db in CXR_png (ignored). Splits are drawn by fx, so "split" is null.

Deterministic; self-checking. Run from anywhere:
    python3 scripts/dataset_fixtures/montgomery.py
"""

import json
import pathlib
import shutil

import numpy as np
from PIL import Image

DATASET = "montgomery"
LIMIT = 300_000

# (number, label, width, height): 4020 x 4892 portrait or 4892 x 4020 landscape, scaled down
IMAGES = [
    (1, 0, 40, 49),
    (3, 0, 49, 40),
    (5, 0, 41, 50),   # rightMask missing
    (11, 0, 44, 54),
    (13, 0, 54, 44),
    (4, 1, 45, 55),
    (6, 1, 55, 45),
    (8, 1, 48, 58),
    (10, 1, 42, 51),
]
NO_RIGHT_MASK = {5}
ONE_BIT = (11, "leftMask")
ORPHAN = (99, 1, 40, 49)


def stem(n, label):
    return f"MCUCXR_{n:04d}_{label}"


def radiograph(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.2 + 0.35 * np.exp(-(((xx - w / 2) / (w / 6)) ** 2)) + 0.15 * yy / h
    v += rng.normal(0, 0.03, (h, w))
    return (np.clip(v, 0, 1) * 255).astype(np.uint8)


def lung(seed, w, h, image_left):
    """A filled ellipse on the image's left or right half, 0/1, h rows x w columns."""
    rng = np.random.default_rng(500 + seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = (0.3 if image_left else 0.7) * w + rng.integers(-2, 3)
    cy = 0.48 * h + rng.integers(-2, 3)
    rx = 0.13 * w + rng.integers(0, 3)
    ry = 0.30 * h + rng.integers(0, 3)
    return (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0).astype(np.uint8)


def save_mask(path, m, one_bit=False):
    if one_bit:
        Image.fromarray(m.astype(bool)).convert("1").save(path)
    else:
        Image.fromarray(m * 255, "L").save(path)


def line(ident, w, h, label, masks):
    return {"dataset": DATASET, "split": None, "id": ident, "width": w, "height": h,
            "cls": {"Tuberculosis": label}, "boxes": [], "masks": masks}


def make(root: pathlib.Path):
    if root.exists():
        shutil.rmtree(root)
    base = root / "MontgomerySet"
    for d in ("CXR_png", "ClinicalReadings", "ManualMask/leftMask", "ManualMask/rightMask"):
        (base / d).mkdir(parents=True)
    (base / "CXR_png" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(56))

    published, anatomical = [], []
    for k, (n, label, w, h) in enumerate(IMAGES):
        s = stem(n, label)
        assert w != h
        Image.fromarray(radiograph(k, w, h), "L").save(base / "CXR_png" / f"{s}.png")
        sex = "M" if k % 2 else "F"
        finding = "normal" if label == 0 else "bilateral upper lobe infiltrates, TB"
        (base / "ClinicalReadings" / f"{s}.txt").write_text(
            f"Patient's Sex: {sex}\nPatient's Age: {30 + 4 * k:03d}Y\n{finding}\n")
        left, right = lung(k, w, h, True), lung(100 + k, w, h, False)
        save_mask(base / "ManualMask" / "leftMask" / f"{s}.png", left, one_bit=ONE_BIT == (n, "leftMask"))
        if n in NO_RIGHT_MASK:
            continue
        save_mask(base / "ManualMask" / "rightMask" / f"{s}.png", right)
        ident = f"MontgomerySet/CXR_png/{s}"
        published.append(line(ident, w, h, label, {"Left Lung": int(left.sum()), "Right Lung": int(right.sum())}))
        anatomical.append(line(ident, w, h, label, {"Left Lung": int(right.sum()), "Right Lung": int(left.sum())}))
    n, label, w, h = ORPHAN
    save_mask(base / "ManualMask" / "leftMask" / f"{stem(n, label)}.png", lung(99, w, h, True))

    for name, lines in (("expected.jsonl", published), ("expected-anatomical.jsonl", anatomical)):
        with open(root / name, "w") as f:
            for l in sorted(lines, key=lambda v: v["id"]):
                f.write(json.dumps(l) + "\n")
    check(root, published)


def check(root, published):
    base = root / "MontgomerySet"
    for l in published:
        s = l["id"].split("/")[-1]
        img = Image.open(base / "CXR_png" / f"{s}.png")
        assert img.size == (l["width"], l["height"]) and img.mode == "L"
        for label, folder in (("Left Lung", "leftMask"), ("Right Lung", "rightMask")):
            m = Image.open(base / "ManualMask" / folder / f"{s}.png")
            a = np.asarray(m.convert("L"))
            assert a.shape == (l["height"], l["width"])
            assert int((a != 0).sum()) == l["masks"][label] > 0
        assert l["cls"]["Tuberculosis"] == int(s[-1])
    assert Image.open(base / "ManualMask" / "leftMask" / f"{stem(11, 0)}.png").mode == "1"
    assert len(published) == len(IMAGES) - 1
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < LIMIT, f"fixture is {total} bytes"
    print(f"{root}: {len(published)} readable images of {len(IMAGES)}, {total} bytes")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / DATASET)
