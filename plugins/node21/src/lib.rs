//! `node21`: the NODE21 nodule detection challenge's training data, the organisers' preprocessed
//! release (Zenodo; node21.grand-challenge.org), as downloaded.
//!
//! ```text
//! ROOT/                                  the download root, or cxr_images/proccessed_data itself
//!   cxr_images/
//!     proccessed_data/                   (sic: the publisher's spelling)
//!       metadata.csv                     `,height,img_name,label,width,x,y`: a pandas index
//!                                        column first; one row per nodule (label 1; x, y = the
//!                                        box's top-left corner, width, height = the BOX's size in
//!                                        pixels, not the image's); a control image is one row
//!                                        with label 0 and zeros
//!       images/n####.mha, c####.mha      nodule images and controls, MetaImage (1024 × 1024)
//!     original_data/                     the source images in their own formats: not read
//! ```
//!
//! Tasks: cls `nodule` (1 when the image has a label-1 row, else 0); loc `nodule` boxes (the
//! label-1 rows, file order). `img_name` carries the extension (`n0001.mha`; a name without one
//! gets `.mha`). Images on disk that no row names are ignored; a row naming a missing image is
//! skipped at load. A label-1 row with no area is warned about and gives no box (the image stays
//! a nodule image).
//!
//! Split: NODE21 publishes none for its training data: a seeded split by image (`split`, default
//! 0.7/0.1/0.2; `seed`, default 0). The images carry no patient id.
//! Options: `split`, `seed`, `window`, `raw`.
//! Sources: the NODE21 data page and Zenodo record, the organisers' baseline loader
//! (github.com/node21challenge/node21_detection_baseline, training_utils/dataset.py: columns
//! img_name, x, y, width, height, label; images under `images/`), and a participant's copy of the
//! published metadata.csv (github.com/FinnBehrendt/node21-submit, test/metadata.csv) for the
//! header and the control rows.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, Options, Table, SPLITS};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError};
use std::collections::HashMap;

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "node21", &["split", "seed"])?;
    let root = opts.root("node21")?;
    let meta = find_file(
        &root,
        &["cxr_images/proccessed_data/metadata.csv", "proccessed_data/metadata.csv", "metadata.csv"],
        "the nodule list",
    )?;
    let dir = meta.parent().unwrap_or(&root).to_path_buf();
    let images = find_file(&dir, &["images"], "the image folder")?;
    let t = Table::read(&meta)?;
    let (name, x, y, w, h, label) =
        (t.col("img_name")?, t.col("x")?, t.col("y")?, t.col("width")?, t.col("height")?, t.col("label")?);
    let mut warnings = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut found: HashMap<String, (bool, Vec<LabeledBox>)> = HashMap::new();
    for r in 0..t.rows.len() {
        let file = t.get(r, name);
        if file.is_empty() {
            continue;
        }
        let file =
            if std::path::Path::new(file).extension().is_some() { file.to_string() } else { format!("{file}.mha") };
        let num = |c: usize| -> Result<f32, PluginError> {
            t.get(r, c)
                .parse::<f32>()
                .map_err(|_| PluginError::input(t.at(r), format!("`{}` is not a number", t.get(r, c))))
        };
        let nodule = num(label)? != 0.0;
        if !found.contains_key(&file) {
            order.push(file.clone());
        }
        let slot = found.entry(file).or_default();
        if nodule {
            slot.0 = true;
            let (bx, by, bw, bh) = (num(x)?, num(y)?, num(w)?, num(h)?);
            if bw > 0.0 && bh > 0.0 {
                slot.1.push(LabeledBox { label: 0, x0: bx, y0: by, x1: bx + bw, y1: by + bh });
            } else {
                warnings
                    .push(format!("{}: a nodule row whose box [{bx}, {by}, {bw}, {bh}] has no area; no box", t.at(r)));
            }
        }
    }
    let ids: Vec<String> =
        order.iter().map(|f| std::path::Path::new(f).with_extension("").to_string_lossy().into_owned()).collect();
    let refs: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let split = draw_split(&refs, opts.fractions()?, opts.u64("seed", 0)?);
    let mut splits: [Vec<Entry>; 3] = Default::default();
    for ((file, id), s) in order.iter().zip(&ids).zip(split) {
        let (nodule, boxes) = &found[file];
        let mut e = Entry::new(id.clone(), images.join(file));
        e.cls = vec![*nodule as u8 as f32];
        e.boxes = boxes.clone();
        splits[SPLITS.iter().position(|x| *x == s).unwrap()].push(e);
    }
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("NODE21 (preprocessed) under {}", root.display()),
        cls_labels: vec!["nodule".into()],
        loc_labels: vec!["nodule".into()],
        drawn_split: true,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "node21",
        summary: "NODE21 preprocessed (metadata.csv over .mha): cls nodule, loc nodule boxes; seeded split by image",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
