//! Box annotations from disk: COCO JSON (`read_coco`) and CSV box lists (`read_box_csv`, e.g.
//! NODE21's `img_name,x,y,width,height,label`, RSNA's `patientId,x,y,width,height,Target`,
//! VinDr-CXR's `image_id,…,class_name,x_min,y_min,x_max,y_max`).
//!
//! Hard errors (a `String` naming the file and the place: JSON path such as
//! `annotations[12].bbox`, or CSV line and column): unreadable file, malformed JSON or CSV (with
//! serde_json's line and column), a missing or mistyped field, duplicate image or category ids, an
//! annotation whose `image_id` or `category_id` is not declared, a negative width or height.
//!
//! Soft problems (the box is dropped or changed, the file still loads; each one is a line in
//! `problems`, naming the file and path): a box with no area (width or height 0), a box entirely
//! outside its image (dropped), a box partly outside its image (clipped to the image and kept).
//!
//! Boxes are kept in the file's own convention (COCO: `[x, y, width, height]` in pixels, no +1);
//! [`CocoSet::boxes_of`] gives `fx_plugin::LabeledBox` corners `[x0, y0, x1, y1]` with the
//! category INDEX (position in `categories`, which keeps the file's order) as label.

use std::collections::HashMap;
use std::path::Path;

use fx_plugin::LabeledBox;
use serde_json::Value;

use crate::masks::{coco_rle_decode, rasterize_polygons};

/// One entry of `images`.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoImage {
    pub id: i64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

/// One entry of `categories`.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoCategory {
    pub id: i64,
    pub name: String,
}

/// An annotation's `segmentation`, kept as in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum CocoSegmentation {
    /// No `segmentation` key, `null` or an empty list.
    None,
    /// Polygons `[[x0, y0, x1, y1, …], …]` in pixels.
    Polygons(Vec<Vec<f32>>),
    /// Uncompressed RLE: `{"size": [h, w], "counts": [..]}` (column-major, see `masks::coco_rle_decode`).
    Rle { height: u32, width: u32, counts: Vec<u32> },
    /// Compressed RLE: `{"size": [h, w], "counts": "…"}` (pycocotools' string form).
    CompressedRle { height: u32, width: u32, counts: String },
}

/// One entry of `annotations` that passed the checks.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoAnnotation {
    pub id: i64,
    pub image_id: i64,
    pub category_id: i64,
    /// Index into `CocoSet::images`.
    pub image: usize,
    /// Index into `CocoSet::categories`.
    pub category: usize,
    /// `[x, y, width, height]` in pixels (clipped to the image when it stuck out; see `problems`).
    pub bbox: [f32; 4],
    pub iscrowd: bool,
    /// The file's `area` when given (COCO's mask area; pycocotools uses it for area ranges).
    pub area: Option<f64>,
    pub segmentation: CocoSegmentation,
}

impl CocoAnnotation {
    /// The box as corners `[x0, y0, x1, y1]`.
    pub fn xyxy(&self) -> [f32; 4] {
        let [x, y, w, h] = self.bbox;
        [x, y, x + w, y + h]
    }
}

/// A COCO file: images, categories and the annotations that passed the checks.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CocoSet {
    pub images: Vec<CocoImage>,
    pub categories: Vec<CocoCategory>,
    pub annotations: Vec<CocoAnnotation>,
    /// Soft problems (dropped or clipped boxes), one line each, naming the file and JSON path.
    pub problems: Vec<String>,
}

impl CocoSet {
    /// Index of the image with this id.
    pub fn image_index(&self, id: i64) -> Option<usize> {
        self.images.iter().position(|im| im.id == id)
    }

    /// Index of the category with this id.
    pub fn category_index(&self, id: i64) -> Option<usize> {
        self.categories.iter().position(|c| c.id == id)
    }

    /// Indices (into `annotations`) of the annotations of one image, in file order.
    pub fn annotations_of(&self, image: usize) -> Vec<usize> {
        (0..self.annotations.len()).filter(|&a| self.annotations[a].image == image).collect()
    }

    /// The boxes of one image as `LabeledBox` corners with the category index as label. Crowd
    /// annotations are left out unless `include_crowd`.
    pub fn boxes_of(&self, image: usize, include_crowd: bool) -> Vec<LabeledBox> {
        self.annotations
            .iter()
            .filter(|a| a.image == image && (include_crowd || !a.iscrowd))
            .map(|a| {
                let [x0, y0, x1, y1] = a.xyxy();
                LabeledBox { label: a.category, x0, y0, x1, y1 }
            })
            .collect()
    }

