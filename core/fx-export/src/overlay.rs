//! Overlay images: a radiograph at its original size with the model's boxes (labelled with their
//! scores) and masks (translucent fill and an opaque outline), and a legend naming every colour.
//! Used by `fx-tui predict` and the gallery of `fx-tui export`.

use crate::text::Glyphs;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One box to draw, in the image's pixels.
pub struct OverlayBox {
    /// Index into the legend (its colour).
    pub legend: usize,
    pub score: f32,
    pub rect: [f32; 4],
}

/// One mask to draw (0/1 at the image's size).
pub struct OverlayMask<'a> {
    pub legend: usize,
    pub mask: &'a [u8],
}

/// Distinct colours, readable on a gray radiograph (Okabe–Ito and Tableau hues).
const PALETTE: [(u8, u8, u8); 10] = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (213, 94, 0),
    (204, 121, 167),
    (0, 114, 178),
    (255, 127, 127),
    (148, 103, 189),
    (140, 86, 75),
];

pub fn colour(i: usize) -> (u8, u8, u8) {
    PALETTE[i % PALETTE.len()]
}

/// Draws the overlay and writes it as PNG. `legend` names each colour index ("dataset: label").
pub fn overlay_png(
    path: &Path,
    gray: &[f32],
    w: usize,
    h: usize,
    boxes: &[OverlayBox],
    masks: &[OverlayMask],
    legend: &[String],
) -> Result<()> {
    if gray.len() != w * h {
        return Err(anyhow!("overlay: {} pixels for a {w}×{h} image", gray.len()));
    }
    let mut buf: Vec<u8> = gray
        .iter()
        .flat_map(|v| {
            let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            [g, g, g]
        })
        .collect();
    // Masks: 35 % tint inside, full colour on the outline (a pixel with a background 4-neighbour).
    for m in masks {
        let (r, g, b) = colour(m.legend);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if m.mask[i] == 0 {
                    continue;
                }
                let edge = x == 0
                    || y == 0
                    || x + 1 == w
                    || y + 1 == h
                    || m.mask[i - 1] == 0
                    || m.mask[i + 1] == 0
                    || m.mask[i - w] == 0
                    || m.mask[i + w] == 0;
                let a = if edge { 1.0 } else { 0.35 };
                let px = &mut buf[i * 3..i * 3 + 3];
                for (c, t) in px.iter_mut().zip([r, g, b]) {
                    *c = (*c as f32 * (1.0 - a) + t as f32 * a).round() as u8;
                }
            }
        }
    }
    crate::chart::fonts();
    let side = w.min(h) as f64;
    // Text needs room: on images under 128 px a side only boxes and masks are drawn.
    let text = side >= 128.0;
    let font_px = (side / 40.0).clamp(11.0, 48.0);
    let thick = ((side / 300.0).round() as u32).max(1);
    {
        let backend = Glyphs(BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)));
        let area = backend.into_drawing_area();
        let font = (crate::chart::FONT_FAMILY, font_px).into_font();
        for b in boxes {
            let (r, g, bl) = colour(b.legend);
            let c = RGBColor(r, g, bl);
            let [x0, y0, x1, y1] = b.rect.map(|v| v.round() as i32);
            area.draw(&Rectangle::new([(x0, y0), (x1 - 1, y1 - 1)], c.stroke_width(thick)))
                .map_err(|e| anyhow!("{e}"))?;
            if !text {
                continue;
            }
            let text = format!("{} {:.2}", legend.get(b.legend).map(|s| short(s)).unwrap_or("?"), b.score);
            let ty = (y0 - font_px as i32 - 2).max(0);
            let tw = (text.chars().count() as f64 * font_px * 0.6) as i32;
            area.draw(&Rectangle::new([(x0, ty), (x0 + tw, ty + font_px as i32 + 2)], BLACK.mix(0.6).filled()))
                .map_err(|e| anyhow!("{e}"))?;
            area.draw(&Text::new(text, (x0 + 2, ty + 1), font.clone().color(&c))).map_err(|e| anyhow!("{e}"))?;
        }
        // Legend, top left: a swatch and the name of every colour in use.
        let used: Vec<usize> = {
            let mut u: Vec<usize> = boxes.iter().map(|b| b.legend).chain(masks.iter().map(|m| m.legend)).collect();
            u.sort_unstable();
            u.dedup();
            u
        };
        let used = if text { used } else { Vec::new() };
        let line = font_px as i32 + 4;
        if !used.is_empty() {
            let width = used.iter().map(|&i| legend.get(i).map(|s| s.chars().count()).unwrap_or(1)).max().unwrap_or(1)
                as f64
                * font_px
                * 0.6
                + font_px * 2.0;
            area.draw(&Rectangle::new(
                [(2, 2), (width as i32 + 6, 6 + line * used.len() as i32)],
                BLACK.mix(0.6).filled(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        for (k, &i) in used.iter().enumerate() {
            let (r, g, b) = colour(i);
            let y = 5 + line * k as i32;
            area.draw(&Rectangle::new(
                [(6, y + 2), (6 + font_px as i32, y + font_px as i32)],
                RGBColor(r, g, b).filled(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
            let name = legend.get(i).cloned().unwrap_or_default();
            area.draw(&Text::new(name, (12 + font_px as i32, y), font.clone().color(&WHITE)))
                .map_err(|e| anyhow!("{e}"))?;
        }
        area.present().map_err(|e| anyhow!("{e}"))?;
    }
    let img = image::RgbImage::from_raw(w as u32, h as u32, buf).ok_or_else(|| anyhow!("overlay buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    fx_run::write_atomic(path, &png)?;
    Ok(())
}

/// The label part of "dataset: label", for the text beside a box.
fn short(s: &str) -> &str {
    s.rsplit(": ").next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_mask_outlines_land_where_they_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (120, 90);
        let gray = vec![0.5f32; w * h];
        let mut mask = vec![0u8; w * h];
        for y in 60..80 {
            for x in 80..110 {
                mask[y * w + x] = 1;
            }
        }
        let p = dir.path().join("o.png");
        let legend = vec!["d: nodule".to_string(), "d: heart".to_string()];
        overlay_png(
            &p,
            &gray,
            w,
            h,
            &[OverlayBox { legend: 0, score: 0.9, rect: [30.0, 40.0, 60.0, 70.0] }],
            &[OverlayMask { legend: 1, mask: &mask }],
            &legend,
        )
        .unwrap();
        let img = image::open(&p).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (w as u32, h as u32));
        let (r, g, b) = colour(0);
        // The box's bottom edge, left of any text.
        assert_eq!(img.get_pixel(45, 69).0, [r, g, b]);
        // The mask's outline in full colour, its inside tinted, outside untouched.
        let (r1, g1, b1) = colour(1);
        assert_eq!(img.get_pixel(80, 70).0, [r1, g1, b1]);
        assert_ne!(img.get_pixel(95, 70).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(115, 85).0, [128, 128, 128]);
    }
}
