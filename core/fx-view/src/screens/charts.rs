//! Charts: a grid of Figure-2 charts, one per (dataset, task), for the teacher or the student;
//! Enter zooms the selected one.

use crate::chart::MetricChart;
use crate::screens::View;
use crate::state::Drawn;
use fx_run::facts;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Narrowest and lowest a grid chart gets before the grid uses fewer columns / scrolls.
const MIN_W: u16 = 34;
const MIN_H: u16 = 8;

pub fn draw(f: &mut Frame, area: Rect, v: &View, drawn: &mut Drawn) {
    let t = v.theme;
    let model = v.state.model.as_str();
    let series = facts::series(v.store, model);
    let epochs = facts::epochs_total(v.store);
    let cycle_starts: Vec<usize> =
        v.store.plan.windows(2).filter(|w| w[1].cycle != w[0].cycle).map(|w| w[1].epoch).collect();
    drawn.charts = series.len();
    if series.is_empty() {
        f.render_widget(Paragraph::new("no datasets yet (waiting for plan.json)"), area);
        return;
    }
    let sel = v.state.chart.min(series.len() - 1);
    let window = crate::state::window_epochs(v.store, v.state.window);
    if area.height < 2 {
        return;
    }
    if v.state.zoom {
        // The zoomed chart carries its own legend.
        drawn.chart_cols = 1;
        let labels = if v.state.per_label { facts::label_series(v.store, &series[sel], model) } else { Vec::new() };
        f.render_widget(
            MetricChart {
                series: &series[sel],
                model,
                epochs,
                window: window.as_ref().map(|w| w.0),
                labels: &labels,
                cycle_starts: &cycle_starts,
                theme: t,
                selected: false,
                detailed: true,
            },
            area,
        );
        return;
    }
    // Legend on the last line.
    let legend_area = Rect { y: area.y + area.height - 1, height: 1, ..area };
    let grid = Rect { height: area.height - 1, ..area };
    // As MetricChart decides: more epochs than plot columns (chart width less borders and labels).
    let dense = window.as_ref().map_or(epochs, |w| w.0 .1 + 1 - w.0 .0)
        > (area.width / cols_for(area.width, series.len())).saturating_sub(8) as usize;
    let joined = if dense { format!("{} range", t.range) } else { format!("{}{} joined", t.line, t.line) };
    let legend = Line::from(vec![
        Span::styled(format!("{} focused", t.focused), t.focused_style()),
        Span::raw("  "),
        Span::styled(format!("{} unfocused", t.unfocused), t.unfocused_style()),
        Span::raw("  "),
        Span::styled(joined, t.unfocused_style()),
        Span::raw("  "),
        Span::styled(format!("{}{} best so far", t.best, t.best), t.best_style()),
        Span::raw("  "),
        Span::styled(format!("{model} (t)"), t.title()),
        Span::raw("  "),
        Span::styled(
            window.as_ref().map(|w| format!("{} (w)", w.1)).unwrap_or_else(|| "whole run (w)".into()),
            t.title(),
        ),
    ]);
    f.render_widget(Paragraph::new(legend), legend_area);

    let n = series.len() as u16;
    let cols = cols_for(grid.width, series.len());
    let rows_total = n.div_ceil(cols);
    let rows_fit = (grid.height / MIN_H).max(1).min(rows_total);
    drawn.chart_cols = cols as usize;
    // Scroll the grid so the selected chart's row is visible.
    let sel_row = sel as u16 / cols;
    let first_row = sel_row.saturating_sub(rows_fit - 1);
    let cw = grid.width / cols;
    let ch = grid.height / rows_fit;
    for r in 0..rows_fit {
        for c in 0..cols {
            let i = ((first_row + r) * cols + c) as usize;
            if i >= series.len() {
                continue;
            }
            let w = if c == cols - 1 { grid.width - cw * (cols - 1) } else { cw };
            let h = if r == rows_fit - 1 { grid.height - ch * (rows_fit - 1) } else { ch };
            let cell = Rect { x: grid.x + c * cw, y: grid.y + r * ch, width: w, height: h };
            f.render_widget(
                MetricChart {
                    series: &series[i],
                    model,
                    epochs,
                    window: window.as_ref().map(|w| w.0),
                    labels: &[],
                    cycle_starts: &cycle_starts,
                    theme: t,
                    selected: i == sel,
                    detailed: false,
                },
                cell,
            );
        }
    }
}

/// Charts per row of the grid.
fn cols_for(width: u16, charts: usize) -> u16 {
    (width / MIN_W).clamp(1, (charts as u16).max(1))
}
