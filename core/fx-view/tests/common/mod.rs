#![allow(dead_code)]

use fx_run::store::Store;
use fx_view::state::State;
use fx_view::theme::Theme;
use fx_view::ui::{self, View};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Seconds since the Unix epoch of the fixtures' last heartbeats.
pub const FINISHED_HEARTBEAT: i64 = 1795807884; // 2026-11-27T19:31:24Z
pub const RUNNING_HEARTBEAT: i64 = 1795808174; // 2026-11-27T19:36:14Z

/// Renders one frame into a `w`×`h` test terminal; feeds the layout back into the state like the
/// event loop does.
pub fn render(store: &Store, state: &mut State, ascii: bool, now: Option<i64>, w: u16, h: u16) -> Buffer {
    let theme = Theme::new(ascii);
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut drawn = Default::default();
    term.draw(|f| drawn = ui::draw(f, &View { store, state, theme: &theme, now })).unwrap();
    state.after_draw(drawn);
    term.backend().buffer().clone()
}

/// The buffer's symbols, one line per row, trailing spaces cut.
pub fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A fresh, empty temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fx-view-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A temporary copy of a fixture.
pub fn copy_fixture(name: &str, test: &str) -> PathBuf {
    let d = temp_dir(test);
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}
