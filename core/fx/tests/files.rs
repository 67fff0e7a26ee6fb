//! A localization run on a COCO dataset read from files: one corrupt image is skipped and counted,
//! a box sticking out of its image is clipped and reported, and training finishes.

use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::Trainer;
use std::path::Path;
use tch::Device;

fn write_coco(root: &Path, split: &str, n: usize, corrupt: Option<usize>) {
    std::fs::create_dir_all(root.join("images")).unwrap();
    let (mut images, mut anns) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("{split}{i:02}.png");
        // A bright square on a dark background: the box to find.
        let (x, y, s) = (8 + (i * 5) % 30, 10 + (i * 7) % 28, 14 + i % 6);
        if corrupt == Some(i) {
            std::fs::write(root.join("images").join(&name), b"\x89PNG broken").unwrap();
        } else {
            image::GrayImage::from_fn(64, 64, |px, py| {
                let inside = (px as usize) >= x && (px as usize) < x + s && (py as usize) >= y && (py as usize) < y + s;
                image::Luma([if inside { 220 } else { 30 }])
            })
            .save(root.join("images").join(&name))
            .unwrap();
        }
        images.push(serde_json::json!({ "id": i + 1, "file_name": name, "width": 64, "height": 64 }));
        // The first image's box sticks out on the right: clipped, with a warning.
        let w = if i == 0 { 64 - x + 10 } else { s };
        anns.push(
            serde_json::json!({ "id": i + 1, "image_id": i + 1, "category_id": 3, "bbox": [x, y, w, s], "iscrowd": 0 }),
        );
    }
    let doc =
        serde_json::json!({ "images": images, "categories": [{ "id": 3, "name": "square" }], "annotations": anns });
    std::fs::write(root.join(format!("{split}.json")), doc.to_string()).unwrap();
}

#[test]
fn loc_training_on_a_coco_folder_skips_the_corrupt_image_and_reports_the_clipped_box() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_coco(&data, "train", 16, Some(5));
    write_coco(&data, "test", 6, None);
    let text = format!(
        r#"
name = "coco"
device = "cpu"
output_dir = "{out}"
[model]
arch = "swin_nano"
image_size = 64
[model.dino]
hidden_dim = 32
heads = 4
points = 2
encoder_layers = 1
decoder_layers = 2
ffn_dim = 64
num_queries = 12
dn_number = 6
gn_groups = 8
[train]
batch_size = 8
cycles = 1
workers = 1
[lock_release]
enabled = false
[[datasets]]
name = "squares"
plugin = "coco"
root = "{data}"
options = {{ train = "train.json", test = "test.json", images = "images" }}
"#,
        out = dir.path().join("runs").display(),
        data = data.display()
    );
    let exp = Experiment::parse(Path::new("coco.toml"), &text, &[]).unwrap();
    let mut plugins = fx_phantom::plugins();
    plugins.extend(fx_files::plugins());
    let mut t = Trainer::create(exp, "coco.toml", &Registry::new(plugins), Device::Cpu).unwrap();
    assert_eq!(t.datasets[0].tasks, [fx_plugin::Task::Loc]);
    assert_eq!(t.run(&mut |_| {}).unwrap(), "finished");
    let events = std::fs::read_to_string(t.run.path("events.jsonl")).unwrap();
    assert!(events.contains("dataset_warning") && events.contains("train.json"), "{events}");
    assert!(events.contains("sample_skipped") && events.contains("train05.png"), "{events}");
    let rows = t.run.metrics().unwrap();
    assert!(rows.iter().any(|r| r.metric == "map40" && r.eval.dataset == "squares"));
    // Detections are in the original image's pixels with the file names as COCO image names.
    let gt = fx_data::coco::read_coco(&t.run.path("predictions/teacher-squares-loc-ground_truth.json")).unwrap();
    assert_eq!(gt.images.len(), 6);
    assert_eq!(gt.images[0].file_name, "test00.png");
    assert_eq!((gt.images[0].width, gt.images[0].height), (64, 64));
}
