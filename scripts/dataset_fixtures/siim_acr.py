#!/usr/bin/env python3
"""Miniature copy of the SIIM-ACR Pneumothorax Segmentation download (Kaggle, 2019) for the fx
`siim-acr` plugin, with the labels fx must read computed independently of fx.

Layout written under fixtures/datasets/siim-acr/ (deleted and recreated):

  train-rle.csv                 stage 1 labels: header `ImageId, EncodedPixels` (the second column
                                name has a leading space), values written as the real file writes
                                them (` -1`, ` 387620 23 996 33 ...`: a leading space); one row per
                                pneumothorax, several rows for an image with several
  stage_2_train.csv             stage 2 labels: `ImageId,EncodedPixels` without spaces; covers the
                                stage 1 train AND test images (the stage 1 test set got its labels
                                in stage 2)
  dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm   stage 1 train
  dicom-images-test/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm    stage 1 test
  stage_2_images/<ImageId>.dcm  stage 2 test images (no labels anywhere)
  stage_2_sample_submission.csv `ImageId,EncodedPixels`, one `-1` row per stage 2 test image
  expected.jsonl                what fx must read with the default options (stage_2_train.csv)
  expected-stage1.jsonl         what fx must read with options.csv = "train-rle.csv"

DICOMs follow the published files: Secondary Capture, Modality CR, MONOCHROME2, 8 bits, JPEG
Baseline (1.2.840.10008.1.2.4.50), UIDs under dcmtk's root 1.2.276.0.7230010.3 with the
`.1.2.` (study), `.1.3.` (series), `.1.4.` (instance) pattern of the real ImageIds, PatientID a
UUID, ViewPosition PA/AP. Real images are 1024 x 1024; here they are small and non-square, and each
mask's run-length code is written for its own image's size.

RLE convention (the competition's mask_functions.py, rle2mask/mask2rle): pairs `start length`,
starts RELATIVE to the end of the previous run, pixels counted column-major (x outer, y inner).
Encoded here by this script's own encoder and checked against its own decoder.

Deliberate anomalies (none of them in expected*.jsonl):
  - the last row of both label CSVs names an ImageId whose .dcm exists nowhere;
  - one DICOM in dicom-images-train is named by no label row (the real train folder has such images);
  - the stage 2 test images have no labels.
Realistic quirks kept: an image with two rows (two pneumothoraces, overlapping: the masks are OR'ed),
a mask whose runs wrap from one column to the next, a mask that reaches the last pixel.

Deterministic (fixed seeds and UIDs), idempotent, self-checking.
Run from the repository root:  python3 scripts/dataset_fixtures/siim_acr.py
"""

import csv
import io
import json
import shutil
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

NAME = "siim-acr"
LABEL = "Pneumothorax"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SIZE_LIMIT = 300_000
ROOT_UID = "1.2.276.0.7230010.3"
# The real files carry PatientAge as a bare number (`38`), which pydicom flags as an invalid AS.
warnings.filterwarnings("ignore", message="Invalid value for VR AS")


# ------------------------------------------------------------------------------------ helpers
def uid(kind, k):
    """A UID in the shape of SIIM's: 1.2.276.0.7230010.3.1.<kind>.8323329.<n>.1517875<t>.<r>."""
    kinds = {"study": 2, "series": 3, "image": 4}
    return f"{ROOT_UID}.1.{kinds[kind]}.8323329.{1000 + 37 * k}.{1517875160 + 11 * k}.{100000 + 7919 * k}"


