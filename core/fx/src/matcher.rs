//! DINO's Hungarian matcher without tch: the optimal assignment (`linear_sum_assignment`, as
//! scipy.optimize.linear_sum_assignment) and DINO's matching cost (`dino_cost`).
//!
//! Boxes are `[cx, cy, w, h]` normalised to the image (DINO's prediction format) unless a name says
//! `xyxy`. Cost matrices are row-major `Q × G`: row = query (prediction), column = ground truth.

/// Minimum-cost assignment of a `rows × cols` cost matrix (row-major): `min(rows, cols)` pairs
/// `(row, col)`, each row and column used at most once, minimising the summed cost; sorted by row,
/// as scipy returns them. Shortest augmenting paths with potentials (Jonker–Volgenant / Kuhn–Munkres),
/// O(n²·m) for n = min(rows, cols), m = max(rows, cols). On ties the pairs may differ from scipy's;
/// the total never does (beyond rounding).
///
/// # Panics
/// When `cost.len() != rows * cols` or a cost is not finite (scipy raises on NaN too; a NaN cost
/// in training means the model already diverged).
pub fn linear_sum_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(
        cost.len(),
        rows * cols,
        "linear_sum_assignment: cost has {} entries, expected {rows} × {cols}",
        cost.len()
    );
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        panic!(
            "linear_sum_assignment: cost[{i}] (row {}, column {}) is {}, expected a finite number",
            i / cols,
            i % cols,
            cost[i]
        );
    }
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    // Solve with n ≤ m: rows of the working matrix are the smaller side.
    let transposed = rows > cols;
    let (n, m) = if transposed { (cols, rows) } else { (rows, cols) };
    let a = |i: usize, j: usize| if transposed { cost[j * cols + i] } else { cost[i * cols + j] };

    // 1-based working arrays; index 0 is the virtual column / row of the algorithm.
    let mut u = vec![0f64; n + 1];
    let mut v = vec![0f64; m + 1];
    let mut p = vec![0usize; m + 1]; // p[j] = working row matched to column j (0 = free)
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            debug_assert!(j1 != 0, "a free column always exists while n ≤ m");
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| if transposed { (j - 1, p[j] - 1) } else { (p[j] - 1, j - 1) })
        .collect();
    pairs.sort_unstable();
    pairs
}

/// The summed cost of an assignment.
pub fn assignment_cost(cost: &[f64], cols: usize, pairs: &[(usize, usize)]) -> f64 {
    pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum()
}

/// `[cx, cy, w, h]` → `[x0, y0, x1, y1]`.
pub fn cxcywh_to_xyxy(b: [f64; 4]) -> [f64; 4] {
    let [cx, cy, w, h] = b;
    [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h]
}

/// Generalised IoU of two `[x0, y0, x1, y1]` boxes (DETR's `generalized_box_iou`):
/// IoU − (enclosing area − union) / enclosing area, in [−1, 1]. Degenerate inputs that DETR would
/// turn into NaN get a value instead: IoU 0 when the union is empty, GIoU = IoU when the enclosing
/// box is empty.
pub fn generalized_box_iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    let ew = (a[2].max(b[2]) - a[0].min(b[0])).max(0.0);
    let eh = (a[3].max(b[3]) - a[1].min(b[1])).max(0.0);
    let enclosing = ew * eh;
    if enclosing > 0.0 {
        iou - (enclosing - union) / enclosing
    } else {
        iou
    }
}

/// DINO's matcher weights and focal parameters (`set_cost_class 2`, `set_cost_bbox 5`,
/// `set_cost_giou 2`, α 0.25, γ 2).
pub const COST_CLASS: f64 = 2.0;
pub const COST_BBOX: f64 = 5.0;
pub const COST_GIOU: f64 = 2.0;
pub const FOCAL_ALPHA: f64 = 0.25;
pub const FOCAL_GAMMA: f64 = 2.0;

