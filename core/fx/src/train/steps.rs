//! The three task steps of the student (and the teacher's consistency targets): each returns
//! the step's loss — task loss, plus the consistency loss with the teacher — for one batch.

use super::*;
use fx_plugin::LabelMode;

/// The batch's boxes as DINO targets: (cx, cy, w, h) normalised to the image. Boxes thinner than
/// a pixel (an augmentation can crop a box away) carry no signal and are left out.
pub fn targets_of(batch: &Batch) -> Vec<Targets> {
    let s = batch.size as f32;
    batch
        .boxes
        .iter()
        .map(|bs| {
            let mut t = Targets::default();
            for b in bs.iter().filter(|b| b.x1 - b.x0 >= 1.0 && b.y1 - b.y0 >= 1.0) {
                t.labels.push(b.label as i64);
                t.boxes.push([(b.x0 + b.x1) / 2.0 / s, (b.y0 + b.y1) / 2.0 / s, (b.x1 - b.x0) / s, (b.y1 - b.y0) / s]);
            }
            t
        })
        .collect()
}

/// Each pixel's class for a multi-class segmentation head: 0 background (no mask), else 1 + the
/// index of its label's mask (where masks overlap, the first label's), (B, H, W) int64.
pub fn pixel_classes(target: &Tensor) -> Tensor {
    let background = target.sum_dim_intlist(1, true, Kind::Float).eq(0.0).to_kind(Kind::Float);
    Tensor::cat(&[background, target.shallow_clone()], 1).argmax(1, false)
}

/// 1 − soft Dice per class, pooled over the batch and pixels (smooth 1), averaged over classes.
/// `probs`: per-label probabilities (B, K, H, W), [`crate::upernet::seg_probabilities`]. `global`: in a
/// job, the sums are the global batch's (the loss one process computes).
pub fn soft_dice_loss(probs: &Tensor, target: &Tensor, global: Option<&GlobalBatch>) -> Result<Tensor> {
    let p = probs;
    let dims = [0i64, 2, 3];
    let inter = (p * target).sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    let denom = p.sum_dim_intlist(dims.as_slice(), false, Kind::Float)
        + target.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    let (inter, denom) = match global {
        Some(g) => {
            let k = inter.size()[0];
            let both = g.sum(&Tensor::cat(&[inter, denom], 0))?;
            (both.narrow(0, 0, k), both.narrow(0, k, k))
        }
        None => (inter, denom),
    };
    let dice = (inter * 2.0 + 1.0) / (denom + 1.0);
    Ok(dice.mean(Kind::Float).neg() + 1.0)
}

/// Unit L2 norm over the channel dimension (dim 1) of an NCHW map.
pub fn l2_normalised(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-6)
}

/// The classification task loss of `logits` against `labels` (B × C; NaN = unknown). Multi-label:
/// BCE-with-logits over the known labels, averaged over them. Multi-class: cross-entropy against
/// the class of each one-hot row (every label known, 0 or 1, exactly one 1), averaged over those
/// rows; other rows are left out, as unknown. All on the device (no host synchronisation).
pub fn cls_loss(logits: &Tensor, labels: &Tensor, mode: LabelMode) -> Tensor {
    let known = labels.isnan().logical_not().to_kind(Kind::Float);
    let target = labels.nan_to_num(0.0, None, None);
    match mode {
        LabelMode::MultiLabel => {
            let bce = logits.binary_cross_entropy_with_logits::<Tensor>(
                &target,
                Some(known.shallow_clone()),
                None,
                Reduction::Sum,
            );
            bce / known.sum(Kind::Float).clamp_min(1.0)
        }
        LabelMode::MultiClass => {
            let binary = target.eq(0.0).logical_or(&target.eq(1.0)).all_dim(1, false);
            let one_hot = known
                .all_dim(1, false)
                .logical_and(&binary)
                .logical_and(&target.sum_dim_intlist(1, false, Kind::Float).eq(1.0))
                .to_kind(Kind::Float);
            let class = target.argmax(1, false);
            let ce = logits.cross_entropy_loss::<Tensor>(&class, None, Reduction::None, -100, 0.0);
            (ce * &one_hot).sum(Kind::Float) / one_hot.sum(Kind::Float).clamp_min(1.0)
        }
    }
}

