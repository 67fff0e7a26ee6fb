//! `vindr-ribcxr`: VinDr-RibCXR (individual rib segmentation, 245 chest X-rays) as downloaded.
//!
//! ```text
//! ROOT/                         the release's `data/` folder (ROOT/data/… is accepted too)
//!   train/
//!     img/VinDr_RibCXR_train_000.png …      196 radiographs (PNG)
//!     Vindr_RibCXR_train_mask.json          the labels of the split (any `*_mask.json`)
//!   val/
//!     img/VinDr_RibCXR_val_000.png …        49 radiographs
//!     Vindr_RibCXR_val_mask.json
//!   (test/ …                                 read when a redistribution has one)
//! ```
//!
//! The JSON is a pandas "columns" table: `{"img": {"0": "data/train/img/VinDr_RibCXR_train_000.png",
//! …}, "R1": {"0": [{"x": 1027.81, "y": 470.69}, …], …}, …, "L10": {…}}` — for every image index
//! one polygon per rib, or the string "None" where the rib is not annotated (an empty mask). The
//! image is looked up by its file name in the split's `img/` folder (the JSON's paths are relative
//! to the folder above `data/`).
//!
//! Task: seg only (as in the paper) — 20 labels R1 … R10, L1 … L10 (the JSON's keys: R = the
//! patient's right ribs). Masks are the polygons filled by fx's pixel-centre rule (pixel (x, y)
//! covers [x, x+1) × [y, y+1); the vertices are read as such continuous coordinates). The release's
//! own loader truncates the vertices to integers and fills with OpenCV's `fillPoly`, which also
//! covers the boundary pixels, so its masks are up to about one pixel wider along the contours.
//! A polygon of fewer than 3 points is read as an empty mask (with a warning).
//!
//! Splits: the release's own — train/ → train; val/ (49 images) → test, as the paper (196 / – / 49)
//! and Foundation X use it; `val_split = "val"` puts it in val instead (and leaves test empty). If
//! a test/ folder with a `*_mask.json` exists, it is the test split and val/ is val.
//!
//! Options: `val_split` ("test" | "val"), `window`, `raw`. A JSON entry whose PNG is missing is
//! skipped (and counted) when loaded.
//!
//! Sources: the README, `cvcore/data/multi_rib_dataset.py` and `visualize.ipynb` of
//! github.com/vinbigdata-medical/MIDL2021-VinDr-RibCXR (the layout, the JSON format, "None", the 20
//! label names), the dataset paper (Nguyen et al., MIDL 2021, arXiv:2107.01327) and
//! jlianglab/Foundation_X `datasets_medical.py` (`VinDrRibCXRDataset`).

