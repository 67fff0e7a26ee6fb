#!/usr/bin/env python3
"""Reference labels for the `node21` plugin on the existing NODE21 fixture.

The fixture folder fixtures/datasets/node21 (a miniature copy of the NODE21 organisers'
preprocessed release) is written by scripts/make_dataset_fixtures.py, together with the
`expected-files.jsonl` of the generic box-csv plugin. This script does NOT regenerate, change or
delete anything there: it only reads

    cxr_images/proccessed_data/metadata.csv      ,height,img_name,label,width,x,y  (pandas index
                                                 first; one row per nodule; controls one row with
                                                 label 0 and zeros; height/width = the BOX size)
    cxr_images/proccessed_data/images/<img_name> (only the MetaImage header: DimSize)

and writes fixtures/datasets/node21/expected.jsonl for the dedicated plugin: one line per image
that a row names AND that exists on disk, in the `fx-tui data --format jsonl` shape

    {"dataset": "node21", "split": null, "id": "cxr_images/proccessed_data/images/<name>",
     "width", "height", "cls": {"nodule": 0|1},
     "boxes": [{"label": "nodule", "x", "y", "w", "h"}, ...], "masks": {}}

with the label-1 rows as boxes in file order and cls nodule = 1 when the image has one. split is
null: the plugin draws a seeded split by image (NODE21 publishes no split).

Run from anywhere:  python3 scripts/dataset_fixtures/node21.py
"""

import csv
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def mha_size(path):
    """(width, height) from a MetaImage header's DimSize line."""
    head = path.read_bytes()[:2048].split(b"ElementDataFile")[0].decode("ascii")
    fields = dict(line.split(" = ", 1) for line in head.splitlines() if " = " in line)
    assert fields["NDims"].strip() == "2", fields
    w, h = (int(v) for v in fields["DimSize"].split())
    return w, h


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    proc = root / "cxr_images" / "proccessed_data"
    meta = proc / "metadata.csv"
    assert meta.is_file(), f"{meta} is missing: run scripts/make_dataset_fixtures.py first"
    with open(meta, newline="") as f:
        rd = csv.reader(f)
        header = next(rd)
        rows = [dict(zip(header, r)) for r in rd]
    assert header == ["", "height", "img_name", "label", "width", "x", "y"], header

    order, boxes = [], {}
    for r in rows:
        name = r["img_name"]
        if name not in boxes:
            order.append(name)
            boxes[name] = []
        if r["label"] == "1":
            boxes[name].append(tuple(float(r[c]) for c in ("x", "y", "width", "height")))
        else:
            assert r["label"] == "0" and all(float(r[c]) == 0 for c in ("x", "y", "width", "height")), r

    lines, missing = [], []
    for name in order:
        path = proc / "images" / name
        if not path.is_file():
            missing.append(name)
            continue
        w, h = mha_size(path)
        for (x, y, bw, bh) in boxes[name]:
            assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h, (name, x, y, bw, bh)
        lines.append({
            "dataset": "node21", "split": None,
            "id": f"cxr_images/proccessed_data/images/{pathlib.PurePosixPath(name).stem}",
            "width": w, "height": h, "cls": {"nodule": int(bool(boxes[name]))},
            "boxes": [{"label": "nodule", "x": x, "y": y, "w": bw, "h": bh} for (x, y, bw, bh) in boxes[name]],
            "masks": {},
        })
    text = "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in lines)
    (root / "expected.jsonl").write_text(text)
    back = [json.loads(l) for l in text.splitlines()]
    assert [list(d) for d in back] == [["dataset", "split", "id", "width", "height", "cls", "boxes", "masks"]] * len(back)
    assert len({d["id"] for d in back}) == len(back)
    print(f"{root / 'expected.jsonl'}: {len(lines)} images ({sum(d['cls']['nodule'] for d in lines)} with nodules, "
          f"{sum(len(d['boxes']) for d in lines)} boxes); named but missing: {missing}")
    return lines


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / "node21")
    sys.exit(0)
