//! `candid-ptx`: CANDID-PTX (Feng et al., "Curation of the CANDID-PTX Dataset with Free-Text
//! Reports", Radiology: Artificial Intelligence 2021; 19,237 chest radiographs from Dunedin
//! Hospital, New Zealand; distributed on the University of Auckland Figshare, doi
//! 10.17608/k6.auckland.14173982, after a data-use agreement) as downloaded and unzipped.
//!
//! ```text
//! ROOT/
//!   Pneumothorax_reports.csv   SOPInstanceUID, StudyInstanceUID, filename, EncodedPixels, Report
//!                              one row per pneumothorax (an image with several has several rows),
//!                              `-1` for an image without; `filename` begins with the anonymised
//!                              patient index (`P<number>_...`); Report = quoted free text
//!   chest_tube.csv             anon_SOPUID, annotation_ref, mask_rle — one row per segmented
//!                              intercostal chest tube; only images with a tube are listed
//!   acute_rib_fracture.csv     anon_SOPUID, annotation_ref, mask_rle — one row per segmented acute
//!                              rib fracture (also met as `Rib_fracture_mask_rle.csv`)
//!   dataset/<SOPInstanceUID>   the DICOMs, named by their SOPInstanceUID, without an extension
//!                              (an unzip may nest it, e.g. `dataset1/dataset/`)
//! ```
//!
//! Every mask is run-length coded in the SIIM-ACR convention (pairs `start length`, starts
//! relative to the end of the previous run, pixels counted column-major; several rows OR'ed) and
//! is decoded at the image's own size ([`fx_data::masks::siim_rle_decode`]). The DICOMs are
//! 1024 × 1024 (every public loader decodes the codes at 1024 × 1024; the publisher's page of the
//! sibling CANDID-II dataset states that size for its DICOMs), so the two agree.
//!
//! Tasks. Default (`findings = "pneumothorax"`, the paper's Table 1: CANDID-PTX = Pneumothorax):
//! cls, seg and loc `Pneumothorax` — cls 1 when the image has a row with a mask, 0 when its rows
//! are `-1`; seg the OR of its rows; loc the tight box of the mask (the paper derives CANDID-PTX's
//! boxes from its masks: `boxes_from_masks`). `findings = "all"` adds `Chest Tube` and
//! `Rib Fracture` to all three tasks (cls 1 when the image has a row in that file, masks from its
//! rows); it needs the two extra CSVs. The universe of images is Pneumothorax_reports.csv (every
//! image of the dataset has a row there); tube/fracture rows naming another image are ignored
//! (counted in a warning).
//!
//! Images are found by walking the image folder (`images`, default the root) once at open and
//! indexing every file by its name (and by its name without `.dcm`, should a copy have one). A
//! listed image that is not found keeps its nominal path `<root>/dataset/<SOPInstanceUID>` and is
//! skipped (and counted) when loaded; the open reports how many.
//!
//! Split: the download has no split (the paper's 13,748 / 1,964 / 3,928 is its own 70/10/20 draw),
//! so a seeded draw BY PATIENT — the patient is the part of `filename` before the first `_`
//! (an image without a filename is its own group) — with `split = [train, val, test]` fractions
//! (default 0.7, 0.1, 0.2) and `seed` (default 0).
//!
//! Options: `findings` ("pneumothorax" | "all"), `images`, `split`, `seed`, `window`, `raw`.
//!
//! Sources and assumptions. The publisher documents no file formats; the names and columns above
//! are those that public code reading the download uses (CSV names and `SOPInstanceUID` /
//! `EncodedPixels` / `filename` / `Report` / `StudyInstanceUID`, `anon_SOPUID` / `annotation_ref` /
//! `mask_rle`; images opened as `dataset/<SOPInstanceUID>`; patient = `filename` prefix; masks
//! decoded with the SIIM rle2mask at 1024 × 1024), including the Foundation X code
//! (jlianglab/Foundation_X, `Candid_PTX_PXSDataset.rle2mask`). Assumed, not seen: the column
//! order; that a tube/fracture row's presence means "present" (a `-1` mask there is read as no
//! mask); the label names `Chest Tube` / `Rib Fracture` (those used by public loaders; the paper
//! says "intercostal chest tubes" and "acute rib fractures"). Columns are looked up by name, so
//! the order does not matter.
//!
//! Note on ids: fx reports a sample's id as its image path without the extension, and a
//! SOPInstanceUID file name has no extension, so its last `.<digits>` part is taken for one
//! (`dataset/8.5.323....7387629250` for `dataset/8.5.323....7387629250.60820`).

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options, Table, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const LABELS: [&str; 3] = ["Pneumothorax", "Chest Tube", "Rib Fracture"];
pub const REPORTS_CSV: &str = "Pneumothorax_reports.csv";
pub const TUBE_CSV: [&str; 1] = ["chest_tube.csv"];
pub const FRACTURE_CSV: [&str; 2] = ["acute_rib_fracture.csv", "Rib_fracture_mask_rle.csv"];

struct Image {
    patient: String,
    /// Run-length codes per label (empty: none).
    codes: Vec<Vec<String>>,
}

