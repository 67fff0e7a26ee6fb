// Activation checkpointing (torch.utils.checkpoint) as a C++ autograd Function, since tch binds
// no custom autograd functions. The forward runs a Rust segment without building a graph and
// keeps only the segment's inputs; the backward runs the segment again with the graph on, under
// the random-generator state and autocast state the forward saw (so dropout and drop path draw
// the same masks and the same ops run in bf16), and differentiates it.
//
// The segment's parameters are inputs of the Function, so their gradients leave its backward
// like any other node's: torch.autograd.grad(loss, params), which fx uses instead of .grad,
// works (PyTorch's reentrant checkpoint, which accumulates into .grad, would not).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

typedef at::Tensor* tensor;

#include "fx_try.h"

// The Rust side: run the segment on `inputs` (n new at::Tensor* the callee owns), handing each
// output to fx_segment_output(sink, ...); 0 on success, else a message went to fx_segment_error.
typedef int (*fx_segment_run)(void* data, tensor* inputs, size_t n, void* sink);
typedef void (*fx_segment_drop)(void* data);

namespace {

struct Sink {
  std::vector<at::Tensor> outputs;
  std::string error;
  bool failed = false;
};

// How deep this thread is inside a recomputation's own backward (see fx_checkpoint_recomputing).
thread_local int recomputing = 0;

// One checkpointed call: the Rust closure (dropped with the last autograd node that holds it)
// and the state its recomputation must replay.
struct Segment : torch::CustomClassHolder {
  fx_segment_run run;
  fx_segment_drop drop;
  void* data;
  size_t n_inputs;
  at::Tensor cpu_rng;
  std::optional<at::Device> cuda;
  at::Tensor cuda_rng;
  bool autocast[2] = {false, false};
  at::ScalarType autocast_dtype[2] = {at::kBFloat16, at::kBFloat16};

  Segment(fx_segment_run run, fx_segment_drop drop, void* data, size_t n_inputs)
      : run(run), drop(drop), data(data), n_inputs(n_inputs) {}
  ~Segment() override { drop(data); }

  std::vector<at::Tensor> call(const std::vector<at::Tensor>& inputs) const {
    std::vector<tensor> owned;
    for (const auto& x : inputs) owned.push_back(new at::Tensor(x));
    Sink sink;
    if (run(data, owned.data(), owned.size(), &sink) != 0 || sink.failed) throw std::runtime_error(sink.error);
    return std::move(sink.outputs);
  }

  void save_state(const std::vector<at::Tensor>& inputs) {
    auto cpu = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(cpu.mutex());
      cpu_rng = cpu.get_state();
    }
    for (const auto& x : inputs)
      if (x.defined() && x.is_cuda()) {
        cuda = x.device();
        auto g = at::globalContext().defaultGenerator(*cuda);
        std::lock_guard<std::mutex> lock(g.mutex());
        cuda_rng = g.get_state();
        break;
      }
    const c10::DeviceType types[2] = {at::kCPU, at::kCUDA};
    for (int i = 0; i < 2; i++) {
      autocast[i] = at::autocast::is_autocast_enabled(types[i]);
      autocast_dtype[i] = at::autocast::get_autocast_dtype(types[i]);
    }
  }
};

// For the recomputation only: the forward's generator states and autocast state, the current
// ones restored on the way out (also when the segment throws).
struct Replay {
  const Segment& s;
  at::Tensor cpu_now, cuda_now;
  bool autocast_now[2];
  at::ScalarType dtype_now[2];
  static constexpr c10::DeviceType types[2] = {at::kCPU, at::kCUDA};

