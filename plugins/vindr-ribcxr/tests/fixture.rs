//! The plugin on a miniature copy of the release (fixtures/datasets/vindr-ribcxr, written by
//! scripts/dataset_fixtures/vindr_ribcxr.py with the values it expects), its options and errors.

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/vindr-ribcxr")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "vindr-ribcxr".into(), plugin: "vindr-ribcxr".into(), root: Some(root), options, cache: None }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fx-vindr-ribcxr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_vindr_ribcxr::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n =
        check_expected(&ds, "vindr-ribcxr", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 9);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().seg_labels, fx_vindr_ribcxr::RIBS);
    assert!(ds.desc().cls_labels.is_empty() && ds.desc().loc_labels.is_empty());
    // train/ holds the entry whose PNG is missing (skipped when loaded); val/ is the test split.
    assert_eq!(ds.index(Split::Train).unwrap().len(), 7);
    assert_eq!(ds.index(Split::Val).unwrap().len(), 0);
    assert_eq!(ds.index(Split::Test).unwrap().len(), 3);
    let train = ds.index(Split::Train).unwrap();
    assert_eq!(train.iter().filter(|r| ds.labels(r, 64).is_err()).count(), 1);
    // Decoding: pixels, and 20 masks at the image's size.
    let s = ds.load(&ds.index(Split::Test).unwrap()[0], 64).unwrap();
    assert_eq!((s.width, s.height, s.masks.len()), (50, 62, 20));
    assert!(s.masks.iter().all(|m| m.len() == 50 * 62 && m.iter().any(|v| *v != 0)));
    assert!(s.boxes.is_empty());
}

#[test]
fn val_split_option_and_a_root_above_data() {
    let ds = fx_vindr_ribcxr::open(&spec(root(), serde_json::json!({ "val_split": "val" }))).unwrap();
    assert_eq!((ds.index(Split::Val).unwrap().len(), ds.index(Split::Test).unwrap().len()), (3, 0));
    // The download's folder above `data/`.
    let dir = tmp("above");
    copy_tree(&root().join("train"), &dir.join("data/train"));
    copy_tree(&root().join("val"), &dir.join("data/val"));
    let ds = fx_vindr_ribcxr::open(&spec(dir.clone(), serde_json::json!({}))).unwrap();
    assert_eq!((ds.index(Split::Train).unwrap().len(), ds.index(Split::Test).unwrap().len()), (7, 3));
    let r = &ds.index(Split::Test).unwrap()[0];
    assert_eq!(ds.labels(r, 64).unwrap().masks.len(), 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_label_files_and_bad_options_are_named() {
    let empty = tmp("empty");
    let e = fx_vindr_ribcxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("Vindr_RibCXR_train_mask.json") && e.contains(&empty.display().to_string()), "{e}");
    copy_tree(&root().join("train"), &empty.join("train"));
    let e = fx_vindr_ribcxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("val/Vindr_RibCXR_val_mask.json"), "{e}");
    // A malformed polygon is named with its file, rib and image index.
    std::fs::create_dir_all(empty.join("val/img")).unwrap();
    let mut table = serde_json::json!({ "img": { "0": "data/val/img/a.png" } });
    for rib in fx_vindr_ribcxr::RIBS {
        table[rib] = serde_json::json!({ "0": "None" });
    }
    table["R2"]["0"] = serde_json::json!([{ "x": 1.5, "y": 2.5 }, { "x": 1 }]);
    std::fs::write(empty.join("val/Vindr_RibCXR_val_mask.json"), table.to_string()).unwrap();
    let e = fx_vindr_ribcxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("Vindr_RibCXR_val_mask.json") && e.contains("R2[0] point 1"), "{e}");
    table.as_object_mut().unwrap().remove("L7");
    std::fs::write(empty.join("val/Vindr_RibCXR_val_mask.json"), table.to_string()).unwrap();
    let e = fx_vindr_ribcxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("no \"L7\" object"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    let e = fx_vindr_ribcxr::open(&spec(root(), serde_json::json!({ "split": [0.7, 0.1, 0.2] })))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown option `split`"), "{e}");
    let e =
        fx_vindr_ribcxr::open(&spec(root(), serde_json::json!({ "val_split": "train" }))).err().unwrap().to_string();
    assert!(e.contains("options.val_split"), "{e}");
}