    /// Rasterises annotation `ann`'s segmentation at its image's size (row-major, 0/1). Polygons use
    /// `masks::rasterize_polygons`, RLE `masks::coco_rle_decode` (the compressed string form is
    /// decoded first). `Ok(None)` when the annotation has no segmentation.
    pub fn mask(&self, ann: usize) -> Result<Option<Vec<u8>>, String> {
        let a = self.annotations.get(ann).ok_or_else(|| format!("annotation index {ann} out of range"))?;
        let im = &self.images[a.image];
        let (w, h) = (im.width as usize, im.height as usize);
        let here = |e: String| format!("annotation id {}: {e}", a.id);
        let check_size = |rh: u32, rw: u32| {
            if (rh, rw) != (im.height, im.width) {
                Err(here(format!(
                    "RLE size [{rh}, {rw}] differs from its image's [height, width] = [{}, {}]",
                    im.height, im.width
                )))
            } else {
                Ok(())
            }
        };
        match &a.segmentation {
            CocoSegmentation::None => Ok(None),
            CocoSegmentation::Polygons(p) => rasterize_polygons(p, w, h).map(Some).map_err(here),
            CocoSegmentation::Rle { height, width, counts } => {
                check_size(*height, *width)?;
                coco_rle_decode(counts, w, h).map(Some).map_err(here)
            }
            CocoSegmentation::CompressedRle { height, width, counts } => {
                check_size(*height, *width)?;
                let c = coco_rle_string_decode(counts).map_err(here)?;
                coco_rle_decode(&c, w, h).map(Some).map_err(here)
            }
        }
    }
}

/// Decodes pycocotools' compressed RLE string (`rleFrString` in maskApi.c: 6-bit groups offset by
/// 48, 5 data bits + a continuation bit, sign-extended; from the third count on, each value is a
/// difference to the count two places before) into plain counts.
pub fn coco_rle_string_decode(s: &str) -> Result<Vec<u32>, String> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0;
        loop {
            let Some(&b) = bytes.get(p) else {
                return Err(format!("compressed RLE: string ends inside a number (at character {p})"));
            };
            if !(48..48 + 64).contains(&b) {
                return Err(format!("compressed RLE: character {p} ({:?}) is outside '0'..'o'", b as char));
            }
            if k >= 12 {
                return Err(format!("compressed RLE: number at character {p} is too long"));
            }
            let c = (b - 48) as i64;
            x |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        let m = counts.len();
        if m > 2 {
            x += counts[m - 2] as i64;
        }
        let v = u32::try_from(x).map_err(|_| format!("compressed RLE: count {m} decodes to {x}, not a count"))?;
        counts.push(v);
    }
    Ok(counts)
}

// ---------------------------------------------------------------------------------------------
// COCO JSON

/// Reads a COCO JSON file (`images`, `categories`, `annotations`; `categories` and `annotations`
/// may be absent). See the module documentation for what is an error and what a problem.
pub fn read_coco(path: &Path) -> Result<CocoSet, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    parse_coco(&text, &file)
}

