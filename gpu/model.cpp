#include "gpu/model.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace satemu::gpu {

namespace {

// The built-in profiles. Values are copied from each model's config.json on
// the Hugging Face Hub (the model card named in `source`):
//
// | profile            | hidden | layers | heads | kv | head_dim | MLP / expert     | experts | top-k | vocab  | ctx    | rope_theta | rms_eps | tied |
// |--------------------|--------|--------|-------|----|----------|------------------|---------|-------|--------|--------|------------|---------|------|
// | gemma-3-270m       | 640    | 18     | 4     | 1  | 256      | 2048             | -       | -     | 262144 | 32768  | 1e6 (10k local) | 1e-6 | yes |
// | llama-3.2-1b       | 2048   | 16     | 32    | 8  | 64       | 8192             | -       | -     | 128256 | 131072 | 500000     | 1e-5    | yes  |
// | llama-moe-3.5b     | 4096   | 32     | 32    | 32 | 128      | 688 per expert   | 16      | 4     | 32000  | 4096   | 10000      | 1e-5    | no   |
// | qwen1.5-moe-a2.7b  | 2048   | 24     | 16    | 16 | 128      | 1408 + shared 5632 | 60    | 4     | 151936 | 8192   | 1e6        | 1e-6    | no   |
// | mixtral-8x7b       | 4096   | 32     | 32    | 8  | 128      | 14336 per expert | 8       | 2     | 32000  | 32768  | 1e6        | 1e-5    | no   |
//
// Published totals the derived counts are checked against (tests/gpu/model_test.cpp):
// Gemma 3 270M ~268M (170M embedding + 100M transformer), Llama 3.2 1B 1.24B,
// LLaMA-MoE-3.5B 6.7B total / 3.5B active, Qwen1.5-MoE-A2.7B 14.3B total /
// 2.7B active, Mixtral 8x7B 46.7B total / 12.9B active.
//
// LLaMA-MoE-3.5B (llama-moe/LLaMA-MoE-v1-3_5B-4_16) splits each of Llama-2-7B's
// 11008-wide MLPs into 16 experts of 688 and routes every token to 4; the
// attention, embeddings and norms are Llama-2-7B's (rms_eps 1e-5 and
// rope_theta 1e4 as in meta-llama/Llama-2-7b-hf). Its own checkpoints name the
// experts differently (`mlp.calculator.experts.weight_{gate,up,down}.{e}`);
// here it uses the Mixtral naming, and its gate's training-time noise and
// score scaling are not modelled.
std::vector<model_profile> make_profiles() {
  std::vector<model_profile> out;

  {
    model_profile p;
    p.name = "gemma-3-270m";
    p.source = "google/gemma-3-270m (config.json, Gemma3ForCausalLM)";
    p.arch = model_arch::gemma3;
    p.hidden_size = 640;
    p.num_layers = 18;
    p.num_heads = 4;
    p.num_kv_heads = 1;
    p.head_dim = 256;
    p.intermediate_size = 2048;
    p.vocab_size = 262144;
    p.max_context = 32768;
    p.rope_theta = 1000000.0;
    p.rms_eps = 1e-6;
    p.tie_word_embeddings = true;
    p.activation = mlp_activation::gelu_tanh;
    p.qk_norm = true;
    p.sandwich_norm = true;
    p.norm_weight_offset = 1.0f;
    p.scale_embeddings = true;
    p.sliding_window = 512;
    p.sliding_window_pattern = 6;
    p.rope_local_theta = 10000.0;
    p.query_pre_attn_scalar = 256;
    out.push_back(p);
  }
  {
    model_profile p;
    p.name = "llama-3.2-1b";
    p.source = "meta-llama/Llama-3.2-1B (config.json)";
    p.arch = model_arch::llama;
    p.hidden_size = 2048;
    p.num_layers = 16;
    p.num_heads = 32;
    p.num_kv_heads = 8;
    p.head_dim = 64;
    p.intermediate_size = 8192;
    p.vocab_size = 128256;
    p.max_context = 131072;
    p.rope_theta = 500000.0;
    p.rope_scaling = {32.0, 1.0, 4.0, 8192};
    p.rms_eps = 1e-5;
    p.tie_word_embeddings = true;
    out.push_back(p);
  }
  {
    model_profile p;
    p.name = "llama-moe-3.5b";
    p.source = "llama-moe/LLaMA-MoE-v1-3_5B-4_16 (Llama-2-7B split into 16 experts, top-4)";
    p.arch = model_arch::mixtral;
    p.hidden_size = 4096;
    p.num_layers = 32;
    p.num_heads = 32;
    p.num_kv_heads = 32;
    p.head_dim = 128;
    p.vocab_size = 32000;
    p.max_context = 4096;
    p.rope_theta = 10000.0;
    p.rms_eps = 1e-5;
    p.num_experts = 16;
    p.experts_per_token = 4;
    p.expert_intermediate_size = 688;
    p.norm_topk_prob = true;
    out.push_back(p);
  }
  {
    model_profile p;
    p.name = "qwen1.5-moe-a2.7b";
    p.source = "Qwen/Qwen1.5-MoE-A2.7B (config.json, Qwen2MoeForCausalLM)";
    p.arch = model_arch::qwen2_moe;
    p.hidden_size = 2048;
    p.num_layers = 24;
    p.num_heads = 16;
    p.num_kv_heads = 16;
    p.head_dim = 128;
    p.vocab_size = 151936;
    p.max_context = 8192;
    p.rope_theta = 1000000.0;
    p.rms_eps = 1e-6;
    p.qkv_bias = true;
    p.num_experts = 60;
    p.experts_per_token = 4;
    p.expert_intermediate_size = 1408;
    p.shared_expert_intermediate_size = 5632;
    p.shared_expert_gate = true;
    p.norm_topk_prob = false;
    out.push_back(p);
  }
  {
    model_profile p;
    p.name = "mixtral-8x7b";
    p.source = "mistralai/Mixtral-8x7B-v0.1 (config.json)";
    p.arch = model_arch::mixtral;
    p.hidden_size = 4096;
    p.num_layers = 32;
    p.num_heads = 32;
    p.num_kv_heads = 8;
    p.head_dim = 128;
    p.vocab_size = 32000;
    p.max_context = 32768;
    p.rope_theta = 1000000.0;
    p.rms_eps = 1e-5;
    p.num_experts = 8;
    p.experts_per_token = 2;
    p.expert_intermediate_size = 14336;
    p.norm_topk_prob = true;
    out.push_back(p);
  }
  // Tiny test models: every family's tensor layout at sizes that run in
  // microseconds on a CPU.
  model_profile tiny;
  tiny.name = "tiny";
  tiny.source = "satemu test model (llama layout)";
  tiny.arch = model_arch::llama;
  tiny.hidden_size = 64;
  tiny.num_layers = 2;
  tiny.num_heads = 4;
  tiny.num_kv_heads = 2;
  tiny.head_dim = 16;
  tiny.intermediate_size = 128;
  tiny.vocab_size = 256;
  tiny.max_context = 4096; // room for the shipped scenarios' prompts
  tiny.rope_theta = 10000.0;
  tiny.rms_eps = 1e-5;
  out.push_back(tiny);
  {
    model_profile p = tiny;
    p.name = "tiny-moe";
    p.source = "satemu test model (mixtral layout)";
    p.arch = model_arch::mixtral;
    p.intermediate_size = 0;
    p.num_experts = 4;
    p.experts_per_token = 2;
    p.expert_intermediate_size = 64;
    p.norm_topk_prob = true;
    out.push_back(p);
  }
  {
    model_profile p = tiny;
    p.name = "tiny-gemma";
    p.source = "satemu test model (gemma3 layout)";
    p.arch = model_arch::gemma3;
    p.num_kv_heads = 1;
    p.tie_word_embeddings = true;
    p.activation = mlp_activation::gelu_tanh;
    p.qk_norm = true;
    p.sandwich_norm = true;
    p.norm_weight_offset = 1.0f;
    p.scale_embeddings = true;
    p.sliding_window = 8;
    p.sliding_window_pattern = 2;
    p.rope_local_theta = 10000.0;
    p.rope_theta = 1000000.0;
    p.query_pre_attn_scalar = 16;
    p.rms_eps = 1e-6;
    out.push_back(p);
  }
  {
    model_profile p = tiny;
    p.name = "tiny-qwen-moe";
    p.source = "satemu test model (qwen2_moe layout)";
    p.arch = model_arch::qwen2_moe;
    p.intermediate_size = 0;
    p.qkv_bias = true;
    p.num_experts = 4;
    p.experts_per_token = 2;
    p.expert_intermediate_size = 32;
    p.shared_expert_intermediate_size = 64;
    p.shared_expert_gate = true;
    p.rms_eps = 1e-6;
    out.push_back(p);
  }
  return out;
}

const std::vector<model_profile>& profiles() {
  static const std::vector<model_profile> all = make_profiles();
  return all;
}

void require_layer(const model_profile& p, int layer, const char* where) {
  if (layer < 0 || layer >= p.num_layers) {
    std::fprintf(stderr, "satemu::gpu::%s: layer %d out of range for model '%s' (%lld layers)\n",
                 where, layer, p.name.c_str(), static_cast<long long>(p.num_layers));
    std::abort();
  }
}

std::int64_t sum_elements(const std::vector<tensor_spec>& specs) {
  std::int64_t n = 0;
  for (const auto& s : specs)
    n += s.elements();
  return n;
}

} // namespace

