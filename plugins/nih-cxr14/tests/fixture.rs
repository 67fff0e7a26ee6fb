//! The plugin on a miniature copy of the NIH ChestX-ray14 download (fixtures/datasets/nih-cxr14, written
//! by scripts/dataset_fixtures/nih_cxr14.py with the values it expects for the default options), and on
//! the same files rearranged as Kaggle ships them (images_00N/images/, the older Data_Entry_2017.csv).

use fx_data::dataset::{check_expected, FileDataset};
use fx_plugin::{Dataset, DatasetSpec, Sample, Split};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/nih-cxr14")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "nih-cxr14".into(), plugin: "nih-cxr14".into(), root: Some(root), options, cache: None }
}

fn open_at(root: PathBuf, options: serde_json::Value) -> FileDataset {
    fx_nih_cxr14::open(&spec(root, options)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every sample that loads, by record id (the image name): (split, sample).
fn samples(ds: &FileDataset) -> BTreeMap<String, (Split, Sample)> {
    let mut out = BTreeMap::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        for r in ds.index(split).unwrap() {
            if let Ok(s) = ds.labels(&r, 64) {
                out.insert(r.id.clone(), (split, s));
            }
        }
    }
    out
}

fn ids(ds: &FileDataset, split: Split) -> Vec<String> {
    ds.index(split).unwrap().into_iter().map(|r| r.id).collect()
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = open_at(root(), serde_json::json!({}));
    let n = check_expected(&ds, "nih-cxr14", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 12);
    assert!(!ds.desc().drawn_split);
    assert_eq!(
        ds.desc().loc_labels,
        ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"]
    );
    assert!(ds.desc().eval_labels.is_empty());
    // The listed image that is missing is indexed and skipped when loaded; the unlisted one is not indexed.
    let train = ids(&ds, Split::Train);
    assert!(train.contains(&"00000005_000.png".to_string()));
    assert!(ds
        .labels(&ds.index(Split::Train).unwrap().into_iter().find(|r| r.id == "00000005_000.png").unwrap(), 64)
        .is_err());
    assert!(!train.iter().chain(&ids(&ds, Split::Test)).any(|i| i.starts_with("00000010")));
    assert!(ds.warnings().is_empty(), "{:?}", ds.warnings());
    // Decoding, the RGBA PNG included.
    let rgba = ds.index(Split::Train).unwrap().into_iter().find(|r| r.id == "00000003_000.png").unwrap();
    let s = ds.load(&rgba, 64).unwrap();
    assert_eq!((s.width, s.height, s.image.len()), (52, 62, 52 * 62));
}

#[test]
fn options_drop_the_boxes_and_draw_a_val_split_by_patient() {
    let d = open_at(root(), serde_json::json!({ "loc": false }));
    assert!(d.desc().loc_labels.is_empty());
    assert!(samples(&d).values().all(|(_, s)| s.boxes.is_empty()));

    let v = open_at(root(), serde_json::json!({ "val_fraction": 0.5, "seed": 7 }));
    let patient = |id: &String| id[..8].to_string();
    let tp: HashSet<String> = ids(&v, Split::Train).iter().map(patient).collect();
    let vp: HashSet<String> = ids(&v, Split::Val).iter().map(patient).collect();
    assert!(!tp.is_empty() && !vp.is_empty() && tp.is_disjoint(&vp), "{tp:?} {vp:?}");
    assert_eq!(tp.len() + vp.len(), 5);
    assert_eq!(ids(&v, Split::Test), ids(&open_at(root(), serde_json::json!({})), Split::Test));
}

/// The fixture rearranged as Kaggle's "nih-chest-xrays/data": images in images_001/images/ and
/// images_002/images/, and the 2017 Data_Entry file (CRLF, a trailing comma on the header, zero-padded
/// Patient ID and Follow-up #, ages like 058Y) instead of the 2020 one.
fn kaggle_copy(dir: &Path) {
    let src = root();
    std::fs::create_dir_all(dir).unwrap();
    for f in ["train_val_list.txt", "test_list.txt", "BBox_List_2017.csv"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(src.join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for (i, p) in names.iter().enumerate() {
        let folder = dir.join(if i < names.len() / 2 { "images_001" } else { "images_002" }).join("images");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(p, folder.join(p.file_name().unwrap())).unwrap();
    }
    let v2020 = std::fs::read_to_string(src.join("Data_Entry_2017_v2020.csv")).unwrap();
    let mut lines = v2020.lines();
    let mut out = format!("{},\r\n", lines.next().unwrap());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (follow, pid, age): (u32, u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap());
        out += &format!("{},{},{follow:03},{pid:08},{age:03}Y,{}\r\n", f[0], f[1], f[5..].join(","));
    }
    std::fs::write(dir.join("Data_Entry_2017.csv"), out).unwrap();
}

#[test]
fn the_kaggle_layout_and_the_2017_data_entry_file_read_the_same() {
    let dir = std::env::temp_dir().join(format!("fx-nih-kaggle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    kaggle_copy(&dir);
    let want = samples(&open_at(root(), serde_json::json!({})));
    let got = samples(&open_at(dir.clone(), serde_json::json!({})));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(want.len(), 12);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (id, (split, s)) in &want {
        let (gsplit, g) = &got[id];
        assert_eq!((gsplit, g.width, g.height, &g.cls, &g.boxes), (split, s.width, s.height, &s.cls, &s.boxes), "{id}");
    }
}

#[test]
fn missing_label_files_and_bad_options_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-nih-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_nih_cxr14::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(
        e.contains("Data_Entry_2017_v2020.csv")
            && e.contains("Data_Entry_2017.csv")
            && e.contains(&empty.display().to_string()),
        "{e}"
    );
    std::fs::copy(root().join("Data_Entry_2017_v2020.csv"), empty.join("Data_Entry_2017_v2020.csv")).unwrap();
    let e = fx_nih_cxr14::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("train_val_list.txt"), "{e}");
    std::fs::copy(root().join("train_val_list.txt"), empty.join("train_val_list.txt")).unwrap();
    std::fs::copy(root().join("test_list.txt"), empty.join("test_list.txt")).unwrap();
    let e = fx_nih_cxr14::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("images_001/images/"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    for (opts, what) in [
        (serde_json::json!({ "boxes": false }), "unknown option `boxes`"),
        (serde_json::json!({ "loc": "yes" }), "options.loc"),
        (serde_json::json!({ "val_fraction": -0.1 }), "options.val_fraction"),
        (serde_json::json!({ "eval_labels": ["Pleural Thickening"] }), "`Pleural Thickening` is not one of"),
    ] {
        let e = fx_nih_cxr14::open(&spec(root(), opts)).err().unwrap().to_string();
        assert!(e.contains(what), "{e}");
    }
}
