// Whole models: forward passes from synthetic or safetensors weights, and
// the end-to-end cost of compressing activations at split points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <numbers>
#include <numeric>
#include <utility>
#include <vector>

#include "gpu/cpu_backend.hpp"
#include "gpu/model_runner.hpp"
#include "gpu/weights.hpp"
#include "reference.hpp"

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

TEST(ModelRunner, EveryProfileHasItsLayersBuilt) {
  for (const std::string& name : model_names()) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(decoder_config_of(*p).ok()) << name;
    EXPECT_EQ(decoder_config_of(*p, static_cast<int>(p->num_layers)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  // Qwen-MoE's layer: q/k/v biases, weights not renormalised, a gated
  // shared expert; Mixtral's renormalises and has none.
  auto qwen = find_model("tiny-qwen-moe");
  ASSERT_TRUE(qwen.ok());
  EXPECT_TRUE(decoder_config_of(*qwen)->qkv_bias);
  auto layer = synthetic_layer(*qwen, 0);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->bq.shape(), (tensor::shape_type{qwen->num_heads * qwen->head_dim}));
  const auto& moe = std::get<moe_weights>(layer->ffn);
  EXPECT_FALSE(moe.renormalise);
  EXPECT_EQ(moe.shared.gate.shape(),
            (tensor::shape_type{qwen->shared_expert_intermediate_size, qwen->hidden_size}));
  EXPECT_EQ(moe.shared_gate.shape(), (tensor::shape_type{1, qwen->hidden_size}));
  auto mixtral = synthetic_layer(*find_model("tiny-moe"), 0);
  ASSERT_TRUE(mixtral.ok());
  EXPECT_TRUE(std::get<moe_weights>(mixtral->ffn).renormalise);
  EXPECT_EQ(std::get<moe_weights>(mixtral->ffn).shared.gate.numel(), 0);
  EXPECT_EQ(mixtral->bq.numel(), 0);
}

TEST(ModelRunner, TiedLmHeadIsTheEmbeddingItself) {
  // Tied: one copy of the [vocab, D] weights serves the embedding and the head.
  auto tied = synthetic_model(*find_model("tiny-gemma"));
  ASSERT_TRUE(tied.ok()) << tied.status();
  EXPECT_EQ(tied->lm_head().data(), tied->embedding.data());
  EXPECT_EQ(tied->untied_lm_head.numel(), 0);
  // Untied: the head is its own tensor, with the embedding's shape.
  auto untied = synthetic_model(*find_model("tiny"));
  ASSERT_TRUE(untied.ok()) << untied.status();
  EXPECT_NE(untied->lm_head().data(), untied->embedding.data());
  EXPECT_EQ(untied->lm_head().shape(), untied->embedding.shape());
  EXPECT_NE(untied->lm_head().storage(), untied->embedding.storage());
}

TEST(ModelRunner, GemmaLayersSlideAndRotateAsTheProfileSays) {
  auto p = find_model("gemma-3-270m");
  ASSERT_TRUE(p.ok());
  for (int l = 0; l < p->num_layers; ++l) {
    auto c = decoder_config_of(*p, l);
    ASSERT_TRUE(c.ok()) << c.status();
    // Every sixth layer (5, 11, 17) attends globally with base 1e6; the
    // others see the last 512 keys with base 10,000.
    const bool global = l % 6 == 5;
    EXPECT_EQ(c->attn.window, global ? 0 : 512) << "layer " << l;
    EXPECT_EQ(c->attn.rope_theta, global ? 1e6f : 1e4f) << "layer " << l;
    EXPECT_FLOAT_EQ(c->attn.scale, 1.0f / 16.0f);
    EXPECT_EQ(c->activation, mlp_activation::gelu_tanh);
    EXPECT_TRUE(c->qk_norm);
    EXPECT_TRUE(c->sandwich_norm);
    EXPECT_EQ(c->rms_eps, 1e-6f);
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
  for (const char* name : {"tiny", "tiny-moe", "tiny-gemma", "tiny-qwen-moe"}) {
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
}

// The tensor `name` of a checkpoint's tensors (a test failure when missing).
tensor named(const std::vector<weight_tensor>& ts, const std::string& name) {
  for (const auto& w : ts)
    if (w.name == name)
      return tensor(w.shape, w.data);
  ADD_FAILURE() << "no tensor " << name;
  return tensor();
}

// The rows of `embedding` `[vocab, D]` for `tokens`, times `scale`, in double.
ref::vec embed(const tensor& embedding, std::span<const std::int32_t> tokens, double scale) {
  const std::int64_t d = embedding.dim(1);
  ref::vec x;
  x.reserve(tokens.size() * static_cast<std::size_t>(d));
  for (const std::int32_t id : tokens)
    for (std::int64_t c = 0; c < d; ++c)
      x.push_back(embedding[id * d + c] * scale);
  return x;
}

// Token ids of a batch and their sequences' offsets.
struct token_batch {
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> offsets;

  token_batch(std::vector<std::int64_t> lengths, std::int64_t vocab) : offsets{0} {
    for (std::int64_t n : lengths) {
      for (std::int64_t i = 0; i < n; ++i)
        tokens.push_back(static_cast<std::int32_t>((static_cast<std::int64_t>(tokens.size()) *
                                                        53 + 7) % vocab));
      offsets.push_back(offsets.back() + n);
    }
  }
  std::span<const std::int32_t> sequence(std::size_t s) const {
    const auto first = static_cast<std::size_t>(offsets[s]);
    return std::span<const std::int32_t>(tokens).subspan(
        first, static_cast<std::size_t>(offsets[s + 1]) - first);
  }
  // Relative error of sequence s's rows of logits `[tokens, vocab]` against
  // `want`.
  double error(const tensor& logits, std::size_t s, const ref::vec& want) const {
    const std::int64_t vocab = logits.dim(1);
    return ref::rel_err({logits.data() + offsets[s] * vocab,
                         static_cast<std::size_t>((offsets[s + 1] - offsets[s]) * vocab)},
                        want);
  }
  // The same for the logits of a forward pass of `m` on the cpu backend
  // (NaN, and a test failure, when the pass fails).
  double forward_error(const model_weights& m, std::size_t s, const ref::vec& want) const {
    cpu_backend b;
    auto logits = forward_logits(b, m, tokens, offsets);
    if (!logits.ok()) {
      ADD_FAILURE() << logits.status();
      return std::numeric_limits<double>::quiet_NaN();
    }
    return error(*logits, s, want);
  }
};

// The logits of `reference` for each sequence of `in`, after checking that
// the model's forward pass on the cpu backend gives them to 1e-5.
std::vector<ref::vec> expect_forward_matches(
    const model_weights& m, const token_batch& in,
    const std::function<ref::vec(std::span<const std::int32_t>)>& reference) {
  std::vector<ref::vec> want;
  for (std::size_t s = 0; s + 1 < in.offsets.size(); ++s)
    want.push_back(reference(in.sequence(s)));
  cpu_backend b;
  auto logits = forward_logits(b, m, in.tokens, in.offsets);
  EXPECT_TRUE(logits.ok()) << logits.status();
  for (std::size_t s = 0; logits.ok() && s < want.size(); ++s) {
    EXPECT_LE(in.error(*logits, s, want[s]), 1e-5) << m.profile.name << ", sequence " << s;
  }
  return want;
}

// A reference model: the logits of one sequence of profile `p`'s synthetic
// weights (seed `seed`), in double.
using reference_model = ref::vec (*)(const model_profile& p, std::uint64_t seed,
                                     std::span<const std::int32_t> tokens);

// The synthetic model of `p` (seed 5) and, after expect_forward_matches,
// `reference`'s logits of each sequence of `in`.
std::pair<model_weights, std::vector<ref::vec>> expect_synthetic_matches(
    const model_profile& p, const token_batch& in, reference_model reference) {
  auto m = synthetic_model(p, 5);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok())
    return {};
  auto want = expect_forward_matches(
      *m, in, [&](std::span<const std::int32_t> seq) { return reference(p, 5, seq); });
  return {std::move(*m), std::move(want)};
}

// Gemma 3 in double for one sequence, written from the reference model
// (Hugging Face Gemma3ForCausalLM) over the checkpoint's tensors by name,
// independent of the layer builder: norms multiply by (1 + w), embeddings
// are scaled by sqrt(hidden), q and k are normed per head before RoPE, the
// attention and MLP outputs are normed before their residual adds, the MLP
// is GeGLU, and every `sliding_window_pattern`-th layer (1-based) attends
// globally while the others see the last `sliding_window` keys, with their
// own RoPE base.
ref::vec gemma_reference(const model_profile& p, std::uint64_t seed,
                         std::span<const std::int32_t> tokens) {
  const auto t = static_cast<std::int64_t>(tokens.size());
  const std::int64_t d = p.hidden_size;
  const std::int64_t hd = p.head_dim;
  auto rms = [&](const ref::vec& x, std::int64_t rows, std::int64_t cols, const tensor& w) {
    ref::vec y(x.size());
    for (std::int64_t r = 0; r < rows; ++r) {
      double ss = 0.0;
      for (std::int64_t j = 0; j < cols; ++j)
        ss += x[static_cast<std::size_t>(r * cols + j)] * x[static_cast<std::size_t>(r * cols + j)];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(cols) + p.rms_eps);
      for (std::int64_t j = 0; j < cols; ++j)
        y[static_cast<std::size_t>(r * cols + j)] =
            x[static_cast<std::size_t>(r * cols + j)] * inv * (1.0 + static_cast<double>(w[j]));
    }
    return y;
  };
  const std::vector<weight_tensor> globals = synthesize_globals(p, seed);
  const tensor embedding = named(globals, "model.embed_tokens.weight");
  ref::vec x = embed(embedding, tokens, std::sqrt(static_cast<double>(d)));
  std::vector<std::int64_t> pos(static_cast<std::size_t>(t));
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<std::int64_t> one = {0, t};
  for (int l = 0; l < p.num_layers; ++l) {
    auto ts = synthesize_layer(p, l, seed);
    EXPECT_TRUE(ts.ok());
    const auto w = [&](const char* name) {
      return named(*ts, "model.layers." + std::to_string(l) + "." + name);
    };
    const bool local = (l + 1) % p.sliding_window_pattern != 0;
    const ref::vec n1 = rms(x, t, d, w("input_layernorm.weight"));
    ref::vec q = ref::linear(n1, t, d, w("self_attn.q_proj.weight"));
    ref::vec k = ref::linear(n1, t, d, w("self_attn.k_proj.weight"));
    const ref::vec v = ref::linear(n1, t, d, w("self_attn.v_proj.weight"));
    q = rms(q, t * p.num_heads, hd, w("self_attn.q_norm.weight"));
    k = rms(k, t * p.num_kv_heads, hd, w("self_attn.k_norm.weight"));
    const double theta = local ? p.rope_local_theta : p.rope_theta;
    ref::rope(q, t, p.num_heads, hd, pos, theta);
    ref::rope(k, t, p.num_kv_heads, hd, pos, theta);
    const ref::vec att =
        ref::attention_prefill(q, k, v, one, p.num_heads, p.num_kv_heads, hd,
                               1.0 / std::sqrt(p.query_pre_attn_scalar),
                               local ? p.sliding_window : 0);
    ref::vec o = ref::linear(att, t, p.num_heads * hd, w("self_attn.o_proj.weight"));
    o = rms(o, t, d, w("post_attention_layernorm.weight"));
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] += o[i];
    const ref::vec n2 = rms(x, t, d, w("pre_feedforward_layernorm.weight"));
    ref::vec g = ref::linear(n2, t, d, w("mlp.gate_proj.weight"));
    const ref::vec u = ref::linear(n2, t, d, w("mlp.up_proj.weight"));
    for (std::size_t i = 0; i < g.size(); ++i)
      g[i] = ref::gelu_tanh(g[i]) * u[i];
    ref::vec f = ref::linear(g, t, p.intermediate_size, w("mlp.down_proj.weight"));
    f = rms(f, t, d, w("post_feedforward_layernorm.weight"));
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] += f[i];
  }
  return ref::linear(rms(x, t, d, named(globals, "model.norm.weight")), t, d, embedding);
}

