//! The Rust Swin against timm: a committed fixture (scripts/make_fixtures.py) holds a small timm
//! model's weights in both timm layouts, an input batch and timm's outputs.

use fx::swin::{load_timm_weights, Swin, SwinConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{nn, Device, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/swin")
}

fn config() -> SwinConfig {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("config.json")).unwrap()).unwrap();
    let ints = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect::<Vec<_>>();
    SwinConfig {
        img_size: v["img_size"].as_i64().unwrap(),
        patch_size: v["patch_size"].as_i64().unwrap(),
        in_chans: v["in_chans"].as_i64().unwrap(),
        embed_dim: v["embed_dim"].as_i64().unwrap(),
        depths: ints("depths"),
        num_heads: ints("num_heads"),
        window_size: v["window_size"].as_i64().unwrap(),
        mlp_ratio: v["mlp_ratio"].as_f64().unwrap(),
        drop_path_rate: 0.0,
    }
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn check(weights: &str) -> f64 {
    let io: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(fixtures().join("io.safetensors")).unwrap().into_iter().collect();
    let cfg = config();
    let vs = nn::VarStore::new(Device::Cpu);
    let swin = Swin::new(&(vs.root() / "backbone"), &cfg).unwrap();
    let path = fixtures().join(weights);
    let report = load_timm_weights(&vs, "backbone", &path).unwrap();
    assert!(report.missing.is_empty(), "missing: {:?}", report.missing);
    // Only the classifier is not part of the backbone.
    assert!(report.unexpected.iter().all(|k| k.starts_with("head")), "unexpected: {:?}", report.unexpected);
    let f = tch::no_grad(|| swin.forward(&io["input"], false));
    let mut worst = 0.0f64;
    for (i, s) in f.stages.iter().enumerate() {
        let d = max_abs(s, &io[&format!("stage{i}")]);
        assert!(d < 1e-4, "{weights}: stage{i} differs from timm by {d}");
        worst = worst.max(d);
    }
    let d = max_abs(&f.pooled, &io["pooled"]);
    assert!(d < 1e-4, "{weights}: pooled differs by {d}");
    worst = worst.max(d);
    // The classifier on top, from the file's head tensors.
    let raw = fx::swin::read_state_dict(&path).unwrap();
    let (w, b) = match (raw.get("head.fc.weight"), raw.get("head.weight")) {
        (Some(w), _) => (w, &raw["head.fc.bias"]),
        (None, Some(w)) => (w, &raw["head.bias"]),
        _ => panic!("no head in {weights}"),
    };
    let logits = f.pooled.linear(w, Some(b));
    let d = max_abs(&logits, &io["logits"]);
    assert!(d < 1e-4, "{weights}: logits differ by {d}");
    worst.max(d)
}

#[test]
fn matches_timm_current_layout() {
    let worst = check("weights_timm_new.safetensors");
    println!("max abs difference vs timm (new layout): {worst:e}");
}

#[test]
fn matches_timm_old_ark_layout() {
    let worst = check("weights_timm_old.safetensors");
    println!("max abs difference vs timm (old layout): {worst:e}");
}

#[test]
fn parameter_counts_match_timm() {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("config.json")).unwrap()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = Swin::new(&(vs.root() / "backbone"), &config()).unwrap();
    let n = fx::swin::count_params(&vs, "backbone.");
    assert_eq!(n, v["num_params_without_head"].as_i64().unwrap());
    // Swin-B as in the paper: 86.75 M without its classifier (timm swin_base_patch4_window7_224).
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = Swin::new(&(vs.root() / "backbone"), &SwinConfig::named("swin_base", 224).unwrap()).unwrap();
    let b = fx::swin::count_params(&vs, "backbone.");
    assert_eq!(b, 86_743_224, "Swin-B backbone parameters: {b}");
}

#[test]
fn shape_mismatch_is_a_clear_error() {
    let mut cfg = config();
    cfg.embed_dim = 32;
    cfg.num_heads = vec![2, 4, 8, 16];
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = Swin::new(&(vs.root() / "backbone"), &cfg).unwrap();
    let err =
        load_timm_weights(&vs, "backbone", &fixtures().join("weights_timm_new.safetensors")).unwrap_err().to_string();
    assert!(err.contains("weights_timm_new.safetensors") && err.contains("shape"), "{err}");
}
