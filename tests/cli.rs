//! End-to-end tests of the fx-tui binary as a user runs it: plan, bad input, a tiny training run,
//! kill -9 and resume, feature extraction.

// The engine tests' tiny-experiment builder.
#[path = "../core/fx/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn fx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fx-tui"))
}

fn run(args: &[&str]) -> Output {
    fx().args(args).output().expect("fx-tui runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A tiny experiment: swin_nano at 32 px, two phantom datasets of 48 training images.
fn tiny(dir: &Path, cycles: usize, extra: &str) -> PathBuf {
    let p = dir.join("tiny.toml");
    let text = common::Tiny::new("tiny", 3, &dir.join("runs"))
        .set("model.image_size", "32")
        .unset("model.drop_path")
        .set("train.batch_size", "16")
        .set("train.cycles", &cycles.to_string())
        .set("train.log_every", "2")
        .set("train.workers", "2")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.batch_size", "32")
        .raw(extra)
        .dataset("phantom-cxp", "options = { train = 48, test = 32 }")
        .dataset("phantom-nih", "name = \"nih\"\noptions = { train = 48, test = 32, corrupt = 0.1 }")
        .text();
    std::fs::write(&p, text).unwrap();
    p
}

fn only_run(dir: &Path) -> PathBuf {
    // Run directories hold experiment.toml (the preprocessing cache's folder does not).
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("experiment.toml").exists())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn metric_rows(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn plan_prints_schedule_and_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 2, "");
    let o = run(&["plan", exp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("# schedule: 4 epochs in 2 cycle(s)"), "{t}");
    assert!(t.contains("cls_head.nih"), "{t}");
    let o = run(&["plan", exp.to_str().unwrap(), "--format", "json", "--set", "train.cycles=3"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sched = v["schedule"].as_array().unwrap();
    assert_eq!(sched.len(), 6);
    assert_eq!(sched[1]["dataset"], "nih");
    assert_eq!(sched[1]["mode"], "Release");
    assert_eq!(sched[1]["trainable"]["backbone"], true);
    // The fixture's 574,286 at 64 px, less the relative-position tables that shrink with the
    // clamped windows at 32 px (stage 2: 3×3 instead of 7×7 rows, stage 3: 1×1 instead of 3×3).
    assert_eq!(v["parameters"]["backbone"], 574286 - 2 * (49 - 9) * 4 - 2 * (9 - 1) * 8);
    assert_eq!(v["parameters"]["cls_head.nih"], 128 * 3 + 3);
    // Nothing is trained by plan.
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 1, "");
    let good = std::fs::read_to_string(&exp).unwrap();
    let write = |s: &str| {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, s).unwrap();
        p
    };
    // Malformed TOML: file, line and column.
    let p = write(&good.replace("arch = \"swin_nano\"", "arch = \"swin_nano"));
    let o = run(&[p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let line = good.lines().position(|l| l.starts_with("arch = ")).unwrap() + 1;
    assert!(text(&o).contains(&format!("bad.toml:{line}:")), "{}", text(&o));
    // Unknown key with a suggestion.
    let p = write(&good.replace("batch_size = 16", "batch_sise = 16"));
    let t = text(&run(&[p.to_str().unwrap()]));
    assert!(t.contains("unknown field `batch_sise`") && t.contains("did you mean `batch_size`"), "{t}");
    // Unknown plugin.
    let p = write(&good.replace("plugin = \"phantom-cxp\"", "plugin = \"phantom-cpx\""));
    let t = text(&run(&[p.to_str().unwrap()]));
    assert!(t.contains("unknown plugin `phantom-cpx`") && t.contains("did you mean `phantom-cxp`"), "{t}");
    // Missing dataset root.
    let p = write(&good.replace("name = \"nih\"", "name = \"nih\"\nroot = \"/nonexistent/nih\""));
    let t = text(&run(&[p.to_str().unwrap()]));
    assert!(t.contains("datasets[1] (nih)") && t.contains("/nonexistent/nih") && t.contains("does not exist"), "{t}");
    // A task the dataset has no labels for.
    let p = write(&good.replace("name = \"nih\"", "name = \"nih\"\ntasks = [\"loc\"]"));
    let t = text(&run(&[p.to_str().unwrap()]));
    assert!(t.contains("task `loc` requested"), "{t}");
    // Missing file.
    let t = text(&run(&["/nonexistent/exp.toml"]));
    assert!(t.contains("/nonexistent/exp.toml") && t.contains("cannot read"), "{t}");
    // None of these created a run.
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn tiny_run_writes_the_run_store() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 2, "");
    let o = run(&[exp.to_str().unwrap(), "--headless", "--set", "seed=5"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("img/s") && t.contains("ETA"), "{t}");
    assert!(t.contains("sample") && t.contains("skipped"), "bad samples are reported: {t}");
    let run_dir = only_run(dir.path());
    for f in ["experiment.toml", "plan.json", "run.json", "metrics.jsonl", "events.jsonl", "checkpoints/last.json"] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
    let snapshot = std::fs::read_to_string(run_dir.join("experiment.toml")).unwrap();
    assert!(snapshot.contains("seed = 5"), "the stored config has the override: {snapshot}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "finished");
    assert_eq!(info["epochs_done"], 4);
    let rows = metric_rows(&run_dir);
    // 4 epochs × 2 datasets × (teacher, student).
    assert_eq!(rows.len(), 16);
    for r in &rows {
        let focused = r["trained"]["dataset"] == r["eval"]["dataset"] && r["trained"]["task"] == r["eval"]["task"];
        assert_eq!(r["focused"].as_bool().unwrap(), focused);
        let v = r["value"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&v), "{v}");
    }
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(events.contains("sample_skipped") && events.contains("simulated corrupt sample"), "{events}");
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("checkpoints/last.json")).unwrap()).unwrap();
    let ck = run_dir.join("checkpoints").join(last["dir"].as_str().unwrap());
    for f in ["student.safetensors", "teacher.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ck.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(run_dir.join("predictions/teacher-phantom-cxp-cls.csv")).unwrap();
    assert!(csv.starts_with("id,label_cardiomegaly,label_effusion,label_consolidation,score_cardiomegaly"), "{csv}");
    assert_eq!(csv.lines().count(), 33);
}

/// kill -9 in the middle of training, then --resume: every epoch's rows exactly once, and the same
/// values as an uninterrupted run with the same seed (all RNG streams derive from seed and epoch).
#[test]
fn kill_9_then_resume_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 3, "");
    let mut child =
        fx().args([exp.to_str().unwrap(), "--headless"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let run_dir = loop {
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(mut it) = std::fs::read_dir(dir.path().join("runs")) {
            if let Some(Ok(e)) = it.next() {
                break e.path();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no run directory appeared");
    };
    // Wait until the second epoch is complete, then kill without warning.
    while metric_rows(&run_dir).iter().filter(|r| r["epoch"] == 2).count() < 4 {
        std::thread::sleep(Duration::from_millis(20));
        assert!(t0.elapsed() < Duration::from_secs(240), "training made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the trainer ended before it could be killed");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run(&["--resume", run_dir.to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = metric_rows(&run_dir);
    let mut keys: Vec<(u64, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["epoch"].as_u64().unwrap(),
                r["eval"]["dataset"].as_str().unwrap().into(),
                r["model"].as_str().unwrap().into(),
            )
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicated rows");
    assert_eq!(n, 6 * 2 * 2, "lost rows");
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(events.contains("\"resumed\""), "{events}");

    // The same experiment without interruption gives the same numbers.
    let dir2 = tempfile::tempdir().unwrap();
    let exp2 = tiny(dir2.path(), 3, "");
    assert!(run(&[exp2.to_str().unwrap(), "--headless"]).status.success());
    let straight = metric_rows(&only_run(dir2.path()));
    let value = |rows: &[serde_json::Value], e: u64, d: &str, m: &str| {
        rows.iter().find(|r| r["epoch"] == e && r["eval"]["dataset"] == d && r["model"] == m).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    for (e, d, m) in &keys {
        let (a, b) = (value(&rows, *e, d, m), value(&straight, *e, d, m));
        assert!((a - b).abs() < 1e-6, "epoch {e} {d} {m}: resumed {a} vs straight {b}");
    }
}

#[test]
fn features_from_timm_weights_match_timm() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    let o = run(&[
        "features",
        "--weights",
        fixtures().join("swin/weights_timm_old.safetensors").to_str().unwrap(),
        "--arch",
        "swin_nano",
        "--out",
        out.to_str().unwrap(),
        fixtures().join("swin/io.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("timm<=0.6") && t.contains("pooled") && t.contains("[2, 128]"), "{t}");
    let got = tch::Tensor::read_safetensors(&out).unwrap();
    let io = tch::Tensor::read_safetensors(fixtures().join("swin/io.safetensors")).unwrap();
    let find = |v: &[(String, tch::Tensor)], n: &str| v.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
    let d = (find(&got, "pooled") - find(&io, "pooled")).abs().max().double_value(&[]);
    assert!(d < 1e-4, "pooled differs from timm by {d}");
    let s3 = find(&got, "stage3");
    assert_eq!(s3.size(), [2, 128, 2, 2], "stages are NCHW");
    // Image inputs: two PNGs of different sizes are resized to --image-size.
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    image::GrayImage::from_fn(80, 70, |x, y| image::Luma([((x * y) % 256) as u8])).save(&a).unwrap();
    image::GrayImage::from_fn(40, 50, |x, _| image::Luma([(x * 6) as u8])).save(&b).unwrap();
    let o = run(&[
        "features",
        "--weights",
        fixtures().join("swin/weights_timm_new.safetensors").to_str().unwrap(),
        "--arch",
        "swin_nano",
        "--image-size",
        "64",
        "--out",
        out.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // A corrupt image is named.
    std::fs::write(&b, b"not an image").unwrap();
    let o = run(&[
        "features",
        "--weights",
        fixtures().join("swin/weights_timm_new.safetensors").to_str().unwrap(),
        "--arch",
        "swin_nano",
        "--image-size",
        "64",
        "--out",
        out.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("b.png"), "{}", text(&o));
}

/// Branch selection (Foundation X-C/-S/...) and a sweep over the Table 10 switches.
#[test]
fn branches_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 1, "");
    // "C" only: phantom-ptx's seg task is left out; "S" only: only datasets with masks remain.
    let o = run(&["plan", exp.to_str().unwrap(), "--format", "json", "--set", "train.branches=\"C\""]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["schedule"].as_array().unwrap().iter().all(|e| e["task"] == "cls"));
    let o = run(&["plan", exp.to_str().unwrap(), "--set", "train.branches=\"S\""]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no dataset has a task in the selected branches"), "{}", text(&o));
    let o = run(&["plan", exp.to_str().unwrap(), "--set", "train.branches=\"CX\""]);
    assert!(text(&o).contains("train.branches must be letters"), "{}", text(&o));
    // A sweep runs each combination as its own run, then reports only the keys that differ.
    let o = run(&[
        "sweep",
        exp.to_str().unwrap(),
        "--grid",
        "student_teacher=true,false",
        "--seeds",
        "3,4",
        "--set",
        "datasets.1.options.corrupt=0.0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(runs.len(), 6, "four runs, the report and the sweep's state: {runs:?}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/tiny-sweep.json")).unwrap()).unwrap();
    assert_eq!((state["status"].as_str(), state["total"].as_u64()), (Some("finished"), Some(4)));
    // Two seeds per cell: one row per cell, each metric as mean ± std over its seeds.
    let md = std::fs::read_to_string(dir.path().join("runs/tiny-sweep-report/ablation.md")).unwrap();
    assert!(md.contains("student_teacher.enabled") && !md.contains("lock_release.enabled"), "{md}");
    assert_eq!(md.lines().filter(|l| l.starts_with("| tiny-")).count(), 2, "{md}");
    assert!(md.contains(" ± ") && md.contains("| 3 4 | 2 |"), "{md}");
}

/// A second trainer on a run that is being trained is refused with a pointer to `attach`.
#[test]
fn resume_refuses_a_run_with_a_live_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 300, "");
    let mut child =
        fx().args([exp.to_str().unwrap(), "--headless"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let run_dir = loop {
        std::thread::sleep(Duration::from_millis(50));
        let found = std::fs::read_dir(dir.path().join("runs")).ok().and_then(|mut it| it.next()).and_then(|e| e.ok());
        if let Some(e) = found {
            if e.path().join("run.json").exists() {
                break e.path();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no run started");
    };
    let o = run(&["--resume", run_dir.to_str().unwrap(), "--headless"]);
    // The control socket: owner-only, bounded, never echoing, one slow client blocks nobody.
    let sock = run_dir.join("control.sock");
    while !sock.exists() {
        std::thread::sleep(Duration::from_millis(20));
        assert!(t0.elapsed() < Duration::from_secs(60), "no control socket");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&run_dir).unwrap().permissions().mode() & 0o777, 0o700);
    let _slow = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let ping = run(&["ctl", run_dir.to_str().unwrap(), "ping"]);
    assert!(text(&ping).contains("pong"), "{}", text(&ping));
    let ask = |req: &[u8]| -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(req);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    };
    assert!(ask(&vec![b'x'; 100_000]).contains("request too long"));
    let r = ask(b"bogus-XYZ\n");
    assert!(r.contains("unknown command") && !r.contains("XYZ"), "{r}");
    // Another local user cannot stop the run (this project's machines run everything as root,
    // so the test can become `nobody`).
    {
        use std::os::unix::process::CommandExt;
        let mut other = fx();
        other.args(["ctl", run_dir.to_str().unwrap(), "stop"]);
        // SAFETY: setuid/setgid between fork and exec.
        unsafe {
            other.pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // (Where nobody may not even execute the binary, the attempt fails earlier: just as well.)
        if let Ok(o) = other.output() {
            assert!(!o.status.success(), "nobody stopped the run: {}", text(&o));
        }
        let ping = run(&["ctl", run_dir.to_str().unwrap(), "ping"]);
        assert!(text(&ping).contains("pong"), "the trainer still runs: {}", text(&ping));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("is being trained by") && text(&o).contains("fx-tui attach"), "{}", text(&o));
}

/// `fx-tui add RUN FILE` checks the datasets against the run, then queues them for the trainer.
#[test]
fn add_checks_datasets_and_queues_them() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 1, "");
    let o = run(&[exp.to_str().unwrap(), "--headless", "--set", "datasets.1.options.corrupt=0.0"]);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = std::fs::read_dir(dir.path().join("runs")).unwrap().flatten().next().unwrap().path();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let clash = write("clash.toml", "[[datasets]]\nname = \"nih\"\nplugin = \"phantom-nih\"\n");
    let t = text(&run(&["add", run_dir.to_str().unwrap(), clash.to_str().unwrap()]));
    assert!(t.contains("clash.toml") && t.contains("already in the run"), "{t}");
    let loc = write("loc.toml", "[[datasets]]\nplugin = \"phantom-node\"\n");
    let t = text(&run(&["add", run_dir.to_str().unwrap(), loc.to_str().unwrap()]));
    assert!(t.contains("loc.toml") && t.contains("no loc branch"), "{t}");
    let typo = write("typo.toml", "[[datasets]]\nplugin = \"phantom-tbx\"\noptionz = {}\n");
    let t = text(&run(&["add", run_dir.to_str().unwrap(), typo.to_str().unwrap()]));
    assert!(t.contains("typo.toml") && t.contains("optionz"), "{t}");
    let good = write(
        "good.toml",
        "[[datasets]]\nplugin = \"phantom-tbx\"\ntasks = [\"cls\"]\noptions = { train = 32, test = 16 }\n",
    );
    let o = run(&["add", run_dir.to_str().unwrap(), good.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("queued 1 dataset"), "{}", text(&o));
    let pending: Vec<_> = std::fs::read_dir(run_dir.join("pending")).unwrap().flatten().collect();
    assert_eq!(pending.len(), 1);
}

/// The issue's wording, literally: `fx-tui plan experiments/organs_ls.toml --format json` equals
/// Table 8 (fixtures/table8.json, typed by hand from the paper).
#[test]
fn plan_json_of_organs_ls_equals_table8() {
    let exp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../experiments/organs_ls.toml");
    let o = run(&["plan", exp.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = v["schedule"].as_array().unwrap();
    let table8: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("table8.json")).unwrap()).unwrap();
    assert_eq!(plan.len(), table8.len());
    for (p, t) in plan.iter().zip(&table8) {
        for k in ["epoch", "cycle", "fraction", "mode", "task", "dataset"] {
            assert_eq!(p[k], t[k], "epoch {}: {k}", t["epoch"]);
        }
        for k in ["backbone", "loc_encoder", "loc_decoder", "seg_decoder", "seg_head"] {
            assert_eq!(p["trainable"][k], t[k], "epoch {}: {k}", t["epoch"]);
        }
        assert!(p["trainable"]["cls_head"].is_null());
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fx-tui data` run from the repository root, where fixtures/datasets/experiment.toml's roots are.
fn data(args: &[&str]) -> Output {
    fx().current_dir(repo()).arg("data").arg("fixtures/datasets/experiment.toml").args(args).output().unwrap()
}

fn jsonl(bytes: &[u8]) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    v.sort_by_key(|x| (x["dataset"].as_str().unwrap().to_string(), x["id"].as_str().unwrap().to_string()));
    v
}

#[test]
fn data_jsonl_equals_what_the_published_layouts_hold() {
    // RSNA (DICOM, JPEG baseline), NODE21 (.mha) and TBX11K (COCO over RGB PNG), as
    // scripts/make_dataset_fixtures.py wrote them and computed their lines independently.
    let o = data(&["--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    let got = jsonl(&o.stdout);
    let mut want = Vec::new();
    for d in ["rsna-pneumonia", "node21", "coco-tbx"] {
        want.extend(jsonl(
            &std::fs::read(repo().join("fixtures/datasets").join(d).join("expected-files.jsonl")).unwrap(),
        ));
    }
    want.sort_by_key(|x| (x["dataset"].as_str().unwrap().to_string(), x["id"].as_str().unwrap().to_string()));
    assert_eq!(got.len(), 29, "{}", text(&o));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // The row whose image is missing is named on stderr, not silently dropped.
    assert!(String::from_utf8_lossy(&o.stderr).contains("ea749407-588c-5937-b86c-aef4757b15f7"), "{}", text(&o));
    // --split filters by the official split (COCO) and by fx's drawn one (box CSVs: split null).
    let o = data(&["--format", "jsonl", "--dataset", "tbx", "--split", "val"]);
    let val = jsonl(&o.stdout);
    assert_eq!(val.len(), 4);
    assert!(val.iter().all(|v| v["split"] == "val" && v["dataset"] == "tbx"));
    let o = data(&["--format", "jsonl", "--dataset", "node21", "--split", "test"]);
    assert!(jsonl(&o.stdout).iter().all(|v| v["split"].is_null()));
    let o = data(&["--dataset", "nope"]);
    assert!(!o.status.success() && text(&o).contains("no dataset named `nope`"), "{}", text(&o));
}

#[test]
fn data_text_warns_and_check_exits_1_on_an_unreadable_image() {
    let o = data(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    for want in [
        "dataset rsna (plugin box-csv",
        "split drawn by fx",
        "split as published",
        "1 image(s) named by the label files are missing on disk",
        "b2b18eb5-71a9-5634-bfed-b2012e2cca9d.dcm",
        "not used by this dataset",
        "ObsoletePulmonaryTuberculosis",
        "pneumonia",
    ] {
        assert!(t.contains(want), "`{want}` missing in:\n{t}");
    }
    let o = data(&["--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("1 of 30 images are unreadable") && e.contains("ea749407-588c-5937-b86c-aef4757b15f7.dcm"),
        "{e}"
    );
    let o = data(&["--check", "--dataset", "tbx", "--dataset", "node21"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn prepare_fills_the_cache_and_training_reads_dicom_and_metaimage() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("output_dir={}", dir.path().join("runs").display());
    let o = fx()
        .current_dir(repo())
        .args(["prepare", "fixtures/datasets/experiment.toml", "--set", &out])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("prepared 29 of 30 images"), "{}", text(&o));
    let entries = |d: &Path| -> Vec<PathBuf> {
        let mut v = Vec::new();
        for sub in std::fs::read_dir(d).unwrap().flatten() {
            v.extend(std::fs::read_dir(sub.path()).unwrap().flatten().map(|e| e.path()));
        }
        v
    };
    let cache = dir.path().join("runs/cache");
    let before = entries(&cache);
    assert_eq!(before.len(), 29);
    // One cycle on the three formats: the missing DICOM is skipped and counted, the others train
    // from the cache (no new entry appears).
    let o = fx()
        .current_dir(repo())
        .args(["fixtures/datasets/experiment.toml", "--headless", "--set", &out, "--set", "device=cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("run finished") && text(&o).contains("bad samples skipped"), "{}", text(&o));
    assert_eq!(entries(&cache).len(), 29);
}

/// `experiments/cls_loc_seg.toml` — the paper's 11 pretraining datasets through their plugin
/// libraries — pointed at the miniature official layouts of fixtures/datasets, at toy size.
fn paper_args(out: &Path) -> Vec<String> {
    let roots = [
        "chexpert",
        "nih-cxr14",
        "vindr-cxr",
        "shenzhen",
        "mimic-cxr",
        "tbx11k",
        "node21",
        "rsna-pneumonia",
        "candid-ptx",
        "chestx-det",
        "siim-acr",
    ];
    let mut sets: Vec<String> =
        roots.iter().enumerate().map(|(i, r)| format!("datasets.{i}.root=\"fixtures/datasets/{r}\"")).collect();
    for s in [
        "model.arch=\"swin_nano\"",
        "model.image_size=64",
        "model.ppm_channels=16",
        "model.fpn_channels=8",
        "model.dino.hidden_dim=32",
        "model.dino.heads=4",
        "model.dino.points=2",
        "model.dino.encoder_layers=1",
        "model.dino.decoder_layers=2",
        "model.dino.ffn_dim=64",
        "model.dino.num_queries=12",
        "model.dino.dn_number=6",
        "model.dino.num_select=20",
        "model.dino.gn_groups=8",
        "train.batch_size=4",
        "train.cycles=1",
        "device=\"cpu\"",
    ] {
        sets.push(s.to_string());
    }
    sets.push(format!("output_dir=\"{}\"", out.display()));
    sets.into_iter().flat_map(|s| ["--set".to_string(), s]).collect()
}

#[test]
fn the_papers_eleven_datasets_are_listed_and_train_one_cycle_from_their_official_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let args = paper_args(&dir.path().join("runs"));
    let o = fx().current_dir(repo()).args(["data", "experiments/cls_loc_seg.toml"]).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    let names = [
        "chexpert",
        "nih14",
        "vindr_cxr",
        "shenzhen",
        "mimic_cxr",
        "tbx11k",
        "node21",
        "rsna_pneumonia",
        "candid_ptx",
        "chestx_det",
        "siim_acr",
    ];
    for n in names {
        assert!(t.contains(&format!("dataset {n} (plugin ")), "{n} missing in\n{t}");
    }
    let o = fx().current_dir(repo()).args(["experiments/cls_loc_seg.toml", "--headless"]).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = only_run(dir.path());
    // Every (dataset, task) of the plan was evaluated: a metric row, or — on a test split of a
    // few images — an event saying why the metric is undefined.
    let plan: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(run.join("plan.json")).unwrap()).unwrap();
    let rows = metric_rows(&run);
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let mut pairs: Vec<(String, String)> = plan
        .iter()
        .map(|p| (p["dataset"].as_str().unwrap().to_string(), p["task"].as_str().unwrap().to_string()))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 20, "{pairs:?}");
    for (d, task) in &pairs {
        let has_row = rows.iter().any(|r| r["eval"]["dataset"] == *d && r["eval"]["task"] == *task);
        let undefined = events.lines().any(|l| l.contains("_undefined") && l.contains(&format!("\"{d}: ")));
        assert!(has_row || undefined, "{d}/{task}: neither a metric row nor an undefined-metric event");
    }
    assert!(rows.len() >= 16 * 29, "{} rows", rows.len());
}

/// The finetuning experiments read their 5 datasets (VinDr-CXR lesions, CheXmask over VinDr-CXR,
/// VinDr-RibCXR, Montgomery, JSRT) from the miniature official layouts.
#[test]
fn the_finetuning_experiments_read_their_datasets() {
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "experiments/finetune_vindr_lesions.toml",
            &["datasets.0.root=\"fixtures/datasets/vindr-cxr\""],
            &["Nodule/Mass", "Aortic enlargement"],
        ),
        (
            "experiments/organs_ls_chexmask.toml",
            &[
                "datasets.0.root=\"fixtures/datasets/chexmask\"",
                "datasets.1.root=\"fixtures/datasets/chexmask\"",
                "datasets.2.root=\"fixtures/datasets/chexmask\"",
                "datasets.0.options.images=\"VinDr-CXR\"",
                "datasets.1.options.images=\"VinDr-CXR\"",
                "datasets.2.options.images=\"VinDr-CXR\"",
            ],
            &["dataset heart (plugin chexmask", "dataset right_lung (plugin chexmask", "Left Lung"],
        ),
        (
            "experiments/finetune/vindr_ribcxr.toml",
            &["datasets.0.root=\"fixtures/datasets/vindr-ribcxr\""],
            &["R10", "L1 "],
        ),
        (
            "experiments/finetune/montgomery.toml",
            &["datasets.0.root=\"fixtures/datasets/montgomery\""],
            &["Right Lung"],
        ),
        (
            "experiments/finetune/jsrt.toml",
            &["datasets.0.root=\"fixtures/datasets/jsrt\"", "datasets.0.options.raw={ width = 60, height = 50 }"],
            &["left clavicle", "heart"],
        ),
    ];
    for (exp, sets, want) in cases {
        let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        let o = fx().current_dir(repo()).args(["data", exp]).args(&args).output().unwrap();
        assert!(o.status.success(), "{exp}: {}", text(&o));
        let t = String::from_utf8_lossy(&o.stdout);
        for w in want {
            assert!(t.contains(w), "{exp}: `{w}` missing in\n{t}");
        }
    }
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// predict on the DICOM (RSNA) and MetaImage (NODE21) fixtures gives what the run's own
/// evaluation gave for the same test images; export-model → predict round-trips; the exported
/// backbone keeps timm's names and values (features equal timm's on the committed fixture).
#[test]
fn predict_equals_the_evaluation_and_an_exported_model_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("output_dir=\"{}\"", dir.path().join("runs").display());
    // Backbone from the timm fixture, frozen by a zero learning rate: the exported backbone must
    // still be timm's tensors.
    let sets = [
        out.as_str(),
        "device=\"cpu\"",
        "data.cache=false",
        "model.weights=\"fixtures/swin/weights_timm_new.safetensors\"",
        "optimizer.lr.backbone=0.0",
    ];
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    let o = fx()
        .current_dir(repo())
        .args(["fixtures/datasets/experiment.toml", "--headless"])
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = only_run(dir.path());
    let preds = dir.path().join("pred");
    // The RSNA test images, as the run's evaluation scored them.
    let eval = csv_rows(&run.join("predictions/teacher-rsna-cls.csv"));
    let ids: Vec<String> = eval[1..].iter().map(|r| r[0].clone()).collect();
    assert!(!ids.is_empty());
    let files: Vec<String> =
        ids.iter().map(|id| format!("fixtures/datasets/rsna-pneumonia/stage_2_train_images/{id}.dcm")).collect();
    let node21_gt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("predictions/teacher-node21-loc-ground_truth.json")).unwrap(),
    )
    .unwrap();
    let node21_file = node21_gt["images"][0]["file_name"].as_str().unwrap().to_string();
    let node21_path = format!("fixtures/datasets/node21/cxr_images/proccessed_data/images/{node21_file}");
    let mut cmd = vec![
        "predict".to_string(),
        run.display().to_string(),
        "--out".into(),
        preds.display().to_string(),
        "--threshold".into(),
        "0".into(),
    ];
    cmd.extend(files.iter().cloned());
    cmd.push(node21_path.clone());
    let o = fx().current_dir(repo()).args(&cmd).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got = csv_rows(&preds.join("cls/rsna.csv"));
    assert_eq!(got[0][1], "pneumonia");
    for (id, row) in ids.iter().zip(&eval[1..]) {
        let p = got.iter().find(|r| r[0].contains(id.as_str())).unwrap_or_else(|| panic!("{id} not predicted"));
        let (a, b): (f64, f64) = (p[1].parse().unwrap(), row[2].parse().unwrap());
        assert!((a - b).abs() < 1e-4, "{id}: predict {a} vs evaluation {b}");
    }
    // NODE21 (.mha): the best detection of the first test image, in original pixels.
    let eval_dets: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(run.join("predictions/teacher-node21-loc-detections.json")).unwrap(),
    )
    .unwrap();
    let first = eval_dets
        .iter()
        .filter(|d| d["image_id"] == node21_gt["images"][0]["id"])
        .max_by(|a, b| a["score"].as_f64().partial_cmp(&b["score"].as_f64()).unwrap())
        .unwrap();
    let images: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(preds.join("loc/images.json")).unwrap()).unwrap();
    let img = images.iter().find(|i| i["file_name"].as_str().unwrap().ends_with(&node21_file)).unwrap();
    let dets: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(preds.join("loc/node21-detections.json")).unwrap()).unwrap();
    let best = dets
        .iter()
        .filter(|d| d["image_id"] == img["id"])
        .max_by(|a, b| a["score"].as_f64().partial_cmp(&b["score"].as_f64()).unwrap())
        .unwrap();
    assert!((best["score"].as_f64().unwrap() - first["score"].as_f64().unwrap()).abs() < 1e-4, "{best} vs {first}");
    for k in 0..4 {
        let (a, b) = (best["bbox"][k].as_f64().unwrap(), first["bbox"][k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-2, "{best} vs {first}");
    }
    // Overlays at the original size.
    let ov = image::open(preds.join("overlays").join(format!("{}.png", node21_file.trim_end_matches(".mha")))).unwrap();
    assert_eq!(
        (ov.width(), ov.height()),
        (img["width"].as_u64().unwrap() as u32, img["height"].as_u64().unwrap() as u32)
    );

    // export-model → predict gives the same scores; the backbone is timm's.
    let model = dir.path().join("fx-model.safetensors");
    let o = run_in_repo(&["export-model", run.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let again = dir.path().join("pred2");
    let mut cmd2 = vec![
        "predict".to_string(),
        model.display().to_string(),
        "--out".into(),
        again.display().to_string(),
        "--tasks".into(),
        "cls".into(),
    ];
    cmd2.extend(files.iter().cloned());
    let o = fx().current_dir(repo()).args(&cmd2).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // (Equal up to float rounding: the batches differ — this run predicts cls only.)
    let back = csv_rows(&again.join("cls/rsna.csv"));
    assert_eq!(back.len(), files.len() + 1);
    for (a, b) in back[1..].iter().zip(&got[1..]) {
        assert_eq!(a[0], b[0]);
        assert!((a[1].parse::<f64>().unwrap() - b[1].parse::<f64>().unwrap()).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    let feats = dir.path().join("f.safetensors");
    let o = run_in_repo(&[
        "features",
        "--weights",
        model.to_str().unwrap(),
        "--arch",
        "swin_nano",
        "--out",
        feats.to_str().unwrap(),
        "fixtures/swin/io.safetensors",
    ]);
    assert!(o.status.success() && !text(&o).contains("not part of the backbone"), "{}", text(&o));
    let f = tch::Tensor::read_safetensors(&feats).unwrap();
    let io = tch::Tensor::read_safetensors(fixtures().join("swin/io.safetensors")).unwrap();
    let find = |v: &[(String, tch::Tensor)], n: &str| v.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
    let d = (find(&f, "pooled") - find(&io, "pooled")).abs().max().double_value(&[]);
    assert!(d < 1e-4, "the exported backbone's features differ from timm's by {d}");
    // export also draws a gallery: one grid of overlays per dataset, from its test images.
    let report = dir.path().join("report");
    let o = run_in_repo(&["export", run.to_str().unwrap(), "--out", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for d in ["rsna", "node21", "tbx"] {
        let g = image::open(report.join("gallery").join(format!("{d}.png")))
            .unwrap_or_else(|e| panic!("{d}: {e}\n{}", text(&o)));
        assert!(g.width() >= 256, "{d}");
    }
    // Errors: no such run, a safetensors without a model card outside a run, an unknown dataset.
    let o = run_in_repo(&["predict", "runs/no-such-run", "fixtures/images/png_gray8.png"]);
    assert!(!o.status.success() && text(&o).contains("no such run directory"), "{}", text(&o));
    let o = run_in_repo(&["predict", "fixtures/swin/weights_timm_new.safetensors", "fixtures/images/png_gray8.png"]);
    assert!(!o.status.success() && text(&o).contains("neither an fx model file"), "{}", text(&o));
    let o = run_in_repo(&["predict", model.to_str().unwrap(), "fixtures/images/png_gray8.png", "--dataset", "nope"]);
    assert!(!o.status.success() && text(&o).contains("no head for dataset `nope`"), "{}", text(&o));
}

fn run_in_repo(args: &[&str]) -> Output {
    fx().current_dir(repo()).args(args).output().unwrap()
}

/// Argument ranges of `features` and shapes of its tensor input are named errors, not panics;
/// a closed stdout never makes a command panic.
#[test]
fn bad_feature_arguments_and_a_closed_pipe_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    let w = fixtures().join("swin/weights_timm_new.safetensors");
    for size in ["0", "-64", "65536"] {
        let o = run(&[
            "features",
            "--weights",
            w.to_str().unwrap(),
            "--arch",
            "swin_nano",
            &format!("--image-size={size}"),
            "--out",
            out.to_str().unwrap(),
            fixtures().join("images/png_gray8.png").to_str().unwrap(),
        ]);
        assert!(
            !o.status.success()
                && text(&o).contains("--image-size must be a multiple of 32")
                && !text(&o).contains("panicked"),
            "{}",
            text(&o)
        );
    }
    let t = dir.path().join("t.safetensors");
    tch::Tensor::write_safetensors(
        &[("input", tch::Tensor::zeros([1, 3, 64, 32], (tch::Kind::Float, tch::Device::Cpu)))],
        &t,
    )
    .unwrap();
    let o = run(&[
        "features",
        "--weights",
        w.to_str().unwrap(),
        "--arch",
        "swin_nano",
        "--out",
        out.to_str().unwrap(),
        t.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && text(&o).contains("(N, 3, S, S)") && !text(&o).contains("panicked"), "{}", text(&o));
    // stdout closed before the command writes.
    let mut child =
        fx().arg("plugins").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `make stress`: a cls + loc + seg run with teacher and student, killed with SIGKILL at random
/// moments (FX_STRESS_KILLS times, default 20) and resumed each time, ends with exactly the
/// metric rows and byte-identical checkpoints of the same run trained without interruption.
#[test]
#[ignore = "long: run by `make stress`"]
fn stress_kill_9_and_resume_reproduce_the_straight_run() {
    let kills: usize = std::env::var("FX_STRESS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let extra = r#"
[model.dino]
hidden_dim = 32
heads = 4
points = 2
encoder_layers = 1
decoder_layers = 2
ffn_dim = 64
num_queries = 12
dn_number = 6
num_select = 20
gn_groups = 8
"#;
    let with_ptx = |dir: &Path| -> PathBuf {
        let p = tiny(
            dir,
            3,
            &format!("{extra}\n[[datasets]]\nplugin = \"phantom-ptx\"\noptions = {{ train = 32, test = 16 }}\n"),
        );
        let text = std::fs::read_to_string(&p).unwrap().replace("image_size = 32", "image_size = 64");
        std::fs::write(&p, text).unwrap();
        p
    };
    let clean = |run: &Path| -> Vec<serde_json::Value> {
        metric_rows(run)
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("wall_time");
                r
            })
            .collect()
    };
    let a = tempfile::tempdir().unwrap();
    let o = run(&[with_ptx(a.path()).to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", text(&o));
    let straight = only_run(a.path());
    let b = tempfile::tempdir().unwrap();
    let exp = with_ptx(b.path());
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut done = false;
    let mut killed = 0;
    let mut first = true;
    while !done {
        let mut cmd = fx();
        if first {
            cmd.args([exp.to_str().unwrap(), "--headless"]);
        } else {
            cmd.args(["--resume", only_run(b.path()).to_str().unwrap(), "--headless"]);
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        first = false;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_millis(300 + rng % 2500);
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a run ended with {status}");
                done = true;
                break;
            }
            if killed < kills && t0.elapsed() >= wait {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let resumed = only_run(b.path());
    let (x, y) = (clean(&straight), clean(&resumed));
    assert_eq!(x.len(), y.len(), "rows lost or duplicated after {killed} kills");
    let differ = x.iter().zip(&y).filter(|(p, q)| p != q).count();
    assert_eq!(differ, 0, "{differ} of {} rows differ after {killed} kills", x.len());
    let last = |run: &Path| -> PathBuf {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
        run.join("checkpoints").join(v["dir"].as_str().unwrap())
    };
    for f in ["student.safetensors", "teacher.safetensors", "optimizer.safetensors"] {
        assert!(
            std::fs::read(last(&straight).join(f)).unwrap() == std::fs::read(last(&resumed).join(f)).unwrap(),
            "{f} differs"
        );
    }
    eprintln!("stress: {killed} kills, {} rows, 0 lost, 0 duplicated, 0 different", x.len());
}

/// A plugin library run in its own process (`plugin_isolation = "process"`) that aborts while
/// loading a sample takes only that process down: it is restarted a bounded number of times, then
/// its dataset is disabled (its samples skipped and counted) while the other datasets train on.
#[test]
fn a_crashing_isolated_plugin_leaves_the_trainer_running() {
    let dir = tempfile::tempdir().unwrap();
    let lib = repo().join("target/release/libfx_stripes.so");
    assert!(lib.is_file(), "{} (built by make setup)", lib.display());
    let exp = dir.path().join("crash.toml");
    std::fs::write(
        &exp,
        format!(
            r#"
name = "crash"
device = "cpu"
output_dir = "{out}"
plugins = ["{lib}"]
plugin_isolation = "process"
[model]
arch = "swin_nano"
image_size = 64
[train]
batch_size = 8
cycles = 5
[eval]
models = ["teacher"]
[[datasets]]
plugin = "stripes"
tasks = ["cls"]
options = {{ train = 24, test = 8, abort_on = "train-0003" }}
[[datasets]]
plugin = "phantom-cxp"
options = {{ train = 16, test = 8 }}
"#,
            out = dir.path().join("runs").display(),
            lib = lib.display()
        ),
    )
    .unwrap();
    let o = run(&[exp.to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the plugin process died") && text(&o).contains("restarting it (1/3)"), "{}", text(&o));
    let run_dir = only_run(dir.path());
    let rows = metric_rows(&run_dir);
    assert!(rows.iter().any(|r| r["eval"]["dataset"] == "phantom-cxp"), "the other dataset trained and was evaluated");
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(events.contains("sample_skipped") && events.contains("train-0003"), "{events}");
    // Crashing in every one of its 5 epochs: after 3 restarts the dataset is disabled.
    assert!(events.contains("disabled for the rest of the run"), "{events}");
    assert!(rows.iter().filter(|r| r["eval"]["dataset"] == "phantom-cxp").count() >= 10);
}

/// A headless sweep whose stdout was closed finishes every run, its state and its report.
#[test]
fn a_sweep_with_a_closed_stdout_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 1, "");
    let mut child = fx()
        .args([
            "sweep",
            exp.to_str().unwrap(),
            "--headless",
            "--grid",
            "student_teacher=true,false",
            "--set",
            "datasets.1.options.corrupt=0.0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{err}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/tiny-sweep.json")).unwrap()).unwrap();
    assert_eq!(state["status"], "finished");
    assert!(dir.path().join("runs/tiny-sweep-report/ablation.md").is_file());
}

/// A disk that refuses the checkpoint (here: a file-size limit, as a full disk refuses writes)
/// ends the run as "failed" with the reason in run.json — never a run left "running" — and
/// nothing half-written is taken for a checkpoint.
#[test]
fn a_refused_checkpoint_write_marks_the_run_failed_with_the_reason() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny(dir.path(), 2, "");
    let mut cmd = fx();
    cmd.args([exp.to_str().unwrap(), "--headless"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: 512 * 1024, rlim_max: 512 * 1024 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let run = only_run(dir.path());
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "failed", "{info}");
    assert!(info.to_string().contains("safetensors") || info.to_string().contains("File too large"), "{info}");
    assert!(!run.join("checkpoints/last.json").exists(), "a checkpoint that was never written is not pointed at");
}
