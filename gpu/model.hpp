/// satemu model profiles: the real dimensions of the transformer models the
/// emulator runs (or only costs, in `compute: modeled`), the names and shapes
/// of their weight tensors, and the counts derived from them (parameters, KV
/// cache bytes, FLOPs and weight bytes per layer).
///
/// Plain data: no kernels here. Tensor names follow the Hugging Face
/// checkpoints of each family so that a real safetensors file can be loaded
/// (gpu/safetensors.hpp); layouts are row-major `[out, in]` as HF stores
/// `nn.Linear` weights (y = x W^T).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/rope.hpp"

namespace satemu::gpu {

/// Which family a profile belongs to: decides which tensors a layer has and
/// how they are named.
enum class model_arch {
  /// Llama 2/3: RMSNorm, GQA attention, SwiGLU MLP (`mlp.{gate,up,down}_proj`).
  llama,
  /// Gemma 3: as llama plus per-head q/k RMSNorm, "sandwich" norms around the
  /// MLP, norm weights stored as an offset from 1, GeGLU (tanh GELU), embeddings
  /// scaled by sqrt(hidden), sliding-window attention on 5 of every 6 layers.
  gemma3,
  /// Mixtral naming for MoE: `block_sparse_moe.gate` router and
  /// `block_sparse_moe.experts.{e}.w1` (gate), `w3` (up), `w2` (down).
  mixtral,
  /// Qwen1.5-MoE / Qwen2-MoE naming: `mlp.gate` router,
  /// `mlp.experts.{e}.{gate,up,down}_proj`, a shared expert `mlp.shared_expert.*`
  /// with a sigmoid gate `mlp.shared_expert_gate`.
  qwen2_moe,
};

/// "llama", "gemma3", "mixtral", "qwen2_moe".
std::string_view to_string(model_arch arch);

/// The MLP activation (the gated branch of the GLU).
enum class mlp_activation {
  silu,      ///< SwiGLU: silu(x W_gate^T) * (x W_up^T)
  gelu_tanh, ///< GeGLU with the tanh approximation of GELU (Gemma)
};

/// The dimensions of one transformer decoder model.
///
/// Invariants (checked by `validate_model`): every size is positive except the
/// MoE fields (all zero for a dense model); `num_heads % num_kv_heads == 0`;
/// `0 < experts_per_token <= num_experts` for MoE models; a dense model has
/// `intermediate_size > 0`, an MoE model has `expert_intermediate_size > 0` and
/// `intermediate_size == 0` (every layer is MoE).
struct model_profile {
  std::string name;
  /// Where the numbers come from (model card / config.json).
  std::string source;
  model_arch arch = model_arch::llama;

  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  /// Not always hidden / heads (Gemma 3 270M: 640 hidden, 4 heads of 256).
  std::int64_t head_dim = 0;
  /// Dense MLP width; 0 for MoE models.
  std::int64_t intermediate_size = 0;
  std::int64_t vocab_size = 0;
  /// Context length the model was trained for (max_position_embeddings).
  std::int64_t max_context = 0;

  double rope_theta = 10000.0;
  llama3_rope_scaling rope_scaling;
  double rms_eps = 1e-5;
  bool tie_word_embeddings = false;
  /// Bias vectors on q/k/v projections (Qwen).
  bool qkv_bias = false;
  mlp_activation activation = mlp_activation::silu;

  // Gemma 3 specifics (neutral values for other families).
  /// RMSNorm over each head's q and k (`self_attn.{q,k}_norm`, shape [head_dim]).
  bool qk_norm = false;
  /// `pre_feedforward_layernorm` / `post_feedforward_layernorm` besides the two
  /// usual norms, and the attention output is normed before the residual add.
  bool sandwich_norm = false;
  /// The RMSNorm multiplier is `norm_weight_offset + w` (1 for Gemma, 0 otherwise).
  float norm_weight_offset = 0.0f;
  /// Multiply token embeddings by sqrt(hidden_size) (Gemma).
  bool scale_embeddings = false;
  /// Keys visible to a query on a sliding-window layer; 0: no sliding window.
  std::int64_t sliding_window = 0;
  /// Every `sliding_window_pattern`-th layer (1-based) attends globally, the
  /// others use the window (Gemma 3: 6). 0 with sliding_window > 0: all slide.
  std::int64_t sliding_window_pattern = 0;
  /// RoPE base of the sliding-window layers (Gemma 3: 10000); global layers use
  /// rope_theta.
  double rope_local_theta = 0;
  /// Attention scores are scaled by 1/sqrt(query_pre_attn_scalar) (Gemma);
  /// 0 means the usual 1/sqrt(head_dim).
  double query_pre_attn_scalar = 0;

