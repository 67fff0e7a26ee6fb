//! The runs browser and the comparison screen: the index read from fabricated run folders
//! (checked against the rows written), incremental refresh, keys, tags and the trash, snapshots
//! at 80×24 and wide in unicode and ASCII, and an index over 500 runs.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fx_view::browser::{Browser, BrowserAction, Comparison, Item, StatusFilter};
use fx_view::runs::{self, Runs, Status};
use fx_view::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::{Path, PathBuf};

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Every metric value of a run shifted by `by` (a run that learned a little better or worse).
fn shift_metrics(dir: &Path, by: f64) {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let x = v["value"].as_f64().unwrap();
            v["value"] = serde_json::json!(x + by);
            v.to_string()
        })
        .collect();
    std::fs::write(dir.join("metrics.jsonl"), out.join("\n") + "\n").unwrap();
}

fn set_key(dir: &Path, from: &str, to: &str) {
    let p = dir.join("experiment.toml");
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(t.contains(from), "{from} in experiment.toml");
    std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
}

/// A folder of four runs: the finished demo (seed 7), its seed-8 twin (+1 on every metric) and
/// an lr variant (−2), those three a sweep `demo-sweep`; and the running demo, tagged.
fn folder(test: &str) -> PathBuf {
    let root = temp_dir(test).join("runs");
    let a = root.join("demo-20261127-192247");
    let b = root.join("demo-20261127-194000");
    let c = root.join("demo-20261127-195000");
    let r = root.join("demo-20261127-193533");
    copy(&fixture("finished"), &a);
    copy(&fixture("finished"), &b);
    copy(&fixture("finished"), &c);
    copy(&fixture("running"), &r);
    set_key(&b, "seed = 7", "seed = 8");
    shift_metrics(&b, 1.0);
    set_key(&c, "backbone = 0.0005", "backbone = 0.001");
    shift_metrics(&c, -2.0);
    // Later starts for the twins, so "newest first" has an order to keep.
    for (d, t) in [(&b, "19:40:00"), (&c, "19:50:00")] {
        set_json_started(d, t);
    }
    std::fs::write(r.join(runs::TAGS_FILE), "baseline\nwip\n").unwrap();
    let sweep = serde_json::json!({ "runs": [a, b, c], "total": 3, "status": "finished" });
    std::fs::write(root.join("demo-sweep.json"), sweep.to_string()).unwrap();
    root
}

fn set_json_started(dir: &Path, hms: &str) {
    let p = dir.join("run.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["started"] = serde_json::json!(format!("2026-11-27T{hms}+00:00"));
    v["heartbeat"] = serde_json::json!(format!("2026-11-27T{hms}+00:00").replace(":00+", ":59+"));
    std::fs::write(&p, v.to_string()).unwrap();
}

/// The latest teacher AUC per dataset, averaged, computed here from the rows.
fn expected_cls(dir: &Path) -> f64 {
    let mut latest: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for l in std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["model"] == "teacher" && v["metric"] == "auc" {
            let e = v["epoch"].as_u64().unwrap();
            let d = v["eval"]["dataset"].as_str().unwrap().to_string();
            let slot = latest.entry(d).or_insert((0, 0.0));
            if e >= slot.0 {
                *slot = (e, v["value"].as_f64().unwrap());
            }
        }
    }
    latest.values().map(|(_, v)| v).sum::<f64>() / latest.len() as f64
}

