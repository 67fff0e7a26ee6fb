//! The segmentation branch: sizes at Swin-B, Lock/Release freezing over backbone, decoder
//! (BatchNorm statistics included) and heads, and the predicted masks written for re-scoring.

mod common;

use fx::model::{Heads, Model};
use fx::swin::{count_params, SwinConfig};
use fx::train::Trainer;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Tensor};

#[test]
fn upernet_at_swin_b_size_matches_the_paper() {
    let heads = Heads {
        seg: BTreeMap::from([("organs".to_string(), fx::upernet::SegHeadSpec::conv(3))]),
        seg_channels: (256, 128),
        ..Default::default()
    };
    let m = Model::new(Device::Cpu, &SwinConfig::named("swin_base", 224).unwrap(), &heads).unwrap();
    // Parameters only (BatchNorm running statistics are state, not parameters).
    let params: i64 = m
        .named_variables()
        .iter()
        .filter(|(n, _)| n.starts_with("seg_decoder.") && !fx::model::is_buffer(n))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    let paper = 20.9e6;
    assert!(
        (params as f64 - paper).abs() / paper <= 0.02,
        "UperNet at Swin-B: {params} parameters, paper 20.9 M ± 2 %"
    );
    assert_eq!(count_params(&m.vs, "seg_head.organs."), 128 * 3 * 9 + 3);
    // Logits at the input size, one channel per mask.
    let x = Tensor::zeros([1, 3, 224, 224], (tch::Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| m.seg(&x, "organs", false, false, None)).unwrap();
    assert_eq!(out.logits.size(), [1, 3, 224, 224]);
    assert_eq!(out.fused.size(), [1, 128, 56, 56]);
}

/// `train`: training images of each dataset (batch 8).
fn trainer(dir: &Path, extra: &str, train: usize) -> Trainer {
    let options = format!("tasks = [\"seg\"]\noptions = {{ train = {train}, test = 8 }}");
    common::Tiny::new("s", 5, dir)
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .set("train.batch_size", "8")
        .set("optimizer.weight_decay", "0.0")
        .set("optimizer.lr", "{ backbone = 1e-3, seg_decoder = 1e-3, seg_head = 1e-2 }")
        .set("eval.models", "[\"teacher\"]")
        .set("eval.max_samples", "8")
        .raw(extra)
        .dataset("phantom-organs", &options)
        .dataset("phantom-ptx", &options)
        .trainer()
}

fn snapshot(vars: Vec<(String, Tensor)>) -> BTreeMap<String, Tensor> {
    vars.into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

#[test]
fn seg_lock_freezes_backbone_and_decoder_release_trains_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[student_teacher]\nenabled = false", 16);
    assert_eq!((t.plan[0].task.as_str(), t.plan[0].mode.as_str()), ("seg", "Lock"));
    let before = snapshot(t.student.named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let after = snapshot(t.student.named_variables());
    for (n, b) in &before {
        let moved = !b.equal(&after[n]);
        if n.starts_with("seg_head.phantom-organs.") {
            assert!(moved, "Lock did not train {n}");
        } else {
            assert!(!moved, "Lock moved frozen or inactive {n}");
        }
    }
    assert_eq!(t.plan[1].mode.as_str(), "Release");
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let released = snapshot(t.student.named_variables());
    for (n, a) in &after {
        let moved = !a.equal(&released[n]);
        if n.starts_with("seg_head.phantom-ptx.") || n.starts_with("backbone.norm.") {
            // Another dataset's head; the final LayerNorm feeds only the pooled (cls) feature.
            assert!(!moved, "Release of phantom-organs moved {n}");
        } else {
            // Every backbone and decoder tensor (BatchNorm statistics too) and the active head.
            assert!(moved, "Release did not update {n}");
        }
    }
    // Predictions for re-scoring: one PNG per (image, label) and an index.
    let idx = std::fs::read_to_string(t.run.path("predictions/teacher-phantom-organs-seg/index.csv"))
        .or_else(|_| std::fs::read_to_string(t.run.path("predictions/student-phantom-organs-seg/index.csv")))
        .unwrap();
    assert_eq!(idx.lines().count(), 1 + 8 * 3);
    let rows = t.run.metrics().unwrap();
    let dice: Vec<_> = rows.iter().filter(|r| r.metric == "dice" && r.eval.dataset == "phantom-organs").collect();
    assert!(!dice.is_empty() && dice.iter().all(|r| r.per_label.len() == 3 && (0.0..=100.0).contains(&r.value)));
    assert!(rows.iter().any(|r| r.metric == "dice_global"));
}

#[test]
fn seg_consistency_reaches_the_student_and_teacher_tracks_bn_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[student_teacher]\nconsistency_weight = 1.0\n[lock_release]\nenabled = false", 16);
    tch::no_grad(|| {
        for (n, v) in t.teacher.as_ref().unwrap().named_variables() {
            if !fx::model::is_buffer(&n) {
                let _ = v.shallow_clone().g_add_(&(v.randn_like() * 0.05));
            }
        }
    });
    let teacher0 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    let before = snapshot(t.student.named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let after = snapshot(t.student.named_variables());
    let moved = |prefix: &str| before.iter().filter(|(n, b)| n.starts_with(prefix) && !b.equal(&after[*n])).count();
    assert!(moved("backbone.") > 0 && moved("seg_decoder.") > 0, "consistency did not reach the student");
    // EMA covers the BatchNorm running statistics as well as the parameters.
    let teacher1 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    for (n, v) in teacher1.iter().filter(|(n, _)| fx::model::is_buffer(n)) {
        let expected = &teacher0[n] * 0.8 + &after[n] * 0.2;
        assert!((v - expected).abs().max().double_value(&[]) < 1e-6, "{n}");
    }
}

/// 17 images in batches of 8 leave a last batch of one: BatchNorm would see one value per channel
/// at the pyramid pooling's 1×1 bin (running_var 0/0 = NaN, every later evaluation NaN). The
/// batch is left out with a warning; the statistics stay finite.
#[test]
fn a_last_batch_of_one_image_is_left_out_of_batchnorm_training() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[lock_release]\nenabled = false", 17);
    let mut warnings = Vec::new();
    assert!(t
        .run_epoch(&mut |p| {
            if let fx::train::Progress::Warning(w) = p {
                warnings.push(w)
            }
        })
        .unwrap());
    assert!(warnings.iter().any(|w| w.contains("one image") && w.contains("phantom-organs")), "{warnings:?}");
    for model in [&t.student, t.teacher.as_ref().unwrap()] {
        for (n, v) in model.named_variables() {
            assert!(v.isfinite().all().int64_value(&[]) == 1, "{n} is not finite");
        }
    }
    let rows = t.run.metrics().unwrap();
    assert!(rows.iter().any(|r| r.metric == "dice") && rows.iter().all(|r| r.value.is_finite()));
    let events = std::fs::read_to_string(t.run.path("events.jsonl")).unwrap();
    assert!(events.contains("batch_left_out"));
}
