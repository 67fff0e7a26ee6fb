#!/usr/bin/env python3
"""Generate the localization fixtures that fx's Rust tests compare against:

  fixtures/map/cases.json            COCO detection AP from pycocotools' COCOeval (bbox)
  fixtures/map/<case>_gt.json        the COCO ground truth each case was scored from
  fixtures/map/<case>_results.json   the COCO results (detections) each case was scored from
  fixtures/matcher/cases.json        optimal assignments from scipy.optimize.linear_sum_assignment,
                                     and DINO matching costs from a numpy transcription of DINO's
                                     HungarianMatcher (models/dino/matcher.py)

Tests: core/fx/tests/map_pycocotools.rs and core/fx/tests/matcher_scipy.rs (they never need Python).

mAP: every case is written as COCO JSON (image and category ids ascending in index order, boxes
[x, y, w, h] = [x0, y0, x1 - x0, y1 - y0]), loaded with pycocotools.coco.COCO / loadRes and scored
by COCOeval(iouType='bbox') with params.iouThrs = np.arange(0.40, 0.951, 0.05),
params.maxDets = [1, 10, 100] and one area range 'all' ([0, 1e5**2], pycocotools' default for
'all'). From eval['precision'] (T x R x K x A x M) at maxDets 100:
  per_category[k][t] = mean over the 101 recall thresholds, null when it is -1 (no GT);
  per_threshold[t]   = mean of the entries > -1 (what summarize() does for one threshold);
  ap40_95            = mean of all entries > -1 over the grid (summarize()'s AP);
  map40 = per_threshold[0], ap50 = per_threshold[2] (the grid's 0.5 is exactly 0.5).
summarize() itself is run and checked against these numbers.
Box coordinates are multiples of 1/8 and scores float32 values, so JSON holds exactly the f32
numbers fx evaluates and all box arithmetic is exact in both implementations.

Requires numpy, scipy and pycocotools (python3 -m pip install pycocotools). Deterministic
(seeded); rerun with `python3 scripts/make_loc_fixtures.py`.
"""
import contextlib
import io
import json
import os
from importlib.metadata import version

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAP_DIR = os.path.join(ROOT, "fixtures", "map")
MATCHER_DIR = os.path.join(ROOT, "fixtures", "matcher")

IOU_THRS = np.arange(0.40, 0.951, 0.05)


# ---------------------------------------------------------------------------------------------
# mAP cases


def q8(v):
    return float(np.round(float(v) * 8.0) / 8.0)


def f32(v):
    return float(np.float32(v))


class Scene:
    def __init__(self, name, n_images, n_categories, rng, size=(256, 512)):
        self.name = name
        self.rng = rng
        self.images = []
        for i in range(n_images):
            w, h = (int(x) for x in rng.integers(size[0], size[1] + 1, size=2))
            self.images.append({"id": 3 + 5 * i + int(rng.integers(0, 3)), "file_name": f"img{i:03d}.png", "width": w, "height": h})
        self.categories = [{"id": 1 + 2 * k, "name": f"cat{k}"} for k in range(n_categories)]
        self.gt = []  # [image, category, x0, y0, x1, y1, crowd]
        self.dets = []  # [image, category, x0, y0, x1, y1, score]

    def rand_box(self, image, min_size=8, max_size=120):
        im = self.images[image]
        w = self.rng.uniform(min_size, min(max_size, im["width"] - 1))
        h = self.rng.uniform(min_size, min(max_size, im["height"] - 1))
        x0 = self.rng.uniform(0, im["width"] - w)
        y0 = self.rng.uniform(0, im["height"] - h)
        return [q8(x0), q8(y0), q8(x0 + w), q8(y0 + h)]

    def jitter(self, box, amount):
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        d = self.rng.normal(0, amount, size=4) * np.array([w, h, w, h])
        nb = [q8(x0 + d[0]), q8(y0 + d[1]), q8(x1 + d[2]), q8(y1 + d[3])]
        if nb[2] - nb[0] < 1:
            nb[2] = nb[0] + 1
        if nb[3] - nb[1] < 1:
            nb[3] = nb[1] + 1
        return nb

    def add_gt(self, image, category, box, crowd=0):
        self.gt.append([image, category] + list(box) + [crowd])

    def add_det(self, image, category, box, score):
        self.dets.append([image, category] + list(box) + [f32(score)])

    def populate(self, p_detect=0.8, jitter=0.12, fp_per_image=2, dup_rate=0.15, max_gt=3, score_step=None,
                 skip_images=(), skip_categories=()):
        rng = self.rng
        for i in range(len(self.images)):
            if i in skip_images:
                continue
            for k in range(len(self.categories)):
                if k in skip_categories:
                    continue
                for _ in range(int(rng.integers(0, max_gt + 1))):
                    box = self.rand_box(i)
                    self.add_gt(i, k, box)
                    if rng.random() < p_detect:
                        self.add_det(i, k, self.jitter(box, jitter), self.score(0.55, score_step))
                        if rng.random() < dup_rate:
                            self.add_det(i, k, self.jitter(box, jitter), self.score(0.35, score_step))
        for i in range(len(self.images)):
            for _ in range(int(rng.poisson(fp_per_image))):
                k = int(rng.integers(0, len(self.categories)))
                self.add_det(i, k, self.rand_box(i), self.score(0.3, score_step))

    def score(self, centre, step):
        s = float(np.clip(self.rng.normal(centre, 0.2), 0.001, 0.999))
        if step:
            s = max(step, np.round(s / step) * step)
        return s

    def shuffle_dets(self):
        order = self.rng.permutation(len(self.dets))
        self.dets = [self.dets[i] for i in order]


