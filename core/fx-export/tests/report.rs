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
        md_header.starts_with(
            "| run | lock_release.classification | student_teacher.enabled | model | phantom-cxp cls auc |"
        ),
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
        for (d, t, m) in keys(&src).into_iter().filter(|(_, t, m)| m == fx_run::facts::default_metric(t)) {
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
    let kept: Vec<String> =
        fs::read_to_string(&m).unwrap().lines().filter(|l| !l.contains("\"teacher\"")).map(String::from).collect();
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

/// A copy of the finished fixture run with every metric value shifted by `offset` (a seed's
/// result), its seed and student-teacher switch set.
fn seeded(dir: &Path, seed: u64, student_teacher: bool, offset: f64) -> PathBuf {
    let d = variant("finished", dir, |t| {
        let t = replace(t, "seed = 7", &format!("seed = {seed}"));
        if student_teacher {
            t
        } else {
            replace(t, "[student_teacher]\nenabled = true", "[student_teacher]\nenabled = false")
        }
    });
    let p = d.join("metrics.jsonl");
    let rows: Vec<String> = fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["value"] = serde_json::json!(v["value"].as_f64().unwrap() + offset);
            v.to_string()
        })
        .collect();
    fs::write(&p, rows.join("\n") + "\n").unwrap();
    d
}

#[test]
fn runs_differing_only_in_seed_become_one_row_with_mean_and_std() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = vec![
        seeded(&tmp.path().join("a0"), 0, true, 0.0),
        seeded(&tmp.path().join("a1"), 1, true, 1.0),
        seeded(&tmp.path().join("a2"), 2, true, 3.0),
        seeded(&tmp.path().join("b0"), 0, false, 0.5),
        seeded(&tmp.path().join("b1"), 1, false, 2.5),
    ];
    let out = tmp.path().join("report");
    let s = report(&runs, &out).unwrap();
    assert_eq!(s.differing, ["student_teacher.enabled"]);
    let (header, rows) = csv(&fs::read_to_string(out.join("ablation.csv")).unwrap());
    assert_eq!(&header[..5], ["run", "student_teacher.enabled", "seeds", "n", "model"]);
    assert!(header[5].ends_with("_mean") && header[6].ends_with("_std"), "{header:?}");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1..4], ["true", "0 1 2", "3"]);
    assert_eq!(rows[1][1..4], ["false", "0 1", "2"]);
    // The same base value v in every run: means v + mean(offsets), stds those of the offsets.
    // Reference: numpy 2.4, np.std([0, 1, 3], ddof=1) and np.std([0.5, 2.5], ddof=1).
    let base = fx_view_final(&runs[0], &header[5]);
    let (m0, s0): (f64, f64) = (rows[0][5].parse().unwrap(), rows[0][6].parse().unwrap());
    let (m1, s1): (f64, f64) = (rows[1][5].parse().unwrap(), rows[1][6].parse().unwrap());
    assert!((m0 - (base + 1.3333333333333333)).abs() < 1e-9, "{m0} vs {base}");
    assert!((s0 - 1.5275252316519468).abs() < 1e-9, "{s0}");
    assert!((m1 - (base + 1.5)).abs() < 1e-9 && (s1 - std::f64::consts::SQRT_2).abs() < 1e-9, "{m1} {s1}");
    let md = fs::read_to_string(out.join("ablation.md")).unwrap();
    assert!(md.contains(&format!("{:.2} ± 1.53", base + 1.3333333333333333)), "{md}");
    // Best mean in bold, LaTeX as $m \pm s$.
    assert!(md.contains(&format!("**{:.2} ± 1.41**", base + 1.5)), "{md}");
    let tex = fs::read_to_string(out.join("ablation.tex")).unwrap();
    assert!(
        tex.contains(&format!("${:.2} \\pm 1.53$", base + 1.3333333333333333)) && tex.contains("\\mathbf{"),
        "{tex}"
    );
    // Figure 2 of each seed group: the mean with a ± std band, PNG and SVG.
    let charts: Vec<String> =
        s.files.iter().map(|f| f.display().to_string()).filter(|f| f.contains("/seeds/")).collect();
    assert!(charts.iter().any(|f| f.contains("seeds/demo-1/") && f.ends_with(".png")), "{charts:?}");
    assert!(charts.iter().any(|f| f.contains("seeds/demo-2/") && f.ends_with(".svg")), "{charts:?}");
}

/// The final teacher value of `column` ("dataset/task/metric_mean") in a run's metrics.jsonl.
fn fx_view_final(run: &Path, column: &str) -> f64 {
    let key = column.trim_end_matches("_mean");
    let parts: Vec<&str> = key.split('/').collect();
    let rows: Vec<serde_json::Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.iter()
        .filter(|r| {
            r["eval"]["dataset"] == parts[0]
                && r["eval"]["task"] == parts[1]
                && r["metric"] == parts[2]
                && r["model"] == "teacher"
        })
        .max_by_key(|r| r["epoch"].as_u64().unwrap())
        .unwrap()["value"]
        .as_f64()
        .unwrap()
}
