//! PHANTOM datasets: deterministic synthetic chest radiographs served through the fx plugin
//! contract. Each preset mirrors one kind of real dataset — its label set, its tasks and its
//! acquisition style — so that a cyclic multi-dataset run on a laptop CPU meets the same
//! heterogeneity as the paper's 11 datasets.

mod anatomy;
mod coords;
mod film;
mod findings;
mod levels;
pub mod render;
mod streams;
mod vessels;

pub use film::Style;
use fx_data::rng::mix;
use fx_plugin::{
    Dataset, DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Sample, SampleRecord, SampleSource, Split,
};
pub use render::{render, Finding, Organ, Phantom, Prevalence};

/// What a localization box or a segmentation mask channel of a phantom dataset marks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    Finding(Finding),
    Organ(Organ),
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Finding(f) => f.as_str(),
            Target::Organ(o) => o.as_str(),
        }
    }
}

struct Preset {
    name: &'static str,
    summary: &'static str,
    cls: &'static [Finding],
    loc: &'static [Target],
    seg: &'static [Target],
    style: fn() -> Style,
    prevalence: Prevalence,
}

use Finding::*;

const PRESETS: &[Preset] = &[
    Preset {
        name: "phantom-cxp",
        summary: "CheXpert-like: classification of cardiomegaly, effusion, consolidation; nominal acquisition",
        cls: &[Cardiomegaly, Effusion, Consolidation],
        loc: &[],
        seg: &[],
        style: Style::default,
        prevalence: [0.2, 0.1, 0.35, 0.35, 0.35],
    },
    Preset {
        name: "phantom-nih",
        summary: "NIH ChestX-ray14-like: classification of nodule, pneumothorax, effusion; noisy, soft, low contrast",
        cls: &[Nodule, Pneumothorax, Effusion],
        loc: &[],
        seg: &[],
        style: || Style { contrast: 0.8, noise: 0.035, blur: 0.006, ..Style::default() },
        prevalence: [0.35, 0.35, 0.35, 0.15, 0.15],
    },
    Preset {
        name: "phantom-tbx",
        summary: "TBX11K-like: classification of consolidation and nodule, consolidation boxes; high gamma, zoomed, shifted patients",
        cls: &[Consolidation, Nodule],
        loc: &[Target::Finding(Consolidation)],
        seg: &[],
        style: || Style { gamma: 1.3, brightness: 0.04, fov: 1.1, jitter: 0.04, ..Style::default() },
        prevalence: [0.35, 0.1, 0.1, 0.1, 0.4],
    },
    Preset {
        name: "phantom-organs",
        summary: "CheXmask-like: heart, left lung and right lung masks (boxes derived from them); nominal acquisition",
        cls: &[],
        loc: &[Target::Organ(Organ::Heart), Target::Organ(Organ::LeftLung), Target::Organ(Organ::RightLung)],
        seg: &[Target::Organ(Organ::Heart), Target::Organ(Organ::LeftLung), Target::Organ(Organ::RightLung)],
        style: || Style { contrast: 0.9, noise: 0.02, ..Style::default() },
        prevalence: [0.1, 0.1, 0.1, 0.15, 0.1],
    },
    Preset {
        name: "phantom-ptx",
        summary: "SIIM-ACR/CANDID-PTX-like: pneumothorax and effusion labels, boxes and masks; slightly soft",
        cls: &[Pneumothorax, Effusion],
        loc: &[Target::Finding(Pneumothorax), Target::Finding(Effusion)],
        seg: &[Target::Finding(Pneumothorax), Target::Finding(Effusion)],
        style: || Style { blur: 0.004, noise: 0.02, ..Style::default() },
        prevalence: [0.1, 0.45, 0.35, 0.1, 0.1],
    },
    Preset {
        name: "phantom-node",
        summary: "NODE21-like: nodule classification and nodule boxes; nominal acquisition, slight noise",
        cls: &[Nodule],
        loc: &[Target::Finding(Nodule)],
        seg: &[],
        style: || Style { noise: 0.015, ..Style::default() },
        prevalence: [0.7, 0.1, 0.1, 0.1, 0.1],
    },
];

const SPLIT_SIZES: [(Split, usize); 3] = [(Split::Train, 1000), (Split::Val, 100), (Split::Test, 300)];