TEST(ModelRunner, GemmaForwardPassMatchesTheReferenceModel) {
  auto p = find_model("tiny-gemma");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->sliding_window, 8);
  // Two sequences, the first longer than the window.
  const token_batch in({20, 7}, p->vocab_size);
  const auto [m, want] = expect_synthetic_matches(*p, in, gemma_reference);
  ASSERT_EQ(want.size(), 2u);
  // The window is what makes layer 0 differ: without it the logits of the
  // sequence longer than the window are others.
  model_weights no_window = m;
  no_window.layer_configs[0].attn.window = 0;
  EXPECT_GT(in.forward_error(no_window, 0, want[0]), 1e-3);
}

// Llama 3, Mixtral and Qwen1.5-MoE in double for one sequence, written from
// the reference models (Hugging Face LlamaForCausalLM, MixtralForCausalLM,
// Qwen2MoeForCausalLM) over the checkpoint's tensors by name, independent
// of the layer builder: pre-norm layers; RoPE with Llama 3's frequency
// scaling written out here from Hugging Face's `_compute_llama3_parameters`;
// q/k/v biases (Qwen); and either a SwiGLU MLP or a router's softmax over all
// experts whose top-k probabilities weight the experts, renormalised
// (Mixtral, w2(silu(w1 x) * w3 x)) or as they are (Qwen, whose shared expert
// is scaled by sigmoid(x shared_expert_gate^T)). Fails the test on a near tie
// in the routing, where fp32 could choose otherwise.
ref::vec llama_family_reference(const model_profile& p, std::uint64_t seed,
                                std::span<const std::int32_t> tokens) {
  const auto t = static_cast<std::int64_t>(tokens.size());
  const std::int64_t d = p.hidden_size;
  const std::int64_t hd = p.head_dim;
  const bool qwen = p.arch == model_arch::qwen2_moe;
  std::vector<double> inv_freq;
  for (std::int64_t i = 0; i < hd / 2; ++i) {
    const double f = 1.0 / std::pow(p.rope_theta, static_cast<double>(2 * i) /
                                                      static_cast<double>(hd));
    const auto& s = p.rope_scaling;
    if (s.factor == 0) {
      inv_freq.push_back(f);
      continue;
    }
    const double old = static_cast<double>(s.original_max_position);
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < old / s.high_freq_factor) {
      inv_freq.push_back(f);
    } else if (wavelen > old / s.low_freq_factor) {
      inv_freq.push_back(f / s.factor);
    } else {
      const double smooth =
          (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      inv_freq.push_back((1 - smooth) * f / s.factor + smooth * f);
    }
  }
  auto add_bias = [](ref::vec& y, std::int64_t rows, const tensor& b) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < b.numel(); ++c)
        y[static_cast<std::size_t>(r * b.numel() + c)] += b[c];
  };
  const std::vector<weight_tensor> globals = synthesize_globals(p, seed);
  ref::vec x = embed(named(globals, "model.embed_tokens.weight"), tokens, 1.0);
  std::vector<std::int64_t> pos(static_cast<std::size_t>(t));
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<std::int64_t> one = {0, t};
  for (int l = 0; l < p.num_layers; ++l) {
    auto ts = synthesize_layer(p, l, seed);
    EXPECT_TRUE(ts.ok());
    const auto w = [&](const std::string& name) {
      return named(*ts, "model.layers." + std::to_string(l) + "." + name);
    };
    const ref::vec n1 = ref::rmsnorm(x, t, d, w("input_layernorm.weight").values(), p.rms_eps);
    ref::vec q = ref::linear(n1, t, d, w("self_attn.q_proj.weight"));
    ref::vec k = ref::linear(n1, t, d, w("self_attn.k_proj.weight"));
    ref::vec v = ref::linear(n1, t, d, w("self_attn.v_proj.weight"));
    if (p.qkv_bias) {
      add_bias(q, t, w("self_attn.q_proj.bias"));
      add_bias(k, t, w("self_attn.k_proj.bias"));
      add_bias(v, t, w("self_attn.v_proj.bias"));
    }
    ref::rope(q, t, p.num_heads, hd, pos, inv_freq);
    ref::rope(k, t, p.num_kv_heads, hd, pos, inv_freq);
    const ref::vec att = ref::attention_prefill(q, k, v, one, p.num_heads, p.num_kv_heads, hd,
                                                1.0 / std::sqrt(static_cast<double>(hd)));
    const ref::vec o = ref::linear(att, t, p.num_heads * hd, w("self_attn.o_proj.weight"));
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] += o[i];
    const ref::vec n2 =
        ref::rmsnorm(x, t, d, w("post_attention_layernorm.weight").values(), p.rms_eps);
    if (p.num_experts == 0) {
      const ref::vec f = ref::swiglu(n2, t, d, w("mlp.gate_proj.weight"),
                                     w("mlp.up_proj.weight"), w("mlp.down_proj.weight"));
      for (std::size_t i = 0; i < x.size(); ++i)
        x[i] += f[i];
      continue;
    }
    const std::string moe = qwen ? "mlp." : "block_sparse_moe.";
    const ref::vec logits = ref::linear(n2, t, d, w(moe + "gate.weight"));
    const ref::vec gate = qwen ? ref::linear(n2, t, d, w("mlp.shared_expert_gate.weight"))
                               : ref::vec{};
    auto expert = [&](const ref::vec& xi, const std::string& at) {
      return qwen ? ref::swiglu(xi, 1, d, w(at + "gate_proj.weight"), w(at + "up_proj.weight"),
                                w(at + "down_proj.weight"))
                  : ref::swiglu(xi, 1, d, w(at + "w1.weight"), w(at + "w3.weight"),
                                w(at + "w2.weight"));
    };
    for (std::int64_t i = 0; i < t; ++i) {
      const std::span<const double> li(logits.data() + i * p.num_experts,
                                       static_cast<std::size_t>(p.num_experts));
      const std::vector<int> more = ref::top_experts(li, p.experts_per_token + 1);
      EXPECT_GT(li[static_cast<std::size_t>(more[more.size() - 2])] -
                    li[static_cast<std::size_t>(more.back())],
                1e-4)
          << "near tie in the routing of layer " << l << ", token " << i;
      const std::vector<int> chosen = ref::top_experts(li, p.experts_per_token);
      const ref::vec pr = ref::topk_weights(li, chosen, p.norm_topk_prob);
      const ref::vec xi(n2.begin() + i * d, n2.begin() + (i + 1) * d);
      if (qwen) {
        const ref::vec shared = expert(xi, "mlp.shared_expert.");
        const double g = 1.0 / (1.0 + std::exp(-gate[static_cast<std::size_t>(i)]));
        for (std::int64_t c = 0; c < d; ++c)
          x[static_cast<std::size_t>(i * d + c)] += g * shared[static_cast<std::size_t>(c)];
      }
      for (std::size_t j = 0; j < chosen.size(); ++j) {
        const ref::vec y = expert(xi, moe + "experts." + std::to_string(chosen[j]) + ".");
        for (std::int64_t c = 0; c < d; ++c)
          x[static_cast<std::size_t>(i * d + c)] += pr[j] * y[static_cast<std::size_t>(c)];
      }
    }
  }
  const ref::vec n = ref::rmsnorm(x, t, d, named(globals, "model.norm.weight").values(), p.rms_eps);
  return ref::linear(n, t, d, named(globals, "lm_head.weight"));
}

