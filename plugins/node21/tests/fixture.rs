//! The plugin on the miniature NODE21 download (fixtures/datasets/node21, written by
//! scripts/make_dataset_fixtures.py; expected.jsonl by scripts/dataset_fixtures/node21.py).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/node21")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "node21".into(), plugin: "node21".into(), root: Some(root), options, cache: None }
}

fn ids(ds: &dyn Dataset, split: Split) -> Vec<String> {
    ds.index(split).unwrap().into_iter().map(|r| r.id).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_node21::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n = check_expected(&ds, "node21", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8, "{n} samples compared");
    assert!(ds.desc().drawn_split);
    assert!(ds.warnings().is_empty(), "{:?}", ds.warnings());
}

#[test]
fn the_processed_folder_itself_is_a_root_too_and_the_split_follows_the_options() {
    let full = fx_node21::open(&spec(root(), serde_json::json!({}))).unwrap();
    let inner = fx_node21::open(&spec(root().join("cxr_images/proccessed_data"), serde_json::json!({}))).unwrap();
    for s in [Split::Train, Split::Val, Split::Test] {
        assert_eq!(ids(&full, s), ids(&inner, s));
    }
    let halves = fx_node21::open(&spec(root(), serde_json::json!({ "split": [0.5, 0.0, 0.5], "seed": 3 }))).unwrap();
    let (tr, va, te) = (ids(&halves, Split::Train), ids(&halves, Split::Val), ids(&halves, Split::Test));
    assert_eq!((tr.len(), va.len(), te.len()), (4, 0, 4));
}

#[test]
fn a_row_naming_a_missing_image_is_skipped_at_load_not_at_open() {
    let tmp = std::env::temp_dir().join(format!("fx-node21-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(&root().join("cxr_images"), &tmp.join("cxr_images"));
    let meta = tmp.join("cxr_images/proccessed_data/metadata.csv");
    let mut text = std::fs::read_to_string(&meta).unwrap();
    text.push_str("9,20,n9999.mha,1,18,10,12\n");
    std::fs::write(&meta, text).unwrap();
    let ds = fx_node21::open(&spec(tmp.clone(), serde_json::json!({}))).unwrap();
    let all: Vec<_> = [Split::Train, Split::Val, Split::Test].into_iter().flat_map(|s| ds.index(s).unwrap()).collect();
    let missing = all.iter().find(|r| r.id == "n9999").expect("the row is indexed");
    let e = ds.labels(missing, 64).err().unwrap().to_string();
    assert!(e.contains("n9999.mha"), "{e}");
    let n = check_expected(&ds, "node21", &tmp, &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_missing_label_file_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-node21-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_node21::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("cxr_images/proccessed_data/metadata.csv") && e.contains(&empty.display().to_string()), "{e}");
    let e = fx_node21::open(&spec(root(), serde_json::json!({ "splits": [0.5, 0.5, 0.0] }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `splits`"), "{e}");
    let e = fx_node21::open(&spec(root(), serde_json::json!({ "split": [0.5, 0.6, 0.0] }))).err().unwrap().to_string();
    assert!(e.contains("options.split"), "{e}");
}
