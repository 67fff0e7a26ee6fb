//! The plugin on a miniature copy of the PhysioNet download (fixtures/datasets/vindr-cxr, written by
//! scripts/dataset_fixtures/vindr_cxr.py with the values it expects), the options that change
//! labels, a Kaggle-layout copy built here, and the errors.

use fx_data::dataset::{check_expected, FileDataset, SPLITS};
use fx_plugin::{Dataset, DatasetSpec, Sample, Split};
use std::path::PathBuf;

// Ids of fixture images (md5 of "fx-fixture/vindr-cxr/<key>", see the script).
const T3: &str = "7879ca5a2c4dacd6ccfc39143aabc686"; // two Nodule/Mass boxes + a Rib fracture box
const T4: &str = "3ed3927ae8dd652ac1b7c48c32ded14e"; // 6 boxes by 3 readers, fused to 3
const T1: &str = "76800eb9e190694c7640067d0d8de738"; // Cardiomegaly by 3 readers, MONOCHROME1
const S0: &str = "f637dd64514313a1751801d799cb2a7a"; // test: "Other disease" column

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/vindr-cxr")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "vindr-cxr".into(), plugin: "vindr-cxr".into(), root: Some(root), options, cache: None }
}

fn sample(ds: &FileDataset, id: &str) -> (Split, Sample) {
    for s in SPLITS {
        for r in ds.index(s).unwrap() {
            if r.id == id {
                return (s, ds.labels(&r, 64).unwrap());
            }
        }
    }
    panic!("{id} not in the dataset")
}

fn value(ds: &FileDataset, s: &Sample, label: &str) -> f32 {
    s.cls[ds.desc().cls_labels.iter().position(|l| l == label).unwrap_or_else(|| panic!("no cls label {label}"))]
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fx-vindr-cxr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = fx_vindr_cxr::open(&spec(root(), serde_json::json!({}))).unwrap();
    let n = check_expected(&ds, "vindr-cxr", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 9);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels, fx_vindr_cxr::PAPER_CLS);
    assert_eq!(ds.desc().loc_labels, fx_vindr_cxr::LESIONS);
    // The official split: the row whose DICOM is missing is indexed (skipped when loaded), no val.
    assert_eq!(ds.index(Split::Train).unwrap().len(), 7);
    assert_eq!(ds.index(Split::Val).unwrap().len(), 0);
    assert_eq!(ds.index(Split::Test).unwrap().len(), 3);
    let missing = ds.index(Split::Train).unwrap().into_iter().find(|r| ds.labels(r, 64).is_err());
    assert!(missing.is_some());
    // The MONOCHROME1 image decodes (inverted) at its size.
    let r = ds.index(Split::Train).unwrap().into_iter().find(|r| r.id == T1).unwrap();
    let s = ds.load(&r, 64).unwrap();
    assert_eq!((s.width, s.height), (60, 48));
}

#[test]
fn raters_all_keeps_every_radiologists_box() {
    let fused = fx_vindr_cxr::open(&spec(root(), serde_json::json!({}))).unwrap();
    let all = fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "raters": "all" }))).unwrap();
    let (_, f) = sample(&fused, T4);
    let (_, a) = sample(&all, T4);
    assert_eq!((f.boxes.len(), a.boxes.len()), (3, 6));
    assert_eq!(f.cls, a.cls);
    // R10, R11, R12's Aortic enlargement boxes average to (28, 6, 36, 14).
    let ae = &f.boxes[0];
    assert_eq!((ae.x0, ae.y0, ae.x1, ae.y1), (28.0, 6.0, 36.0, 14.0));
    let (_, a1) = sample(&all, T1);
    assert_eq!(a1.boxes.len(), 4);
}

#[test]
fn label_options_change_the_label_sets() {
    let ds =
        fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "loc_labels": "all", "cls_labels": "all" }))).unwrap();
    assert_eq!(ds.desc().loc_labels.len(), 22);
    assert_eq!(ds.desc().cls_labels.len(), 28);
    let (_, t3) = sample(&ds, T3);
    let rib = ds.desc().loc_labels.iter().position(|l| l == "Rib fracture").unwrap();
    assert_eq!(t3.boxes.iter().filter(|b| b.label == rib).count(), 1);
    assert_eq!(value(&ds, &t3, "Rib fracture"), 1.0);
    assert_eq!(value(&ds, &t3, "Lung tumor"), 1.0);
    // The test file's "Other disease" is read as "Other diseases".
    let (split, s0) = sample(&ds, S0);
    assert_eq!(split, Split::Test);
    assert_eq!(
        (value(&ds, &s0, "Other diseases"), value(&ds, &s0, "Cardiomegaly"), value(&ds, &s0, "No finding")),
        (1.0, 1.0, 0.0)
    );
}

