//! `fx-tui data`: what fx reads from each dataset of an experiment — per split the images, the
//! labels (positive / negative / unknown), boxes, mask coverage and image sizes, with the
//! problems a user must see before spending a week of GPU time (unreadable or missing images,
//! images on disk that no label file names, duplicate ids). `--format jsonl` gives one line per
//! sample in ORIGINAL pixels; `--check` decodes every image and exits 1 if any is unreadable.
//! `fx-tui prepare` (below) fills the preprocessing cache.

use anyhow::{bail, Result};
use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::{open_datasets, OpenedDataset};
use fx_data::dataset::{data_line, public_id, IMAGE_EXTENSIONS};
use fx_plugin::{Sample, SampleRecord, SampleSource, Split};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    Val,
    Test,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    Text,
    Jsonl,
}

const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// One sample of one split of one dataset.
struct Item<'a> {
    dataset: &'a OpenedDataset,
    split: Split,
    record: SampleRecord,
}

/// Every (dataset, split, record) of the experiment, in order.
fn items<'a>(datasets: &'a [OpenedDataset], split: SplitArg) -> Result<Vec<Item<'a>>> {
    let mut out = Vec::new();
    for d in datasets {
        for s in SPLITS {
            if split != SplitArg::All && split_arg(s) != split {
                continue;
            }
            let records = match s {
                Split::Train => d.train.as_ref().clone(),
                Split::Test => d.test.as_ref().clone(),
                Split::Val => {
                    d.dataset.index(Split::Val).map_err(|e| anyhow::anyhow!("dataset {}: val split: {e}", d.name))?
                }
            };
            out.extend(records.into_iter().map(|record| Item { dataset: d, split: s, record }));
        }
    }
    Ok(out)
}

fn split_arg(s: Split) -> SplitArg {
    match s {
        Split::Train => SplitArg::Train,
        Split::Val => SplitArg::Val,
        Split::Test => SplitArg::Test,
    }
}

/// Runs `f` over `items` on every core, in order, with a progress line (count, rate, ETA) on
/// stderr when it is a terminal — or always, when `always` — at most a few times a second.
pub fn par_map<T: Send, I: Sync>(items: &[I], label: &str, always: bool, f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let n = items.len();
    let threads = fx::train::num_cpus().clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let show = always || std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut results: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        out.push((i, f(&items[i])));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect();
        if show && n > 0 {
            // A terminal gets a bar redrawn in place; a log gets a line every 10 s.
            let tty = std::io::stderr().is_terminal();
            let every = std::time::Duration::from_millis(if tty { 250 } else { 10_000 });
            let (mut last, mut shown) = (0, Instant::now());
            while workers.iter().any(|w| !w.is_finished()) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let d = done.load(Ordering::Relaxed);
                if d != last && shown.elapsed() >= every {
                    (last, shown) = (d, Instant::now());
                    progress(label, d, n, start, false, tty);
                }
            }
            progress(label, n, n, start, true, tty);
        }
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, t)| t).collect()
}