TEST(ModelRunner, QwenMoeForwardPassMatchesTheReferenceModel) {
  auto p = find_model("tiny-qwen-moe");
  ASSERT_TRUE(p.ok());
  ASSERT_FALSE(p->norm_topk_prob);
  const token_batch in({13, 8}, p->vocab_size);
  const auto [m, want] = expect_synthetic_matches(*p, in, llama_family_reference);
  ASSERT_EQ(want.size(), 2u);
  // Each of Qwen's differences matters: renormalised routing weights, or no
  // q bias, give other logits.
  model_weights renormalised = m;
  for (auto& l : renormalised.layers)
    std::get<moe_weights>(l.ffn).renormalise = true;
  EXPECT_GT(in.forward_error(renormalised, 0, want[0]), 1e-3);
  model_weights no_bias = m;
  for (auto& x : no_bias.layers[0].bq.values())
    x = 0.0f;
  EXPECT_GT(in.forward_error(no_bias, 0, want[0]), 1e-3);
}

TEST(ModelRunner, LlamaForwardPassMatchesTheReferenceModel) {
  auto p = find_model("tiny");
  ASSERT_TRUE(p.ok());
  // With Llama 3's frequency scaling: at head_dim 16 and base 1e4, an
  // original context of 16 positions blends the fastest frequency
  // (wavelength 6.3) and divides the others (19.9 and longer) by the factor.
  p->rope_scaling = {.factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                     .original_max_position = 16};
  const token_batch in({19, 6}, p->vocab_size);
  const auto [m, want] = expect_synthetic_matches(*p, in, llama_family_reference);
  ASSERT_EQ(want.size(), 2u);
  // The scaling is what the model runs with: without it the logits are others.
  model_weights unscaled = m;
  for (auto& c : unscaled.layer_configs)
    c.attn.rope_scaling = {};
  unscaled.config.attn.rope_scaling = {};
  EXPECT_GT(in.forward_error(unscaled, 0, want[0]), 1e-3);
}

