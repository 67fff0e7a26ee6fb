//! The file plugins on small datasets written here: what they offer, what they load, and how bad
//! input is reported.

use fx_plugin::{Dataset, DatasetSpec, Split};
use std::path::Path;

fn png(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8])).save(path).unwrap();
}

/// A COCO dataset: train with 3 images (one corrupt file, one box sticking out of its image),
/// test with 1 image; categories heart (1) and nodule (7); polygons on the heart boxes.
pub fn coco_dataset(root: &Path) {
    std::fs::create_dir_all(root.join("images")).unwrap();
    for (name, w, h) in [("a.png", 40, 30), ("b.png", 40, 30), ("t.png", 40, 30)] {
        png(&root.join("images").join(name), w, h);
    }
    std::fs::write(root.join("images/c.png"), b"not a png").unwrap();
    let cats = r#"[{"id": 1, "name": "heart"}, {"id": 7, "name": "nodule"}]"#;
    let train = format!(
        r#"{{"images": [{{"id": 1, "file_name": "a.png", "width": 40, "height": 30}},
                      {{"id": 2, "file_name": "b.png", "width": 40, "height": 30}},
                      {{"id": 3, "file_name": "c.png", "width": 40, "height": 30}}],
            "categories": {cats},
            "annotations": [
              {{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 15], "iscrowd": 0,
                "segmentation": [[10, 5, 30, 5, 30, 20, 10, 20]]}},
              {{"id": 2, "image_id": 1, "category_id": 7, "bbox": [2, 2, 4, 4], "iscrowd": 0}},
              {{"id": 3, "image_id": 2, "category_id": 7, "bbox": [35, 20, 10, 5], "iscrowd": 0}},
              {{"id": 4, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}}]}}"#
    );
    std::fs::write(root.join("train.json"), train).unwrap();
    let test = format!(
        r#"{{"images": [{{"id": 9, "file_name": "t.png", "width": 40, "height": 30}}], "categories": {cats},
            "annotations": [{{"id": 1, "image_id": 9, "category_id": 1, "bbox": [8, 6, 20, 16], "iscrowd": 0,
              "segmentation": [[8, 6, 28, 6, 28, 22, 8, 22]]}}]}}"#
    );
    std::fs::write(root.join("test.json"), test).unwrap();
}

fn spec(root: &Path, plugin: &str, options: serde_json::Value) -> DatasetSpec {
    DatasetSpec { name: "d".into(), plugin: plugin.into(), root: Some(root.to_path_buf()), options, cache: None }
}

fn open(root: &Path, plugin: &str, options: serde_json::Value) -> Result<Box<dyn Dataset>, String> {
    let entry = fx_files::plugins().into_iter().find(|e| e.name == plugin).unwrap();
    (entry.open)(&spec(root, plugin, options)).map_err(|e| e.to_string())
}

