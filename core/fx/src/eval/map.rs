//! COCO-style detection average precision, as pycocotools' `COCOeval` (iouType `bbox`, one area
//! range "all", `maxDets` 100) computes it, on fx's box convention: pixels `[x0, y0, x1, y1]`.
//!
//! Per category and image: ground truths with crowd ones last, detections by descending score
//! (stable: equal scores keep their input order) cut to the best `max_dets` of that (image,
//! category) — pycocotools' `maxDets` counts per image AND category; use [`top_k_per_image`] first
//! to cap a whole image as DINO's post-processing does. Each detection in turn takes the unmatched
//! non-crowd ground truth of highest IoU ≥ threshold (on equal IoU the later one), else a crowd
//! ground truth (IoU = intersection / detection area; a crowd box can absorb any number of
//! detections, which are then ignored, neither true nor false positives). Over all images of the
//! category (in image-index order, then stably by score): cumulative precision and recall,
//! precision made non-increasing from the right, read at the 101 recall thresholds 0, 0.01, … 1
//! (first point with recall ≥ threshold; 0 past the last), AP = their mean. A category without a
//! non-crowd ground truth has no AP (`None`, pycocotools' −1); means run over the others.
//!
//! IoU has no +1 (pycocotools' `bbIou` on `[x, y, w, h]`), and is computed in f64 from the f32
//! corners, which equals pycocotools' value on the same boxes written as `[x0, y0, x1 − x0, y1 − y0]`.
//! The thresholds are numpy's `np.arange(0.40, 0.951, 0.05)` bit for bit (0.40, 0.45, 0.5, …;
//! index 0 = mAP40, the paper's metric; index 2 = AP50, exactly 0.5).
//!
//! Values are fractions in [0, 1]; metric rows multiply by 100.

use fx_data::coco::{CocoCategory, CocoImage, CocoSet};

/// A ground-truth box: `image` and `category` are 0-based indices (into the caller's image list
/// and category list), `bbox` is `[x0, y0, x1, y1]` in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GtBox {
    pub image: usize,
    pub category: usize,
    pub bbox: [f32; 4],
    /// COCO `iscrowd`: a region where detections are neither rewarded nor punished.
    pub crowd: bool,
}

/// A detection: indices as in [`GtBox`], `bbox` `[x0, y0, x1, y1]` in pixels, any score scale
/// (only the order matters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub image: usize,
    pub category: usize,
    pub bbox: [f32; 4],
    pub score: f32,
}

/// The evaluation of one set of detections.
#[derive(Clone, Debug, PartialEq)]
pub struct ApReport {
    /// Mean AP over categories with ground truth at IoU 0.40 (the paper's mAP40).
    pub map40: Option<f64>,
    /// The same at IoU 0.50.
    pub ap50: Option<f64>,
    /// The mean over the 12 thresholds 0.40, 0.45, … 0.95 (COCO's AP, from 0.40).
    pub ap40_95: Option<f64>,
    /// The thresholds (see [`iou_thresholds`]).
    pub iou_thresholds: Vec<f64>,
    /// Mean over categories at each threshold.
    pub per_threshold: Vec<Option<f64>>,
    /// AP of each category at each threshold: `per_category[category][threshold]`.
    pub per_category: Vec<Vec<Option<f64>>>,
    /// `per_category[k][0]`: the per-category mAP40 row.
    pub per_category_map40: Vec<Option<f64>>,
}

/// pycocotools' default `maxDets[-1]`.
pub const MAX_DETS: usize = 100;

/// `np.arange(0.40, 0.951, 0.05)` exactly as numpy computes it (start + i·((start + step) − start)).
pub fn iou_thresholds() -> Vec<f64> {
    let delta = (0.40f64 + 0.05) - 0.40;
    (0..12).map(|i| 0.40 + i as f64 * delta).collect()
}

/// pycocotools' `recThrs = np.linspace(0, 1, 101)`: i · 0.01, the last exactly 1.
pub fn recall_thresholds() -> Vec<f64> {
    (0..101).map(|i| if i == 100 { 1.0 } else { i as f64 * 0.01 }).collect()
}

