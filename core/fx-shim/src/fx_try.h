// The shim's error convention, shared by its C++ files: a call returns NULL on success or a
// malloc'd message (freed with fx_shim_free), so no C++ exception crosses into Rust.
#pragma once
#include <cstring>
#include <exception>

// Variadic: a body with top-level commas (template arguments, lambda captures) is one block.
#define FX_TRY(...)                                    \
  try {                                                \
    __VA_ARGS__;                                       \
    return nullptr;                                    \
  } catch (const std::exception& e) {                  \
    return strdup(e.what());                           \
  } catch (...) {                                      \
    return strdup("unknown C++ exception in fx-shim"); \
  }