#[test]
fn coco_offers_loc_and_seg_loads_boxes_and_masks_and_reports_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    coco_dataset(dir.path());
    let opts =
        serde_json::json!({ "train": "train.json", "test": "test.json", "images": "images", "cls_from_boxes": true });
    let ds = open(dir.path(), "coco", opts.clone()).unwrap();
    let d = ds.desc();
    assert_eq!(d.loc_labels, ["heart", "nodule"]);
    assert_eq!(d.seg_labels, ["heart", "nodule"]);
    assert_eq!(d.cls_labels, ["heart", "nodule"]);
    let train = ds.index(Split::Train).unwrap();
    assert_eq!(train.len(), 3);
    assert!(ds.index(Split::Val).unwrap().is_empty());
    let a = ds.load(&train[0], 64).unwrap();
    assert_eq!((a.width, a.height, a.image.len()), (40, 30, 1200));
    assert_eq!(a.boxes.len(), 2);
    assert_eq!((a.boxes[0].label, a.boxes[0].x0, a.boxes[0].y1), (0, 10.0, 20.0));
    assert_eq!(a.boxes[1].label, 1);
    assert_eq!(a.cls, [1.0, 1.0]);
    // The heart polygon fills its box; the nodule has no mask.
    let heart: usize = a.masks[0].iter().map(|&v| v as usize).sum();
    assert!((250..=380).contains(&heart), "{heart}");
    assert_eq!(a.masks[1].iter().map(|&v| v as usize).sum::<usize>(), 0);
    // The box sticking out of b.png was clipped, and that is a warning naming the file.
    let b = ds.load(&train[1], 64).unwrap();
    assert_eq!(b.boxes[0].x1, 40.0);
    assert!(ds.warnings().iter().any(|w| w.contains("train.json")), "{:?}", ds.warnings());
    // A corrupt image is an error naming the file (the loader skips and counts it).
    let e = ds.load(&train[2], 64).unwrap_err().to_string();
    assert!(e.contains("c.png"), "{e}");

    // Malformed JSON: an error naming the file.
    std::fs::write(dir.path().join("bad.json"), "{\"images\": [").unwrap();
    let e = open(dir.path(), "coco", serde_json::json!({ "train": "bad.json", "test": "test.json" })).err().unwrap();
    assert!(e.contains("bad.json"), "{e}");
    // An annotation of an unknown category: named.
    let text = std::fs::read_to_string(dir.path().join("train.json"))
        .unwrap()
        .replace("\"category_id\": 7", "\"category_id\": 8");
    std::fs::write(dir.path().join("cat.json"), text).unwrap();
    let r = open(dir.path(), "coco", serde_json::json!({ "train": "cat.json", "test": "test.json" }));
    let said = match r {
        Err(e) => e,
        Ok(ds) => ds.warnings().join("\n"),
    };
    assert!(said.contains("cat.json") && said.contains('8'), "{said}");
    // Options: a missing test file, an unknown key.
    let e = open(dir.path(), "coco", serde_json::json!({ "train": "train.json" })).err().unwrap();
    assert!(e.contains("options.test"), "{e}");
    let e = open(dir.path(), "coco", serde_json::json!({ "train": "train.json", "test": "test.json", "imgs": "x" }))
        .err()
        .unwrap();
    assert!(e.contains("unknown option `imgs`"), "{e}");
}

#[test]
fn box_csv_splits_by_seed_and_checks_boxes_against_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("png")).unwrap();
    let mut csv = String::from("img_name,x,y,width,height,label\n");
    for i in 0..20 {
        png(&root.join(format!("png/n{i:02}.png")), 32, 32);
        if i % 2 == 0 {
            csv.push_str(&format!("n{i:02},4,5,6,7,1\n"));
        } else {
            csv.push_str(&format!("n{i:02},0,0,0,0,0\n"));
        }
    }
    csv.push_str("n00,20,20,4,4,1\n");
    std::fs::write(root.join("metadata.csv"), csv.replace("n19,0,0,0,0,0", "n19,50,50,5,5,1")).unwrap();
    let opts = serde_json::json!({ "csv": "metadata.csv", "images": "png", "format": "node21", "extension": ".png", "cls_from_boxes": true });
    let ds = open(root, "box-csv", opts.clone()).unwrap();
    assert_eq!(ds.desc().loc_labels, ["nodule"]);
    let sizes: Vec<usize> =
        [Split::Train, Split::Val, Split::Test].iter().map(|s| ds.index(*s).unwrap().len()).collect();
    assert_eq!(sizes, [14, 2, 4]);
    // Deterministic for a seed, different for another.
    let again = open(root, "box-csv", opts.clone()).unwrap();
    assert_eq!(again.index(Split::Test).unwrap(), ds.index(Split::Test).unwrap());
    let mut other = opts.clone();
    other["seed"] = serde_json::json!(5);
    assert_ne!(open(root, "box-csv", other).unwrap().index(Split::Test).unwrap(), ds.index(Split::Test).unwrap());
    // Several rows per image; negatives have no box.
    let all: Vec<_> = [Split::Train, Split::Val, Split::Test].iter().flat_map(|s| ds.index(*s).unwrap()).collect();
    let n00 = all.iter().find(|r| r.id == "n00").unwrap();
    let s = ds.load(n00, 64).unwrap();
    assert_eq!(s.boxes.len(), 2);
    assert_eq!((s.boxes[0].x0, s.boxes[0].y0, s.boxes[0].x1, s.boxes[0].y1), (4.0, 5.0, 10.0, 12.0));
    assert_eq!(s.cls, [1.0]);
    let n01 = all.iter().find(|r| r.id == "n01").unwrap();
    let s = ds.load(n01, 64).unwrap();
    assert!(s.boxes.is_empty() && s.cls == [0.0]);
    // A box outside its image: the sample fails to load with a message naming file and box.
    let n19 = all.iter().find(|r| r.id == "n19").unwrap();
    let e = ds.load(n19, 64).unwrap_err().to_string();
    assert!(e.contains("n19.png") && e.contains("outside"), "{e}");
    let e = open(root, "box-csv", serde_json::json!({ "csv": "metadata.csv", "format": "nodes" })).err().unwrap();
    assert!(e.contains("options.format"), "{e}");
}

