/// @file cuda_kernels.hpp
/// Private to gpu/ (CUDA builds only): launchers of the cuda backend's own
/// kernels (detail/cuda_kernels.cu). Every pointer is device memory, every
/// matrix row-major and packed; a launcher enqueues on `stream` and returns
/// the launch's error (cudaSuccess for empty work, which launches nothing).
/// Argument checks are the caller's (kernel_checks.hpp).
///
/// Compute kernels take a `cuda_storage`: they round each input value to it
/// on load and each output value on store, and compute in fp32 between.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace satemu::gpu::detail {

/// The format values are stored in between kernels.
enum class cuda_storage : int { f32 = 0, f16 = 1, bf16 = 2 };

// --- Formats -------------------------------------------------------------------

/// dst[i] = x[i] as fp16 or bf16 (`s` != f32), round to nearest even.
cudaError_t launch_to_half(const float* x, void* dst, std::int64_t n, cuda_storage s,
                           cudaStream_t stream);
/// x[i] rounded to `s`'s precision, in place (nothing for f32).
cudaError_t launch_round(float* x, std::int64_t n, cuda_storage s, cudaStream_t stream);
/// x[i] rounded to TF32 (10 mantissa bits, nearest even), in place: GEMM
/// operands in tf32 mode, so results do not depend on how the tensor cores
/// convert fp32.
cudaError_t launch_round_tf32(float* x, std::int64_t n, cudaStream_t stream);
/// x[i] = a deterministic pseudo-random value in [-1, 1) (benchmark inputs).
cudaError_t launch_fill(float* x, std::int64_t n, std::uint32_t seed, cudaStream_t stream);

// --- Transformer kernels ----------------------------------------------------------

/// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, one block per row. With
/// `half_out` (storage f16 or bf16 only) the rows go there instead, as the
/// GEMM input format (launch_to_half of y, without y).
cudaError_t launch_rmsnorm(const float* x, const float* w, float* y, std::int64_t rows,
                           std::int64_t cols, float eps, cuda_storage s, cudaStream_t stream,
                           void* half_out = nullptr);

/// Rotate-half RoPE in place on `rows` rows of q (`q_heads` heads) and of k
/// (`k_heads` heads; 0 for none). `inv_freq` holds head_dim / 2 doubles,
/// `positions` one int64 per row.
cudaError_t launch_rope(float* q, std::int64_t q_heads, float* k, std::int64_t k_heads,
                        std::int64_t rows, std::int64_t head_dim,
                        const std::int64_t* positions, const double* inv_freq, cuda_storage s,
                        cudaStream_t stream);

/// Warps per attention block.
inline constexpr int attention_warps = 8;
/// The largest head_dim the attention kernel takes.
inline constexpr int attention_max_head_dim = 256;
/// Whether launch_attention runs on the tensor cores: with 16-bit storage
/// and head_dim a multiple of 16 up to 128. Scores and the weighted sum of
/// values are then TF32 matrix products with fp32 accumulation (q, k and v
/// are exact in TF32; the softmax weights are rounded to it); otherwise
/// every product is an fp32 fmaf on the CUDA cores.
inline constexpr bool attention_on_tensor_cores(cuda_storage s, std::int64_t head_dim) {
  return s != cuda_storage::f32 && head_dim % 16 == 0 && head_dim <= 128;
}
/// (query row, query head) pairs each warp of an attention block serves:
/// the matrix products' 16 rows on the tensor cores; on the CUDA cores
/// fewer for wide heads, whose output rows take more registers.
inline constexpr int attention_pairs_per_warp(std::int64_t head_dim, cuda_storage s) {
  if (attention_on_tensor_cores(s, head_dim))
    return 16;
  return head_dim > 128 ? 4 : 8;
}
/// Query heads of one kv-head group a block serves, and query rows per tile:
/// the block's pairs are its rows times its heads.
inline constexpr int attention_heads_per_block(int group) {
  return group < attention_warps ? group : attention_warps;
}
inline constexpr int attention_rows_per_tile(int group, std::int64_t head_dim,
                                             cuda_storage s) {
  return attention_warps * attention_pairs_per_warp(head_dim, s) /
         attention_heads_per_block(group);
}

/// A block's query rows: rows q_row .. q_row + n_rows - 1 of q, all of one
/// sequence whose keys and values are rows kv_row, kv_row + 1, ... of k and
/// v. Row r of the tile attends to the first `first_len + r * step` keys
/// (prefill: step 1, causal; decode: one row, step 0), or with a sliding
/// window to the last `window` of those.
struct attention_tile {
  std::int64_t q_row;
  std::int64_t kv_row;
  std::int32_t n_rows;
  std::int32_t first_len;
  std::int32_t step;
};

