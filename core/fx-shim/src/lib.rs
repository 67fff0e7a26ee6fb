//! The few libtorch calls tch 0.24 does not bind, compiled from `src/shim.cpp` against the torch
//! wheel's own headers (see `../shared/TOOLCHAIN.md`):
//!
//! - [`Autocast`]: mixed precision on any device (tch's `autocast` is CUDA-only fp16), the same
//!   dispatcher state `torch.autocast(device_type, dtype)` sets;
//! - [`fused_adamw`]: `torch.optim.AdamW(fused=True)`'s kernel, one call per parameter group
//!   instead of ~7 kernels per tensor;
//! - [`foreach_lerp`]: the EMA teacher update in one call for all tensors;
//! - [`version`]: a tensor's version counter (`Tensor._version`), which tells whether its data
//!   changed in place;
//! - [`GradScaler`]: `torch.amp.GradScaler`'s device-side unscale and scale update, for fp16;
//! - [`checkpoint`]: activation checkpointing (`torch.utils.checkpoint`), which needs a custom
//!   autograd function;
//! - [`c10d`]: the TCP store and the Gloo process group of `torch.distributed`, for data-parallel
//!   training.
//!
//! Tensors cross as `at::Tensor*` (tch's `Tensor::as_ptr`); no C++ exception crosses: a failing
//! call returns its message as an error.

pub mod c10d;
mod checkpoint;

pub use checkpoint::checkpoint;

use anyhow::{bail, Result};
use std::ffi::{c_char, c_void, CStr};
use std::marker::PhantomData;
use tch::{Device, Kind, Tensor};

type CTensor = *mut c_void;

extern "C" {
    fn fx_shim_free(s: *mut c_char);
    fn fx_autocast_enabled(device: i32) -> bool;
    fn fx_autocast_dtype(device: i32) -> i32;
    fn fx_autocast_set(device: i32, enabled: bool, dtype: i32);
    fn fx_autocast_increment_nesting() -> i32;
    fn fx_autocast_decrement_nesting();
    fn fx_fused_adamw(
        params: *const CTensor,
        grads: *const CTensor,
        exp_avgs: *const CTensor,
        exp_avg_sqs: *const CTensor,
        steps: *const CTensor,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        found_inf: CTensor,
    ) -> *mut c_char;
    fn fx_tensor_version(t: CTensor) -> i64;
    fn fx_foreach_lerp(dst: *const CTensor, src: *const CTensor, n: usize, weight: f64) -> *mut c_char;
    fn fx_amp_unscale(grads: *const CTensor, n: usize, found_inf: CTensor, inv_scale: CTensor) -> *mut c_char;
    fn fx_amp_update_scale(
        scale: CTensor,
        growth_tracker: CTensor,
        found_inf: CTensor,
        growth: f64,
        backoff: f64,
        interval: i64,
    ) -> *mut c_char;
}

fn ptr(t: &Tensor) -> CTensor {
    t.as_ptr() as CTensor
}

fn ptrs(ts: &[&Tensor]) -> Vec<CTensor> {
    ts.iter().map(|t| ptr(t)).collect()
}

/// Turns the shim's error convention (NULL, or a malloc'd message) into a Result.
fn check(err: *mut c_char, what: &str) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, ours to free once.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { fx_shim_free(err) };
    bail!("{what}: {msg}")
}

/// The lower precision of a mixed-precision region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowPrecision {
    Bf16,
    Fp16,
}

impl LowPrecision {
    pub fn kind(self) -> Kind {
        match self {
            LowPrecision::Bf16 => Kind::BFloat16,
            LowPrecision::Fp16 => Kind::Half,
        }
    }
    fn code(self) -> i32 {
        match self {
            LowPrecision::Bf16 => 0,
            LowPrecision::Fp16 => 1,
        }
    }
}

fn device_code(device: Device) -> Option<i32> {
    match device {
        Device::Cpu => Some(0),
        Device::Cuda(_) => Some(1),
        _ => None,
    }
}

/// A mixed-precision region, like `with torch.autocast(device_type, dtype):` — eligible ops
/// (matmul, linear, convolution, ...) run in `dtype`, precision-sensitive ones (softmax, norms,
/// losses) in fp32, by the dispatcher's own per-op lists. The state is per thread, so the guard
/// is neither Send nor Sync; dropping it restores the previous state (regions nest).
pub struct Autocast {
    device: Option<i32>,
    previous: (bool, i32),
    _per_thread: PhantomData<*const ()>,
}

impl Autocast {
    /// Enters the region; `None` (fp32) or a device without autocast leaves everything as it is.
    pub fn new(device: Device, dtype: Option<LowPrecision>) -> Autocast {
        let code = dtype.and_then(|_| device_code(device));
        let mut previous = (false, 0);
        if let (Some(d), Some(dtype)) = (code, dtype) {
            // SAFETY: plain calls on this thread's dispatcher state.
            unsafe {
                previous = (fx_autocast_enabled(d), fx_autocast_dtype(d));
                fx_autocast_set(d, true, dtype.code());
                fx_autocast_increment_nesting();
            }
        }
        Autocast { device: code, previous, _per_thread: PhantomData }
    }