def coco_gt(scene):
    anns = []
    for n, (i, k, x0, y0, x1, y1, crowd) in enumerate(scene.gt):
        w, h = x1 - x0, y1 - y0
        anns.append({"id": n + 1, "image_id": scene.images[i]["id"], "category_id": scene.categories[k]["id"],
                     "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": int(crowd)})
    return {"images": scene.images, "categories": scene.categories, "annotations": anns}


def coco_results(scene):
    return [{"image_id": scene.images[i]["id"], "category_id": scene.categories[k]["id"],
             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s} for (i, k, x0, y0, x1, y1, s) in scene.dets]


def score_scene(scene):
    gt_name = f"{scene.name}_gt.json"
    res_name = f"{scene.name}_results.json"
    gt_path = os.path.join(MAP_DIR, gt_name)
    res_path = os.path.join(MAP_DIR, res_name)
    with open(gt_path, "w") as f:
        json.dump(coco_gt(scene), f)
    with open(res_path, "w") as f:
        json.dump(coco_results(scene), f)
    assert scene.dets, "pycocotools' loadRes cannot read an empty results list"
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(gt_path)
        cd = cg.loadRes(res_path)
        E = COCOeval(cg, cd, "bbox")
        E.params.iouThrs = IOU_THRS
        E.params.maxDets = [1, 10, 100]
        E.params.areaRng = [[0 ** 2, 1e5 ** 2]]
        E.params.areaRngLbl = ["all"]
        E.evaluate()
        E.accumulate()
        E.summarize()
    P = E.eval["precision"][:, :, :, 0, 2]  # T x R x K
    T, R, K = P.shape
    assert K == len(scene.categories) and R == 101 and T == 12
    assert list(E.params.catIds) == [c["id"] for c in scene.categories]
    assert list(E.params.imgIds) == [im["id"] for im in scene.images]
    per_category = []
    for k in range(K):
        if P[0, 0, k] > -1:
            per_category.append([float(np.mean(P[t, :, k])) for t in range(T)])
        else:
            assert np.all(P[:, :, k] == -1)
            per_category.append(None)
    per_threshold = []
    for t in range(T):
        s = P[t][P[t] > -1]
        per_threshold.append(float(np.mean(s)) if s.size else None)
    s = P[P > -1]
    ap40_95 = float(np.mean(s)) if s.size else None
    # summarize() agrees (stats[0]: the grid, stats[1]: IoU .5, stats[2]: IoU .75).
    assert abs(E.stats[0] - (ap40_95 if ap40_95 is not None else -1)) < 1e-12
    assert abs(E.stats[1] - (per_threshold[2] if per_threshold[2] is not None else -1)) < 1e-12
    assert abs(E.stats[2] - (per_threshold[7] if per_threshold[7] is not None else -1)) < 1e-12
    return {
        "name": scene.name,
        "images": scene.images,
        "categories": scene.categories,
        "gt": scene.gt,
        "dets": scene.dets,
        "gt_json": gt_name,
        "results_json": res_name,
        "expected": {
            "map40": per_threshold[0],
            "ap50": per_threshold[2],
            "ap40_95": ap40_95,
            "per_threshold": per_threshold,
            "per_category": per_category,
            "per_category_map40": [None if row is None else row[0] for row in per_category],
        },
    }


