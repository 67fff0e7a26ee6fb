//! The common body of every real-dataset plugin: a plugin parses its dataset's label files once
//! into [`Entry`]s per split (image path, labels, boxes, where each mask comes from) and hands
//! them to [`FileDataset`], which implements the `Dataset` contract — decoding through
//! [`crate::cache`], masks from PNG/GIF files, SIIM or CheXmask run-length codes or polygons,
//! boxes derived from masks where a dataset has only masks, and checks that name the file.
//!
//! Also here: [`Options`] (a plugin's `options` table with unknown keys refused), [`Table`] (CSV,
//! also `.csv.gz`, columns by name) and [`draw_split`] (the seeded 70/10/20 split by patient the
//! paper's rule asks for where a dataset has no official split).

use crate::cache::{read_image, CacheSpec};
use crate::input::{self, DecodeOptions};
use crate::masks;
use crate::rng::{mix, Rng};
use fx_plugin::{
    Dataset, DatasetDesc, DatasetSpec, LabeledBox, PluginError, Sample, SampleRecord, SampleSource, Split,
};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// Where one mask channel of a sample comes from. Masks are built at the image's original size.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskSource {
    /// No mask for this label: all background (a negative image).
    Empty,
    /// A mask image (PNG, GIF, ...): nonzero = foreground. A mask of another size than its image
    /// (JSRT's SCR masks are 1024² for 2048² images) is resized by nearest neighbour.
    File(PathBuf),
    /// SIIM-ACR run-length codes (relative starts, column-major; several rows are OR'ed; "-1" empty).
    SiimRle(Vec<String>),
    /// CheXmask run-length code (absolute 1-based starts, row-major) at the given (width, height),
    /// resized to the image when it differs.
    ChexmaskRle { rle: String, width: usize, height: usize },
    /// Polygons as flat `x0, y0, x1, y1, ...` lists in original pixels (several are OR'ed).
    Polygons(Vec<Vec<f32>>),
}

/// One sample of a split, as read from the label files.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Unique within the dataset (the record id).
    pub id: String,
    pub image: PathBuf,
    /// One value per cls label: 1, 0, NaN = unknown (or a soft value). Empty without cls labels.
    pub cls: Vec<f32>,
    /// Boxes in original pixels.
    pub boxes: Vec<LabeledBox>,
    /// One source per seg label. Empty without seg labels.
    pub masks: Vec<MaskSource>,
    /// The original (width, height) when the label files state it; checked against the image.
    pub size: Option<(usize, usize)>,
}

impl Entry {
    pub fn new(id: impl Into<String>, image: PathBuf) -> Entry {
        Entry { id: id.into(), image, cls: Vec::new(), boxes: Vec::new(), masks: Vec::new(), size: None }
    }
}

/// A dataset read from files into entries once, at open.
pub struct FileDataset {
    desc: DatasetDesc,
    splits: [Vec<Entry>; 3],
    by_id: HashMap<String, (usize, usize)>,
    decode: DecodeOptions,
    cache: Option<CacheSpec>,
    /// Localization boxes are the tight boxes of the seg masks (seg label k = loc label k).
    boxes_from_masks: bool,
    warnings: Vec<String>,
}

impl FileDataset {
    /// `splits` are train, val, test. Ids must be unique across splits.
    pub fn new(
        spec: &DatasetSpec,
        desc: DatasetDesc,
        splits: [Vec<Entry>; 3],
        decode: DecodeOptions,
        boxes_from_masks: bool,
        mut warnings: Vec<String>,
    ) -> Result<FileDataset, PluginError> {
        let mut by_id = HashMap::new();
        for (k, entries) in splits.iter().enumerate() {
            for (i, e) in entries.iter().enumerate() {
                if e.cls.len() != desc.cls_labels.len() && !e.cls.is_empty() {
                    return Err(PluginError::config(
                        &spec.name,
                        format!("sample {}: {} cls values for {} labels", e.id, e.cls.len(), desc.cls_labels.len()),
                    ));
                }
                if let Some((k0, _)) = by_id.insert(e.id.clone(), (k, i)) {
                    warnings.push(format!(
                        "{}: sample id {} is in the {} and the {} split; the {} one is used",
                        spec.name,
                        e.id,
                        SPLITS[k0].as_str(),
                        SPLITS[k].as_str(),
                        SPLITS[k].as_str()
                    ));
                }
            }
        }
        if boxes_from_masks && desc.loc_labels != desc.seg_labels {
            return Err(PluginError::config(&spec.name, "boxes from masks need the same loc and seg labels"));
        }
        Ok(FileDataset { desc, splits, by_id, decode, cache: spec.cache.clone(), boxes_from_masks, warnings })
    }