    /// Whether autocast is on for `device` on this thread.
    pub fn enabled(device: Device) -> bool {
        device_code(device).is_some_and(|d| unsafe { fx_autocast_enabled(d) })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some(d) = self.device {
            // SAFETY: as in `new`, on the same thread (the guard is not Send).
            unsafe {
                fx_autocast_decrement_nesting();
                fx_autocast_set(d, self.previous.0, self.previous.1);
            }
        }
    }
}

/// One fused AdamW update (decoupled weight decay, no amsgrad) of a parameter group: all tensors
/// on one device and of one dtype; `steps` are float scalars on that device, advanced by one per
/// step taken. With `found_inf` holding a non-zero value the kernel leaves everything unchanged.
/// The parameters' [`version`] counters advance either way (PyTorch's own call leaves them).
#[allow(clippy::too_many_arguments)]
pub fn fused_adamw(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    steps: &[&Tensor],
    lr: f64,
    (beta1, beta2): (f64, f64),
    weight_decay: f64,
    eps: f64,
    found_inf: Option<&Tensor>,
) -> Result<()> {
    let n = params.len();
    assert!(
        grads.len() == n && exp_avgs.len() == n && exp_avg_sqs.len() == n && steps.len() == n,
        "fused_adamw: one gradient, two moments and one step per parameter"
    );
    if n == 0 {
        return Ok(());
    }
    let (p, g, m, v, s) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs), ptrs(steps));
    let inf = found_inf.map(ptr).unwrap_or(std::ptr::null_mut());
    // SAFETY: every pointer is a live tch tensor borrowed for the call.
    let err = unsafe {
        fx_fused_adamw(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n,
            lr,
            beta1,
            beta2,
            weight_decay,
            eps,
            inf,
        )
    };
    check(err, "fused AdamW")
}

/// `dst[i] += weight · (src[i] − dst[i])` for every i in one call (`torch._foreach_lerp_`).
pub fn foreach_lerp(dst: &[&Tensor], src: &[&Tensor], weight: f64) -> Result<()> {
    assert_eq!(dst.len(), src.len(), "foreach_lerp: one source per destination");
    if dst.is_empty() {
        return Ok(());
    }
    let (d, s) = (ptrs(dst), ptrs(src));
    // SAFETY: live tensors borrowed for the call.
    check(unsafe { fx_foreach_lerp(d.as_ptr(), s.as_ptr(), d.len(), weight) }, "foreach lerp")
}

/// The version counter of `t` (`Tensor._version` in Python): libtorch advances it on in-place
/// changes made through the dispatcher's autograd layer (an optimiser step, `copy_`, the EMA's
/// lerp), in grad mode or not, and shares it with every shallow clone. Not on every write: the
/// fused AdamW kernel leaves it ([`fused_adamw`] advances it itself), BatchNorm's running
/// statistics and c10d collectives (broadcast, all-reduce) write without advancing it. So two
/// equal readings mean unchanged data only for tensors written the first way; the converse never
/// holds (a skipped fp16 step still counts).
pub fn version(t: &Tensor) -> i64 {
    // SAFETY: a live tensor borrowed for the call; the C function cannot throw.
    unsafe { fx_tensor_version(ptr(t)) }
}

/// `torch.amp.GradScaler` for fp16: the loss is multiplied by `scale` before backward, the
/// gradients divided by it after, a step with an inf/NaN gradient is skipped and the scale
/// halved, and after `interval` clean steps it doubles. Everything stays on the device: nothing
/// here reads a value back to the host.
pub struct GradScaler {
    pub scale: Tensor,
    pub growth_tracker: Tensor,
    found_inf: Tensor,
    pub growth: f64,
    pub backoff: f64,
    pub interval: i64,
}

impl GradScaler {
    /// PyTorch's defaults: initial scale 2¹⁶, ×2 every 2000 clean steps, ×0.5 on overflow.
    pub fn new(device: Device) -> GradScaler {
        GradScaler {
            scale: Tensor::full([], 65536.0, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([], (Kind::Int, device)),
            found_inf: Tensor::zeros([], (Kind::Float, device)),
            growth: 2.0,
            backoff: 0.5,
            interval: 2000,
        }
    }

    /// The loss to differentiate: `loss · scale`.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides the gradients by the scale in place and records whether any is inf/NaN; returns
    /// the found-inf flag to hand to [`fused_adamw`] (which then skips the step).
    pub fn unscale(&mut self, grads: &[&Tensor]) -> Result<&Tensor> {
        let _ = self.found_inf.zero_();
        let inv = self.scale.reciprocal();
        let g = ptrs(grads);
        // SAFETY: live tensors borrowed for the call.
        check(unsafe { fx_amp_unscale(g.as_ptr(), g.len(), ptr(&self.found_inf), ptr(&inv)) }, "gradient unscale")?;
        Ok(&self.found_inf)
    }

    /// Updates the scale from this step's found-inf flag.
    pub fn update(&mut self) -> Result<()> {
        // SAFETY: live tensors borrowed for the call.
        let err = unsafe {
            fx_amp_update_scale(
                ptr(&self.scale),
                ptr(&self.growth_tracker),
                ptr(&self.found_inf),
                self.growth,
                self.backoff,
                self.interval,
            )
        };
        check(err, "gradient scale update")
    }
}
