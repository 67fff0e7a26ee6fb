//! `siim-acr`: the SIIM-ACR Pneumothorax Segmentation challenge (Kaggle, 2019) as downloaded.
//!
//! ```text
//! ROOT/
//!   train-rle.csv        stage 1 labels: `ImageId, EncodedPixels` (note the space before the
//!                        second name, and before every value: ` -1`, ` 387620 23 996 33 ...`)
//!   stage_2_train.csv    stage 2 labels: `ImageId,EncodedPixels`; the stage 1 train AND test
//!                        images (12,047 images in the real file)
//!   dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm   stage 1 train
//!   dicom-images-test/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm    stage 1 test
//!   stage_2_images/<ImageId>.dcm    stage 2 test (no labels anywhere: never read)
//! ```
//!
//! (Kaggle re-uploads keep these names, sometimes one folder down: `siim/` in
//! "seesee/siim-train-test"; `pneumothorax/` as users describe the copy the paper cites,
//! "jesperdramsch/siim-acr-pneumothorax-segmentation-data". Both are looked for; options `csv` /
//! `images` reach any other place.)
//! The DICOMs are 1024 × 1024, 8-bit MONOCHROME2, JPEG Baseline (Secondary Capture, CR).
//!
//! Labels: one CSV row per pneumothorax (several rows for an image with several: their masks are
//! OR'ed), ` -1` for an image without. `EncodedPixels` is the competition's run-length code (its
//! `mask_functions.py`: pairs `start length`, starts relative to the end of the previous run,
//! pixels counted column-major) — [`fx_data::masks::siim_rle_decode`], applied at each image's
//! own size.
//!
//! Tasks, all with the one label `Pneumothorax`: cls (1 when the image has a non-empty mask row,
//! else 0), seg (the OR of its rows), loc (the tight box of the mask, as the paper derives boxes
//! for SIIM-ACR; `boxes_from_masks`).
//!
//! Images are found by walking the image folder (`images`, default the root) once at open and
//! indexing every `*.dcm` by its file stem (the ImageId), so the nested stage 1 folders, the
//! flat stage 2 folder and re-uploads all work. A labelled image that is not found is kept in the
//! index with its nominal path (`<images>/<ImageId>.dcm`) and skipped (and counted) when loaded;
//! the open reports how many there are.
//!
//! Split: there is no labelled official test, so a seeded draw BY IMAGE (the DICOM PatientIDs are
//! per-image anonymised ids, and reading 12k headers at open is not worth it): `split = [train,
//! val, test]` fractions (default 0.7, 0.1, 0.2), `seed` (default 0). `split = "stage1"` gives the
//! partition the paper's Table 1 counts point to (9,607 / 1,068 / 1,372 = a 90/10 cut of the 10,675
//! labelled stage 1 train images and the 1,372 stage 1 test images labelled in stage 2): test =
//! the labelled images under `dicom-images-test/` (needs stage_2_train.csv), train/val = a seeded
//! 90/10 draw of the others (9,608 / 1,067 by fx's rounding).
//!
//! Options: `csv` (label CSV relative to the root; default `stage_2_train.csv` when present,
//! else `train-rle.csv`, also looked for under `siim/`), `images` (folder to index, default the
//! root), `split`, `seed`, and the image options `window`, `raw`.
//!
//! Sources: the competition's data page and starter code `mask_functions.py` (rle2mask /
//! mask2rle; checked against the copy in github.com/JonnoFTW/kaggle-pneumothorax), public loaders
//! of the download (HazyResearch/meerkat `siim_cxr`), the paper's Table 1.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, Table, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError, Split};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const LABEL: &str = "Pneumothorax";
pub const CSV_CANDIDATES: [&str; 6] = [
    "stage_2_train.csv",
    "train-rle.csv",
    "siim/stage_2_train.csv",
    "siim/train-rle.csv",
    "pneumothorax/stage_2_train.csv",
    "pneumothorax/train-rle.csv",
];
const STAGE1_TEST_DIR: &str = "dicom-images-test";

