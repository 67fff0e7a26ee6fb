//! `tbx11k`: the TBX11K tuberculosis X-ray dataset (Liu et al., CVPR 2020; TPAMI 2023) as
//! downloaded from the authors (Google Drive / Baidu archive `TBX11K/`, mirrored on Kaggle).
//!
//! ```text
//! ROOT/                               the `TBX11K` folder, or a folder holding `TBX11K/`
//!   imgs/
//!     health/h####.png                healthy                     512 × 512 RGB PNG, R = G = B
//!     sick/s####.png                  sick but non-TB
//!     tb/tb####.png                   TB (active and/or latent; one, tb1199, has no box)
//!     test/ extra/                    challenge test images (no public labels) and the DA, DB,
//!                                     Montgomery and Shenzhen images: not read
//!   lists/TBX11K_train.txt            the official split: one image per line, relative to imgs/
//!   lists/TBX11K_val.txt              (`tb/tb0003.png`); also *_trainval, all_* (with extra/): not read
//!   annotations/json/TBX11K_train.json   COCO, one per list (written by the authors'
//!   annotations/json/TBX11K_val.json     code/make_json_anno.py): every listed image (file_name =
//!                                     the list line, width/height 512), one box per
//!                                     non-difficult VOC box, scaled to 512 and minus 1 (float);
//!                                     categories 1 ActiveTuberculosis, 2
//!                                     ObsoletePulmonaryTuberculosis, 3 PulmonaryTuberculosis
//!   annotations/xml/<stem>.xml        Pascal VOC at the scan's original resolution: not read
//! ```
//!
//! Tasks: cls — the image's class from its folder, three mutually exclusive classes one-hot:
//! `Healthy` (health/), `Sick & Non-TB` (sick/), `TB` (tb/) (the TBX11K README's names); loc —
//! the COCO boxes with the published categories `ActiveTuberculosis`,
//! `ObsoletePulmonaryTuberculosis`, `PulmonaryTuberculosis` (the last has no box in train/val;
//! mAP averages over categories with ground truth). Box coordinates are taken as the JSON gives
//! them (COCO readers clip the few that start at −1 … 0 to the image, with a warning).
//!
//! Split: the test labels are withheld (online challenge), so the official train list is the
//! train split and the official val list is the TEST split (as the Foundation X reference code
//! does; the paper's TBX11K numbers are on these 1,800 images). Val is drawn from the official
//! train by image (TBX11K has no patient ids): a seeded `val_fraction` (default 0.1) of it;
//! `val_fraction = 0` keeps all 6,600 official train images for training (the paper's setting)
//! and leaves val empty. `drawn_split` is false: train/test are the published ones.
//!
//! The lists give the samples and their order; the JSON of the same split gives each one's boxes
//! and size (checked against the image). A listed image missing from disk is skipped at load; one
//! missing from the JSON is left out with a warning; JSON images no list names are ignored.
//!
//! Options: `val_fraction` (0 ≤ f < 1, default 0.1), `seed` (default 0), `window`, `raw`.
//! Sources: github.com/yun-liu/Tuberculosis (README: classes and split sizes; the CVPR release's
//! code/make_json_anno.py: list format and the XML → JSON conversion; configs/symformer:
//! `annotations/json/*.json` over `imgs/`), the Foundation X reference DATASETS_CONFIG.

use fx_data::coco::read_coco;
use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Split};
use std::collections::HashMap;
use std::path::Path;

/// cls labels, in the order of `FOLDERS`.
pub const CLASSES: [&str; 3] = ["Healthy", "Sick & Non-TB", "TB"];
/// The image folders under `imgs/` the classes come from.
pub const FOLDERS: [&str; 3] = ["health", "sick", "tb"];
/// loc labels: the COCO categories as published (ids 1, 2, 3).
pub const CATEGORIES: [&str; 3] = ["ActiveTuberculosis", "ObsoletePulmonaryTuberculosis", "PulmonaryTuberculosis"];

