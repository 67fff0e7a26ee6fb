//! Property tests over every parser of outside input: no input may make one panic (or abort on
//! an allocation the input asked for); each returns a value or an error. `make test` runs a few
//! hundred cases per parser; `make fuzz` runs thousands (PROPTEST_CASES). Inputs are random
//! bytes/strings and, more usefully, valid files with random bytes changed, cut or inserted.
//! Every crash found is kept below as a regression case.

use fx::config::Experiment;
use fx_data::coco::{coco_rle_string_decode, parse_box_csv, parse_coco, BoxCsvColumns};
use fx_data::dataset::Table;
use fx_data::input::{decode, DecodeOptions, RawOptions};
use fx_data::masks::{chexmask_rle_decode, coco_rle_decode, rasterize_polygons, siim_rle_decode};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A valid file with its bytes mutated: some changed, then cut or extended.
fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>, tail: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(i, b) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] = b;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (base.len() + 1));
    }
    v.extend_from_slice(tail);
    v
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>, Vec<u8>)> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        prop::option::of(any::<usize>()),
        prop::collection::vec(any::<u8>(), 0..16),
    )
}

const COCO: &str = r#"{"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
 "categories": [{"id": 3, "name": "nodule"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 2], "iscrowd": 0,
   "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]},
  {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "iscrowd": 1,
   "segmentation": {"size": [6, 8], "counts": "0240"}}]}"#;

const CSV: &str = "img_name,x,y,width,height,label\nn1.mha,1,2,3,4,1\nn1.mha,5,5,2,2,1\nc1.mha,0,0,0,0,0\n";

const TOML: &str = r#"name = "f"
seed = 1
[model]
arch = "swin_nano"
image_size = 64
[train]
batch_size = 4
cycles = 2
[optimizer]
lr = { backbone = 1e-4 }
[[datasets]]
plugin = "phantom-cxp"
options = { train = 8 }
"#;

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn coco_json(text in ".{0,200}", (e, c, t) in edits()) {
        let _ = parse_coco(&text, "r.json");
        let m = mutate(COCO.as_bytes(), &e, c, &t);
        let _ = parse_coco(&String::from_utf8_lossy(&m), "m.json");
    }

    #[test]
    fn coco_rle_strings(s in "[0-9a-zA-Z`_\\[\\]\\\\^]{0,40}", w in 0usize..20, h in 0usize..20) {
        if let Ok(counts) = coco_rle_string_decode(&s) {
            let _ = coco_rle_decode(&counts, w, h);
        }
    }

    #[test]
    fn box_csv(text in "[a-z0-9,.\\n -]{0,200}", (e, c, t) in edits()) {
        for cols in [BoxCsvColumns::node21(), BoxCsvColumns::rsna(), BoxCsvColumns::vindr()] {
            let _ = parse_box_csv(&text, "r.csv", &cols);
            let m = mutate(CSV.as_bytes(), &e, c, &t);
            let _ = parse_box_csv(&String::from_utf8_lossy(&m), "m.csv", &cols);
        }
        let _ = Table::parse(Path::new("t.csv"), text.as_bytes());
    }

    #[test]
    fn run_length_codes(s in "[-0-9 ]{0,60}", w in 0usize..40, h in 0usize..40) {
        let _ = siim_rle_decode(&s, w, h);
        let _ = chexmask_rle_decode(&s, w, h);
    }

    #[test]
    fn polygons(polys in prop::collection::vec(prop::collection::vec(-1e6f32..1e6, 0..12), 0..4), w in 0usize..64, h in 0usize..64) {
        let _ = rasterize_polygons(&polys, w, h);
    }

    #[test]
    fn experiment_toml(text in ".{0,200}", (e, c, t) in edits()) {
        let _ = Experiment::parse(Path::new("r.toml"), &text, &[]);
        let m = mutate(TOML.as_bytes(), &e, c, &t);
        let _ = Experiment::parse(Path::new("m.toml"), &String::from_utf8_lossy(&m), &[]);
    }

    #[test]
    fn plugin_responses(bytes in prop::collection::vec(any::<u8>(), 0..64), (e, c, t) in edits()) {
        let _ = fx_plugin::abi::unframe(&bytes);
        let good = fx_plugin::abi::frame(true, &serde_json::json!({"id": "a", "height": 2, "width": 2, "masks": 0}), &[0u8; 16]);
        let _ = fx_plugin::abi::unframe(&mutate(&good, &e, c, &t));
    }

    /// Image files: DICOM (several transfer syntaxes), MetaImage, JSRT raw, PNG and JPEG, each
    /// mutated and decoded from disk.
    #[test]
    fn image_files(k in 0usize..9, (e, c, t) in edits()) {
        let files = [
            "dx_u12_explicit_le.dcm", "dx_u12_rle.dcm", "sc_u8_jpeg_baseline.dcm", "dx_u16_j2k_lossless.dcm",
            "mha_ushort.mha", "mha_ushort_zlib.mha", "JPCLN001.IMG", "png_gray16.png", "jpeg_gray.jpg",
        ];
        let src = fixtures().join("images").join(files[k]);
        let base = std::fs::read(&src).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(files[k]);
        std::fs::write(&p, mutate(&base, &e, c, &t)).unwrap();
        let opts = DecodeOptions { raw: RawOptions { width: 40, height: 32, ..Default::default() }, ..Default::default() };
        let _ = decode(&p, &opts);
        let _ = fx_data::input::dimensions(&p, &opts);
    }
}

/// Found by `image_files`: an RLE Lossless DICOM cut short (and one byte appended) made
/// dicom-rs's RLE decoder index past its segment and panic.
#[test]
fn a_truncated_rle_dicom_is_an_error_not_a_panic() {
    let base = std::fs::read(fixtures().join("images/dx_u12_rle.dcm")).unwrap();
    let bytes = mutate(&base, &[], Some(8944681444880405012), &[0]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.dcm");
    std::fs::write(&p, bytes).unwrap();
    let e = decode(&p, &DecodeOptions::default()).unwrap_err();
    assert!(e.contains("cut.dcm"), "{e}");
}

/// A MetaImage header asking for 65536 × 65536 compressed doubles must not pre-allocate 34 GB.
#[test]
fn a_huge_metaimage_header_does_not_allocate_what_it_asks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.mha");
    let mut bytes = b"ObjectType = Image\nNDims = 2\nDimSize = 65536 65536\nElementType = MET_DOUBLE\nCompressedData = True\nElementDataFile = LOCAL\n".to_vec();
    bytes.extend_from_slice(&[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    std::fs::write(&p, bytes).unwrap();
    let e = decode(&p, &DecodeOptions::default()).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
}
