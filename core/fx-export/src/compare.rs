//! `fx-tui compare`: several runs side by side.
//!
//! - `compare-<dataset>-<task>-<metric>-<model>.png|svg`: one overlay chart per metric key, one
//!   line per run in its own colour (Okabe–Ito, colourblind-safe). As in Figure 2, the epochs that
//!   trained the chart's dataset and task are large filled dots and the others small hollow
//!   circles; the first run's cycle boundaries are thin grey vertical lines. The legend, under the
//!   plot, names every run by the experiment keys in which the runs differ.
//! - `config-diff.md`: those keys with every run's value.
//! - `compare.csv|md|tex`: per key and run, the final (last evaluated) value and the best focused
//!   value with their epochs.
//!
//! What is compared (keys, labels, config diff, outcomes) comes from [`fx_run::compare`], which
//! the viewer's comparison screen shares. As everywhere in this crate, everything is rendered in
//! memory before the first file is written.

use crate::chart::{encode_png, err, font_px, fonts, px, scale, y_desc, y_range, DrawResult, CYCLE, FONT_FAMILY, GRID};
use crate::data;
use crate::run::Run;
use crate::table::{Cell, Column, Table};
use crate::text::Glyphs;
use crate::{file_part, write};
use anyhow::{anyhow, bail, Context, Result};
use fx_run::compare::{self as cmp, Compared, Key};
use fx_run::facts::{self, Point};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use std::path::{Path, PathBuf};

/// What [`compare`] draws.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareOptions {
    /// Metric keys to chart; empty = every main metric key (auc, map40, dice) of any run.
    pub keys: Vec<Key>,
    /// `teacher` or `student`; `None` = the teacher when any run evaluated it
    /// ([`fx_run::compare::default_model`]).
    pub model: Option<String>,
    /// Size of one chart in pixels (the PNG; the SVG has the same user units).
    pub width: u32,
    pub height: u32,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { keys: Vec::new(), model: None, width: 900, height: 520 }
    }
}

/// What [`compare`] wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareSummary {
    pub out: PathBuf,
    /// The run directories, in the order given.
    pub runs: Vec<PathBuf>,
    /// Each run's legend label (the experiment keys in which the runs differ).
    pub labels: Vec<String>,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// Things the reader skipped or could not chart (malformed lines, a run without rows for a key).
    pub warnings: Vec<String>,
}

/// Parses `DATASET/TASK/METRIC` into a key; without `/METRIC`, the task's main metric (auc for
/// cls, map40 for loc, dice for seg).
pub fn parse_metric(s: &str) -> Result<Key> {
    let bad = || {
        anyhow!(
            "'{s}' is not a metric key: expected DATASET/TASK or DATASET/TASK/METRIC \
             (e.g. phantom-cxp/cls or phantom-cxp/cls/auc)"
        )
    };
    let parts: Vec<&str> = s.trim().split('/').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (dataset, task, metric) = match parts.as_slice() {
        [d, t] => (*d, *t, facts::default_metric(t)),
        [d, t, m] => (*d, *t, *m),
        _ => return Err(bad()),
    };
    Ok(Key { dataset: dataset.into(), task: task.into(), metric: metric.into() })
}

fn key_name(k: &Key) -> String {
    format!("{}/{}/{}", k.dataset, k.task, k.metric)
}

