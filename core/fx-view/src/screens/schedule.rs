//! Schedule: the plan, one row per epoch, with the trainable flag of every group (T/F/-); the
//! current epoch is marked and highlighted, finished epochs are ticked.

use super::{block, flag, pad};
use crate::screens::View;
use crate::state::Drawn;
use fx_run::facts;
use fx_run::GROUPS;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Column headings of the groups, in [`GROUPS`] order.
const SHORT: [&str; 6] = ["bbone", "cls_h", "loc_e", "loc_d", "seg_d", "seg_h"];

pub fn draw(f: &mut Frame, area: Rect, v: &View, drawn: &mut Drawn) {
    let t = v.theme;
    let s = v.store;
    let cur = facts::current_epoch(s);
    let done = facts::epochs_done(s);
    let inner_w = area.width.saturating_sub(2) as usize;
    let dw = inner_w.saturating_sub(2 + 4 + 4 + 5 + 8 + 5 + 6 * 6).clamp(8, 20);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {:>3} {:>3} {} {:<4} {:<7} {:>4} {}",
            "ep",
            "cyc",
            pad("dataset", dw),
            "task",
            "mode",
            "frac",
            SHORT.map(|h| format!("{h:<5}")).join(" ")
        ),
        t.dim(),
    ))];
    // Legend at the bottom; the rows in between scroll.
    let legend = Line::from(Span::styled(
        format!("{} current  {} done  T trainable  F frozen  - not on the path", t.current, t.done),
        t.dim(),
    ));
    let rows_fit = area.height.saturating_sub(2 + 2) as usize;
    let n = s.plan.len();
    let max_top = n.saturating_sub(rows_fit);
    let cur_idx = cur.and_then(|e| s.plan.iter().position(|p| p.epoch == e)).unwrap_or(0);
    let top = match v.state.schedule_top {
        Some(top) => top.min(max_top),
        // Follow: the current epoch a third of the way down.
        None => cur_idx.saturating_sub(rows_fit / 3).min(max_top),
    };
    drawn.schedule_top = top;
    drawn.schedule_rows = rows_fit;
    if n == 0 {
        lines.push(Line::from("no plan.json yet"));
    }
    for p in s.plan.iter().skip(top).take(rows_fit) {
        let is_cur = Some(p.epoch) == cur;
        let mark = if is_cur {
            t.current
        } else if p.epoch <= done {
            t.done
        } else {
            " "
        };
        let flags: Vec<String> = GROUPS.iter().map(|g| format!("{:<5}", flag(p.trainable.get(g)))).collect();
        let text = format!(
            "{mark} {:>3} {:>3} {} {:<4} {:<7} {:>4} {}",
            p.epoch,
            p.cycle,
            pad(&p.dataset, dw),
            p.task,
            p.mode,
            format!("{:.2}", p.fraction).trim_end_matches('0').trim_end_matches('.'),
            flags.join(" ")
        );
        let text = super::fit(&text, inner_w);
        lines.push(if is_cur { Line::styled(text, t.highlight()) } else { Line::from(text) });
    }
    let title = match cur {
        Some(e) => format!("schedule  epoch {e} of {n}  ({done} done)"),
        None => format!("schedule  {n} epochs"),
    };
    let inner_h = area.height.saturating_sub(2) as usize;
    while lines.len() + 1 < inner_h {
        lines.push(Line::from(""));
    }
    lines.push(legend);
    f.render_widget(Paragraph::new(lines).block(block(title, t)), area);
}