def map_cases():
    cases = []

    s = Scene("basic", 6, 3, np.random.default_rng(101))
    s.populate()
    cases.append(s)

    # Scores on a coarse grid: ties within and across images and categories; duplicates.
    s = Scene("ties_and_duplicates", 8, 2, np.random.default_rng(102))
    s.populate(dup_rate=0.6, score_step=0.125, fp_per_image=3)
    # Exact duplicates of a detection with the same score.
    s.dets += [list(d) for d in s.dets[:5]]
    s.shuffle_dets()
    cases.append(s)

    # Crowd regions: detections inside them are ignored; one category has only a crowd box.
    s = Scene("crowd", 5, 3, np.random.default_rng(103))
    s.populate(skip_categories=(2,))
    for i in range(3):
        box = s.rand_box(i, min_size=60, max_size=150)
        s.add_gt(i, 0, box, crowd=1)
        for _ in range(3):
            x0, y0, x1, y1 = box
            cx, cy = s.rng.uniform(x0, x1), s.rng.uniform(y0, y1)
            s.add_det(i, 0, [q8(cx - 6), q8(cy - 6), q8(cx + 6), q8(cy + 6)], s.rng.uniform(0.3, 0.95))
        # A detection half inside a crowd box (crowd IoU = intersection / detection area).
        s.add_det(i, 0, [q8(x1 - 5), q8(y0), q8(x1 + 5), q8(y0 + 10)], 0.7)
    s.add_gt(4, 2, s.rand_box(4), crowd=1)
    s.add_det(4, 2, s.rand_box(4), 0.5)
    s.shuffle_dets()
    cases.append(s)

    # Images without ground truth (false positives only); a category with detections but no
    # ground truth; a category with neither.
    s = Scene("empty_images_and_categories", 7, 5, np.random.default_rng(104))
    s.populate(skip_images=(1, 4, 5), skip_categories=(3, 4), fp_per_image=2)
    for i in (1, 4, 5):
        s.add_det(i, 0, s.rand_box(i), 0.9)
    s.add_det(2, 3, s.rand_box(2), 0.8)
    s.dets = [d for d in s.dets if d[1] != 4]
    cases.append(s)

    # > 100 detections of one category on one image: true positives beyond rank 100 are cut.
    s = Scene("over_100_detections", 3, 2, np.random.default_rng(105), size=(800, 1000))
    for _ in range(30):
        box = s.rand_box(0, max_size=60)
        s.add_gt(0, 0, box)
        s.add_det(0, 0, s.jitter(box, 0.08), s.rng.uniform(0.0, 1.0))
    for _ in range(130):
        s.add_det(0, 0, s.rand_box(0), s.rng.uniform(0.0, 1.0))
    for _ in range(20):
        s.add_det(0, 1, s.rand_box(0), s.rng.uniform(0.0, 1.0))
    for i in (1, 2):
        box = s.rand_box(i)
        s.add_gt(i, 0, box)
        s.add_gt(i, 1, s.rand_box(i))
        s.add_det(i, 0, s.jitter(box, 0.05), 0.5)
    s.shuffle_dets()
    cases.append(s)

    # IoU exactly at the thresholds: 0.4, 0.5, 0.55, 0.75, 0.95 (inclusive matching).
    s = Scene("iou_at_thresholds", 5, 1, np.random.default_rng(106))
    for i, frac in enumerate([0.4, 0.5, 0.55, 0.75, 0.95]):
        s.add_gt(i, 0, [10.0, 10.0, 110.0, 110.0])
        s.add_det(i, 0, [10.0, 10.0, 110.0, 10.0 + 100.0 * frac], 0.9 - 0.1 * i)
        s.add_det(i, 0, [150.0, 150.0, 180.0, 180.0], 0.85 - 0.1 * i)
    cases.append(s)

    # 20 ground truths, 7 found first: recall 7/20 = 0.35 < linspace's 0.35000000000000003.
    s = Scene("recall_grid_rounding", 4, 1, np.random.default_rng(107), size=(600, 700))
    boxes = []
    for i in range(4):
        for _ in range(5):
            b = s.rand_box(i, max_size=50)
            s.add_gt(i, 0, b)
            boxes.append((i, b))
    for n, (i, b) in enumerate(boxes[:7]):
        s.add_det(i, 0, b, 0.9 - 0.01 * n)
    s.add_det(0, 0, s.rand_box(0), 0.5)
    for n, (i, b) in enumerate(boxes[7:12]):
        s.add_det(i, 0, s.jitter(b, 0.05), 0.4 - 0.01 * n)
    cases.append(s)

    for seed in (201, 202, 203):
        s = Scene(f"random_{seed}", 15, 4, np.random.default_rng(seed))
        s.populate(p_detect=0.75, jitter=0.15, fp_per_image=3, dup_rate=0.2, max_gt=4,
                   score_step=0.05 if seed == 202 else None)
        if seed == 203:
            for i in range(0, 15, 4):
                s.add_gt(i, 1, s.rand_box(i, min_size=80, max_size=200), crowd=1)
        s.shuffle_dets()
        cases.append(s)
    return cases


