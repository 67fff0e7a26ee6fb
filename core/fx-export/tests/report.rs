//! `report`: the ablation table across runs.

mod common;

use common::*;
use fx_export::report;
use std::fs;
use std::path::{Path, PathBuf};

/// A copy of a fixture run with experiment.toml edited by `edit`.
fn variant(fx: &str, dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    copy_run(&fixture(fx), dir);
    let p = dir.join("experiment.toml");
    let text = fs::read_to_string(&p).unwrap();
    let new = edit(text.clone());
    fs::write(&p, new).unwrap();
    dir.to_path_buf()
}

fn replace(text: String, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in experiment.toml");
    text.replacen(from, to, 1)
}

#[test]
fn shows_exactly_the_switches_that_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let a = variant("finished", &tmp.path().join("a"), |t| t);
    let b = variant("finished", &tmp.path().join("b"), |t| {
        let t = replace(t, "[student_teacher]\nenabled = true", "[student_teacher]\nenabled = false");
        let t = replace(t, "classification = false", "classification = true");
        // Where a run was written and what it is called are never switches.
        let t = replace(t, "output_dir = \"/tmp/viewer-runs\"", "output_dir = \"/elsewhere\"");
        replace(t, "name = \"demo\"", "name = \"no-ema\"")
    });
    let out = tmp.path().join("report");
    let s = report(&[a.clone(), b.clone()], &out).unwrap();
    assert_eq!(s.differing, ["lock_release.classification", "student_teacher.enabled"]);
    assert_eq!(s.runs, ["demo", "no-ema"]);
    assert_eq!(names(&out), ["ablation.csv", "ablation.md", "ablation.tex"]);

    let (header, rows) = csv(&fs::read_to_string(out.join("ablation.csv")).unwrap());
    assert_eq!(&header[..3], ["run", "lock_release.classification", "student_teacher.enabled"]);
    assert_eq!(header[3], "model");
    assert!(header[4].contains('/'), "metric columns follow the switches and the model: {header:?}");
    assert_eq!(rows[0][..3], ["demo", "false", "true"]);
    assert_eq!(rows[1][..3], ["no-ema", "true", "false"]);

    let md = fs::read_to_string(out.join("ablation.md")).unwrap();
    let md_header = md.lines().find(|l| l.starts_with('|')).unwrap();
    assert!(
        md_header.starts_with("| run | lock_release.classification | student_teacher.enabled | model | phantom-cxp cls auc |"),
        "{md_header}"
    );
    assert!(!md.contains("output_dir") && !md.contains("seed"));
    assert_eq!(md_rows(&md), 2);
    let tex = fs::read_to_string(out.join("ablation.tex")).unwrap();
    assert_eq!(tex_rows(&tex), 2);
    assert!(tex.contains("lock\\_release.classification & student\\_teacher.enabled"), "{tex}");
}

#[test]
fn values_are_the_final_teacher_values_with_their_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let runs = [fixture("finished"), fixture("seg")];
    let s = report(&runs, &out).unwrap();
    // Different experiments: many keys differ (datasets, decoder widths...), never output_dir.
    assert!(s.differing.iter().any(|k| k.starts_with("datasets.3")), "{:?}", s.differing);
    assert!(s.differing.iter().all(|k| k != "output_dir" && k != "name"));
    // Same experiment name: the directory names tell the rows apart.
    assert_eq!(s.runs, ["demo (finished)", "demo (seg)"]);

    let (header, rows) = csv(&fs::read_to_string(out.join("ablation.csv")).unwrap());
    for (i, run) in runs.iter().enumerate() {
        let src = common::rows(run);
        // The paper's metric of each (dataset, task); secondary metrics stay in the run's export.
        for (d, t, m) in keys(&src).into_iter().filter(|(_, t, m)| m == fx_view::facts::default_metric(t)) {
            let v: f64 = col(&header, &rows[i], &format!("{d}/{t}/{m}")).parse().unwrap();
            assert_eq!(v, last_value(&src, &d, &t, &m, "teacher").unwrap().1, "{d} {t} {m}");
        }
    }
    // The organs are only in the second run: an empty cell in the first.
    assert_eq!(col(&header, &rows[0], "phantom-organs/seg/dice"), "");
    // The mean covers the main metric of the pairs both runs have: the three cls sets.
    for (i, run) in runs.iter().enumerate() {
        let src = common::rows(run);
        let want = ["phantom-cxp", "phantom-nih", "phantom-tbx"]
            .iter()
            .map(|d| last_value(&src, d, "cls", "auc", "teacher").unwrap().1)
            .sum::<f64>()
            / 3.0;
        let got: f64 = col(&header, &rows[i], "mean").parse().unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    let md = fs::read_to_string(out.join("ablation.md")).unwrap();
    assert!(md.contains("**"), "the best of each column is bold");
    assert!(md.contains("3 (dataset, task) pair(s)"), "{md}");
}

