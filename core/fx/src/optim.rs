//! AdamW with one learning rate per parameter group, written over tch tensors so that its moments
//! can be checkpointed (tch 0.24 cannot save its optimiser state) and so that exactly the parameters
//! an epoch trains are stepped: a frozen or inactive parameter is neither decayed nor moved. The
//! update itself is PyTorch's fused AdamW kernel (through fx-shim), one call per parameter group.

use crate::group::Group;
use anyhow::{Context, Result};
use fx_shim::GradScaler;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub lr: BTreeMap<Group, f64>,
    /// Per parameter name: (first moment, second moment, steps taken as a float scalar on the
    /// device: the fused kernel reads it there, so counting never syncs with the host).
    state: BTreeMap<String, (Tensor, Tensor, Tensor)>,
    /// fp16 training's dynamic loss scale (`train.precision = "fp16"`); checkpointed with the moments.
    pub scaler: Option<GradScaler>,
}

impl AdamW {
    pub fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, lr: BTreeMap<Group, f64>) -> AdamW {
        AdamW { beta1, beta2, eps, weight_decay, lr, state: BTreeMap::new(), scaler: None }
    }

    /// Scales every group's rate for the coming steps (the schedule's factor of the epoch).
    pub fn set_factor(&mut self, base: &BTreeMap<Group, f64>, factor: f64) {
        self.lr = base.iter().map(|(g, lr)| (*g, lr * factor)).collect();
    }

    /// Steps taken by one parameter (reads the device; for tests and reports, not the step).
    pub fn steps_of(&self, name: &str) -> Option<i64> {
        self.state.get(name).map(|(_, _, t)| t.double_value(&[]) as i64)
    }

    /// One update of the given parameters (name, tensor), each with its group's learning rate:
    /// torch.optim.AdamW(fused=True)'s kernel, one call per group. Every operation stays on the
    /// device: no host synchronisation.
    /// `grads[i]` is the gradient of `params[i]` from [`gradients`]; an undefined one (the
    /// parameter did not take part in this step's loss) leaves the parameter and its moments
    /// untouched — the same in a long-lived process and in one resumed from a checkpoint.
    /// With `found_inf` (fp16: the scaler's flag) a step with an inf/NaN gradient changes nothing.
    pub fn step(
        &mut self,
        params: &[(String, Group, Tensor)],
        grads: &[Tensor],
        found_inf: Option<&Tensor>,
    ) -> Result<()> {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        let mut groups: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
        for (i, ((name, group, p), g)) in params.iter().zip(grads).enumerate() {
            if !g.defined() {
                continue;
            }
            self.state
                .entry(name.clone())
                .or_insert_with(|| (p.zeros_like(), p.zeros_like(), Tensor::zeros([], (Kind::Float, p.device()))));
            groups.entry(*group).or_default().push(i);
        }
        tch::no_grad(|| -> Result<()> {
            for (group, idx) in &groups {
                let lr = self.lr.get(group).copied().unwrap_or(0.0);
                let state: Vec<&(Tensor, Tensor, Tensor)> = idx.iter().map(|&i| &self.state[&params[i].0]).collect();
                fx_shim::fused_adamw(
                    &idx.iter().map(|&i| &params[i].2).collect::<Vec<_>>(),
                    &idx.iter().map(|&i| &grads[i]).collect::<Vec<_>>(),
                    &state.iter().map(|s| &s.0).collect::<Vec<_>>(),
                    &state.iter().map(|s| &s.1).collect::<Vec<_>>(),
                    &state.iter().map(|s| &s.2).collect::<Vec<_>>(),
                    lr,
                    (self.beta1, self.beta2),
                    self.weight_decay,
                    self.eps,
                    found_inf,
                )?;
            }
            Ok(())
        })
    }
}

/// The gradients of `loss` with respect to each parameter, WITHOUT accumulating into `.grad`:
/// a parameter the loss does not reach gets an undefined tensor, so it is not stepped. (Zeroed
/// `.grad` tensors kept from earlier steps would make AdamW move unused parameters through
/// momentum and weight decay in a long-lived process but not in a resumed one.)
/// An error only where the backward runs a collective that fails (SyncBatchNorm in a job).
pub fn gradients(loss: &Tensor, params: &[(String, Group, Tensor)]) -> Result<Vec<Tensor>> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let inputs: Vec<&Tensor> = params.iter().map(|(_, _, p)| p).collect();
    Ok(Tensor::f_run_backward(&[loss], &inputs, false, false)?)
}

