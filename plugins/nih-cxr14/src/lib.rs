//! `nih-cxr14`: NIH ChestX-ray14 (NIH Clinical Center) as downloaded from the NIH Box folder or
//! Kaggle's copy.
//!
//! ```text
//! ROOT/
//! ├── Data_Entry_2017_v2020.csv    Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,
//! │   (or Data_Entry_2017.csv,     Patient Gender,View Position,OriginalImage[Width,Height],
//! │    the older file: trailing    OriginalImagePixelSpacing[x,y] — Finding Labels "A|B|..." or
//! │    empty column, padded ids)   "No Finding"; OriginalImage* is the size BEFORE the release's
//! │                                resize to 1024 × 1024 and is not used
//! ├── train_val_list.txt           image names, one per line (86,524)
//! ├── test_list.txt                (25,596)
//! ├── BBox_List_2017.csv           Image Index,Finding Label,Bbox [x,y,w,h],,, — optional; x, y, w, h
//! │                                in the 4 columns after the label (read by position); ~1,000 boxes
//! │                                on ~880 images, labels as below but `Infiltrate`
//! └── images/00000001_000.png ...  8-bit PNG (a few RGBA), 1024 × 1024 — or Kaggle's
//!     images_001/images/ ... images_012/images/   (each image is found wherever it is: the image
//!                                                    folders are indexed once, at open)
//! ```
//!
//! Tasks: cls — the 14 labels Atelectasis, Cardiomegaly, Effusion, Infiltration, Mass, Nodule,
//! Pneumonia, Pneumothorax, Consolidation, Edema, Emphysema, Fibrosis, Pleural_Thickening, Hernia
//! (1 when the label is in Finding Labels, else 0; "No Finding" = all 0); `eval_labels` default to
//! all 14. loc — when BBox_List_2017.csv is present and `loc` is true (default): the 8 box labels
//! Atelectasis, Cardiomegaly, Effusion, Infiltration, Mass, Nodule, Pneumonia, Pneumothorax. The box
//! file's `Infiltrate` is named **Infiltration**, the cls label's name (as TorchXRayVision does), so
//! one finding has one name. Boxes exist for ~880 images only; every other image has no box, which
//! a loc task reads as "nothing to find" (fx has no per-task sample subset yet, so a loc epoch on
//! this dataset visits every image of the split, boxed or not).
//! `loc = false` drops the loc task (the paper pretrains on NIH with cls only).
//!
//! Split (official, `drawn_split = false`): test_list.txt → test; train_val_list.txt → train, with a
//! val split drawn from it BY `Patient ID` (fraction `val_fraction`, default 0.1; 0 = none; seeded
//! by `seed`, default 0). Images in neither list are left out (one warning).
//!
//! Options: `loc`, `val_fraction`, `seed`, `eval_labels`, `window`, `raw`.
//! Sources: the NIH release (README_CHESTXRAY.pdf and the Box folder's file list), Kaggle's
//! "nih-chest-xrays/data" layout, Wang et al., CVPR 2017; TorchXRayVision `datasets.py`
//! (`NIH_Dataset`) and its copies of Data_Entry_2017(_v2020).csv and BBox_List_2017.csv.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options, Table};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Split};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub const CLS_LABELS: [&str; 14] = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
];

pub const LOC_LABELS: [&str; 8] =
    ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"];

/// Image file name → path, over `images/`, `images_NNN/` and `images_NNN/images/`.
fn index_images(root: &Path) -> Result<(HashMap<String, PathBuf>, PathBuf, usize), PluginError> {
    let read = |dir: &Path| -> Result<Vec<PathBuf>, PluginError> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| PluginError::input(dir.display(), format!("cannot list: {e}")))?
            .filter_map(|d| d.ok().map(|d| d.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut folders: Vec<PathBuf> = Vec::new();
    for p in read(root)? {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if p.is_dir() && name.starts_with("images") {
            folders.push(p.clone());
            let nested = p.join("images");
            if nested.is_dir() {
                folders.push(nested);
            }
        }
    }
    if folders.is_empty() {
        return Err(PluginError::input(
            root.display(),
            "the images: expected `images/` or `images_001/images/` ... `images_012/images/` under this root",
        ));
    }
    let mut map = HashMap::new();
    let mut duplicates = 0;
    for f in &folders {
        for p in read(f)? {
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) && p.is_file() {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if let std::collections::hash_map::Entry::Vacant(e) = map.entry(name) {
                    e.insert(p);
                } else {
                    duplicates += 1;
                }
            }
        }
    }
    let default_dir = if root.join("images").is_dir() { root.join("images") } else { folders[0].clone() };
    Ok((map, default_dir, duplicates))
}

