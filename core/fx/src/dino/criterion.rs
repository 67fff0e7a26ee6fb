//! DINO's set criterion: Hungarian matching (class 2 / L1 5 / GIoU 2), then sigmoid focal loss
//! (α 0.25, γ 2, weight 1), L1 on normalised (cx, cy, w, h) (weight 5) and GIoU (weight 2) on the
//! final layer, every auxiliary layer, the two-stage proposals and the denoising queries.
//!
//! Matching runs on the host (as DINO's scipy matcher does): the one device → host copy of the
//! localization step, all layers at once.

use super::{LocOutput, Targets};
use crate::matcher::dino_match;
use tch::{Device, Kind, Reduction, Tensor};

pub const FOCAL_ALPHA: f64 = 0.25;
pub const FOCAL_GAMMA: f64 = 2.0;
pub const WEIGHT_CLASS: f64 = 1.0;
pub const WEIGHT_BBOX: f64 = 5.0;
pub const WEIGHT_GIOU: f64 = 2.0;

/// Σ focal loss over every (query, class) element (DINO divides by the box count afterwards).
pub fn sigmoid_focal_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    let p = logits.sigmoid();
    let ce = logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, Reduction::None);
    let p_t = &p * target + (p.neg() + 1.0) * (target.neg() + 1.0);
    let alpha_t = target * FOCAL_ALPHA + (target.neg() + 1.0) * (1.0 - FOCAL_ALPHA);
    (ce * (p_t.neg() + 1.0).pow_tensor_scalar(FOCAL_GAMMA) * alpha_t).sum(Kind::Float)
}

fn xyxy(b: &Tensor) -> Tensor {
    let c = b.narrow(-1, 0, 2);
    let half = b.narrow(-1, 2, 2) * 0.5;
    Tensor::cat(&[&c - &half, &c + &half], -1)
}

/// Generalised IoU of paired (cx, cy, w, h) boxes, (N, 4) × (N, 4) → (N).
pub fn paired_giou(a: &Tensor, b: &Tensor) -> Tensor {
    let (a, b) = (xyxy(a), xyxy(b));
    let area = |x: &Tensor| {
        (x.narrow(-1, 2, 1) - x.narrow(-1, 0, 1)).squeeze_dim(-1)
            * (x.narrow(-1, 3, 1) - x.narrow(-1, 1, 1)).squeeze_dim(-1)
    };
    let lt = a.narrow(-1, 0, 2).maximum(&b.narrow(-1, 0, 2));
    let rb = a.narrow(-1, 2, 2).minimum(&b.narrow(-1, 2, 2));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(-1, 0) * wh.select(-1, 1);
    let union = area(&a) + area(&b) - &inter;
    let iou = &inter / union.clamp_min(1e-7);
    let lt = a.narrow(-1, 0, 2).minimum(&b.narrow(-1, 0, 2));
    let rb = a.narrow(-1, 2, 2).maximum(&b.narrow(-1, 2, 2));
    let wh = (rb - lt).clamp_min(0.0);
    let enclosing = (wh.select(-1, 0) * wh.select(-1, 1)).clamp_min(1e-7);
    iou - (&enclosing - union) / enclosing
}

