#!/usr/bin/env python3
"""A miniature copy of the TBX11K download (Liu et al., CVPR 2020 / TPAMI 2023), for the `tbx11k`
plugin, with its reference labels.

`make(root)` deletes and recreates `root` (by default fixtures/datasets/tbx11k) in the layout of the
official release (Google Drive / Baidu archive `TBX11K/`, also mirrored on Kaggle as tbx-11):

    imgs/health/h####.png  imgs/sick/s####.png  imgs/tb/tb####.png   512 x 512 RGB PNG, R = G = B
    imgs/test/*.png                     test images (labels withheld for the online challenge)
    imgs/extra/da+db/train/*.png        images of other TB sets (DA, DB, Montgomery, Shenzhen)
    lists/TBX11K_{train,val,trainval}.txt    one image per line, relative to imgs/ (`tb/tb0003.png`)
    lists/all_{train,val,trainval,test}.txt  the same plus the extra images; all_test = test + extra
    annotations/xml/<stem>.xml          Pascal VOC, TB images only, boxes in the ORIGINAL resolution
                                        (<size> is the scan's, e.g. 2840 x 2130), `difficult` flag
    annotations/json/TBX11K_{train,val,trainval}.json, TBX11K_trainval_only_tb.json, all_test.json
                                        COCO, written by the authors' code/make_json_anno.py from the
                                        list and the XML: every listed image (ids from 1, list order,
                                        file_name = the list line, width/height = the resized size),
                                        one annotation per non-difficult VOC box scaled to the image,
                                        minus 1, float32: bbox [x, y, w, h]; categories 1
                                        ActiveTuberculosis, 2 ObsoletePulmonaryTuberculosis, 3
                                        PulmonaryTuberculosis (supercategory Tuberculosis)

Sources: the TBX11K README and code (github.com/yun-liu/Tuberculosis; code/make_json_anno.py of the
CVPR release: list lines relative to imgs/, the XML -> JSON conversion above), the mmdetection
configs of that repository (annotations/json/*.json with img_prefix imgs/), the Foundation X
reference config (cls train = lists/TBX11K_train.txt, test = lists/TBX11K_val.txt), and public
users' notes (the COCO boxes are at 512 x 512 while the XML is at the original resolution; 800 tb
images of which one, tb1199, has no annotation).

Here the images are small and non-square (58-70 x 44-52) and the JSON's width/height are each
image's real size (the real files say 512 x 512, which is the real images' size). The names of the
files under imgs/test and imgs/extra are made up (the real ones are not documented); the plugin
does not read them. Deliberate quirks and anomalies:

  - tb/tb1199.png is a TB image with no XML and no annotation (as in the real release): cls TB 1,
    no boxes.
  - sick/s0004.png is listed (list and JSON) but missing from disk: not in expected.jsonl.
  - tb/tb0021.png has a VOC box starting at x = 20 px of 2752, so its COCO x is negative
    (20 / 44.39 - 1); COCO readers clip it to the image: expected x = 0, w shortened.
  - tb/tb0010.xml has a `difficult` box, which make_json_anno leaves out of the JSON.
  - the JSON boxes are float32 values of scaled integers (e.g. 8.014084815979004).

expected.jsonl: one line per image of TBX11K_train.txt / TBX11K_val.txt that exists on disk, in the
`fx-tui data --format jsonl` shape, with the OFFICIAL split: train -> "train", val -> "test" (the
plugin opened with `val_fraction = 0`; by default it moves a seeded tenth of train to val):

    {"dataset": "tbx11k", "split": "train"|"test", "id": "imgs/<folder>/<stem>", "width", "height",
     "cls": {"Healthy": 0|1, "Sick & Non-TB": 0|1, "TB": 0|1},
     "boxes": [{"label": <COCO category name>, "x", "y", "w", "h"}, ...] (JSON order), "masks": {}}

Deterministic and self-checking. Run from anywhere:  python3 scripts/dataset_fixtures/tbx11k.py
"""

