/// @file layers.hpp
/// Transformer blocks built from a backend's kernels, so every backend gets
/// them and the launch counts show how they batch: a gated MLP (SwiGLU, or
/// GeGLU for Gemma), a mixture-of-experts layer with grouped expert GEMMs,
/// and a pre-norm decoder layer for prefill (ragged batch) and decode (KV
/// cache): Llama-style, Gemma-3-style with per-head q/k norms, sandwich
/// norms and sliding-window attention, or Qwen-MoE-style with q/k/v biases
/// and a gated shared expert.
///
/// Shapes: D = hidden size, F = MLP intermediate size, E = experts,
/// T = token rows of a ragged batch (see backend.hpp for `seq_offsets`).
/// Weights are `[out_features, in_features]` (PyTorch/safetensors layout),
/// applied as y = x W^T (+ b for Qwen's q/k/v). Activations are `[T, D]`.
///
/// Launches per call (each counted in the backend's launch_counts):
/// - swiglu_mlp: 3 gemm, 1 silu_mul (gelu_mul for GeGLU).
/// - moe_layer: 1 gemm (router), 1 router_topk, 1 moe_gather, 3 gemm_grouped
///   (gate, up, down over all experts), 1 silu_mul, 1 moe_combine; a shared
///   expert adds its MLP's 4 and, gated, 1 gemm and 1 add_gated (else 1 add).
/// - decoder_layer_prefill / _decode: 2 rmsnorm, 4 gemm (q, k, v, o), 1 rope,
///   1 attention_*, 2 add, plus the MLP's; 2 rmsnorm more with q/k norms and
///   2 more with sandwich norms; and 1 kv_store when a cache is written
///   (always in decode).
#pragma once

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/model.hpp"
#include "gpu/tensor.hpp"

