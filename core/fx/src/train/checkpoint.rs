//! Checkpoint I/O: the model variables written and read (tolerant of heads a run gained later),
//! the checkpoint a trainer writes after every epoch, pretrained/finetune loading, and the keys a
//! `--resume` may find changed.

use super::*;

/// Experiment keys a resumed run may change: they cannot change what is trained or measured.
pub const SAFE_TO_CHANGE: [&str; 10] = [
    "train.log_every",
    "train.activation_checkpointing",
    "train.workers",
    "train.prefetch",
    "device",
    "eval.batch_size",
    "data",
    "output_dir",
    "plugin_isolation",
    "share_with_group",
];

/// "key: old → new" for every leaf that differs between two experiments (as JSON), except
/// [`SAFE_TO_CHANGE`] and datasets hot-added after the old one (they carry `joined_cycle`). An
/// old checkpoint without its experiment (Null) compares as equal.
pub fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn flat(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| flat(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
            serde_json::Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                a.iter().enumerate().for_each(|(i, v)| flat(&format!("{prefix}.{i}"), v, out))
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    if old.is_null() {
        return Vec::new();
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flat("", old, &mut a);
    flat("", new, &mut b);
    let old_n = old["datasets"].as_array().map(|a| a.len()).unwrap_or(0);
    let added: Vec<String> = new["datasets"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .filter(|(i, d)| *i >= old_n && !d["joined_cycle"].is_null())
                .map(|(i, _)| format!("datasets.{i}."))
                .collect()
        })
        .unwrap_or_default();
    // A hot-add may also bring plugin libraries: the list may grow with the datasets.
    let plugins_grew = !added.is_empty() && {
        let (o, n) = (
            old["plugins"].as_array().cloned().unwrap_or_default(),
            new["plugins"].as_array().cloned().unwrap_or_default(),
        );
        n.len() >= o.len() && n[..o.len()] == o[..]
    };
    let safe = |k: &str| {
        SAFE_TO_CHANGE.iter().any(|s| k == *s || k.starts_with(&format!("{s}.")))
            || added.iter().any(|p| k.starts_with(p.as_str()))
            || (k == "plugins" && plugins_grew)
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !safe(k) && a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                a.get(k).map(String::as_str).unwrap_or("(absent)"),
                b.get(k).map(String::as_str).unwrap_or("(absent)")
            )
        })
        .collect()
}

pub(super) fn write_vars(model: &Model, path: &Path) -> Result<()> {
    let vars = model.named_variables();
    Tensor::write_safetensors(&vars, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A variable of one dataset's heads (its cls head, loc decoder or seg head).
pub fn head_of(var: &str, dataset: &str) -> bool {
    ["cls_head", "loc_decoder", "seg_head"].iter().any(|g| {
        var.strip_prefix(g)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_prefix(dataset))
            .is_some_and(|r| r.starts_with('.'))
    })
}

/// Loads a model's variables from a checkpoint file: every variable must be present with its
/// shape, except those for which `may_miss` holds (they keep their values); returns those.
pub fn read_vars_except(model: &Model, path: &Path, may_miss: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let file: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect();
    let mut missing = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in model.named_variables() {
            let Some(src) = file.get(&name) else {
                if may_miss(&name) {
                    missing.push(name);
                    continue;
                }
                bail!("{}: missing `{name}`", path.display());
            };
            if src.size() != var.size() {
                bail!("{}: `{name}` has shape {:?}, the model expects {:?}", path.display(), src.size(), var.size());
            }
            var.shallow_clone().copy_(src);
        }
        Ok(())
    })?;
    Ok(missing)
}

/// What finetuning took from the pretrained model.
#[derive(Debug, Default, serde::Serialize)]
pub struct Pretrained {
    pub file: String,
    /// Variables copied (same name and shape).
    pub loaded: usize,
    /// Variables of this model the file lacks: new heads or branches, trained from scratch.
    pub fresh: Vec<String>,
    /// Same name, other shape (e.g. a head with another label count): trained from scratch.
    pub reshaped: Vec<String>,
}

