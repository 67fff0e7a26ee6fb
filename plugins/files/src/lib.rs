//! Dataset plugins for annotation files in common formats, over any image fx reads (DICOM,
//! MetaImage, JSRT raw, PNG/JPEG 8 or 16 bit; see `fx_data::input`):
//!
//! - `coco`: one COCO JSON file per split (`images`, `categories`, `annotations` with boxes,
//!   `iscrowd`, polygon or RLE segmentations) — localization, plus segmentation when the
//!   annotations carry masks (one mask channel per category).
//! - `box-csv`: one CSV of boxes (several rows per image, negatives as rows without a box) with
//!   column presets for NODE21, RSNA Pneumonia and VinDr-CXR; split 70/10/20 by a seeded draw of
//!   the images unless split lists are given.
//!
//! Both can derive image-level classification labels from the boxes (`cls_from_boxes`), as the
//! paper does for datasets that only ship boxes. Problems in the annotation files are either errors
//! naming the file and place (malformed JSON, an unknown category) or warnings (a box outside its
//! image is clipped or dropped) that the host records in the run's events; an image that cannot be
//! decoded, or whose size differs from its annotations', fails to load and is skipped and counted.

use fx_data::cache::{read_image, Image};
use fx_data::coco::{read_box_csv, read_coco, BoxCsv, BoxCsvColumns, CocoSet};
use fx_data::dataset::{cls_from_boxes, image_error, Options, SPLITS};
use fx_data::input::{self, DecodeOptions};
use fx_data::rng::{mix, Rng};
use fx_plugin::{
    CacheSpec, Dataset, DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Sample, SampleRecord,
    SampleSource, Split,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn split_pos(s: Split) -> usize {
    SPLITS.iter().position(|x| *x == s).unwrap()
}

/// How a dataset's images are decoded and cached.
#[derive(Clone)]
struct Pixels {
    decode: DecodeOptions,
    cache: Option<CacheSpec>,
}

impl Pixels {
    fn of(spec: &DatasetSpec, opts: &Options) -> Result<Pixels, PluginError> {
        Ok(Pixels { decode: opts.decode()?, cache: spec.cache.clone() })
    }

    /// Decodes an image (through the cache) and checks it against the size the annotations were
    /// made on.
    fn load(&self, path: &Path, expect: Option<(usize, usize)>) -> Result<Image, PluginError> {
        let g = read_image(path, &self.decode, self.cache.as_ref()).map_err(|e| image_error(path, e))?;
        check_size(path, (g.width, g.height), expect)?;
        Ok(g)
    }

    /// The image's size from its header only.
    fn dimensions(&self, path: &Path, expect: Option<(usize, usize)>) -> Result<(usize, usize), PluginError> {
        let d = input::dimensions(path, &self.decode).map_err(|e| image_error(path, e))?;
        check_size(path, d, expect)?;
        Ok(d)
    }
}

fn check_size(path: &Path, (gw, gh): (usize, usize), expect: Option<(usize, usize)>) -> Result<(), PluginError> {
    if let Some((w, h)) = expect {
        if (gw, gh) != (w, h) {
            return Err(PluginError::input(
                path.display(),
                format!("the image is {gw}×{gh} but its annotations are for {w}×{h}"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- coco

pub struct CocoDataset {
    desc: DatasetDesc,
    sets: [Option<CocoSet>; 3],
    /// Image path → (split position, image index).
    by_path: HashMap<PathBuf, (usize, usize)>,
    images: PathBuf,
    masks: bool,
    cls_from_boxes: bool,
    warnings: Vec<String>,
    pixels: Pixels,
}

impl CocoDataset {
    pub fn open(spec: &DatasetSpec) -> Result<Self, PluginError> {
        let opts = Options::new(spec, "coco", &["train", "val", "test", "images", "masks", "cls_from_boxes"])?;
        let root = opts.root("coco")?;
        let pixels = Pixels::of(spec, &opts)?;
        let images = root.join(opts.string("images")?.unwrap_or_else(|| ".".into()));
        let mut sets: [Option<CocoSet>; 3] = [None, None, None];
        let mut warnings = Vec::new();
        for split in SPLITS {
            let Some(file) = opts.string(split.as_str())? else {
                if split != Split::Val {
                    return Err(PluginError::config(
                        &spec.name,
                        format!(
                            "plugin coco needs options.{} = \"<COCO JSON of the {} split, relative to the root>\"",
                            split.as_str(),
                            split.as_str()
                        ),
                    ));
                }
                continue;
            };
            let set = read_coco(&root.join(&file)).map_err(|e| PluginError::input(root.join(&file).display(), e))?;
            warnings.extend(set.problems.iter().cloned());
            sets[split_pos(split)] = Some(set);
        }
        // Every split must name the same categories, or label k would mean different things.
        let train = sets[0].as_ref().unwrap();
        let names: Vec<(i64, String)> = train.categories.iter().map(|c| (c.id, c.name.clone())).collect();
        for split in [Split::Val, Split::Test] {
            if let Some(s) = &sets[split_pos(split)] {
                let other: Vec<(i64, String)> = s.categories.iter().map(|c| (c.id, c.name.clone())).collect();
                if other != names {
                    return Err(PluginError::config(
                        &spec.name,
                        format!(
                            "the {} split's categories {other:?} differ from the train split's {names:?}",
                            split.as_str()
                        ),
                    ));
                }
            }
        }
        let has_masks = sets
            .iter()
            .flatten()
            .any(|s| s.annotations.iter().any(|a| a.segmentation != fx_data::coco::CocoSegmentation::None));
        let masks = opts.bool("masks", has_masks)?;
        let cls_from_boxes = opts.bool("cls_from_boxes", false)?;
        let labels: Vec<String> = names.iter().map(|(_, n)| n.clone()).collect();
        let mut by_path = HashMap::new();
        for (k, set) in sets.iter().enumerate() {
            if let Some(set) = set {
                for (i, im) in set.images.iter().enumerate() {
                    by_path.insert(images.join(&im.file_name), (k, i));
                }
            }
        }
        let desc = DatasetDesc {
            name: spec.name.clone(),
            description: format!("COCO annotations under {}", root.display()),
            cls_labels: if cls_from_boxes { labels.clone() } else { Vec::new() },
            loc_labels: labels.clone(),
            seg_labels: if masks { labels } else { Vec::new() },
            ..Default::default()
        };
        Ok(CocoDataset { desc, sets, by_path, images, masks, cls_from_boxes, warnings, pixels })
    }
}

impl Dataset for CocoDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        Ok(match &self.sets[split_pos(split)] {
            Some(set) => set
                .images
                .iter()
                .map(|im| SampleRecord {
                    id: im.file_name.clone(),
                    source: SampleSource::File(self.images.join(&im.file_name)),
                })
                .collect(),
            None => Vec::new(),
        })
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

impl CocoDataset {
    fn sample(&self, record: &SampleRecord, with_pixels: bool) -> Result<Sample, PluginError> {
        let SampleSource::File(path) = &record.source else {
            return Err(PluginError::config(&self.desc.name, format!("sample {} is not a file", record.id)));
        };
        let &(k, i) = self
            .by_path
            .get(path)
            .ok_or_else(|| PluginError::input(path.display(), "not an image of the annotation files"))?;
        let set = self.sets[k].as_ref().unwrap();
        let im = &set.images[i];
        let (w, h) = (im.width as usize, im.height as usize);
        let (image, image_dims, warnings) = if with_pixels {
            let g = self.pixels.load(path, Some((w, h)))?;
            let dims = g.reduced();
            (g.pixels, dims, g.warnings)
        } else {
            (Vec::new(), None, Vec::new())
        };
        let boxes = set.boxes_of(i, false);
        let mut masks = Vec::new();
        if self.masks {
            masks = vec![vec![0u8; w * h]; self.desc.loc_labels.len()];
            for a in set.annotations_of(i) {
                let ann = &set.annotations[a];
                if ann.iscrowd {
                    continue;
                }
                if let Some(m) = set.mask(a).map_err(|e| PluginError::input(path.display(), e))? {
                    for (dst, src) in masks[ann.category].iter_mut().zip(m) {
                        *dst |= src;
                    }
                }
            }
        }
        let cls = if self.cls_from_boxes { cls_from_boxes(&boxes, self.desc.loc_labels.len()) } else { Vec::new() };
        Ok(Sample { id: record.id.clone(), height: h, width: w, image, image_dims, cls, boxes, masks, warnings })
    }
}

// ---------------------------------------------------------------- box-csv

pub struct BoxCsvDataset {
    desc: DatasetDesc,
    csv: BoxCsv,
    images: PathBuf,
    extension: String,
    splits: [Vec<usize>; 3],
    cls_from_boxes: bool,
    by_path: HashMap<PathBuf, usize>,
    pixels: Pixels,
}

impl BoxCsvDataset {
    pub fn open(spec: &DatasetSpec) -> Result<Self, PluginError> {
        let opts = Options::new(
            spec,
            "box-csv",
            &["csv", "images", "format", "extension", "split", "seed", "cls_from_boxes"],
        )?;
        let root = opts.root("box-csv")?;
        let pixels = Pixels::of(spec, &opts)?;
        let file = opts.string("csv")?.ok_or_else(|| {
            PluginError::config(
                &spec.name,
                "plugin box-csv needs options.csv = \"<the box list, relative to the root>\"",
            )
        })?;
        let columns = match opts.string("format")?.as_deref() {
            Some("node21") => BoxCsvColumns::node21(),
            Some("rsna") => BoxCsvColumns::rsna(),
            Some("vindr") => BoxCsvColumns::vindr(),
            other => {
                return Err(PluginError::config(
                    &spec.name,
                    format!(
                        "options.format must be \"node21\", \"rsna\" or \"vindr\" (the column layout), got {other:?}"
                    ),
                ))
            }
        };
        let csv =
            read_box_csv(&root.join(&file), &columns).map_err(|e| PluginError::input(root.join(&file).display(), e))?;
        let images = root.join(opts.string("images")?.unwrap_or_else(|| ".".into()));
        let extension = opts.string("extension")?.unwrap_or_default();
        let fractions = opts.fractions()?;
        let seed = opts.u64("seed", 0)?;
        // A seeded 70/10/20 draw of the images (the paper's rule where no official split exists).
        let mut order: Vec<usize> = (0..csv.images.len()).collect();
        Rng::new(mix(&[seed, 0x5b11])).shuffle(&mut order);
        let n = order.len();
        let n_train = (n as f64 * fractions[0]).round() as usize;
        let n_val = ((n as f64 * fractions[1]).round() as usize).min(n - n_train);
        let mut splits =
            [order[..n_train].to_vec(), order[n_train..n_train + n_val].to_vec(), order[n_train + n_val..].to_vec()];
        for s in &mut splits {
            s.sort_unstable();
        }
        let cls_from_boxes = opts.bool("cls_from_boxes", false)?;
        let mut out = BoxCsvDataset {
            desc: DatasetDesc {
                cls_mode: fx_plugin::LabelMode::MultiLabel,
                name: spec.name.clone(),
                description: format!("boxes from {}", root.join(&file).display()),
                cls_labels: if cls_from_boxes { csv.labels.clone() } else { Vec::new() },
                loc_labels: csv.labels.clone(),
                seg_labels: Vec::new(),
                drawn_split: true,
                eval_labels: vec![],
            },
            csv,
            images,
            extension,
            splits,
            cls_from_boxes,
            by_path: HashMap::new(),
            pixels,
        };
        out.by_path = (0..out.csv.images.len()).map(|i| (out.path_of(i), i)).collect();
        Ok(out)
    }

    fn path_of(&self, image: usize) -> PathBuf {
        self.images.join(format!("{}{}", self.csv.images[image], self.extension))
    }
}

impl Dataset for BoxCsvDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        Ok(self.splits[split_pos(split)]
            .iter()
            .map(|&i| SampleRecord { id: self.csv.images[i].clone(), source: SampleSource::File(self.path_of(i)) })
            .collect())
    }

    fn load(&self, record: &SampleRecord, _size_hint: usize) -> Result<Sample, PluginError> {
        self.sample(record, true)
    }

    fn labels(&self, record: &SampleRecord, _size_hint: usize) -> Result<Sample, PluginError> {
        self.sample(record, false)
    }

    fn warnings(&self) -> Vec<String> {
        self.csv.problems.clone()
    }
}

impl BoxCsvDataset {
    fn sample(&self, record: &SampleRecord, with_pixels: bool) -> Result<Sample, PluginError> {
        let SampleSource::File(path) = &record.source else {
            return Err(PluginError::config(&self.desc.name, format!("sample {} is not a file", record.id)));
        };
        let &i =
            self.by_path.get(path).ok_or_else(|| PluginError::input(path.display(), "not an image of the box list"))?;
        let (width, height, image, image_dims, warnings) = if with_pixels {
            let g = self.pixels.load(path, None)?;
            let dims = g.reduced();
            (g.width, g.height, g.pixels, dims, g.warnings)
        } else {
            let (w, h) = self.pixels.dimensions(path, None)?;
            (w, h, Vec::new(), None, Vec::new())
        };
        // A CSV has no image sizes: boxes are checked against the image's own size here.
        let (w, h) = (width as f32, height as f32);
        let mut boxes = Vec::new();
        for b in self.csv.boxes_of(i) {
            if b.x1 <= 0.0 || b.y1 <= 0.0 || b.x0 >= w || b.y0 >= h {
                return Err(PluginError::input(
                    path.display(),
                    format!("a box [{}, {}, {}, {}] lies outside the {w}×{h} image", b.x0, b.y0, b.x1, b.y1),
                ));
            }
            boxes.push(LabeledBox { x0: b.x0.max(0.0), y0: b.y0.max(0.0), x1: b.x1.min(w), y1: b.y1.min(h), ..b });
        }
        let cls = if self.cls_from_boxes { cls_from_boxes(&boxes, self.desc.loc_labels.len()) } else { Vec::new() };
        Ok(Sample { id: record.id.clone(), height, width, image, image_dims, cls, boxes, masks: Vec::new(), warnings })
    }
}

/// The file plugins, for the host's registry.
pub fn plugins() -> Vec<PluginEntry> {
    vec![
        PluginEntry {
            name: "coco",
            summary: "COCO JSON per split over DICOM/MetaImage/PNG/JPEG images: boxes (loc) and, when present, masks (seg); options train, val, test, images, masks, cls_from_boxes, window, raw",
            open: |spec| Ok(Box::new(CocoDataset::open(spec)?)),
        },
        PluginEntry {
            name: "box-csv",
            summary: "CSV box list (NODE21 / RSNA / VinDr-CXR columns) over DICOM/MetaImage/PNG/JPEG images, seeded 70/10/20 split; options csv, images, format, extension, split, seed, cls_from_boxes, window, raw",
            open: |spec| Ok(Box::new(BoxCsvDataset::open(spec)?)),
        },
    ]
}
