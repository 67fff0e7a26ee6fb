//! The training strategy, proven on tiny phantom runs: Lock freezes exactly, Release trains every
//! parameter on the path, other datasets' heads are untouched, the teacher is the EMA of the
//! student, and the consistency loss reaches the student.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Tensor};

fn experiment(dir: &Path, extra: &str, weight_decay: f64) -> Experiment {
    common::Tiny::new("t", 11, dir)
        .set("train.batch_size", "8")
        .set("train.cycles", "1")
        .set("optimizer.weight_decay", &format!("{weight_decay:?}"))
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.models", "[\"teacher\"]")
        .set("eval.max_samples", "16")
        .raw(extra)
        .dataset("phantom-cxp", "options = { train = 16, test = 16 }")
        .dataset("phantom-nih", "options = { train = 16, test = 16 }")
        .experiment()
}

fn trainer(dir: &Path, extra: &str, weight_decay: f64) -> Trainer {
    let exp = experiment(dir, extra, weight_decay);
    Trainer::create(exp, "t.toml", &Registry::new(fx_phantom::plugins()), Device::Cpu).unwrap()
}

fn snapshot(vars: Vec<(String, Tensor)>) -> BTreeMap<String, Tensor> {
    vars.into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn changed(a: &Tensor, b: &Tensor) -> bool {
    !a.equal(b)
}

#[test]
fn lock_freezes_exactly_and_release_trains_the_whole_path() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[lock_release]\nclassification = true\n[student_teacher]\nenabled = false", 1e-4);
    assert_eq!(t.plan[0].mode.as_str(), "Lock");
    let before = snapshot(t.student.named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let after = snapshot(t.student.named_variables());
    for (name, b) in &before {
        let moved = changed(b, &after[name]);
        if name.starts_with("backbone.") || name.starts_with("cls_head.phantom-nih.") {
            assert!(!moved, "Lock epoch moved frozen/inactive {name}");
        } else {
            assert!(moved, "Lock epoch did not train {name}");
        }
    }
    // Release, without weight decay so that only gradients move parameters: every backbone tensor
    // and the active head receive a gradient and train; the other dataset's head does not.
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[student_teacher]\nenabled = false", 0.0);
    assert_eq!(t.plan[0].mode.as_str(), "Release");
    let after = snapshot(t.student.named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let released = snapshot(t.student.named_variables());
    for (name, a) in &after {
        let moved = changed(a, &released[name]);
        if name.starts_with("cls_head.phantom-nih.") {
            assert!(!moved, "Release of phantom-cxp moved {name}");
        } else {
            assert!(moved, "Release did not train {name}");
        }
    }
}

#[test]
fn teacher_is_the_ema_of_the_student_after_each_pass() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "", 1e-4);
    let teacher0 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    let student0 = snapshot(t.student.named_variables());
    for (n, v) in &teacher0 {
        assert!(v.equal(&student0[n]), "the teacher starts as a copy of the student ({n})");
    }
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let student1 = snapshot(t.student.named_variables());
    let teacher1 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    for (n, v) in &teacher1 {
        let expected = &teacher0[n] * 0.8 + &student1[n] * 0.2;
        let d = (v - expected).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{n}: teacher is not 0.8·teacher + 0.2·student (off by {d})");
    }
    // The evaluation reports the teacher.
    let rows = t.run.metrics().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.model == "teacher"));
}

#[test]
fn consistency_loss_reaches_the_student() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // Consistency only (no task loss) and no weight decay: any movement comes from consistency.
    let mut t = trainer(dir.path(), "[student_teacher]\nconsistency_weight = 1.0", 0.0);
    // A teacher different from the student, so the consistency gradient is not zero.
    tch::no_grad(|| {
        for (_, v) in t.teacher.as_ref().unwrap().named_variables() {
            let _ = v.shallow_clone().g_add_(&(v.randn_like() * 0.05));
        }
    });
    let before = snapshot(t.student.named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let after = snapshot(t.student.named_variables());
    let moved_backbone = before.iter().filter(|(n, b)| n.starts_with("backbone.") && changed(b, &after[*n])).count();
    assert!(moved_backbone > 0, "the consistency loss did not reach the student's backbone");
    // The head does not influence the pooled feature: with no task loss its gradient is zero.
    for (n, b) in before.iter().filter(|(n, _)| n.starts_with("cls_head.")) {
        assert!(!changed(b, &after[n]), "{n} moved without a task loss");
    }
}

