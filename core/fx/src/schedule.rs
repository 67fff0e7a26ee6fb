//! The Cyclic + Lock-Release schedule, computed before training as plain data.
//!
//! One EPOCH trains one task of one dataset in one mode:
//! - Release: everything on the task's path trainable, the whole training split;
//! - Lock: early layers frozen (localization: backbone and loc encoder; segmentation: backbone and
//!   seg decoder), on a random half of the training split.
//!
//! Localization and segmentation tasks get a Lock epoch followed by a Release epoch (paper Table 8
//! numbers them as two epochs); classification gets a single Release epoch unless
//! `lock_release.classification` is on. A cycle visits every (dataset, task) once, in the order
//! `train.order` picks: "dataset" (the paper's pretraining cycle) takes each dataset in experiment
//! order with its classification, then localization, then segmentation task; "task" (Table 8's
//! organ schedule) takes every dataset's classification task, then every localization task, then
//! every segmentation task, datasets in experiment order each time.

use crate::config::{Experiment, FinetuneMode, Order};
use fx_plugin::Task;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Lock,
    Release,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Lock => "Lock",
            Mode::Release => "Release",
        }
    }
}

/// Trainable flag of each component for one epoch (plan.json's record, in fx-run).
pub use fx_run::Trainable;

/// The trainable flags of a task's path in a mode: Release trains everything on it; Lock freezes
/// the backbone and the task's shared early layers (loc encoder, seg decoder).
pub fn trainable_for(task: Task, mode: Mode) -> Trainable {
    let release = mode == Mode::Release;
    match task {
        Task::Cls => Trainable { backbone: Some(release), cls_head: Some(true), ..Default::default() },
        Task::Loc => Trainable {
            backbone: Some(release),
            loc_encoder: Some(release),
            loc_decoder: Some(true),
            ..Default::default()
        },
        Task::Seg => Trainable {
            backbone: Some(release),
            seg_decoder: Some(release),
            seg_head: Some(true),
            ..Default::default()
        },
    }
}

/// One epoch of the plan: plan.json's record (fx-run) with fx's task and mode.
pub type EpochPlan = fx_run::EpochPlan<Task, Mode>;

/// The (dataset, task) pairs of one cycle, in the order `order` asks for. Tasks always go
/// cls, loc, seg whatever order the caller lists them in.
fn cycle_pairs(order: Order, tasks: &[(String, Vec<Task>)]) -> Vec<(&str, Task)> {
    let has = |ts: &[Task], t: Task| ts.contains(&t);
    match order {
        Order::Dataset => tasks
            .iter()
            .flat_map(|(d, ts)| Task::ALL.into_iter().filter(|&t| has(ts, t)).map(move |t| (d.as_str(), t)))
            .collect(),
        Order::Task => Task::ALL
            .into_iter()
            .flat_map(|t| tasks.iter().filter(move |(_, ts)| has(ts, t)).map(move |(d, _)| (d.as_str(), t)))
            .collect(),
    }
}