impl AdamW {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, (m, v, t)) in &self.state {
            tensors.push((format!("m.{name}"), m.shallow_clone()));
            tensors.push((format!("v.{name}"), v.shallow_clone()));
            // Stored as before the fused kernel: one int64 count, shape [1].
            tensors.push((format!("t.{name}"), t.to_kind(Kind::Int64).reshape([1])));
        }
        if let Some(s) = &self.scaler {
            tensors.push(("amp.scale".into(), s.scale.shallow_clone()));
            tensors.push(("amp.growth_tracker".into(), s.growth_tracker.shallow_clone()));
        }
        Tensor::write_safetensors(&tensors, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn load(&mut self, path: &Path, device: tch::Device) -> Result<()> {
        let mut parts: BTreeMap<String, [Option<Tensor>; 3]> = BTreeMap::new();
        for (key, t) in Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))? {
            let (kind, name) = key.split_once('.').context("optimizer state key without a kind prefix")?;
            if kind == "amp" {
                if let Some(s) = self.scaler.as_mut() {
                    match name {
                        "scale" => s.scale = t.to_device(device),
                        "growth_tracker" => s.growth_tracker = t.to_device(device),
                        _ => anyhow::bail!("{}: unexpected optimizer state key {key}", path.display()),
                    }
                }
                continue;
            }
            let slot = match kind {
                "m" => 0,
                "v" => 1,
                "t" => 2,
                _ => anyhow::bail!("{}: unexpected optimizer state key {key}", path.display()),
            };
            parts.entry(name.to_string()).or_default()[slot] = Some(t);
        }
        self.state.clear();
        for (name, [m, v, t]) in parts {
            let (Some(m), Some(v), Some(t)) = (m, v, t) else {
                anyhow::bail!("{}: incomplete optimizer state for {name}", path.display())
            };
            let steps = Tensor::from(t.int64_value(&[0]) as f32).to_device(device);
            self.state.insert(name, (m.to_device(device), v.to_device(device), steps));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Compares one parameter's trajectory with the closed-form AdamW (as torch.optim.AdamW does it).
    #[test]
    fn matches_reference_adamw_and_round_trips() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
        let mut lr = BTreeMap::new();
        lr.insert(Group::Backbone, 0.1);
        let mut opt = AdamW::new(0.9, 0.999, 1e-8, 0.01, lr);
        let params = vec![("w".to_string(), Group::Backbone, p.shallow_clone())];
        let mut x = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for t in 1..=3 {
            let loss = (&p * &p).sum(Kind::Float);
            let grads = gradients(&loss, &params).unwrap();
            opt.step(&params, &grads, None).unwrap();
            for i in 0..3 {
                let g = 2.0 * x[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                x[i] *= 1.0 - 0.1 * 0.01;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                x[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        for i in 0..3 {
            assert!((got[i] as f64 - x[i]).abs() < 1e-5, "{got:?} vs {x:?}");
        }
        let dir = std::env::temp_dir().join(format!("fx-adamw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("opt.safetensors");
        opt.save(&f).unwrap();
        let mut other = AdamW::new(0.9, 0.999, 1e-8, 0.01, BTreeMap::new());
        other.load(&f, Device::Cpu).unwrap();
        let (m1, v1, _) = &opt.state["w"];
        let (m2, v2, _) = &other.state["w"];
        assert_eq!(opt.steps_of("w"), Some(3));
        assert_eq!(other.steps_of("w"), Some(3));
        assert!(m1.equal(m2) && v1.equal(v2));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A parameter the loss does not reach is neither decayed nor moved, step after step.
    #[test]
    fn an_unused_parameter_is_never_stepped() {
        let used = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let unused = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
        let mut lr = BTreeMap::new();
        lr.insert(Group::Backbone, 0.1);
        let mut opt = AdamW::new(0.9, 0.999, 1e-8, 0.1, lr);
        let params = vec![
            ("a".to_string(), Group::Backbone, used.shallow_clone()),
            ("b".to_string(), Group::Backbone, unused.shallow_clone()),
        ];
        // One step that uses both, then steps that use only `a`.
        let grads = gradients(&(&used.sum(Kind::Float) + &unused.sum(Kind::Float)), &params).unwrap();
        opt.step(&params, &grads, None).unwrap();
        let after_first = unused.detach().copy();
        for _ in 0..3 {
            let grads = gradients(&used.sum(Kind::Float), &params).unwrap();
            assert!(grads[0].defined() && !grads[1].defined());
            opt.step(&params, &grads, None).unwrap();
        }
        assert!(unused.detach().equal(&after_first));
        assert_eq!(opt.steps_of("b"), Some(1));
        assert_eq!(opt.steps_of("a"), Some(4));
    }
}