enum SplitRule {
    Fractions([f64; 3]),
    Stage1,
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "siim-acr", &["csv", "images", "split", "seed"])?;
    let root = opts.root("siim-acr")?;
    let csv = match opts.string("csv")? {
        Some(c) => find_file(&root, &[c.as_str()], "the label CSV (options.csv)")?,
        None => find_file(&root, &CSV_CANDIDATES, "the label CSV")?,
    };
    let images = match opts.string("images")? {
        Some(d) => find_file(&root, &[d.as_str()], "the DICOM folder (options.images)")?,
        None => root.clone(),
    };
    let rule = match opts.string("split") {
        Ok(Some(s)) if s == "stage1" => SplitRule::Stage1,
        Ok(Some(s)) => {
            return Err(
                opts.err(format!("options.split must be [train, val, test] fractions or \"stage1\", got \"{s}\""))
            )
        }
        _ => SplitRule::Fractions(opts.fractions()?),
    };
    let seed = opts.u64("seed", 0)?;

    let table = Table::read(&csv)?;
    let (cid, crle) = (table.col("ImageId")?, table.col("EncodedPixels")?);
    // Images in file order, with their run-length codes (empty: no pneumothorax).
    let mut order: Vec<String> = Vec::new();
    let mut codes: HashMap<String, Vec<String>> = HashMap::new();
    for r in 0..table.rows.len() {
        let id = table.get(r, cid);
        if id.is_empty() {
            continue;
        }
        let list = codes.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Vec::new()
        });
        let rle = table.get(r, crle);
        if !rle.is_empty() && rle != "-1" {
            list.push(rle.to_string());
        }
    }

    let (found, duplicates) = index_dicoms(&images)?;
    let mut warnings = Vec::new();
    if duplicates > 0 {
        warnings.push(format!(
            "{}: {duplicates} ImageIds have more than one .dcm; the first met in a sorted walk is used",
            images.display()
        ));
    }
    let missing: Vec<&String> = order.iter().filter(|id| !found.contains_key(*id)).collect();
    if let Some(first) = missing.first() {
        warnings.push(format!(
            "{}: {} of {} labelled images have no .dcm under {} (e.g. {first}); they are skipped when loaded",
            csv.display(),
            missing.len(),
            order.len(),
            images.display()
        ));
    }

    let path_of = |id: &str| found.get(id).cloned().unwrap_or_else(|| images.join(format!("{id}.dcm")));
    let refs: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
    let split: Vec<Split> = match rule {
        SplitRule::Fractions(f) => draw_split(&refs, f, seed),
        SplitRule::Stage1 => {
            let is_test: Vec<bool> =
                order.iter().map(|id| found.get(id).is_some_and(|p| under(p, &images, STAGE1_TEST_DIR))).collect();
            if !is_test.iter().any(|t| *t) {
                return Err(opts.err(format!(
                    "options.split = \"stage1\" needs labelled images under {}/ (stage_2_train.csv labels them); {} names none there",
                    STAGE1_TEST_DIR,
                    csv.display()
                )));
            }
            let rest: Vec<&str> = order.iter().zip(&is_test).filter(|(_, t)| !**t).map(|(s, _)| s.as_str()).collect();
            let mut drawn = draw_split(&rest, [0.9, 0.1, 0.0], seed).into_iter();
            is_test.iter().map(|t| if *t { Split::Test } else { drawn.next().unwrap() }).collect()
        }
    };

    let mut splits: [Vec<Entry>; 3] = Default::default();
    for (id, s) in order.iter().zip(split) {
        let mut e = Entry::new(id.clone(), path_of(id));
        let rows = &codes[id];
        e.cls = vec![if rows.is_empty() { 0.0 } else { 1.0 }];
        e.masks = vec![if rows.is_empty() { MaskSource::Empty } else { MaskSource::SiimRle(rows.clone()) }];
        splits[SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!(
            "SIIM-ACR Pneumothorax Segmentation ({}) under {}",
            csv.file_name().unwrap_or_default().to_string_lossy(),
            root.display()
        ),
        cls_labels: vec![LABEL.into()],
        loc_labels: vec![LABEL.into()],
        seg_labels: vec![LABEL.into()],
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, true, warnings)
}

/// Whether `path` lies under a folder named `name` below `base`.
fn under(path: &Path, base: &Path, name: &str) -> bool {
    path.strip_prefix(base).unwrap_or(path).parent().is_some_and(|p| p.components().any(|c| c.as_os_str() == name))
}

/// Every `*.dcm` below `dir` (sorted walk, symbolic links followed, at most 8 levels), by file
/// stem; and how many stems were met more than once.
fn index_dicoms(dir: &Path) -> Result<(HashMap<String, PathBuf>, usize), PluginError> {
    let mut found = HashMap::new();
    let mut duplicates = 0;
    for p in fx_data::dataset::walk_files(dir, 8)? {
        let is_dcm = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
        if is_dcm {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            if let std::collections::hash_map::Entry::Vacant(e) = found.entry(stem) {
                e.insert(p);
            } else {
                duplicates += 1;
            }
        }
    }
    Ok((found, duplicates))
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "siim-acr",
        summary: "SIIM-ACR Pneumothorax (Kaggle, stage 1 or 2 CSV): DICOM; cls/seg/loc Pneumothorax (SIIM RLE masks, boxes from masks); seeded split by image",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
