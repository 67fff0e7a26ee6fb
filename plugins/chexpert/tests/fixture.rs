//! The plugin on a miniature copy of the CheXpert download (fixtures/datasets/chexpert, written by
//! scripts/dataset_fixtures/chexpert.py with the values it expects for the default options).

use fx_data::dataset::{check_expected, FileDataset};
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::collections::HashSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/chexpert")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "chexpert".into(), plugin: "chexpert".into(), root: Some(root), options, cache: None }
}

fn open(options: serde_json::Value) -> FileDataset {
    fx_chexpert::open(&spec(root(), options)).unwrap_or_else(|e| panic!("{e}"))
}

/// The cls value of one label of one sample (by the CSV's Path), from `labels`.
fn value(ds: &FileDataset, path_suffix: &str, label: &str) -> f32 {
    let k = ds.desc().cls_labels.iter().position(|l| l == label).unwrap();
    for split in [Split::Train, Split::Val, Split::Test] {
        for r in ds.index(split).unwrap() {
            if r.id.ends_with(path_suffix) {
                return ds.labels(&r, 64).unwrap().cls[k];
            }
        }
    }
    panic!("{path_suffix} not in the index")
}

fn ids(ds: &FileDataset, split: Split) -> Vec<String> {
    ds.index(split).unwrap().into_iter().map(|r| r.id).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = open(serde_json::json!({}));
    let n = check_expected(&ds, "chexpert", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 10);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels.len(), 14);
    assert_eq!(ds.desc().eval_labels, ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]);
    // The row whose image is missing is indexed (skipped when loaded), the unlisted image is not.
    let train = ids(&ds, Split::Train);
    assert!(train.iter().any(|i| i.ends_with("patient00004/study1/view1_frontal.jpg")));
    assert!(!train.iter().any(|i| i.contains("patient00006")));
    assert!(!train.iter().any(|i| i.contains("lateral")));
    // Decoding (not only the header): every JPEG of the index that exists.
    let loaded = ds
        .index(Split::Test)
        .unwrap()
        .iter()
        .map(|r| ds.load(r, 64).unwrap())
        .filter(|s| s.image.len() == s.width * s.height)
        .count();
    assert_eq!(loaded, 3);
}

#[test]
fn options_change_the_labels_views_and_val_split() {
    let d = open(serde_json::json!({}));
    let edema = "patient00002/study2/view1_frontal.jpg"; // Edema -1.0, Pneumonia blank
    assert_eq!(value(&d, edema, "Edema"), 1.0);
    assert_eq!(value(&d, edema, "Pneumonia"), 0.0);
    let z = open(serde_json::json!({ "uncertain": "zeros" }));
    assert_eq!(value(&z, edema, "Edema"), 0.0);
    assert_eq!(value(&z, edema, "Lung Opacity"), 1.0);
    let i = open(serde_json::json!({ "uncertain": "ignore", "blank": "ignore" }));
    assert!(value(&i, edema, "Edema").is_nan());
    assert!(value(&i, edema, "Pneumonia").is_nan());
    assert_eq!(value(&i, edema, "Fracture"), 1.0);

    // views = "all" adds the 3 lateral images (2 train, 1 test).
    let all = open(serde_json::json!({ "views": "all" }));
    assert_eq!(ids(&all, Split::Train).len(), ids(&d, Split::Train).len() + 2);
    assert_eq!(ids(&all, Split::Test).len(), ids(&d, Split::Test).len() + 1);
    assert!(ids(&all, Split::Test).iter().any(|i| i.ends_with("patient64542/study1/view2_lateral.jpg")));

    // A larger val fraction draws whole patients from train.csv; valid.csv stays the test split.
    let v = open(serde_json::json!({ "val_fraction": 0.5, "seed": 3 }));
    let patient = |id: &String| id.split('/').find(|c| c.starts_with("patient")).unwrap().to_string();
    let tp: HashSet<String> = ids(&v, Split::Train).iter().map(patient).collect();
    let vp: HashSet<String> = ids(&v, Split::Val).iter().map(patient).collect();
    assert!(!tp.is_empty() && !vp.is_empty() && tp.is_disjoint(&vp), "{tp:?} {vp:?}");
    assert_eq!(tp.len() + vp.len(), 5);
    assert_eq!(ids(&v, Split::Test), ids(&d, Split::Test));

    let e = open(serde_json::json!({ "eval_labels": ["Edema"] }));
    assert_eq!(e.desc().eval_labels, ["Edema"]);
}

#[test]
fn a_missing_label_file_and_bad_options_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-chexpert-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_chexpert::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("train.csv") && e.contains(&empty.display().to_string()), "{e}");
    std::fs::copy(root().join("train.csv"), empty.join("train.csv")).unwrap();
    let e = fx_chexpert::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("valid.csv"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();

    for (opts, what) in [
        (serde_json::json!({ "uncertainty": "ones" }), "unknown option `uncertainty`"),
        (serde_json::json!({ "uncertain": "maybe" }), "options.uncertain"),
        (serde_json::json!({ "views": "lateral" }), "options.views"),
        (serde_json::json!({ "val_fraction": 1.5 }), "options.val_fraction"),
        (serde_json::json!({ "eval_labels": ["Effusion"] }), "`Effusion` is not one of"),
    ] {
        let e = fx_chexpert::open(&spec(root(), opts)).err().unwrap().to_string();
        assert!(e.contains(what), "{e}");
    }
}
