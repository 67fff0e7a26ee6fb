//! `vindr-cxr`: VinDr-CXR as downloaded — the PhysioNet release 1.0.0 (with the official train/test
//! split and test labels) or the Kaggle "VinBigData Chest X-ray Abnormalities Detection" training
//! set.
//!
//! ```text
//! PhysioNet 1.0.0 (ROOT = .../physionet.org/files/vindr-cxr/1.0.0):
//! ROOT/
//!   annotations/
//!     annotations_train.csv    image_id,rad_id,class_name,x_min,y_min,x_max,y_max — one row per
//!                              box and radiologist (3 radiologists per training image); rows
//!                              without coordinates ("No finding") carry no box
//!     annotations_test.csv     the same columns (test labels: the consensus of 5 radiologists;
//!                              rad_id may be absent)
//!     image_labels_train.csv   image_id,rad_id, then one 0/1 column per label: the 22 local labels
//!                              (Aortic enlargement … Rib fracture, Other lesion), COPD, Lung tumor,
//!                              Pneumonia, Tuberculosis, Other diseases, No finding — one row per
//!                              radiologist
//!     image_labels_test.csv    image_id, the same labels (spelled "Other disease"), one row per image
//!   train/<image_id>.dicom     15,000 DICOMs (16 bit, some MONOCHROME1: fx inverts those)
//!   test/<image_id>.dicom      3,000 DICOMs
//!
//! Kaggle (ROOT = the competition download):
//! ROOT/
//!   train.csv                  image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
//!                              (class_id 0–13 the 14 lesions, 14 "No finding" without a box)
//!   train/<image_id>.dicom     (test/ has no labels and is not read)
//! ```
//!
//! Tasks and labels (names exactly as published):
//! - cls (PhysioNet): by default (`cls_labels = "paper"`) the paper's six VinDr-CXR classification
//!   labels — Pleural effusion, Lung tumor, Pneumonia, Tuberculosis, Other diseases, No finding
//!   (Foundation X / Ark's "PE, Lung tumor, Pneumonia, Tuberculosis, Other diseases, No finding",
//!   their `VinDrCXR_*_pe_global_one.txt` lists); `cls_labels = "all"`: all 28 image-level labels in
//!   the file's column order. A training image's value is 1 when ANY of its radiologists marked
//!   the label (the rule those lists follow: they hold images positive for both "Other diseases"
//!   and "No finding"), else 0; a label no row gives a value for is unknown (NaN).
//! - cls (Kaggle): the 14 lesions and "No finding", 1 when any radiologist drew a box of the
//!   lesion (or said "No finding").
//! - loc: the 14 lesion classes of the challenge and of the paper's finetuning (Aortic
//!   enlargement, Atelectasis, Calcification, Cardiomegaly, Consolidation, ILD, Infiltration, Lung
//!   Opacity, Nodule/Mass, Other lesion, Pleural effusion, Pleural thickening, Pneumothorax,
//!   Pulmonary fibrosis); boxes of the other 8 local labels are dropped unless
//!   `loc_labels = "all"` (the 22 local labels in the image-label file's order).
//!
//! The pretraining experiment (`tasks = ["cls"]`) and the lesion finetuning
//! (`experiments/finetune_vindr_lesions.toml`, `tasks = ["loc"]`) both use the defaults: each reads
//! the labels of its task.
//!
//! Readers (`raters`): `"fuse"` (default) merges the boxes of one label drawn by DIFFERENT
//! radiologists, a simplified weighted-boxes fusion with equal weights as the challenge's winners
//! and Foundation X's `*_modified_wbf.json` did: in file order, each box joins the fused box of the
//! same label with the highest IoU (> 0.5; the earliest on ties) that has no box of its radiologist
//! yet, else it starts a new one; a fused box is the coordinate-wise mean of its members; fused
//! boxes are listed in the order they were started. Boxes of one radiologist (and all test boxes,
//! a single consensus reading) are never merged. `"all"`: every radiologist's box, in file order.
//! Cls values are the same either way.
//!
//! Splits: PhysioNet — the official one (train/ → train, test/ → test); `val` (a fraction,
//! default 0: the paper has no VinDr-CXR validation split) draws validation images from the
//! training split by image with `seed` (default 0). Kaggle — no labelled test set: a seeded split by
//! image (`split`, default [0.7, 0.1, 0.2], `seed`), `drawn_split = true`.
//!
//! Options: `raters`, `cls_labels`, `loc_labels`, `val` (PhysioNet), `split` (Kaggle), `seed`,
//! `window`, `raw`. A label row whose DICOM is missing is skipped (and counted) when loaded; a box
//! with x_max ≤ x_min or y_max ≤ y_min is dropped with a warning.
//!
//! Sources: the PhysioNet VinDr-CXR 1.0.0 page and the dataset paper (Nguyen et al., Sci. Data
//! 2022), the Kaggle competition's data description, the published CSV headers as public loaders
//! read them, and jlianglab/Foundation_X (`datasets_medical.py`, `config_datasets.py`).

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options, Table, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Split};
use std::collections::HashMap;

