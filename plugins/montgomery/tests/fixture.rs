//! The plugin on a miniature copy of the published download (fixtures/datasets/montgomery, written
//! by scripts/dataset_fixtures/montgomery.py with the values it expects).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/montgomery")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "montgomery".into(), plugin: "montgomery".into(), root: Some(root), options, cache: None }
}

fn records(ds: &dyn Dataset) -> Vec<fx_plugin::SampleRecord> {
    [Split::Train, Split::Val, Split::Test].iter().flat_map(|s| ds.index(*s).unwrap()).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_montgomery::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n =
        check_expected(&ds, "montgomery", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    assert!(ds.desc().drawn_split);
    assert_eq!(ds.desc().seg_labels, vec!["Left Lung", "Right Lung"]);
    assert_eq!(ds.desc().cls_labels, vec!["Tuberculosis"]);
    // The image without a rightMask is listed, and fails (skip-and-count) only when loaded,
    // naming the missing mask.
    let all = records(&ds);
    assert_eq!(all.len(), 9);
    let bad = all.iter().find(|r| r.id == "MCUCXR_0005_0").unwrap();
    let e = ds.load(bad, 64).err().unwrap().to_string();
    assert!(e.contains("rightMask") && e.contains("MCUCXR_0005_0.png"), "{e}");
    // Landscape and portrait images and a 1-bit mask load with their masks.
    for r in all.iter().filter(|r| r.id != "MCUCXR_0005_0") {
        let s = ds.load(r, 64).unwrap();
        assert_eq!(s.masks.len(), 2);
        assert!(s.masks.iter().all(|m| m.len() == s.width * s.height && m.contains(&1)));
    }
}

#[test]
fn anatomical_sides_swap_the_two_mask_folders() {
    let ds = fx_montgomery::open(&spec(root(), serde_json::json!({ "sides": "anatomical" }))).unwrap();
    let n = check_expected(&ds, "montgomery", &root(), &root().join("expected-anatomical.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    let e = fx_montgomery::open(&spec(root(), serde_json::json!({ "sides": "patient" }))).err().unwrap().to_string();
    assert!(e.contains("options.sides") && e.contains("anatomical"), "{e}");
}

#[test]
fn the_root_may_be_montgomeryset_itself() {
    let inner = root().join("MontgomerySet");
    let ds = fx_montgomery::open(&spec(inner, serde_json::json!({ "split": [0.5, 0.25, 0.25], "seed": 3 }))).unwrap();
    assert_eq!(records(&ds).len(), 9);
    assert!(!ds.index(Split::Train).unwrap().is_empty() && !ds.index(Split::Test).unwrap().is_empty());
}

#[test]
fn missing_folders_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-montgomery-empty-{}", std::process::id()));
    std::fs::create_dir_all(empty.join("MontgomerySet/CXR_png")).unwrap();
    let e = fx_montgomery::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("ManualMask/leftMask") && e.contains(&empty.join("MontgomerySet").display().to_string()), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_montgomery::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("MontgomerySet/CXR_png") && e.contains(&empty.display().to_string()), "{e}");
    let e = fx_montgomery::open(&spec(root(), serde_json::json!({ "masks": "x" }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `masks`"), "{e}");
}
