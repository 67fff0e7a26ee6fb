//! COCO detection AP against pycocotools' COCOeval on committed cases
//! (scripts/make_loc_fixtures.py → fixtures/map/): per-category AP at every threshold of
//! 0.40:0.05:0.95, mAP40, AP50, the grid mean; plus the COCO JSON writers against the files that
//! pycocotools scored.

use fx::eval::map::{coco_gt_json, coco_results_json, evaluate, iou_thresholds, recall_thresholds, Detection, GtBox};
use fx_data::coco::{CocoCategory, CocoImage};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/map")
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap()).unwrap()
}

struct Case {
    name: String,
    images: Vec<CocoImage>,
    categories: Vec<CocoCategory>,
    gt: Vec<GtBox>,
    dets: Vec<Detection>,
    raw: Value,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn case(c: &Value) -> Case {
    let images = c["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| CocoImage {
            id: im["id"].as_i64().unwrap(),
            file_name: im["file_name"].as_str().unwrap().into(),
            width: im["width"].as_u64().unwrap() as u32,
            height: im["height"].as_u64().unwrap() as u32,
        })
        .collect();
    let categories = c["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| CocoCategory { id: k["id"].as_i64().unwrap(), name: k["name"].as_str().unwrap().into() })
        .collect();
    let bbox = |r: &[Value]| [f(&r[2]) as f32, f(&r[3]) as f32, f(&r[4]) as f32, f(&r[5]) as f32];
    let gt = c["gt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            GtBox {
                image: r[0].as_u64().unwrap() as usize,
                category: r[1].as_u64().unwrap() as usize,
                bbox: bbox(r),
                crowd: r[6].as_u64().unwrap() == 1,
            }
        })
        .collect();
    let dets = c["dets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            // f32 values; serde_json's default decimal parsing may be 1 ulp (f64) off, which the
            // rounding to f32 removes.
            let score = f(&r[6]) as f32;
            assert!((score as f64 - f(&r[6])).abs() <= 1e-15 * f(&r[6]).abs(), "scores are f32 values");
            Detection {
                image: r[0].as_u64().unwrap() as usize,
                category: r[1].as_u64().unwrap() as usize,
                bbox: bbox(r),
                score,
            }
        })
        .collect();
    Case { name: c["name"].as_str().unwrap().into(), images, categories, gt, dets, raw: c.clone() }
}

fn check(name: &str, what: &str, expected: &Value, got: Option<f64>) {
    match (expected.as_f64(), got) {
        (Some(e), Some(g)) => assert!((e - g).abs() < TOL, "{name} {what}: fx {g} vs pycocotools {e}"),
        (None, None) => {}
        (e, g) => panic!("{name} {what}: pycocotools {e:?}, fx {g:?}"),
    }
}

#[test]
fn thresholds_equal_the_fixtures_bit_for_bit() {
    let doc = load();
    let bits = |key: &str| -> Vec<f64> {
        doc[key].as_array().unwrap().iter().map(|b| f64::from_bits(b.as_u64().unwrap())).collect()
    };
    let (iou, rec) = (bits("iou_thrs_bits"), bits("rec_thrs_bits"));
    assert_eq!(iou, iou_thresholds());
    assert_eq!(rec, recall_thresholds());
}

#[test]
fn equals_pycocotools_on_fixture_cases() {
    let doc = load();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut max_err: f64 = 0.0;
    for c in cases.iter().map(case) {
        let e = &c.raw["expected"];
        let r = evaluate(&c.gt, &c.dets, c.categories.len(), c.images.len());
        check(&c.name, "mAP40", &e["map40"], r.map40);
        check(&c.name, "AP50", &e["ap50"], r.ap50);
        check(&c.name, "AP@[.40:.95]", &e["ap40_95"], r.ap40_95);
        for (t, v) in e["per_threshold"].as_array().unwrap().iter().enumerate() {
            check(&c.name, &format!("mean AP at threshold {t}"), v, r.per_threshold[t]);
        }
        for (k, row) in e["per_category"].as_array().unwrap().iter().enumerate() {
            check(&c.name, &format!("category {k} AP40"), &e["per_category_map40"][k], r.per_category_map40[k]);
            match row.as_array() {
                None => assert!(
                    r.per_category[k].iter().all(|v| v.is_none()),
                    "{} category {k}: pycocotools has no AP",
                    c.name
                ),
                Some(vals) => {
                    for (t, v) in vals.iter().enumerate() {
                        let g = r.per_category[k][t]
                            .unwrap_or_else(|| panic!("{} category {k} threshold {t}: fx None", c.name));
                        max_err = max_err.max((g - f(v)).abs());
                        check(&c.name, &format!("category {k} threshold {t}"), v, Some(g));
                    }
                }
            }
        }
    }
    // Same algorithm, same arithmetic: the agreement is far tighter than the 1e-4 required.
    assert!(max_err < 1e-12, "largest per-category difference {max_err}");
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Numbers compared as f64, everything else exactly.
fn same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => assert_eq!(x.as_f64(), y.as_f64(), "{at}: {x} vs {y}"),
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut kx: Vec<&String> = x.keys().collect();
            let mut ky: Vec<&String> = y.keys().collect();
            kx.sort();
            ky.sort();
            assert_eq!(kx, ky, "{at}: keys");
            for k in kx {
                same(&x[k], &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn writers_reproduce_the_files_pycocotools_scored() {
    let doc = load();
    for c in doc["cases"].as_array().unwrap().iter().map(case) {
        let gt_file = parse(&std::fs::read_to_string(fixtures().join(c.raw["gt_json"].as_str().unwrap())).unwrap());
        let res_file =
            parse(&std::fs::read_to_string(fixtures().join(c.raw["results_json"].as_str().unwrap())).unwrap());
        let image_ids: Vec<i64> = c.images.iter().map(|im| im.id).collect();
        let category_ids: Vec<i64> = c.categories.iter().map(|k| k.id).collect();
        same(&parse(&coco_gt_json(&c.gt, &c.images, &c.categories)), &gt_file, &format!("{} gt", c.name));
        same(&parse(&coco_results_json(&c.dets, &image_ids, &category_ids)), &res_file, &format!("{} results", c.name));
        // And the written ground truth reads back through fx_data::coco into the same boxes.
        let set = fx_data::coco::parse_coco(&coco_gt_json(&c.gt, &c.images, &c.categories), &c.name).unwrap();
        assert!(set.problems.is_empty(), "{}: {:?}", c.name, set.problems);
        assert_eq!(fx::eval::map::gt_from_coco(&set), c.gt, "{}", c.name);
    }
}
