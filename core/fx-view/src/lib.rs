//! `fx-view`: the live experiment viewer. It reads a run directory (never the engine) and draws
//! five screens with ratatui: Overview, Charts (the paper's Figure 2), Schedule, Heads and Log.
//!
//! The binary calls [`run`] with the run directory; it returns how the user left
//! ([`ViewExit::Quit`], [`ViewExit::Detach`] or [`ViewExit::Stop`]). The pieces are public so a
//! caller or a test can render any screen into any ratatui backend: [`fx_run::Store`] reads the
//! directory incrementally, [`state::State`] holds the screen and selections and maps keys to
//! changes, [`ui::draw`] draws one frame.

pub mod app;
pub mod browser;
pub mod chart;
pub mod runs;
pub mod screens;
pub mod state;
pub mod theme;
pub mod ui;

pub use app::{attach, browse_runs, run, Control, ViewOptions};
pub use state::ViewExit;
pub use theme::locale_is_utf8;
