//! The Figure-2 chart: one (dataset, task) metric against the epoch, drawn cell by cell so every
//! element has its own glyph: focused points (the epoch trained this dataset and task), unfocused
//! points, the dotted line joining them, and the best-focused-so-far step line.

use crate::theme::Theme;
use fx_run::facts::{Point, Series};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Borders, Widget};

pub struct MetricChart<'a> {
    pub series: &'a Series,
    pub model: &'a str,
    /// Epochs on the x axis (the whole run).
    pub epochs: usize,
    /// The epochs shown (a window of cycles); `None` = all of them.
    pub window: Option<(usize, usize)>,
    /// Per-label lines drawn under the series, each with its letter (a, b, c, …).
    pub labels: &'a [(String, Vec<Point>)],
    /// First epoch of each cycle after the first (drawn as ticks in the detailed view).
    pub cycle_starts: &'a [usize],
    pub theme: &'a Theme,
    pub selected: bool,
    /// The zoomed chart: more y labels, cycle ticks, the legend.
    pub detailed: bool,
}

/// Plot geometry: cell coordinates of epochs and values.
pub(crate) struct Geo {
    pub x0: u16,
    pub y0: u16,
    pub w: u16,
    pub h: u16,
    /// First and last epoch on the x axis.
    pub first: usize,
    pub last: usize,
    pub lo: f64,
    pub hi: f64,
}

impl Geo {
    pub fn col(&self, epoch: f64) -> u16 {
        if self.last <= self.first || self.w <= 1 {
            return self.x0;
        }
        let f = (epoch - self.first as f64) / (self.last - self.first) as f64;
        self.x0 + (f.clamp(0.0, 1.0) * (self.w - 1) as f64).round() as u16
    }

    pub fn row(&self, v: f64) -> u16 {
        if self.h <= 1 {
            return self.y0;
        }
        let f = (self.hi - v) / (self.hi - self.lo);
        self.y0 + (f.clamp(0.0, 1.0) * (self.h - 1) as f64).round() as u16
    }

    /// The value at the middle of a row (for the y labels).
    pub fn value_at(&self, row: u16) -> f64 {
        if self.h <= 1 {
            return self.hi;
        }
        self.hi - (row - self.y0) as f64 / (self.h - 1) as f64 * (self.hi - self.lo)
    }
}

/// The y range: the data's, widened to at least 2 points and padded a little.
pub(crate) fn y_range(points: &[Point]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.value).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 100.0);
    }
    let (mut lo, mut hi) = (lo, hi);
    if hi - lo < 2.0 {
        let mid = (hi + lo) / 2.0;
        lo = mid - 1.0;
        hi = mid + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    ((lo - pad).floor(), (hi + pad).ceil())
}

/// The y axis left of the plot, its value labels in the `label_w` columns from `x`: the top and
/// bottom rows always, with `every_4` also about every fourth row.
pub(crate) fn y_axis(buf: &mut Buffer, g: &Geo, x: u16, label_w: u16, every_4: bool, t: &Theme) {
    let axis = if t.ascii { '|' } else { '│' };
    let tick = if t.ascii { '+' } else { '┤' };
    for row in g.y0..g.y0 + g.h {
        let k = row - g.y0;
        let labelled = k == 0 || k == g.h - 1 || (every_4 && k.is_multiple_of(4) && g.h - 1 - k >= 2);
        if labelled {
            buf.set_stringn(x, row, format!("{:>5.1}", g.value_at(row)), label_w as usize, t.dim());
        }
        put(buf, x + label_w, row, if labelled { tick } else { axis }, t.dim());
    }
}

/// The letter of the i-th per-label line.
fn label_glyph(i: usize) -> char {
    (b'a' + (i % 26) as u8) as char
}

pub(crate) fn put(buf: &mut Buffer, x: u16, y: u16, c: char, style: Style) {
    if let Some(cell) = buf.cell_mut((x, y)) {
        cell.set_char(c).set_style(style);
    }
}

