// Whole models: forward passes from synthetic or safetensors weights, and
// the end-to-end cost of compressing activations at split points.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <vector>

#include "gpu/cpu_backend.hpp"
#include "gpu/model_runner.hpp"

namespace satemu::gpu {
namespace {

struct batch {
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> offsets;
};

/// Two sequences (11 and 6 tokens) of ids below `vocab`.
batch two_sequences(std::int64_t vocab) {
  batch b;
  for (int i = 0; i < 17; ++i)
    b.tokens.push_back(static_cast<std::int32_t>((i * 37 + 11) % vocab));
  b.offsets = {0, 11, 17};
  return b;
}

model_weights synthetic(const char* name) {
  auto p = find_model(name);
  EXPECT_TRUE(p.ok()) << p.status();
  auto m = synthetic_model(*p, 3);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

TEST(ModelRunner, UnsupportedFamiliesAreRefusedByName) {
  for (const char* name : {"gemma-3-270m", "qwen1.5-moe-a2.7b"}) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok());
    auto c = decoder_config_of(*p);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(c.status().message().find(name), std::string::npos);
  }
  for (const char* name : {"llama-3.2-1b", "mixtral-8x7b", "llama-moe-3.5b", "tiny", "tiny-moe"}) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(decoder_config_of(*p).ok()) << name;
  }
}

TEST(ModelRunner, LayersUseTheProfilesRopeScaling) {
  auto p = find_model("llama-3.2-1b");
  ASSERT_TRUE(p.ok());
  auto c = decoder_config_of(*p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->attn.rope_theta, 500000.0f);
  EXPECT_EQ(c->attn.rope_scaling.factor, 32.0);
  EXPECT_EQ(c->attn.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c->attn.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->attn.rope_scaling.original_max_position, 8192);
  auto tiny = decoder_config_of(*find_model("tiny"));
  ASSERT_TRUE(tiny.ok());
  EXPECT_FALSE(tiny->attn.rope_scaling.enabled());
}

TEST(ModelRunner, SyntheticLayerIsTheModelsLayer) {
  for (const char* name : {"tiny", "tiny-moe"}) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok());
    auto m = synthetic_model(*p, 3);
    ASSERT_TRUE(m.ok()) << m.status();
    auto w = synthetic_layer(*p, 1, 3);
    ASSERT_TRUE(w.ok()) << w.status();
    const decoder_layer_weights& want = m->layers[1];
    EXPECT_TRUE(w->wq.bitwise_equal(want.wq)) << name;
    EXPECT_TRUE(w->wo.bitwise_equal(want.wo)) << name;
    EXPECT_TRUE(w->mlp_norm.bitwise_equal(want.mlp_norm)) << name;
    EXPECT_EQ(w->ffn.index(), want.ffn.index()) << name;
    EXPECT_TRUE(validate(m->config, *w).ok()) << name;
    EXPECT_EQ(synthetic_layer(*p, static_cast<int>(p->num_layers), 3).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto gemma = find_model("gemma-3-270m");
  ASSERT_TRUE(gemma.ok());
  EXPECT_EQ(synthetic_layer(*gemma, 0).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ModelRunner, ForwardPassIsBitwiseRepeatable) {
  const auto m = synthetic("tiny");
  const auto in = two_sequences(m.profile.vocab_size);
  cpu_backend b;
  auto a = forward_logits(b, m, in.tokens, in.offsets);
  auto c = forward_logits(b, synthetic("tiny"), in.tokens, in.offsets);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(a->shape(), (tensor::shape_type{17, m.profile.vocab_size}));
  for (std::int64_t i = 0; i < a->numel(); ++i)
    ASSERT_EQ((*a)[i], (*c)[i]);
  std::vector<std::int32_t> bad = in.tokens;
  bad[3] = static_cast<std::int32_t>(m.profile.vocab_size);
  EXPECT_FALSE(forward_logits(b, m, bad, in.offsets).ok());
}

TEST(ModelRunner, CompressionQualityOrdersTheCodecs) {
  const auto m = synthetic("tiny");
  const auto in = two_sequences(m.profile.vocab_size);
  cpu_backend b;
  const int split[] = {0};
  auto quality = [&](const char* codec) {
    auto c = parse_compression(codec);
    EXPECT_TRUE(c.ok()) << codec;
    auto r = compression_quality(b, m, in.tokens, in.offsets, split, *c);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  };
  const auto none = quality("none");
  EXPECT_EQ(none.logits.mean_kl, 0.0);
  EXPECT_EQ(none.logits.top1_agreement, 1.0);
  EXPECT_EQ(none.splits.at(0).relative_error, 0.0);
  const auto f16 = quality("fp16"), i8 = quality("int8"), i4 = quality("int4");
  const auto topk = quality("topk:8");
  EXPECT_LT(f16.splits[0].relative_error, 1e-3);
  EXPECT_LT(f16.splits[0].relative_error, i8.splits[0].relative_error);
  EXPECT_LT(i8.splits[0].relative_error, i4.splits[0].relative_error);
  EXPECT_LT(i8.logits.mean_kl, i4.logits.mean_kl);
  EXPECT_GT(i8.splits[0].cosine, 0.999);
  EXPECT_GT(topk.splits[0].relative_error, 0.0);
  // Bytes on the wire: fp16 is half of fp32; int8 a quarter plus a scale per token.
  const auto& s = i8.splits[0];
  EXPECT_EQ(f16.splits[0].wire_bytes * 2, s.fp32_bytes);
  EXPECT_EQ(s.wire_bytes, s.fp32_bytes / 4 + 17 * 4);
  EXPECT_FALSE(parse_compression("int3").ok());
  const int bad_split[] = {5};
  EXPECT_FALSE(compression_quality(b, m, in.tokens, in.offsets, bad_split, {}).ok());
}

TEST(ModelRunner, WeightsFromSafetensorsGiveTheSameLogits) {
  auto p = find_model("tiny-moe");
  ASSERT_TRUE(p.ok());
  const auto path = (std::filesystem::temp_directory_path() / "satemu_tiny_moe.safetensors").string();
  ASSERT_TRUE(export_synthetic_model(path, *p, 3, safetensors_dtype::f32).ok());
  auto file = safetensors_file::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto loaded = load_model(*p, *file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const auto m = synthetic("tiny-moe");
  const auto in = two_sequences(p->vocab_size);
  cpu_backend b;
  auto a = forward_logits(b, m, in.tokens, in.offsets);
  auto c = forward_logits(b, *loaded, in.tokens, in.offsets);
  ASSERT_TRUE(a.ok() && c.ok());
  for (std::int64_t i = 0; i < a->numel(); ++i)
    ASSERT_EQ((*a)[i], (*c)[i]);
  // The same file is not a llama-3.2-1b.
  auto other = find_model("tiny");
  auto wrong = load_model(*other, *file);
  EXPECT_FALSE(wrong.ok());
  std::filesystem::remove(path);
}

} // namespace
} // namespace satemu::gpu
