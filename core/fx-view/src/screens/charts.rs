//! Charts: a grid of Figure-2 charts, one per (dataset, task), for the teacher or the student;
//! Enter zooms the selected one.

use crate::chart::MetricChart;
use crate::facts;
use crate::state::Drawn;
use crate::ui::View;
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
    if area.height < 2 {
        return;
    }
    if v.state.zoom {
        // The zoomed chart carries its own legend.
        drawn.chart_cols = 1;
        f.render_widget(
            MetricChart {
                series: &series[sel],
                model,
                epochs,
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
    let legend = Line::from(vec![
        Span::styled(format!("{} focused", t.focused), t.focused_style()),
        Span::raw("  "),
        Span::styled(format!("{} unfocused", t.unfocused), t.unfocused_style()),
        Span::raw("  "),
        Span::styled(format!("{}{} joined", t.line, t.line), t.unfocused_style()),
        Span::raw("  "),
        Span::styled(format!("{}{} best focused so far", t.best, t.best), t.best_style()),
        Span::raw("  "),
        Span::styled(format!("model: {model} (t)"), t.title()),
    ]);
    f.render_widget(Paragraph::new(legend), legend_area);

    let n = series.len() as u16;
    let cols = (grid.width / MIN_W).clamp(1, n.max(1));
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
