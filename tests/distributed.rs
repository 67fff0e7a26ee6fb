//! Data-parallel training as a user runs it: `fx-tui EXP --nproc-per-node 2` on the CPU (c10d Gloo
//! on localhost) against one process with the global batch, a worker killed mid-run, and
//! `--resume`.

// The engine tests' tiny-experiment builder.
#[path = "../core/fx/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fx-tui"));
    // A test run under torchrun or srun must not make these workers ranks of that job.
    for v in ["WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID"] {
        c.env_remove(v);
    }
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Classification on two phantom sets (40 training images: the last global batch of 8 is
/// split 4 + 4, of 16 it is 8 + 0 — an empty slice on rank 1), swin_nano at 32 px. No stochastic
/// depth: its draws come from each process's generator, so ranks cannot reproduce one process's.
fn experiment(dir: &Path, name: &str, batch: usize, cycles: usize) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = common::Tiny::new(name, 5, &dir.join("runs").join(name))
        .set("model.image_size", "32")
        .set("train.batch_size", &batch.to_string())
        .set("train.cycles", &cycles.to_string())
        .set("train.log_every", "2")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.batch_size", "32")
        .set("eval.models", "[\"teacher\", \"student\"]")
        .dataset("phantom-cxp", "options = { train = 40, test = 32 }")
        .dataset("phantom-nih", "options = { train = 40, test = 32 }")
        .text();
    std::fs::write(&p, text).unwrap();
    p
}

fn run_dir(dir: &Path, name: &str) -> PathBuf {
    let parent = dir.join("runs").join(name);
    let runs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .map(|it| it.flatten().map(|e| e.path()).filter(|p| p.join("experiment.toml").exists()).collect())
        .unwrap_or_default();
    assert!(runs.len() <= 1, "{runs:?}");
    runs.first().cloned().unwrap_or_default()
}