/// [`read_coco`] on text already in memory; `file` names it in messages.
pub fn parse_coco(text: &str, file: &str) -> Result<CocoSet, String> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| format!("{file}: malformed JSON at line {}, column {}: {e}", e.line(), e.column()))?;
    let err = |path: &str, what: String| format!("{file}: {path}: {what}");
    let Some(obj) = root.as_object() else {
        return Err(err(
            "(top level)",
            format!("expected an object with images/categories/annotations, found {}", kind(&root)),
        ));
    };

    let mut set = CocoSet::default();
    let images = match obj.get("images") {
        Some(v) => array(v, "images").map_err(|w| err("images", w))?,
        None => return Err(err("images", "missing (a COCO file lists its images)".into())),
    };
    let mut image_ids: HashMap<i64, usize> = HashMap::new();
    for (i, v) in images.iter().enumerate() {
        let at = format!("images[{i}]");
        let o = v.as_object().ok_or_else(|| err(&at, format!("expected an object, found {}", kind(v))))?;
        let id = int_field(o, "id").map_err(|w| err(&format!("{at}.id"), w))?;
        let file_name = match o.get("file_name") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(err(&format!("{at}.file_name"), format!("expected a string, found {}", kind(v)))),
            None => {
                return Err(err(
                    &format!("{at}.file_name"),
                    "missing: every image needs the file it is read from".to_string(),
                ))
            }
        };
        if file_name.trim().is_empty() {
            return Err(err(
                &format!("{at}.file_name"),
                "empty: every image needs the file it is read from".to_string(),
            ));
        }
        let size = |key: &str| -> Result<u32, String> {
            let n = int_field(o, key).map_err(|w| err(&format!("{at}.{key}"), w))?;
            u32::try_from(n).map_err(|_| {
                err(&format!("{at}.{key}"), format!("{n} is not a valid size (expected 0 ≤ {key} < 2^32)"))
            })
        };
        let (width, height) = (size("width")?, size("height")?);
        if let Some(first) = image_ids.insert(id, i) {
            return Err(err(&format!("{at}.id"), format!("image id {id} is also the id of images[{first}]")));
        }
        set.images.push(CocoImage { id, file_name, width, height });
    }

    let categories = match obj.get("categories") {
        Some(v) => array(v, "categories").map_err(|w| err("categories", w))?,
        None => &[][..],
    };
    let mut category_ids: HashMap<i64, usize> = HashMap::new();
    for (i, v) in categories.iter().enumerate() {
        let at = format!("categories[{i}]");
        let o = v.as_object().ok_or_else(|| err(&at, format!("expected an object, found {}", kind(v))))?;
        let id = int_field(o, "id").map_err(|w| err(&format!("{at}.id"), w))?;
        let name = match o.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(err(&format!("{at}.name"), format!("expected a string, found {}", kind(v)))),
            None => return Err(err(&format!("{at}.name"), "missing".into())),
        };
        if let Some(first) = category_ids.insert(id, i) {
            return Err(err(&format!("{at}.id"), format!("category id {id} is also the id of categories[{first}]")));
        }
        set.categories.push(CocoCategory { id, name });
    }

    let annotations = match obj.get("annotations") {
        Some(v) => array(v, "annotations").map_err(|w| err("annotations", w))?,
        None => &[][..],
    };
    for (i, v) in annotations.iter().enumerate() {
        let at = format!("annotations[{i}]");
        let o = v.as_object().ok_or_else(|| err(&at, format!("expected an object, found {}", kind(v))))?;
        let id = int_field(o, "id").map_err(|w| err(&format!("{at}.id"), w))?;
        let image_id = int_field(o, "image_id").map_err(|w| err(&format!("{at}.image_id"), w))?;
        let image = *image_ids
            .get(&image_id)
            .ok_or_else(|| err(&format!("{at}.image_id"), format!("image id {image_id} is not in `images`")))?;
        let category_id = int_field(o, "category_id").map_err(|w| err(&format!("{at}.category_id"), w))?;
        let category = *category_ids.get(&category_id).ok_or_else(|| {
            let known: Vec<String> = set.categories.iter().map(|c| c.id.to_string()).collect();
            err(
                &format!("{at}.category_id"),
                format!(
                    "category id {category_id} is not in `categories` (ids: {})",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            )
        })?;
        let iscrowd = match o.get("iscrowd") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => match v.as_i64() {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(err(&format!("{at}.iscrowd"), format!("expected 0 or 1, found {v}"))),
            },
        };
        let area = match o.get("area") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| err(&format!("{at}.area"), format!("expected a number, found {}", kind(v))))?,
            ),
        };
        let segmentation =
            segmentation(o.get("segmentation")).map_err(|(sub, w)| err(&format!("{at}.segmentation{sub}"), w))?;
        let bpath = format!("{at}.bbox");
        let bbox = match o.get("bbox") {
            Some(Value::Array(a)) if a.len() == 4 => {
                let mut b = [0f64; 4];
                for (k, x) in a.iter().enumerate() {
                    b[k] = x
                        .as_f64()
                        .filter(|f| f.is_finite())
                        .ok_or_else(|| err(&format!("{bpath}[{k}]"), format!("expected a finite number, found {x}")))?;
                }
                b
            }
            Some(v) => return Err(err(&bpath, format!("expected [x, y, width, height], found {v}"))),
            None => return Err(err(&bpath, "missing".into())),
        };
        let [x, y, w, h] = bbox;
        if w < 0.0 || h < 0.0 {
            return Err(err(&bpath, format!("negative size: width {w}, height {h}")));
        }
        let im = &set.images[image];
        let (iw, ih) = (im.width as f64, im.height as f64);
        let here = format!("{file}: {bpath} (annotation id {id}, image id {image_id})");
        if w == 0.0 || h == 0.0 {
            set.problems.push(format!("{here}: box [{x}, {y}, {w}, {h}] has no area; skipped"));
            continue;
        }
        let (cx0, cy0, cx1, cy1) = (x.max(0.0), y.max(0.0), (x + w).min(iw), (y + h).min(ih));
        if cx1 <= cx0 || cy1 <= cy0 {
            set.problems.push(format!("{here}: box [{x}, {y}, {w}, {h}] lies outside its {iw} × {ih} image; skipped"));
            continue;
        }
        let bbox = if (cx0, cy0, cx1, cy1) != (x, y, x + w, y + h) {
            set.problems.push(format!(
                "{here}: box [{x}, {y}, {w}, {h}] sticks out of its {iw} × {ih} image; clipped to [{cx0}, {cy0}, {}, {}]",
                cx1 - cx0,
                cy1 - cy0
            ));
            [cx0 as f32, cy0 as f32, (cx1 - cx0) as f32, (cy1 - cy0) as f32]
        } else {
            [x as f32, y as f32, w as f32, h as f32]
        };
        set.annotations.push(CocoAnnotation {
            id,
            image_id,
            category_id,
            image,
            category,
            bbox,
            iscrowd,
            area,
            segmentation,
        });
    }
    Ok(set)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn array<'a>(v: &'a Value, _key: &str) -> Result<&'a [Value], String> {
    v.as_array().map(|a| a.as_slice()).ok_or_else(|| format!("expected an array, found {}", kind(v)))
}

/// An integer field; integral floats (`3.0`) are accepted, as Python's json writes them sometimes.
fn int_field(o: &serde_json::Map<String, Value>, key: &str) -> Result<i64, String> {
    match o.get(key) {
        None => Err("missing".into()),
        Some(v) => {
            if let Some(i) = v.as_i64() {
                Ok(i)
            } else if let Some(f) = v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                Ok(f as i64)
            } else {
                Err(format!(
                    "expected an integer, found {}",
                    if v.is_number() { v.to_string() } else { kind(v).to_string() }
                ))
            }
        }
    }
}