/// Attention of every tile's rows: softmax(scale q k^T) v per query head,
/// query head h reading kv head h / (n_heads / n_kv_heads). q and out are
/// `[*, n_heads * head_dim]`, k and v `[*, n_kv_heads * head_dim]`.
/// head_dim <= attention_max_head_dim; each tile has at most
/// attention_rows_per_tile(n_heads / n_kv_heads, head_dim, s) rows. With
/// `half_out` (storage f16 or bf16 only) the output goes there instead of
/// `out`, as the GEMM input format.
cudaError_t launch_attention(const float* q, const float* k, const float* v, float* out,
                             const attention_tile* tiles, std::int64_t n_tiles,
                             std::int64_t n_heads, std::int64_t n_kv_heads,
                             std::int64_t head_dim, float scale, std::int64_t window,
                             cuda_storage s, cudaStream_t stream, void* half_out = nullptr);

/// dst row i = src row index[i] (`cols` floats per row), for n rows.
cudaError_t launch_gather_rows(const float* src, const std::int64_t* index, float* dst,
                               std::int64_t n, std::int64_t cols, cudaStream_t stream);

/// y = act(gate) * up over n elements: act = silu, or with `gelu` the tanh
/// approximation of GELU (backend::gelu_mul). `half_out` as for
/// launch_rmsnorm.
cudaError_t launch_glu(bool gelu, const float* gate, const float* up, float* y, std::int64_t n,
                       cuda_storage s, cudaStream_t stream, void* half_out = nullptr);

/// y += x over n elements.
cudaError_t launch_add(float* y, const float* x, std::int64_t n, cuda_storage s,
                       cudaStream_t stream);

/// y[r] += sigmoid(gate[r]) * x[r] for `rows` rows of `cols` (backend::add_gated).
cudaError_t launch_add_gated(float* y, const float* x, const float* gate, std::int64_t rows,
                             std::int64_t cols, cuda_storage s, cudaStream_t stream);

// --- Mixture of experts --------------------------------------------------------------

/// Per token: the k largest logits (ties towards the lower expert) by
/// descending logit into expert[t*k ..], and their softmax (over the k with
/// `renormalise`, else over all experts), computed in double as the cpu
/// backend does, into weight[t*k ..].
cudaError_t launch_router_topk(const float* logits, std::int64_t tokens, std::int64_t n_experts,
                               std::int64_t k, bool renormalise, std::int32_t* expert,
                               float* weight, cudaStream_t stream);

/// out row row_of_slot[s] = x row s / k, for the tokens * k slots.
cudaError_t launch_moe_gather(const float* x, const std::int64_t* row_of_slot, float* out,
                              std::int64_t tokens, std::int64_t k, std::int64_t cols,
                              cudaStream_t stream);

/// out[t] = sum over j < k, in order, of weight[t*k+j] * y[row_of_slot[t*k+j]].
cudaError_t launch_moe_combine(const float* y, const float* weight,
                               const std::int64_t* row_of_slot, float* out, std::int64_t tokens,
                               std::int64_t k, std::int64_t cols, cudaStream_t stream);

// --- Activation compression ---------------------------------------------------------------

/// Per-row symmetric quantisation (backend.hpp quantized_activations):
/// `codes` rows * row_bytes bytes, `scales` rows floats.
cudaError_t launch_quantize(const float* x, std::int64_t rows, std::int64_t cols, int bits,
                            std::uint8_t* codes, float* scales, cudaStream_t stream);
cudaError_t launch_dequantize(const std::uint8_t* codes, const float* scales, std::int64_t rows,
                              std::int64_t cols, int bits, float* out, cudaStream_t stream);

/// Per row, the k entries of largest |x| (ties towards the lower column) in
/// ascending column order. 1 <= k <= cols.
cudaError_t launch_sparsify_topk(const float* x, std::int64_t rows, std::int64_t cols,
                                 std::int64_t k, float* values, std::int32_t* indices,
                                 cudaStream_t stream);
/// out (zeroed by the caller) [r, indices[r*k+j]] = values[r*k+j].
cudaError_t launch_densify(const float* values, const std::int32_t* indices, std::int64_t rows,
                           std::int64_t cols, std::int64_t k, float* out, cudaStream_t stream);

/// half.hpp's conversions: fp32 -> fp16 / bf16 bits (`bf16` selects) and back.
cudaError_t launch_cast_half(const float* x, std::uint16_t* bits, std::int64_t n, bool bf16,
                             cudaStream_t stream);
cudaError_t launch_uncast_half(const std::uint16_t* bits, float* x, std::int64_t n, bool bf16,
                               cudaStream_t stream);

} // namespace satemu::gpu::detail
