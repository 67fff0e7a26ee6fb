//! The names of the files in a run directory.

pub const EXPERIMENT: &str = "experiment.toml";
pub const PLAN: &str = "plan.json";
pub const RUN: &str = "run.json";
pub const PROGRESS: &str = "progress.json";
pub const MODEL: &str = "model.json";
pub const METRICS: &str = "metrics.jsonl";
pub const EVENTS: &str = "events.jsonl";
/// The trainer's advisory lock ([`crate::lock`]).
pub const LOCK: &str = "trainer.lock";
/// The trainer's control socket ([`crate::control`]).
pub const SOCKET: &str = "control.sock";
/// The runs browser's tags, one per line.
pub const TAGS: &str = "tags";
/// Where the browser moves deleted runs, inside their output folder.
pub const TRASH: &str = ".trash";
/// The plugin libraries a run's datasets came from, with their SHA-256 (`{path: sha256}`).
pub const PLUGINS: &str = "plugins.json";
