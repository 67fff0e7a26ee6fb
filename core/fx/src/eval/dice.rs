//! Segmentation Dice, as the paper reports it, plus the pooled (global) Dice.
//!
//! A pixel is predicted positive when its probability is STRICTLY above the threshold (0.5 in the
//! paper; the reference thresholds with `> 0.5`). Logits work too with threshold 0, since
//! sigmoid(z) > 0.5 ⇔ z > 0. A NaN probability is never positive.
//!
//! - per-image mean: Dice of each (image, class) = 2·TP / (|pred| + |gt|), 1 when both are empty,
//!   averaged over the images, per class; then averaged over the classes. This is the paper's
//!   number; images with nothing to find and nothing predicted count as perfect, so on datasets
//!   with many negatives (SIIM-ACR) it rewards predicting nothing.
//! - global: 2·ΣTP / (Σ|pred| + Σ|gt|) pooled over every pixel of every image, per class; then
//!   averaged over the classes. Empty images add nothing to it. A class that is empty in both
//!   prediction and truth over the whole set scores 1, consistent with the per-image rule.
//!
//! With no images at all, both numbers are NaN: nothing was measured.

/// Dice scores in [0, 1] (NaN only when no image was seen).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiceScores {
    pub per_image_mean: f64,
    pub global: f64,
}

/// Dice of a whole set in one call. `probs` and `truth` are N × K × P row-major (image, class,
/// pixel), P pixels per image (= height × width of the mask); `truth` is 0/1 (nonzero counts as 1).
/// Returns the scores per class and their mean over the classes.
///
/// # Panics
/// When the lengths are not `n * k * P` for one P (a caller bug).
pub fn dice(probs: &[f32], truth: &[u8], n: usize, k: usize, threshold: f32) -> (Vec<DiceScores>, DiceScores) {
    let mut acc = DiceAccumulator::new(k, threshold);
    acc.add(probs, truth, n);
    acc.scores()
}

/// Streams evaluation batches into the per-class sums, so a whole test split never has to be held
/// in memory: `add` each batch as it comes off the device, then `scores`.
#[derive(Clone, Debug)]
pub struct DiceAccumulator {
    threshold: f32,
    images: u64,
    per_image_sum: Vec<f64>,
    tp: Vec<u64>,
    pred: Vec<u64>,
    gt: Vec<u64>,
}

impl DiceAccumulator {
    pub fn new(classes: usize, threshold: f32) -> Self {
        DiceAccumulator {
            threshold,
            images: 0,
            per_image_sum: vec![0.0; classes],
            tp: vec![0; classes],
            pred: vec![0; classes],
            gt: vec![0; classes],
        }
    }

    /// Adds `n` images (layout as in [`dice`]; K is the accumulator's class count).
    ///
    /// # Panics
    /// When the lengths are not `n * K * P` for one P (a caller bug).
    pub fn add(&mut self, probs: &[f32], truth: &[u8], n: usize) {
        let k = self.tp.len();
        assert_eq!(probs.len(), truth.len(), "dice: probs and truth lengths differ");
        if n == 0 {
            assert!(probs.is_empty(), "dice: values given for n = 0 images");
            return;
        }
        assert!(
            k > 0 && probs.len().is_multiple_of(n * k),
            "dice: {} values are not n × k × P with n = {n}, k = {k}",
            probs.len()
        );
        let p = probs.len() / (n * k);
        for i in 0..n * k {
            let (pr, gt) = (&probs[i * p..(i + 1) * p], &truth[i * p..(i + 1) * p]);
            let c = i % k;
            let (mut tp, mut np, mut ng) = (0u64, 0u64, 0u64);
            for (&x, &y) in pr.iter().zip(gt) {
                let a = x > self.threshold;
                let b = y != 0;
                tp += (a && b) as u64;
                np += a as u64;
                ng += b as u64;
            }
            self.per_image_sum[c] += ratio(tp, np + ng);
            self.tp[c] += tp;
            self.pred[c] += np;
            self.gt[c] += ng;
        }
        self.images += n as u64;
    }