/// Compares the runs in `runs` (at least two) and writes into `out` (created when missing):
///
/// - `compare-<dataset>-<task>-<metric>-<model>.png` and `.svg` for every key of `opts.keys`
///   (default: every main metric key of any run);
/// - `config-diff.md`: the experiment keys in which the runs differ, with each run's value;
/// - `compare.csv|md|tex`: per key and run, the final and the best focused value.
///
/// Fails, naming the path, when a directory is not a run directory or has no metric rows yet;
/// fails, naming the key and listing the available ones, when a requested key is in no run. A run
/// without rows for a key is charted as "(no rows)" in the legend, with a warning.
pub fn compare(runs: &[PathBuf], opts: &CompareOptions, out: &Path) -> Result<CompareSummary> {
    if runs.len() < 2 {
        bail!("compare needs at least two run directories (got {})", runs.len());
    }
    if opts.width < 200 || opts.height < 150 {
        bail!("chart size {}x{} is too small (at least 200x150 pixels)", opts.width, opts.height);
    }
    let mut warnings = Vec::new();
    let mut compared = Vec::new();
    for dir in runs {
        let run = Run::open(dir)?;
        run.require_metrics()?;
        for w in &run.warnings {
            warnings.push(format!("{}: {w}", dir.display()));
        }
        if run.config.is_none() {
            warnings.push(format!(
                "{}: experiment.toml missing or unreadable; its legend label is the directory's name",
                dir.display()
            ));
        }
        compared.push(Compared::open(dir));
    }

    // The model: as asked, or the teacher when any run has one.
    let model = opts.model.clone().unwrap_or_else(|| cmp::default_model(&compared).to_string());
    let mut have: Vec<String> = Vec::new();
    for r in &compared {
        for m in data::models(&r.store.metrics) {
            if !have.contains(&m) {
                have.push(m);
            }
        }
    }
    if !have.contains(&model) {
        bail!("no run has metric rows for model '{model}' (the runs have: {})", have.join(", "));
    }

    // The keys: as asked (each must be in some run), or every main metric key.
    let available = cmp::union_keys(&compared);
    let has_rows = |k: &Key| compared.iter().any(|r| !cmp::points(&r.store.metrics, k, &model).is_empty());
    let list = || available.iter().map(key_name).collect::<Vec<_>>().join(", ");
    let mut keys: Vec<Key> = Vec::new();
    if opts.keys.is_empty() {
        for k in cmp::main_keys(&compared) {
            if has_rows(&k) {
                keys.push(k);
            } else {
                warnings.push(format!("{}: no run has {model} rows, no chart", key_name(&k)));
            }
        }
        if keys.is_empty() {
            bail!("the runs have no {model} rows for a main metric (auc, map40, dice); available keys: {}", list());
        }
    } else {
        for k in &opts.keys {
            if keys.contains(k) {
                continue;
            }
            if !available.contains(k) {
                bail!("no run has metric rows for {} (available keys: {})", key_name(k), list());
            }
            if !has_rows(k) {
                bail!(
                    "no run has {model} rows for {} (the key has rows of: {})",
                    key_name(k),
                    models_of(&compared, k).join(", ")
                );
            }
            keys.push(k.clone());
        }
    }

    let labels = cmp::legend_labels(&compared);
    let epochs = compared.iter().map(|r| data::epochs_extent(&r.store)).max().unwrap_or(1);
    let cycle_starts = data::cycle_starts(&compared[0].store);

    // Everything is rendered in memory first: a failure writes nothing.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for key in &keys {
        let mut series = Vec::new();
        for (i, r) in compared.iter().enumerate() {
            let points = cmp::points(&r.store.metrics, key, &model);
            let label = if points.is_empty() {
                warnings.push(format!("{}: no {model} rows for {}", r.dir.display(), key_name(key)));
                format!("{} (no rows)", labels[i])
            } else {
                labels[i].clone()
            };
            series.push(Series { label, colour: colour(i), points });
        }
        let spec =
            Overlay { key: key.clone(), model: model.clone(), series, epochs, cycle_starts: cycle_starts.clone() };
        let stem = format!(
            "compare-{}-{}-{}-{}",
            file_part(&key.dataset),
            file_part(&key.task),
            file_part(&key.metric),
            file_part(&model)
        );
        files.push((format!("{stem}.png"), png(&spec, opts.width, opts.height)?));
        files.push((format!("{stem}.svg"), svg(&spec, opts.width, opts.height)?.into_bytes()));
    }
    files.push(("config-diff.md".into(), config_diff_md(&compared).into_bytes()));
    let table = outcome_table(&compared, &labels, &keys, &model);
    files.push(("compare.csv".into(), table.csv().into_bytes()));
    files.push(("compare.md".into(), table.markdown().into_bytes()));
    files.push(("compare.tex".into(), table.latex().into_bytes()));

    let written = write::all(out, &files).with_context(|| format!("writing the comparison into {}", out.display()))?;
    Ok(CompareSummary { out: out.to_path_buf(), runs: runs.to_vec(), labels, files: written, warnings })
}