#[test]
fn val_is_drawn_from_train_by_image() {
    let ds = fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "val": 0.5, "seed": 3 }))).unwrap();
    let (tr, va, te) = (
        ds.index(Split::Train).unwrap().len(),
        ds.index(Split::Val).unwrap().len(),
        ds.index(Split::Test).unwrap().len(),
    );
    assert_eq!((tr + va, te), (7, 3));
    assert!(tr > 0 && va > 0, "{tr} {va}");
    assert!(!ds.desc().drawn_split);
}

#[test]
fn reads_the_kaggle_layout_with_a_drawn_split() {
    let dir = tmp("kaggle");
    std::fs::create_dir_all(dir.join("train")).unwrap();
    for id in [T1, T3, T4] {
        std::fs::copy(root().join(format!("train/{id}.dicom")), dir.join(format!("train/{id}.dicom"))).unwrap();
    }
    let csv = format!(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n\
         {T1},Cardiomegaly,3,R2,18.0,26.0,44.0,40.0\n\
         {T3},No finding,14,R4,,,,\n\
         {T1},Cardiomegaly,3,R5,19.0,27.0,45.0,41.0\n\
         {T4},Aortic enlargement,0,R10,28.0,6.0,36.0,14.0\n\
         {T3},No finding,14,R6,,,,\n\
         {T1},No finding,14,R9,,,,\n\
         {T4},Infiltration,6,R11,8.0,10.0,22.0,24.0\n"
    );
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    let ds = fx_vindr_cxr::open(&spec(dir.clone(), serde_json::json!({ "split": [0.34, 0.0, 0.66] }))).unwrap();
    assert!(ds.desc().drawn_split);
    assert_eq!(ds.desc().cls_labels.len(), 15);
    assert_eq!(ds.desc().cls_labels[14], "No finding");
    let n: usize = SPLITS.iter().map(|s| ds.index(*s).unwrap().len()).sum();
    assert_eq!(n, 3);
    assert!(!ds.index(Split::Train).unwrap().is_empty() && !ds.index(Split::Test).unwrap().is_empty());
    let (_, t1) = sample(&ds, T1);
    assert_eq!(t1.boxes.len(), 1);
    assert_eq!((t1.boxes[0].x0, t1.boxes[0].y1), (18.5, 40.5));
    assert_eq!(
        (value(&ds, &t1, "Cardiomegaly"), value(&ds, &t1, "No finding"), value(&ds, &t1, "Aortic enlargement")),
        (1.0, 1.0, 0.0)
    );
    let (_, t3) = sample(&ds, T3);
    assert!(t3.boxes.is_empty());
    assert_eq!(value(&ds, &t3, "No finding"), 1.0);
    let e = fx_vindr_cxr::open(&spec(dir.clone(), serde_json::json!({ "val": 0.1 }))).err().unwrap().to_string();
    assert!(e.contains("options.val") && e.contains("Kaggle"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_label_files_and_bad_options_are_named() {
    let empty = tmp("empty");
    let e = fx_vindr_cxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(
        e.contains("annotations/image_labels_train.csv")
            && e.contains("train.csv")
            && e.contains(&empty.display().to_string()),
        "{e}"
    );
    // PhysioNet layout without the test labels.
    std::fs::create_dir_all(empty.join("annotations")).unwrap();
    let copy = |f: &str| std::fs::copy(root().join("annotations").join(f), empty.join("annotations").join(f)).unwrap();
    copy("image_labels_train.csv");
    let e = fx_vindr_cxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("annotations/image_labels_test.csv"), "{e}");
    copy("image_labels_test.csv");
    copy("annotations_train.csv");
    let e = fx_vindr_cxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("annotations/annotations_test.csv"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();

    let e = fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "rater": "all" }))).err().unwrap().to_string();
    assert!(e.contains("unknown option `rater`"), "{e}");
    let e = fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "raters": "majority" }))).err().unwrap().to_string();
    assert!(e.contains("options.raters"), "{e}");
    let e =
        fx_vindr_cxr::open(&spec(root(), serde_json::json!({ "split": [0.7, 0.1, 0.2] }))).err().unwrap().to_string();
    assert!(e.contains("official"), "{e}");
}
