/// @file fuzz_check.hpp
/// What the fuzz targets in this folder share: the libFuzzer entry point
/// they define, and the check that ends the process when a property of the
/// code under test does not hold (a crash is what a fuzzer reports, and what
/// the seed replay in ctest turns into a failed test).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace satemu::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* what,
                              const std::string& detail) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

/// The input as text.
inline std::string_view text_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

} // namespace satemu::fuzz

/// Ends the process with a message when `cond` is false; `detail` is any
/// expression convertible to std::string (shown under the condition).
#define SATEMU_FUZZ_CHECK(cond, detail)                                                \
  do {                                                                                 \
    if (!(cond)) ::satemu::fuzz::fail(__FILE__, __LINE__, #cond, std::string(detail)); \
  } while (0)
