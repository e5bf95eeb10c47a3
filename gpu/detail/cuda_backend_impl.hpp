/// @file cuda_backend_impl.hpp
/// Private to gpu/: the entry points of the CUDA backend's implementation
/// (detail/cuda_backend_impl.cpp, compiled only when the build has CUDA),
/// behind the public functions of cuda_backend.hpp. Plain C++ declarations.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/cuda_backend.hpp"

namespace satemu::gpu::detail {

absl::StatusOr<std::unique_ptr<backend>> new_cuda_backend(const cuda_options& options);

absl::StatusOr<double> cuda_gemm_seconds_impl(cuda_precision p, std::int64_t m, std::int64_t n,
                                              std::int64_t k, int iterations);
absl::StatusOr<double> cuda_quantize_seconds_impl(std::int64_t rows, std::int64_t cols, int bits,
                                                  int iterations);
absl::StatusOr<double> cuda_copy_seconds_impl(std::int64_t bytes, int iterations);

} // namespace satemu::gpu::detail