/// The models with rows for a key, over all runs.
fn models_of(runs: &[Compared], k: &Key) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in runs {
        for m in r.store.metrics.iter().filter(|m| cmp::matches(m, k)) {
            if !out.iter().any(|x| *x == m.model) {
                out.push(m.model.to_string());
            }
        }
    }
    out
}

/// `config-diff.md`: the differing experiment keys (rows) by run (columns, by directory name).
fn config_diff_md(runs: &[Compared]) -> String {
    let diff = cmp::config_diff(runs);
    if runs.iter().all(|r| r.config.is_empty()) {
        return "None of the runs has a readable experiment.toml: there is no configuration to compare.\n".into();
    }
    if diff.is_empty() {
        return format!("The {} runs have identical experiments apart from `name` and `output_dir`.\n", runs.len());
    }
    let mut columns = vec![Column::text("", "key", "key")];
    columns.extend(runs.iter().map(|r| Column::text("", &r.id, &r.id)));
    let mut table = Table::new(
        "Experiment keys in which the runs differ (`-`: not set; `name` and `output_dir` are never compared).".into(),
        "tab:fx-config-diff",
        columns,
    );
    for (k, vals) in diff {
        let mut row = vec![Cell::Text(k)];
        row.extend(vals.into_iter().map(Cell::Text));
        table.rows.push(row);
    }
    table.markdown()
}

/// `compare.*`: per key (in the order charted) and run (in the order given), the final value and
/// the best focused value with their epochs; the best of each key's runs in bold.
fn outcome_table(runs: &[Compared], labels: &[String], keys: &[Key], model: &str) -> Table {
    let columns = vec![
        Column::text("", "run", "run"),
        Column::text("", "dir", "dir"),
        Column::text("", "dataset", "dataset"),
        Column::text("", "task", "task"),
        Column::text("", "metric", "metric"),
        Column::text("", "model", "model"),
        Column::num("final", "value", "final"),
        Column::num("final", "epoch", "final_epoch"),
        Column::num("best focused", "value", "best_focused"),
        Column::num("best focused", "epoch", "best_focused_epoch"),
    ];
    let caption = format!(
        "Final (last evaluated epoch) and best focused {model} values of {} runs, in %; \
         the best of each metric's runs in bold",
        runs.len()
    );
    let mut table = Table::new(caption, "tab:fx-compare", columns);
    for key in keys {
        let first = table.rows.len();
        for (i, r) in runs.iter().enumerate() {
            let o = cmp::outcome(&r.store, key, model);
            table.rows.push(vec![
                Cell::Text(labels[i].clone()),
                Cell::Text(r.id.clone()),
                Cell::Text(key.dataset.clone()),
                Cell::Text(key.task.clone()),
                Cell::Text(key.metric.clone()),
                Cell::Text(model.to_string()),
                Cell::Num(o.last.map(|p| p.value)),
                Cell::Int(o.last.map(|p| p.epoch)),
                Cell::Num(o.best.map(|b| b.value)),
                Cell::Int(o.best.map(|b| b.epoch)),
            ]);
        }
        let group = first..table.rows.len();
        for c in [6, 8] {
            bold_max(&mut table, group.clone(), c);
        }
    }
    table
}

