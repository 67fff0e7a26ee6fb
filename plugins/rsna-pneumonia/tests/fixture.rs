//! The plugin on a miniature copy of the published download (fixtures/datasets/rsna-pneumonia,
//! written by scripts/dataset_fixtures/rsna_pneumonia.py with the values it expects).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/rsna-pneumonia")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec {
        name: "rsna-pneumonia".into(),
        plugin: "rsna-pneumonia".into(),
        root: Some(root),
        options,
        cache: None,
    }
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_rsna_pneumonia::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n = check_expected(&ds, "rsna-pneumonia", &root(), &root().join("expected.jsonl"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 8, "{n} samples compared");
    assert!(ds.desc().drawn_split);
}

#[test]
fn a_missing_label_file_and_a_bad_option_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-rsna-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_rsna_pneumonia::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("stage_2_train_labels.csv") && e.contains(&empty.display().to_string()), "{e}");
    let e = fx_rsna_pneumonia::open(&spec(root(), serde_json::json!({ "splits": [0.5, 0.5, 0.0] })))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown option `splits`"), "{e}");
}
