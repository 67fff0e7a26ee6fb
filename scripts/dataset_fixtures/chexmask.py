#!/usr/bin/env python3
"""Miniature copy of CheXmask's VinDr-CXR table (with the VinDr-CXR images it refers to) for the
`chexmask` plugin, with reference labels.

Deletes and recreates fixtures/datasets/chexmask (relative to the repository root):

    OriginalResolution/VinDr-CXR.csv   image_id,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,
                                       Right Lung,Heart,Height,Width — as the CheXmask release
                                       (PhysioNet chexmask-cxr-segmentation-data) publishes it: masks
                                       at the original resolution (Height × Width) as run-length codes
                                       (1-based absolute starts, row-major, "start length" pairs, an
                                       empty mask as an empty field); Landmarks as numpy prints the
                                       (120, 2) integer array (a quoted multi-line field)
    VinDr-CXR/train/<image_id>.dicom   the VinDr-CXR images the rows refer to (CheXmask ships none):
    VinDr-CXR/test/<image_id>.dicom    a VinDr-CXR PhysioNet tree, passed as options.images
    expected.jsonl                     what the plugin reads with options {"images": "VinDr-CXR"}

Sources: the CheXmask README / DATA_DICTIONARY on PhysioNet (columns, "use Dice RCA (Mean) >= 0.7")
and github.com/ngaggion/CheXmask-Database (`DataPostprocessing/utils.py`: get_RLE_from_mask /
get_mask_from_RLE; `DataPostprocessing/ReversePreprocessing/back_vin.py`: how OriginalResolution/
VinDr-CXR.csv is written, its column order and `image_id` column; Example.ipynb: 18,000 rows).

Reference semantics (the plugin's defaults, computed here from the masks before encoding them):
  rows kept       Dice RCA (Mean) >= 0.7
  split           where the image is: train/ → "train", test/ → "test" (no val drawn by default)
  seg labels      Heart, Left Lung, Right Lung (the paper's order); masks = foreground pixel counts
  loc labels      the same; boxes = the tight boxes of the non-empty masks in that order
                  (x1, y1 exclusive)

Anomalies: a row below the quality threshold (its image exists) and a row whose image is in
neither folder (both absent from expected.jsonl; the latter is skipped when loaded); one row has
an empty Heart code; one row sits exactly at the threshold 0.7 (kept).

Deterministic, self-checking. Run from anywhere:  python3 scripts/dataset_fixtures/chexmask.py
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
NAME = "chexmask"
SIZE_LIMIT = 300_000
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SEG = ["Heart", "Left Lung", "Right Lung"]
COLUMNS = ["image_id", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung",
           "Heart", "Height", "Width"]

# (key, folder or None = image nowhere, width, height, photometric, dice mean, dice max, empty heart)
ROWS = [
    ("a0", "train", 60, 50, "MONOCHROME2", 0.9123456789, 0.9345, False),
    ("a1", "train", 56, 48, "MONOCHROME1", 0.8812, 0.9011, False),
    ("a2", "test", 64, 52, "MONOCHROME2", 0.9307, 0.9512, False),
    ("a3", "train", 58, 46, "MONOCHROME2", 0.6534, 0.7123, False),   # below 0.7: dropped
    ("a4", "train", 62, 54, "MONOCHROME2", 0.7542, 0.8021, True),    # empty Heart code
    ("a5", "test", 54, 44, "MONOCHROME2", 0.8245, 0.8532, False),
    ("a6", None, 60, 48, "MONOCHROME2", 0.9001, 0.9214, False),      # image missing
    ("a7", "train", 66, 50, "MONOCHROME2", 0.7, 0.7412, False),      # exactly at the threshold
    ("a8", "test", 60, 52, "MONOCHROME2", 0.8611, 0.8893, False),
    ("a9", "train", 52, 64, "MONOCHROME2", 0.7934, 0.8123, False),
]


def image_id(k):
    return hashlib.md5(f"fx-fixture/chexmask/{k}".encode()).hexdigest()


def fixed_uid(name):
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "fx-dataset-fixtures/" + name).int)


def write_dicom(path, key, w, h, photometric, seed):
    sop = fixed_uid(f"chexmask/sop/{key}")
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
    ds.StudyInstanceUID = fixed_uid(f"chexmask/study/{key}")
    ds.SeriesInstanceUID = fixed_uid(f"chexmask/series/{key}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 14, 13, 0
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = np.clip(0.3 + 0.4 * yy / h + rng.normal(0, 0.03, (h, w)), 0, 1)
    arr = np.round(v * 16383).astype(np.uint16)
    ds.PixelData = arr.tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert (back.Rows, back.Columns) == (h, w) and np.array_equal(back.pixel_array, arr)


def ellipse_contour(cx, cy, rx, ry, n, phase):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False) + phase
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def organ_masks(rng, w, h):
    """Landmarks (44 right lung, 50 left lung, 26 heart, as HybridGNet's) and masks: each organ
    the pixels whose centre lies inside its ellipse."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    organs = {
        # image left = the patient's right lung
        "Right Lung": (0.28 * w, 0.45 * h, 0.15 * w, 0.30 * h, 44),
        "Left Lung": (0.72 * w, 0.45 * h, 0.15 * w, 0.30 * h, 50),
        "Heart": (0.55 * w, 0.62 * h, 0.14 * w, 0.13 * h, 26),
    }
    masks, marks = {}, []
    for name in ["Right Lung", "Left Lung", "Heart"]:
        cx, cy, rx, ry, n = organs[name]
        cx += rng.uniform(-1.3, 1.3)
        cy += rng.uniform(-1.3, 1.3)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0
        masks[name] = inside.astype(np.uint8)
        marks.append(np.round(ellipse_contour(cx, cy, rx, ry, n, rng.uniform(0, 0.3))).astype(int))
    return masks, np.concatenate(marks, axis=0)