/// The 14 lesion classes (Kaggle class_id 0–13).
pub const LESIONS: [&str; 14] = [
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
];

/// The 22 local labels (with boxes), in the image-label files' column order.
pub const LOCAL: [&str; 22] = [
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Lung cavity",
    "Lung cyst",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
];

/// The paper's VinDr-CXR classification labels ("PE" = Pleural effusion).
pub const PAPER_CLS: [&str; 6] =
    ["Pleural effusion", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "No finding"];

const NO_FINDING: &str = "No finding";
const KNOWN: [&str; 6] = ["raters", "cls_labels", "loc_labels", "val", "split", "seed"];

/// One box row of an annotation file.
#[derive(Clone, Debug)]
struct BoxRow {
    rad: String,
    label: usize,
    b: [f64; 4],
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "vindr-cxr", &KNOWN)?;
    let root = opts.root("vindr-cxr")?;
    let fuse = opts.choice("raters", &["fuse", "all"])? == "fuse";
    let loc_labels: Vec<&str> =
        if opts.choice("loc_labels", &["lesions", "all"])? == "all" { LOCAL.to_vec() } else { LESIONS.to_vec() };
    let seed = opts.u64("seed", 0)?;
    let given = |k: &str| spec.options.get(k).is_some();
    let labels_file = find_file(&root, &["annotations/image_labels_train.csv", "train.csv"], "the label list")?;
    let kaggle = labels_file.file_name().is_some_and(|n| n == "train.csv");
    let mut warnings = Vec::new();

    let (cls_labels, splits, drawn) = if kaggle {
        for k in ["val", "cls_labels"] {
            if given(k) {
                return Err(opts.err(format!(
                    "options.{k} applies to the PhysioNet layout (annotations/…); {} is the Kaggle layout",
                    labels_file.display()
                )));
            }
        }
        let cls_labels: Vec<String> = LESIONS.iter().chain([NO_FINDING].iter()).map(|s| s.to_string()).collect();
        let table = Table::read(&labels_file)?;
        let images = find_file(&root, &["train"], "the DICOM folder")?;
        let (order, boxes) = read_boxes(&table, &loc_labels, &mut warnings)?;
        // Image-level labels from the rows: any reader's box of a lesion, any reader's "No finding".
        let (img, cname) = (table.col("image_id")?, table.col("class_name")?);
        let mut cls: HashMap<String, Vec<f32>> = HashMap::new();
        for r in 0..table.rows.len() {
            let v = cls.entry(table.get(r, img).to_string()).or_insert_with(|| vec![0.0; cls_labels.len()]);
            if let Some(k) = cls_labels.iter().position(|l| l == table.get(r, cname)) {
                v[k] = 1.0;
            }
        }
        let refs: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
        let split = draw_split(&refs, opts.fractions()?, seed);
        let mut splits: [Vec<Entry>; 3] = Default::default();
        for (id, s) in order.iter().zip(split) {
            let mut e = Entry::new(id.clone(), images.join(format!("{id}.dicom")));
            e.cls = cls[id].clone();
            e.boxes = to_boxes(&boxes[id], fuse);
            splits[index(s)].push(e);
        }
        (cls_labels, splits, true)
    } else {
        if given("split") {
            return Err(opts.err("options.split: the PhysioNet layout has an official train/test split; `val` draws validation images from train"));
        }
        let val = opts.f64("val", 0.0)?;
        if !(0.0..1.0).contains(&val) {
            return Err(opts.err(format!("options.val must be a fraction in [0, 1), got {val}")));
        }
        let all_cls = opts.choice("cls_labels", &["paper", "all"])? == "all";
        let train_labels = Table::read(&labels_file)?;
        let test_labels = Table::read(&find_file(&root, &["annotations/image_labels_test.csv"], "the test labels")?)?;
        let train_boxes =
            Table::read(&find_file(&root, &["annotations/annotations_train.csv"], "the training boxes")?)?;
        let test_boxes = Table::read(&find_file(&root, &["annotations/annotations_test.csv"], "the test boxes")?)?;
        let cls_labels: Vec<String> = if all_cls {
            label_columns(&train_labels).into_iter().map(|(_, l)| l).collect()
        } else {
            PAPER_CLS.iter().map(|s| s.to_string()).collect()
        };
        let mut splits: [Vec<Entry>; 3] = Default::default();
        for (labels, boxes_table, folder, is_train) in
            [(&train_labels, &train_boxes, "train", true), (&test_labels, &test_boxes, "test", false)]
        {
            let (order, cls) = read_image_labels(labels, &cls_labels)?;
            let (box_order, boxes) = read_boxes(boxes_table, &loc_labels, &mut warnings)?;
            let unlabelled = box_order.iter().filter(|id| !cls.contains_key(*id)).count();
            if unlabelled > 0 {
                warnings.push(format!(
                    "{}: {unlabelled} image(s) have box rows but no row in {}; they are not used",
                    boxes_table.file.display(),
                    labels.file.display()
                ));
            }
            let dir = root.join(folder);
            let split: Vec<Split> = if is_train && val > 0.0 {
                let refs: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
                draw_split(&refs, [1.0 - val, val, 0.0], seed)
            } else {
                vec![if is_train { Split::Train } else { Split::Test }; order.len()]
            };
            for (id, s) in order.iter().zip(split) {
                let mut e = Entry::new(id.clone(), dir.join(format!("{id}.dicom")));
                e.cls = cls[id].clone();
                e.boxes = boxes.get(id).map(|b| to_boxes(b, fuse)).unwrap_or_default();
                splits[index(s)].push(e);
            }
        }
        (cls_labels, splits, false)
    };

    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!(
            "VinDr-CXR ({}) under {}",
            if kaggle { "Kaggle VinBigData training set" } else { "PhysioNet 1.0.0" },
            root.display()
        ),
        cls_labels,
        loc_labels: loc_labels.iter().map(|s| s.to_string()).collect(),
        drawn_split: drawn,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

