//! The parallel loader: worker threads load (decode or render), augment and resize whole batches
//! while the trainer computes; a bounded channel caps the memory held ahead. Batches come out in
//! order, so a run is reproducible whatever the thread timing. A sample that fails to load is
//! skipped and counted, never fatal.

use crate::augment::{self, Augment};
use crate::rng::{mix, Rng};
use fx_plugin::{Dataset, LabeledBox, SampleRecord};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A batch ready to become tensors: images (B × size × size, row-major, \[0,1\]), classification
/// labels (B × C, NaN unknown), boxes per image, masks (B × K × size × size).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub ids: Vec<String>,
    /// Each image's position in the loader's order (ascending): the images of an evaluation
    /// capped at n samples are those at positions below n.
    pub positions: Vec<usize>,
    pub size: usize,
    pub images: Vec<f32>,
    pub cls: Vec<f32>,
    pub boxes: Vec<Vec<LabeledBox>>,
    pub masks: Vec<u8>,
    /// (width, height) of each image as the dataset delivered it, before resizing: detections
    /// are reported in these pixels.
    pub original_sizes: Vec<(usize, usize)>,
    /// Samples of this batch that failed to load, with the reason.
    pub skipped: Vec<(String, String)>,
    /// (sample id, warning) of the samples that loaded with a soft problem.
    pub warnings: Vec<(String, String)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many of the batch's images lie at positions below `n`: they come first.
    pub fn count_below(&self, n: usize) -> usize {
        self.positions.partition_point(|&p| p < n)
    }
}

pub struct LoaderConfig {
    pub size: usize,
    pub batch_size: usize,
    pub workers: usize,
    /// Batches held ready ahead of the consumer.
    pub prefetch: usize,
    pub augment: Augment,
    /// Seed of this pass: augmentation draws depend on (seed, position) only.
    pub seed: u64,
    /// (rank, world) of a data-parallel job: batch b of every rank comes from the same global
    /// batch of `batch_size × world` positions of the order, rank r taking the r-th slice, and
    /// every sample keeps the augmentation of its global position. So the union of the ranks'
    /// batches is exactly what one process with the global batch would see. (0, 1) alone.
    pub shard: (usize, usize),
}

impl LoaderConfig {
    /// The global batch: what all ranks together take per step.
    pub fn global_batch(&self) -> usize {
        self.batch_size.max(1) * self.shard.1.max(1)
    }

    /// Positions of the order in this rank's slice of global batch `b`.
    pub fn slice(&self, b: usize, n: usize) -> std::ops::Range<usize> {
        let lo = (b * self.global_batch() + self.shard.0 * self.batch_size.max(1)).min(n);
        lo..(lo + self.batch_size.max(1)).min(n)
    }

    /// Number of positions in global batch `b` over all ranks.
    pub fn global_len(&self, b: usize, n: usize) -> usize {
        let lo = (b * self.global_batch()).min(n);
        (lo + self.global_batch()).min(n) - lo
    }
}

/// Iterates over batches of `records` in the given order.
pub struct Loader {
    rx: crossbeam_channel::Receiver<(usize, Batch)>,
    pending: BTreeMap<usize, Batch>,
    next: usize,
    total: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Loads, augments and resizes one sample; also returns the (width, height) it was delivered at.
pub fn prepare(
    dataset: &dyn Dataset,
    record: &SampleRecord,
    size: usize,
    aug: &Augment,
    seed: u64,
) -> Result<(fx_plugin::Sample, (usize, usize)), String> {
    let sample = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dataset.load(record, size)))
        .map_err(|_| "the dataset plugin panicked while loading it".to_string())?
        .map_err(|e| e.to_string())?;
    let (iw, ih) = sample.image_dims.unwrap_or((sample.width, sample.height));
    if sample.image.len() != iw * ih || iw == 0 || ih == 0 || sample.width == 0 || sample.height == 0 {
        return Err(format!("image buffer of {} values does not match {iw}×{ih}", sample.image.len()));
    }
    if let Some(m) = sample.masks.iter().find(|m| m.len() != sample.width * sample.height) {
        return Err(format!(
            "a mask of {} values does not match its {}×{} image",
            m.len(),
            sample.width,
            sample.height
        ));
    }
    let sample = check_against(dataset.desc(), sample)?;
    let original = (sample.width, sample.height);
    let sample = to_pixel_frame(sample);
    let identity = *aug == Augment::none() && sample.width == size && sample.height == size;
    if identity {
        return Ok((sample, original));
    }
    let mut rng = Rng::new(seed);
    let a = augment::draw(aug, sample.width, sample.height, size, &mut rng);
    let mut out = augment::warp(&sample, &a, size);
    augment::jitter_intensity(aug, &mut out.image, &mut rng);
    Ok((out, original))
}