/// Reads one official split: its list and its COCO JSON.
fn read_split(root: &Path, imgs: &Path, stem: &str, warnings: &mut Vec<String>) -> Result<Vec<Entry>, PluginError> {
    let (list_rel, json_rel) = (format!("lists/{stem}.txt"), format!("annotations/json/{stem}.json"));
    let list = find_file(root, &[list_rel.as_str()], "the official image list")?;
    let json = find_file(root, &[json_rel.as_str()], "the COCO annotations")?;
    let text =
        std::fs::read_to_string(&list).map_err(|e| PluginError::input(list.display(), format!("cannot read: {e}")))?;
    let coco = read_coco(&json).map_err(|e| {
        let prefix = format!("{}: ", json.display());
        PluginError::input(json.display(), e.strip_prefix(&prefix).unwrap_or(&e))
    })?;
    // COCO category index -> loc label, by name (the files' order and ids are not relied on).
    let mut label_of = Vec::with_capacity(coco.categories.len());
    for c in &coco.categories {
        let k = CATEGORIES.iter().position(|n| *n == c.name).ok_or_else(|| {
            PluginError::input(
                json.display(),
                format!("unknown category `{}` (id {}); expected one of {CATEGORIES:?}", c.name, c.id),
            )
        })?;
        label_of.push(k);
    }
    warnings.extend(coco.problems.iter().cloned());
    let by_name: HashMap<&str, usize> =
        coco.images.iter().enumerate().map(|(i, im)| (im.file_name.as_str(), i)).collect();
    let mut listed = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut absent = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        listed.insert(line);
        let folder = line.split('/').next().unwrap_or_default();
        let class = FOLDERS.iter().position(|f| *f == folder).ok_or_else(|| {
            PluginError::input(
                format!("{} line {}", list.display(), n + 1),
                format!(
                    "`{line}` is not under one of the class folders {}",
                    FOLDERS.map(|f| format!("{f}/")).join(", ")
                ),
            )
        })?;
        let Some(&i) = by_name.get(line) else {
            absent.push(line.to_string());
            continue;
        };
        let id = Path::new(line).with_extension("").to_string_lossy().into_owned();
        let mut e = Entry::new(id, imgs.join(line));
        e.cls = (0..CLASSES.len()).map(|k| (k == class) as u8 as f32).collect();
        e.boxes = coco.boxes_of(i, false).into_iter().map(|b| LabeledBox { label: label_of[b.label], ..b }).collect();
        // The size the boxes are for (checked against the image). Only for images on disk:
        // FileDataset reports a stated size for a missing file instead of skipping it.
        if e.image.is_file() {
            e.size = Some((coco.images[i].width as usize, coco.images[i].height as usize));
        }
        out.push(e);
    }
    if !absent.is_empty() {
        warnings.push(format!(
            "{}: {} listed image(s) have no entry in {} and are left out (their boxes are unknown): {}",
            list.display(),
            absent.len(),
            json.display(),
            absent.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let unlisted = coco.images.iter().filter(|im| !listed.contains(im.file_name.as_str())).count();
    if unlisted > 0 {
        warnings.push(format!("{}: {unlisted} image(s) are in no line of {}; ignored", json.display(), list.display()));
    }
    Ok(out)
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "tbx11k", &["val_fraction", "seed"])?;
    let given = opts.root("tbx11k")?;
    // The archive unpacks to `TBX11K/`: accept its parent too.
    let root =
        if !given.join("lists").exists() && given.join("TBX11K").is_dir() { given.join("TBX11K") } else { given };
    let val_fraction = opts.f64("val_fraction", 0.1)?;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(opts.err(format!("options.val_fraction must be in [0, 1), got {val_fraction}")));
    }
    let seed = opts.u64("seed", 0)?;
    let mut warnings = Vec::new();
    let train = read_split(&root, &root.join("imgs"), "TBX11K_train", &mut warnings)?;
    let test = read_split(&root, &root.join("imgs"), "TBX11K_val", &mut warnings)?;
    let ids: Vec<&str> = train.iter().map(|e| e.id.as_str()).collect();
    let drawn = draw_split(&ids, [1.0 - val_fraction, val_fraction, 0.0], seed);
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (e, s) in train.into_iter().zip(drawn) {
        if s == Split::Val {
            va.push(e);
        } else {
            tr.push(e);
        }
    }
    let desc = DatasetDesc {
        cls_mode: fx_plugin::LabelMode::MultiClass,
        name: spec.name.clone(),
        description: format!(
            "TBX11K under {}: official train (a seeded {val_fraction} of it as val) and official val as test",
            root.display()
        ),
        cls_labels: CLASSES.iter().map(|s| s.to_string()).collect(),
        loc_labels: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    FileDataset::new(spec, desc, [tr, va, test], opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "tbx11k",
        summary: "TBX11K (lists + COCO JSON over PNG): cls Healthy / Sick & Non-TB / TB one-hot, loc TB boxes; official train/val(→test), val drawn from train",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
