//! The shim's calls against what they replace: autocast changes a matmul's dtype inside the
//! region only; fused AdamW and foreach lerp equal the per-tensor loops fx used before (fp32,
//! 1e-6 relative); the gradient scaler skips a step with an inf gradient; the version counter
//! sees every in-place change fx makes to a parameter and nothing else.

use fx_shim::{foreach_lerp, fused_adamw, version, Autocast, GradScaler, LowPrecision};
use tch::{Device, Kind, Tensor};

fn refs(v: &[Tensor]) -> Vec<&Tensor> {
    v.iter().collect()
}

fn close(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).abs().max().double_value(&[]);
    diff / b.abs().max().double_value(&[]).max(1e-12)
}

#[test]
fn autocast_changes_a_matmul_inside_the_region_only() {
    let a = Tensor::randn([8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    {
        let _outer = Autocast::new(Device::Cpu, Some(LowPrecision::Bf16));
        assert!(Autocast::enabled(Device::Cpu));
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
        {
            let _inner = Autocast::new(Device::Cpu, Some(LowPrecision::Fp16));
            assert_eq!(a.matmul(&a).kind(), Kind::Half);
        }
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16, "leaving the inner region restores the outer dtype");
        {
            let _fp32 = Autocast::new(Device::Cpu, None);
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16, "fp32 leaves the state as it is");
        }
    }
    assert!(!Autocast::enabled(Device::Cpu));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    // The state is per thread: another thread never saw the region.
    let _g = Autocast::new(Device::Cpu, Some(LowPrecision::Bf16));
    let other = std::thread::spawn(|| {
        let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
        a.matmul(&a).kind()
    });
    assert_eq!(other.join().unwrap(), Kind::Float);
}

/// fx's AdamW before the shim, per tensor (torch.optim.AdamW's single-tensor algorithm).
fn reference_adamw(p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor, t: i32, lr: f64, wd: f64) {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    tch::no_grad(|| {
        let _ = m.lerp_(g, 1.0 - b1);
        let _ = v.g_mul_scalar_(b2).addcmul_(g, &g.g_mul_scalar(1.0 - b2));
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let _ = p.g_mul_scalar_(1.0 - lr * wd);
        let denom = (v.sqrt() / bc2.sqrt()).g_add_scalar(eps);
        let _ = p.addcdiv_(&(m.g_mul_scalar(-lr / bc1)), &denom);
    });
}

#[test]
fn fused_adamw_equals_the_per_tensor_loop() {
    tch::manual_seed(3);
    let shapes: [&[i64]; 3] = [&[17, 5], &[64], &[3, 4, 5]];
    let params: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
    let mut ref_p: Vec<Tensor> = params.iter().map(|p| p.copy()).collect();
    let mut ref_m: Vec<Tensor> = params.iter().map(|p| p.zeros_like()).collect();
    let mut ref_v: Vec<Tensor> = params.iter().map(|p| p.zeros_like()).collect();
    let m: Vec<Tensor> = params.iter().map(|p| p.zeros_like()).collect();
    let v: Vec<Tensor> = params.iter().map(|p| p.zeros_like()).collect();
    let steps: Vec<Tensor> = params.iter().map(|_| Tensor::zeros([], (Kind::Float, Device::Cpu))).collect();
    let (lr, wd) = (1e-3, 0.05);
    for t in 1..=6 {
        let grads: Vec<Tensor> = params.iter().map(|p| p.randn_like()).collect();
        fused_adamw(
            &refs(&params),
            &refs(&grads),
            &refs(&m),
            &refs(&v),
            &refs(&steps),
            lr,
            (0.9, 0.999),
            wd,
            1e-8,
            None,
        )
        .unwrap();
        for i in 0..params.len() {
            reference_adamw(&mut ref_p[i], &grads[i], &mut ref_m[i], &mut ref_v[i], t, lr, wd);
        }
    }
    for i in 0..params.len() {
        assert!(close(&params[i], &ref_p[i]) < 1e-6, "parameter {i}: {}", close(&params[i], &ref_p[i]));
        assert!(close(&m[i], &ref_m[i]) < 1e-6 && close(&v[i], &ref_v[i]) < 1e-6, "moments {i}");
        assert_eq!(steps[i].double_value(&[]), 6.0, "the kernel counts the steps");
    }
}

