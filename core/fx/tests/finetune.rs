//! Finetuning from a run's teacher: what is loaded, what starts fresh, head-only freezing, few-shot.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::path::Path;
use tch::Device;

fn exp(dir: &Path, name: &str, extra: &str, datasets: &str) -> Experiment {
    common::Tiny::new(name, 2, dir)
        .dino()
        .set("train.batch_size", "8")
        .set("optimizer.weight_decay", "0.0")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2, loc_encoder = 1e-3, loc_decoder = 1e-3 }")
        .set("lock_release.enabled", "false")
        .set("eval.max_samples", "8")
        .raw(extra)
        .raw(datasets)
        .experiment()
}

const ORGANS: &str =
    "[[datasets]]\nplugin = \"phantom-organs\"\ntasks = [\"loc\"]\noptions = { train = 16, test = 8 }\n";
const NODULES: &str =
    "[[datasets]]\nplugin = \"phantom-node\"\ntasks = [\"loc\"]\noptions = { train = 40, test = 8 }\n";

#[test]
fn head_only_finetune_loads_the_teacher_trains_only_the_new_decoder_and_few_shot_draws_n_images() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    // Pretrain one epoch of organ localization.
    let mut pre = Trainer::create(exp(dir.path(), "pre", "", ORGANS), "pre.toml", &registry, Device::Cpu).unwrap();
    assert_eq!(pre.run(&mut |_| {}).unwrap(), "finished");
    let teacher: std::collections::BTreeMap<String, tch::Tensor> =
        pre.teacher.as_ref().unwrap().named_variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();

    // Finetune on a new dataset, head-only, few-shot, from the run's name prefix.
    let from = dir.path().join("pre");
    let extra = format!("[finetune]\nfrom = \"{}\"\nmode = \"head_only\"\nshots = 12", from.display());
    let mut ft = Trainer::create(exp(dir.path(), "ft", &extra, NODULES), "ft.toml", &registry, Device::Cpu).unwrap();
    assert_eq!(ft.datasets[0].train.len(), 12, "few-shot keeps `shots` training images");
    // The shared parts come from the pretrained teacher; the new decoder is fresh.
    let vars = ft.student.named_variables();
    for (n, v) in &vars {
        if n.starts_with("backbone.") || n.starts_with("loc_encoder.") {
            assert!(v.equal(&teacher[n]), "{n} was not loaded from the teacher");
        }
    }
    assert!(vars.iter().any(|(n, _)| n.starts_with("loc_decoder.phantom-node.")));
    let events = std::fs::read_to_string(ft.run.path("events.jsonl")).unwrap();
    assert!(events.contains("finetune_loaded") && events.contains("loc_decoder.phantom-node"), "{events}");
    // Head-only: every epoch has the Lock flags.
    assert!(ft.plan.iter().all(|p| p.trainable.backbone == Some(false)
        && p.trainable.loc_encoder == Some(false)
        && p.trainable.loc_decoder == Some(true)));
    let before: Vec<(String, tch::Tensor)> = vars.iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
    assert!(ft.run_epoch(&mut |_| {}).unwrap());
    let after: std::collections::BTreeMap<String, tch::Tensor> = ft.student.named_variables().into_iter().collect();
    for (n, b) in &before {
        let moved = !b.equal(&after[n]);
        assert_eq!(moved, n.starts_with("loc_decoder.phantom-node."), "{n}: moved = {moved}");
    }
}

#[test]
fn finetune_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let missing = format!("[finetune]\nfrom = \"{}/nothing\"", dir.path().display());
    let err = Trainer::create(exp(dir.path(), "a", &missing, NODULES), "a.toml", &registry, Device::Cpu).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("finetune.from") && msg.contains("nothing"), "{msg}");
    let too_many = "[finetune]\nshots = 500";
    let err = Trainer::create(exp(dir.path(), "b", too_many, NODULES), "b.toml", &registry, Device::Cpu).err().unwrap();
    assert!(format!("{err:#}").contains("finetune.shots = 500"), "{err:#}");
    let text = "name='c'\n[model]\narch='swin_nano'\nimage_size=32\n[finetune]\nmode='head_only'\n[[datasets]]\nplugin='phantom-cxp'\n";
    let err = Experiment::parse(Path::new("c.toml"), text, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("needs finetune.from"), "{err:#}");
}
