//! The viewer's state and what each key does to it. No I/O here: keys in, state and an
//! [`Action`] out, so key handling is tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// How the viewer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewExit {
    /// The run was not running (finished, stopped, failed or not started): nothing to detach from.
    Quit,
    /// Leave the viewer; training goes on.
    Detach,
    /// The user asked to stop training (the caller sends the stop request).
    Stop,
    /// The run finished and the viewer was asked to leave then (`ViewOptions::exit_when_done`).
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Charts,
    Schedule,
    Heads,
    Log,
}

impl Screen {
    pub const ALL: [Screen; 5] = [Screen::Overview, Screen::Charts, Screen::Schedule, Screen::Heads, Screen::Log];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Charts => "Charts",
            Screen::Schedule => "Schedule",
            Screen::Heads => "Heads",
            Screen::Log => "Log",
        }
    }

    pub fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    fn next(self) -> Screen {
        Screen::ALL[(self.index() + 1) % Screen::ALL.len()]
    }

    fn prev(self) -> Screen {
        Screen::ALL[(self.index() + Screen::ALL.len() - 1) % Screen::ALL.len()]
    }
}

/// What is drawn over the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    /// Every key.
    Help,
    /// "detach (d) / stop training (s) / cancel (esc)".
    Quit,
    /// The dataset files the add key offers ([`State::candidates`]), one selected.
    Add {
        selected: usize,
    },
}

/// Which model's metric the charts show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSel {
    Teacher,
    Student,
}

impl ModelSel {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSel::Teacher => "teacher",
            ModelSel::Student => "student",
        }
    }
}

/// Which events the log shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelFilter {
    All,
    Info,
    Warn,
    Error,
}

impl LevelFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelFilter::All => "all",
            LevelFilter::Info => "info",
            LevelFilter::Warn => "warn",
            LevelFilter::Error => "error",
        }
    }

    pub fn accepts(self, level: &str) -> bool {
        self == LevelFilter::All || self.as_str() == level
    }

    fn next(self) -> LevelFilter {
        match self {
            LevelFilter::All => LevelFilter::Info,
            LevelFilter::Info => LevelFilter::Warn,
            LevelFilter::Warn => LevelFilter::Error,
            LevelFilter::Error => LevelFilter::All,
        }
    }
}

/// What the event loop does after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed: no redraw.
    None,
    Redraw,
    Exit(ViewExit),
    /// Send this command to the trainer ("pause", "resume", "export"); the reply is shown.
    Send(&'static str),
    /// List the dataset files the experiment's `watch` folders offer ([`State::open_add`]).
    OpenAdd,
    /// Ask the trainer to add this dataset file (`add FILE`): it validates, then queues it for
    /// the next epoch boundary; the reply is shown.
    Add(std::path::PathBuf),
}

/// Layout facts the last draw found, fed back so keys can move in the grid the user sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drawn {
    pub charts: usize,
    pub chart_cols: usize,
    /// First plan row shown on the schedule screen.
    pub schedule_top: usize,
    /// Plan rows that fit on the schedule screen.
    pub schedule_rows: usize,
    /// Event lines that fit on the log screen.
    pub log_rows: usize,
    /// How far the log can scroll up.
    pub log_max_scroll: usize,
}

/// The cycles the charts show: all of them, or `span` cycles ending `back` cycles before the
/// last one (the running one while training).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChartWindow {
    pub span: Option<usize>,
    pub back: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub screen: Screen,
    pub window: ChartWindow,
    pub overlay: Overlay,
    pub model: ModelSel,
    /// The selected chart fills the charts screen.
    pub zoom: bool,
    /// The zoomed chart also draws one line per label (a, b, c, …).
    pub per_label: bool,
    /// Selected chart (index into the charts screen's grid).
    pub chart: usize,
    pub level: LevelFilter,
    /// Log lines scrolled up from the newest (0 = follow the tail).
    pub log_scroll: usize,
    /// First plan row shown; `None` = keep the current epoch in view.
    pub schedule_top: Option<usize>,
    /// Whether the quit dialog offers "stop training".
    pub can_stop: bool,
    /// From the last draw.
    pub drawn: Drawn,
    /// The trainer's answer to the last command, shown in the key bar.
    pub message: Option<String>,
    /// What the add overlay lists.
    pub candidates: Vec<fx_run::hot_add::Candidate>,
}

impl Default for State {
    fn default() -> Self {
        State::new(true)
    }
}

