//! `export` on real run directories: the files, the pictures, the numbers.

mod common;

use common::*;
use fx_export::{export, ExportOptions};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

/// The colours of the three series (see src/chart.rs): focused, other epochs, best so far.
const FOCUS: [u8; 3] = [0xb0, 0x30, 0x20];
const OTHER: [u8; 3] = [0x6b, 0x9b, 0xd1];
const BEST: [u8; 3] = [0x22, 0x22, 0x22];

fn chart_pairs(rows: &[Row]) -> Vec<(String, String)> {
    let mut p: Vec<_> = rows.iter().map(|r| (r.dataset.clone(), r.task.clone())).collect();
    p.sort();
    p.dedup();
    p
}

fn expected(rows: &[Row], models: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for m in models {
        for (d, t) in chart_pairs(rows) {
            v.push(format!("{d}-{t}-{m}.png"));
            v.push(format!("{d}-{t}-{m}.svg"));
        }
        v.push(format!("grid-{m}.png"));
        v.push(format!("grid-{m}.svg"));
    }
    for stem in ["final", "per-label"] {
        for ext in ["csv", "md", "tex"] {
            v.push(format!("{stem}.{ext}"));
        }
    }
    v.sort();
    v
}

#[test]
fn writes_every_expected_file_and_nothing_else() {
    let run = fixture("finished");
    let out = tempfile::tempdir().unwrap();
    let s = export(&run, out.path(), &ExportOptions::default()).unwrap();
    let want = expected(&rows(&run), &["teacher"]);
    assert_eq!(want.len(), 3 * 2 + 2 + 6);
    assert_eq!(names(out.path()), want, "no temporary file may be left behind");
    let mut reported: Vec<String> =
        s.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    reported.sort();
    assert_eq!(reported, want);
    assert!(s.files.iter().all(|p| p.starts_with(out.path())));
    assert_eq!((s.charts, s.last_epoch, s.name.as_str()), (3, 6, "demo"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn student_charts_only_when_asked() {
    let run = fixture("seg");
    let out = tempfile::tempdir().unwrap();
    export(&run, out.path(), &ExportOptions::default()).unwrap();
    assert!(!names(out.path()).iter().any(|n| n.contains("student")));

    let out = tempfile::tempdir().unwrap();
    let s = export(&run, out.path(), &ExportOptions::default().with_student()).unwrap();
    let want = expected(&rows(&run), &["teacher", "student"]);
    assert_eq!(chart_pairs(&rows(&run)).len(), 6, "cls and seg pairs of the fixture");
    assert_eq!(names(out.path()), want);
    assert_eq!(s.charts, 12);
    assert!(out.path().join("phantom-organs-seg-student.png").is_file());
}

/// Pixel statistics of a decoded PNG.
struct Pixels {
    w: u32,
    h: u32,
    distinct: usize,
    counts: BTreeMap<[u8; 3], usize>,
    non_white: usize,
}

fn pixels(path: &Path) -> Pixels {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let mut counts: BTreeMap<[u8; 3], usize> = BTreeMap::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_default() += 1;
    }
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    Pixels { w: img.width(), h: img.height(), distinct: counts.len(), counts, non_white }
}

/// Dark (text-like) pixels in a band of rows.
fn dark_in_rows(path: &Path, rows: std::ops::Range<u32>) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    img.enumerate_pixels().filter(|(_, y, p)| rows.contains(y) && p.0.iter().all(|&c| c < 90)).count()
}

#[test]
fn pngs_decode_at_their_size_and_show_every_series() {
    let run = fixture("seg");
    let out = tempfile::tempdir().unwrap();
    export(&run, out.path(), &ExportOptions::default()).unwrap();
    let charts: Vec<String> =
        names(out.path()).into_iter().filter(|n| n.ends_with(".png") && !n.starts_with("grid")).collect();
    assert_eq!(charts.len(), 6);
    for name in &charts {
        let path = out.path().join(name);
        let p = pixels(&path);
        assert_eq!((p.w, p.h), (800, 500), "{name}");
        // Anti-aliased text and markers make many shades; a blank or one-line image has few.
        assert!(p.distinct > 60, "{name}: only {} colours", p.distinct);
        assert!(p.non_white > 800 * 500 / 50, "{name}: nearly blank ({} non-white pixels)", p.non_white);
        for (what, c) in [("focused", FOCUS), ("other epochs", OTHER), ("best so far", BEST)] {
            let n = p.counts.get(&c).copied().unwrap_or(0);
            assert!(n > 100, "{name}: the {what} series has {n} pixels");
        }
        // The title is drawn (the embedded font works): dark pixels in the top band.
        assert!(dark_in_rows(&path, 0..40) > 150, "{name}: no title text");
    }
    let g = pixels(&out.path().join("grid-teacher.png"));
    assert_eq!(g.w, 3 * 600, "3 columns of 600 px");
    assert!(g.h > 2 * 375 && g.h < 2 * 375 + 120, "2 rows of 375 px plus header and legend: {}", g.h);
    assert!(g.counts.get(&FOCUS).copied().unwrap_or(0) > 6 * 50);
}

#[test]
fn png_options_set_the_size() {
    let out = tempfile::tempdir().unwrap();
    let opts = ExportOptions { width: 640, height: 400, grid_columns: 2, ..Default::default() };
    export(&fixture("finished"), out.path(), &opts).unwrap();
    let p = pixels(&out.path().join("phantom-nih-cls-teacher.png"));
    assert_eq!((p.w, p.h), (640, 400));
    let g = pixels(&out.path().join("grid-teacher.png"));
    assert_eq!(g.w, 2 * 480, "2 columns of 3/4 width");
    let too_small = ExportOptions { width: 100, ..Default::default() };
    let e = export(&fixture("finished"), out.path(), &too_small).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn svgs_name_the_dataset_and_dash_the_best_line() {
    let run = fixture("seg");
    let out = tempfile::tempdir().unwrap();
    export(&run, out.path(), &ExportOptions::default()).unwrap();
    for (d, t) in chart_pairs(&rows(&run)) {
        let name = format!("{d}-{t}-teacher.svg");
        let svg = fs::read_to_string(out.path().join(&name)).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(svg.contains(&format!("{d} · {t} (")), "{name}: title");
        assert!(svg.contains("epoch"), "{name}: x axis label");
        let polylines: Vec<&str> = svg.split("<polyline").skip(1).map(|s| s.split("/>").next().unwrap()).collect();
        let dashed: Vec<&&str> = polylines.iter().filter(|p| p.contains("stroke-dasharray")).collect();
        // The best line (many corners) and its legend sample (two), both in the best colour.
        assert_eq!(dashed.len(), 2, "{name}: {dashed:?}");
        assert!(dashed.iter().all(|p| p.contains("stroke=\"#222222\"")), "{name}");
        let corners =
            |p: &str| p.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split_whitespace().count();
        assert!(dashed.iter().any(|p| corners(p) >= 3), "{name}: the best line is drawn dashed");
        // The other series stay solid.
        assert!(polylines.iter().any(|p| p.contains("#6B9BD1") || p.contains("#6b9bd1")), "{name}: thin line");
    }
    let grid = fs::read_to_string(out.path().join("grid-teacher.svg")).unwrap();
    for (d, _) in chart_pairs(&rows(&run)) {
        assert!(grid.contains(&d), "grid names {d}");
    }
    assert!(grid.contains("stroke-dasharray"));
}

fn num(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

fn int(s: &str) -> Option<usize> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

#[test]
fn final_csv_equals_metrics_jsonl() {
    for fx in ["finished", "seg", "running"] {
        let run = fixture(fx);
        let rows = rows(&run);
        let out = tempfile::tempdir().unwrap();
        export(&run, out.path(), &ExportOptions::default()).unwrap();
        let (header, records) = csv(&fs::read_to_string(out.path().join("final.csv")).unwrap());
        assert_eq!(records.len(), keys(&rows).len(), "{fx}: one row per (dataset, task, metric)");
        let mut seen = HashSet::new();
        for r in &records {
            let (d, t, m) = (col(&header, r, "dataset"), col(&header, r, "task"), col(&header, r, "metric"));
            assert!(seen.insert((d.to_string(), t.to_string(), m.to_string())), "{fx}: duplicate row {r:?}");
            let (epoch, teacher) = last_value(&rows, d, t, m, "teacher").unwrap();
            assert_eq!(num(col(&header, r, "teacher")), Some(teacher), "{fx} {d} {t} {m}: exact value");
            assert_eq!(int(col(&header, r, "epoch")), Some(epoch));
            let student = last_value(&rows, d, t, m, "student").map(|x| x.1);
            assert_eq!(num(col(&header, r, "student")), student, "{fx} {d} {t} {m}");
            let bt = best_focused(&rows, d, t, m, "teacher");
            assert_eq!(num(col(&header, r, "best_teacher")), bt.map(|b| b.0), "{fx} {d} {t} {m}");
            assert_eq!(int(col(&header, r, "best_teacher_epoch")), bt.map(|b| b.1));
            let bs = best_focused(&rows, d, t, m, "student");
            assert_eq!(num(col(&header, r, "best_student")), bs.map(|b| b.0));
            assert_eq!(int(col(&header, r, "best_student_epoch")), bs.map(|b| b.1));
        }
    }
}

#[test]
fn per_label_csv_equals_metrics_jsonl() {
    for fx in ["finished", "seg"] {
        let run = fixture(fx);
        let rows = rows(&run);
        let out = tempfile::tempdir().unwrap();
        export(&run, out.path(), &ExportOptions::default()).unwrap();
        let (header, records) = csv(&fs::read_to_string(out.path().join("per-label.csv")).unwrap());
        let last = rows.iter().map(|r| r.epoch).max().unwrap();
        let want: usize = keys(&rows)
            .iter()
            .map(|(d, t, m)| {
                rows.iter()
                    .find(|r| r.epoch == last && &r.dataset == d && &r.task == t && &r.metric == m)
                    .unwrap()
                    .per_label
                    .len()
            })
            .sum();
        assert_eq!(records.len(), want, "{fx}: one row per label");
        for r in &records {
            let (d, t, m, l) = (
                col(&header, r, "dataset"),
                col(&header, r, "task"),
                col(&header, r, "metric"),
                col(&header, r, "label"),
            );
            for model in ["teacher", "student"] {
                let src = rows
                    .iter()
                    .find(|x| x.epoch == last && x.dataset == d && x.task == t && x.metric == m && x.model == model)
                    .unwrap();
                assert_eq!(num(col(&header, r, model)), Some(src.per_label[l]), "{fx} {d} {t} {m} {l} {model}");
            }
        }
    }
}

#[test]
fn markdown_and_latex_have_one_row_per_line_of_the_csv() {
    let run = fixture("seg");
    let rows = rows(&run);
    let out = tempfile::tempdir().unwrap();
    export(&run, out.path(), &ExportOptions::default()).unwrap();
    let read = |n: &str| fs::read_to_string(out.path().join(n)).unwrap();
    let k = keys(&rows).len();
    assert_eq!(k, 8, "6 pairs; the seg pairs have dice and dice_global");
    assert_eq!(md_rows(&read("final.md")), k);
    assert_eq!(tex_rows(&read("final.tex")), k);
    let labels = csv(&read("per-label.csv")).1.len();
    assert_eq!(md_rows(&read("per-label.md")), labels);
    assert_eq!(tex_rows(&read("per-label.tex")), labels);
    let tex = read("final.tex");
    assert!(
        tex.contains("\\toprule")
            && tex.contains("\\bottomrule")
            && tex.contains("phantom-organs & seg & dice\\_global")
    );
    // Two decimals for reading.
    let (d, t, m) = ("phantom-cxp", "cls", "auc");
    let v = last_value(&rows, d, t, m, "teacher").unwrap().1;
    assert!(read("final.md").contains(&format!("| {d} | {t} | {m} | 16 | {v:.2} |")));
}

#[test]
fn a_running_run_exports_what_it_has() {
    let run = fixture("running");
    let out = tempfile::tempdir().unwrap();
    let s = export(&run, out.path(), &ExportOptions::default()).unwrap();
    assert_eq!(s.last_epoch, 4);
    assert_eq!(s.charts, 3);
    let p = pixels(&out.path().join("phantom-cxp-cls-teacher.png"));
    assert!(p.counts.get(&FOCUS).copied().unwrap_or(0) > 50);
}
