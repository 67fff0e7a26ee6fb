//! Bad input: clear errors naming the path, nothing lost in the output folder.

mod common;

use common::*;
use fx_export::{export, report, ExportOptions};
use std::fs;

fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn a_missing_path_is_named() {
    let out = tempfile::tempdir().unwrap();
    let e = err(export("/nonexistent/run-x".as_ref(), out.path(), &ExportOptions::default()));
    assert!(e.contains("/nonexistent/run-x") && e.contains("no such run directory"), "{e}");
}

#[test]
fn a_folder_that_is_not_a_run_is_named() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = err(export(dir.path(), out.path(), &ExportOptions::default()));
    assert!(e.contains(&dir.path().display().to_string()) && e.contains("not an fx run directory"), "{e}");

    let file = dir.path().join("notes.txt");
    let e = err(export(&file, out.path(), &ExportOptions::default()));
    assert!(e.contains("notes.txt") && e.contains("not a run directory"), "{e}");
}

#[test]
fn an_empty_metrics_file_is_a_clear_error_and_writes_nothing() {
    let run = tempfile::tempdir().unwrap();
    copy_run(&fixture("finished"), run.path());
    fs::write(run.path().join("metrics.jsonl"), "").unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("notes.txt"), "keep me").unwrap();
    let e = err(export(run.path(), out.path(), &ExportOptions::default()));
    assert!(e.contains(&run.path().display().to_string()) && e.contains("empty metrics.jsonl"), "{e}");
    assert!(e.contains("nothing to export yet"), "{e}");
    assert_eq!(names(out.path()), vec!["notes.txt"]);

    fs::remove_file(run.path().join("metrics.jsonl")).unwrap();
    let e = err(export(run.path(), out.path(), &ExportOptions::default()));
    assert!(e.contains("has no metrics.jsonl"), "{e}");

    // Only malformed lines: the reader's complaint is in the message.
    fs::write(run.path().join("metrics.jsonl"), "{not json\n").unwrap();
    let e = err(export(run.path(), out.path(), &ExportOptions::default()));
    assert!(e.contains("no readable metric rows"), "{e}");
    assert_eq!(names(out.path()), vec!["notes.txt"]);
}

#[test]
fn a_model_without_rows_is_skipped_or_named() {
    let run = tempfile::tempdir().unwrap();
    copy_run(&fixture("finished"), run.path());
    let text = fs::read_to_string(run.path().join("metrics.jsonl")).unwrap();
    let teacher_only: String = text.lines().filter(|l| !l.contains("\"student\"")).map(|l| format!("{l}\n")).collect();
    fs::write(run.path().join("metrics.jsonl"), teacher_only).unwrap();
    let out = tempfile::tempdir().unwrap();
    let only_student = ExportOptions { models: vec!["student".into()], ..Default::default() };
    let e = err(export(run.path(), out.path(), &only_student));
    assert!(e.contains("no metric rows for model(s) 'student'") && e.contains("the run has: teacher"), "{e}");
    assert!(names(out.path()).is_empty());
    // Asked for both, the student is skipped with a warning; the tables have no student columns.
    let s = export(run.path(), out.path(), &ExportOptions::default().with_student()).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("no metric rows for model 'student'")), "{:?}", s.warnings);
    assert!(!names(out.path()).iter().any(|n| n.contains("student")));
    assert_eq!(s.charts, 3);
    let (header, _) = csv(&fs::read_to_string(out.path().join("final.csv")).unwrap());
    assert_eq!(header, ["dataset", "task", "metric", "epoch", "teacher", "best_teacher", "best_teacher_epoch"]);
}

#[test]
fn an_output_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out");
    fs::write(&file, "x").unwrap();
    let e = err(export(&fixture("finished"), &file, &ExportOptions::default()));
    assert!(e.contains("exists and is not a directory"), "{e}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn existing_files_are_kept_and_replaced_whole() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("nested/export");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("notes.txt"), "keep me").unwrap();
    fs::write(target.join("final.csv"), "stale").unwrap();
    export(&fixture("finished"), &target, &ExportOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(target.join("notes.txt")).unwrap(), "keep me");
    assert!(fs::read_to_string(target.join("final.csv")).unwrap().starts_with("dataset,task,metric,epoch,"));
    assert!(!names(&target).iter().any(|n| n.contains(".tmp")), "{:?}", names(&target));
    // Exporting again over the same folder gives the same bytes.
    let before = fs::read(target.join("phantom-cxp-cls-teacher.png")).unwrap();
    export(&fixture("finished"), &target, &ExportOptions::default()).unwrap();
    assert_eq!(fs::read(target.join("phantom-cxp-cls-teacher.png")).unwrap(), before);
}

#[test]
fn malformed_and_torn_lines_become_warnings() {
    let run = tempfile::tempdir().unwrap();
    copy_run(&fixture("finished"), run.path());
    let mut text = fs::read_to_string(run.path().join("metrics.jsonl")).unwrap();
    text.push_str("{garbage\n{\"epoch\":7,\"cycle\":");
    fs::write(run.path().join("metrics.jsonl"), text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let s = export(run.path(), out.path(), &ExportOptions::default()).unwrap();
    assert_eq!(s.last_epoch, 6, "the torn last line is ignored");
    assert!(s.warnings.iter().any(|w| w.starts_with("metrics.jsonl:")), "{:?}", s.warnings);
    let (_, rows) = csv(&fs::read_to_string(out.path().join("final.csv")).unwrap());
    assert_eq!(rows.len(), 3);
}

#[test]
fn report_errors_name_the_bad_run() {
    let out = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    let e = err(report(&[fixture("finished"), bad.path().to_path_buf()], out.path()));
    assert!(e.contains(&bad.path().display().to_string()) && e.contains("not an fx run directory"), "{e}");
    assert!(names(out.path()).is_empty(), "nothing written");
    let e = err(report(&[], out.path()));
    assert!(e.contains("at least one run"), "{e}");
}
