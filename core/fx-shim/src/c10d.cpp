// PyTorch's c10d for fx's data-parallel training: the TCP store rendezvous and the Gloo process
// group, over libtorch's exported classes (torch.distributed uses the same ones). Same conventions
// as shim.cpp: NULL or a malloc'd error message; handles are heap-allocated intrusive pointers.
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <unordered_set>
#include <vector>

typedef at::Tensor* tensor;
typedef c10::intrusive_ptr<c10d::Store> Store;
typedef c10::intrusive_ptr<c10d::Backend> Group;

#include "fx_try.h"

// DDP's default bucket size: one collective per 25 MB of gradients instead of one per tensor.
static const int64_t kBucketBytes = 25 * 1024 * 1024;

// Runs `collective` on flat buckets of `ts` (same dtype and device) and copies the results back.
// All buckets are started before the first wait, so Gloo's threads work on them together.
template <typename F>
static void bucketed(tensor* ts, size_t n, std::chrono::milliseconds timeout, F collective) {
  std::vector<std::pair<size_t, size_t>> spans;
  size_t lo = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    bytes += ts[i]->numel() * ts[i]->element_size();
    if (bytes >= kBucketBytes || i + 1 == n) {
      spans.emplace_back(lo, i + 1);
      lo = i + 1;
      bytes = 0;
    }
  }
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto [a, b] : spans) {
    std::vector<at::Tensor> parts;
    for (size_t i = a; i < b; i++) parts.push_back(ts[i]->detach().reshape({-1}));
    flats.push_back(at::cat(parts));
    std::vector<at::Tensor> one{flats.back()};
    works.push_back(collective(one));
  }
  for (auto& w : works) w->wait(timeout);
  for (size_t k = 0; k < spans.size(); k++) {
    int64_t off = 0;
    for (size_t i = spans[k].first; i < spans[k].second; i++) {
      int64_t m = ts[i]->numel();
      ts[i]->detach().copy_(flats[k].narrow(0, off, m).view(ts[i]->sizes()));
      off += m;
    }
  }
}

// y = the sum of x over the ranks, differentiable: the backward sums the gradient over the ranks
// (torch.distributed.nn.functional.all_reduce). Each rank's loss is its share of the job's loss,
// so the gradient reaching rank r's x is the sum of every rank's dL/dy: what one process would
// get. SyncBatchNorm's statistics go through it, in the forward and again in the backward; every
// rank runs the same graph, so the backward's collectives come in the same order on every rank.
struct SumOverRanks : public torch::autograd::Function<SumOverRanks> {
  static at::Tensor reduce(at::Tensor t, int64_t group, int64_t timeout_ms) {
    auto& pg = *reinterpret_cast<Group*>(group);
    std::vector<at::Tensor> one{t};
    pg->allreduce(one, c10d::AllreduceOptions())->wait(std::chrono::milliseconds(timeout_ms));
    return t;
  }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t group,
                            int64_t timeout_ms) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["timeout_ms"] = timeout_ms;
    return reduce(x.clone().contiguous(), group, timeout_ms);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    // An unused output's gradient arrives as zeros (materialised), so every rank still takes part.
    auto g = reduce(grads[0].clone().contiguous(), ctx->saved_data["group"].toInt(),
                    ctx->saved_data["timeout_ms"].toInt());
    return {g, at::Tensor(), at::Tensor()};
  }
};