#[test]
fn the_index_reads_status_progress_metrics_tags_and_sweeps() {
    let root = folder("index");
    let idx = Runs::open(std::slice::from_ref(&root));
    let rows: Vec<runs::RunRow> = idx.rows().into_iter().cloned().collect();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let by = |id: &str| rows.iter().find(|r| r.id == id).unwrap();
    let a = by("demo-20261127-192247");
    assert_eq!((a.status.clone(), a.epochs_done, a.epochs_total), (Status::Finished, 6, 6));
    assert_eq!(a.name, "demo");
    assert_eq!(a.duration(), Some(8 * 60 + 37));
    assert_eq!(a.sweep.as_deref(), Some("demo"));
    for r in rows.iter() {
        let want = expected_cls(&r.dir);
        assert!((r.main["cls"] - want).abs() < 1e-9, "{}: {} vs {want}", r.id, r.main["cls"]);
    }
    let r = by("demo-20261127-193533");
    assert_eq!((r.status.clone(), r.epochs_done, r.sweep.clone()), (Status::Running, 4, None));
    assert_eq!(r.tags, vec!["baseline", "wip"]);
    // Stale after 30 minutes without a heartbeat, and only a live run.
    let mut idx = idx;
    let hb = r.heartbeat.unwrap();
    assert!(!idx.mark_stale(hb + 60));
    assert!(idx.mark_stale(hb + 31 * 60));
    assert!(idx.rows().iter().filter(|r| r.stale).map(|r| r.id.as_str()).eq(["demo-20261127-193533"]));
    // The caller says the trainer is gone.
    assert!(idx.mark_gone(&|d| Some(!d.ends_with("demo-20261127-193533"))));
    assert!(idx.row(&root.join("demo-20261127-193533")).unwrap().gone);
}

#[test]
fn refresh_rereads_only_what_changed() {
    let root = folder("refresh");
    let mut idx = Runs::open(std::slice::from_ref(&root));
    let reads = idx.reads;
    assert_eq!(reads, 4);
    assert!(!idx.refresh());
    assert_eq!(idx.reads, reads, "nothing changed, nothing read");
    // The running run writes another epoch's row.
    let r = root.join("demo-20261127-193533");
    let mut line = std::fs::read_to_string(r.join("metrics.jsonl")).unwrap().lines().last().unwrap().to_string();
    line = line.replace("\"epoch\":4", "\"epoch\":5");
    let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["value"] = serde_json::json!(99.0);
    v["model"] = serde_json::json!("teacher");
    v["metric"] = serde_json::json!("auc");
    v["eval"]["task"] = serde_json::json!("cls");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(r.join("metrics.jsonl")).unwrap();
    writeln!(f, "{v}").unwrap();
    drop(f);
    assert!(idx.refresh());
    assert_eq!(idx.reads, reads + 1, "only the changed run is read again");
    assert!((idx.row(&r).unwrap().main["cls"] - expected_cls(&r)).abs() < 1e-9);
    // A new run appears; a run moved to the trash disappears (and is not unlinked).
    copy(&fixture("finished"), &root.join("demo-20261128-080000"));
    let to = runs::move_to_trash(&root.join("demo-20261127-192247")).unwrap();
    assert!(to.join("metrics.jsonl").is_file() && to.starts_with(root.join(runs::TRASH_DIR)));
    assert!(idx.refresh());
    let ids: Vec<String> = idx.rows().iter().map(|r| r.id.clone()).collect();
    assert!(
        ids.contains(&"demo-20261128-080000".to_string()) && !ids.contains(&"demo-20261127-192247".to_string()),
        "{ids:?}"
    );
    assert_eq!(idx.reads, reads + 2);
}

#[test]
fn tags_are_written_atomically_and_cleared() {
    let root = folder("tags");
    let d = root.join("demo-20261127-192247");
    assert_eq!(runs::write_tags(&d, "ablation, lr  ablation").unwrap(), vec!["ablation", "lr"]);
    assert_eq!(runs::read_tags(&d), vec!["ablation", "lr"]);
    assert!(runs::write_tags(&d, " ").unwrap().is_empty());
    assert!(!d.join(runs::TAGS_FILE).exists());
}

