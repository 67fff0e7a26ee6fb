//! The plugin on a miniature copy of MIMIC-CXR-JPG (fixtures/datasets/mimic-cxr, written by
//! scripts/dataset_fixtures/mimic_cxr.py with the values it expects for the default options).

use fx_data::dataset::{check_expected, FileDataset};
use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/mimic-cxr")
}

fn spec(root: PathBuf, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "mimic-cxr".into(), plugin: "mimic-cxr".into(), root: Some(root), options, cache: None }
}

fn open(options: serde_json::Value) -> FileDataset {
    fx_mimic_cxr::open(&spec(root(), options)).unwrap_or_else(|e| panic!("{e}"))
}

fn count(ds: &FileDataset) -> [usize; 3] {
    [Split::Train, Split::Val, Split::Test].map(|s| ds.index(s).unwrap().len())
}

/// The cls values of the sample whose image lies in study `study`, first in index order.
fn study_cls(ds: &FileDataset, study: &str) -> Vec<f32> {
    for split in [Split::Train, Split::Val, Split::Test] {
        for r in ds.index(split).unwrap() {
            if matches!(&r.source, fx_plugin::SampleSource::File(p) if p.to_string_lossy().contains(&format!("/s{study}/")))
            {
                return ds.labels(&r, 64).unwrap().cls;
            }
        }
    }
    panic!("study {study} not in the index")
}

#[test]
fn reads_what_the_fixture_script_wrote() {
    let ds = open(serde_json::json!({}));
    let n = check_expected(&ds, "mimic-cxr", &root(), &root().join("expected.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8);
    assert!(!ds.desc().drawn_split);
    assert_eq!(ds.desc().eval_labels, ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]);
    // 9 frontal images with labels are indexed (one is missing on disk); the unlabelled study is
    // not, and is reported.
    assert_eq!(count(&ds), [4, 2, 3]);
    assert!(
        ds.warnings().iter().any(|w| w.contains("1 images belong to studies without a label row")),
        "{:?}",
        ds.warnings()
    );
    // Decoding: the val JPEGs load at their size; the missing test image is an error naming its path.
    for r in ds.index(Split::Val).unwrap() {
        let s = ds.load(&r, 64).unwrap();
        assert_eq!(s.image.len(), s.width * s.height);
    }
    let errs: Vec<String> =
        ds.index(Split::Test).unwrap().iter().filter_map(|r| ds.load(r, 64).err()).map(|e| e.to_string()).collect();
    assert!(errs.len() == 1 && errs[0].contains("files/p19/p19999987/s55555555/"), "{errs:?}");
}

#[test]
fn options_change_the_labels_and_views() {
    let d = open(serde_json::json!({}));
    let k = |l: &str| fx_mimic_cxr::LABELS.iter().position(|x| *x == l).unwrap();
    // Study 53189527: Pleural Effusion -1.0, Atelectasis 1.0, Support Devices 0.0, the rest blank.
    let c = study_cls(&d, "53189527");
    assert_eq!((c[k("Pleural Effusion")], c[k("Atelectasis")], c[k("Edema")]), (1.0, 1.0, 0.0));
    let z = study_cls(&open(serde_json::json!({ "uncertain": "zeros" })), "53189527");
    assert_eq!(z[k("Pleural Effusion")], 0.0);
    let i = study_cls(&open(serde_json::json!({ "uncertain": "ignore", "blank": "ignore" })), "53189527");
    assert!(i[k("Pleural Effusion")].is_nan() && i[k("Edema")].is_nan());
    assert_eq!((i[k("Atelectasis")], i[k("Support Devices")]), (1.0, 0.0));
    // views = "all": + LATERAL, blank ViewPosition (train), LL (validate), LATERAL (test).
    assert_eq!(count(&open(serde_json::json!({ "views": "all" }))), [6, 3, 4]);
}

#[test]
fn a_missing_label_file_and_bad_options_are_named() {
    let empty = std::env::temp_dir().join(format!("fx-mimic-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let e = fx_mimic_cxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("mimic-cxr-2.0.0-chexpert.csv.gz") && e.contains(&empty.display().to_string()), "{e}");
    std::fs::copy(root().join("mimic-cxr-2.0.0-chexpert.csv.gz"), empty.join("mimic-cxr-2.0.0-chexpert.csv.gz"))
        .unwrap();
    let e = fx_mimic_cxr::open(&spec(empty.clone(), serde_json::json!({}))).err().unwrap().to_string();
    assert!(e.contains("mimic-cxr-2.0.0-split.csv.gz"), "{e}");
    std::fs::remove_dir_all(&empty).unwrap();
    for (opts, what) in [
        (serde_json::json!({ "split": [0.7, 0.1, 0.2] }), "unknown option `split`"),
        (serde_json::json!({ "uncertain": "lsr" }), "options.uncertain"),
        (serde_json::json!({ "views": "PA" }), "options.views"),
    ] {
        let e = fx_mimic_cxr::open(&spec(root(), opts)).err().unwrap().to_string();
        assert!(e.contains(what), "{e}");
    }
}
