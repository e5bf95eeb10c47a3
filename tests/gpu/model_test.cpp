// Model profiles: published dimensions, the totals model cards publish, and
// FLOP / byte counts worked out by hand.
#include "gpu/model.hpp"

#include <set>

#include <gtest/gtest.h>

namespace satemu::gpu {
namespace {

model_profile get(std::string_view name) {
  auto p = find_model(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : model_profile{};
}

std::int64_t count_role(const std::vector<tensor_spec>& specs, tensor_role role) {
  std::int64_t n = 0;
  for (const auto& s : specs)
    if (s.role == role)
      n += s.elements();
  return n;
}

TEST(Model, EveryBuiltinProfileIsValid) {
  const auto names = model_names();
  for (const char* expected : {"gemma-3-270m", "llama-3.2-1b", "llama-moe-3.5b",
                               "qwen1.5-moe-a2.7b", "mixtral-8x7b", "tiny", "tiny-moe"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const auto& name : names) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->name, name);
    EXPECT_TRUE(validate_model(*p).ok()) << validate_model(*p);
    EXPECT_FALSE(p->source.empty());
  }
}

TEST(Model, UnknownNameListsKnownNames) {
  auto p = find_model("gpt-5");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  const std::string msg(p.status().message());
  EXPECT_NE(msg.find("unknown model 'gpt-5'"), std::string::npos) << msg;
  for (const auto& name : model_names())
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST(Model, ValidationNamesTheField) {
  model_profile p = get("tiny");
  p.num_kv_heads = 3;
  auto s = validate_model(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("num_kv_heads"), std::string::npos) << s;

  p = get("tiny-moe");
  p.experts_per_token = 5;
  s = validate_model(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("experts_per_token"), std::string::npos) << s;

  p = get("tiny");
  p.hidden_size = 0;
  s = validate_model(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("hidden_size"), std::string::npos) << s;

  p = get("llama-3.2-1b");
  p.rope_scaling.high_freq_factor = 0.5;
  s = validate_model(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("high_freq_factor"), std::string::npos) << s;
}

TEST(Model, Llama32_1bMatchesItsModelCard) {
  const auto p = get("llama-3.2-1b");
  EXPECT_EQ(p.hidden_size, 2048);
  EXPECT_EQ(p.num_layers, 16);
  EXPECT_EQ(p.num_heads, 32);
  EXPECT_EQ(p.num_kv_heads, 8);
  EXPECT_EQ(p.head_dim, 64);
  EXPECT_EQ(p.intermediate_size, 8192);
  EXPECT_EQ(p.vocab_size, 128256);
  EXPECT_DOUBLE_EQ(p.rope_theta, 500000.0);
  // Model card: 1.23B parameters (1,235,814,400 with tied embeddings).
  const double n = static_cast<double>(parameter_count(p));
  EXPECT_NEAR(n, 1.24e9, 0.02 * 1.24e9);
  EXPECT_EQ(parameter_count(p), 1'235'814'400);
  // 16 layers x 8 KV heads x 64 x (K, V) x 2 bytes.
  EXPECT_EQ(kv_bytes_per_token(p, 2), 16 * 8 * 64 * 2 * 2);
  EXPECT_EQ(kv_bytes_per_token(p, 2), 32768);
  EXPECT_EQ(kv_cache_bytes(p, 1000, 2), 1000 * 32768);
}

TEST(Model, Gemma3_270mMatchesItsModelCard) {
  const auto p = get("gemma-3-270m");
  EXPECT_EQ(p.hidden_size, 640);
  EXPECT_EQ(p.num_layers, 18);
  EXPECT_EQ(p.num_heads, 4);
  EXPECT_EQ(p.num_kv_heads, 1);
  EXPECT_EQ(p.head_dim, 256);
  EXPECT_EQ(p.vocab_size, 262144);
  // Google: 170M embedding + 100M transformer parameters.
  const auto specs = model_tensor_specs(p);
  EXPECT_NEAR(static_cast<double>(count_role(specs, tensor_role::embedding)), 170e6, 0.02 * 170e6);
  EXPECT_NEAR(static_cast<double>(parameter_count(p)), 268e6, 0.02 * 268e6);
  // Layers 6, 12, 18 (1-based) attend globally, the rest through 512 keys.
  for (int l = 0; l < 18; ++l)
    EXPECT_EQ(is_sliding_layer(p, l), (l + 1) % 6 != 0) << l;
  // KV cache at 4096 tokens: 15 sliding layers keep 512 positions, 3 keep all.
  const std::int64_t per_position = 1 * 256 * 2 * 2;
  EXPECT_EQ(kv_cache_bytes(p, 4096, 2), (15 * 512 + 3 * 4096) * per_position);
}

TEST(Model, MoeTotalsMatchTheirModelCards) {
  struct expected {
    const char* name;
    double total;
    double active;
  };
  // Model cards: Mixtral 46.7B total / 12.9B active; Qwen1.5-MoE-A2.7B 14.3B /
  // 2.7B; LLaMA-MoE-3.5B (4/16) 6.7B / 3.5B.
  for (auto e : {expected{"mixtral-8x7b", 46.7e9, 12.9e9},
                 expected{"qwen1.5-moe-a2.7b", 14.3e9, 2.7e9},
                 expected{"llama-moe-3.5b", 6.7e9, 3.5e9}}) {
    const auto p = get(e.name);
    EXPECT_NEAR(static_cast<double>(parameter_count(p)), e.total, 0.02 * e.total) << e.name;
    EXPECT_NEAR(static_cast<double>(active_parameter_count(p)), e.active, 0.02 * e.active)
        << e.name;
  }
  const auto mix = get("mixtral-8x7b");
  EXPECT_EQ(mix.num_experts, 8);
  EXPECT_EQ(mix.experts_per_token, 2);
  EXPECT_EQ(mix.expert_intermediate_size, 14336);
  // LLaMA-MoE splits Llama-2-7B's 11008-wide MLP into 16 experts.
  const auto lm = get("llama-moe-3.5b");
  EXPECT_EQ(lm.num_experts * lm.expert_intermediate_size, 11008);
  EXPECT_EQ(lm.experts_per_token, 4);
  const auto qw = get("qwen1.5-moe-a2.7b");
  EXPECT_EQ(qw.num_experts, 60);
  EXPECT_EQ(qw.shared_expert_intermediate_size, 4 * qw.expert_intermediate_size);
}

TEST(Model, TensorNamesAreUniqueAndFollowHfNaming) {
  for (const auto& name : model_names()) {
    const auto p = get(name);
    std::set<std::string> seen;
    for (const auto& s : model_tensor_specs(p)) {
      EXPECT_TRUE(seen.insert(s.name).second) << "duplicate " << s.name;
      for (auto d : s.shape)
        EXPECT_GT(d, 0) << s.name;
    }
    EXPECT_TRUE(seen.count("model.embed_tokens.weight"));
    EXPECT_TRUE(seen.count("model.norm.weight"));
    EXPECT_EQ(seen.count("lm_head.weight"), p.tie_word_embeddings ? 0u : 1u) << name;
  }
  auto shape_of = [](const model_profile& p, int layer, const std::string& suffix) {
    for (const auto& s : layer_tensor_specs(p, layer))
      if (s.name == "model.layers." + std::to_string(layer) + "." + suffix)
        return s.shape;
    return std::vector<std::int64_t>{};
  };
  const auto llama = get("llama-3.2-1b");
  EXPECT_EQ(shape_of(llama, 3, "self_attn.q_proj.weight"), (std::vector<std::int64_t>{2048, 2048}));
  EXPECT_EQ(shape_of(llama, 3, "self_attn.k_proj.weight"), (std::vector<std::int64_t>{512, 2048}));
  EXPECT_EQ(shape_of(llama, 3, "mlp.down_proj.weight"), (std::vector<std::int64_t>{2048, 8192}));
  const auto mix = get("mixtral-8x7b");
  EXPECT_EQ(shape_of(mix, 31, "block_sparse_moe.experts.7.w1.weight"),
            (std::vector<std::int64_t>{14336, 4096}));
  EXPECT_EQ(shape_of(mix, 31, "block_sparse_moe.experts.7.w2.weight"),
            (std::vector<std::int64_t>{4096, 14336}));
  EXPECT_EQ(shape_of(mix, 0, "block_sparse_moe.gate.weight"), (std::vector<std::int64_t>{8, 4096}));
  const auto qw = get("tiny-qwen-moe");
  EXPECT_EQ(shape_of(qw, 1, "mlp.experts.3.down_proj.weight"), (std::vector<std::int64_t>{64, 32}));
  EXPECT_EQ(shape_of(qw, 1, "mlp.shared_expert.up_proj.weight"),
            (std::vector<std::int64_t>{64, 64}));
  EXPECT_EQ(shape_of(qw, 1, "mlp.shared_expert_gate.weight"), (std::vector<std::int64_t>{1, 64}));
  EXPECT_EQ(shape_of(qw, 1, "self_attn.k_proj.bias"), (std::vector<std::int64_t>{32}));
  const auto gem = get("gemma-3-270m");
  EXPECT_EQ(shape_of(gem, 0, "self_attn.q_norm.weight"), (std::vector<std::int64_t>{256}));
  EXPECT_EQ(shape_of(gem, 0, "pre_feedforward_layernorm.weight"),
            (std::vector<std::int64_t>{640}));
  EXPECT_EQ(shape_of(gem, 0, "self_attn.o_proj.weight"), (std::vector<std::int64_t>{640, 1024}));
}

TEST(Model, FlopsOfTheTinyModelByHand) {
  const auto p = get("tiny");
  // Per token: q 2*64*64 + k,v 2*2*64*32 + o 2*64*64 + MLP 3*2*64*128.
  const std::int64_t per_token = 8192 + 8192 + 8192 + 49152;
  // Attention: 4 x heads(4) x head_dim(16) = 256 FLOPs per visible key.
  EXPECT_EQ(layer_flops(p, 0, 1, 0), per_token + 256);
  EXPECT_EQ(layer_flops(p, 1, 1, 99), per_token + 256 * 100); // decode at context 100
  // Prefill of 10 tokens: keys 1 + 2 + ... + 10 = 55.
  EXPECT_EQ(layer_flops(p, 0, 10, 0), 10 * per_token + 256 * 55);
  // Chunked prefill of 5 after 10: keys 11 + ... + 15 = 65.
  EXPECT_EQ(layer_flops(p, 0, 5, 10), 5 * per_token + 256 * 65);
  EXPECT_EQ(layer_flops(p, 0, 0, 10), 0);
  EXPECT_EQ(lm_head_flops(p, 3), 3 * 2 * 64 * 256);
}

TEST(Model, FlopsFollowActiveParametersAndWindows) {
  // Without attention, a token costs 2 FLOPs per active matmul parameter.
  for (const auto& name : model_names()) {
    const auto p = get(name);
    const auto specs = layer_tensor_specs(p, 0);
    const std::int64_t non_matmul =
        count_role(specs, tensor_role::norm) + count_role(specs, tensor_role::bias);
    const std::int64_t attention_one_key = 4 * p.num_heads * p.head_dim;
    EXPECT_EQ(layer_flops(p, 0, 1, 0) - attention_one_key,
              2 * (layer_active_parameter_count(p) - non_matmul))
        << name;
  }
  // Gemma: a sliding layer sees at most 512 keys, a global one all of them.
  const auto g = get("gemma-3-270m");
  const std::int64_t per_key = 4 * 4 * 256;
  EXPECT_EQ(layer_flops(g, 5, 1, 1999) - layer_flops(g, 0, 1, 1999), per_key * (2000 - 512));
  // Prefill of 1000 on a sliding layer: keys 1..512 then 488 x 512.
  const std::int64_t keys = 512 * 513 / 2 + 488 * 512;
  EXPECT_EQ(layer_flops(g, 0, 1000, 0) - layer_flops(g, 5, 1000, 0),
            per_key * (keys - 1000 * 1001 / 2));
}

TEST(Model, WeightBytes) {
  const auto tiny = get("tiny");
  EXPECT_EQ(layer_weight_bytes(tiny, 4), 4 * layer_parameter_count(tiny));
  EXPECT_EQ(layer_weight_bytes_touched(tiny, 1, 2), layer_weight_bytes(tiny, 2));
  const auto mix = get("mixtral-8x7b");
  const std::int64_t expert = 3 * 4096 * 14336;
  EXPECT_EQ(layer_weight_bytes(mix, 2) - layer_weight_bytes_touched(mix, 2, 2), 6 * expert * 2);
  EXPECT_EQ(layer_weight_bytes_touched(mix, 99, 2), layer_weight_bytes(mix, 2));
  EXPECT_EQ(layer_weight_bytes_touched(mix, 0, 2), layer_weight_bytes(mix, 2) - 8 * expert * 2);
}

} // namespace
} // namespace satemu::gpu
