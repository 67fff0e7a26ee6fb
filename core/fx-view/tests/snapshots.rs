//! Symbol-level snapshots of every screen at 80×24 from the committed fixture runs, in unicode
//! and in ASCII, plus the zoomed chart, the overlays and the chart widget on its own.

mod common;

use common::*;
use fx_run::facts;
use fx_run::store::Store;
use fx_view::chart::MetricChart;
use fx_view::state::{LevelFilter, ModelSel, Overlay, Screen, State};
use fx_view::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

fn screen(fix: &str, screen: Screen, ascii: bool) -> String {
    let store = Store::open(&fixture(fix));
    let now = if fix == "finished" { FINISHED_HEARTBEAT + 125 } else { RUNNING_HEARTBEAT + 3 };
    let mut state = State { screen, ..State::default() };
    text(&render(&store, &mut state, ascii, Some(now), 80, 24))
}

macro_rules! screens {
    ($($name:ident: $fix:literal, $screen:expr, $ascii:expr;)*) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), screen($fix, $screen, $ascii));
        }
    )*};
}

screens! {
    finished_overview_unicode: "finished", Screen::Overview, false;
    finished_overview_ascii: "finished", Screen::Overview, true;
    finished_charts_unicode: "finished", Screen::Charts, false;
    finished_charts_ascii: "finished", Screen::Charts, true;
    finished_schedule_unicode: "finished", Screen::Schedule, false;
    finished_schedule_ascii: "finished", Screen::Schedule, true;
    finished_heads_unicode: "finished", Screen::Heads, false;
    finished_heads_ascii: "finished", Screen::Heads, true;
    finished_log_unicode: "finished", Screen::Log, false;
    finished_log_ascii: "finished", Screen::Log, true;
    running_overview_unicode: "running", Screen::Overview, false;
    running_overview_ascii: "running", Screen::Overview, true;
    running_charts_unicode: "running", Screen::Charts, false;
    running_charts_ascii: "running", Screen::Charts, true;
    running_schedule_unicode: "running", Screen::Schedule, false;
    running_schedule_ascii: "running", Screen::Schedule, true;
    running_heads_unicode: "running", Screen::Heads, false;
    running_heads_ascii: "running", Screen::Heads, true;
    running_log_unicode: "running", Screen::Log, false;
    running_log_ascii: "running", Screen::Log, true;
}

#[test]
fn finished_charts_zoom_student() {
    let store = Store::open(&fixture("finished"));
    for ascii in [false, true] {
        let mut state =
            State { screen: Screen::Charts, zoom: true, chart: 1, model: ModelSel::Student, ..State::default() };
        let t = text(&render(&store, &mut state, ascii, None, 80, 24));
        let name = if ascii { "finished_charts_zoom_student_ascii" } else { "finished_charts_zoom_student_unicode" };
        insta::assert_snapshot!(name, t);
    }
}

#[test]
fn running_log_warn_only() {
    let store = Store::open(&fixture("running"));
    let mut state = State { screen: Screen::Log, level: LevelFilter::Warn, ..State::default() };
    let t = text(&render(&store, &mut state, true, None, 80, 24));
    assert!(!t.contains("INFO"), "the warn filter shows no info rows:\n{t}");
    insta::assert_snapshot!("running_log_warn_only", t);
}

#[test]
fn overlays() {
    let store = Store::open(&fixture("running"));
    let mut state = State { overlay: Overlay::Help, ..State::default() };
    insta::assert_snapshot!("help_overlay", text(&render(&store, &mut state, false, None, 80, 24)));
    let mut state = State { overlay: Overlay::Quit, ..State::default() };
    insta::assert_snapshot!("quit_overlay", text(&render(&store, &mut state, true, None, 80, 24)));
    // The add key's list, the second file selected; and with nothing to offer.
    let candidates = vec![
        fx_run::hot_add::Candidate { file: "watch/nodules.toml".into(), datasets: vec!["phantom-node".into()] },
        fx_run::hot_add::Candidate { file: "watch/two.toml".into(), datasets: vec!["tbx2".into(), "ptx2".into()] },
    ];
    let mut state = State { overlay: Overlay::Add { selected: 1 }, candidates, ..State::default() };
    insta::assert_snapshot!("add_overlay", text(&render(&store, &mut state, false, None, 80, 24)));
    let mut state = State { overlay: Overlay::Add { selected: 0 }, ..State::default() };
    insta::assert_snapshot!("add_overlay_empty", text(&render(&store, &mut state, false, None, 80, 24)));
}