/// DINO's matching cost, `Q × G` row-major (Q = `boxes.len()` queries, G = `gt_labels.len()`):
///
/// ```text
/// p     = sigmoid(logit[q, label_g])
/// class = α(1−p)^γ·(−ln(p + 1e-8)) − (1−α)p^γ·(−ln(1 − p + 1e-8))
/// cost  = 2·class + 5·‖box_q − gt_g‖₁ (cxcywh) − 2·GIoU(xyxy(box_q), xyxy(gt_g))
/// ```
///
/// exactly as DINO's `HungarianMatcher` (including its 1e-8 inside the logs), computed in f64.
/// `logits` is `Q × C` row-major (C classes, sigmoid — no background class).
///
/// # Panics
/// When `logits.len()` is not a multiple of Q, a label is ≥ C, or the GT lists differ in length.
pub fn dino_cost(logits: &[f32], boxes: &[[f32; 4]], gt_labels: &[usize], gt_boxes: &[[f32; 4]]) -> Vec<f64> {
    let q = boxes.len();
    let g = gt_labels.len();
    assert_eq!(g, gt_boxes.len(), "dino_cost: {g} GT labels but {} GT boxes", gt_boxes.len());
    if q == 0 {
        return Vec::new();
    }
    assert!(logits.len().is_multiple_of(q), "dino_cost: {} logits do not split into {q} queries", logits.len());
    let c = logits.len() / q;
    if let Some(&l) = gt_labels.iter().find(|&&l| l >= c) {
        panic!("dino_cost: GT label {l} but the logits have {c} classes");
    }
    let to64 = |b: &[f32; 4]| [b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64];
    let gt: Vec<([f64; 4], [f64; 4])> = gt_boxes.iter().map(|b| (to64(b), cxcywh_to_xyxy(to64(b)))).collect();
    let mut out = Vec::with_capacity(q * g);
    for (qi, b) in boxes.iter().enumerate() {
        let pb = to64(b);
        let pxy = cxcywh_to_xyxy(pb);
        for (gi, &label) in gt_labels.iter().enumerate() {
            let z = logits[qi * c + label] as f64;
            let p = 1.0 / (1.0 + (-z).exp());
            let pos = FOCAL_ALPHA * (1.0 - p).powf(FOCAL_GAMMA) * -(p + 1e-8).ln();
            let neg = (1.0 - FOCAL_ALPHA) * p.powf(FOCAL_GAMMA) * -(1.0 - p + 1e-8).ln();
            let (gb, gxy) = gt[gi];
            let l1: f64 = (0..4).map(|k| (pb[k] - gb[k]).abs()).sum();
            out.push(COST_CLASS * (pos - neg) + COST_BBOX * l1 - COST_GIOU * generalized_box_iou(pxy, gxy));
        }
    }
    out
}

