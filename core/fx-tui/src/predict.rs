//! `fx-tui predict`: a trained model on new radiographs (DICOM, PNG, JPEG, MetaImage, or folders
//! of them), with the preprocessing of training. Writes per dataset head: classification scores
//! (CSV), detections (COCO results JSON + CSV, original pixels), masks (PNG at the original size),
//! and one overlay PNG per image. `fx-tui export-model`: a run's model as one portable file.

use crate::data::par_map;
use anyhow::{bail, Context, Result};
use fx::config::ModelRole;
use fx::predict::{Loaded, PredictOptions};
use fx::train::{csv_field, file_part};
use fx_data::augment;
use fx_data::dataset::IMAGE_EXTENSIONS;
use fx_data::input::{decode, DecodeOptions};
use fx_export::overlay::{overlay_png, OverlayBox, OverlayMask};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct PredictArgs<'a> {
    pub model: &'a Path,
    pub inputs: &'a [PathBuf],
    pub out: &'a Path,
    pub datasets: &'a [String],
    pub tasks: &'a str,
    pub threshold: f32,
    pub role: ModelRole,
    pub device: tch::Device,
    pub batch_size: usize,
    pub overlays: bool,
}

/// Every image file named or found (recursively) under the named folders, sorted, with the name
/// its outputs take: the file's stem, or its path below the named folder (without extension).
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(d).with_context(|| format!("{}: cannot list", d.display()))?.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let stem = |p: &Path| file_part(&p.with_extension("").to_string_lossy());
    for i in inputs {
        if i.is_dir() {
            let mut found = Vec::new();
            walk(i, &mut found)?;
            found.sort();
            out.extend(found.into_iter().map(|p| {
                let name = stem(p.strip_prefix(i).unwrap_or(&p));
                (p, name)
            }));
        } else if i.exists() {
            out.push((i.clone(), stem(Path::new(i.file_name().unwrap_or_default()))));
        } else {
            bail!("{}: no such file or folder", i.display());
        }
    }
    Ok(out)
}

struct Decoded {
    width: usize,
    height: usize,
    gray: Vec<f32>,
    resized: Vec<f32>,
}

