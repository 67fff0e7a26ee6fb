//! The plugin on a miniature copy of the published downloads (fixtures/datasets/jsrt, written by
//! scripts/dataset_fixtures/jsrt.py with the values it expects). The fixture's raw images are
//! 60 × 50 (JSRT's are 2048 × 2048), so every open passes `raw = { width = 60, height = 50 }`.

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/jsrt")
}

fn spec(root: PathBuf, mut options: serde_json::Value) -> DatasetSpec {
    options.as_object_mut().unwrap().insert("raw".into(), serde_json::json!({ "width": 60, "height": 50 }));
    DatasetSpec { name: "jsrt".into(), plugin: "jsrt".into(), root: Some(root), options, cache: None }
}

fn records(ds: &dyn Dataset) -> Vec<fx_plugin::SampleRecord> {
    [Split::Train, Split::Val, Split::Test].iter().flat_map(|s| ds.index(*s).unwrap()).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_jsrt::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n = check_expected(&ds, "jsrt", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 9);
    assert!(ds.desc().drawn_split && ds.desc().cls_labels.is_empty());
    assert_eq!(ds.desc().seg_labels, vec!["heart", "left lung", "right lung", "left clavicle", "right clavicle"]);
    let w = ds.warnings().join("\n");
    assert!(w.contains("JPCNN005.IMG") && w.contains("1 image(s) have no SCR masks"), "{w}");
    // JPCLN005 (no left clavicle mask) is listed and fails when loaded, naming the mask.
    let all = records(&ds);
    assert_eq!(all.len(), 10);
    let bad = all.iter().find(|r| r.id == "JPCLN005").unwrap();
    let e = ds.load(bad, 64).err().unwrap().to_string();
    assert!(e.contains("left clavicle") && e.contains("JPCLN005.gif"), "{e}");
    // The raw images decode at the `raw` geometry, inverted: the stored density 4095 × (1 − v)
    // comes back as v (the bright mediastinum is brighter than the image's edge).
    let s = ds.load(all.iter().find(|r| r.id == "JPCLN001").unwrap(), 64).unwrap();
    assert_eq!((s.width, s.height), (60, 50));
    let (w0, h0) = s.image_dims.unwrap_or((60, 50));
    let row = &s.image[(h0 / 2) * w0..(h0 / 2 + 1) * w0];
    assert!(row[w0 / 2] > row[0] + 0.2, "{:?}", row);
}

#[test]
fn scr_folds_and_the_nodule_label() {
    let ds = fx_jsrt::open(&spec(root(), serde_json::json!({ "test_fold": 2, "nodule_cls": true }))).unwrap();
    let n =
        check_expected(&ds, "jsrt", &root(), &root().join("expected-folds.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 9);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels, vec!["nodule"]);
    assert!(ds.index(Split::Val).unwrap().is_empty());
    let e = fx_jsrt::open(&spec(root(), serde_json::json!({ "test_fold": 3 }))).err().unwrap().to_string();
    assert!(e.contains("test_fold must be 1 or 2"), "{e}");
}

#[test]
fn the_scr_folder_may_be_given() {
    let ds = fx_jsrt::open(&spec(root(), serde_json::json!({ "scr": "scratch", "seed": 7 }))).unwrap();
    assert_eq!(records(&ds).len(), 10);
    let e = fx_jsrt::open(&spec(root(), serde_json::json!({ "scr": "SCR" }))).err().unwrap().to_string();
    assert!(e.contains("fold1") && e.contains("SCR"), "{e}");
}

#[test]
fn missing_masks_missing_images_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-jsrt-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_jsrt::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("scratch/fold1") && e.contains(&empty.display().to_string()), "{e}");
    std::fs::create_dir_all(empty.join("scratch/fold1/masks")).unwrap();
    std::fs::create_dir_all(empty.join("scratch/fold2/masks")).unwrap();
    let e = fx_jsrt::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("All247images"), "{e}");
    std::fs::create_dir_all(empty.join("All247images")).unwrap();
    let e = fx_jsrt::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("heart") && e.contains("fold1/masks"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    let e = fx_jsrt::open(&spec(root(), serde_json::json!({ "folds": 2 }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `folds`"), "{e}");
}

#[test]
fn labels_keep_a_subset_of_the_organs() {
    let ds =
        fx_jsrt::open(&spec(root(), serde_json::json!({ "labels": ["right clavicle", "left clavicle"] }))).unwrap();
    assert_eq!(ds.desc().seg_labels, vec!["right clavicle", "left clavicle"]);
    let text = std::fs::read_to_string(root().join("expected.jsonl")).unwrap();
    let want: std::collections::HashMap<String, serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["id"].as_str().unwrap().trim_start_matches("All247images/").to_string(), v["masks"].clone()))
        .collect();
    let mut seen = 0;
    for r in records(&ds) {
        let Some(m) = want.get(&r.id) else { continue };
        let s = ds.labels(&r, 64).unwrap();
        let counts: Vec<u64> = s.masks.iter().map(|m| m.iter().filter(|v| **v != 0).count() as u64).collect();
        assert_eq!(
            counts,
            vec![m["right clavicle"].as_u64().unwrap(), m["left clavicle"].as_u64().unwrap()],
            "{}",
            r.id
        );
        seen += 1;
    }
    assert_eq!(seen, 9);
    let e = fx_jsrt::open(&spec(root(), serde_json::json!({ "labels": ["clavicle"] }))).err().unwrap().to_string();
    assert!(e.contains("`clavicle` is not one of"), "{e}");
}
