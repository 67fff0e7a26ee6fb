//! Hungarian assignment against scipy.optimize.linear_sum_assignment, and DINO's matching cost
//! against a numpy transcription of DINO's HungarianMatcher, on committed cases
//! (scripts/make_loc_fixtures.py → fixtures/matcher/cases.json). Pairs may differ on ties; totals
//! may not.

use fx::matcher::{assignment_cost, dino_cost, dino_match, linear_sum_assignment};
use serde_json::Value;

fn load() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/matcher/cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn check_valid(name: &str, pairs: &[(usize, usize)], rows: usize, cols: usize) {
    assert_eq!(pairs.len(), rows.min(cols), "{name}: min(rows, cols) pairs");
    let mut r: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    let mut c: Vec<usize> = pairs.iter().map(|p| p.1).collect();
    assert!(r.windows(2).all(|w| w[0] < w[1]), "{name}: sorted by row, each row once");
    c.sort_unstable();
    c.dedup();
    r.dedup();
    assert_eq!(c.len(), pairs.len(), "{name}: each column once");
    assert!(pairs.iter().all(|&(a, b)| a < rows && b < cols), "{name}: in range");
}

#[test]
fn totals_equal_scipy() {
    let doc = load();
    let cases = doc["assignment"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (rows, cols) = (c["rows"].as_u64().unwrap() as usize, c["cols"].as_u64().unwrap() as usize);
        let cost = floats(&c["cost"]);
        let pairs = linear_sum_assignment(&cost, rows, cols);
        check_valid(name, &pairs, rows, cols);
        let total = assignment_cost(&cost, cols, &pairs);
        let want = c["total"].as_f64().unwrap();
        assert!((total - want).abs() <= 1e-9 * want.abs().max(1.0), "{name}: total {total} vs scipy {want}");
    }
}

#[test]
fn dino_costs_and_matches_equal_reference() {
    let doc = load();
    let cases = doc["dino"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let logits: Vec<f32> = floats(&c["logits"]).into_iter().map(|x| x as f32).collect();
        let b4 = |v: &Value| -> Vec<[f32; 4]> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let b = floats(b);
                    [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]
                })
                .collect()
        };
        let boxes = b4(&c["boxes"]);
        let gt_boxes = b4(&c["gt_boxes"]);
        let labels: Vec<usize> =
            c["gt_labels"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let want = floats(&c["cost"]);
        let cost = dino_cost(&logits, &boxes, &labels, &gt_boxes);
        assert_eq!(cost.len(), want.len(), "{name}");
        for (i, (g, w)) in cost.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-9, "{name} cost[{i}]: {g} vs reference {w}");
        }
        let pairs = dino_match(&logits, &boxes, &labels, &gt_boxes);
        check_valid(name, &pairs, boxes.len(), labels.len());
        let total = assignment_cost(&want, labels.len(), &pairs);
        let scipy = c["total"].as_f64().unwrap();
        assert!((total - scipy).abs() < 1e-9, "{name}: total {total} vs scipy {scipy}");
    }
}
