//! The plugin on a miniature copy of the published download (fixtures/datasets/chestx-det,
//! written by scripts/dataset_fixtures/chestx_det.py with the values it expects).

use fx_data::dataset::check_expected;
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/chestx-det")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "chestx-det".into(), plugin: "chestx-det".into(), root: Some(root), options, cache: None }
}

fn ids(ds: &dyn Dataset, split: Split) -> BTreeSet<String> {
    ds.index(split).unwrap().into_iter().map(|r| r.id).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_chestx_det::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n =
        check_expected(&ds, "chestx-det", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 10, "{n} samples compared");
    assert_eq!(loads_like_labels(&ds), 10);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels.len(), 13);
    assert!(ids(&ds, Split::Val).is_empty());
    // The entry whose PNG is missing is indexed (skipped at load) and reported at open.
    assert_eq!(ids(&ds, Split::Train).len(), 8);
    assert!(ds.warnings().iter().any(|w| w.contains("1 of 8 listed images are missing")), "{:?}", ds.warnings());
}

#[test]
fn val_is_a_seeded_draw_from_the_official_train_set() {
    let base = fx_chestx_det::open(&spec(root(), serde_json::json!({}))).unwrap();
    let train = ids(&base, Split::Train);
    let test = ids(&base, Split::Test);
    let ds = fx_chestx_det::open(&spec(root(), serde_json::json!({ "val": 0.25, "seed": 5 }))).unwrap();
    let (t, v) = (ids(&ds, Split::Train), ids(&ds, Split::Val));
    assert_eq!(v.len(), 2); // round(8 × 0.25)
    assert!(t.is_disjoint(&v));
    assert_eq!(t.union(&v).cloned().collect::<BTreeSet<_>>(), train);
    assert_eq!(ids(&ds, Split::Test), test);
    let again = fx_chestx_det::open(&spec(root(), serde_json::json!({ "val": 0.25, "seed": 5 }))).unwrap();
    assert_eq!(ids(&again, Split::Val), v);
    // Labels do not depend on the split: the val samples read as in expected.jsonl.
    let e = check_expected(&ds, "chestx-det", &root(), &root().join("expected.jsonl")).err().unwrap_or_default();
    let parse = |prefix: &str| -> Vec<serde_json::Value> {
        e.lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .map(|j| serde_json::from_str(j.trim()).unwrap())
            .collect()
    };
    let (got, want) = (parse("fx:"), parse("expected:"));
    assert_eq!((got.len(), want.len()), (2, 2), "{e}");
    for (mut g, mut w) in got.into_iter().zip(want) {
        assert_eq!((g["split"].as_str(), w["split"].as_str()), (Some("val"), Some("train")));
        g["split"] = serde_json::Value::Null;
        w["split"] = serde_json::Value::Null;
        assert_eq!(g, w);
    }
}

#[test]
fn missing_files_and_bad_options_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-chestx-det-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_chestx_det::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("ChestX_Det_train.json") && e.contains(&empty.display().to_string()), "{e}");
    // The annotations without the image folders: the folder names looked for are given.
    for f in ["ChestX_Det_train.json", "ChestX_Det_test.json"] {
        std::fs::copy(root().join(f), empty.join(f)).unwrap();
    }
    let e = fx_chestx_det::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("`train`") && e.contains("train_data/train"), "{e}");
    // An unknown category is an error naming the file and the entry.
    std::fs::create_dir_all(empty.join("train")).unwrap();
    std::fs::create_dir_all(empty.join("test")).unwrap();
    std::fs::write(
        empty.join("ChestX_Det_test.json"),
        r#"[{"file_name": "1.png", "syms": ["Infiltration"], "boxes": [[1, 1, 4, 4]], "polygons": [[[1, 1], [4, 1], [4, 4]]]}]"#,
    )
    .unwrap();
    let e = fx_chestx_det::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("ChestX_Det_test.json") && e.contains("entry 0") && e.contains("Infiltration"), "{e}");
    let e =
        fx_chestx_det::open(&spec(root(), serde_json::json!({ "split": [0.7, 0.1, 0.2] }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `split`"), "{e}");
    let e = fx_chestx_det::open(&spec(root(), serde_json::json!({ "val": 1.5 }))).err().unwrap().to_string();
    assert!(e.contains("options.val"), "{e}");
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
