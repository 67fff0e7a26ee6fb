//! The trainer: runs the schedule epoch by epoch — freeze per the plan, train the student (task
//! loss + consistency with the teacher), EMA the teacher after the pass, evaluate every
//! (dataset, task), append metric rows, checkpoint atomically.
//!
//! The engine has no UI: it reports through a callback of [`Progress`] values.

use crate::config::{Experiment, ModelRole, Precision, SegLoss};
use crate::dino::{criterion, DecodeOptions, Targets};
use crate::dist::GlobalBatch;
use crate::eval::auc::mean_auc;
use crate::eval::dice::DiceAccumulator;
use crate::group::Group;
use crate::model::{ClsHeadSpec, Heads, Model};
use crate::optim::AdamW;
use crate::registry::Registry;
use crate::schedule::{self, EpochPlan, Mode};
use crate::store::{CheckpointState, Evaluated, MetricRow, RunInfo, RunStore, Trained};
use crate::swin::SwinConfig;
use crate::upernet::SegHeadSpec;
use anyhow::{anyhow, bail, Context, Result};
use fx_data::augment::Augment;
use fx_data::loader::{pass_order, Batch, Loader, LoaderConfig};
use fx_data::rng::mix;
use fx_plugin::{Dataset, SampleRecord, Split, Task};
use fx_shim::{Autocast, LowPrecision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

mod checkpoint;
mod evaluate;
mod hot_add;
mod setup;
mod steps;

pub use checkpoint::*;
pub use evaluate::{accuracy, Reuse};
pub use hot_add::*;
pub use setup::*;
pub use steps::*;

/// Requests from outside the training loop (a signal handler, the control socket, a test): stop
/// after the current step — the run is marked stopped and resumes at its last complete epoch — or
/// hold training after the current step until the pause is cleared. Clones share the flags.
#[derive(Clone, Debug, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
}

impl Control {
    /// Stop after the current step (a pause in effect ends). Async-signal-safe: two atomic stores.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.pause.store(false, Ordering::SeqCst);
    }

    pub fn set_pause(&self, on: bool) {
        self.pause.store(on, Ordering::SeqCst);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn pause_requested(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
}

/// What the trainer reports while it runs.
pub enum Progress<'a> {
    Started {
        run_dir: &'a Path,
        device: String,
        params: i64,
        first_epoch: usize,
        epochs: usize,
    },
    Step(StepReport<'a>),
    /// `reuse`: how many of the epoch's evaluations were carried over unchanged.
    Epoch {
        plan: &'a EpochPlan,
        rows: &'a [MetricRow],
        train_s: f64,
        eval_s: f64,
        reuse: Reuse,
        skipped: usize,
    },
    Warning(String),
    Finished {
        status: &'a str,
        wall_s: f64,
    },
}

pub struct StepReport<'a> {
    pub plan: &'a EpochPlan,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    /// Mean loss over the window since the last report.
    pub loss: f64,
    pub img_per_s: f64,
    pub eta_epoch_s: f64,
    pub eta_run_s: f64,
    /// Each rank's own img/s in a data-parallel job (img_per_s is their sum); empty alone.
    pub rank_img_per_s: Vec<f64>,
}