fn progress(label: &str, done: usize, n: usize, start: Instant, last: bool, tty: bool) {
    let secs = start.elapsed().as_secs_f64();
    let rate = done as f64 / secs.max(1e-9);
    let eta = if done > 0 { (n - done) as f64 / rate } else { 0.0 };
    let width = 30;
    let filled = (done * width).checked_div(n).unwrap_or(width);
    let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "{}{label} [{bar}] {done}/{n} {rate:.0} img/s, {} {}",
        if tty { "\r" } else { "" },
        if last { "took" } else { "ETA" },
        hms(if last { secs } else { eta })
    );
    if last || !tty {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Per (dataset, split): what the text summary counts.
#[derive(Default)]
struct Tally {
    images: usize,
    unreadable: usize,
    min_size: Option<(usize, usize)>,
    max_size: Option<(usize, usize)>,
    /// label → (positive, negative, unknown)
    cls: BTreeMap<usize, (usize, usize, usize)>,
    boxes: BTreeMap<usize, usize>,
    /// label → (images with foreground, summed foreground fraction)
    masks: BTreeMap<usize, (usize, f64)>,
}

impl Tally {
    fn add(&mut self, s: &Sample) {
        self.images += 1;
        let (w, h) = (s.width, s.height);
        self.min_size = Some(self.min_size.map_or((w, h), |(a, b)| (a.min(w), b.min(h))));
        self.max_size = Some(self.max_size.map_or((w, h), |(a, b)| (a.max(w), b.max(h))));
        for (l, v) in s.cls.iter().enumerate() {
            let e = self.cls.entry(l).or_default();
            if v.is_nan() {
                e.2 += 1;
            } else if *v >= 0.5 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        for b in &s.boxes {
            *self.boxes.entry(b.label).or_default() += 1;
        }
        for (l, m) in s.masks.iter().enumerate() {
            let fg = m.iter().filter(|v| **v != 0).count();
            let e = self.masks.entry(l).or_default();
            if fg > 0 {
                e.0 += 1;
            }
            e.1 += fg as f64 / m.len().max(1) as f64;
        }
    }
}

pub struct DataArgs<'a> {
    pub experiment: &'a Path,
    pub set: &'a [String],
    pub datasets: &'a [String],
    pub split: SplitArg,
    pub format: DataFormat,
    pub check: bool,
    /// Write each sample's decoded image (8-bit PNG, as fx sees it) under this folder.
    pub save_images: Option<&'a Path>,
    /// At most this many samples per dataset and split.
    pub limit: Option<usize>,
}

/// Returns the process's exit status: 1 when `--check` found an unreadable image.
pub fn run(args: &DataArgs, registry: &Registry) -> Result<i32> {
    let mut exp = Experiment::load(args.experiment, args.set)?;
    // --check decodes the files themselves, and a look at a dataset writes nothing.
    exp.data.cache = false;
    let file = args.experiment.display().to_string();
    let mut datasets = open_datasets(&exp, &file, registry)?;
    if !args.datasets.is_empty() {
        let known: Vec<String> = datasets.iter().map(|d| d.name.clone()).collect();
        if let Some(x) = args.datasets.iter().find(|x| !known.contains(x)) {
            bail!("{file}: no dataset named `{x}`; the experiment has: {}", known.join(", "));
        }
        datasets.retain(|d| args.datasets.contains(&d.name));
    }
    let roots: HashMap<String, Option<PathBuf>> =
        exp.datasets.iter().map(|d| (d.name().to_string(), d.root.clone())).collect();
    let mut items = items(&datasets, args.split)?;
    if let Some(n) = args.limit {
        let mut seen: HashMap<(String, Split), usize> = HashMap::new();
        items.retain(|it| {
            let c = seen.entry((it.dataset.name.clone(), it.split)).or_default();
            *c += 1;
            *c <= n
        });
    }
    if let Some(dir) = args.save_images {
        let size = exp.model.image_size.max(1) as usize;
        let saved = par_map(&items, "saving images", false, |it| -> Result<PathBuf, String> {
            let s = it.dataset.dataset.load(&it.record, size).map_err(|e| e.to_string())?;
            let (w, h) = s.image_dims.unwrap_or((s.width, s.height));
            let root = roots.get(&it.dataset.name).cloned().flatten();
            let id = public_id(root.as_deref(), &it.record);
            let p = dir.join(fx::train::file_part(&it.dataset.name)).join(format!("{}.png", fx::train::file_part(&id)));
            std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string())?;
            let px: Vec<u8> = s.image.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
            image::GrayImage::from_raw(w as u32, h as u32, px)
                .ok_or("image size")?
                .save(&p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        });
        let ok = saved.iter().filter(|r| r.is_ok()).count();
        eprintln!("saved {ok} decoded image(s) under {}", dir.display());
        for e in saved.iter().filter_map(|r| r.as_ref().err()).take(10) {
            eprintln!("  not saved: {e}");
        }
    }
    let size = exp.model.image_size.max(1) as usize;
    let labels = par_map(&items, "reading labels", false, |it| {
        it.dataset.dataset.labels(&it.record, size).map_err(|e| e.to_string())
    });
    let decoded: Option<Vec<Result<(), String>>> = args.check.then(|| {
        par_map(&items, "decoding images", false, |it| {
            fx_data::loader::prepare(
                it.dataset.dataset.as_ref(),
                &it.record,
                size,
                &fx_data::augment::Augment::none(),
                0,
            )
            .map(|_| ())
        })
    });
    let mut out = std::io::stdout().lock();
    let mut unreadable = Vec::new();
    if let Some(dec) = &decoded {
        for (it, r) in items.iter().zip(dec) {
            if let Err(e) = r {
                unreadable.push(format!("{} {} {}: {e}", it.dataset.name, it.split.as_str(), it.record.id));
            }
        }
    }
    if args.format == DataFormat::Jsonl {
        for (it, l) in items.iter().zip(&labels) {
            match l {
                Ok(s) => {
                    let root = roots.get(&it.dataset.name).cloned().flatten();
                    let id = public_id(root.as_deref(), &it.record);
                    let split = (!it.dataset.dataset.desc().drawn_split).then_some(it.split);
                    writeln!(out, "{}", data_line(&it.dataset.name, it.dataset.dataset.desc(), split, &id, s))?;
                }
                Err(e) => eprintln!("fx data: skipped {} {}: {e}", it.dataset.name, it.record.id),
            }
        }
    } else {
        print_text(&mut out, &exp, &datasets, &roots, &items, &labels)?;
    }
    out.flush()?;
    drop(out);
    if let Some(dec) = &decoded {
        let n = dec.len();
        if unreadable.is_empty() {
            eprintln!("check: all {n} images decode");
        } else {
            eprintln!("check: {} of {n} images are unreadable:", unreadable.len());
            for u in &unreadable {
                eprintln!("  {u}");
            }
            return Ok(1);
        }
    }
    Ok(0)
}

fn print_text(
    out: &mut impl Write,
    exp: &Experiment,
    datasets: &[OpenedDataset],
    roots: &HashMap<String, Option<PathBuf>>,
    items: &[Item],
    labels: &[Result<Sample, String>],
) -> Result<()> {
    for d in datasets {
        let desc = d.dataset.desc();
        let cfg = exp.datasets.iter().find(|c| c.name() == d.name);
        let root = roots.get(&d.name).cloned().flatten();
        writeln!(
            out,
            "dataset {} (plugin {}{}) — tasks {}; split {}",
            d.name,
            cfg.map(|c| c.plugin.as_str()).unwrap_or("?"),
            root.as_ref().map(|r| format!(", root {}", r.display())).unwrap_or_default(),
            d.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
            if desc.drawn_split { "drawn by fx (seeded; the dataset has none)" } else { "as published" }
        )?;
        let mut tallies: BTreeMap<usize, Tally> = BTreeMap::new();
        let mut problems: Vec<String> = Vec::new();
        let mut missing = 0;
        let mut ids: HashMap<String, Vec<&str>> = HashMap::new();
        let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
        for (it, l) in items.iter().zip(labels).filter(|(it, _)| std::ptr::eq(it.dataset, d)) {
            let k = SPLITS.iter().position(|s| *s == it.split).unwrap();
            let t = tallies.entry(k).or_default();
            ids.entry(public_id(root.as_deref(), &it.record)).or_default().push(it.split.as_str());
            if let SampleSource::File(p) = &it.record.source {
                referenced.insert(p.clone());
                if !p.exists() {
                    missing += 1;
                    t.unreadable += 1;
                    continue;
                }
            }
            match l {
                Ok(s) => t.add(s),
                Err(e) => {
                    t.unreadable += 1;
                    problems.push(e.clone());
                }
            }
        }
        writeln!(out, "  {:<6} {:>8} {:>10}  image size (w×h)", "split", "images", "unreadable")?;
        for (k, t) in &tallies {
            let size = match (t.min_size, t.max_size) {
                (Some(a), Some(b)) if a == b => format!("{}×{}", a.0, a.1),
                (Some(a), Some(b)) => format!("{}×{} … {}×{}", a.0, a.1, b.0, b.1),
                _ => "-".into(),
            };
            writeln!(out, "  {:<6} {:>8} {:>10}  {size}", SPLITS[*k].as_str(), t.images + t.unreadable, t.unreadable)?;
        }
        let width = desc
            .cls_labels
            .iter()
            .chain(&desc.loc_labels)
            .chain(&desc.seg_labels)
            .map(|l| l.chars().count() + 2)
            .max()
            .unwrap_or(0)
            .max(28);
        let header = |out: &mut dyn Write, what: &str| -> std::io::Result<()> {
            write!(out, "  {what:<w$}", w = width + 2)?;
            for k in tallies.keys() {
                write!(out, " {:>18}", SPLITS[*k].as_str())?;
            }
            writeln!(out)
        };
        if !desc.cls_labels.is_empty() {
            header(out, "cls: positive/negative/unknown")?;
            for (l, name) in desc.cls_labels.iter().enumerate() {
                write!(out, "    {name:<width$}")?;
                for t in tallies.values() {
                    let (p, n, u) = t.cls.get(&l).copied().unwrap_or_default();
                    write!(out, " {:>18}", format!("{p}/{n}/{u}"))?;
                }
                writeln!(out)?;
            }
        }
        if !desc.loc_labels.is_empty() {
            header(out, "loc: boxes")?;
            for (l, name) in desc.loc_labels.iter().enumerate() {
                write!(out, "    {name:<width$}")?;
                for t in tallies.values() {
                    write!(out, " {:>18}", t.boxes.get(&l).copied().unwrap_or(0))?;
                }
                writeln!(out)?;
            }
        }
        if !desc.seg_labels.is_empty() {
            header(out, "seg: images with mask, mean %")?;
            for (l, name) in desc.seg_labels.iter().enumerate() {
                write!(out, "    {name:<width$}")?;
                for t in tallies.values() {
                    let (n, cover) = t.masks.get(&l).copied().unwrap_or_default();
                    write!(out, " {:>18}", format!("{n}, {:.1}%", 100.0 * cover / t.images.max(1) as f64))?;
                }
                writeln!(out)?;
            }
        }
        // Problems a user must see before training.
        let mut warnings: Vec<String> = d.dataset.warnings();
        if missing > 0 {
            warnings.push(format!("{missing} image(s) named by the label files are missing on disk"));
        }
        let dup: Vec<String> =
            ids.iter().filter(|(_, v)| v.len() > 1).map(|(id, v)| format!("{id} ({})", v.join(", "))).collect();
        if !dup.is_empty() {
            warnings.push(format!(
                "{} duplicate id(s), e.g. {}",
                dup.len(),
                dup.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        let unlisted = unlisted_images(&referenced);
        if !unlisted.is_empty() {
            warnings.push(format!(
                "{} image file(s) beside its images are not used by this dataset (in no label file, or filtered out by its options), e.g. {}",
                unlisted.len(),
                unlisted.iter().take(3).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        for p in problems.iter().take(10) {
            warnings.push(p.clone());
        }
        if problems.len() > 10 {
            warnings.push(format!("… and {} more unreadable sample(s)", problems.len() - 10));
        }
        if warnings.is_empty() {
            writeln!(out, "  no warnings")?;
        } else {
            writeln!(out, "  warnings:")?;
            for w in &warnings {
                writeln!(out, "    {w}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Image files in the folders the dataset's images live in that none of its records names.
fn unlisted_images(referenced: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let dirs: BTreeSet<&Path> = referenced.iter().filter_map(|p| p.parent()).collect();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let is_image = p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()));
            if is_image && p.is_file() && !referenced.contains(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `fx-tui prepare`: decodes every image of the experiment's datasets into the preprocessing
/// cache on all cores, so the first epoch already reads from it.
pub fn prepare(path: &Path, set: &[String], registry: &Registry) -> Result<()> {
    let exp = Experiment::load(path, set)?;
    let Some(cache) = exp.cache_spec() else {
        bail!("{}: data.cache = false: there is no cache to fill", path.display());
    };
    let datasets = open_datasets(&exp, &path.display().to_string(), registry)?;
    let items: Vec<Item> = items(&datasets, SplitArg::All)?
        .into_iter()
        .filter(|it| matches!(it.record.source, SampleSource::File(_)))
        .collect();
    if items.is_empty() {
        println!(
            "no file-based dataset in {}: nothing to cache (generated datasets render at the model's size)",
            path.display()
        );
        return Ok(());
    }
    let size = exp.model.image_size.max(1) as usize;
    let start = Instant::now();
    let results = par_map(&items, "prepare", true, |it| {
        it.dataset.dataset.load(&it.record, size).map(|_| ()).map_err(|e| e.to_string())
    });
    let failed: Vec<(&Item, &String)> =
        items.iter().zip(&results).filter_map(|(it, r)| r.as_ref().err().map(|e| (it, e))).collect();
    let bytes = dir_size(&cache.dir);
    println!(
        "prepared {} of {} images in {:.1} s into {} (longest side {} px, {:.1} MB in the cache)",
        items.len() - failed.len(),
        items.len(),
        start.elapsed().as_secs_f64(),
        cache.dir.display(),
        cache.longest_side,
        bytes as f64 / 1e6
    );
    if !failed.is_empty() {
        println!("{} unreadable (training skips and counts them):", failed.len());
        for (it, e) in failed.iter().take(20) {
            println!("  {} {}: {e}", it.dataset.name, it.record.id);
        }
    }
    Ok(())
}

fn dir_size(d: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(d) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