/// The chart widget alone: focused and unfocused epochs must differ in the TEXT, not only in colour.
#[test]
fn chart_focused_unfocused_distinguishable() {
    let store = Store::open(&fixture("finished"));
    let series = facts::series(&store, "teacher");
    let s = &series[0]; // phantom-cxp: focused in epochs 1 and 4
    let focused = s.points.iter().filter(|p| p.focused).count();
    let unfocused = s.points.len() - focused;
    assert_eq!((focused, unfocused), (2, 4));
    for ascii in [false, true] {
        let theme = Theme::new(ascii);
        let area = Rect::new(0, 0, 40, 12);
        let mut buf = Buffer::empty(area);
        MetricChart {
            series: s,
            model: "teacher",
            epochs: 6,
            window: None,
            labels: &[],
            cycle_starts: &[4],
            theme: &theme,
            selected: false,
            detailed: false,
        }
        .render(area, &mut buf);
        let t = text(&buf);
        // Count in the plot only: below the title, above the x labels, right of the y axis.
        let plot: Vec<String> = t.lines().skip(1).take(12 - 3).map(|l| l.chars().skip(7).collect()).collect();
        let count = |c: char| plot.iter().map(|l| l.chars().filter(|&x| x == c).count()).sum::<usize>();
        assert_eq!(count(theme.focused), focused, "one focused glyph per focused epoch:\n{t}");
        assert_eq!(count(theme.unfocused), unfocused, "one unfocused glyph per unfocused epoch:\n{t}");
        assert!(count(theme.best) > 0, "the best-focused line is drawn:\n{t}");
        assert_ne!(theme.focused, theme.unfocused);
        let name = if ascii { "chart_widget_ascii" } else { "chart_widget_unicode" };
        insta::assert_snapshot!(name, t);
    }
}

/// Any size renders without panicking, and 80×24 leaves nothing cut in the middle of the frame.
#[test]
fn renders_at_any_size() {
    for fix in ["finished", "running"] {
        let store = Store::open(&fixture(fix));
        for screen in Screen::ALL {
            for (w, h) in [(80, 24), (120, 40), (60, 16), (30, 8), (20, 3), (1, 1), (200, 60)] {
                for ascii in [false, true] {
                    let mut state = State { screen, ..State::default() };
                    render(&store, &mut state, ascii, Some(RUNNING_HEARTBEAT), w, h);
                    let mut state = State { screen, zoom: true, ..State::default() };
                    render(&store, &mut state, ascii, None, w, h);
                }
            }
        }
    }
}

/// A directory with nothing in it yet: every screen says it is waiting.
#[test]
fn empty_run_dir() {
    let d = temp_dir("empty-screens");
    let store = Store::open(&d);
    let mut state = State::default();
    let t = text(&render(&store, &mut state, true, None, 80, 24));
    assert!(t.contains("waiting for trainer"), "{t}");
    for screen in Screen::ALL {
        let mut state = State { screen, ..State::default() };
        render(&store, &mut state, false, None, 80, 24);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_data_parallel_job_shows_its_ranks_throughput() {
    let dir = copy_fixture("running", "ranks");
    let p = dir.join("progress.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["img_per_s"] = serde_json::json!(290.5);
    v["rank_img_per_s"] = serde_json::json!([150.25, 140.25]);
    std::fs::write(&p, v.to_string()).unwrap();
    let store = Store::open(&dir);
    let mut state = State { screen: Screen::Overview, ..State::default() };
    let t = text(&render(&store, &mut state, true, Some(RUNNING_HEARTBEAT + 3), 100, 24));
    assert!(t.contains("290.5 img/s (2 ranks: 150.2 140.2)"), "{t}");
}
