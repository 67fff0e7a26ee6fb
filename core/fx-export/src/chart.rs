//! The paper's Figure 2 as an image: one (dataset, task) metric against the epoch.
//!
//! - every epoch's value: a thin light line with small hollow circles at the epochs that trained
//!   something else;
//! - focused epochs (the epoch trained this dataset and task): large filled dots joined by a
//!   thick dark line;
//! - the best focused value so far: a dashed black step line.
//!
//! The three differ in width, marker and dash, not only in colour, so they survive grayscale
//! printing. The legend sits in its own strip under the plot, so it never covers data. Thin grey
//! vertical lines mark where each cycle after the first begins.
//!
//! One drawing function serves both backends. The bitmap draws the best line with plotters'
//! dashed series; the SVG draws it as one solid polyline in a colour no other element uses and
//! then gives exactly that colour a `stroke-dasharray`, so the SVG holds a real dashed stroke that
//! an editor keeps as one path.

use crate::data::{best_steps, cycle_starts, epochs_extent, flatten, keys, points, seed_groups, Key};
use crate::run::Run;
use crate::table::mean_std;
use crate::text::Glyphs;
use anyhow::{anyhow, Result};
use fx_run::facts::{self, Point};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::collections::BTreeMap;
use std::sync::Once;

/// The font family every text uses: DejaVu Sans, registered from the bytes compiled into the
/// `dejavu` crate.
pub const FONT_FAMILY: &str = "sans-serif";

pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The fonts are the crate's own bytes: parsing cannot fail at run time unless the crate is
        // broken, which the tests would show (text measured as missing).
        let _ = register_font(FONT_FAMILY, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT_FAMILY, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Every epoch's value (light blue, thin).
const OTHER: RGBColor = RGBColor(0x6b, 0x9b, 0xd1);
/// Focused epochs (dark red, thick).
const FOCUS: RGBColor = RGBColor(0xb0, 0x30, 0x20);
/// The best focused value so far (near-black, dashed). No other element uses this colour: the SVG
/// post-processing keys on it.
const BEST: RGBColor = RGBColor(0x22, 0x22, 0x22);
const BEST_SVG: &str = "#222222";
pub(crate) const CYCLE: RGBColor = RGBColor(0xa8, 0xa8, 0xa8);
pub(crate) const GRID: RGBColor = RGBColor(0xe6, 0xe6, 0xe6);

/// One chart: a key's points for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSpec {
    pub key: Key,
    pub model: String,
    pub points: Vec<Point>,
    /// Last epoch on the x axis (the run's planned epochs, or a window's last epoch).
    pub epochs: usize,
    /// First epoch on the x axis: 1, or a window's first epoch (points before it are not drawn;
    /// the best focused value reached before it carries into the best line).
    pub first: usize,
    /// (first epoch, cycle) of every cycle after the first.
    pub cycle_starts: Vec<(usize, usize)>,
    /// For a seed group: (epoch, mean − std, mean + std), drawn as a shaded band behind the mean.
    pub band: Vec<(usize, f64, f64)>,
}

impl ChartSpec {
    pub fn title(&self) -> String {
        format!("{} · {} ({}, {})", self.key.dataset, self.key.task, self.key.metric, self.model)
    }
}

pub(crate) fn y_desc(metric: &str) -> String {
    match metric {
        "auc" => "AUC (%)".into(),
        "dice" => "Dice (%)".into(),
        "dice_global" => "global Dice (%)".into(),
        "map40" => "mAP@40 (%)".into(),
        "ap50" => "AP@50 (%)".into(),
        "ap40_95" => "AP@[.40:.95] (%)".into(),
        other => other.to_string(),
    }
}

/// The value range shown: the data's, at least 2 points wide, padded, on whole numbers, kept
/// within 0..100 when the data is.
pub(crate) fn y_range(points: &[Point]) -> (f64, f64) {
    let vals = points.iter().map(|p| p.value).filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 100.0);
    }
    let mid = (lo + hi) / 2.0;
    let span = (hi - lo).max(2.0);
    let (mut a, mut b) = (mid - span / 2.0 - span * 0.08, mid + span / 2.0 + span * 0.12);
    if lo >= 0.0 {
        a = a.max(0.0);
    }
    if hi <= 100.0 {
        b = b.min(100.0);
    }
    (a.floor(), b.ceil())
}

