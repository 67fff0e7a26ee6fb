//! `rsna-pneumonia`: the RSNA Pneumonia Detection Challenge (Kaggle, stage 2) as downloaded.
//!
//! ```text
//! ROOT/
//!   stage_2_train_labels.csv          patientId,x,y,width,height,Target — one row per box of a
//!                                     positive patient (Target 1), one row without coordinates
//!                                     for a negative one (Target 0)
//!   stage_2_detailed_class_info.csv   patientId,class — "Lung Opacity" | "Normal" |
//!                                     "No Lung Opacity / Not Normal" (one row per label row)
//!   stage_2_train_images/<patientId>.dcm   DICOM (JPEG baseline, 8 bit, 1024 × 1024)
//! ```
//!
//! Tasks: cls — the three classes of the detailed class info, one-hot (the paper's RSNA
//! classification); loc — `pneumonia` boxes (Lung Opacity). There is no official split with labels
//! (stage_2_test_images has none): a seeded 70/10/20 split by patient (`split`, `seed`).
//! Options: `split`, `seed`, `window`, `raw`.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options, Table};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError};
use std::collections::BTreeMap;

pub const CLASSES: [&str; 3] = ["Lung Opacity", "Normal", "No Lung Opacity / Not Normal"];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "rsna-pneumonia", &["split", "seed"])?;
    let root = opts.root("rsna-pneumonia")?;
    let labels = Table::read(&find_file(&root, &["stage_2_train_labels.csv"], "the box list")?)?;
    let classes = Table::read(&find_file(&root, &["stage_2_detailed_class_info.csv"], "the class list")?)?;
    let images = find_file(&root, &["stage_2_train_images"], "the DICOM folder")?;
    let (pid, x, y, w, h, target) = (
        labels.col("patientId")?,
        labels.col("x")?,
        labels.col("y")?,
        labels.col("width")?,
        labels.col("height")?,
        labels.col("Target")?,
    );
    // Patients in file order, with their boxes.
    let mut order: Vec<String> = Vec::new();
    let mut boxes: BTreeMap<String, Vec<LabeledBox>> = BTreeMap::new();
    for r in 0..labels.rows.len() {
        let p = labels.get(r, pid).to_string();
        if p.is_empty() {
            continue;
        }
        if !boxes.contains_key(&p) {
            order.push(p.clone());
        }
        let list = boxes.entry(p).or_default();
        if labels.get(r, target) == "1" {
            let num = |c: usize| -> Result<f32, PluginError> {
                labels.get(r, c).parse::<f32>().map_err(|_| {
                    PluginError::input(labels.at(r), format!("`{}` is not a coordinate", labels.get(r, c)))
                })
            };
            let (bx, by, bw, bh) = (num(x)?, num(y)?, num(w)?, num(h)?);
            list.push(LabeledBox { label: 0, x0: bx, y0: by, x1: bx + bw, y1: by + bh });
        }
    }
    let (cpid, cclass) = (classes.col("patientId")?, classes.col("class")?);
    let mut class_of: BTreeMap<String, usize> = BTreeMap::new();
    for r in 0..classes.rows.len() {
        let c = classes.get(r, cclass);
        let k = CLASSES.iter().position(|x| *x == c).ok_or_else(|| {
            PluginError::input(classes.at(r), format!("unknown class `{c}`; expected one of {CLASSES:?}"))
        })?;
        class_of.insert(classes.get(r, cpid).to_string(), k);
    }
    let mut warnings = Vec::new();
    let refs: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
    let split = draw_split(&refs, opts.fractions()?, opts.u64("seed", 0)?);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for (p, s) in order.iter().zip(split) {
        let mut e = Entry::new(p.clone(), images.join(format!("{p}.dcm")));
        e.boxes = boxes[p].clone();
        e.cls = match class_of.get(p) {
            Some(&k) => (0..3).map(|i| (i == k) as u8 as f32).collect(),
            None => {
                warnings.push(format!("{}: patient {p} has no row; its class is unknown", classes.file.display()));
                vec![f32::NAN; 3]
            }
        };
        splits[fx_data::dataset::SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("RSNA Pneumonia Detection Challenge under {}", root.display()),
        cls_labels: CLASSES.iter().map(|s| s.to_string()).collect(),
        loc_labels: vec!["pneumonia".into()],
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "rsna-pneumonia",
        summary: "RSNA Pneumonia (Kaggle stage 2): DICOM; cls 3 classes one-hot, loc pneumonia boxes; seeded split by patient",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