/// (epoch, dataset, model) → value.
fn rows(run: &Path) -> Vec<((u64, String, String), f64)> {
    let mut out: Vec<((u64, String, String), f64)> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|r| {
            (
                (
                    r["epoch"].as_u64().unwrap(),
                    r["eval"]["dataset"].as_str().unwrap().to_string(),
                    r["model"].as_str().unwrap().to_string(),
                ),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The same metric rows. Summing a gradient in another order changes its last bits, and where the
/// true gradient is zero (the attention's key bias) AdamW turns that noise into small steps (in
/// PyTorch's DDP as well), which can flip the order of two test scores: one pair moves an AUC on
/// these 32 test images by ~0.2 points. So: at least three rows in four identical (to 1e-6), and
/// none further apart than one point.
fn assert_same_metrics(a: &Path, b: &Path, what: &str) {
    let (ra, rb) = (rows(a), rows(b));
    assert_eq!(ra.len(), rb.len(), "{what}: another number of metric rows");
    assert!(!ra.is_empty());
    let mut same = 0;
    for ((ka, va), (kb, vb)) in ra.iter().zip(&rb) {
        assert_eq!(ka, kb, "{what}");
        assert!((va - vb).abs() < 1.0, "{what}: {ka:?}: {va} vs {vb}");
        same += ((va - vb).abs() < 1e-6) as usize;
    }
    assert!(4 * same >= 3 * ra.len(), "{what}: only {same} of {} rows identical", ra.len());
}

fn last_checkpoint(run: &Path) -> PathBuf {
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
    run.join("checkpoints").join(last["dir"].as_str().unwrap())
}

/// Largest absolute difference between two checkpoints' tensors.
fn checkpoint_difference(a: &Path, b: &Path) -> f64 {
    let mut worst = 0.0f64;
    for f in ["student.safetensors", "teacher.safetensors"] {
        let ta = tch::Tensor::read_safetensors(a.join(f)).unwrap();
        let tb: std::collections::HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(b.join(f)).unwrap().into_iter().collect();
        assert_eq!(ta.len(), tb.len());
        for (name, x) in &ta {
            let y = &tb[name];
            let x = x.to_kind(tch::Kind::Double);
            let y = y.to_kind(tch::Kind::Double);
            let d = (&x - &y).abs().max().double_value(&[]);
            worst = worst.max(d);
        }
    }
    worst
}

#[test]
fn two_workers_with_half_the_batch_train_as_one_process_with_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let one = experiment(dir.path(), "one", 8, 2);
    let single = fx().args([one.to_str().unwrap(), "--headless"]).output().unwrap();
    assert!(single.status.success(), "{}", text(&single));
    let two = experiment(dir.path(), "two", 4, 2);
    let o = fx().args([two.to_str().unwrap(), "--headless", "--nproc-per-node", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (run_dir(dir.path(), "one"), run_dir(dir.path(), "two"));
    assert_same_metrics(&a, &b, "2 workers x 4 vs 1 x 8");
    // Summing in another order changes gradients in the last bits. Where the true gradient is
    // zero (the attention's key bias: softmax ignores a shift common to all keys) AdamW turns
    // that noise into steps of up to lr each, in any framework; 10 steps at lr 1e-3 bound it.
    let d = checkpoint_difference(&last_checkpoint(&a), &last_checkpoint(&b));
    assert!(d < 1e-2, "weights differ by up to {d}");
    // Rank 0 wrote the run; rank 1 only its log.
    let events = std::fs::read_to_string(b.join("events.jsonl")).unwrap();
    assert!(events.contains("\"distributed\"") && events.contains("global batch 8 = 4 per rank × 2"), "{events}");
    assert!(b.join("rank-1.log").exists());
    // The printed losses are the global batch's: those of the single process.
    let (l1, l2) = (losses(&single), losses(&o));
    assert_eq!(l1.len(), l2.len(), "{}", text(&o));
    assert!(l1.len() >= 10);
    for (x, y) in l1.iter().zip(&l2) {
        assert!((x - y).abs() < 1e-3, "loss {x} (1 process) vs {y} (2 workers)");
    }

    // With activation checkpointing a block's parameter gradients are computed inside its
    // recomputation and handed on: the exchange must take each once. The same job, to the bit.
    let recompute = experiment(dir.path(), "recompute", 4, 2);
    let toml = std::fs::read_to_string(&recompute).unwrap();
    assert!(toml.contains("[train]\n"));
    std::fs::write(&recompute, toml.replace("[train]\n", "[train]\nactivation_checkpointing = true\n")).unwrap();
    let o = fx().args([recompute.to_str().unwrap(), "--headless", "--nproc-per-node", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let c = run_dir(dir.path(), "recompute");
    assert_eq!(rows(&b), rows(&c), "2 workers with activation checkpointing");
    assert_eq!(checkpoint_difference(&last_checkpoint(&b), &last_checkpoint(&c)), 0.0);

    // A global batch of 16 over 40 images leaves rank 1 an empty slice in the last step.
    let uneven = experiment(dir.path(), "uneven", 8, 1);
    let o = fx().args([uneven.to_str().unwrap(), "--headless", "--nproc-per-node", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let whole = experiment(dir.path(), "whole", 16, 1);
    let o = fx().args([whole.to_str().unwrap(), "--headless"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same_metrics(&run_dir(dir.path(), "whole"), &run_dir(dir.path(), "uneven"), "2 workers x 8 vs 1 x 16");
}

/// Segmentation only (phantom-ptx, 14 training images at 32 px, a small UperNet): batch `batch`
/// per process; with 2 × 3 the last global batch (2 images) is split 2 + 0, so rank 1 runs the
/// stand-in step.
fn seg_experiment(dir: &Path, name: &str, batch: usize, sync_batchnorm: bool) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = common::Tiny::new(name, 5, &dir.join("runs").join(name))
        .set("model.image_size", "32")
        .set("model.ppm_channels", "16")
        .set("model.fpn_channels", "8")
        .set("train.batch_size", &batch.to_string())
        .set("train.cycles", "2")
        .set("train.log_every", "1")
        // With classification too, a seg Lock epoch leaves the student's cls path unchanged: its
        // score is carried over, a decision every rank must take alike (one all-reduce).
        .set("train.branches", "\"CS\"")
        .set("train.sync_batchnorm", &sync_batchnorm.to_string())
        .set("eval.batch_size", "32")
        .set("eval.models", "[\"teacher\", \"student\"]")
        .dataset("phantom-ptx", "options = { train = 14, test = 16 }")
        .text();
    std::fs::write(&p, text).unwrap();
    p
}

/// Largest absolute difference between the BatchNorm running statistics of two checkpoints.
fn running_statistics_difference(a: &Path, b: &Path) -> f64 {
    let mut worst = 0.0f64;
    for f in ["student.safetensors", "teacher.safetensors"] {
        let tb: std::collections::HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(b.join(f)).unwrap().into_iter().collect();
        for (name, x) in tch::Tensor::read_safetensors(a.join(f)).unwrap() {
            if name.contains(".running_") {
                worst = worst.max((&x - &tb[&name]).abs().max().double_value(&[]));
            }
        }
    }
    worst
}

/// The printed losses: the global batch's.
fn losses(o: &Output) -> Vec<f64> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(" loss ").nth(1))
        .map(|s| s.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn segmentation_with_sync_batchnorm_trains_as_one_process_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let one = seg_experiment(dir.path(), "one", 6, false);
    let single = fx().args([one.to_str().unwrap(), "--headless"]).output().unwrap();
    assert!(single.status.success(), "{}", text(&single));
    let run = |name: &str, sync: bool| {
        let exp = seg_experiment(dir.path(), name, 3, sync);
        let o = fx().args([exp.to_str().unwrap(), "--headless", "--nproc-per-node", "2"]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        o
    };
    let synced = run("synced", true);
    let local = run("local", false);
    // The pooled Dice's sums and SyncBatchNorm's statistics are the global batch's: the same
    // losses as one process, step by step (the last of each Release epoch with rank 1's stand-in).
    let (l1, l2) = (losses(&single), losses(&synced));
    assert_eq!(l1.len(), l2.len(), "{}", text(&synced));
    assert!(l1.len() >= 10);
    for (x, y) in l1.iter().zip(&l2) {
        assert!((x - y).abs() < 1e-3, "loss {x} (1 process) vs {y} (2 workers, sync_batchnorm)");
    }
    assert!(String::from_utf8_lossy(&synced.stdout).contains("(2 ranks: ") && l2.iter().all(|l| l.is_finite()));
    let carried = |o: &Output| String::from_utf8_lossy(&o.stdout).matches("(1 of 4 unchanged since").count();
    assert_eq!((carried(&single), carried(&synced)), (2, 2), "one carried-over score per seg Lock epoch");
    // Dice counts thresholded pixels: summing in another order moves a probability across 0.5
    // here and there (one pixel of these 16 test images is ~1e-4 points). Within 0.01 points.
    let (ra, rb) = (rows(&run_dir(dir.path(), "one")), rows(&run_dir(dir.path(), "synced")));
    assert_eq!(ra.len(), rb.len());
    for ((ka, va), (kb, vb)) in ra.iter().zip(&rb) {
        assert_eq!(ka, kb);
        assert!((va - vb).abs() < 0.01, "{ka:?}: {va} (1 process) vs {vb} (2 workers, sync_batchnorm)");
    }
    // The decoder's running statistics: the global batch's with sync_batchnorm, each rank's
    // slice's without (rank 0's, broadcast), which is visibly another thing.
    let base = last_checkpoint(&run_dir(dir.path(), "one"));
    let d_sync = running_statistics_difference(&base, &last_checkpoint(&run_dir(dir.path(), "synced")));
    let d_local = running_statistics_difference(&base, &last_checkpoint(&run_dir(dir.path(), "local")));
    assert!(d_sync < 1e-2, "running statistics with sync_batchnorm differ by {d_sync}");
    assert!(d_local > 0.1, "without sync_batchnorm the statistics should be rank 0's slice's: {d_local}");
    assert!(l1.iter().zip(losses(&local)).any(|(x, y)| (x - y).abs() > 1e-3));
}

/// Waits until the job's first epoch has written its metric rows (and `ready` holds) and returns
/// the run directory; fails if the job ends first, saying what it ended `before`.
fn after_first_epoch(dir: &Path, name: &str, job: &mut Child, before: &str, ready: impl Fn(&Path) -> bool) -> PathBuf {
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let r = run_dir(dir, name);
        if !r.as_os_str().is_empty() && ready(&r) && !rows(&r).is_empty() {
            return r;
        }
        assert!(t0.elapsed() < Duration::from_secs(240), "no epoch completed");
        assert!(job.try_wait().unwrap().is_none(), "the job ended before {before}");
    }
}

/// The workers the launcher started: (rank, pid), from each child's environment.
fn workers(launcher: u32) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid: u32 = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        if ppid != launcher {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        for var in env.split(|b| *b == 0) {
            if let Some(r) = var.strip_prefix(b"RANK=") {
                out.push((String::from_utf8_lossy(r).parse().unwrap(), pid));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_killed_worker_stops_the_job_with_its_rank_named_and_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "job", 4, 4);
    let mut launcher = fx()
        .args([exp.to_str().unwrap(), "--headless", "--nproc-per-node", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill rank 1 once the first epoch's rows are written.
    let run = after_first_epoch(dir.path(), "job", &mut launcher, "a worker could be killed", |_| true);
    let ws = workers(launcher.id());
    assert_eq!(ws.iter().map(|w| w.0).collect::<Vec<_>>(), vec![0, 1], "{ws:?}");
    unsafe {
        libc::kill(ws[1].1 as i32, libc::SIGKILL);
    }
    let killed = Instant::now();
    let o = launcher.wait_with_output().unwrap();
    let stopped_in = killed.elapsed();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("worker 1 of 2 failed (killed by signal 9)"), "{said}");
    assert!(said.contains("--resume"), "{said}");
    // Gloo sees the closed connection at once: far sooner than the 30-minute timeout.
    assert!(stopped_in < Duration::from_secs(60), "the job took {stopped_in:?} to stop");
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(events.contains("\"rank_failed\"") && events.contains("\"rank\":1"), "{events}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "failed", "{info}");
    let error = info["error"].as_str().unwrap();
    assert!(error.contains("a collective failed") && error.contains("rank 1 stopped reporting"), "{error}");

    // Resumed as a job of two again: it ends where one process with the global batch ends.
    let o = fx().args(["--resume", run.to_str().unwrap(), "--headless", "--nproc-per-node", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let straight = experiment(dir.path(), "straight", 8, 4);
    let o = fx().args([straight.to_str().unwrap(), "--headless"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same_metrics(&run_dir(dir.path(), "straight"), &run, "killed, resumed job vs one process");
}

/// The viewer's pause (through rank 0's control socket) holds every worker at the same step;
/// resume continues, and the job still ends where one process does.
#[test]
fn a_paused_job_holds_all_workers_and_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "held", 4, 3);
    let mut job = fx()
        .args([exp.to_str().unwrap(), "--headless", "--nproc-per-node", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let run =
        after_first_epoch(dir.path(), "held", &mut job, "it could be paused", |r| r.join("control.sock").exists());
    let ctl = |what: &str| {
        let o = fx().args(["ctl", run.to_str().unwrap(), what]).output().unwrap();
        assert!(o.status.success(), "ctl {what}: {}", text(&o));
    };
    ctl("pause");
    let status = || -> String {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap_or_default())
                .unwrap_or_default();
        info["status"].as_str().unwrap_or("").to_string()
    };
    while status() != "paused" {
        std::thread::sleep(Duration::from_millis(50));
        assert!(t0.elapsed() < Duration::from_secs(240), "the job never paused");
    }
    let (n, progress) = (rows(&run).len(), std::fs::read_to_string(run.join("progress.json")).unwrap());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rows(&run).len(), n, "a paused job went on evaluating");
    assert_eq!(std::fs::read_to_string(run.join("progress.json")).unwrap(), progress, "a paused job went on training");
    assert!(job.try_wait().unwrap().is_none());
    ctl("resume");
    let status = job.wait().unwrap();
    assert!(status.success());
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(events.contains("\"paused\"") && events.contains("\"resumed_training\""), "{events}");
    let straight = experiment(dir.path(), "straight", 8, 3);
    let o = fx().args([straight.to_str().unwrap(), "--headless"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same_metrics(&run_dir(dir.path(), "straight"), &run, "paused job vs one process");
}

/// A worker that hangs (SIGSTOP: alive, silent) makes the others fail after FX_DIST_TIMEOUT_S with
/// an error naming it; the launcher then ends it.
#[test]
fn a_frozen_worker_is_named_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "frozen", 4, 4);
    let mut launcher = fx()
        .args([exp.to_str().unwrap(), "--headless", "--nproc-per-node", "2"])
        // Long enough for two workers starting on a loaded 2-core machine to meet.
        .env(fx::dist::TIMEOUT_VAR, "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = after_first_epoch(dir.path(), "frozen", &mut launcher, "a worker could be frozen", |_| true);
    let ws = workers(launcher.id());
    unsafe {
        libc::kill(ws[1].1 as i32, libc::SIGSTOP);
    }
    let o = launcher.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let error = info["error"].as_str().unwrap_or_default();
    assert!(error.contains("rank 1 stopped reporting") && error.contains("frozen"), "{info}");
    // The frozen worker was ended, not left behind.
    assert!(
        std::fs::metadata(format!("/proc/{}", ws[1].1)).is_err() || {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", ws[1].1)).unwrap_or_default();
            stat.contains(") Z ")
        }
    );
}
