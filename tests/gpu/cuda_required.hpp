/// @file cuda_required.hpp
/// Tests that need a CUDA device skip when none answers, so the suite passes
/// on machines without a GPU. On a GPU machine a skip would hide a broken
/// setup (no driver, cuBLAS not found): there, SATEMU_REQUIRE_CUDA=1 turns
/// those skips into failures.
#pragma once

#include <cstdlib>
#include <string_view>

#include <gtest/gtest.h>

namespace satemu::gpu::test {

/// Whether SATEMU_REQUIRE_CUDA is set to anything but "" or "0".
inline bool cuda_required() {
  const char* v = std::getenv("SATEMU_REQUIRE_CUDA");
  return v != nullptr && std::string_view(v) != "" && std::string_view(v) != "0";
}

} // namespace satemu::gpu::test

/// Skips the test (or fails it, under SATEMU_REQUIRE_CUDA) saying why no CUDA
/// device can be used; returns from the calling function like GTEST_SKIP. Put
/// it in braces under an if (it is an if-else).
#define SATEMU_CUDA_UNAVAILABLE(why)                                                     \
  if (::satemu::gpu::test::cuda_required())                                              \
    GTEST_FAIL() << "SATEMU_REQUIRE_CUDA is set, but no CUDA device can be used: " << why; \
  else                                                                                   \
    GTEST_SKIP() << why