fn index(s: Split) -> usize {
    SPLITS.iter().position(|x| *x == s).unwrap()
}

/// The label columns of an image-label file: (column, label name), "Other disease" (the test
/// file's spelling) read as "Other diseases".
fn label_columns(t: &Table) -> Vec<(usize, String)> {
    t.header
        .iter()
        .enumerate()
        .filter(|(_, h)| !matches!(h.as_str(), "image_id" | "rad_id" | "rad_ID" | ""))
        .map(|(c, h)| (c, if h == "Other disease" { "Other diseases".to_string() } else { h.clone() }))
        .collect()
}

/// Images in file order and their labels: per label the maximum over the image's rows (1 when any
/// radiologist marked it), NaN when no row gives a value.
fn read_image_labels(t: &Table, labels: &[String]) -> Result<(Vec<String>, HashMap<String, Vec<f32>>), PluginError> {
    let img = t.col("image_id")?;
    let columns = label_columns(t);
    let mut cols = Vec::with_capacity(labels.len());
    for l in labels {
        let c = columns.iter().find(|(_, name)| name == l).map(|(c, _)| *c).ok_or_else(|| {
            PluginError::input(t.file.display(), format!("no column `{l}`; its columns are: {}", t.header.join(", ")))
        })?;
        cols.push(c);
    }
    let mut order = Vec::new();
    let mut out: HashMap<String, Vec<f32>> = HashMap::new();
    for r in 0..t.rows.len() {
        let id = t.get(r, img);
        if id.is_empty() {
            continue;
        }
        let v = out.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            vec![f32::NAN; labels.len()]
        });
        for (k, &c) in cols.iter().enumerate() {
            let s = t.get(r, c);
            if s.is_empty() {
                continue;
            }
            let x: f32 = s
                .parse()
                .map_err(|_| PluginError::input(t.at(r), format!("`{s}` in column `{}` is not 0 or 1", t.header[c])))?;
            v[k] = if v[k].is_nan() { x } else { v[k].max(x) };
        }
    }
    Ok((order, out))
}

