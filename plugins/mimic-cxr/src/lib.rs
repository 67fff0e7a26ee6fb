//! `mimic-cxr`: MIMIC-CXR-JPG (PhysioNet, v2.0.0 or v2.1.0) as downloaded.
//!
//! ```text
//! ROOT/                                    physionet.org/files/mimic-cxr-jpg/2.x.0/
//! ├── mimic-cxr-2.0.0-chexpert.csv.gz      subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,
//! │                                        Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,
//! │                                        Lung Opacity,No Finding,Pleural Effusion,Pleural Other,
//! │                                        Pneumonia,Pneumothorax,Support Devices — one row per STUDY
//! │                                        (CheXpert labeler on the report): 1.0 / 0.0 / -1.0 / blank
//! ├── mimic-cxr-2.0.0-split.csv.gz         dicom_id,study_id,subject_id,split (train|validate|test)
//! ├── mimic-cxr-2.0.0-metadata.csv.gz      dicom_id,subject_id,study_id,PerformedProcedureStepDescription,
//! │                                        ViewPosition,Rows,Columns,StudyDate,StudyTime,...
//! ├── mimic-cxr-2.0.0-negbio.csv.gz        (NegBio labels: not read)
//! └── files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg    XX = the first two digits of the subject id
//! ```
//!
//! The tables may also be gunzipped (`.csv`). Images are the rows of the split file (file order),
//! joined with the metadata (view) by dicom_id and with the labels by (subject_id, study_id). An image
//! whose study has no label row (a few studies have no report labels) is not a sample (one warning
//! with the count); an image missing on disk is skipped when loaded.
//!
//! Tasks: cls — the same 14 labels as CheXpert, in CheXpert's order (No Finding, Enlarged
//! Cardiomediastinum, Cardiomegaly, Lung Opacity, Lung Lesion, Edema, Consolidation, Pneumonia,
//! Atelectasis, Pneumothorax, Pleural Effusion, Pleural Other, Fracture, Support Devices), read by
//! column name. `eval_labels` (the reported mean AUC) default to Atelectasis, Cardiomegaly,
//! Consolidation, Edema, Pleural Effusion.
//!
//! Label values: as the `chexpert` plugin — `uncertain = "ones"` (default) | `"zeros"` | `"ignore"`
//! (NaN) for -1.0, `blank = "zeros"` (default) | `"ignore"` for blanks. (TorchXRayVision's
//! `MIMIC_Dataset` keeps blanks and -1 as NaN and zeroes every label where No Finding is 1; the
//! Foundation X code maps -1 → 1 and blank → 0 for MIMIC.)
//!
//! Views: `views = "frontal"` (default: ViewPosition `PA` or `AP`; blank, LATERAL, LL, ... are left
//! out) | `"all"`. Split: the official one (`drawn_split = false`): train → train, validate → val,
//! test → test.
//!
//! Options: `uncertain`, `blank`, `views`, `eval_labels`, `window`, `raw`.
//! Sources: the PhysioNet project page of MIMIC-CXR-JPG (file names, folder scheme, split values);
//! Johnson et al., arXiv:1901.07042; TorchXRayVision `datasets.py` (`MIMIC_Dataset`); the Foundation X
//! code (`datasets_medical.py`, class `MIMIC`).

use fx_data::chexpert_labels::ValueRules;
use fx_data::dataset::{find_file, Entry, FileDataset, Options, Table};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError};
use std::collections::HashMap;

/// The 14 labels in fx's (CheXpert's) order; the CSV has them alphabetically.
pub use fx_data::chexpert_labels::{EVAL_LABELS, LABELS};