#[test]
fn a_run_without_a_teacher_reports_its_student() {
    let tmp = tempfile::tempdir().unwrap();
    let a = variant("finished", &tmp.path().join("a"), |t| t);
    let b = variant("finished", &tmp.path().join("b"), |t| {
        replace(t, "[student_teacher]\nenabled = true", "[student_teacher]\nenabled = false")
    });
    // Run b never had a teacher: only its student rows exist.
    let m = b.join("metrics.jsonl");
    let kept: Vec<String> = fs::read_to_string(&m).unwrap().lines().filter(|l| !l.contains("\"teacher\"")).map(String::from).collect();
    fs::write(&m, kept.join("\n") + "\n").unwrap();
    let out = tmp.path().join("r");
    report(&[a, b.clone()], &out).unwrap();
    let (header, rows) = csv(&fs::read_to_string(out.join("ablation.csv")).unwrap());
    assert_eq!((col(&header, &rows[0], "model"), col(&header, &rows[1], "model")), ("teacher", "student"));
    let src = common::rows(&b);
    let v: f64 = col(&header, &rows[1], "phantom-cxp/cls/auc").parse().unwrap();
    assert_eq!(v, last_value(&src, "phantom-cxp", "cls", "auc", "student").unwrap().1);
    assert!(!col(&header, &rows[1], "mean").is_empty());
}

#[test]
fn one_run_or_identical_configs_have_no_switch_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r1");
    let s = report(&[fixture("finished")], &out).unwrap();
    assert!(s.differing.is_empty());
    let (header, rows) = csv(&fs::read_to_string(out.join("ablation.csv")).unwrap());
    assert_eq!(header[0], "run");
    assert_eq!(header[1], "model");
    assert_eq!(header[2], "phantom-cxp/cls/auc");
    assert!(!header.iter().any(|h| h.ends_with("dice_global")), "{header:?}");
    assert_eq!(rows.len(), 1);

    let a = variant("finished", &tmp.path().join("a"), |t| t);
    let b = variant("finished", &tmp.path().join("b"), |t| {
        replace(t, "output_dir = \"/tmp/viewer-runs\"", "output_dir = \"x\"")
    });
    let s = report(&[a, b], &tmp.path().join("r2")).unwrap();
    assert!(s.differing.is_empty(), "{:?}", s.differing);
    assert_eq!(s.runs, ["demo (a)", "demo (b)"]);
}

#[test]
fn a_run_without_experiment_toml_shows_its_switches_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = variant("finished", &tmp.path().join("a"), |t| t);
    let b = variant("finished", &tmp.path().join("b"), |t| t);
    fs::remove_file(b.join("experiment.toml")).unwrap();
    let s = report(&[a, b], &tmp.path().join("r")).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("experiment.toml missing")), "{:?}", s.warnings);
    assert!(s.differing.contains(&"student_teacher.enabled".to_string()));
    // The name falls back to the directory's.
    assert_eq!(s.runs, ["demo", "b"]);
    let (header, rows) = csv(&fs::read_to_string(tmp.path().join("r/ablation.csv")).unwrap());
    assert_eq!(col(&header, &rows[1], "student_teacher.enabled"), "-");
}