TEST(ModelRunner, MixtralForwardPassMatchesTheReferenceModel) {
  auto p = find_model("tiny-moe");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->norm_topk_prob);
  const token_batch in({13, 8}, p->vocab_size);
  const auto [m, want] = expect_synthetic_matches(*p, in, llama_family_reference);
  ASSERT_EQ(want.size(), 2u);
  // Mixtral renormalises the chosen experts' weights: without it, other logits.
  model_weights raw = m;
  for (auto& l : raw.layers)
    std::get<moe_weights>(l.ffn).renormalise = false;
  EXPECT_GT(in.forward_error(raw, 0, want[0]), 1e-3);
}

TEST(ModelRunner, ForwardPassIsBitwiseRepeatable) {
  const auto m = synthetic("tiny");
  const auto in = two_sequences(m.profile.vocab_size);
  cpu_backend b;
  cpu_backend fresh(3); // another backend, on other threads: the same bits
  auto a = forward_logits(b, m, in.tokens, in.offsets);
  auto c = forward_logits(fresh, synthetic("tiny"), in.tokens, in.offsets);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(a->shape(), (tensor::shape_type{17, m.profile.vocab_size}));
  ASSERT_EQ(std::memcmp(a->data(), c->data(), static_cast<std::size_t>(a->numel()) * sizeof(float)),
            0);
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

// Two split points, counted independently: each split's error is that of the
// int4 round trip of the activations that reach it (carrying the first
// split's error into the second), the report lists the splits in layer order
// once each, and the logits' KL and top-1 agreement are those of the two
// passes, computed here in double.
TEST(ModelRunner, CompressionQualityAtTwoSplitsMatchesAnIndependentCount) {
  const auto m = synthetic("tiny-moe");
  const token_batch in({21, 9, 1}, m.profile.vocab_size);
  cpu_backend b;
  auto c = parse_compression("int4");
  ASSERT_TRUE(c.ok());
  const int split[] = {1, 0, 1};
  auto r = compression_quality(b, m, in.tokens, in.offsets, split, *c);
  ASSERT_TRUE(r.ok()) << r.status();

  std::vector<quality_report::split> want;
  auto hook = [&](int layer, tensor& x) -> absl::Status {
    auto q = b.quantize(x, 4);
    EXPECT_TRUE(q.ok());
    auto y = b.dequantize(*q);
    EXPECT_TRUE(y.ok());
    double diff = 0, norm_x = 0, norm_y = 0, dot = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      diff += (double{x[i]} - (*y)[i]) * (double{x[i]} - (*y)[i]);
      norm_x += double{x[i]} * x[i];
      norm_y += double{(*y)[i]} * (*y)[i];
      dot += double{x[i]} * (*y)[i];
    }
    // int4: two values a byte, and one fp32 scale per token.
    want.push_back({.after_layer = layer,
                    .relative_error = std::sqrt(diff / norm_x),
                    .cosine = dot / std::sqrt(norm_x * norm_y),
                    .wire_bytes = x.rows() * (x.cols() / 2 + 4),
                    .fp32_bytes = x.numel() * 4});
    x = std::move(*y);
    return absl::OkStatus();
  };
  auto plain = forward_logits(b, m, in.tokens, in.offsets);
  auto compressed = forward_logits(b, m, in.tokens, in.offsets, hook);
  ASSERT_TRUE(plain.ok() && compressed.ok());
  ASSERT_EQ(r->splits.size(), 2u);
  for (std::size_t s = 0; s < 2; ++s) {
    SCOPED_TRACE(s);
    EXPECT_EQ(r->splits[s].after_layer, static_cast<int>(s));
    EXPECT_NEAR(r->splits[s].relative_error, want[s].relative_error,
                1e-9 * want[s].relative_error);
    EXPECT_NEAR(r->splits[s].cosine, want[s].cosine, 1e-9);
    EXPECT_EQ(r->splits[s].wire_bytes, want[s].wire_bytes);
    EXPECT_EQ(r->splits[s].fp32_bytes, want[s].fp32_bytes);
  }
  EXPECT_GT(want[0].relative_error, 1e-2); // int4 loses something at each split

  const std::int64_t vocab = m.profile.vocab_size;
  const std::int64_t rows = plain->rows();
  double kl_sum = 0, kl_max = 0;
  std::int64_t agree = 0;
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* p = plain->data() + row * vocab;
    const float* q = compressed->data() + row * vocab;
    const auto log_softmax = [&](const float* l) {
      const double mx = *std::max_element(l, l + vocab);
      double z = 0;
      for (std::int64_t i = 0; i < vocab; ++i)
        z += std::exp(l[i] - mx);
      ref::vec out;
      for (std::int64_t i = 0; i < vocab; ++i)
        out.push_back(l[i] - mx - std::log(z));
      return out;
    };
    const ref::vec lp = log_softmax(p), lq = log_softmax(q);
    double kl = 0;
    for (std::int64_t i = 0; i < vocab; ++i)
      kl += std::exp(lp[static_cast<std::size_t>(i)]) *
            (lp[static_cast<std::size_t>(i)] - lq[static_cast<std::size_t>(i)]);
    kl_sum += kl;
    kl_max = std::max(kl_max, kl);
    agree += std::max_element(p, p + vocab) - p == std::max_element(q, q + vocab) - q;
  }
  EXPECT_EQ(r->logits.rows, rows);
  EXPECT_NEAR(r->logits.mean_kl, kl_sum / static_cast<double>(rows), 1e-6 * kl_sum / rows);
  EXPECT_NEAR(r->logits.max_kl, kl_max, 1e-6 * kl_max);
  EXPECT_DOUBLE_EQ(r->logits.top1_agreement,
                   static_cast<double>(agree) / static_cast<double>(rows));
  EXPECT_GT(kl_sum, 0.0);
}

TEST(ModelRunner, WeightsFromSafetensorsGiveTheSameLogits) {
  for (const char* name : {"tiny-moe", "tiny-gemma", "tiny-qwen-moe"}) {
  SCOPED_TRACE(name);
  auto p = find_model(name);
  ASSERT_TRUE(p.ok());
  const auto path = (std::filesystem::temp_directory_path() /
                     (std::string("satemu_") + name + ".safetensors")).string();
  ASSERT_TRUE(export_synthetic_model(path, *p, 3, safetensors_dtype::f32).ok());
  auto file = safetensors_file::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto loaded = load_model(*p, *file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const auto m = synthetic(name);
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
}

} // namespace
} // namespace satemu::gpu