  // Mixture of experts (all zero for dense models).
  std::int64_t num_experts = 0;
  /// Top-k experts each token is routed to.
  std::int64_t experts_per_token = 0;
  std::int64_t expert_intermediate_size = 0;
  /// Width of the always-active shared expert (qwen2_moe layout only); 0: none.
  std::int64_t shared_expert_intermediate_size = 0;
  /// A sigmoid gate `[1, hidden]` scales the shared expert's output.
  bool shared_expert_gate = false;
  /// Renormalise the top-k routing weights to sum to 1 (Mixtral: yes,
  /// Qwen1.5-MoE: no).
  bool norm_topk_prob = false;

  bool is_moe() const { return num_experts > 0; }
  /// Query heads sharing one KV head.
  std::int64_t gqa_group() const { return num_heads / num_kv_heads; }
};

/// The names of the built-in profiles, in a stable order.
std::vector<std::string> model_names();

/// The built-in profile `name`; NotFound listing the known names otherwise.
absl::StatusOr<model_profile> find_model(std::string_view name);

/// OK when `p` satisfies the invariants of `model_profile`; otherwise an
/// InvalidArgument naming the model and the offending field.
absl::Status validate_model(const model_profile& p);

/// What a tensor is, which decides how synthetic weights fill it.
enum class tensor_role {
  embedding, ///< token embeddings [vocab, hidden]
  linear,    ///< a projection [out, in]
  router,    ///< MoE router [experts, hidden] (or the shared-expert gate [1, hidden])
  norm,      ///< RMSNorm weight [n]
  bias,      ///< projection bias [out]
};

/// A weight tensor the model expects: HF name, shape (row-major, outermost
/// first) and role.
struct tensor_spec {
  std::string name;
  std::vector<std::int64_t> shape;
  tensor_role role = tensor_role::linear;
  /// Transformer layer, or -1 for the embedding, the final norm and lm_head.
  int layer = -1;