    /// Per-class scores and their mean over the classes.
    pub fn scores(&self) -> (Vec<DiceScores>, DiceScores) {
        let per: Vec<DiceScores> = (0..self.tp.len())
            .map(|c| {
                if self.images == 0 {
                    return DiceScores { per_image_mean: f64::NAN, global: f64::NAN };
                }
                DiceScores {
                    per_image_mean: self.per_image_sum[c] / self.images as f64,
                    global: ratio(self.tp[c], self.pred[c] + self.gt[c]),
                }
            })
            .collect();
        let k = per.len() as f64;
        let mean = DiceScores {
            per_image_mean: per.iter().map(|d| d.per_image_mean).sum::<f64>() / k,
            global: per.iter().map(|d| d.global).sum::<f64>() / k,
        };
        (per, mean)
    }
}

/// 2·TP / (|pred| + |gt|), with both-empty scoring 1.
fn ratio(tp: u64, sum: u64) -> f64 {
    if sum == 0 {
        1.0
    } else {
        2.0 * tp as f64 / sum as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(pred: &[f32], gt: &[u8]) -> DiceScores {
        dice(pred, gt, 1, 1, 0.5).1
    }

    #[test]
    fn hand_examples() {
        // Both empty → 1.
        assert_eq!(one(&[0.1, 0.2, 0.5], &[0, 0, 0]), DiceScores { per_image_mean: 1.0, global: 1.0 });
        // Prediction empty, truth not → 0; and the reverse.
        assert_eq!(one(&[0.1, 0.2, 0.3], &[0, 1, 0]), DiceScores { per_image_mean: 0.0, global: 0.0 });
        assert_eq!(one(&[0.9, 0.2, 0.3], &[0, 0, 0]), DiceScores { per_image_mean: 0.0, global: 0.0 });
        // Perfect.
        assert_eq!(one(&[0.9, 0.2, 0.7], &[1, 0, 1]), DiceScores { per_image_mean: 1.0, global: 1.0 });
        // pred {0, 1}, gt {1, 2}: TP 1 → 2·1 / (2 + 2) = 0.5.
        assert_eq!(one(&[0.9, 0.8, 0.0], &[0, 1, 1]), DiceScores { per_image_mean: 0.5, global: 0.5 });
        // 0.5 itself is not positive (strict >), NaN never is.
        assert_eq!(one(&[0.5, f32::NAN], &[1, 1]).global, 0.0);
        // Logits with threshold 0.
        assert_eq!(dice(&[2.0, -1.0], &[1, 0], 1, 1, 0.0).1.global, 1.0);
    }

    #[test]
    fn empty_images_inflate_per_image_mean_but_not_global() {
        // Image 0: pred {0}, gt {0, 1} → 2/3. Image 1: both empty → 1.
        let probs = [0.9, 0.1, 0.1, 0.1];
        let truth = [1, 1, 0, 0];
        let (per, mean) = dice(&probs, &truth, 2, 1, 0.5);
        assert!((per[0].per_image_mean - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-15);
        assert!((per[0].global - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(mean, per[0]);
    }

    #[test]
    fn classes_are_separate_then_averaged() {
        // n = 1, k = 2, P = 2. Class 0 perfect, class 1 pred empty vs gt {1} → 0.
        let probs = [0.9, 0.1, 0.1, 0.1];
        let truth = [1, 0, 0, 1];
        let (per, mean) = dice(&probs, &truth, 1, 2, 0.5);
        assert_eq!(per[0].global, 1.0);
        assert_eq!(per[1].global, 0.0);
        assert_eq!(mean, DiceScores { per_image_mean: 0.5, global: 0.5 });
    }

    #[test]
    fn batches_accumulate_like_one_call() {
        let n = 5;
        let (k, p) = (3, 7);
        let probs: Vec<f32> = (0..n * k * p).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
        let truth: Vec<u8> = (0..n * k * p).map(|i| (i * 53 % 7 < 3) as u8).collect();
        let whole = dice(&probs, &truth, n, k, 0.5);
        let mut acc = DiceAccumulator::new(k, 0.5);
        acc.add(&probs[..2 * k * p], &truth[..2 * k * p], 2);
        acc.add(&[], &[], 0);
        acc.add(&probs[2 * k * p..], &truth[2 * k * p..], 3);
        let streamed = acc.scores();
        for (a, b) in whole.0.iter().zip(&streamed.0) {
            assert!((a.per_image_mean - b.per_image_mean).abs() < 1e-12 && a.global == b.global);
        }
    }

    #[test]
    fn no_images_is_nan() {
        let (per, mean) = DiceAccumulator::new(2, 0.5).scores();
        assert!(per.iter().all(|d| d.per_image_mean.is_nan() && d.global.is_nan()));
        assert!(mean.global.is_nan());
    }
}
