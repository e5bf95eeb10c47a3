#include "gpu/model_runner.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"
#include "gpu/metrics.hpp"
#include "gpu/weights.hpp"

namespace satemu::gpu {

namespace {

tensor take(std::vector<weight_tensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name)
      return tensor(t.shape, std::move(t.data));
  // The specs and the tensors come from the same list: a miss is a bug.
  SATEMU_GPU_CHECK(false, "weight ", name, " missing from its own layer list");
  return {};
}

// A norm weight as the kernels take it: the checkpoint's value plus the
// profile's offset (Gemma stores w and multiplies by 1 + w; in fp32, as the
// reference implementation computes 1 + w).
tensor norm_weight(const model_profile& p, tensor t) {
  if (p.norm_weight_offset != 0.0f)
    for (float& x : t.values())
      x += p.norm_weight_offset;
  return t;
}

absl::StatusOr<decoder_layer_weights> layer_from(const model_profile& p, int layer,
                                                 std::vector<weight_tensor> ts) {
  const auto pre = absl::StrCat("model.layers.", layer, ".");
  auto norm = [&](const std::string& name) { return norm_weight(p, take(ts, pre + name)); };
  decoder_layer_weights w;
  w.attn_norm = norm("input_layernorm.weight");
  if (p.sandwich_norm) {
    // Gemma 3: post_attention_layernorm norms the attention output; the MLP
    // has its own pre- and post-norms.
    w.attn_out_norm = norm("post_attention_layernorm.weight");
    w.mlp_norm = norm("pre_feedforward_layernorm.weight");
    w.mlp_out_norm = norm("post_feedforward_layernorm.weight");
  } else {
    w.mlp_norm = norm("post_attention_layernorm.weight");
  }
  if (p.qk_norm) {
    w.q_norm = norm("self_attn.q_norm.weight");
    w.k_norm = norm("self_attn.k_norm.weight");
  }
  w.wq = take(ts, pre + "self_attn.q_proj.weight");
  w.wk = take(ts, pre + "self_attn.k_proj.weight");
  w.wv = take(ts, pre + "self_attn.v_proj.weight");
  w.wo = take(ts, pre + "self_attn.o_proj.weight");
  if (p.qkv_bias) {
    w.bq = take(ts, pre + "self_attn.q_proj.bias");
    w.bk = take(ts, pre + "self_attn.k_proj.bias");
    w.bv = take(ts, pre + "self_attn.v_proj.bias");
  }
  // A gated MLP in Llama naming (`<at>gate_proj.weight`, ...).
  auto mlp = [&](const std::string& at) {
    return swiglu_weights{take(ts, at + "gate_proj.weight"), take(ts, at + "up_proj.weight"),
                          take(ts, at + "down_proj.weight")};
  };
  if (!p.is_moe()) {
    w.ffn = mlp(pre + "mlp.");
  } else if (p.arch == model_arch::qwen2_moe) {
    moe_weights m;
    m.top_k = p.experts_per_token;
    m.renormalise = p.norm_topk_prob;
    m.router = take(ts, pre + "mlp.gate.weight");
    for (std::int64_t e = 0; e < p.num_experts; ++e)
      m.experts.push_back(mlp(absl::StrCat(pre, "mlp.experts.", e, ".")));
    if (p.shared_expert_intermediate_size > 0)
      m.shared = mlp(pre + "mlp.shared_expert.");
    if (p.shared_expert_gate)
      m.shared_gate = take(ts, pre + "mlp.shared_expert_gate.weight");
    w.ffn = std::move(m);
  } else {
    moe_weights m;
    m.top_k = p.experts_per_token;
    m.renormalise = p.norm_topk_prob;
    m.router = take(ts, pre + "block_sparse_moe.gate.weight");
    for (std::int64_t e = 0; e < p.num_experts; ++e) {
      const auto ex = absl::StrCat(pre, "block_sparse_moe.experts.", e, ".");
      m.experts.push_back(
        {take(ts, ex + "w1.weight"), take(ts, ex + "w3.weight"), take(ts, ex + "w2.weight")});
    }
    w.ffn = std::move(m);
  }
  return w;
}

template <class LayerSource, class GlobalSource>
absl::StatusOr<model_weights> build(const model_profile& p, int layers, LayerSource&& layer_tensors,
                                    GlobalSource&& global_tensors) {
  model_weights m;
  m.profile = p;
  SATEMU_GPU_ASSIGN_OR_RETURN(m.config, decoder_config_of(p, 0));
  const int n = layers < 0 ? static_cast<int>(p.num_layers)
                           : std::min(layers, static_cast<int>(p.num_layers));
  for (int l = 0; l < n; ++l) {
    decoder_config cfg;
    SATEMU_GPU_ASSIGN_OR_RETURN(cfg, decoder_config_of(p, l));
    std::vector<weight_tensor> ts;
    SATEMU_GPU_ASSIGN_OR_RETURN(ts, layer_tensors(l));
    decoder_layer_weights w;
    SATEMU_GPU_ASSIGN_OR_RETURN(w, layer_from(p, l, std::move(ts)));
    SATEMU_GPU_RETURN_IF_ERROR(validate(cfg, w));
    m.layers.push_back(std::move(w));
    m.layer_configs.push_back(cfg);
  }
  std::vector<weight_tensor> g;
  SATEMU_GPU_ASSIGN_OR_RETURN(g, global_tensors());
  m.embedding = take(g, "model.embed_tokens.weight");
  m.final_norm = norm_weight(p, take(g, "model.norm.weight"));
  if (!p.tie_word_embeddings)
    m.untied_lm_head = take(g, "lm_head.weight");
  return m;
}

} // namespace

