#!/usr/bin/env python3
"""Miniature copy of MIMIC-CXR-JPG (PhysioNet, v2.0.0 / v2.1.0) for the fx `mimic-cxr` plugin.

Writes fixtures/datasets/mimic-cxr/ (deleted and recreated), laid out like
physionet.org/files/mimic-cxr-jpg/2.0.0/:

    mimic-cxr/
    ├── mimic-cxr-2.0.0-chexpert.csv.gz   subject_id,study_id,<14 labels in alphabetical order>
    │                                     one row per STUDY; 1.0 / 0.0 / -1.0 / blank
    ├── mimic-cxr-2.0.0-split.csv.gz      dicom_id,study_id,subject_id,split (train|validate|test)
    ├── mimic-cxr-2.0.0-metadata.csv.gz   dicom_id,subject_id,study_id,PerformedProcedureStepDescription,
    │                                     ViewPosition,Rows,Columns,StudyDate,StudyTime,
    │                                     ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,
    │                                     PatientOrientationCodeSequence_CodeMeaning
    ├── files/pXX/pSSSSSSSS/sTTTTTTTT/<dicom_id>.jpg    XX = first two digits of the subject id
    └── expected.jsonl                    what fx must read with the DEFAULT options

Sources: the PhysioNet project page (https://physionet.org/content/mimic-cxr-jpg/2.1.0/ — file names,
the pXX/pSUBJECT/sSTUDY/DICOM.jpg tree, the split values, the label values), Johnson et al.,
arXiv:1901.07042, and TorchXRayVision's MIMIC_Dataset (joins chexpert and metadata on
subject_id/study_id, ViewPosition for views). The .csv.gz files are real gzip (mtime 0).
Subject ids are 8 digits starting with 1, study ids 8 digits starting with 5, dicom ids 5 groups of
8 hex digits joined by dashes. Images are 8-bit grayscale JPEGs; Rows/Columns give their size.

fx's default options: uncertain = "ones" (-1 -> 1), blank -> 0, views = "frontal" (ViewPosition PA or
AP), split train/validate/test -> train/val/test.

Deliberate anomalies:
  * the image of key 'MISSING' (subject 19999987, study 55555555): in split and metadata, its study has labels, but its .jpg is
    not on disk -> skipped at load, not in expected.jsonl;
  * study 56666666 (subject 19999987) has an image on disk but NO row in the chexpert file (real
    MIMIC-CXR-JPG has 227,835 studies but 227,827 labelled ones) -> not a sample;
  * one image has an empty ViewPosition, others are LATERAL / LL: not frontal -> not read by default.

Deterministic; self-checking. Run: python3 scripts/dataset_fixtures/mimic_cxr.py
"""

import csv
import gzip
import hashlib
import io
import json
import pathlib
import shutil

import numpy as np
from PIL import Image

LABELS_CSV = [  # the column order of mimic-cxr-2.0.0-chexpert.csv
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
]
LABELS_FX = [  # fx's label order (CheXpert's)
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
]
META_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
               "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
               "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral",
                "LL": "left lateral", "": ""}

# studies: (subject, study, {label: value})
STUDIES = [
    (10000032, 50414267, {"No Finding": 1.0}),
    (10000032, 53189527, {"Pleural Effusion": -1.0, "Atelectasis": 1.0, "Support Devices": 0.0}),
    (10000764, 57375967, {"Cardiomegaly": 1.0, "Edema": -1.0, "Pneumonia": 0.0, "Lung Opacity": 1.0}),
    (10000935, 50578979, {"Consolidation": 1.0, "Pneumothorax": 0.0, "Fracture": -1.0}),
    (11000011, 51234567, {"Lung Lesion": 1.0, "Enlarged Cardiomediastinum": -1.0}),
    (11000011, 58888888, {"Pleural Other": 1.0, "Pleural Effusion": 0.0, "Edema": 0.0}),
    (12000025, 52345678, {"Pneumothorax": 1.0, "Support Devices": 1.0, "Cardiomegaly": -1.0}),
    (19999987, 55555555, {"No Finding": 1.0}),
    # study 56666666 of subject 19999987: NO row (anomaly)
]
# images: (key, subject, study, ViewPosition, split, width, height, on disk)
IMAGES = [
    ("a", 10000032, 50414267, "PA", "train", 56, 64, True),
    ("b", 10000032, 50414267, "LATERAL", "train", 64, 52, True),
    ("c", 10000032, 53189527, "AP", "train", 60, 50, True),
    ("d", 10000764, 57375967, "AP", "train", 62, 54, True),
    ("e", 10000764, 57375967, "", "train", 48, 58, True),
    ("f", 10000935, 50578979, "AP", "train", 54, 66, True),
    ("g", 11000011, 51234567, "PA", "validate", 50, 60, True),
    ("h", 11000011, 51234567, "LL", "validate", 66, 48, True),
    ("i", 11000011, 58888888, "PA", "validate", 52, 62, True),
    ("j", 12000025, 52345678, "AP", "test", 58, 46, True),
    ("k", 12000025, 52345678, "PA", "test", 56, 66, True),
    ("l", 12000025, 52345678, "LATERAL", "test", 68, 56, True),
    ("MISSING", 19999987, 55555555, "AP", "test", 60, 52, False),
    ("m", 19999987, 56666666, "PA", "test", 54, 64, True),
]
SPLIT_FX = {"train": "train", "validate": "val", "test": "test"}