    pub fn entries(&self, split: Split) -> &[Entry] {
        &self.splits[SPLITS.iter().position(|s| *s == split).unwrap()]
    }

    fn entry(&self, record: &SampleRecord) -> Result<&Entry, PluginError> {
        let &(k, i) = self.by_id.get(&record.id).ok_or_else(|| {
            PluginError::config(&self.desc.name, format!("sample {} is not in this dataset's index", record.id))
        })?;
        Ok(&self.splits[k][i])
    }

    fn sample(&self, record: &SampleRecord, with_pixels: bool) -> Result<Sample, PluginError> {
        let e = self.entry(record)?;
        let path = &e.image;
        let named = |err: String| image_error(path, err);
        let (w, h, image, image_dims, warnings) = if with_pixels {
            let g = read_image(path, &self.decode, self.cache.as_ref()).map_err(named)?;
            let dims = g.reduced();
            (g.width, g.height, g.pixels, dims, g.warnings)
        } else {
            if !path.is_file() {
                return Err(PluginError::input(path.display(), "the image named by the labels is missing"));
            }
            let (w, h) = input::dimensions(path, &self.decode).map_err(named)?;
            (w, h, Vec::new(), None, Vec::new())
        };
        if let Some((ew, eh)) = e.size {
            if (ew, eh) != (w, h) {
                return Err(PluginError::input(
                    path.display(),
                    format!("the image is {w}×{h} but its labels are for {ew}×{eh}"),
                ));
            }
        }
        let masks: Vec<Vec<u8>> =
            e.masks.iter().map(|m| build_mask(m, w, h).map_err(&named)).collect::<Result<_, _>>()?;
        let mut boxes = Vec::with_capacity(e.boxes.len());
        for b in &e.boxes {
            if b.label >= self.desc.loc_labels.len() {
                return Err(PluginError::config(
                    &self.desc.name,
                    format!("sample {}: box label {} out of range", e.id, b.label),
                ));
            }
            let (fw, fh) = (w as f32, h as f32);
            if !(b.x1 > b.x0 && b.y1 > b.y0) || b.x1 <= 0.0 || b.y1 <= 0.0 || b.x0 >= fw || b.y0 >= fh {
                return Err(PluginError::input(
                    path.display(),
                    format!(
                        "a box [{}, {}, {}, {}] is empty or lies outside the {w}×{h} image",
                        b.x0, b.y0, b.x1, b.y1
                    ),
                ));
            }
            boxes.push(LabeledBox { x0: b.x0.max(0.0), y0: b.y0.max(0.0), x1: b.x1.min(fw), y1: b.y1.min(fh), ..*b });
        }
        if self.boxes_from_masks {
            for (k, m) in masks.iter().enumerate() {
                if let Some([x0, y0, x1, y1]) = masks::mask_to_box(m, w, h) {
                    boxes.push(LabeledBox { label: k, x0, y0, x1, y1 });
                }
            }
        }
        Ok(Sample {
            id: record.id.clone(),
            height: h,
            width: w,
            image,
            image_dims,
            cls: e.cls.clone(),
            boxes,
            masks,
            warnings,
        })
    }
}

/// A decoding error of an image as a plugin error: the decoders' messages already start with the
/// file's path, said once.
pub fn image_error(path: &Path, e: String) -> PluginError {
    let prefix = format!("{}: ", path.display());
    PluginError::input(path.display(), e.strip_prefix(&prefix).unwrap_or(&e))
}

/// A mask channel at (w, h).
pub fn build_mask(m: &MaskSource, w: usize, h: usize) -> Result<Vec<u8>, String> {
    match m {
        MaskSource::Empty => Ok(vec![0; w * h]),
        MaskSource::File(p) => {
            let img = image::open(p).map_err(|e| format!("mask {}: {e}", p.display()))?;
            let (mw, mh) = (img.width() as usize, img.height() as usize);
            let g = img.into_luma16();
            let m: Vec<u8> = g.into_raw().into_iter().map(|v| (v != 0) as u8).collect();
            Ok(resize_nearest(&m, mw, mh, w, h))
        }
        MaskSource::SiimRle(rows) => {
            let mut out = vec![0u8; w * h];
            for r in rows {
                let m = masks::siim_rle_decode(r.trim(), w, h)?;
                out.iter_mut().zip(m).for_each(|(a, b)| *a |= b);
            }
            Ok(out)
        }
        MaskSource::ChexmaskRle { rle, width, height } => {
            let m = masks::chexmask_rle_decode(rle, *width, *height)?;
            Ok(resize_nearest(&m, *width, *height, w, h))
        }
        MaskSource::Polygons(polys) => masks::rasterize_polygons(polys, w, h),
    }
}

