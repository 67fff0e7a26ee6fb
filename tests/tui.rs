//! The live viewer as a person uses it, in a real terminal (tmux): start training, see the charts,
//! detach, lose the terminal, the trainer keeps writing, re-attach and see all history, stop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let ok = Command::new("tmux").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
        assert!(ok, "tmux is required for this test (make test installs it)");
        // One server per instance: tests of this file run in parallel and each kills its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Tmux { socket: format!("fx-test-{}-{n}", std::process::id()) }
    }
    fn cmd(&self, args: &[&str]) -> String {
        let o = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }
    fn start(&self, session: &str, command: &str) {
        self.cmd(&["new-session", "-d", "-s", session, "-x", "80", "-y", "24", command]);
    }
    fn screen(&self, session: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", session])
    }
    fn keys(&self, session: &str, keys: &str) {
        self.cmd(&["send-keys", "-t", session, keys]);
    }
    /// Waits until the screen contains `what`; returns the screen.
    fn wait_for(&self, session: &str, what: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen(session);
            if s.contains(what) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "`{what}` never appeared; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

fn rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map(|s| s.lines().count()).unwrap_or(0)
}

fn status(run: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap_or_default()).unwrap_or_default();
    v["status"].as_str().unwrap_or("").to_string()
}

#[test]
fn follow_detach_lose_terminal_reattach_stop() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let exp = dir.path().join("e.toml");
    std::fs::write(
        &exp,
        format!(
            r#"
name = "tui"
device = "cpu"
output_dir = "{}"
[model]
arch = "swin_nano"
image_size = 32
[train]
batch_size = 16
cycles = 300
log_every = 1
workers = 1
[[datasets]]
plugin = "phantom-cxp"
options = {{ train = 64, test = 32 }}
[[datasets]]
plugin = "phantom-nih"
options = {{ train = 64, test = 32 }}
"#,
            runs.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_fx-tui");
    let t = Tmux::new();
    // LANG unset in CI: force the unicode glyphs on.
    t.start("a", &format!("LANG=C.UTF-8 {bin} {}; sleep 60", exp.display()));
    t.wait_for("a", "[1 Overview]", 30);
    let run: PathBuf = std::fs::read_dir(&runs).unwrap().flatten().next().unwrap().path();
    // Wait for a few evaluated epochs, then look at the charts.
    let t0 = Instant::now();
    while rows(&run) < 8 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no metrics; trainer.log:\n{}",
            std::fs::read_to_string(run.join("trainer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    t.keys("a", "2");
    let charts = t.wait_for("a", "[2 Charts]", 10);
    assert!(charts.contains("phantom-cxp cls auc") && charts.contains("phantom-nih cls auc"), "{charts}");
    // Focused and unfocused epochs are told apart by glyph.
    let t1 = Instant::now();
    let charts = loop {
        let s = t.screen("a");
        if s.contains('◆') && s.contains('•') {
            break s;
        }
        assert!(t1.elapsed() < Duration::from_secs(30), "no focused and unfocused glyphs:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(charts.contains("focused"), "legend missing:\n{charts}");
    // Quit asks; detach leaves the trainer running.
    t.keys("a", "q");
    t.wait_for("a", "detach", 5);
    t.keys("a", "d");
    t.wait_for("a", "detached; training goes on", 5);
    // Lose the terminal altogether.
    t.cmd(&["kill-session", "-t", "a"]);
    let before = rows(&run);
    let t2 = Instant::now();
    while rows(&run) <= before + 4 {
        assert!(t2.elapsed() < Duration::from_secs(120), "the trainer stopped writing after the terminal went away");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status(&run), "running");
    // Re-attach: the whole history is there.
    t.start("b", &format!("LANG=C.UTF-8 {bin} attach {}; sleep 60", run.display()));
    t.wait_for("b", "[1 Overview]", 20);
    let done: usize = {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        v["epochs_done"].as_u64().unwrap() as usize
    };
    assert!(done >= 4);
    t.keys("b", "3");
    let sched = t.wait_for("b", "[3 Schedule]", 10);
    assert!(sched.contains("✓"), "finished epochs are marked:\n{sched}");
    // Stop from the viewer; the trainer checkpoints what it completed and ends.
    t.keys("b", "q");
    t.wait_for("b", "stop training", 5);
    t.keys("b", "s");
    t.wait_for("b", "Resume with", 10);
    let t3 = Instant::now();
    while status(&run) != "stopped" {
        assert!(t3.elapsed() < Duration::from_secs(60), "trainer did not stop: {}", status(&run));
        std::thread::sleep(Duration::from_millis(200));
    }
    // run.json says "stopped" a moment before the trainer prints its last line.
    let t4 = Instant::now();
    loop {
        let log = std::fs::read_to_string(run.join("trainer.log")).unwrap();
        if log.contains("stopped; continue with") {
            break;
        }
        assert!(t4.elapsed() < Duration::from_secs(10), "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `fx-tui sweep` in a terminal: the sweep runs detached and the viewer follows its runs in turn,
/// staying on the last one when it finishes; quitting then names the report.
#[test]
fn sweep_in_the_viewer_follows_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let exp = dir.path().join("s.toml");
    std::fs::write(
        &exp,
        format!(
            r#"
name = "sw"
device = "cpu"
output_dir = "{}"
[model]
arch = "swin_nano"
image_size = 32
[train]
batch_size = 16
cycles = 12
log_every = 1
workers = 1
[optimizer]
lr = {{ backbone = 1e-3, cls_head = 1e-2 }}
[eval]
batch_size = 32
[[datasets]]
plugin = "phantom-cxp"
options = {{ train = 48, test = 32 }}
"#,
            runs.display()
        ),
    )
    .unwrap();
    let t = Tmux::new();
    let bin = env!("CARGO_BIN_EXE_fx-tui");
    t.start("s", &format!("{bin} sweep {} --grid student_teacher=true,false; sleep 60", exp.display()));
    t.wait_for("s", "sw-student_teacher-true", 60);
    t.wait_for("s", "sw-student_teacher-false", 120);
    let last = t.wait_for("s", "status   finished", 120);
    assert!(last.contains("sw-student_teacher-false") && last.contains("Overview"), "{last}");
    t.keys("s", "q");
    let end = t.wait_for("s", "sweep of 2 runs done", 10);
    assert!(end.contains("sw-sweep-report"), "{end}");
    assert!(runs.join("sw-sweep-report/ablation.csv").is_file());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("sw-sweep.json")).unwrap()).unwrap();
    assert_eq!((state["status"].as_str(), state["runs"].as_array().map(|a| a.len())), (Some("finished"), Some(2)));
    // The runs browser groups the sweep's runs, and Enter on the sweep compares its cells.
    t.start("b", &format!("LANG=C.UTF-8 {bin} runs --dir {}; sleep 30", runs.display()));
    t.wait_for("b", "2 of 2 shown", 10);
    t.keys("b", "g");
    t.wait_for("b", "sweep sw (2 runs)", 10);
    t.keys("b", "Enter");
    let cmp = t.wait_for("b", "compare 2 runs", 10);
    assert!(cmp.contains("student_teacher=true") && cmp.contains("student_teacher=false"), "{cmp}");
}

/// The runs browser as a person uses it: three runs, filter by a tag, mark two, compare them,
/// back, open a run in the viewer, back to the browser, quit.
#[test]
fn the_runs_browser_filters_marks_compares_and_opens_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fx-view/tests/data/finished");
    for (name, seed) in [("demo-a", 1), ("demo-b", 2), ("demo-c", 3)] {
        let d = runs.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&fixture).unwrap().flatten() {
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        let toml = std::fs::read_to_string(d.join("experiment.toml")).unwrap().replacen(
            "seed = 7",
            &format!("seed = {seed}"),
            1,
        );
        std::fs::write(d.join("experiment.toml"), toml).unwrap();
    }
    std::fs::write(runs.join("demo-c/tags"), "keep\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_fx-tui");
    let t = Tmux::new();
    // `fx-tui` alone in a terminal opens the browser over ./runs.
    t.start("r", &format!("cd {} && LANG=C.UTF-8 {bin}; sleep 30", dir.path().display()));
    t.wait_for("r", "3 of 3 shown", 10);
    t.keys("r", "/");
    for k in ["k", "e", "e", "p", "Enter"] {
        t.keys("r", k);
    }
    let one = t.wait_for("r", "1 of 3 shown", 10);
    assert!(one.contains("demo-c") && !one.contains("demo-a"), "{one}");
    t.keys("r", "/");
    t.keys("r", "Escape");
    t.wait_for("r", "3 of 3 shown", 10);
    t.keys("r", "Space");
    t.keys("r", "Space");
    t.wait_for("r", "2 marked", 10);
    t.keys("r", "c");
    t.wait_for("r", "compare 2 runs", 10);
    // The screen may be captured mid-draw: wait for its last part too, then check the whole.
    let cmp = t.wait_for("r", "seed=", 10);
    assert!(cmp.contains("compare 2 runs") && cmp.contains("seed=") && cmp.contains("phantom-cxp"), "{cmp}");
    t.keys("r", "Escape");
    t.wait_for("r", "3 of 3 shown", 10);
    t.keys("r", "Enter");
    t.wait_for("r", "[1 Overview]", 10);
    t.keys("r", "q");
    t.wait_for("r", "back from", 10);
    t.keys("r", "q");
    let t0 = Instant::now();
    while t.screen("r").contains("3 of 3 shown") {
        assert!(t0.elapsed() < Duration::from_secs(10), "q did not leave the browser");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The viewer that started a trainer reaps it when it ends: a finished trainer does not linger as
/// a zombie while the viewer stays open (run.json's pid disappears from /proc).
#[test]
fn the_viewer_reaps_the_trainer_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let exp = dir.path().join("z.toml");
    std::fs::write(
        &exp,
        format!(
            r#"
name = "zombie"
device = "cpu"
output_dir = "{}"
[model]
arch = "swin_nano"
image_size = 32
[train]
batch_size = 16
cycles = 1
workers = 1
[[datasets]]
plugin = "phantom-cxp"
options = {{ train = 16, test = 16 }}
"#,
            runs.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_fx-tui");
    let t = Tmux::new();
    t.start("z", &format!("LANG=C.UTF-8 {bin} {}; sleep 60", exp.display()));
    t.wait_for("z", "[1 Overview]", 30);
    let run: PathBuf = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("experiment.toml").exists())
        .unwrap();
    let t0 = Instant::now();
    while status(&run) != "finished" {
        assert!(t0.elapsed() < Duration::from_secs(120), "the run did not finish: {}", status(&run));
        std::thread::sleep(Duration::from_millis(200));
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let pid = info["pid"].as_u64().unwrap();
    // The viewer is still open; the trainer's process must be gone, not a zombie.
    let t1 = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).unwrap_or("");
        if stat.is_empty() || !stat.contains("fx-tui") {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "trainer {pid} still there in state {state} while its viewer runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.wait_for("z", "finished", 20);
}

/// Hot-add from the viewer: `a` lists the dataset files of the experiment's `watch` folder,
/// Enter asks the trainer (over its control socket) to check and queue the chosen one, and the
/// dataset joins at the next epoch boundary: its rows appear on the screen.
#[test]
fn the_add_key_adds_a_watched_dataset_while_training_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let watch = dir.path().join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    std::fs::write(
        watch.join("tbx.toml"),
        "join = \"next_epoch\"\n[[datasets]]\nplugin = \"phantom-tbx\"\ntasks = [\"cls\"]\noptions = { train = 32, test = 16 }\n",
    )
    .unwrap();
    let exp = dir.path().join("e.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"hot\"\ndevice = \"cpu\"\noutput_dir = {:?}\nwatch = [{:?}]\n[model]\narch = \"swin_nano\"\nimage_size = 32\n\
             [train]\nbatch_size = 16\ncycles = 300\nlog_every = 1\nworkers = 1\n\
             [[datasets]]\nplugin = \"phantom-cxp\"\noptions = {{ train = 64, test = 32 }}\n",
            runs.display().to_string(),
            watch.display().to_string()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_fx-tui");
    let t = Tmux::new();
    t.start("h", &format!("LANG=C.UTF-8 {bin} {}; sleep 60", exp.display()));
    t.wait_for("h", "[1 Overview]", 30);
    let run: PathBuf = std::fs::read_dir(&runs).unwrap().flatten().next().unwrap().path();
    // The trainer serves its control socket once it runs.
    let t0 = Instant::now();
    while status(&run) != "running" || !run.join("control.sock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the trainer never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.keys("h", "a");
    let list = t.wait_for("h", "add a dataset", 10);
    assert!(list.contains("tbx.toml") && list.contains("phantom-tbx"), "{list}");
    let asked = Instant::now();
    t.keys("h", "Enter");
    t.wait_for("h", "checked and queued", 60);
    // It joins at the next epoch boundary; its first epoch trains and is evaluated on screen.
    let t1 = Instant::now();
    let events = loop {
        let e = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        if e.contains("dataset_added") {
            break e;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "never added; events:\n{e}\ntrainer.log:\n{}",
            std::fs::read_to_string(run.join("trainer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(events.contains("tbx.toml"), "{events}");
    let first_step = loop {
        let p = std::fs::read_to_string(run.join("progress.json")).unwrap_or_default();
        if p.contains("\"dataset\": \"phantom-tbx\"") || p.contains("\"dataset\":\"phantom-tbx\"") {
            break asked.elapsed();
        }
        assert!(asked.elapsed() < Duration::from_secs(180), "phantom-tbx never trained");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("add key → first training step of the new head: {:.1} s", first_step.as_secs_f64());
    let screen = t.wait_for("h", "phantom-tbx", 120);
    assert!(screen.contains("hot-add: 0 waiting") && screen.contains("1 added"), "{screen}");
    t.keys("h", "q");
    t.wait_for("h", "detach", 5);
    t.keys("h", "s");
    let t2 = Instant::now();
    while status(&run) == "running" {
        assert!(t2.elapsed() < Duration::from_secs(60), "the trainer did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
}