pub struct PhantomDataset {
    desc: DatasetDesc,
    preset: &'static Preset,
    /// The preset's localization and segmentation targets that `options.labels` keeps.
    loc: Vec<Target>,
    seg: Vec<Target>,
    style: Style,
    prevalence: Prevalence,
    seed: u64,
    sizes: [usize; 3],
    /// Fraction of samples that fail to load, to exercise the skip-and-count path end to end.
    corrupt: f64,
}

fn split_code(s: Split) -> u64 {
    match s {
        Split::Train => 1,
        Split::Val => 2,
        Split::Test => 3,
    }
}

fn split_pos(s: Split) -> usize {
    split_code(s) as usize - 1
}

impl PhantomDataset {
    fn open(spec: &DatasetSpec, preset: &'static Preset) -> Result<Self, PluginError> {
        let err = |what: String| PluginError::config(&spec.name, what);
        let opts = spec.options.as_object().cloned().unwrap_or_default();
        let known = ["train", "val", "test", "seed", "style", "prevalence", "corrupt", "labels"];
        if let Some(k) = opts.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(err(format!(
                "unknown option `{k}` for plugin {}; expected one of {}",
                preset.name,
                known.join(", ")
            )));
        }
        let mut sizes = SPLIT_SIZES.map(|(_, n)| n);
        for (split, _) in SPLIT_SIZES {
            if let Some(v) = opts.get(split.as_str()) {
                // Bounded: an index of this many records is built at open.
                sizes[split_pos(split)] = v.as_u64().filter(|n| *n <= 10_000_000).ok_or_else(|| {
                    err(format!("options.{} must be an integer within 0..=10000000, got {v}", split.as_str()))
                })? as usize;
            }
        }
        let seed = match opts.get("seed") {
            Some(v) => {
                v.as_u64().ok_or_else(|| err(format!("options.seed must be a non-negative integer, got {v}")))?
            }
            None => preset.name.bytes().fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(b as u64)),
        };
        let style = match opts.get("style") {
            Some(v) => {
                // Overrides apply on top of the preset's style.
                let mut base = serde_json::to_value((preset.style)()).unwrap();
                let Some(over) = v.as_object() else { return Err(err("options.style must be a table".into())) };
                for (k, x) in over {
                    base[k] = x.clone();
                }
                serde_json::from_value(base).map_err(|e| err(format!("options.style: {e}")))?
            }
            None => (preset.style)(),
        };
        let mut prevalence = preset.prevalence;
        if let Some(v) = opts.get("prevalence") {
            let Some(over) = v.as_object() else { return Err(err("options.prevalence must be a table".into())) };
            for (k, x) in over {
                let f = Finding::parse(k).ok_or_else(|| err(format!("options.prevalence: unknown finding `{k}`")))?;
                let p = x.as_f64().filter(|p| (0.0..=1.0).contains(p));
                prevalence[f.index()] =
                    p.ok_or_else(|| err(format!("options.prevalence.{k} must be within [0, 1]")))? as f32;
            }
        }
        let corrupt = match opts.get("corrupt") {
            Some(v) => v
                .as_f64()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| err(format!("options.corrupt must be within [0, 1], got {v}")))?,
            None => 0.0,
        };
        let (loc, seg) = match opts.get("labels") {
            Some(v) => select_labels(preset, v).map_err(err)?,
            None => (preset.loc.to_vec(), preset.seg.to_vec()),
        };
        let desc = DatasetDesc {
            name: spec.name.clone(),
            description: preset.summary.to_string(),
            cls_labels: preset.cls.iter().map(|f| f.as_str().to_string()).collect(),
            loc_labels: loc.iter().map(|t| t.name().to_string()).collect(),
            seg_labels: seg.iter().map(|t| t.name().to_string()).collect(),
            ..Default::default()
        };
        Ok(PhantomDataset { desc, preset, loc, seg, style, prevalence, seed, sizes, corrupt })
    }
}

/// The localization/segmentation labels a preset offers, each once, in preset order.
fn box_and_mask_labels(preset: &Preset) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for t in preset.loc.iter().chain(preset.seg) {
        if !names.contains(&t.name()) {
            names.push(t.name());
        }
    }
    names
}