/// Nearest-neighbour resampling of a binary mask (pixel centres).
pub fn resize_nearest(m: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    if (w, h) == (ow, oh) {
        return m.to_vec();
    }
    let xs: Vec<usize> = (0..ow).map(|x| (((x as f64 + 0.5) * w as f64 / ow as f64) as usize).min(w - 1)).collect();
    let mut out = Vec::with_capacity(ow * oh);
    for y in 0..oh {
        let sy = (((y as f64 + 0.5) * h as f64 / oh as f64) as usize).min(h - 1);
        out.extend(xs.iter().map(|&sx| m[sy * w + sx]));
    }
    out
}

impl Dataset for FileDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        Ok(self
            .entries(split)
            .iter()
            .map(|e| SampleRecord { id: e.id.clone(), source: SampleSource::File(e.image.clone()) })
            .collect())
    }

    fn load(&self, record: &SampleRecord, _size_hint: usize) -> Result<Sample, PluginError> {
        self.sample(record, true)
    }

    fn labels(&self, record: &SampleRecord, _size_hint: usize) -> Result<Sample, PluginError> {
        self.sample(record, false)
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

// ------------------------------------------------------------------------------------ options

/// A plugin's `options` table: unknown keys are refused (with the list of known ones), values
/// are typed, and every error names the dataset and the key.
pub struct Options<'a> {
    spec: &'a DatasetSpec,
    map: serde_json::Map<String, Value>,
}

impl<'a> Options<'a> {
    /// `known` are the plugin's own keys; the image-input keys (`window`, `raw`) are always known.
    pub fn new(spec: &'a DatasetSpec, plugin: &str, known: &[&str]) -> Result<Options<'a>, PluginError> {
        let map = match &spec.options {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            v => return Err(PluginError::config(&spec.name, format!("options must be a table, got {v}"))),
        };
        let all: Vec<&str> = known.iter().chain(input::OPTION_KEYS.iter()).copied().collect();
        if let Some(k) = map.keys().find(|k| !all.contains(&k.as_str())) {
            return Err(PluginError::config(
                &spec.name,
                format!("unknown option `{k}` for plugin {plugin}; expected one of {}", all.join(", ")),
            ));
        }
        Ok(Options { spec, map })
    }

    pub fn err(&self, what: impl Into<String>) -> PluginError {
        PluginError::config(&self.spec.name, what)
    }

    /// The dataset's root folder (required).
    pub fn root(&self, plugin: &str) -> Result<PathBuf, PluginError> {
        self.spec
            .root
            .clone()
            .ok_or_else(|| self.err(format!("plugin {plugin} needs `root`, the folder of the dataset's download")))
    }

    pub fn decode(&self) -> Result<DecodeOptions, PluginError> {
        DecodeOptions::from_options(&self.map).map_err(|e| self.err(e))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, PluginError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(format!("options.{key} must be a string, got {v}"))),
        }
    }

    /// A string option that must be one of `choices`; the first choice is the default.
    pub fn choice(&self, key: &str, choices: &[&str]) -> Result<String, PluginError> {
        match self.string(key)? {
            None => Ok(choices[0].to_string()),
            Some(s) if choices.contains(&s.as_str()) => Ok(s),
            Some(s) => {
                Err(self.err(format!("options.{key} must be one of \"{}\", got \"{s}\"", choices.join("\", \""))))
            }
        }
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, PluginError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(format!("options.{key} must be true or false, got {v}"))),
        }
    }

    pub fn u64(&self, key: &str, default: u64) -> Result<u64, PluginError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => {
                v.as_u64().ok_or_else(|| self.err(format!("options.{key} must be a non-negative integer, got {v}")))
            }
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64, PluginError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.err(format!("options.{key} must be a number, got {v}"))),
        }
    }

    /// `split = [train, val, test]` fractions summing to 1 (default 0.7, 0.1, 0.2).
    pub fn fractions(&self) -> Result<[f64; 3], PluginError> {
        match self.map.get("split") {
            None => Ok([0.7, 0.1, 0.2]),
            Some(v) => v
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect::<Vec<_>>())
                .filter(|a| a.len() == 3 && a.iter().all(|x| *x >= 0.0) && (a.iter().sum::<f64>() - 1.0).abs() < 1e-6)
                .map(|a| [a[0], a[1], a[2]])
                .ok_or_else(|| {
                    self.err(format!("options.split must be [train, val, test] fractions summing to 1, got {v}"))
                }),
        }
    }

    /// A list of strings (e.g. `eval_labels`), each one of `allowed` when given.
    pub fn strings(&self, key: &str, allowed: &[String]) -> Result<Option<Vec<String>>, PluginError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => {
                let v: Vec<String> = a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| self.err(format!("options.{key} must be a list of strings")))?;
                if let Some(bad) = v.iter().find(|s| !allowed.is_empty() && !allowed.contains(s)) {
                    return Err(self.err(format!("options.{key}: `{bad}` is not one of {}", allowed.join(", "))));
                }
                Ok(Some(v))
            }
            Some(v) => Err(self.err(format!("options.{key} must be a list of strings, got {v}"))),
        }
    }
}

