/// @file cuda_backend.hpp
/// The `cuda` compute backend: cuBLAS for the GEMMs and satemu's own CUDA
/// kernels for everything else, behind the backend interface of backend.hpp
/// (fp32 host tensors in and out). Plain C++: no CUDA header is visible here,
/// and every function exists in a build without CUDA (it then reports
/// Unavailable).
///
/// Each call copies its inputs to the device, runs there in the backend's
/// precision and copies the results back before it returns. Only weights
/// given to keep_resident stay on the device between calls (those must not
/// change until drop_resident); other host tensors may change freely between
/// calls. layer_extend runs a dense decoder layer's kernels (with any of the
/// optional q/k/v biases, q/k norms, sandwich norms and GeGLU) one after
/// another on device memory, with the same results as the layer call by call;
/// MoE layers go call by call.
///
/// Precision (cuda_options::precision):
/// - `bf16`, `fp16`: 16-bit storage with fp32 accumulation. Every input of a
///   compute kernel (GEMM operands, RMSNorm, RoPE, attention, SwiGLU, add) is
///   rounded to the 16-bit format, the arithmetic runs in fp32 (GEMMs on
///   tensor cores with fp32 accumulation), and outputs are rounded to the
///   16-bit format again, so results are what a model stored in that format
///   computes. (Outside cuBLAS the rounded values are kept in fp32 words on
///   the device.)
/// - `tf32`: fp32 storage; GEMMs on TF32 tensor cores (operands rounded to
///   10 mantissa bits, to nearest even, by the backend before cuBLAS sees
///   them; fp32 accumulation); other kernels in fp32.
/// - `fp32`: fp32 storage and full-precision fp32 GEMMs.
/// Against the `cpu` backend, a kernel's relative error (tests/gpu/
/// reference.hpp's measure) is expected under 1e-2 in bf16 and 1e-3 in fp16
/// and tf32 (a cpu simulation of this rounding gives 2-4e-3 and 3-4e-4).
///
/// Kernels that only move, select or encode values work on the fp32 inputs as
/// given, in every precision, and reproduce the cpu backend: kv_store,
/// moe_gather, router_topk (same experts, same tie rule, same dispatch plan;
/// weights equal to a few ulps: the device's exp is not the C library's),
/// and bitwise: moe_combine (the cpu's order of operations, no fused
/// multiply-add), quantize/dequantize, sparsify_topk/densify and
/// cast_half/uncast_half.
///
/// Launches are counted as by the cpu backend: one per call of a kernel kind,
/// however many CUDA kernels and cuBLAS calls it takes. gemm_grouped runs one
/// cublasGemmEx per problem; gemm_strided_batched one
/// cublasGemmStridedBatchedEx, whose problems may round differently from the
/// same problem run through `gemm` (cuBLAS picks kernels by shape), within
/// the precision's tolerance.
///
/// Limits beyond the interface's: attention needs head_dim <= 256.
///
/// cuBLAS is loaded at run time (dlopen) when the first cuda backend is made,
/// so programs that never use it do not pay its start-up cost.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "gpu/backend.hpp"

namespace satemu::gpu {

/// How the cuda backend stores values and multiplies matrices (file comment).
enum class cuda_precision : int { bf16 = 0, fp16 = 1, tf32 = 2, fp32 = 3 };

/// "bf16", "fp16", "tf32", "fp32".
std::string_view cuda_precision_name(cuda_precision p);
/// The precision named `name`; InvalidArgument listing the names otherwise.
absl::StatusOr<cuda_precision> parse_cuda_precision(std::string_view name);

struct cuda_options {
  /// `make_backend("cuda")` uses bf16.
  cuda_precision precision = cuda_precision::bf16;
  /// CUDA device ordinal.
  int device = 0;
};

/// True when this binary was built with the CUDA backend.
bool cuda_backend_built();

/// A cuda backend. Unavailable (saying why) when the binary was built
/// without CUDA, when no CUDA device answers, or when cuBLAS cannot be
/// loaded; InvalidArgument for a device ordinal that does not exist.
absl::StatusOr<std::unique_ptr<backend>> make_cuda_backend(const cuda_options& options = {});

// --- Device-side timings (for bench/compute_bench) ---------------------------
// Timed with CUDA events on device-resident data (no host copies): the
// median seconds of one call over `iterations` calls after a warm-up call.
// Unavailable as make_cuda_backend says.

/// One cuBLAS GEMM C[m, n] = A[m, k] B[k, n] (operands in `p`'s GEMM input
/// format, C in fp32) on device 0.
absl::StatusOr<double> cuda_gemm_seconds(cuda_precision p, std::int64_t m, std::int64_t n,
                                         std::int64_t k, int iterations);

/// The quantize kernel (8 or 4 bits) on a `[rows, cols]` fp32 matrix.
absl::StatusOr<double> cuda_quantize_seconds(std::int64_t rows, std::int64_t cols, int bits,
                                             int iterations);

/// A device-to-device cudaMemcpy of `bytes`.
absl::StatusOr<double> cuda_copy_seconds(std::int64_t bytes, int iterations);

} // namespace satemu::gpu
