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
    /// train.precision: auto, fp32, bf16 or fp16.
    pub precision: String,
    pub activation_checkpointing: bool,
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
precision = "{precision}"
activation_checkpointing = {checkpointing}
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
        precision = a.precision,
        checkpointing = a.activation_checkpointing,
    );
    let exp = Experiment::parse(Path::new("bench"), &text, &[])?;
    let device = fx::train::resolve_device(&exp.device)?;
    let mut trainer = Trainer::create(exp, "bench", registry, device)?;
    println!(
        "bench: {} {} step in {}{} at {} px, batch {}, {} timed steps on {} ({:.2} M student parameters; the EMA teacher is a second copy)",
        a.arch,
        a.task,
        trainer.precision.as_str(),
        if a.activation_checkpointing { " with activation checkpointing" } else { "" },
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
            println!("  step {}/{}: {:.3} img/s", s.step, s.steps, s.img_per_s);
            // The first step pays for allocator and kernel warm-up.
            if s.step > 1 {
                rates.push(s.img_per_s);
            }
        }
        Progress::Epoch { eval_s: e, .. } => eval_s = e,
        _ => {}
    })?;
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    println!("train: {mean:.3} img/s (mean of {} steps after warm-up)", rates.len());
    println!(
        "eval:  {:.1} img/s (teacher, {} images, incl. rendering)",
        a.batch_size as f64 / eval_s.max(1e-9),
        a.batch_size
    );
    println!("total: {:.1} s", t.elapsed().as_secs_f64());
    if let Some(kb) = peak_host_kb() {
        println!(
            "peak host memory: {:.2} GB (VmHWM of this process, loader and both models included)",
            kb as f64 / 1e6
        );
    }
    Ok(())
}

/// The process's peak resident memory in kB (Linux: VmHWM in /proc/self/status).
fn peak_host_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `fx-tui bench --task input --images DIR`: decode throughput of every image file in DIR (one
/// thread), then the loader's img/s at `image_size` on all cores, decoding the originals versus
/// reading the preprocessing cache — to put next to the training step's img/s (`--task cls`).
pub fn input(dir: &Path, image_size: usize) -> Result<()> {
    use fx_data::augment;
    use fx_data::cache::{read_image, CacheSpec};
    use fx_data::input::{decode, DecodeOptions};
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no image files (make bench writes them with scripts/make_bench_images.py)", dir.display());
    }
    let opts = DecodeOptions::default();
    println!("decode, 1 thread:");
    for f in &files {
        let start = Instant::now();
        let mut n = 0;
        let mut size = (0, 0);
        while n < 20 && (n < 2 || start.elapsed().as_secs_f64() < 2.0) {
            let g = decode(f, &opts).map_err(|e| anyhow::anyhow!(e))?;
            size = (g.width, g.height);
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(f)?.len();
        println!(
            "  {:36} {:>4}×{:<4} {:>7.1} MB {:>8.1} img/s",
            f.file_name().unwrap().to_string_lossy(),
            size.0,
            size.1,
            bytes as f64 / 1e6,
            rate
        );
    }
    let threads = fx::train::num_cpus();
    let items: Vec<&std::path::PathBuf> = files.iter().cycle().take(files.len() * 2 * threads.max(2)).collect();
    let cache_dir = tempfile::tempdir()?;
    let cache = CacheSpec { dir: cache_dir.path().to_path_buf(), longest_side: 2 * image_size };
    for f in &files {
        read_image(f, &opts, Some(&cache)).map_err(|e| anyhow::anyhow!(e))?;
    }
    let load = |cached: bool| -> f64 {
        let start = Instant::now();
        let _ = crate::data::par_map(&items, if cached { "loader, cached" } else { "loader, originals" }, false, |f| {
            let img = read_image(f, &opts, if cached { Some(&cache) } else { None }).unwrap();
            let s = fx_plugin::Sample {
                id: String::new(),
                width: img.width,
                height: img.height,
                image: img.pixels.clone(),
                image_dims: img.reduced(),
                cls: vec![],
                boxes: vec![],
                masks: vec![],
                warnings: vec![],
            };
            let s = fx_data::loader::to_pixel_frame(s);
            augment::warp(&s, &augment::resize(s.width, s.height, image_size), image_size).image.len()
        });
        items.len() as f64 / start.elapsed().as_secs_f64()
    };
    let (orig, cached) = (load(false), load(true));
    println!(
        "loader at {image_size} px, {threads} threads: {orig:.1} img/s decoding the originals, {cached:.1} img/s from the cache ({:.1}×); cache entries {:.2} MB for {} images",
        cached / orig,
        dir_bytes(cache_dir.path()) as f64 / 1e6,
        files.len()
    );
    Ok(())
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .map(|es| {
            es.flatten()
                .map(
                    |e| {
                        if e.path().is_dir() {
                            dir_bytes(&e.path())
                        } else {
                            e.metadata().map(|m| m.len()).unwrap_or(0)
                        }
                    },
                )
                .sum()
        })
        .unwrap_or(0)
}
