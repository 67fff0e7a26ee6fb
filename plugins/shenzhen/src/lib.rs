//! `shenzhen`: the NIH/NLM Shenzhen Hospital chest X-ray set (Shenzhen No. 3 People's Hospital;
//! Jaeger et al., "Two public chest X-ray datasets for computer-aided screening of pulmonary
//! diseases", QIMS 2014), as downloaded from NLM/LHNCBC (`ChinaSet_AllFiles.zip`), optionally with
//! the lung masks of Stirenko et al. 2018 (published separately, Kaggle "Shenzhen lung masks").
//!
//! ```text
//! ROOT/                                   ChinaSet_AllFiles/ itself, or the folder holding it
//!   ChinaSet_AllFiles/
//!     CXR_png/CHNCXR_<nnnn>_<d>.png       662 PNGs; d = 0 normal, 1 tuberculosis — the only label
//!                                         source (the NLM readme, TorchXRayVision's NLMTB_Dataset).
//!                                         8-bit, mostly palette PNGs, a few RGB with R = G = B;
//!                                         sizes vary (about 3000 × 3000, never a fixed square).
//!                                         Other files (Thumbs.db) are ignored.
//!     ClinicalReadings/CHNCXR_<nnnn>_<d>.txt   sex, age, finding in free text (not read)
//!     NLM-ChinaCXRSet-ReadMe.docx
//!   mask/CHNCXR_<nnnn>_<d>_mask.png       (separate release, `options.masks`) one binary mask of
//!                                         both lung fields per image, same size as the image;
//!                                         566 of the 662 images have one
//! ```
//!
//! Tasks and labels: cls `Tuberculosis` (the name TorchXRayVision and the paper use; 1 for `_1`,
//! 0 for `_0`). With `options.masks`: seg `Lung` (both lungs in one mask, as published), and then
//! only the images that HAVE a mask are samples (a missing mask is not a negative; the others are
//! counted in a warning).
//!
//! Split: none is published, and every image is a different patient, so a seeded draw by image
//! (`split`, default [0.7, 0.1, 0.2]; `seed`, default 0); `drawn_split = true`. The draw is made
//! over all images before masks are looked up, so an image keeps its split with or without masks.
//!
//! Options: `split`, `seed`, `masks` (the mask folder, relative to ROOT or absolute; a folder that
//! holds no PNG but a `mask/` subfolder — the Kaggle archive unpacks to `mask/mask/` — is looked
//! into; a mask named `<stem>_mask.png` or `<stem>.png` is accepted), and the image-input `window`.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError};
use std::path::{Path, PathBuf};

pub const CLS_LABELS: [&str; 1] = ["Tuberculosis"];
pub const SEG_LABELS: [&str; 1] = ["Lung"];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "shenzhen", &["split", "seed", "masks"])?;
    let root = opts.root("shenzhen")?;
    let images = find_file(
        &root,
        &["CXR_png", "ChinaSet_AllFiles/CXR_png"],
        "the image folder (its file names are the labels)",
    )?;
    let mut warnings = Vec::new();
    let list = fx_data::nlm_tb::images(&images, "CHNCXR", &mut warnings)?;
    let masks = match opts.string("masks")? {
        None => None,
        Some(m) => Some(mask_folder(&root.join(m)).map_err(|e| opts.err(e))?),
    };
    let stems: Vec<&str> = list.iter().map(|(s, _)| s.as_str()).collect();
    let split = draw_split(&stems, opts.fractions()?, opts.u64("seed", 0)?);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    let mut unmasked: Vec<&str> = Vec::new();
    for ((stem, label), s) in list.iter().zip(split) {
        let mut e = Entry::new(stem.clone(), images.join(format!("{stem}.png")));
        e.cls = vec![*label];
        if let Some(dir) = &masks {
            match [format!("{stem}_mask.png"), format!("{stem}.png")].iter().map(|n| dir.join(n)).find(|p| p.is_file())
            {
                Some(p) => e.masks = vec![MaskSource::File(p)],
                None => {
                    unmasked.push(stem);
                    continue;
                }
            }
        }
        splits[SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    if let (Some(dir), Some(first)) = (&masks, unmasked.first()) {
        warnings.push(format!(
            "{}: {} of {} images have no lung mask here (e.g. {first}_mask.png); they are left out while options.masks is set",
            dir.display(),
            unmasked.len(),
            list.len()
        ));
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("NIH Shenzhen Hospital chest X-ray set under {}", root.display()),
        cls_labels: CLS_LABELS.iter().map(|s| s.to_string()).collect(),
        seg_labels: if masks.is_some() { SEG_LABELS.iter().map(|s| s.to_string()).collect() } else { vec![] },
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

/// The folder that holds the mask PNGs: `dir`, or `dir/mask` when `dir` holds no PNG.
fn mask_folder(dir: &Path) -> Result<PathBuf, String> {
    if !dir.is_dir() {
        return Err(format!("options.masks: the lung-mask folder {} does not exist", dir.display()));
    }
    let has_png = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| r.flatten().any(|e| e.file_name().to_string_lossy().to_ascii_lowercase().ends_with(".png")))
            .unwrap_or(false)
    };
    if !has_png(dir) && has_png(&dir.join("mask")) {
        return Ok(dir.join("mask"));
    }
    Ok(dir.to_path_buf())
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "shenzhen",
        summary: "NIH Shenzhen TB set (NLM ChinaSet_AllFiles): PNG; cls Tuberculosis from the file name; seg Lung with options.masks (Stirenko et al.); seeded split by image",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