pub struct Trainer {
    pub exp: Experiment,
    pub run: RunStore,
    pub device: Device,
    pub datasets: Vec<OpenedDataset>,
    pub plan: Vec<EpochPlan>,
    pub student: Model,
    pub teacher: Option<Model>,
    /// `train.precision` resolved for the device: never `Auto`.
    pub precision: Precision,
    opt: AdamW,
    /// Index into `plan` of the next epoch to train.
    next: usize,
    wall_offset: f64,
    skipped_total: usize,
    /// (dataset, task) pairs whose plugin head failed: they train and evaluate no more in this
    /// process (a resume tries them again); the other tasks go on.
    pub disabled: std::collections::BTreeSet<(String, Task)>,
    /// RUN/plugins/ watched while epochs run (one process only: a job adds nothing yet).
    drop_watch: Option<hot_add::DropWatch>,
    /// Per dataset, its first n test samples decoded, as (n, batches): the largest list any
    /// evaluation has read, whose prefixes serve the smaller ones.
    eval_cache: BTreeMap<String, (usize, Arc<Vec<Batch>>)>,
    /// Each (dataset, task, model)'s last evaluation, carried over while its path is unchanged.
    eval_memo: BTreeMap<(String, Task, ModelRole), evaluate::EvalMemo>,
    started: String,
    /// When this process took the run over; wall times add the checkpointed offset.
    t0: Instant,
    /// Mean loss of the recent log windows (progress.json's sparkline).
    loss_history: Vec<f64>,
    /// The plugins the run was opened with, for datasets added while it trains.
    registry: Registry,
    /// (dataset, sample id) whose load warnings this process has recorded: once each, not every epoch.
    warned: std::collections::HashSet<(String, String)>,
    /// Held while this trainer lives: no second trainer on the same run (rank 0's in a job).
    _lock: Option<crate::store::RunLock>,
    /// The data-parallel job this trainer is a rank of; None alone.
    world: Option<crate::dist::World>,
    /// Stop and pause requests ([`Trainer::set_control`]).
    control: Control,
}

impl Trainer {
    pub fn next_epoch(&self) -> usize {
        self.next
    }

    fn info(&self, status: &str, error: Option<String>) -> RunInfo {
        RunInfo {
            status: status.into(),
            pid: std::process::id(),
            host: host(),
            started: self.started.clone(),
            heartbeat: crate::store::now(),
            device: crate::swin::device_name(self.device),
            epochs_done: self.next,
            epochs_total: self.plan.len(),
            fingerprint: fingerprint(),
            error,
            world_size: 0,
        }
    }

    fn wall(&self) -> f64 {
        self.wall_offset + self.t0.elapsed().as_secs_f64()
    }

