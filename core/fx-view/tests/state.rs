//! Key sequences → screen, toggles, selection and exit.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use fx_run::store::Store;
use fx_view::state::{Action, LevelFilter, ModelSel, Overlay, Screen, State};
use fx_view::ViewExit;

fn k(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ctrl_c() -> KeyEvent {
    KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
}

#[test]
fn screens_toggles_and_selection() {
    let store = Store::open(&fixture("finished"));
    let mut s = State::default();
    assert_eq!(s.screen, Screen::Overview);

    assert_eq!(s.handle_key(k('2'), false), Action::Redraw);
    assert_eq!(s.screen, Screen::Charts);
    // The draw tells the state the grid: 3 charts in 2 columns at 80×24.
    render(&store, &mut s, false, None, 80, 24);
    assert_eq!((s.drawn.charts, s.drawn.chart_cols), (3, 2));
    s.handle_key(code(KeyCode::Right), false);
    assert_eq!(s.chart, 1);
    s.handle_key(code(KeyCode::Down), false);
    assert_eq!(s.chart, 1, "nothing below chart 1 in a 3-chart 2-column grid");
    s.handle_key(code(KeyCode::Left), false);
    s.handle_key(code(KeyCode::Down), false);
    assert_eq!(s.chart, 2);
    s.handle_key(code(KeyCode::Right), false);
    assert_eq!(s.chart, 0, "wraps around");
    s.handle_key(code(KeyCode::Enter), false);
    assert!(s.zoom);
    s.handle_key(k('t'), false);
    assert_eq!(s.model, ModelSel::Student);
    s.handle_key(code(KeyCode::Esc), false);
    assert!(!s.zoom);
    s.handle_key(k('t'), false);
    assert_eq!(s.model, ModelSel::Teacher);

    s.handle_key(code(KeyCode::Tab), false);
    assert_eq!(s.screen, Screen::Schedule);
    s.handle_key(code(KeyCode::BackTab), false);
    s.handle_key(code(KeyCode::BackTab), false);
    assert_eq!(s.screen, Screen::Overview);
    s.handle_key(code(KeyCode::BackTab), false);
    assert_eq!(s.screen, Screen::Log);

    for want in [LevelFilter::Info, LevelFilter::Warn, LevelFilter::Error, LevelFilter::All] {
        s.handle_key(k('l'), false);
        assert_eq!(s.level, want);
    }
    assert_eq!(s.handle_key(k('x'), false), Action::None, "an unbound key changes nothing");
    assert_eq!(
        s.handle_key(KeyEvent { kind: KeyEventKind::Release, ..k('1') }, false),
        Action::None,
        "key releases are ignored"
    );
    assert_eq!(s.screen, Screen::Log);

    s.handle_key(k('?'), false);
    assert_eq!(s.overlay, Overlay::Help);
    s.handle_key(k('1'), false);
    assert_eq!((s.overlay, s.screen), (Overlay::None, Screen::Log), "a key closes the help, nothing else");
}

#[test]
fn quitting() {
    // A finished run just quits.
    let mut s = State::default();
    assert_eq!(s.handle_key(k('q'), false), Action::Exit(ViewExit::Quit));
    // A running one asks; esc cancels, d detaches, s stops.
    let mut s = State::default();
    assert_eq!(s.handle_key(k('q'), true), Action::Redraw);
    assert_eq!(s.overlay, Overlay::Quit);
    assert_eq!(s.handle_key(k('2'), true), Action::None, "the dialog takes only its keys");
    assert_eq!(s.screen, Screen::Overview);
    assert_eq!(s.handle_key(code(KeyCode::Esc), true), Action::Redraw);
    assert_eq!(s.overlay, Overlay::None);
    s.handle_key(k('q'), true);
    assert_eq!(s.handle_key(k('d'), true), Action::Exit(ViewExit::Detach));
    let mut s = State::default();
    s.handle_key(ctrl_c(), true);
    assert_eq!(s.handle_key(k('s'), true), Action::Exit(ViewExit::Stop));
    // Without a way to stop, 's' does nothing.
    let mut s = State::new(false);
    s.handle_key(k('q'), true);
    assert_eq!(s.handle_key(k('s'), true), Action::None);
    assert_eq!(s.handle_key(ctrl_c(), true), Action::Exit(ViewExit::Detach));
}

#[test]
fn schedule_and_log_scrolling() {
    let store = Store::open(&fixture("running"));
    let mut s = State { screen: Screen::Log, ..State::default() };
    // 14 events; 80×10 shows 6 of them.
    render(&store, &mut s, false, None, 80, 10);
    assert_eq!(s.drawn.log_rows, 6);
    assert_eq!(s.drawn.log_max_scroll, 8);
    s.handle_key(code(KeyCode::PageUp), false);
    assert_eq!(s.log_scroll, 6);
    s.handle_key(code(KeyCode::PageUp), false);
    render(&store, &mut s, false, None, 80, 10);
    assert_eq!(s.log_scroll, 8, "clamped to the top");
    s.handle_key(code(KeyCode::End), false);
    assert_eq!(s.log_scroll, 0);

    s.handle_key(k('3'), false);
    render(&store, &mut s, false, None, 80, 10);
    assert_eq!(s.schedule_top, None, "follows the current epoch");
    let follow_top = s.drawn.schedule_top;
    s.handle_key(code(KeyCode::Home), false);
    assert_eq!(s.schedule_top, Some(0));
    s.handle_key(code(KeyCode::PageDown), false);
    render(&store, &mut s, false, None, 80, 10);
    assert!(s.schedule_top.unwrap() <= 6);
    s.handle_key(k('c'), false);
    render(&store, &mut s, false, None, 80, 10);
    assert_eq!((s.schedule_top, s.drawn.schedule_top), (None, follow_top));
}

#[test]
fn the_add_key_lists_dataset_files_and_asks_the_trainer_for_the_chosen_one() {
    let mut s = State::default();
    // Whether or not the trainer runs: without one, asking it says so (fx-tui add then queues
    // for the resume).
    assert_eq!(s.handle_key(k('a'), false), Action::OpenAdd);
    assert_eq!(s.handle_key(k('a'), true), Action::OpenAdd);
    let c = |f: &str| fx_run::hot_add::Candidate { file: f.into(), datasets: vec!["d".into()] };
    s.open_add(vec![c("w/a.toml"), c("w/b.toml")]);
    assert_eq!(s.overlay, Overlay::Add { selected: 0 });
    assert_eq!(s.handle_key(code(KeyCode::Up), true), Action::None, "already at the top");
    assert_eq!(s.handle_key(code(KeyCode::Down), true), Action::Redraw);
    assert_eq!(s.handle_key(code(KeyCode::Down), true), Action::None, "already at the bottom");
    // Screen keys do nothing while the list is open.
    assert_eq!(s.handle_key(k('2'), true), Action::None);
    assert_eq!(s.handle_key(code(KeyCode::Enter), true), Action::Add("w/b.toml".into()));
    assert_eq!(s.overlay, Overlay::None);
    // Esc closes without adding; Enter on an empty list does nothing.
    s.open_add(vec![c("w/a.toml")]);
    assert_eq!(s.handle_key(code(KeyCode::Esc), true), Action::Redraw);
    assert_eq!(s.overlay, Overlay::None);
    s.open_add(vec![]);
    assert_eq!(s.handle_key(code(KeyCode::Enter), true), Action::None);
}
