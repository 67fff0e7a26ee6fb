//! A run at the paper's scale (20 cycles of 29 epochs, 20 (dataset, task) pairs, teacher and
//! student, per-label values: 40,600 rows): the viewer's final and best values equal those
//! computed here from the raw lines, the window of cycles, and focused points that stay visible
//! when epochs outnumber the chart's columns.

mod common;

use common::*;
use fx_run::facts;
use fx_run::store::Store;
use fx_view::chart::MetricChart;
use fx_view::state::{ChartWindow, Screen, State};
use fx_view::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::collections::BTreeMap;

fn big_run(test: &str) -> std::path::PathBuf {
    let dir = temp_dir(test).join("paper-scale");
    let f = fx_run::fabricate::run(&dir, "paper-scale", 20, true, 3).unwrap();
    assert_eq!((f.epochs, f.pairs, f.metric_rows), (580, 20, 40_600));
    dir
}

/// (dataset, task) → (last value, best focused value) of the teacher's main metric, from the lines.
fn from_lines(dir: &std::path::Path) -> BTreeMap<(String, String), (f64, f64)> {
    let mut out: BTreeMap<(String, String), (usize, f64, f64)> = BTreeMap::new();
    for l in std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let task = v["eval"]["task"].as_str().unwrap();
        let main = match task {
            "loc" => "map40",
            "seg" => "dice",
            _ => "auc",
        };
        if v["model"] != "teacher" || v["metric"] != main {
            continue;
        }
        let key = (v["eval"]["dataset"].as_str().unwrap().to_string(), task.to_string());
        let (e, x) = (v["epoch"].as_u64().unwrap() as usize, v["value"].as_f64().unwrap());
        let slot = out.entry(key).or_insert((0, f64::NAN, f64::NEG_INFINITY));
        if e >= slot.0 {
            slot.0 = e;
            slot.1 = x;
        }
        if v["focused"] == true {
            slot.2 = slot.2.max(x);
        }
    }
    out.into_iter().map(|(k, (_, last, best))| (k, (last, best))).collect()
}

#[test]
fn final_and_best_values_equal_the_raw_lines() {
    let dir = big_run("paper-final");
    let store = Store::open(&dir);
    assert_eq!(store.metrics.len(), 40_600);
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    let want = from_lines(&dir);
    let series = facts::series(&store, "teacher");
    assert_eq!(series.len(), 20);
    for s in &series {
        let (last, best) = want[&(s.dataset.clone(), s.task.clone())];
        assert_eq!(s.points.len(), 580, "{} {}", s.dataset, s.task);
        assert_eq!(s.points.last().unwrap().value, last, "{} {}", s.dataset, s.task);
        assert_eq!(s.best_focused(), Some(best), "{} {}", s.dataset, s.task);
    }
    // The latest-metrics table the Overview shows agrees too.
    let mut state = State { screen: Screen::Overview, ..State::default() };
    let screen = text(&render(&store, &mut state, false, None, 80, 24));
    let (last, _) = want[&("chexpert".to_string(), "cls".to_string())];
    assert!(screen.contains(&format!("{last:.1}")), "{screen}");
}

fn focused_cells(buf: &Buffer, glyph: &str) -> usize {
    let mut n = 0;
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            n += (buf[(x, y)].symbol() == glyph) as usize;
        }
    }
    n
}

#[test]
fn windows_and_dense_columns_keep_every_focused_point_visible() {
    let dir = big_run("paper-window");
    let store = Store::open(&dir);
    // The last two cycles: epochs 523..=580.
    let (range, title) = fx_view::state::window_epochs(&store, ChartWindow { span: Some(2), back: 0 }).unwrap();
    assert_eq!((range, title.as_str()), ((523, 580), "cycles 19-20 of 20"));
    let (range, _) = fx_view::state::window_epochs(&store, ChartWindow { span: Some(1), back: 5 }).unwrap();
    assert_eq!(range, (407, 435), "cycle 15");
    // Windows are clamped to the run.
    let (range, title) = fx_view::state::window_epochs(&store, ChartWindow { span: Some(3), back: 99 }).unwrap();
    assert_eq!((range, title.as_str()), ((1, 87), "cycles 1-3 of 20"));
    assert!(fx_view::state::window_epochs(&store, ChartWindow::default()).is_none());

    let series = facts::series(&store, "teacher");
    let s = &series[0];
    let epochs = facts::epochs_total(&store);
    for (ascii, glyph) in [(false, "◆"), (true, "F")] {
        let theme = Theme::new(ascii);
        for (window, width) in [(None, 40u16), (None, 80), (Some((523, 580)), 40), (Some((523, 580)), 80)] {
            let area = Rect::new(0, 0, width, 14);
            let mut buf = Buffer::empty(area);
            MetricChart {
                series: s,
                model: "teacher",
                epochs,
                window,
                labels: &[],
                cycle_starts: &[],
                theme: &theme,
                selected: false,
                detailed: false,
            }
            .render(area, &mut buf);
            // Focused points in the window, by the cell they fall in: each must show the glyph.
            let (a, b) = window.unwrap_or((1, epochs));
            let plot_w = width as usize - 2 - 6;
            let cols: std::collections::BTreeSet<usize> = s
                .points
                .iter()
                .filter(|p| p.focused && p.epoch >= a && p.epoch <= b)
                .map(|p| ((p.epoch - a) as f64 / (b - a) as f64 * (plot_w - 1) as f64).round() as usize)
                .collect();
            let shown = focused_cells(&buf, glyph);
            assert!(
                shown >= cols.len(),
                "{window:?} at {width}: {shown} focused glyphs for {} focused columns\n{}",
                cols.len(),
                text(&buf)
            );
        }
    }
    // The whole run at 80 columns: more epochs than columns, so columns show unfocused ranges.
    let mut state = State { screen: Screen::Charts, ..State::default() };
    let whole = text(&render(&store, &mut state, false, None, 80, 24));
    assert!(whole.contains("┆ range") && whole.contains("whole run (w)"), "{whole}");
    state.window = ChartWindow { span: Some(2), back: 0 };
    let two = text(&render(&store, &mut state, true, None, 80, 24));
    assert!(two.contains("cycles 19-20 of 20"), "{two}");
    assert!(two.contains("523") && two.contains("580"), "{two}");
}