fn table(root: &std::path::Path, stem: &str, what: &str) -> Result<Table, PluginError> {
    let gz = format!("{stem}.csv.gz");
    let plain = format!("{stem}.csv");
    Table::read(&find_file(root, &[gz.as_str(), plain.as_str()], what)?)
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "mimic-cxr", &["uncertain", "blank", "views", "eval_labels"])?;
    let root = opts.root("mimic-cxr")?;
    let values = ValueRules::from_options(&opts)?;
    let frontal_only = opts.choice("views", &["frontal", "all"])? == "frontal";
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let eval_labels =
        opts.strings("eval_labels", &labels)?.unwrap_or_else(|| EVAL_LABELS.iter().map(|s| s.to_string()).collect());

    let chexpert = table(&root, "mimic-cxr-2.0.0-chexpert", "the labels")?;
    let split = table(&root, "mimic-cxr-2.0.0-split", "the official split")?;
    let meta = table(&root, "mimic-cxr-2.0.0-metadata", "the image metadata (views)")?;
    let files = find_file(&root, &["files"], "the image folder")?;

    // Labels per study.
    let (lsub, lstudy) = (chexpert.col("subject_id")?, chexpert.col("study_id")?);
    let cols: Vec<usize> = LABELS.iter().map(|l| chexpert.col(l)).collect::<Result<_, _>>()?;
    let mut study_labels: HashMap<(String, String), Vec<f32>> = HashMap::new();
    for r in 0..chexpert.rows.len() {
        let v: Vec<f32> = cols.iter().map(|&c| values.value(&chexpert, r, c)).collect::<Result<_, _>>()?;
        study_labels.insert((chexpert.get(r, lsub).to_string(), chexpert.get(r, lstudy).to_string()), v);
    }

    // Views per image.
    let (mdicom, mview) = (meta.col("dicom_id")?, meta.col("ViewPosition")?);
    let view_of: HashMap<&str, &str> =
        (0..meta.rows.len()).map(|r| (meta.get(r, mdicom), meta.get(r, mview))).collect();

    let (sdicom, sstudy, ssub, ssplit) =
        (split.col("dicom_id")?, split.col("study_id")?, split.col("subject_id")?, split.col("split")?);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    let (mut unlabelled, mut no_meta) = (0usize, 0usize);
    for r in 0..split.rows.len() {
        let (dicom, study, subject) = (split.get(r, sdicom), split.get(r, sstudy), split.get(r, ssub));
        if dicom.is_empty() {
            continue;
        }
        let k = match split.get(r, ssplit) {
            "train" => 0,
            "validate" => 1,
            "test" => 2,
            s => return Err(PluginError::input(split.at(r), format!("split `{s}` is not train, validate or test"))),
        };
        if subject.len() < 2 || !subject.bytes().all(|b| b.is_ascii_digit()) || study.is_empty() {
            return Err(PluginError::input(
                split.at(r),
                format!("subject_id `{subject}` / study_id `{study}` cannot name an image folder"),
            ));
        }
        match view_of.get(dicom) {
            None => {
                no_meta += 1;
                if frontal_only {
                    continue;
                }
            }
            Some(v) if frontal_only && !(*v == "PA" || *v == "AP") => continue,
            Some(_) => {}
        }
        let Some(cls) = study_labels.get(&(subject.to_string(), study.to_string())) else {
            unlabelled += 1;
            continue;
        };
        let image = files
            .join(format!("p{}", &subject[..2]))
            .join(format!("p{subject}"))
            .join(format!("s{study}"))
            .join(format!("{dicom}.jpg"));
        let mut e = Entry::new(dicom.to_string(), image);
        e.cls = cls.clone();
        splits[k].push(e);
    }
    let mut warnings = Vec::new();
    if unlabelled > 0 {
        warnings.push(format!(
            "{}: {unlabelled} images belong to studies without a label row; they are not used",
            chexpert.file.display()
        ));
    }
    if no_meta > 0 {
        warnings.push(format!(
            "{}: {no_meta} images of the split file have no metadata row (no view){}",
            meta.file.display(),
            if frontal_only { "; they are left out with views = \"frontal\"" } else { "" }
        ));
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("MIMIC-CXR-JPG under {}", root.display()),
        cls_labels: labels,
        eval_labels,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "mimic-cxr",
        summary: "MIMIC-CXR-JPG 2.x: JPEG; cls 14 CheXpert labels (uncertain -1 → ones|zeros|ignore); official train/validate/test split",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