/// Boxes reaching this far outside the image (in pixels) are clipped to it; farther, the sample
/// is refused.
pub const BOX_SLACK: f32 = 2.0;

/// Checks a sample against its dataset's description before any of it reaches a tensor: one cls
/// value per cls label, box labels within the loc labels and boxes inside the image (clipped
/// when they reach at most [`BOX_SLACK`] pixels outside), one mask per seg label (or none). A
/// plugin that breaks its description gets the sample refused with the reason (skipped and
/// counted by the caller), never an index error on a device.
pub fn check_against(desc: &fx_plugin::DatasetDesc, mut s: fx_plugin::Sample) -> Result<fx_plugin::Sample, String> {
    let n = desc.cls_labels.len();
    if s.cls.len() != n {
        return Err(format!("{} classification value(s) for the dataset's {n} cls label(s)", s.cls.len()));
    }
    if let Some(v) = s.cls.iter().find(|v| !(v.is_nan() || (0.0..=1.0).contains(*v))) {
        return Err(format!("classification value {v} (expected 0, 1, or NaN for unknown)"));
    }
    let (w, h) = (s.width as f32, s.height as f32);
    for b in &mut s.boxes {
        if b.label >= desc.loc_labels.len() {
            return Err(format!(
                "box label {} out of range (the dataset has {} loc label(s))",
                b.label,
                desc.loc_labels.len()
            ));
        }
        let inside = [b.x0, b.y0, b.x1, b.y1].iter().all(|v| v.is_finite())
            && b.x0 >= -BOX_SLACK
            && b.y0 >= -BOX_SLACK
            && b.x1 <= w + BOX_SLACK
            && b.y1 <= h + BOX_SLACK;
        let clipped = (b.x0.max(0.0), b.y0.max(0.0), b.x1.min(w), b.y1.min(h));
        // Checked after clipping: a box just outside the image would otherwise turn inside out.
        if !inside || clipped.2 <= clipped.0 || clipped.3 <= clipped.1 {
            return Err(format!(
                "box ({}, {}, {}, {}) is empty or outside the {}×{} image",
                b.x0, b.y0, b.x1, b.y1, s.width, s.height
            ));
        }
        (b.x0, b.y0, b.x1, b.y1) = clipped;
    }
    if !s.masks.is_empty() && s.masks.len() != desc.seg_labels.len() {
        return Err(format!("{} mask(s) for the dataset's {} seg label(s)", s.masks.len(), desc.seg_labels.len()));
    }
    Ok(s)
}

/// Brings boxes and masks, given in original pixels, to the frame of the sample's pixels when the
/// preprocessing cache stored them reduced (masks by nearest neighbour at pixel centres).
pub fn to_pixel_frame(mut s: fx_plugin::Sample) -> fx_plugin::Sample {
    let Some((iw, ih)) = s.image_dims.take() else { return s };
    let (w, h) = (s.width, s.height);
    if (iw, ih) == (w, h) {
        return s;
    }
    let (sx, sy) = (iw as f32 / w as f32, ih as f32 / h as f32);
    for b in &mut s.boxes {
        (b.x0, b.x1, b.y0, b.y1) = (b.x0 * sx, b.x1 * sx, b.y0 * sy, b.y1 * sy);
    }
    let xs: Vec<usize> = (0..iw).map(|x| (((x as f32 + 0.5) / sx) as usize).min(w - 1)).collect();
    let ys: Vec<usize> = (0..ih).map(|y| (((y as f32 + 0.5) / sy) as usize).min(h - 1)).collect();
    for m in &mut s.masks {
        let mut out = Vec::with_capacity(iw * ih);
        for &y in &ys {
            out.extend(xs.iter().map(|&x| m[y * w + x]));
        }
        *m = out;
    }
    (s.width, s.height) = (iw, ih);
    s
}