/// The three losses of one set of predictions, given which query predicts which GT box.
/// `pairs`: per image, (query, gt) pairs. Returns (focal, L1, 1 − GIoU), each summed and divided
/// by `norm`.
fn losses(
    logits: &Tensor,
    boxes: &Tensor,
    targets: &[Targets],
    pairs: &[Vec<(usize, usize)>],
    norm: f64,
) -> [Tensor; 3] {
    let device = logits.device();
    let (b, q, c) = logits.size3().unwrap();
    let mut onehot = vec![0f32; (b * q * c) as usize];
    let (mut flat_idx, mut tgt_boxes) = (Vec::new(), Vec::new());
    for (i, (t, ps)) in targets.iter().zip(pairs).enumerate() {
        for &(qi, gi) in ps {
            let flat = i as i64 * q + qi as i64;
            onehot[(flat * c + t.labels[gi]) as usize] = 1.0;
            flat_idx.push(flat);
            tgt_boxes.extend_from_slice(&t.boxes[gi]);
        }
    }
    let onehot = Tensor::from_slice(&onehot).view([b, q, c]).to_device(device);
    let focal = sigmoid_focal_loss(logits, &onehot) / norm;
    if flat_idx.is_empty() {
        let zero = (boxes.sum(Kind::Float) * 0.0).shallow_clone();
        return [focal, zero.shallow_clone(), zero];
    }
    let n = flat_idx.len() as i64;
    let idx = Tensor::from_slice(&flat_idx).to_device(device);
    let src = boxes.reshape([b * q, 4]).index_select(0, &idx);
    let tgt = Tensor::from_slice(&tgt_boxes).view([n, 4]).to_device(device);
    let l1 = (&src - &tgt).abs().sum(Kind::Float) / norm;
    let giou = (paired_giou(&src, &tgt).neg() + 1.0).sum(Kind::Float) / norm;
    [focal, l1, giou]
}

/// Loss terms, summed over layers, for reporting.
#[derive(Debug, Default, Clone)]
pub struct LossParts {
    pub class: f64,
    pub bbox: f64,
    pub giou: f64,
}

/// The full criterion. Returns the weighted total (a scalar tensor on the device) and the
/// unweighted terms as tensors [class, bbox, giou] summed over every output set.
pub fn set_criterion(out: &LocOutput, targets: &[Targets]) -> (Tensor, [Tensor; 3]) {
    let num_boxes = (targets.iter().map(|t| t.labels.len()).sum::<usize>() as f64).max(1.0);
    set_criterion_normalised(out, targets, num_boxes)
}