# ---------------------------------------------------------------------------------------------
# Matcher cases


def assignment_case(name, cost):
    rows, cols = cost.shape
    r, c = linear_sum_assignment(cost)
    return {"name": name, "rows": rows, "cols": cols, "cost": [float(x) for x in cost.ravel()],
            "total": float(cost[r, c].sum()), "pairs": [[int(a), int(b)] for a, b in zip(r, c)]}


def assignment_cases():
    rng = np.random.default_rng(301)
    out = [
        assignment_case("1x1", np.array([[3.25]])),
        assignment_case("5x0", np.zeros((5, 0))),
        assignment_case("0x4", np.zeros((0, 4))),
        assignment_case("all_equal_7x7", np.full((7, 7), 2.5)),
        assignment_case("uniform_5x5", rng.uniform(0, 1, (5, 5))),
        assignment_case("ties_int_10x10", rng.integers(0, 3, (10, 10)).astype(float)),
        assignment_case("ties_int_60x20", rng.integers(0, 4, (60, 20)).astype(float)),
        assignment_case("ties_int_20x60", rng.integers(0, 4, (20, 60)).astype(float)),
        assignment_case("ties_int50_60x20", rng.integers(0, 50, (60, 20)).astype(float)),
        assignment_case("ties_int50_20x60", rng.integers(0, 50, (20, 60)).astype(float)),
        assignment_case("normal_60x20", rng.normal(0, 3, (60, 20))),
        assignment_case("normal_20x60", rng.normal(0, 3, (20, 60))),
        assignment_case("normal_30x30", rng.normal(0, 1, (30, 30))),
        assignment_case("int_0_100_40x40", rng.integers(0, 101, (40, 40)).astype(float)),
        assignment_case("wide_magnitudes_12x9", rng.uniform(-1, 1, (12, 9)) * 10.0 ** rng.integers(-3, 7, (12, 9))),
        assignment_case("negative_15x15", -rng.exponential(5, (15, 15))),
        assignment_case("row_1x20", rng.uniform(0, 1, (1, 20))),
        assignment_case("col_20x1", rng.uniform(0, 1, (20, 1))),
        assignment_case("near_ties_25x25", 1.0 + 1e-9 * rng.integers(0, 5, (25, 25))),
        assignment_case("low_rank_20x20", np.add.outer(rng.uniform(0, 1, 20), rng.uniform(0, 1, 20))),
    ]
    return out


