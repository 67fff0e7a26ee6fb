//! Every experiment file in experiments/ (recursively) parses and validates, names only plugins
//! that exist (built in or one of the workspace's plugin libraries), and each of its datasets
//! served by the phantom plugins opens with its options: a typo in a shipped file fails here, not
//! when someone starts a run.

use fx::config::Experiment;
use fx::registry::Registry;
use std::path::{Path, PathBuf};

fn tomls(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            tomls(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_experiment_file_loads_and_its_phantom_datasets_open() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut files = Vec::new();
    tomls(&root, &mut files);
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("demo.toml")), "experiments/ not found at {}", root.display());
    let registry = Registry::new(fx_phantom::plugins());
    let all = every_plugin();
    for f in &files {
        let exp = Experiment::load(f, &[]).unwrap_or_else(|e| panic!("{e:#}"));
        for (i, d) in exp.datasets.iter().enumerate() {
            assert!(
                all.names().contains(&d.plugin),
                "{}: datasets[{i}] names plugin `{}`, which neither fx nor a plugin library of the workspace offers ({})",
                f.display(),
                d.plugin,
                all.names().join(", ")
            );
        }
        // Real-dataset plugins are not linked into this test; their files only have to parse.
        for (i, d) in exp.datasets.iter().enumerate().filter(|(_, d)| registry.names().contains(&d.plugin)) {
            if let Err(e) = registry.open(&f.display().to_string(), i, d, None) {
                panic!("{e:#}");
            }
        }
        // A phantom experiment must also get through everything `fx-tui plan` checks (tasks,
        // branch sizes against the image size) and plan a schedule.
        if exp.datasets.iter().all(|d| d.plugin.starts_with("phantom-")) {
            let ds =
                fx::train::open_datasets(&exp, &f.display().to_string(), &registry).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(!fx::schedule::plan(&exp, &fx::train::tasks_of(&ds)).is_empty());
        }
    }
}

/// The built-in plugins and every plugin library of the workspace (target/release/libfx_*.so,
/// built by `make setup`; built here when a bare `cargo test` ran first).
fn every_plugin() -> Registry {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let release = root.join("target/release");
    if !release.join("libfx_chexpert.so").is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .args(["build", "--release", "--workspace", "--lib"])
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not build the plugin libraries");
    }
    let mut plugins = fx_phantom::plugins();
    plugins.extend(fx_files::plugins());
    let mut r = Registry::new(plugins);
    let warnings = r.discover(&[release]);
    assert!(warnings.is_empty(), "{warnings:?}");
    r
}

#[test]
fn an_experiment_naming_a_plugin_that_does_not_exist_is_caught() {
    let r = every_plugin();
    for p in [
        "chexpert",
        "nih-cxr14",
        "vindr-cxr",
        "shenzhen",
        "mimic-cxr",
        "tbx11k",
        "node21",
        "rsna-pneumonia",
        "candid-ptx",
        "chestx-det",
        "siim-acr",
        "chexmask",
        "vindr-ribcxr",
        "montgomery",
        "jsrt",
    ] {
        assert!(r.names().iter().any(|n| n == p), "plugin {p} missing: {:?}", r.names());
    }
    assert!(!r.names().iter().any(|n| n == "chexpert-v2"));
}

fn experiments() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

#[test]
fn table10_cells_extend_the_organ_experiment_with_their_switches() {
    for (dir, base) in [("table10", "organs_ls.toml"), ("phantom/table10", "phantom/organs_ls.toml")] {
        let base = Experiment::load(&experiments().join(base), &[]).unwrap();
        for (cell, lr, st) in [
            ("lock_release-student_teacher", true, true),
            ("lock_release-only", true, false),
            ("student_teacher-only", false, true),
            ("neither", false, false),
        ] {
            let e = Experiment::load(&experiments().join(dir).join(format!("{cell}.toml")), &[]).unwrap();
            assert_eq!((e.lock_release.enabled, e.student_teacher.enabled), (lr, st), "{dir}/{cell}");
            // Everything else is the base experiment's.
            assert_eq!(e.datasets, base.datasets);
            assert_eq!(e.model, base.model);
            assert_eq!(e.train, base.train);
            assert_eq!(e.optimizer, base.optimizer);
        }
    }
}

