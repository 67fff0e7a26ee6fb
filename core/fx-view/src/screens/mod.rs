//! The five screens. Each draws into the area between the tab bar and the key bar.

pub mod charts;
pub mod compare;
pub mod heads;
pub mod log;
pub mod overview;
pub mod runs;
pub mod schedule;

use crate::state::State;
use crate::theme::Theme;
use fx_run::facts;
use fx_run::store::Store;
use ratatui::widgets::{Block, Borders};

/// A bordered block with the theme's border glyphs.
pub fn block<'a>(title: impl Into<String>, t: &Theme) -> Block<'a> {
    let title: String = title.into();
    let b = Block::default().borders(Borders::ALL).border_set(t.border);
    if title.is_empty() {
        b
    } else {
        b.title(format!(" {title} ")).title_style(t.title())
    }
}

/// `s` cut to `w` characters, the last one replaced by the ellipsis when cut.
pub fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('~');
    out
}

/// `s` cut or padded to exactly `w` characters.
pub fn pad(s: &str, w: usize) -> String {
    let f = fit(s, w);
    let n = f.chars().count();
    format!("{f}{}", " ".repeat(w - n))
}

/// A text gauge `█████░░░░░` of `w` cells filled to `frac`.
pub fn bar(frac: f64, w: usize, t: &Theme) -> String {
    let frac = if frac.is_finite() { frac.clamp(0.0, 1.0) } else { 0.0 };
    let full = (frac * w as f64).round() as usize;
    let mut s = String::with_capacity(w * 3);
    s.extend(std::iter::repeat_n(t.gauge_full, full));
    s.extend(std::iter::repeat_n(t.gauge_empty, w - full));
    s
}

/// The last `w` values as a sparkline, scaled between their min and max.
pub fn sparkline(values: &[f64], w: usize, t: &Theme) -> String {
    let vals: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let vals = &vals[vals.len().saturating_sub(w)..];
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let n = t.spark.len();
    vals.iter()
        .map(|v| {
            let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            t.spark[((f * (n - 1) as f64).round() as usize).min(n - 1)]
        })
        .collect()
}

/// "T" trainable, "F" frozen, "-" not on the path.
pub fn flag(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "T",
        Some(false) => "F",
        None => "-",
    }
}

pub fn opt_value(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// Everything one frame depends on.
pub struct View<'a> {
    pub store: &'a Store,
    pub state: &'a State,
    pub theme: &'a Theme,
    /// Seconds since the Unix epoch, for the heartbeat age; `None` hides the age (tests).
    pub now: Option<i64>,
}

/// The epoch facts line used by the overview and the heads screen: "epoch 6/6 · cycle 2/2".
pub fn epoch_line(store: &Store, t: &Theme) -> String {
    match facts::current_epoch(store) {
        Some(e) => format!(
            "epoch {e}/{} {} cycle {}/{}",
            facts::epochs_total(store),
            t.sep,
            facts::plan_of(store, e).map_or(0, |p| p.cycle),
            facts::cycles_total(store)
        ),
        None => "no epoch yet".into(),
    }
}
