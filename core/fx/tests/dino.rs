//! The localization branch: sizes at the paper's scale, every parameter trains, the consistency
//! reaches the student, denoising layout and masks, detections.

mod common;

use fx::dino::criterion::set_criterion;
use fx::dino::{DecodeOptions, DinoConfig, LocDecoder, LocEncoder, Targets};
use fx::model::{Heads, Model};
use fx::swin::SwinConfig;
use std::collections::BTreeMap;
use tch::{nn, Device, Kind, Tensor};

fn count(vs: &nn::VarStore, prefix: &str) -> i64 {
    vs.variables().iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, t)| t.numel() as i64).sum()
}

#[test]
fn sizes_at_swin_b_scale() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = DinoConfig::default();
    let _enc = LocEncoder::new(&(vs.root() / "loc_encoder"), &[256, 512, 1024], &cfg);
    let _dec = LocDecoder::new(&(vs.root() / "loc_decoder" / "vindr"), 14, &cfg);
    // The paper's 7.69 M: the six deformable encoder layers (+ the level embedding).
    let encoder = count(&vs, "loc_encoder.layers.") + count(&vs, "loc_encoder.level_embed");
    assert!((encoder as f64 / 7.69e6 - 1.0).abs() < 0.02, "encoder {encoder}");
    // ~9.6 M: the six decoder layers, the reference-point head, the final norm and the box head.
    let decoder: i64 = ["layers.", "ref_point_head.", "norm.", "bbox_embed."]
        .iter()
        .map(|p| count(&vs, &format!("loc_decoder.vindr.{p}")))
        .sum();
    assert!((decoder as f64 / 9.6e6 - 1.0).abs() < 0.02, "decoder {decoder}");
    let whole = count(&vs, "loc_decoder.vindr.");
    // Query selection, 900 learned content queries, label book and class heads on top.
    assert!(whole > decoder && whole < decoder + 1_000_000, "decoder with selection and heads {whole}");
    eprintln!(
        "encoder {encoder}, input projections {}, decoder {decoder}, decoder with selection/heads {whole}",
        count(&vs, "loc_encoder.input_proj.")
    );
}

fn tiny() -> DinoConfig {
    DinoConfig {
        hidden_dim: 32,
        heads: 4,
        points: 2,
        encoder_layers: 2,
        decoder_layers: 3,
        ffn_dim: 64,
        num_queries: 12,
        dn_number: 6,
        num_select: 20,
        gn_groups: 8,
        ..Default::default()
    }
}

fn tiny_model(seed: i64) -> Model {
    tch::manual_seed(seed);
    let swin = SwinConfig::named("swin_nano", 64).unwrap();
    let heads = Heads {
        loc: BTreeMap::from([("organs".to_string(), 3), ("nodules".to_string(), 1)]),
        dino: tiny(),
        ..Default::default()
    };
    Model::new(Device::Cpu, &swin, &heads).unwrap()
}

fn targets() -> Vec<Targets> {
    vec![
        Targets {
            labels: vec![0, 1, 2],
            boxes: vec![[0.5, 0.55, 0.3, 0.3], [0.3, 0.45, 0.25, 0.6], [0.7, 0.45, 0.25, 0.6]],
        },
        Targets { labels: vec![2], boxes: vec![[0.6, 0.4, 0.2, 0.5]] },
    ]
}

#[test]
fn every_parameter_of_the_branch_receives_a_gradient() {
    let _rng = common::one_at_a_time();
    let m = tiny_model(1);
    let x = m.input(&Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)));
    let t = targets();
    let out = m.loc(&x, "organs", true, &DecodeOptions { dn_targets: Some(&t), dn_seed: 5, select: None });
    let dn = out.dn.expect("denoising queries built");
    // 6 DN queries over a largest GT count of 3: 2 groups of 3 positives + 3 negatives.
    assert_eq!((dn.groups, dn.single_pad, dn.pad_size), (2, 6, 12));
    assert_eq!(out.logits.len(), 3);
    assert_eq!(out.logits[0].size(), [2, 12, 3]);
    assert_eq!(out.dn_logits[0].size(), [2, 12, 3]);
    let (loss, parts) = set_criterion(&out, &t);
    assert!(loss.double_value(&[]).is_finite());
    assert!(parts.iter().all(|p| p.double_value(&[]) > 0.0));
    loss.backward();
    // The box heads' last layers start at zero (DINO's initialisation), which blocks gradients
    // to the layers before them in the very first step; after one step every path is open.
    tch::no_grad(|| {
        for (_, mut v) in m.vs.variables() {
            let g = v.grad();
            if g.defined() {
                v -= g * 0.01;
                let _ = v.grad().zero_();
            }
        }
    });
    let out = m.loc(&x, "organs", true, &DecodeOptions { dn_targets: Some(&t), dn_seed: 6, select: None });
    set_criterion(&out, &t).0.backward();
    let mut checked = 0;
    for (name, v) in m.vs.variables() {
        // The classification pooling norm is not on this path.
        if name.starts_with("backbone.norm.") {
            continue;
        }
        // Nor is the other dataset's decoder.
        if name.starts_with("loc_decoder.nodules.") {
            assert!(!v.grad().defined() || v.grad().abs().sum(Kind::Float).double_value(&[]) == 0.0, "{name}");
            continue;
        }
        let g = v.grad();
        assert!(g.defined(), "{name} received no gradient");
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} has an all-zero gradient");
        checked += 1;
    }
    assert!(checked > 100, "{checked} variables checked");
}

