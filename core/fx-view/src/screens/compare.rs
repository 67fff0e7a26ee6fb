//! The comparison screen: one (dataset, task, metric) with a line per run (or per seed group),
//! then a table of final and best values, then the experiment keys in which the runs differ.
//!
//! Every run has its own glyph pair, filled for focused points and hollow (lower case in ASCII)
//! for unfocused ones, so runs and focus stay apart without colour. Unfocused points are drawn
//! first and focused points last: a focused point is never hidden.

use crate::browser::Comparison;
use crate::chart::{get, put, y_axis, y_range, Geo};
use crate::screens::{fit, pad};
use crate::theme::Theme;
use fx_run::compare::{self, Key};
use fx_run::facts::Point;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use ratatui::Frame;

pub const KEYS: &str = "←/→ metric  m teacher/student  a seed groups  ↑/↓ scroll  Esc back";

const COLOURS: [Color; 8] = [
    Color::Yellow,
    Color::Cyan,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
    Color::White,
    Color::LightYellow,
];

/// (focused, unfocused) glyphs of the i-th line.
pub fn glyphs(i: usize, t: &Theme) -> (char, char) {
    if t.ascii {
        let c = (b'A' + (i % 26) as u8) as char;
        (c, c.to_ascii_lowercase())
    } else {
        const G: [(char, char); 8] =
            [('●', '○'), ('■', '□'), ('▲', '△'), ('◆', '◇'), ('★', '☆'), ('▼', '▽'), ('⬟', '⬠'), ('⬢', '⬡')];
        G[i % G.len()]
    }
}

/// One line of the chart.
pub struct Trace {
    pub label: String,
    pub points: Vec<Point>,
    /// Seed groups: (epoch, min, max) behind the mean.
    pub band: Vec<(usize, f64, f64)>,
}