namespace satemu::gpu {

/// down(act(gate x) * up x): gate and up `[F, D]`, down `[D, F]`; act is
/// silu (SwiGLU) or the tanh GELU (GeGLU), decoder_config::activation.
struct swiglu_weights {
  tensor gate;
  tensor up;
  tensor down;
};

/// Mixture of SwiGLU experts: router `[E, D]`, E experts of the same F, each
/// token sent to its top_k experts, whose outputs are summed weighted by
/// their router probabilities (renormalised over the top_k: Mixtral; or not:
/// Qwen1.5-MoE). Qwen-MoE adds a shared expert every token goes through,
/// its output scaled by sigmoid(x shared_gate^T) with a shared_gate `[1, D]`.
struct moe_weights {
  tensor router;
  std::vector<swiglu_weights> experts;
  std::int64_t top_k = 2;
  bool renormalise = true;
  /// Empty tensors: no shared expert.
  swiglu_weights shared;
  /// [1, D] with a gated shared expert, else empty.
  tensor shared_gate;
};

/// Shapes and constants of one decoder layer.
struct decoder_config {
  std::int64_t hidden = 0;     ///< D
  attention_config attn;       ///< heads, head_dim, RoPE, softmax scale, sliding window
  float rms_eps = 1e-5f;       ///< RMSNorm epsilon (every norm of the layer)
  /// The MLP's gate activation (the experts of a MoE layer take silu).
  mlp_activation activation = mlp_activation::silu;
  /// RMSNorm over each head of q and k, before RoPE (Gemma 3: q_norm, k_norm).
  bool qk_norm = false;
  /// RMSNorm of the attention block's and the MLP's outputs before their
  /// residual adds (Gemma 3: attn_out_norm, mlp_out_norm).
  bool sandwich_norm = false;
  /// Bias vectors added to the q, k and v projections (Qwen: bq, bk, bv).
  bool qkv_bias = false;
};

/// Weights of one pre-norm decoder layer:
/// h = x + N_a(wo(attention(rope(Q(wq n1 + bq)), rope(K(wk n1 + bk)), wv n1 + bv))),
/// n1 = rmsnorm(x, attn_norm), the biases zero without qkv_bias;
/// out = h + N_m(ffn(rmsnorm(h, mlp_norm))).
/// Q, K: per-head rmsnorm with q_norm, k_norm (qk_norm), else identity;
/// N_a, N_m: rmsnorm with attn_out_norm, mlp_out_norm (sandwich_norm), else
/// identity. RMSNorm multiplies by its weight as given: a checkpoint's
/// Gemma-style `1 + w` is folded into the weight when it is loaded.
struct decoder_layer_weights {
  tensor attn_norm;     ///< [D]
  tensor wq;            ///< [n_heads * head_dim, D]
  tensor wk;            ///< [n_kv_heads * head_dim, D]
  tensor wv;            ///< [n_kv_heads * head_dim, D]
  tensor wo;            ///< [D, n_heads * head_dim]
  tensor mlp_norm;      ///< [D]
  tensor q_norm;        ///< [head_dim] with qk_norm, else empty
  tensor k_norm;        ///< [head_dim] with qk_norm, else empty
  tensor attn_out_norm; ///< [D] with sandwich_norm, else empty
  tensor mlp_out_norm;  ///< [D] with sandwich_norm, else empty
  tensor bq;            ///< [n_heads * head_dim] with qkv_bias, else empty
  tensor bk;            ///< [n_kv_heads * head_dim] with qkv_bias, else empty
  tensor bv;            ///< [n_kv_heads * head_dim] with qkv_bias, else empty
  std::variant<swiglu_weights, moe_weights> ffn;
};

/// Checks every weight's shape against `cfg` (and the experts against each
/// other), naming the first that does not fit.
absl::Status validate(const decoder_config& cfg, const decoder_layer_weights& w);
/// Checks an MLP's weights for hidden size `hidden`.
absl::Status validate(std::int64_t hidden, const swiglu_weights& w);
/// Checks a MoE layer's weights for hidden size `hidden`.
absl::Status validate(std::int64_t hidden, const moe_weights& w);

/// x W^T for x `[T, in]` and W `[out, in]`: `[T, out]`, one gemm; with a
/// bias `[out]` (not empty), x W^T + bias (the gemm adds onto the bias rows).
absl::StatusOr<tensor> linear(backend& b, const_matrix_view x, const_matrix_view w,
                              const tensor& bias = {});

/// Gated MLP on x `[T, D]`: SwiGLU, or GeGLU with `act` gelu_tanh.
absl::StatusOr<tensor> swiglu_mlp(backend& b, const swiglu_weights& w, const_matrix_view x,
                                  mlp_activation act = mlp_activation::silu);

/// Router of a MoE layer: logits = x router^T, then backend::router_topk.
absl::StatusOr<moe_routing> moe_route(backend& b, const moe_weights& w, const_matrix_view x);

/// MoE layer on x `[T, D]`: route, gather tokens by expert, one grouped GEMM
/// per projection over all experts, silu * up, combine with the routing weights.
absl::StatusOr<tensor> moe_layer(backend& b, const moe_weights& w, const_matrix_view x);

/// Prefill over a ragged batch x `[T, D]`: token i of sequence s is at
/// position i (sequences start at position 0). With a cache, sequence s's
/// keys and values (after RoPE) are stored in slot s, positions 0..len-1.
/// Without one, this is decoder_layer_extend with no past (b.layer_extend).
absl::StatusOr<tensor> decoder_layer_prefill(backend& b, const decoder_config& cfg,
                                             const decoder_layer_weights& w,
                                             const_matrix_view x,
                                             std::span<const std::int64_t> seq_offsets,
                                             kv_cache* cache = nullptr);

/// Keys (after RoPE) and values of a sequence's positions 0..P-1, computed
/// earlier (a KV cache's rows, e.g. fetched from another node): `[P, kv_dim]`
/// each. Empty views for a sequence with no past.
struct past_kv {
  const_matrix_view k;
  const_matrix_view v;
};

/// What a prefill that continues cached sequences gives: the layer's output
/// for the new tokens and their keys (after RoPE) and values, which extend
/// the sequences' caches.
struct extend_result {
  tensor out; ///< [T, D]
  tensor k;   ///< [T, kv_dim]
  tensor v;   ///< [T, kv_dim]
};

/// Prefill of the new tokens of a ragged batch x `[T, D]` whose sequences
/// continue cached prefixes (prefix caching, chunked prefill): sequence s
/// has `past[s]` (P_s positions); its new token i is at position P_s + i and
/// attends to the P_s cached positions and to its own new tokens 0..i.
/// `past` has one entry per sequence. The same launches as
/// decoder_layer_prefill: the cached keys and values join the new ones in
/// the one ragged attention call, which has queries only at the new
/// positions. With every past empty the result is decoder_layer_prefill's,
/// bit for bit. Runs as `b.layer_extend`: on a GPU
/// backend, with the activations kept on the device between the kernels.
absl::StatusOr<extend_result> decoder_layer_extend(backend& b, const decoder_config& cfg,
                                                   const decoder_layer_weights& w,
                                                   const_matrix_view x,
                                                   std::span<const std::int64_t> seq_offsets,
                                                   std::span<const past_kv> past);

/// What decoder_layer_extend works out before its kernels.
struct extend_plan {
  std::int64_t past_rows = 0;            ///< cached rows of all sequences together
  std::vector<std::int64_t> positions;   ///< [T]: P_s + i for new token i of sequence s
};

/// The checks of decoder_layer_extend (the weights against `cfg`, x and
/// seq_offsets against each other, one past per sequence with keys and
/// values `[P, kv_dim]`), and its plan.
absl::StatusOr<extend_plan> plan_extend(const decoder_config& cfg, const decoder_layer_weights& w,
                                        const_matrix_view x,
                                        std::span<const std::int64_t> seq_offsets,
                                        std::span<const past_kv> past);

/// decoder_layer_extend built from the backend's kernels, one call each:
/// what every backend's layer_extend gives by default, and what a GPU
/// backend's own layer_extend is checked against.
absl::StatusOr<extend_result> decoder_layer_extend_from_kernels(
    backend& b, const decoder_config& cfg, const decoder_layer_weights& w, const_matrix_view x,
    std::span<const std::int64_t> seq_offsets, std::span<const past_kv> past);

/// backend::keep_resident for every matrix of a layer that a GEMM takes (the
/// projections, the MLP or the router and every expert): the layer's
/// weights must then stay alive and unchanged until drop_resident() or the
/// backend's end.
absl::Status keep_resident(backend& b, const decoder_layer_weights& w);

/// One decode step: row s of x `[S, D]` is the next token of slot s, at
/// position lengths[s] (tokens already cached, < capacity). Stores its key
/// and value there and attends over positions 0..lengths[s]. The caller then
/// advances lengths.
absl::StatusOr<tensor> decoder_layer_decode(backend& b, const decoder_config& cfg,
                                            const decoder_layer_weights& w,
                                            const_matrix_view x, kv_cache& cache,
                                            std::span<const std::int64_t> lengths);

} // namespace satemu::gpu
