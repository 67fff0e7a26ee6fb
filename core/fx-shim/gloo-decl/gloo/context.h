// Declarations only (see ../README.md): what ProcessGroupGloo.hpp names of gloo::Context.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  virtual ~Context();
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
