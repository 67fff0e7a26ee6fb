//! Renders a 4×4 grid of PHANTOM radiographs (every finding, several site styles) for a human to
//! look at, a second grid with the masks and boxes drawn over them, and render timings per size.
//!
//! cargo run --release -p fx-phantom --example phantom_grid -- /tmp/phantom_grid.png [tile_px]

use fx_phantom::{render, Finding, Organ, Phantom, Prevalence, Style};
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::time::Instant;

fn only(fs: &[Finding]) -> Prevalence {
    let mut p = [0.0; 5];
    for f in fs {
        p[f.index()] = 1.0;
    }
    p
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "/tmp/phantom_grid.png".to_string());
    let tile: usize = args.next().map(|s| s.parse().expect("tile size")).unwrap_or(128);

    let styles = [
        ("nominal", Style::default()),
        (
            "hard",
            Style {
                contrast: 1.35,
                brightness: -0.06,
                gamma: 1.25,
                noise: 0.025,
                blur: 0.003,
                fov: 1.12,
                jitter: 0.04,
            },
        ),
        (
            "soft",
            Style { contrast: 0.75, brightness: 0.06, gamma: 0.85, noise: 0.015, blur: 0.006, fov: 0.92, jitter: 0.02 },
        ),
        (
            "portable",
            Style { contrast: 1.1, brightness: 0.02, gamma: 1.0, noise: 0.04, blur: 0.004, fov: 1.05, jitter: 0.05 },
        ),
    ];
    use Finding::*;
    let cases: [&[Finding]; 16] = [
        &[],
        &[Nodule],
        &[Pneumothorax],
        &[Effusion],
        &[Cardiomegaly],
        &[Consolidation],
        &[],
        &[Nodule],
        &[Pneumothorax],
        &[Effusion],
        &[Cardiomegaly],
        &[Consolidation],
        &[Effusion, Cardiomegaly],
        &[Pneumothorax, Consolidation],
        &[Nodule, Effusion],
        &[Nodule, Pneumothorax, Effusion, Cardiomegaly, Consolidation],
    ];

    let cols = 4;
    let rows = cases.len().div_ceil(cols);
    let mut grid = GrayImage::new((cols * tile) as u32, (rows * tile) as u32);
    let mut overlay = RgbImage::new((cols * tile) as u32, (rows * tile) as u32);
    let colours = [[255, 60, 60], [60, 160, 255], [60, 255, 120], [255, 200, 40], [230, 80, 255]];
    for (k, fs) in cases.iter().enumerate() {
        let (name, style) = &styles[k % styles.len()];
        let seed = 1000 + k as u64;
        let p = render(style, &only(fs), seed, tile);
        let labels: Vec<&str> = Finding::ALL.iter().filter(|f| p.present[f.index()]).map(|f| f.as_str()).collect();
        let boxes: Vec<String> =
            p.finding_boxes.iter().map(|(f, b)| format!("{}{:?}", f.as_str(), b.map(|v| v as i32))).collect();
        println!(
            "tile {k:2} (row {}, col {}) style {name:8} seed {seed}: [{}] boxes {}",
            k / cols,
            k % cols,
            labels.join(", "),
            boxes.join(" ")
        );
        let (ox, oy) = ((k % cols) * tile, (k / cols) * tile);
        paint(&p, ox, oy, &mut grid, &mut overlay, &colours);
    }
    grid.save(&out).expect("write grid");
    let overlay_path = match out.strip_suffix(".png") {
        Some(stem) => format!("{stem}_overlay.png"),
        None => format!("{out}_overlay.png"),
    };
    overlay.save(&overlay_path).expect("write overlay");
    println!("wrote {out} and {overlay_path}");
    println!(
        "overlay colours: {}",
        Finding::ALL.iter().zip(&colours).map(|(f, c)| format!("{}={c:?}", f.as_str())).collect::<Vec<_>>().join(" ")
    );

    // Timings with a realistic site style (noise + blur on) and a mixed prevalence.
    let style = &styles[3].1;
    for size in [32usize, 64, 96, 128, 224, 512, 1024] {
        let n = (2_000_000 / (size * size)).clamp(3, 500);
        let t = Instant::now();
        let mut sink = 0.0f32;
        for s in 0..n {
            sink += render(style, &[0.3; 5], s as u64, size).image[size * size / 2];
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!("render {size:4} px: {ms:8.3} ms/image (mean of {n}; checksum {sink:.3})");
    }
}

fn paint(p: &Phantom, ox: usize, oy: usize, grid: &mut GrayImage, overlay: &mut RgbImage, colours: &[[u8; 3]; 5]) {
    let s = p.size;
    for j in 0..s {
        for i in 0..s {
            let v = (p.image[j * s + i] * 255.0).round() as u8;
            grid.put_pixel((ox + i) as u32, (oy + j) as u32, Luma([v]));
            let mut c = [v as f32; 3];
            // Organ outlines in grey-blue, lesion masks tinted.
            for o in Organ::ALL {
                if edge(&p.organ_masks[o.index()], s, i, j) {
                    c = [120.0, 120.0, 200.0];
                }
            }
            for f in Finding::ALL {
                if p.finding_masks[f.index()][j * s + i] == 1 && f != Finding::Cardiomegaly {
                    let col = colours[f.index()];
                    for (x, y) in c.iter_mut().zip(col) {
                        *x = 0.55 * *x + 0.45 * y as f32;
                    }
                }
            }
            overlay.put_pixel((ox + i) as u32, (oy + j) as u32, Rgb(c.map(|x| x as u8)));
        }
    }
    for (f, b) in &p.finding_boxes {
        let col = Rgb(colours[f.index()]);
        let [x0, y0, x1, y1] = b.map(|v| v as usize);
        for i in x0..x1 {
            overlay.put_pixel((ox + i) as u32, (oy + y0) as u32, col);
            overlay.put_pixel((ox + i) as u32, (oy + y1 - 1) as u32, col);
        }
        for j in y0..y1 {
            overlay.put_pixel((ox + x0) as u32, (oy + j) as u32, col);
            overlay.put_pixel((ox + x1 - 1) as u32, (oy + j) as u32, col);
        }
    }
}

fn edge(m: &[u8], s: usize, i: usize, j: usize) -> bool {
    if m[j * s + i] == 0 {
        return false;
    }
    let at = |a: usize, b: usize| m[b * s + a];
    i == 0
        || j == 0
        || i + 1 == s
        || j + 1 == s
        || at(i - 1, j) == 0
        || at(i + 1, j) == 0
        || at(i, j - 1) == 0
        || at(i, j + 1) == 0
}
