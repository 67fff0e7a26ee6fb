//! Mixed precision (`train.precision`) on tiny phantom runs: a bf16 run learns (its loss falls
//! and its teacher ranks above chance) and resumes exactly, an fp16 run with its gradient scale
//! resumes exactly too, and fp32 stays what it was. Explicit precisions, so the test means the
//! same on a CPU with and without native bf16 (where "auto" would differ).

mod common;

use common::{last_checkpoint, rows};
use fx::config::{Experiment, Precision};
use fx::registry::Registry;
use fx::train::{Progress, Trainer};
use std::path::{Path, PathBuf};
use tch::Device;

/// Both branches a step can differ in under autocast: cls and seg (loc's fp32 boundary is the
/// same `model::fp32` as theirs, and its resume is covered in fp32 by resume.rs).
const CLS_AND_SEG: &str = r#"
[[datasets]]
plugin = "phantom-cxp"
options = { train = 32, test = 16 }
[[datasets]]
plugin = "phantom-organs"
tasks = ["seg"]
options = { train = 16, test = 8 }
"#;

/// Enough classification steps for a tiny model to learn something (12 epochs × 12 steps).
const CLS_ONLY: &str = r#"
[[datasets]]
plugin = "phantom-cxp"
options = { train = 96, test = 48 }
"#;

fn experiment(dir: &Path, precision: &str, cycles: usize, datasets: &str) -> Experiment {
    common::Tiny::new("p", 5, dir)
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .set("train.batch_size", "8")
        .set("train.cycles", &cycles.to_string())
        .set("train.log_every", "1")
        .set("train.precision", &format!("{precision:?}"))
        .set("lock_release.enabled", "false")
        .set("optimizer.lr", "{ backbone = 2e-3, cls_head = 2e-2, seg_decoder = 2e-3, seg_head = 2e-2 }")
        .set("eval.models", "[\"teacher\", \"student\"]")
        .raw(datasets)
        .experiment()
}

fn registry() -> Registry {
    Registry::new(fx_phantom::plugins())
}

/// Trains `precision` on `datasets` straight through; returns the run and each epoch's step losses.
fn train(dir: &Path, precision: &str, cycles: usize, datasets: &str) -> (PathBuf, Vec<Vec<f64>>) {
    let mut t =
        Trainer::create(experiment(dir, precision, cycles, datasets), "p.toml", &registry(), Device::Cpu).unwrap();
    assert_eq!(t.precision.as_str(), precision, "an explicit precision is taken as it is");
    let mut losses = Vec::new();
    for _ in 0..t.plan.len() {
        let mut epoch = Vec::new();
        assert!(t
            .run_epoch(&mut |p| {
                if let Progress::Step(s) = p {
                    epoch.push(s.loss);
                }
            })
            .unwrap());
        losses.push(epoch);
    }
    (t.run_dir(), losses)
}

/// The same cls + seg run straight through and resumed after every epoch (a fresh Trainer each
/// time, as after kill -9): identical metric rows and byte-identical final checkpoints.
fn resumes_exactly(precision: &str) -> PathBuf {
    let keep = tempfile::tempdir().unwrap().keep();
    let (straight_dir, _) = train(&keep.join("a"), precision, 2, CLS_AND_SEG);
    let first =
        Trainer::create(experiment(&keep.join("b"), precision, 2, CLS_AND_SEG), "p.toml", &registry(), Device::Cpu)
            .unwrap();
    let resumed_dir = first.run_dir();
    let epochs = first.plan.len();
    drop(first);
    for _ in 0..epochs {
        let mut t = Trainer::resume(&resumed_dir, &registry(), Some(Device::Cpu)).unwrap();
        t.run_epoch(&mut |_| {}).unwrap();
    }
    common::assert_same_run(&straight_dir, &resumed_dir, precision);
    straight_dir
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn a_bf16_run_learns_and_resumes_exactly() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (run, losses) = train(dir.path(), "bf16", 8, CLS_ONLY);
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(events.contains(r#""precision":"bf16""#), "the run records its precision: {events}");
    let (first, last) = (mean(&losses[0]), mean(&losses[losses.len() - 1]));
    assert!(last < first * 0.9, "the bf16 cls loss did not fall: {first} → {last}");
    let auc = rows(&run).iter().rev().find(|r| r["model"] == "teacher").map(|r| r["value"].as_f64().unwrap()).unwrap();
    assert!(auc > 60.0, "the bf16 teacher's AUC stays near chance: {auc}");
    let run = resumes_exactly("bf16");
    let dice = rows(&run).iter().rev().find(|r| r["eval"]["task"] == "seg").map(|r| r["value"].as_f64().unwrap());
    assert!(dice.is_some_and(|d| d.is_finite()), "seg Dice {dice:?}");
}

#[test]
fn an_fp16_run_with_its_gradient_scale_resumes_exactly() {
    let _rng = common::one_at_a_time();
    let run = resumes_exactly("fp16");
    // The scale is checkpointed with the moments (a resumed run would otherwise restart at 2^16).
    let opt = last_checkpoint(&run).join("optimizer.safetensors");
    let names: Vec<String> = tch::Tensor::read_safetensors(&opt).unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "amp.scale") && names.iter().any(|n| n == "amp.growth_tracker"), "{names:?}");
    assert!(rows(&run).iter().all(|r| r["value"].as_f64().is_some_and(f64::is_finite)), "fp16 metrics finite");
}

#[test]
fn auto_precision_is_bf16_on_cuda_and_follows_the_cpu_otherwise() {
    assert_eq!(Precision::Auto.resolve(Device::Cuda(0)), Precision::Bf16);
    let cpu = Precision::Auto.resolve(Device::Cpu);
    assert_eq!(cpu == Precision::Bf16, fx::config::cpu_has_native_bf16());
    assert_eq!(Precision::Fp16.resolve(Device::Cpu), Precision::Fp16);
    let err = Experiment::parse(
        Path::new("x.toml"),
        "name = \"x\"\n[train]\nprecision = \"half\"\n[[datasets]]\nplugin = \"phantom-cxp\"\n",
        &[],
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("train.precision must be") && msg.contains("\"half\"") && msg.contains("x.toml"), "{msg}");
}
