#!/usr/bin/env python3
"""Miniature copy of VinDr-CXR 1.0.0 (PhysioNet) for the `vindr-cxr` plugin, with reference labels.

Deletes and recreates fixtures/datasets/vindr-cxr (relative to the repository root):

    annotations/annotations_train.csv    image_id,rad_id,class_name,x_min,y_min,x_max,y_max
                                         one row per box and radiologist; "No finding" rows have
                                         empty coordinates; rows of different images interleave
    annotations/annotations_test.csv     the same columns (the test set is a consensus: one reader)
    annotations/image_labels_train.csv   image_id,rad_id,<22 local labels>,COPD,Lung tumor,
                                         Pneumonia,Tuberculosis,Other diseases,No finding
                                         (3 rows per image, one per radiologist, 0/1)
    annotations/image_labels_test.csv    image_id,<same labels>, but "Other disease" (singular) and
                                         no rad_id — the published test file's spelling
    train/<image_id>.dicom               16-bit uncompressed DICOM (explicit VR little endian), 12 or
                                         14 bits stored; two of them MONOCHROME1, as some real ones
    test/<image_id>.dicom
    expected.jsonl                       what the plugin must read with its DEFAULT options

Sources for the layout: the PhysioNet VinDr-CXR 1.0.0 description (train 15,000 images read by 3
radiologists each, test 3,000 by a consensus of 5; 22 local labels with boxes, 6 global labels),
the published CSV headers as public loaders read them (test's "Other disease" column, train's
rad_id, "No finding" rows without coordinates), and Foundation X's / Ark's VinDr-CXR label lists
(jlianglab/Foundation_X, jlianglab/BenchmarkTransformers dataset/VinDrCXR_*_pe_global_one.txt).

Reference semantics (the plugin's defaults, computed here independently of fx):
  split      the official one: train/ → "train", test/ → "test" (no val drawn by default)
  cls        the paper's 6 labels: Pleural effusion, Lung tumor, Pneumonia, Tuberculosis,
             Other diseases, No finding — 1 when ANY radiologist marked it (the rule the
             `*_pe_global_one.txt` lists follow: they carry images with both "Other diseases"
             and "No finding"), else 0
  boxes      the 14 lesion classes of the Kaggle challenge (other local labels such as
             "Rib fracture" are dropped); boxes of the same label by DIFFERENT radiologists are
             fused: in file order each box joins the fused box of highest IoU (> 0.5, earliest on
             ties) that has no box of its radiologist yet, else it opens a new one; a fused box is
             the coordinate-wise mean of its members; listed in order of creation
  masks      none

Anomalies: image_labels_train.csv and annotations_train.csv name an image whose .dicom is missing
(not in expected.jsonl: the plugin skips it when loading), and one .dicom on disk is named by no CSV.

Deterministic (fixed ids, UIDs and noise seeds), self-checking. Run from anywhere:
    python3 scripts/dataset_fixtures/vindr_cxr.py
Requires numpy, pydicom.
"""

import csv
import hashlib
import json
import pathlib
import shutil
import sys
import uuid

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

REPO = pathlib.Path(__file__).resolve().parents[2]
NAME = "vindr-cxr"
SIZE_LIMIT = 300_000
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation

LOCAL = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
         "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
         "Lung cavity", "Lung cyst", "Mediastinal shift", "Nodule/Mass", "Pleural effusion",
         "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion"]
GLOBAL_TRAIN = ["COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "No finding"]
GLOBAL_TEST = ["COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other disease", "No finding"]
LESIONS = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
           "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
           "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis"]
PAPER_CLS = ["Pleural effusion", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "No finding"]


def image_id(k):
    return hashlib.md5(f"fx-fixture/vindr-cxr/{k}".encode()).hexdigest()


def fixed_uid(name):
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "fx-dataset-fixtures/" + name).int)


