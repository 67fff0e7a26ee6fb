#!/usr/bin/env python3
"""Miniature copy of the NIH ChestX-ray14 download (NIH Clinical Center, nihcc.app.box.com/v/ChestXray-NIHCC)
for the fx `nih-cxr14` plugin.

Writes fixtures/datasets/nih-cxr14/ (deleted and recreated):

    nih-cxr14/
    ├── Data_Entry_2017_v2020.csv   Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,
    │                               Patient Gender,View Position,OriginalImage[Width,Height],
    │                               OriginalImagePixelSpacing[x,y]   (the two bracketed names contain a
    │                               comma and are not quoted: the header has 11 fields, like the rows)
    ├── BBox_List_2017.csv          Image Index,Finding Label,Bbox [x,y,w,h],,,   (header of 9 fields;
    │                               rows: name,label,x,y,w,h — 6 fields; labels say `Infiltrate`)
    ├── train_val_list.txt          one image name per line
    ├── test_list.txt
    ├── images/<Patient ID:08>_<Follow-up:03>.png    8-bit PNG (one is RGBA, as some real ones are)
    └── expected.jsonl              what fx must read with the DEFAULT options

Sources: the NIH release (README_CHESTXRAY.pdf, the file list of the Box folder and of Kaggle's copy
"nih-chest-xrays/data", which nests the images as images_001/images/ ... images_012/images/ and ships
the older Data_Entry_2017.csv), Wang et al. CVPR 2017, and TorchXRayVision's copies of
Data_Entry_2017_v2020.csv and BBox_List_2017.csv (header and field counts checked there). The released
PNGs are 1024 x 1024 whatever OriginalImage[Width,Height] says; here they are 44-70 px and the
OriginalImage columns hold (different) original sizes on purpose: fx must not use them.

fx's default options: cls = the 14 labels (`No Finding` = all 0); loc = the 8 box labels, with
`Infiltrate` read as `Infiltration`; split: test_list -> test, train_val_list -> train + a val drawn
by Patient ID (val_fraction 0.1). This fixture has 5 train_val patients: round(5 * 0.9) = 5 (Rust
rounds half away from zero), so val is empty with the defaults and every train_val image is "train".

Deliberate anomalies:
  * 00000005_000.png is in Data_Entry and train_val_list.txt but NOT in images/: skipped at load;
  * 00000010_000.png is in images/ but in no label file: ignored;
  * 00000003_000.png is an RGBA PNG (R = G = B, alpha 255);
  * the box of 00000006_001.png is labelled `Infiltrate`; the box file is grouped by label (as the
    real one), so the two boxes of 00000006_000.png are not on adjacent lines.

Deterministic; self-checking. Run: python3 scripts/dataset_fixtures/nih_cxr14.py
"""

import csv
import json
import pathlib
import shutil

import numpy as np
from PIL import Image

CLS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
       "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
LOC = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"]
DATA_HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position," \
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
BOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"

# (patient, follow-up, findings, age, sex, view, width, height, list, on disk, rgba)
IMAGES = [
    (1, 0, "Cardiomegaly", 57, "M", "PA", 56, 64, "train_val", True, False),
    (1, 1, "Cardiomegaly|Emphysema", 58, "M", "PA", 58, 66, "train_val", True, False),
    (1, 2, "Cardiomegaly|Effusion", 58, "M", "PA", 54, 62, "train_val", True, False),
    (2, 0, "No Finding", 80, "M", "PA", 60, 50, "train_val", True, False),
    (3, 0, "Hernia", 74, "F", "PA", 52, 62, "train_val", True, True),
    (4, 0, "Mass|Nodule", 82, "M", "AP", 62, 54, "train_val", True, False),
    (5, 0, "Infiltration", 69, "F", "PA", 56, 66, "train_val", False, False),  # MISSING png
    (6, 0, "Atelectasis|Effusion", 61, "F", "AP", 64, 56, "test", True, False),
    (6, 1, "Infiltration", 61, "F", "AP", 66, 58, "test", True, False),
    (7, 0, "Mass|Nodule|Pneumonia", 45, "M", "PA", 58, 68, "test", True, False),
    (8, 0, "Pneumothorax", 33, "M", "PA", 60, 46, "test", True, False),
    (8, 1, "No Finding", 33, "M", "PA", 62, 48, "test", True, False),
    (9, 0, "Consolidation|Edema|Fibrosis|Pleural_Thickening", 70, "F", "AP", 50, 64, "test", True, False),
]
UNLISTED = (10, 0, 56, 60)

