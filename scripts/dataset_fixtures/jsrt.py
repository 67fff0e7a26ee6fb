#!/usr/bin/env python3
"""Miniature copy of the JSRT database (All247images.zip) with the SCR masks ("Segmentation in
Chest Radiographs", van Ginneken et al. 2006) for the fx `jsrt` plugin, with the labels fx must read.

Writes fixtures/datasets/jsrt/ (deleted and recreated):

  All247images/JPCLN<nnn>.IMG, JPCNN<nnn>.IMG   headerless raw: width x height 16-bit BIG-endian
                                     words holding 12-bit values, stored as film density (high =
                                     dark; fx inverts). Real: 2048 x 2048; here 60 x 50, so tests
                                     pass options.raw = { width = 60, height = 50 }.
                                     JPCLN = one nodule, JPCNN = no nodule.
  scratch/fold1/masks/<organ>/<stem>.gif    SCR masks, organ in {heart, left lung, right lung,
  scratch/fold2/masks/<organ>/<stem>.gif    left clavicle, right clavicle}; HALF the image size in
                                     each direction (real: 1024 x 1024 for 2048 x 2048), 0/255 GIF.
                                     fold1 = odd-numbered images, fold2 = even-numbered (SCR's two
                                     folds). Anatomical sides: "right lung" is on the image's LEFT.
  expected.jsonl         default options: split drawn (null), no cls, masks = 4 x the GIF's count
                         (fx resizes the mask to the image by nearest neighbour)
  expected-folds.jsonl   options test_fold = 2, nodule_cls = true: fold1 -> train, fold2 -> test,
                         cls {"nodule": 1 for JPCLN, 0 for JPCNN}

Deliberate anomalies: JPCNN005 has SCR masks but no .IMG (left out with a warning); JPCLN005 lacks
its "left clavicle" mask (listed, fails when loaded: skipped and counted); JPCNN006.IMG has no SCR
masks (not a sample). None of them is in expected*.jsonl.

Deterministic; self-checking. Run from anywhere:
    python3 scripts/dataset_fixtures/jsrt.py
"""

import json
import pathlib
import shutil

import numpy as np
from PIL import Image

DATASET = "jsrt"
LIMIT = 300_000
W, H = 60, 50          # image (options.raw); masks are W/2 x H/2
ORGANS = ["heart", "left lung", "right lung", "left clavicle", "right clavicle"]
STEMS = ["JPCLN001", "JPCLN002", "JPCLN003", "JPCLN004", "JPCLN005", "JPCLN006",
         "JPCNN001", "JPCNN002", "JPCNN003", "JPCNN004", "JPCNN005"]
NO_IMAGE = {"JPCNN005"}
MISSING_MASK = ("JPCLN005", "left clavicle")
NO_MASKS = "JPCNN006"


def fold(stem):
    return 1 if int(stem[-3:]) % 2 == 1 else 2


def radiograph(seed):
    """Bright-bone image in [0, 1] (H rows x W columns)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    v = 0.2 + 0.4 * np.exp(-(((xx - W / 2) / (W / 7)) ** 2)) + 0.1 * yy / H
    return np.clip(v + rng.normal(0, 0.03, (H, W)), 0, 1)


def organ_masks(seed):
    """The five SCR organs at W/2 x H/2, 0/1. Image-left = patient's right."""
    rng = np.random.default_rng(700 + seed)
    w, h = W // 2, H // 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    j = lambda: int(rng.integers(-1, 2))  # noqa: E731

    def ellipse(cx, cy, rx, ry):
        rx, ry = rx * rng.uniform(0.85, 1.15), ry * rng.uniform(0.85, 1.15)
        return (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0).astype(np.uint8)

    return {
        "right lung": ellipse(0.28 * w + j(), 0.5 * h + j(), 0.14 * w, 0.32 * h),
        "left lung": ellipse(0.72 * w + j(), 0.5 * h + j(), 0.13 * w, 0.30 * h),
        "heart": ellipse(0.55 * w + j(), 0.72 * h, 0.15 * w, 0.12 * h),
        "right clavicle": ellipse(0.3 * w + j(), 0.15 * h, 0.12 * w, 0.05 * h + 0.6),
        "left clavicle": ellipse(0.7 * w + j(), 0.15 * h, 0.12 * w, 0.05 * h + 0.6),
    }


def write_raw(path, v):
    density = np.round((1.0 - v) * 4095).astype(">u2")  # JSRT stores density: high = dark
    path.write_bytes(density.tobytes())


def make(root: pathlib.Path):
    if root.exists():
        shutil.rmtree(root)
    images = root / "All247images"
    images.mkdir(parents=True)
    for f in (1, 2):
        for o in ORGANS:
            (root / "scratch" / f"fold{f}" / "masks" / o).mkdir(parents=True)

    drawn, folds = [], []
    for k, s in enumerate(STEMS):
        if s not in NO_IMAGE:
            write_raw(images / f"{s}.IMG", radiograph(k))
        masks = organ_masks(k)
        for o in ORGANS:
            if (s, o) == MISSING_MASK:
                continue
            Image.fromarray(masks[o] * 255, "L").save(root / "scratch" / f"fold{fold(s)}" / "masks" / o / f"{s}.gif")
        if s in NO_IMAGE or s == MISSING_MASK[0]:
            continue
        counts = {o: 4 * int(masks[o].sum()) for o in ORGANS}  # nearest-neighbour 2x in each direction
        base = {"dataset": DATASET, "id": f"All247images/{s}", "width": W, "height": H, "boxes": [], "masks": counts}
        drawn.append({**base, "split": None, "cls": {}})
        folds.append({**base, "split": "train" if fold(s) == 1 else "test",
                      "cls": {"nodule": 1 if s.startswith("JPCLN") else 0}})
    write_raw(images / f"{NO_MASKS}.IMG", radiograph(99))

    for name, lines in (("expected.jsonl", drawn), ("expected-folds.jsonl", folds)):
        with open(root / name, "w") as f:
            for l in sorted(lines, key=lambda v: v["id"]):
                f.write(json.dumps(l) + "\n")
    check(root, drawn)


def check(root, drawn):
    for l in drawn:
        s = l["id"].split("/")[-1]
        raw = np.frombuffer((root / "All247images" / f"{s}.IMG").read_bytes(), ">u2")
        assert raw.size == W * H and raw.max() <= 4095
        for o in ORGANS:
            m = np.asarray(Image.open(root / "scratch" / f"fold{fold(s)}" / "masks" / o / f"{s}.gif").convert("L"))
            assert m.shape == (H // 2, W // 2)
            big = np.repeat(np.repeat(m != 0, 2, axis=0), 2, axis=1)
            assert big.shape == (H, W) and int(big.sum()) == l["masks"][o] > 0, (s, o)
    assert len(drawn) == 9
    assert not (root / "All247images" / "JPCNN005.IMG").exists()
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < LIMIT, f"fixture is {total} bytes"
    print(f"{root}: {len(drawn)} readable samples, {total} bytes")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / DATASET)