/// DINO's matching of one image: `linear_sum_assignment(dino_cost(..))`, pairs `(query, gt)`.
pub fn dino_match(
    logits: &[f32],
    boxes: &[[f32; 4]],
    gt_labels: &[usize],
    gt_boxes: &[[f32; 4]],
) -> Vec<(usize, usize)> {
    let cost = dino_cost(logits, boxes, gt_labels, gt_boxes);
    linear_sum_assignment(&cost, boxes.len(), gt_labels.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all injections of the smaller side into the larger one.
    fn brute(cost: &[f64], rows: usize, cols: usize) -> f64 {
        // Working matrix n × m with n ≤ m (transposed when tall).
        let t = rows > cols;
        let (n, m) = if t { (cols, rows) } else { (rows, cols) };
        let at = |r: usize, c: usize| if t { cost[c * cols + r] } else { cost[r * cols + c] };
        fn go(at: &dyn Fn(usize, usize) -> f64, n: usize, r: usize, used: &mut [bool], acc: f64, best: &mut f64) {
            if r == n {
                *best = best.min(acc);
                return;
            }
            for c in 0..used.len() {
                if !used[c] {
                    used[c] = true;
                    go(at, n, r + 1, used, acc + at(r, c), best);
                    used[c] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        go(&at, n, 0, &mut vec![false; m], 0.0, &mut best);
        best
    }

    #[test]
    fn small_matrices_by_hand_and_brute_force() {
        // Classic 3 × 3: optimum 5 (1 + 2 + 2), pairs (0,1), (1,0), (2,2).
        let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let p = linear_sum_assignment(&c, 3, 3);
        assert_eq!(assignment_cost(&c, 3, &p), 5.0);
        assert_eq!(p, vec![(0, 1), (1, 0), (2, 2)]);
        assert_eq!(linear_sum_assignment(&[7.0], 1, 1), vec![(0, 0)]);
        assert!(linear_sum_assignment(&[], 3, 0).is_empty());
        assert!(linear_sum_assignment(&[], 0, 4).is_empty());
        // Tall and wide.
        let tall = [1.0, 9.0, 2.0, 8.0, 3.0, 0.5];
        let p = linear_sum_assignment(&tall, 3, 2);
        assert_eq!(p, vec![(0, 0), (2, 1)]);
        let wide = [5.0, 1.0, 4.0, 2.0, 6.0, 0.0];
        assert_eq!(linear_sum_assignment(&wide, 2, 3), vec![(0, 1), (1, 2)]);

        let mut s = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for (r, c) in [(1, 5), (5, 1), (4, 4), (3, 6), (6, 3), (5, 5), (2, 7)] {
            for round in 0..20 {
                let cost: Vec<f64> = (0..r * c)
                    .map(|_| if round % 2 == 0 { next() * 10.0 - 3.0 } else { (next() * 3.0).floor() })
                    .collect();
                let p = linear_sum_assignment(&cost, r, c);
                assert_eq!(p.len(), r.min(c));
                let mut rs: Vec<usize> = p.iter().map(|x| x.0).collect();
                let mut cs: Vec<usize> = p.iter().map(|x| x.1).collect();
                rs.dedup();
                cs.sort_unstable();
                cs.dedup();
                assert_eq!((rs.len(), cs.len()), (r.min(c), r.min(c)));
                let got = assignment_cost(&cost, c, &p);
                let want = brute(&cost, r, c);
                assert!((got - want).abs() < 1e-9, "{r}×{c} round {round}: {got} vs brute force {want}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "is NaN")]
    fn nan_cost_panics() {
        linear_sum_assignment(&[0.0, f64::NAN], 1, 2);
    }

    #[test]
    fn giou_hand_cases() {
        let a = [0.0, 0.0, 2.0, 2.0];
        assert_eq!(generalized_box_iou(a, a), 1.0);
        // Half overlap: inter 2, union 6, enclosing 3 × 2 = 6 → IoU 1/3, GIoU 1/3.
        assert!((generalized_box_iou(a, [1.0, 0.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-15);
        // Disjoint: inter 0, union 8, enclosing 5 × 2 = 10 → 0 − (10 − 8)/10.
        assert!((generalized_box_iou(a, [3.0, 0.0, 5.0, 2.0]) + 0.2).abs() < 1e-15);
        // Diagonal corners: inter 1, union 7, enclosing 9 → 1/7 − 2/9.
        assert!((generalized_box_iou(a, [1.0, 1.0, 3.0, 3.0]) - (1.0 / 7.0 - 2.0 / 9.0)).abs() < 1e-15);
        // Contained: inner 1 × 1 in 2 × 2 → IoU 1/4, enclosing = union → 1/4.
        assert!((generalized_box_iou(a, [0.5, 0.5, 1.5, 1.5]) - 0.25).abs() < 1e-15);
        // Symmetric.
        let b = [0.3, -1.0, 4.0, 0.7];
        assert_eq!(generalized_box_iou(a, b), generalized_box_iou(b, a));
        // Far apart tends to −1.
        assert!(generalized_box_iou([0.0, 0.0, 1.0, 1.0], [1000.0, 1000.0, 1001.0, 1001.0]) < -0.999);
        // Degenerate: two identical points → 0, not NaN.
        assert_eq!(generalized_box_iou([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]), 0.0);
        assert_eq!(cxcywh_to_xyxy([0.5, 0.5, 0.2, 0.4]), [0.4, 0.3, 0.6, 0.7]);
    }

    #[test]
    fn dino_cost_by_hand() {
        // One query, logit 0 → p = ½: pos = .25·¼·ln 2 (+1e-8 inside), neg = .75·¼·ln 2.
        let p: f64 = 0.5;
        let class = 0.25 * 0.25 * -(p + 1e-8).ln() - 0.75 * 0.25 * -(1.0 - p + 1e-8).ln();
        let q = [[0.5f32, 0.5, 0.2, 0.2]];
        let cost = dino_cost(&[0.0, 3.0], &q, &[0], &[[0.5, 0.5, 0.2, 0.2]]);
        assert!((cost[0] - (2.0 * class - 2.0)).abs() < 1e-12, "{}", cost[0]);
        // L1 counts all four coordinates (cx shift 0.1 → +0.5).
        let cost2 = dino_cost(&[0.0, 3.0], &q, &[0], &[[0.6, 0.5, 0.2, 0.2]]);
        let giou = generalized_box_iou([0.4, 0.4, 0.6, 0.6], [0.5, 0.4, 0.7, 0.6]);
        assert!((cost2[0] - (2.0 * class + 5.0 * 0.1 - 2.0 * giou)).abs() < 1e-6);
        // A confident right class costs less than a confident wrong one.
        let c = dino_cost(
            &[4.0, -4.0, -4.0, 4.0],
            &[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]],
            &[0],
            &[[0.5, 0.5, 0.2, 0.2]],
        );
        assert!(c[0] < c[1]);
        assert_eq!(
            dino_match(
                &[4.0, -4.0, -4.0, 4.0],
                &[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]],
                &[1],
                &[[0.5, 0.5, 0.2, 0.2]]
            ),
            vec![(1, 0)]
        );
        assert!(dino_cost(&[0.0; 6], &[[0.5; 4]; 3], &[], &[]).is_empty());
    }
}