impl Trainer {
    /// Classification step: the head's task loss ([`cls_loss`]) plus MSE consistency of the pooled
    /// feature with the teacher's on the same images.
    pub(super) fn cls_step(&self, plan: &EpochPlan, batch: &Batch, w: f64) -> Result<Tensor> {
        let x = self.student.input(&self.images_tensor(batch));
        let c = self.dataset(&plan.dataset).dataset.desc().cls_labels.len() as i64;
        let labels = self.upload(Tensor::from_slice(&batch.cls).view([batch.len() as i64, c]));
        let out = self.student.cls(&x, &plan.dataset, true)?;
        let task = cls_loss(&out.logits, &labels, self.student.cls_heads[&plan.dataset].spec.mode);
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| teacher.cls(&x, &plan.dataset, false))?.pooled;
                let cons = out.pooled.mse_loss(&t, Reduction::Mean);
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }

    /// Localization step: DINO's set criterion on the student's decoder outputs (final, auxiliary,
    /// two-stage proposals, denoising queries) plus the consistency of the selected encoder tokens
    /// and the last decoder layer's outputs with the teacher's. The teacher decodes the queries the
    /// student selected, so the two feature sets correspond query by query; both are
    /// L2-normalised over channels. The consistency reaches the student (the reference computes it
    /// on a detached copy, so it never does).
    ///
    /// `num_boxes`: what the set criterion normalises by; None = this batch's boxes (one process).
    pub(super) fn loc_step(
        &self,
        plan: &EpochPlan,
        batch: &Batch,
        w: f64,
        seed: u64,
        num_boxes: Option<f64>,
    ) -> Result<Tensor> {
        let x = self.student.input(&self.images_tensor(batch));
        let targets = targets_of(batch);
        let train_backbone = Group::Backbone.trains_in(&plan.trainable);
        let opts = DecodeOptions { dn_targets: Some(&targets), dn_seed: seed, select: None };
        let out = self.student.loc(&x, &plan.dataset, train_backbone, &opts);
        let (task, _) = match num_boxes {
            Some(n) => criterion::set_criterion_normalised(&out, &targets, n),
            None => criterion::set_criterion(&out, &targets),
        };
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| {
                    teacher.loc(
                        &x,
                        &plan.dataset,
                        false,
                        &DecodeOptions { select: Some(&out.selected), ..Default::default() },
                    )
                });
                let unit = |x: &Tensor| x / x.norm_scalaropt_dim(2, [-1i64].as_slice(), true).clamp_min(1e-6);
                let cons = (unit(&out.selected_tokens).mse_loss(&unit(&t.selected_tokens), Reduction::Mean)
                    + unit(&out.hidden).mse_loss(&unit(&t.hidden), Reduction::Mean))
                    * 0.5;
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }

    pub(super) fn masks_tensor(&self, batch: &Batch, k: i64) -> Tensor {
        let s = batch.size as i64;
        self.upload(Tensor::from_slice(&batch.masks).view([batch.len() as i64, k, s, s])).to_kind(Kind::Float)
    }

    /// Segmentation step: soft Dice pooled over the batch (smooth 1, optionally + BCE) plus the
    /// consistency of the fused FPN map and the projected stage-4 map with the teacher's, both
    /// L2-normalised over channels. A frozen decoder runs in eval mode (BatchNorm statistics fixed).
    /// `batch`: None for a job rank's stand-in with an empty slice (one blank image, weight 0:
    /// its loss counts 0 and its sums add 0; its own BatchNorm statistics stay untouched).
    pub(super) fn seg_step(&self, plan: &EpochPlan, batch: Option<&Batch>, w: f64) -> Result<Tensor> {
        let k = self.dataset(&plan.dataset).dataset.desc().seg_labels.len() as i64;
        let (x, target) = match batch {
            Some(b) => (self.student.input(&self.images_tensor(b)), self.masks_tensor(b, k)),
            None => {
                let s = self.exp.model.image_size;
                let blank = Tensor::zeros([1, 1, s, s], (Kind::Float, self.device));
                (self.student.input(&blank), Tensor::zeros([1, k, s, s], (Kind::Float, self.device)))
            }
        };
        // In a job: the pooled Dice's sums over the global batch, and with train.sync_batchnorm
        // the decoder's batch statistics too.
        let sum = |t: &Tensor| self.world.as_ref().expect("a job").sum_differentiable(t);
        let global =
            self.world.is_some().then(|| GlobalBatch { sum: &sum, weight: if batch.is_some() { 1.0 } else { 0.0 } });
        let tr = &plan.trainable;
        let sync = global.as_ref().filter(|_| self.exp.train.sync_batchnorm && Group::SegDecoder.trains_in(tr));
        let train_decoder = Group::SegDecoder.trains_in(tr) && (batch.is_some() || sync.is_some());
        let out = self.student.seg(&x, &plan.dataset, Group::Backbone.trains_in(tr), train_decoder, sync)?;
        let head = &self.student.seg_heads[&plan.dataset].spec;
        let mut task = soft_dice_loss(&crate::upernet::seg_probabilities(head, &out.logits), &target, global.as_ref())?;
        if self.exp.loss.seg == SegLoss::DiceBce {
            // The pixel-wise term: BCE per label, or for exclusive labels the cross-entropy over
            // background and labels.
            let pixels = match head.mode {
                LabelMode::MultiLabel => {
                    out.logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, Reduction::Mean)
                }
                LabelMode::MultiClass => {
                    out.logits.cross_entropy_loss::<Tensor>(&pixel_classes(&target), None, Reduction::Mean, -100, 0.0)
                }
            };
            task = (task + pixels) * 0.5;
        }
        match (&self.teacher, w > 0.0) {
            (Some(teacher), true) => {
                let t = tch::no_grad(|| teacher.seg(&x, &plan.dataset, false, false, None))?;
                let cons = (l2_normalised(&out.fused).mse_loss(&l2_normalised(&t.fused), Reduction::Mean)
                    + l2_normalised(&out.stage4).mse_loss(&l2_normalised(&t.stage4), Reduction::Mean))
                    * 0.5;
                Ok(task * (1.0 - w) + cons * w)
            }
            _ => Ok(task),
        }
    }
}
