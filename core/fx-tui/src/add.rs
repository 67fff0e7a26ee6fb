//! `fx-tui add RUN FILE`: hot-adds datasets to a run. The engine validates and queues
//! ([`fx::train::queue_added`]); the trainer adds them at its next epoch boundary.

use crate::control;
use crate::process::registry;
use anyhow::Result;
use std::path::Path;

pub fn run(run: &Path, file: &Path) -> Result<()> {
    let (queued, n) = fx::train::queue_added(run, file, &registry())?;
    let alive = control::trainer_alive(run) == Some(true);
    println!(
        "queued {n} dataset(s) as {}; {}",
        queued.display(),
        if alive {
            "the trainer adds them at its next epoch boundary (events.jsonl: dataset_added)"
        } else {
            "they join when the run resumes (fx-tui --resume RUN)"
        }
    );
    Ok(())
}