def dicom_id(key):
    h = hashlib.sha1(f"fx-fixtures/mimic-cxr/{key}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def picture(seed, w, h):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.2 + 0.3 * yy / (h - 1) + 0.2 * xx / (w - 1) + 0.1 * np.cos(xx / 4.0 + seed) * np.sin(yy / 3.0)
    v += rng.normal(0.0, 0.02, (h, w))
    return (np.clip(v, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def image_rel(subject, study, dicom):
    s = str(subject)
    return f"files/p{s[:2]}/p{s}/s{study}/{dicom}.jpg"


def write_csv_gz(path, header, rows):
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(header)
    wr.writerows(rows)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(buf.getvalue().encode())
    with gzip.open(path, "rt", newline="") as f:  # self-check: real gzip, same rows
        back = list(csv.reader(f))
    assert back[0] == header and len(back) == len(rows) + 1


def fmt(v):
    return "" if v is None else f"{v:.1f}"


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    labels = {(sub, st): vals for (sub, st, vals) in STUDIES}
    for vals in labels.values():
        assert all(k in LABELS_CSV for k in vals)
    write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id"] + LABELS_CSV,
                 [[sub, st] + [fmt(vals.get(lab)) for lab in LABELS_CSV] for (sub, st, vals) in STUDIES])
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
                 [[dicom_id(k), st, sub, sp] for (k, sub, st, _v, sp, _w, _h, _d) in IMAGES])
    meta = []
    for n, (k, sub, st, view, _sp, w, h, _d) in enumerate(IMAGES):
        desc = "CHEST (PA AND LAT)" if view in ("PA", "LATERAL", "LL") else "CHEST (PORTABLE AP)"
        orient = "Erect" if view != "AP" else "Recumbent"
        meta.append([dicom_id(k), sub, st, desc, view, h, w, 21800506 + n, f"{213014 + n}.531", desc,
                     VIEW_MEANING[view], orient if view else ""])
    write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", META_HEADER, meta)

    expected = []
    for n, (k, sub, st, view, sp, w, h, on_disk) in enumerate(IMAGES):
        assert w != h and 40 <= w <= 70 and 40 <= h <= 70
        rel = image_rel(sub, st, dicom_id(k))
        if on_disk:
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture(300 + n, w, h), mode="L").save(p, format="JPEG", quality=90)
            with Image.open(p) as im:
                assert im.format == "JPEG" and im.mode == "L" and im.size == (w, h)
        vals = labels.get((sub, st))
        if on_disk and vals is not None and view in ("PA", "AP"):
            cls = {}
            for lab in LABELS_FX:
                v = vals.get(lab)
                cls[lab] = 0 if v is None else (1 if v in (1.0, -1.0) else 0)
            expected.append({"dataset": "mimic-cxr", "split": SPLIT_FX[sp], "id": rel.rsplit(".", 1)[0],
                             "width": w, "height": h, "cls": cls, "boxes": [], "masks": {}})
    assert not (root / image_rel(19999987, 55555555, dicom_id("MISSING"))).exists()
    assert {d["split"] for d in expected} == {"train", "val", "test"}
    assert 8 <= len(expected) <= 12, len(expected)
    expected.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d) + "\n" for d in expected))
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 300_000, total
    print(f"mimic-cxr: {len(expected)} expected samples, {total} bytes under {root}")


if __name__ == "__main__":
    make(pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "mimic-cxr")
