//! Every experiment file in experiments/ (recursively) parses and validates, and each of its
//! datasets served by the phantom plugins opens with its options: a typo in a shipped file fails
//! here, not when someone starts a run.

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
    for f in &files {
        let exp = Experiment::load(f, &[]).unwrap_or_else(|e| panic!("{e:#}"));
        // Real-dataset plugins are not linked into this test; their files only have to parse.
        for (i, d) in exp.datasets.iter().enumerate().filter(|(_, d)| registry.names().contains(&d.plugin.as_str())) {
            if let Err(e) = registry.open(&f.display().to_string(), i, d) {
                panic!("{e:#}");
            }
        }
    }
}
