//! `montgomery`: the NIH/NLM Montgomery County chest X-ray set (Department of Health and Human
//! Services, Montgomery County, MD; Jaeger et al., QIMS 2014; masks: Candemir et al., IEEE TMI
//! 2014), as downloaded from NLM/LHNCBC (`NLM-MontgomeryCXRSet.zip`).
//!
//! ```text
//! ROOT/                                   MontgomerySet/ itself, or the folder holding it
//!   MontgomerySet/
//!     CXR_png/MCUCXR_<nnnn>_<d>.png       138 PNGs (80 normal, 58 TB), d = 0 normal,
//!                                         1 tuberculosis; 8-bit gray, 4020 × 4892 or 4892 × 4020.
//!                                         Other files (Thumbs.db) are ignored.
//!     ManualMask/leftMask/MCUCXR_<nnnn>_<d>.png    binary lung masks at the image size
//!     ManualMask/rightMask/MCUCXR_<nnnn>_<d>.png   (8-bit 0/255 — 1-bit PNGs read as well)
//!     ClinicalReadings/MCUCXR_<nnnn>_<d>.txt       sex, age, finding (not read)
//!     NLM-MontgomeryCXRSet-ReadMe.pdf
//! ```
//!
//! Tasks and labels: seg `Left Lung` and `Right Lung` (CheXmask's spelling), the paper's use of the
//! set (lung segmentation finetuning); cls `Tuberculosis` from the file-name suffix (as
//! TorchXRayVision's NLMTB_Dataset). With the default `sides = "published"`, `Left Lung` is the
//! publisher's `leftMask` and `Right Lung` its `rightMask`. A third-party visual check of the files
//! reports that `leftMask` is the lung on the IMAGE's left, i.e. the patient's right lung, the
//! opposite of SCR's and CheXmask's anatomical names; `sides = "anatomical"` swaps the two folders
//! so that `Left Lung` is the patient's left lung under that reading. An image whose mask file is
//! missing is listed and, when loaded, skipped and counted.
//!
//! Split: none is published; one image per patient, so a seeded draw by image (`split`, default
//! [0.7, 0.1, 0.2]; `seed`, default 0); `drawn_split = true`.
//!
//! Options: `split`, `seed`, `sides` (`"published"` | `"anatomical"`), and the image-input `window`.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError};

pub const CLS_LABELS: [&str; 1] = ["Tuberculosis"];
pub const SEG_LABELS: [&str; 2] = ["Left Lung", "Right Lung"];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "montgomery", &["split", "seed", "sides"])?;
    let root = opts.root("montgomery")?;
    let swap = opts.choice("sides", &["published", "anatomical"])? == "anatomical";
    let images = find_file(
        &root,
        &["CXR_png", "MontgomerySet/CXR_png"],
        "the image folder (its file names are the cls labels)",
    )?;
    let set = images.parent().unwrap_or(&root).to_path_buf();
    let left = find_file(&set, &["ManualMask/leftMask"], "the left-lung masks")?;
    let right = find_file(&set, &["ManualMask/rightMask"], "the right-lung masks")?;
    let (first, second) = if swap { (right, left) } else { (left, right) };
    let mut warnings = Vec::new();
    let list = fx_data::nlm_tb::images(&images, "MCUCXR", &mut warnings)?;
    let stems: Vec<&str> = list.iter().map(|(s, _)| s.as_str()).collect();
    let split = draw_split(&stems, opts.fractions()?, opts.u64("seed", 0)?);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for ((stem, label), s) in list.iter().zip(split) {
        let name = format!("{stem}.png");
        let mut e = Entry::new(stem.clone(), images.join(&name));
        e.cls = vec![*label];
        e.masks = vec![MaskSource::File(first.join(&name)), MaskSource::File(second.join(&name))];
        splits[SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("NIH Montgomery County chest X-ray set under {}", root.display()),
        cls_labels: CLS_LABELS.iter().map(|s| s.to_string()).collect(),
        seg_labels: SEG_LABELS.iter().map(|s| s.to_string()).collect(),
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "montgomery",
        summary: "NIH Montgomery County TB set (NLM MontgomerySet): PNG; seg Left Lung / Right Lung (ManualMask), cls Tuberculosis from the file name; seeded split by image",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