/// RSNA-style box CSV over DICOM fixtures (fixtures/images): decoded through fx_data::input with
/// the dataset's window, the multi-frame file's warning reaches the sample, and with a cache the
/// pixels come back reduced while boxes stay in original pixels.
#[test]
fn box_csv_reads_dicom_with_its_window_warnings_and_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images");
    std::fs::create_dir_all(root.join("img")).unwrap();
    for (id, file) in
        [("p1", "dx_u12_explicit_le.dcm"), ("p2", "dx_u12_multiframe.dcm"), ("p3", "cr_u16_monochrome1.dcm")]
    {
        std::fs::copy(images.join(file), root.join("img").join(format!("{id}.dcm"))).unwrap();
    }
    std::fs::write(root.join("labels.csv"), "patientId,x,y,width,height,Target\np1,4,6,20,10,1\np2,,,,,0\np3,,,,,0\n")
        .unwrap();
    let opts = serde_json::json!({ "csv": "labels.csv", "images": "img", "extension": ".dcm", "format": "rsna",
                                   "split": [1.0, 0.0, 0.0], "window": "minmax" });
    let ds = open(root, "box-csv", opts.clone()).unwrap();
    let train = ds.index(Split::Train).unwrap();
    assert_eq!(train.len(), 3);
    let by_id = |id: &str| train.iter().find(|r| r.id == id).unwrap().clone();
    let p1 = ds.load(&by_id("p1"), 64).unwrap();
    assert_eq!((p1.width, p1.height, p1.image_dims), (40, 32, None));
    let lo = p1.image.iter().cloned().fold(f32::INFINITY, f32::min);
    let hi = p1.image.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    assert!(lo == 0.0 && hi == 1.0, "minmax window: {lo}..{hi}");
    assert!(p1.warnings.is_empty());
    let p2 = ds.load(&by_id("p2"), 64).unwrap();
    assert!(p2.warnings.iter().any(|w| w.contains("multi-frame") && w.contains("p2.dcm")), "{:?}", p2.warnings);
    // Labels without decoding: the header gives the size.
    let l = ds.labels(&by_id("p1"), 64).unwrap();
    assert!(l.image.is_empty() && (l.width, l.height) == (40, 32) && l.boxes == p1.boxes);
    // An unknown window is a named option error.
    let mut bad = opts.clone();
    bad["window"] = "auto".into();
    assert!(open(root, "box-csv", bad).err().unwrap().contains("options.window"));
    // Through the cache: reduced pixels, original-pixel boxes.
    let entry = fx_files::plugins().into_iter().find(|e| e.name == "box-csv").unwrap();
    let mut s = spec(root, "box-csv", opts);
    s.cache = Some(fx_plugin::CacheSpec { dir: root.join("cache"), longest_side: 20 });
    let cached = (entry.open)(&s).unwrap();
    let c1 = cached.load(&by_id("p1"), 64).unwrap();
    assert_eq!((c1.width, c1.height, c1.image_dims), (40, 32, Some((20, 16))));
    assert_eq!(c1.image.len(), 20 * 16);
    assert_eq!(c1.boxes, p1.boxes);
}
