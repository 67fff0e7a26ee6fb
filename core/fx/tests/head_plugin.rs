//! A head whose forward comes from a plugin library (plugins/csra: class-specific residual
//! attention): loaded from a temporary folder, trained end to end with the backbone (its
//! parameters created and owned by the host), checkpointed and resumed exactly, and predicted from
//! the run; a failing head disabled while the rest trains; the libraries fx refuses.

mod common;

use common::Tiny;
use fx::registry::Registry;
use fx::train::Trainer;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tch::Device;

/// The example head library, copied into `dir` with mode `mode`.
fn csra_in(dir: &Path, mode: u32) -> PathBuf {
    let dst = dir.join("libfx_csra.so");
    std::fs::copy(common::library("fx-csra", "libfx_csra.so"), &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).unwrap();
    dst
}

fn registry() -> Registry {
    Registry::new(fx_phantom::plugins())
}

/// phantom-cxp with the csra head (`options` inside its options table), and phantom-nih with the
/// built-in linear head.
fn tiny(dir: &Path, lib: &Path, options: &str) -> Tiny {
    Tiny::new("c", 3, dir)
        .set("plugins", &format!("[{:?}]", lib.display().to_string()))
        .set("train.batch_size", "8")
        .set("train.cycles", "3")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.models", "[\"teacher\", \"student\"]")
        .dataset(
            "phantom-cxp",
            &format!("options = {{ train = 48, test = 32 }}\n[datasets.heads.cls]\nplugin = \"csra\"\noptions = {{ {options} }}"),
        )
        .dataset("phantom-nih", "options = { train = 16, test = 16 }")
}

#[test]
fn a_plugin_head_trains_resumes_exactly_and_predicts() {
    let _rng = common::one_at_a_time();
    let libs = tempfile::tempdir().unwrap();
    let lib = csra_in(libs.path(), 0o755);
    let exp = |dir: &Path| tiny(dir, &lib, "lambda = 0.2").experiment();
    let mut initial = None;
    let (_kept, run, epochs) = common::train_and_resume(&exp, "csra head", &registry(), |t| {
        let head = &t.student.cls_heads["phantom-cxp"];
        assert_eq!(head.spec.kind(), "csra");
        let vars = t.student.vs.variables();
        let w = &vars["cls_head.phantom-cxp.weight"];
        // (labels, channels of the last stage): the host made it from the library's declaration.
        assert_eq!(w.size(), [head.spec.labels, t.student.backbone.config.num_features()]);
        assert!(vars.contains_key("cls_head.phantom-cxp.bias"));
        let params: std::collections::BTreeMap<String, i64> = t.student.component_params().into_iter().collect();
        assert_eq!(params["cls_head.phantom-cxp"], head.spec.labels * (w.size()[1] + 1));
        initial = Some(w.copy());
    });
    assert_eq!(epochs, 6);
    // The head learned: its weights moved, and the teacher's AUC rose above chance.
    let trained = fx::predict::load(&run, fx::config::ModelRole::Student, Device::Cpu).unwrap();
    let w = &trained.model.vs.variables()["cls_head.phantom-cxp.weight"];
    assert!(
        f64::try_from((w - initial.unwrap()).abs().max()).unwrap() > 1e-3,
        "the plugin head's weights did not train"
    );
    let rows = fx_run::read_jsonl::<fx_run::MetricRow>(&run.join("metrics.jsonl")).unwrap();
    let auc = |model: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.model == model && r.eval.dataset == "phantom-cxp" && r.metric == "auc")
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(auc("teacher").len(), 6, "every epoch evaluates the plugin head");
    eprintln!("AUC teacher {:?} student {:?}", auc("teacher"), auc("student"));
    assert!(auc("student")[5] > 60.0, "student AUC with the csra head: {:?}", auc("student"));
    // model.json records the head as trained (kind, library, hash); predict rebuilds it.
    let info: fx_run::ModelInfo =
        serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    let plug = info.cls_heads["phantom-cxp"].plugin.clone().unwrap();
    assert_eq!((plug.kind.as_str(), plug.sha256.len()), ("csra", 64));
    assert_eq!(info.head_kind("phantom-cxp", "cls").map(|k| k.0), Some("csra"));
    let opts = fx::predict::PredictOptions { datasets: vec![], cls: true, loc: false, seg: false, threshold: 0.0 };
    let p = fx::predict::infer(&trained, &vec![0.5f32; 64 * 64], &[(64, 64)], &opts).unwrap();
    let scores = &p["phantom-cxp"][0].cls;
    assert!(!scores.is_empty() && scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
}

#[test]
fn a_failing_plugin_head_is_disabled_and_the_other_tasks_train_on() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let lib = csra_in(dir.path(), 0o755);
    // The head's forward panics from its 4th call on: inside the first epoch's training.
    let mut t = tiny(dir.path(), &lib, "panic_after = 3").trainer();
    let mut warnings = Vec::new();
    for _ in 0..t.plan.len() {
        assert!(t
            .run_epoch(&mut |p| {
                if let fx::train::Progress::Warning(w) = p {
                    warnings.push(w)
                }
            })
            .unwrap());
    }
    assert!(t.disabled.contains(&("phantom-cxp".to_string(), fx_plugin::Task::Cls)));
    assert!(warnings.iter().any(|w| w.contains("phantom-cxp") && w.contains("panic_after")), "{warnings:?}");
    let run = t.run_dir();
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(events.contains("head_disabled") && events.contains("panicked"), "{events}");
    let rows = fx_run::read_jsonl::<fx_run::MetricRow>(&run.join("metrics.jsonl")).unwrap();
    let epochs_of = |d: &str| {
        let mut e: Vec<usize> = rows.iter().filter(|r| r.eval.dataset == d).map(|r| r.epoch).collect();
        e.dedup();
        e
    };
    assert_eq!(epochs_of("phantom-nih"), (1..=6).collect::<Vec<_>>(), "the other dataset trains and is evaluated on");
    assert!(epochs_of("phantom-cxp").is_empty(), "the disabled head is not evaluated: {:?}", epochs_of("phantom-cxp"));
}

