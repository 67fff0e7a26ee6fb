#!/usr/bin/env python3
"""Reference labels for the `rsna-pneumonia` plugin on its existing fixture.

The fixture folder fixtures/datasets/rsna-pneumonia (a miniature copy of the Kaggle "RSNA
Pneumonia Detection Challenge" stage 2 download) is written by scripts/make_dataset_fixtures.py.
This script does NOT regenerate or delete anything there: it only reads

    stage_2_train_labels.csv          patientId,x,y,width,height,Target
    stage_2_detailed_class_info.csv   patientId,class
    stage_2_train_images/<patientId>.dcm   (only the DICOM header: Rows, Columns)

and writes fixtures/datasets/rsna-pneumonia/expected.jsonl for the dedicated plugin, one line per
patient that a label row names AND whose .dcm exists, in the `fx-tui data --format jsonl` shape:

    {"dataset": "rsna-pneumonia", "split": null, "id": "stage_2_train_images/<patientId>",
     "width": Columns, "height": Rows,
     "cls": {"Lung Opacity": 0|1, "Normal": 0|1, "No Lung Opacity / Not Normal": 0|1},
     "boxes": [{"label": "pneumonia", "x", "y", "w", "h"}, ...], "masks": {}}

cls is the patient's class from the detailed class info, one-hot (null for all three when the
patient has no class row); boxes are the Target-1 rows in file order. split is null: the plugin
draws a seeded split by patient. (`make(root)` takes the fixture folder; it must already exist.)

Run from anywhere:  python3 scripts/dataset_fixtures/rsna_pneumonia.py
"""

import csv
import json
import pathlib
import sys

import pydicom

REPO = pathlib.Path(__file__).resolve().parents[2]
CLASSES = ["Lung Opacity", "Normal", "No Lung Opacity / Not Normal"]


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    labels = root / "stage_2_train_labels.csv"
    info = root / "stage_2_detailed_class_info.csv"
    images = root / "stage_2_train_images"
    for p in (labels, info, images):
        assert p.exists(), f"{p} is missing: run scripts/make_dataset_fixtures.py first"

    order, boxes = [], {}
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["patientId", "x", "y", "width", "height", "Target"], rows[0].keys()
    for r in rows:
        pid = r["patientId"]
        if pid not in boxes:
            order.append(pid)
            boxes[pid] = []
        if r["Target"] == "1":
            boxes[pid].append(tuple(float(r[c]) for c in ("x", "y", "width", "height")))
        else:
            assert r["Target"] == "0" and not any(r[c] for c in ("x", "y", "width", "height")), r

    class_of = {}
    with open(info, newline="") as f:
        for r in csv.DictReader(f):
            assert r["class"] in CLASSES, r
            class_of[r["patientId"]] = r["class"]

    lines, skipped = [], []
    for pid in order:
        dcm = images / f"{pid}.dcm"
        if not dcm.is_file():
            skipped.append(pid)
            continue
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        w, h = int(ds.Columns), int(ds.Rows)
        c = class_of.get(pid)
        cls = {k: (None if c is None else int(k == c)) for k in CLASSES}
        # consistency of the two CSVs: boxes exactly for "Lung Opacity"
        assert (c == "Lung Opacity") == bool(boxes[pid]), (pid, c, boxes[pid])
        for (x, y, bw, bh) in boxes[pid]:
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h, (pid, x, y, bw, bh, w, h)
        lines.append({
            "dataset": "rsna-pneumonia", "split": None, "id": f"stage_2_train_images/{pid}",
            "width": w, "height": h, "cls": cls,
            "boxes": [{"label": "pneumonia", "x": x, "y": y, "w": bw, "h": bh} for (x, y, bw, bh) in boxes[pid]],
            "masks": {},
        })
    unlisted = sorted(p.stem for p in images.glob("*.dcm") if p.stem not in boxes)
    text = "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in lines)
    (root / "expected.jsonl").write_text(text)
    # self-check: the exact shape, read back
    back = [json.loads(l) for l in text.splitlines()]
    assert [list(d) for d in back] == [["dataset", "split", "id", "width", "height", "cls", "boxes", "masks"]] * len(back)
    assert len({d["id"] for d in back}) == len(back)
    assert all(sum(d["cls"].values()) == 1 for d in back)
    print(f"{root / 'expected.jsonl'}: {len(lines)} patients ({sum(1 for d in lines if d['boxes'])} with boxes); "
          f"left out: {len(skipped)} listed without a .dcm {skipped}, {len(unlisted)} .dcm without a row {unlisted}")
    return lines


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / "rsna-pneumonia")
    sys.exit(0)
