#!/usr/bin/env python3
"""Miniature copy of the CheXpert download (CheXpert-v1.0-small layout) for the fx `chexpert` plugin.

Writes fixtures/datasets/chexpert/ (deleted and recreated):

    chexpert/                         the download folder, RENAMED (the real one is called
    │                                 CheXpert-v1.0-small; its CSVs still say so)
    ├── train.csv                     Path,Sex,Age,Frontal/Lateral,AP/PA,<14 labels>
    ├── valid.csv                     same columns; labels only 1.0 / 0.0 (no blanks, no -1)
    ├── train/patientNNNNN/studyK/viewJ_{frontal,lateral}.jpg
    ├── valid/patientNNNNN/studyK/viewJ_{frontal,lateral}.jpg
    └── expected.jsonl                what fx must read with the DEFAULT options

Layout and value conventions as published (Irvin et al. 2019, arXiv:1901.07031; the Stanford ML
Group's CheXpert page; TorchXRayVision's copy of train.csv, torchxrayvision/data/chexpert_train.csv.gz):
`Path` is relative to the folder ABOVE the download and starts with `CheXpert-v1.0-small/`; labels are
1.0 positive, 0.0 negative, -1.0 uncertain, blank = not mentioned; lateral rows have an empty AP/PA.
Images are 8-bit grayscale baseline JPEGs (the small version is ~320 px wide; here 44-66 px, non-square).

fx's default options: uncertain = "ones" (-1 -> 1), blank -> 0, views = "frontal" (Frontal/Lateral ==
"Frontal"), split: train.csv -> train (+ val drawn by patient, val_fraction 0.1), valid.csv -> test.
The fixture has 5 training patients: fx's draw gives the val split round(5 * 0.1) = 1 patient only if
round(5 * 0.9) < 5, which it is not (4.5 rounds to 5), so with the defaults every train.csv row is in
"train" whatever the seed; expected.jsonl can therefore state the split.

Deliberate anomalies:
  * train.csv names train/patient00004/study1/view1_frontal.jpg, which is NOT on disk: fx must skip it
    at load time (it is not in expected.jsonl);
  * train/patient00006/study1/view1_frontal.jpg is on disk but named by no CSV row: ignored;
  * the download folder is renamed (chexpert/ instead of CheXpert-v1.0-small/): fx must resolve Path
    by dropping its first component.

Deterministic; self-checking (reads the JPEGs and CSVs back). Run from anywhere:
    python3 scripts/dataset_fixtures/chexpert.py
"""

import csv
import json
import pathlib
import shutil

import numpy as np
from PIL import Image

LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
]
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + LABELS
PREFIX = "CheXpert-v1.0-small/"

# (relative path under the download, sex, age, Frontal/Lateral, AP/PA, width, height, {label: value})
# value: 1.0 / 0.0 / -1.0; labels not given are blank.
TRAIN = [
    ("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP", 52, 64,
     {"No Finding": 1.0, "Pneumothorax": 0.0, "Support Devices": 1.0}),
    ("train/patient00002/study2/view1_frontal.jpg", "Female", 87, "Frontal", "AP", 50, 62,
     {"Cardiomegaly": -1.0, "Lung Opacity": 1.0, "Edema": -1.0, "Consolidation": -1.0,
      "Atelectasis": -1.0, "Pleural Effusion": -1.0, "Fracture": 1.0}),
    ("train/patient00002/study1/view1_frontal.jpg", "Female", 83, "Frontal", "AP", 54, 66,
     {"Lung Opacity": 1.0, "Consolidation": -1.0, "Fracture": 1.0}),
    ("train/patient00002/study1/view2_lateral.jpg", "Female", 83, "Lateral", "", 60, 48,
     {"Lung Opacity": 1.0, "Consolidation": -1.0, "Fracture": 1.0}),
    ("train/patient00003/study1/view1_frontal.jpg", "Male", 41, "Frontal", "PA", 48, 58,
     {"Edema": 1.0, "Pleural Effusion": 0.0, "Support Devices": 1.0, "Pneumonia": -1.0}),
    ("train/patient00003/study1/view2_lateral.jpg", "Male", 41, "Lateral", "", 62, 46,
     {"Edema": 1.0, "Pleural Effusion": 0.0, "Support Devices": 1.0, "Pneumonia": -1.0}),
    ("train/patient00004/study1/view1_frontal.jpg", "Male", 20, "Frontal", "PA", 52, 60,
     {"No Finding": 1.0}),  # MISSING on disk
    ("train/patient00004/study2/view1_frontal.jpg", "Male", 20, "Frontal", "AP", 46, 56,
     {"Pneumothorax": 1.0, "Lung Lesion": -1.0, "Enlarged Cardiomediastinum": 0.0}),
    ("train/patient00005/study1/view1_frontal.jpg", "Female", 55, "Frontal", "PA", 56, 68,
     {"Cardiomegaly": 1.0, "Pleural Effusion": 1.0, "Atelectasis": 0.0, "Pleural Other": -1.0}),
    ("train/patient00005/study1/view2_frontal.jpg", "Female", 55, "Frontal", "AP", 58, 66,
     {"Cardiomegaly": 1.0, "Pleural Effusion": 1.0, "Atelectasis": 0.0, "Pleural Other": -1.0}),
]
MISSING = {"train/patient00004/study1/view1_frontal.jpg"}
UNLISTED = ("train/patient00006/study1/view1_frontal.jpg", 50, 60)

