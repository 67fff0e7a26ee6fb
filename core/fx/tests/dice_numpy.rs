//! Dice (per-image mean and global, per class and class mean) against an independent numpy
//! implementation on committed cases (scripts/make_seg_fixtures.py): empty images, empty classes,
//! probabilities exactly at the threshold and a threshold that is not exact in float32 included.

use fx::eval::dice::{dice, DiceAccumulator};

#[test]
fn equals_numpy_on_fixture_cases() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dice/cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 6);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let (n, k, p) = (
            case["n"].as_u64().unwrap() as usize,
            case["k"].as_u64().unwrap() as usize,
            case["p"].as_u64().unwrap() as usize,
        );
        let threshold = case["threshold"].as_f64().unwrap() as f32;
        let probs: Vec<f32> = case["probs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|img| img.as_array().unwrap().iter())
            .flat_map(|cls| cls.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
            .collect();
        let truth: Vec<u8> = case["truth"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|img| img.as_array().unwrap().iter())
            .flat_map(|cls| cls.as_str().unwrap().bytes().map(|b| b - b'0'))
            .collect();
        assert_eq!((probs.len(), truth.len()), (n * k * p, n * k * p), "{name}");

        let (per, mean) = dice(&probs, &truth, n, k, threshold);
        let expected = case["per_class"].as_array().unwrap();
        assert_eq!(per.len(), expected.len(), "{name}");
        let close = |got: f64, want: &serde_json::Value, what: &str| {
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "{name} {what}: fx {got} vs numpy {want}");
        };
        for (c, (g, e)) in per.iter().zip(expected).enumerate() {
            close(g.per_image_mean, &e["per_image_mean"], &format!("class {c} per-image mean"));
            close(g.global, &e["global"], &format!("class {c} global"));
        }
        close(mean.per_image_mean, &case["mean"]["per_image_mean"], "mean per-image");
        close(mean.global, &case["mean"]["global"], "mean global");

        // One image at a time through the accumulator gives the same numbers.
        let mut acc = DiceAccumulator::new(k, threshold);
        for i in 0..n {
            let r = i * k * p..(i + 1) * k * p;
            acc.add(&probs[r.clone()], &truth[r], 1);
        }
        let (_, streamed) = acc.scores();
        close(streamed.per_image_mean, &case["mean"]["per_image_mean"], "streamed mean per-image");
        close(streamed.global, &case["mean"]["global"], "streamed mean global");
    }
}
