//! A dataset plugin loaded at run time from its own shared library (plugins/stripes), trained like
//! a built-in one; and the errors for a library that is missing or not an fx plugin.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::path::{Path, PathBuf};
use tch::Device;

/// The example plugin library (plugins/stripes).
fn stripes_library() -> PathBuf {
    common::library("fx-stripes", "libfx_stripes.so")
}

fn exp(dir: &Path, plugins: &str) -> Experiment {
    let text = format!(
        r#"
name = "dyn"
device = "cpu"
output_dir = "{}"
plugins = [{plugins}]
[model]
arch = "swin_nano"
image_size = 64
[model.dino]
hidden_dim = 32
heads = 4
points = 2
encoder_layers = 1
decoder_layers = 1
ffn_dim = 64
num_queries = 12
dn_number = 4
gn_groups = 8
[train]
batch_size = 8
cycles = 1
workers = 2
[lock_release]
enabled = false
[[datasets]]
plugin = "stripes"
options = {{ train = 16, test = 8 }}
"#,
        dir.display()
    );
    Experiment::parse(Path::new("dyn.toml"), &text, &[]).unwrap()
}

#[test]
fn a_plugin_library_serves_a_dataset_that_trains_cls_and_loc() {
    let dir = tempfile::tempdir().unwrap();
    let lib = stripes_library();
    let registry = Registry::new(fx_phantom::plugins());
    let e = exp(dir.path(), &format!("\"{}\"", lib.display()));
    let mut t = Trainer::create(e, "dyn.toml", &registry, Device::Cpu).unwrap();
    assert_eq!(t.datasets[0].tasks, [fx_plugin::Task::Cls, fx_plugin::Task::Loc]);
    // Samples cross the C ABI whole: image, labels, boxes.
    let ds = t.datasets[0].dataset.clone();
    let s = ds.load(&t.datasets[0].train[0], 64).unwrap();
    assert_eq!((s.width, s.height, s.image.len(), s.cls.len(), s.boxes.len()), (64, 64, 64 * 64, 1, 1));
    assert!(s.image.iter().any(|&v| v > 0.9), "the block is in the image");
    assert_eq!(t.run(&mut |_| {}).unwrap(), "finished");
    let rows = t.run.metrics().unwrap();
    assert!(rows.iter().any(|r| r.eval.dataset == "stripes" && r.metric == "auc"));
    assert!(rows.iter().any(|r| r.eval.dataset == "stripes" && r.metric == "map40"));

    // The registry lists it with its library.
    let mut r = Registry::new(fx_phantom::plugins());
    assert_eq!(r.load_library(&lib).unwrap(), ["stripes"]);
    assert!(r.describe().iter().any(|(n, _, from)| n == "stripes" && from.ends_with("libfx_stripes.so")));
    // The same file again (discovered beside fx-tui and listed by an experiment) loads once...
    assert_eq!(r.load_library(&lib).unwrap(), ["stripes"]);
    assert_eq!(r.names().iter().filter(|n| *n == "stripes").count(), 1);
    // ...another library offering the same plugin name is a clash.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libfx_stripes_copy.so");
    std::fs::copy(&lib, &copy).unwrap();
    assert!(format!("{:#}", r.load_library(&copy).unwrap_err()).contains("already registered"));
}