/// Builds the whole schedule from the experiment and the tasks each dataset trains.
pub fn plan(exp: &Experiment, tasks: &[(String, Vec<Task>)]) -> Vec<EpochPlan> {
    let lr = &exp.lock_release;
    let mut out = Vec::new();
    // A dataset added to a running run takes part from the cycle it joined; one added with
    // join = "next_epoch" also from an epoch within that cycle.
    let joined = |name: &str| exp.dataset(name).and_then(|d| d.joined_cycle).unwrap_or(1);
    let joined_epoch = |name: &str, cycle: usize| {
        exp.dataset(name).filter(|d| d.joined_cycle == Some(cycle)).and_then(|d| d.joined_epoch)
    };
    let push = |out: &mut Vec<EpochPlan>, cycle: usize, dataset: &str, task: Task| {
        let lock = lr.enabled && (task != Task::Cls || lr.classification);
        let modes: &[Mode] = if lock { &[Mode::Lock, Mode::Release] } else { &[Mode::Release] };
        for &mode in modes {
            out.push(EpochPlan {
                epoch: out.len() + 1,
                cycle,
                dataset: dataset.to_string(),
                task,
                mode,
                fraction: if mode == Mode::Lock { lr.lock_fraction } else { 1.0 },
                trainable: match exp.finetune.mode {
                    FinetuneMode::Full => trainable_for(task, mode),
                    // Head-only finetuning: the Lock flags, whatever the pass.
                    FinetuneMode::HeadOnly => trainable_for(task, Mode::Lock),
                },
                lr_factor: exp.optimizer.lr_schedule.factor(cycle, exp.train.cycles),
            });
        }
    };
    for cycle in 1..=exp.train.cycles {
        let pairs: Vec<(&str, Task)> =
            cycle_pairs(exp.train.order, tasks).into_iter().filter(|(d, _)| cycle >= joined(d)).collect();
        // Pairs of datasets joining at an epoch of this cycle wait for it, then come first.
        let (mut waiting, normal): (Vec<_>, Vec<_>) =
            pairs.into_iter().partition(|(d, _)| joined_epoch(d, cycle).is_some());
        for (dataset, task) in normal {
            let due: Vec<(&str, Task)> =
                waiting.iter().copied().filter(|(d, _)| joined_epoch(d, cycle).unwrap() <= out.len() + 1).collect();
            waiting.retain(|p| !due.contains(p));
            for (d, t) in due {
                push(&mut out, cycle, d, t);
            }
            push(&mut out, cycle, dataset, task);
        }
        for (d, t) in waiting {
            push(&mut out, cycle, d, t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Group;
    use std::path::Path;

    fn exp(extra: &str) -> Experiment {
        let text = format!(
            "name='t'\n[model]\narch='swin_nano'\nimage_size=32\n[train]\ncycles=2\n{extra}\n[[datasets]]\nplugin='a'\n"
        );
        Experiment::parse(Path::new("t.toml"), &text, &[]).unwrap()
    }

    /// A dataset joining at epoch 2 of cycle 1 never parts a Lock epoch from its Release: it
    /// waits for the pair that started at epoch 1 and comes first after it; later cycles as usual.
    #[test]
    fn a_dataset_joining_at_an_epoch_waits_for_the_current_pair() {
        let mut e = exp("");
        let mut b = e.datasets[0].clone();
        (b.name, b.plugin, b.joined_cycle, b.joined_epoch) = (Some("b".into()), "b".into(), Some(1), Some(2));
        e.datasets.push(b);
        let c = e.datasets[0].clone();
        e.datasets.push(crate::config::DatasetConfig { name: Some("c".into()), plugin: "c".into(), ..c });
        let tasks = vec![
            ("a".to_string(), vec![Task::Seg]),
            ("c".to_string(), vec![Task::Seg]),
            ("b".to_string(), vec![Task::Cls]),
        ];
        let got: Vec<String> =
            plan(&e, &tasks).iter().map(|p| format!("{} {} {}", p.cycle, p.dataset, p.mode.as_str())).collect();
        assert_eq!(
            got,
            [
                "1 a Lock",
                "1 a Release",
                "1 b Release",
                "1 c Lock",
                "1 c Release",
                "2 a Lock",
                "2 a Release",
                "2 c Lock",
                "2 c Release",
                "2 b Release"
            ]
        );
    }

    #[test]
    fn cycle_order_and_lock_release() {
        let e = exp("");
        let tasks = vec![("a".to_string(), vec![Task::Seg, Task::Cls, Task::Loc]), ("b".to_string(), vec![Task::Cls])];
        let p = plan(&e, &tasks);
        let got: Vec<String> = p.iter().take(6).map(row).collect();
        assert_eq!(
            got,
            [
                "1:a:cls:Release",
                "1:a:loc:Lock",
                "1:a:loc:Release",
                "1:a:seg:Lock",
                "1:a:seg:Release",
                "1:b:cls:Release"
            ]
        );
        assert_eq!(p.len(), 12);
        assert_eq!(p[6].cycle, 2);
        assert!(p.iter().enumerate().all(|(i, x)| x.epoch == i + 1));
        let lock = &p[1];
        assert_eq!(lock.fraction, 0.5);
        assert_eq!(lock.trainable.backbone, Some(false));
        assert_eq!(lock.trainable.loc_encoder, Some(false));
        assert_eq!(lock.trainable.loc_decoder, Some(true));
        assert_eq!(lock.trainable.seg_head, None);
        let seg_lock = &p[3];
        assert_eq!(seg_lock.trainable.seg_decoder, Some(false));
        assert_eq!(seg_lock.trainable.seg_head, Some(true));
        assert!(Group::Backbone.trains_in(&p[2].trainable));
    }

    fn row(x: &EpochPlan) -> String {
        format!("{}:{}:{}:{}", x.cycle, x.dataset, x.task, x.mode.as_str())
    }

    #[test]
    fn task_order_is_task_major_within_each_cycle() {
        let e = exp("order='task'");
        let tasks = vec![
            ("a".to_string(), vec![Task::Seg, Task::Cls, Task::Loc]),
            ("b".to_string(), vec![Task::Cls]),
            ("c".to_string(), vec![Task::Seg]),
        ];
        let p = plan(&e, &tasks);
        let got: Vec<String> = p.iter().map(row).collect();
        let cycle = |c: usize| {
            [
                "a:cls:Release",
                "b:cls:Release",
                "a:loc:Lock",
                "a:loc:Release",
                "a:seg:Lock",
                "a:seg:Release",
                "c:seg:Lock",
                "c:seg:Release",
            ]
            .map(|r| format!("{c}:{r}"))
        };
        assert_eq!(got, [cycle(1), cycle(2)].concat());
        assert!(p.iter().enumerate().all(|(i, x)| x.epoch == i + 1));
    }

    #[test]
    fn order_only_reorders_the_epochs_of_a_cycle() {
        let tasks = vec![("a".to_string(), vec![Task::Cls, Task::Seg]), ("b".to_string(), vec![Task::Cls, Task::Loc])];
        let key = |p: Vec<EpochPlan>| {
            let mut v: Vec<String> =
                p.iter().map(|x| format!("{} {:?} {} {:?}", row(x), x.trainable, x.fraction, x.lr_factor)).collect();
            v.sort();
            v
        };
        assert_eq!(key(plan(&exp(""), &tasks)), key(plan(&exp("order='task'"), &tasks)));
        // One dataset: both orders coincide.
        let one = &tasks[..1];
        assert_eq!(plan(&exp(""), one), plan(&exp("order='task'"), one));
    }

    #[test]
    fn table8_organ_schedule_in_task_order() {
        // Paper Table 8: localize heart, left lung, right lung (Lock half, Release full each), then
        // segment them; flags Backbone/Loc.Enc/Loc.Dec/Seg.Dec/Seg.Head as printed ("-" = None).
        let mut e = exp("order='task'");
        e.train.cycles = 1;
        let organs = ["heart", "left_lung", "right_lung"];
        let tasks: Vec<(String, Vec<Task>)> =
            organs.iter().map(|d| (d.to_string(), vec![Task::Loc, Task::Seg])).collect();
        let p = plan(&e, &tasks);
        assert_eq!(p.len(), 12);
        let (t, f) = (Some(true), Some(false));
        for (i, x) in p.iter().enumerate() {
            let (task, dataset) = if i < 6 { (Task::Loc, organs[i / 2]) } else { (Task::Seg, organs[(i - 6) / 2]) };
            let lock = i % 2 == 0;
            assert_eq!((x.epoch, x.cycle, x.dataset.as_str(), x.task), (i + 1, 1, dataset, task), "epoch {}", i + 1);
            assert_eq!(x.mode, if lock { Mode::Lock } else { Mode::Release }, "epoch {}", i + 1);
            assert_eq!(x.fraction, if lock { 0.5 } else { 1.0 }, "epoch {}", i + 1);
            let flags = [
                x.trainable.backbone,
                x.trainable.loc_encoder,
                x.trainable.loc_decoder,
                x.trainable.seg_decoder,
                x.trainable.seg_head,
            ];
            let want = match (task, lock) {
                (Task::Loc, true) => [f, f, t, None, None],
                (Task::Loc, false) => [t, t, t, None, None],
                (Task::Seg, true) => [f, None, None, f, t],
                _ => [t, None, None, t, t],
            };
            assert_eq!(flags, want, "epoch {}", i + 1);
            assert_eq!(x.trainable.cls_head, None);
        }
    }

    #[test]
    fn head_only_finetuning_freezes_all_but_the_heads_in_every_epoch() {
        let e = exp("[lock_release]\nenabled=false\n[finetune]\nfrom='x'\nmode='head_only'");
        let p = plan(&e, &[("a".to_string(), vec![Task::Cls, Task::Loc, Task::Seg])]);
        assert_eq!(p.len(), 6);
        for x in &p {
            assert_eq!((x.mode, x.fraction), (Mode::Release, 1.0));
            assert_eq!(x.trainable, trainable_for(x.task, Mode::Lock));
            assert_eq!(x.trainable.backbone, Some(false));
        }
    }

    #[test]
    fn switches() {
        let tasks = vec![("a".to_string(), vec![Task::Cls, Task::Loc])];
        let off = plan(&exp("[lock_release]\nenabled=false"), &tasks);
        assert!(off.iter().all(|x| x.mode == Mode::Release && x.fraction == 1.0));
        assert_eq!(off.len(), 4);
        let cls = plan(&exp("[lock_release]\nclassification=true"), &tasks);
        assert_eq!(cls[0].mode, Mode::Lock);
        assert_eq!(cls[0].trainable.backbone, Some(false));
        assert_eq!(cls.len(), 8);
    }

    #[test]
    fn plan_round_trips_through_json_exactly() {
        // Resume compares the recomputed plan with plan.json bit for bit; cosine factors must
        // survive JSON (serde_json's float_roundtrip feature).
        let mut e = exp("");
        e.train.cycles = 7;
        let p = plan(&e, &[("a".to_string(), vec![Task::Cls, Task::Seg])]);
        assert!(p.iter().any(|x| x.lr_factor != 1.0 && x.lr_factor != 0.05));
        let back: Vec<EpochPlan> = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
