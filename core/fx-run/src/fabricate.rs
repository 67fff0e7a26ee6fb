//! Run directories at the paper's scale, fabricated for benchmarks and tests of the readers:
//! 11 datasets and 20 (dataset, task) pairs as in `experiments/cls_loc_seg.toml`, the paper's
//! 29-epoch cycle (each cls pair one Release epoch, each loc/seg pair a Lock and a Release epoch),
//! teacher and student evaluated on every pair after every epoch, secondary metrics, per-label
//! values. 20 cycles = 580 epochs and 40,600 metric rows. Values follow smooth, deterministic
//! learning curves with a bump on focused epochs, so charts look like training.

use crate::records::{Evaluated, Event, MetricRow, RunInfo, Trained};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// (dataset, tasks, labels) of the paper's pretraining datasets.
pub const DATASETS: [(&str, &[&str], usize); 11] = [
    ("chexpert", &["cls"], 14),
    ("nih14", &["cls"], 14),
    ("vindr_cxr", &["cls"], 6),
    ("shenzhen", &["cls"], 1),
    ("mimic", &["cls"], 14),
    ("tbx11k", &["cls", "loc"], 3),
    ("node21", &["cls", "loc"], 1),
    ("rsna", &["cls", "loc"], 1),
    ("candid", &["cls", "loc", "seg"], 1),
    ("chestx_det", &["cls", "loc", "seg"], 13),
    ("siim", &["cls", "loc", "seg"], 1),
];

/// What [`run`] wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fabricated {
    pub epochs: usize,
    pub pairs: usize,
    pub metric_rows: usize,
    pub metrics_bytes: u64,
}

/// A small deterministic generator (xorshift64*), so runs are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn metrics_of(task: &str) -> &'static [&'static str] {
    match task {
        "loc" => &["map40", "ap50", "ap40_95"],
        "seg" => &["dice", "dice_global"],
        _ => &["auc"],
    }
}

/// Writes a finished run of `cycles` cycles into `dir` (created; files replaced).
pub fn run(dir: &Path, name: &str, cycles: usize, per_label: bool, seed: u64) -> Result<Fabricated> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut toml = format!("name = \"{name}\"\nseed = {seed}\ndevice = \"cuda\"\noutput_dir = \"runs\"\n\n[model]\narch = \"swin_base\"\nimage_size = 224\n\n[train]\ncycles = {cycles}\nbatch_size = 24\n");
    let mut pairs: Vec<(&str, &str, usize)> = Vec::new();
    for (d, tasks, labels) in DATASETS {
        toml.push_str(&format!(
            "\n[[datasets]]\nplugin = \"{d}\"\nname = \"{d}\"\ntasks = [{}]\n",
            tasks.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
        ));
        for t in tasks {
            pairs.push((d, t, labels));
        }
    }
    crate::write_atomic(&dir.join(crate::files::EXPERIMENT), toml.as_bytes())?;

    // The plan: per cycle, every pair in order; loc and seg pairs get a Lock epoch first.
    let mut plan = Vec::new();
    for c in 1..=cycles {
        for (d, t, _) in &pairs {
            let modes: &[&str] = if *t == "cls" { &["Release"] } else { &["Lock", "Release"] };
            for m in modes {
                plan.push((plan.len() + 1, c, *d, *t, *m));
            }
        }
    }
    let plan_json: Vec<serde_json::Value> = plan
        .iter()
        .map(|(e, c, d, t, m)| serde_json::json!({ "epoch": e, "cycle": c, "dataset": d, "task": t, "mode": m, "fraction": 1.0 }))
        .collect();
    crate::write_atomic(&dir.join(crate::files::PLAN), serde_json::to_string(&plan_json)?.as_bytes())?;

    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(crate::files::METRICS))?);
    let mut rows = 0;
    let epochs = plan.len();
    for &(epoch, cycle, pd, pt, mode) in &plan {
        let trained = Trained { dataset: pd.into(), task: pt.into(), mode: mode.into() };
        for (pi, (d, t, labels)) in pairs.iter().enumerate() {
            let focused = *d == pd && *t == pt;
            for model in ["teacher", "student"] {
                for (mi, metric) in metrics_of(t).iter().enumerate() {
                    let ceiling = 70.0 + (pi % 7) as f64 * 3.0 - mi as f64 * 12.0;
                    let progress = 1.0 - (-(epoch as f64) / (epochs as f64 / 4.0)).exp();
                    let lag = if model == "teacher" { 0.0 } else { 1.5 };
                    let bump = if focused { 2.0 } else { 0.0 };
                    let value =
                        (25.0 + (ceiling - 25.0) * progress + bump - lag + (rng.next() - 0.5) * 3.0).clamp(0.0, 100.0);
                    let per = if per_label && *labels > 1 && mi == 0 {
                        (0..*labels)
                            .map(|l| (format!("label_{l:02}"), (value + (rng.next() - 0.5) * 10.0).clamp(0.0, 100.0)))
                            .collect()
                    } else {
                        Default::default()
                    };
                    let row = MetricRow {
                        epoch,
                        cycle,
                        trained: trained.clone(),
                        eval: Evaluated { dataset: (*d).into(), task: (*t).into() },
                        model: model.into(),
                        metric: (*metric).into(),
                        value,
                        focused,
                        per_label: per,
                        wall_time: epoch as f64 * 600.0,
                    };
                    serde_json::to_writer(&mut out, &row)?;
                    out.write_all(b"\n")?;
                    rows += 1;
                }
            }
        }
    }
    out.flush()?;
    drop(out);
    let events: Vec<Event> = (1..=cycles)
        .map(|c| Event {
            time: "2026-11-01T00:00:00+00:00".into(),
            level: "info".into(),
            kind: "cycle".into(),
            message: format!("cycle {c} done"),
            data: serde_json::Value::Null,
        })
        .collect();
    std::fs::remove_file(dir.join(crate::files::EVENTS)).ok();
    crate::append_lines(&dir.join(crate::files::EVENTS), &events)?;
    let info = RunInfo {
        status: "finished".into(),
        pid: 1,
        host: "gpu".into(),
        started: "2026-11-01T00:00:00+00:00".into(),
        heartbeat: "2026-11-05T00:00:00+00:00".into(),
        device: "cuda:0".into(),
        epochs_done: epochs,
        epochs_total: epochs,
        fingerprint: "fabricated".into(),
        error: None,
        world_size: 0,
    };
    crate::write_atomic(&dir.join(crate::files::RUN), serde_json::to_string_pretty(&info)?.as_bytes())?;
    let metrics_bytes = std::fs::metadata(dir.join(crate::files::METRICS))?.len();
    Ok(Fabricated { epochs, pairs: pairs.len(), metric_rows: rows, metrics_bytes })
}