impl State {
    pub fn new(can_stop: bool) -> State {
        State {
            screen: Screen::Overview,
            window: ChartWindow::default(),
            overlay: Overlay::None,
            model: ModelSel::Teacher,
            zoom: false,
            per_label: false,
            chart: 0,
            level: LevelFilter::All,
            log_scroll: 0,
            schedule_top: None,
            can_stop,
            drawn: Drawn::default(),
            message: None,
            candidates: Vec::new(),
        }
    }

    /// Opens the add overlay on these dataset files.
    pub fn open_add(&mut self, candidates: Vec<fx_run::hot_add::Candidate>) {
        self.candidates = candidates;
        self.overlay = Overlay::Add { selected: 0 };
    }

    /// Applies one key. `running`: whether the trainer is running (then quitting asks whether to
    /// detach or stop; otherwise it just quits).
    pub fn handle_key(&mut self, key: KeyEvent, running: bool) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        match self.overlay {
            Overlay::Quit => {
                return match key.code {
                    _ if ctrl_c => Action::Exit(ViewExit::Detach),
                    KeyCode::Char('d') | KeyCode::Char('q') => Action::Exit(ViewExit::Detach),
                    KeyCode::Char('s') if self.can_stop => Action::Exit(ViewExit::Stop),
                    KeyCode::Esc | KeyCode::Char('c') | KeyCode::Char('n') => {
                        self.overlay = Overlay::None;
                        Action::Redraw
                    }
                    _ => Action::None,
                }
            }
            Overlay::Help => {
                if ctrl_c {
                    return self.quit(running);
                }
                self.overlay = Overlay::None;
                return Action::Redraw;
            }
            Overlay::Add { selected } => {
                let n = self.candidates.len();
                return match key.code {
                    _ if ctrl_c => self.quit(running),
                    KeyCode::Esc | KeyCode::Char('q') => {
                        self.overlay = Overlay::None;
                        Action::Redraw
                    }
                    KeyCode::Down if selected + 1 < n => {
                        self.overlay = Overlay::Add { selected: selected + 1 };
                        Action::Redraw
                    }
                    KeyCode::Up if selected > 0 => {
                        self.overlay = Overlay::Add { selected: selected - 1 };
                        Action::Redraw
                    }
                    KeyCode::Enter | KeyCode::Char('y') if selected < n => {
                        self.overlay = Overlay::None;
                        Action::Add(self.candidates[selected].file.clone())
                    }
                    _ => Action::None,
                };
            }
            Overlay::None => {}
        }
        if ctrl_c {
            return self.quit(running);
        }
        let before = self.clone();
        match key.code {
            KeyCode::Char('q') => return self.quit(running),
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Char(c @ '1'..='5') => self.screen = Screen::ALL[(c as u8 - b'1') as usize],
            KeyCode::Tab => self.screen = self.screen.next(),
            KeyCode::BackTab => self.screen = self.screen.prev(),
            KeyCode::Char('t') => {
                self.model = match self.model {
                    ModelSel::Teacher => ModelSel::Student,
                    ModelSel::Student => ModelSel::Teacher,
                }
            }
            KeyCode::Char('l') => {
                self.level = self.level.next();
                self.log_scroll = 0;
            }
            KeyCode::Char('p') if running => return Action::Send("pause"),
            KeyCode::Char('r') if running => return Action::Send("resume"),
            KeyCode::Char('e') => return Action::Send("export"),
            KeyCode::Char('a') => return Action::OpenAdd,
            code => match self.screen {
                Screen::Charts => self.charts_key(code),
                Screen::Schedule => self.schedule_key(code),
                Screen::Log => self.log_key(code),
                _ => {}
            },
        }
        if *self == before {
            Action::None
        } else {
            Action::Redraw
        }
    }

    fn quit(&mut self, running: bool) -> Action {
        if running {
            self.overlay = Overlay::Quit;
            Action::Redraw
        } else {
            Action::Exit(ViewExit::Quit)
        }
    }

    fn charts_key(&mut self, code: KeyCode) {
        let n = self.drawn.charts.max(1);
        let cols = self.drawn.chart_cols.max(1);
        match code {
            KeyCode::Enter => self.zoom = !self.zoom,
            KeyCode::Esc => self.zoom = false,
            KeyCode::Char('L') if self.zoom => self.per_label = !self.per_label,
            KeyCode::Right => self.chart = (self.chart + 1) % n,
            KeyCode::Left => self.chart = (self.chart + n - 1) % n,
            KeyCode::Down if !self.zoom && self.chart + cols < n => self.chart += cols,
            KeyCode::Up if !self.zoom && self.chart >= cols => self.chart -= cols,
            KeyCode::Down | KeyCode::Up if self.zoom => {
                self.chart = if code == KeyCode::Down { (self.chart + 1) % n } else { (self.chart + n - 1) % n }
            }
            // The window of cycles: w whole run / last 2 cycles, [ ] earlier / later, - + narrower / wider.
            KeyCode::Char('w') => {
                self.window = if self.window.span.is_some() {
                    ChartWindow::default()
                } else {
                    ChartWindow { span: Some(2), back: 0 }
                }
            }
            KeyCode::Char('[') if self.window.span.is_some() => self.window.back += 1,
            KeyCode::Char(']') => self.window.back = self.window.back.saturating_sub(1),
            KeyCode::Char('-') => self.window.span = Some(self.window.span.map_or(2, |s| s.saturating_sub(1).max(1))),
            KeyCode::Char('+') | KeyCode::Char('=') if self.window.span.is_some() => {
                self.window.span = self.window.span.map(|s| s + 1)
            }
            _ => {}
        }
    }

    fn schedule_key(&mut self, code: KeyCode) {
        let top = self.schedule_top.unwrap_or(self.drawn.schedule_top);
        let page = self.drawn.schedule_rows.max(1);
        self.schedule_top = match code {
            KeyCode::Down => Some(top + 1),
            KeyCode::Up => Some(top.saturating_sub(1)),
            KeyCode::PageDown => Some(top + page),
            KeyCode::PageUp => Some(top.saturating_sub(page)),
            KeyCode::Home => Some(0),
            KeyCode::End | KeyCode::Char('c') => None,
            _ => self.schedule_top,
        };
    }

    fn log_key(&mut self, code: KeyCode) {
        let page = self.drawn.log_rows.max(1);
        match code {
            KeyCode::Up => self.log_scroll += 1,
            KeyCode::Down => self.log_scroll = self.log_scroll.saturating_sub(1),
            KeyCode::PageUp => self.log_scroll += page,
            KeyCode::PageDown => self.log_scroll = self.log_scroll.saturating_sub(page),
            KeyCode::End | KeyCode::Char('G') | KeyCode::Char('c') => self.log_scroll = 0,
            KeyCode::Home | KeyCode::Char('g') => self.log_scroll = usize::MAX / 2,
            _ => {}
        }
    }

    /// Records the layout of the last draw, clamping selections to what exists.
    pub fn after_draw(&mut self, drawn: Drawn) {
        self.drawn = drawn;
        if drawn.charts > 0 && self.chart >= drawn.charts {
            self.chart = drawn.charts - 1;
        }
        self.log_scroll = self.log_scroll.min(drawn.log_max_scroll);
        if let Some(top) = self.schedule_top {
            if top != drawn.schedule_top {
                self.schedule_top = Some(drawn.schedule_top);
            }
        }
    }
}