/// `options.labels`: keeps only the named localization/segmentation targets, so that one preset
/// can be split into one dataset per target, as the paper treats heart, left lung and right lung
/// of VinDr-CXR as separate tasks (Table 8). The kept targets stay in preset order, so label
/// indices do not depend on how the option lists them. Classification labels are untouched.
fn select_labels(preset: &Preset, v: &serde_json::Value) -> Result<(Vec<Target>, Vec<Target>), String> {
    let allowed = box_and_mask_labels(preset);
    let offered =
        if allowed.is_empty() { "none: this preset has no boxes or masks".to_string() } else { allowed.join(", ") };
    let names: Vec<&str> = v
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_str()).collect())
        .ok_or_else(|| format!("options.labels must be a list of label names (allowed: {offered}), got {v}"))?;
    if names.is_empty() {
        return Err(format!("options.labels is empty; name at least one of: {offered}"));
    }
    if let Some(n) = names.iter().find(|n| !allowed.contains(n)) {
        return Err(format!(
            "options.labels: unknown label `{n}` for plugin {}; allowed labels: {offered}",
            preset.name
        ));
    }
    let keep = |ts: &[Target]| ts.iter().copied().filter(|t| names.contains(&t.name())).collect();
    Ok((keep(preset.loc), keep(preset.seg)))
}

impl Dataset for PhantomDataset {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        let n = self.sizes[split_pos(split)];
        Ok((0..n)
            .map(|i| SampleRecord {
                id: format!("{}-{i:05}", split.as_str()),
                source: SampleSource::Phantom(mix(&[self.seed, split_code(split), i as u64])),
            })
            .collect())
    }

    fn load(&self, record: &SampleRecord, size_hint: usize) -> Result<Sample, PluginError> {
        let SampleSource::Phantom(seed) = record.source else {
            return Err(PluginError::config(&self.desc.name, format!("sample {} is not a phantom", record.id)));
        };
        if self.corrupt > 0.0 && ((seed >> 11) as f64 / (1u64 << 53) as f64) < self.corrupt {
            return Err(PluginError::input(
                format!("phantom://{}/{}", self.desc.name, record.id),
                "simulated corrupt sample (options.corrupt)",
            ));
        }
        let size = size_hint.clamp(16, 2048);
        let p = render(&self.style, &self.prevalence, seed, size);
        let cls = self.preset.cls.iter().map(|f| if p.present[f.index()] { 1.0 } else { 0.0 }).collect();
        let mut boxes = Vec::new();
        for (label, t) in self.loc.iter().enumerate() {
            match t {
                Target::Finding(f) => {
                    for (g, b) in &p.finding_boxes {
                        if g == f {
                            boxes.push(LabeledBox { label, x0: b[0], y0: b[1], x1: b[2], y1: b[3] });
                        }
                    }
                }
                Target::Organ(o) => {
                    let b = p.organ_boxes[o.index()];
                    boxes.push(LabeledBox { label, x0: b[0], y0: b[1], x1: b[2], y1: b[3] });
                }
            }
        }
        let masks = self
            .seg
            .iter()
            .map(|t| match t {
                Target::Finding(f) => p.finding_masks[f.index()].clone(),
                Target::Organ(o) => p.organ_masks[o.index()].clone(),
            })
            .collect();
        Ok(Sample {
            id: record.id.clone(),
            height: size,
            width: size,
            image: p.image,
            image_dims: None,
            cls,
            boxes,
            masks,
            warnings: vec![],
        })
    }
}

macro_rules! entry {
    ($i:expr) => {
        PluginEntry {
            name: PRESETS[$i].name,
            summary: PRESETS[$i].summary,
            open: |spec| Ok(Box::new(PhantomDataset::open(spec, &PRESETS[$i])?)),
        }
    };
}