def rle_encode(mask):
    """CheXmask's convention: row-major, absolute 1-based starts, 'start length' pairs."""
    flat = np.concatenate([[0], mask.flatten().astype(int), [0]])
    change = np.where(flat[1:] != flat[:-1])[0] + 1
    change[1::2] -= change[::2]
    return " ".join(str(x) for x in change)


def rle_decode(rle, h, w):
    m = np.zeros(h * w, dtype=np.uint8)
    v = [int(x) for x in rle.split()]
    for s, n in zip(v[::2], v[1::2]):
        m[s - 1:s - 1 + n] = 1
    return m.reshape(h, w)


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    (root / "OriginalResolution").mkdir(parents=True)
    for f in ("train", "test"):
        (root / "VinDr-CXR" / f).mkdir(parents=True)
    rng = np.random.default_rng(11)
    rows, lines = [], []
    for n, (key, folder, w, h, phot, dmean, dmax, empty_heart) in enumerate(ROWS):
        masks, landmarks = organ_masks(rng, w, h)
        if empty_heart:
            masks["Heart"] = np.zeros((h, w), dtype=np.uint8)
        codes = {k: rle_encode(m) for k, m in masks.items()}
        for k, m in masks.items():
            assert np.array_equal(rle_decode(codes[k], h, w), m), (key, k)
        assert (codes["Heart"] == "") == empty_heart
        rows.append([image_id(key), repr(dmean), repr(dmax), str(landmarks), codes["Left Lung"],
                     codes["Right Lung"], codes["Heart"], h, w])
        if folder is not None:
            write_dicom(root / "VinDr-CXR" / folder / f"{image_id(key)}.dicom", key, w, h, phot, 200 + n)
        if folder is None or dmean < 0.7:
            continue
        boxes = []
        for lab in SEG:
            ys, xs = np.nonzero(masks[lab])
            if len(xs):
                boxes.append({"label": lab, "x": float(xs.min()), "y": float(ys.min()),
                              "w": float(xs.max() + 1 - xs.min()), "h": float(ys.max() + 1 - ys.min())})
        lines.append({
            "dataset": NAME, "split": folder, "id": f"VinDr-CXR/{folder}/{image_id(key)}",
            "width": w, "height": h, "cls": {}, "boxes": boxes,
            "masks": {lab: int(masks[lab].sum()) for lab in SEG},
        })
    with open(root / "OriginalResolution" / "VinDr-CXR.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(COLUMNS)
        wr.writerows(rows)
    lines.sort(key=lambda d: d["id"])
    (root / "expected.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))

    # Self-checks: read the table back and decode it.
    with open(root / "OriginalResolution" / "VinDr-CXR.csv", newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0].keys()) == COLUMNS and len(back) == len(ROWS)
    assert "\n" in back[0]["Landmarks"] and back[0]["Landmarks"].startswith("[[")
    by_id = {d["id"].split("/")[-1]: d for d in lines}
    for r in back:
        d = by_id.get(r["image_id"])
        if d is None:
            continue
        for lab in SEG:
            m = rle_decode(r[lab], int(r["Height"]), int(r["Width"]))
            assert int(m.sum()) == d["masks"][lab]
    assert len(lines) == 8 and sum(d["split"] == "test" for d in lines) == 3
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < SIZE_LIMIT, size
    print(f"{root}: {len(lines)} samples, {size} bytes")
    return lines


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / NAME)
    sys.exit(0)