use fx_data::dataset::{Entry, FileDataset, MaskSource, Options, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError, Split};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const RIBS: [&str; 20] = [
    "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9",
    "L10",
];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "vindr-ribcxr", &["val_split"])?;
    let root = opts.root("vindr-ribcxr")?;
    let val_split = opts.choice("val_split", &["test", "val"])?;
    // The release's `data/` folder, or the folder above it.
    let base = if !root.join("train").is_dir() && root.join("data").join("train").is_dir() {
        root.join("data")
    } else {
        root.clone()
    };
    let mut warnings = Vec::new();
    let train = mask_json(&base, "train")?;
    let val = mask_json(&base, "val")?;
    let test = if base.join("test").is_dir() { mask_json(&base, "test").ok() } else { None };
    let mut parts: Vec<(&str, PathBuf, Split)> = vec![("train", train, Split::Train)];
    match test {
        Some(t) => {
            if spec.options.get("val_split").is_some() {
                return Err(opts.err(format!(
                    "options.val_split: {} has its own test split, so val/ is the validation split",
                    base.display()
                )));
            }
            parts.push(("val", val, Split::Val));
            parts.push(("test", t, Split::Test));
        }
        None => parts.push(("val", val, if val_split == "val" { Split::Val } else { Split::Test })),
    }
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for (folder, json, split) in parts {
        let entries = read_split(&base.join(folder), &json, &mut warnings)?;
        splits[SPLITS.iter().position(|s| *s == split).unwrap()].extend(entries);
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("VinDr-RibCXR under {}", base.display()),
        seg_labels: RIBS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

/// The one `*_mask.json` of a split folder, or an error naming the expected file.
fn mask_json(base: &Path, split: &str) -> Result<PathBuf, PluginError> {
    let dir = base.join(split);
    let expected = dir.join(format!("Vindr_RibCXR_{split}_mask.json"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.to_ascii_lowercase().ends_with("_mask.json"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.pop().unwrap()),
        0 => Err(PluginError::input(
            expected.display(),
            format!(
                "the {split} labels are missing: expected this file (or another `*_mask.json` in {})",
                dir.display()
            ),
        )),
        _ => Err(PluginError::input(
            dir.display(),
            format!(
                "several label files: {}; keep one",
                found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn read_split(dir: &Path, json: &Path, warnings: &mut Vec<String>) -> Result<Vec<Entry>, PluginError> {
    let bad = |what: String| PluginError::input(json.display(), what);
    let bytes = std::fs::read(json).map_err(|e| bad(format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let table = v.as_object().ok_or_else(|| bad("expected an object with keys \"img\", \"R1\" … \"L10\"".into()))?;
    let img = table
        .get("img")
        .and_then(|x| x.as_object())
        .ok_or_else(|| bad("no \"img\" object (image index → path)".into()))?;
    let mut columns = Vec::with_capacity(RIBS.len());
    for rib in RIBS {
        columns.push(
            table
                .get(rib)
                .and_then(|x| x.as_object())
                .ok_or_else(|| bad(format!("no \"{rib}\" object (image index → polygon)")))?,
        );
    }
    let mut keys: Vec<&String> = img.keys().collect();
    keys.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), k.to_string()));
    let mut short = 0usize;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let path = img[key].as_str().ok_or_else(|| bad(format!("img[{key}] is not a path")))?;
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let mut image = dir.join("img").join(name);
        if !image.is_file() && dir.join(name).is_file() {
            image = dir.join(name);
        }
        let id = image
            .strip_prefix(dir.parent().unwrap_or(dir))
            .unwrap_or(&image)
            .with_extension("")
            .to_string_lossy()
            .replace('\\', "/");
        let mut e = Entry::new(id, image);
        for (rib, col) in RIBS.iter().zip(&columns) {
            e.masks.push(match col.get(key.as_str()) {
                None | Some(Value::Null) => MaskSource::Empty,
                Some(Value::String(s)) if s == "None" || s.is_empty() => MaskSource::Empty,
                Some(Value::Array(points)) => {
                    let mut flat = Vec::with_capacity(points.len() * 2);
                    for (i, p) in points.iter().enumerate() {
                        let c = |k: &str| p.get(k).and_then(|x| x.as_f64()).filter(|x| x.is_finite());
                        match (c("x"), c("y")) {
                            (Some(x), Some(y)) => flat.extend([x as f32, y as f32]),
                            _ => {
                                return Err(bad(format!(
                                    "{rib}[{key}] point {i} is not {{\"x\": number, \"y\": number}}"
                                )))
                            }
                        }
                    }
                    if flat.len() < 6 {
                        short += 1;
                        MaskSource::Empty
                    } else {
                        MaskSource::Polygons(vec![flat])
                    }
                }
                Some(other) => {
                    return Err(bad(format!("{rib}[{key}] is neither a list of points nor \"None\": {other}")))
                }
            });
        }
        out.push(e);
    }
    if short > 0 {
        warnings
            .push(format!("{}: {short} rib polygon(s) with fewer than 3 points read as empty masks", json.display()));
    }
    Ok(out)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "vindr-ribcxr",
        summary: "VinDr-RibCXR: PNG + per-split JSON polygons; seg 20 ribs R1..R10, L1..L10; official train (196) / val (49, the paper's test)",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