/// [`set_criterion`] with the box count it normalises by given: in a data-parallel job DINO
/// normalises every rank's loss by the job's boxes (all-reduced), not the rank's own.
pub fn set_criterion_normalised(out: &LocOutput, targets: &[Targets], num_boxes: f64) -> (Tensor, [Tensor; 3]) {
    let device = out.interm_logits.device();
    // Every matched set: the decoder layers (last = final, the others auxiliary) and the proposals.
    let mut sets: Vec<(&Tensor, &Tensor)> = out.logits.iter().zip(&out.boxes).collect();
    sets.push((&out.interm_logits, &out.interm_boxes));
    // One host copy of all of them, then the Hungarian matching per set and image.
    let (b, k, c) = sets[0].0.size3().unwrap();
    let host_logits = Vec::<f32>::try_from(
        &Tensor::stack(&sets.iter().map(|s| s.0.detach().to_kind(Kind::Float)).collect::<Vec<_>>(), 0)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .unwrap();
    let host_boxes = Vec::<f32>::try_from(
        &Tensor::stack(&sets.iter().map(|s| s.1.detach().to_kind(Kind::Float)).collect::<Vec<_>>(), 0)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .unwrap();
    let (b, k, c) = (b as usize, k as usize, c as usize);
    let mut terms: Vec<[Tensor; 3]> = Vec::new();
    for (si, (logits, boxes)) in sets.iter().enumerate() {
        let pairs: Vec<Vec<(usize, usize)>> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.labels.is_empty() {
                    return Vec::new();
                }
                let lo = (si * b + i) * k;
                let l = &host_logits[lo * c..(lo + k) * c];
                let bx: Vec<[f32; 4]> = (0..k)
                    .map(|q| {
                        let o = (lo + q) * 4;
                        [host_boxes[o], host_boxes[o + 1], host_boxes[o + 2], host_boxes[o + 3]]
                    })
                    .collect();
                let labels: Vec<usize> = t.labels.iter().map(|&l| l as usize).collect();
                dino_match(l, &bx, &labels, &t.boxes)
            })
            .collect();
        terms.push(losses(logits, boxes, targets, &pairs, num_boxes));
    }
    // Denoising: positives predict their own GT box (no matching); negatives and padding are
    // background. Normalised by the box count times the number of groups, as DINO does.
    if let Some(meta) = out.dn {
        let pairs: Vec<Vec<(usize, usize)>> = targets
            .iter()
            .map(|t| {
                (0..meta.groups as usize)
                    .flat_map(|g| (0..t.labels.len()).map(move |j| (g * meta.single_pad as usize + j, j)))
                    .collect()
            })
            .collect();
        for (logits, boxes) in out.dn_logits.iter().zip(&out.dn_boxes) {
            terms.push(losses(logits, boxes, targets, &pairs, num_boxes * meta.groups as f64));
        }
    }
    let zero = || Tensor::zeros([], (Kind::Float, device));
    let mut sum = [zero(), zero(), zero()];
    for t in terms {
        for (s, x) in sum.iter_mut().zip(t) {
            *s = &*s + x;
        }
    }
    let total = &sum[0] * WEIGHT_CLASS + &sum[1] * WEIGHT_BBOX + &sum[2] * WEIGHT_GIOU;
    (total, sum)
}

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`, on the
/// device (no host synchronisation: the factor stays a tensor).
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) {
    let grads: Vec<Tensor> = grads.iter().filter(|g| g.defined()).map(|g| g.shallow_clone()).collect();
    if grads.is_empty() || max_norm <= 0.0 {
        return;
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().to_kind(Kind::Float)).collect();
    let total = Tensor::stack(&norms, 0).norm();
    let factor = (total + 1e-6).reciprocal().multiply_scalar(max_norm).clamp_max(1.0);
    tch::no_grad(|| {
        for g in grads {
            let mut g = g;
            g *= &factor;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giou_matches_the_scalar_version() {
        let a = [[0.5f32, 0.5, 0.2, 0.4], [0.3, 0.3, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2]];
        let b = [[0.55f32, 0.5, 0.2, 0.2], [0.8, 0.8, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2]];
        let t = |v: &[[f32; 4]]| Tensor::from_slice(&v.concat()).view([v.len() as i64, 4]);
        let got = Vec::<f32>::try_from(&paired_giou(&t(&a), &t(&b))).unwrap();
        for i in 0..3 {
            let to = |x: [f32; 4]| crate::matcher::cxcywh_to_xyxy([x[0] as f64, x[1] as f64, x[2] as f64, x[3] as f64]);
            let want = crate::matcher::generalized_box_iou(to(a[i]), to(b[i]));
            assert!((got[i] as f64 - want).abs() < 1e-5, "{i}: {} vs {want}", got[i]);
        }
    }

    #[test]
    fn focal_loss_by_hand() {
        // logit 0 (p = ½), target 1: ce = ln 2, (1 − p_t)^2 = ¼, α = .25.
        let l = sigmoid_focal_loss(&Tensor::from_slice(&[0f32]), &Tensor::from_slice(&[1f32])).double_value(&[]);
        assert!((l - 0.25 * 0.25 * 2f64.ln()).abs() < 1e-6);
        let l = sigmoid_focal_loss(&Tensor::from_slice(&[0f32]), &Tensor::from_slice(&[0f32])).double_value(&[]);
        assert!((l - 0.75 * 0.25 * 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let a = Tensor::from_slice(&[3f32, 0.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[4f32]).set_requires_grad(true);
        ((&a * &a).sum(Kind::Float) * 0.5 + (&b * &b).sum(Kind::Float) * 0.5).backward();
        clip_grad_norm(&[a.grad(), b.grad()], 0.1);
        let n = (a.grad().square().sum(Kind::Float) + b.grad().square().sum(Kind::Float)).sqrt().double_value(&[]);
        assert!((n - 0.1).abs() < 1e-5, "{n}");
        // Direction kept: 3 : 4.
        assert!((a.grad().double_value(&[0]) / b.grad().double_value(&[0]) - 0.75).abs() < 1e-5);
    }
}