/// Splits items into train/val/test by a seeded draw of their GROUPS (patients), so no patient is
/// in two splits: the distinct groups are sorted, shuffled with the seed and cut by `fractions`.
pub fn draw_split(groups: &[&str], fractions: [f64; 3], seed: u64) -> Vec<Split> {
    let mut distinct: Vec<&str> = groups.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    Rng::new(mix(&[seed, 0x5b11])).shuffle(&mut distinct);
    let n = distinct.len();
    let n_train = (n as f64 * fractions[0]).round() as usize;
    let n_val = ((n as f64 * fractions[1]).round() as usize).min(n - n_train);
    let split_of: HashMap<&str, Split> = distinct
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                *g,
                if i < n_train {
                    Split::Train
                } else if i < n_train + n_val {
                    Split::Val
                } else {
                    Split::Test
                },
            )
        })
        .collect();
    groups.iter().map(|g| split_of[g]).collect()
}

/// Image-level labels from boxes: 1 when the image has a box of that label, else 0.
pub fn cls_from_boxes(boxes: &[LabeledBox], labels: usize) -> Vec<f32> {
    (0..labels).map(|l| if boxes.iter().any(|b| b.label == l) { 1.0 } else { 0.0 }).collect()
}

// ------------------------------------------------------------------------------------ data lines

/// The sample's id as `data` reports it: its image's path relative to the dataset root without
/// its image extension (the record id for generated samples). Only known image extensions are
/// dropped: CANDID-PTX names its DICOMs by SOP Instance UID without extension, and those UIDs
/// contain dots.
pub fn public_id(root: Option<&Path>, record: &SampleRecord) -> String {
    match &record.source {
        SampleSource::File(p) => {
            let rel = root.and_then(|r| p.strip_prefix(r).ok()).unwrap_or(p);
            let is_image = rel
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            let rel = if is_image { rel.with_extension("") } else { rel.to_path_buf() };
            rel.to_string_lossy().into_owned()
        }
        SampleSource::Phantom(_) => record.id.clone(),
    }
}

/// Extensions of the image files fx reads.
pub const IMAGE_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "dcm", "dicom", "dic", "mha", "mhd", "img"];

/// A JSON object with its keys in the given order.
fn object(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}: {v}", Value::String(k.clone()))).collect();
    format!("{{{}}}", body.join(", "))
}

/// One `fx-tui data --format jsonl` line: a sample in original pixels, keys in the documented
/// order (labels in the dataset's order).
pub fn data_line(dataset: &str, desc: &DatasetDesc, split: Option<Split>, id: &str, s: &Sample) -> String {
    let cls: Vec<(String, String)> = desc
        .cls_labels
        .iter()
        .zip(&s.cls)
        .map(|(l, v)| {
            let v = if v.is_nan() {
                "null".to_string()
            } else if *v == 0.0 || *v == 1.0 {
                (*v as i64).to_string()
            } else {
                serde_json::json!(*v).to_string()
            };
            (l.clone(), v)
        })
        .collect();
    let boxes: Vec<String> = s
        .boxes
        .iter()
        .map(|b| {
            let label = desc.loc_labels.get(b.label).cloned().unwrap_or_else(|| b.label.to_string());
            object(&[
                ("label".into(), serde_json::json!(label).to_string()),
                ("x".into(), serde_json::json!(b.x0).to_string()),
                ("y".into(), serde_json::json!(b.y0).to_string()),
                ("w".into(), serde_json::json!(b.x1 - b.x0).to_string()),
                ("h".into(), serde_json::json!(b.y1 - b.y0).to_string()),
            ])
        })
        .collect();
    let masks: Vec<(String, String)> = desc
        .seg_labels
        .iter()
        .zip(&s.masks)
        .map(|(l, m)| (l.clone(), m.iter().filter(|v| **v != 0).count().to_string()))
        .collect();
    object(&[
        ("dataset".into(), serde_json::json!(dataset).to_string()),
        ("split".into(), serde_json::json!(split.map(|s| s.as_str())).to_string()),
        ("id".into(), serde_json::json!(id).to_string()),
        ("width".into(), s.width.to_string()),
        ("height".into(), s.height.to_string()),
        ("cls".into(), object(&cls)),
        ("boxes".into(), format!("[{}]", boxes.join(", "))),
        ("masks".into(), object(&masks)),
    ])
}

