//! Exact resume on every branch: a cls + loc + seg run with teacher and student, resumed from its
//! checkpoint after EVERY epoch (a fresh Trainer each time, as after kill -9), gives the same
//! metric rows and byte-identical final checkpoints as the same run trained in one go. Before
//! gradients were taken without accumulating into `.grad`, parameters trainable but unused in an
//! epoch (e.g. `backbone.norm` in loc/seg Release epochs) were moved by AdamW through zeroed
//! gradients in a long-lived process and skipped in a resumed one.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::path::Path;
use tch::Device;

fn experiment(dir: &Path) -> Experiment {
    tiny(dir).experiment()
}

fn tiny(dir: &Path) -> common::Tiny {
    // Stochastic depth at the architecture's default: resume must replay its draws too.
    let lr = "{ backbone = 1e-3, cls_head = 1e-2, loc_encoder = 1e-3, loc_decoder = 1e-3, seg_decoder = 1e-3, seg_head = 1e-2 }";
    common::Tiny::new("r", 7, dir)
        .unset("model.drop_path")
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .dino()
        .set("train.batch_size", "8")
        .set("train.cycles", "2")
        .set("train.workers", "2")
        .set("optimizer.lr", lr)
        .set("eval.models", "[\"teacher\", \"student\"]")
        .set("eval.max_samples", "8")
        .dataset("phantom-cxp", "options = { train = 16, test = 8 }")
        .dataset("phantom-ptx", "options = { train = 16, test = 8 }")
}

fn registry() -> Registry {
    Registry::new(fx_phantom::plugins())
}

#[test]
fn resuming_after_every_epoch_reproduces_the_straight_run_on_all_three_branches() {
    let _rng = common::one_at_a_time();
    let a = tempfile::tempdir().unwrap();
    let mut straight = Trainer::create(experiment(a.path()), "r.toml", &registry(), Device::Cpu).unwrap();
    let epochs = straight.plan.len();
    let tasks: Vec<String> = straight.plan.iter().map(|p| p.task.to_string()).collect();
    assert!(["cls", "loc", "seg"].iter().all(|t| tasks.contains(&t.to_string())), "{tasks:?}");
    for _ in 0..epochs {
        assert!(straight.run_epoch(&mut |_| {}).unwrap());
    }
    let straight_dir = straight.run_dir();
    drop(straight);

    let b = tempfile::tempdir().unwrap();
    let first = Trainer::create(experiment(b.path()), "r.toml", &registry(), Device::Cpu).unwrap();
    let resumed_dir = first.run_dir();
    drop(first);
    for _ in 0..epochs {
        let mut t = Trainer::resume(&resumed_dir, &registry(), Some(Device::Cpu)).unwrap();
        t.run_epoch(&mut |_| {}).unwrap();
    }
    common::assert_same_run(&straight_dir, &resumed_dir, "cls + loc + seg");
}

/// `train.activation_checkpointing` recomputes the Swin blocks and the DINO encoder layers in the
/// backward: the same run, to the byte, as without it — drop path's draws replayed, every
/// parameter of a checkpointed block still reached (one left out would not train) — and a run
/// may be resumed with it switched on.
#[test]
fn activation_checkpointing_trains_exactly_as_without() {
    let _rng = common::one_at_a_time();
    let train = |dir: &Path, on: bool| {
        let exp =
            tiny(dir).set("train.activation_checkpointing", &on.to_string()).set("train.cycles", "1").experiment();
        let mut t = Trainer::create(exp, "r.toml", &registry(), Device::Cpu).unwrap();
        assert_eq!(t.student.backbone.activation_checkpointing, on);
        let releases = t.plan.iter().filter(|p| p.mode == fx::schedule::Mode::Release).count();
        assert!(releases >= 3, "the backbone and the encoder train in some epochs");
        for _ in 0..t.plan.len() {
            assert!(t.run_epoch(&mut |_| {}).unwrap());
        }
        t.run_dir()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (plain, recomputed) = (train(a.path(), false), train(b.path(), true));
    common::assert_same_run(&plain, &recomputed, "activation checkpointing");
    // Switched on for a resume: not an edit that changes results.
    let edited = std::fs::read_to_string(recomputed.join("experiment.toml"))
        .unwrap()
        .replace("activation_checkpointing = true", "activation_checkpointing = false");
    assert!(edited.contains("activation_checkpointing = false"), "the run records the key");
    std::fs::write(recomputed.join("experiment.toml"), edited).unwrap();
    Trainer::resume(&recomputed, &registry(), Some(Device::Cpu)).unwrap();
}

/// An experiment.toml edited after the last checkpoint (here: a dataset's size) is refused on
/// resume with the keys that changed; keys that cannot change results (log_every) may change.
#[test]
fn resume_refuses_an_edited_experiment_and_names_what_changed() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::create(experiment(dir.path()), "r.toml", &registry(), Device::Cpu).unwrap();
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let run = t.run_dir();
    drop(t);
    let file = run.join("experiment.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("log_every = 10", "log_every = 3")).unwrap();
    assert!(Trainer::resume(&run, &registry(), Some(Device::Cpu)).is_ok(), "log_every may change");
    let edited = text.replacen("train = 16", "train = 24", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let e = format!("{:#}", Trainer::resume(&run, &registry(), Some(Device::Cpu)).err().unwrap());
    assert!(e.contains("experiment.toml differs") && e.contains("datasets.0.options.train: 16 → 24"), "{e}");
}

/// A trainer holds its run's lock for its lifetime: a second one (another `--resume`, another
/// process) is refused at once; once the first is gone — however it ended — the run resumes.
#[test]
fn one_trainer_per_run() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let first = Trainer::create(experiment(dir.path()), "r.toml", &registry(), Device::Cpu).unwrap();
    let run = first.run_dir();
    let store = fx::store::RunStore::open(&run).unwrap();
    assert!(store.is_locked());
    let e = format!("{:#}", Trainer::resume(&run, &registry(), Some(Device::Cpu)).err().unwrap());
    assert!(e.contains("is being trained by another process") && e.contains("trainer.lock"), "{e}");
    drop(first);
    assert!(!store.is_locked());
    assert!(Trainer::resume(&run, &registry(), Some(Device::Cpu)).is_ok());
}

/// A hot-add that crashed between writing experiment.toml and plan.json: its journal holds both,
/// and the next resume completes it before reading either.
#[test]
fn resume_completes_an_interrupted_hot_add_from_its_journal() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let t = Trainer::create(experiment(dir.path()), "r.toml", &registry(), Device::Cpu).unwrap();
    let run = t.run_dir();
    drop(t);
    let exp = std::fs::read_to_string(run.join("experiment.toml")).unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("plan.json")).unwrap()).unwrap();
    std::fs::write(run.join("hot_add.json"), serde_json::json!({ "experiment": exp, "plan": plan }).to_string())
        .unwrap();
    // The crash left a half state: plan.json gone, experiment.toml cut.
    std::fs::remove_file(run.join("plan.json")).unwrap();
    std::fs::write(run.join("experiment.toml"), &exp[..exp.len() / 2]).unwrap();
    assert!(Trainer::resume(&run, &registry(), Some(Device::Cpu)).is_ok());
    assert!(!run.join("hot_add.json").exists());
    assert_eq!(std::fs::read_to_string(run.join("experiment.toml")).unwrap(), exp);
}
