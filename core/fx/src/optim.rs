//! AdamW with one learning rate per parameter group, written over tch tensors so that its moments
//! can be checkpointed (tch 0.24 cannot save its optimiser state) and so that exactly the parameters
//! an epoch trains are stepped: a frozen or inactive parameter is neither decayed nor moved.

use crate::schedule::Group;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub lr: BTreeMap<Group, f64>,
    /// Per parameter name: (first moment, second moment, steps taken).
    state: BTreeMap<String, (Tensor, Tensor, i64)>,
}

impl AdamW {
    pub fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, lr: BTreeMap<Group, f64>) -> AdamW {
        AdamW { beta1, beta2, eps, weight_decay, lr, state: BTreeMap::new() }
    }

    /// Scales every group's rate for the coming steps (the schedule's factor of the epoch).
    pub fn set_factor(&mut self, base: &BTreeMap<Group, f64>, factor: f64) {
        self.lr = base.iter().map(|(g, lr)| (*g, lr * factor)).collect();
    }

    /// One update of the given parameters (name, tensor), each with its group's learning rate.
    /// Every operation stays on the device: no host synchronisation.
    /// `grads[i]` is the gradient of `params[i]` from [`gradients`]; an undefined one (the
    /// parameter did not take part in this step's loss) leaves the parameter and its moments
    /// untouched — the same in a long-lived process and in one resumed from a checkpoint.
    pub fn step(&mut self, params: &[(String, Group, Tensor)], grads: &[Tensor]) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        tch::no_grad(|| {
            for ((name, group, p), g) in params.iter().zip(grads) {
                if !g.defined() {
                    continue;
                }
                let lr = self.lr.get(group).copied().unwrap_or(0.0);
                let (m, v, t) = self.state.entry(name.clone()).or_insert_with(|| (p.zeros_like(), p.zeros_like(), 0));
                *t += 1;
                let _ = m.lerp_(g, 1.0 - self.beta1);
                let _ = v.g_mul_scalar_(self.beta2).addcmul_(g, &g.g_mul_scalar(1.0 - self.beta2));
                let bc1 = 1.0 - self.beta1.powi(*t as i32);
                let bc2 = 1.0 - self.beta2.powi(*t as i32);
                let mut p = p.shallow_clone();
                let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                let denom = (v.sqrt() / bc2.sqrt()).g_add_scalar(self.eps);
                let _ = p.addcdiv_(&(m.g_mul_scalar(-lr / bc1)), &denom);
            }
        });
    }
}

/// The gradients of `loss` with respect to each parameter, WITHOUT accumulating into `.grad`:
/// a parameter the loss does not reach gets an undefined tensor, so it is not stepped. (Zeroed
/// `.grad` tensors kept from earlier steps would make AdamW move unused parameters through
/// momentum and weight decay in a long-lived process but not in a resumed one.)
pub fn gradients(loss: &Tensor, params: &[(String, Group, Tensor)]) -> Vec<Tensor> {
    if params.is_empty() {
        return Vec::new();
    }
    let inputs: Vec<&Tensor> = params.iter().map(|(_, _, p)| p).collect();
    Tensor::run_backward(&[loss], &inputs, false, false)
}

impl AdamW {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, (m, v, t)) in &self.state {
            tensors.push((format!("m.{name}"), m.shallow_clone()));
            tensors.push((format!("v.{name}"), v.shallow_clone()));
            tensors.push((format!("t.{name}"), Tensor::from_slice(&[*t])));
        }
        Tensor::write_safetensors(&tensors, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn load(&mut self, path: &Path, device: tch::Device) -> Result<()> {
        let mut parts: BTreeMap<String, [Option<Tensor>; 3]> = BTreeMap::new();
        for (key, t) in Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))? {
            let (kind, name) = key.split_once('.').context("optimizer state key without a kind prefix")?;
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
            self.state.insert(name, (m.to_device(device), v.to_device(device), t.int64_value(&[0])));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

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
            let grads = gradients(&loss, &params);
            opt.step(&params, &grads);
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
        let (m1, v1, t1) = &opt.state["w"];
        let (m2, v2, t2) = &other.state["w"];
        assert_eq!(t1, t2);
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
        let grads = gradients(&(&used.sum(Kind::Float) + &unused.sum(Kind::Float)), &params);
        opt.step(&params, &grads);
        let after_first = unused.detach().copy();
        for _ in 0..3 {
            let grads = gradients(&used.sum(Kind::Float), &params);
            assert!(grads[0].defined() && !grads[1].defined());
            opt.step(&params, &grads);
        }
        assert!(unused.detach().equal(&after_first));
        assert_eq!(opt.state["b"].2, 1);
        assert_eq!(opt.state["a"].2, 4);
    }
}
