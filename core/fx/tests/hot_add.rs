//! A dataset added to a run while it trains: it joins at a cycle boundary with its own heads, the
//! epochs already trained keep their plan, and the run resumes with it.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::path::Path;
use tch::Device;

fn exp(dir: &Path) -> Experiment {
    common::Tiny::new("hot", 4, dir)
        .set("model.image_size", "32")
        .unset("model.drop_path")
        .set("train.batch_size", "16")
        .set("train.cycles", "3")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.batch_size", "32")
        .dataset("phantom-cxp", "options = { train = 32, test = 16 }")
        .dataset("phantom-tbx", "tasks = [\"cls\"]\noptions = { train = 32, test = 16 }")
        .experiment()
}

/// Queues a dataset file in RUN/pending/, as `fx-tui add` does after its checks; the folder.
fn queue(t: &Trainer, name: &str, text: &str) -> std::path::PathBuf {
    let pending = t.run.path("pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join(name), text).unwrap();
    pending
}

/// Drops a file as a finished copy: a file modified in the last 2 s may still be being copied
/// and waits, so this one is made older.
fn drop_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
}

#[test]
fn a_dataset_added_while_training_joins_at_the_next_cycle_and_survives_resume() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let mut t = Trainer::create(exp(dir.path()), "hot.toml", &registry, Device::Cpu).unwrap();
    assert_eq!(t.plan.len(), 6);
    // Epoch 1 of cycle 1 trains; then a dataset is queued mid-cycle.
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let before = t.plan.clone();
    let pending =
        queue(&t, "1-nih.toml", "[[datasets]]\nplugin = \"phantom-nih\"\noptions = { train = 32, test = 16 }\n");
    // A second file that must be refused: its name is taken. It is dropped into the run's
    // plugins/ folder (as a user copies files there) instead of queued by `fx-tui add`.
    let dropped = t.run.path(fx::train::DROP_DIR);
    assert!(dropped.is_dir(), "the run offers its drop folder");
    drop_file(&dropped.join("2-dup.toml"), "[[datasets]]\nplugin = \"phantom-cxp\"\n");
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    // Joined from cycle 2 (cycle 1 had started): the plan grew by one epoch per later cycle.
    assert_eq!(t.plan.len(), 8);
    assert_eq!(t.plan[..2], before[..2]);
    let nih: Vec<usize> = t.plan.iter().filter(|p| p.dataset == "phantom-nih").map(|p| p.cycle).collect();
    assert_eq!(nih, [2, 3]);
    assert!(
        t.student.cls_heads.contains_key("phantom-nih")
            && t.teacher.as_ref().unwrap().cls_heads.contains_key("phantom-nih")
    );
    assert!(pending.join("added/1-nih.toml").is_file());
    assert!(dropped.join("queued/2-dup.toml").is_file(), "the dropped file is moved aside once queued");
    let refused: Vec<String> = std::fs::read_dir(pending.join("refused"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(refused.len() == 1 && refused[0].ends_with("-2-dup.toml"), "{refused:?}");
    let events = std::fs::read_to_string(t.run.path("events.jsonl")).unwrap();
    assert!(
        events.contains("dataset_added")
            && events.contains("dataset_dropped")
            && events.contains("dataset_refused")
            && events.contains("already in the run"),
        "{events}"
    );
    // The stored experiment and plan say so, and the new dataset is evaluated from now on.
    let stored = Experiment::load(&t.run.path("experiment.toml"), &[]).unwrap();
    assert_eq!(stored.datasets[2].joined_cycle, Some(2));
    assert!(t.run.metrics().unwrap().iter().any(|r| r.eval.dataset == "phantom-nih" && r.epoch == 2));
    // Train into cycle 2 (the new dataset's epoch), then resume in a new trainer.
    while t.next_epoch() < 5 {
        assert!(t.run_epoch(&mut |_| {}).unwrap());
    }
    let dir_run = t.run_dir();
    let head: Vec<f32> =
        Vec::try_from(&t.student.vs.variables()["cls_head.phantom-nih.weight"].flatten(0, -1)).unwrap();
    drop(t);
    let mut r = Trainer::resume(&dir_run, &registry, Some(Device::Cpu)).unwrap();
    assert_eq!(r.next_epoch(), 5);
    assert_eq!(r.plan.len(), 8);
    let again: Vec<f32> =
        Vec::try_from(&r.student.vs.variables()["cls_head.phantom-nih.weight"].flatten(0, -1)).unwrap();
    assert_eq!(head, again, "the added head was checkpointed");
    assert_eq!(r.run(&mut |_| {}).unwrap(), "finished");
}

#[test]
fn a_dataset_added_before_a_checkpoint_has_its_head_resumes_fresh() {
    // Queued and applied, then the process dies before the epoch's checkpoint: resume rebuilds
    // the head from scratch instead of failing on the checkpoint that lacks it.
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let mut t = Trainer::create(exp(dir.path()), "hot.toml", &registry, Device::Cpu).unwrap();
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let run = t.run_dir();
    drop(t);
    // Simulate: experiment.toml already lists the added dataset, the checkpoint predates it.
    let mut e = Experiment::load(&run.join("experiment.toml"), &[]).unwrap();
    let mut d = e.datasets[0].clone();
    d.name = Some("late".into());
    d.joined_cycle = Some(2);
    e.datasets.push(d);
    std::fs::write(run.join("experiment.toml"), toml::to_string(&e).unwrap()).unwrap();
    let ds = fx::train::open_datasets(&e, "x", &registry).unwrap();
    let plan = fx::schedule::plan(&e, &fx::train::tasks_of(&ds));
    std::fs::write(run.join("plan.json"), serde_json::to_string(&plan).unwrap()).unwrap();
    let mut r = Trainer::resume(&run, &registry, Some(Device::Cpu)).unwrap();
    assert!(r.student.cls_heads.contains_key("late"));
    assert_eq!(r.run(&mut |_| {}).unwrap(), "finished");
}

/// `join = "next_epoch"`: the added dataset trains at the very next epoch (its epochs of the
/// current cycle first, then the rest of the cycle), in every later cycle as usual, and the plan
/// survives a resume.
#[test]
fn a_dataset_added_with_join_next_epoch_trains_at_the_next_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let mut t = Trainer::create(exp(dir.path()), "hot.toml", &registry, Device::Cpu).unwrap();
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    let before = t.plan.clone();
    queue(
        &t,
        "1-nih.toml",
        "join = \"next_epoch\"\n[[datasets]]\nplugin = \"phantom-nih\"\noptions = { train = 32, test = 16 }\n",
    );
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    // Cycle 1: cxp (trained), nih (epoch 2, the one just trained), tbx; then cycles 2 and 3.
    let order: Vec<(usize, String)> = t.plan.iter().map(|p| (p.cycle, p.dataset.to_string())).collect();
    let expected = [
        (1, "phantom-cxp"),
        (1, "phantom-nih"),
        (1, "phantom-tbx"),
        (2, "phantom-cxp"),
        (2, "phantom-tbx"),
        (2, "phantom-nih"),
        (3, "phantom-cxp"),
        (3, "phantom-tbx"),
        (3, "phantom-nih"),
    ];
    assert_eq!(order, expected.map(|(c, d)| (c, d.to_string())));
    assert_eq!(t.plan[0], before[0]);
    let trained: Vec<String> = t.run.metrics().unwrap().iter().map(|r| r.trained.dataset.to_string()).collect();
    assert!(trained.iter().any(|d| d == "phantom-nih"), "epoch 2 trained the new dataset: {trained:?}");
    let stored = Experiment::load(&t.run.path("experiment.toml"), &[]).unwrap();
    assert_eq!((stored.datasets[2].joined_cycle, stored.datasets[2].joined_epoch), (Some(1), Some(2)));
    let run = t.run_dir();
    drop(t);
    let r = Trainer::resume(&run, &registry, Some(Device::Cpu)).unwrap();
    assert_eq!(r.next_epoch(), 2);
    assert_eq!(
        r.plan.iter().map(|p| p.dataset.clone()).collect::<Vec<_>>(),
        order.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>()
    );
}

