//! The plugin on a miniature copy of the TBX11K download (fixtures/datasets/tbx11k, written by
//! scripts/dataset_fixtures/tbx11k.py with the values it expects for the OFFICIAL split, i.e. with
//! `val_fraction = 0`).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/tbx11k")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "tbx11k".into(), plugin: "tbx11k".into(), root: Some(root), options, cache: None }
}

fn ids(ds: &dyn Dataset, split: Split) -> Vec<String> {
    ds.index(split).unwrap().into_iter().map(|r| r.id).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    // The official split as published: train list -> train, val list -> test, no val.
    let ds = fx_tbx11k::open(&spec(root(), serde_json::json!({ "val_fraction": 0.0 }))).unwrap();
    let n = check_expected(&ds, "tbx11k", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 11, "{n} samples compared");
    assert!(!ds.desc().drawn_split);
    assert!(ids(&ds, Split::Val).is_empty());
    // The listed image missing from disk is indexed (skipped at load, not at open) and named.
    let train = ds.index(Split::Train).unwrap();
    assert_eq!(train.len(), 8);
    let missing = train.iter().find(|r| r.id == "sick/s0004").unwrap();
    let e = ds.labels(missing, 64).err().unwrap().to_string();
    assert!(e.contains("s0004.png"), "{e}");
    // The box starting left of the image was clipped, with a warning naming the JSON.
    assert!(
        ds.warnings().iter().any(|w| w.contains("TBX11K_val.json") && w.contains("clipped")),
        "{:?}",
        ds.warnings()
    );
}

#[test]
fn by_default_val_is_drawn_from_the_official_train_and_test_is_the_official_val() {
    let official = fx_tbx11k::open(&spec(root(), serde_json::json!({ "val_fraction": 0.0 }))).unwrap();
    let ds = fx_tbx11k::open(&spec(root(), serde_json::json!({}))).unwrap();
    let (tr, va) = (ids(&ds, Split::Train), ids(&ds, Split::Val));
    assert!(!tr.is_empty() && !va.is_empty(), "{tr:?} {va:?}");
    let mut both: Vec<String> = tr.iter().chain(&va).cloned().collect();
    let mut want = ids(&official, Split::Train);
    both.sort();
    want.sort();
    assert_eq!(both, want);
    assert_eq!(ids(&ds, Split::Test), ids(&official, Split::Test));
    assert_eq!(ids(&ds, Split::Test).len(), 4);
    // Seeded: the same options give the same draw.
    let again = fx_tbx11k::open(&spec(root(), serde_json::json!({ "seed": 0 }))).unwrap();
    assert_eq!(ids(&again, Split::Val), va);
}

#[cfg(unix)]
#[test]
fn the_folder_holding_tbx11k_is_a_root_too() {
    let parent = std::env::temp_dir().join(format!("fx-tbx11k-parent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    std::os::unix::fs::symlink(root().canonicalize().unwrap(), parent.join("TBX11K")).unwrap();
    let ds = fx_tbx11k::open(&spec(parent.clone(), serde_json::json!({ "val_fraction": 0.0 }))).unwrap();
    let direct = fx_tbx11k::open(&spec(root(), serde_json::json!({ "val_fraction": 0.0 }))).unwrap();
    assert_eq!(ids(&ds, Split::Train), ids(&direct, Split::Train));
    assert_eq!(ids(&ds, Split::Test), ids(&direct, Split::Test));
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn a_missing_label_file_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-tbx11k-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_tbx11k::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("lists/TBX11K_train.txt") && e.contains(&empty.display().to_string()), "{e}");
    // Lists present, JSON absent: the JSON's expected path is named.
    std::fs::create_dir_all(empty.join("lists")).unwrap();
    std::fs::write(empty.join("lists/TBX11K_train.txt"), "tb/tb0003.png\n").unwrap();
    let e = fx_tbx11k::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("annotations/json/TBX11K_train.json"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    let e = fx_tbx11k::open(&spec(root(), serde_json::json!({ "split": [0.7, 0.1, 0.2] }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `split`"), "{e}");
    let e = fx_tbx11k::open(&spec(root(), serde_json::json!({ "val_fraction": 1.5 }))).err().unwrap().to_string();
    assert!(e.contains("val_fraction"), "{e}");
}