# BBox_List_2017.csv rows in file order (grouped by label as the real file): (image, label, x, y, w, h)
BOXES = [
    ("00000006_000.png", "Atelectasis", 10.0847457627119, 12.5423728813559, 20.3389830508475, 14.9152542372881),
    ("00000006_000.png", "Effusion", 35.2542372881356, 30.1694915254237, 22.3728813559322, 18.9830508474576),
    ("00000006_001.png", "Infiltrate", 8.13559322033898, 9.49152542372881, 30.5084745762712, 24.4067796610169),
    ("00000007_000.png", "Mass", 6.77966101694915, 20.3389830508475, 16.9491525423729, 18.3050847457627),
    ("00000007_000.png", "Nodule", 36.6101694915254, 40.6779661016949, 8.13559322033898, 7.45762711864407),
    ("00000007_000.png", "Pneumonia", 28.4745762711864, 8.8135593220339, 22.3728813559322, 26.4406779661017),
    ("00000008_000.png", "Pneumothorax", 40.0, 4.5, 15.25, 30.75),
]


def name(p, f):
    return f"{p:08d}_{f:03d}.png"


def picture(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.1 + 0.45 * xx / (w - 1) + 0.15 * yy / (h - 1) + 0.07 * np.sin(xx / 5.0 + seed) * np.cos(yy / 3.0)
    v += rng.normal(0.0, 0.02, (h, w))
    return (np.clip(v, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_png(path, seed, w, h, rgba):
    assert w != h and 40 <= w <= 70 and 40 <= h <= 70, (path, w, h)
    g = picture(seed, w, h)
    if rgba:
        arr = np.stack([g, g, g, np.full_like(g, 255)], axis=-1)
        Image.fromarray(arr, mode="RGBA").save(path, format="PNG")
    else:
        Image.fromarray(g, mode="L").save(path, format="PNG")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (w, h) and im.mode == ("RGBA" if rgba else "L")


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    (root / "images").mkdir(parents=True)
    size = {}
    lines = [DATA_HEADER]
    for k, (p, f, findings, age, sex, view, w, h, lst, on_disk, rgba) in enumerate(IMAGES):
        n = name(p, f)
        size[n] = (w, h)
        ow, oh = (2500, 2048) if k % 2 else (2682, 2749)
        lines.append(f"{n},{findings},{f},{p},{age},{sex},{view},{ow},{oh},0.143,0.143")
        if on_disk:
            write_png(root / "images" / n, 500 + k, w, h, rgba)
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    write_png(root / "images" / name(UNLISTED[0], UNLISTED[1]), 499, UNLISTED[2], UNLISTED[3], False)
    for lst, fname in [("train_val", "train_val_list.txt"), ("test", "test_list.txt")]:
        (root / fname).write_text("".join(name(i[0], i[1]) + "\n" for i in IMAGES if i[8] == lst))
    box_lines = [BOX_HEADER] + [f"{n},{lab},{x!r},{y!r},{w!r},{h!r}" for (n, lab, x, y, w, h) in BOXES]
    (root / "BBox_List_2017.csv").write_text("\n".join(box_lines) + "\n")

    # self-checks
    with open(root / "Data_Entry_2017_v2020.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows[0]) == 11 and all(len(r) == 11 for r in rows)
    with open(root / "BBox_List_2017.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows[0]) == 9 and all(len(r) == 6 for r in rows[1:])
    for (n, lab, x, y, w, h) in BOXES:
        W, H = size[n]
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H, (n, x, y, w, h, W, H)
    train_patients = {i[0] for i in IMAGES if i[8] == "train_val"}
    test_patients = {i[0] for i in IMAGES if i[8] == "test"}
    assert len(train_patients) == 5 and not train_patients & test_patients

    expected = []
    for (p, f, findings, _a, _s, _v, w, h, lst, on_disk, _r) in IMAGES:
        if not on_disk:
            continue
        n = name(p, f)
        found = set(findings.split("|")) - {"No Finding"}
        assert found <= set(CLS), found
        boxes = []
        for (bn, lab, x, y, bw, bh) in BOXES:
            if bn == n:
                lab = "Infiltration" if lab == "Infiltrate" else lab
                assert lab in LOC
                boxes.append({"label": lab, "x": float(x), "y": float(y), "w": float(bw), "h": float(bh)})
        expected.append({"dataset": "nih-cxr14", "split": "train" if lst == "train_val" else "test",
                         "id": "images/" + n[:-4], "width": w, "height": h,
                         "cls": {lab: int(lab in found) for lab in CLS}, "boxes": boxes, "masks": {}})
    assert 8 <= len(expected) <= 12
    expected.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d) + "\n" for d in expected))
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 300_000, total
    print(f"nih-cxr14: {len(expected)} expected samples, {total} bytes under {root}")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "nih-cxr14")