/// A file dropped into RUN/plugins/ while an epoch runs is queued within that epoch (notify
/// wakes the trainer at its next log window), not only at the next boundary.
#[test]
fn a_file_dropped_during_an_epoch_is_queued_before_the_epoch_ends() {
    let dir = tempfile::tempdir().unwrap();
    let exp = common::Tiny::new("drop", 4, dir.path())
        .set("model.image_size", "32")
        .set("train.batch_size", "4")
        .set("train.cycles", "2")
        .set("train.log_every", "1")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .dataset("phantom-cxp", "options = { train = 48, test = 8 }")
        .experiment();
    let registry = Registry::new(fx_phantom::plugins());
    let mut t = Trainer::create(exp, "drop.toml", &registry, Device::Cpu).unwrap();
    let drop = t.run.path(fx::train::DROP_DIR);
    let file = drop.join("tbx.toml");
    let (mut steps, mut queued_at_step) = (0usize, None);
    assert!(t
        .run_epoch(&mut |p| match p {
            fx::train::Progress::Step(_) => {
                steps += 1;
                if steps == 1 {
                    drop_file(&file, "[[datasets]]\nplugin = \"phantom-tbx\"\ntasks = [\"cls\"]\n");
                }
            }
            fx::train::Progress::Warning(w) if w.contains("queued") => queued_at_step = Some(steps),
            _ => {}
        })
        .unwrap());
    let at = queued_at_step.expect("the dropped file was not queued during the epoch");
    assert!(at >= 1 && at < steps, "queued after step {at} of {steps}");
    assert!(drop.join("queued/tbx.toml").is_file());
    // It joins at the next boundary, from the next cycle.
    assert!(t.run_epoch(&mut |_| {}).unwrap());
    assert!(t.plan.iter().any(|p| p.dataset == "phantom-tbx" && p.cycle == 2), "{:?}", t.plan);
}