impl Loader {
    pub fn new(
        dataset: Arc<dyn Dataset>,
        records: Arc<Vec<SampleRecord>>,
        order: Vec<usize>,
        cfg: LoaderConfig,
    ) -> Loader {
        let total = order.len().div_ceil(cfg.global_batch());
        let (tx, rx) = crossbeam_channel::bounded(cfg.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let next_batch = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(order);
        let cfg = Arc::new(cfg);
        let workers = (0..cfg.workers.max(1))
            .map(|_| {
                let (dataset, records, order, cfg, tx, stop, next_batch) = (
                    dataset.clone(),
                    records.clone(),
                    order.clone(),
                    cfg.clone(),
                    tx.clone(),
                    stop.clone(),
                    next_batch.clone(),
                );
                std::thread::spawn(move || loop {
                    let b = next_batch.fetch_add(1, Ordering::SeqCst);
                    if b >= total || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = cfg.slice(b, order.len());
                    let batch = build_batch(dataset.as_ref(), &records, &order[r.clone()], r.start, &cfg);
                    if tx.send((b, batch)).is_err() {
                        break;
                    }
                })
            })
            .collect();
        Loader { rx, pending: BTreeMap::new(), next: 0, total, stop, workers }
    }

    /// Number of batches this loader yields.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

fn build_batch(
    dataset: &dyn Dataset,
    records: &[SampleRecord],
    idx: &[usize],
    first: usize,
    cfg: &LoaderConfig,
) -> Batch {
    let s = cfg.size;
    let mut batch = Batch { size: s, ..Default::default() };
    for (k, &i) in idx.iter().enumerate() {
        let record = &records[i];
        match prepare(dataset, record, s, &cfg.augment, mix(&[cfg.seed, (first + k) as u64])) {
            Ok((sample, original)) => {
                batch.original_sizes.push(original);
                batch.warnings.extend(sample.warnings.iter().map(|w| (sample.id.clone(), w.clone())));
                batch.ids.push(sample.id);
                batch.positions.push(first + k);
                batch.images.extend_from_slice(&sample.image);
                batch.cls.extend_from_slice(&sample.cls);
                batch.boxes.push(sample.boxes);
                for m in &sample.masks {
                    batch.masks.extend_from_slice(m);
                }
            }
            Err(why) => batch.skipped.push((record.id.clone(), why)),
        }
    }
    batch
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        while !self.pending.contains_key(&self.next) {
            match self.rx.recv() {
                Ok((b, batch)) => {
                    self.pending.insert(b, batch);
                }
                Err(_) => return None,
            }
        }
        let batch = self.pending.remove(&self.next);
        self.next += 1;
        batch
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock workers waiting on a full channel.
        while self.rx.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}

/// The order of one pass: a seeded shuffle of the whole split, truncated to `fraction` (Lock passes
/// see a random half).
pub fn pass_order(n: usize, fraction: f64, seed: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        Rng::new(seed).shuffle(&mut order);
    }
    let keep = ((n as f64 * fraction).round() as usize).clamp(n.min(1), n);
    order.truncate(keep);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use fx_plugin::{DatasetDesc, PluginError, Sample, SampleSource, Split};

    struct Toy {
        desc: DatasetDesc,
    }

    impl Dataset for Toy {
        fn desc(&self) -> &DatasetDesc {
            &self.desc
        }
        fn index(&self, _: Split) -> Result<Vec<SampleRecord>, PluginError> {
            Ok((0..50).map(|i| SampleRecord { id: format!("s{i}"), source: SampleSource::Phantom(i) }).collect())
        }
        fn load(&self, r: &SampleRecord, size: usize) -> Result<Sample, PluginError> {
            let SampleSource::Phantom(i) = r.source else { unreachable!() };
            if i % 7 == 3 {
                return Err(PluginError::input(format!("toy/{}.png", r.id), "corrupt PNG"));
            }
            if i == 11 {
                panic!("plugin bug");
            }
            let mut s = Sample {
                id: r.id.clone(),
                height: size,
                width: size,
                image: vec![i as f32 / 50.0; size * size],
                image_dims: None,
                cls: vec![(i % 2) as f32],
                boxes: vec![LabeledBox { label: 0, x0: -1.0, y0: 1.0, x1: 4.0, y1: size as f32 + 1.5 }],
                masks: vec![],
                warnings: vec![],
            };
            // A plugin breaking its own description.
            match i {
                20 => s.cls = vec![1.0, 0.0],
                21 => s.boxes[0].label = 3,
                22 => s.boxes[0].x1 = f32::NAN,
                23 => s.masks = vec![vec![0; size * size]; 2],
                26 => s.cls = vec![2.0],
                // Within the slack, but entirely right of the image: clipping would invert it.
                27 => (s.boxes[0].x0, s.boxes[0].x1) = (size as f32 + 0.5, size as f32 + 1.5),
                25 => s.boxes[0].x0 = -40.0,
                _ => {}
            }
            Ok(s)
        }
    }

    #[test]
    fn ordered_batches_and_bad_samples_are_skipped_and_counted() {
        let ds: Arc<dyn Dataset> = Arc::new(Toy {
            desc: DatasetDesc {
                cls_mode: fx_plugin::LabelMode::MultiLabel,
                name: "toy".into(),
                description: String::new(),
                cls_labels: vec!["a".into()],
                loc_labels: vec!["lesion".into()],
                seg_labels: vec!["lung".into()],
                drawn_split: false,
                eval_labels: vec![],
            },
        });
        let records = Arc::new(ds.index(Split::Train).unwrap());
        let order = pass_order(50, 1.0, 9, true);
        let cfg = LoaderConfig {
            size: 8,
            batch_size: 8,
            workers: 3,
            prefetch: 2,
            augment: Augment::none(),
            seed: 1,
            shard: (0, 1),
        };
        let batches: Vec<Batch> = Loader::new(ds.clone(), records.clone(), order.clone(), cfg).collect();
        assert_eq!(batches.len(), 7);
        let ids: Vec<String> = batches.iter().flat_map(|b| b.ids.clone()).collect();
        let bad: Vec<usize> = (0..50).filter(|i| i % 7 == 3 || *i == 11 || (20..=27).contains(i)).collect();
        let expect: Vec<String> = order.iter().filter(|i| !bad.contains(i)).map(|i| format!("s{i}")).collect();
        assert_eq!(ids, expect, "order kept, bad samples dropped");
        let skipped: Vec<(String, String)> = batches.iter().flat_map(|b| b.skipped.clone()).collect();
        assert_eq!(skipped.len(), bad.len());
        assert!(skipped.iter().any(|(_, w)| w.contains("corrupt PNG") && w.contains("toy/")));
        assert!(skipped.iter().any(|(_, w)| w.contains("panicked")));
        for why in [
            "2 classification value(s) for the dataset's 1",
            "box label 3 out of range",
            "outside the 8×8 image",
            "2 mask(s) for the dataset's 1 seg label(s)",
            "classification value 2",
        ] {
            assert!(skipped.iter().any(|(_, w)| w.contains(why)), "{why}: {skipped:?}");
        }
        // A box reaching slightly outside is clipped to the image, not refused.
        let b = &batches[0].boxes[0][0];
        assert!(b.x0 >= 0.0 && b.y1 <= 8.0, "{b:?}");
        let b0 = &batches[0];
        assert_eq!(b0.images.len(), b0.len() * 64);
        assert_eq!(b0.cls.len(), b0.len());
        // Dropping a loader early must not hang.
        let cfg = LoaderConfig {
            size: 8,
            batch_size: 2,
            workers: 2,
            prefetch: 1,
            augment: Augment::none(),
            seed: 1,
            shard: (0, 1),
        };
        let mut l = Loader::new(ds, records, order, cfg);
        l.next();
        drop(l);
    }

    #[test]
    fn shards_of_a_global_batch_are_the_single_process_batch() {
        let ds: Arc<dyn Dataset> = Arc::new(Toy {
            desc: DatasetDesc {
                cls_mode: fx_plugin::LabelMode::MultiLabel,
                name: "toy".into(),
                description: String::new(),
                cls_labels: vec!["a".into()],
                loc_labels: vec!["lesion".into()],
                seg_labels: vec!["lung".into()],
                drawn_split: false,
                eval_labels: vec![],
            },
        });
        let records = Arc::new(ds.index(Split::Train).unwrap());
        let order = pass_order(50, 1.0, 9, true);
        let load = |batch_size, shard| {
            let cfg =
                LoaderConfig { size: 8, batch_size, workers: 2, prefetch: 2, augment: Augment::none(), seed: 1, shard };
            Loader::new(ds.clone(), records.clone(), order.clone(), cfg).collect::<Vec<Batch>>()
        };
        let one = load(8, (0, 1));
        let (r0, r1) = (load(4, (0, 2)), load(4, (1, 2)));
        assert_eq!((r0.len(), r1.len()), (one.len(), one.len()), "every rank takes the same number of steps");
        for ((a, b), whole) in r0.iter().zip(&r1).zip(&one) {
            let ids: Vec<String> = a.ids.iter().chain(&b.ids).cloned().collect();
            assert_eq!(ids, whole.ids);
            assert_eq!([a.images.clone(), b.images.clone()].concat(), whole.images);
        }
        // 50 = 6 × 8 + 2: the last global batch leaves rank 1 nothing.
        let cfg = LoaderConfig {
            size: 8,
            batch_size: 4,
            workers: 1,
            prefetch: 1,
            augment: Augment::none(),
            seed: 1,
            shard: (1, 2),
        };
        assert_eq!((cfg.slice(6, 50), cfg.global_len(6, 50), cfg.global_len(0, 50)), (50..50, 2, 8));
    }

    #[test]
    fn lock_fraction_takes_half() {
        let o = pass_order(101, 0.5, 3, true);
        assert_eq!(o.len(), 51);
        let mut s = o.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 51);
        assert_ne!(pass_order(101, 0.5, 4, true), o);
    }