/// Marks the largest value (as shown, two decimals) of column `c` in `rows` bold, when there are
/// at least two values to compare.
fn bold_max(table: &mut Table, rows: std::ops::Range<usize>, c: usize) {
    let val = |r: usize| match table.rows[r][c] {
        Cell::Num(Some(v)) if v.is_finite() => Some(v),
        _ => None,
    };
    let vals: Vec<(usize, f64)> = rows.filter_map(|r| val(r).map(|v| (r, v))).collect();
    if vals.len() < 2 {
        return;
    }
    let max = vals.iter().map(|&(_, v)| v).fold(f64::NEG_INFINITY, f64::max);
    let shown = format!("{max:.2}");
    for (r, v) in vals {
        if format!("{v:.2}") == shown {
            table.bold.push((r, c));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The overlay chart. Sizes, ranges and axes as in src/chart.rs (Figure 2).

/// Okabe–Ito, ordered so the first runs get the colours that read best on white (yellow last).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xb2), // blue
    RGBColor(0xd5, 0x5e, 0x00), // vermillion
    RGBColor(0x00, 0x9e, 0x73), // bluish green
    RGBColor(0xcc, 0x79, 0xa7), // reddish purple
    RGBColor(0xe6, 0x9f, 0x00), // orange
    RGBColor(0x56, 0xb4, 0xe9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0xf0, 0xe4, 0x42), // yellow
];
/// The marker key at the end of the legend.
const KEY_GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

struct Series {
    label: String,
    colour: RGBColor,
    points: Vec<Point>,
}

struct Overlay {
    key: Key,
    model: String,
    series: Vec<Series>,
    /// Epochs on the x axis (the largest planned extent of the runs).
    epochs: usize,
    /// (first epoch, cycle) of every cycle after the first, of the first run.
    cycle_starts: Vec<(usize, usize)>,
}

impl Overlay {
    fn title(&self) -> String {
        format!("{} · {} ({}, {})", self.key.dataset, self.key.task, self.key.metric, self.model)
    }
}

/// One legend entry: a sample of its style and a text.
enum Sample {
    Run(RGBColor),
    Focused,
    Other,
}

/// The legend's entries placed in centred rows: (entry, x) per row, and the strip's height.
struct LegendLayout {
    rows: Vec<Vec<(usize, i32)>>,
    row_h: i32,
    height: u32,
}

fn legend_entries(spec: &Overlay) -> Vec<(Sample, String)> {
    let mut e: Vec<(Sample, String)> = spec.series.iter().map(|s| (Sample::Run(s.colour), s.label.clone())).collect();
    e.push((Sample::Focused, "focused epochs".into()));
    e.push((Sample::Other, "other epochs".into()));
    e
}

fn legend_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Sample, String)],
    s: f64,
    w: u32,
) -> LegendLayout {
    let font = (FONT_FAMILY, font_px(14.0, s, 10.0)).into_font().color(&BLACK);
    let sample = px(30.0, s) as i32;
    let gap = px(7.0, s) as i32;
    let between = px(22.0, s) as i32;
    let avail = w as i32 - 2 * px(10.0, s) as i32;
    let widths: Vec<i32> = entries
        .iter()
        .map(|(_, t)| sample + gap + area.estimate_text_size(t, &font).map(|(w, _)| w as i32).unwrap_or(0))
        .collect();
    // Greedy rows; the marker key (the last two entries) starts a row of its own.
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0;
    let key_start = entries.len().saturating_sub(2);
    for (i, &ew) in widths.iter().enumerate() {
        let row = rows.last().unwrap();
        let need = if row.is_empty() { ew } else { used + between + ew };
        if !row.is_empty() && (need > avail || i == key_start) {
            rows.push(vec![i]);
            used = ew;
        } else {
            rows.last_mut().unwrap().push(i);
            used = need;
        }
    }
    let placed = rows
        .into_iter()
        .map(|row| {
            let total: i32 = row.iter().map(|&i| widths[i]).sum::<i32>() + between * (row.len() as i32 - 1);
            let mut x = ((w as i32 - total) / 2).max(2);
            row.into_iter()
                .map(|i| {
                    let at = x;
                    x += widths[i] + between;
                    (i, at)
                })
                .collect()
        })
        .collect::<Vec<Vec<(usize, i32)>>>();
    let row_h = px(24.0, s).max(16) as i32;
    let height = (placed.len() as i32 * row_h) as u32 + px(12.0, s);
    LegendLayout { rows: placed, row_h, height }
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(Sample, String)],
    layout: &LegendLayout,
    s: f64,
) -> DrawResult<()> {
    let font = (FONT_FAMILY, font_px(14.0, s, 10.0)).into_font().color(&BLACK);
    let style = font.pos(Pos::new(HPos::Left, VPos::Center));
    let sample = px(30.0, s) as i32;
    let gap = px(7.0, s) as i32;
    let top = px(6.0, s) as i32;
    for (r, row) in layout.rows.iter().enumerate() {
        let y = top + r as i32 * layout.row_h + layout.row_h / 2;
        for &(i, x) in row {
            let (a, b) = (x, x + sample);
            let mid = ((a + b) / 2, y);
            match &entries[i].0 {
                Sample::Run(c) => {
                    area.draw(&PathElement::new(vec![(a, y), (b, y)], c.stroke_width(px(2.5, s)))).map_err(err)?;
                    area.draw(&Circle::new(mid, px(6.0, s), WHITE.filled())).map_err(err)?;
                    area.draw(&Circle::new(mid, px(4.5, s), c.filled())).map_err(err)?;
                }
                Sample::Focused => {
                    area.draw(&Circle::new(mid, px(4.5, s), KEY_GREY.filled())).map_err(err)?;
                }
                Sample::Other => {
                    area.draw(&Circle::new(mid, px(3.5, s), KEY_GREY.stroke_width(px(1.5, s)))).map_err(err)?;
                }
            }
            area.draw(&Text::new(entries[i].1.clone(), (b + gap, y), style.clone())).map_err(err)?;
        }
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, spec: &Overlay) -> DrawResult<()> {
    fonts();
    let (w, h) = area.dim_in_pixel();
    let s = scale(w, h);
    area.fill(&WHITE).map_err(err)?;
    let entries = legend_entries(spec);
    let layout = legend_layout(area, &entries, s, w);
    // The plot keeps at least half the height, however many runs the legend names.
    let legend_h = layout.height.min(h / 2);
    let (plot, legend) = area.split_vertically(h - legend_h);

    let all = || spec.series.iter().flat_map(|s| s.points.iter());
    let epochs = spec.epochs.max(all().map(|p| p.epoch).max().unwrap_or(1)).max(1);
    let (lo, hi) = y_range(&all().copied().collect::<Vec<Point>>());
    let mut chart = ChartBuilder::on(&plot)
        .caption(spec.title(), (FONT_FAMILY, font_px(21.0, s, 12.0)).into_font().style(FontStyle::Bold))
        .margin_top(px(6.0, s))
        .margin_left(px(8.0, s))
        .margin_right(px(22.0, s))
        .margin_bottom(px(2.0, s))
        .x_label_area_size(px(44.0, s))
        .y_label_area_size(px(62.0, s))
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, lo..hi)
        .map_err(err)?;
    let decimals = if hi - lo >= 8.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc(&spec.key.metric))
        .label_style((FONT_FAMILY, font_px(14.0, s, 10.0)))
        .axis_desc_style((FONT_FAMILY, font_px(15.0, s, 10.5)))
        .x_labels(epochs.clamp(2, 12))
        .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .y_labels(7)
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(1))
        .draw()
        .map_err(err)?;

    // The first run's cycle boundaries, labelled at the top.
    let small = (FONT_FAMILY, font_px(12.0, s, 9.0)).into_font().color(&CYCLE.mix(1.0));
    for &(start, cycle) in &spec.cycle_starts {
        let x = start as f64 - 0.5;
        if x <= 0.5 || x >= epochs as f64 + 0.5 {
            continue;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], CYCLE.stroke_width(1))))
            .map_err(err)?;
        let style = small.clone().pos(Pos::new(HPos::Left, VPos::Top));
        let label = EmptyElement::at((x, hi)) + Text::new(format!("cycle {cycle}"), (px(4.0, s) as i32, 2), style);
        chart.draw_series(std::iter::once(label)).map_err(err)?;
    }

    // Every run's line first, then the markers on top of all lines.
    let xy = |p: &Point| (p.epoch as f64, p.value);
    let finite = |sr: &Series| sr.points.iter().filter(|p| p.value.is_finite()).copied().collect::<Vec<Point>>();
    for sr in &spec.series {
        let pts = finite(sr);
        chart.draw_series(LineSeries::new(pts.iter().map(xy), sr.colour.stroke_width(px(2.0, s)))).map_err(err)?;
    }
    for sr in &spec.series {
        let pts = finite(sr);
        let (other, focused): (Vec<&Point>, Vec<&Point>) = pts.iter().partition(|p| !p.focused);
        chart.draw_series(other.iter().map(|p| Circle::new(xy(p), px(3.5, s), WHITE.filled()))).map_err(err)?;
        chart
            .draw_series(other.iter().map(|p| Circle::new(xy(p), px(3.5, s), sr.colour.stroke_width(px(1.5, s)))))
            .map_err(err)?;
        chart.draw_series(focused.iter().map(|p| Circle::new(xy(p), px(6.0, s), WHITE.filled()))).map_err(err)?;
        chart.draw_series(focused.iter().map(|p| Circle::new(xy(p), px(4.5, s), sr.colour.filled()))).map_err(err)?;
    }

    draw_legend(&legend, &entries, &layout, s)
}

