//! Heads per dataset. Classification: `linear` and `mlp` heads, multi-label (sigmoid + BCE) and
//! multi-class (softmax + cross-entropy), each trained on phantom data, checkpointed and resumed
//! exactly; the plugin's declaration and the experiment's override; predictions that read the
//! head as it was trained; refusals of inconsistent settings. Localization: a dataset's own DINO
//! decoder sizes.

mod common;

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use fx_plugin::{Dataset, DatasetDesc, DatasetSpec, LabelMode, PluginEntry, PluginError, Sample, SampleRecord, Split};
use std::path::Path;
use tch::Device;

/// phantom-cxp's first finding as two mutually exclusive classes, one-hot ("without", "with"),
/// declared multi-class as TBX11K's plugin does; every 5th image carries a malformed label (both
/// classes), which a multi-class loss must leave out.
struct Exclusive {
    inner: Box<dyn Dataset>,
    desc: DatasetDesc,
}

impl Dataset for Exclusive {
    fn desc(&self) -> &DatasetDesc {
        &self.desc
    }
    fn index(&self, split: Split) -> Result<Vec<SampleRecord>, PluginError> {
        self.inner.index(split)
    }
    fn load(&self, record: &SampleRecord, size_hint: usize) -> Result<Sample, PluginError> {
        let mut s = self.inner.load(record, size_hint)?;
        let y = s.cls[0];
        let malformed = s.id.bytes().map(|b| b as usize).sum::<usize>() % 5 == 0;
        s.cls = if malformed { vec![1.0, 1.0] } else { vec![1.0 - y, y] };
        Ok(s)
    }
}

fn registry() -> Registry {
    let mut plugins = fx_phantom::plugins();
    plugins.push(PluginEntry {
        name: "exclusive",
        summary: "phantom-cxp's first finding as two exclusive classes (test)",
        open: |spec: &DatasetSpec| {
            let cxp = fx_phantom::plugins().into_iter().find(|p| p.name == "phantom-cxp").unwrap();
            let inner = (cxp.open)(spec)?;
            let first = inner.desc().cls_labels[0].clone();
            let desc = DatasetDesc {
                name: spec.name.clone(),
                cls_labels: vec![format!("no {first}"), first],
                cls_mode: LabelMode::MultiClass,
                ..inner.desc().clone()
            };
            Ok(Box::new(Exclusive { inner, desc }))
        },
    });
    Registry::new(plugins)
}

fn text(dir: &Path, plugin: &str, heads: &str) -> String {
    common::Tiny::new("h", 3, dir)
        .set("train.batch_size", "8")
        .set("train.cycles", "2")
        .set("optimizer.lr", "{ backbone = 1e-3, cls_head = 1e-2 }")
        .set("eval.models", "[\"teacher\", \"student\"]")
        .set("eval.max_samples", "16")
        .dataset(plugin, &format!("options = {{ train = 16, test = 16 }}\n{heads}"))
        .text()
}

fn experiment(dir: &Path, plugin: &str, heads: &str) -> Experiment {
    Experiment::parse(Path::new("h.toml"), &text(dir, plugin, heads), &[]).unwrap()
}