#[test]
fn head_libraries_fx_refuses() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let create = |tiny: Tiny| {
        Trainer::create(tiny.experiment(), "c.toml", &registry(), Device::Cpu).err().map(|e| format!("{e:#}"))
    };
    // Writable by its group: refused before it is loaded, naming the file and its mode.
    let shared = tempfile::tempdir().unwrap();
    let lib = csra_in(shared.path(), 0o775);
    let e = create(tiny(dir.path(), &lib, "")).unwrap();
    assert!(e.contains("libfx_csra.so") && e.contains("writable by its group") && e.contains("0775"), "{e}");
    // Another build fingerprint: refused with how to rebuild.
    let patched = tempfile::tempdir().unwrap();
    let lib = csra_in(patched.path(), 0o755);
    let mut bytes = std::fs::read(&lib).unwrap();
    let at = bytes.windows(8).position(|w| w == b"fx-head ").expect("the fingerprint string");
    bytes[at + 8] = b'9';
    std::fs::write(&lib, bytes).unwrap();
    let e = create(tiny(dir.path(), &lib, "")).unwrap();
    assert!(e.contains("built against fx-head 9") && e.contains("rebuild"), "{e}");
    // A head no library offers; an option the head does not know.
    let good = tempfile::tempdir().unwrap();
    let lib = csra_in(good.path(), 0o755);
    let unknown = Tiny::new("c", 3, dir.path())
        .set("plugins", &format!("[{:?}]", lib.display().to_string()))
        .dataset("phantom-cxp", "[datasets.heads.cls]\nplugin = \"attention\"");
    let e = create(unknown).unwrap();
    assert!(e.contains("offers the head `attention`") && e.contains("csra (cls)"), "{e}");
    // A segmentation head asked for as a classification head.
    let wrong_task = Tiny::new("c", 3, dir.path())
        .set("plugins", &format!("[{:?}]", lib.display().to_string()))
        .dataset("phantom-cxp", "[datasets.heads.cls]\nplugin = \"pointwise\"");
    let e = create(wrong_task).unwrap();
    assert!(e.contains("`pointwise` is a seg head, asked for as a cls head"), "{e}");
    let e = create(tiny(dir.path(), &lib, "lamda = 1")).unwrap();
    assert!(e.contains("unknown option `lamda`"), "{e}");
}

/// A segmentation head from the library (a 1×1 convolution where fx's are 3×3): trained on the
/// phantom organs, resumed exactly, its masks predicted from the run.
#[test]
fn a_plugin_segmentation_head_trains_and_resumes_exactly() {
    let _rng = common::one_at_a_time();
    let libs = tempfile::tempdir().unwrap();
    let lib = csra_in(libs.path(), 0o755);
    let exp = |dir: &Path| {
        Tiny::new("s", 9, dir)
            .set("plugins", &format!("[{:?}]", lib.display().to_string()))
            .set("model.ppm_channels", "16")
            .set("model.fpn_channels", "8")
            .set("train.batch_size", "8")
            .set("train.cycles", "2")
            .set("lock_release.enabled", "false")
            .set("optimizer.lr", "{ backbone = 1e-3, seg_decoder = 1e-3, seg_head = 1e-2 }")
            .set("eval.models", "[\"teacher\", \"student\"]")
            .dataset(
                "phantom-organs",
                "tasks = [\"seg\"]\noptions = { train = 32, test = 16 }\n[datasets.heads.seg]\nplugin = \"pointwise\"",
            )
            .experiment()
    };
    let (_kept, run, _) = common::train_and_resume(&exp, "pointwise seg head", &registry(), |t| {
        let head = &t.student.seg_heads["phantom-organs"];
        assert_eq!(head.spec.kind(), "pointwise");
        let vars = t.student.vs.variables();
        assert_eq!(vars["seg_head.phantom-organs.weight"].size(), [3, 8], "(labels, fpn channels)");
    });
    let rows = fx_run::read_jsonl::<fx_run::MetricRow>(&run.join("metrics.jsonl")).unwrap();
    let dice: Vec<f64> = rows.iter().filter(|r| r.model == "student" && r.metric == "dice").map(|r| r.value).collect();
    eprintln!("student Dice with the pointwise head: {dice:?}");
    assert!(dice.len() == 2 && dice[1] > dice[0], "{dice:?}");
    let loaded = fx::predict::load(&run, fx::config::ModelRole::Student, Device::Cpu).unwrap();
    let opts = fx::predict::PredictOptions { datasets: vec![], cls: false, loc: false, seg: true, threshold: 0.5 };
    let p = fx::predict::infer(&loaded, &vec![0.5f32; 64 * 64], &[(64, 64)], &opts).unwrap();
    assert_eq!(p["phantom-organs"][0].masks.len(), 3);
}
