//! The runs browser's table: one row per run, columns dropped from the right (least needed
//! first) when the terminal is narrow, the sort column marked, a prompt line for filter, tags and
//! confirmations.

use crate::browser::{Browser, Column, Item, Prompt};
use crate::runs::{RunRow, Runs};
use crate::screens::{fit, pad};
use crate::theme::Theme;
use fx_run::facts::fmt_age;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

/// The keys, in the order the key bar lists them.
pub const KEYS: &str = "Enter open  space mark  c compare  / filter  f status  s/S sort  g sweeps  p pause/resume  x stop  t tag  d delete  ? help  q quit";

/// Width of each column (Run is elastic), and the order in which narrow terminals drop them.
fn width(c: Column) -> usize {
    match c {
        Column::Run => 20,
        Column::Status => 9,
        Column::Progress => 7,
        Column::Device => 8,
        Column::Started => 11,
        Column::Duration => 7,
        Column::Cls | Column::Loc | Column::Seg => 5,
        Column::Tags => 12,
    }
}

const DROP_ORDER: [Column; 4] = [Column::Tags, Column::Device, Column::Duration, Column::Started];

/// The columns that fit in `w` cells (with one-cell gaps and the 2-cell mark).
pub fn columns(w: usize) -> Vec<Column> {
    let mut cols: Vec<Column> = Column::ALL.to_vec();
    let need = |cols: &[Column]| 2 + cols.iter().map(|c| width(*c) + 1).sum::<usize>();
    for d in DROP_ORDER {
        if need(&cols) <= w {
            break;
        }
        cols.retain(|c| *c != d);
    }
    cols
}

fn status_text(r: &RunRow, t: &Theme) -> String {
    let mut s = r.status.as_str().to_string();
    if r.gone || r.stale {
        s.push_str(if t.ascii { "!" } else { "⚠" });
    }
    s
}

fn cell(r: &RunRow, c: Column, t: &Theme) -> String {
    match c {
        Column::Run => r.id.clone(),
        Column::Status => status_text(r, t),
        Column::Progress => {
            if r.epochs_total > 0 {
                format!("{}/{}", r.epochs_done, r.epochs_total)
            } else {
                "-".into()
            }
        }
        Column::Device => {
            if r.world_size > 1 {
                format!("{}×{}", r.device, r.world_size)
            } else if r.device.is_empty() {
                "-".into()
            } else {
                r.device.clone()
            }
        }
        // "2026-11-27T19:31:24+01:00" → "11-27 19:31" (the trainer's local time).
        Column::Started => r.started_text.get(5..16).map(|s| s.replacen('T', " ", 1)).unwrap_or_else(|| "-".into()),
        Column::Duration => r.duration().map(fmt_age).unwrap_or_else(|| "-".into()),
        Column::Cls | Column::Loc | Column::Seg => {
            r.main.get(c.title()).map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
        }
        Column::Tags => r.tags.join(","),
    }
}

fn right_aligned(c: Column) -> bool {
    matches!(c, Column::Progress | Column::Duration | Column::Cls | Column::Loc | Column::Seg)
}

