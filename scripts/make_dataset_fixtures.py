#!/usr/bin/env python3
"""Generate miniature copies of three datasets' OFFICIAL download layouts for fx, with independent
reference labels.

Writes (relative to the repository root) fixtures/datasets/ — deleted and recreated on every run:

  rsna-pneumonia/  Kaggle "RSNA Pneumonia Detection Challenge" (stage 2): stage_2_train_labels.csv,
                   stage_2_detailed_class_info.csv, stage_2_train_images/<patientId>.dcm
                   (8-bit MONOCHROME2, JPEG Baseline 1.2.840.10008.1.2.4.50, Secondary Capture, CR)
  node21/          NODE21 (Zenodo): cxr_images/proccessed_data/{metadata.csv, images/<name>.mha}
                   (the publisher's spelling "proccessed_data"; 16-bit MET_USHORT MetaImage)
  coco-tbx/        TBX11K: imgs/{tb,health,sick}/<name>.png (RGB, R=G=B) and
                   annotations/json/TBX11K_{train,val,test}.json (COCO, as the TBX11K
                   code/make_json_anno.py writes it), lists/TBX11K_{train,val,test}.txt
  <dataset>/expected-files.jsonl   one line per image that exists on disk AND is named by the label
                   files, sorted by id:
                   {"dataset", "split", "id", "width", "height", "cls", "boxes", "masks"}
  experiment.toml  an fx experiment over the three (plugins box-csv, box-csv, coco)
  README.md        the layouts, their sources and the deliberate anomalies

The reference labels are computed from the values this script writes (never read back through fx).
The written files are read back with pydicom / SimpleITK / Pillow / the csv and json modules only to
check that they hold what was meant (size, pixels, rows).

Deliberate anomalies (RSNA only): the LAST row of stage_2_train_labels.csv names a patient whose
.dcm is missing from disk, and one .dcm on disk is named by no CSV row. Neither is in
expected-files.jsonl.

Deterministic (fixed seeds, UUID-5 patient ids and UIDs, fixed dates), idempotent, self-checking.
Run:
    python3 scripts/make_dataset_fixtures.py
Requires: numpy pydicom SimpleITK pillow and a JPEG decoder for pydicom (pylibjpeg-libjpeg or
python-gdcm) for the self-check.
"""