/// mAP40, AP50, AP@[.40:.05:.95] and the per-category values. `categories` and `images` are the
/// counts the indices run over (images without boxes may exist; categories without ground truth
/// get `None`).
///
/// # Panics
/// When a box's image or category index is out of range (a caller bug).
pub fn evaluate(gt: &[GtBox], dets: &[Detection], categories: usize, images: usize) -> ApReport {
    let thresholds = iou_thresholds();
    let per_category = average_precision(gt, dets, categories, images, &thresholds, MAX_DETS);
    let per_threshold: Vec<Option<f64>> =
        (0..thresholds.len()).map(|t| mean(per_category.iter().filter_map(|row| row[t]))).collect();
    let map40 = per_threshold[0];
    let ap50 = per_threshold[2];
    let ap40_95 = mean(per_threshold.iter().flatten().copied());
    let per_category_map40 = per_category.iter().map(|row| row[0]).collect();
    ApReport { map40, ap50, ap40_95, iou_thresholds: thresholds, per_threshold, per_category, per_category_map40 }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// IoU as pycocotools' `bbIou`: intersection / union, or intersection / detection area against a
/// crowd box; 0 without overlap.
pub fn coco_iou(det: [f32; 4], gt: [f32; 4], crowd: bool) -> f64 {
    let d = det.map(|v| v as f64);
    let g = gt.map(|v| v as f64);
    let w = d[2].min(g[2]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = d[3].min(g[3]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let da = (d[2] - d[0]) * (d[3] - d[1]);
    let ga = (g[2] - g[0]) * (g[3] - g[1]);
    inter / if crowd { da } else { da + ga - inter }
}

/// Descending by score, NaN last (numpy's argsort of −score); stable.
fn by_score_desc(a: f32, b: f32) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap(),
    }
}

/// AP per category and threshold, `result[category][threshold]` (`None`: no non-crowd ground
/// truth), with `max_dets` detections per (image, category). The general form behind [`evaluate`].
pub fn average_precision(
    gt: &[GtBox],
    dets: &[Detection],
    categories: usize,
    images: usize,
    thresholds: &[f64],
    max_dets: usize,
) -> Vec<Vec<Option<f64>>> {
    let cell = |image: usize, category: usize, what: &str, i: usize| -> usize {
        assert!(
            image < images && category < categories,
            "map::average_precision: {what} {i} has image {image}, category {category}; expected < {images} images, < {categories} categories"
        );
        category * images + image
    };
    let mut gts_of: Vec<Vec<usize>> = vec![Vec::new(); categories * images];
    let mut dets_of: Vec<Vec<usize>> = vec![Vec::new(); categories * images];
    for (i, g) in gt.iter().enumerate() {
        gts_of[cell(g.image, g.category, "ground truth", i)].push(i);
    }
    for (i, d) in dets.iter().enumerate() {
        dets_of[cell(d.image, d.category, "detection", i)].push(i);
    }
    let nt = thresholds.len();
    let recall_thr = recall_thresholds();
    let mut out = Vec::with_capacity(categories);
    for k in 0..categories {
        // Per detection kept: score, and per threshold (matched, ignored).
        let mut scores: Vec<f32> = Vec::new();
        let mut matched: Vec<bool> = Vec::new(); // [det * nt + t]
        let mut ignored: Vec<bool> = Vec::new();
        let mut npig = 0usize;
        for i in 0..images {
            let mut g = gts_of[k * images + i].clone();
            let mut d = dets_of[k * images + i].clone();
            if g.is_empty() && d.is_empty() {
                continue;
            }
            g.sort_by_key(|&j| gt[j].crowd);
            d.sort_by(|&a, &b| by_score_desc(dets[a].score, dets[b].score));
            d.truncate(max_dets);
            let crowd: Vec<bool> = g.iter().map(|&j| gt[j].crowd).collect();
            npig += crowd.iter().filter(|c| !**c).count();
            let ious: Vec<f64> = d
                .iter()
                .flat_map(|&di| g.iter().map(move |&gj| (di, gj)))
                .map(|(di, gj)| coco_iou(dets[di].bbox, gt[gj].bbox, gt[gj].crowd))
                .collect();
            let ng = g.len();
            let base = scores.len();
            scores.extend(d.iter().map(|&di| dets[di].score));
            matched.resize(scores.len() * nt, false);
            ignored.resize(scores.len() * nt, false);
            for (t, &thr) in thresholds.iter().enumerate() {
                let mut gt_taken = vec![false; ng];
                for dd in 0..d.len() {
                    let mut best = thr.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for gg in 0..ng {
                        if gt_taken[gg] && !crowd[gg] {
                            continue;
                        }
                        if let Some(mm) = m {
                            if !crowd[mm] && crowd[gg] {
                                break;
                            }
                        }
                        let iou = ious[dd * ng + gg];
                        if iou < best {
                            continue;
                        }
                        best = iou;
                        m = Some(gg);
                    }
                    if let Some(mm) = m {
                        matched[(base + dd) * nt + t] = true;
                        ignored[(base + dd) * nt + t] = crowd[mm];
                        gt_taken[mm] = true;
                    }
                }
            }
        }
        if npig == 0 {
            out.push(vec![None; nt]);
            continue;
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| by_score_desc(scores[a], scores[b]));
        let nd = order.len();
        let mut row = Vec::with_capacity(nt);
        let mut rc = vec![0f64; nd];
        let mut pr = vec![0f64; nd];
        for t in 0..nt {
            let (mut tp, mut fp) = (0f64, 0f64);
            for (r, &o) in order.iter().enumerate() {
                if !ignored[o * nt + t] {
                    if matched[o * nt + t] {
                        tp += 1.0;
                    } else {
                        fp += 1.0;
                    }
                }
                rc[r] = tp / npig as f64;
                pr[r] = tp / (fp + tp + f64::EPSILON);
            }
            for r in (1..nd).rev() {
                if pr[r] > pr[r - 1] {
                    pr[r - 1] = pr[r];
                }
            }
            let mut q = [0f64; 101];
            for (ri, &thr) in recall_thr.iter().enumerate() {
                let idx = rc.partition_point(|&x| x < thr);
                if idx >= nd {
                    break;
                }
                q[ri] = pr[idx];
            }
            row.push(Some(q.iter().sum::<f64>() / q.len() as f64));
        }
        out.push(row);
    }
    out
}

/// Keeps, per image, the `k` highest-scoring detections over all categories (ties: earlier
/// input first), in their input order: DINO's "top-k per image" before COCO evaluation.
pub fn top_k_per_image(dets: &[Detection], k: usize) -> Vec<Detection> {
    let images = dets.iter().map(|d| d.image + 1).max().unwrap_or(0);
    let mut per_image: Vec<Vec<usize>> = vec![Vec::new(); images];
    for (i, d) in dets.iter().enumerate() {
        per_image[d.image].push(i);
    }
    let mut keep = vec![false; dets.len()];
    for mut list in per_image {
        list.sort_by(|&a, &b| by_score_desc(dets[a].score, dets[b].score));
        for &i in list.iter().take(k) {
            keep[i] = true;
        }
    }
    dets.iter().zip(keep).filter(|(_, k)| *k).map(|(d, _)| *d).collect()
}

/// The ground truth of a COCO file (`fx_data::coco::read_coco`) as [`GtBox`]es: image and category
/// indices are positions in `set.images` and `set.categories`.
pub fn gt_from_coco(set: &CocoSet) -> Vec<GtBox> {
    set.annotations
        .iter()
        .map(|a| GtBox { image: a.image, category: a.category, bbox: a.xyxy(), crowd: a.iscrowd })
        .collect()
}

fn xywh(b: [f32; 4]) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.map(|v| v as f64);
    [x0, y0, x1 - x0, y1 - y0]
}

