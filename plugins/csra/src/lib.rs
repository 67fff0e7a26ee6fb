//! Class-specific residual attention (CSRA; Zhu & Wu, "Residual Attention: A Simple but Effective
//! Method for Multi-Label Recognition", ICCV 2021) as an fx head plugin: a classification head that
//! is not built in.
//!
//! On the backbone's last stage x (B, C, H, W), each class i scores every location k with its
//! classifier m_i: s_ik = m_i · x_k. The logit is the mean of those scores (average pooling, the
//! paper's linear head) plus λ times a class-specific attention pooling of them —
//! Σ_k softmax_k(T · s_ik) · s_ik, the maximum when T is large — plus a bias. Options:
//! `lambda` (default 0.1), `temperature` (default 1; 99 or more: the maximum), and
//! `panic_after` (a testing aid: the forward panics after that many calls).
//!
//! The library also offers `pointwise`, a segmentation head (a 1×1 convolution of the decoder's
//! fused map), and `linear_abi`, the paper's linear classification head through the ABI (what
//! `examples/head_overhead` times against the built-in one).

use fx_head::tch::{Kind, Tensor};
use fx_head::{Head, HeadDecl, HeadInput, HeadKind, HeadRequest, Init, ParamDecl, Task};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Csra {
    lambda: f64,
    temperature: f64,
    panic_after: Option<usize>,
    calls: AtomicUsize,
}

impl Head for Csra {
    fn forward(&self, inputs: &[Tensor], params: &[Tensor], _train: bool) -> Result<Tensor, String> {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        if self.panic_after.is_some_and(|n| calls >= n) {
            panic!("csra: panic_after = {} reached (testing aid)", calls);
        }
        let (x, weight, bias) = match (inputs, params) {
            ([x], [w, b]) => (x, w, b),
            _ => {
                return Err(format!(
                    "csra: expected 1 input and 2 parameters, got {} and {}",
                    inputs.len(),
                    params.len()
                ))
            }
        };
        // (B, C, H, W) → (B, HW, C) · (C, L) = (B, HW, L): every class's score at every location.
        let scores = x.flatten(2, -1).transpose(1, 2).matmul(&weight.tr());
        let base = scores.mean_dim(1, false, Kind::Float);
        let attention = if self.temperature >= 99.0 {
            scores.amax(1, false)
        } else {
            ((&scores * self.temperature).softmax(1, Kind::Float) * &scores).sum_dim_intlist(1, false, Kind::Float)
        };
        Ok(base + attention * self.lambda + bias)
    }
}

fn create(req: &HeadRequest) -> Result<(HeadDecl, Box<dyn Head>), String> {
    if req.task != Task::Cls {
        return Err(format!("csra is a classification head, asked for {}", req.task));
    }
    let opts = req.options.as_object().cloned().unwrap_or_default();
    for k in opts.keys() {
        if !["lambda", "temperature", "panic_after"].contains(&k.as_str()) {
            return Err(format!("csra: unknown option `{k}` (lambda, temperature, panic_after)"));
        }
    }
    let number = |k: &str, default: f64| -> Result<f64, String> {
        match opts.get(k) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("csra: option `{k}` must be a number ≥ 0, got {v}")),
        }
    };
    let head = Csra {
        lambda: number("lambda", 0.1)?,
        temperature: number("temperature", 1.0)?,
        panic_after: opts.get("panic_after").and_then(|v| v.as_u64()).map(|n| n as usize),
        calls: AtomicUsize::new(0),
    };
    // PyTorch's default for a Linear over C inputs: uniform in ±1/√C.
    let bound = 1.0 / (req.channels as f64).sqrt();
    let decl = HeadDecl {
        inputs: vec![HeadInput::Map],
        params: vec![
            ParamDecl { name: "weight".into(), shape: vec![req.labels, req.channels], init: Init::Uniform { bound } },
            ParamDecl { name: "bias".into(), shape: vec![req.labels], init: Init::Zeros },
        ],
    };
    Ok((decl, Box::new(head)))
}

/// The paper's linear head on the pooled feature, through the plugin ABI: the same computation as
/// fx's built-in `linear` head, so the two measure what the ABI costs.
struct Linear;

impl Head for Linear {
    fn forward(&self, inputs: &[Tensor], params: &[Tensor], _train: bool) -> Result<Tensor, String> {
        match (inputs, params) {
            ([x], [w, b]) => Ok(x.linear(w, Some(b))),
            _ => Err("linear: expected 1 input and 2 parameters".into()),
        }
    }
}

fn create_linear(req: &HeadRequest) -> Result<(HeadDecl, Box<dyn Head>), String> {
    if req.task != Task::Cls {
        return Err(format!("linear is a classification head, asked for {}", req.task));
    }
    // As torch.nn.Linear initialises (and tch's nn::linear): uniform in ±1/√C for both.
    let bound = 1.0 / (req.channels as f64).sqrt();
    let decl = HeadDecl {
        inputs: vec![HeadInput::Pooled],
        params: vec![
            ParamDecl { name: "weight".into(), shape: vec![req.labels, req.channels], init: Init::Uniform { bound } },
            ParamDecl { name: "bias".into(), shape: vec![req.labels], init: Init::Uniform { bound } },
        ],
    };
    Ok((decl, Box::new(Linear)))
}

/// A segmentation head that is not built in: a per-pixel linear map (1×1 convolution) of the
/// decoder's fused map, where fx's own heads are 3×3 convolutions.
struct Pointwise;

impl Head for Pointwise {
    fn forward(&self, inputs: &[Tensor], params: &[Tensor], _train: bool) -> Result<Tensor, String> {
        match (inputs, params) {
            // (B, C, h, w) → (B, h, w, C) · (C, O) + b → (B, O, h, w)
            ([x], [w, b]) => Ok((x.permute([0, 2, 3, 1]).matmul(&w.tr()) + b).permute([0, 3, 1, 2])),
            _ => Err("pointwise: expected 1 input and 2 parameters".into()),
        }
    }
}

fn create_pointwise(req: &HeadRequest) -> Result<(HeadDecl, Box<dyn Head>), String> {
    if req.task != Task::Seg {
        return Err(format!("pointwise is a segmentation head, asked for {}", req.task));
    }
    let bound = 1.0 / (req.channels as f64).sqrt();
    let decl = HeadDecl {
        inputs: vec![HeadInput::Fused],
        params: vec![
            ParamDecl { name: "weight".into(), shape: vec![req.labels, req.channels], init: Init::Uniform { bound } },
            ParamDecl { name: "bias".into(), shape: vec![req.labels], init: Init::Zeros },
        ],
    };
    Ok((decl, Box::new(Pointwise)))
}

pub fn kinds() -> Vec<HeadKind> {
    vec![
        HeadKind {
            name: "csra",
            task: Task::Cls,
            summary: "class-specific residual attention on the last stage (options: lambda, temperature)",
            create,
        },
        HeadKind {
            name: "pointwise",
            task: Task::Seg,
            summary: "segmentation: a 1x1 convolution of the decoder's fused map",
            create: create_pointwise,
        },
        HeadKind {
            name: "linear_abi",
            task: Task::Cls,
            summary: "the paper's linear head through the plugin ABI (to measure what the ABI costs)",
            create: create_linear,
        },
    ]
}

fx_head::export_heads!(kinds);
