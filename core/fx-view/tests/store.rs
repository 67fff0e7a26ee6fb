//! The incremental reader: missing files, torn last lines, appends read incrementally, files
//! replaced by a resume, bad lines.

mod common;

use common::*;
use fx_run::store::Store;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(String::from).collect()
}

#[test]
fn missing_directory_and_files_are_empty() {
    let d = temp_dir("missing").join("not-there-yet");
    let mut s = Store::open(&d);
    assert!(s.experiment.is_none() && s.run.is_none() && s.progress.is_none());
    assert!(s.plan.is_empty() && s.metrics.is_empty() && s.events.is_empty());
    assert!(s.problems.is_empty());
    assert!(!s.refresh(), "nothing there, nothing changed");
    assert_eq!(s.bytes_read, 0);

    // Files appear one by one.
    fs::create_dir_all(&d).unwrap();
    assert!(!s.refresh(), "an empty folder changes nothing");
    fs::copy(fixture("finished/experiment.toml"), d.join("experiment.toml")).unwrap();
    assert!(s.refresh());
    assert_eq!(s.experiment.as_ref().unwrap().name, "demo");
    assert_eq!(s.experiment.as_ref().unwrap().datasets.len(), 3);
    fs::copy(fixture("finished/plan.json"), d.join("plan.json")).unwrap();
    fs::copy(fixture("finished/run.json"), d.join("run.json")).unwrap();
    assert!(s.refresh());
    assert_eq!(s.plan.len(), 6);
    assert_eq!(s.run.as_ref().unwrap().status, "finished");
    assert!(!s.refresh());

    // progress.json is optional: it appears and disappears.
    fs::copy(fixture("running/progress.json"), d.join("progress.json")).unwrap();
    assert!(s.refresh());
    assert_eq!(s.progress.as_ref().unwrap().steps, 4);
    assert_eq!(s.progress.as_ref().unwrap().trained_groups(), Some(vec!["cls_head".to_string()]));
    fs::remove_file(d.join("progress.json")).unwrap();
    assert!(s.refresh());
    assert!(s.progress.is_none());
    fs::remove_dir_all(d.parent().unwrap()).unwrap();
}

#[test]
fn fixtures_load_completely() {
    let s = Store::open(&fixture("finished"));
    assert_eq!(s.metrics.len(), 36, "6 epochs × 3 datasets × 2 models");
    assert_eq!(s.events.len(), 4);
    assert_eq!(s.run.as_ref().unwrap().epochs_done, 6);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let s = Store::open(&fixture("running"));
    assert_eq!(s.metrics.len(), 24);
    assert_eq!(s.plan.iter().filter(|p| p.mode == "Lock").count(), 3);
    assert_eq!(s.plan[0].trainable.backbone, Some(false));
    assert_eq!(s.plan[0].trainable.loc_encoder, None);
    assert!(s.progress.is_some());
}