#[test]
fn consistency_alone_reaches_the_student_and_the_teacher_follows_the_selection() {
    let _rng = common::one_at_a_time();
    let student = tiny_model(2);
    let teacher = tiny_model(3);
    let x = student.input(&Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)));
    let s = student.loc(&x, "organs", true, &DecodeOptions::default());
    let t = tch::no_grad(|| {
        teacher.loc(&x, "organs", false, &DecodeOptions { select: Some(&s.selected), ..Default::default() })
    });
    assert!(s.selected.equal(&t.selected));
    let cons = s.selected_tokens.mse_loss(&t.selected_tokens, tch::Reduction::Mean)
        + s.hidden.mse_loss(&t.hidden, tch::Reduction::Mean);
    cons.backward();
    for prefix in ["backbone.", "loc_encoder.layers.", "loc_decoder.organs.enc_output.", "loc_decoder.organs.layers."] {
        let reached = student
            .vs
            .variables()
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .any(|(_, v)| v.grad().defined() && v.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert!(reached, "the consistency loss does not reach {prefix}");
    }
}

#[test]
fn without_targets_no_denoising_and_detections_are_well_formed() {
    let _rng = common::one_at_a_time();
    let m = tiny_model(4);
    let x = m.input(&Tensor::rand([3, 1, 64, 64], (Kind::Float, Device::Cpu)));
    let out = tch::no_grad(|| m.loc(&x, "organs", false, &DecodeOptions::default()));
    assert!(out.dn.is_none() && out.dn_logits.is_empty());
    let det = fx::dino::select_detections(out.logits.last().unwrap(), out.boxes.last().unwrap(), 20);
    assert_eq!(det.len(), 3);
    for img in &det {
        assert_eq!(img.len(), 20);
        assert!(img.windows(2).all(|w| w[0].0 >= w[1].0), "scores sorted");
        assert!(img.iter().all(|(s, l, b)| (0.0..=1.0).contains(s)
            && (0..3).contains(l)
            && b.iter().all(|v| (0.0..=1.0).contains(v))));
    }
    // An empty batch of targets builds no denoising queries either.
    let none = vec![Targets::default(), Targets::default()];
    let x2 = x.narrow(0, 0, 2);
    let out = m.loc(&x2, "organs", true, &DecodeOptions { dn_targets: Some(&none), dn_seed: 1, select: None });
    assert!(out.dn.is_none());
    let (loss, _) = set_criterion(&out, &none);
    assert!(loss.double_value(&[]).is_finite() && loss.double_value(&[]) > 0.0);
}

#[test]
fn a_tiny_decoder_learns_fixed_boxes() {
    let _rng = common::one_at_a_time();
    // Same two images every step: the set criterion must drive the loss down and the final layer
    // must place a confident box on every target.
    let m = tiny_model(5);
    let x = m.input(&Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)));
    let t = targets();
    use nn::OptimizerConfig;
    let mut opt = nn::Adam::default().build(&m.vs, 1e-3).unwrap();
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..120 {
        let out = m.loc(&x, "organs", false, &DecodeOptions { dn_targets: Some(&t), dn_seed: step, select: None });
        let (loss, _) = set_criterion(&out, &t);
        opt.zero_grad();
        loss.backward();
        opt.step();
        let v = loss.double_value(&[]);
        if step == 0 {
            first = v;
        }
        last = v;
    }
    assert!(last < first * 0.5, "loss {first} → {last}");
    let out = tch::no_grad(|| m.loc(&x, "organs", false, &DecodeOptions::default()));
    let det = fx::dino::select_detections(out.logits.last().unwrap(), out.boxes.last().unwrap(), 5);
    for (img, tg) in det.iter().zip(&t) {
        for (label, b) in tg.labels.iter().zip(&tg.boxes) {
            let hit = img.iter().any(|(_, l, p)| l == label && (0..4).all(|k| (p[k] - b[k]).abs() < 0.1));
            assert!(hit, "no detection near label {label} box {b:?}: {img:?}");
        }
    }
}