#[test]
fn keys_filter_sort_mark_and_ask_before_stopping_or_deleting() {
    let root = folder("keys");
    let idx = Runs::open(std::slice::from_ref(&root));
    let mut b = Browser::default();
    let ids = |b: &Browser| -> Vec<String> {
        b.items(&idx).into_iter().filter_map(|i| if let Item::Run(r) = i { Some(r.id) } else { None }).collect()
    };
    // Newest first by default.
    assert_eq!(
        ids(&b),
        ["demo-20261127-195000", "demo-20261127-194000", "demo-20261127-193533", "demo-20261127-192247"]
    );
    // Filter by a tag.
    b.handle_key(ch('/'), &idx);
    for c in "wip".chars() {
        b.handle_key(ch(c), &idx);
    }
    b.handle_key(key(KeyCode::Enter), &idx);
    assert_eq!(ids(&b), ["demo-20261127-193533"]);
    b.handle_key(ch('/'), &idx);
    b.handle_key(key(KeyCode::Esc), &idx);
    assert_eq!(ids(&b).len(), 4);
    // Status filter: live only.
    b.handle_key(ch('f'), &idx);
    assert_eq!(b.status, StatusFilter::Live);
    assert_eq!(ids(&b), ["demo-20261127-193533"]);
    for _ in 0..3 {
        b.handle_key(ch('f'), &idx);
    }
    assert_eq!(b.status, StatusFilter::All);
    // Sort by cls (best first): the +1 twin, the original, then the −2 variant (the running one
    // has lower AUCs at epoch 4).
    while b.sort != fx_view::browser::Column::Cls {
        b.handle_key(ch('s'), &idx);
    }
    let mut by_cls: Vec<(String, f64)> = idx.rows().iter().map(|r| (r.id.clone(), r.main["cls"])).collect();
    by_cls.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(ids(&b), by_cls.iter().map(|x| x.0.clone()).collect::<Vec<_>>());
    b.handle_key(ch('S'), &idx);
    assert_eq!(ids(&b), by_cls.iter().rev().map(|x| x.0.clone()).collect::<Vec<_>>());
    // Mark two and compare them, in table order.
    b.selected = 0;
    b.handle_key(ch(' '), &idx);
    b.handle_key(ch(' '), &idx);
    let first_two: Vec<PathBuf> = ids(&b).iter().take(2).map(|i| root.join(i)).collect();
    assert_eq!(b.handle_key(ch('c'), &idx), BrowserAction::Compare(first_two, None));
    // Stop: only a live run, and only after "y".
    let running = ids(&b).iter().position(|i| i == "demo-20261127-193533").unwrap();
    b.selected = running;
    assert_eq!(b.handle_key(ch('x'), &idx), BrowserAction::Redraw);
    assert_eq!(b.handle_key(ch('n'), &idx), BrowserAction::Redraw);
    b.handle_key(ch('x'), &idx);
    assert_eq!(b.handle_key(ch('y'), &idx), BrowserAction::Send(root.join("demo-20261127-193533"), "stop"));
    assert_eq!(b.handle_key(ch('p'), &idx), BrowserAction::Send(root.join("demo-20261127-193533"), "pause"));
    // Delete: refused for a live run, asked for a finished one.
    b.handle_key(ch('d'), &idx);
    assert!(b.message.as_deref().unwrap_or("").contains("is training"), "{:?}", b.message);
    let finished = ids(&b).iter().position(|i| i == "demo-20261127-192247").unwrap();
    b.selected = finished;
    b.handle_key(ch('d'), &idx);
    assert_eq!(b.handle_key(ch('y'), &idx), BrowserAction::Trash(root.join("demo-20261127-192247")));
    // Tags: typed, then Enter.
    b.handle_key(ch('t'), &idx);
    for c in "best".chars() {
        b.handle_key(ch(c), &idx);
    }
    assert_eq!(
        b.handle_key(key(KeyCode::Enter), &idx),
        BrowserAction::Tag(root.join("demo-20261127-192247"), "best".into())
    );
    // Group by sweep: the sweep's header first, Enter on it compares its cells oldest first.
    b.handle_key(ch('g'), &idx);
    let items = b.items(&idx);
    assert!(matches!(&items[0], Item::Sweep { name, runs: 3, .. } if name == "demo"), "{items:?}");
    b.selected = 0;
    let want: Vec<PathBuf> =
        ["demo-20261127-192247", "demo-20261127-194000", "demo-20261127-195000"].iter().map(|i| root.join(i)).collect();
    assert_eq!(b.handle_key(key(KeyCode::Enter), &idx), BrowserAction::Compare(want, Some("demo".into())));
    assert_eq!(b.handle_key(ch('q'), &idx), BrowserAction::Quit);
}

fn draw(b: &mut Browser, idx: &Runs, ascii: bool, w: u16, h: u16, root: &Path) -> String {
    let theme = Theme::new(ascii);
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| fx_view::ui::draw_browser(f, b, idx, &theme)).unwrap();
    text(term.backend().buffer()).replace(&root.display().to_string(), "<runs>")
}