/// Compares what a dataset reads (through `labels`, i.e. without decoding) with the lines of an
/// `expected.jsonl` written by a fixture script: same samples, splits (null where `drawn_split`),
/// sizes, labels, boxes (to 1e-3 px) and mask pixel counts. For tests of dataset plugins; returns
/// the number of samples compared or every difference found.
pub fn check_expected(ds: &dyn Dataset, name: &str, root: &Path, expected: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    let mut want: HashMap<String, Value> = HashMap::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", expected.display(), i + 1))?;
        want.insert(v["id"].as_str().unwrap_or_default().to_string(), v);
    }
    let mut problems = Vec::new();
    let mut seen = 0;
    for split in SPLITS {
        for r in ds.index(split).map_err(|e| e.to_string())? {
            let id = public_id(Some(root), &r);
            let s = match ds.labels(&r, 64) {
                Ok(s) => s,
                Err(e) if !want.contains_key(&id) => {
                    let _ = e; // a sample the fixture leaves out on purpose (missing image)
                    continue;
                }
                Err(e) => {
                    problems.push(format!("{id}: {e}"));
                    continue;
                }
            };
            let split = (!ds.desc().drawn_split).then_some(split);
            let got: Value = serde_json::from_str(&data_line(name, ds.desc(), split, &id, &s)).unwrap();
            match want.remove(&id) {
                None => problems.push(format!("{id}: read but not in {}", expected.display())),
                Some(w) => {
                    if !close(&got, &w) {
                        problems.push(format!("{id}:\n  fx:       {got}\n  expected: {w}"));
                    }
                    seen += 1;
                }
            }
        }
    }
    for id in want.keys() {
        problems.push(format!("{id}: expected but not read"));
    }
    if problems.is_empty() {
        Ok(seen)
    } else {
        problems.sort();
        Err(problems.join("\n"))
    }
}

/// JSON equality with numbers compared to 1e-3.
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-3,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

// ------------------------------------------------------------------------------------ tables

/// A CSV file read whole: a header and rows of fields, columns looked up by name.
pub struct Table {
    pub file: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads a CSV (or `.csv.gz`). Header names are trimmed (SIIM-ACR's ` EncodedPixels` has a
    /// leading space) and a UTF-8 byte-order mark is dropped; rows may be shorter or longer than
    /// the header (missing fields read as empty).
    pub fn read(path: &Path) -> Result<Table, PluginError> {
        let bytes = std::fs::read(path).map_err(|e| PluginError::input(path.display(), format!("cannot read: {e}")))?;
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| PluginError::input(path.display(), format!("not a readable gzip file: {e}")))?;
            out
        } else {
            bytes
        };
        Table::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Table, PluginError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut r = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(bytes);
        let header: Vec<String> = r
            .headers()
            .map_err(|e| PluginError::input(path.display(), format!("not a CSV file: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| PluginError::input(path.display(), format!("line {}: {e}", i + 2)))?;
            rows.push(rec.iter().map(|s| s.to_string()).collect());
        }
        if header.is_empty() || header.iter().all(|h| h.is_empty()) {
            return Err(PluginError::input(path.display(), "the CSV has no header line"));
        }
        Ok(Table { file: path.to_path_buf(), header, rows })
    }

    /// The index of a column; an error naming the file, the column and the columns it has.
    pub fn col(&self, name: &str) -> Result<usize, PluginError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            PluginError::input(
                self.file.display(),
                format!("no column `{name}`; its columns are: {}", self.header.join(", ")),
            )
        })
    }

    /// The first of several spellings a column may have across releases.
    pub fn col_any(&self, names: &[&str]) -> Result<usize, PluginError> {
        names.iter().find_map(|n| self.header.iter().position(|h| h == n)).ok_or_else(|| {
            PluginError::input(
                self.file.display(),
                format!("no column {}; its columns are: {}", names.join(" or "), self.header.join(", ")),
            )
        })
    }

    /// Field `c` of row `r` (empty when the row is short), trimmed.
    pub fn get(&self, r: usize, c: usize) -> &str {
        self.rows[r].get(c).map(|s| s.trim()).unwrap_or("")
    }

    /// "line N of FILE" for messages (the header is line 1).
    pub fn at(&self, r: usize) -> String {
        format!("{} line {}", self.file.display(), r + 2)
    }
}

