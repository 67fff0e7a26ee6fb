#!/usr/bin/env python3
"""Generate fixtures/dice/cases.json: segmentation Dice cases that fx's Rust tests
(core/fx/tests/dice_numpy.rs) compare against.

The expected values come from a plain numpy implementation written here, independently of fx:

  pred          = probs > threshold                       (strict, in float32)
  per image     = 2*|pred & gt| / (|pred| + |gt|), 1 when both are empty
  per_image_mean[class] = mean over images of the per-image Dice
  global[class] = 2*sum|pred & gt| / (sum|pred| + sum|gt|) over all images and pixels,
                  1 when that denominator is 0
  mean          = the average of the per-class values over the classes

Each case holds: name, n, k, p, threshold, probs (n x k x p floats), truth (n x k strings of
'0'/'1', one character per pixel), expected per_class [{per_image_mean, global}] and mean.

Probabilities are float32 multiples of 1/64 (so JSON stores them exactly and short) and
include values exactly at the threshold. Thresholds are written as the double value of their
float32, so Rust's `as f32` recovers the same number numpy compared with.

Requires only numpy. Deterministic (seeded); rerun with `python3 scripts/make_seg_fixtures.py`.
"""
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "dice", "cases.json")


def reference_dice(probs, truth, threshold):
    """probs float32 (n, k, p), truth uint8 (n, k, p) -> (per_class list, mean dict)."""
    pred = probs > np.float32(threshold)
    gt = truth.astype(bool)
    tp = np.logical_and(pred, gt).sum(axis=2).astype(np.float64)  # (n, k)
    denom = pred.sum(axis=2).astype(np.float64) + gt.sum(axis=2).astype(np.float64)
    per_image = np.ones_like(tp)
    nz = denom > 0
    per_image[nz] = 2.0 * tp[nz] / denom[nz]
    per_image_mean = per_image.mean(axis=0)  # (k,)
    TP = tp.sum(axis=0)
    D = denom.sum(axis=0)
    glob = np.ones_like(TP)
    glob[D > 0] = 2.0 * TP[D > 0] / D[D > 0]
    per_class = [{"per_image_mean": float(a), "global": float(b)} for a, b in zip(per_image_mean, glob)]
    mean = {"per_image_mean": float(per_image_mean.mean()), "global": float(glob.mean())}
    return per_class, mean


def quantised_probs(rng, shape):
    return (rng.integers(0, 65, size=shape) / 64.0).astype(np.float32)


def correlated_case(rng, n, k, p, flip=0.2):
    """Truth from random blobs; probabilities that mostly agree with it, so Dice is neither 0 nor 1."""
    truth = np.zeros((n, k, p), dtype=np.uint8)
    for i in range(n):
        for c in range(k):
            start = rng.integers(0, p)
            length = rng.integers(1, p // 2)
            idx = (start + np.arange(length)) % p
            truth[i, c, idx] = 1
    agree = rng.random((n, k, p)) > flip
    target = np.where(agree, truth, 1 - truth).astype(np.float32)
    noise = quantised_probs(rng, (n, k, p)) * np.float32(0.5)
    probs = np.clip(target * np.float32(0.5) + noise, 0, 1).astype(np.float32)
    return probs, truth


def make_cases():
    rng = np.random.default_rng(20240607)
    cases = []

    def add(name, probs, truth, threshold=0.5):
        n, k, p = probs.shape
        per_class, mean = reference_dice(probs, truth, threshold)
        cases.append(
            {
                "name": name,
                "n": n,
                "k": k,
                "p": p,
                "threshold": float(np.float32(threshold)),
                "probs": [[[float(v) for v in probs[i, c]] for c in range(k)] for i in range(n)],
                "truth": [["".join(str(int(v)) for v in truth[i, c]) for c in range(k)] for i in range(n)],
                "per_class": per_class,
                "mean": mean,
            }
        )

    n, k, p = 6, 3, 64

    probs, truth = correlated_case(rng, n, k, p)
    add("correlated", probs, truth)

    # Independent noise: Dice near chance.
    add("uncorrelated", quantised_probs(rng, (n, k, p)), (rng.random((n, k, p)) < 0.3).astype(np.uint8))

    # Some images empty in truth and prediction for every class, one empty only in truth,
    # one empty only in prediction.
    probs, truth = correlated_case(rng, n, k, p)
    for i in (1, 4):
        truth[i] = 0
        probs[i] = np.minimum(probs[i], np.float32(0.25))
    truth[2, 0] = 0
    probs[3, 1] = np.float32(0.0)
    add("empty_images", probs, truth)

    # Class 0 empty everywhere and never predicted (global 1); class 2 empty everywhere in truth
    # but with false positives (global 0, per-image mean below 1).
    probs, truth = correlated_case(rng, n, k, p)
    truth[:, 0] = 0
    probs[:, 0] = np.minimum(probs[:, 0], np.float32(0.5))
    truth[:, 2] = 0
    probs[0, 2, :5] = np.float32(0.75)
    probs[3, 2] = np.minimum(probs[3, 2], np.float32(0.5))
    add("empty_classes", probs, truth)

    # Many probabilities exactly at the threshold: strict '>' matters.
    probs, truth = correlated_case(rng, n, k, p)
    at = rng.random((n, k, p)) < 0.3
    probs[at] = np.float32(0.5)
    add("ties_at_threshold", probs, truth)

    # A threshold that is not exact in float32 (0.3 -> 0.30000001192...), with values around it.
    probs, truth = correlated_case(rng, n, k, p, flip=0.1)
    probs[:, :, ::7] = np.float32(0.3)
    add("threshold_0.3", probs, truth, threshold=0.3)

    # Perfect prediction, and a single image.
    probs, truth = correlated_case(rng, n, k, p)
    add("perfect", np.where(truth == 1, np.float32(1.0), np.float32(0.0)).astype(np.float32), truth)
    probs, truth = correlated_case(rng, 1, 2, 48)
    add("single_image", probs, truth)

    return cases


def main():
    cases = make_cases()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(cases, f, separators=(",", ":"))
        f.write("\n")
    # Self-check: the file reproduces the expectations.
    with open(OUT) as f:
        back = json.load(f)
    for c in back:
        probs = np.array(c["probs"], dtype=np.float32)
        truth = np.array([[[int(ch) for ch in s] for s in row] for row in c["truth"]], dtype=np.uint8)
        per_class, mean = reference_dice(probs, truth, c["threshold"])
        assert per_class == c["per_class"] and mean == c["mean"], c["name"]
        assert probs.shape == (c["n"], c["k"], c["p"]) and truth.shape == probs.shape, c["name"]
    size = os.path.getsize(OUT)
    assert size < 200_000, size
    print(f"wrote {OUT}: {len(cases)} cases, {size} bytes")
    for c in back:
        print(f"  {c['name']:18s} mean per-image {c['mean']['per_image_mean']:.4f} global {c['mean']['global']:.4f}")


if __name__ == "__main__":
    main()
