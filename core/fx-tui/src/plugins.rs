//! `fx-tui plugins`: the dataset plugins this fx knows — built in, beside the binary, in
//! FX_PLUGIN_PATH, and those of `--load` libraries or an experiment's `plugins` — and the heads
//! those libraries offer.

use crate::process::registry;
use anyhow::Result;
use fx::config::Experiment;
use std::path::{Path, PathBuf};

pub fn print(load: &[PathBuf], experiment: Option<&Path>) -> Result<()> {
    let mut libs = load.to_vec();
    if let Some(e) = experiment {
        libs.extend(Experiment::load(e, &[])?.plugins);
    }
    let r = registry().with_libraries("--load", &libs)?;
    println!("plugin ABI {} — libraries are searched beside fx-tui and in FX_PLUGIN_PATH", fx_plugin::ABI_VERSION);
    for (name, summary, from) in r.describe() {
        println!("{name:16} {from}\n{:16} {summary}", "");
    }
    // Heads from plugin libraries (`[datasets.heads.<task>] plugin = "<name>"`).
    for lib in libs.iter().filter(|l| fx::head_plugin::is_head_library(l)) {
        let lib = fx::head_plugin::open(lib)?;
        for k in &lib.kinds {
            println!("{:16} {} head, {}\n{:16} {}", k.name, k.task, lib.path.display(), "", k.summary);
        }
    }
    Ok(())
}
