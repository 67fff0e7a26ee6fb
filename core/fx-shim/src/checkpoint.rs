//! Activation checkpointing: [`checkpoint`] runs a segment of the model (a Swin block, a DINO
//! encoder layer) without keeping its activations and recomputes them in the backward — the
//! memory of one segment's activations instead of all of them, for one more forward of each
//! segment. See `src/checkpoint.cpp` for what the backward replays.

use super::{check, ptr, CTensor};
use anyhow::Result;
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tch::Tensor;

type Run = unsafe extern "C" fn(data: *mut c_void, inputs: *mut CTensor, n: usize, sink: *mut c_void) -> c_int;
type DropFn = unsafe extern "C" fn(data: *mut c_void);

extern "C" {
    fn fx_checkpoint(
        run: Run,
        drop: DropFn,
        data: *mut c_void,
        inputs: *const CTensor,
        n_inputs: usize,
        params: *const CTensor,
        n_params: usize,
        out: *mut CTensor,
        max_out: usize,
        n_out: *mut usize,
    ) -> *mut c_char;
    fn fx_segment_output(sink: *mut c_void, t: CTensor);
    fn fx_segment_error(sink: *mut c_void, message: *const c_char);
}

/// The most outputs a segment may return.
const MAX_OUTPUTS: usize = 16;

/// `segment(inputs)` with its activations recomputed in the backward instead of kept, as
/// `torch.utils.checkpoint`: gradients flow to `inputs` and to `params`, which must be every
/// tensor requiring grad that the segment reads besides its inputs (a parameter left out gets
/// no gradient). The recomputation replays the forward's random-generator state (drop path
/// draws the same masks) and autocast state, so the gradients equal those of the plain call.
///
/// The segment is called on libtorch's autograd thread for CUDA tensors, hence `Send`; it lives
/// as long as the graph that may recompute it, hence `'static` (own or share what it reads).
/// Where nothing requires grad (evaluation, a frozen segment) it runs once, as a plain call.
pub fn checkpoint<F>(inputs: &[&Tensor], params: &[Tensor], segment: F) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Vec<Tensor> + Send + 'static,
{
    let data = Box::into_raw(Box::new(segment)) as *mut c_void;
    let xs: Vec<CTensor> = inputs.iter().map(|t| ptr(t)).collect();
    let ps: Vec<CTensor> = params.iter().map(ptr).collect();
    let mut out = [std::ptr::null_mut::<c_void>(); MAX_OUTPUTS];
    let mut n_out = 0usize;
    // SAFETY: the shim takes ownership of `data` (freed through drop_segment::<F>) and borrows
    // the tensors for the call; on success out[..n_out] are new at::Tensor* passed to tch.
    let err = unsafe {
        fx_checkpoint(
            run_segment::<F>,
            drop_segment::<F>,
            data,
            xs.as_ptr(),
            xs.len(),
            ps.as_ptr(),
            ps.len(),
            out.as_mut_ptr(),
            MAX_OUTPUTS,
            &mut n_out,
        )
    };
    check(err, "checkpointed segment")?;
    Ok(out[..n_out].iter().map(|&t| unsafe { Tensor::from_ptr(t as *mut _) }).collect())
}

unsafe extern "C" fn run_segment<F: Fn(&[Tensor]) -> Vec<Tensor>>(
    data: *mut c_void,
    inputs: *mut CTensor,
    n: usize,
    sink: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the Box<F> checkpoint() handed over; `inputs` are n new at::Tensor*
    // that are ours to free (tch's Tensor does on drop).
    let segment = &*(data as *const F);
    let xs: Vec<Tensor> = (0..n).map(|i| Tensor::from_ptr(*inputs.add(i) as *mut _)).collect();
    // A panic must not unwind into C++: it becomes the error the backward (or forward) returns.
    match catch_unwind(AssertUnwindSafe(|| segment(&xs))) {
        Ok(outputs) if outputs.len() <= MAX_OUTPUTS => {
            for t in &outputs {
                fx_segment_output(sink, ptr(t));
            }
            0
        }
        Ok(outputs) => {
            let m = CString::new(format!("{} outputs, at most {MAX_OUTPUTS}", outputs.len())).unwrap_or_default();
            fx_segment_error(sink, m.as_ptr());
            1
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            let m = CString::new(what.replace('\0', " ")).unwrap_or_default();
            fx_segment_error(sink, m.as_ptr());
            1
        }
    }
}

unsafe extern "C" fn drop_segment<F>(data: *mut c_void) {
    // SAFETY: called once, by the shim, when the last autograd node holding the segment goes.
    drop(Box::from_raw(data as *mut F));
}
