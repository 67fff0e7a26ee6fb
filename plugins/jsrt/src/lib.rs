//! `jsrt`: the JSRT database (Japanese Society of Radiological Technology; Shiraishi et al., AJR
//! 2000) with the SCR masks ("Segmentation in Chest Radiographs", van Ginneken, Stegmann & Loog,
//! MedIA 2006, <https://www.isi.uu.nl/Research/Databases/SCR/>), each as downloaded.
//!
//! ```text
//! ROOT/
//!   All247images/JPCLN<nnn>.IMG           154 images with one nodule (JPCLN001–154) and 93
//!   All247images/JPCNN<nnn>.IMG           without (JPCNN001–093): headerless raw, 2048 × 2048
//!                                         16-bit big-endian words of 12 bits, film density (high
//!                                         = dark). Read with `options.raw` (fx's defaults are
//!                                         exactly this, inverted so bone is bright).
//!                                         (`All247images/All247images/` is accepted too.)
//!   scratch/                              the SCR archive (or `options.scr`)
//!     fold1/masks/<organ>/<JSRT stem>.gif organ: heart, left lung, right lung, left clavicle,
//!     fold2/masks/<organ>/<JSRT stem>.gif right clavicle; 1024 × 1024 GIFs, 0/255. The SCR paper
//!                                         puts the odd-numbered images in one fold (124) and the
//!                                         even-numbered in the other (123); fx takes each image's
//!                                         fold from where its masks are. (SCR also ships landmark
//!                                         point files; not read.)
//! ```
//!
//! The SCR masks are half the image's size; fx resizes each to its image by nearest neighbour
//! (one mask pixel → 2 × 2 image pixels). Sides are anatomical ("the right lung and clavicle are
//! on the left in the image", SCR's data description).
//!
//! Tasks and labels: seg `heart`, `left lung`, `right lung`, `left clavicle`, `right clavicle`
//! (SCR's folder names) — the paper's JSRT finetuning (heart, lungs, clavicles). With
//! `nodule_cls = true` also cls `nodule` (1 for JPCLN, 0 for JPCNN; the paper does not use it).
//! The samples are the images SCR has masks for; an SCR stem whose `.IMG` is missing is left out
//! at open with a warning (fx reads a raw image's size from `options.raw`, not the file, so only
//! the open can notice), an image without masks is not a sample, and a missing single organ mask
//! fails when that sample is loaded (skipped and counted).
//!
//! Split: SCR prescribes two-fold cross-validation (train on one fold, test on the other, and vice
//! versa), not a train/test split. The paper's 173/25/49 is a 70/10/20 draw of the 247 images, so
//! the default is a seeded draw by image (`split`, default [0.7, 0.1, 0.2]; `seed`, default 0;
//! `drawn_split = true`). `test_fold = 1 | 2` uses SCR's folds instead: that fold is the test
//! split, the other the training split, val stays empty (`drawn_split = false`).
//!
//! Options: `split`, `seed`, `test_fold`, `nodule_cls` (default false), `labels` (the seg labels to
//! keep, in this order, e.g. `["left clavicle", "right clavicle"]` for the paper's few-shot
//! clavicle task; default all five), `scr` (the folder holding fold1/ and fold2/, relative to ROOT
//! or absolute; default `scratch`, `SCR/scratch` or ROOT itself), and the image-input `raw` and
//! `window`.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError, Split};
use std::collections::BTreeMap;
use std::path::Path;

