//! Evaluation after every epoch (the paper's protocol, Figure 2's data): every (dataset, task) of
//! the experiment on its test split, with the teacher and the student — AUC, mAP40/AP50/AP40:95,
//! Dice — and the prediction files beside the metric rows. In a data-parallel job the forward
//! passes are sharded over the ranks ([`crate::dist::gathered`]) and every rank computes the same
//! metrics; rank 0 writes.

use super::*;
use crate::eval::map;
use crate::swin::SwinFeatures;
use fx_data::coco::{CocoCategory, CocoImage};
use std::path::PathBuf;

impl Trainer {
    /// How many test samples of `name` an evaluation of `task` reads: the first
    /// `eval.max_samples` of them.
    fn eval_count(&self, name: &str, task: Task) -> usize {
        let len = self.dataset(name).test.len();
        match self.exp.eval.max_samples.of(task) {
            0 => len,
            m => m.min(len),
        }
    }

    /// The test batches of `name` that hold its first `n` samples, decoded once and kept (shared,
    /// not copied, every epoch). One list per dataset: a list of more samples serves a smaller
    /// cap as its prefix (each batch knows its images' positions), and a larger cap replaces it.
    fn eval_batches(&mut self, name: &str, n: usize) -> Result<Arc<Vec<Batch>>> {
        let earlier = self.eval_cache.get(name);
        if let Some((_, batches)) = earlier.filter(|(m, _)| *m >= n) {
            return Ok(batches.clone());
        }
        let first_list = earlier.is_none();
        let ds = self.dataset(name);
        let cfg = LoaderConfig {
            size: self.exp.model.image_size as usize,
            batch_size: self.exp.eval.batch_size.max(1),
            workers: num_cpus(),
            prefetch: 4,
            augment: Augment::none(),
            seed: 0,
            shard: (0, 1),
        };
        let batches: Vec<Batch> = Loader::new(ds.dataset.clone(), ds.test.clone(), (0..n).collect(), cfg).collect();
        let skipped: usize = batches.iter().map(|b| b.skipped.len()).sum();
        // Reported once per dataset, by its first list.
        if skipped > 0 && first_list {
            self.run.event(
                "warn",
                "test_samples_skipped",
                format!("{name}: {skipped} test samples could not be loaded and are left out of evaluation"),
                serde_json::json!({ "dataset": name, "count": skipped }),
            )?;
        }
        let batches = Arc::new(batches);
        self.eval_cache.insert(name.to_string(), (n, batches.clone()));
        Ok(batches)
    }

