//! `fx-run`: the run directory as a contract between the trainer (fx, which writes it) and its
//! readers (fx-view, fx-export, fx-tui's commands), in a crate that links neither libtorch nor a
//! UI, so a viewer process stays small.
//!
//! ```text
//! runs/<name>-<yyyymmdd-hhmmss>/
//!   experiment.toml   the exact config used (after --set overrides)
//!   plan.json         the schedule
//!   run.json          status, pid, host, start, heartbeat, progress   (records::RunInfo)
//!   progress.json     the running epoch's step, loss, img/s, ETA
//!   model.json        parameter counts, head labels (the model card)
//!   metrics.jsonl     append-only metric rows                          (records::MetricRow)
//!   events.jsonl      append-only events                               (records::Event)
//!   trainer.lock      flock held by the trainer for its lifetime       (lock)
//!   control.sock      the trainer's control socket                     (control)
//!   tags              the browser's tags, one per line
//!   checkpoints/      last.json → epoch-NNNN/…
//!   predictions/      the last evaluation's scores and labels
//! ```
//! Appends are whole lines written with one `write` and fsynced; readers drop a torn last line.
//! Whole files are replaced atomically ([`io::write_atomic`]).

pub mod compare;
pub mod control;
pub mod experiment;
pub mod fabricate;
pub mod facts;
pub mod files;
pub mod hot_add;
pub mod io;
pub mod lock;
pub mod model;
pub mod plan;
pub mod records;
pub mod store;
pub mod sym;

pub use experiment::{DatasetEntry, ExperimentInfo};
pub use io::{append_lines, read_jsonl, write_atomic};
pub use model::{ClsHeadSpec, HeadLabels, ModelInfo, PluginHeadSpec, SegHeadSpec};
pub use plan::*;
pub use records::*;
pub use store::Store;
pub use sym::Sym;
