//! `fx-tui plan`: the resolved experiment, its datasets, parameter counts and the epoch-by-epoch
//! schedule, without training.

use anyhow::{Context, Result};
use fx::config::Experiment;
use fx::group::Group;
use fx::registry::Registry;
use fx::schedule::EpochPlan;
use fx::train::{heads, open_datasets, swin_config, tasks_of};
use serde_json::json;
use std::path::Path;

fn flag(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "T",
        Some(false) => "F",
        None => "-",
    }
}

fn lr_of(exp: &Experiment, g: Group, p: &EpochPlan) -> Option<f64> {
    exp.optimizer.lr.of(g).map(|lr| lr * p.lr_factor)
}

pub fn print(path: &Path, set: &[String], as_json: bool, registry: &Registry) -> Result<()> {
    let exp = Experiment::load(path, set)?;
    let datasets = open_datasets(&exp, &path.display().to_string(), registry)?;
    let plan: Vec<EpochPlan> = fx::schedule::plan(&exp, &tasks_of(&datasets));
    let heads = heads(&exp, &datasets)?;
    let model = fx::model::Model::new(tch::Device::Cpu, &swin_config(&exp)?, &heads)?;
    let params = model.component_params();
    let total: i64 = params.iter().map(|(_, n)| n).sum();
    if as_json {
        let v = json!({
            "experiment": exp,
            "datasets": datasets.iter().map(|d| json!({
                "name": d.name,
                "description": d.dataset.desc().description,
                "tasks": d.tasks,
                "cls_labels": d.dataset.desc().cls_labels,
                "loc_labels": d.dataset.desc().loc_labels,
                "seg_labels": d.dataset.desc().seg_labels,
                "train": d.train.len(),
                "test": d.test.len(),
            })).collect::<Vec<_>>(),
            "cls_heads": model.cls_heads.iter().map(|(d, h)| (d.clone(), json!(h.spec))).collect::<serde_json::Map<_, _>>(),
            "seg_heads": heads.seg.iter().map(|(d, h)| (d.clone(), json!(h))).collect::<serde_json::Map<_, _>>(),
            "parameters": params.iter().map(|(k, v)| (k.clone(), json!(v))).chain([("total".to_string(), json!(total))]).collect::<serde_json::Map<_, _>>(),
            "schedule": plan.iter().map(|p| {
                let mut v = serde_json::to_value(p).unwrap();
                let lr: serde_json::Map<String, serde_json::Value> = Group::ALL.iter()
                    .filter(|g| g.trains_in(&p.trainable))
                    .filter_map(|g| lr_of(&exp, *g, p).map(|lr| (g.as_str().to_string(), json!(lr))))
                    .collect();
                v["lr"] = json!(lr);
                v
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("# experiment {} ({})\n", exp.name, path.display());
    println!("{}", toml::to_string(&exp).context("serialising the experiment")?);
    println!("# datasets");
    let w = datasets.iter().map(|d| d.name.len()).max().unwrap_or(7).max(7);
    println!("  {:w$}  {:11}  {:>6}  {:>6}  labels", "dataset", "tasks", "train", "test");
    for d in &datasets {
        let tasks: Vec<&str> = d.tasks.iter().map(|t| t.as_str()).collect();
        let labels: Vec<String> =
            d.tasks.iter().map(|t| format!("{t}: {}", d.dataset.desc().labels(*t).join(", "))).collect();
        println!(
            "  {:w$}  {:11}  {:>6}  {:>6}  {}",
            d.name,
            tasks.join(","),
            d.train.len(),
            d.test.len(),
            labels.join("; ")
        );
    }
    println!("\n# parameters ({})", exp.model.arch);
    for (k, v) in &params {
        // A head's kind or sizes beside its count.
        if let Some(h) = k.strip_prefix("cls_head.").and_then(|d| model.cls_heads.get(d)) {
            println!("  {k:40} {v:>12}  {}", h.spec.describe());
        } else if let Some(h) = k.strip_prefix("seg_head.").and_then(|d| heads.seg.get(d)) {
            println!("  {k:40} {v:>12}  {}", h.describe());
        } else if let Some(d) = k.strip_prefix("loc_decoder.").filter(|d| heads.loc.contains_key(*d)) {
            let c = heads.dino_of(d);
            println!(
                "  {k:40} {v:>12}  {} queries, {} layers, {} denoising",
                c.num_queries, c.decoder_layers, c.dn_number
            );
        } else {
            println!("  {k:40} {v:>12}");
        }
    }
    println!("  {:40} {total:>12}", "total");
    println!("\n# schedule: {} epochs in {} cycle(s)", plan.len(), exp.train.cycles);
    println!(
        "  {:>5} {:>5}  {:w$}  task  mode     data  backbone cls_head loc_enc loc_dec seg_dec seg_head  lr",
        "epoch", "cycle", "dataset"
    );
    for p in &plan {
        let t = &p.trainable;
        let lr: Vec<String> = Group::ALL
            .iter()
            .filter(|g| g.trains_in(t))
            .filter_map(|g| lr_of(&exp, *g, p).map(|lr| format!("{}={lr:.1e}", g.as_str())))
            .collect();
        println!(
            "  {:>5} {:>5}  {:w$}  {:4}  {:7}  {:4}  {:8} {:8} {:7} {:7} {:7} {:8}  {}",
            p.epoch,
            p.cycle,
            p.dataset,
            p.task.as_str(),
            p.mode.as_str(),
            if p.fraction >= 1.0 {
                "Full".to_string()
            } else if p.fraction == 0.5 {
                "Half".to_string()
            } else {
                format!("{:.2}", p.fraction)
            },
            flag(t.backbone),
            flag(t.cls_head),
            flag(t.loc_encoder),
            flag(t.loc_decoder),
            flag(t.seg_decoder),
            flag(t.seg_head),
            lr.join(" ")
        );
    }
    Ok(())
}