#[test]
fn browser_snapshots() {
    let root = folder("snap");
    let idx = Runs::open(std::slice::from_ref(&root));
    for (ascii, suffix) in [(false, "unicode"), (true, "ascii")] {
        let mut b = Browser::default();
        b.handle_key(ch(' '), &idx);
        insta::assert_snapshot!(format!("browser_80x24_{suffix}"), draw(&mut b, &idx, ascii, 80, 24, &root));
        b.handle_key(ch('g'), &idx);
        insta::assert_snapshot!(format!("browser_grouped_wide_{suffix}"), draw(&mut b, &idx, ascii, 140, 16, &root));
    }
}

#[test]
fn comparison_snapshots_and_seed_groups() {
    let root = folder("cmp");
    let idx = Runs::open(std::slice::from_ref(&root));
    let dirs: Vec<PathBuf> =
        ["demo-20261127-192247", "demo-20261127-194000", "demo-20261127-195000"].iter().map(|i| root.join(i)).collect();
    let mut c = Comparison::open(&dirs, Some("demo".into()));
    // Legend by the keys that differ.
    assert_eq!(c.labels, ["backbone=0.0005 seed=7", "backbone=0.0005 seed=8", "backbone=0.001 seed=7"]);
    assert_eq!(
        c.current_key().map(|k| (k.dataset.as_str(), k.task.as_str(), k.metric.as_str())),
        Some(("phantom-cxp", "cls", "auc"))
    );
    let mut b = Browser { comparison: Some(c), ..Browser::default() };
    for (ascii, suffix) in [(false, "unicode"), (true, "ascii")] {
        insta::assert_snapshot!(format!("compare_80x24_{suffix}"), draw(&mut b, &idx, ascii, 80, 24, &root));
    }
    insta::assert_snapshot!("compare_wide_unicode", draw(&mut b, &idx, false, 140, 32, &root));
    // Seed groups: the two seeds of lr 0.0005 become one mean line.
    b.handle_key(ch('a'), &idx);
    insta::assert_snapshot!("compare_seed_groups_80x24", draw(&mut b, &idx, false, 80, 24, &root));
    // Next metric, the student, back to the table.
    b.handle_key(key(KeyCode::Right), &idx);
    b.handle_key(ch('m'), &idx);
    c = b.comparison.take().unwrap();
    assert_eq!((c.key, c.model.as_str()), (1, "student"));
    b.comparison = Some(c);
    b.handle_key(key(KeyCode::Esc), &idx);
    assert!(b.comparison.is_none());
}

#[test]
fn a_followed_sweep_gains_its_new_cells() {
    let root = folder("follow");
    let mut idx = Runs::open(std::slice::from_ref(&root));
    let mut c = Comparison::open(&[root.join("demo-20261127-192247")], Some("demo".into()));
    assert!(c.refresh(&idx));
    assert_eq!(c.runs.len(), 3);
    // A fourth cell starts.
    let d = root.join("demo-20261127-200000");
    copy(&fixture("running"), &d);
    let sweep = serde_json::json!({ "runs": [
        root.join("demo-20261127-192247"), root.join("demo-20261127-194000"), root.join("demo-20261127-195000"), d
    ], "total": 4, "status": "running" });
    std::fs::write(root.join("demo-sweep.json"), sweep.to_string()).unwrap();
    idx.refresh();
    assert!(c.refresh(&idx));
    assert_eq!(c.runs.len(), 4);
    assert!(!c.refresh(&idx));
}

#[test]
fn five_hundred_runs_index_and_draw() {
    let root = temp_dir("five-hundred").join("runs");
    let src = fixture("finished");
    for i in 0..500 {
        let d = root.join(format!("demo-{i:04}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in ["run.json", "experiment.toml", "metrics.jsonl"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
    }
    let t = std::time::Instant::now();
    let mut idx = Runs::open(std::slice::from_ref(&root));
    let mut b = Browser::default();
    let screen = draw(&mut b, &idx, false, 80, 24, &root);
    eprintln!("500 runs: index + first frame in {:?}", t.elapsed());
    assert_eq!(idx.rows().len(), 500);
    assert!(screen.contains("500 of 500 shown"), "{screen}");
    let t = std::time::Instant::now();
    assert!(!idx.refresh());
    eprintln!("500 runs: an idle refresh in {:?}", t.elapsed());
    assert_eq!(idx.reads, 500);
}
