//! Every decoder against its Python reference: `scripts/make_image_fixtures.py` wrote the files
//! under fixtures/images with pydicom 3, SimpleITK, Pillow and GDCM, and the pixel values those
//! libraries give after the DICOM LUT steps (PS3.3 C.11) into expected.json.

use fx_data::input::{decode, dimensions, DecodeOptions, RawOptions, Window};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images")
}

fn options(case: &Value) -> DecodeOptions {
    let window = case["window"].as_str().map(|w| Window::parse(w).expect(w)).unwrap_or_default();
    let mut raw = RawOptions::default();
    if case["format"] == "jsrt" {
        raw.width = case["width"].as_u64().unwrap() as usize;
        raw.height = case["height"].as_u64().unwrap() as usize;
        raw.big_endian = case["endian"] != "little";
        raw.invert = case["invert"].as_bool().unwrap();
    }
    DecodeOptions { window, raw }
}

#[test]
fn decoders_equal_their_python_references() {
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let (mut compared, mut errors) = (0, 0);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let path = dir().join(case["file"].as_str().unwrap());
        let opts = options(case);
        let got = decode(&path, &opts);
        if let Some(sub) = case["error"].as_str() {
            match got {
                Err(e) if e.to_lowercase().contains(sub) && e.contains(case["file"].as_str().unwrap()) => errors += 1,
                Err(e) => failures.push(format!("{name}: error `{e}` lacks `{sub}` or the file name")),
                Ok(_) => failures.push(format!("{name}: decoded, but `{sub}` error expected")),
            }
            continue;
        }
        let g = match got {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (w, h) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
        if (g.width, g.height) != (w, h) {
            failures.push(format!("{name}: {}×{} instead of {w}×{h}", g.width, g.height));
            continue;
        }
        assert_eq!(dimensions(&path, &opts).unwrap(), (w, h), "{name}: header dimensions");
        let want: Vec<f64> = case["pixels"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let tol = case["tolerance"].as_f64().unwrap_or(1.0 / 255.0) + 1e-6;
        let worst = g.pixels.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        if worst > tol {
            failures.push(format!("{name}: max |fx − reference| = {worst:.5} > {tol:.5}"));
        }
        if case["warning"] == "multi-frame" && !g.warnings.iter().any(|w| w.contains("multi-frame")) {
            failures.push(format!("{name}: no multi-frame warning in {:?}", g.warnings));
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(compared >= 30 && errors >= 8, "{compared} compared, {errors} error cases");
}