def picture(seed, w, h, mask):
    """uint8 image (h rows, w columns): gradient, texture, noise; darker where the mask is set."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.25 + 0.35 * xx / (w - 1) + 0.2 * yy / (h - 1) + 0.05 * np.sin(xx / 3.0 + seed)
    v -= 0.2 * mask
    v += rng.normal(0.0, 0.02, (h, w))
    return (np.clip(v, 0, 1) * 255).round().astype(np.uint8)


def ellipse(w, h, cx, cy, rx, ry):
    yy, xx = np.mgrid[0:h, 0:w]
    return (((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0).astype(np.uint8)


def rle_encode(mask):
    """SIIM convention: column-major, relative starts. Empty mask -> '-1'."""
    h, w = mask.shape
    flat = mask.T.reshape(-1)  # column-major: x outer, y inner
    out, prev_end, i, n = [], 0, 0, flat.size
    while i < n:
        if flat[i]:
            j = i
            while j < n and flat[j]:
                j += 1
            out += [i - prev_end, j - i]
            prev_end = j
            i = j
        else:
            i += 1
    return " ".join(map(str, out)) if out else "-1"


def rle_decode(rle, w, h):
    """An independent decoder (loop over pairs) used for the self-check."""
    m = np.zeros(w * h, np.uint8)
    if rle.strip() in ("", "-1"):
        return m.reshape(w, h).T
    v = [int(t) for t in rle.split()]
    pos = 0
    for s, l in zip(v[0::2], v[1::2]):
        pos += s
        m[pos:pos + l] = 1
        pos += l
    return m.reshape(w, h).T  # (w, h) column-major -> transpose to (h, w)


def tight_box(mask):
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return {"label": LABEL, "x": float(x0), "y": float(y0), "w": float(x1 - x0), "h": float(y1 - y0)}


def write_dicom(path, image_id, k, pixels8, view):
    h, w = pixels8.shape
    buf = io.BytesIO()
    Image.fromarray(pixels8).save(buf, format="JPEG", quality=95)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_STORAGE
    meta.MediaStorageSOPInstanceUID = image_id
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationClassUID = "1.2.276.0.7230010.3.0.3.6.0"
    meta.ImplementationVersionName = "OFFIS_DCMTK_360"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SC_STORAGE
    ds.SOPInstanceUID = image_id
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = f"view: {view}"
    pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fx-fixtures/siim/{k}"))
    ds.PatientName = pid
    ds.PatientID = pid
    ds.PatientBirthDate = ""
    ds.PatientSex = "MF"[k % 2]
    ds.PatientAge = str(30 + 3 * k)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.StudyInstanceUID = uid("study", k)
    ds.SeriesInstanceUID = uid("series", k)
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = h
    ds.Columns = w
    ds.PixelSpacing = [0.143, 0.143]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert str(back.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.50"
    assert (back.Rows, back.Columns) == (h, w) and back.SOPInstanceUID == image_id
    arr = back.pixel_array
    assert arr.shape == (h, w), arr.shape
    assert int(np.abs(arr.astype(int) - pixels8.astype(int)).max()) <= 12


# ------------------------------------------------------------------------------------ content
# (k, folder, w, h, view, [regions]) — each region is one CSV row (one pneumothorax); an image
# without regions is a negative (` -1`). folder: train (stage 1 train), test (stage 1 test).
def regions_for(k, w, h):
    if k == 1:  # one pneumothorax at the right edge
        return [ellipse(w, h, w - 8, 20, 9, 12)]
    if k == 3:  # two overlapping pneumothoraces (two rows, OR'ed)
        return [ellipse(w, h, 14, 16, 8, 10), ellipse(w, h, 20, 22, 8, 8)]
    if k == 4:  # a full-height band: runs wrap from the bottom of one column to the top of the next
        m = np.zeros((h, w), np.uint8)
        m[:, 30:33] = 1
        m[h - 5:, 29] = 1
        m[:4, 33] = 1
        return [m]
    if k == 6:  # reaches the very last pixel (bottom-right corner)
        m = np.zeros((h, w), np.uint8)
        m[h - 6:, w - 5:] = 1
        return [m]
    if k == 8:  # stage 1 test image, positive
        return [ellipse(w, h, 25, 18, 10, 7)]
    return []


IMAGES = [
    # k, folder, w, h, view
    (0, "train", 64, 48, "PA"),
    (1, "train", 60, 50, "AP"),
    (2, "train", 56, 44, "PA"),
    (3, "train", 66, 52, "PA"),
    (4, "train", 62, 46, "AP"),
    (5, "train", 58, 48, "PA"),
    (6, "train", 70, 50, "PA"),
    (7, "test", 60, 46, "PA"),
    (8, "test", 64, 50, "AP"),
    (9, "test", 54, 42, "PA"),
]
UNLISTED = (10, "train", 62, 48, "PA")   # on disk, in no label CSV
MISSING = (11, "train", 60, 48, "AP")    # in both label CSVs, on disk nowhere
STAGE2_TEST = [(12, 64, 48, "PA"), (13, 58, 46, "AP")]


def make(root: Path):
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    folders = {"train": "dicom-images-train", "test": "dicom-images-test"}

    rows1, rows2, lines = [], [], {}
    for (k, folder, w, h, view) in IMAGES + [UNLISTED]:
        image_id = uid("image", k)
        regions = regions_for(k, w, h)
        union = np.zeros((h, w), np.uint8)
        for r in regions:
            union |= r
        path = root / folders[folder] / uid("study", k) / uid("series", k) / f"{image_id}.dcm"
        write_dicom(path, image_id, k, picture(k, w, h, union), view)
        if (k, folder, w, h, view) == UNLISTED:
            continue
        codes = [rle_encode(r) for r in regions] or ["-1"]
        for c, r in zip(codes, regions):
            assert np.array_equal(rle_decode(c, w, h), r), (k, c)
        for c in codes:
            rows2.append((image_id, c))
            if folder == "train":
                rows1.append((image_id, c))
        back = np.zeros((h, w), np.uint8)
        for c in codes:
            back |= rle_decode(c, w, h)
        assert np.array_equal(back, union)
        ident = str(path.relative_to(root).with_suffix(""))
        positive = bool(union.any())
        lines[image_id] = (folder, {
            "dataset": NAME, "split": None, "id": ident, "width": w, "height": h,
            "cls": {LABEL: int(positive)},
            "boxes": [tight_box(union)] if positive else [],
            "masks": {LABEL: int(union.sum())},
        })
    # the anomaly: a labelled image that exists nowhere
    rows1.append((uid("image", MISSING[0]), "-1"))
    rows2.append((uid("image", MISSING[0]), "-1"))

    for (k, w, h, view) in STAGE2_TEST:
        image_id = uid("image", k)
        write_dicom(root / "stage_2_images" / f"{image_id}.dcm", image_id, k, picture(k, w, h, np.zeros((h, w))), view)

    # stage 1: `ImageId, EncodedPixels` with a space before every value, as the real file
    with open(root / "train-rle.csv", "w", newline="") as f:
        f.write("ImageId, EncodedPixels\n")
        for image_id, c in rows1:
            f.write(f"{image_id}, {c}\n")
    with open(root / "stage_2_train.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["ImageId", "EncodedPixels"])
        wr.writerows(rows2)
    with open(root / "stage_2_sample_submission.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["ImageId", "EncodedPixels"])
        wr.writerows([(uid("image", k), "-1") for (k, *_) in STAGE2_TEST])

    def dump(name, keep):
        sel = sorted((d for (folder, d) in lines.values() if keep(folder)), key=lambda d: d["id"])
        text = "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in sel)
        (root / name).write_text(text)
        return len(sel)

    n2 = dump("expected.jsonl", lambda f: True)
    n1 = dump("expected-stage1.jsonl", lambda f: f == "train")

    # self-checks: the CSVs parse back to the rows meant; every expected id exists on disk
    with open(root / "train-rle.csv") as f:
        r = list(csv.reader(f))
    assert r[0] == ["ImageId", " EncodedPixels"] and len(r) == 1 + len(rows1)
    assert all(v.startswith(" ") for _, v in r[1:])
    for name in ["expected.jsonl", "expected-stage1.jsonl"]:
        for line in (root / name).read_text().splitlines():
            d = json.loads(line)
            assert (root / (d["id"] + ".dcm")).is_file(), d["id"]
            assert d["width"] != d["height"]
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT, total
    print(f"{root}: {n2} samples (stage 2 CSV), {n1} (stage 1 CSV), {total} bytes")


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[2]
    make(repo / "fixtures" / "datasets" / NAME)
    sys.exit(0)
