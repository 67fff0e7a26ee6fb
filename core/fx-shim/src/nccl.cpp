// c10d's NCCL process group (GPU tensors reduced in device memory), compiled only when this
// libtorch has CUDA and the CUDA and NCCL headers are installed (build.rs). Same conventions as
// c10d.cpp, whose store handles it takes and whose collectives it serves (a Group is a Backend).
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "fx_try.h"

typedef c10::intrusive_ptr<c10d::Store> Store;
typedef c10::intrusive_ptr<c10d::Backend> Group;

extern "C" {

// Fails with libtorch's message on a machine without GPUs. Collectives (through the c10d.cpp
// functions, on CUDA tensors) run on NCCL's streams; wait() makes the current stream wait for
// them without blocking the host.
char* fx_pg_nccl(void* store, int rank, int world, int64_t timeout_ms, void** out) {
  FX_TRY({
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", *static_cast<Store*>(store));
    Group g = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, opts);
    *out = new Group(g);
  })
}

}  // extern "C"
