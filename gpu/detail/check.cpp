#include "gpu/detail/check.hpp"

#include <cstdio>
#include <cstdlib>

namespace satemu::gpu::detail {

void check_failed(const char* file, int line, const char* expr, const std::string& msg) {
  std::fprintf(stderr, "satemu: gpu: internal error at %s:%d: %s: %s\n", file, line, expr,
               msg.c_str());
  std::abort();
}

} // namespace satemu::gpu::detail