absl::StatusOr<decoder_config> decoder_config_of(const model_profile& p, int layer) {
  if (layer < 0 || layer >= p.num_layers)
    return absl::InvalidArgumentError(absl::StrCat("model '", p.name, "' has no layer ", layer,
                                                   " (", p.num_layers, " layers)"));
  decoder_config c;
  c.hidden = p.hidden_size;
  c.attn.n_heads = p.num_heads;
  c.attn.n_kv_heads = p.num_kv_heads;
  c.attn.head_dim = p.head_dim;
  if (p.query_pre_attn_scalar > 0)
    c.attn.scale = static_cast<float>(1.0 / std::sqrt(p.query_pre_attn_scalar));
  if (is_sliding_layer(p, layer)) {
    // Gemma 3's local layers: their own RoPE base, no frequency scaling.
    c.attn.window = p.sliding_window;
    c.attn.rope_theta = static_cast<float>(p.rope_local_theta > 0 ? p.rope_local_theta
                                                                  : p.rope_theta);
  } else {
    c.attn.rope_theta = static_cast<float>(p.rope_theta);
    c.attn.rope_scaling = p.rope_scaling;
  }
  c.rms_eps = static_cast<float>(p.rms_eps);
  c.activation = p.activation;
  c.qk_norm = p.qk_norm;
  c.sandwich_norm = p.sandwich_norm;
  c.qkv_bias = p.qkv_bias;
  return c;
}

absl::StatusOr<model_weights> synthetic_model(const model_profile& p, std::uint64_t seed, int layers) {
  return build(
    p, layers, [&](int l) { return synthesize_layer(p, l, seed); },
    [&]() -> absl::StatusOr<std::vector<weight_tensor>> { return synthesize_globals(p, seed); });
}

absl::StatusOr<decoder_layer_weights> synthetic_layer(const model_profile& p, int layer,
                                                      std::uint64_t seed) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const decoder_config cfg, decoder_config_of(p, layer));
  std::vector<weight_tensor> ts;
  SATEMU_GPU_ASSIGN_OR_RETURN(ts, synthesize_layer(p, layer, seed));
  decoder_layer_weights w;
  SATEMU_GPU_ASSIGN_OR_RETURN(w, layer_from(p, layer, std::move(ts)));
  SATEMU_GPU_RETURN_IF_ERROR(validate(cfg, w));
  return w;
}

absl::StatusOr<model_weights> load_model(const model_profile& p, const safetensors_file& file,
                                         int layers) {
  SATEMU_GPU_RETURN_IF_ERROR(check_model_file(file, p));
  return build(
    p, layers, [&](int l) { return load_layer_weights(file, p, l); },
    [&]() { return load_global_weights(file, p); });
}

absl::StatusOr<tensor> embed(const model_weights& m, std::span<const std::int32_t> tokens) {
  const auto d = m.config.hidden;
  const auto vocab = m.embedding.dim(0);
  // Gemma scales the embeddings by sqrt(hidden) (a float, as its fp32 reference).
  const float scale =
      m.profile.scale_embeddings ? static_cast<float>(std::sqrt(static_cast<double>(d))) : 1.0f;
  tensor x({static_cast<std::int64_t>(tokens.size()), d});
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return absl::InvalidArgumentError(
        absl::StrCat("token ", tokens[i], " at ", i, " is outside the vocabulary [0, ", vocab, ")"));
    std::memcpy(x.matrix().row(static_cast<std::int64_t>(i)), m.embedding.matrix().row(tokens[i]),
                static_cast<std::size_t>(d) * sizeof(float));
  }
  if (scale != 1.0f)
    for (float& v : x.values())
      v *= scale;
  return x;
}

absl::StatusOr<tensor> forward_logits(backend& b, const model_weights& m,
                                      std::span<const std::int32_t> tokens,
                                      std::span<const std::int64_t> seq_offsets,
                                      const layer_hook& hook) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor x, embed(m, tokens));
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    SATEMU_GPU_ASSIGN_OR_RETURN(
        x, decoder_layer_prefill(b, m.layer_configs[l], m.layers[l], x, seq_offsets));
    if (hook)
      SATEMU_GPU_RETURN_IF_ERROR(hook(static_cast<int>(l), x));
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(x, b.rmsnorm(x, m.final_norm.matrix(), m.config.rms_eps));
  return linear(b, x, m.lm_head());
}