import csv
import io
import json
import platform
import shutil
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import PIL
import pydicom
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "datasets"
SIZE_LIMIT = 400_000  # bytes for the whole folder

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage (what RSNA's files are)

# NODE21's metadata.csv as published: a pandas index column with an empty name first, then the
# columns in alphabetical order (`,height,img_name,label,width,x,y`); controls carry label 0 and
# x, y, width, height = 0. Set to False for the plain `img_name,x,y,width,height,label` header.
NODE21_HEADER_AS_PUBLISHED = True


def optional_version(name):
    try:
        m = __import__(name)
        return getattr(m, "__version__", "unknown")
    except Exception:  # noqa: BLE001
        return None


def versions():
    v = {
        "script": "scripts/make_dataset_fixtures.py",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "Pillow": PIL.__version__,
    }
    for mod, key in [("pylibjpeg", "pylibjpeg"), ("libjpeg", "pylibjpeg-libjpeg"),
                     ("openjpeg", "pylibjpeg-openjpeg")]:
        ver = optional_version(mod)
        if ver:
            v[key] = ver
    try:
        import gdcm  # noqa: PLC0415

        v["python-gdcm"] = gdcm.Version.GetVersion()
    except Exception:  # noqa: BLE001
        pass
    return v


def fixed_uid(name):
    """Deterministic DICOM UID under the UUID-derived 2.25 root (PS3.5 B.2)."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "fx-dataset-fixtures/" + name).int)


def patient_id(k):
    """A deterministic UUID-like patientId, as RSNA's (e.g. 0004cfab-14fd-4e49-80ba-63a80b6bddd6)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fx-dataset-fixtures/rsna/{k}"))


# ----------------------------------------------------------------------------------------------
# deterministic content
# ----------------------------------------------------------------------------------------------
def picture(seed, w, h, boxes):
    """Float image in [0, 1], h rows x w columns: gradient + texture + noise, a bright blob in each
    box (x, y, width, height in pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.10 + 0.40 * xx / (w - 1) + 0.20 * yy / (h - 1)
    v += 0.06 * np.sin(xx / 3.0 + seed) * np.cos(yy / 4.0)
    for (x, y, bw, bh) in boxes:
        cx, cy = x + bw / 2.0, y + bh / 2.0
        v += 0.55 * np.exp(-(((xx + 0.5 - cx) / (bw / 2.5)) ** 2 + ((yy + 0.5 - cy) / (bh / 2.5)) ** 2))
    v += rng.normal(0.0, 0.02, (h, w))
    return np.clip(v, 0.0, 1.0)


def check_box(b, w, h, what):
    x, y, bw, bh = b
    assert bw > 0 and bh > 0, (what, b)
    assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h, f"{what}: box {b} not inside {w}x{h}"


def expected_line(dataset, split, ident, w, h, labels, boxes):
    """boxes: [(label, x, y, w, h)] in file order."""
    assert w != h, f"{ident}: image must be non-square"
    for (lab, *b) in boxes:
        assert lab in labels, (ident, lab)
        check_box(b, w, h, ident)
    present = {lab for (lab, *_) in boxes}
    return {
        "dataset": dataset,
        "split": split,
        "id": ident,
        "width": int(w),
        "height": int(h),
        "cls": {lab: (1 if lab in present else 0) for lab in labels},
        "boxes": [{"label": lab, "x": float(x), "y": float(y), "w": float(bw), "h": float(bh)}
                  for (lab, x, y, bw, bh) in boxes],
        "masks": {},
    }


def write_expected(folder, lines):
    lines = sorted(lines, key=lambda d: d["id"])
    ids = [d["id"] for d in lines]
    assert len(ids) == len(set(ids)), "duplicate ids"
    text = "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in lines)
    (folder / "expected-files.jsonl").write_text(text)
    # self-check: the exact shape
    keys = ["dataset", "split", "id", "width", "height", "cls", "boxes", "masks"]
    for line in text.splitlines():
        d = json.loads(line)
        assert list(d.keys()) == keys, d.keys()
        for b in d["boxes"]:
            assert list(b.keys()) == ["label", "x", "y", "w", "h"]
            assert all(isinstance(b[k], float) for k in "xywh")
    return lines


# ----------------------------------------------------------------------------------------------
# RSNA Pneumonia Detection Challenge
# ----------------------------------------------------------------------------------------------
# (k, width, height, view, sex, age, boxes, class) — boxes in original pixels, integer-valued as in
# the real CSV (written there as 264.0). class: stage_2_detailed_class_info.csv's value.
RSNA_PATIENTS = [
    (0, 64, 48, "PA", "M", 51, [], "No Lung Opacity / Not Normal"),
    (1, 66, 50, "AP", "F", 48, [(8, 10, 16, 22)], "Lung Opacity"),
    (2, 60, 46, "PA", "M", 19, [], "Normal"),
    (3, 68, 52, "AP", "M", 67, [(6, 8, 18, 24), (40, 12, 16, 26)], "Lung Opacity"),
    (4, 62, 48, "PA", "F", 33, [], "Normal"),
    (5, 64, 50, "AP", "F", 75, [(36, 14, 20, 20)], "Lung Opacity"),
    (6, 70, 48, "PA", "M", 58, [], "No Lung Opacity / Not Normal"),
    (7, 64, 46, "AP", "M", 41, [(10, 6, 22, 30)], "Lung Opacity"),
    (8, 58, 44, "PA", "F", 29, [], "Normal"),
]
RSNA_MISSING = (9, 64, 48, "PA", "F", 62, [], "Normal")  # in the CSVs, no .dcm on disk
RSNA_UNLISTED = (10, 62, 50, "AP", "M", 55, [(12, 12, 14, 16)], None)  # .dcm on disk, in no CSV


def rsna_dicom(path, pid, k, w, h, view, sex, age, pixels8):
    buf = io.BytesIO()
    Image.fromarray(pixels8).save(buf, format="JPEG", quality=95)
    jpg = buf.getvalue()
    sop_uid = fixed_uid(f"rsna/sop/{k}")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationClassUID = fixed_uid("implementation")
    meta.ImplementationVersionName = "FX_FIXTURES_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SC_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = f"view: {view}"
    ds.PatientName = pid
    ds.PatientID = pid
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.PatientAge = str(age)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.StudyInstanceUID = fixed_uid(f"rsna/study/{k}")
    ds.SeriesInstanceUID = fixed_uid(f"rsna/series/{k}")
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = h
    ds.Columns = w
    ds.PixelSpacing = [0.168, 0.168]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([jpg])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    pydicom.dcmwrite(path, ds, enforce_file_format=True)

    # self-check: read back with pydicom (its JPEG plugins), compare with the source pixels
    back = pydicom.dcmread(path)
    assert str(back.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.50"
    assert back.PatientID == pid and back.Modality == "CR" and back.ViewPosition == view
    assert (back.Rows, back.Columns, back.BitsAllocated, back.BitsStored) == (h, w, 8, 8)
    assert back.PhotometricInterpretation == "MONOCHROME2"
    arr = back.pixel_array
    assert arr.shape == (h, w) and arr.dtype == np.uint8, (arr.shape, arr.dtype)
    d = int(np.abs(arr.astype(np.int64) - pixels8.astype(np.int64)).max())
    assert d <= 12, f"{path.name}: JPEG round trip differs by {d}"
    return d


def make_rsna():
    print("RSNA Pneumonia:")
    root = OUT / "rsna-pneumonia"
    imgs = root / "stage_2_train_images"
    imgs.mkdir(parents=True)

    listed = sorted(RSNA_PATIENTS, key=lambda p: patient_id(p[0]))
    rows = listed + [RSNA_MISSING]  # the missing one is the last row
    label_rows, class_rows, expected = [], [], []
    max_jpeg_diff = 0
    for (k, w, h, view, sex, age, boxes, cls) in rows + [RSNA_UNLISTED]:
        pid = patient_id(k)
        assert w != h
        for b in boxes:
            check_box(b, w, h, pid)
        on_disk = (k, w, h, view, sex, age, boxes, cls) != RSNA_MISSING
        in_csv = (k, w, h, view, sex, age, boxes, cls) != RSNA_UNLISTED
        if on_disk:
            px = np.round(picture(100 + k, w, h, boxes) * 255).astype(np.uint8)
            d = rsna_dicom(imgs / f"{pid}.dcm", pid, k, w, h, view, sex, age, px)
            max_jpeg_diff = max(max_jpeg_diff, d)
        if in_csv:
            if boxes:
                for (x, y, bw, bh) in boxes:
                    label_rows.append([pid, f"{x:.1f}", f"{y:.1f}", f"{bw:.1f}", f"{bh:.1f}", "1"])
                    class_rows.append([pid, cls])  # one class row per label row, as published
            else:
                label_rows.append([pid, "", "", "", "", "0"])
                class_rows.append([pid, cls])
        if on_disk and in_csv:
            expected.append(expected_line("rsna", None, f"stage_2_train_images/{pid}", w, h, ["pneumonia"],
                                          [("pneumonia", *b) for b in boxes]))
        tag = "" if on_disk and in_csv else (" MISSING .dcm" if not on_disk else " UNLISTED .dcm")
        print(f"  {pid}  {w}x{h} {view} boxes={len(boxes)}{tag}")

    with open(root / "stage_2_train_labels.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["patientId", "x", "y", "width", "height", "Target"])
        wr.writerows(label_rows)
    with open(root / "stage_2_detailed_class_info.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["patientId", "class"])
        wr.writerows(class_rows)
    print(f"  JPEG baseline round trip: max |decoded - source| = {max_jpeg_diff}")

    # self-check: the CSVs read back with the csv module give the same boxes and classes
    text = (root / "stage_2_train_labels.csv").read_text()
    assert text.splitlines()[0] == "patientId,x,y,width,height,Target"
    got = {}
    for r in csv.DictReader(io.StringIO(text)):
        got.setdefault(r["patientId"], [])
        if r["Target"] == "1":
            got[r["patientId"]].append(tuple(float(r[c]) for c in ("x", "y", "width", "height")))
        else:
            assert r["x"] == r["y"] == r["width"] == r["height"] == "", r
    assert list(got)[-1] == patient_id(RSNA_MISSING[0]), "the missing patient must be the last row"
    on_disk = {p.stem for p in imgs.glob("*.dcm")}
    missing = [p for p in got if p not in on_disk]
    unlisted = [p for p in on_disk if p not in got]
    assert missing == [patient_id(RSNA_MISSING[0])], missing
    assert unlisted == [patient_id(RSNA_UNLISTED[0])], unlisted
    for e in expected:
        pid = e["id"].split("/")[-1]
        assert [(b["x"], b["y"], b["w"], b["h"]) for b in e["boxes"]] == got[pid]
    classes = list(csv.DictReader(open(root / "stage_2_detailed_class_info.csv")))
    assert len(classes) == len(label_rows)
    assert {c["class"] for c in classes} == {"Lung Opacity", "Normal", "No Lung Opacity / Not Normal"}
    for c in classes:
        assert (c["class"] == "Lung Opacity") == bool(got[c["patientId"]]), c

    lines = write_expected(root, expected)
    n_pos = sum(1 for e in lines if e["boxes"])
    print(f"  expected-files.jsonl: {len(lines)} images ({n_pos} with boxes, "
          f"{sum(len(e['boxes']) for e in lines)} boxes)")
    return {"missing": missing[0], "unlisted": unlisted[0], "lines": len(lines)}


# ----------------------------------------------------------------------------------------------
# NODE21
# ----------------------------------------------------------------------------------------------
# (name, width, height, boxes) — nodule images n*, controls c*; integer pixels as published.
NODE21_IMAGES = [
    ("n0001", 64, 48, [(40, 12, 10, 9)]),
    ("n0002", 66, 50, [(8, 10, 9, 9), (44, 30, 12, 11)]),
    ("n0003", 60, 46, [(14, 20, 11, 12)]),
    ("n0004", 68, 52, [(50, 8, 8, 8)]),
    ("c0001", 64, 50, []),
    ("c0002", 62, 48, []),
    ("c0003", 70, 52, []),
    ("c0004", 64, 46, []),
]


def make_node21():
    print("NODE21:")
    root = OUT / "node21"
    proc = root / "cxr_images" / "proccessed_data"
    imgs = proc / "images"
    imgs.mkdir(parents=True)

    rows, expected = [], []
    for i, (name, w, h, boxes) in enumerate(NODE21_IMAGES):
        v = np.round(picture(200 + i, w, h, boxes) * 4095).astype(np.uint16)  # 12-bit values in 16 bits
        img = sitk.GetImageFromArray(v)
        img.SetSpacing((0.1, 0.1))
        path = imgs / f"{name}.mha"
        sitk.WriteImage(img, str(path), useCompression=False)
        hdr = path.read_bytes()[:400].decode("ascii", "replace")
        assert "ElementType = MET_USHORT" in hdr and "ElementDataFile = LOCAL" in hdr, hdr
        assert f"DimSize = {w} {h}" in hdr, hdr
        back = sitk.ReadImage(str(path))
        assert tuple(back.GetSize()) == (w, h)
        assert np.array_equal(sitk.GetArrayFromImage(back), v)
        for b in boxes:
            rows.append({"img_name": f"{name}.mha", "x": b[0], "y": b[1], "width": b[2], "height": b[3], "label": 1})
        if not boxes:
            rows.append({"img_name": f"{name}.mha", "x": 0, "y": 0, "width": 0, "height": 0, "label": 0})
        expected.append(expected_line("node21", None, f"cxr_images/proccessed_data/images/{name}", w, h,
                                      ["nodule"], [("nodule", *b) for b in boxes]))
        print(f"  {name}.mha  {w}x{h} MET_USHORT boxes={len(boxes)}")

    rows.sort(key=lambda r: -r["label"])  # nodule rows first, then the controls (stable)
    with open(proc / "metadata.csv", "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        if NODE21_HEADER_AS_PUBLISHED:
            cols = ["height", "img_name", "label", "width", "x", "y"]
            wr.writerow([""] + cols)
            wr.writerows([[i] + [r[c] for c in cols] for i, r in enumerate(rows)])
        else:
            cols = ["img_name", "x", "y", "width", "height", "label"]
            wr.writerow(cols)
            wr.writerows([[r[c] for c in cols] for r in rows])

    # self-check: read back with the csv module
    got = {}
    for r in csv.DictReader(open(proc / "metadata.csv")):
        got.setdefault(r["img_name"], [])
        if r["label"] == "1":
            got[r["img_name"]].append(tuple(float(r[c]) for c in ("x", "y", "width", "height")))
        else:
            assert r["label"] == "0" and r["x"] == r["y"] == r["width"] == r["height"] == "0", r
    assert set(got) == {p.name for p in imgs.iterdir()}
    for e in expected:
        assert [(b["x"], b["y"], b["w"], b["h"]) for b in e["boxes"]] == got[e["id"].split("/")[-1] + ".mha"]

    lines = write_expected(root, expected)
    print(f"  expected-files.jsonl: {len(lines)} images ({sum(1 for e in lines if e['boxes'])} with boxes, "
          f"{sum(len(e['boxes']) for e in lines)} boxes)")
    return {"lines": len(lines)}


# ----------------------------------------------------------------------------------------------
# TBX11K (COCO)
# ----------------------------------------------------------------------------------------------
TBX_CATEGORIES = [
    {"id": 1, "name": "ActiveTuberculosis", "supercategory": "Tuberculosis"},
    {"id": 2, "name": "ObsoletePulmonaryTuberculosis", "supercategory": "Tuberculosis"},
    {"id": 3, "name": "PulmonaryTuberculosis", "supercategory": "Tuberculosis"},
]
TBX_INFO = [{
    "contributor": "Yun Liu, Yu-Huan Wu, Yunfeng Ban, Huifang Wang, Ming-Ming Cheng",
    "date_created": "2020/06/22",
    "description": "TBX11K Dataset (fx miniature fixture)",
    "url": "http://mmcheng.net/tb",
    "version": "1.0",
    "year": 2020,
}]
TBX_LICENSES = [{"id": 1, "name": "Attribution-NonCommercial-ShareAlike License",
                 "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/"}]

# split -> [(file_name relative to imgs/, width, height, [(category_id, x, y, w, h)])]
TBX_SPLITS = {
    "train": [
        ("tb/tb0003.png", 64, 48, [(1, 8.0, 10.0, 14.0, 18.0)]),
        ("tb/tb0010.png", 66, 50, [(1, 6.0, 8.0, 16.0, 20.0), (2, 42.0, 14.0, 12.0, 12.0)]),
        ("health/h0001.png", 60, 46, []),
        ("sick/s0001.png", 68, 52, []),
    ],
    "val": [
        ("tb/tb0021.png", 62, 48, [(2, 38.5, 10.5, 13.0, 15.5)]),
        ("tb/tb0034.png", 64, 50, [(1, 10.0, 12.0, 18.0, 22.0)]),
        ("health/h0002.png", 70, 52, []),
        ("sick/s0002.png", 64, 46, []),
    ],
    "test": [
        ("tb/tb0047.png", 66, 48, [(3, 12.0, 8.0, 15.0, 19.0)]),
        ("tb/tb0052.png", 60, 50, [(1, 34.0, 16.0, 16.0, 18.0), (3, 6.0, 10.0, 14.0, 16.0)]),
        ("health/h0003.png", 62, 46, []),
        ("sick/s0003.png", 68, 50, []),
    ],
}


def make_tbx():
    print("TBX11K (COCO):")
    root = OUT / "coco-tbx"
    (root / "annotations" / "json").mkdir(parents=True)
    (root / "lists").mkdir()
    names = {c["id"]: c["name"] for c in TBX_CATEGORIES}
    labels = [c["name"] for c in TBX_CATEGORIES]
    expected = []
    seed = 300
    for split, items in TBX_SPLITS.items():
        doc = {"info": TBX_INFO, "licenses": TBX_LICENSES, "categories": TBX_CATEGORIES,
               "images": [], "annotations": []}
        ann_id = 1
        for image_id, (fname, w, h, anns) in enumerate(items, start=1):
            seed += 1
            boxes = [a[1:] for a in anns]
            g = np.round(picture(seed, w, h, boxes) * 255).astype(np.uint8)
            path = root / "imgs" / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.stack([g, g, g], axis=-1), mode="RGB").save(path)
            im = Image.open(path)
            assert im.mode == "RGB" and im.size == (w, h)
            a = np.asarray(im)
            assert np.array_equal(a[..., 0], g) and np.array_equal(a[..., 1], g) and np.array_equal(a[..., 2], g)
            # image and annotation entries as TBX11K's pycococreatortools writes them
            doc["images"].append({"id": image_id, "file_name": fname, "width": w, "height": h,
                                  "date_captured": "2020-06-22 00:00:00.000000", "license": 1,
                                  "coco_url": "", "flickr_url": ""})
            for (cat, x, y, bw, bh) in anns:
                check_box((x, y, bw, bh), w, h, fname)
                doc["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": cat,
                                           "iscrowd": 0, "area": int(bw * bh),
                                           "bbox": [float(x), float(y), float(bw), float(bh)],
                                           "width": w, "height": h})
                ann_id += 1
            stem = fname[: -len(".png")]
            expected.append(expected_line("tbx", split, f"imgs/{stem}", w, h, labels,
                                          [(names[c], x, y, bw, bh) for (c, x, y, bw, bh) in anns]))
            print(f"  {split:5s} {fname:18s} {w}x{h} RGB boxes={len(anns)}")
        jpath = root / "annotations" / "json" / f"TBX11K_{split}.json"
        jpath.write_text(json.dumps(doc))
        (root / "lists" / f"TBX11K_{split}.txt").write_text("".join(i[0] + "\n" for i in items))

        # self-check: read back with the json module
        back = json.loads(jpath.read_text())
        assert [(c["id"], c["name"]) for c in back["categories"]] == [(1, "ActiveTuberculosis"),
                                                                      (2, "ObsoletePulmonaryTuberculosis"),
                                                                      (3, "PulmonaryTuberculosis")]
        assert all("segmentation" not in a for a in back["annotations"])
        for im in back["images"]:
            with Image.open(root / "imgs" / im["file_name"]) as pic:
                assert pic.size == (im["width"], im["height"])

    lines = write_expected(root, expected)
    print(f"  expected-files.jsonl: {len(lines)} images ({sum(1 for e in lines if e['boxes'])} with boxes, "
          f"{sum(len(e['boxes']) for e in lines)} boxes)")
    return {"lines": len(lines)}


# ----------------------------------------------------------------------------------------------
# experiment.toml and README.md
# ----------------------------------------------------------------------------------------------
EXPERIMENT = """\
# The three miniature official-layout datasets of fixtures/datasets (generated by
# scripts/make_dataset_fixtures.py). Roots are relative to the repository root: run from there, e.g.
#   fx-tui data fixtures/datasets/experiment.toml --format jsonl
name = "dataset-fixtures"
seed = 0
device = "auto"
output_dir = "runs"

[model]
arch = "swin_nano"
image_size = 64

[model.dino]
hidden_dim = 32
heads = 4
points = 4
encoder_layers = 1
decoder_layers = 2
ffn_dim = 64
num_queries = 10
dn_number = 4
num_select = 10
gn_groups = 8

[train]
batch_size = 4
cycles = 1

# Kaggle RSNA Pneumonia Detection Challenge (stage 2): DICOM, JPEG Baseline 8-bit.
[[datasets]]
name = "rsna"
plugin = "box-csv"
root = "fixtures/datasets/rsna-pneumonia"
options = { csv = "stage_2_train_labels.csv", images = "stage_2_train_images", extension = ".dcm", format = "rsna", cls_from_boxes = true }

# NODE21 (preprocessed .mha; img_name carries the extension).
[[datasets]]
name = "node21"
plugin = "box-csv"
root = "fixtures/datasets/node21"
options = { csv = "cxr_images/proccessed_data/metadata.csv", images = "cxr_images/proccessed_data/images", extension = "", format = "node21", cls_from_boxes = true }

# TBX11K as COCO JSON per split.
[[datasets]]
name = "tbx"
plugin = "coco"
root = "fixtures/datasets/coco-tbx"
options = { train = "annotations/json/TBX11K_train.json", val = "annotations/json/TBX11K_val.json", test = "annotations/json/TBX11K_test.json", images = "imgs", cls_from_boxes = true }
"""


def readme(rsna, node21, tbx, gen):
    node21_header = (",height,img_name,label,width,x,y" if NODE21_HEADER_AS_PUBLISHED
                     else "img_name,x,y,width,height,label")
    return f"""\
# Dataset layout fixtures

Miniature copies of three datasets' official download layouts, for the fx readers (`box-csv`,
`coco`) and the DICOM / MetaImage / PNG decoders. **Generated** by
`python3 scripts/make_dataset_fixtures.py`, which deletes and recreates this folder; do not edit
by hand. Everything is deterministic (fixed seeds, UUID-5 ids and UIDs, fixed dates).