/// SCR's organ folders, the seg labels in this order.
pub const ORGANS: [&str; 5] = ["heart", "left lung", "right lung", "left clavicle", "right clavicle"];
pub const NODULE: &str = "nodule";

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "jsrt", &["split", "seed", "test_fold", "nodule_cls", "scr", "labels"])?;
    let root = opts.root("jsrt")?;
    let all: Vec<String> = ORGANS.iter().map(|s| s.to_string()).collect();
    let organs: Vec<String> = match opts.strings("labels", &all)? {
        None => all.clone(),
        Some(l) if l.is_empty() => return Err(opts.err("options.labels must name at least one SCR organ")),
        Some(l) => {
            if let Some(d) = l.iter().enumerate().find(|(i, x)| l[..*i].contains(x)) {
                return Err(opts.err(format!("options.labels names `{}` twice", d.1)));
            }
            l
        }
    };
    let test_fold = opts.u64("test_fold", 0)?;
    if test_fold > 2 {
        return Err(opts.err(format!("options.test_fold must be 1 or 2 (SCR's folds), got {test_fold}")));
    }
    let nodule_cls = opts.bool("nodule_cls", false)?;
    let scr = match opts.string("scr")? {
        Some(s) => {
            let p = root.join(s);
            find_file(&p, &["fold1"], "the SCR masks (options.scr)")?;
            p
        }
        None => {
            find_file(&root, &["scratch/fold1", "SCR/scratch/fold1", "fold1"], "the SCR masks (van Ginneken et al.)")?
                .parent()
                .unwrap_or(&root)
                .to_path_buf()
        }
    };
    let images = find_file(&root, &["All247images/All247images", "All247images"], "the JSRT images")?;
    let mut warnings = Vec::new();

    // Every stem with at least one SCR mask, and its fold.
    let mut fold_of: BTreeMap<String, u64> = BTreeMap::new();
    for fold in [1u64, 2] {
        let sub = format!("fold{fold}/masks");
        let masks = find_file(&scr, &[sub.as_str()], "the SCR masks")?;
        for organ in ORGANS {
            let dir = find_file(&masks, &[organ], "an SCR organ folder")?;
            for stem in gif_stems(&dir)? {
                match fold_of.get(&stem) {
                    Some(&f) if f != fold => warnings.push(format!(
                        "{}: {stem} has masks in fold{f} and fold{fold}; fold{f} is used",
                        scr.display()
                    )),
                    Some(_) => {}
                    None => {
                        fold_of.insert(stem, fold);
                    }
                }
            }
        }
    }
    if fold_of.is_empty() {
        return Err(PluginError::input(
            scr.display(),
            "no SCR mask (fold1|fold2/masks/<organ>/<stem>.gif) in this folder",
        ));
    }

    let mut missing = Vec::new();
    let mut entries: Vec<(Entry, u64)> = Vec::new();
    for (stem, &fold) in &fold_of {
        let Some(image) =
            [format!("{stem}.IMG"), format!("{stem}.img")].iter().map(|n| images.join(n)).find(|p| p.is_file())
        else {
            missing.push(stem.as_str());
            continue;
        };
        let mut e = Entry::new(stem.clone(), image);
        let masks = scr.join(format!("fold{fold}")).join("masks");
        e.masks = organs.iter().map(|o| MaskSource::File(masks.join(o).join(format!("{stem}.gif")))).collect();
        if nodule_cls {
            e.cls = vec![if stem.starts_with("JPCLN") {
                1.0
            } else if stem.starts_with("JPCNN") {
                0.0
            } else {
                f32::NAN
            }];
        }
        entries.push((e, fold));
    }
    if !missing.is_empty() {
        warnings.push(format!(
            "{}: {} image(s) with SCR masks are not here and are left out: {}",
            images.display(),
            missing.len(),
            missing.iter().map(|s| format!("{s}.IMG")).collect::<Vec<_>>().join(", ")
        ));
    }
    let unmasked = image_stems(&images).into_iter().filter(|s| !fold_of.contains_key(s)).count();
    if unmasked > 0 {
        warnings.push(format!("{}: {unmasked} image(s) have no SCR masks and are not samples", images.display()));
    }

    let mut splits: [Vec<Entry>; 3] = Default::default();
    let place = |s: Split| SPLITS.iter().position(|x| *x == s).unwrap();
    if test_fold > 0 {
        for (e, fold) in entries {
            splits[place(if fold == test_fold { Split::Test } else { Split::Train })].push(e);
        }
    } else {
        let stems: Vec<String> = entries.iter().map(|(e, _)| e.id.clone()).collect();
        let refs: Vec<&str> = stems.iter().map(|s| s.as_str()).collect();
        let drawn = draw_split(&refs, opts.fractions()?, opts.u64("seed", 0)?);
        for ((e, _), s) in entries.into_iter().zip(drawn) {
            splits[place(s)].push(e);
        }
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("JSRT database with the SCR masks under {}", root.display()),
        cls_labels: if nodule_cls { vec![NODULE.to_string()] } else { vec![] },
        seg_labels: organs,
        drawn_split: test_fold == 0,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

/// The stems of the `.gif` files of a folder.
fn gif_stems(dir: &Path) -> Result<Vec<String>, PluginError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| PluginError::input(dir.display(), format!("cannot list the SCR mask folder: {e}")))?;
    Ok(read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".gif").or_else(|| name.strip_suffix(".GIF")).map(str::to_string)
        })
        .collect())
}

/// The stems of the `.IMG` files of the image folder (for the count of images without masks).
fn image_stems(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".IMG").or_else(|| name.strip_suffix(".img")).map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "jsrt",
        summary: "JSRT (All247images, raw 12-bit) with SCR masks: seg heart, left/right lung, left/right clavicle; seeded split by image or SCR's folds (test_fold); optional cls nodule",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
