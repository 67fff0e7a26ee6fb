//! ROC AUC, as scikit-learn's `roc_auc_score` computes it for binary labels (ties count one half).

/// AUC of one class: the Mann–Whitney statistic with mid-ranks for ties. Pairs whose label is NaN
/// (unknown) are left out. `None` when the class lacks a positive or a negative.
pub fn roc_auc(scores: &[f64], labels: &[f32]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> =
        scores.iter().zip(labels).filter(|(s, l)| !l.is_nan() && !s.is_nan()).map(|(&s, &l)| (s, l > 0.5)).collect();
    let pos = pairs.iter().filter(|(_, y)| *y).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' mid-ranks (1-based).
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        let positives = pairs[i..j].iter().filter(|(_, y)| *y).count();
        rank_sum += mid * positives as f64;
        i = j;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Per-class AUCs (row-major scores and labels, `classes` columns) and their mean over the classes
/// that have both a positive and a negative.
pub fn mean_auc(scores: &[f64], labels: &[f32], classes: usize) -> (Vec<Option<f64>>, Option<f64>) {
    let n = scores.len().checked_div(classes).unwrap_or(0);
    let per: Vec<Option<f64>> = (0..classes)
        .map(|c| {
            let s: Vec<f64> = (0..n).map(|i| scores[i * classes + c]).collect();
            let l: Vec<f32> = (0..n).map(|i| labels[i * classes + c]).collect();
            roc_auc(&s, &l)
        })
        .collect();
    let valid: Vec<f64> = per.iter().flatten().copied().collect();
    let mean = (!valid.is_empty()).then(|| valid.iter().sum::<f64>() / valid.len() as f64);
    (per, mean)
}

/// The reported mean: over the `eval` labels only when the dataset names some (CheXpert and
/// MIMIC-CXR report 5 of their 14), else over every label with a defined AUC.
pub fn reported_mean(per: &[Option<f64>], names: &[String], eval: &[String], all: Option<f64>) -> Option<f64> {
    if eval.is_empty() {
        return all;
    }
    let v: Vec<f64> = names.iter().zip(per).filter(|(n, _)| eval.contains(n)).filter_map(|(_, a)| *a).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_mean_covers_the_eval_labels_only() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let per = [Some(0.5), Some(0.9), None];
        assert_eq!(reported_mean(&per, &names, &[], Some(0.7)), Some(0.7));
        assert_eq!(reported_mean(&per, &names, &["b".into(), "c".into()], Some(0.7)), Some(0.9));
        assert_eq!(reported_mean(&per, &names, &["c".into()], Some(0.7)), None);
    }

    #[test]
    fn small_cases_by_hand() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), Some(0.75));
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
        assert_eq!(roc_auc(&[0.9, 0.1], &[0.0, 1.0]), Some(0.0));
        assert_eq!(roc_auc(&[0.9, 0.1], &[1.0, 1.0]), None);
        assert_eq!(roc_auc(&[0.9, 0.1, 0.3], &[1.0, f32::NAN, 0.0]), Some(1.0));
    }
}
