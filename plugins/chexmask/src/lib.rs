//! `chexmask`: the VinDr-CXR part of the CheXmask database (heart and lung masks) as downloaded,
//! over the VinDr-CXR images it refers to.
//!
//! ```text
//! ROOT/                                     PhysioNet chexmask-cxr-segmentation-data (1.0.0)
//!   OriginalResolution/VinDr-CXR.csv        (or .csv.gz, as the first releases shipped it)
//!       image_id, Dice RCA (Mean), Dice RCA (Max), Landmarks, Left Lung, Right Lung, Heart,
//!       Height, Width — one row per image (18,000: VinDr-CXR's train and test images); the masks
//!       as run-length codes at Height × Width, the image's original size
//!   Preprocessed/VinDr-CXR.csv              masks of the 1024 × 1024 padded images: not read
//!   (other datasets' tables: not read)
//! IMAGES/                                   options.images: a VinDr-CXR download (PhysioNet
//!   train/<image_id>.dicom                  1.0.0 or Kaggle), absolute or relative to ROOT —
//!   test/<image_id>.dicom                   CheXmask ships no images
//! ```
//!
//! Run-length codes: CheXmask's own convention (`DataPostprocessing/utils.py`,
//! `get_RLE_from_mask` / `get_mask_from_RLE`): "start length" pairs, absolute 1-based starts over
//! the row-major flattened Height × Width mask, an empty mask as an empty field — what
//! `fx_data::masks::chexmask_rle_decode` reads. A mask whose Height × Width differs from its
//! image is resized to it by nearest neighbour (the OriginalResolution tables match their images).
//!
//! Tasks: seg and loc — labels Heart, Left Lung, Right Lung (the CSV's column names, in the
//! paper's order; "Left"/"Right" are the patient's: the Right Lung lies on the image's left).
//! Boxes are the tight boxes of the masks (as the paper derives them). `labels = ["Heart"]` keeps
//! a subset (in that order), for the paper's per-organ tasks (Table 3/8).
//!
//! Quality: rows with `Dice RCA (Mean)` below `min_dice_rca` (default 0.7, the threshold the
//! CheXmask authors recommend) are left out of every split (set 0 to keep all).
//!
//! Splits: VinDr-CXR's official one, by where the image is: IMAGES/train/ → train, IMAGES/test/ →
//! test. A row whose image is in neither folder is put in train and skipped (and counted) when
//! loaded. `val` (fraction, default 0, as the paper's 15,000 / – / 3,000) draws validation images
//! from train by image with `seed` (default 0). `part = [k, n]` then keeps only the k-th (0-based)
//! of n disjoint, seeded, equal parts of the remaining training images — the paper divides
//! VinDr-CXR's training split into non-overlapping subsets per task and organ (7,500 for loc and
//! 7,500 for seg, each cut into heart / left lung / right lung parts: `part = [0, 6]` … `[5, 6]`);
//! val and test are not divided.
//!
//! Options: `images` (required), `csv` (the table, relative to ROOT; default
//! OriginalResolution/VinDr-CXR.csv, then .csv.gz), `min_dice_rca`, `labels`, `val`, `seed`,
//! `part`, `window`, `raw`.
//!
//! Sources: the CheXmask README and DATA_DICTIONARY (PhysioNet), github.com/ngaggion/CheXmask-Database
//! (`DataPostprocessing/utils.py`, `ReversePreprocessing/back_vin.py` — which writes
//! OriginalResolution/VinDr-CXR.csv with these columns —, `Example.ipynb`), the paper (Gaggion et
//! al., Sci. Data 2024) and Foundation X's use of it (paper Sections 4–5, Table 1).

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, Table, SPLITS};
use fx_data::rng::{mix, Rng};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError, Split};
use std::collections::HashSet;
use std::path::Path;

pub const ORGANS: [&str; 3] = ["Heart", "Left Lung", "Right Lung"];