extern "C" {

// checkpoint.cpp: whether this thread is inside a checkpointed segment's own backward.
bool fx_checkpoint_recomputing();

// The rendezvous: rank 0 serves the store at host:port, every rank (rank 0 too) connects to it.
// Waits up to timeout_ms for all `world` ranks.
char* fx_store_tcp(const char* host, int port, bool server, int world, int64_t timeout_ms, void** out) {
  FX_TRY({
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(port);
    o.isServer = server;
    o.numWorkers = static_cast<size_t>(world);
    o.waitWorkers = true;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    *out = new Store(c10::make_intrusive<c10d::TCPStore>(std::string(host), o));
  })
}

void fx_store_free(void* s) { delete static_cast<Store*>(s); }

char* fx_store_set(void* s, const char* key, const uint8_t* data, size_t n) {
  FX_TRY({ (*static_cast<Store*>(s))->set(std::string(key), std::vector<uint8_t>(data, data + n)); })
}

// Blocks until the key exists (up to the store's timeout). *data is malloc'd, freed with fx_shim_free.
char* fx_store_get(void* s, const char* key, uint8_t** data, size_t* n) {
  FX_TRY({
    auto v = (*static_cast<Store*>(s))->get(std::string(key));
    *n = v.size();
    *data = static_cast<uint8_t*>(malloc(v.size() + 1));
    if (!v.empty()) memcpy(*data, v.data(), v.size());
  })
}

// How long later store calls wait (a diagnosis after a failure should not wait 30 minutes).
char* fx_store_set_timeout(void* s, int64_t timeout_ms) {
  FX_TRY({ (*static_cast<Store*>(s))->setTimeout(std::chrono::milliseconds(timeout_ms)); })
}

// *found = whether the key exists now (no waiting).
char* fx_store_check(void* s, const char* key, bool* found) {
  FX_TRY({ *found = (*static_cast<Store*>(s))->check({std::string(key)}); })
}

// A Gloo process group over the store, its transport bound to `hostname` (this node's address as
// the other ranks reach it). Every collective fails after timeout_ms instead of hanging.
char* fx_pg_gloo(void* store, int rank, int world, int64_t timeout_ms, const char* hostname, void** out) {
  FX_TRY({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // As torch.distributed: an interface (GLOO_SOCKET_IFNAME, passed as "if:NAME"), a host name,
    // or (empty) this machine's name resolved, falling back to loopback.
    std::string h(hostname);
    if (h.rfind("if:", 0) == 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(h.substr(3)));
    else if (h.empty())
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(h));
    // Each group's keys under its own prefix, as torch.distributed does: a job may hold a Gloo
    // and an NCCL group on one store.
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", *static_cast<Store*>(store));
    Group g = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, opts);
    *out = new Group(g);
  })
}

void fx_pg_free(void* g) { delete static_cast<Group*>(g); }

// Sums each tensor over the ranks, in place.
char* fx_pg_allreduce_sum(void* g, tensor* ts, size_t n, int64_t timeout_ms) {
  FX_TRY({
    auto& pg = *static_cast<Group*>(g);
    bucketed(ts, n, std::chrono::milliseconds(timeout_ms),
             [&](std::vector<at::Tensor>& one) { return pg->allreduce(one, c10d::AllreduceOptions()); });
  })
}

// Every rank's tensors become rank `root`'s.
char* fx_pg_broadcast(void* g, tensor* ts, size_t n, int root, int64_t timeout_ms) {
  FX_TRY({
    auto& pg = *static_cast<Group*>(g);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    bucketed(ts, n, std::chrono::milliseconds(timeout_ms),
             [&](std::vector<at::Tensor>& one) { return pg->broadcast(one, o); });
  })
}

// out[r] = rank r's `in` (same shape on every rank).
char* fx_pg_allgather(void* g, tensor in, tensor* out, size_t world, int64_t timeout_ms) {
  FX_TRY({
    auto& pg = *static_cast<Group*>(g);
    std::vector<at::Tensor> ins{*in};
    std::vector<std::vector<at::Tensor>> outs(1);
    for (size_t r = 0; r < world; r++) outs[0].push_back(*out[r]);
    pg->allgather(outs, ins, c10d::AllgatherOptions())->wait(std::chrono::milliseconds(timeout_ms));
  })
}