Images are small and non-square (58–70 wide × 44–52 high): a gradient, some texture and noise, and a
bright blob inside every box. Every box lies fully inside its image.

`<dataset>/expected-files.jsonl` holds one line per image that exists on disk AND is named by the label
files, sorted by `id`, computed by the script from the values it wrote (never read back through fx):

```
{{"dataset": NAME, "split": SPLIT, "id": ID, "width": W, "height": H,
 "cls": {{LABEL: 1|0, ...}}, "boxes": [{{"label": LABEL, "x": X, "y": Y, "w": W, "h": H}}, ...], "masks": {{}}}}
```

`id` is the image path relative to the dataset folder without its extension; `split` is null where
the dataset has no official split (fx draws one); `cls` has one entry per box label (1 when the
image has a box of that label); `boxes` are in file order, `[x, y, w, h]` floats in original pixels.
`experiment.toml` reads all three (roots relative to the repository root):
`fx-tui data fixtures/datasets/experiment.toml --format jsonl`.

Generator: `{json.dumps(gen)}`

## rsna-pneumonia — RSNA Pneumonia Detection Challenge (Kaggle, stage 2)

```
rsna-pneumonia/
├── stage_2_train_labels.csv          patientId,x,y,width,height,Target
├── stage_2_detailed_class_info.csv   patientId,class
├── stage_2_train_images/
│   └── <patientId>.dcm               one DICOM per patient
└── expected-files.jsonl                    ({rsna['lines']} lines; dataset "rsna", label "pneumonia")
```