pub fn run(a: &PredictArgs) -> Result<()> {
    let loaded = fx::predict::load(a.model, a.role, a.device)?;
    let card = &loaded.card;
    for d in a.datasets {
        if !card.datasets.contains_key(d) {
            bail!(
                "{}: the model has no head for dataset `{d}`; it has: {}",
                a.model.display(),
                card.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let tasks: Vec<&str> = a.tasks.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if let Some(t) = tasks.iter().find(|t| !["cls", "loc", "seg"].contains(t)) {
        bail!("--tasks: `{t}` is not cls, loc or seg");
    }
    let opts = PredictOptions {
        datasets: a.datasets.to_vec(),
        cls: tasks.contains(&"cls"),
        loc: tasks.contains(&"loc"),
        seg: tasks.contains(&"seg"),
        threshold: a.threshold,
    };
    let files = expand(a.inputs)?;
    if files.is_empty() {
        bail!("no image file among the inputs (looked for {})", IMAGE_EXTENSIONS.join(", "));
    }
    std::fs::create_dir_all(a.out).with_context(|| format!("{}: cannot create", a.out.display()))?;
    let s = card.image_size as usize;
    // Legend: one colour per (dataset, label) drawn.
    let mut legend: Vec<String> = Vec::new();
    let mut legend_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (d, h) in &card.datasets {
        if !opts.datasets.is_empty() && !opts.datasets.contains(d) {
            continue;
        }
        for l in h.loc.iter().filter(|_| opts.loc).chain(h.seg.iter().filter(|_| opts.seg)) {
            legend_of.entry((d.clone(), l.clone())).or_insert_with(|| {
                legend.push(format!("{d}: {l}"));
                legend.len() - 1
            });
        }
    }
    let mut writer = Writer::new(a.out, &loaded, opts.loc)?;
    let mut unreadable: Vec<String> = Vec::new();
    let start = Instant::now();
    let mut done = 0usize;
    for chunk in files.chunks(a.batch_size.max(1)) {
        let decoded = par_map(chunk, "decoding", false, |(f, _)| -> Result<Decoded, String> {
            let g = decode(f, &DecodeOptions::default())?;
            let (gray, resized) = augment::resize_gray(g.pixels, g.width, g.height, s);
            Ok(Decoded { width: g.width, height: g.height, gray, resized })
        });
        let mut ok: Vec<(&PathBuf, &String, Decoded)> = Vec::new();
        for ((f, name), d) in chunk.iter().zip(decoded) {
            match d {
                Ok(d) => ok.push((f, name, d)),
                Err(e) => unreadable.push(e),
            }
        }
        if ok.is_empty() {
            continue;
        }
        let gray: Vec<f32> = ok.iter().flat_map(|(_, _, d)| d.resized.iter().copied()).collect();
        let originals: Vec<(usize, usize)> = ok.iter().map(|(_, _, d)| (d.width, d.height)).collect();
        let preds = fx::predict::infer(&loaded, &gray, &originals, &opts)?;
        for (i, (file, stem, d)) in ok.iter().enumerate() {
            let stem = stem.as_str();
            let image_id = writer.image(file, d.width, d.height);
            let (mut boxes, mut masks) = (Vec::new(), Vec::new());
            for (dataset, per) in &preds {
                let p = &per[i];
                let heads = &card.datasets[dataset];
                writer.prediction(dataset, file, image_id, p, heads, stem, d.width, d.height)?;
                for &(label, score, rect) in &p.boxes {
                    boxes.push(OverlayBox {
                        legend: legend_of[&(dataset.clone(), heads.loc[label].clone())],
                        score,
                        rect,
                    });
                }
                for (k, m) in p.masks.iter().enumerate() {
                    masks.push(OverlayMask { legend: legend_of[&(dataset.clone(), heads.seg[k].clone())], mask: m });
                }
            }
            if a.overlays {
                std::fs::create_dir_all(a.out.join("overlays"))?;
                overlay_png(
                    &a.out.join("overlays").join(format!("{stem}.png")),
                    &d.gray,
                    d.width,
                    d.height,
                    &boxes,
                    &masks,
                    &legend,
                )?;
            }
        }
        done += ok.len();
        eprint!("\rpredict {done}/{} images, {:.1} img/s", files.len(), done as f64 / start.elapsed().as_secs_f64());
    }
    eprintln!();
    writer.finish()?;
    if !unreadable.is_empty() {
        std::fs::write(a.out.join("unreadable.txt"), unreadable.join("\n") + "\n")?;
        eprintln!(
            "{} unreadable input(s) skipped (listed in {}):",
            unreadable.len(),
            a.out.join("unreadable.txt").display()
        );
        for u in unreadable.iter().take(10) {
            eprintln!("  {u}");
        }
    }
    println!(
        "predicted {done} of {} images with {} in {:.1} s ({:.1} img/s) → {}",
        files.len(),
        fx::predict::describe(card),
        start.elapsed().as_secs_f64(),
        done as f64 / start.elapsed().as_secs_f64().max(1e-9),
        a.out.display()
    );
    Ok(())
}

/// Accumulates the CSV and JSON outputs; masks and overlays are written per image.
struct Writer<'a> {
    out: &'a Path,
    loaded: &'a Loaded,
    /// Detections were asked for (their files are written even when no box passes the threshold).
    loc: bool,
    images: Vec<serde_json::Value>,
    cls: BTreeMap<String, String>,
    dets: BTreeMap<String, Vec<serde_json::Value>>,
    det_csv: BTreeMap<String, String>,
}

impl<'a> Writer<'a> {
    fn new(out: &'a Path, loaded: &'a Loaded, loc: bool) -> Result<Writer<'a>> {
        Ok(Writer {
            out,
            loaded,
            loc,
            images: Vec::new(),
            cls: BTreeMap::new(),
            dets: BTreeMap::new(),
            det_csv: BTreeMap::new(),
        })
    }

    fn image(&mut self, file: &Path, w: usize, h: usize) -> i64 {
        let id = self.images.len() as i64 + 1;
        self.images.push(json!({ "id": id, "file_name": file.display().to_string(), "width": w, "height": h }));
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn prediction(
        &mut self,
        dataset: &str,
        file: &Path,
        image_id: i64,
        p: &fx::predict::Prediction,
        heads: &fx::predict::HeadLabels,
        stem: &str,
        w: usize,
        h: usize,
    ) -> Result<()> {
        let name = csv_field(&file.display().to_string());
        if !p.cls.is_empty() {
            let csv = self.cls.entry(dataset.to_string()).or_insert_with(|| {
                let mut head = String::from("file");
                for l in &heads.cls {
                    head.push(',');
                    head.push_str(&csv_field(l));
                }
                head + "\n"
            });
            csv.push_str(&name);
            for v in &p.cls {
                csv.push_str(&format!(",{v}"));
            }
            csv.push('\n');
        }
        if self.loc && !heads.loc.is_empty() {
            let list = self.dets.entry(dataset.to_string()).or_default();
            let csv =
                self.det_csv.entry(dataset.to_string()).or_insert_with(|| "file,label,score,x,y,w,h\n".to_string());
            for &(label, score, [x0, y0, x1, y1]) in &p.boxes {
                list.push(json!({ "image_id": image_id, "category_id": label + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score }));
                csv.push_str(&format!(
                    "{name},{},{score},{x0},{y0},{},{}\n",
                    csv_field(&heads.loc[label]),
                    x1 - x0,
                    y1 - y0
                ));
            }
        }
        for (k, m) in p.masks.iter().enumerate() {
            let dir = self.out.join("seg").join(file_part(dataset));
            std::fs::create_dir_all(&dir)?;
            let f = dir.join(format!("{stem}-{}.png", file_part(&heads.seg[k])));
            fx_data::masks::write_mask_png(&f, m, w, h).map_err(|e| anyhow::anyhow!(e))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let write = |rel: String, text: String| -> Result<()> {
            let p = self.out.join(rel);
            std::fs::create_dir_all(p.parent().unwrap())?;
            std::fs::write(&p, text).with_context(|| format!("{}: cannot write", p.display()))
        };
        for (d, csv) in &self.cls {
            write(format!("cls/{}.csv", file_part(d)), csv.clone())?;
        }
        for (d, list) in &self.dets {
            let heads = &self.loaded.card.datasets[d];
            let cats: Vec<serde_json::Value> =
                heads.loc.iter().enumerate().map(|(i, l)| json!({ "id": i + 1, "name": l })).collect();
            write(format!("loc/{}-detections.json", file_part(d)), serde_json::to_string(list)?)?;
            write(format!("loc/{}-categories.json", file_part(d)), serde_json::to_string(&cats)?)?;
            write(format!("loc/{}.csv", file_part(d)), self.det_csv[d].clone())?;
        }
        if !self.dets.is_empty() {
            write("loc/images.json".into(), serde_json::to_string(&self.images)?)?;
        }
        Ok(())
    }
}

/// `fx-tui export-model`.
pub fn export_model(run: &Path, role: ModelRole, out: &Path) -> Result<()> {
    let card = fx::predict::export(run, role, out)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} → {} ({:.1} MB): {} dataset head(s): {}",
        fx::predict::describe(&card),
        out.display(),
        size as f64 / 1e6,
        card.datasets.len(),
        card.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("backbone tensors under timm's names; branches and heads under `fx.`; the model card in the header's metadata (`fx`)");
    Ok(())
}

pub fn model_role(s: &str) -> Result<fx::config::ModelRole> {
    match s {
        "teacher" => Ok(fx::config::ModelRole::Teacher),
        "student" => Ok(fx::config::ModelRole::Student),
        other => anyhow::bail!("--model must be teacher or student, got `{other}`"),
    }
}