import json
import pathlib
import shutil
import sys
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
SIZE_LIMIT = 300_000

CATEGORIES = [
    {"id": 1, "name": "ActiveTuberculosis", "supercategory": "Tuberculosis"},
    {"id": 2, "name": "ObsoletePulmonaryTuberculosis", "supercategory": "Tuberculosis"},
    {"id": 3, "name": "PulmonaryTuberculosis", "supercategory": "Tuberculosis"},
]
CAT_ID = {c["name"]: c["id"] for c in CATEGORIES}
INFO = [{
    "contributor": "Yun Liu, Yu-Huan Wu, Yunfeng Ban, Huifang Wang, Ming-Ming Cheng",
    "date_created": "2020/06/22",
    "description": "TBX11K Dataset",
    "url": "http://mmcheng.net/tb",
    "version": "1.0",
    "year": 2020,
}]
LICENSES = [{"id": 1, "name": "Attribution-NonCommercial-ShareAlike License",
             "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/"}]
CLASSES = {"health": "Healthy", "sick": "Sick & Non-TB", "tb": "TB"}

# (list line, width, height, on disk, VOC (orig_w, orig_h, [(name, difficult, xmin, ymin, xmax, ymax)]) or None)
TRAIN = [
    ("tb/tb0003.png", 64, 48, True, (2840, 2130, [("ActiveTuberculosis", 0, 400, 450, 1020, 1250)])),
    ("health/h0001.png", 62, 46, True, None),
    ("sick/s0001.png", 68, 52, True, None),
    ("tb/tb0010.png", 66, 50, True, (2930, 2220, [("ActiveTuberculosis", 0, 310, 380, 1050, 1290),
                                                  ("ObsoletePulmonaryTuberculosis", 0, 1900, 620, 2440, 1150),
                                                  ("ObsoletePulmonaryTuberculosis", 1, 2000, 1500, 2300, 1800)])),
    ("health/h0002.png", 58, 44, True, None),
    ("sick/s0004.png", 60, 44, False, None),   # listed, not on disk
    ("tb/tb1199.png", 60, 46, True, None),     # TB image without annotation
    ("sick/s0002.png", 64, 50, True, None),
]
VAL = [
    ("tb/tb0021.png", 62, 48, True, (2752, 2131, [("ObsoletePulmonaryTuberculosis", 0, 20, 500, 600, 1100)])),
    ("health/h0003.png", 70, 52, True, None),
    ("tb/tb0034.png", 64, 50, True, (2816, 2200, [("ActiveTuberculosis", 0, 1700, 300, 2400, 1200),
                                                  ("ActiveTuberculosis", 0, 350, 700, 900, 1500)])),
    ("sick/s0003.png", 66, 48, True, None),
]
TEST = [("test/0a1b2c3d.png", 60, 48), ("test/4e5f6a7b.png", 64, 46)]   # names made up
EXTRA_TRAIN = [("extra/da+db/train/da0001.png", 62, 50)]                # name made up


