#!/usr/bin/env python3
"""Miniature copy of the NIH/NLM Shenzhen Hospital chest X-ray set (plus its separately published
lung masks) for the fx `shenzhen` plugin, with the labels fx must read.

Writes fixtures/datasets/shenzhen/ (deleted and recreated):

  ChinaSet_AllFiles/                     the NLM download (ChinaSet_AllFiles.zip), unchanged names
    CXR_png/CHNCXR_<nnnn>_<0|1>.png      _0 normal, _1 tuberculosis (the only label source);
                                         sizes vary per image and are never an exact square; most
                                         files are PALETTE PNGs, a few RGB with R = G = B (as the
                                         real set: 635 'P', 27 'RGB'); a stray Thumbs.db
    ClinicalReadings/CHNCXR_<nnnn>_<0|1>.txt   "male 35yrs" / finding, free text (not read by fx)
  mask/CHNCXR_<nnnn>_<0|1>_mask.png      lung masks of Stirenko et al. (Kaggle "Shenzhen lung
                                         masks"): one binary 8-bit mask (0/255) per image, both
                                         lungs together, same size as its image; not every image
                                         has one (566 of 662 in the real release)
  expected.jsonl        the plugin with default options: every image, cls {"Tuberculosis"}, no masks
  expected-masks.jsonl  with options.masks = "mask": only images with a mask, masks {"Lung": count}

Deliberate anomalies: two images have no mask (left out with options.masks, present without it);
one mask names an image that does not exist (ignored); a Windows Thumbs.db in CXR_png (ignored).
Splits are drawn by fx (no official split), so "split" is null.

Deterministic; self-checking (reads every written file back with Pillow). Run from anywhere:
    python3 scripts/dataset_fixtures/shenzhen.py
"""

import json
import pathlib
import shutil

import numpy as np
from PIL import Image

DATASET = "shenzhen"
LIMIT = 300_000

# (number, label, width, height, png mode, has mask)
IMAGES = [
    (1, 0, 52, 55, "P", True),
    (2, 0, 48, 50, "P", True),
    (3, 0, 60, 58, "RGB", True),
    (4, 0, 45, 49, "P", False),   # no lung mask
    (5, 0, 57, 54, "P", True),
    (327, 1, 50, 53, "P", True),
    (328, 1, 63, 61, "RGB", True),
    (329, 1, 47, 44, "P", True),
    (330, 1, 55, 59, "P", False),  # no lung mask
    (331, 1, 58, 62, "P", True),
]
ORPHAN_MASK = (999, 1, 50, 50)  # a mask whose image is not in CXR_png


def stem(n, label):
    return f"CHNCXR_{n:04d}_{label}"


def radiograph(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.25 + 0.3 * np.exp(-(((xx - w / 2) / (w / 5)) ** 2)) + 0.1 * yy / h
    v += rng.normal(0, 0.03, (h, w))
    return (np.clip(v, 0, 1) * 255).astype(np.uint8)


def lungs(seed, w, h):
    """Two filled ellipses (the two lung fields) as a 0/1 mask, h rows x w columns."""
    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    m = np.zeros((h, w), np.uint8)
    for cx in (0.3 * w, 0.7 * w):
        cx += rng.integers(-2, 3)
        cy = 0.5 * h + rng.integers(-2, 3)
        rx, ry = 0.14 * w + rng.integers(0, 3), 0.32 * h + rng.integers(0, 3)
        m |= (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0).astype(np.uint8)
    return m


def save_image(path, gray, mode):
    if mode == "P":
        # A palette image whose palette is a gray ramp: index = gray value, as NLM's files.
        img = Image.fromarray(gray, "P")
        img.putpalette([v for g in range(256) for v in (g, g, g)])
    else:
        img = Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")
    img.save(path)


def line(split, ident, w, h, label, masks):
    return {"dataset": DATASET, "split": split, "id": ident, "width": w, "height": h,
            "cls": {"Tuberculosis": label}, "boxes": [], "masks": masks}


def make(root: pathlib.Path):
    if root.exists():
        shutil.rmtree(root)
    china = root / "ChinaSet_AllFiles"
    (china / "CXR_png").mkdir(parents=True)
    (china / "ClinicalReadings").mkdir()
    (root / "mask").mkdir()
    (china / "CXR_png" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(56))

    plain, with_masks = [], []
    for k, (n, label, w, h, mode, has_mask) in enumerate(IMAGES):
        s = stem(n, label)
        assert w != h
        gray = radiograph(k, w, h)
        save_image(china / "CXR_png" / f"{s}.png", gray, mode)
        sex, age = ("male", 20 + 3 * k) if k % 2 == 0 else ("female", 25 + 2 * k)
        finding = "normal" if label == 0 else "PTB in the right upper field"
        (china / "ClinicalReadings" / f"{s}.txt").write_text(f"{sex} {age}yrs\n{finding}\n")
        ident = f"ChinaSet_AllFiles/CXR_png/{s}"
        plain.append(line(None, ident, w, h, label, {}))
        if has_mask:
            m = lungs(k, w, h)
            Image.fromarray(m * 255, "L").save(root / "mask" / f"{s}_mask.png")
            with_masks.append(line(None, ident, w, h, label, {"Lung": int(m.sum())}))
    n, label, w, h = ORPHAN_MASK
    Image.fromarray(lungs(99, w, h) * 255, "L").save(root / "mask" / f"{stem(n, label)}_mask.png")

    for name, lines in (("expected.jsonl", plain), ("expected-masks.jsonl", with_masks)):
        with open(root / name, "w") as f:
            for l in sorted(lines, key=lambda v: v["id"]):
                f.write(json.dumps(l) + "\n")
    check(root, plain, with_masks)


def check(root, plain, with_masks):
    china = root / "ChinaSet_AllFiles"
    modes = {}
    for l in plain:
        img = Image.open(root / (l["id"] + ".png"))
        assert img.size == (l["width"], l["height"]), l["id"]
        modes[img.mode] = modes.get(img.mode, 0) + 1
        assert l["cls"]["Tuberculosis"] == int(l["id"][-1])
    assert modes == {"P": 8, "RGB": 2}, modes
    for l in with_masks:
        s = l["id"].split("/")[-1]
        m = np.asarray(Image.open(root / "mask" / f"{s}_mask.png"))
        assert m.shape == (l["height"], l["width"]) and set(np.unique(m)) <= {0, 255}
        assert int((m != 0).sum()) == l["masks"]["Lung"] > 0
    assert len(list((china / "CXR_png").glob("*.png"))) == len(plain) == 10
    assert len(with_masks) == 8 and len(list((root / "mask").glob("*_mask.png"))) == 9
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < LIMIT, f"fixture is {total} bytes"
    print(f"{root}: {len(plain)} images, {len(with_masks)} with masks, {total} bytes")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / DATASET)
