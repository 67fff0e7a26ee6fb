#!/usr/bin/env python3
"""Miniature copy of the CANDID-PTX download (Feng et al., Radiology: AI 2021; University of
Otago / Auckland Figshare, doi 10.17608/k6.auckland.14173982, after a data-use agreement) for the fx
`candid-ptx` plugin, with the labels fx must read computed independently of fx.

The publisher gives no file-by-file description; the layout below is the most faithful reading of
the paper and of public code that reads the download (column names, file names, conventions):

  Pneumothorax_reports.csv   SOPInstanceUID,StudyInstanceUID,filename,EncodedPixels,Report
                             one row per pneumothorax (several rows for an image with several,
                             consecutive), `-1` for an image without; `filename` starts with the
                             anonymised patient index (`P00017_...`); `Report` is the free-text
                             report, quoted, with commas and line breaks
  chest_tube.csv             anon_SOPUID,annotation_ref,mask_rle   one row per segmented tube;
                             only images with a tube are listed
  acute_rib_fracture.csv     anon_SOPUID,annotation_ref,mask_rle   one row per segmented fracture
  dataset/<SOPInstanceUID>   the DICOMs, named by their SOPInstanceUID WITHOUT an extension
  expected.jsonl             what fx must read with the default options (findings = pneumothorax)
  expected-all.jsonl         what fx must read with options.findings = "all"

Masks use the SIIM-ACR run-length convention (relative starts, column-major), as the code that
reads CANDID-PTX decodes them (rle2mask: cumulative starts, reshape(width, height).T). Real
images are 1024 x 1024; here they are small and non-square and each code is written for its own
image's size. DICOMs: CR, 16 bits allocated, 12 stored, uncompressed explicit VR little endian,
MONOCHROME2 except one MONOCHROME1.

Deliberate anomalies (none in expected*.jsonl):
  - a Pneumothorax_reports.csv row (with a chest_tube.csv row) whose DICOM is not in dataset/;
  - a DICOM in dataset/ named by no CSV row;
  - a chest_tube.csv row whose SOPInstanceUID is not in Pneumothorax_reports.csv (ignored).
Realistic quirks kept: an image with two pneumothorax rows and two chest-tube rows (OR'ed),
multi-line quoted reports, patients with several images.

Deterministic, idempotent, self-checking. Run from the repository root:
    python3 scripts/dataset_fixtures/candid_ptx.py
"""

import csv
import json
import shutil
import sys
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

NAME = "candid-ptx"
LABELS = ["Pneumothorax", "Chest Tube", "Rib Fracture"]
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
SIZE_LIMIT = 300_000
# The anonymised UIDs of CANDID-PTX have components with leading zeros (e.g. `7.8.081.133986...065936`),
# which pydicom flags as invalid UI values; the fixture keeps that quirk.
warnings.filterwarnings("ignore", message="Invalid value for VR UI")


def fake_uid(k):
    """An anonymised UID in the shape of CANDID-PTX's (e.g. 8.5.323.562604.1.588.4.7008319959.7387629250.60820)."""
    r = np.random.default_rng(1000 + k)
    d = lambda n: "".join(str(x) for x in r.integers(0, 10, n))  # noqa: E731
    return f"{r.integers(1, 10)}.{r.integers(1, 10)}.{d(3)}.{d(6)}.{r.integers(1, 10)}.{d(3)}.{r.integers(0, 10)}.{d(10)}.{d(10)}.{d(5)}"