def picture(seed, w, h, boxes):
    """uint8 gray image h x w: gradient, texture, noise and a bright blob in each (x, y, w, h) box."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.15 + 0.35 * xx / (w - 1) + 0.2 * yy / (h - 1) + 0.05 * np.sin(xx / 2.5 + seed) * np.cos(yy / 3.5)
    for (x, y, bw, bh) in boxes:
        v += 0.5 * np.exp(-(((xx + 0.5 - x - bw / 2) / (bw / 2.5)) ** 2 + ((yy + 0.5 - y - bh / 2) / (bh / 2.5)) ** 2))
    v += rng.normal(0, 0.02, (h, w))
    return np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)


def save_rgb(path, g):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([g, g, g], axis=-1), mode="RGB").save(path)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (g.shape[1], g.shape[0])
        a = np.asarray(im)
    assert all(np.array_equal(a[..., k], g) for k in range(3))


def write_voc(path, fname, voc):
    ow, oh, objs = voc
    a = ET.Element("annotation")
    ET.SubElement(a, "folder").text = "tb"
    ET.SubElement(a, "filename").text = fname
    src = ET.SubElement(a, "source")
    ET.SubElement(src, "database").text = "TBX11K"
    size = ET.SubElement(a, "size")
    ET.SubElement(size, "width").text = str(ow)
    ET.SubElement(size, "height").text = str(oh)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(a, "segmented").text = "0"
    for (name, difficult, x0, y0, x1, y1) in objs:
        o = ET.SubElement(a, "object")
        ET.SubElement(o, "name").text = name
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = "0"
        ET.SubElement(o, "difficult").text = str(difficult)
        b = ET.SubElement(o, "bndbox")
        for k, v in (("xmin", x0), ("ymin", y0), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(b, k).text = str(v)
    ET.indent(a, space="\t")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(a).write(path, encoding="utf-8")


def voc_to_coco_boxes(path, w, h):
    """make_json_anno.py's load_annotation + box conversion, re-derived: read the XML back, scale
    each non-difficult box to the w x h image, subtract 1, float32; [x, y, w, h] + category id."""
    if not path.exists():
        return []
    root = ET.parse(path).getroot()
    ow, oh = int(root.find("size/width").text), int(root.find("size/height").text)
    wr, hr = ow / w, oh / h
    out = []
    for o in root.findall("object"):
        if int(o.find("difficult").text):
            continue
        b = [int(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")]
        b = [b[0] / wr, b[1] / hr, b[2] / wr, b[3] / hr]
        if b[2] - b[0] < 1 or b[3] - b[1] < 1:
            continue
        box = (np.array(b, dtype=np.float64) - 1).astype(np.float32)
        box[2] = box[2] - box[0]
        box[3] = box[3] - box[1]
        out.append((CAT_ID[o.find("name").text], box.tolist()))
    return out


def coco(items, only_tb=False):
    """A COCO document for list items [(line, w, h, boxes)] in list order, ids from 1."""
    doc = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES, "images": [], "annotations": []}
    img_id, ann_id = 1, 1
    for (line, w, h, boxes) in items:
        if only_tb and not boxes:
            continue
        doc["images"].append({"id": img_id, "file_name": line, "width": w, "height": h,
                              "date_captured": "2020-06-22 12:00:00.000000", "license": 1,
                              "coco_url": "", "flickr_url": ""})
        for (cat, bbox) in boxes:
            doc["annotations"].append({"id": ann_id, "image_id": img_id, "category_id": cat, "iscrowd": 0,
                                       "area": int(round(bbox[2] * bbox[3])), "bbox": bbox,
                                       "width": w, "height": h})
            ann_id += 1
        img_id += 1
    return doc


def make(root: pathlib.Path):
    root = pathlib.Path(root)
    if root.exists():
        shutil.rmtree(root)
    (root / "lists").mkdir(parents=True)
    (root / "annotations" / "json").mkdir(parents=True)
    seed = 500
    converted = {}
    for (line, w, h, on_disk, voc) in TRAIN + VAL:
        assert w != h and 40 <= min(w, h) and max(w, h) <= 70
        stem = pathlib.PurePosixPath(line).stem
        xml = root / "annotations" / "xml" / f"{stem}.xml"
        if voc is not None:
            write_voc(xml, pathlib.PurePosixPath(line).name, voc)
        boxes = voc_to_coco_boxes(xml, w, h)
        converted[line] = boxes
        seed += 1
        if on_disk:
            save_rgb(root / "imgs" / line, picture(seed, w, h, [b for (_, b) in boxes]))
    for (line, w, h) in TEST + EXTRA_TRAIN:
        seed += 1
        save_rgb(root / "imgs" / line, picture(seed, w, h, []))

    def items(rows):
        return [(line, w, h, converted[line]) for (line, w, h, _, _) in rows]

    lists = {
        "TBX11K_train.txt": [r[0] for r in TRAIN],
        "TBX11K_val.txt": [r[0] for r in VAL],
        "TBX11K_trainval.txt": [r[0] for r in TRAIN + VAL],
        "all_train.txt": [r[0] for r in TRAIN] + [r[0] for r in EXTRA_TRAIN],
        "all_val.txt": [r[0] for r in VAL],
        "all_trainval.txt": [r[0] for r in TRAIN + VAL] + [r[0] for r in EXTRA_TRAIN],
        "all_test.txt": [r[0] for r in TEST],
    }
    for name, lines in lists.items():
        (root / "lists" / name).write_text("".join(l + "\n" for l in lines))
    docs = {
        "TBX11K_train.json": coco(items(TRAIN)),
        "TBX11K_val.json": coco(items(VAL)),
        "TBX11K_trainval.json": coco(items(TRAIN + VAL)),
        "TBX11K_trainval_only_tb.json": coco(items(TRAIN + VAL), only_tb=True),
        "all_test.json": coco([(line, w, h, []) for (line, w, h) in TEST]),
    }
    for name, doc in docs.items():
        (root / "annotations" / "json" / name).write_text(json.dumps(doc))

    # expected.jsonl, from what was written: the lists, the JSON read back, the PNG headers
    cats = {c["id"]: c["name"] for c in CATEGORIES}
    expected = []
    for listname, jsonname, split in (("TBX11K_train.txt", "TBX11K_train.json", "train"),
                                      ("TBX11K_val.txt", "TBX11K_val.json", "test")):
        doc = json.loads((root / "annotations" / "json" / jsonname).read_text())
        by_name = {im["file_name"]: im for im in doc["images"]}
        for line in (root / "lists" / listname).read_text().splitlines():
            path = root / "imgs" / line
            if not path.is_file():
                continue
            with Image.open(path) as im:
                w, h = im.size
            entry = by_name[line]
            assert (entry["width"], entry["height"]) == (w, h)
            boxes = []
            for a in doc["annotations"]:
                if a["image_id"] != entry["id"]:
                    continue
                x, y, bw, bh = a["bbox"]
                x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)  # clipped to the image
                assert x1 > x0 and y1 > y0
                boxes.append({"label": cats[a["category_id"]], "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0})
            folder = line.split("/")[0]
            expected.append({
                "dataset": "tbx11k", "split": split, "id": f"imgs/{line[:-len('.png')]}", "width": w, "height": h,
                "cls": {c: int(CLASSES[folder] == c) for c in CLASSES.values()},
                "boxes": boxes, "masks": {},
            })
    text = "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in expected)
    (root / "expected.jsonl").write_text(text)

    # self-checks
    back = [json.loads(l) for l in text.splitlines()]
    assert [list(d) for d in back] == [["dataset", "split", "id", "width", "height", "cls", "boxes", "masks"]] * len(back)
    ids = [d["id"] for d in back]
    assert len(ids) == len(set(ids)) == 11, ids
    assert "imgs/sick/s0004" not in ids
    tb1199 = next(d for d in back if d["id"] == "imgs/tb/tb1199")
    assert tb1199["cls"]["TB"] == 1 and tb1199["boxes"] == []
    tb0021 = next(d for d in back if d["id"] == "imgs/tb/tb0021")
    raw = json.loads((root / "annotations/json/TBX11K_val.json").read_text())["annotations"][0]["bbox"]
    assert raw[0] < 0 and tb0021["boxes"][0]["x"] == 0.0, (raw, tb0021)
    assert len(converted["tb/tb0010.png"]) == 2  # the difficult box is left out
    assert sum(len(d["boxes"]) for d in back) == 6
    assert {d["split"] for d in back} == {"train", "test"}
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT, total
    print(f"{root}: {len(back)} expected images ({sum(1 for d in back if d['boxes'])} with boxes, "
          f"{sum(len(d['boxes']) for d in back)} boxes), {total} bytes")
    return back


if __name__ == "__main__":
    make(REPO / "fixtures" / "datasets" / "tbx11k")
    sys.exit(0)
