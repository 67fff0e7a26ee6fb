//! `fx-tui bench`: training and evaluation throughput of the real pipeline (phantom rendering on
//! loader threads, augmentation, student + teacher forward, backward, AdamW) at full model sizes.
//! Runs one short epoch in a temporary run directory and reports img/s after a warm-up window.

use anyhow::Result;
use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::{Progress, Trainer};
use std::path::Path;
use std::time::Instant;

pub struct BenchArgs {
    pub arch: String,
    pub image_size: i64,
    pub batch_size: usize,
    pub steps: usize,
    pub device: String,
    /// cls, loc or seg.
    pub task: String,
}

pub fn run(a: &BenchArgs, registry: &Registry) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let n = a.batch_size * (a.steps + 1);
    // One Release epoch of the chosen branch (Lock-Release off, so the whole path trains).
    let plugin = match a.task.as_str() {
        "cls" => "phantom-nih",
        "loc" => "phantom-node",
        "seg" => "phantom-organs",
        other => anyhow::bail!("bench --task {other}: expected cls, loc or seg"),
    };
    let text = format!(
        r#"
name = "bench"
device = "{device}"
output_dir = "{out}"
[model]
arch = "{arch}"
image_size = {size}
[train]
batch_size = {batch}
cycles = 1
log_every = 1
[lock_release]
enabled = false
[eval]
models = ["teacher"]
batch_size = {batch}
[[datasets]]
plugin = "{plugin}"
tasks = ["{task}"]
options = {{ train = {n}, test = {batch} }}
"#,
        task = a.task,
        device = a.device,
        out = dir.path().display(),
        arch = a.arch,
        size = a.image_size,
        batch = a.batch_size,
    );
    let exp = Experiment::parse(Path::new("bench"), &text, &[])?;
    let device = fx::train::resolve_device(&exp.device)?;
    let mut trainer = Trainer::create(exp, "bench", registry, device)?;
    println!(
        "bench: {} {} step at {} px, batch {}, {} timed steps on {} ({:.2} M student parameters; the EMA teacher is a second copy)",
        a.arch,
        a.task,
        a.image_size,
        a.batch_size,
        a.steps,
        fx::swin::device_name(device),
        fx::swin::count_params(&trainer.student.vs, "") as f64 / 1e6
    );
    let mut rates = Vec::new();
    let mut eval_s = 0.0;
    let t = Instant::now();
    trainer.run_epoch(&mut |p| match p {
        Progress::Step(s) => {
            println!("  step {}/{}: {:.1} img/s", s.step, s.steps, s.img_per_s);
            // The first step pays for allocator and kernel warm-up.
            if s.step > 1 {
                rates.push(s.img_per_s);
            }
        }
        Progress::Epoch { eval_s: e, .. } => eval_s = e,
        _ => {}
    })?;
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    println!("train: {mean:.1} img/s (mean of {} steps after warm-up)", rates.len());
    println!("eval:  {:.1} img/s (teacher, {} images, incl. rendering)", a.batch_size as f64 / eval_s.max(1e-9), a.batch_size);
    println!("total: {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}