fn line_of(cols: &[Column], run_w: usize, texts: impl Fn(Column) -> String) -> String {
    let mut out = String::new();
    for c in cols {
        let w = if *c == Column::Run { run_w } else { width(*c) };
        let s = fit(&texts(*c), w);
        if right_aligned(*c) {
            out.push_str(&format!("{s:>w$} "));
        } else {
            out.push_str(&pad(&s, w));
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

/// Draws the browser (the comparison is [`super::compare::draw`]). Records the page size.
pub fn draw(f: &mut Frame, area: Rect, b: &mut Browser, runs: &Runs, t: &Theme) {
    let [top, body, prompt, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)])
            .areas(area);
    let items = b.items(runs);
    let total = runs.rows().len();
    let live = runs.rows().iter().filter(|r| r.status.is_live() && !r.gone).count();
    let folders: Vec<String> = runs.folders.iter().map(|d| d.display().to_string()).collect();
    let mut head = format!(
        " fx runs {} {} of {total} shown {} {live} live",
        t.sep,
        items.iter().filter(|i| matches!(i, Item::Run(_))).count(),
        t.sep
    );
    if !b.marked.is_empty() {
        head.push_str(&format!(" {} {} marked", t.sep, b.marked.len()));
    }
    head.push_str(&format!(" {} {}", t.sep, folders.join(", ")));
    f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&head, area.width as usize), t.title()))), top);

    // Header row + rows.
    let w = body.width as usize;
    let cols = columns(w);
    let fixed: usize = 2 + cols.iter().filter(|c| **c != Column::Run).map(|c| width(*c) + 1).sum::<usize>();
    let run_w = w.saturating_sub(fixed + 1).max(8);
    let arrow = if b.reverse {
        if t.ascii {
            "v"
        } else {
            "↓"
        }
    } else if t.ascii {
        "^"
    } else {
        "↑"
    };
    let header =
        line_of(&cols, run_w, |c| if c == b.sort { format!("{}{arrow}", c.title()) } else { c.title().to_string() });
    let mut lines = vec![Line::from(Span::styled(format!("  {header}"), t.title()))];
    let page = (body.height as usize).saturating_sub(1).max(1);
    b.page = page;
    b.clamp(items.len());
    if items.is_empty() {
        let why = if total == 0 {
            format!("no runs in {} (train one: fx-tui experiments/demo.toml)", folders.join(", "))
        } else {
            "no run matches the filter".to_string()
        };
        lines.push(Line::from(Span::styled(format!("  {why}"), t.dim())));
    }
    for (i, item) in items.iter().enumerate().skip(b.offset).take(page) {
        let selected = i == b.selected;
        let (text, style) = match item {
            Item::Sweep { name, runs, marked } => {
                let m = if *marked > 0 { format!(", {marked} marked") } else { String::new() };
                (
                    format!(
                        "{} sweep {name} ({runs} runs{m}) — Enter compares its cells",
                        if t.ascii { "#" } else { "▸" }
                    ),
                    t.title(),
                )
            }
            Item::Run(r) => {
                let mark = if b.marked.contains(&r.dir) {
                    if t.ascii {
                        "*"
                    } else {
                        "●"
                    }
                } else {
                    " "
                };
                let indent = if b.group && r.sweep.is_some() { " " } else { "" };
                let body = line_of(&cols, run_w.saturating_sub(indent.len()), |c| cell(r, c, t));
                let style = if r.gone || r.stale { t.level_style("warn") } else { t.status_style(r.status.as_str()) };
                let style = if r.status.is_live() || r.gone || r.stale { style } else { Style::default() };
                (format!("{mark} {indent}{body}"), style)
            }
        };
        let text = fit(&text, w);
        lines.push(Line::from(Span::styled(text, if selected { t.highlight() } else { style })));
    }
    f.render_widget(Paragraph::new(lines), body);

    // The prompt line: a question, the text being typed, or the last message.
    let selected_err = match b.items(runs).get(b.selected) {
        Some(Item::Run(r)) if r.gone => Some(format!(
            "{}: run.json says {} but its trainer is gone (resume: fx-tui --resume {})",
            r.id,
            r.status.as_str(),
            r.dir.display()
        )),
        Some(Item::Run(r)) if r.stale => {
            Some(format!("{}: no heartbeat for over {}", r.id, fmt_age(crate::runs::STALE_AFTER_S)))
        }
        Some(Item::Run(r)) => r.error.as_ref().map(|e| format!("{}: {e}", r.id)),
        _ => None,
    };
    let (p, style) = match &b.prompt {
        Prompt::Filter => (format!("filter: {}_", b.filter), t.title()),
        Prompt::Tag(d, text) => {
            (format!("tags for {} (comma-separated, empty clears): {text}_", name_of(d)), t.title())
        }
        Prompt::ConfirmDelete(d) => (format!("move {} to the trash folder? y / n", name_of(d)), t.level_style("warn")),
        Prompt::ConfirmStop(d) => {
            (format!("stop training {}? it can be resumed later. y / n", name_of(d)), t.level_style("warn"))
        }
        _ => match (&b.message, selected_err) {
            (Some(m), _) => (m.clone(), Style::default()),
            (None, Some(e)) => (e, t.level_style("warn")),
            (None, None) => {
                let mut s = format!("status: {}", b.status.title());
                if !b.filter.is_empty() {
                    s.push_str(&format!("  filter: {}", b.filter));
                }
                if b.group {
                    s.push_str("  grouped by sweep");
                }
                (s, t.dim())
            }
        },
    };
    f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&p, w), style))), prompt);
    f.render_widget(Paragraph::new(Line::from(Span::styled(fit(&format!(" {KEYS}"), w), t.dim()))), bottom);

    if b.prompt == Prompt::Help {
        help(f, body, t);
    }
}

fn name_of(d: &std::path::Path) -> String {
    d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

const HELP: [(&str, &str); 16] = [
    ("Up/Down PgUp/PgDn", "move"),
    ("Enter", "open the run in the viewer (a sweep: compare its cells)"),
    ("space", "mark / unmark (a sweep: all its runs)"),
    ("c", "compare the marked runs (or the selected run's sweep)"),
    ("u", "unmark all"),
    ("/", "filter by text (name, status, device, sweep, tags)"),
    ("f", "status filter: all / live / finished / stopped-failed-stale"),
    ("s / S", "sort by the next column / reverse"),
    ("g", "group by sweep"),
    ("p", "pause or resume the selected run's trainer"),
    ("x", "stop the selected run (asks first)"),
    ("t", "edit the selected run's tags"),
    ("d", "move a finished run to <folder>/.trash (asks first)"),
    ("cls loc seg", "latest main metric (AUC, mAP40, Dice) per task, mean over datasets"),
    ("status ! / ⚠", "trainer gone, or no heartbeat for 30 min"),
    ("q / Esc", "quit"),
];

fn help(f: &mut Frame, area: Rect, t: &Theme) {
    let w = area.width.min(76);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| Line::from(vec![Span::styled(format!("{k:>18} "), t.title()), Span::raw(what.to_string())]))
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(super::block("runs browser keys (any key closes)", t)), r);
}