fn png(spec: &Overlay, w: u32, h: u32) -> Result<Vec<u8>> {
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = Glyphs(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        draw(&root, spec).map_err(|e| anyhow!("drawing {}: {e}", spec.title()))?;
        root.present().map_err(|e| anyhow!("drawing {}: {e:?}", spec.title()))?;
    }
    encode_png(buf, w, h)
}

fn svg(spec: &Overlay, w: u32, h: u32) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        draw(&root, spec).map_err(|e| anyhow!("drawing {}: {e}", spec.title()))?;
        root.present().map_err(|e| anyhow!("drawing {}: {e:?}", spec.title()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_parse() {
        let k = parse_metric("phantom-cxp/cls").unwrap();
        assert_eq!((k.dataset.as_str(), k.task.as_str(), k.metric.as_str()), ("phantom-cxp", "cls", "auc"));
        assert_eq!(parse_metric("d/seg").unwrap().metric, "dice");
        assert_eq!(parse_metric("d/loc").unwrap().metric, "map40");
        assert_eq!(parse_metric(" d/loc/ap50 ").unwrap().metric, "ap50");
        for bad in ["", "d", "d/", "d//auc", "/cls", "a/b/c/d"] {
            let e = parse_metric(bad).unwrap_err().to_string();
            assert!(e.contains("DATASET/TASK/METRIC"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn bold_per_group() {
        let mut t = Table::new(String::new(), "x", vec![Column::num("", "v", "v")]);
        for v in [Some(1.0), Some(3.0), None, Some(2.0), Some(2.001)] {
            t.rows.push(vec![Cell::Num(v)]);
        }
        bold_max(&mut t, 0..3, 0);
        bold_max(&mut t, 3..5, 0);
        assert_eq!(t.bold, vec![(1, 0), (3, 0), (4, 0)]);
    }
}