def ellipse(w, h, cx, cy, rx, ry):
    yy, xx = np.mgrid[0:h, 0:w]
    return (((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0).astype(np.uint8)


def tube(w, h, x0, y0, x1, y1, width=2):
    """A thin straight tube from (x0, y0) to (x1, y1)."""
    m = np.zeros((h, w), np.uint8)
    for t in np.linspace(0.0, 1.0, 200):
        x, y = int(round(x0 + t * (x1 - x0))), int(round(y0 + t * (y1 - y0)))
        m[max(y, 0):min(y + width, h), max(x, 0):min(x + width, w)] = 1
    return m


def rle_encode(mask):
    h, w = mask.shape
    flat = mask.T.reshape(-1)
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
    m = np.zeros(w * h, np.uint8)
    if rle.strip() in ("", "-1"):
        return m.reshape(w, h).T
    v = [int(t) for t in rle.split()]
    pos = 0
    for s, l in zip(v[0::2], v[1::2]):
        pos += s
        m[pos:pos + l] = 1
        pos += l
    return m.reshape(w, h).T


def write_dicom(path, sop, study, k, w, h, mono1, dark):
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.3 + 0.3 * xx / (w - 1) + 0.2 * yy / (h - 1) - 0.2 * dark + rng.normal(0, 0.02, (h, w))
    px = (np.clip(v, 0, 1) * 4095).round().astype(np.uint16)
    if mono1:
        px = (4095 - px).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_STORAGE
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + ".1"
    ds.Modality = "CR"
    ds.PatientID = ""
    ds.PatientName = ""
    ds.BodyPartExamined = "CHEST"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.Rows = h
    ds.Columns = w
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = px.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SOPInstanceUID == sop and back.pixel_array.shape == (h, w)
    assert np.array_equal(back.pixel_array, px)


# (k, patient, w, h, mono1, [pneumothorax regions], [tube regions], [fracture regions])
def content(k, w, h):
    ptx, ct, rf = [], [], []
    if k == 0:
        ptx = [ellipse(w, h, w - 10, 18, 9, 13)]
        ct = [tube(w, h, w - 4, h - 3, w - 14, 10)]
    elif k == 2:
        ptx = [ellipse(w, h, 12, 14, 8, 9), ellipse(w, h, 16, 20, 7, 8)]
        ct = [tube(w, h, 2, h - 3, 12, 8), tube(w, h, 4, h - 2, 20, 12)]
    elif k == 3:
        rf = [ellipse(w, h, 40, 30, 3, 2)]
    elif k == 4:
        ptx = [ellipse(w, h, 44, 14, 10, 8)]
        rf = [ellipse(w, h, 10, 12, 3, 2), ellipse(w, h, 12, 36, 2, 3)]
    elif k == 6:
        ct = [tube(w, h, 50, h - 1, 54, 5)]
    elif k == 7:
        ptx = [ellipse(w, h, 30, 10, 12, 6)]
    return ptx, ct, rf


IMAGES = [  # k, patient index, w, h, MONOCHROME1
    (0, 17, 64, 50, False), (1, 17, 60, 48, False),
    (2, 42, 66, 52, False), (3, 42, 58, 46, True),
    (4, 103, 62, 48, False),
    (5, 251, 56, 44, False), (6, 251, 64, 48, False),
    (7, 380, 60, 50, False),
    (8, 512, 54, 42, False), (9, 512, 68, 50, False),
]
MISSING = (10, 700, 60, 48, False)   # listed (reports + chest tube), no DICOM on disk
UNLISTED = (11, 701, 58, 44, False)  # DICOM on disk, in no CSV
ORPHAN_TUBE = 12                     # a chest_tube.csv row for a SOP that is in no report row

REPORTS = [
    "CHEST:\nRight sided pneumothorax, approx 2 cm apical.\nIntercostal drain in situ.\n\nDr. A. Smith",
    "CHEST PA:\nLungs clear. No pneumothorax.\n",
    'CHEST:\nBilateral pneumothoraces; "large" on the left, with two drains.\n',
    "Clinical data: fall.\nCHEST:\nAcute fracture of the left 7th rib, no pneumothorax.",
]


def make(root: Path):
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rep_rows, tube_rows, frac_rows = [], [], []
    lines_ptx, lines_all = [], []
    ref = 1000
    for (k, pat, w, h, mono1) in IMAGES + [MISSING, UNLISTED]:
        sop, study = fake_uid(k), fake_uid(100 + k)
        ptx, ct, rf = content(k, w, h)
        unions = []
        for regions in (ptx, ct, rf):
            u = np.zeros((h, w), np.uint8)
            for r in regions:
                u |= r
            unions.append(u)
        if (k, pat, w, h, mono1) != MISSING:
            write_dicom(root / "dataset" / sop, sop, study, k, w, h, mono1, unions[0])
        if (k, pat, w, h, mono1) == UNLISTED:
            continue
        filename = f"P{pat:05d}_{k % 3 + 1}"
        report = REPORTS[k % len(REPORTS)]
        for code in [rle_encode(r) for r in ptx] or ["-1"]:
            rep_rows.append([sop, study, filename, code, report])
        for regions, rows in ((ct, tube_rows), (rf, frac_rows)):
            for r in regions:
                code = rle_encode(r)
                assert np.array_equal(rle_decode(code, w, h), r)
                rows.append([sop, str(ref), code])
                ref += 1
        if k == MISSING[0]:
            tube_rows.append([sop, str(ref), rle_encode(tube(w, h, 5, 40, 20, 5))])
            ref += 1
            continue
        ident = f"dataset/{sop}"  # no extension: fx strips only image extensions

        def line(labels):
            us = unions[:len(labels)]
            boxes = []
            for lab, u in zip(labels, us):
                if u.any():
                    ys, xs = np.nonzero(u)
                    x0, y0 = int(xs.min()), int(ys.min())
                    boxes.append({"label": lab, "x": float(x0), "y": float(y0),
                                  "w": float(xs.max() + 1 - x0), "h": float(ys.max() + 1 - y0)})
            return {"dataset": NAME, "split": None, "id": ident, "width": w, "height": h,
                    "cls": {lab: int(u.any()) for lab, u in zip(labels, us)},
                    "boxes": boxes, "masks": {lab: int(u.sum()) for lab, u in zip(labels, us)}}

        lines_ptx.append(line(LABELS[:1]))
        lines_all.append(line(LABELS))
    # a chest tube row for an image that no report row names
    tube_rows.append([fake_uid(ORPHAN_TUBE), str(ref), rle_encode(tube(60, 48, 3, 3, 30, 30))])

    with open(root / "Pneumothorax_reports.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["SOPInstanceUID", "StudyInstanceUID", "filename", "EncodedPixels", "Report"])
        wr.writerows(rep_rows)
    for name, rows in (("chest_tube.csv", tube_rows), ("acute_rib_fracture.csv", frac_rows)):
        with open(root / name, "w", newline="") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(["anon_SOPUID", "annotation_ref", "mask_rle"])
            wr.writerows(rows)

    for name, lines in (("expected.jsonl", lines_ptx), ("expected-all.jsonl", lines_all)):
        lines = sorted(lines, key=lambda d: d["id"])
        assert len({d["id"] for d in lines}) == len(lines)
        (root / name).write_text("".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in lines))

    # self-checks
    with open(root / "Pneumothorax_reports.csv", newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rep_rows) and any("\n" in r["Report"] for r in back)
    for d in lines_all:
        sop = d["id"].split("/", 1)[1]
        assert (root / "dataset" / sop).is_file()
        assert d["width"] != d["height"]
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT, total
    print(f"{root}: {len(lines_ptx)} samples, {len(rep_rows)} report rows, {total} bytes")


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[2]
    make(repo / "fixtures" / "datasets" / NAME)
    sys.exit(0)
