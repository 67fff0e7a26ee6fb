//! The plugin on a miniature copy of the published download (fixtures/datasets/shenzhen, written
//! by scripts/dataset_fixtures/shenzhen.py with the values it expects).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/shenzhen")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "shenzhen".into(), plugin: "shenzhen".into(), root: Some(root), options, cache: None }
}

fn count(ds: &dyn Dataset) -> usize {
    [Split::Train, Split::Val, Split::Test].iter().map(|s| ds.index(*s).unwrap().len()).sum()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_shenzhen::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n = check_expected(&ds, "shenzhen", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 10);
    assert!(ds.desc().drawn_split && ds.desc().seg_labels.is_empty());
    assert_eq!(ds.desc().cls_labels, vec!["Tuberculosis"]);
    assert!(!ds.index(Split::Train).unwrap().is_empty() && !ds.index(Split::Test).unwrap().is_empty());
    // Palette and RGB PNGs both decode.
    for r in ds.index(Split::Train).unwrap() {
        let s = ds.load(&r, 64).unwrap();
        assert_eq!(s.image.len(), s.width * s.height);
    }
}

#[test]
fn masks_option_adds_the_lung_task_and_keeps_only_masked_images() {
    let ds = fx_shenzhen::open(&spec(root(), serde_json::json!({ "masks": "mask" }))).unwrap();
    let n = check_expected(&ds, "shenzhen", &root(), &root().join("expected-masks.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    assert_eq!(ds.desc().seg_labels, vec!["Lung"]);
    let w = ds.warnings().join("\n");
    assert!(w.contains("2 of 10 images have no lung mask"), "{w}");
    // An image keeps its split with and without masks.
    let plain = fx_shenzhen::open(&spec(root(), serde_json::json!({}))).unwrap();
    for split in [Split::Train, Split::Val, Split::Test] {
        let all: Vec<String> = plain.index(split).unwrap().into_iter().map(|r| r.id).collect();
        assert!(ds.index(split).unwrap().iter().all(|r| all.contains(&r.id)));
    }
}

#[test]
fn the_root_may_be_chinaset_allfiles_itself_and_the_seed_changes_the_draw() {
    let inner = root().join("ChinaSet_AllFiles");
    let ds = fx_shenzhen::open(&spec(inner.clone(), serde_json::json!({ "masks": "../mask" }))).unwrap();
    assert_eq!(count(&ds), 8);
    let a = fx_shenzhen::open(&spec(inner.clone(), serde_json::json!({ "seed": 1 }))).unwrap();
    let b = fx_shenzhen::open(&spec(inner, serde_json::json!({ "seed": 2, "split": [0.5, 0.0, 0.5] }))).unwrap();
    assert_eq!((count(&a), count(&b)), (10, 10));
    assert_eq!(b.index(Split::Train).unwrap().len(), 5);
    assert!(b.index(Split::Val).unwrap().is_empty());
}

#[test]
fn a_missing_image_folder_a_missing_mask_folder_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-shenzhen-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_shenzhen::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("ChinaSet_AllFiles/CXR_png") && e.contains(&empty.display().to_string()), "{e}");
    let e =
        fx_shenzhen::open(&spec(root(), serde_json::json!({ "masks": "no-such-folder" }))).err().unwrap().to_string();
    assert!(e.contains("no-such-folder") && e.contains("options.masks"), "{e}");
    let e = fx_shenzhen::open(&spec(root(), serde_json::json!({ "mask": "mask" }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `mask`"), "{e}");
}
