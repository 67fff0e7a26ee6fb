//! The plugin on a miniature copy of the download (fixtures/datasets/candid-ptx, written by
//! scripts/dataset_fixtures/candid_ptx.py with the values it expects).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/candid-ptx")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "candid-ptx".into(), plugin: "candid-ptx".into(), root: Some(root), options, cache: None }
}

const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_candid_ptx::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n =
        check_expected(&ds, "candid-ptx", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 10, "{n} samples compared");
    assert_eq!(loads_like_labels(&ds), 10);
    assert!(ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels, vec!["Pneumothorax"]);
    let w = ds.warnings();
    assert!(w.iter().any(|w| w.contains("1 of 11 listed images are not under")), "{w:?}");
}

#[test]
fn findings_all_adds_chest_tubes_and_rib_fractures() {
    let ds = fx_candid_ptx::open(&spec(root(), serde_json::json!({ "findings": "all" }))).unwrap();
    let n = check_expected(&ds, "candid-ptx", &root(), &root().join("expected-all.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 10);
    assert_eq!(loads_like_labels(&ds), 10);
    assert_eq!(ds.desc().seg_labels, vec!["Pneumothorax", "Chest Tube", "Rib Fracture"]);
    assert_eq!(ds.desc().loc_labels, ds.desc().seg_labels);
    // The chest_tube.csv row for an image that no report row lists is ignored, with a warning.
    assert!(ds.warnings().iter().any(|w| w.contains("chest_tube.csv") && w.contains("1 rows")), "{:?}", ds.warnings());
}

#[test]
fn the_split_keeps_each_patient_in_one_split_and_is_seeded() {
    // Patients as the reports CSV gives them (the `filename` prefix), read independently here.
    let text = std::fs::read_to_string(root().join("Pneumothorax_reports.csv")).unwrap();
    let mut rdr = csv_rows(&text);
    let header = rdr.remove(0);
    let (cs, cf) = (
        header.iter().position(|h| h == "SOPInstanceUID").unwrap(),
        header.iter().position(|h| h == "filename").unwrap(),
    );
    let patient: BTreeMap<String, String> =
        rdr.iter().map(|r| (r[cs].clone(), r[cf].split('_').next().unwrap().to_string())).collect();
    for seed in [0u64, 1, 2, 3] {
        let ds = fx_candid_ptx::open(&spec(root(), serde_json::json!({ "seed": seed, "split": [0.5, 0.25, 0.25] })))
            .unwrap();
        let mut split_of: BTreeMap<String, Split> = BTreeMap::new();
        for s in SPLITS {
            for r in ds.index(s).unwrap() {
                let p = patient[&r.id].clone();
                assert_eq!(*split_of.entry(p).or_insert(s), s, "seed {seed}: a patient in two splits");
            }
        }
        let again = fx_candid_ptx::open(&spec(root(), serde_json::json!({ "seed": seed, "split": [0.5, 0.25, 0.25] })))
            .unwrap();
        for s in SPLITS {
            let a: BTreeSet<String> = ds.index(s).unwrap().into_iter().map(|r| r.id).collect();
            let b: BTreeSet<String> = again.index(s).unwrap().into_iter().map(|r| r.id).collect();
            assert_eq!(a, b);
        }
    }
    let ds = fx_candid_ptx::open(&spec(root(), serde_json::json!({}))).unwrap();
    assert!(!ds.index(Split::Train).unwrap().is_empty() && !ds.index(Split::Test).unwrap().is_empty());
}

/// A minimal CSV reader for the test (quoted fields with commas, quotes and line breaks).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    rows
}

#[test]
fn missing_label_files_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-candid-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_candid_ptx::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("Pneumothorax_reports.csv") && e.contains(&empty.display().to_string()), "{e}");
    // With findings = "all", a missing chest_tube.csv is named.
    std::fs::copy(root().join("Pneumothorax_reports.csv"), empty.join("Pneumothorax_reports.csv")).unwrap();
    assert!(fx_candid_ptx::open(&spec(empty.clone(), serde_json::json!({}))).is_ok());
    let e =
        fx_candid_ptx::open(&spec(empty.clone(), serde_json::json!({ "findings": "all" }))).err().unwrap().to_string();
    assert!(e.contains("chest_tube.csv"), "{e}");
    let e = fx_candid_ptx::open(&spec(root(), serde_json::json!({ "finding": "all" }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `finding`"), "{e}");
    let e = fx_candid_ptx::open(&spec(root(), serde_json::json!({ "findings": "tubes" }))).err().unwrap().to_string();
    assert!(e.contains("findings") && e.contains("pneumothorax"), "{e}");
    std::fs::remove_dir_all(&empty).ok();
}

/// Every sample that reads also decodes, at the same size and with the same labels.
fn loads_like_labels(ds: &dyn Dataset) -> usize {
    let mut n = 0;
    for s in [Split::Train, Split::Val, Split::Test] {
        for r in ds.index(s).unwrap() {
            let Ok(l) = ds.labels(&r, 64) else { continue };
            let p = ds.load(&r, 64).unwrap_or_else(|e| panic!("{}: {e}", r.id));
            assert_eq!(
                (p.width, p.height, &p.cls, &p.boxes, &p.masks),
                (l.width, l.height, &l.cls, &l.boxes, &l.masks),
                "{}",
                r.id
            );
            assert!(!p.image.is_empty());
            n += 1;
        }
    }
    n
}
