//! The runs browser: a table of every run under the known output folders, and the comparison
//! of marked runs. State and keys only (no I/O): keys in, state and a [`BrowserAction`] out; the
//! event loop ([`crate::app::browse`]) performs the actions.

use crate::runs::{RunRow, Runs, Status};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fx_run::compare::{self, Compared, Key};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The table's columns, in display order; each can be the sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Run,
    Status,
    Progress,
    Device,
    Started,
    Duration,
    Cls,
    Loc,
    Seg,
    Tags,
}

impl Column {
    pub const ALL: [Column; 10] = [
        Column::Run,
        Column::Status,
        Column::Progress,
        Column::Device,
        Column::Started,
        Column::Duration,
        Column::Cls,
        Column::Loc,
        Column::Seg,
        Column::Tags,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Run => "run",
            Column::Status => "status",
            Column::Progress => "epochs",
            Column::Device => "device",
            Column::Started => "started",
            Column::Duration => "time",
            Column::Cls => "cls",
            Column::Loc => "loc",
            Column::Seg => "seg",
            Column::Tags => "tags",
        }
    }

    fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }
}

/// Which runs the status filter keeps; `f` cycles through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    /// Running or paused.
    Live,
    Finished,
    /// Stopped, failed, or live with a stale heartbeat / gone trainer.
    Problem,
}

impl StatusFilter {
    pub fn title(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Live => "live",
            StatusFilter::Finished => "finished",
            StatusFilter::Problem => "stopped/failed/stale",
        }
    }

    fn next(self) -> StatusFilter {
        match self {
            StatusFilter::All => StatusFilter::Live,
            StatusFilter::Live => StatusFilter::Finished,
            StatusFilter::Finished => StatusFilter::Problem,
            StatusFilter::Problem => StatusFilter::All,
        }
    }

    pub fn keeps(self, r: &RunRow) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Live => r.status.is_live() && !r.gone,
            StatusFilter::Finished => r.status == Status::Finished,
            StatusFilter::Problem => matches!(r.status, Status::Stopped | Status::Failed) || r.stale || r.gone,
        }
    }
}

/// A line of the table: a sweep's header (when grouping) or a run.
// Built per frame for the rows on screen; boxing the run would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Sweep { name: String, runs: usize, marked: usize },
    Run(RunRow),
}

/// What is asked of the user over the table.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    None,
    Help,
    /// Typing the filter text.
    Filter,
    /// Typing tags for a run (comma- or space-separated).
    Tag(PathBuf, String),
    ConfirmDelete(PathBuf),
    ConfirmStop(PathBuf),
}

/// What the event loop should do after a key.
#[derive(Clone, Debug, PartialEq)]
pub enum BrowserAction {
    None,
    Redraw,
    Quit,
    /// Open the run in the viewer.
    Open(PathBuf),
    /// Send a control command ("pause", "resume", "stop") to the run's trainer.
    Send(PathBuf, &'static str),
    Tag(PathBuf, String),
    Trash(PathBuf),
    /// Open the comparison of these runs (a sweep's name when the comparison follows a sweep).
    Compare(Vec<PathBuf>, Option<String>),
}

/// The comparison screen's state.
pub struct Comparison {
    pub runs: Vec<Compared>,
    pub labels: Vec<String>,
    pub keys: Vec<Key>,
    pub key: usize,
    pub model: String,
    /// Seed groups (runs that differ only in `seed`) drawn as one mean line with a min–max band.
    pub seed_groups: bool,
    /// First line shown of the table + diff panel.
    pub scroll: usize,
    /// Follows this sweep: its new runs join as they appear.
    pub sweep: Option<String>,
}

impl Comparison {
    pub fn open(dirs: &[PathBuf], sweep: Option<String>) -> Comparison {
        let runs: Vec<Compared> = dirs.iter().map(|d| Compared::open(d)).collect();
        let mut c = Comparison {
            labels: Vec::new(),
            keys: Vec::new(),
            key: 0,
            model: compare::default_model(&runs).to_string(),
            seed_groups: false,
            scroll: 0,
            sweep,
            runs,
        };
        c.relabel();
        c
    }