/// The most epoch ticks asked of plotters: every epoch up to 12 epochs (plotters then picks
/// whole-number steps; a fractional tick would be left unlabelled).
fn x_labels(epochs: usize) -> usize {
    epochs.clamp(2, 12)
}

pub(crate) type DrawResult<T> = std::result::Result<T, String>;

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The pixel scale of texts and strokes for an area (1.0 at 800×500).
pub(crate) fn scale(w: u32, h: u32) -> f64 {
    (h as f64 / 500.0).min(w as f64 / 800.0).max(0.3)
}

pub(crate) fn px(v: f64, s: f64) -> u32 {
    (v * s).round().max(1.0) as u32
}

pub(crate) fn font_px(v: f64, s: f64, min: f64) -> f64 {
    (v * s).max(min)
}

/// Draws one chart into `area`. `svg_dash`: draw the best line solid in [`BEST`] (the SVG is
/// post-processed into a dashed stroke) instead of as dash segments.
fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &ChartSpec,
    svg_dash: bool,
    with_legend: bool,
) -> DrawResult<()> {
    fonts();
    let (w, h) = area.dim_in_pixel();
    let s = scale(w, h);
    area.fill(&WHITE).map_err(err)?;
    let legend_h = if with_legend { legend_height(s) } else { 0 };
    let (plot, legend) = area.split_vertically(h.saturating_sub(legend_h));

    let first = spec.first.max(1);
    // `epochs` is the axis end the caller chose: the run's extent (planned or evaluated) or a
    // window's last epoch — also when the window starts at epoch 1.
    let epochs = spec.epochs.max(first).max(1);
    let x_range = first as f64 - 0.5..epochs as f64 + 0.5;
    let shown: Vec<Point> = spec.points.iter().copied().filter(|p| p.epoch >= first && p.epoch <= epochs).collect();
    let mut range_pts = shown.clone();
    // The best line carried into a window is drawn too: keep it inside the y range.
    let carried = crate::data::window_steps(&best_steps(&spec.points), first, epochs);
    range_pts.extend(carried.iter().map(|&(x, v)| Point { epoch: x as usize, value: v, focused: false }));
    range_pts.extend(spec.band.iter().flat_map(|&(e, a, b)| {
        [Point { epoch: e, value: a, focused: false }, Point { epoch: e, value: b, focused: false }]
    }));
    let (lo, hi) = y_range(&range_pts);
    let label_font = font_px(14.0, s, 10.0);
    let mut chart = ChartBuilder::on(&plot)
        .caption(spec.title(), (FONT_FAMILY, font_px(21.0, s, 12.0)).into_font().style(FontStyle::Bold))
        .margin_top(px(6.0, s))
        .margin_left(px(8.0, s))
        .margin_right(px(22.0, s))
        .margin_bottom(px(2.0, s))
        .x_label_area_size(px(44.0, s))
        .y_label_area_size(px(62.0, s))
        .build_cartesian_2d(x_range, lo..hi)
        .map_err(err)?;
    let decimals = if hi - lo >= 8.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc(&spec.key.metric))
        .label_style((FONT_FAMILY, label_font))
        .axis_desc_style((FONT_FAMILY, font_px(15.0, s, 10.5)))
        .x_labels(x_labels(epochs + 1 - first))
        .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .y_labels(7)
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(1))
        .draw()
        .map_err(err)?;

    // Cycle boundaries, labelled at the top: every k-th label when they would overlap.
    let small = (FONT_FAMILY, font_px(12.0, s, 9.0)).into_font().color(&CYCLE.mix(1.0));
    let (pw, _) = plot.dim_in_pixel();
    let visible = spec.cycle_starts.iter().filter(|&&(e, _)| e > first && e <= epochs).count().max(1);
    let label_every = ((visible as f64 * font_px(12.0, s, 9.0) * 4.5) / (pw as f64 * 0.85)).ceil().max(1.0) as usize;
    for &(start, cycle) in &spec.cycle_starts {
        let x = start as f64 - 0.5;
        if x <= first as f64 - 0.5 || x >= epochs as f64 + 0.5 {
            continue;
        }
        if cycle % label_every != 0 {
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], CYCLE.stroke_width(1))))
                .map_err(err)?;
            continue;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], CYCLE.stroke_width(1))))
            .map_err(err)?;
        let style = small.clone().pos(Pos::new(HPos::Left, VPos::Top));
        let label = EmptyElement::at((x, hi)) + Text::new(format!("cycle {cycle}"), (px(4.0, s) as i32, 2), style);
        chart.draw_series(std::iter::once(label)).map_err(err)?;
    }

    // A seed group's ± std band, behind everything else.
    if spec.band.len() > 1 {
        let mut poly: Vec<(f64, f64)> = spec.band.iter().map(|&(e, _, hi_v)| (e as f64, hi_v.min(hi))).collect();
        poly.extend(spec.band.iter().rev().map(|&(e, lo_v, _)| (e as f64, lo_v.max(lo))));
        chart.draw_series(std::iter::once(Polygon::new(poly, OTHER.mix(0.3).filled()))).map_err(err)?;
    }
    let xy = |p: &Point| (p.epoch as f64, p.value);
    let pts: Vec<&Point> = shown.iter().filter(|p| p.value.is_finite()).collect();
    // Every epoch: thin line, hollow circles where another task was trained — unless the epochs
    // are so many that circles would merge into a blob (more than one per 6 pixels): then the
    // thin line alone carries them and the focused dots stay readable on top.
    chart.draw_series(LineSeries::new(pts.iter().map(|p| xy(p)), OTHER.stroke_width(px(1.2, s)))).map_err(err)?;
    let sparse = (epochs + 1 - first) as f64 <= pw as f64 / 6.0;
    if sparse {
        chart
            .draw_series(pts.iter().filter(|p| !p.focused).map(|p| Circle::new(xy(p), px(3.5, s), WHITE.filled())))
            .map_err(err)?;
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| !p.focused)
                    .map(|p| Circle::new(xy(p), px(3.5, s), OTHER.stroke_width(px(1.5, s)))),
            )
            .map_err(err)?;
    }
    // Best focused so far: dashed; within a window it starts at the best reached before it.
    let steps = crate::data::window_steps(&best_steps(&spec.points), first, epochs);
    if steps.len() > 1 {
        if svg_dash {
            chart.draw_series(LineSeries::new(steps, BEST.stroke_width(px(2.0, s)))).map_err(err)?;
        } else {
            chart
                .draw_series(DashedLineSeries::new(steps, px(9.0, s), px(6.0, s), BEST.stroke_width(px(2.0, s))))
                .map_err(err)?;
        }
    }
    // Focused epochs: thick line and large filled dots with a white rim, on top.
    let focused: Vec<(f64, f64)> = pts.iter().filter(|p| p.focused).map(|p| xy(p)).collect();
    chart.draw_series(LineSeries::new(focused.iter().copied(), FOCUS.stroke_width(px(3.5, s)))).map_err(err)?;
    chart.draw_series(focused.iter().map(|&c| Circle::new(c, px(6.5, s), WHITE.filled()))).map_err(err)?;
    chart.draw_series(focused.iter().map(|&c| Circle::new(c, px(5.0, s), FOCUS.filled()))).map_err(err)?;

    if with_legend {
        draw_legend(&legend, s, svg_dash)?;
    }
    Ok(())
}

