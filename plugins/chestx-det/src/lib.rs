//! `chestx-det`: ChestX-Det (Deepwise AI Lab; Lian et al., "A Structure-Aware Relation Network
//! for Thoracic Diseases Detection and Segmentation", IEEE TMI 2021): 3,578 NIH ChestX-ray14
//! images with boxes and contours of 13 findings, as downloaded.
//!
//! ```text
//! ROOT/
//!   ChestX_Det_train.json   3,025 images   a JSON list of {"file_name": "36199.png",
//!   ChestX_Det_test.json      553 images     "syms": [s1, ...], "boxes": [[x1, y1, x2, y2], ...],
//!                                            "polygons": [[[x, y], ...], ...]}
//!   train/<n>.png             from train_data.zip (also looked for as train_data/train/, train_data/)
//!   test/<n>.png              from test_data.zip  (test_data/test/, test_data/)
//! ```
//!
//! `syms[i]`, `boxes[i]` and `polygons[i]` describe one finding: its category, its box (left-top
//! and right-bottom corners, pixels) and its contour (pixels). Images without findings have empty
//! lists. PNGs are 1024 × 1024, 8-bit (some NIH PNGs are RGBA: read as luma).
//!
//! Labels ([`CATEGORIES`], the README's and the JSON's spelling): cls — 1 when the image has a
//! finding of the category, else 0; loc — the boxes in file order, `[x1, y1, x2, y2]` read as
//! corners (x0 = x1, x1 = x2); seg — per category, the union of that category's polygons,
//! rasterised at the image size by fx's polygon rule (a pixel is in when its centre is inside by
//! the even-odd rule; [`fx_data::masks::rasterize_polygons`]). A polygon with fewer than 3 points
//! cannot be rasterised and is left out of the mask (its box stays; counted in a warning).
//!
//! Split: the official train / test (the two JSON files; DatasetDesc.drawn_split = false). There
//! is no official val; by default val is empty and train is the whole official train set, as in
//! the paper's Table 1 (3,025 / – / 553). `val = <fraction>` draws that fraction of the train
//! images (by image: the file names carry no patient) into val, seeded by `seed` (default 0).
//!
//! Errors at open: a missing JSON or image folder (named with the paths looked for), malformed
//! JSON, an entry without the four keys or whose lists differ in length, a category outside the 13
//! (each naming the file and entry). A listed PNG that is missing is skipped (and counted) when
//! loaded; the open reports how many.
//!
//! Options: `train`, `test` (JSON files relative to the root), `train_images`, `test_images`
//! (folders), `val`, `seed`, `window`, `raw`.
//!
//! Source: github.com/Deepwise-AILab/ChestX-Det-Dataset (README and the two JSON files: checked
//! that every entry has exactly these four keys, equal list lengths, integer coordinates, no
//! polygon under 3 points, and each box the min/max of its polygon's vertices); the images from
//! resource.deepwise.com/ChestX-Det/{train,test}_data.zip.

use fx_data::dataset::{draw_split, find_file, Entry, FileDataset, MaskSource, Options};
use fx_plugin::{DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Split};
use serde_json::Value;
use std::path::Path;

pub const CATEGORIES: [&str; 13] = [
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "Diffuse Nodule",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Fracture",
    "Mass",
    "Nodule",
    "Pleural Thickening",
    "Pneumothorax",
];

pub fn open(spec: &DatasetSpec) -> Result<FileDataset, PluginError> {
    let opts = Options::new(spec, "chestx-det", &["train", "test", "train_images", "test_images", "val", "seed"])?;
    let root = opts.root("chestx-det")?;
    let val = opts.f64("val", 0.0)?;
    if !(0.0..1.0).contains(&val) {
        return Err(opts.err(format!("options.val must be a fraction in [0, 1), got {val}")));
    }
    let seed = opts.u64("seed", 0)?;
    let mut warnings = Vec::new();
    let mut parts: Vec<Vec<Entry>> = Vec::new();
    for (split, json_key, dir_key, dirs) in [
        ("train", "train", "train_images", ["train", "train_data/train", "train_data"]),
        ("test", "test", "test_images", ["test", "test_data/test", "test_data"]),
    ] {
        let default_json = format!("ChestX_Det_{split}.json");
        let json = match opts.string(json_key)? {
            Some(f) => find_file(&root, &[f.as_str()], &format!("the {split} annotations (options.{json_key})"))?,
            None => find_file(&root, &[default_json.as_str()], &format!("the {split} annotations"))?,
        };
        let dir = match opts.string(dir_key)? {
            Some(d) => find_file(&root, &[d.as_str()], &format!("the {split} images (options.{dir_key})"))?,
            None => find_file(&root, &dirs, &format!("the {split} images folder"))?,
        };
        parts.push(read_split(&json, &dir, split, &mut warnings)?);
    }
    let test = parts.pop().unwrap();
    let all_train = parts.pop().unwrap();
    let mut splits: [Vec<Entry>; 3] = [Vec::new(), Vec::new(), test];
    if val > 0.0 {
        let ids: Vec<&str> = all_train.iter().map(|e| e.id.as_str()).collect();
        let drawn = draw_split(&ids, [1.0 - val, val, 0.0], seed);
        for (e, s) in all_train.into_iter().zip(drawn) {
            splits[if s == Split::Val { 1 } else { 0 }].push(e);
        }
    } else {
        splits[0] = all_train;
    }
    let labels: Vec<String> = CATEGORIES.iter().map(|s| s.to_string()).collect();
    let desc = DatasetDesc {
        name: spec.name.clone(),
        description: format!("ChestX-Det under {}", root.display()),
        cls_labels: labels.clone(),
        loc_labels: labels.clone(),
        seg_labels: labels,
        ..Default::default()
    };
    FileDataset::new(spec, desc, splits, opts.decode()?, false, warnings)
}