/// Every file below `dir`, in a sorted walk (symbolic links followed, at most `max_depth` folders
/// down), so "the first one met wins" rules give the same answer on every machine. An unreadable
/// `dir` is an error naming it; an unreadable sub-folder is skipped.
pub fn walk_files(dir: &Path, max_depth: usize) -> Result<Vec<PathBuf>, PluginError> {
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if d == dir => {
                return Err(PluginError::input(d.display(), format!("cannot list the image folder: {e}")))
            }
            Err(_) => continue,
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        // Folders go on the stack in reverse, so the walk visits them in sorted order.
        for p in paths.iter().rev() {
            if p.is_dir() && depth < max_depth {
                stack.push((p.clone(), depth + 1));
            }
        }
        files.extend(paths.into_iter().filter(|p| p.is_file()));
    }
    Ok(files)
}

/// The first of `candidates` (relative to `root`) that exists, or an error naming them all.
pub fn find_file(root: &Path, candidates: &[&str], what: &str) -> Result<PathBuf, PluginError> {
    candidates.iter().map(|c| root.join(c)).find(|p| p.exists()).ok_or_else(|| {
        PluginError::input(
            root.display(),
            format!(
                "{what}: expected {} under this root",
                candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_patient_never_splits_a_patient_and_is_seeded() {
        let groups: Vec<String> = (0..300).map(|i| format!("p{}", i / 3)).collect();
        let refs: Vec<&str> = groups.iter().map(|s| s.as_str()).collect();
        let s = draw_split(&refs, [0.7, 0.1, 0.2], 1);
        for i in (0..300).step_by(3) {
            assert!(s[i] == s[i + 1] && s[i] == s[i + 2]);
        }
        let train = s.iter().filter(|x| **x == Split::Train).count();
        assert_eq!(train, 70 * 3);
        assert_eq!(s, draw_split(&refs, [0.7, 0.1, 0.2], 1));
        assert_ne!(s, draw_split(&refs, [0.7, 0.1, 0.2], 2));
    }

    #[test]
    fn tables_trim_headers_read_gzip_and_name_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\u{feff}ImageId, EncodedPixels\na.dcm, -1\nb.dcm,1 2 3 4\n").unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.header, vec!["ImageId", "EncodedPixels"]);
        assert_eq!(t.get(0, t.col("EncodedPixels").unwrap()), "-1");
        let e = t.col("Target").err().unwrap().to_string();
        assert!(e.contains("t.csv") && e.contains("no column `Target`") && e.contains("ImageId"), "{e}");
        let gz = dir.path().join("t.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, b"a,b\n1,2\n").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let t = Table::read(&gz).unwrap();
        assert_eq!((t.header.len(), t.get(0, 1)), (2, "2"));
    }

    #[test]
    fn masks_from_every_source_at_the_image_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        image::GrayImage::from_fn(4, 2, |x, _| image::Luma([if x < 2 { 255 } else { 0 }])).save(&p).unwrap();
        // A 4×2 mask file for an 8×4 image: resized by nearest neighbour.
        let m = build_mask(&MaskSource::File(p), 8, 4).unwrap();
        assert_eq!(m.iter().filter(|v| **v == 1).count(), 16);
        assert!((0..4).all(|y| m[y * 8..y * 8 + 4].iter().all(|v| *v == 1)));
        let m = build_mask(&MaskSource::SiimRle(vec!["-1".into(), "0 2".into()]), 4, 4).unwrap();
        assert_eq!(m.iter().filter(|v| **v == 1).count(), 2);
        assert_eq!(build_mask(&MaskSource::Empty, 3, 2).unwrap(), vec![0; 6]);
    }
}
