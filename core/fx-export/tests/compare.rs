//! `compare`: overlay charts, the config diff and the outcome table of several runs.

mod common;

use common::*;
use fx_export::{compare, parse_metric, CompareOptions};
use std::fs;
use std::path::{Path, PathBuf};

/// The (dataset, task) pairs of the fabricated runs, with their main metric.
const PAIRS: [(&str, &str, &str); 2] = [("phantom-cxp", "cls", "auc"), ("phantom-jsrt", "seg", "dice")];
/// Planned epochs: two cycles of the two pairs.
const PLAN: [(usize, usize, usize); 4] = [(1, 1, 0), (2, 1, 1), (3, 2, 0), (4, 2, 1)];

/// A run directory with `evaluated` of the 4 planned epochs evaluated (teacher always, student
/// when `student`), a secondary metric (dice_global) for the seg pair, and an experiment that
/// differs from the others in `seed` and `train.lr` (and in `name`, never compared).
fn make_run(dir: &Path, n: usize, seed: u64, lr: &str, evaluated: usize, student: bool) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let toml = format!(
        "name = \"run{n}\"\nseed = {seed}\noutput_dir = \"{}\"\n\n[train]\nbatch_size = 8\nlr = {lr}\n\n\
         [[datasets]]\nplugin = \"phantom-cxp\"\n\n[[datasets]]\nplugin = \"phantom-jsrt\"\n",
        dir.parent().unwrap().display()
    );
    fs::write(dir.join("experiment.toml"), toml).unwrap();
    fs::write(
        dir.join("run.json"),
        format!("{{\"status\":\"finished\",\"epochs_done\":{evaluated},\"epochs_total\":4}}"),
    )
    .unwrap();
    let plan: Vec<String> = PLAN
        .iter()
        .map(|&(e, c, p)| {
            format!(
                "{{\"epoch\":{e},\"cycle\":{c},\"dataset\":\"{}\",\"task\":\"{}\",\"mode\":\"Release\",\"fraction\":1.0}}",
                PAIRS[p].0, PAIRS[p].1
            )
        })
        .collect();
    fs::write(dir.join("plan.json"), format!("[{}]", plan.join(","))).unwrap();
    let mut lines = Vec::new();
    for &(epoch, cycle, trained) in &PLAN[..evaluated] {
        for (pi, &(d, t, metric)) in PAIRS.iter().enumerate() {
            let models: &[&str] = if student { &["teacher", "student"] } else { &["teacher"] };
            for (mi, model) in models.iter().enumerate() {
                // Not monotone, so the final value and the best focused one differ.
                let v = 50.0 + 3.0 * n as f64 + [4.0, 11.5, 7.25, 9.0][epoch - 1] + pi as f64 * 10.0 - mi as f64 * 1.5
                    + 0.123;
                let mut metrics = vec![(metric, v)];
                if t == "seg" {
                    metrics.push(("dice_global", v - 2.0));
                }
                for (m, v) in metrics {
                    lines.push(format!(
                        "{{\"epoch\":{epoch},\"cycle\":{cycle},\"trained\":{{\"dataset\":\"{}\",\"task\":\"{}\",\"mode\":\"Release\"}},\
                         \"eval\":{{\"dataset\":\"{d}\",\"task\":\"{t}\"}},\"model\":\"{model}\",\"metric\":\"{m}\",\
                         \"value\":{v},\"focused\":{},\"per_label\":{{}},\"wall_time\":1.0}}",
                        PAIRS[trained].0,
                        PAIRS[trained].1,
                        trained == pi
                    ));
                }
            }
        }
    }
    fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    dir.to_path_buf()
}

/// Three runs: a (seed 1, lr 0.001), b (seed 2, lr 0.001), c (seed 1, lr 0.002; 3 epochs evaluated,
/// no student rows).
fn three(tmp: &Path) -> Vec<PathBuf> {
    vec![
        make_run(&tmp.join("run-a"), 0, 1, "0.001", 4, true),
        make_run(&tmp.join("run-b"), 1, 2, "0.001", 4, true),
        make_run(&tmp.join("run-c"), 2, 1, "0.002", 3, false),
    ]
}

const LABELS: [&str; 3] = ["seed=1 lr=0.001", "seed=2 lr=0.001", "seed=1 lr=0.002"];