/// The lines shown for the current key: one per run, or one per seed group.
pub fn lines(c: &Comparison, key: &Key) -> Vec<Trace> {
    if c.seed_groups {
        let configs: Vec<_> = c.runs.iter().map(|r| r.config.clone()).collect();
        return compare::seed_groups(&configs)
            .into_iter()
            .map(|g| {
                let stores: Vec<&fx_run::store::Store> = g.iter().map(|&i| &c.runs[i].store).collect();
                let line = compare::group_line(&stores, key, &c.model);
                let label = if g.len() > 1 {
                    let l = c.labels[g[0]].split(' ').filter(|w| !w.starts_with("seed=")).collect::<Vec<_>>().join(" ");
                    let l = if l.is_empty() { c.runs[g[0]].id.clone() } else { l };
                    format!("{l} (mean of {} seeds, min–max)", g.len())
                } else {
                    c.labels[g[0]].clone()
                };
                Trace {
                    label,
                    points: line.iter().map(|(p, _, _)| *p).collect(),
                    band: if g.len() > 1 {
                        line.iter().map(|(p, lo, hi)| (p.epoch, *lo, *hi)).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
    }
    c.runs
        .iter()
        .zip(&c.labels)
        .map(|(r, l)| Trace {
            label: l.clone(),
            points: compare::points(&r.store.metrics, key, &c.model),
            band: Vec::new(),
        })
        .collect()
}

struct Chart<'a> {
    lines: &'a [Trace],
    epochs: usize,
    cycle_starts: &'a [usize],
    theme: &'a Theme,
}

impl Widget for Chart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let label_w = 5u16;
        if area.width < label_w + 10 || area.height < 4 {
            return;
        }
        let mut all: Vec<Point> = self.lines.iter().flat_map(|l| l.points.iter().copied()).collect();
        for l in self.lines {
            for (e, lo, hi) in &l.band {
                all.push(Point { epoch: *e, value: *lo, focused: false });
                all.push(Point { epoch: *e, value: *hi, focused: false });
            }
        }
        if all.is_empty() {
            let msg = "no rows for this metric and model yet";
            buf.set_stringn(area.x + 2, area.y + area.height / 2, msg, area.width as usize - 2, t.dim());
            return;
        }
        let (lo, hi) = y_range(&all);
        let epochs = self.epochs.max(all.iter().map(|p| p.epoch).max().unwrap_or(1)).max(1);
        let g = Geo {
            x0: area.x + label_w + 1,
            y0: area.y,
            w: area.width - label_w - 1,
            h: area.height - 1,
            first: 1,
            last: epochs,
            lo,
            hi,
        };
        y_axis(buf, &g, area.x, label_w, true, t);
        let xrow = g.y0 + g.h;
        buf.set_string(g.x0, xrow, "1", t.dim());
        let last = epochs.to_string();
        buf.set_string(g.x0 + g.w - last.len() as u16, xrow, &last, t.dim());
        let mid = format!("epoch ({} cycles)", self.cycle_starts.len() + 1);
        if g.w as usize > mid.len() + 8 {
            buf.set_string(g.x0 + (g.w - mid.len() as u16) / 2, xrow, &mid, t.dim());
        }
        // Cycle boundaries: a dim tick on the axis row.
        for &e in self.cycle_starts {
            let c = g.col(e as f64);
            if get(buf, c, xrow) == ' ' {
                put(buf, c, xrow, if t.ascii { '\'' } else { '╵' }, t.dim());
            }
        }
        let band = if t.ascii { ':' } else { '░' };
        for (i, l) in self.lines.iter().enumerate() {
            let style = Style::default().fg(COLOURS[i % COLOURS.len()]);
            for (e, lo, hi) in &l.band {
                let c = g.col(*e as f64);
                for r in g.row(*hi)..=g.row(*lo) {
                    if get(buf, c, r) == ' ' {
                        put(buf, c, r, band, style);
                    }
                }
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            let style = Style::default().fg(COLOURS[i % COLOURS.len()]);
            for pair in l.points.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let (ca, cb) = (g.col(a.epoch as f64), g.col(b.epoch as f64));
                for c in ca + 1..cb {
                    let f = (c - ca) as f64 / (cb - ca) as f64;
                    let r = g.row(a.value + f * (b.value - a.value));
                    if matches!(get(buf, c, r), ' ') || get(buf, c, r) == band {
                        put(buf, c, r, t.line, style);
                    }
                }
            }
        }
        // Points: every unfocused one, then every focused one. A cell where two lines' points
        // meet shows the shared glyph instead of hiding one of them.
        let mut owner: std::collections::HashMap<(u16, u16), (usize, bool)> = Default::default();
        let shared = if t.ascii { '*' } else { '✱' };
        for focused in [false, true] {
            for (i, l) in self.lines.iter().enumerate() {
                let (gf, gu) = glyphs(i, t);
                let style = Style::default().fg(COLOURS[i % COLOURS.len()]);
                for p in l.points.iter().filter(|p| p.focused == focused) {
                    let at = (g.col(p.epoch as f64), g.row(p.value));
                    match owner.get(&at) {
                        // A focused point over another line's unfocused one wins the cell.
                        Some(&(j, f)) if j != i && f == focused => put(buf, at.0, at.1, shared, Style::default()),
                        _ => put(buf, at.0, at.1, if focused { gf } else { gu }, style),
                    }
                    owner.insert(at, (i, focused));
                }
            }
        }
    }
}

/// The first epoch of each cycle after the first, from the first run's plan.
fn cycle_starts(c: &Comparison) -> Vec<usize> {
    let Some(first) = c.runs.first() else { return Vec::new() };
    let mut plan: Vec<(usize, usize)> = first.store.plan.iter().map(|p| (p.epoch, p.cycle)).collect();
    plan.sort();
    plan.windows(2).filter(|w| w[1].1 != w[0].1).map(|w| w[1].0).collect()
}

/// The keys (other than `seed`) in which the seed groups differ, one value per group.
fn group_diff(c: &Comparison) -> Vec<(String, Vec<String>)> {
    let configs: Vec<_> = c.runs.iter().map(|r| r.config.clone()).collect();
    let firsts: Vec<_> = compare::seed_groups(&configs).into_iter().map(|g| configs[g[0]].clone()).collect();
    compare::differing_keys(&firsts)
        .into_iter()
        .filter(|k| k != "seed")
        .map(|k| {
            let vals = firsts.iter().map(|f| f.get(&k).cloned().unwrap_or_else(|| "-".into())).collect();
            (k, vals)
        })
        .collect()
}

fn value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

pub fn draw(f: &mut Frame, area: Rect, c: &Comparison, t: &Theme) {
    let w = area.width as usize;
    let chart_h = (area.height / 2).max(8).min(area.height.saturating_sub(4));
    let [top, chart, rest, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(chart_h),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let Some(key) = c.current_key().cloned() else {
        f.render_widget(Paragraph::new(format!(" compare {} runs: none has metric rows yet", c.runs.len())), top);
        f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&format!(" {KEYS}"), w), t.dim()))), bottom);
        return;
    };
    let follow = c.sweep.as_ref().map(|s| format!(" {} sweep {s}", t.sep)).unwrap_or_default();
    let head = format!(
        " compare {} runs{follow} {} {} · {} {} ({}) [{}/{}]",
        c.runs.len(),
        t.sep,
        key.dataset,
        key.task,
        key.metric,
        c.model,
        c.key + 1,
        c.keys.len()
    );
    f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&head, w), t.title()))), top);

    let lines = lines(c, &key);
    let epochs = c.runs.iter().map(|r| fx_run::facts::epochs_total(&r.store)).max().unwrap_or(1);
    let starts = cycle_starts(c);
    let block = super::block("", t);
    let inner = block.inner(chart);
    f.render_widget(block, chart);
    f.render_widget(Chart { lines: &lines, epochs, cycle_starts: &starts, theme: t }, inner);

    // Table (legend + final/best) then the configuration diff; scrolled as one list.
    let label_w = w.saturating_sub(2 + 1 + 9 + 13 + 13 + 10).clamp(12, 60);
    let mut rows: Vec<Line> = Vec::new();
    rows.push(Line::from(Span::styled(
        format!(
            "   {} {:>9} {:>13} {:>13} {}",
            pad("run (keys that differ)", label_w),
            "status",
            "final (ep)",
            "best (ep)",
            "epochs"
        ),
        t.title(),
    )));
    if c.seed_groups {
        for (i, l) in lines.iter().enumerate() {
            let (gf, _) = glyphs(i, t);
            let last = l.points.last();
            let best = compare::best_focused(&l.points);
            rows.push(Line::from(vec![
                Span::styled(format!(" {gf} "), Style::default().fg(COLOURS[i % COLOURS.len()])),
                Span::raw(format!(
                    "{} {:>9} {:>13} {:>13}",
                    pad(&l.label, label_w),
                    "",
                    last.map(|p| format!("{} ({})", value(Some(p.value)), p.epoch)).unwrap_or_else(|| "-".into()),
                    best.map(|b| format!("{} ({})", value(Some(b.value)), b.epoch)).unwrap_or_else(|| "-".into()),
                )),
            ]));
        }
    } else {
        for (i, r) in c.runs.iter().enumerate() {
            let (gf, _) = glyphs(i, t);
            let o = compare::outcome(&r.store, &key, &c.model);
            let status = r.store.run.as_ref().map(|x| x.status.clone()).unwrap_or_else(|| "new".into());
            rows.push(Line::from(vec![
                Span::styled(format!(" {gf} "), Style::default().fg(COLOURS[i % COLOURS.len()])),
                Span::raw(format!(
                    "{} {:>9} {:>13} {:>13} {}/{}",
                    pad(&c.labels[i], label_w),
                    fit(&status, 9),
                    o.last.map(|p| format!("{} ({})", value(Some(p.value)), p.epoch)).unwrap_or_else(|| "-".into()),
                    o.best.map(|b| format!("{} ({})", value(Some(b.value)), b.epoch)).unwrap_or_else(|| "-".into()),
                    fx_run::facts::epochs_done(&r.store),
                    fx_run::facts::epochs_total(&r.store),
                )),
            ]));
        }
    }
    let diff = if c.seed_groups { group_diff(c) } else { compare::config_diff(&c.runs) };
    if diff.is_empty() {
        rows.push(Line::from(Span::styled(" the experiments are identical (apart from name and output_dir)", t.dim())));
    } else {
        rows.push(Line::from(Span::styled(format!(" configuration: {} keys differ", diff.len()), t.title())));
        for (k, vals) in &diff {
            let mut spans = vec![Span::raw(format!("   {} ", pad(k, 24)))];
            for (i, v) in vals.iter().enumerate() {
                let (gf, _) = glyphs(i, t);
                spans.push(Span::styled(format!("{gf} "), Style::default().fg(COLOURS[i % COLOURS.len()])));
                spans.push(Span::raw(format!("{}  ", fit(v, 16))));
            }
            rows.push(Line::from(spans));
        }
    }
    let scroll = c.scroll.min(rows.len().saturating_sub(rest.height as usize));
    let shown: Vec<Line> = rows.into_iter().skip(scroll).take(rest.height as usize).collect();
    f.render_widget(Paragraph::new(shown), rest);
    let legend = format!(
        " {}{} focused/unfocused {} several  {KEYS}",
        glyphs(0, t).0,
        glyphs(0, t).1,
        if t.ascii { '*' } else { '✱' }
    );
    let legend = if t.ascii {
        legend.replace('←', "<").replace('→', ">").replace('↑', "^").replace('↓', "v")
    } else {
        legend
    };
    f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&legend, w), t.dim()))), bottom);
}