#[test]
fn every_head_kind_trains_checkpoints_and_resumes_exactly() {
    let _rng = common::one_at_a_time();
    let mlp = "[datasets.heads.cls]\nkind = \"mlp\"\nhidden = [24, 12]\ndropout = 0.1";
    for (plugin, heads, mode, vars) in [
        ("phantom-cxp", "", LabelMode::MultiLabel, vec!["weight", "bias"]),
        ("phantom-cxp", mlp, LabelMode::MultiLabel, vec!["0.weight", "1.bias", "out.weight", "out.bias"]),
        ("exclusive", "", LabelMode::MultiClass, vec!["weight", "bias"]),
        ("exclusive", mlp, LabelMode::MultiClass, vec!["0.weight", "1.bias", "out.weight", "out.bias"]),
    ] {
        let what = format!("{plugin} {}", if heads.is_empty() { "linear" } else { "mlp" });
        let exp = |dir: &Path| experiment(dir, plugin, heads);
        let mut c = 0;
        let (_kept, straight_dir, epochs) = common::train_and_resume(&exp, &what, &registry(), |straight| {
            let head = &straight.student.cls_heads[plugin];
            assert_eq!(head.spec.mode, mode, "{what}");
            let names: Vec<String> = straight.student.named_variables().into_iter().map(|(n, _)| n).collect();
            for v in &vars {
                assert!(
                    names.contains(&format!("cls_head.{plugin}.{v}")),
                    "{what}: no cls_head.{plugin}.{v} in {names:?}"
                );
            }
            // Parameters: Linear(F → labels), or F → 24 → 12 → labels.
            let f = straight.student.backbone.config.num_features();
            c = head.spec.labels;
            let expected = if heads.is_empty() { (f + 1) * c } else { (f + 1) * 24 + 25 * 12 + 13 * c };
            let counted =
                straight.student.component_params().into_iter().find(|(k, _)| k == &format!("cls_head.{plugin}"));
            assert_eq!(counted.map(|(_, n)| n), Some(expected), "{what}");
        });
        let rows = common::rows(&straight_dir);
        let metric = |m: &str| rows.iter().filter(|r| r["metric"] == m).count();
        assert_eq!(metric("auc"), 2 * epochs, "{what}: one AUC row per model and epoch");
        // Accuracy for exclusive classes only.
        assert_eq!(metric("accuracy"), if mode == LabelMode::MultiClass { 2 * epochs } else { 0 }, "{what}");
        assert!(rows.iter().all(|r| r["value"].as_f64().is_some_and(|v| (0.0..=100.0).contains(&v))), "{what}");
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(straight_dir.join("model.json")).unwrap()).unwrap();
        assert_eq!(model["cls_heads"][plugin]["mode"], mode.as_str(), "{what}");

        // Predictions read the head as trained: a softmax sums to 1 over the classes.
        let loaded = fx::predict::load(&straight_dir, fx::config::ModelRole::Teacher, Device::Cpu).unwrap();
        let gray = vec![0.5f32; 2 * 64 * 64];
        let opts = fx::predict::PredictOptions { datasets: vec![], cls: true, loc: false, seg: false, threshold: 0.5 };
        let p = fx::predict::infer(&loaded, &gray, &[(64, 64), (64, 64)], &opts).unwrap();
        for pr in &p[plugin] {
            let sum: f32 = pr.cls.iter().sum();
            assert_eq!(pr.cls.len() as i64, c);
            if mode == LabelMode::MultiClass {
                assert!((sum - 1.0).abs() < 1e-5, "{what}: softmax scores sum to {sum}");
            } else {
                assert!(pr.cls.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }
}

#[test]
fn the_experiment_overrides_the_plugins_mode_and_refuses_inconsistent_heads() {
    let _rng = common::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "exclusive", "[datasets.heads.cls]\nmode = \"multi_label\"");
    let t = Trainer::create(exp, "h.toml", &registry(), Device::Cpu).unwrap();
    assert_eq!(t.student.cls_heads["exclusive"].spec.mode, LabelMode::MultiLabel);
    drop(t);
    let parse = |heads: &str| {
        let t = text(dir.path(), "phantom-cxp", heads);
        Experiment::parse(Path::new("x.toml"), &t, &[]).err().map(|e| format!("{e:#}"))
    };
    let e = parse("[datasets.heads.cls]\nhidden = [64]").unwrap();
    assert!(e.contains("x.toml") && e.contains("kind = \"mlp\""), "{e}");
    let e = parse("[datasets.heads.cls]\nkind = \"mlp\"").unwrap();
    assert!(e.contains("needs its hidden widths"), "{e}");
    let e = parse("[datasets.heads.cls]\nkind = \"mlp\"\nhidden = [64]\ndropout = 1.5").unwrap();
    assert!(e.contains("datasets.0.heads.cls.dropout") && e.contains("[0, 1)"), "{e}");
    let e = parse("[datasets.heads.cls]\nkind = \"transformer\"").unwrap();
    assert!(e.contains("x.toml:") && e.contains("linear") && e.contains("mlp"), "{e}");
    assert!(parse("[datasets.heads.cls]\nkind = \"mlp\"\nhidden = [64, 32]\ndropout = 0.2").is_none());
    // A plugin head is the whole head, needs its library in `plugins`; options are a plugin's.
    let e = parse("[datasets.heads.cls]\nplugin = \"csra\"\nkind = \"mlp\"\nhidden = [8]").unwrap();
    assert!(e.contains("heads.cls: plugin = \"csra\" is the whole head"), "{e}");
    let e = parse("[datasets.heads.seg]\nplugin = \"pointwise\"").unwrap();
    assert!(e.contains("heads.seg") && e.contains("needs the library that offers it"), "{e}");
    let e = parse("[datasets.heads.cls]\noptions = { lambda = 1 }").unwrap();
    assert!(e.contains("options belong to a plugin head"), "{e}");
}

/// The multi-class loss against cross-entropy written out (−log softmax of the true class,
/// averaged over the one-hot rows only), and the multi-label loss against BCE written out.
#[test]
fn the_task_losses_equal_their_definitions() {
    use fx::train::cls_loss;
    use tch::Tensor;
    let logits = [[2.0f64, -1.0, 0.5], [0.1, 0.2, 0.3], [1.0, 1.0, -2.0], [-0.5, 3.0, 0.0]];
    // Row 1 is two-hot, row 2 has an unknown label: both left out of the multi-class loss.
    let nan = f32::NAN;
    let labels = [[1.0f32, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, nan, 1.0], [0.0, 1.0, 0.0]];
    let lt = Tensor::from_slice(&logits.concat()).view([4, 3]).to_kind(tch::Kind::Float);
    let yt = Tensor::from_slice(&labels.concat()).view([4, 3]);
    let ce = |row: &[f64; 3], class: usize| {
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - row[class]
    };
    let expected = (ce(&logits[0], 0) + ce(&logits[3], 1)) / 2.0;
    let got = cls_loss(&lt, &yt, LabelMode::MultiClass).double_value(&[]);
    assert!((got - expected).abs() < 1e-5, "multi-class {got} vs {expected}");
    let (mut sum, mut n) = (0.0, 0.0);
    for (row, y) in logits.iter().zip(&labels) {
        for (x, y) in row.iter().zip(y) {
            if !y.is_nan() {
                let p = 1.0 / (1.0 + (-x).exp());
                sum -= *y as f64 * p.ln() + (1.0 - *y as f64) * (1.0 - p).ln();
                n += 1.0;
            }
        }
    }
    let got = cls_loss(&lt, &yt, LabelMode::MultiLabel).double_value(&[]);
    assert!((got - sum / n).abs() < 1e-5, "multi-label {got} vs {}", sum / n);
    // Accuracy over the one-hot rows: row 0 right (argmax 0), row 3 right (argmax 1).
    let scores: Vec<f64> = logits.concat();
    let flat: Vec<f32> = labels.concat();
    assert_eq!(fx::train::accuracy(&scores, &flat, 3), Some(1.0));
    let wrong: Vec<f32> = [[0.0f32, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, nan, 1.0], [0.0, 1.0, 0.0]].concat();
    assert_eq!(fx::train::accuracy(&scores, &wrong, 3), Some(0.5));
}

/// `[datasets.heads.loc]`: phantom-organs gets a smaller DINO decoder (6 queries, 1 layer, 2
/// denoising queries) than phantom-tbx ([model.dino]: 12, 2, 6); both train, resume exactly and
/// predict from the run (model.json records the sizes).
#[test]
fn a_dataset_has_its_own_dino_decoder_sizes() {
    let _rng = common::one_at_a_time();
    let text = |dir: &Path, organs: &str| {
        common::Tiny::new("l", 5, dir)
            .dino()
            .set("train.batch_size", "8")
            .set("train.cycles", "1")
            .set("train.branches", "\"L\"")
            .set("eval.models", "[\"teacher\"]")
            .set("eval.max_samples", "8")
            .dataset("phantom-organs", &format!("options = {{ train = 16, test = 8 }}\n{organs}"))
            .dataset("phantom-tbx", "options = { train = 16, test = 8 }")
            .text()
    };
    let own = "[datasets.heads.loc]\nnum_queries = 6\ndecoder_layers = 1\ndn_number = 2";
    let exp = |dir: &Path| Experiment::parse(Path::new("l.toml"), &text(dir, own), &[]).unwrap();
    let (_kept, straight_dir, _) = common::train_and_resume(&exp, "per-dataset DINO sizes", &registry(), |straight| {
        let names: Vec<String> = straight.student.named_variables().into_iter().map(|(n, _)| n).collect();
        let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
        assert!(has("loc_decoder.phantom-tbx.layers.1.") && !has("loc_decoder.phantom-organs.layers.1."));
        assert!(has("loc_decoder.phantom-organs.layers.0."));
        let params: std::collections::BTreeMap<String, i64> = straight.student.component_params().into_iter().collect();
        assert!(params["loc_decoder.phantom-organs"] < params["loc_decoder.phantom-tbx"], "{params:?}");
    });
    // Predict rebuilds both decoders with their own sizes from the run.
    let loaded = fx::predict::load(&straight_dir, fx::config::ModelRole::Teacher, Device::Cpu).unwrap();
    assert_eq!(loaded.card.loc_dino["phantom-organs"].num_queries, 6);
    assert!(!loaded.card.loc_dino.contains_key("phantom-tbx"), "phantom-tbx uses [model.dino]");
    let opts = fx::predict::PredictOptions { datasets: vec![], cls: false, loc: true, seg: false, threshold: 0.0 };
    let p = fx::predict::infer(&loaded, &vec![0.5f32; 64 * 64], &[(64, 64)], &opts).unwrap();
    assert!(!p["phantom-organs"][0].boxes.is_empty() && !p["phantom-tbx"][0].boxes.is_empty());
    // More queries than the encoder has tokens is refused, naming the dataset.
    let too_many = "[datasets.heads.loc]\nnum_queries = 100000";
    let c = tempfile::tempdir().unwrap();
    let e = Experiment::parse(Path::new("l.toml"), &text(c.path(), too_many), &[]).unwrap();
    let err = format!("{:#}", Trainer::create(e, "l.toml", &registry(), Device::Cpu).err().unwrap());
    assert!(err.contains("phantom-organs") && err.contains("num_queries"), "{err}");
}

/// `[datasets.heads.seg]`: conv and conv_stack heads, sigmoid per label and softmax over
/// background + labels (with the Dice + pixel term loss, so the cross-entropy trains), each
/// trained on phantom organs, resumed exactly and predicted from the run.
#[test]
fn every_seg_head_kind_trains_resumes_and_predicts() {
    let _rng = common::one_at_a_time();
    let text = |dir: &Path, heads: &str| {
        common::Tiny::new("s", 9, dir)
            .set("model.ppm_channels", "16")
            .set("model.fpn_channels", "8")
            .set("train.batch_size", "8")
            .set("train.cycles", "1")
            .set("loss.seg", "\"dice_bce\"")
            .set("eval.models", "[\"teacher\"]")
            .set("eval.max_samples", "8")
            .dataset("phantom-organs", &format!("tasks = [\"seg\"]\noptions = {{ train = 16, test = 8 }}\n{heads}"))
            .text()
    };
    let stack = "kind = \"conv_stack\"\nwidths = [12, 6]";
    for (heads, channels, vars) in [
        ("", 3, vec!["weight", "bias"]),
        (stack, 3, vec!["0.weight", "1.bias", "out.weight"]),
        ("mode = \"multi_class\"", 4, vec!["weight", "bias"]),
        (&format!("{stack}\nmode = \"multi_class\""), 4, vec!["0.weight", "1.bias", "out.weight"]),
    ] {
        let heads = format!("[datasets.heads.seg]\n{heads}");
        let exp = |dir: &Path| Experiment::parse(Path::new("s.toml"), &text(dir, &heads), &[]).unwrap();
        let (_kept, straight_dir, _) = common::train_and_resume(&exp, &heads, &registry(), |straight| {
            let head = &straight.student.seg_heads["phantom-organs"];
            assert_eq!(head.spec.channels(), channels, "{heads}");
            let names: Vec<String> = straight.student.named_variables().into_iter().map(|(n, _)| n).collect();
            for v in &vars {
                assert!(names.contains(&format!("seg_head.phantom-organs.{v}")), "{heads}: no {v} in {names:?}");
            }
            // The output conv has one channel per label, plus the background for multi_class.
            let out = if vars[0] == "weight" { "weight" } else { "out.weight" };
            let w = &straight.student.vs.variables()[&format!("seg_head.phantom-organs.{out}")];
            assert_eq!(w.size()[0], channels, "{heads}");
        });
        let rows = common::rows(&straight_dir);
        assert!(rows.iter().any(|r| r["metric"] == "dice"), "{heads}");
        assert!(rows.iter().all(|r| r["value"].as_f64().is_some_and(|v| (0.0..=100.0).contains(&v))), "{heads}");
        let loaded = fx::predict::load(&straight_dir, fx::config::ModelRole::Teacher, Device::Cpu).unwrap();
        assert_eq!(loaded.card.seg_heads["phantom-organs"].channels(), channels);
        let opts = fx::predict::PredictOptions { datasets: vec![], cls: false, loc: false, seg: true, threshold: 0.5 };
        let p = fx::predict::infer(&loaded, &vec![0.5f32; 64 * 64], &[(80, 60)], &opts).unwrap();
        let masks = &p["phantom-organs"][0].masks;
        assert_eq!(masks.len(), 3, "{heads}: one mask per label, not per channel");
        assert!(masks.iter().all(|m| m.len() == 80 * 60));
    }
    let e = Experiment::parse(Path::new("s.toml"), &text(Path::new("/tmp"), "[datasets.heads.seg]\nwidths = [8]"), &[])
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(e.contains("conv_stack"), "{e}");
}

/// A pixel's class for a multi-class seg head: background where no mask is set, else 1 + its
/// label (the first, where masks overlap); the softmax's per-label probabilities drop the
/// background and sum with it to 1.
#[test]
fn pixel_classes_and_softmax_probabilities() {
    use tch::Tensor;
    // (B=1, K=2, 1×4): pixel 0 none, 1 label 0, 2 label 1, 3 both.
    let target = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]).view([1, 2, 1, 4]);
    let classes = Vec::<i64>::try_from(fx::train::pixel_classes(&target).flatten(0, -1)).unwrap();
    assert_eq!(classes, vec![0, 1, 2, 1]);
    let spec = fx::upernet::SegHeadSpec { mode: LabelMode::MultiClass, ..fx::upernet::SegHeadSpec::conv(2) };
    // Fixed logits (no draw: this test takes no lock), each pixel with another winner.
    let logits =
        Tensor::from_slice(&[2.0f32, -1.0, 0.3, 0.0, 0.5, 1.5, -0.2, 0.1, -1.0, 0.2, 1.1, 0.4]).view([1, 3, 1, 4]);
    let p = fx::upernet::seg_probabilities(&spec, &logits);
    assert_eq!(p.size(), vec![1, 2, 1, 4]);
    let background = logits.softmax(1, tch::Kind::Float).narrow(1, 0, 1);
    let total = (p.sum_dim_intlist(1, true, tch::Kind::Float) + background - 1.0).abs().max().double_value(&[]);
    assert!(total < 1e-6);
    // The predicted masks: each pixel in its most probable class's mask only (none if background).
    let m = fx::upernet::mask_scores(&spec, &logits);
    let winner = Vec::<i64>::try_from(logits.argmax(1, false).flatten(0, -1)).unwrap();
    let m = Vec::<f32>::try_from(m.flatten(0, -1)).unwrap();
    for (px, w) in winner.iter().enumerate() {
        assert_eq!([m[px], m[4 + px]], [(*w == 1) as u8 as f32, (*w == 2) as u8 as f32]);
    }
}