std::string_view to_string(model_arch arch) {
  switch (arch) {
    case model_arch::llama: return "llama";
    case model_arch::gemma3: return "gemma3";
    case model_arch::mixtral: return "mixtral";
    case model_arch::qwen2_moe: return "qwen2_moe";
  }
  return "?";
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& p : profiles())
    names.push_back(p.name);
  return names;
}

absl::StatusOr<model_profile> find_model(std::string_view name) {
  for (const auto& p : profiles())
    if (p.name == name)
      return p;
  return absl::NotFoundError(absl::StrCat("unknown model '", std::string(name),
                                          "'; known models: ", absl::StrJoin(model_names(), ", ")));
}

absl::Status validate_model(const model_profile& p) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("model '", p.name, "': ", what));
  };
  struct field {
    const char* name;
    std::int64_t value;
  };
  for (auto f : {field{"hidden_size", p.hidden_size}, field{"num_layers", p.num_layers},
                 field{"num_heads", p.num_heads}, field{"num_kv_heads", p.num_kv_heads},
                 field{"head_dim", p.head_dim}, field{"vocab_size", p.vocab_size},
                 field{"max_context", p.max_context}})
    if (f.value <= 0)
      return bad(absl::StrCat(f.name, " must be positive, got ", f.value));
  if (p.num_heads % p.num_kv_heads != 0)
    return bad(absl::StrCat("num_heads (", p.num_heads, ") is not a multiple of num_kv_heads (",
                            p.num_kv_heads, ")"));
  if (!(p.rope_theta > 0) || !(p.rms_eps > 0))
    return bad("rope_theta and rms_eps must be positive");
  if (absl::Status s = check_rope_scaling(p.rope_scaling); !s.ok())
    return bad(std::string(s.message()));
  if (p.sliding_window < 0 || p.sliding_window_pattern < 0)
    return bad("sliding_window and sliding_window_pattern must not be negative");
  if (p.is_moe()) {
    if (p.experts_per_token <= 0 || p.experts_per_token > p.num_experts)
      return bad(absl::StrCat("experts_per_token must be in [1, num_experts=", p.num_experts,
                              "], got ", p.experts_per_token));
    if (p.expert_intermediate_size <= 0)
      return bad("expert_intermediate_size must be positive for an MoE model");
    if (p.intermediate_size != 0)
      return bad("intermediate_size must be 0 for an MoE model (every layer is MoE)");
    if (p.shared_expert_intermediate_size < 0)
      return bad("shared_expert_intermediate_size must not be negative");
    if (p.shared_expert_gate && p.shared_expert_intermediate_size == 0)
      return bad("shared_expert_gate without a shared expert");
    if (p.shared_expert_intermediate_size > 0 && p.arch != model_arch::qwen2_moe)
      return bad("a shared expert needs the qwen2_moe layout");
  } else {
    if (p.num_experts < 0 || p.experts_per_token != 0 || p.expert_intermediate_size != 0 ||
        p.shared_expert_intermediate_size != 0 || p.shared_expert_gate)
      return bad("MoE fields must all be zero for a dense model");
    if (p.intermediate_size <= 0)
      return bad(absl::StrCat("intermediate_size must be positive, got ", p.intermediate_size));
  }
  if ((p.arch == model_arch::mixtral || p.arch == model_arch::qwen2_moe) != p.is_moe())
    return bad(absl::StrCat("architecture ", std::string(to_string(p.arch)),
                            p.is_moe() ? " has no experts" : " needs experts"));
  return absl::OkStatus();
}