/// Box rows per image (file order), images in order of first appearance. Rows without coordinates
/// carry no box; boxes of labels outside `labels` are dropped (unknown class names counted).
#[allow(clippy::type_complexity)]
fn read_boxes(
    t: &Table,
    labels: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(Vec<String>, HashMap<String, Vec<BoxRow>>), PluginError> {
    let (img, cname) = (t.col("image_id")?, t.col("class_name")?);
    let rad = t.col_any(&["rad_id", "rad_ID"]).ok();
    let xy = [t.col("x_min")?, t.col("y_min")?, t.col("x_max")?, t.col("y_max")?];
    let mut order = Vec::new();
    let mut out: HashMap<String, Vec<BoxRow>> = HashMap::new();
    let (mut unknown, mut degenerate) = (Vec::<String>::new(), 0usize);
    for r in 0..t.rows.len() {
        let id = t.get(r, img);
        if id.is_empty() {
            continue;
        }
        let list = out.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Vec::new()
        });
        if xy.iter().all(|&c| t.get(r, c).is_empty()) {
            continue;
        }
        let mut b = [0f64; 4];
        for (k, &c) in xy.iter().enumerate() {
            let s = t.get(r, c);
            b[k] = s.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                PluginError::input(t.at(r), format!("`{s}` in column `{}` is not a coordinate", t.header[c]))
            })?;
        }
        let name = t.get(r, cname);
        let Some(label) = labels.iter().position(|l| *l == name) else {
            if !LOCAL.contains(&name) && !unknown.iter().any(|u| u == name) {
                unknown.push(name.to_string());
            }
            continue;
        };
        if b[2] <= b[0] || b[3] <= b[1] {
            degenerate += 1;
            continue;
        }
        list.push(BoxRow { rad: rad.map(|c| t.get(r, c).to_string()).unwrap_or_default(), label, b });
    }
    if !unknown.is_empty() {
        warnings.push(format!("{}: boxes of unknown classes dropped: {}", t.file.display(), unknown.join(", ")));
    }
    if degenerate > 0 {
        warnings.push(format!(
            "{}: {degenerate} empty box(es) (x_max <= x_min or y_max <= y_min) dropped",
            t.file.display()
        ));
    }
    Ok((order, out))
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The boxes of one image: every row's (`fuse` false) or fused across radiologists (see the
/// crate documentation).
fn to_boxes(rows: &[BoxRow], fuse: bool) -> Vec<LabeledBox> {
    let out: Vec<(usize, [f64; 4])> =
        if fuse { fuse_boxes(rows) } else { rows.iter().map(|r| (r.label, r.b)).collect() };
    out.into_iter()
        .map(|(label, b)| LabeledBox { label, x0: b[0] as f32, y0: b[1] as f32, x1: b[2] as f32, y1: b[3] as f32 })
        .collect()
}

fn fuse_boxes(rows: &[BoxRow]) -> Vec<(usize, [f64; 4])> {
    struct Cluster<'a> {
        label: usize,
        rads: Vec<&'a str>,
        members: Vec<[f64; 4]>,
        fused: [f64; 4],
    }
    let mut clusters: Vec<Cluster> = Vec::new();
    for r in rows {
        let mut best: Option<usize> = None;
        let mut best_iou = 0.5;
        for (i, c) in clusters.iter().enumerate() {
            if c.label != r.label || c.rads.contains(&r.rad.as_str()) {
                continue;
            }
            let v = iou(&c.fused, &r.b);
            if v > best_iou {
                best = Some(i);
                best_iou = v;
            }
        }
        match best {
            None => clusters.push(Cluster { label: r.label, rads: vec![&r.rad], members: vec![r.b], fused: r.b }),
            Some(i) => {
                let c = &mut clusters[i];
                c.rads.push(&r.rad);
                c.members.push(r.b);
                let n = c.members.len() as f64;
                for k in 0..4 {
                    c.fused[k] = c.members.iter().map(|m| m[k]).sum::<f64>() / n;
                }
            }
        }
    }
    clusters.into_iter().map(|c| (c.label, c.fused)).collect()
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "vindr-cxr",
        summary: "VinDr-CXR (PhysioNet 1.0.0 or Kaggle): DICOM; cls the paper's 6 labels (or all 28), loc 14 lesions (or 22), radiologists' boxes fused or all; official train/test",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