#[test]
fn a_wrong_plugin_library_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(fx_phantom::plugins());
    let missing = dir.path().join("nope.so");
    let err = format!(
        "{:#}",
        Trainer::create(exp(dir.path(), &format!("\"{}\"", missing.display())), "dyn.toml", &registry, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(
        err.contains("dyn.toml: plugins[0]") && err.contains("nope.so") && err.contains("no such plugin library"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.so");
    std::fs::write(&garbage, b"not a library").unwrap();
    let err = format!(
        "{:#}",
        Trainer::create(exp(dir.path(), &format!("\"{}\"", garbage.display())), "dyn.toml", &registry, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(err.contains("garbage.so") && err.contains("cannot load"), "{err}");
    // A real shared library that is not an fx plugin: libtorch's C10.
    let c10 = std::fs::read_dir(Path::new(env!("FX_LIBTORCH_LIB")))
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n == "libc10.so")));
    let c10 = c10.expect("libc10.so next to libtorch");
    let err = format!(
        "{:#}",
        Trainer::create(exp(dir.path(), &format!("\"{}\"", c10.display())), "dyn.toml", &registry, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(err.contains("not an fx plugin"), "{err}");

    // The stripes library as if built against another fx-plugin: its fingerprint string patched
    // in a copy (same length). Refused after the ABI number, before anything else is asked.
    let bytes = std::fs::read(stripes_library()).unwrap();
    let ours = fx_plugin::FINGERPRINT.as_bytes();
    let at = bytes.windows(ours.len()).position(|w| w == ours).expect("the fingerprint string in the library");
    let mut other = bytes.clone();
    let theirs = b"fx-plugin 0.0.9\0";
    assert_eq!(theirs.len(), ours.len(), "the patch keeps the library's layout");
    other[at..at + ours.len()].copy_from_slice(theirs);
    let old = dir.path().join("libfx_stripes_old.so");
    std::fs::write(&old, &other).unwrap();
    let err = format!(
        "{:#}",
        Trainer::create(exp(dir.path(), &format!("\"{}\"", old.display())), "dyn.toml", &registry, Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(
        err.contains("libfx_stripes_old.so")
            && err.contains("built against fx-plugin 0.0.9")
            && err.contains(fx_plugin::fingerprint())
            && err.contains("rebuild"),
        "{err}"
    );
}

/// A plugin library someone else could have written is refused before it is loaded, naming the
/// file and its mode; a run refuses to resume with a library whose SHA-256 changed since it
/// started, unless told to.
#[test]
fn untrusted_libraries_are_refused_and_a_changed_one_stops_a_resume() {
    use fx::dynlib::Library;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("libs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lib = folder.join("libfx_stripes.so");
    std::fs::copy(stripes_library(), &lib).unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let refused = |why: &str| {
        let e = format!("{:#}", Library::open(&lib).err().unwrap_or_else(|| panic!("loaded although {why}")));
        assert!(e.contains("refused"), "{e}");
        e
    };
    mode(&lib, 0o664);
    let e = refused("group-writable");
    assert!(
        e.contains("libfx_stripes.so") && e.contains("writable by its group (mode 0664)") && e.contains("chmod go-w"),
        "{e}"
    );
    mode(&lib, 0o646);
    assert!(refused("writable by others").contains("writable by everyone (mode 0646)"));
    mode(&lib, 0o755);
    mode(&folder, 0o777);
    let e = refused("in a world-writable folder");
    assert!(e.contains("folder") && e.contains("mode 0777"), "{e}");
    // A sticky folder (as /tmp) lets only a file's owner replace it.
    mode(&folder, 0o1777);
    Library::open(&lib).unwrap();
    mode(&folder, 0o755);
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        std::os::unix::fs::chown(&lib, Some(65534), None).unwrap();
        assert!(refused("owned by another user").contains("owned by uid 65534"));
        std::os::unix::fs::chown(&lib, Some(0), None).unwrap();
    } else {
        eprintln!("note: not root, so a library owned by another user cannot be arranged here");
    }

    // The run records the library's SHA-256 ...
    let registry = Registry::new(fx_phantom::plugins());
    let runs = dir.path().join("runs");
    let t = Trainer::create(exp(&runs, &format!("\"{}\"", lib.display())), "dyn.toml", &registry, Device::Cpu).unwrap();
    let run_dir = t.run_dir();
    drop(t);
    let recorded: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("plugins.json")).unwrap()).unwrap();
    let key = std::fs::canonicalize(&lib).unwrap().display().to_string();
    assert_eq!(recorded.get(&key), Some(&fx::dynlib::sha256_hex(&lib).unwrap()), "{recorded:?}");
    assert!(std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap().contains("plugin_libraries"));
    // ... and a resume with a different library is refused, unless allowed.
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(&lib).unwrap().write_all(b"rebuilt").unwrap();
    let e = format!("{:#}", Trainer::resume(&run_dir, &registry, Some(Device::Cpu)).err().unwrap());
    assert!(
        e.contains("changed since the run used it") && e.contains(fx::train::Trainer::ALLOW_CHANGED_PLUGINS),
        "{e}"
    );
    std::env::set_var(fx::train::Trainer::ALLOW_CHANGED_PLUGINS, "1");
    let resumed = Trainer::resume(&run_dir, &registry, Some(Device::Cpu));
    std::env::remove_var(fx::train::Trainer::ALLOW_CHANGED_PLUGINS);
    resumed.unwrap();
}