    /// Runs the remaining epochs. Returns the final status: "finished" or "stopped".
    pub fn run(&mut self, on: &mut dyn FnMut(Progress)) -> Result<String> {
        self.run.write_json("run.json", &self.info("running", None))?;
        on(Progress::Started {
            run_dir: &self.run.dir,
            device: crate::swin::device_name(self.device),
            params: crate::swin::count_params(&self.student.vs, ""),
            first_epoch: self.next + 1,
            epochs: self.plan.len(),
        });
        // A panic inside libtorch or a plugin must still leave the run marked failed, with the reason.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<String> {
            while self.next < self.plan.len() {
                if self.control.stop_requested() || !self.run_epoch(on)? {
                    return Ok("stopped".into());
                }
            }
            Ok("finished".into())
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow!("the trainer panicked: {}", what.lines().next().unwrap_or("")))
        });
        let w = self.wall();
        match &result {
            Ok(status) => {
                self.run.write_json("run.json", &self.info(status, None))?;
                self.run.event(
                    "info",
                    status,
                    format!("run {status} after epoch {}", self.next),
                    serde_json::Value::Null,
                )?;
                on(Progress::Finished { status, wall_s: w });
            }
            Err(e) => {
                let msg = format!("{e:#}");
                // A full disk may refuse the first tries (the checkpoint that failed may still be
                // releasing space): retry, then say so where a person will see it.
                let mut recorded = false;
                for attempt in 0..3 {
                    if self.run.write_json("run.json", &self.info("failed", Some(msg.clone()))).is_ok() {
                        recorded = true;
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
                }
                if !recorded {
                    eprintln!(
                        "fx: could not record the failure in {} (disk full?); the trainer has stopped and released the run: \
                         free space, then fx-tui --resume {}",
                        self.run.path("run.json").display(),
                        self.run.dir.display()
                    );
                }
                let _ = self.run.event("error", "failed", msg, serde_json::Value::Null);
            }
        }
        result
    }

    /// Trains the next epoch of the plan, updates the teacher, evaluates, appends the metric rows
    /// and checkpoints. Returns false when a stop request interrupted the epoch (nothing of it is
    /// kept; a resume runs it again).
    pub fn run_epoch(&mut self, on: &mut dyn FnMut(Progress)) -> Result<bool> {
        // Hot-add needs every rank to add the same dataset at the same boundary: not yet for a
        // data-parallel job (a dropped dataset waits in plugins/ until a single-process resume).
        if self.world.is_none() {
            self.add_pending_datasets(on)?;
        }
        if self.next >= self.plan.len() {
            return Ok(true);
        }
        let plan = self.plan[self.next].clone();
        let t_train = Instant::now();
        let pair = (plan.dataset.clone(), plan.task);
        let (skipped, stopped) = if self.disabled.contains(&pair) {
            (0, false)
        } else {
            match self.train_epoch(&plan, on) {
                Ok(r) => r,
                // One rank cannot leave a job's collectives alone: in a job the error ends the run.
                Err(e) if self.world.is_none() && self.plugin_head(&pair.0, pair.1) => {
                    self.disable_head(&pair.0, pair.1, &e)?;
                    on(Progress::Warning(format!(
                        "{}: its {} head plugin failed and is disabled: {e:#}",
                        pair.0, pair.1
                    )));
                    (0, false)
                }
                Err(e) => return Err(e),
            }
        };
        if stopped {
            return Ok(false);
        }
        if let Some(w) = &self.world {
            // BatchNorm running statistics are rank 0's on every rank (DDP's broadcast_buffers),
            // so the teachers, evaluations and checkpoints agree.
            let buffers: Vec<Tensor> = self
                .student
                .named_variables()
                .into_iter()
                .filter(|(n, _)| crate::model::is_buffer(n))
                .map(|(_, v)| v)
                .collect();
            w.broadcast(&buffers)?;
        }
        if let Some(t) = self.teacher.as_mut() {
            t.ema_from(&self.student, self.exp.student_teacher.momentum)?;
        }
        let train_s = t_train.elapsed().as_secs_f64();
        let t_eval = Instant::now();
        // In a job every rank evaluates its share of the test batches and all compute the same
        // metrics from the gathered outputs (see `gathered`); rank 0 writes them.
        let (rows, reuse) = self.evaluate(&plan, self.wall())?;
        self.run.append_metrics(&rows)?;
        let eval_s = t_eval.elapsed().as_secs_f64();
        self.skipped_total += skipped;
        self.next += 1;
        self.checkpoint(self.wall())?;
        self.run.write_json("run.json", &self.info("running", None))?;
        if let Some(w) = &self.world {
            w.barrier()?;
        }
        on(Progress::Epoch { plan: &plan, rows: &rows, train_s, eval_s, reuse, skipped });
        Ok(true)
    }

    /// Whether a dataset's head for a task is a plugin library's.
    fn plugin_head(&self, dataset: &str, task: Task) -> bool {
        match task {
            Task::Cls => self.student.cls_heads.get(dataset).is_some_and(|h| h.spec.plugin.is_some()),
            Task::Seg => self.student.seg_heads.get(dataset).is_some_and(|h| h.spec.plugin.is_some()),
            Task::Loc => false,
        }
    }

    /// A plugin head failed (an error or a panic in its library): its (dataset, task) trains and
    /// evaluates no more in this run, with an error event the viewer shows.
    fn disable_head(&mut self, dataset: &str, task: Task, e: &anyhow::Error) -> Result<()> {
        self.disabled.insert((dataset.to_string(), task));
        self.run.event(
            "error",
            "head_disabled",
            format!("{dataset}: the {task} head plugin failed; {dataset} {task} is disabled for the rest of this run, the other tasks go on: {e:#}"),
            serde_json::json!({ "dataset": dataset, "task": task }),
        )
    }

    /// The parameters this epoch trains, with their groups; sets requires_grad on every variable.
    fn activate(&self, plan: &EpochPlan) -> Vec<(String, Group, Tensor)> {
        let mut active = Vec::new();
        for (name, var) in self.student.named_variables() {
            if crate::model::is_buffer(&name) {
                continue;
            }
            let on = match Group::of(&name) {
                Some((group, dataset)) => group.trains_in(&plan.trainable) && dataset.is_none_or(|d| d == plan.dataset),
                None => false,
            };
            let _ = var.set_requires_grad(on);
            if on {
                active.push((name.clone(), Group::of(&name).unwrap().0, var));
            }
        }
        active
    }

    /// Waits while paused (a stop request ends the wait); run.json and events say so.
    fn hold(&mut self) -> Result<()> {
        self.run.write_json("run.json", &self.info("paused", None))?;
        self.run.event("info", "paused", format!("paused in epoch {}", self.next + 1), serde_json::Value::Null)?;
        while self.control.pause_requested() && !self.control.stop_requested() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.run.write_json("run.json", &self.info("running", None))?;
        self.run.event("info", "resumed_training", "training continues", serde_json::Value::Null)?;
        Ok(())
    }

    /// [`Trainer::hold`] for a data-parallel job: all ranks wait together, agreeing five times a
    /// second (one tiny all-reduce) whether any rank is still paused or asked to stop. Returns
    /// whether to stop.
    fn hold_job(&mut self) -> Result<bool> {
        self.run.write_json("run.json", &self.info("paused", None))?;
        self.run.event("info", "paused", format!("paused in epoch {}", self.next + 1), serde_json::Value::Null)?;
        let world = self.world.as_ref().expect("a job");
        let stop = loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let flags = Tensor::from_slice(&[
                self.control.pause_requested() as u8 as f32,
                self.control.stop_requested() as u8 as f32,
            ]);
            world.sum(std::slice::from_ref(&flags))?;
            let (paused, stop) = (flags.double_value(&[0]) > 0.0, flags.double_value(&[1]) > 0.0);
            if stop || !paused {
                break stop;
            }
        };
        if !stop {
            self.run.write_json("run.json", &self.info("running", None))?;
            self.run.event("info", "resumed_training", "training continues", serde_json::Value::Null)?;
        }
        Ok(stop)
    }

    /// progress.json: what a viewer shows between epochs (atomic rewrite per log window).
    fn write_progress(&mut self, r: &StepReport) -> Result<()> {
        if r.loss.is_finite() {
            self.loss_history.push(r.loss);
            let excess = self.loss_history.len().saturating_sub(200);
            self.loss_history.drain(..excess);
        }
        let p = r.plan;
        let progress = fx_run::Progress {
            epoch: p.epoch,
            cycle: p.cycle,
            dataset: p.dataset.clone(),
            task: p.task.as_str().into(),
            mode: p.mode.as_str().into(),
            trainable: Some(
                Group::ALL.iter().filter(|g| g.trains_in(&p.trainable)).map(|g| g.as_str().into()).collect(),
            ),
            step: r.step,
            steps: r.steps,
            loss: Some(r.loss),
            img_per_s: Some(r.img_per_s),
            eta_epoch_s: Some(r.eta_epoch_s),
            eta_run_s: Some(r.eta_run_s),
            loss_history: self.loss_history.clone(),
            rank_img_per_s: r.rank_img_per_s.clone(),
            time: crate::store::now(),
        };
        self.run.write_json("progress.json", &progress)
    }

    /// The autocast dtype of this run's forward passes; `None` in fp32.
    pub fn low_precision(&self) -> Option<LowPrecision> {
        match self.precision {
            Precision::Bf16 => Some(LowPrecision::Bf16),
            Precision::Fp16 => Some(LowPrecision::Fp16),
            Precision::Fp32 | Precision::Auto => None,
        }
    }

    fn dataset(&self, name: &str) -> &OpenedDataset {
        self.datasets.iter().find(|d| d.name == name).expect("plan names a dataset of the experiment")
    }

    fn images_tensor(&self, batch: &Batch) -> Tensor {
        let s = batch.size as i64;
        self.upload(Tensor::from_slice(&batch.images).view([batch.len() as i64, 1, s, s]))
    }

    /// A host batch on the training device. On CUDA through pinned memory with a non-blocking
    /// copy, so the step never waits for the transfer (PyTorch's `pin_memory=True` +
    /// `.to(device, non_blocking=True)`); the caching host allocator keeps the pinned buffer alive
    /// until the copy is done. On the CPU the tensor is used as it is.
    fn upload(&self, t: Tensor) -> Tensor {
        if self.device.is_cuda() {
            t.pin_memory(self.device).to_device_(self.device, t.kind(), true, false)
        } else {
            t
        }
    }

    /// Images of the remaining epochs, for the run ETA.
    fn images_left(&self, from: usize) -> f64 {
        self.plan[from..].iter().map(|p| (self.dataset(&p.dataset).train.len() as f64 * p.fraction).round()).sum()
    }

    fn train_epoch(&mut self, plan: &EpochPlan, on: &mut dyn FnMut(Progress)) -> Result<(usize, bool)> {
        let active = self.activate(plan);
        self.opt.set_factor(&lr_map(&self.exp), plan.lr_factor);
        let epoch = plan.epoch as u64;
        tch::manual_seed(mix(&[self.exp.seed, epoch, 0]) as i64 & i64::MAX);
        let ds = self.dataset(&plan.dataset);
        let order = pass_order(ds.train.len(), plan.fraction, mix(&[self.exp.seed, epoch, 2]), true);
        let n_images = order.len();
        let cfg = LoaderConfig {
            size: self.exp.model.image_size as usize,
            batch_size: self.exp.train.batch_size,
            workers: if self.exp.train.workers == 0 { num_cpus() } else { self.exp.train.workers },
            prefetch: self.exp.train.prefetch,
            augment: self.exp.augment.of(plan.task).clone(),
            seed: mix(&[self.exp.seed, epoch, 1]),
            shard: self.world.as_ref().map_or((0, 1), |w| (w.rank, w.size)),
        };
        let world_size = cfg.shard.1;
        // Sizes of the global batches (all ranks together), for each rank's share of the loss.
        let global_len: Vec<usize> =
            (0..n_images.div_ceil(cfg.global_batch())).map(|b| cfg.global_len(b, n_images)).collect();
        let loader = Loader::new(ds.dataset.clone(), ds.train.clone(), order, cfg);
        let steps = loader.len();
        let st = self.exp.student_teacher.clone();
        let w = if st.enabled { st.consistency_weight } else { 0.0 };
        let run_left_after = self.images_left(self.next + 1);
        let mut loss_acc = Tensor::zeros([], (Kind::Float, self.device));
        let (mut window_steps, mut window_images, mut seen) = (0usize, 0usize, 0usize);
        let mut window_local = 0usize;
        let mut window_t = Instant::now();
        let mut skipped = 0usize;
        for (step, batch) in loader.enumerate() {
            for (id, what) in &batch.warnings {
                if self.warned.insert((plan.dataset.clone(), id.clone())) {
                    let msg = format!("{}: sample {id}: {what}", plan.dataset);
                    self.run.event(
                        "warn",
                        "sample_warning",
                        msg.clone(),
                        serde_json::json!({ "dataset": plan.dataset, "id": id }),
                    )?;
                    on(Progress::Warning(msg));
                }
            }
            for (id, why) in &batch.skipped {
                skipped += 1;
                if skipped <= 20 {
                    self.run.event(
                        "warn",
                        "sample_skipped",
                        format!("{}: sample {id} skipped: {why}", plan.dataset),
                        serde_json::json!({ "dataset": plan.dataset, "id": id }),
                    )?;
                    on(Progress::Warning(format!("{}: sample {id} skipped: {why}", plan.dataset)));
                }
            }
            // BatchNorm cannot train on a global batch of one image: at the pyramid pooling's 1×1
            // bin it sees one value per channel, whose unbiased variance (the running_var update)
            // is 0/0 and would poison every later evaluation. PyTorch refuses such a batch
            // ("Expected more than 1 value per channel when training"); fx leaves it out, as
            // drop_last would, and says so. Every rank decides alike (global sizes).
            let lone = plan.task == Task::Seg && Group::SegDecoder.trains_in(&plan.trainable) && global_len[step] == 1;
            if lone {
                let msg = format!(
                    "{}: the last batch holds one image, too few for the segmentation decoder's BatchNorm: left out \
                     of this epoch's training",
                    plan.dataset
                );
                self.run.event(
                    "warn",
                    "batch_left_out",
                    msg.clone(),
                    serde_json::json!({ "dataset": plan.dataset }),
                )?;
                on(Progress::Warning(msg));
            }
            // DINO in a job: the loss is normalised by the global batch's boxes (all-reduced, as
            // DINO's own criterion does), scaled to this rank's share so that the share weighting
            // below gives the global batch's loss: boxes_global × n_rank / n_global.
            let num_boxes = match (&self.world, plan.task) {
                (Some(world), Task::Loc) => {
                    let local: usize = batch.boxes.iter().map(|b| b.len()).sum();
                    let t = Tensor::from_slice(&[local as f64]);
                    world.sum(std::slice::from_ref(&t))?;
                    let global = t.double_value(&[0]).max(1.0);
                    Some(global * batch.len() as f64 / global_len[step].max(1) as f64)
                }
                _ => None,
            };
            // In a data-parallel job every rank takes part in every step, even with an empty slice.
            if !lone && (!batch.is_empty() || self.world.is_some()) {
                // A job's segmentation step runs collectives inside its forward and backward (the
                // pooled Dice, SyncBatchNorm): a rank with an empty slice takes part through a
                // stand-in batch of weight 0.
                let stand_in = batch.is_empty() && plan.task == Task::Seg;
                let loss = if batch.is_empty() && !stand_in {
                    None
                } else {
                    let loss = {
                        // The forward passes (student and teacher) under autocast; the outputs
                        // leave the model in fp32, so the loss is fp32. Backward follows the
                        // forward's dtypes.
                        let _autocast = Autocast::new(self.device, self.low_precision());
                        match plan.task {
                            Task::Cls => self.cls_step(plan, &batch, w)?,
                            Task::Loc => {
                                self.loc_step(plan, &batch, w, mix(&[self.exp.seed, epoch, step as u64, 3]), num_boxes)?
                            }
                            Task::Seg => self.seg_step(plan, (!stand_in).then_some(&batch), w)?,
                        }
                    };
                    // This rank's share of the global batch: the ranks' averaged gradient is then
                    // the global batch's (per-sample means; see dist::averaged_gradients).
                    Some(if world_size > 1 {
                        loss * (batch.len() * world_size) as f64 / global_len[step].max(1) as f64
                    } else {
                        loss
                    })
                };
                let scaled = match (self.opt.scaler.as_ref(), &loss) {
                    (Some(scaler), Some(loss)) => Some(scaler.scale_loss(loss)),
                    (_, loss) => loss.as_ref().map(|l| l.shallow_clone()),
                };
                let grads = match (&self.world, &scaled) {
                    (Some(world), scaled) => crate::dist::averaged_gradients(world, scaled.as_ref(), &active)?,
                    (None, Some(scaled)) => crate::optim::gradients(scaled, &active)?,
                    (None, None) => unreachable!("one process steps only non-empty batches"),
                };
                let loss = loss.filter(|_| !stand_in);
                let found_inf = match self.opt.scaler.as_mut() {
                    Some(scaler) => {
                        let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
                        Some(scaler.unscale(&defined)?.shallow_clone())
                    }
                    None => None,
                };
                if plan.task == Task::Loc {
                    criterion::clip_grad_norm(&grads, self.exp.model.dino.clip_max_norm);
                }
                self.opt.step(&active, &grads, found_inf.as_ref())?;
                if let Some(scaler) = self.opt.scaler.as_mut() {
                    scaler.update()?;
                }
                if let Some(loss) = loss {
                    loss_acc += loss.detach();
                }
                window_steps += 1;
                window_local += batch.len();
                window_images += global_len[step].min(batch.len() * world_size);
                seen += global_len[step].min(batch.len() * world_size);
            }
            let last = step + 1 == steps;
            let mut stop = self.world.is_none() && self.control.stop_requested();
            let mut pause_job = false;
            if (step + 1) % self.exp.train.log_every.max(1) == 0 || last {
                // The one host-device synchronisation of the window: reading the summed loss.
                // A job also agrees here whether any rank was asked to stop: all stop together.
                // (And each rank's throughput, for the viewer.)
                let dt = window_t.elapsed().as_secs_f64().max(1e-9);
                let mut img_per_s = window_images as f64 / dt;
                let mut rank_img_per_s = Vec::new();
                let summed = match &self.world {
                    Some(world) => {
                        // [loss, stop, pause, img/s of rank 0, 1, …]
                        let mut host = vec![0f32; 3 + world_size];
                        host[1] = self.control.stop_requested() as u8 as f32;
                        host[2] = self.control.pause_requested() as u8 as f32;
                        host[3 + world.rank] = (window_local as f64 / dt) as f32;
                        let all = Tensor::cat(
                            &[
                                loss_acc.view([1]).to_kind(Kind::Float),
                                Tensor::from_slice(&host[1..]).to_device(self.device),
                            ],
                            0,
                        );
                        world.sum(std::slice::from_ref(&all))?;
                        let all =
                            Vec::<f64>::try_from(all.to_kind(Kind::Double)).context("reading the job's totals")?;
                        stop = all[1] > 0.0;
                        pause_job = all[2] > 0.0;
                        rank_img_per_s = all[3..].to_vec();
                        img_per_s = rank_img_per_s.iter().sum();
                        all[0] / world_size as f64
                    }
                    None => loss_acc.double_value(&[]),
                };
                let loss = if window_steps > 0 { summed / window_steps as f64 } else { f64::NAN };
                let eta_epoch_s = (n_images.saturating_sub(seen)) as f64 / img_per_s.max(1e-9);
                let report = StepReport {
                    plan,
                    epochs: self.plan.len(),
                    step: step + 1,
                    steps,
                    loss,
                    img_per_s,
                    eta_epoch_s,
                    eta_run_s: eta_epoch_s + run_left_after / img_per_s.max(1e-9),
                    rank_img_per_s,
                };
                // A window without a step (its batch left out) has no loss to show.
                if window_steps > 0 {
                    self.write_progress(&report)?;
                    on(Progress::Step(report));
                }
                // Files dropped into RUN/plugins/ are queued as soon as they land (the viewer
                // shows them waiting); they join at the epoch boundary.
                if self.drop_watch.as_mut().is_some_and(|w| w.due()) {
                    self.queue_dropped_files(on)?;
                }
                let _ = loss_acc.zero_();
                window_steps = 0;
                window_images = 0;
                window_local = 0;
                window_t = Instant::now();
                self.run.write_json("run.json", &self.info("running", None))?;
            }
            if stop {
                return Ok((skipped, true));
            }
            if self.control.pause_requested() && self.world.is_none() {
                self.hold()?;
                window_t = Instant::now();
            }
            // A job pauses as a whole, at the log window where any rank (rank 0: the viewer's
            // control socket) was asked to.
            if pause_job {
                if self.hold_job()? {
                    return Ok((skipped, true));
                }
                window_t = Instant::now();
            }
        }
        if skipped > 20 {
            self.run.event(
                "warn",
                "samples_skipped",
                format!("{}: {skipped} samples skipped this epoch (first 20 listed)", plan.dataset),
                serde_json::json!({ "dataset": plan.dataset, "count": skipped }),
            )?;
        }
        if seen == 0 {
            // A dataset whose every sample fails (its plugin disabled after repeated crashes, its
            // files gone) trains nothing this epoch; the others go on. The reasons are the
            // sample_skipped events above.
            let msg = format!("{}: every sample of the epoch failed to load; the epoch trained nothing (see the sample_skipped events)", plan.dataset);
            self.run.event(
                "error",
                "epoch_without_samples",
                msg.clone(),
                serde_json::json!({ "dataset": plan.dataset, "epoch": plan.epoch }),
            )?;
            on(Progress::Warning(msg));
        }
        for (name, var) in self.student.named_variables() {
            if !crate::model::is_buffer(&name) {
                let _ = var.set_requires_grad(false);
            }
        }
        Ok((skipped, false))
    }

    /// The handle whose stop and pause requests this trainer obeys (a signal handler's, the
    /// control socket's); by default one of its own.
    pub fn set_control(&mut self, control: Control) {
        self.control = control;
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run.dir.clone()
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A sample id or label as one file-name component: path separators and other characters that
/// are not portable become '_', so an id can never leave its folder.
pub fn file_part(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    out.trim_start_matches('.').to_string()
}