# One image: (key, split, width, height, photometric, bits stored, readers).
# A reader: (rad_id, [(label, x0, y0, x1, y1)], {global or extra image-level label: 1}).
# Local labels of the image-level file are 1 exactly for the labels the reader drew boxes of;
# "No finding" is 1 for a reader with nothing. Test images have one reader (the consensus).
IMAGES = [
    ("t0", "train", 64, 52, "MONOCHROME2", 14, [
        ("R1", [], {}), ("R4", [], {}), ("R9", [], {})]),
    ("t1", "train", 60, 48, "MONOCHROME1", 12, [
        ("R2", [("Cardiomegaly", 18.0, 26.0, 44.0, 40.0), ("Aortic enlargement", 30.0, 8.0, 38.0, 16.0)],
         {"Other diseases": 1}),
        ("R5", [("Cardiomegaly", 19.0, 27.0, 45.0, 41.0)], {"Other diseases": 1}),
        ("R9", [("Cardiomegaly", 17.0, 25.0, 43.0, 42.0)], {})]),
    ("t2", "train", 56, 44, "MONOCHROME2", 14, [
        ("R1", [("Pleural effusion", 4.0, 28.0, 20.0, 40.0)], {"Pneumonia": 1}),
        ("R3", [("Pleural effusion", 5.0, 29.0, 21.0, 41.0), ("Pleural effusion", 38.0, 30.0, 52.0, 40.0)],
         {"Tuberculosis": 1}),
        ("R7", [], {})]),
    ("t3", "train", 66, 50, "MONOCHROME2", 12, [
        ("R4", [("Nodule/Mass", 10.0, 10.0, 20.0, 20.0)], {"Lung tumor": 1}),
        ("R6", [("Nodule/Mass", 15.0, 15.0, 25.0, 25.0)], {}),
        ("R8", [("Rib fracture", 40.5, 6.25, 52.75, 12.5)], {})]),
    ("t4", "train", 62, 54, "MONOCHROME2", 14, [
        ("R10", [("Aortic enlargement", 28.0, 6.0, 36.0, 14.0)], {}),
        ("R11", [("Infiltration", 8.0, 10.0, 22.0, 24.0), ("Infiltration", 9.0, 11.0, 23.0, 25.0),
                 ("Aortic enlargement", 28.5, 6.5, 36.5, 14.5)], {"Pneumonia": 1}),
        ("R12", [("Infiltration", 8.25, 10.25, 22.25, 24.25), ("Aortic enlargement", 27.5, 5.5, 35.5, 13.5)],
         {"Other diseases": 1})]),
    ("t5", "train", 58, 46, "MONOCHROME2", 12, [
        ("R13", [], {"Other diseases": 1}), ("R14", [], {}), ("R15", [], {})]),
    ("s0", "test", 64, 50, "MONOCHROME2", 14, [
        ("R8", [("Cardiomegaly", 20.0, 28.0, 46.0, 42.0), ("Aortic enlargement", 30.25, 8.5, 38.75, 17.0)],
         {"Other diseases": 1})]),
    ("s1", "test", 60, 52, "MONOCHROME2", 12, [("R8", [], {})]),
    ("s2", "test", 54, 44, "MONOCHROME1", 14, [
        ("R9", [("Pneumothorax", 36.0, 4.0, 50.0, 20.0), ("Lung Opacity", 6.0, 18.0, 18.0, 30.0),
                ("Lung Opacity", 6.5, 18.5, 18.5, 30.5)], {"Pneumonia": 1})]),
]
MISSING = ("t6", "train", 60, 50, "MONOCHROME2", 12, [
    ("R2", [("Consolidation", 10.0, 10.0, 20.0, 20.0)], {"Pneumonia": 1}), ("R3", [], {}), ("R5", [], {})])
UNLISTED = ("u0", "train", 52, 40, "MONOCHROME2", 12, [])


def pixels(seed, w, h, bits):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.2 + 0.5 * xx / (w - 1) + 0.2 * np.sin(yy / 5.0) + rng.normal(0.0, 0.03, (h, w))
    v = np.clip(v, 0.0, 1.0)
    return np.round(v * (2 ** bits - 1)).astype(np.uint16)