#[test]
fn extends_merges_tables_and_reports_loops_and_missing_bases() {
    let dir = tempfile::tempdir().unwrap();
    let base = "name = 'b'\n[model]\narch = 'swin_nano'\nimage_size = 32\n[train]\ncycles = 3\nbatch_size = 4\n[[datasets]]\nplugin = 'phantom-cxp'\n";
    std::fs::write(dir.path().join("base.toml"), base).unwrap();
    std::fs::write(dir.path().join("child.toml"), "extends = 'base.toml'\nname = 'c'\n[train]\ncycles = 5\n").unwrap();
    let e = Experiment::load(&dir.path().join("child.toml"), &["train.batch_size=2".into()]).unwrap();
    assert_eq!((e.name.as_str(), e.train.cycles, e.train.batch_size, e.model.image_size), ("c", 5, 2, 32));
    std::fs::write(dir.path().join("a.toml"), "extends = 'b.toml'\nname = 'a'\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "extends = 'a.toml'\nname = 'b'\n").unwrap();
    let err = format!("{:#}", Experiment::load(&dir.path().join("a.toml"), &[]).unwrap_err());
    assert!(err.contains("loops back"), "{err}");
    std::fs::write(dir.path().join("m.toml"), "extends = 'nope.toml'\nname = 'm'\n").unwrap();
    let err = format!("{:#}", Experiment::load(&dir.path().join("m.toml"), &[]).unwrap_err());
    assert!(err.contains("m.toml") && err.contains("nope.toml") && err.contains("cannot read"), "{err}");
    // A typo in the child is still named.
    std::fs::write(dir.path().join("t.toml"), "extends = 'base.toml'\n[train]\ncycels = 5\n").unwrap();
    let err = format!("{:#}", Experiment::load(&dir.path().join("t.toml"), &[]).unwrap_err());
    assert!(err.contains("cycels") && err.contains("did you mean `cycles`"), "{err}");
}

#[test]
fn a_real_data_experiment_without_its_data_lists_every_missing_root_and_its_twin() {
    let f = experiments().join("cls_loc_seg.toml");
    let exp = Experiment::load(&f, &[]).unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let err = format!("{:#}", fx::train::open_datasets(&exp, "cls_loc_seg.toml", &registry).err().unwrap());
    assert!(err.contains("11 dataset root(s) missing"), "{err}");
    for d in &exp.datasets {
        assert!(err.contains(&d.root.as_ref().unwrap().display().to_string()), "{err}");
    }
    assert!(err.contains("experiments/phantom/cls_loc_seg.toml"), "{err}");
    // The twin has the same datasets, tasks and cycle structure.
    let twin = Experiment::load(&experiments().join("phantom/cls_loc_seg.toml"), &[]).unwrap();
    let names = |e: &Experiment| e.datasets.iter().map(|d| (d.name().to_string(), d.tasks.clone())).collect::<Vec<_>>();
    assert_eq!(names(&twin), names(&exp));
    let ds = fx::train::open_datasets(&twin, "twin", &registry).unwrap();
    let plan = fx::schedule::plan(&twin, &fx::train::tasks_of(&ds));
    // 20 tasks per cycle; 9 of them (loc and seg) are a Lock and a Release epoch: 29 epochs.
    assert_eq!(plan.iter().filter(|p| p.cycle == 1).count(), 29);
}

/// docs/DATASETS.md is generated from the plugins' crate docs (scripts/make_datasets_doc.py):
/// every dataset plugin's doc must appear in it as written.
#[test]
fn the_dataset_guide_holds_every_plugins_crate_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guide = std::fs::read_to_string(root.join("docs/DATASETS.md")).unwrap();
    for name in [
        "chexpert",
        "nih-cxr14",
        "vindr-cxr",
        "shenzhen",
        "mimic-cxr",
        "tbx11k",
        "node21",
        "rsna-pneumonia",
        "candid-ptx",
        "chestx-det",
        "siim-acr",
        "chexmask",
        "vindr-ribcxr",
        "montgomery",
        "jsrt",
    ] {
        let src = std::fs::read_to_string(root.join("plugins").join(name).join("src/lib.rs")).unwrap();
        let doc: Vec<&str> = src
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.strip_prefix("//! ").unwrap_or(l.strip_prefix("//!").unwrap()))
            .collect();
        let doc = doc.join("\n");
        assert!(
            guide.contains(&format!("## {name}\n\n{}", doc.trim())),
            "docs/DATASETS.md is stale for {name}: run python3 scripts/make_datasets_doc.py"
        );
    }
}