fn small() -> CompareOptions {
    CompareOptions { width: 640, height: 400, ..CompareOptions::default() }
}

fn file_names(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn writes_charts_config_diff_and_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = three(tmp.path());
    let out = tmp.path().join("cmp");
    let s = compare(&runs, &small(), &out).unwrap();

    // Default: the main metrics (not dice_global), the teacher.
    let want = [
        "compare-phantom-cxp-cls-auc-teacher.png",
        "compare-phantom-cxp-cls-auc-teacher.svg",
        "compare-phantom-jsrt-seg-dice-teacher.png",
        "compare-phantom-jsrt-seg-dice-teacher.svg",
        "config-diff.md",
        "compare.csv",
        "compare.md",
        "compare.tex",
    ];
    assert_eq!(file_names(&s.files), want);
    let mut sorted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(names(&out), sorted, "no temporary file may be left behind");
    assert_eq!(s.labels, LABELS);
    assert_eq!(s.runs, runs);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    for (d, t, m) in PAIRS {
        let stem = out.join(format!("compare-{d}-{t}-{m}-teacher"));
        let img = image::open(stem.with_extension("png")).unwrap();
        assert_eq!((img.width(), img.height()), (640, 400));
        // Every run's colour is in the picture (blue, vermillion, bluish green).
        let rgb = img.to_rgb8();
        for c in [[0x00, 0x72, 0xb2], [0xd5, 0x5e, 0x00], [0x00, 0x9e, 0x73]] {
            assert!(rgb.pixels().any(|p| p.0 == c), "{d} {t}: no pixel of {c:?}");
        }
        let svg = fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.contains(&format!("{d} · {t} ({m}, teacher)")), "title");
        for l in LABELS {
            assert!(svg.contains(l), "{d} {t}: no legend label {l:?}");
        }
        assert!(!svg.contains("(no rows)"));
        assert!(svg.contains("cycle 2"), "the first run's cycle boundary");
    }

    // The config diff: exactly the keys that differ (never name or output_dir), by directory.
    let md = fs::read_to_string(out.join("config-diff.md")).unwrap();
    let table: Vec<Vec<String>> = md
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(table[0], ["key", "run-a", "run-b", "run-c"]);
    assert_eq!(table[2..], [vec!["seed", "1", "2", "1"], vec!["train.lr", "0.001", "0.001", "0.002"]]);

    // The outcomes, computed here from the rows written.
    let (header, rows) = csv(&fs::read_to_string(out.join("compare.csv")).unwrap());
    assert_eq!(
        header,
        [
            "run",
            "dir",
            "dataset",
            "task",
            "metric",
            "model",
            "final",
            "final_epoch",
            "best_focused",
            "best_focused_epoch"
        ]
    );
    assert_eq!(rows.len(), PAIRS.len() * runs.len());
    let mut i = 0;
    for (d, t, m) in PAIRS {
        for (r, run) in runs.iter().enumerate() {
            let row = &rows[i];
            i += 1;
            let src = common::rows(run);
            assert_eq!(col(&header, row, "run"), LABELS[r]);
            assert_eq!(col(&header, row, "dir"), run.file_name().unwrap().to_str().unwrap());
            assert_eq!(
                [col(&header, row, "dataset"), col(&header, row, "task"), col(&header, row, "metric")],
                [d, t, m]
            );
            assert_eq!(col(&header, row, "model"), "teacher");
            let (epoch, value) = last_value(&src, d, t, m, "teacher").unwrap();
            assert_eq!(col(&header, row, "final").parse::<f64>().unwrap(), value, "{d} {t} run {r}");
            assert_eq!(col(&header, row, "final_epoch"), epoch.to_string());
            let (best, best_epoch) = best_focused(&src, d, t, m, "teacher").unwrap();
            assert_eq!(col(&header, row, "best_focused").parse::<f64>().unwrap(), best, "{d} {t} run {r}");
            assert_eq!(col(&header, row, "best_focused_epoch"), best_epoch.to_string());
        }
    }
    // The third run stopped at epoch 3; the cls pair's best focused epoch differs from its last.
    assert_eq!(col(&header, &rows[2], "final_epoch"), "3");
    assert_ne!(col(&header, &rows[0], "final"), col(&header, &rows[0], "best_focused"));

    let md = fs::read_to_string(out.join("compare.md")).unwrap();
    assert_eq!(md_rows(&md), 6);
    assert!(md.contains("| seed=1 lr=0.001 | run-a | phantom-cxp | cls | auc | teacher |"), "{md}");
    let tex = fs::read_to_string(out.join("compare.tex")).unwrap();
    assert_eq!(tex_rows(&tex), 6);
    assert!(tex.contains("\\multicolumn{2}{c}{best focused}"), "{tex}");
}