const DEFAULT_CSV: [&str; 2] = ["OriginalResolution/VinDr-CXR.csv", "OriginalResolution/VinDr-CXR.csv.gz"];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "chexmask", &["images", "csv", "min_dice_rca", "labels", "val", "seed", "part"])?;
    let root = opts.root("chexmask")?;
    let csv = match opts.string("csv")? {
        Some(c) => find_file(&root, &[c.as_str()], "options.csv")?,
        None => find_file(&root, &DEFAULT_CSV, "the CheXmask VinDr-CXR table")?,
    };
    if csv.components().any(|c| c.as_os_str() == "Preprocessed") {
        return Err(opts.err(format!(
            "{}: the Preprocessed tables hold masks of the padded 1024 × 1024 images, which do not align with the DICOMs; use OriginalResolution/VinDr-CXR.csv",
            csv.display()
        )));
    }
    let images = opts
        .string("images")?
        .map(|s| root.join(s))
        .ok_or_else(|| opts.err("options.images must name the VinDr-CXR download (train/<image_id>.dicom, test/<image_id>.dicom), absolute or relative to root: CheXmask ships no images"))?;
    if !images.is_dir() {
        return Err(PluginError::input(
            images.display(),
            "options.images: no such folder (the VinDr-CXR download with train/ and test/)",
        ));
    }
    let min_dice = opts.f64("min_dice_rca", 0.7)?;
    let val = opts.f64("val", 0.0)?;
    if !(0.0..1.0).contains(&val) {
        return Err(opts.err(format!("options.val must be a fraction in [0, 1), got {val}")));
    }
    let seed = opts.u64("seed", 0)?;
    let all: Vec<String> = ORGANS.iter().map(|s| s.to_string()).collect();
    let labels: Vec<String> = match opts.strings("labels", &all)? {
        None => all.clone(),
        Some(v) => {
            let set: HashSet<&String> = v.iter().collect();
            if v.is_empty() || set.len() != v.len() {
                return Err(opts.err(format!("options.labels must list distinct organs of {}", all.join(", "))));
            }
            all.iter().filter(|o| set.contains(o)).cloned().collect()
        }
    };
    let part = match spec.options.get("part") {
        None => None,
        Some(v) => {
            let p: Vec<u64> = v.as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).collect()).unwrap_or_default();
            if p.len() != 2 || p[1] == 0 || p[0] >= p[1] || v.as_array().map(|a| a.len()) != Some(2) {
                return Err(opts.err(format!("options.part must be [k, n] with 0 <= k < n, got {v}")));
            }
            Some((p[0] as usize, p[1] as usize))
        }
    };

    let table = Table::read(&csv)?;
    let id_col = table.col_any(&["image_id", "Image ID", "ImageID"])?;
    let dice_col = table.col("Dice RCA (Mean)")?;
    let (h_col, w_col) = (table.col("Height")?, table.col("Width")?);
    let mask_cols: Vec<usize> = labels.iter().map(|l| table.col(l)).collect::<Result<_, _>>()?;
    let (mut low, mut nowhere, mut dup) = (0usize, 0usize, 0usize);
    let mut seen: HashSet<String> = HashSet::new();
    let mut train: Vec<Entry> = Vec::new();
    let mut test: Vec<Entry> = Vec::new();
    for r in 0..table.rows.len() {
        let id = table.get(r, id_col);
        if id.is_empty() {
            continue;
        }
        let id = Path::new(id).file_stem().and_then(|s| s.to_str()).unwrap_or(id).to_string();
        let d = table.get(r, dice_col);
        let dice: f64 = d.parse().map_err(|_| {
            PluginError::input(table.at(r), format!("`{d}` in column `Dice RCA (Mean)` is not a number"))
        })?;
        if dice < min_dice {
            low += 1;
            continue;
        }
        if !seen.insert(id.clone()) {
            dup += 1;
            continue;
        }
        let dim = |c: usize| -> Result<usize, PluginError> {
            let s = table.get(r, c);
            s.parse::<f64>().ok().filter(|v| *v >= 1.0 && v.fract() == 0.0).map(|v| v as usize).ok_or_else(|| {
                PluginError::input(table.at(r), format!("`{s}` in column `{}` is not a mask size", table.header[c]))
            })
        };
        let (height, width) = (dim(h_col)?, dim(w_col)?);
        let in_train = images.join("train").join(format!("{id}.dicom"));
        let in_test = images.join("test").join(format!("{id}.dicom"));
        let (path, is_test) = if in_train.is_file() {
            (in_train, false)
        } else if in_test.is_file() {
            (in_test, true)
        } else {
            nowhere += 1;
            (in_train, false)
        };
        let mut e = Entry::new(id, path);
        for &c in &mask_cols {
            let rle = table.get(r, c);
            e.masks.push(if rle.is_empty() {
                MaskSource::Empty
            } else {
                MaskSource::ChexmaskRle { rle: rle.to_string(), width, height }
            });
        }
        if is_test {
            test.push(e)
        } else {
            train.push(e)
        }
    }
    let mut warnings = Vec::new();
    if low > 0 {
        warnings.push(format!("{}: {low} row(s) with Dice RCA (Mean) < {min_dice} left out", csv.display()));
    }
    if dup > 0 {
        warnings.push(format!("{}: {dup} repeated image_id row(s) ignored", csv.display()));
    }
    if nowhere > 0 {
        warnings.push(format!(
            "{}: {nowhere} image(s) are in neither {} nor {}; they are skipped when loaded",
            csv.display(),
            images.join("train").display(),
            images.join("test").display()
        ));
    }

    let mut splits: [Vec<Entry>; 3] = Default::default();
    let ids: Vec<&str> = train.iter().map(|e| e.id.as_str()).collect();
    let drawn = draw_split(&ids, [1.0 - val, val, 0.0], seed);
    let keep: Option<HashSet<String>> = part.map(|(k, n)| {
        let mut rest: Vec<&str> =
            ids.iter().zip(&drawn).filter(|(_, s)| **s == Split::Train).map(|(id, _)| *id).collect();
        rest.sort_unstable();
        Rng::new(mix(&[seed, 0x9a27])).shuffle(&mut rest);
        let m = rest.len();
        rest[k * m / n..(k + 1) * m / n].iter().map(|s| s.to_string()).collect()
    });
    let idx = |s: Split| SPLITS.iter().position(|x| *x == s).unwrap();
    for (e, s) in train.into_iter().zip(drawn) {
        if s == Split::Train && keep.as_ref().is_some_and(|k| !k.contains(&e.id)) {
            continue;
        }
        splits[idx(s)].push(e);
    }
    splits[idx(Split::Test)] = test;

    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("CheXmask VinDr-CXR masks {} over the images in {}", csv.display(), images.display()),
        loc_labels: labels.clone(),
        seg_labels: labels,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, true, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "chexmask",
        summary: "CheXmask VinDr-CXR: RLE heart/lung masks (OriginalResolution CSV) over VinDr-CXR DICOMs; seg + loc (boxes from masks) Heart, Left Lung, Right Lung; VinDr's train/test",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