fn read_list(path: &Path) -> Result<HashSet<String>, PluginError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| PluginError::input(path.display(), format!("cannot read: {e}")))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// A Patient ID without its zero padding (the 2017 file writes 00000001, the 2020 one 1).
fn patient_key(s: &str) -> String {
    let t = s.trim_start_matches('0');
    if t.is_empty() && !s.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// Boxes per image name from BBox_List_2017.csv, in file order.
fn read_boxes(t: &Table, warnings: &mut Vec<String>) -> Result<HashMap<String, Vec<LabeledBox>>, PluginError> {
    let img = t.col("Image Index")?;
    let lab = t.col("Finding Label")?;
    let mut out: HashMap<String, Vec<LabeledBox>> = HashMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for r in 0..t.rows.len() {
        let name = t.get(r, img);
        if name.is_empty() {
            continue;
        }
        let label = match t.get(r, lab) {
            "Infiltrate" => "Infiltration",
            l => l,
        };
        let Some(k) = LOC_LABELS.iter().position(|l| *l == label) else {
            unknown.push(format!("line {} `{label}`", r + 2));
            continue;
        };
        let num = |c: usize| -> Result<f32, PluginError> {
            let s = t.get(r, c);
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| PluginError::input(t.at(r), format!("`{s}` (column {}) is not a box coordinate", c + 1)))
        };
        let (x, y, w, h) = (num(lab + 1)?, num(lab + 2)?, num(lab + 3)?, num(lab + 4)?);
        out.entry(name.to_string()).or_default().push(LabeledBox { label: k, x0: x, y0: y, x1: x + w, y1: y + h });
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "{}: {} boxes with an unknown label are ignored ({})",
            t.file.display(),
            unknown.len(),
            unknown.join(", ")
        ));
    }
    Ok(out)
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "nih-cxr14", &["loc", "val_fraction", "seed", "eval_labels"])?;
    let root = opts.root("nih-cxr14")?;
    let want_loc = opts.bool("loc", true)?;
    let val_fraction = opts.f64("val_fraction", 0.1)?;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(opts.err(format!("options.val_fraction must be in [0, 1), got {val_fraction}")));
    }
    let seed = opts.u64("seed", 0)?;
    let cls_labels: Vec<String> = CLS_LABELS.iter().map(|s| s.to_string()).collect();
    let eval_labels = opts.strings("eval_labels", &cls_labels)?.unwrap_or_default();

    let entries =
        Table::read(&find_file(&root, &["Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"], "the image labels")?)?;
    let train_val = read_list(&find_file(&root, &["train_val_list.txt"], "the official train/val list")?)?;
    let test = read_list(&find_file(&root, &["test_list.txt"], "the official test list")?)?;
    let mut warnings = Vec::new();
    let boxes = match (want_loc, root.join("BBox_List_2017.csv")) {
        (true, p) if p.is_file() => Some(read_boxes(&Table::read(&p)?, &mut warnings)?),
        _ => None,
    };
    let (images, default_dir, duplicates) = index_images(&root)?;
    if duplicates > 0 {
        warnings.push(format!("nih-cxr14: {duplicates} image names occur in more than one image folder; the first (in name order) is used"));
    }

    let (cimg, clab, cpat) = (entries.col("Image Index")?, entries.col("Finding Labels")?, entries.col("Patient ID")?);
    let mut train_rows: Vec<(String, Entry)> = Vec::new();
    let mut test_rows: Vec<Entry> = Vec::new();
    let (mut unlisted, mut in_both) = (0usize, 0usize);
    let mut unknown: HashMap<String, usize> = HashMap::new();
    let mut named: HashSet<&str> = HashSet::new();
    for r in 0..entries.rows.len() {
        let name = entries.get(r, cimg);
        if name.is_empty() {
            continue;
        }
        named.insert(name);
        let mut cls = vec![0.0f32; CLS_LABELS.len()];
        for f in entries.get(r, clab).split('|').map(str::trim).filter(|f| !f.is_empty() && *f != "No Finding") {
            match CLS_LABELS.iter().position(|l| *l == f) {
                Some(k) => cls[k] = 1.0,
                None => *unknown.entry(f.to_string()).or_default() += 1,
            }
        }
        let image = images.get(name).cloned().unwrap_or_else(|| default_dir.join(name));
        let mut e = Entry::new(name.to_string(), image);
        e.cls = cls;
        if let Some(b) = boxes.as_ref().and_then(|b| b.get(name)) {
            e.boxes = b.clone();
        }
        match (test.contains(name), train_val.contains(name)) {
            (true, both) => {
                in_both += both as usize;
                test_rows.push(e);
            }
            (false, true) => train_rows.push((patient_key(entries.get(r, cpat)), e)),
            (false, false) => unlisted += 1,
        }
    }
    if unlisted > 0 {
        warnings.push(format!(
            "{}: {unlisted} images are in neither train_val_list.txt nor test_list.txt; they are left out",
            entries.file.display()
        ));
    }
    if in_both > 0 {
        warnings.push(format!(
            "nih-cxr14: {in_both} images are in both train_val_list.txt and test_list.txt; they are used for test"
        ));
    }
    if !unknown.is_empty() {
        let mut u: Vec<String> = unknown.iter().map(|(k, n)| format!("`{k}` ×{n}")).collect();
        u.sort();
        warnings.push(format!("{}: unknown finding labels are ignored: {}", entries.file.display(), u.join(", ")));
    }
    if let Some(b) = &boxes {
        let orphans = b.keys().filter(|k| !named.contains(k.as_str())).count();
        if orphans > 0 {
            warnings.push(format!(
                "BBox_List_2017.csv: {orphans} images with boxes have no row in {}; their boxes are not used",
                entries.file.display()
            ));
        }
    }

    let groups: Vec<&str> = train_rows.iter().map(|(p, _)| p.as_str()).collect();
    let drawn = draw_split(&groups, [1.0 - val_fraction, val_fraction, 0.0], seed);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for ((_, e), s) in train_rows.into_iter().zip(drawn) {
        splits[if s == Split::Train { 0 } else { 1 }].push(e);
    }
    splits[2] = test_rows;

    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!(
            "NIH ChestX-ray14 ({}) under {}",
            entries.file.file_name().unwrap_or_default().to_string_lossy(),
            root.display()
        ),
        cls_labels,
        loc_labels: if boxes.is_some() { LOC_LABELS.iter().map(|s| s.to_string()).collect() } else { vec![] },
        eval_labels,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "nih-cxr14",
        summary: "NIH ChestX-ray14: PNG; cls 14 labels, loc 8 box labels (BBox_List_2017); official train_val/test lists (+ val by patient)",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
