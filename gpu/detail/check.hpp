/// @file check.hpp
/// Private to gpu/: aborting checks for broken invariants (programmer errors),
/// and the Status plumbing macros the kernels' sources share. Bad input (shapes
/// that come from weights or messages) is reported as absl::Status instead.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace satemu::gpu::detail {

/// Prints "satemu: gpu: internal error at FILE:LINE: EXPR: MSG" and aborts.
[[noreturn]] void check_failed(const char* file, int line, const char* expr,
                               const std::string& msg);

} // namespace satemu::gpu::detail

/// Aborts with context when `cond` is false; the message is built only then.
#define SATEMU_GPU_CHECK(cond, ...)                                                        \
  do {                                                                                     \
    if (!(cond)) [[unlikely]]                                                              \
      ::satemu::gpu::detail::check_failed(__FILE__, __LINE__, #cond,                       \
                                          ::absl::StrCat(__VA_ARGS__));                    \
  } while (0)

#define SATEMU_GPU_CONCAT_INNER(a, b) a##b
#define SATEMU_GPU_CONCAT(a, b) SATEMU_GPU_CONCAT_INNER(a, b)

/// Returns the status of `expr` from the enclosing function when it is not OK.
#define SATEMU_GPU_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                                     \
    if (::absl::Status satemu_gpu_status_ = (expr); !satemu_gpu_status_.ok())              \
      return satemu_gpu_status_;                                                           \
  } while (0)

/// `lhs = *expr` when `expr` (a StatusOr) is OK, otherwise returns its status.
#define SATEMU_GPU_ASSIGN_OR_RETURN(lhs, expr)                                             \
  SATEMU_GPU_ASSIGN_OR_RETURN_IMPL(SATEMU_GPU_CONCAT(satemu_gpu_or_, __LINE__), lhs, expr)
#define SATEMU_GPU_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                                   \
  auto tmp = (expr);                                                                       \
  if (!tmp.ok())                                                                           \
    return tmp.status();                                                                   \
  lhs = std::move(*tmp)