/// Detections as a COCO results file (a JSON list of `{image_id, category_id, bbox: [x, y, w, h],
/// score}`), with `image_ids[d.image]` and `category_ids[d.category]`, in input order. Numbers are
/// the exact f64 values of the f32 inputs, so pycocotools re-scores them to the same AP.
/// (pycocotools' `loadRes` cannot read an empty list; that file is `[]`.)
///
/// # Panics
/// When an index is out of range of the id lists.
pub fn coco_results_json(dets: &[Detection], image_ids: &[i64], category_ids: &[i64]) -> String {
    let rows: Vec<serde_json::Value> = dets
        .iter()
        .map(|d| {
            serde_json::json!({
                "image_id": image_ids[d.image],
                "category_id": category_ids[d.category],
                "bbox": xywh(d.bbox),
                "score": d.score as f64,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Ground truth as a COCO file: `images` (id, file_name, width, height), `categories` (id, name),
/// `annotations` (id 1, 2, … in input order; image_id, category_id, bbox `[x, y, w, h]`,
/// area = w·h, iscrowd 0/1), the form pycocotools' `COCO` reads for bbox evaluation.
///
/// # Panics
/// When an index is out of range of `images` or `categories`.
pub fn coco_gt_json(gt: &[GtBox], images: &[CocoImage], categories: &[CocoCategory]) -> String {
    let imgs: Vec<serde_json::Value> = images
        .iter()
        .map(|im| serde_json::json!({"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height}))
        .collect();
    let cats: Vec<serde_json::Value> =
        categories.iter().map(|c| serde_json::json!({"id": c.id, "name": c.name})).collect();
    let anns: Vec<serde_json::Value> = gt
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let b = xywh(g.bbox);
            serde_json::json!({
                "id": i + 1,
                "image_id": images[g.image].id,
                "category_id": categories[g.category].id,
                "bbox": b,
                "area": b[2] * b[3],
                "iscrowd": g.crowd as u8,
            })
        })
        .collect();
    serde_json::json!({"images": imgs, "categories": cats, "annotations": anns}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(image: usize, category: usize, bbox: [f32; 4]) -> GtBox {
        GtBox { image, category, bbox, crowd: false }
    }
    fn d(image: usize, category: usize, bbox: [f32; 4], score: f32) -> Detection {
        Detection { image, category, bbox, score }
    }
    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn thresholds_are_numpys() {
        let t = iou_thresholds();
        assert_eq!(t.len(), 12);
        assert_eq!((t[0], t[2]), (0.4, 0.5));
        assert_eq!(t[11], 0.9499999999999998, "np.arange(0.40, 0.951, 0.05)[-1]");
        let r = recall_thresholds();
        assert_eq!(
            (r.len(), r[35], r[100]),
            (101, 0.35000000000000003, 1.0),
            "not 0.35: a recall of 7/20 misses it, as in pycocotools"
        );
    }

    #[test]
    fn iou_by_hand() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(coco_iou(a, a, false), 1.0);
        assert_eq!(coco_iou([0.0, 0.0, 10.0, 4.0], a, false), 0.4);
        assert_eq!(coco_iou([5.0, 0.0, 15.0, 10.0], a, false), 50.0 / 150.0);
        assert_eq!(coco_iou([10.0, 0.0, 15.0, 10.0], a, false), 0.0, "touching is no overlap");
        // Crowd: intersection / detection area.
        assert_eq!(coco_iou([5.0, 0.0, 15.0, 10.0], a, true), 0.5);
        assert_eq!(coco_iou([2.0, 2.0, 4.0, 4.0], a, true), 1.0);
    }

    #[test]
    fn perfect_and_empty() {
        let gt = [g(0, 0, [0.0, 0.0, 10.0, 10.0]), g(1, 0, [5.0, 5.0, 20.0, 20.0])];
        let dets = [d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.9), d(1, 0, [5.0, 5.0, 20.0, 20.0], 0.8)];
        let r = evaluate(&gt, &dets, 2, 2);
        assert_eq!((r.map40, r.ap50, r.ap40_95), (Some(1.0), Some(1.0), Some(1.0)));
        assert_eq!(r.per_category_map40, vec![Some(1.0), None]);
        // No detections: 0 for categories with ground truth.
        let r = evaluate(&gt, &[], 2, 2);
        assert_eq!(r.map40, Some(0.0));
        // No ground truth at all: nothing to average.
        let r = evaluate(&[], &dets, 2, 2);
        assert_eq!((r.map40, r.ap40_95), (None, None));
        // Crowd-only category: no AP.
        let crowd = [GtBox { crowd: true, ..gt[0] }];
        assert_eq!(evaluate(&crowd, &dets, 1, 2).map40, None);
    }

    #[test]
    fn half_recall_and_false_positive_order() {
        // Two GT, one found. Found by the top detection → precision 1 up to recall .5 → AP = 51/101.
        let gt = [g(0, 0, [0.0, 0.0, 10.0, 10.0]), g(0, 0, [20.0, 20.0, 30.0, 30.0])];
        let r = evaluate(&gt, &[d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.9), d(0, 0, [50.0, 50.0, 60.0, 60.0], 0.5)], 1, 1);
        assert!(close(r.map40, 51.0 / 101.0), "{:?}", r.map40);
        // The false positive first → precision ½ at recall ½ → AP = 51·½/101.
        let r = evaluate(&gt, &[d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.5), d(0, 0, [50.0, 50.0, 60.0, 60.0], 0.9)], 1, 1);
        assert!(close(r.map40, 25.5 / 101.0), "{:?}", r.map40);
    }

    #[test]
    fn threshold_is_inclusive_and_duplicates_are_false_positives() {
        let gt = [g(0, 0, [0.0, 0.0, 10.0, 10.0])];
        // IoU exactly 0.4: a match at .40, not at .45 and above.
        let r = evaluate(&gt, &[d(0, 0, [0.0, 0.0, 10.0, 4.0], 0.9)], 1, 1);
        // (pycocotools divides by tp + fp + ε: one true positive reads 1 − 2⁻⁵³, hence `close`.)
        assert!(close(r.map40, 1.0));
        assert_eq!(r.per_threshold[1], Some(0.0));
        assert!(close(r.ap40_95, 1.0 / 12.0));
        // IoU 0.5 exactly counts for AP50.
        let r = evaluate(&gt, &[d(0, 0, [0.0, 0.0, 10.0, 5.0], 0.9)], 1, 1);
        assert!(close(r.map40, 1.0) && close(r.ap50, 1.0) && r.per_threshold[3] == Some(0.0));
        // A duplicate after the match is a false positive but does not lower the AP (precision
        // is read at recall 1 → the first point, 1.0); before it, it does.
        let dup = [d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.9), d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.8)];
        assert!(close(evaluate(&gt, &dup, 1, 1).map40, 1.0));
        let weak_first = [d(0, 0, [0.0, 0.0, 10.0, 6.0], 0.9), d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.8)];
        // .40: the weak box (IoU .6) takes the GT, the exact one is a duplicate → AP 1.
        // .65 and above: the weak box misses, the exact one matches second → precision ½.
        let r = evaluate(&gt, &weak_first, 1, 1);
        assert!(close(r.map40, 1.0));
        assert!(close(r.per_threshold[5], 0.5), "{:?}", r.per_threshold);
    }

    #[test]
    fn crowd_absorbs_detections() {
        let gt = [
            g(0, 0, [0.0, 0.0, 10.0, 10.0]),
            GtBox { image: 0, category: 0, bbox: [50.0, 50.0, 100.0, 100.0], crowd: true },
        ];
        // Three detections inside the crowd region score above the true positive: ignored, AP 1.
        let mut dets: Vec<Detection> =
            (0..3).map(|i| d(0, 0, [55.0 + i as f32, 55.0, 60.0 + i as f32, 60.0], 0.9)).collect();
        dets.push(d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.5));
        assert!(close(evaluate(&gt, &dets, 1, 1).map40, 1.0));
    }

    #[test]
    fn max_dets_per_image_and_category_and_top_k() {
        let gt = [g(0, 0, [0.0, 0.0, 10.0, 10.0])];
        let mut dets: Vec<Detection> =
            (0..100).map(|i| d(0, 0, [100.0 + i as f32, 0.0, 105.0 + i as f32, 5.0], 0.9)).collect();
        dets.push(d(0, 0, [0.0, 0.0, 10.0, 10.0], 0.1));
        // The 101st detection is cut: AP 0. With 99 false positives it would be 1/100.
        assert_eq!(evaluate(&gt, &dets, 1, 1).map40, Some(0.0));
        dets.remove(0);
        assert!(close(evaluate(&gt, &dets, 1, 1).map40, 0.01));
        // Another category's detections do not count against the cap …
        let mut two = dets.clone();
        two.push(d(0, 1, [0.0, 0.0, 1.0, 1.0], 0.95));
        assert!(close(evaluate(&gt, &two, 2, 1).map40, 0.01));
        // … unless top_k_per_image caps the image first.
        let capped = top_k_per_image(&two, 100);
        assert_eq!(capped.len(), 100);
        assert_eq!(evaluate(&gt, &capped, 2, 1).map40, Some(0.0));
        assert_eq!(capped[99], two[100], "input order kept");
    }

    #[test]
    fn writers_and_coco_round_trip() {
        let gt =
            [g(0, 1, [1.0, 2.0, 4.5, 6.0]), GtBox { image: 1, category: 0, bbox: [0.0, 0.0, 2.0, 2.0], crowd: true }];
        let images = [
            CocoImage { id: 10, file_name: "a.png".into(), width: 8, height: 8 },
            CocoImage { id: 12, file_name: "b.png".into(), width: 4, height: 4 },
        ];
        let cats = [CocoCategory { id: 3, name: "heart".into() }, CocoCategory { id: 5, name: "lung".into() }];
        let text = coco_gt_json(&gt, &images, &cats);
        let set = fx_data::coco::parse_coco(&text, "gt.json").unwrap();
        assert!(set.problems.is_empty());
        assert_eq!(set.images, images);
        assert_eq!(set.categories, cats);
        assert_eq!(gt_from_coco(&set), gt);
        assert_eq!(set.annotations[0].area, Some(3.5 * 4.0));

        let dets = [d(1, 1, [0.5, 0.25, 1.0, 2.0], 0.3)];
        let v: serde_json::Value = serde_json::from_str(&coco_results_json(&dets, &[10, 12], &[3, 5])).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"image_id": 12, "category_id": 5, "bbox": [0.5, 0.25, 0.5, 1.75], "score": 0.3f32 as f64}])
        );
    }
}
