//! The organ experiment (experiments/organs_ls.toml and its phantom twin) plans exactly the paper's
//! Table 8, row by row.
//!
//! fixtures/table8.json is typed by hand from the paper's Table 8: one object per printed row with
//! epoch, cycle, fraction (Data Size Half = 0.5, Full = 1.0), the Backbone/Loc.Enc/Loc.Dec/Seg.Dec/
//! Seg.Head flags as backbone/loc_encoder/loc_decoder/seg_decoder/seg_head (T = true, F = false,
//! "-" = null), mode ("Lock"/"Release"), task ("loc"/"seg") and dataset ("heart"/"left_lung"/"right_lung").

use fx::config::Experiment;
use fx::registry::Registry;
use fx::schedule::{self, EpochPlan, Mode};
use fx_plugin::Task;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    epoch: usize,
    cycle: usize,
    fraction: f64,
    backbone: Option<bool>,
    loc_encoder: Option<bool>,
    loc_decoder: Option<bool>,
    seg_decoder: Option<bool>,
    seg_head: Option<bool>,
    mode: Mode,
    task: Task,
    dataset: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn table8() -> Vec<Row> {
    let text = std::fs::read_to_string(repo().join("fixtures/table8.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The experiment's (dataset, tasks), by the names the experiment gives its datasets. Each dataset
/// is opened through the phantom plugins to prove it has labels for the tasks it asks for, and only
/// for its own organ.
fn tasks_of(exp: &Experiment, file: &str) -> Vec<(String, Vec<Task>)> {
    let registry = Registry::new(fx_phantom::plugins());
    exp.datasets
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let tasks = d.tasks.clone().unwrap_or_else(|| panic!("{file}: datasets[{i}] should list its tasks"));
            let ds = registry.open(file, i, d, None).unwrap();
            for &t in &tasks {
                assert_eq!(ds.desc().labels(t), [d.name().to_string()], "{file}: {} {t} labels", d.name());
            }
            (d.name().to_string(), tasks)
        })
        .collect()
}

fn plan_of(rel: &str) -> Vec<EpochPlan> {
    let exp = Experiment::load(&repo().join(rel), &[]).unwrap();
    schedule::plan(&exp, &tasks_of(&exp, rel))
}

/// Every field of every fixture row equals the plan's epoch of the same number in cycle 1.
fn assert_cycle1_is_table8(rel: &str, plan: &[EpochPlan]) {
    let rows = table8();
    assert_eq!(rows.len(), 12);
    let cycle1: Vec<&EpochPlan> = plan.iter().filter(|p| p.cycle == 1).collect();
    assert_eq!(cycle1.len(), rows.len(), "{rel}: cycle 1 has {} epochs, Table 8 {}", cycle1.len(), rows.len());
    for (r, p) in rows.iter().zip(cycle1) {
        let at = format!("{rel}: Table 8 epoch {}", r.epoch);
        assert_eq!(p.epoch, r.epoch, "{at}: epoch");
        assert_eq!(p.cycle, r.cycle, "{at}: cycle");
        assert_eq!(p.fraction, r.fraction, "{at}: data size");
        assert_eq!(p.trainable.backbone, r.backbone, "{at}: Backbone");
        assert_eq!(p.trainable.loc_encoder, r.loc_encoder, "{at}: Loc.Enc");
        assert_eq!(p.trainable.loc_decoder, r.loc_decoder, "{at}: Loc.Dec");
        assert_eq!(p.trainable.seg_decoder, r.seg_decoder, "{at}: Seg.Dec");
        assert_eq!(p.trainable.seg_head, r.seg_head, "{at}: Seg.Head");
        assert_eq!(p.trainable.cls_head, None, "{at}: no classification head on the path");
        assert_eq!(p.mode, r.mode, "{at}: mode");
        assert_eq!(p.task, r.task, "{at}: task");
        assert_eq!(p.dataset, r.dataset, "{at}: dataset");
    }
}

/// Later cycles, if the file asks for any, repeat cycle 1.
fn assert_cycles_repeat(rel: &str, plan: &[EpochPlan]) {
    let n = table8().len();
    assert_eq!(plan.len() % n, 0, "{rel}: {} epochs is not a whole number of Table 8 cycles", plan.len());
    let key = |p: &EpochPlan| (p.dataset.clone(), p.task, p.mode, p.fraction, p.trainable);
    for (i, p) in plan.iter().enumerate().skip(n) {
        assert_eq!(p.cycle, i / n + 1, "{rel}: epoch {}", p.epoch);
        assert_eq!(key(p), key(&plan[i % n]), "{rel}: epoch {}", p.epoch);
    }
}

#[test]
fn organs_ls_plans_table8() {
    let rel = "experiments/organs_ls.toml";
    let plan = plan_of(rel);
    assert_cycle1_is_table8(rel, &plan);
    assert_cycles_repeat(rel, &plan);
}

#[test]
fn phantom_twin_plans_the_same_schedule() {
    let rel = "experiments/phantom/organs_ls.toml";
    let plan = plan_of(rel);
    assert_cycle1_is_table8(rel, &plan);
    assert_eq!(plan, plan_of("experiments/organs_ls.toml"), "the twin's schedule differs from the paper-sized file's");
}