def write_dicom(path, key, w, h, photometric, bits, seed):
    sop = fixed_uid(f"vindr-cxr/sop/{key}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = fixed_uid("implementation")
    meta.ImplementationVersionName = "FX_FIXTURES_1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "DX"
    ds.PatientSex = "O"
    ds.PatientAge = "000Y"
    ds.StudyInstanceUID = fixed_uid(f"vindr-cxr/study/{key}")
    ds.SeriesInstanceUID = fixed_uid(f"vindr-cxr/series/{key}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = h
    ds.Columns = w
    ds.PixelSpacing = [0.175, 0.175]
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2 ** (bits - 1)
    ds.WindowWidth = 2 ** bits
    arr = pixels(seed, w, h, bits)
    ds.PixelData = arr.tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert (back.Rows, back.Columns, back.BitsStored) == (h, w, bits)
    assert back.PhotometricInterpretation == photometric
    assert np.array_equal(back.pixel_array, arr)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fuse(rows):
    """rows: [(rad, label, box)] in file order → [(label, fused box)] in creation order."""
    clusters = []  # [label, [rads], [boxes], fused]
    for rad, label, box in rows:
        best, best_iou = None, 0.5
        for c in clusters:
            if c[0] != label or rad in c[1]:
                continue
            v = iou(c[3], box)
            assert abs(v - 0.5) > 1e-3, "fixture IoU too close to the threshold"
            if v > best_iou:
                best, best_iou = c, v
        if best is None:
            clusters.append([label, [rad], [box], box])
        else:
            best[1].append(rad)
            best[2].append(box)
            best[3] = tuple(sum(b[i] for b in best[2]) / len(best[2]) for i in range(4))
    return [(c[0], c[3]) for c in clusters]


def fmt(v):
    return repr(float(v))


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "test").mkdir()

    everything = IMAGES + [MISSING]
    for n, (key, split, w, h, phot, bits, _) in enumerate(IMAGES + [UNLISTED]):
        write_dicom(root / split / f"{image_id(key)}.dicom", key, w, h, phot, bits, seed=100 + n)

    # Image-level labels.
    for split, globals_, with_rad in (("train", GLOBAL_TRAIN, True), ("test", GLOBAL_TEST, False)):
        header = ["image_id"] + (["rad_id"] if with_rad else []) + LOCAL + globals_
        with open(root / "annotations" / f"image_labels_{split}.csv", "w", newline="") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(header)
            for key, s, w, h, _, _, readers in everything:
                if s != split:
                    continue
                for rad, boxes, extra in readers:
                    vals = {lab: 0 for lab in LOCAL + globals_}
                    for (lab, *_b) in boxes:
                        vals[lab] = 1
                    for lab, v in extra.items():
                        vals["Other disease" if (lab == "Other diseases" and split == "test") else lab] = v
                    if not boxes and not extra:
                        vals["No finding"] = 1
                    row = [image_id(key)] + ([rad] if with_rad else []) + [vals[l] for l in LOCAL + globals_]
                    wr.writerow(row)

    # Box annotations: rows of the images interleaved (round robin over images' rows).
    per_split_rows = {"train": [], "test": []}
    for key, split, w, h, _, _, readers in everything:
        rows = []
        for rad, boxes, _extra in readers:
            if not boxes:
                rows.append([image_id(key), rad, "No finding", "", "", "", ""])
            for (lab, x0, y0, x1, y1) in boxes:
                assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (key, lab)
                rows.append([image_id(key), rad, lab, fmt(x0), fmt(y0), fmt(x1), fmt(y1)])
        per_split_rows[split].append(rows)
    for split, groups in per_split_rows.items():
        out = []
        while any(groups):
            for g in groups:
                if g:
                    out.append(g.pop(0))
        with open(root / "annotations" / f"annotations_{split}.csv", "w", newline="") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
            wr.writerows(out)

    # Reference lines, from the tables above (not from the files).
    lines = []
    for key, split, w, h, _, _, readers in IMAGES:
        marked = set()
        rows = []
        for rad, boxes, extra in readers:
            marked |= {lab for (lab, *_b) in boxes} | {lab for lab, v in extra.items() if v}
            if not boxes and not extra:
                marked.add("No finding")
        # file order of one image's rows = readers in order, boxes in order
        for rad, boxes, _extra in readers:
            for (lab, x0, y0, x1, y1) in boxes:
                if lab in LESIONS:
                    rows.append((rad, lab, (x0, y0, x1, y1)))
        fused = fuse(rows)
        lines.append({
            "dataset": NAME, "split": split, "id": f"{split}/{image_id(key)}", "width": w, "height": h,
            "cls": {lab: int(lab in marked) for lab in PAPER_CLS},
            "boxes": [{"label": lab, "x": float(b[0]), "y": float(b[1]), "w": float(b[2] - b[0]),
                       "h": float(b[3] - b[1])} for lab, b in fused],
            "masks": {},
        })
    lines.sort(key=lambda d: d["id"])
    text = "".join(json.dumps(d) + "\n" for d in lines)
    (root / "expected.jsonl").write_text(text)

    # Self-checks: the files hold what was meant.
    with open(root / "annotations" / "image_labels_test.csv", newline="") as f:
        hdr = next(csv.reader(f))
    assert "rad_id" not in hdr and "Other disease" in hdr and len(hdr) == 1 + 28
    with open(root / "annotations" / "image_labels_train.csv", newline="") as f:
        n = sum(1 for _ in csv.DictReader(f))
    assert n == 3 * sum(1 for i in everything if i[1] == "train")
    by_id = {d["id"]: d for d in lines}
    t1 = by_id[f"train/{image_id('t1')}"]
    assert len(t1["boxes"]) == 2 and t1["boxes"][0]["label"] == "Cardiomegaly", t1
    t4 = by_id[f"train/{image_id('t4')}"]
    assert [b["label"] for b in t4["boxes"]] == ["Aortic enlargement", "Infiltration", "Infiltration"], t4
    assert len(by_id[f"train/{image_id('t3')}"]["boxes"]) == 2  # no IoU > 0.5, Rib fracture dropped
    assert not (root / "train" / f"{image_id('t6')}.dicom").exists()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < SIZE_LIMIT, size
    print(f"{root}: {len(lines)} samples, {size} bytes")
    return lines


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / NAME)
    sys.exit(0)