    /// Re-derives labels and keys after runs changed, keeping the chosen key.
    fn relabel(&mut self) {
        let chosen = self.keys.get(self.key).cloned();
        self.labels = compare::legend_labels(&self.runs);
        // Main metrics first (what the charts of the viewer show), then the others.
        let mut keys = compare::main_keys(&self.runs);
        for k in compare::union_keys(&self.runs) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        self.keys = keys;
        self.key = chosen.and_then(|k| self.keys.iter().position(|x| *x == k)).unwrap_or(0);
    }

    pub fn current_key(&self) -> Option<&Key> {
        self.keys.get(self.key)
    }

    /// Picks up new rows of every run, and new runs of a followed sweep. True when anything changed.
    pub fn refresh(&mut self, index: &Runs) -> bool {
        let mut changed = false;
        for r in &mut self.runs {
            changed |= r.store.refresh();
        }
        if let Some(sweep) = &self.sweep {
            let new: Vec<PathBuf> = index
                .rows()
                .iter()
                .filter(|r| r.sweep.as_deref() == Some(sweep.as_str()))
                .map(|r| r.dir.clone())
                .filter(|d| !self.runs.iter().any(|c| &c.dir == d))
                .collect();
            for d in new {
                self.runs.push(Compared::open(&d));
                changed = true;
            }
        }
        if changed {
            self.relabel();
        }
        changed
    }

    fn handle_key(&mut self, k: KeyEvent) -> Option<BrowserAction> {
        match k.code {
            KeyCode::Right | KeyCode::Char('l') | KeyCode::Tab => {
                if !self.keys.is_empty() {
                    self.key = (self.key + 1) % self.keys.len();
                }
            }
            KeyCode::Left | KeyCode::Char('h') | KeyCode::BackTab => {
                if !self.keys.is_empty() {
                    self.key = (self.key + self.keys.len() - 1) % self.keys.len();
                }
            }
            KeyCode::Char('m') | KeyCode::Char('t') => {
                self.model = if self.model == "teacher" { "student".into() } else { "teacher".into() };
            }
            KeyCode::Char('a') => self.seed_groups = !self.seed_groups,
            KeyCode::Down | KeyCode::Char('j') => self.scroll += 1,
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::PageDown => self.scroll += 10,
            KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('c') | KeyCode::Backspace => return None,
            _ => return Some(BrowserAction::None),
        }
        Some(BrowserAction::Redraw)
    }
}

/// The browser's state.
pub struct Browser {
    pub sort: Column,
    /// Descending instead of the column's natural order.
    pub reverse: bool,
    pub filter: String,
    pub status: StatusFilter,
    /// Group the table by sweep.
    pub group: bool,
    /// Index into [`Browser::items`].
    pub selected: usize,
    /// First item shown (kept so the selection stays visible).
    pub offset: usize,
    pub marked: BTreeSet<PathBuf>,
    pub prompt: Prompt,
    /// A line for the user (the result of the last action).
    pub message: Option<String>,
    pub comparison: Option<Comparison>,
    /// Rows the table showed in the last frame (for paging); set by the drawing.
    pub page: usize,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            sort: Column::Started,
            reverse: true,
            filter: String::new(),
            status: StatusFilter::All,
            group: false,
            selected: 0,
            offset: 0,
            marked: BTreeSet::new(),
            prompt: Prompt::None,
            message: None,
            comparison: None,
            page: 10,
        }
    }
}

fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Equal),
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (None, None) => Equal,
    }
}

