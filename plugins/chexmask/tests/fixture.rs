//! The plugin on a miniature copy of CheXmask's VinDr-CXR table and the images it refers to
//! (fixtures/datasets/chexmask, written by scripts/dataset_fixtures/chexmask.py with the values it
//! expects), its options and errors.

use fx_data::dataset::{check_expected, FileDataset};
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::collections::HashSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/chexmask")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "chexmask".into(), plugin: "chexmask".into(), root: Some(root), options, cache: None }
}

fn open(options: serde_json::Value) -> FileDataset {
    fx_chexmask::open(&spec(root(), options)).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(ds: &FileDataset, s: Split) -> Vec<String> {
    ds.index(s).unwrap().into_iter().map(|r| r.id).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = open(serde_json::json!({ "images": "VinDr-CXR" }));
    let n = check_expected(&ds, "chexmask", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().seg_labels, fx_chexmask::ORGANS);
    assert_eq!(ds.desc().loc_labels, ds.desc().seg_labels);
    assert!(ds.desc().cls_labels.is_empty());
    // The low-quality row is left out; the row whose image is nowhere is in train, skipped on load.
    assert_eq!((ids(&ds, Split::Train).len(), ids(&ds, Split::Val).len(), ids(&ds, Split::Test).len()), (6, 0, 3));
    let train = ds.index(Split::Train).unwrap();
    assert_eq!(train.iter().filter(|r| ds.labels(r, 64).is_err()).count(), 1);
    assert!(ds.warnings().iter().any(|w| w.contains("Dice RCA (Mean) < 0.7")), "{:?}", ds.warnings());
    // Decoding: the masks are at the image's size, one box per non-empty mask.
    let s = ds.load(&ds.index(Split::Test).unwrap()[0], 64).unwrap();
    assert_eq!(s.masks.len(), 3);
    assert!(s.masks.iter().all(|m| m.len() == s.width * s.height));
    assert_eq!(s.boxes.iter().map(|b| b.label).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn quality_labels_val_and_parts() {
    let all = open(serde_json::json!({ "images": "VinDr-CXR", "min_dice_rca": 0.0 }));
    assert_eq!(ids(&all, Split::Train).len(), 7);
    let two = open(serde_json::json!({ "images": "VinDr-CXR", "labels": ["Right Lung", "Heart"] }));
    assert_eq!(two.desc().seg_labels, vec!["Heart", "Right Lung"]);
    assert_eq!(two.desc().loc_labels, two.desc().seg_labels);
    let s = two.labels(&two.index(Split::Test).unwrap()[0], 64).unwrap();
    assert_eq!(s.masks.len(), 2);
    assert!(s.boxes.iter().all(|b| b.label < 2) && s.boxes.len() == 2);

    let v = open(serde_json::json!({ "images": "VinDr-CXR", "val": 0.5, "seed": 1 }));
    let (tr, va) = (ids(&v, Split::Train), ids(&v, Split::Val));
    assert_eq!(tr.len() + va.len(), 6);
    assert!(!tr.is_empty() && !va.is_empty());

    let full: HashSet<String> =
        ids(&open(serde_json::json!({ "images": "VinDr-CXR" })), Split::Train).into_iter().collect();
    let p0 = open(serde_json::json!({ "images": "VinDr-CXR", "part": [0, 2] }));
    let p1 = open(serde_json::json!({ "images": "VinDr-CXR", "part": [1, 2] }));
    let (a, b): (HashSet<String>, HashSet<String>) =
        (ids(&p0, Split::Train).into_iter().collect(), ids(&p1, Split::Train).into_iter().collect());
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(a.is_disjoint(&b));
    assert_eq!(a.union(&b).cloned().collect::<HashSet<_>>(), full);
    assert_eq!(ids(&p0, Split::Test).len(), 3);
}

#[test]
fn missing_files_and_bad_options_are_named() {
    let e = fx_chexmask::open(&spec(root(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("options.images"), "{e}");
    let empty = std::env::temp_dir().join(format!("fx-chexmask-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let images = root().join("VinDr-CXR").display().to_string();
    let e = fx_chexmask::open(&spec(empty.clone(), serde_json::json!({ "images": images }))).err().unwrap().to_string();
    assert!(e.contains("OriginalResolution/VinDr-CXR.csv") && e.contains(&empty.display().to_string()), "{e}");
    std::fs::create_dir_all(empty.join("Preprocessed")).unwrap();
    std::fs::copy(root().join("OriginalResolution/VinDr-CXR.csv"), empty.join("Preprocessed/VinDr-CXR.csv")).unwrap();
    let e = fx_chexmask::open(&spec(
        empty.clone(),
        serde_json::json!({ "images": images, "csv": "Preprocessed/VinDr-CXR.csv" }),
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("Preprocessed") && e.contains("OriginalResolution"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();

    let e = fx_chexmask::open(&spec(root(), serde_json::json!({ "images": "nowhere" }))).err().unwrap().to_string();
    assert!(e.contains("nowhere"), "{e}");
    let e = fx_chexmask::open(&spec(root(), serde_json::json!({ "images": "VinDr-CXR", "min_dice": 0.5 })))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown option `min_dice`"), "{e}");
    let e = fx_chexmask::open(&spec(root(), serde_json::json!({ "images": "VinDr-CXR", "labels": ["Lungs"] })))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("Lungs"), "{e}");
    let e = fx_chexmask::open(&spec(root(), serde_json::json!({ "images": "VinDr-CXR", "part": [2, 2] })))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("options.part"), "{e}");
}