    /// Evaluates every (dataset, task) with every configured model. An evaluation whose model
    /// path is unchanged since its last one (the same parameters, bit for bit: a Lock epoch
    /// freezes the student's backbone, so every other task's student scores stand) is not run
    /// again: its rows are carried over with this epoch's stamp. The tasks of one dataset that a
    /// model evaluates share one backbone pass over its test images. Returns the rows and how many
    /// of the (dataset, task, model) evaluations were carried over.
    pub(super) fn evaluate(&mut self, plan: &EpochPlan, wall_time: f64) -> Result<(Vec<MetricRow>, Reuse)> {
        // Evaluation runs under the training's autocast too (outputs leave the model in fp32).
        let _autocast = Autocast::new(self.device, self.low_precision());
        let roles = self.exp.eval_models();
        // Localization first, then segmentation, then classification, as the rows always were.
        let pairs: Vec<(String, Task)> = self
            .datasets
            .iter()
            .flat_map(|d| [Task::Loc, Task::Seg, Task::Cls].into_iter().map(move |t| (d, t)))
            .filter(|(d, t)| d.tasks.contains(t) && !self.disabled.contains(&(d.name.clone(), *t)))
            .map(|(d, t)| (d.name.clone(), t))
            .collect();
        // For each pair, each role: the state of the path it reads. An evaluation runs unless its
        // memo holds the same state; a plugin head's always runs (its library may keep state fx
        // cannot see).
        let mut states: Vec<Vec<PathState>> = pairs
            .iter()
            .map(|(name, task)| roles.iter().map(|&role| path_state(self.model(role), *task, name)).collect())
            .collect();
        let this: &Trainer = self;
        let mut fresh: Vec<bool> = pairs
            .iter()
            .zip(&states)
            .flat_map(|((name, task), per_role)| {
                roles.iter().zip(per_role).map(move |(&role, state)| {
                    this.plugin_head(name, *task)
                        || !this.eval_memo.get(&(name.clone(), *task, role)).is_some_and(|m| m.state.same_as(state))
                })
            })
            .collect();
        // Every rank of a job must take the same decisions: the forward passes are collective.
        if let Some(w) = &self.world {
            let flags =
                Tensor::from_slice(&fresh.iter().map(|&f| f as i64 as f32).collect::<Vec<_>>()).to_device(self.device);
            w.sum(std::slice::from_ref(&flags))?;
            fresh = Vec::<f32>::try_from(flags.to_device(Device::Cpu))?.iter().map(|&v| v > 0.0).collect();
        }
        let is_fresh = |p: usize, r: usize| fresh[p * roles.len() + r];
        // The fresh evaluations, by (pair, role): per dataset and model, the built-in heads in one
        // pass; a plugin head alone, so that its failure is its own.
        let mut evaluated: BTreeMap<(usize, usize), Vec<MetricRow>> = BTreeMap::new();
        let mut names: Vec<&String> = pairs.iter().map(|(n, _)| n).collect();
        names.dedup();
        for name in names {
            for (r, &role) in roles.iter().enumerate() {
                let todo: Vec<usize> = (0..pairs.len()).filter(|&p| &pairs[p].0 == name && is_fresh(p, r)).collect();
                let (plugin, builtin): (Vec<usize>, Vec<usize>) =
                    todo.into_iter().partition(|&p| self.plugin_head(name, pairs[p].1));
                let groups = std::iter::once(builtin).chain(plugin.into_iter().map(|p| vec![p]));
                for group in groups.filter(|g| !g.is_empty()) {
                    // A plugin head that failed with the first model is not run with the second.
                    if group.iter().any(|&p| self.disabled.contains(&pairs[p])) {
                        continue;
                    }
                    let tasks: Vec<Task> = group.iter().map(|&p| pairs[p].1).collect();
                    match self.evaluate_tasks(plan, name, role, &tasks, wall_time) {
                        Ok(rows) => evaluated.extend(group.iter().map(|&p| (p, r)).zip(rows)),
                        // A plugin head that fails is disabled; the built-in heads' errors end the run.
                        Err(e) if self.plugin_head(name, tasks[0]) => self.disable_head(name, tasks[0], &e)?,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let mut rows = Vec::new();
        let mut reuse = Reuse { reused: 0, evaluations: fresh.len() };
        for (p, pair) in pairs.iter().enumerate() {
            if self.disabled.contains(pair) {
                continue;
            }
            let (name, task) = (&pair.0, pair.1);
            for (r, &role) in roles.iter().enumerate() {
                let key = (name.clone(), task, role);
                if is_fresh(p, r) {
                    let mine = evaluated.remove(&(p, r)).unwrap_or_default();
                    rows.extend(mine.iter().cloned());
                    let state = std::mem::take(&mut states[p][r]);
                    self.eval_memo.insert(key, EvalMemo { state, rows: mine });
                } else {
                    reuse.reused += 1;
                    rows.extend(self.eval_memo[&key].rows.iter().map(|x| restamp(x, plan, wall_time)));
                }
            }
        }
        Ok((rows, reuse))
    }

    /// One model's evaluation of `tasks` on one dataset's test images: one backbone pass over
    /// the first images the most demanding task reads, each task's head on the images within its
    /// own `eval.max_samples`. Returns each task's rows, in the order of `tasks`.
    fn evaluate_tasks(
        &mut self,
        plan: &EpochPlan,
        name: &str,
        role: ModelRole,
        tasks: &[Task],
        wall_time: f64,
    ) -> Result<Vec<Vec<MetricRow>>> {
        let caps: Vec<usize> = tasks.iter().map(|&t| self.eval_count(name, t)).collect();
        let batches = self.eval_batches(name, caps.iter().copied().max().unwrap_or(0))?;
        let this: &Trainer = self;
        let model = this.model(role);
        let mut evals: Vec<TaskEval> =
            tasks.iter().map(|&t| TaskEval::new(this, name, t, role)).collect::<Result<_>>()?;
        // Which tasks read some image of a batch. The set only shrinks along the batches; each run
        // of batches with the same set is one gathered pass (a pass has a fixed number of outputs).
        // A batch no task reads (empty, or beyond every cap of a longer cached list) is left out.
        let active = |b: &Batch| -> Vec<usize> { (0..tasks.len()).filter(|&i| b.count_below(caps[i]) > 0).collect() };
        let live: Vec<&Batch> = batches.iter().filter(|b| !active(b).is_empty()).collect();
        let mut start = 0;
        while start < live.len() {
            let on = active(live[start]);
            let end = start + live[start..].iter().take_while(|b| active(b) == on).count();
            let n_outputs = on.iter().map(|&i| eval_outputs(tasks[i])).sum();
            let forward = |b: &Batch| -> Result<Vec<Tensor>> {
                let x = model.input(&this.images_tensor(b));
                tch::no_grad(|| {
                    let f = model.backbone.forward(&x, false);
                    let mut outs = Vec::with_capacity(n_outputs);
                    for &i in &on {
                        let f = f.first(b.count_below(caps[i]) as i64);
                        outs.extend(head_outputs(model, tasks[i], name, &f, &x)?);
                    }
                    Ok(outs)
                })
            };
            crate::dist::gathered(this.world.as_ref(), &live[start..end], n_outputs, forward, |b, outs| {
                let mut outs = outs.into_iter();
                for &i in &on {
                    let n = b.count_below(caps[i]);
                    evals[i].add(this, b, n, outs.by_ref().take(eval_outputs(tasks[i])).collect())?;
                }
                Ok(())
            })?;
            start = end;
        }
        evals.into_iter().map(|e| e.finish(this, plan, name, role, wall_time)).collect()
    }

    fn model(&self, role: ModelRole) -> &Model {
        match (role, &self.teacher) {
            (ModelRole::Teacher, Some(t)) => t,
            _ => &self.student,
        }
    }

    fn write_predictions(
        &self,
        role: ModelRole,
        dataset: &str,
        labels: &[String],
        ids: &[String],
        scores: &[f64],
        truth: &[f32],
    ) -> Result<()> {
        if !self.run.is_writer() {
            return Ok(());
        }
        let c = labels.len();
        let mut csv = String::from("id");
        for l in labels {
            csv.push_str(&format!(",{}", csv_field(&format!("label_{l}"))));
        }
        for l in labels {
            csv.push_str(&format!(",{}", csv_field(&format!("score_{l}"))));
        }
        csv.push('\n');
        for (i, id) in ids.iter().enumerate() {
            csv.push_str(&csv_field(id));
            for k in 0..c {
                let y = truth[i * c + k];
                if y.is_nan() {
                    csv.push(',');
                } else {
                    csv.push_str(&format!(",{y}"));
                }
            }
            for k in 0..c {
                csv.push_str(&format!(",{}", scores[i * c + k]));
            }
            csv.push('\n');
        }
        let path = self.run.path("predictions").join(format!("{}-{dataset}-cls.csv", role.as_str()));
        crate::store::write_atomic(&path, csv.as_bytes())
    }
}

/// How many tensors a task's evaluation forward returns per batch.
fn eval_outputs(task: Task) -> usize {
    match task {
        Task::Loc => 2,
        Task::Cls | Task::Seg => 1,
    }
}

/// A task's head on backbone features `f` of the batch `x` (or of its first images), with what
/// its evaluation reads: class probabilities; mask probabilities; the last decoder layer's
/// logits and boxes.
fn head_outputs(model: &Model, task: Task, name: &str, f: &SwinFeatures, x: &Tensor) -> Result<Vec<Tensor>> {
    Ok(match task {
        Task::Cls => {
            let logits = model.cls_on(f, name, false)?.logits;
            vec![crate::model::cls_probabilities(&model.cls_heads[name].spec, &logits)]
        }
        Task::Seg => {
            let logits = model.seg_on(f, name, (x.size()[2], x.size()[3]), false, false, None)?.logits;
            vec![crate::upernet::mask_scores(&model.seg_heads[name].spec, &logits)]
        }
        Task::Loc => {
            let out = model.loc_on(f, name, &DecodeOptions::default());
            vec![out.logits.last().unwrap().shallow_clone(), out.boxes.last().unwrap().shallow_clone()]
        }
    })
}

/// One model's evaluation of one task on one dataset, fed the head's outputs batch by batch:
/// AUC (and accuracy for a multi-class head) with the prediction CSV; per-image and global Dice
/// with the predicted masks as PNG files and an index CSV, so anyone can re-score them; mAP40
/// (the paper's number), AP50 and AP over IoU 0.40:0.95 from the top `num_select` (query, class)
/// pairs of each image capped to the best 100 (COCO's maxDets), in the original image's pixels,
/// with the detections as a COCO results file beside the ground truth as a COCO file.
enum TaskEval {
    Cls { labels: Vec<String>, scores: Vec<f64>, truth: Vec<f32>, ids: Vec<String> },
    Seg { labels: Vec<String>, acc: DiceAccumulator, dir: PathBuf, index: String, pngs: Vec<(String, Vec<u8>, usize)> },
    Loc { labels: Vec<String>, dets: Vec<map::Detection>, gt: Vec<map::GtBox>, images: Vec<CocoImage> },
}

impl TaskEval {
    fn new(t: &Trainer, name: &str, task: Task, role: ModelRole) -> Result<TaskEval> {
        let desc = t.dataset(name).dataset.desc();
        Ok(match task {
            Task::Cls => TaskEval::Cls {
                labels: desc.cls_labels.clone(),
                scores: Vec::new(),
                truth: Vec::new(),
                ids: Vec::new(),
            },
            Task::Seg => {
                let dir = t.run.path("predictions").join(format!("{}-{name}-seg", role.as_str()));
                // Every rank of a job computes the metrics; rank 0 writes the files.
                if t.run.is_writer() {
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir)?;
                }
                TaskEval::Seg {
                    labels: desc.seg_labels.clone(),
                    acc: DiceAccumulator::new(desc.seg_labels.len(), 0.5),
                    dir,
                    index: String::from("id,label,predicted_mask,image_pixels\n"),
                    pngs: Vec::new(),
                }
            }
            Task::Loc => {
                TaskEval::Loc { labels: desc.loc_labels.clone(), dets: Vec::new(), gt: Vec::new(), images: Vec::new() }
            }
        })
    }

    /// The outputs for the first `n` images of batch `b`.
    fn add(&mut self, t: &Trainer, b: &Batch, n: usize, outs: Vec<Tensor>) -> Result<()> {
        match self {
            TaskEval::Cls { labels, scores, truth, ids } => {
                scores.extend(Vec::<f64>::try_from(&outs[0].to_kind(Kind::Double).flatten(0, -1))?);
                truth.extend_from_slice(&b.cls[..n * labels.len()]);
                ids.extend(b.ids[..n].iter().cloned());
            }
            TaskEval::Seg { labels, acc, index, pngs, .. } => {
                let k = labels.len();
                let px = b.size * b.size;
                let probs = Vec::<f32>::try_from(&outs[0].flatten(0, -1))?;
                acc.add(&probs, &b.masks[..n * k * px], n);
                if !t.run.is_writer() {
                    return Ok(());
                }
                for (i, id) in b.ids[..n].iter().enumerate() {
                    for (c, label) in labels.iter().enumerate() {
                        let off = (i * k + c) * px;
                        let mask: Vec<u8> = probs[off..off + px].iter().map(|&v| (v > 0.5) as u8).collect();
                        // Ids are often paths (CheXpert, SIIM) and labels may hold '/' ("Nodule/Mass").
                        let file = format!("{}-{}.png", file_part(id), file_part(label));
                        pngs.push((file.clone(), mask, b.size));
                        index.push_str(&format!(
                            "{},{},{file},{}x{}\n",
                            csv_field(id),
                            csv_field(label),
                            b.size,
                            b.size
                        ));
                    }
                }
            }
            TaskEval::Loc { dets, gt, images, .. } => {
                let per = crate::dino::select_detections(&outs[0], &outs[1], t.exp.model.dino.num_select);
                for (i, id) in b.ids[..n].iter().enumerate() {
                    let image = images.len();
                    let (ow, oh) = b.original_sizes[i];
                    images.push(CocoImage {
                        id: image as i64 + 1,
                        file_name: id.clone(),
                        width: ow as u32,
                        height: oh as u32,
                    });
                    let (sx, sy) = (ow as f32, oh as f32);
                    for &(score, label, [cx, cy, w, h]) in &per[i] {
                        let bbox = [(cx - w / 2.0) * sx, (cy - h / 2.0) * sy, (cx + w / 2.0) * sx, (cy + h / 2.0) * sy];
                        dets.push(map::Detection { image, category: label as usize, bbox, score });
                    }
                    // The batch's boxes are in its resized pixels; back to the original ones.
                    let (rx, ry) = (sx / b.size as f32, sy / b.size as f32);
                    for g in &b.boxes[i] {
                        gt.push(map::GtBox {
                            image,
                            category: g.label,
                            bbox: [g.x0 * rx, g.y0 * ry, g.x1 * rx, g.y1 * ry],
                            crowd: false,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The metric rows, and the prediction files written.
    fn finish(
        self,
        t: &Trainer,
        plan: &EpochPlan,
        name: &str,
        role: ModelRole,
        wall_time: f64,
    ) -> Result<Vec<MetricRow>> {
        let mut rows = Vec::new();
        match self {
            TaskEval::Cls { labels, scores, truth, ids } => {
                let c = labels.len();
                let (per, mean) = mean_auc(&scores, &truth, c);
                let eval_labels = &t.dataset(name).dataset.desc().eval_labels;
                let mean = crate::eval::auc::reported_mean(&per, &labels, eval_labels, mean);
                t.write_predictions(role, name, &labels, &ids, &scores, &truth)?;
                let Some(mean) = mean else {
                    t.run.event(
                        "warn",
                        "auc_undefined",
                        format!("{name}: no class has both positives and negatives in the test split; AUC undefined"),
                        serde_json::Value::Null,
                    )?;
                    return Ok(rows);
                };
                // Multi-class heads: also the accuracy (argmax = the one-hot class) over the
                // images with a one-hot label; a secondary metric, like dice_global.
                if t.model(role).cls_heads[name].spec.mode == fx_plugin::LabelMode::MultiClass {
                    if let Some(acc) = accuracy(&scores, &truth, c) {
                        rows.push(metric_row(plan, name, Task::Cls, role, "accuracy", acc, [], wall_time));
                    }
                }
                let per_label = labels.iter().zip(&per).filter_map(|(l, v)| v.map(|v| (l.clone(), v * 100.0)));
                rows.push(metric_row(plan, name, Task::Cls, role, Task::Cls.metric(), mean, per_label, wall_time));
            }
            TaskEval::Seg { labels, acc, dir, index, pngs } => {
                if t.run.is_writer() {
                    use rayon::prelude::*;
                    pngs.par_iter()
                        .try_for_each(|(file, mask, side)| {
                            fx_data::masks::write_mask_png(&dir.join(file), mask, *side, *side)
                        })
                        .map_err(|e| anyhow!(e))?;
                    crate::store::write_atomic(&dir.join("index.csv"), index.as_bytes())?;
                }
                let (per, mean) = acc.scores();
                for (metric, pick) in [("dice", 0usize), ("dice_global", 1)] {
                    let v = |d: &crate::eval::dice::DiceScores| if pick == 0 { d.per_image_mean } else { d.global };
                    let per_label = labels.iter().zip(&per).map(|(l, d)| (l.clone(), v(d) * 100.0));
                    rows.push(metric_row(plan, name, Task::Seg, role, metric, v(&mean), per_label, wall_time));
                }
            }
            TaskEval::Loc { labels, dets, gt, images } => {
                let dets = map::top_k_per_image(&dets, map::MAX_DETS);
                let report = map::evaluate(&gt, &dets, labels.len(), images.len());
                let dir = t.run.path("predictions");
                if t.run.is_writer() {
                    std::fs::create_dir_all(&dir)?;
                    let categories: Vec<CocoCategory> = labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| CocoCategory { id: i as i64 + 1, name: l.clone() })
                        .collect();
                    let image_ids: Vec<i64> = images.iter().map(|im| im.id).collect();
                    let category_ids: Vec<i64> = categories.iter().map(|c| c.id).collect();
                    let stem = format!("{}-{name}-loc", role.as_str());
                    crate::store::write_atomic(
                        &dir.join(format!("{stem}-detections.json")),
                        map::coco_results_json(&dets, &image_ids, &category_ids).as_bytes(),
                    )?;
                    crate::store::write_atomic(
                        &dir.join(format!("{stem}-ground_truth.json")),
                        map::coco_gt_json(&gt, &images, &categories).as_bytes(),
                    )?;
                }
                let Some(map40) = report.map40 else {
                    t.run.event(
                        "warn",
                        "map_undefined",
                        format!("{name}: the test split has no boxes; mAP40 undefined"),
                        serde_json::Value::Null,
                    )?;
                    return Ok(rows);
                };
                for (metric, value, thr) in
                    [("map40", Some(map40), 0usize), ("ap50", report.ap50, 2), ("ap40_95", report.ap40_95, usize::MAX)]
                {
                    let Some(value) = value else { continue };
                    let per_label = labels
                        .iter()
                        .zip(&report.per_category)
                        .filter_map(|(l, row)| {
                            let v = if thr == usize::MAX {
                                let v: Vec<f64> = row.iter().flatten().copied().collect();
                                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                            } else {
                                row[thr]
                            };
                            v.map(|v| (l.clone(), v * 100.0))
                        })
                        .collect::<Vec<_>>();
                    rows.push(metric_row(plan, name, Task::Loc, role, metric, value, per_label, wall_time));
                }
            }
        }
        Ok(rows)
    }
}

/// One row of this epoch's evaluation: `role`'s `metric` (a fraction, stored ×100 as the paper
/// reports) on `dataset`'s `task`, focused when that is the pair this epoch trained.
#[allow(clippy::too_many_arguments)]
fn metric_row(
    plan: &EpochPlan,
    dataset: &str,
    task: Task,
    role: ModelRole,
    metric: &str,
    value: f64,
    per_label: impl IntoIterator<Item = (String, f64)>,
    wall_time: f64,
) -> MetricRow {
    MetricRow {
        epoch: plan.epoch,
        cycle: plan.cycle,
        trained: trained(plan),
        eval: Evaluated { dataset: dataset.into(), task: task.as_str().into() },
        model: role.as_str().into(),
        metric: metric.into(),
        value: value * 100.0,
        focused: plan.dataset == dataset && plan.task == task,
        per_label: per_label.into_iter().collect(),
        wall_time,
    }
}

/// What `plan`'s epoch trained, as its metric rows record it.
fn trained(plan: &EpochPlan) -> Trained {
    Trained { dataset: plan.dataset.as_str().into(), task: plan.task.as_str().into(), mode: plan.mode.as_str().into() }
}

/// How many of an epoch's (dataset, task, model) evaluations were carried over unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    pub reused: usize,
    pub evaluations: usize,
}

/// The last evaluation of one (dataset, task, model): the state of the model path it read and
/// its rows.
pub(super) struct EvalMemo {
    state: PathState,
    rows: Vec<MetricRow>,
}

/// What an evaluation of a task on a dataset reads of a model, to tell whether it changed: each
/// parameter's version counter and storage (every optimiser step, EMA update and checkpoint load
/// advances the counter, see [`fx_shim::version`]), and the BatchNorm buffers by value, since
/// their updates advance no counter (nor does the per-epoch broadcast of the buffers in a job; a
/// collective that wrote parameters mid-run would have to clear the memo).
#[derive(Default)]
pub(super) struct PathState {
    versions: Vec<(i64, usize)>,
    buffers: Vec<Tensor>,
}

impl PathState {
    fn same_as(&self, other: &PathState) -> bool {
        self.versions == other.versions
            && self.buffers.len() == other.buffers.len()
            && self.buffers.iter().zip(&other.buffers).all(|(a, b)| a.equal(b))
    }
}

/// The state of the variables on `task`'s path for `dataset`: the backbone, the task's shared
/// branch and the dataset's head (the groups the task's Release epoch trains).
fn path_state(model: &Model, task: Task, dataset: &str) -> PathState {
    let path = schedule::trainable_for(task, Mode::Release);
    let mut vars: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(name, _)| Group::of(name).is_some_and(|(g, d)| g.trains_in(&path) && d.is_none_or(|d| d == dataset)))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut state = PathState::default();
    for (name, t) in vars {
        if crate::model::is_buffer(&name) {
            state.buffers.push(t.copy());
        } else {
            state.versions.push((fx_shim::version(&t), t.data_ptr() as usize));
        }
    }
    state
}

/// A carried-over row with this epoch's stamp: its epoch, what the epoch trained, whether that
/// makes the row focused, and the wall time.
fn restamp(row: &MetricRow, plan: &EpochPlan, wall_time: f64) -> MetricRow {
    MetricRow {
        epoch: plan.epoch,
        cycle: plan.cycle,
        trained: trained(plan),
        focused: plan.dataset == row.eval.dataset && plan.task.as_str() == row.eval.task,
        wall_time,
        ..row.clone()
    }
}

/// Top-1 accuracy of `scores` (n × c, row-major) against one-hot `labels`, over the rows whose
/// label is exactly one-hot; None when there is none.
pub fn accuracy(scores: &[f64], labels: &[f32], c: usize) -> Option<f64> {
    let (mut right, mut counted) = (0usize, 0usize);
    for (s, l) in scores.chunks(c).zip(labels.chunks(c)) {
        let ones: Vec<usize> = (0..c).filter(|&k| l[k] == 1.0).collect();
        if ones.len() != 1 || l.iter().any(|v| *v != 0.0 && *v != 1.0) {
            continue;
        }
        // The first maximum, as torch.argmax.
        let best = (0..c).fold(0, |b, k| if s[k] > s[b] { k } else { b });
        right += (best == ones[0]) as usize;
        counted += 1;
    }
    (counted > 0).then(|| right as f64 / counted as f64)
}