  explicit Replay(const Segment& s) : s(s) {
    // The CPU state last: a throw on the CUDA side then leaves both as they were.
    if (s.cuda) {
      auto g = at::globalContext().defaultGenerator(*s.cuda);
      std::lock_guard<std::mutex> lock(g.mutex());
      cuda_now = g.get_state();
      g.set_state(s.cuda_rng);
    }
    auto cpu = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(cpu.mutex());
      cpu_now = cpu.get_state();
      cpu.set_state(s.cpu_rng);
    }
    for (int i = 0; i < 2; i++) {
      autocast_now[i] = at::autocast::is_autocast_enabled(types[i]);
      dtype_now[i] = at::autocast::get_autocast_dtype(types[i]);
      at::autocast::set_autocast_enabled(types[i], s.autocast[i]);
      at::autocast::set_autocast_dtype(types[i], s.autocast_dtype[i]);
    }
    at::autocast::increment_nesting();
  }
  ~Replay() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    for (int i = 0; i < 2; i++) {
      at::autocast::set_autocast_enabled(types[i], autocast_now[i]);
      at::autocast::set_autocast_dtype(types[i], dtype_now[i]);
    }
    auto cpu = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(cpu.mutex());
      cpu.set_state(cpu_now);
    }
    if (s.cuda) {
      auto g = at::globalContext().defaultGenerator(*s.cuda);
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_state(cuda_now);
    }
  }
};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Checkpoint : torch::autograd::Function<Checkpoint> {
  // `all`: the segment's inputs, then its parameters.
  static variable_list forward(AutogradContext* ctx, at::TensorList all, c10::intrusive_ptr<Segment> segment) {
    std::vector<at::Tensor> inputs(all.begin(), all.begin() + segment->n_inputs);
    segment->save_state(inputs);
    auto outputs = segment->call(inputs);
    ctx->save_for_backward(all.vec());
    ctx->saved_data["segment"] = at::IValue::make_capsule(segment);
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto segment = c10::static_intrusive_pointer_cast<Segment>(ctx->saved_data["segment"].toCapsule());
    auto all = ctx->get_saved_variables();
    size_t n = segment->n_inputs;
    std::vector<at::Tensor> inputs;
    for (size_t i = 0; i < n; i++) {
      auto x = all[i].detach();
      inputs.push_back(ctx->needs_input_grad(i) ? x.requires_grad_(true) : x);
    }
    std::vector<at::Tensor> outputs;
    {
      Replay replay(*segment);
      at::AutoGradMode grad(true);
      outputs = segment->call(inputs);
    }
    // Differentiate the outputs that have a gradient w.r.t. what the outer backward asks for.
    std::vector<at::Tensor> roots, seeds, wrt;
    for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); i++)
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        seeds.push_back(grad_outputs[i]);
      }
    std::vector<size_t> asked;
    for (size_t i = 0; i < all.size(); i++)
      if (ctx->needs_input_grad(i)) {
        asked.push_back(i);
        wrt.push_back(i < n ? inputs[i] : all[i]);
      }
    variable_list grads(all.size() + 1);  // + the segment, which has none
    if (roots.empty() || wrt.empty()) return grads;
    struct Depth {
      Depth() { recomputing++; }
      ~Depth() { recomputing--; }
    } depth;
    auto got = torch::autograd::grad(roots, wrt, seeds, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
    for (size_t k = 0; k < asked.size(); k++) grads[asked[k]] = got[k];
    return grads;
  }
};

}  // namespace

extern "C" {

// Called from Rust frames: nothing may throw out of these two.
void fx_segment_output(void* sink, tensor t) {
  auto s = static_cast<Sink*>(sink);
  try {
    s->outputs.push_back(*t);
  } catch (...) {
    s->failed = true;
    s->error = "cannot keep a segment's output";
  }
}

void fx_segment_error(void* sink, const char* message) {
  auto s = static_cast<Sink*>(sink);
  s->failed = true;
  try {
    s->error = message;
  } catch (...) {
  }
}

// Whether this thread is inside a checkpointed segment's own backward: hooks on parameters
// (the data-parallel gradient exchange) fire there with the segment's share of a gradient, and
// again, with the whole of it, when the node hands it on; they must count the latter only.
bool fx_checkpoint_recomputing() { return recomputing > 0; }

// Runs the segment `run(data, ...)` on `inputs` as one checkpointed node whose gradients flow to
// `inputs` and `params`. The shim owns `data` from here on, even on error: `drop(data)` frees it
// when the last node holding it goes. out: *n_out new at::Tensor* (at most max_out).
char* fx_checkpoint(fx_segment_run run, fx_segment_drop drop, void* data, tensor* inputs, size_t n_inputs,
                    tensor* params, size_t n_params, tensor* out, size_t max_out, size_t* n_out) {
  c10::intrusive_ptr<Segment> segment;
  try {
    segment = c10::make_intrusive<Segment>(run, drop, data, n_inputs);
  } catch (...) {
    drop(data);
    return strdup("cannot allocate a checkpointed segment");
  }
  FX_TRY({
    std::vector<at::Tensor> all;
    for (size_t i = 0; i < n_inputs; i++) all.push_back(*inputs[i]);
    for (size_t i = 0; i < n_params; i++) all.push_back(*params[i]);
    auto outputs = Checkpoint::apply(at::TensorList(all), segment);
    if (outputs.size() > max_out) throw std::runtime_error("the segment returned more outputs than expected");
    for (size_t i = 0; i < outputs.size(); i++) out[i] = new at::Tensor(outputs[i]);
    *n_out = outputs.size();
  })
}

}  // extern "C"