/// Parses `segmentation`; errors carry the sub-path (e.g. `[1][4]`, `.counts`).
fn segmentation(v: Option<&Value>) -> Result<CocoSegmentation, (String, String)> {
    let size = |o: &serde_json::Map<String, Value>| -> Result<(u32, u32), (String, String)> {
        match o.get("size") {
            Some(Value::Array(a)) if a.len() == 2 => {
                let mut hw = [0u32; 2];
                for (k, x) in a.iter().enumerate() {
                    hw[k] = x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                        (format!(".size[{k}]"), format!("expected a non-negative integer, found {x}"))
                    })?;
                }
                Ok((hw[0], hw[1]))
            }
            Some(x) => Err((".size".into(), format!("expected [height, width], found {x}"))),
            None => Err((".size".into(), "missing (an RLE needs [height, width])".into())),
        }
    };
    match v {
        None | Some(Value::Null) => Ok(CocoSegmentation::None),
        Some(Value::Array(polys)) if polys.is_empty() => Ok(CocoSegmentation::None),
        Some(Value::Array(polys)) => {
            let mut out = Vec::with_capacity(polys.len());
            for (p, poly) in polys.iter().enumerate() {
                let pts = poly.as_array().ok_or_else(|| {
                    (format!("[{p}]"), format!("expected a list of coordinates, found {}", kind(poly)))
                })?;
                let mut q = Vec::with_capacity(pts.len());
                for (k, x) in pts.iter().enumerate() {
                    q.push(
                        x.as_f64()
                            .filter(|f| f.is_finite())
                            .ok_or_else(|| (format!("[{p}][{k}]"), format!("expected a finite number, found {x}")))?
                            as f32,
                    );
                }
                out.push(q);
            }
            Ok(CocoSegmentation::Polygons(out))
        }
        Some(Value::Object(o)) => {
            let (height, width) = size(o)?;
            match o.get("counts") {
                Some(Value::String(s)) => Ok(CocoSegmentation::CompressedRle { height, width, counts: s.clone() }),
                Some(Value::Array(a)) => {
                    let mut counts = Vec::with_capacity(a.len());
                    for (k, x) in a.iter().enumerate() {
                        counts.push(x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                            (format!(".counts[{k}]"), format!("expected a non-negative integer, found {x}"))
                        })?);
                    }
                    Ok(CocoSegmentation::Rle { height, width, counts })
                }
                Some(x) => Err((".counts".into(), format!("expected a list of counts or a string, found {}", kind(x)))),
                None => Err((".counts".into(), "missing".into())),
            }
        }
        Some(x) => Err((String::new(), format!("expected polygons (a list) or an RLE (an object), found {}", kind(x)))),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV box lists

/// How the box corners are spelled in a CSV.
#[derive(Clone, Debug, PartialEq)]
pub enum BoxCoords {
    /// Top-left corner and size (NODE21, RSNA).
    Xywh { x: String, y: String, width: String, height: String },
    /// Two corners (VinDr-CXR: `x_min,y_min,x_max,y_max`).
    Xyxy { x0: String, y0: String, x1: String, y1: String },
}

/// Which columns of a box CSV hold what. Column names are matched exactly (after trimming spaces).
#[derive(Clone, Debug, PartialEq)]
pub struct BoxCsvColumns {
    /// The image name or id column.
    pub image: String,
    pub coords: BoxCoords,
    /// The label column; `None`: every box gets `default_label`.
    pub label: Option<String>,
    pub default_label: String,
    /// Label values renamed on reading (NODE21's and RSNA's 0/1 target: `1` → `nodule`).
    pub rename: Vec<(String, String)>,
    /// Label values that mean "this row has no box, the image is negative" (NODE21 `0`, RSNA `0`,
    /// VinDr-CXR `No finding`). Rows with all coordinates empty are negatives too.
    pub negative_labels: Vec<String>,
}

impl BoxCsvColumns {
    /// NODE21 `metadata.csv`: `img_name,x,y,width,height,label`, label 1 = nodule box, 0 = none.
    pub fn node21() -> Self {
        BoxCsvColumns {
            image: "img_name".into(),
            coords: BoxCoords::Xywh { x: "x".into(), y: "y".into(), width: "width".into(), height: "height".into() },
            label: Some("label".into()),
            default_label: "nodule".into(),
            rename: vec![("1".into(), "nodule".into())],
            negative_labels: vec!["0".into()],
        }
    }

    /// RSNA Pneumonia `stage_2_train_labels.csv`: `patientId,x,y,width,height,Target`.
    pub fn rsna() -> Self {
        BoxCsvColumns {
            image: "patientId".into(),
            coords: BoxCoords::Xywh { x: "x".into(), y: "y".into(), width: "width".into(), height: "height".into() },
            label: Some("Target".into()),
            default_label: "pneumonia".into(),
            rename: vec![("1".into(), "pneumonia".into())],
            negative_labels: vec!["0".into()],
        }
    }

    /// VinDr-CXR `annotations_*.csv`: `image_id,…,class_name,x_min,y_min,x_max,y_max`.
    pub fn vindr() -> Self {
        BoxCsvColumns {
            image: "image_id".into(),
            coords: BoxCoords::Xyxy { x0: "x_min".into(), y0: "y_min".into(), x1: "x_max".into(), y1: "y_max".into() },
            label: Some("class_name".into()),
            default_label: String::new(),
            rename: vec![],
            negative_labels: vec!["No finding".into()],
        }
    }
}