fn legend_height(s: f64) -> u32 {
    px(34.0, s).max(22)
}

/// The legend strip: three entries, centred, each a sample of its style and a name.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: f64, svg_dash: bool) -> DrawResult<()> {
    let (w, h) = area.dim_in_pixel();
    let font = (FONT_FAMILY, font_px(14.0, s, 10.0)).into_font().color(&BLACK);
    let entries = ["focused epochs", "other epochs", "best focused so far"];
    let sample = px(34.0, s) as i32;
    let gap = px(8.0, s) as i32;
    let between = px(28.0, s) as i32;
    let widths: Vec<i32> =
        entries.iter().map(|t| area.estimate_text_size(t, &font).map(|(w, _)| w as i32).unwrap_or(0)).collect();
    let total: i32 = widths.iter().map(|w| sample + gap + w).sum::<i32>() + between * (entries.len() as i32 - 1);
    let mut x = ((w as i32 - total) / 2).max(2);
    let y = h as i32 / 2;
    let style = font.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, text) in entries.iter().enumerate() {
        let (a, b) = (x, x + sample);
        match i {
            0 => {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], FOCUS.stroke_width(px(3.5, s)))).map_err(err)?;
                area.draw(&Circle::new(((a + b) / 2, y), px(6.5, s), WHITE.filled())).map_err(err)?;
                area.draw(&Circle::new(((a + b) / 2, y), px(5.0, s), FOCUS.filled())).map_err(err)?;
            }
            1 => {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], OTHER.stroke_width(px(1.2, s)))).map_err(err)?;
                area.draw(&Circle::new(((a + b) / 2, y), px(3.5, s), WHITE.filled())).map_err(err)?;
                area.draw(&Circle::new(((a + b) / 2, y), px(3.5, s), OTHER.stroke_width(px(1.5, s)))).map_err(err)?;
            }
            _ => {
                let style = BEST.stroke_width(px(2.0, s));
                if svg_dash {
                    area.draw(&PathElement::new(vec![(a, y), (b, y)], style)).map_err(err)?;
                } else {
                    let (dash, space) = (px(9.0, s) as i32, px(6.0, s) as i32);
                    let mut d = a;
                    while d < b {
                        area.draw(&PathElement::new(vec![(d, y), ((d + dash).min(b), y)], style)).map_err(err)?;
                        d += dash + space;
                    }
                }
            }
        }
        area.draw(&Text::new(text.to_string(), (b + gap, y), style.clone())).map_err(err)?;
        x = b + gap + widths[i] + between;
    }
    Ok(())
}