fn is_mask(rle: &str) -> bool {
    !rle.is_empty() && rle != "-1"
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "candid-ptx", &["findings", "images", "split", "seed"])?;
    let root = opts.root("candid-ptx")?;
    let all = opts.choice("findings", &["pneumothorax", "all"])? == "all";
    let nl = if all { 3 } else { 1 };
    let reports = Table::read(&find_file(&root, &[REPORTS_CSV], "the pneumothorax labels")?)?;
    let extra = if all {
        vec![
            Table::read(&find_file(&root, &TUBE_CSV, "the chest tube labels (options.findings = \"all\")")?)?,
            Table::read(&find_file(&root, &FRACTURE_CSV, "the rib fracture labels (options.findings = \"all\")")?)?,
        ]
    } else {
        Vec::new()
    };
    let images_dir = match opts.string("images")? {
        Some(d) => find_file(&root, &[d.as_str()], "the DICOM folder (options.images)")?,
        None => root.clone(),
    };
    let fractions = opts.fractions()?;
    let seed = opts.u64("seed", 0)?;

    let csop = reports.col_any(&["SOPInstanceUID", "anon_SOPUID"])?;
    let crle = reports.col_any(&["EncodedPixels", "mask_rle"])?;
    let cfile = reports.col("filename").ok();
    let mut warnings = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut by_sop: HashMap<String, Image> = HashMap::new();
    let (mut no_patient, mut two_patients) = (0usize, 0usize);
    for r in 0..reports.rows.len() {
        let sop = reports.get(r, csop);
        if sop.is_empty() {
            continue;
        }
        let patient = cfile
            .map(|c| reports.get(r, c).split('_').next().unwrap_or("").trim().to_string())
            .filter(|p| !p.is_empty());
        let img = by_sop.entry(sop.to_string()).or_insert_with(|| {
            order.push(sop.to_string());
            if patient.is_none() {
                no_patient += 1;
            }
            Image { patient: patient.clone().unwrap_or_else(|| sop.to_string()), codes: vec![Vec::new(); nl] }
        });
        if let Some(p) = &patient {
            if *p != img.patient && img.patient != sop {
                two_patients += 1;
            }
        }
        let rle = reports.get(r, crle);
        if is_mask(rle) {
            img.codes[0].push(rle.to_string());
        }
    }
    if no_patient > 0 {
        warnings.push(format!(
            "{}: {no_patient} images have no `filename` (patient); each is its own group in the split",
            reports.file.display()
        ));
    }
    if two_patients > 0 {
        warnings.push(format!(
            "{}: {two_patients} rows give an image another patient than its first row; the first is used",
            reports.file.display()
        ));
    }
    for (k, t) in extra.iter().enumerate() {
        let (csop, crle) = (t.col_any(&["anon_SOPUID", "SOPInstanceUID"])?, t.col_any(&["mask_rle", "EncodedPixels"])?);
        let mut orphans = 0;
        for r in 0..t.rows.len() {
            let sop = t.get(r, csop);
            if sop.is_empty() {
                continue;
            }
            match by_sop.get_mut(sop) {
                Some(img) => {
                    let rle = t.get(r, crle);
                    if is_mask(rle) {
                        img.codes[k + 1].push(rle.to_string());
                    }
                }
                None => orphans += 1,
            }
        }
        if orphans > 0 {
            warnings.push(format!(
                "{}: {orphans} rows name an image that {REPORTS_CSV} does not list; they are ignored",
                t.file.display()
            ));
        }
    }

    let found = index_files(&images_dir)?;
    let missing: Vec<&String> = order.iter().filter(|s| !found.contains_key(*s)).collect();
    if let Some(first) = missing.first() {
        warnings.push(format!(
            "{}: {} of {} listed images are not under {} (e.g. {first}); they are skipped when loaded",
            reports.file.display(),
            missing.len(),
            order.len(),
            images_dir.display()
        ));
    }

    let groups: Vec<&str> = order.iter().map(|s| by_sop[s].patient.as_str()).collect();
    let split = draw_split(&groups, fractions, seed);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for (sop, s) in order.iter().zip(split) {
        let img = &by_sop[sop];
        let path = found.get(sop).cloned().unwrap_or_else(|| root.join("dataset").join(sop));
        let mut e = Entry::new(sop.clone(), path);
        e.cls = img.codes.iter().map(|c| if c.is_empty() { 0.0 } else { 1.0 }).collect();
        e.masks = img
            .codes
            .iter()
            .map(|c| if c.is_empty() { MaskSource::Empty } else { MaskSource::SiimRle(c.clone()) })
            .collect();
        splits[SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    let labels: Vec<String> = LABELS[..nl].iter().map(|s| s.to_string()).collect();
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("CANDID-PTX under {}", root.display()),
        cls_labels: labels.clone(),
        loc_labels: labels.clone(),
        seg_labels: labels,
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, true, warnings)
}

/// Every file below `dir` (sorted walk, symbolic links followed, at most 8 levels) by its file
/// name, and by that name without a `.dcm` ending; the first met wins.
fn index_files(dir: &Path) -> Result<HashMap<String, PathBuf>, PluginError> {
    let mut found: HashMap<String, PathBuf> = HashMap::new();
    for p in fx_data::dataset::walk_files(dir, 8)? {
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bare = name.strip_suffix(".dcm").or_else(|| name.strip_suffix(".DCM")).map(str::to_string);
        if let Some(b) = bare {
            found.entry(b).or_insert_with(|| p.clone());
        }
        found.entry(name).or_insert(p);
    }
    Ok(found)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "candid-ptx",
        summary: "CANDID-PTX (Figshare): DICOM; cls/seg/loc Pneumothorax (+ Chest Tube, Rib Fracture with findings = \"all\"), SIIM RLE masks, boxes from masks; seeded split by patient",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