impl Browser {
    /// The table's lines: filtered, sorted, grouped by sweep when asked.
    pub fn items(&self, runs: &Runs) -> Vec<Item> {
        let mut rows: Vec<RunRow> =
            runs.rows().into_iter().filter(|r| self.status.keeps(r) && r.matches(&self.filter)).cloned().collect();
        let col = self.sort;
        rows.sort_by(|a, b| {
            let o = match col {
                Column::Run => a.id.cmp(&b.id),
                Column::Status => a.status.cmp(&b.status),
                Column::Progress => a.progress().total_cmp(&b.progress()),
                Column::Device => a.device.cmp(&b.device),
                Column::Started => a.started.cmp(&b.started),
                Column::Duration => a.duration().cmp(&b.duration()),
                Column::Cls | Column::Loc | Column::Seg => {
                    let t = col.title();
                    cmp_opt(a.main.get(t), b.main.get(t))
                }
                Column::Tags => a.tags.cmp(&b.tags),
            };
            let o = if self.reverse { o.reverse() } else { o };
            o.then_with(|| a.id.cmp(&b.id))
        });
        if !self.group {
            return rows.into_iter().map(Item::Run).collect();
        }
        let mut sweeps: Vec<String> = Vec::new();
        for r in &rows {
            if let Some(s) = &r.sweep {
                if !sweeps.contains(s) {
                    sweeps.push(s.clone());
                }
            }
        }
        let mut out = Vec::new();
        for s in sweeps {
            let members: Vec<&RunRow> = rows.iter().filter(|r| r.sweep.as_ref() == Some(&s)).collect();
            let marked = members.iter().filter(|r| self.marked.contains(&r.dir)).count();
            out.push(Item::Sweep { name: s.clone(), runs: members.len(), marked });
            out.extend(members.into_iter().cloned().map(Item::Run));
        }
        out.extend(rows.into_iter().filter(|r| r.sweep.is_none()).map(Item::Run));
        out
    }

    fn selected_item(&self, runs: &Runs) -> Option<Item> {
        self.items(runs).into_iter().nth(self.selected)
    }

    fn selected_run(&self, runs: &Runs) -> Option<RunRow> {
        match self.selected_item(runs) {
            Some(Item::Run(r)) => Some(r),
            _ => None,
        }
    }

    /// Keeps the selection within the items and the page.
    pub fn clamp(&mut self, n: usize) {
        if n == 0 {
            self.selected = 0;
            self.offset = 0;
            return;
        }
        self.selected = self.selected.min(n - 1);
        let page = self.page.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
        self.offset = self.offset.min(n.saturating_sub(1));
    }

