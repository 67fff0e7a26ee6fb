//! An example of a dataset plugin in its own shared library, as a lab would write one for its own
//! data: `cargo build --release -p fx-stripes` makes `target/release/libfx_stripes.so`, and an
//! experiment loads it with `plugins = ["target/release/libfx_stripes.so"]`.
//!
//! The dataset, `stripes`: images of horizontal or vertical stripes (classification label
//! `vertical`) with one bright block (localization label `block`), deterministic from the seed.
//! It depends on fx-plugin only.

use fx_plugin::{
    Dataset, DatasetDesc, DatasetSpec, LabeledBox, PluginEntry, PluginError, Sample, SampleRecord, SampleSource, Split,
};

struct Stripes {
    desc: DatasetDesc,
    sizes: [usize; 3],
    seed: u64,
    /// A sample id whose loading aborts the process: to show (and test) that an isolated plugin
    /// that crashes takes only its own process down.
    abort_on: Option<String>,
}

/// splitmix64: enough randomness for an example, no dependency.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

fn unit(s: &mut u64) -> f32 {
    (next(s) >> 40) as f32 / (1u64 << 24) as f32
}

impl Stripes {
    fn open(spec: &DatasetSpec) -> Result<Stripes, PluginError> {
        let opts = spec.options.as_object().cloned().unwrap_or_default();
        let known = ["train", "val", "test", "seed", "abort_on"];
        if let Some(k) = opts.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(PluginError::config(
                &spec.name,
                format!("unknown option `{k}` for plugin stripes; expected one of {}", known.join(", ")),
            ));
        }
        let num = |k: &str, d: u64| -> Result<u64, PluginError> {
            match opts.get(k) {
                None => Ok(d),
                Some(v) => v.as_u64().ok_or_else(|| {
                    PluginError::config(&spec.name, format!("options.{k} must be a non-negative integer, got {v}"))
                }),
            }
        };
        Ok(Stripes {
            desc: DatasetDesc {
                cls_mode: fx_plugin::LabelMode::MultiLabel,
                name: spec.name.clone(),
                description: "stripes (example plugin library): vertical or horizontal stripes with one bright block"
                    .into(),
                cls_labels: vec!["vertical".into()],
                loc_labels: vec!["block".into()],
                seg_labels: vec![],
                drawn_split: false,
                eval_labels: vec![],
            },
            sizes: [num("train", 200)? as usize, num("val", 20)? as usize, num("test", 50)? as usize],
            seed: num("seed", 1)?,
            abort_on: opts.get("abort_on").and_then(|v| v.as_str()).map(str::to_string),
        })
    }
}

impl Dataset for Stripes {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }

    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        let (k, n) = match split {
            Split::Train => (1u64, self.sizes[0]),
            Split::Val => (2, self.sizes[1]),
            Split::Test => (3, self.sizes[2]),
        };
        Ok((0..n)
            .map(|i| SampleRecord {
                id: format!("{}-{i:04}", split.as_str()),
                source: SampleSource::Phantom(
                    self.seed.wrapping_mul(1_000_003).wrapping_add(k << 32).wrapping_add(i as u64),
                ),
            })
            .collect())
    }

    fn load(&self, record: &SampleRecord, size_hint: usize) -> Result<Sample, PluginError> {
        if self.abort_on.as_deref() == Some(record.id.as_str()) {
            std::process::abort();
        }
        let SampleSource::Phantom(seed) = record.source else {
            return Err(PluginError::config(&self.desc.name, format!("sample {} is not generated", record.id)));
        };
        let n = size_hint.clamp(16, 1024);
        let mut s = seed;
        let vertical = unit(&mut s) < 0.5;
        let period = 4.0 + unit(&mut s) * 6.0;
        let side = (n as f32 * (0.2 + unit(&mut s) * 0.2)) as usize;
        let x0 = (unit(&mut s) * (n - side) as f32) as usize;
        let y0 = (unit(&mut s) * (n - side) as f32) as usize;
        let mut image = vec![0f32; n * n];
        for y in 0..n {
            for x in 0..n {
                let t = if vertical { x } else { y } as f32;
                let stripe = 0.3 + 0.2 * ((t / period * std::f32::consts::PI).sin() > 0.0) as u8 as f32;
                let block = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
                image[y * n + x] = if block { 0.95 } else { stripe };
            }
        }
        let b = LabeledBox { label: 0, x0: x0 as f32, y0: y0 as f32, x1: (x0 + side) as f32, y1: (y0 + side) as f32 };
        Ok(Sample {
            id: record.id.clone(),
            height: n,
            width: n,
            image,
            image_dims: None,
            cls: vec![if vertical { 1.0 } else { 0.0 }],
            boxes: vec![b],
            masks: vec![],
            warnings: vec![],
        })
    }
}

fn plugins() -> Vec<PluginEntry> {
    vec![PluginEntry {
        name: "stripes",
        summary: "example plugin library: stripes with one block (cls: vertical; loc: block)",
        open: |spec| Ok(Box::new(Stripes::open(spec)?)),
    }]
}

fx_plugin::export_plugins!(plugins);