impl Pretrained {
    pub(super) fn summary(&self, from: &Path) -> String {
        let groups = |v: &[String]| {
            let mut g: Vec<String> = v.iter().map(|n| n.split('.').take(2).collect::<Vec<_>>().join(".")).collect();
            g.dedup();
            g.join(", ")
        };
        format!(
            "finetuning from {} ({}): {} variables loaded; from scratch: {} new [{}], {} reshaped [{}]",
            from.display(),
            self.file,
            self.loaded,
            self.fresh.len(),
            groups(&self.fresh),
            self.reshaped.len(),
            groups(&self.reshaped)
        )
    }
}

/// The checkpoint file a finetune starts from: a run directory's last checkpoint (its teacher,
/// the model the paper uses after pretraining; the student when the run had none), or a file.
/// `from` may also be a run name prefix (`runs/organs_ls-phantom`): the newest run
/// `runs/organs_ls-phantom-<yyyymmdd-hhmmss>`.
pub fn pretrained_file(from: &Path) -> Result<PathBuf> {
    if from.is_file() {
        return Ok(from.to_path_buf());
    }
    let from = if from.is_dir() { from.to_path_buf() } else { newest_run(from)? };
    let run = RunStore::open(&from)?;
    let (ck, _) = run
        .last_checkpoint()?
        .ok_or_else(|| anyhow!("finetune.from: the run {} has no checkpoint yet", from.display()))?;
    let teacher = ck.join("teacher.safetensors");
    Ok(if teacher.is_file() { teacher } else { ck.join("student.safetensors") })
}

pub(super) fn newest_run(prefix: &Path) -> Result<PathBuf> {
    let parent = prefix.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = prefix.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let is_run_of = |name: &str| {
        name.strip_prefix(&stem).and_then(|rest| rest.strip_prefix('-')).is_some_and(|t| {
            t.len() == 15 && t.as_bytes()[8] == b'-' && t.bytes().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
        })
    };
    let mut runs: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| is_run_of(&n.to_string_lossy())))
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs.pop().ok_or_else(|| {
        anyhow!(
            "finetune.from: {} is not a checkpoint file, a run directory, or the name of a run in {} (no {stem}-<yyyymmdd-hhmmss> there); train the pretraining experiment first or give the path",
            prefix.display(),
            parent.display()
        )
    })
}

/// Copies every variable of the pretrained file that this model has with the same shape.
pub fn load_pretrained(model: &Model, from: &Path) -> Result<Pretrained> {
    let path = pretrained_file(from)?;
    // A checkpoint, or a model file from `fx-tui export-model` (its names map back to fx's).
    let file: BTreeMap<String, Tensor> = crate::predict::read_model_tensors(&path)?;
    let mut out = Pretrained { file: path.display().to_string(), ..Default::default() };
    tch::no_grad(|| {
        for (name, var) in model.named_variables() {
            match file.get(&name) {
                Some(src) if src.size() == var.size() => {
                    var.shallow_clone().copy_(src);
                    out.loaded += 1;
                }
                Some(_) => out.reshaped.push(name),
                None => out.fresh.push(name),
            }
        }
    });
    if out.loaded == 0 {
        bail!("finetune.from: {} shares no variable with this model; is it a Foundation X checkpoint?", path.display());
    }
    Ok(out)
}

impl Trainer {
    pub(super) fn checkpoint(&mut self, wall_time: f64) -> Result<()> {
        let state = CheckpointState {
            epoch: self.next,
            seed: self.exp.seed,
            wall_time,
            skipped_samples: self.skipped_total,
            experiment: serde_json::to_value(&self.exp)?,
        };
        let student = |p: &Path| write_vars(&self.student, p);
        let opt = |p: &Path| self.opt.save(p);
        let teacher = |p: &Path| match &self.teacher {
            Some(t) => write_vars(t, p),
            None => Ok(()),
        };
        let mut files: Vec<(&str, &dyn Fn(&Path) -> Result<()>)> =
            vec![("student.safetensors", &student), ("optimizer.safetensors", &opt)];
        if self.teacher.is_some() {
            files.push(("teacher.safetensors", &teacher));
        }
        self.run.save_checkpoint(&state, &files)?;
        Ok(())
    }
}