    #[test]
    fn reduced_pixels_bring_boxes_and_masks_to_their_frame() {
        // A 40×20 original whose pixels were cached at 20×10: the box halves, the mask is sampled.
        let mut mask = vec![0u8; 40 * 20];
        for y in 4..12 {
            for x in 10..30 {
                mask[y * 40 + x] = 1;
            }
        }
        let s = Sample {
            id: "r".into(),
            height: 20,
            width: 40,
            image: vec![0.5; 20 * 10],
            image_dims: Some((20, 10)),
            cls: vec![],
            boxes: vec![fx_plugin::LabeledBox { label: 0, x0: 10.0, y0: 4.0, x1: 30.0, y1: 12.0 }],
            masks: vec![mask],
            warnings: vec![],
        };
        let out = to_pixel_frame(s);
        assert_eq!((out.width, out.height, out.image_dims), (20, 10, None));
        let b = out.boxes[0];
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (5.0, 2.0, 15.0, 6.0));
        let m = &out.masks[0];
        assert_eq!(m.len(), 200);
        let on: Vec<(usize, usize)> = (0..200).filter(|i| m[*i] == 1).map(|i| (i % 20, i / 20)).collect();
        assert_eq!(on.len(), 10 * 4);
        assert!(on.iter().all(|&(x, y)| (5..15).contains(&x) && (2..6).contains(&y)));
        // And the loader reports the original size for detections in original pixels.
        let toy = Arc::new(Fixed(out_sample()));
        let (_, original) = prepare(
            toy.as_ref(),
            &SampleRecord { id: "r".into(), source: SampleSource::Phantom(0) },
            16,
            &Augment::none(),
            1,
        )
        .unwrap();
        assert_eq!(original, (40, 20));
    }

    fn out_sample() -> Sample {
        Sample {
            id: "r".into(),
            height: 20,
            width: 40,
            image: vec![0.5; 200],
            image_dims: Some((20, 10)),
            cls: vec![],
            boxes: vec![],
            masks: vec![],
            warnings: vec![],
        }
    }

    struct Fixed(Sample);
    impl Dataset for Fixed {
        fn desc(&self) -> &DatasetDesc {
            static DESC: std::sync::OnceLock<DatasetDesc> = std::sync::OnceLock::new();
            DESC.get_or_init(|| DatasetDesc {
                cls_mode: fx_plugin::LabelMode::MultiLabel,
                name: "fixed".into(),
                description: String::new(),
                cls_labels: vec![],
                loc_labels: vec![],
                seg_labels: vec![],
                drawn_split: false,
                eval_labels: vec![],
            })
        }
        fn index(&self, _: Split) -> Result<Vec<SampleRecord>, PluginError> {
            Ok(vec![])
        }
        fn load(&self, _: &SampleRecord, _: usize) -> Result<Sample, PluginError> {
            Ok(self.0.clone())
        }
    }
}