#[test]
fn torn_last_line_is_ignored_until_complete() {
    let d = copy_fixture("finished", "torn");
    let path = d.join("metrics.jsonl");
    let all = lines(&path);
    // Keep 10 whole rows plus half of the 11th, without its newline: a crash mid-append.
    let half = &all[10][..all[10].len() / 2];
    fs::write(&path, format!("{}\n{half}", all[..10].join("\n"))).unwrap();
    let mut s = Store::open(&d);
    assert_eq!(s.metrics.len(), 10, "the torn row is not read");
    assert!(s.problems.is_empty(), "a torn tail is not a problem: {:?}", s.problems);

    // The writer finishes the line.
    append(&path, &format!("{}\n", &all[10][all[10].len() / 2..]));
    assert!(s.refresh());
    assert_eq!(s.metrics.len(), 11);
    assert_eq!(
        s.metrics[10].epoch,
        serde_json::from_str::<serde_json::Value>(&all[10]).unwrap()["epoch"].as_u64().unwrap() as usize
    );

    // The trainer's way: a new torn tail, cut off before the next append.
    append(&path, &all[11][..20]);
    assert!(!s.refresh(), "a torn tail alone changes nothing visible");
    assert_eq!(s.metrics.len(), 11);
    let keep = fs::read(&path).unwrap().len() - 20;
    OpenOptions::new().write(true).open(&path).unwrap().set_len(keep as u64).unwrap();
    append(&path, &format!("{}\n{}\n", all[11], all[12]));
    s.refresh();
    assert_eq!(s.metrics.len(), 13);
    assert_eq!(s.metrics[12].value, Store::open(&fixture("finished")).metrics[12].value);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn appends_are_read_incrementally() {
    let d = copy_fixture("running", "append");
    let path = d.join("events.jsonl");
    let mut s = Store::open(&d);
    let n = s.events.len();
    let before = s.bytes_read;
    assert!(!s.refresh(), "nothing changed");
    assert_eq!(s.bytes_read, before, "an unchanged store reads nothing");

    let line = r#"{"time":"2026-11-27T19:40:00+00:00","level":"error","kind":"failed","message":"boom"}"#;
    append(&path, &format!("{line}\n"));
    assert!(s.refresh());
    assert_eq!(s.events.len(), n + 1);
    assert_eq!(s.events[n].kind, "failed");
    assert_eq!(s.bytes_read - before, line.len() as u64 + 1, "only the appended bytes are read");
    assert!(!s.refresh());

    // Many appends between two refreshes.
    let before = s.bytes_read;
    let mut added = 0;
    for i in 0..5 {
        let l = format!(r#"{{"time":"t","level":"info","kind":"k{i}","message":"m"}}"#);
        added += l.len() + 1;
        append(&path, &format!("{l}\n"));
    }
    assert!(s.refresh());
    assert_eq!(s.events.len(), n + 6);
    assert_eq!(s.events.last().unwrap().kind, "k4");
    assert_eq!(s.bytes_read - before, added as u64);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn replaced_or_shrunk_files_are_reread() {
    let d = copy_fixture("running", "replace");
    let path = d.join("metrics.jsonl");
    let mut s = Store::open(&d);
    assert_eq!(s.metrics.len(), 24);
    // A resume drops the rows of an unfinished epoch by writing a new file and renaming it.
    let all = lines(&path);
    let tmp = d.join("metrics.jsonl.tmp");
    fs::write(&tmp, format!("{}\n", all[..18].join("\n"))).unwrap();
    fs::rename(&tmp, &path).unwrap();
    assert!(s.refresh());
    assert_eq!(s.metrics.len(), 18);
    assert_eq!(s.metrics.iter().map(|m| m.epoch).max(), Some(3));
    // Truncated in place.
    fs::write(&path, format!("{}\n", all[..6].join("\n"))).unwrap();
    assert!(s.refresh());
    assert_eq!(s.metrics.len(), 6);
    // Removed.
    fs::remove_file(&path).unwrap();
    assert!(s.refresh());
    assert!(s.metrics.is_empty());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_lines_and_files_are_reported_not_fatal() {
    let d = copy_fixture("finished", "bad");
    let path = d.join("events.jsonl");
    append(&path, "this is not json\n");
    append(&path, r#"{"time":"t","level":"info","kind":"after","message":"m"}"#);
    append(&path, "\n");
    fs::write(d.join("run.json"), "{ not json").unwrap();
    let s = Store::open(&d);
    assert_eq!(s.events.len(), 5, "the bad line is skipped, the next one read");
    assert_eq!(s.events[4].kind, "after");
    assert!(s.run.is_none());
    let files: Vec<&str> = s.problems.iter().map(|(f, _)| f.as_str()).collect();
    assert!(files.contains(&"events.jsonl") && files.contains(&"run.json"), "{:?}", s.problems);
    fs::remove_dir_all(&d).unwrap();
}
