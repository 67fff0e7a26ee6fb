//! What the engine's tests share: [`Tiny`], the tiny experiment they train, and what the resume
//! tests (resume.rs, precision.rs, heads.rs) compare: two run directories that must hold the same
//! metric rows and byte-identical final checkpoints.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use fx::config::Experiment;
use fx::train::Trainer;
use std::path::{Path, PathBuf};

/// libtorch's random generator is one per process (model initialisation, dropout and `randn`
/// draw from it) and the tests of a file run on parallel threads: every test that trains or draws
/// holds this lock, so its draws are its own and the outcome is the same alone or in the suite.
/// A test that takes no lock must not draw (CI once failed a resume comparison because a
/// lock-free test's `randn` interleaved with a trainer's initialisation).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tiny experiment, written as TOML and read by the same parser as a user's file: a swin_nano
/// on the CPU at 64 px without stochastic depth, one loader worker. [`Tiny::set`] adds or
/// replaces any key by its dotted path (`train.cycles`, `optimizer.lr`), [`Tiny::dino`] gives the
/// localization branch the small sizes the loc tests share, [`Tiny::dataset`] adds a
/// `[[datasets]]` table, and [`Tiny::raw`] appends TOML tables as they are.
pub struct Tiny {
    name: String,
    /// (table path, its keys), in the order first set; "" is the root.
    tables: Vec<(String, Vec<(String, String)>)>,
    raw: Vec<String>,
    datasets: Vec<String>,
}

impl Tiny {
    pub fn new(name: &str, seed: u64, output_dir: &Path) -> Tiny {
        Tiny { name: name.into(), tables: vec![(String::new(), Vec::new())], raw: Vec::new(), datasets: Vec::new() }
            .set("name", &format!("{name:?}"))
            .set("seed", &seed.to_string())
            .set("device", "\"cpu\"")
            .set("output_dir", &format!("{:?}", output_dir.display().to_string()))
            .set("model.arch", "\"swin_nano\"")
            .set("model.image_size", "64")
            .set("model.drop_path", "0.0")
            .set("train.workers", "1")
    }

    /// `path` = table path + key (`train.batch_size`); `value` is TOML (`8`, `"bf16"`, `{ a = 1 }`).
    pub fn set(mut self, path: &str, value: &str) -> Tiny {
        let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
        let i = match self.tables.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                self.tables.push((table.to_string(), Vec::new()));
                self.tables.len() - 1
            }
        };
        let keys = &mut self.tables[i].1;
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Leaves a key out (its default applies).
    pub fn unset(mut self, path: &str) -> Tiny {
        let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
        if let Some((_, keys)) = self.tables.iter_mut().find(|(t, _)| t == table) {
            keys.retain(|(k, _)| k != key);
        }
        self
    }

    /// The localization branch at test size: 32 wide, 1 encoder and 2 decoder layers, 12 queries.
    pub fn dino(self) -> Tiny {
        [
            ("hidden_dim", "32"),
            ("heads", "4"),
            ("points", "2"),
            ("encoder_layers", "1"),
            ("decoder_layers", "2"),
            ("ffn_dim", "64"),
            ("num_queries", "12"),
            ("dn_number", "6"),
            ("num_select", "20"),
            ("gn_groups", "8"),
        ]
        .into_iter()
        .fold(self, |t, (k, v)| t.set(&format!("model.dino.{k}"), v))
    }

    /// A `[[datasets]]` table of `plugin`, with `lines` (keys, and sub-tables such as
    /// `[datasets.heads.seg]`) after its `plugin` key.
    pub fn dataset(mut self, plugin: &str, lines: &str) -> Tiny {
        self.datasets.push(format!("[[datasets]]\nplugin = \"{plugin}\"\n{lines}\n"));
        self
    }

    /// TOML appended after the tables set so far (a table must not be one of theirs).
    pub fn raw(mut self, toml: &str) -> Tiny {
        self.raw.push(toml.to_string());
        self
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (table, keys) in &self.tables {
            if !table.is_empty() {
                out.push_str(&format!("[{table}]\n"));
            }
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for r in &self.raw {
            out.push_str(r);
            out.push('\n');
        }
        for d in &self.datasets {
            out.push_str(d);
        }
        out
    }

    /// The experiment, as from `<name>.toml`.
    pub fn experiment(&self) -> Experiment {
        Experiment::parse(Path::new(&self.file()), &self.text(), &[]).unwrap()
    }

    /// A trainer on the phantom datasets, on the CPU.
    pub fn trainer(&self) -> Trainer {
        let registry = fx::registry::Registry::new(fx_phantom::plugins());
        Trainer::create(self.experiment(), &self.file(), &registry, tch::Device::Cpu).unwrap()
    }

    pub fn file(&self) -> String {
        format!("{}.toml", self.name)
    }
}

/// Metric rows without their wall times.
pub fn rows(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_time");
            v
        })
        .collect()
}

pub fn last_checkpoint(run: &Path) -> PathBuf {
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
    run.join("checkpoints").join(last["dir"].as_str().unwrap())
}

/// The run trained straight through and the run resumed after every epoch agree exactly: the same
/// metric rows (wall times aside) and byte-identical student, teacher and optimizer checkpoints.
pub fn assert_same_run(straight: &Path, resumed: &Path, what: &str) {
    let (ra, rb) = (rows(straight), rows(resumed));
    assert_eq!(ra.len(), rb.len(), "{what}: a resumed run has another number of rows");
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x, y, "{what}: a resumed run's row differs");
    }
    let (ca, cb) = (last_checkpoint(straight), last_checkpoint(resumed));
    for f in ["student.safetensors", "teacher.safetensors", "optimizer.safetensors"] {
        assert!(std::fs::read(ca.join(f)).unwrap() == std::fs::read(cb.join(f)).unwrap(), "{what}: {f} differs");
    }
}

/// Trains `exp` straight through (after `inspect` has seen the new trainer), and again with a
/// fresh trainer resumed before every epoch, as after kill -9: the two runs must agree exactly.
/// Returns the straight run's directory (kept while the returned guard lives) and its epochs.
pub fn train_and_resume(
    exp: &dyn Fn(&Path) -> Experiment,
    what: &str,
    registry: &fx::registry::Registry,
    inspect: impl FnOnce(&Trainer),
) -> (tempfile::TempDir, PathBuf, usize) {
    let cpu = tch::Device::Cpu;
    let a = tempfile::tempdir().unwrap();
    let mut straight =
        Trainer::create(exp(a.path()), "t.toml", registry, cpu).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    inspect(&straight);
    let epochs = straight.plan.len();
    for _ in 0..epochs {
        assert!(straight.run_epoch(&mut |_| {}).unwrap());
    }
    let straight_dir = straight.run_dir();
    drop(straight);
    let b = tempfile::tempdir().unwrap();
    let resumed_dir = Trainer::create(exp(b.path()), "t.toml", registry, cpu).unwrap().run_dir();
    for _ in 0..epochs {
        Trainer::resume(&resumed_dir, registry, Some(cpu)).unwrap().run_epoch(&mut |_| {}).unwrap();
    }
    assert_same_run(&straight_dir, &resumed_dir, what);
    (a, straight_dir, epochs)
}

/// A plugin library of this workspace (`package`, file `file` in target/release), built by
/// `make setup` (cargo build --workspace); built here when a bare `cargo test` ran first.
pub fn library(package: &str, file: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lib = root.join("target/release").join(file);
    if !lib.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", package])
            .current_dir(&root)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok && lib.is_file(), "could not build {}", lib.display());
    }
    lib
}