/// Gives the best line (the only strokes in [`BEST_SVG`]) a dash pattern.
fn dash_svg(svg: String, s: f64) -> String {
    let needle = format!("stroke=\"{BEST_SVG}\"");
    let dash = format!("{needle} stroke-dasharray=\"{} {}\"", px(9.0, s), px(6.0, s));
    svg.replace(&needle, &dash)
}

pub(crate) fn encode_png(buf: Vec<u8>, w: u32, h: u32) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&buf, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| anyhow!("encoding a PNG: {e}"))?;
    Ok(out)
}

pub fn png(spec: &ChartSpec, w: u32, h: u32) -> Result<Vec<u8>> {
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = Glyphs(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        draw(&root, spec, false, true).map_err(|e| anyhow!("drawing {}: {e}", spec.title()))?;
        root.present().map_err(|e| anyhow!("drawing {}: {e:?}", spec.title()))?;
    }
    encode_png(buf, w, h)
}

pub fn svg(spec: &ChartSpec, w: u32, h: u32) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        draw(&root, spec, true, true).map_err(|e| anyhow!("drawing {}: {e}", spec.title()))?;
        root.present().map_err(|e| anyhow!("drawing {}: {e:?}", spec.title()))?;
    }
    Ok(dash_svg(out, scale(w, h)))
}