pub(crate) fn get(buf: &Buffer, x: u16, y: u16) -> char {
    buf.cell((x, y)).and_then(|c| c.symbol().chars().next()).unwrap_or(' ')
}

impl Widget for MetricChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let s = self.series;
        let last = s.points.last();
        let mut title = format!(
            "{}{} {} {}",
            if self.selected { format!("{} ", t.current) } else { String::new() },
            s.dataset,
            s.task,
            s.metric
        );
        if let Some(p) = last {
            title.push_str(&format!(" {:.1}", p.value));
        }
        if let Some(b) = s.best_focused() {
            title.push_str(&format!(" best {b:.1}"));
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_set(t.border)
            .title(format!(" {title} "))
            .title_style(if self.selected { t.highlight() } else { t.title() });
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width < 8 || inner.height < 3 {
            return;
        }
        if s.points.is_empty() {
            let msg = "no evaluation yet";
            let x = inner.x + inner.width.saturating_sub(msg.len() as u16) / 2;
            buf.set_stringn(x, inner.y + inner.height / 2, msg, inner.width as usize, t.dim());
            return;
        }

        // Layout: y labels (5) + axis (1) | plot ; bottom row: x labels; detailed: legend row too.
        let legend_rows = if self.detailed { 1 } else { 0 };
        let label_w = 5u16;
        let plot_h = inner.height - 1 - legend_rows;
        let epochs = self.epochs.max(s.points.iter().map(|p| p.epoch).max().unwrap_or(1)).max(1);
        let (first, last_epoch) = self.window.map(|(a, b)| (a.max(1), b.max(a.max(1)))).unwrap_or((1, epochs));
        // The window's points; the best focused value reached before it carries into it.
        let shown: Vec<Point> =
            s.points.iter().copied().filter(|p| p.epoch >= first && p.epoch <= last_epoch).collect();
        let best_before = s
            .points
            .iter()
            .filter(|p| p.focused && p.epoch < first)
            .map(|p| p.value)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        let mut ranged: Vec<Point> = if shown.is_empty() { s.points.clone() } else { shown.clone() };
        if let Some(b) = best_before {
            ranged.push(Point { epoch: first, value: b, focused: true });
        }
        for (_, pts) in self.labels {
            ranged.extend(pts.iter().copied().filter(|p| p.epoch >= first && p.epoch <= last_epoch));
        }
        let (lo, hi) = y_range(&ranged);
        let g = Geo {
            x0: inner.x + label_w + 1,
            y0: inner.y,
            w: inner.width - label_w - 1,
            h: plot_h,
            first,
            last: last_epoch,
            lo,
            hi,
        };

        // Y axis and labels: top and bottom always; in detail about every 4 rows.
        y_axis(buf, &g, inner.x, label_w, self.detailed, t);
        // X labels: first and last epoch; in detail also each cycle start.
        let xrow = g.y0 + g.h;
        let mut marks: Vec<usize> = vec![first, last_epoch];
        if self.detailed {
            marks.extend(self.cycle_starts.iter().copied().filter(|&e| e > first && e < last_epoch));
        }
        let mut taken_until = 0u16;
        marks.sort();
        marks.dedup();
        for e in marks {
            let text = e.to_string();
            let c = g.col(e as f64);
            let x = if e == last_epoch { (c + 1).saturating_sub(text.len() as u16).max(g.x0) } else { c };
            if x < taken_until || x + text.len() as u16 > g.x0 + g.w {
                continue;
            }
            buf.set_string(x, xrow, &text, t.dim());
            taken_until = x + text.len() as u16 + 1;
        }
        // "epoch" in the middle of the x axis when it does not touch a number.
        let label = "epoch";
        if g.w > 14 {
            let x = g.x0 + (g.w - label.len() as u16) / 2;
            if (x - 1..x + label.len() as u16 + 1).all(|c| get(buf, c, xrow) == ' ') {
                buf.set_string(x, xrow, label, t.dim());
            }
        }
        // More epochs than columns: each column shows the range of its unfocused values as a bar.
        let dense = last_epoch + 1 - first > g.w as usize;
        if self.detailed {
            let joined =
                if dense { format!("{} unfocused range", t.range) } else { format!("{}{} joined", t.line, t.line) };
            let legend = format!(
                "{} focused  {} unfocused  {joined}  {}{} best focused so far  model: {} (t)",
                t.focused, t.unfocused, t.best, t.best, self.model
            );
            let legend = if self.labels.is_empty() {
                legend
            } else {
                self.labels
                    .iter()
                    .enumerate()
                    .map(|(i, (l, _))| format!("{}={l}", label_glyph(i)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            buf.set_stringn(inner.x, xrow + 1, legend, inner.width as usize, Style::default());
        }
        // 0. Per-label lines (lowest layer): each label's values with its letter.
        for (i, (_, pts)) in self.labels.iter().enumerate() {
            for p in pts.iter().filter(|p| p.epoch >= first && p.epoch <= last_epoch) {
                put(buf, g.col(p.epoch as f64), g.row(p.value), label_glyph(i), t.dim());
            }
        }

        if dense {
            // 1. Per column: the bar from the lowest to the highest unfocused value.
            let mut cols: std::collections::BTreeMap<u16, (f64, f64)> = Default::default();
            for p in shown.iter().filter(|p| !p.focused && p.value.is_finite()) {
                let e = cols.entry(g.col(p.epoch as f64)).or_insert((p.value, p.value));
                e.0 = e.0.min(p.value);
                e.1 = e.1.max(p.value);
            }
            for (c, (a, b)) in cols {
                let (top, bottom) = (g.row(b), g.row(a));
                for r in top..=bottom {
                    put(buf, c, r, if r == top || r == bottom { t.unfocused } else { t.range }, t.unfocused_style());
                }
            }
        } else {
            // 1. The dotted line joining consecutive points (lowest layer).
            for pair in shown.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let (ca, cb) = (g.col(a.epoch as f64), g.col(b.epoch as f64));
                for c in ca + 1..cb {
                    let f = (c - ca) as f64 / (cb - ca) as f64;
                    let v = a.value + f * (b.value - a.value);
                    put(buf, c, g.row(v), t.line, t.unfocused_style());
                }
            }
        }
        // 2. Best focused so far: a step line from the first focused point (or the window's start,
        //    carrying the best reached before it) to the last point.
        let last_col = g.col(shown.last().map_or(first, |p| p.epoch) as f64);
        let mut best: Option<f64> = best_before;
        let focused: Vec<&Point> = shown.iter().filter(|p| p.focused).collect();
        let mut fi = 0;
        let start = if best_before.is_some() { Some(g.x0) } else { focused.first().map(|p| g.col(p.epoch as f64)) };
        if let Some(start) = start {
            for c in start..=last_col {
                while fi < focused.len() && g.col(focused[fi].epoch as f64) <= c {
                    best = Some(best.map_or(focused[fi].value, |b: f64| b.max(focused[fi].value)));
                    fi += 1;
                }
                if let Some(b) = best {
                    let r = g.row(b);
                    if get(buf, c, r) == ' ' || get(buf, c, r) == t.line {
                        put(buf, c, r, t.best, t.best_style());
                    }
                }
            }
        }
        // 3. Points: unfocused, then focused on top (a focused point is never hidden).
        if !dense {
            for p in shown.iter().filter(|p| !p.focused) {
                put(buf, g.col(p.epoch as f64), g.row(p.value), t.unfocused, t.unfocused_style());
            }
        }
        for p in focused {
            put(buf, g.col(p.epoch as f64), g.row(p.value), t.focused, t.focused_style());
        }
    }
}