absl::StatusOr<compression> parse_compression(std::string_view text) {
  compression c;
  if (text == "none")
    return c;
  if (text == "int8") {
    c.k = compression::kind::int8;
    return c;
  }
  if (text == "int4") {
    c.k = compression::kind::int4;
    return c;
  }
  if (text == "fp16") {
    c.k = compression::kind::fp16;
    return c;
  }
  if (text == "bf16") {
    c.k = compression::kind::bf16;
    return c;
  }
  if (text.substr(0, 5) == "topk:" && absl::SimpleAtoi(std::string(text.substr(5)), &c.keep) && c.keep > 0) {
    c.k = compression::kind::topk;
    return c;
  }
  return absl::InvalidArgumentError(absl::StrCat(
    "unknown compression '", std::string(text), "' (accepted: none, int8, int4, fp16, bf16, topk:N with N > 0)"));
}

std::string to_string(const compression& c) {
  switch (c.k) {
    case compression::kind::none: return "none";
    case compression::kind::int8: return "int8";
    case compression::kind::int4: return "int4";
    case compression::kind::fp16: return "fp16";
    case compression::kind::bf16: return "bf16";
    case compression::kind::topk: return absl::StrCat("topk:", c.keep);
  }
  return "?";
}

absl::StatusOr<tensor> compress_roundtrip(backend& b, const compression& c, const tensor& x,
                                          std::int64_t* wire_bytes) {
  std::int64_t bytes = x.numel() * 4;
  tensor out;
  switch (c.k) {
    case compression::kind::none:
      out = x;
      break;
    case compression::kind::int8:
    case compression::kind::int4: {
      quantized_activations q;
      SATEMU_GPU_ASSIGN_OR_RETURN(q, b.quantize(x, c.k == compression::kind::int8 ? 8 : 4));
      bytes = q.size_bytes();
      SATEMU_GPU_ASSIGN_OR_RETURN(out, b.dequantize(q));
      break;
    }
    case compression::kind::topk: {
      sparse_activations s;
      SATEMU_GPU_ASSIGN_OR_RETURN(s, b.sparsify_topk(x, std::min(c.keep, x.cols())));
      bytes = s.size_bytes();
      SATEMU_GPU_ASSIGN_OR_RETURN(out, b.densify(s));
      break;
    }
    case compression::kind::fp16:
    case compression::kind::bf16: {
      half_activations h;
      SATEMU_GPU_ASSIGN_OR_RETURN(
        h, b.cast_half(x, c.k == compression::kind::fp16 ? half_type::fp16 : half_type::bf16));
      bytes = h.size_bytes();
      SATEMU_GPU_ASSIGN_OR_RETURN(out, b.uncast_half(h));
      break;
    }
  }
  out.reshape(x.shape());
  if (wire_bytes != nullptr)
    *wire_bytes = bytes;
  return out;
}

absl::StatusOr<quality_report> compression_quality(backend& b, const model_weights& m,
                                                   std::span<const std::int32_t> tokens,
                                                   std::span<const std::int64_t> seq_offsets,
                                                   std::span<const int> split_after,
                                                   const compression& c,
                                                   const tensor* reference_logits) {
  for (int s : split_after)
    if (s < 0 || s >= static_cast<int>(m.layers.size()))
      return absl::InvalidArgumentError(
        m.layers.empty() ? absl::StrCat("split after layer ", s, ": the model has no layers")
                         : absl::StrCat("split after layer ", s, ": the model has layers 0..",
                                        m.layers.size() - 1));
  tensor computed;
  if (reference_logits == nullptr) {
    SATEMU_GPU_ASSIGN_OR_RETURN(computed, forward_logits(b, m, tokens, seq_offsets));
  }
  const tensor& reference = reference_logits != nullptr ? *reference_logits : computed;
  quality_report r;
  auto hook = [&](int layer, tensor& x) -> absl::Status {
    if (std::find(split_after.begin(), split_after.end(), layer) == split_after.end())
      return absl::OkStatus();
    quality_report::split s;
    s.after_layer = layer;
    s.fp32_bytes = x.numel() * 4;
    tensor restored;
    SATEMU_GPU_ASSIGN_OR_RETURN(restored, compress_roundtrip(b, c, x, &s.wire_bytes));
    SATEMU_GPU_ASSIGN_OR_RETURN(s.relative_error, relative_error(x.values(), restored.values()));
    SATEMU_GPU_ASSIGN_OR_RETURN(s.cosine, cosine_similarity(x.values(), restored.values()));
    r.splits.push_back(s);
    x = std::move(restored);
    return absl::OkStatus();
  };
  tensor compressed;
  SATEMU_GPU_ASSIGN_OR_RETURN(compressed, forward_logits(b, m, tokens, seq_offsets, hook));
  SATEMU_GPU_ASSIGN_OR_RETURN(r.logits, compare_logits(reference, compressed));
  return r;
}

} // namespace satemu::gpu