    /// One key. `runs` is the index as last read.
    pub fn handle_key(&mut self, k: KeyEvent, runs: &Runs) -> BrowserAction {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return BrowserAction::Quit;
        }
        if let Some(c) = &mut self.comparison {
            return match c.handle_key(k) {
                Some(a) => a,
                None => {
                    self.comparison = None;
                    BrowserAction::Redraw
                }
            };
        }
        let action = self.handle_table_key(k, runs);
        let n = self.items(runs).len();
        self.clamp(n);
        action
    }

    fn handle_table_key(&mut self, k: KeyEvent, runs: &Runs) -> BrowserAction {
        match std::mem::replace(&mut self.prompt, Prompt::None) {
            Prompt::None => {}
            Prompt::Help => return BrowserAction::Redraw,
            Prompt::Filter => {
                match k.code {
                    KeyCode::Enter => {}
                    KeyCode::Esc => self.filter.clear(),
                    KeyCode::Backspace => {
                        self.filter.pop();
                        self.prompt = Prompt::Filter;
                    }
                    KeyCode::Char(ch) => {
                        self.filter.push(ch);
                        self.prompt = Prompt::Filter;
                    }
                    _ => self.prompt = Prompt::Filter,
                }
                self.selected = 0;
                return BrowserAction::Redraw;
            }
            Prompt::Tag(dir, mut text) => {
                return match k.code {
                    KeyCode::Enter => BrowserAction::Tag(dir, text),
                    KeyCode::Esc => BrowserAction::Redraw,
                    KeyCode::Backspace => {
                        text.pop();
                        self.prompt = Prompt::Tag(dir, text);
                        BrowserAction::Redraw
                    }
                    KeyCode::Char(ch) => {
                        text.push(ch);
                        self.prompt = Prompt::Tag(dir, text);
                        BrowserAction::Redraw
                    }
                    _ => {
                        self.prompt = Prompt::Tag(dir, text);
                        BrowserAction::None
                    }
                };
            }
            Prompt::ConfirmDelete(dir) => {
                return match k.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => BrowserAction::Trash(dir),
                    _ => {
                        self.message = Some("delete cancelled".into());
                        BrowserAction::Redraw
                    }
                };
            }
            Prompt::ConfirmStop(dir) => {
                return match k.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => BrowserAction::Send(dir, "stop"),
                    _ => {
                        self.message = Some("stop cancelled".into());
                        BrowserAction::Redraw
                    }
                };
            }
        }
        self.message = None;
        match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return BrowserAction::Quit,
            KeyCode::Char('?') => self.prompt = Prompt::Help,
            KeyCode::Down | KeyCode::Char('j') => self.selected += 1,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected += self.page.max(1),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(self.page.max(1)),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = usize::MAX,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.reverse = matches!(self.sort, Column::Started | Column::Cls | Column::Loc | Column::Seg);
            }
            KeyCode::Char('S') => self.reverse = !self.reverse,
            KeyCode::Char('/') => self.prompt = Prompt::Filter,
            KeyCode::Char('f') => {
                self.status = self.status.next();
                self.selected = 0;
            }
            KeyCode::Char('g') => {
                self.group = !self.group;
                self.selected = 0;
            }
            KeyCode::Char(' ') => match self.selected_item(runs) {
                Some(Item::Run(r)) => {
                    if !self.marked.remove(&r.dir) {
                        self.marked.insert(r.dir);
                    }
                    self.selected += 1;
                }
                Some(Item::Sweep { name, .. }) => {
                    let members: Vec<PathBuf> =
                        runs.rows().iter().filter(|r| r.sweep.as_ref() == Some(&name)).map(|r| r.dir.clone()).collect();
                    if members.iter().all(|d| self.marked.contains(d)) {
                        for d in &members {
                            self.marked.remove(d);
                        }
                    } else {
                        self.marked.extend(members);
                    }
                }
                None => {}
            },
            KeyCode::Char('u') => self.marked.clear(),
            KeyCode::Enter => match self.selected_item(runs) {
                Some(Item::Run(r)) => return BrowserAction::Open(r.dir),
                Some(Item::Sweep { name, .. }) => return self.compare_sweep(&name, runs),
                None => {}
            },
            KeyCode::Char('c') => {
                // Marked runs (still present), in table order; else the selected sweep.
                let items = self.items(runs);
                let marked: Vec<PathBuf> = items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Run(r) if self.marked.contains(&r.dir) => Some(r.dir.clone()),
                        _ => None,
                    })
                    .collect();
                if marked.len() >= 2 {
                    return BrowserAction::Compare(marked, None);
                }
                if let Some(sweep) = self.selected_run(runs).and_then(|r| r.sweep) {
                    return self.compare_sweep(&sweep, runs);
                }
                if let Some(Item::Sweep { name, .. }) = self.selected_item(runs) {
                    return self.compare_sweep(&name, runs);
                }
                self.message = Some("mark two or more runs with space (or select a sweep), then c".into());
            }
            KeyCode::Char('p') => {
                if let Some(r) = self.selected_run(runs) {
                    return match r.status {
                        Status::Running if !r.gone => BrowserAction::Send(r.dir, "pause"),
                        Status::Paused if !r.gone => BrowserAction::Send(r.dir, "resume"),
                        _ => {
                            self.message = Some(format!("{} is not training: nothing to pause or resume", r.id));
                            BrowserAction::Redraw
                        }
                    };
                }
            }
            KeyCode::Char('x') => {
                if let Some(r) = self.selected_run(runs) {
                    if r.status.is_live() && !r.gone {
                        self.prompt = Prompt::ConfirmStop(r.dir);
                    } else {
                        self.message = Some(format!("{} is not training", r.id));
                    }
                }
            }
            KeyCode::Char('t') => {
                if let Some(r) = self.selected_run(runs) {
                    self.prompt = Prompt::Tag(r.dir, r.tags.join(", "));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if let Some(r) = self.selected_run(runs) {
                    if r.status.is_live() && !r.gone {
                        self.message = Some(format!("{} is training: stop it (x) before deleting it", r.id));
                    } else {
                        self.prompt = Prompt::ConfirmDelete(r.dir);
                    }
                }
            }
            _ => return BrowserAction::None,
        }
        BrowserAction::Redraw
    }

    fn compare_sweep(&mut self, sweep: &str, runs: &Runs) -> BrowserAction {
        let dirs: Vec<PathBuf> =
            runs.rows().iter().filter(|r| r.sweep.as_deref() == Some(sweep)).map(|r| r.dir.clone()).collect();
        // Oldest first: a sweep's cells in the order they ran.
        let mut dirs = dirs;
        dirs.reverse();
        BrowserAction::Compare(dirs, Some(sweep.to_string()))
    }
}
