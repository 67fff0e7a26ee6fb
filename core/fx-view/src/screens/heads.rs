//! Heads: the shared components and every dataset's task heads with their labels, and which of
//! them train in the current epoch.

use super::{block, fit, pad};
use crate::screens::View;
use fx_run::facts;
use fx_run::{group_is_per_dataset, head_group, GROUPS};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let s = v.store;
    let cur = facts::current_epoch(s).and_then(|e| facts::plan_of(s, e));
    let shared: Vec<&str> = GROUPS.into_iter().filter(|g| !group_is_per_dataset(g)).collect();
    let [top, bottom] = Layout::vertical([Constraint::Length(shared.len() as u16 + 2), Constraint::Min(3)]).areas(area);

    // Shared components.
    let mut lines = Vec::new();
    for g in &shared {
        let state = match cur.map(|p| p.trainable.get(g)) {
            Some(Some(true)) => "trainable".to_string(),
            Some(Some(false)) => format!("frozen ({})", cur.map_or("", |p| p.mode.as_str())),
            Some(None) => "- not on this epoch's path".into(),
            None => "-".into(),
        };
        let trained = s.plan.iter().filter(|p| p.trainable.get(g) == Some(true)).count();
        let params = s.model.parameters.get(*g).map(|n| human(*n)).unwrap_or_else(|| "-".into());
        let line = format!("{:<12} {:>7} {:<28} trains in {trained} of {} epochs", g, params, state, s.plan.len());
        let line = fit(&line, area.width.saturating_sub(2) as usize);
        lines.push(if state == "trainable" { Line::styled(line, t.title()) } else { Line::from(line) });
    }
    let title = match cur {
        Some(p) => format!("shared  {}  {} {} {}", crate::screens::epoch_line(s, t), p.dataset, p.task, p.mode),
        None => "shared".into(),
    };
    f.render_widget(Paragraph::new(lines).block(block(title, t)), top);

    // Per-dataset heads.
    let inner_w = bottom.width.saturating_sub(2) as usize;
    let dw = 14.min(inner_w / 4);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {} {:<4} {:<12} {:>7} {:<9} {:>6} {}",
            pad("dataset", dw),
            "task",
            "head",
            "params",
            "state",
            "epochs",
            "labels"
        ),
        t.dim(),
    ))];
    let pairs = facts::pairs(s);
    if pairs.is_empty() {
        lines.push(Line::from("  no datasets yet (waiting for plan.json)"));
    }
    for (d, task) in &pairs {
        let head = head_group(task);
        let active = cur.is_some_and(|p| &p.dataset == d && &p.task == task);
        let trainable = active && cur.is_some_and(|p| p.trainable.get(head) == Some(true));
        let state = if trainable { "trainable" } else { "frozen" };
        let epochs = s.plan.iter().filter(|p| &p.dataset == d && &p.task == task).count();
        // A head's kind where model.json records it; mutually exclusive labels (softmax) read
        // "one of".
        let kind = s.model.head_kind(d, task);
        let one_of =
            if kind.is_some_and(|(_, mode)| mode == fx_run::model::LabelMode::MultiClass) { "one of: " } else { "" };
        let labels = match facts::labels(s, d, task) {
            Some(l) => format!("{} {one_of}{}", l.len(), l.join(" ")),
            None => "? (after the first evaluation)".into(),
        };
        let head = kind.map_or(head, |(kind, _)| kind);
        let mark = if active { t.current } else { " " };
        let params = s
            .model
            .parameters
            .get(&format!("{}.{d}", head_group(task)))
            .map(|n| human(*n))
            .unwrap_or_else(|| "-".into());
        let text =
            format!("{mark} {} {:<4} {:<12} {params:>7} {:<9} {:>6} {labels}", pad(d, dw), task, head, state, epochs);
        let text = fit(&text, inner_w);
        lines.push(if trainable { Line::styled(text, t.highlight()) } else { Line::from(text) });
    }
    let total: i64 = s.model.parameters.values().sum();
    let title = if total > 0 {
        format!("datasets and heads  ({} trains this epoch; model {} parameters)", t.current, human(total))
    } else {
        format!("datasets and heads  ({} trains this epoch)", t.current)
    };
    f.render_widget(Paragraph::new(lines).block(block(title, t)), bottom);
}

/// 86743224 → "86.74M", 5376 → "5.4k".
fn human(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