/// The phantom plugins, for the host's registry.
pub fn plugins() -> Vec<PluginEntry> {
    vec![entry!(0), entry!(1), entry!(2), entry!(3), entry!(4), entry!(5)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(plugin: &str, options: serde_json::Value) -> DatasetSpec {
        DatasetSpec { name: plugin.into(), plugin: plugin.into(), root: None, options, cache: None }
    }

    #[test]
    fn every_preset_opens_and_loads() {
        assert_eq!(plugins().len(), PRESETS.len());
        for p in plugins() {
            let ds = (p.open)(&spec(p.name, serde_json::json!({"train": 5, "test": 3}))).unwrap();
            let huge = (p.open)(&spec(p.name, serde_json::json!({"train": 18446744073709551615u64})))
                .err()
                .unwrap()
                .to_string();
            assert!(huge.contains("options.train must be an integer within 0..=10000000"), "{huge}");
            assert_eq!(ds.index(Split::Train).unwrap().len(), 5);
            let test = ds.index(Split::Test).unwrap();
            assert_eq!(test.len(), 3);
            let s = ds.load(&test[0], 48).unwrap();
            assert_eq!((s.width, s.height, s.image.len()), (48, 48, 48 * 48));
            assert_eq!(s.cls.len(), ds.desc().cls_labels.len());
            assert_eq!(s.masks.len(), ds.desc().seg_labels.len());
            // Splits do not share samples.
            let train = ds.index(Split::Train).unwrap();
            assert!(train.iter().all(|r| !test.iter().any(|t| t.source == r.source)));
        }
    }

    fn organs(options: serde_json::Value) -> Result<Box<dyn Dataset>, PluginError> {
        let entry = plugins().into_iter().find(|p| p.name == "phantom-organs").unwrap();
        (entry.open)(&spec("phantom-organs", options))
    }

    #[test]
    fn labels_option_keeps_a_subset_of_boxes_and_masks() {
        let all = organs(serde_json::json!({"test": 2})).unwrap();
        let heart = organs(serde_json::json!({"test": 2, "labels": ["heart"]})).unwrap();
        assert_eq!(heart.desc().loc_labels, ["heart"]);
        assert_eq!(heart.desc().seg_labels, ["heart"]);
        // Same images (as the paper's organ tasks share VinDr-CXR's), only the heart's labels.
        let rec = &heart.index(Split::Test).unwrap()[1];
        let (h, a) = (heart.load(rec, 32).unwrap(), all.load(rec, 32).unwrap());
        assert_eq!(h.image, a.image);
        assert_eq!(h.masks, a.masks[..1]);
        assert_eq!(h.boxes.len(), 1);
        assert_eq!(h.boxes[0], a.boxes[0]);
        // Preset order whatever order the option lists: label indices stay heart < right_lung.
        let two = organs(serde_json::json!({"test": 2, "labels": ["right_lung", "heart"]})).unwrap();
        assert_eq!(two.desc().seg_labels, ["heart", "right_lung"]);
        let t = two.load(rec, 32).unwrap();
        assert_eq!(t.masks, [a.masks[0].clone(), a.masks[2].clone()]);
        assert_eq!(
            t.boxes.iter().map(|b| (b.label, b.x0)).collect::<Vec<_>>(),
            [(0, a.boxes[0].x0), (1, a.boxes[2].x0)]
        );
    }

    #[test]
    fn bad_labels_name_the_option_and_the_allowed_labels() {
        let e = organs(serde_json::json!({"labels": ["heart", "liver"]})).err().unwrap().to_string();
        assert!(e.contains("options.labels") && e.contains("unknown label `liver`"), "{e}");
        assert!(e.contains("allowed labels: heart, left_lung, right_lung"), "{e}");
        let e = organs(serde_json::json!({"labels": "heart"})).err().unwrap().to_string();
        assert!(e.contains("options.labels must be a list"), "{e}");
        let e = organs(serde_json::json!({"labels": []})).err().unwrap().to_string();
        assert!(e.contains("options.labels is empty"), "{e}");
        let e = (plugins()[0].open)(&spec("phantom-cxp", serde_json::json!({"labels": ["heart"]})))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("this preset has no boxes or masks"), "{e}");
    }

    #[test]
    fn bad_options_are_named() {
        let e = (plugins()[0].open)(&spec("phantom-cxp", serde_json::json!({"trian": 5}))).err().unwrap().to_string();
        assert!(e.contains("unknown option `trian`"), "{e}");
        let e = (plugins()[0].open)(&spec("phantom-cxp", serde_json::json!({"prevalence": {"nodule": 2.0}})))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("prevalence.nodule"), "{e}");
        let e = (plugins()[0].open)(&spec("phantom-cxp", serde_json::json!({"style": {"noize": 0.1}})))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("options.style"), "{e}");
    }
}
