//! `chexpert`: CheXpert (Stanford ML Group; `CheXpert-v1.0` or `CheXpert-v1.0-small`) as downloaded.
//!
//! ```text
//! ROOT/                          the download folder (any name: the CSVs say CheXpert-v1.0-small/...
//! │                              or CheXpert-v1.0/..., the folder may have been renamed)
//! ├── train.csv                  Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,
//! │                              Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,
//! │                              Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,
//! │                              Support Devices — one row per image; labels 1.0 / 0.0 / -1.0 (uncertain)
//! │                              / blank (not mentioned in the report)
//! ├── valid.csv                  the same columns; 234 images labelled by radiologists (1.0 / 0.0)
//! ├── train/patientNNNNN/studyK/viewJ_frontal.jpg | viewJ_lateral.jpg     8-bit grayscale JPEG
//! └── valid/patientNNNNN/studyK/...
//! ```
//!
//! `Path` is relative to the folder ABOVE the download. fx resolves it against `root` by dropping its
//! first component (`CheXpert-v1.0-small/`); when that file does not exist it tries `root/Path` and
//! `root/../Path`. The rule is chosen once, from the first row whose image exists, and applied to
//! every row (a row whose image is missing is skipped when loaded, not at open).
//!
//! Tasks: cls — the 14 labels in the CSV's order (No Finding ... Support Devices). The reported metric
//! is the mean AUC of `eval_labels`, by default the competition's five: Atelectasis, Cardiomegaly,
//! Consolidation, Edema, Pleural Effusion (paper, Section 4).
//!
//! Label values: 1.0 → 1, 0.0 → 0; -1.0 (uncertain) by option `uncertain = "ones"` (default, 1; the
//! U-Ones policy of Irvin et al. and of the Foundation X code for MIMIC) | `"zeros"` (0) | `"ignore"`
//! (NaN: not scored, not trained); blank by option `blank = "zeros"` (default: 0, the usual CheXpert
//! convention and what the Foundation X code does, `unknown_label = 0`) | `"ignore"` (NaN).
//! TorchXRayVision's `CheX_Dataset` differs: it leaves blanks NaN, turns -1 into NaN, and sets every
//! label but Support Devices to 0 where No Finding is 1; `uncertain = "ignore", blank = "ignore"`
//! comes closest (fx does not apply the No Finding rule).
//!
//! Views: `views = "frontal"` (default: rows whose `Frontal/Lateral` is `Frontal`, AP or PA) | `"all"`.
//!
//! Split (official where it exists, `drawn_split = false`): train.csv → train, valid.csv → test (the
//! public labelled evaluation set; the hidden test set is not part of the download). val is drawn
//! from train.csv BY PATIENT (the `patientNNNNN` folder of the path): a fraction `val_fraction`
//! (default 0.1; 0 leaves val empty) of the training patients, seeded by `seed` (default 0).
//!
//! Options: `uncertain`, `blank`, `views`, `val_fraction`, `seed`, `eval_labels`, `window`, `raw`.
//! Sources: Irvin et al., "CheXpert", AAAI 2019 (arXiv:1901.07031); the CheXpert page of the Stanford
//! ML Group; TorchXRayVision `datasets.py` (`CheX_Dataset`) and its copy of train.csv; the Foundation X
//! code (`datasets_medical.py`, class `CheXpert`).

use fx_data::chexpert_labels::ValueRules;
use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options, Table};
use fx_plugin::{DatasetDesc, DatasetSpec, PluginEntry, PluginError, Split};
use std::path::{Path, PathBuf};

pub use fx_data::chexpert_labels::{EVAL_LABELS, LABELS};

/// How a CSV's `Path` becomes a file under `root`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Resolve {
    /// `root` + Path without its first component (the download folder's name).
    Strip,
    /// `root` + Path.
    AsIs,
    /// `root/..` + Path.
    Parent,
}

fn resolve(root: &Path, rel: &str, how: Resolve) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    match how {
        Resolve::Strip => rel.split_once('/').map(|(_, rest)| root.join(rest)),
        Resolve::AsIs => Some(root.join(rel)),
        Resolve::Parent => root.parent().map(|p| p.join(rel)),
    }
}

/// The rule for a whole table: the first that finds the image of some row (Strip when none does).
fn choose_rule(root: &Path, paths: &[&str]) -> Resolve {
    for rel in paths {
        for how in [Resolve::Strip, Resolve::AsIs, Resolve::Parent] {
            if resolve(root, rel, how).is_some_and(|p| p.is_file()) {
                return how;
            }
        }
    }
    Resolve::Strip
}