VALID_POS = {  # valid.csv: every label 0.0 except these 1.0
    "valid/patient64541/study1/view1_frontal.jpg": ("Male", 73, "Frontal", "AP", 54, 62,
                                                     {"Cardiomegaly", "Lung Opacity", "Support Devices"}),
    "valid/patient64542/study1/view1_frontal.jpg": ("Male", 70, "Frontal", "PA", 52, 64, {"No Finding"}),
    "valid/patient64542/study1/view2_lateral.jpg": ("Male", 70, "Lateral", "", 64, 50, {"No Finding"}),
    "valid/patient64543/study1/view1_frontal.jpg": ("Female", 85, "Frontal", "AP", 50, 58,
                                                     {"Edema", "Pleural Effusion", "Atelectasis"}),
}


def picture(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.15 + 0.35 * xx / (w - 1) + 0.25 * yy / (h - 1) + 0.08 * np.sin(xx / 3.0 + seed) * np.cos(yy / 5.0)
    v += rng.normal(0.0, 0.02, (h, w))
    return (np.clip(v, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_jpeg(path, seed, w, h):
    assert w != h and 40 <= w <= 70 and 40 <= h <= 70, (path, w, h)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture(seed, w, h), mode="L").save(path, format="JPEG", quality=90)
    with Image.open(path) as im:  # self-check
        assert im.format == "JPEG" and im.mode == "L" and im.size == (w, h), (path, im.mode, im.size)


def fmt(v):
    return "" if v is None else f"{v:.1f}"


def cls_value(v):
    """fx defaults: blank -> 0, -1 -> 1 (uncertain = "ones")."""
    if v is None:
        return 0
    return 1 if v in (1.0, -1.0) else 0


def expected_line(split, rel, w, h, values):
    return {"dataset": "chexpert", "split": split, "id": rel.rsplit(".", 1)[0], "width": w, "height": h,
            "cls": {lab: cls_value(values.get(lab)) for lab in LABELS}, "boxes": [], "masks": {}}


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    expected = []
    # train.csv
    with open(root / "train.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(HEADER)
        for k, (rel, sex, age, fl, appa, w, h, vals) in enumerate(TRAIN):
            assert all(lab in LABELS for lab in vals)
            wr.writerow([PREFIX + rel, sex, age, fl, appa] + [fmt(vals.get(lab)) for lab in LABELS])
            if rel in MISSING:
                continue
            write_jpeg(root / rel, 100 + k, w, h)
            if fl == "Frontal":
                expected.append(expected_line("train", rel, w, h, vals))
    write_jpeg(root / UNLISTED[0], 99, UNLISTED[1], UNLISTED[2])
    # valid.csv
    with open(root / "valid.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(HEADER)
        for k, (rel, (sex, age, fl, appa, w, h, pos)) in enumerate(VALID_POS.items()):
            vals = {lab: (1.0 if lab in pos else 0.0) for lab in LABELS}
            wr.writerow([PREFIX + rel, sex, age, fl, appa] + [fmt(vals[lab]) for lab in LABELS])
            write_jpeg(root / rel, 200 + k, w, h)
            if fl == "Frontal":
                expected.append(expected_line("test", rel, w, h, vals))

    # self-checks: the CSVs read back, the missing image is missing, 5 training patients
    for name in ["train.csv", "valid.csv"]:
        with open(root / name, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == HEADER and all(len(r) == len(HEADER) for r in rows)
        assert all(r[0].startswith(PREFIX) for r in rows[1:])
    for rel in MISSING:
        assert not (root / rel).exists()
    patients = {rel.split("/")[1] for (rel, *_rest) in TRAIN}
    assert len(patients) == 5 and round(len(patients) * 0.9 + 1e-9) == 5  # val empty by default
    ids = [d["id"] for d in expected]
    assert len(ids) == len(set(ids)) and 8 <= len(ids) <= 12, ids
    expected.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d) + "\n" for d in expected))
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 300_000, total
    print(f"chexpert: {len(expected)} expected samples, {total} bytes under {root}")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "chexpert")