/// All charts in a grid of `cols` columns under a header line, with one legend at the bottom.
fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    header: &str,
    specs: &[ChartSpec],
    cols: usize,
    cell: (u32, u32),
    svg_dash: bool,
) -> DrawResult<()> {
    fonts();
    root.fill(&WHITE).map_err(err)?;
    let s = scale(cell.0, cell.1);
    let (w, h) = root.dim_in_pixel();
    let (head, rest) = root.split_vertically(header_height(s));
    let (body, legend) = rest.split_vertically(h - header_height(s) - legend_height(s));
    let font = (FONT_FAMILY, font_px(24.0, s, 14.0)).into_font().style(FontStyle::Bold).color(&BLACK);
    let (_, hh) = head.dim_in_pixel();
    head.draw(&Text::new(
        header.to_string(),
        (w as i32 / 2, hh as i32 / 2),
        font.pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(err)?;
    let rows = specs.len().div_ceil(cols);
    let cells = body.split_evenly((rows, cols));
    for (cell, spec) in cells.iter().zip(specs) {
        draw(cell, spec, svg_dash, false)?;
    }
    draw_legend(&legend, s, svg_dash)
}

fn header_height(s: f64) -> u32 {
    px(44.0, s).max(26)
}

/// The grid's size: `cols` cells of `cw`×`ch` per row, plus the header and the legend.
fn grid_size(n: usize, cols: usize, cw: u32, ch: u32) -> (u32, u32) {
    let s = scale(cw, ch);
    (cw * cols as u32, ch * n.div_ceil(cols).max(1) as u32 + header_height(s) + legend_height(s))
}

pub fn grid_png(header: &str, specs: &[ChartSpec], cols: usize, cw: u32, ch: u32) -> Result<Vec<u8>> {
    let cols = cols.clamp(1, specs.len().max(1));
    let (w, h) = grid_size(specs.len(), cols, cw, ch);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = Glyphs(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        draw_grid(&root, header, specs, cols, (cw, ch), false).map_err(|e| anyhow!("drawing the grid: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing the grid: {e:?}"))?;
    }
    encode_png(buf, w, h)
}

pub fn grid_svg(header: &str, specs: &[ChartSpec], cols: usize, cw: u32, ch: u32) -> Result<String> {
    let cols = cols.clamp(1, specs.len().max(1));
    let (w, h) = grid_size(specs.len(), cols, cw, ch);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        draw_grid(&root, header, specs, cols, (cw, ch), true).map_err(|e| anyhow!("drawing the grid: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing the grid: {e:?}"))?;
    }
    Ok(dash_svg(out, scale(cw, ch)))
}

/// Figure-2 charts of every seed group with several runs: per main metric, the mean over the
/// seeds at each epoch (focused as in the first run) and the ± sample std band. Named by the
/// setting (its first run's name and the group's position).
pub fn seed_group_charts(runs: &[Run]) -> Vec<(String, ChartSpec)> {
    let configs: Vec<BTreeMap<String, String>> =
        runs.iter().map(|r| r.config.as_ref().map(flatten).unwrap_or_default()).collect();
    let mut out = Vec::new();
    for (gi, g) in seed_groups(&configs).iter().enumerate().filter(|(_, g)| g.len() > 1) {
        let first = &runs[g[0]];
        let model = if first.store.metrics.iter().any(|m| m.model == "teacher") { "teacher" } else { "student" };
        let name = format!("{}-{}", first.name, gi + 1);
        for key in keys(&first.store).into_iter().filter(|k| k.metric == facts::default_metric(&k.task)) {
            let series: Vec<Vec<Point>> = g.iter().map(|&i| points(&runs[i].store.metrics, &key, model)).collect();
            let mut pts = Vec::new();
            let mut band = Vec::new();
            for p in &series[0] {
                let v: Vec<f64> =
                    series.iter().filter_map(|s| s.iter().find(|q| q.epoch == p.epoch).map(|q| q.value)).collect();
                if let Some((m, sd)) = mean_std(&v) {
                    pts.push(Point { epoch: p.epoch, value: m, focused: p.focused });
                    let sd = sd.unwrap_or(0.0);
                    band.push((p.epoch, m - sd, m + sd));
                }
            }
            if pts.is_empty() {
                continue;
            }
            out.push((
                name.clone(),
                ChartSpec {
                    key,
                    model: format!("{model}, mean ± std of {} seeds", g.len()),
                    points: pts,
                    epochs: epochs_extent(&first.store),
                    first: 1,
                    cycle_starts: cycle_starts(&first.store),
                    band,
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |v| Point { epoch: 1, value: v, focused: false };
        assert_eq!(y_range(&[p(50.0), p(70.0)]), (48.0, 73.0));
        assert_eq!(y_range(&[p(99.5)]), (98.0, 100.0));
        assert_eq!(y_range(&[]), (0.0, 100.0));
    }
}