def xyxy(b):
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def generalized_box_iou(b1, b2):
    """DETR's util/box_ops.generalized_box_iou, in numpy float64."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = np.maximum(b1[:, None, :2], b2[None, :, :2])
    rb = np.minimum(b1[:, None, 2:], b2[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    iou = inter / union
    lt = np.minimum(b1[:, None, :2], b2[None, :, :2])
    rb = np.maximum(b1[:, None, 2:], b2[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    area = wh[..., 0] * wh[..., 1]
    return iou - (area - union) / area


def dino_cost(logits, boxes, labels, gt_boxes):
    """DINO models/dino/matcher.py HungarianMatcher.forward (focal, alpha .25, gamma 2; weights
    class 2, bbox 5, giou 2), in numpy float64."""
    alpha, gamma = 0.25, 2.0
    p = 1.0 / (1.0 + np.exp(-logits))
    neg = (1 - alpha) * (p ** gamma) * (-np.log(1 - p + 1e-8))
    pos = alpha * ((1 - p) ** gamma) * (-np.log(p + 1e-8))
    cost_class = pos[:, labels] - neg[:, labels]
    cost_bbox = np.abs(boxes[:, None, :] - gt_boxes[None, :, :]).sum(-1)
    cost_giou = -generalized_box_iou(xyxy(boxes), xyxy(gt_boxes))
    return 5.0 * cost_bbox + 2.0 * cost_class + 2.0 * cost_giou


def dino_cases():
    rng = np.random.default_rng(401)
    out = []
    for name, q, c, g in [("q30_c3_g5", 30, 3, 5), ("q100_c4_g7", 100, 4, 7), ("q900_c1_g3", 900, 1, 3),
                          ("q5_c2_g8", 5, 2, 8), ("q10_c3_g0", 10, 3, 0), ("q1_c1_g1", 1, 1, 1)]:
        logits = rng.normal(0, 3, (q, c)).astype(np.float32)
        boxes = np.concatenate([rng.uniform(0.05, 0.95, (q, 2)), rng.uniform(0.02, 0.5, (q, 2))], 1).astype(np.float32)
        labels = rng.integers(0, c, g)
        gt_boxes = np.concatenate([rng.uniform(0.1, 0.9, (g, 2)), rng.uniform(0.05, 0.4, (g, 2))], 1).astype(np.float32)
        if name == "q30_c3_g5":
            boxes[3] = gt_boxes[1]  # an exact hit
        cost = dino_cost(logits.astype(np.float64), boxes.astype(np.float64), labels, gt_boxes.astype(np.float64))
        r, cc = linear_sum_assignment(cost)
        out.append({"name": name, "queries": q, "classes": c,
                    "logits": [float(x) for x in logits.ravel()],
                    "boxes": [[float(x) for x in b] for b in boxes],
                    "gt_labels": [int(x) for x in labels],
                    "gt_boxes": [[float(x) for x in b] for b in gt_boxes],
                    "cost": [float(x) for x in cost.ravel()],
                    "total": float(cost[r, cc].sum()),
                    "pairs": [[int(a), int(b)] for a, b in zip(r, cc)]})
    return out


def main():
    os.makedirs(MAP_DIR, exist_ok=True)
    os.makedirs(MATCHER_DIR, exist_ok=True)
    cases = [score_scene(s) for s in map_cases()]
    doc = {
        "generator": "scripts/make_loc_fixtures.py",
        "versions": {"pycocotools": version("pycocotools"), "numpy": np.__version__},
        # The exact bits (IEEE-754 double as an integer): JSON readers need not parse decimals
        # correctly rounded (serde_json's default parser can be 1 ulp off).
        "iou_thrs_bits": [int(x) for x in np.asarray(IOU_THRS, dtype=np.float64).view(np.uint64)],
        "rec_thrs_bits": [int(x) for x in np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1,
                                                       endpoint=True).astype(np.float64).view(np.uint64)],
        "cases": cases,
    }
    with open(os.path.join(MAP_DIR, "cases.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    for c in cases:
        e = c["expected"]
        print(f"map {c['name']:28s} gt {len(c['gt']):3d} dets {len(c['dets']):3d}  mAP40 {e['map40']}  AP50 {e['ap50']}  AP40:95 {e['ap40_95']}")

    import scipy
    doc = {
        "generator": "scripts/make_loc_fixtures.py",
        "versions": {"scipy": scipy.__version__, "numpy": np.__version__},
        "assignment": assignment_cases(),
        "dino": dino_cases(),
    }
    with open(os.path.join(MATCHER_DIR, "cases.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    for c in doc["assignment"]:
        print(f"lsa {c['name']:24s} {c['rows']}x{c['cols']} total {c['total']}")
    for c in doc["dino"]:
        print(f"dino {c['name']:12s} total {c['total']} pairs {len(c['pairs'])}")


if __name__ == "__main__":
    main()
