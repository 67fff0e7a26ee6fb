// Declarations only (see ../../README.md): types ProcessGroupGloo.hpp holds through pointers.
#pragma once

namespace gloo {
namespace transport {
class Device {
 public:
  virtual ~Device();
};
class UnboundBuffer {
 public:
  virtual ~UnboundBuffer();
};
}  // namespace transport
}  // namespace gloo