  /// Product of the shape.
  std::int64_t elements() const;
  /// The input width of a linear/router/embedding tensor (last dimension).
  std::int64_t fan_in() const { return shape.empty() ? 1 : shape.back(); }
};

/// The tensors of layer `layer` (precondition: 0 <= layer < num_layers; a
/// violation aborts), in a fixed order: norms, attention, MLP or MoE. Names are
/// `model.layers.{layer}.` followed by
///   input_layernorm.weight, post_attention_layernorm.weight            [hidden]
///   self_attn.{q,k,v,o}_proj.weight   q [heads*hd, hidden], k/v [kv*hd, hidden],
///                                     o [hidden, heads*hd]
///   self_attn.{q,k,v}_proj.bias       (qkv_bias)            [heads*hd] / [kv*hd]
///   self_attn.{q,k}_norm.weight       (qk_norm)             [head_dim]
///   {pre,post}_feedforward_layernorm.weight (sandwich_norm) [hidden]
///   dense:   mlp.{gate,up}_proj.weight [inter, hidden], mlp.down_proj.weight [hidden, inter]
///   mixtral: block_sparse_moe.gate.weight [experts, hidden],
///            block_sparse_moe.experts.{e}.{w1,w3}.weight [e_inter, hidden],
///            block_sparse_moe.experts.{e}.w2.weight [hidden, e_inter]
///   qwen2_moe: mlp.gate.weight [experts, hidden],
///            mlp.experts.{e}.{gate,up}_proj.weight [e_inter, hidden],
///            mlp.experts.{e}.down_proj.weight [hidden, e_inter],
///            mlp.shared_expert.{gate,up}_proj.weight [s_inter, hidden],
///            mlp.shared_expert.down_proj.weight [hidden, s_inter],
///            mlp.shared_expert_gate.weight [1, hidden]
std::vector<tensor_spec> layer_tensor_specs(const model_profile& p, int layer);

/// The tensors outside the layers: `model.embed_tokens.weight` [vocab, hidden],
/// `model.norm.weight` [hidden], and `lm_head.weight` [vocab, hidden] unless the
/// embeddings are tied.
std::vector<tensor_spec> global_tensor_specs(const model_profile& p);

/// Globals first, then every layer in order.
std::vector<tensor_spec> model_tensor_specs(const model_profile& p);

/// Parameters of one layer, every expert included.
std::int64_t layer_parameter_count(const model_profile& p);
/// Parameters one token uses in a layer: the router, `experts_per_token`
/// experts and the shared expert (equal to layer_parameter_count for dense).
std::int64_t layer_active_parameter_count(const model_profile& p);
/// Parameters of the whole model (tied embeddings counted once).
std::int64_t parameter_count(const model_profile& p);
/// Parameters one token uses across the model (embedding row lookups counted
/// as the full matrix, as model cards do).
std::int64_t active_parameter_count(const model_profile& p);

/// Bytes of one layer's weights at `bytes_per_element` (2 for fp16/bf16),
/// every expert included.
std::int64_t layer_weight_bytes(const model_profile& p, std::int64_t bytes_per_element);
/// Bytes of one layer's weights that a step must read when `experts_touched`
/// distinct experts are used (clamped to [0, num_experts]; ignored for dense).
std::int64_t layer_weight_bytes_touched(const model_profile& p, std::int64_t experts_touched,
                                        std::int64_t bytes_per_element);

/// KV cache growth per token: layers x kv_heads x head_dim x 2 (K and V) x
/// bytes_per_element. Ignores sliding windows (see kv_cache_bytes).
std::int64_t kv_bytes_per_token(const model_profile& p, std::int64_t bytes_per_element);
/// KV cache of one sequence holding `context` tokens, with sliding-window
/// layers keeping at most `sliding_window` positions.
std::int64_t kv_cache_bytes(const model_profile& p, std::int64_t context,
                            std::int64_t bytes_per_element);

/// True when `layer` attends through the sliding window.
bool is_sliding_layer(const model_profile& p, int layer);

/// Matrix-multiply FLOPs (2 per multiply-add) of layer `layer` processing
/// `tokens` new tokens of one sequence that already holds `past` tokens in its
/// KV cache: projections, the MLP or the router plus `experts_per_token`
/// experts and the shared expert, and causal attention (QK^T and AV, 4 x heads
/// x head_dim per visible key; token i of the step sees past + i + 1 keys,
/// capped by the sliding window). Element-wise work (norms, RoPE, softmax,
/// activation, biases) is not counted: under 1% for the full-size profiles.
///   Prefill of a prompt of n: layer_flops(p, l, n, 0).
///   Decode of one token at context c (c keys including itself):
///   layer_flops(p, l, 1, c - 1).
/// Precondition: tokens >= 0, past >= 0, 0 <= layer < num_layers.
std::int64_t layer_flops(const model_profile& p, int layer, std::int64_t tokens,
                         std::int64_t past);
/// Keys `tokens` new tokens attend to together after `past` cached ones:
/// token i sees min(past + i + 1, window), window 0 meaning no cap.
std::int64_t attended_keys(std::int64_t tokens, std::int64_t past, std::int64_t window);
/// Cached keys (of `past`) that new tokens after them attend to: all of
/// them, or the window - 1 before the first new token (window 0: no cap).
/// Each is read once per layer (its key and value).
std::int64_t cached_keys_read(std::int64_t past, std::int64_t window);
/// FLOPs of the LM head (2 x hidden x vocab per token) for `tokens` tokens.
std::int64_t lm_head_flops(const model_profile& p, std::int64_t tokens);

} // namespace satemu::gpu