/// The entries of one annotation file; images looked up in `dir`.
fn read_split(json: &Path, dir: &Path, split: &str, warnings: &mut Vec<String>) -> Result<Vec<Entry>, PluginError> {
    let bytes = std::fs::read(json).map_err(|e| PluginError::input(json.display(), format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| PluginError::input(json.display(), format!("not valid JSON: {e}")))?;
    let list = v.as_array().ok_or_else(|| {
        PluginError::input(
            json.display(),
            "expected a JSON list of {\"file_name\", \"syms\", \"boxes\", \"polygons\"} objects",
        )
    })?;
    let (mut missing, mut first_missing, mut short_polygons) = (0usize, None, 0usize);
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let bad = |what: String| PluginError::input(json.display(), format!("entry {i}: {what}"));
        let name = item.get("file_name").and_then(Value::as_str).ok_or_else(|| bad("no string `file_name`".into()))?;
        let field =
            |key: &str| item.get(key).and_then(Value::as_array).ok_or_else(|| bad(format!("({name}) no list `{key}`")));
        let (syms, boxes, polygons) = (field("syms")?, field("boxes")?, field("polygons")?);
        if syms.len() != boxes.len() || syms.len() != polygons.len() {
            return Err(bad(format!(
                "({name}) {} syms, {} boxes and {} polygons: one of each per finding",
                syms.len(),
                boxes.len(),
                polygons.len()
            )));
        }
        let mut cls = vec![0.0f32; CATEGORIES.len()];
        let mut shapes: Vec<Vec<Vec<f32>>> = vec![Vec::new(); CATEGORIES.len()];
        let mut lboxes = Vec::with_capacity(boxes.len());
        for (j, ((s, b), p)) in syms.iter().zip(boxes).zip(polygons).enumerate() {
            let s = s.as_str().ok_or_else(|| bad(format!("({name}) syms[{j}] is not a string")))?;
            let k = CATEGORIES
                .iter()
                .position(|c| *c == s)
                .ok_or_else(|| bad(format!("({name}) unknown category `{s}`; expected one of {CATEGORIES:?}")))?;
            cls[k] = 1.0;
            let b: Vec<f32> = b
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).map(|x| x as f32).collect())
                .unwrap_or_default();
            if b.len() != 4 {
                return Err(bad(format!("({name}) boxes[{j}] is not [x1, y1, x2, y2]")));
            }
            lboxes.push(LabeledBox { label: k, x0: b[0], y0: b[1], x1: b[2], y1: b[3] });
            let pts =
                p.as_array().ok_or_else(|| bad(format!("({name}) polygons[{j}] is not a list of [x, y] points")))?;
            let mut flat = Vec::with_capacity(2 * pts.len());
            for q in pts {
                match q.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>()) {
                    Some(xy) if xy.len() == 2 => flat.extend([xy[0] as f32, xy[1] as f32]),
                    _ => return Err(bad(format!("({name}) polygons[{j}] has a point that is not [x, y]"))),
                }
            }
            if flat.len() < 6 {
                short_polygons += 1;
            } else {
                shapes[k].push(flat);
            }
        }
        let image = dir.join(name);
        if !image.is_file() {
            missing += 1;
            first_missing.get_or_insert_with(|| image.clone());
        }
        let stem = Path::new(name).with_extension("");
        let mut e = Entry::new(format!("{split}/{}", stem.display()), image);
        e.cls = cls;
        e.boxes = lboxes;
        e.masks = shapes
            .into_iter()
            .map(|s| if s.is_empty() { MaskSource::Empty } else { MaskSource::Polygons(s) })
            .collect();
        out.push(e);
    }
    if let Some(p) = first_missing {
        warnings.push(format!(
            "{}: {missing} of {} listed images are missing (e.g. {}); they are skipped when loaded",
            json.display(),
            list.len(),
            p.display()
        ));
    }
    if short_polygons > 0 {
        warnings.push(format!("{}: {short_polygons} polygons have fewer than 3 points; they are left out of the masks (their boxes are kept)", json.display()));
    }
    Ok(out)
}

pub fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "chestx-det",
        summary: "ChestX-Det (Deepwise): PNG; 13 findings: cls, loc boxes, seg from polygons; official train/test",
        open: |spec| Ok(Box::new(open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
