//! ROC AUC against scikit-learn's roc_auc_score on committed cases (scripts/make_fixtures.py),
//! ties, unknown labels and one-class columns included.

use fx::eval::auc::mean_auc;

#[test]
fn equals_sklearn_on_fixture_cases() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/auc/cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 6);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let rows = case["scores"].as_array().unwrap();
        let c = rows[0].as_array().unwrap().len();
        let scores: Vec<f64> =
            rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect();
        let labels: Vec<f32> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().map(|v| v as f32).unwrap_or(f32::NAN)))
            .collect();
        let (per, mean) = mean_auc(&scores, &labels, c);
        for (k, expected) in case["per_class"].as_array().unwrap().iter().enumerate() {
            match (expected.as_f64(), per[k]) {
                (Some(e), Some(g)) => assert!((e - g).abs() < 1e-6, "{name} class {k}: {g} vs sklearn {e}"),
                (None, None) => {}
                (e, g) => panic!("{name} class {k}: sklearn {e:?}, fx {g:?}"),
            }
        }
        let e = case["mean"].as_f64().unwrap();
        let g = mean.unwrap();
        assert!((e - g).abs() < 1e-6, "{name} mean: {g} vs {e}");
    }
}