// The gradients of `loss` (NULL: a rank with nothing to back-propagate) w.r.t. `params`, averaged
// over the ranks, exchanged while the backward runs, as DDP's reducer does: the parameters are
// bucketed in reverse order (the order in which the backward produces their gradients), a hook on
// each parameter copies its gradient into its bucket's flat buffer, and a full bucket's all-reduce
// starts at once, on Gloo's or NCCL's own threads, while autograd computes the rest. Buckets start
// strictly in order, so every rank's collectives pair up even where one rank's loss did not reach
// a parameter (its bucket then starts after the backward, that parameter contributing zeros). A
// last all-reduce counts the ranks that produced each gradient: out[i] is undefined only where
// no rank did (the parameter is then not stepped), else the sum divided by `world`, in the
// parameter's dtype. A parameter the loss's graph does not reach (searched before the backward,
// as DDP's find_unused_parameters) counts as ready at once, so that it never holds back the
// buckets after it. *overlapped = the buckets started before the backward returned.
char* fx_pg_grad_average(void* g, tensor loss, tensor* params, size_t n, int64_t world, int64_t bucket_bytes,
                         int64_t timeout_ms, tensor* out, int64_t* overlapped) {
  FX_TRY({
    auto& pg = *static_cast<Group*>(g);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    struct Bucket {
      std::vector<size_t> members;
      int64_t numel = 0;
      size_t pending = 0;
      at::Tensor flat;
    };
    std::vector<Bucket> buckets(1);
    std::vector<size_t> bucket_of(n);
    std::vector<int64_t> offset_of(n);
    for (size_t k = 0; k < n; k++) {
      size_t i = n - 1 - k;
      if (buckets.back().numel * 4 >= bucket_bytes) buckets.emplace_back();
      auto& b = buckets.back();
      bucket_of[i] = buckets.size() - 1;
      offset_of[i] = b.numel;
      b.members.push_back(i);
      b.numel += params[i]->numel();
      b.pending++;
    }
    auto opts = n ? params[0]->options().dtype(at::kFloat) : at::TensorOptions(at::kFloat);
    for (auto& b : buckets) b.flat = at::zeros({b.numel}, opts);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    size_t next = 0;
    auto start = [&](at::Tensor t) {
      std::vector<at::Tensor> one{t};
      works.push_back(pg->allreduce(one, c10d::AllreduceOptions()));
    };
    auto start_ready = [&]() {
      while (next < buckets.size() && buckets[next].pending == 0) start(buckets[next++].flat);
    };
    std::vector<float> produced(n, 0.0f);
    std::vector<char> fired(n, 0);
    *overlapped = 0;
    if (loss != nullptr && n > 0 && loss->requires_grad()) {
      // The autograd nodes the backward will visit.
      std::unordered_set<torch::autograd::Node*> reached;
      std::vector<torch::autograd::Node*> stack;
      if (auto root = torch::autograd::impl::gradient_edge(*loss).function) stack.push_back(root.get());
      while (!stack.empty()) {
        auto node = stack.back();
        stack.pop_back();
        if (!reached.insert(node).second) continue;
        for (const auto& e : node->next_edges())
          if (e.function) stack.push_back(e.function.get());
      }
      for (size_t i = 0; i < n; i++)
        if (!reached.count(torch::autograd::impl::gradient_edge(*params[i]).function.get()))
          buckets[bucket_of[i]].pending--;
      // Hooks live only for this backward: removed on every way out.
      struct Hooks {
        tensor* params;
        std::vector<std::pair<size_t, unsigned>> ids;
        ~Hooks() {
          for (auto [i, id] : ids) params[i]->remove_hook(id);
        }
      } hooks{params, {}};
      for (size_t i = 0; i < n; i++) {
        std::function<void(at::Tensor)> hook = [&, i](at::Tensor grad) {
          // A checkpointed segment (train.activation_checkpointing) computes its parameters'
          // gradients inside its own backward, where this hook fires with the segment's share,
          // then hands them on, where it fires with the whole gradient: only that one counts.
          if (fx_checkpoint_recomputing() || fired[i]) return;
          fired[i] = 1;
          auto& b = buckets[bucket_of[i]];
          if (grad.defined()) {
            b.flat.narrow(0, offset_of[i], params[i]->numel()).copy_(grad.reshape({-1}));
            produced[i] = 1.0f;
          }
          b.pending--;
          start_ready();
        };
        hooks.ids.emplace_back(i, params[i]->register_hook(hook));
      }
      start_ready();
      std::vector<at::Tensor> inputs;
      for (size_t i = 0; i < n; i++) inputs.push_back(*params[i]);
      torch::autograd::grad({*loss}, inputs, {}, false, false, /*allow_unused=*/true);
      *overlapped = static_cast<int64_t>(next);
    }
    // The buckets holding a parameter no gradient reached here, in order; then the counts.
    while (next < buckets.size()) start(buckets[next++].flat);
    auto counts = at::from_blob(produced.data(), {static_cast<int64_t>(n)}, at::kFloat).clone().to(opts.device());
    if (n > 0) start(counts);
    for (auto& w : works) w->wait(timeout);
    auto host_counts = counts.cpu();
    auto c = host_counts.data_ptr<float>();
    for (size_t i = 0; i < n; i++) {
      if (c[i] > 0) {
        auto& b = buckets[bucket_of[i]];
        auto avg = b.flat.narrow(0, offset_of[i], params[i]->numel()).div(static_cast<double>(world));
        out[i] = new at::Tensor(avg.view(params[i]->sizes()).to(params[i]->scalar_type()));
      } else {
        out[i] = new at::Tensor();
      }
    }
  })
}

// *out = a new tensor, the sum of `in` over the ranks, with the autograd history of SumOverRanks.
char* fx_pg_sum_differentiable(void* g, tensor in, int64_t timeout_ms, tensor* out) {
  FX_TRY({
    auto y = SumOverRanks::apply(*in, reinterpret_cast<int64_t>(g), timeout_ms);
    *out = new at::Tensor(y);
  })
}

char* fx_pg_barrier(void* g, int64_t timeout_ms) {
  FX_TRY({
    auto& pg = *static_cast<Group*>(g);
    c10d::BarrierOptions o;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    pg->barrier(o)->wait(std::chrono::milliseconds(timeout_ms));
  })
}

}  // extern "C"