std::int64_t tensor_spec::elements() const {
  std::int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

std::vector<tensor_spec> layer_tensor_specs(const model_profile& p, int layer) {
  require_layer(p, layer, "layer_tensor_specs");
  const std::string pre = absl::StrCat("model.layers.", layer, ".");
  const std::int64_t h = p.hidden_size;
  const std::int64_t q_out = p.num_heads * p.head_dim;
  const std::int64_t kv_out = p.num_kv_heads * p.head_dim;
  std::vector<tensor_spec> out;
  auto add = [&](std::string name, std::vector<std::int64_t> shape, tensor_role role) {
    out.push_back({pre + name, std::move(shape), role, layer});
  };

  add("input_layernorm.weight", {h}, tensor_role::norm);
  add("post_attention_layernorm.weight", {h}, tensor_role::norm);
  if (p.sandwich_norm) {
    add("pre_feedforward_layernorm.weight", {h}, tensor_role::norm);
    add("post_feedforward_layernorm.weight", {h}, tensor_role::norm);
  }
  add("self_attn.q_proj.weight", {q_out, h}, tensor_role::linear);
  add("self_attn.k_proj.weight", {kv_out, h}, tensor_role::linear);
  add("self_attn.v_proj.weight", {kv_out, h}, tensor_role::linear);
  add("self_attn.o_proj.weight", {h, q_out}, tensor_role::linear);
  if (p.qkv_bias) {
    add("self_attn.q_proj.bias", {q_out}, tensor_role::bias);
    add("self_attn.k_proj.bias", {kv_out}, tensor_role::bias);
    add("self_attn.v_proj.bias", {kv_out}, tensor_role::bias);
  }
  if (p.qk_norm) {
    add("self_attn.q_norm.weight", {p.head_dim}, tensor_role::norm);
    add("self_attn.k_norm.weight", {p.head_dim}, tensor_role::norm);
  }

  if (!p.is_moe()) {
    const std::int64_t f = p.intermediate_size;
    add("mlp.gate_proj.weight", {f, h}, tensor_role::linear);
    add("mlp.up_proj.weight", {f, h}, tensor_role::linear);
    add("mlp.down_proj.weight", {h, f}, tensor_role::linear);
    return out;
  }
  const std::int64_t e = p.num_experts;
  const std::int64_t f = p.expert_intermediate_size;
  if (p.arch == model_arch::qwen2_moe) {
    add("mlp.gate.weight", {e, h}, tensor_role::router);
    for (std::int64_t i = 0; i < e; ++i) {
      const std::string ex = absl::StrCat("mlp.experts.", i, ".");
      add(ex + "gate_proj.weight", {f, h}, tensor_role::linear);
      add(ex + "up_proj.weight", {f, h}, tensor_role::linear);
      add(ex + "down_proj.weight", {h, f}, tensor_role::linear);
    }
    if (const std::int64_t s = p.shared_expert_intermediate_size; s > 0) {
      add("mlp.shared_expert.gate_proj.weight", {s, h}, tensor_role::linear);
      add("mlp.shared_expert.up_proj.weight", {s, h}, tensor_role::linear);
      add("mlp.shared_expert.down_proj.weight", {h, s}, tensor_role::linear);
      if (p.shared_expert_gate)
        add("mlp.shared_expert_gate.weight", {1, h}, tensor_role::router);
    }
  } else {
    add("block_sparse_moe.gate.weight", {e, h}, tensor_role::router);
    for (std::int64_t i = 0; i < e; ++i) {
      const std::string ex = absl::StrCat("block_sparse_moe.experts.", i, ".");
      add(ex + "w1.weight", {f, h}, tensor_role::linear);
      add(ex + "w2.weight", {h, f}, tensor_role::linear);
      add(ex + "w3.weight", {f, h}, tensor_role::linear);
    }
  }
  return out;
}

std::vector<tensor_spec> global_tensor_specs(const model_profile& p) {
  std::vector<tensor_spec> out;
  out.push_back({"model.embed_tokens.weight", {p.vocab_size, p.hidden_size},
                 tensor_role::embedding, -1});
  out.push_back({"model.norm.weight", {p.hidden_size}, tensor_role::norm, -1});
  if (!p.tie_word_embeddings)
    out.push_back({"lm_head.weight", {p.vocab_size, p.hidden_size}, tensor_role::linear, -1});
  return out;
}

std::vector<tensor_spec> model_tensor_specs(const model_profile& p) {
  std::vector<tensor_spec> out = global_tensor_specs(p);
  for (int l = 0; l < p.num_layers; ++l) {
    auto layer = layer_tensor_specs(p, l);
    out.insert(out.end(), std::make_move_iterator(layer.begin()),
               std::make_move_iterator(layer.end()));
  }
  return out;
}

std::int64_t layer_parameter_count(const model_profile& p) {
  return sum_elements(layer_tensor_specs(p, 0));
}

std::int64_t layer_active_parameter_count(const model_profile& p) {
  const std::int64_t all = layer_parameter_count(p);
  if (!p.is_moe())
    return all;
  const std::int64_t per_expert = 3 * p.hidden_size * p.expert_intermediate_size;
  return all - (p.num_experts - p.experts_per_token) * per_expert;
}

std::int64_t parameter_count(const model_profile& p) {
  return sum_elements(global_tensor_specs(p)) + p.num_layers * layer_parameter_count(p);
}

std::int64_t active_parameter_count(const model_profile& p) {
  return sum_elements(global_tensor_specs(p)) + p.num_layers * layer_active_parameter_count(p);
}

std::int64_t layer_weight_bytes(const model_profile& p, std::int64_t bytes_per_element) {
  return layer_parameter_count(p) * bytes_per_element;
}

std::int64_t layer_weight_bytes_touched(const model_profile& p, std::int64_t experts_touched,
                                        std::int64_t bytes_per_element) {
  std::int64_t params = layer_parameter_count(p);
  if (p.is_moe()) {
    const std::int64_t touched = std::clamp<std::int64_t>(experts_touched, 0, p.num_experts);
    params -= (p.num_experts - touched) * 3 * p.hidden_size * p.expert_intermediate_size;
  }
  return params * bytes_per_element;
}

std::int64_t kv_bytes_per_token(const model_profile& p, std::int64_t bytes_per_element) {
  return p.num_layers * p.num_kv_heads * p.head_dim * 2 * bytes_per_element;
}

bool is_sliding_layer(const model_profile& p, int layer) {
  require_layer(p, layer, "is_sliding_layer");
  if (p.sliding_window <= 0)
    return false;
  if (p.sliding_window_pattern <= 0)
    return true;
  return (layer + 1) % p.sliding_window_pattern != 0;
}

std::int64_t kv_cache_bytes(const model_profile& p, std::int64_t context,
                            std::int64_t bytes_per_element) {
  const std::int64_t per_layer_token = p.num_kv_heads * p.head_dim * 2 * bytes_per_element;
  std::int64_t total = 0;
  for (int l = 0; l < p.num_layers; ++l) {
    const std::int64_t kept = is_sliding_layer(p, l) ? std::min(context, p.sliding_window) : context;
    total += kept * per_layer_token;
  }
  return total;
}

std::int64_t layer_flops(const model_profile& p, int layer, std::int64_t tokens,
                         std::int64_t past) {
  require_layer(p, layer, "layer_flops");
  if (tokens < 0 || past < 0) {
    std::fprintf(stderr, "satemu::gpu::layer_flops: negative tokens (%lld) or past (%lld)\n",
                 static_cast<long long>(tokens), static_cast<long long>(past));
    std::abort();
  }
  const std::int64_t h = p.hidden_size;
  const std::int64_t q_out = p.num_heads * p.head_dim;
  const std::int64_t kv_out = p.num_kv_heads * p.head_dim;
  std::int64_t per_token = 2 * h * q_out + 2 * 2 * h * kv_out + 2 * q_out * h;
  if (!p.is_moe()) {
    per_token += 3 * 2 * h * p.intermediate_size;
  } else {
    per_token += 2 * h * p.num_experts;
    per_token += p.experts_per_token * 3 * 2 * h * p.expert_intermediate_size;
    per_token += 3 * 2 * h * p.shared_expert_intermediate_size;
    if (p.shared_expert_gate)
      per_token += 2 * h;
  }
  const std::int64_t window = is_sliding_layer(p, layer) ? p.sliding_window : 0;
  return tokens * per_token + 4 * q_out * attended_keys(tokens, past, window);
}

std::int64_t attended_keys(std::int64_t tokens, std::int64_t past, std::int64_t window) {
  // Sum over positions j = past + 1 .. past + tokens (1-based) of min(j, window).
  const std::int64_t first = past + 1;
  const std::int64_t last = past + tokens;
  if (last < first)
    return 0;
  auto plain = [](std::int64_t a, std::int64_t b) { return (a + b) * (b - a + 1) / 2; };
  if (window <= 0 || last <= window)
    return plain(first, last);
  if (first > window)
    return (last - first + 1) * window;
  return plain(first, window) + (last - window) * window;
}

std::int64_t cached_keys_read(std::int64_t past, std::int64_t window) {
  return window > 0 ? std::min(past, window - 1) : past;
}

std::int64_t lm_head_flops(const model_profile& p, std::int64_t tokens) {
  return 2 * p.hidden_size * p.vocab_size * tokens;
}

} // namespace satemu::gpu
