//! `fx-tui export` / `fx-tui report` and the control socket's "export": charts and tables from run
//! directories (the fx-export library).

use anyhow::Result;

/// A line on stdout that never panics (see fx_export::cli::say).
macro_rules! say {
    ($($t:tt)*) => {{
        fx_export::cli::say(format!($($t)*));
    }};
}
pub(crate) use say;
use std::path::{Path, PathBuf};

/// Writes the run's charts (teacher and student) and tables into `out`; returns how many files.
pub fn export_run(run_dir: &Path, out: &Path) -> Result<usize> {
    let summary = fx_export::export(run_dir, out, &fx_export::ExportOptions::default().with_student())?;
    Ok(summary.files.len())
}

/// `fx-tui export`: charts and tables (as fx-light draws them), then the gallery of overlays,
/// which runs the model.
pub fn print_export(args: &fx_export::cli::ExportArgs, registry: &fx::registry::Registry) -> Result<()> {
    args.run()?;
    match gallery(&args.run, &args.out.join("gallery"), registry, GALLERY_IMAGES) {
        Ok(files) => {
            for f in files {
                say!("  {}", f.display());
            }
        }
        Err(e) => say!("  warning: no gallery of overlays: {e:#}"),
    }
    Ok(())
}

/// Test images per dataset in the gallery.
const GALLERY_IMAGES: usize = 6;

/// A PNG grid per dataset: the run's model (teacher, or the student without one) on the first
/// `n` test images, each tile the image with the predicted boxes and masks of that dataset's heads.
pub fn gallery(run_dir: &Path, out: &Path, registry: &fx::registry::Registry, n: usize) -> Result<Vec<PathBuf>> {
    use fx::predict::PredictOptions;
    use fx_export::overlay::{colour, overlay_png, OverlayBox, OverlayMask};
    let store = fx::store::RunStore::open(run_dir)?;
    let exp = fx::config::Experiment::load(&store.path("experiment.toml"), &[])?;
    let role =
        if exp.student_teacher.enabled { fx::config::ModelRole::Teacher } else { fx::config::ModelRole::Student };
    let loaded = fx::predict::load(run_dir, role, tch::Device::Cpu)?;
    let mut exp_nocache = exp.clone();
    exp_nocache.data.cache = false;
    let datasets =
        fx::train::open_datasets(&exp_nocache, &store.path("experiment.toml").display().to_string(), registry)?;
    std::fs::create_dir_all(out)?;
    let s = loaded.card.image_size as usize;
    let tmp = tempfile::tempdir()?;
    let mut written = Vec::new();
    for d in &datasets {
        let Some(heads) = loaded.card.datasets.get(&d.name) else { continue };
        if heads.loc.is_empty() && heads.seg.is_empty() && heads.cls.is_empty() {
            continue;
        }
        // One colour per label, shared by its box and its mask (as in predict's overlays).
        let mut legend: Vec<String> = heads.loc.clone();
        for l in &heads.seg {
            if !legend.contains(l) {
                legend.push(l.clone());
            }
        }
        let index = |l: &String| legend.iter().position(|x| x == l).unwrap_or(0);
        let mut tiles: Vec<image::RgbImage> = Vec::new();
        for r in d.test.iter().take(n) {
            let Ok(sample) = d.dataset.load(r, s) else { continue };
            let sample = fx_data::loader::to_pixel_frame(sample);
            let (w, h) = (sample.width, sample.height);
            let resized = fx_data::augment::warp(&sample, &fx_data::augment::resize(w, h, s), s);
            let opts =
                PredictOptions { datasets: vec![d.name.clone()], cls: true, loc: true, seg: true, threshold: 0.3 };
            let preds = fx::predict::infer(&loaded, &resized.image, &[(w, h)], &opts)?;
            let p = &preds[&d.name][0];
            let boxes: Vec<OverlayBox> = p
                .boxes
                .iter()
                .map(|&(l, score, rect)| OverlayBox { legend: index(&heads.loc[l]), score, rect })
                .collect();
            let masks: Vec<OverlayMask> = p
                .masks
                .iter()
                .enumerate()
                .map(|(k, m)| OverlayMask { legend: index(&heads.seg[k]), mask: m })
                .collect();
            let f = tmp.path().join("tile.png");
            overlay_png(&f, &sample.image, w, h, &boxes, &masks, &legend)?;
            let mut tile = image::open(&f)?.into_rgb8();
            // Tiles are 256 px wide; the top-scoring classes of the image under it.
            tile = image::imageops::resize(
                &tile,
                256,
                (256 * h / w.max(1)).max(1) as u32,
                image::imageops::FilterType::Triangle,
            );
            if !p.cls.is_empty() {
                let mut best: Vec<(usize, f32)> = p.cls.iter().copied().enumerate().collect();
                best.sort_by(|a, b| b.1.total_cmp(&a.1));
                let (l, v) = best[0];
                // A bar in the corner as wide as the top class's score, coloured by its rank.
                let width = (v.clamp(0.0, 1.0) * 255.0) as u32;
                let (cr, cg, cb) = colour(l);
                for x in 0..width {
                    for y in 0..6.min(tile.height()) {
                        tile.put_pixel(x, tile.height() - 1 - y, image::Rgb([cr, cg, cb]));
                    }
                }
            }
            tiles.push(tile);
        }
        if tiles.is_empty() {
            continue;
        }
        let cols = 3.min(tiles.len()) as u32;
        let rows = (tiles.len() as u32).div_ceil(cols);
        let th = tiles.iter().map(|t| t.height()).max().unwrap_or(256);
        let mut grid = image::RgbImage::from_pixel(
            cols * 256 + (cols - 1) * 4,
            rows * th + (rows - 1) * 4,
            image::Rgb([255, 255, 255]),
        );
        for (i, t) in tiles.iter().enumerate() {
            let (c, r) = (i as u32 % cols, i as u32 / cols);
            image::imageops::overlay(&mut grid, t, (c * 260) as i64, (r * (th + 4)) as i64);
        }
        let path = out.join(format!("{}.png", fx::train::file_part(&d.name)));
        grid.save(&path)?;
        written.push(path);
    }
    Ok(written)
}