#[test]
fn foreach_lerp_equals_the_per_tensor_lerp() {
    let dst: Vec<Tensor> = [[5i64, 3], [7, 1]].iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
    let src: Vec<Tensor> = dst.iter().map(|t| t.randn_like()).collect();
    let expected: Vec<Tensor> = dst.iter().zip(&src).map(|(d, s)| d.lerp(s, 0.001)).collect();
    foreach_lerp(&dst.iter().collect::<Vec<_>>(), &src.iter().collect::<Vec<_>>(), 0.001).unwrap();
    for (d, e) in dst.iter().zip(&expected) {
        assert!(close(d, e) < 1e-6);
    }
}

/// fx reuses an evaluation while the versions of the parameters it read are unchanged, so every
/// way fx changes a parameter must advance the counter: the fused AdamW step, the EMA's foreach
/// lerp, a checkpoint's `copy_` (all under no_grad). Reads and out-of-place ops must not.
/// (BatchNorm's running statistics never advance theirs, in PyTorch 2.11 either: fx compares
/// those buffers by value.)
#[test]
fn the_version_counter_sees_every_in_place_change() {
    let cpu = (Kind::Float, Device::Cpu);
    let p = Tensor::randn([3, 2], cpu).set_requires_grad(true);
    let alias = p.shallow_clone();
    let mut seen = version(&p);
    let mut advanced = |what: &str, t: &Tensor| {
        let now = version(t);
        assert!(now > seen, "{what} did not advance the version counter");
        seen = now;
    };
    tch::no_grad(|| {
        let (g, m, v, s) = (p.randn_like(), p.zeros_like(), p.zeros_like(), Tensor::zeros([], cpu));
        fused_adamw(&[&p], &[&g], &[&m], &[&v], &[&s], 0.1, (0.9, 0.999), 0.0, 1e-8, None).unwrap();
        advanced("fused AdamW", &p);
        foreach_lerp(&[&p], &[&p.randn_like()], 0.2).unwrap();
        advanced("foreach lerp", &p);
        alias.shallow_clone().copy_(&p.randn_like());
        advanced("copy_ through a shallow clone", &p);
    });
    let before = version(&p);
    let _ = (&p * 2.0).sum(Kind::Float);
    let _ = p.detach().to_kind(Kind::Double);
    assert_eq!(version(&p), before, "reading a tensor advanced its version");
}

#[test]
fn the_grad_scaler_skips_a_step_with_an_inf_gradient_and_backs_off() {
    let mut scaler = GradScaler::new(Device::Cpu);
    let p = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let before = p.copy();
    let (m, v, s) = (p.zeros_like(), p.zeros_like(), Tensor::zeros([], (Kind::Float, Device::Cpu)));
    let run = |scaler: &mut GradScaler, g: Tensor| {
        let inf = scaler.unscale(&[&g]).unwrap().shallow_clone();
        fused_adamw(&[&p], &[&g], &[&m], &[&v], &[&s], 0.1, (0.9, 0.999), 0.0, 1e-8, Some(&inf)).unwrap();
        scaler.update().unwrap();
        (g, inf.double_value(&[]))
    };
    let (_, inf) = run(&mut scaler, Tensor::from_slice(&[1.0f32, f32::INFINITY, 0.5, 2.0]));
    assert_eq!(inf, 1.0);
    assert!(p.equal(&before), "the step with an inf gradient changed the parameters");
    assert_eq!(s.double_value(&[]), 0.0, "a skipped step is not counted");
    assert_eq!(scaler.scale.double_value(&[]), 32768.0, "the scale halves on overflow");

    let (g, inf) = run(&mut scaler, Tensor::from_slice(&[32768.0f32, -65536.0, 16384.0, 0.0]));
    assert_eq!(inf, 0.0);
    assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0, -2.0, 0.5, 0.0], "gradients divided by the scale");
    assert!(!p.equal(&before), "a clean step updates");
    assert_eq!(s.double_value(&[]), 1.0);
    assert_eq!(scaler.scale.double_value(&[]), 32768.0, "no growth before the interval");
    let scaled = scaler.scale_loss(&Tensor::from(2.0f32));
    assert_eq!(scaled.double_value(&[]), 65536.0);
}
