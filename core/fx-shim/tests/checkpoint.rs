//! Activation checkpointing against the plain call: the same outputs and exactly the same
//! gradients for the inputs and the parameters (random masks replayed, autocast replayed), the
//! segment run once without a graph and once more in the backward, and a failing segment
//! an error, not a crash.

use fx_shim::{checkpoint, Autocast, LowPrecision};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tch::{Device, Kind, Tensor};

/// The tests draw from libtorch's one generator: one at a time.
static RNG: Mutex<()> = Mutex::new(());

/// x → tanh(x·w + b) with a random per-row keep mask (drop path's draw), and a second output.
fn segment(x: &Tensor, w: &Tensor, b: &Tensor) -> Vec<Tensor> {
    let keep = (Tensor::rand([x.size()[0], 1], (Kind::Float, x.device())) + 0.5).floor();
    let y = (x.matmul(w) + b).tanh() * keep;
    let z = y.sum_dim_intlist(1, false, Kind::Float);
    vec![y, z]
}

fn params() -> (Tensor, Tensor, Tensor) {
    tch::manual_seed(7);
    let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let w = Tensor::randn([5, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let b = Tensor::randn([4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    (x, w, b)
}

fn loss(outs: &[Tensor]) -> Tensor {
    outs[0].pow_tensor_scalar(2).sum(Kind::Float) + outs[1].sum(Kind::Float) * 0.5
}

#[test]
fn gradients_equal_the_plain_call_and_the_segment_runs_twice() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (x, w, b) = params();
    tch::manual_seed(11);
    let plain = segment(&x, &w, &b);
    let plain_grads = Tensor::run_backward(&[loss(&plain)], &[&x, &w, &b], false, false);
    let after_plain = Tensor::rand([3], (Kind::Float, Device::Cpu));

    let calls = Arc::new(AtomicUsize::new(0));
    let (c, w2, b2) = (calls.clone(), w.shallow_clone(), b.shallow_clone());
    tch::manual_seed(11);
    let outs = checkpoint(&[&x], &[w.shallow_clone(), b.shallow_clone()], move |xs| {
        c.fetch_add(1, Ordering::SeqCst);
        segment(&xs[0], &w2, &b2)
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(outs.len(), 2);
    assert!(outs[0].equal(&plain[0]) && outs[1].equal(&plain[1]));
    // The generator moves on as after the plain call, also across the backward's replay.
    let grads = Tensor::run_backward(&[loss(&outs)], &[&x, &w, &b], false, false);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "recomputed once in the backward");
    assert!(Tensor::rand([3], (Kind::Float, Device::Cpu)).equal(&after_plain));
    for (g, p) in grads.iter().zip(&plain_grads) {
        assert!(g.equal(p), "checkpointed {g} vs plain {p}");
    }
}

#[test]
fn without_gradients_the_segment_runs_once() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (x, w, b) = params();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let outs = tch::no_grad(|| {
        checkpoint(&[&x], &[w.shallow_clone(), b.shallow_clone()], move |xs| {
            c.fetch_add(1, Ordering::SeqCst);
            segment(&xs[0], &w, &b)
        })
        .unwrap()
    });
    assert!(!outs[0].requires_grad());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_recomputation_runs_under_the_forwards_autocast() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (x, w, b) = params();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let (w2, b2) = (w.shallow_clone(), b.shallow_clone());
    let outs = {
        let _bf16 = Autocast::new(Device::Cpu, Some(LowPrecision::Bf16));
        checkpoint(&[&x], &[w.shallow_clone(), b.shallow_clone()], move |xs| {
            let y = xs[0].matmul(&w2);
            s.lock().unwrap().push(y.kind());
            vec![(y + &b2).to_kind(Kind::Float)]
        })
        .unwrap()
    };
    // The backward runs outside the region, the recomputation inside one again.
    let _ = Tensor::run_backward(&[outs[0].sum(Kind::Float)], &[&x, &w], false, false);
    assert_eq!(*seen.lock().unwrap(), vec![Kind::BFloat16, Kind::BFloat16]);
    assert!(!Autocast::enabled(Device::Cpu), "the backward leaves autocast as it found it");
}

#[test]
fn a_panicking_segment_is_an_error() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (x, w, _) = params();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let w2 = w.shallow_clone();
    let outs = checkpoint(&[&x], &[w.shallow_clone()], move |xs| {
        if c.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("segment broke on recompute");
        }
        vec![xs[0].matmul(&w2)]
    })
    .unwrap();
    let e = Tensor::f_run_backward(&[outs[0].sum(Kind::Float)], &[&x, &w], false, false).unwrap_err();
    assert!(e.to_string().contains("segment broke on recompute"), "{e}");
    let e = checkpoint(&[&x], &[], |_| panic!("broke in the forward")).unwrap_err();
    assert!(format!("{e:#}").contains("broke in the forward"), "{e:#}");
}
