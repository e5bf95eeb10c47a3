/// @file kernel_checks.hpp
/// Private to gpu/: the argument checks every backend runs before a kernel,
/// so the `cpu` and `cuda` backends accept and reject exactly the same calls
/// with the same messages (backend.hpp, Errors). Bad input returns
/// InvalidArgument naming the kernel; a broken view (negative extent, null
/// data behind elements) aborts.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gpu/backend.hpp"
#include "gpu/tensor.hpp"

namespace satemu::gpu::detail {

/// InvalidArgument "KERNEL: PARTS...".
template <typename... Parts>
absl::Status invalid(std::string_view kernel, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(kernel), ": ", parts...));
}

/// Aborts on a negative extent or null data behind elements (the caller's
/// construction, not bad input).
void check_view(const const_matrix_view& v, const char* what);

absl::Status check_attention_config(std::string_view kernel, const attention_config& cfg);

/// `offsets` (named `what` in the message) start at 0, end at `rows` and do
/// not decrease.
absl::Status check_offsets(std::string_view kernel, std::span<const std::int64_t> offsets,
                           std::int64_t rows, std::string_view what = "seq_offsets");

/// M, N, K of a checked GEMM.
struct gemm_dims {
  std::int64_t m, n, k;
};

/// Shapes agree and fit the BLAS integer range.
absl::StatusOr<gemm_dims> gemm_shape(std::string_view kernel, const gemm_op& o,
                                     const const_matrix_view& a, const const_matrix_view& b,
                                     const const_matrix_view& c);

/// gemm_strided_batched: the shape of problem 0, the batch and the strides.
absl::StatusOr<gemm_dims> check_gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                                     const const_matrix_view& a,
                                                     std::int64_t stride_a,
                                                     const const_matrix_view& b,
                                                     std::int64_t stride_b,
                                                     const const_matrix_view& c,
                                                     std::int64_t stride_c);

/// gemm_grouped: every problem's shape, and no two outputs overlap.
absl::StatusOr<std::vector<gemm_dims>> check_gemm_grouped(const gemm_op& o,
                                                          std::span<const gemm_problem> problems);

absl::Status check_rmsnorm(const const_matrix_view& x, const const_matrix_view& weight,
                           float eps);

absl::Status check_rope(const attention_config& cfg, const const_matrix_view& q,
                        const const_matrix_view& k, std::span<const std::int64_t> positions);

/// Returns the most keys of a sequence of the batch.
absl::StatusOr<std::int64_t> check_attention_prefill(const attention_config& cfg,
                                                     const const_matrix_view& q,
                                                     const const_matrix_view& k,
                                                     const const_matrix_view& v,
                                                     std::span<const std::int64_t> seq_offsets,
                                                     std::span<const std::int64_t> query_offsets);

absl::Status check_attention_decode(const attention_config& cfg, const const_matrix_view& q,
                                    const kv_cache& cache, std::span<const std::int64_t> lengths);

absl::Status check_kv_store(const kv_cache& cache, const const_matrix_view& k,
                            const const_matrix_view& v, std::span<const std::int64_t> slot,
                            std::span<const std::int64_t> position);

/// silu_mul and gelu_mul (`kernel`): gate and up of the same shape.
absl::Status check_glu(std::string_view kernel, const const_matrix_view& gate,
                       const const_matrix_view& up);
absl::Status check_add(const const_matrix_view& y, const const_matrix_view& x);

absl::Status check_add_gated(const const_matrix_view& y, const const_matrix_view& x,
                             const const_matrix_view& gate);

absl::Status check_router_topk(const const_matrix_view& logits, std::int64_t k);
/// A routing's arrays agree with its sizes and its rows are in range.
absl::Status check_routing(std::string_view kernel, const moe_routing& r);
absl::Status check_moe_gather(const const_matrix_view& x, const moe_routing& r);
absl::Status check_moe_combine(const const_matrix_view& y, const moe_routing& r);

absl::Status check_quantize(const const_matrix_view& x, int bits);
/// check_quantize without its scan for non-finite values, for a backend
/// that sees every value anyway (it calls check_quantize for the error when
/// it meets one).
absl::Status check_quantize_args(const const_matrix_view& x, int bits);
/// Sizes, scales, and every byte a valid symmetric code (pads zero).
absl::Status check_dequantize(const quantized_activations& q);
absl::Status check_sparsify_topk(const const_matrix_view& x, std::int64_t k);
/// Sizes, and columns in range and distinct within each row.
absl::Status check_densify(const sparse_activations& s);
absl::Status check_cast_half(const const_matrix_view& x, half_type t);
absl::Status check_uncast_half(const half_activations& h);

} // namespace satemu::gpu::detail
