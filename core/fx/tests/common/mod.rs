//! What the resume tests (resume.rs, precision.rs) compare: two run directories that must hold
//! the same metric rows and byte-identical final checkpoints.

use std::path::{Path, PathBuf};

/// Metric rows without their wall times.
pub fn rows(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_time");
            v
        })
        .collect()
}

pub fn last_checkpoint(run: &Path) -> PathBuf {
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
    run.join("checkpoints").join(last["dir"].as_str().unwrap())
}

/// The run trained straight through and the run resumed after every epoch agree exactly: the same
/// metric rows (wall times aside) and byte-identical student, teacher and optimizer checkpoints.
pub fn assert_same_run(straight: &Path, resumed: &Path, what: &str) {
    let (ra, rb) = (rows(straight), rows(resumed));
    assert_eq!(ra.len(), rb.len(), "{what}: a resumed run has another number of rows");
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x, y, "{what}: a resumed run's row differs");
    }
    let (ca, cb) = (last_checkpoint(straight), last_checkpoint(resumed));
    for f in ["student.safetensors", "teacher.safetensors", "optimizer.safetensors"] {
        assert!(std::fs::read(ca.join(f)).unwrap() == std::fs::read(cb.join(f)).unwrap(), "{what}: {f} differs");
    }
}
