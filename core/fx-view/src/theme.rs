//! Glyph sets: unicode, or plain ASCII (`--ascii`) for terminals and fonts that lack box drawing.
//! Every distinction the viewer makes is carried by a glyph or a word; colour only repeats it.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

#[derive(Clone, Debug)]
pub struct Theme {
    pub ascii: bool,
    /// A focused metric point (the epoch trained this dataset and task).
    pub focused: char,
    /// An unfocused metric point.
    pub unfocused: char,
    /// The segments joining consecutive points.
    pub line: char,
    /// The best focused value so far.
    pub best: char,
    /// A column's range of unfocused values when epochs outnumber columns.
    pub range: char,
    /// The current epoch's row marker.
    pub current: &'static str,
    /// A finished epoch's row marker.
    pub done: &'static str,
    pub gauge_full: char,
    pub gauge_empty: char,
    /// Sparkline levels, lowest first.
    pub spark: &'static [char],
    pub border: border::Set<'static>,
    pub vbar: &'static str,
    pub sep: &'static str,
}

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    pub fn unicode() -> Theme {
        Theme {
            ascii: false,
            focused: '◆',
            unfocused: '•',
            line: '·',
            best: '─',
            range: '┆',
            current: "▶",
            done: "✓",
            gauge_full: '█',
            gauge_empty: '░',
            spark: &['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'],
            border: border::PLAIN,
            vbar: "│",
            sep: "·",
        }
    }

    pub fn ascii() -> Theme {
        Theme {
            ascii: true,
            focused: 'F',
            unfocused: 'o',
            line: '.',
            best: '-',
            range: ':',
            current: ">",
            done: "+",
            gauge_full: '#',
            gauge_empty: '.',
            spark: &['_', '.', '-', '~', '=', '+', '*', '#'],
            border: ASCII_BORDER,
            vbar: "|",
            sep: "|",
        }
    }

    pub fn new(ascii: bool) -> Theme {
        if ascii {
            Theme::ascii()
        } else {
            Theme::unicode()
        }
    }

    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        Style::default().fg(Color::DarkGray)
    }

    pub fn highlight(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn focused_style(&self) -> Style {
        Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn unfocused_style(&self) -> Style {
        Style::default().fg(Color::Cyan)
    }

    pub fn best_style(&self) -> Style {
        Style::default().fg(Color::Green)
    }

    pub fn level_style(&self, level: &str) -> Style {
        match level {
            "error" => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            "warn" => Style::default().fg(Color::Yellow),
            _ => Style::default(),
        }
    }

    pub fn status_style(&self, status: &str) -> Style {
        match status {
            "running" => Style::default().fg(Color::Green).add_modifier(Modifier::BOLD),
            "paused" => Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            "failed" => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            "stopped" => Style::default().fg(Color::Yellow),
            _ => Style::default().add_modifier(Modifier::BOLD),
        }
    }
}

/// Whether the locale asks for UTF-8 (LC_ALL, then LC_CTYPE, then LANG); callers may use it to
/// pick `--ascii` by default.
pub fn locale_is_utf8() -> bool {
    for key in ["LC_ALL", "LC_CTYPE", "LANG"] {
        if let Ok(v) = std::env::var(key) {
            if !v.is_empty() {
                let v = v.to_ascii_lowercase();
                return v.contains("utf-8") || v.contains("utf8");
            }
        }
    }
    false
}
