// The libtorch calls tch 0.24 does not bind, as a C ABI over at::Tensor pointers (what tch's
// Tensor::as_ptr hands out). Every call that can throw returns NULL on success or a malloc'd
// message (freed with fx_shim_free), so no C++ exception crosses into Rust.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <cstring>
#include <vector>

typedef at::Tensor* tensor;

#include "fx_try.h"

static c10::DeviceType device_type(int device) { return device == 1 ? at::kCUDA : at::kCPU; }

// 0 = bfloat16, 1 = float16 (fx's two lower precisions).
static at::ScalarType lower_precision(int dtype) { return dtype == 1 ? at::kHalf : at::kBFloat16; }

static std::vector<at::Tensor> list(tensor* ts, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) out.push_back(*ts[i]);
  return out;
}

extern "C" {

void fx_shim_free(char* s) { free(s); }

bool fx_autocast_enabled(int device) { return at::autocast::is_autocast_enabled(device_type(device)); }

// 0 = bfloat16, 1 = float16, 2 = anything else.
int fx_autocast_dtype(int device) {
  auto t = at::autocast::get_autocast_dtype(device_type(device));
  return t == at::kBFloat16 ? 0 : t == at::kHalf ? 1 : 2;
}

void fx_autocast_set(int device, bool enabled, int dtype) {
  at::autocast::set_autocast_enabled(device_type(device), enabled);
  if (dtype == 0 || dtype == 1) at::autocast::set_autocast_dtype(device_type(device), lower_precision(dtype));
}

int fx_autocast_increment_nesting() { return at::autocast::increment_nesting(); }

// Leaving the outermost autocast region drops the casted-weight cache, as torch.autocast does.
void fx_autocast_decrement_nesting() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

// torch.optim.AdamW(fused=True)'s kernel: one call updates every tensor of a parameter group.
// `steps` are float scalars on the parameters' device, advanced here by one per step taken; `found_inf`
// (may be NULL) makes the kernel skip the update when it holds a non-zero value.
char* fx_fused_adamw(tensor* params, tensor* grads, tensor* exp_avgs, tensor* exp_avg_sqs, tensor* steps, size_t n,
                     double lr, double beta1, double beta2, double weight_decay, double eps, tensor found_inf) {
  FX_TRY({
    std::optional<at::Tensor> inf;
    if (found_inf) inf = *found_inf;
    auto counts = list(steps, n);
    // The kernel reads the step counts but does not advance them: torch.optim.AdamW adds one
    // before the call and takes a skipped (found-inf) step back after it. So does fx.
    at::_foreach_add_(counts, at::Scalar(1.0));
    at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n), {}, counts, lr,
                      beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, std::nullopt, inf);
    if (inf) at::_foreach_sub_(counts, std::vector<at::Tensor>(n, *inf));
    // Unlike the foreach ops, the fused kernel does not advance the parameters' version counters
    // (nor does it in PyTorch 2.11); fx reads them to tell unchanged weights, so advance them here.
    for (size_t i = 0; i < n; i++) params[i]->unsafeGetTensorImpl()->bump_version();
  })
}

// self[i] += weight * (other[i] - self[i]) for every i, in one call (the EMA teacher update).
char* fx_foreach_lerp(tensor* self, tensor* other, size_t n, double weight) {
  FX_TRY({ at::_foreach_lerp_(list(self, n), list(other, n), at::Scalar(weight)); })
}

// The tensor's version counter (`Tensor._version`): in-place ops through the dispatcher's autograd
// layer (copy_, lerp_, ...) advance it, with or without grad mode; BatchNorm's running statistics,
// c10d collectives and the fused AdamW kernel do not. fx keys evaluation results on it. Cannot throw.
int64_t fx_tensor_version(tensor t) { return t->_version(); }

// GradScaler's unscale: grads *= inv_scale, found_inf = 1 if any gradient is inf or NaN.
char* fx_amp_unscale(tensor* grads, size_t n, tensor found_inf, tensor inv_scale) {
  FX_TRY({ at::_amp_foreach_non_finite_check_and_unscale_(list(grads, n), *found_inf, *inv_scale); })
}

// GradScaler's update: back off on inf, grow after `interval` clean steps; all on the device.
char* fx_amp_update_scale(tensor scale, tensor growth_tracker, tensor found_inf, double growth, double backoff,
                          int64_t interval) {
  FX_TRY({ at::_amp_update_scale_(*scale, *growth_tracker, *found_inf, growth, backoff, interval); })
}

}  // extern "C"