/// `eval.max_samples` per task: a dataset with cls and seg evaluates the first 6 test images for
/// classification and the first 3 for segmentation (its prediction files say so).
#[test]
fn eval_max_samples_caps_each_task() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exp = common::Tiny::new("m", 3, dir.path())
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .set("train.batch_size", "8")
        .set("eval.models", "[\"teacher\"]")
        .set("eval.batch_size", "4")
        .set("eval.max_samples", "{ cls = 6, seg = 3 }")
        .dataset("phantom-ptx", "tasks = [\"cls\", \"seg\"]\noptions = { train = 8, test = 10 }")
        .experiment();
    let mut t = Trainer::create(exp, "m.toml", &Registry::new(fx_phantom::plugins()), Device::Cpu).unwrap();
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let predictions = t.run_dir().join("predictions");
    let lines = |f: &str| std::fs::read_to_string(predictions.join(f)).unwrap().lines().count() - 1;
    assert_eq!(lines("teacher-phantom-ptx-cls.csv"), 6);
    let seg_labels = 2; // pneumothorax, effusion
    assert_eq!(lines("teacher-phantom-ptx-seg/index.csv"), 3 * seg_labels);
}

/// The tasks of a dataset share one backbone pass per model in evaluation, each task's head on
/// the images within its own cap: here cls reads 6 test images, loc 5 and seg 3, in batches of 4,
/// so the second batch feeds cls and loc only and seg reads 3 of the first batch's 4. Every
/// prediction file equals the student's own forward, task by task, on exactly its images: after
/// the first epoch (all three evaluated together), and after the seg Lock epoch, where seg alone
/// is evaluated again, from the dataset's one cached list of 6 images (its second batch, beyond
/// seg's cap, left out) while the cls and loc scores are carried over.
#[test]
fn shared_backbone_pass_gives_each_task_its_own_images() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exp = common::Tiny::new("s", 4, dir.path())
        .dino()
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .set("train.batch_size", "8")
        .set("eval.models", "[\"student\"]")
        .set("eval.batch_size", "4")
        .set("eval.max_samples", "{ cls = 6, loc = 5, seg = 3 }")
        .dataset("phantom-ptx", "tasks = [\"cls\", \"loc\", \"seg\"]\noptions = { train = 8, test = 10 }")
        .experiment();
    let mut t = Trainer::create(exp, "s.toml", &Registry::new(fx_phantom::plugins()), Device::Cpu).unwrap();
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    assert_predictions_are_the_students(&t);
    let plan: Vec<String> = t.plan.iter().map(|e| format!("{} {}", e.task.as_str(), e.mode.as_str())).collect();
    assert_eq!(plan[..4], ["cls Release", "loc Lock", "loc Release", "seg Lock"]);
    let mut reused = Vec::new();
    for _ in 1..4 {
        assert!(t
            .run_epoch(&mut |p| {
                if let fx::train::Progress::Epoch { reuse, .. } = p {
                    reused.push(reuse.reused);
                }
            })
            .unwrap());
    }
    assert_eq!(reused.last(), Some(&2), "the seg Lock epoch carries the cls and loc scores over");
    assert_predictions_are_the_students(&t);
}

