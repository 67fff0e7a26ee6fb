//! One frame: the tab bar, the current screen, the key bar, and the help or quit overlay.

use crate::screens::{self, fit};
use crate::state::{Drawn, Overlay, Screen, KEYS};
use crate::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

pub use crate::screens::View;

/// Draws one frame and reports the layout facts the key handling needs.
pub fn draw(f: &mut Frame, v: &View) -> Drawn {
    let area = f.area();
    let mut drawn = v.state.drawn;
    if area.height < 3 || area.width < 20 {
        f.render_widget(Paragraph::new("terminal too small"), area);
        return drawn;
    }
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    tabs(f, top, v);
    match v.state.screen {
        Screen::Overview => screens::overview::draw(f, body, v),
        Screen::Charts => screens::charts::draw(f, body, v, &mut drawn),
        Screen::Schedule => screens::schedule::draw(f, body, v, &mut drawn),
        Screen::Heads => screens::heads::draw(f, body, v),
        Screen::Log => screens::log::draw(f, body, v, &mut drawn),
    }
    keybar(f, bottom, v);
    match v.state.overlay {
        Overlay::Help => help(f, body, v),
        Overlay::Quit => quit(f, body, v),
        Overlay::Add { selected } => add(f, body, v, selected),
        Overlay::None => {}
    }
    drawn
}

/// `[1 Overview] 2 Charts …` on the left (the current one bracketed and reversed), the run's name
/// and status on the right.
fn tabs(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let mut spans = Vec::new();
    for (i, s) in Screen::ALL.iter().enumerate() {
        let label = format!("{} {}", i + 1, s.title());
        if *s == v.state.screen {
            spans.push(Span::styled(format!("[{label}]"), t.highlight()));
        } else {
            spans.push(Span::raw(format!(" {label} ")));
        }
    }
    let used = Line::from(spans.clone()).width() + 1;
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    let name =
        v.store.experiment.as_ref().map(|e| e.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| "fx".into());
    let status = v.store.run.as_ref().map(|r| r.status.clone()).unwrap_or_else(|| "waiting".into());
    let room = (area.width as usize).saturating_sub(used);
    let right = fit(&format!("{name} {} {status}", t.sep), room);
    let w = right.chars().count() as u16;
    if w > 0 {
        let r = Rect { x: area.x + area.width - w, width: w, ..area };
        f.render_widget(Paragraph::new(Line::from(Span::styled(right, t.status_style(&status)))), r);
    }
}

/// The keys of the current screen.
fn keybar(f: &mut Frame, area: Rect, v: &View) {
    let specific = match v.state.screen {
        Screen::Overview => "",
        Screen::Charts => {
            if v.state.zoom {
                "t teacher/student  arrows next  Esc grid  w [ ] cycles  L labels  "
            } else {
                "t teacher/student  arrows select  Enter zoom  w [ ] cycles  "
            }
        }
        Screen::Schedule => "arrows/PgUp/PgDn scroll  c follow  ",
        Screen::Heads => "",
        Screen::Log => "l level  arrows/PgUp/PgDn scroll  End follow  ",
    };
    let text = match &v.state.message {
        Some(m) => format!(" {m} | {specific}p pause  r resume  e export  ? keys  q quit"),
        None => format!(" {specific}1-5/Tab screens  p pause  r resume  e export  ? keys  q quit"),
    };
    f.render_widget(Paragraph::new(fit(&text, area.width as usize)).style(v.theme.dim()), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn help(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let kw = KEYS.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = KEYS.iter().map(|(k, d)| Line::from(format!("{k:<kw$}  {d}"))).collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "charts: {} focused epoch  {} unfocused  {}{} joined  {}{} best focused",
        t.focused, t.unfocused, t.line, t.line, t.best, t.best
    )));
    lines.push(Line::from(format!(
        "schedule: {} current  {} done  T trainable  F frozen  - off the path",
        t.current, t.done
    )));
    let w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 4;
    let r = centered(area, w, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(screens::block("keys (any key closes)", t)), r);
}

fn quit(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let mut lines = vec![Line::from("The trainer is still running."), Line::from("")];
    lines.push(Line::from("  d  detach: leave it training"));
    if v.state.can_stop {
        lines.push(Line::from("  s  stop training (resumable)"));
    }
    lines.push(Line::from("esc  cancel"));
    let w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 4;
    let r = centered(area, w, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(screens::block("quit", t)).style(Style::default()), r);
}

/// The add key's list: the dataset files of the experiment's watch folders not in the run yet.
fn add(f: &mut Frame, area: Rect, v: &View, selected: usize) {
    let t = v.theme;
    let mut lines = Vec::new();
    if v.state.candidates.is_empty() {
        let watch = v.store.experiment.as_ref().map(|e| e.watch.clone()).unwrap_or_default();
        lines.push(Line::from("No dataset file to add."));
        lines.push(Line::from(if watch.is_empty() {
            "Name folders of [[datasets]] TOMLs in the experiment's watch = [...],".to_string()
        } else {
            let w: Vec<String> = watch.iter().map(|p| p.display().to_string()).collect();
            format!("Put a TOML of [[datasets]] tables in {},", w.join(", "))
        }));
        lines.push(Line::from("or copy it with its libraries into the run's plugins/ folder."));
        lines.push(Line::from(""));
        lines.push(Line::from("esc  close"));
    } else {
        for (i, c) in v.state.candidates.iter().enumerate() {
            let mark = if i == selected { t.current } else { " " };
            let names =
                if c.datasets.is_empty() { "(unreadable: adding says why)".into() } else { c.datasets.join(", ") };
            let file = c.file.file_name().unwrap_or_default().to_string_lossy();
            let text = format!("{mark} {file}  {names}");
            lines.push(if i == selected { Line::styled(text, t.highlight()) } else { Line::from(text) });
        }
        lines.push(Line::from(""));
        lines.push(Line::from("enter  add: checked now, joins at the next epoch boundary"));
        lines.push(Line::from("arrows select   esc cancel"));
    }
    let w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 4;
    let r = centered(area, w, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(screens::block("add a dataset", t)), r);
}

/// One frame of the runs browser: the comparison when one is open, else the table.
pub fn draw_browser(f: &mut Frame, b: &mut crate::browser::Browser, runs: &crate::runs::Runs, t: &Theme) {
    let area = f.area();
    if area.height < 6 || area.width < 30 {
        f.render_widget(Paragraph::new("terminal too small"), area);
        return;
    }
    match &b.comparison {
        Some(c) => screens::compare::draw(f, area, c, t),
        None => screens::runs::draw(f, area, b, runs, t),
    }
}