Source: the competition's Data page,
https://www.kaggle.com/competitions/rsna-pneumonia-detection-challenge/data (file names, columns:
one row per box for positive patients with Target 1, one row with empty x,y,width,height and
Target 0 for negatives; `stage_2_detailed_class_info.csv` has one row per label row with class
`Lung Opacity`, `Normal` or `No Lung Opacity / Not Normal`). Box values are written as the real
file writes them (`264.0`). The DICOMs follow the published files: Secondary Capture, Modality CR,
MONOCHROME2, 8 bits allocated and stored, JPEG Baseline transfer syntax 1.2.840.10008.1.2.4.50
(Pillow-encoded, pydicom-encapsulated), PatientID = PatientName = patientId, ViewPosition PA/AP,
SeriesDescription `view: PA`, ConversionType WSD, BodyPartExamined CHEST. patientIds are UUID-5
strings (RSNA's are UUIDs too).

9 patients listed and on disk: 4 positive (one with 2 boxes), 5 negative.

### Deliberate anomalies

- **Missing image**: the LAST row of `stage_2_train_labels.csv` (and of
  `stage_2_detailed_class_info.csv`) names patient `{rsna['missing']}` (negative,
  `Normal`), whose `stage_2_train_images/{rsna['missing']}.dcm` does not exist. A reader must
  skip it (and count or report it); it is not in `expected-files.jsonl`.
- **Unlisted image**: `stage_2_train_images/{rsna['unlisted']}.dcm` is a valid DICOM (with a
  visible blob) that no CSV row names. A reader must ignore it; it is not in `expected-files.jsonl`.

## node21 — NODE21 (nodule detection), preprocessed images

```
node21/
├── cxr_images/
│   └── proccessed_data/              (sic: the publisher's spelling)
│       ├── metadata.csv              {node21_header}
│       └── images/
│           ├── n0001.mha … n0004.mha nodule images
│           └── c0001.mha … c0004.mha controls (no nodule)
└── expected-files.jsonl                    ({node21['lines']} lines; dataset "node21", label "nodule")
```

Sources: the NODE21 Zenodo record (https://zenodo.org/record/4725881 and the newer version it
links to: an images folder and `metadata.csv` with the box of each nodule), the challenge's Data page (https://node21.grand-challenge.org/Data/: preprocessed `.mha`
and original images), the organisers' baseline loader
(github.com/node21challenge/node21_detection_baseline, `training_utils/dataset.py`: `img_name`,
`x`, `y`, `width`, `height`, `label`; rows with label 1 are boxes, an image whose rows are all
label 0 has no box), and a participant's code that reads the downloaded
`cxr_images/proccessed_data/metadata.csv` and re-saves it (github.com/FinnBehrendt/node21-submit,
`src/utils/sampling_datasets/*.py`, `splits/*.csv`, `test/metadata.csv`): the published file starts
with an unnamed pandas index column, its columns are `,height,img_name,label,width,x,y`, and
controls are one row `c####.mha` with label 0 and height, width, x, y all `0`. The fixture copies
that (`NODE21_HEADER_AS_PUBLISHED` in the script switches to the plain
`img_name,x,y,width,height,label` header). Nodule rows come first, then the controls; `img_name`
includes `.mha`. The `original_data/` folder of the download is not copied.