/// One box row of a CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvBox {
    /// Index into `BoxCsv::images`.
    pub image: usize,
    /// The label text (a value of the label column, or `default_label`).
    pub label: String,
    /// Corners `[x0, y0, x1, y1]` in pixels.
    pub xyxy: [f32; 4],
    /// 1-based line number in the file.
    pub line: usize,
}

/// A CSV box list: every image named in the file (negatives included), in first-appearance order,
/// and the boxes (several rows per image allowed).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BoxCsv {
    pub images: Vec<String>,
    pub boxes: Vec<CsvBox>,
    /// Distinct box labels in first-appearance order (negatives excluded).
    pub labels: Vec<String>,
    /// Soft problems (boxes with no area, labels without coordinates; skipped), one line each.
    pub problems: Vec<String>,
}

impl BoxCsv {
    /// Boxes of image `image` as `LabeledBox` with `label` = index into `self.labels`.
    pub fn boxes_of(&self, image: usize) -> Vec<LabeledBox> {
        self.boxes
            .iter()
            .filter(|b| b.image == image)
            .map(|b| {
                let label = self.labels.iter().position(|l| *l == b.label).expect("label listed");
                let [x0, y0, x1, y1] = b.xyxy;
                LabeledBox { label, x0, y0, x1, y1 }
            })
            .collect()
    }
}

/// Reads a CSV box list with a header row (see [`BoxCsvColumns`]). A CSV has no image sizes, so
/// boxes are not checked against their image here (the caller can, once the image is decoded).
/// Rows with a negative label add the image without a box; a non-negative label with all
/// coordinates empty does the same and is listed in `problems`.
pub fn read_box_csv(path: &Path, columns: &BoxCsvColumns) -> Result<BoxCsv, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    parse_box_csv(&text, &file, columns)
}

/// [`read_box_csv`] on text already in memory; `file` names it in messages.
pub fn parse_box_csv(text: &str, file: &str, columns: &BoxCsvColumns) -> Result<BoxCsv, String> {
    let rows = csv_rows(text).map_err(|(line, w)| format!("{file} line {line}: {w}"))?;
    let mut rows = rows.into_iter().filter(|(_, r)| !(r.len() == 1 && r[0].trim().is_empty()));
    let Some((_, header)) = rows.next() else {
        return Err(format!("{file}: empty file, expected a header row"));
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_string()).collect();
    let col = |name: &str| -> Result<usize, String> {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{file} line 1: no column `{name}` in the header (columns: {})", header.join(", ")))
    };
    let image_col = col(&columns.image)?;
    let label_col = columns.label.as_deref().map(col).transpose()?;
    let (coord_cols, xywh) = match &columns.coords {
        BoxCoords::Xywh { x, y, width, height } => ([col(x)?, col(y)?, col(width)?, col(height)?], true),
        BoxCoords::Xyxy { x0, y0, x1, y1 } => ([col(x0)?, col(y0)?, col(x1)?, col(y1)?], false),
    };

    let mut out = BoxCsv::default();
    let mut image_index: HashMap<String, usize> = HashMap::new();
    for (line, row) in rows {
        if row.len() != header.len() {
            return Err(format!("{file} line {line}: {} fields, the header has {}", row.len(), header.len()));
        }
        let name = row[image_col].trim();
        if name.is_empty() {
            return Err(format!("{file} line {line}, column `{}`: empty image name", header[image_col]));
        }
        let image = *image_index.entry(name.to_string()).or_insert_with(|| {
            out.images.push(name.to_string());
            out.images.len() - 1
        });
        let label = match label_col {
            Some(c) => row[c].trim().to_string(),
            None => columns.default_label.clone(),
        };
        let raw: Vec<&str> = coord_cols.iter().map(|&c| row[c].trim()).collect();
        if columns.negative_labels.contains(&label) {
            continue;
        }
        if raw.iter().all(|s| s.is_empty()) {
            out.problems.push(format!(
                "{file} line {line}: label {label:?} of {name:?} has no box (empty coordinates); the row adds no box"
            ));
            continue;
        }
        let mut v = [0f64; 4];
        for k in 0..4 {
            let c = coord_cols[k];
            v[k] =
                raw[k].parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| {
                    format!("{file} line {line}, column `{}`: {:?} is not a number", header[c], raw[k])
                })?;
        }
        let [x0, y0, x1, y1] = if xywh {
            if v[2] < 0.0 || v[3] < 0.0 {
                return Err(format!("{file} line {line}: negative size: width {}, height {}", v[2], v[3]));
            }
            [v[0], v[1], v[0] + v[2], v[1] + v[3]]
        } else {
            if v[2] < v[0] || v[3] < v[1] {
                return Err(format!(
                    "{file} line {line}: negative size: x_max {} < x_min {} or y_max {} < y_min {}",
                    v[2], v[0], v[3], v[1]
                ));
            }
            v
        };
        let label = match columns.rename.iter().find(|(from, _)| *from == label) {
            Some((_, to)) => to.clone(),
            None => label,
        };
        if x1 == x0 || y1 == y0 {
            out.problems
                .push(format!("{file} line {line}: box [{x0}, {y0}, {x1}, {y1}] of {name:?} has no area; skipped"));
            continue;
        }
        if !out.labels.contains(&label) {
            out.labels.push(label.clone());
        }
        out.boxes.push(CsvBox { image, label, xyxy: [x0 as f32, y0 as f32, x1 as f32, y1 as f32], line });
    }
    if out.images.is_empty() {
        return Err(format!("{file}: the box list has a header but no rows: no image to read"));
    }
    Ok(out)
}

