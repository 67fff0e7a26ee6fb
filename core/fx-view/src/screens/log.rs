//! Log: `events.jsonl`, newest at the bottom, filtered by level (`l`), scrollable; problems met
//! reading the run directory are listed first.

use super::{block, fit};
use crate::screens::View;
use crate::state::Drawn;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// "19:22:47" out of an RFC 3339 time; the whole string when it has no time part.
fn clock(time: &str) -> &str {
    time.get(11..19).unwrap_or(time)
}

pub fn draw(f: &mut Frame, area: Rect, v: &View, drawn: &mut Drawn) {
    let t = v.theme;
    let s = v.store;
    let filter = v.state.level;
    let inner_w = area.width.saturating_sub(2) as usize;
    let inner_h = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = s
        .problems
        .iter()
        .map(|(file, msg)| Line::styled(fit(&format!("! {file}: {msg}"), inner_w), t.level_style("warn")))
        .collect();
    let events: Vec<_> = s.events.iter().filter(|e| filter.accepts(&e.level)).collect();
    let rows = inner_h.saturating_sub(lines.len());
    let max_scroll = events.len().saturating_sub(rows);
    let scroll = v.state.log_scroll.min(max_scroll);
    drawn.log_rows = rows;
    drawn.log_max_scroll = max_scroll;
    let end = events.len() - scroll;
    let start = end.saturating_sub(rows);
    if events.is_empty() {
        lines.push(Line::from(if s.events.is_empty() { "no events yet" } else { "no events at this level" }));
    }
    let kw = events[start..end].iter().map(|e| e.kind.chars().count()).max().unwrap_or(0).clamp(8, 20);
    for e in &events[start..end] {
        let mut text = format!("{} {:<5} {:<kw$} {}", clock(&e.time), e.level.to_uppercase(), e.kind, e.message);
        if !e.data.is_null() {
            text.push_str(&format!("  {}", e.data));
        }
        lines.push(Line::styled(fit(&text, inner_w), t.level_style(&e.level)));
    }
    let follow = if scroll == 0 { "following".to_string() } else { format!("{scroll} up") };
    let title = format!("log  level {} (l)  {} of {} events  {follow}", filter.as_str(), events.len(), s.events.len());
    f.render_widget(Paragraph::new(lines).block(block(title, t)), area);
}