#[test]
fn student_chart_names_a_run_without_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = three(tmp.path());
    let out = tmp.path().join("cmp");
    let opts = CompareOptions {
        keys: vec![parse_metric("phantom-jsrt/seg/dice_global").unwrap()],
        model: Some("student".into()),
        ..small()
    };
    let s = compare(&runs, &opts, &out).unwrap();
    assert_eq!(
        file_names(&s.files)[..2],
        ["compare-phantom-jsrt-seg-dice_global-student.png", "compare-phantom-jsrt-seg-dice_global-student.svg"]
    );
    let svg = fs::read_to_string(&s.files[1]).unwrap();
    assert!(svg.contains("seed=1 lr=0.002 (no rows)"), "run-c evaluated no student");
    assert!(s.warnings.iter().any(|w| w.contains("run-c") && w.contains("no student rows")), "{:?}", s.warnings);

    let (header, rows) = csv(&fs::read_to_string(out.join("compare.csv")).unwrap());
    assert_eq!(rows.len(), 3);
    assert_eq!(col(&header, &rows[0], "metric"), "dice_global");
    assert_eq!(col(&header, &rows[0], "model"), "student");
    let src = common::rows(&runs[1]);
    let v: f64 = col(&header, &rows[1], "final").parse().unwrap();
    assert_eq!(v, last_value(&src, "phantom-jsrt", "seg", "dice_global", "student").unwrap().1);
    // Missing values are empty fields.
    assert_eq!([col(&header, &rows[2], "final"), col(&header, &rows[2], "best_focused_epoch")], ["", ""]);
}

#[test]
fn an_unknown_metric_key_is_named_with_the_available_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = three(tmp.path());
    let out = tmp.path().join("cmp");
    let opts = CompareOptions { keys: vec![parse_metric("phantom-nih/cls").unwrap()], ..small() };
    let e = compare(&runs, &opts, &out).unwrap_err().to_string();
    assert!(e.contains("phantom-nih/cls/auc"), "{e}");
    assert!(e.contains("phantom-cxp/cls/auc") && e.contains("phantom-jsrt/seg/dice_global"), "{e}");
    assert!(!out.exists(), "an error writes nothing");

    let e = compare(&runs, &CompareOptions { model: Some("ema".into()), ..small() }, &out).unwrap_err().to_string();
    assert!(e.contains("'ema'") && e.contains("teacher, student"), "{e}");
    let e = parse_metric("phantom-cxp").unwrap_err().to_string();
    assert!(e.contains("DATASET/TASK/METRIC"), "{e}");
}

#[test]
fn needs_two_run_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make_run(&tmp.path().join("run-a"), 0, 1, "0.001", 2, false);
    let out = tmp.path().join("cmp");
    let e = compare(std::slice::from_ref(&a), &small(), &out).unwrap_err().to_string();
    assert!(e.contains("at least two"), "{e}");
    let not_a_run = tmp.path().join("empty");
    fs::create_dir_all(&not_a_run).unwrap();
    let e = compare(&[a, not_a_run.clone()], &small(), &out).unwrap_err().to_string();
    assert!(e.contains(&not_a_run.display().to_string()) && e.contains("not an fx run directory"), "{e}");
    assert!(!out.exists());
}

#[test]
fn identical_experiments_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make_run(&tmp.path().join("run-a"), 0, 1, "0.001", 2, false);
    let b = make_run(&tmp.path().join("run-b"), 1, 1, "0.001", 2, false);
    let out = tmp.path().join("cmp");
    let s = compare(&[a, b], &small(), &out).unwrap();
    // Nothing differs but the name: the legend names the directories.
    assert_eq!(s.labels, ["run-a", "run-b"]);
    let md = fs::read_to_string(out.join("config-diff.md")).unwrap();
    assert!(md.contains("identical experiments apart from `name` and `output_dir`"), "{md}");
    assert!(!md.contains('|'), "{md}");
}
