//! `export` on a run at the paper's scale (20 cycles, 20 pairs, 40,600 rows): the final table
//! equals the raw lines, and a window of cycles charts only those epochs.

use std::collections::BTreeMap;

fn big_run(dir: &std::path::Path) -> std::path::PathBuf {
    let run = dir.join("paper-scale");
    fx_run::fabricate::run(&run, "paper-scale", 20, true, 5).unwrap();
    run
}

/// (dataset, task, metric, model) → (last value, best focused value, its first epoch).
fn from_lines(run: &std::path::Path) -> BTreeMap<(String, String, String, String), (f64, f64, usize)> {
    let mut out: BTreeMap<(String, String, String, String), (usize, f64, f64, usize)> = BTreeMap::new();
    for l in std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let s = |x: &serde_json::Value| x.as_str().unwrap().to_string();
        let key = (s(&v["eval"]["dataset"]), s(&v["eval"]["task"]), s(&v["metric"]), s(&v["model"]));
        let (e, x) = (v["epoch"].as_u64().unwrap() as usize, v["value"].as_f64().unwrap());
        let slot = out.entry(key).or_insert((0, f64::NAN, f64::NEG_INFINITY, 0));
        if e >= slot.0 {
            slot.0 = e;
            slot.1 = x;
        }
        if v["focused"] == true && x > slot.2 {
            slot.2 = x;
            slot.3 = e;
        }
    }
    out.into_iter().map(|(k, (_, last, best, at))| (k, (last, best, at))).collect()
}

#[test]
fn the_final_table_equals_the_raw_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let run = big_run(tmp.path());
    let out = tmp.path().join("export");
    let s = fx_export::export(&run, &out, &fx_export::ExportOptions::default().with_student()).unwrap();
    assert_eq!((s.last_epoch, s.charts), (580, 40));
    let want = from_lines(&run);
    let csv = std::fs::read_to_string(out.join("final.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |row: &[&str], name: &str| row[header.iter().position(|h| *h == name).unwrap()].to_string();
    let mut n = 0;
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        let (d, t, m) = (col(&row, "dataset"), col(&row, "task"), col(&row, "metric"));
        for model in ["teacher", "student"] {
            let (last, best, at) = want[&(d.clone(), t.clone(), m.clone(), model.to_string())];
            assert_eq!(col(&row, model).parse::<f64>().unwrap(), last, "{d} {t} {m} {model}");
            assert_eq!(col(&row, &format!("best_{model}")).parse::<f64>().unwrap(), best, "{d} {t} {m} {model}");
            assert_eq!(col(&row, &format!("best_{model}_epoch")).parse::<usize>().unwrap(), at, "{d} {t} {m} {model}");
        }
        n += 1;
    }
    // 11 cls (auc) + 6 loc (map40, ap50, ap40_95) + 3 seg (dice, dice_global).
    assert_eq!(n, 11 + 6 * 3 + 3 * 2);
}

#[test]
fn a_window_of_cycles_charts_only_its_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = big_run(tmp.path());
    let out = tmp.path().join("window");
    let opts = fx_export::ExportOptions { cycles: Some("last:2".into()), ..Default::default() };
    fx_export::export(&run, &out, &opts).unwrap();
    let svg = std::fs::read_to_string(out.join("chexpert-cls-teacher.svg")).unwrap();
    // The texts drawn.
    let texts: Vec<String> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string()))
        .collect();
    // The x axis starts at the window: epoch 525 is labelled, epoch 100 is not; cycle 20's
    // boundary is labelled, cycle 2's is not.
    assert!(texts.iter().any(|t| t == "525") && !texts.iter().any(|t| t == "100"), "x labels of the window: {texts:?}");
    assert!(texts.iter().any(|t| t == "cycle 20") && !texts.iter().any(|t| t == "cycle 2"), "cycle labels: {texts:?}");
    let grid = std::fs::read_to_string(out.join("grid-teacher.svg")).unwrap();
    assert!(grid.contains("cycles 19-20"), "the grid's header names the window");
    // A window starting at cycle 1 ends where it should too.
    let first = tmp.path().join("first");
    let o = fx_export::ExportOptions { cycles: Some("1".into()), ..Default::default() };
    fx_export::export(&run, &first, &o).unwrap();
    let svg = std::fs::read_to_string(first.join("chexpert-cls-teacher.svg")).unwrap();
    let texts: Vec<String> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string()))
        .collect();
    assert!(texts.iter().any(|t| t == "25") && !texts.iter().any(|t| t == "100" || t == "580"), "cycle 1: {texts:?}");
    // Bad windows are named.
    for bad in ["0-3", "5-2", "21", "last:x", "x"] {
        let o = fx_export::ExportOptions { cycles: Some(bad.into()), ..Default::default() };
        let e = fx_export::export(&run, &tmp.path().join("bad"), &o).unwrap_err().to_string();
        assert!(e.contains("--cycles") && e.contains(bad), "{bad}: {e}");
    }
    assert_eq!(fx_export::parse_cycles("19-20", 20).unwrap(), (19, 20));
    assert_eq!(fx_export::parse_cycles("last:3", 20).unwrap(), (18, 20));
    assert_eq!(fx_export::parse_cycles("7", 20).unwrap(), (7, 7));
    assert_eq!(fx_export::parse_cycles("last:50", 20).unwrap(), (1, 20));
}