/// The keys, for the help overlay: (keys, what they do).
pub const KEYS: &[(&str, &str)] = &[
    ("1-5 Tab", "switch screen (S-Tab: back)"),
    ("?", "this help"),
    ("q Ctrl-C", "quit: d detach, s stop training, esc cancel"),
    ("t", "charts: teacher or student"),
    ("arrows", "charts: select; schedule, log: scroll"),
    ("Enter Esc", "charts: zoom in, back to the grid"),
    ("L", "zoomed chart: a line per label (a, b, c, …)"),
    ("w [ ] - +", "charts: whole run / last 2 cycles, earlier / later, fewer / more cycles"),
    ("PgUp PgDn", "schedule, log: scroll a page"),
    ("c End", "schedule, log: follow the current epoch / newest"),
    ("Home", "schedule, log: top"),
    ("l", "log: level all, info, warn, error"),
    ("p r", "pause / resume training (after the current step)"),
    ("e", "export charts and tables now (into the run's export/ folder)"),
    ("a", "add a dataset of the watch folders (it joins at the next epoch)"),
];

/// The epochs the charts' window covers, and a title for it ("cycles 19–20 of 20"); `None` for
/// the whole run. The window is clamped to the cycles the plan has.
pub fn window_epochs(store: &fx_run::Store, w: ChartWindow) -> Option<((usize, usize), String)> {
    let span = w.span?;
    let cycles = fx_run::facts::cycles_total(store).max(1);
    let last_cycle = cycles.saturating_sub(w.back).max(span.min(cycles)).max(1);
    let first_cycle = last_cycle.saturating_sub(span - 1).max(1);
    let epochs: Vec<usize> =
        store.plan.iter().filter(|p| p.cycle >= first_cycle && p.cycle <= last_cycle).map(|p| p.epoch).collect();
    let (a, b) = (*epochs.iter().min()?, *epochs.iter().max()?);
    let title = if first_cycle == last_cycle {
        format!("cycle {first_cycle} of {cycles}")
    } else {
        format!("cycles {first_cycle}-{last_cycle} of {cycles}")
    };
    Some(((a, b), title))
}