/// The patient of a path: its `patientNNNNN` component.
fn patient_of(rel: &str) -> Option<&str> {
    rel.split('/').find(|c| c.len() > 7 && c.starts_with("patient") && c[7..].bytes().all(|b| b.is_ascii_digit()))
}

struct Rules {
    values: ValueRules,
    frontal_only: bool,
}

/// The rows of one CSV as (patient, entry), lateral rows dropped when only frontal views are read.
fn read_rows(t: &Table, root: &Path, rules: &Rules) -> Result<Vec<(String, Entry)>, PluginError> {
    let path = t.col("Path")?;
    let view = t.col("Frontal/Lateral")?;
    let cols: Vec<usize> = LABELS.iter().map(|l| t.col(l)).collect::<Result<_, _>>()?;
    let paths: Vec<&str> = (0..t.rows.len()).map(|r| t.get(r, path)).filter(|p| !p.is_empty()).collect();
    let how = choose_rule(root, &paths);
    let mut out = Vec::new();
    for r in 0..t.rows.len() {
        let rel = t.get(r, path);
        if rel.is_empty() {
            continue;
        }
        if rules.frontal_only && !t.get(r, view).eq_ignore_ascii_case("Frontal") {
            continue;
        }
        let image = resolve(root, rel, how).or_else(|| resolve(root, rel, Resolve::AsIs)).unwrap();
        let patient = patient_of(rel).unwrap_or(rel).to_string();
        let mut e = Entry::new(rel.to_string(), image);
        e.cls = cols.iter().map(|&c| rules.values.value(t, r, c)).collect::<Result<_, _>>()?;
        out.push((patient, e));
    }
    Ok(out)
}

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "chexpert", &["uncertain", "blank", "views", "val_fraction", "seed", "eval_labels"])?;
    let root = opts.root("chexpert")?;
    let rules = Rules {
        values: ValueRules::from_options(&opts)?,
        frontal_only: opts.choice("views", &["frontal", "all"])? == "frontal",
    };
    let val_fraction = opts.f64("val_fraction", 0.1)?;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(opts.err(format!("options.val_fraction must be in [0, 1), got {val_fraction}")));
    }
    let seed = opts.u64("seed", 0)?;
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let eval_labels =
        opts.strings("eval_labels", &labels)?.unwrap_or_else(|| EVAL_LABELS.iter().map(|s| s.to_string()).collect());

    let train = Table::read(&find_file(&root, &["train.csv"], "the training labels")?)?;
    let valid = Table::read(&find_file(&root, &["valid.csv"], "the validation labels (fx's test split)")?)?;
    let train_rows = read_rows(&train, &root, &rules)?;
    let test_rows = read_rows(&valid, &root, &rules)?;

    let mut warnings = Vec::new();
    let unnamed = train_rows.iter().chain(&test_rows).filter(|(p, e)| *p == e.id).count();
    if unnamed > 0 {
        warnings.push(format!(
            "chexpert: {unnamed} rows have no patientNNNNN folder in their Path; each is its own patient"
        ));
    }
    let groups: Vec<&str> = train_rows.iter().map(|(p, _)| p.as_str()).collect();
    let drawn = draw_split(&groups, [1.0 - val_fraction, val_fraction, 0.0], seed);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for ((_, e), s) in train_rows.into_iter().zip(drawn) {
        splits[if s == Split::Train { 0 } else { 1 }].push(e);
    }
    splits[2] = test_rows.into_iter().map(|(_, e)| e).collect();

    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("CheXpert (train.csv, valid.csv) under {}", root.display()),
        cls_labels: labels,
        eval_labels,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "chexpert",
        summary: "CheXpert v1.0 (small or full): JPEG; cls 14 labels (uncertain -1 → ones|zeros|ignore); train.csv → train (+ val by patient), valid.csv → test",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_patients() {
        let root = Path::new("/data/chexpert");
        let rel = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg";
        assert_eq!(
            resolve(root, rel, Resolve::Strip).unwrap(),
            Path::new("/data/chexpert/train/patient00001/study1/view1_frontal.jpg")
        );
        assert_eq!(
            resolve(root, rel, Resolve::Parent).unwrap(),
            Path::new("/data/CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg")
        );
        assert_eq!(patient_of(rel), Some("patient00001"));
        assert_eq!(patient_of("train/patientX/study1/a.jpg"), None);
    }
}