/// Splits CSV text into rows of fields (RFC 4180: quoted fields with `""` escapes and embedded
/// commas or newlines; LF or CRLF). Each row carries its 1-based starting line.
type CsvRows = Vec<(usize, Vec<String>)>;

fn csv_rows(text: &str) -> Result<CsvRows, (usize, String)> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut row_line = 1;
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut quoted_line = 0;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quoted_line = line;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err((quoted_line, "a quoted field is never closed".into()));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fx-coco-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"{
      "images": [{"id": 7, "file_name": "a.png", "width": 10, "height": 8},
                 {"id": 9, "file_name": "b.png", "width": 4, "height": 4}],
      "categories": [{"id": 3, "name": "nodule"}, {"id": 1, "name": "mass"}],
      "annotations": [
        {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0, "area": 12.0,
         "segmentation": [[1, 2, 4, 2, 4, 6, 1, 6]]},
        {"id": 2, "image_id": 9, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 1,
         "segmentation": {"size": [4, 4], "counts": [0, 2, 2, 2, 10]}},
        {"id": 3, "image_id": 7, "category_id": 1, "bbox": [8, 6, 4, 4]},
        {"id": 4, "image_id": 7, "category_id": 1, "bbox": [20, 1, 2, 2]},
        {"id": 5, "image_id": 7, "category_id": 1, "bbox": [2, 2, 0, 3]},
        {"id": 6, "image_id": 9, "category_id": 3, "bbox": [0.5, 0.5, 1.0, 1.0],
         "segmentation": {"size": [4, 4], "counts": "012223"}},
        {"id": 7, "image_id": 9, "category_id": 3, "bbox": [1, 1, 1, 1],
         "segmentation": {"size": [5, 4], "counts": "52203"}}
      ]
    }"#;

    #[test]
    fn reads_a_good_file_with_problems_listed() {
        let p = temp_file("good.json", GOOD);
        let set = read_coco(&p).unwrap();
        assert_eq!(set.images.len(), 2);
        assert_eq!(set.images[0], CocoImage { id: 7, file_name: "a.png".into(), width: 10, height: 8 });
        assert_eq!(set.categories[1], CocoCategory { id: 1, name: "mass".into() });
        // ids 1, 2, 3 (clipped), 6, 7 kept; 4 (outside) and 5 (no area) skipped.
        let ids: Vec<i64> = set.annotations.iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 6, 7]);
        let a = &set.annotations[0];
        assert_eq!((a.image, a.category, a.bbox, a.iscrowd, a.area), (0, 0, [1.0, 2.0, 3.0, 4.0], false, Some(12.0)));
        assert_eq!(a.xyxy(), [1.0, 2.0, 4.0, 6.0]);
        assert!(set.annotations[1].iscrowd);
        assert_eq!(set.annotations[2].bbox, [8.0, 6.0, 2.0, 2.0], "clipped to the 10 × 8 image");
        assert_eq!(set.problems.len(), 3, "{:?}", set.problems);
        assert!(
            set.problems[0].contains("annotations[2].bbox") && set.problems[0].contains("clipped"),
            "{}",
            set.problems[0]
        );
        assert!(
            set.problems[1].contains("annotations[3].bbox") && set.problems[1].contains("outside"),
            "{}",
            set.problems[1]
        );
        assert!(
            set.problems[2].contains("annotations[4].bbox") && set.problems[2].contains("no area"),
            "{}",
            set.problems[2]
        );
        assert!(set.problems.iter().all(|m| m.contains("good.json")));

        let boxes = set.boxes_of(0, false);
        assert_eq!(
            boxes,
            vec![
                LabeledBox { label: 0, x0: 1.0, y0: 2.0, x1: 4.0, y1: 6.0 },
                LabeledBox { label: 1, x0: 8.0, y0: 6.0, x1: 10.0, y1: 8.0 }
            ]
        );
        assert!(set.boxes_of(1, false).len() == 2 && set.boxes_of(1, true).len() == 3);
        assert_eq!(set.annotations_of(1), vec![1, 3, 4]);
        assert_eq!((set.image_index(9), set.category_index(1), set.category_index(2)), (Some(1), Some(1), None));

        // Masks: the polygon fills x 1..4, y 2..6; the uncompressed RLE [0, 2, 2, 2, 10] is
        // column-major: pixels 0, 1 (column 0, rows 0, 1) and 4, 5 (column 1, rows 0, 1).
        let m = set.mask(0).unwrap().unwrap();
        assert_eq!(m.iter().map(|&v| v as usize).sum::<usize>(), 12);
        assert!(m[2 * 10 + 1] == 1 && m[5 * 10 + 3] == 1 && m[6 * 10 + 1] == 0);
        let m = set.mask(1).unwrap().unwrap();
        assert_eq!(m, vec![1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(set.mask(2).unwrap(), None);
        // "012223" is pycocotools' string for counts [0, 1, 2, 3, 4, 6].
        let m = set.mask(3).unwrap().unwrap();
        assert_eq!(m.iter().map(|&v| v as usize).sum::<usize>(), 1 + 3 + 6);
        assert_eq!((m[0], m[4], m[5], m[3]), (1, 0, 1, 1), "column-major runs");
        let e = set.mask(4).unwrap_err();
        assert!(e.contains("annotation id 7") && e.contains("RLE size [5, 4]"), "{e}");
    }

    #[test]
    fn compressed_rle_strings_match_pycocotools() {
        // Strings written by pycocotools 2.0.11 (`mask.encode` of masks with these runs).
        assert_eq!(coco_rle_string_decode("52203").unwrap(), vec![5, 2, 2, 2, 5]);
        assert_eq!(coco_rle_string_decode("0`0").unwrap(), vec![0, 16]);
        assert_eq!(coco_rle_string_decode("1o1").unwrap(), vec![1, 63]);
        assert_eq!(coco_rle_string_decode("3X12:ObN").unwrap(), vec![3, 40, 2, 50, 1, 4]);
        assert_eq!(coco_rle_string_decode("012223").unwrap(), vec![0, 1, 2, 3, 4, 6]);
        assert!(coco_rle_string_decode("5 2").is_err());
        assert!(coco_rle_string_decode("`").is_err());
    }

    fn err_of(name: &str, text: &str) -> String {
        read_coco(&temp_file(name, text)).unwrap_err()
    }

    #[test]
    fn malformed_files_name_the_file_and_path() {
        let e = err_of("broken.json", "{\n  \"images\": [\n    {\"id\": 1,, }\n]}");
        assert!(e.contains("broken.json") && e.contains("line 3") && e.contains("column"), "{e}");

        let e = err_of("noimages.json", r#"{"annotations": []}"#);
        assert!(e.contains("noimages.json: images: missing"), "{e}");

        let base = |ann: &str| {
            format!(
                r#"{{"images": [{{"id": 1, "file_name": "x.png", "width": 8, "height": 8}}],
                    "categories": [{{"id": 5, "name": "n"}}], "annotations": [{{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1,1,2,2]}}, {ann}]}}"#
            )
        };
        let e = err_of("cat.json", &base(r#"{"id": 2, "image_id": 1, "category_id": 4, "bbox": [1,1,2,2]}"#));
        assert!(
            e.contains("cat.json: annotations[1].category_id: category id 4 is not in `categories` (ids: 5)"),
            "{e}"
        );
        let e = err_of("img.json", &base(r#"{"id": 2, "image_id": 3, "category_id": 5, "bbox": [1,1,2,2]}"#));
        assert!(e.contains("img.json: annotations[1].image_id: image id 3 is not in `images`"), "{e}");
        let e = err_of("neg.json", &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,1,-2,2]}"#));
        assert!(e.contains("neg.json: annotations[1].bbox: negative size"), "{e}");
        let e = err_of("short.json", &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,1,2]}"#));
        assert!(e.contains("annotations[1].bbox: expected [x, y, width, height]"), "{e}");
        let e = err_of("str.json", &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,"a",2,2]}"#));
        assert!(e.contains("annotations[1].bbox[1]: expected a finite number"), "{e}");
        let e = err_of(
            "crowd.json",
            &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,1,2,2], "iscrowd": 2}"#),
        );
        assert!(e.contains("annotations[1].iscrowd"), "{e}");
        let e = err_of(
            "seg.json",
            &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,1,2,2], "segmentation": [[1, 2, "x"]]}"#),
        );
        assert!(e.contains("annotations[1].segmentation[0][2]"), "{e}");
        let e = err_of(
            "rle.json",
            &base(r#"{"id": 2, "image_id": 1, "category_id": 5, "bbox": [1,1,2,2], "segmentation": {"counts": [1]}}"#),
        );
        assert!(e.contains("annotations[1].segmentation.size: missing"), "{e}");
        let e = err_of("noid.json", &base(r#"{"image_id": 1, "category_id": 5, "bbox": [1,1,2,2]}"#));
        assert!(e.contains("annotations[1].id: missing"), "{e}");

        let e = err_of(
            "dup.json",
            r#"{"images": [{"id": 1, "file_name": "a.png", "width": 2, "height": 2}, {"id": 1, "file_name": "b.png", "width": 2, "height": 2}]}"#,
        );
        assert!(e.contains("dup.json: images[1].id: image id 1 is also the id of images[0]"), "{e}");
        let e = err_of("size.json", r#"{"images": [{"id": 1, "file_name": "a.png", "width": -2, "height": 2}]}"#);
        assert!(e.contains("images[0].width: -2 is not a valid size"), "{e}");
        let e = err_of("nofile.json", r#"{"images": [{"id": 1, "width": 2, "height": 2}]}"#);
        assert!(e.contains("nofile.json: images[0].file_name: missing"), "{e}");
        let e = parse_box_csv("img_name,x,y,width,height,label\n", "meta.csv", &BoxCsvColumns::node21()).unwrap_err();
        assert!(e.contains("meta.csv") && e.contains("no rows"), "{e}");
        let e = err_of("top.json", "[1, 2]");
        assert!(e.contains("top.json: (top level)"), "{e}");
        let e = read_coco(Path::new("/nonexistent/fx/coco.json")).unwrap_err();
        assert!(e.contains("/nonexistent/fx/coco.json: cannot read"), "{e}");
    }

    #[test]
    fn reads_node21_style_csv() {
        let text = "img_name,x,y,width,height,label\r\n\
                    n1.mha,10,20,30,40,1\r\n\
                    n1.mha,50,60,5,5,1\r\n\
                    n2.mha,0,0,0,0,0\r\n\
                    \"n,3.mha\",1.5,2.5,3,4,1\r\n\
                    n4.mha,1,1,0,3,1\r\n\
                    n5.mha,,,,,1\r\n";
        let p = temp_file("metadata.csv", text);
        let csv = read_box_csv(&p, &BoxCsvColumns::node21()).unwrap();
        assert_eq!(csv.images, vec!["n1.mha", "n2.mha", "n,3.mha", "n4.mha", "n5.mha"]);
        assert_eq!(csv.labels, vec!["nodule"]);
        assert_eq!(csv.boxes.len(), 3);
        assert_eq!(csv.boxes[0], CsvBox { image: 0, label: "nodule".into(), xyxy: [10.0, 20.0, 40.0, 60.0], line: 2 });
        assert_eq!(csv.boxes[2].xyxy, [1.5, 2.5, 4.5, 6.5]);
        assert_eq!(csv.boxes_of(0).len(), 2);
        assert!(csv.boxes_of(1).is_empty());
        assert_eq!(csv.problems.len(), 2);
        assert!(csv.problems[1].contains("line 7: label \"1\" of \"n5.mha\" has no box"), "{:?}", csv.problems);
        assert!(
            csv.problems[0].contains("metadata.csv line 6") && csv.problems[0].contains("no area"),
            "{:?}",
            csv.problems
        );
    }

    #[test]
    fn reads_rsna_and_vindr_style_csv() {
        let rsna =
            "patientId,x,y,width,height,Target\nA,,,,,0\nB,264.0,152.0,213.0,379.0,1\nB,562.0,152.0,256.0,453.0,1\n";
        let csv = parse_box_csv(rsna, "rsna.csv", &BoxCsvColumns::rsna()).unwrap();
        assert_eq!(csv.images, vec!["A", "B"]);
        assert_eq!(csv.boxes.len(), 2);
        assert_eq!(csv.boxes[1].xyxy, [562.0, 152.0, 818.0, 605.0]);
        assert_eq!(csv.labels, vec!["pneumonia"]);

        let vindr = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max,class_id\n\
                     i1,R1,No finding,,,,,14\n\
                     i2,R2,Nodule/Mass,10,20,30,40,8\n\
                     i2,R3,Aortic enlargement,1,2,3,4,0\n";
        let csv = parse_box_csv(vindr, "vindr.csv", &BoxCsvColumns::vindr()).unwrap();
        assert_eq!(csv.images, vec!["i1", "i2"]);
        assert_eq!(csv.labels, vec!["Nodule/Mass", "Aortic enlargement"]);
        assert_eq!(csv.boxes_of(1)[1], LabeledBox { label: 1, x0: 1.0, y0: 2.0, x1: 3.0, y1: 4.0 });

        // A custom mapping without a label column.
        let cols = BoxCsvColumns {
            image: "file".into(),
            coords: BoxCoords::Xyxy { x0: "a".into(), y0: "b".into(), x1: "c".into(), y1: "d".into() },
            label: None,
            default_label: "lesion".into(),
            rename: vec![],
            negative_labels: vec![],
        };
        let csv = parse_box_csv("file,a,b,c,d\nf,1,1,2,2\n", "c.csv", &cols).unwrap();
        assert_eq!(csv.boxes[0].label, "lesion");
    }

    #[test]
    fn malformed_csv_names_file_line_and_column() {
        let cols = BoxCsvColumns::node21();
        let e = parse_box_csv("img_name,x,y,w,h,label\n", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv line 1: no column `width`"), "{e}");
        let e = parse_box_csv("img_name,x,y,width,height,label\na,1,2,abc,4,1\n", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv line 2, column `width`: \"abc\" is not a number"), "{e}");
        let e = parse_box_csv("img_name,x,y,width,height,label\na,1,2,3,4,1\nb,1,2,3\n", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv line 3: 4 fields, the header has 6"), "{e}");
        let e = parse_box_csv("img_name,x,y,width,height,label\na,1,2,-3,4,1\n", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv line 2: negative size"), "{e}");
        let e = parse_box_csv("img_name,x,y,width,height,label\n\"a,1,2,3,4,1\n", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv line 2: a quoted field is never closed"), "{e}");
        let e = parse_box_csv("", "m.csv", &cols).unwrap_err();
        assert!(e.contains("m.csv: empty file"), "{e}");
        let e = read_box_csv(Path::new("/nonexistent/fx/m.csv"), &cols).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let p = temp_file("vx.csv", "image_id,class_name,x_min,y_min,x_max,y_max\ni,A,5,5,4,9\n");
        let e = read_box_csv(&p, &BoxCsvColumns::vindr()).unwrap_err();
        assert!(e.contains("vx.csv line 2: negative size"), "{e}");
    }
}