fn trainer(dir: &std::path::Path, extra: &str) -> fx::train::Trainer {
    common::Tiny::new("l", 5, dir)
        .dino()
        .set("train.batch_size", "8")
        .set("optimizer.weight_decay", "0.0")
        .set("optimizer.lr", "{ backbone = 1e-3, loc_encoder = 1e-3, loc_decoder = 1e-3 }")
        .set("eval.max_samples", "8")
        .raw(extra)
        .dataset("phantom-organs", "tasks = [\"loc\"]\noptions = { train = 32, test = 8 }")
        .dataset("phantom-node", "tasks = [\"loc\"]\noptions = { train = 16, test = 8 }")
        .trainer()
}

fn snapshot(vars: Vec<(String, Tensor)>) -> BTreeMap<String, Tensor> {
    vars.into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

#[test]
fn loc_lock_trains_only_the_decoder_release_the_whole_path_and_detections_are_rescorable() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "[student_teacher]\nenabled = true");
    assert_eq!((t.plan[0].task.as_str(), t.plan[0].mode.as_str()), ("loc", "Lock"));
    let before = snapshot(t.student.named_variables());
    let teacher0 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let after = snapshot(t.student.named_variables());
    for (n, b) in &before {
        let moved = !b.equal(&after[n]);
        if n.starts_with("loc_decoder.phantom-organs.") {
            assert!(moved, "Lock did not train {n}");
        } else {
            assert!(!moved, "Lock moved frozen or inactive {n}");
        }
    }
    // The teacher followed by EMA after the Lock pass.
    let teacher1 = snapshot(t.teacher.as_ref().unwrap().named_variables());
    assert!(teacher0.iter().any(|(n, v)| !v.equal(&teacher1[n])));
    assert_eq!(t.plan[1].mode.as_str(), "Release");
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let released = snapshot(t.student.named_variables());
    for (n, a) in &after {
        let moved = !a.equal(&released[n]);
        if n.starts_with("loc_decoder.phantom-node.") || n.starts_with("backbone.norm.") {
            assert!(!moved, "Release of phantom-organs moved {n}");
        } else {
            assert!(moved, "Release did not update {n}");
        }
    }
    // Metric rows: mAP40 (the paper's), AP50 and AP over 0.40:0.95, per label, for both models.
    let rows = t.run.metrics().unwrap();
    for metric in ["map40", "ap50", "ap40_95"] {
        for model in ["teacher", "student"] {
            let r = rows
                .iter()
                .find(|r| r.epoch == 2 && r.metric == metric && r.model == model && r.eval.dataset == "phantom-organs")
                .unwrap_or_else(|| panic!("no {model} {metric} row"));
            assert!((0.0..=100.0).contains(&r.value) && r.per_label.len() == 3, "{r:?}");
            assert_eq!(r.eval.task, "loc");
        }
    }
    // The detections and ground truth in COCO files re-score to the same mAP40.
    let gt = fx_data::coco::read_coco(&t.run.path("predictions/teacher-phantom-organs-loc-ground_truth.json")).unwrap();
    assert_eq!((gt.images.len(), gt.categories.len(), gt.annotations.len()), (8, 3, 24));
    let res: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(t.run.path("predictions/teacher-phantom-organs-loc-detections.json")).unwrap(),
    )
    .unwrap();
    assert!(!res.is_empty() && res.len() <= 8 * 100);
    let dets: Vec<fx::eval::map::Detection> = res
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            fx::eval::map::Detection {
                image: gt.images.iter().position(|im| im.id == d["image_id"].as_i64().unwrap()).unwrap(),
                category: gt.categories.iter().position(|c| c.id == d["category_id"].as_i64().unwrap()).unwrap(),
                bbox: [b[0], b[1], b[0] + b[2], b[1] + b[3]],
                score: d["score"].as_f64().unwrap() as f32,
            }
        })
        .collect();
    let report = fx::eval::map::evaluate(&fx::eval::map::gt_from_coco(&gt), &dets, 3, 8);
    let row = rows
        .iter()
        .find(|r| r.epoch == 2 && r.metric == "map40" && r.model == "teacher" && r.eval.dataset == "phantom-organs")
        .unwrap();
    assert!((report.map40.unwrap() * 100.0 - row.value).abs() < 1e-3, "{:?} vs {}", report.map40, row.value);
}