fn assert_predictions_are_the_students(t: &Trainer) {
    let predictions = t.run_dir().join("predictions");
    // The same test images, one batch of 6, through the student's per-task paths.
    let ds = &t.datasets[0];
    let size = t.exp.model.image_size as usize;
    let cfg = fx_data::loader::LoaderConfig {
        size,
        batch_size: 6,
        workers: 1,
        prefetch: 1,
        augment: fx_data::augment::Augment::none(),
        seed: 0,
        shard: (0, 1),
    };
    let b = fx_data::loader::Loader::new(ds.dataset.clone(), ds.test.clone(), (0..6).collect(), cfg).next().unwrap();
    assert_eq!(b.positions, (0..6).collect::<Vec<_>>());
    let m = &t.student;
    let x = m.input(&Tensor::from_slice(&b.images).view([6, 1, size as i64, size as i64]));
    let name = "phantom-ptx";

    // Classification: the CSV's scores, 6 rows of 2 labels.
    let probs =
        tch::no_grad(|| fx::model::cls_probabilities(&m.cls_heads[name].spec, &m.cls(&x, name, false).unwrap().logits));
    let want = Vec::<f32>::try_from(probs.flatten(0, -1)).unwrap();
    let csv = std::fs::read_to_string(predictions.join("student-phantom-ptx-cls.csv")).unwrap();
    let got: Vec<f32> = csv
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').skip(3).map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_eq!(got.len(), 12, "{csv}");
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "cls scores {got:?} vs {want:?}");
    }

    // Segmentation: the masks of the first 3 images, per label, as the PNG files hold them.
    let seg = tch::no_grad(|| {
        fx::upernet::mask_scores(&m.seg_heads[name].spec, &m.seg(&x, name, false, false, None).unwrap().logits)
    });
    let seg = Vec::<f32>::try_from(seg.flatten(0, -1)).unwrap();
    let index = std::fs::read_to_string(predictions.join("student-phantom-ptx-seg/index.csv")).unwrap();
    let files: Vec<&str> = index.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(files.len(), 3 * 2, "{index}");
    let px = size * size;
    for (j, file) in files.iter().enumerate() {
        let png =
            fx_data::masks::read_mask_png(&predictions.join("student-phantom-ptx-seg").join(file), size, size).unwrap();
        let want: Vec<u8> = seg[j * px..(j + 1) * px].iter().map(|&v| (v > 0.5) as u8).collect();
        let differ = png.iter().zip(&want).filter(|(a, b)| (**a > 0) != (**b > 0)).count();
        // Batches of 4 and 6 may round the last bit differently: a pixel at 0.5 could flip.
        assert!(differ <= 2, "{file}: {differ} pixels differ");
    }

    // Localization: the first 5 images, each with its best detection's score.
    let out = tch::no_grad(|| m.loc(&x, name, false, &fx::dino::DecodeOptions::default()));
    let per =
        fx::dino::select_detections(out.logits.last().unwrap(), out.boxes.last().unwrap(), t.exp.model.dino.num_select);
    let dets: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(predictions.join("student-phantom-ptx-loc-detections.json")).unwrap(),
    )
    .unwrap();
    let dets = dets.as_array().unwrap();
    for image in 1..=6i64 {
        let best = dets
            .iter()
            .filter(|d| d["image_id"].as_i64() == Some(image))
            .map(|d| d["score"].as_f64().unwrap() as f32)
            .fold(f32::NEG_INFINITY, f32::max);
        if image == 6 {
            assert_eq!(best, f32::NEG_INFINITY, "the sixth image is beyond loc's cap of 5");
            continue;
        }
        let want = per[image as usize - 1].iter().map(|d| d.0).fold(f32::NEG_INFINITY, f32::max);
        assert!((best - want).abs() < 1e-5, "image {image}: best score {best} vs {want}");
    }
}

/// Evaluations whose model path did not change since their last one are carried over: in a Lock
/// epoch every student path but the focused one stands (the backbone, the loc encoder and the
/// seg decoder are frozen, the seg decoder's BatchNorm statistics too), and nothing else is ever
/// carried over (a Release epoch moves the backbone, the EMA moves every teacher path). The
/// carried-over rows equal a fresh evaluation's: the same run resumed before every epoch, whose
/// new trainer has nothing to carry over, writes the same rows.
#[test]
fn unchanged_evaluations_are_carried_over_exactly() {
    let _rng = common::one_at_a_time();
    let exp = |dir: &Path| {
        common::Tiny::new("r", 5, dir)
            .dino()
            .set("model.ppm_channels", "16")
            .set("model.fpn_channels", "8")
            .set("train.batch_size", "4")
            .set("train.cycles", "1")
            .set("eval.batch_size", "4")
            .set("eval.max_samples", "6")
            .dataset("phantom-cxp", "options = { train = 8, test = 6 }")
            .dataset("phantom-organs", "options = { train = 8, test = 6 }")
            .experiment()
    };
    let registry = Registry::new(fx_phantom::plugins());
    let dir = tempfile::tempdir().unwrap();
    let mut straight = Trainer::create(exp(dir.path()), "r.toml", &registry, Device::Cpu).unwrap();
    assert_eq!(straight.exp.eval_models().len(), 2, "teacher and student are both evaluated");
    let mut seen = Vec::new();
    for _ in 0..straight.plan.len() {
        assert!(straight
            .run_epoch(&mut |p| {
                if let fx::train::Progress::Epoch { plan, reuse, .. } = p {
                    seen.push((
                        format!("{} {}", plan.task.as_str(), plan.mode.as_str()),
                        reuse.reused,
                        reuse.evaluations,
                    ));
                }
            })
            .unwrap());
    }
    let straight_dir = straight.run_dir();
    drop(straight);
    // cxp cls, organs loc, organs seg: three paths for each of two models.
    let want: Vec<(String, usize, usize)> = ["cls Release", "loc Lock", "loc Release", "seg Lock", "seg Release"]
        .iter()
        .map(|e| (e.to_string(), if e.ends_with("Lock") { 2 } else { 0 }, 6))
        .collect();
    assert_eq!(seen, want, "(epoch, evaluations carried over, evaluations)");

    let other = tempfile::tempdir().unwrap();
    let resumed_dir = Trainer::create(exp(other.path()), "r.toml", &registry, Device::Cpu).unwrap().run_dir();
    for _ in 0..want.len() {
        Trainer::resume(&resumed_dir, &registry, Some(Device::Cpu)).unwrap().run_epoch(&mut |_| {}).unwrap();
    }
    common::assert_same_run(&straight_dir, &resumed_dir, "carried-over evaluations");
}