Images: SimpleITK-written MetaImage, `ElementType = MET_USHORT` (16-bit unsigned, values 0–4095),
uncompressed, `ElementDataFile = LOCAL`, spacing 0.1 mm. n0002 has 2 nodules.

## coco-tbx — TBX11K as COCO JSON

```
coco-tbx/
├── imgs/
│   ├── tb/       tb0003.png tb0010.png tb0021.png tb0034.png tb0047.png tb0052.png
│   ├── health/   h0001.png h0002.png h0003.png
│   └── sick/     s0001.png s0002.png s0003.png
├── annotations/json/
│   ├── TBX11K_train.json
│   ├── TBX11K_val.json
│   └── TBX11K_test.json              (not public in the real dataset; annotated here)
├── lists/TBX11K_{{train,val,test}}.txt   image lists relative to imgs/
└── expected-files.jsonl                    ({tbx['lines']} lines; dataset "tbx", split train/val/test)
```

Sources: the TBX11K README and code (github.com/yun-liu/Tuberculosis; `code/make_json_anno.py` and
its `pycococreatortools`): `imgs/<class folder>/<name>.png`, `annotations/json/`, `lists/`,
categories 1 `ActiveTuberculosis`, 2 `ObsoletePulmonaryTuberculosis`, 3 `PulmonaryTuberculosis`
(supercategory `Tuberculosis`); top-level `info` (a list), `licenses`, `categories`, `images`,
`annotations`; images `id, file_name (relative to imgs/), width, height, date_captured, license,
coco_url, flickr_url`; annotations `id, image_id, category_id, iscrowd, area (int), bbox [x,y,w,h]
(floats), width, height` and no `segmentation` key. Image and annotation ids start at 1 in each
file. Healthy and sick images are listed without annotations. The PNGs are RGB with R = G = B (the
real ones are 512 × 512 RGB). The real test images live in `imgs/test/` without public labels; here
the test split uses the class folders and is annotated so that it is usable. The real
`annotations/xml/` and `imgs/extra/` are not copied. One val box has half-pixel coordinates
(38.5, 10.5, 13.0, 15.5) to exercise float boxes.
"""


# ----------------------------------------------------------------------------------------------
def main():
    gen = versions()
    print("generator:", json.dumps(gen))
    # Only this script's folders: the dataset plugins' fixtures (scripts/dataset_fixtures/*.py)
    # live beside them, and node21.py / rsna_pneumonia.py add their expected.jsonl to these two.
    for d in ("rsna-pneumonia", "node21", "coco-tbx"):
        if (OUT / d).exists():
            shutil.rmtree(OUT / d)
    OUT.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rsna = make_rsna()
    node21 = make_node21()
    tbx = make_tbx()
    (OUT / "experiment.toml").write_text(EXPERIMENT)
    try:
        import tomllib  # noqa: PLC0415

        exp = tomllib.loads(EXPERIMENT)
        assert [d["name"] for d in exp["datasets"]] == ["rsna", "node21", "tbx"]
        for d in exp["datasets"]:
            assert (ROOT / d["root"]).is_dir(), d["root"]
    except ModuleNotFoundError:
        print("note: tomllib not available (Python < 3.11); experiment.toml not parsed")
    (OUT / "README.md").write_text(readme(rsna, node21, tbx, gen))

    total, files = 0, sorted(p for p in OUT.rglob("*") if p.is_file())
    print("\nfiles:")
    for f in files:
        total += f.stat().st_size
        print(f"  {f.stat().st_size:8d}  {f.relative_to(OUT)}")
    print(f"  {total:8d}  total ({len(files)} files)")
    assert total < SIZE_LIMIT, total


if __name__ == "__main__":
    sys.exit(main())
