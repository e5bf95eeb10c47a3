// The composite layers (SwiGLU MLP, MoE router and layer, decoder layer for
// prefill and decode) against double-precision references composed from the
// naive kernels in reference.hpp; launch counts that show the batching; and
// bitwise repeatability of a forward pass.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "gpu/layers.hpp"
#include "recording_backend.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

constexpr double tol = 1e-5;

swiglu_weights random_mlp(std::int64_t d, std::int64_t f, std::uint64_t seed) {
  return {ref::random_tensor({f, d}, seed, 1.0 / std::sqrt(static_cast<double>(d))),
          ref::random_tensor({f, d}, seed + 1, 1.0 / std::sqrt(static_cast<double>(d))),
          ref::random_tensor({d, f}, seed + 2, 1.0 / std::sqrt(static_cast<double>(f)))};
}

moe_weights random_moe(std::int64_t d, std::int64_t f, std::int64_t experts, std::int64_t k,
                       std::uint64_t seed) {
  moe_weights w;
  w.router = ref::random_tensor({experts, d}, seed, 2.0 / std::sqrt(static_cast<double>(d)));
  for (std::int64_t e = 0; e < experts; ++e)
    w.experts.push_back(random_mlp(d, f, seed + 10 * static_cast<std::uint64_t>(e + 1)));
  w.top_k = k;
  return w;
}

// Qwen-MoE style: routing weights not renormalised, a shared expert of its
// own width behind a sigmoid gate.
moe_weights random_qwen_moe(std::int64_t d, std::int64_t f, std::int64_t experts, std::int64_t k,
                            std::uint64_t seed) {
  moe_weights w = random_moe(d, f, experts, k, seed);
  w.renormalise = false;
  w.shared = random_mlp(d, 2 * f, seed + 5);
  w.shared_gate = ref::random_tensor({1, d}, seed + 9, 2.0 / std::sqrt(static_cast<double>(d)));
  return w;
}

decoder_config small_config() {
  decoder_config cfg;
  cfg.hidden = 32;
  cfg.attn = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .rope_theta = 10000.0f};
  cfg.rms_eps = 1e-5f;
  return cfg;
}

// A second width, none of it a power of two: three query heads per kv head,
// heads wider than hidden / heads (q_dim 144 against hidden 80), and FFN
// widths that follow hidden (random_layer).
decoder_config wide_config() {
  decoder_config cfg = small_config();
  cfg.hidden = 80;
  cfg.attn = {.n_heads = 6, .n_kv_heads = 2, .head_dim = 24, .rope_theta = 500000.0f};
  return cfg;
}

// Gemma 3's layer at test size: per-head q/k norms, sandwich norms, GeGLU,
// an explicit softmax scale and a sliding window of 5.
decoder_config gemma_config() {
  decoder_config cfg;
  cfg.hidden = 32;
  cfg.attn = {.n_heads = 4, .n_kv_heads = 1, .head_dim = 8, .scale = 0.3f,
              .rope_theta = 10000.0f, .window = 5};
  cfg.rms_eps = 1e-6f;
  cfg.activation = mlp_activation::gelu_tanh;
  cfg.qk_norm = true;
  cfg.sandwich_norm = true;
  return cfg;
}

// Qwen-MoE's layer at test size: q/k/v biases (its experts: random_layer
// with moe, random_qwen_moe).
decoder_config qwen_config() {
  decoder_config cfg = small_config();
  cfg.qkv_bias = true;
  cfg.rms_eps = 1e-6f;
  return cfg;
}

// The layers the layer tests run: dense and MoE Llama-style at two widths,
// Gemma-style and Qwen-MoE-style.
struct layer_variant {
  const char* name;
  decoder_config cfg;
  bool moe;
};
std::vector<layer_variant> layer_variants() {
  return {{"dense", small_config(), false},
          {"moe", small_config(), true},
          {"wide-dense", wide_config(), false},
          {"wide-moe", wide_config(), true},
          {"gemma", gemma_config(), false},
          {"qwen-moe", qwen_config(), true}};
}

decoder_layer_weights random_layer(const decoder_config& cfg, bool moe, std::uint64_t seed) {
  const std::int64_t d = cfg.hidden;
  const double s = 1.0 / std::sqrt(static_cast<double>(d));
  decoder_layer_weights w;
  w.attn_norm = ref::random_norm(d, seed);
  w.wq = ref::random_tensor({cfg.attn.q_dim(), d}, seed + 1, s);
  w.wk = ref::random_tensor({cfg.attn.kv_dim(), d}, seed + 2, s);
  w.wv = ref::random_tensor({cfg.attn.kv_dim(), d}, seed + 3, s);
  w.wo = ref::random_tensor({d, cfg.attn.q_dim()}, seed + 4, s);
  w.mlp_norm = ref::random_norm(d, seed + 5);
  if (moe && cfg.qkv_bias)
    w.ffn = random_qwen_moe(d, d * 3 / 4, 4, 2, seed + 100);
  else if (moe)
    w.ffn = random_moe(d, d * 3 / 4, 4, 2, seed + 100);
  else
    w.ffn = random_mlp(d, d * 3 / 2, seed + 6);
  if (cfg.qk_norm) {
    w.q_norm = ref::random_norm(cfg.attn.head_dim, seed + 7);
    w.k_norm = ref::random_norm(cfg.attn.head_dim, seed + 8);
  }
  if (cfg.sandwich_norm) {
    w.attn_out_norm = ref::random_norm(d, seed + 9);
    w.mlp_out_norm = ref::random_norm(d, seed + 10);
  }
  if (cfg.qkv_bias) {
    w.bq = ref::random_tensor({cfg.attn.q_dim()}, seed + 11, 0.5);
    w.bk = ref::random_tensor({cfg.attn.kv_dim()}, seed + 12, 0.5);
    w.bv = ref::random_tensor({cfg.attn.kv_dim()}, seed + 13, 0.5);
  }
  return w;
}

// MoE in double: route every token independently, sum its experts' outputs.
// Fails the test if a token's k-th and (k+1)-th logits are too close for fp32
// to be sure of the same choice (then pick another seed).
ref::vec moe_reference(const moe_weights& w, const ref::vec& x, std::int64_t rows,
                       std::int64_t d) {
  const auto n_exp = static_cast<std::int64_t>(w.experts.size());
  const ref::vec logits = ref::linear(x, rows, d, w.router);
  ref::vec out(static_cast<std::size_t>(rows * d), 0.0);
  for (std::int64_t t = 0; t < rows; ++t) {
    const std::span<const double> l(logits.data() + t * n_exp, static_cast<std::size_t>(n_exp));
    const std::vector<int> chosen = ref::top_experts(l, w.top_k);
    if (w.top_k < n_exp) {
      const std::vector<int> more = ref::top_experts(l, w.top_k + 1);
      EXPECT_GT(l[static_cast<std::size_t>(more[static_cast<std::size_t>(w.top_k - 1)])] -
                    l[static_cast<std::size_t>(more.back())],
                1e-4)
          << "near tie in the routing of token " << t << ": choose another seed";
    }
    const ref::vec p = ref::topk_weights(l, chosen, w.renormalise);
    const ref::vec xt(x.begin() + t * d, x.begin() + (t + 1) * d);
    for (std::size_t j = 0; j < chosen.size(); ++j) {
      const swiglu_weights& e = w.experts[static_cast<std::size_t>(chosen[j])];
      const ref::vec y = ref::swiglu(xt, 1, d, e.gate, e.up, e.down);
      for (std::int64_t c = 0; c < d; ++c)
        out[static_cast<std::size_t>(t * d + c)] += p[j] * y[static_cast<std::size_t>(c)];
    }
    if (w.shared.gate.numel() != 0) {
      const ref::vec y = ref::swiglu(xt, 1, d, w.shared.gate, w.shared.up, w.shared.down);
      const double g =
          w.shared_gate.numel() == 0
              ? 1.0
              : 1.0 / (1.0 + std::exp(-ref::linear(xt, 1, d, w.shared_gate)[0]));
      for (std::int64_t c = 0; c < d; ++c)
        out[static_cast<std::size_t>(t * d + c)] += g * y[static_cast<std::size_t>(c)];
    }
  }
  return out;
}

// The decoder layer in double for a ragged batch (positions restart per
// sequence), Gemma's extras included.
ref::vec decoder_reference(const decoder_config& cfg, const decoder_layer_weights& w,
                           const tensor& x, const std::vector<std::int64_t>& off) {
  const std::int64_t t = x.rows();
  const std::int64_t d = cfg.hidden;
  const auto& a = cfg.attn;
  const ref::vec xd = ref::to_double(x.values());
  const ref::vec n1 = ref::rmsnorm(xd, t, d, w.attn_norm.values(), cfg.rms_eps);
  ref::vec q = ref::linear(n1, t, d, w.wq);
  ref::vec k = ref::linear(n1, t, d, w.wk);
  ref::vec v = ref::linear(n1, t, d, w.wv);
  if (cfg.qkv_bias) {
    for (std::int64_t i = 0; i < t; ++i) {
      for (std::int64_t c = 0; c < a.q_dim(); ++c)
        q[static_cast<std::size_t>(i * a.q_dim() + c)] += w.bq[c];
      for (std::int64_t c = 0; c < a.kv_dim(); ++c) {
        k[static_cast<std::size_t>(i * a.kv_dim() + c)] += w.bk[c];
        v[static_cast<std::size_t>(i * a.kv_dim() + c)] += w.bv[c];
      }
    }
  }
  if (cfg.qk_norm) {
    q = ref::rmsnorm(q, t * a.n_heads, a.head_dim, w.q_norm.values(), cfg.rms_eps);
    k = ref::rmsnorm(k, t * a.n_kv_heads, a.head_dim, w.k_norm.values(), cfg.rms_eps);
  }
  std::vector<std::int64_t> pos;
  for (std::size_t s = 0; s + 1 < off.size(); ++s)
    for (std::int64_t i = off[s]; i < off[s + 1]; ++i)
      pos.push_back(i - off[s]);
  ref::rope(q, t, a.n_heads, a.head_dim, pos, a.rope_theta);
  ref::rope(k, t, a.n_kv_heads, a.head_dim, pos, a.rope_theta);
  const double scale = a.scale != 0.0f ? a.scale : 1.0 / std::sqrt(double(a.head_dim));
  const ref::vec att = ref::attention_prefill(q, k, v, off, a.n_heads, a.n_kv_heads,
                                              a.head_dim, scale, a.window);
  ref::vec h = ref::linear(att, t, a.q_dim(), w.wo);
  if (cfg.sandwich_norm)
    h = ref::rmsnorm(h, t, d, w.attn_out_norm.values(), cfg.rms_eps);
  for (std::size_t i = 0; i < h.size(); ++i)
    h[i] += xd[i];
  const ref::vec n2 = ref::rmsnorm(h, t, d, w.mlp_norm.values(), cfg.rms_eps);
  ref::vec f;
  if (const auto* mlp = std::get_if<swiglu_weights>(&w.ffn)) {
    if (cfg.activation == mlp_activation::gelu_tanh) {
      f = ref::linear(n2, t, d, mlp->gate);
      const ref::vec u = ref::linear(n2, t, d, mlp->up);
      for (std::size_t i = 0; i < f.size(); ++i)
        f[i] = ref::gelu_tanh(f[i]) * u[i];
      f = ref::linear(f, t, mlp->gate.dim(0), mlp->down);
    } else {
      f = ref::swiglu(n2, t, d, mlp->gate, mlp->up, mlp->down);
    }
  } else {
    f = moe_reference(std::get<moe_weights>(w.ffn), n2, t, d);
  }
  if (cfg.sandwich_norm)
    f = ref::rmsnorm(f, t, d, w.mlp_out_norm.values(), cfg.rms_eps);
  for (std::size_t i = 0; i < f.size(); ++i)
    f[i] += h[i];
  return f;
}

std::vector<std::int64_t> offsets_of(const std::vector<std::int64_t>& lengths) {
  std::vector<std::int64_t> off = {0};
  for (auto l : lengths)
    off.push_back(off.back() + l);
  return off;
}

TEST(SwigluMlp, MatchesReference) {
  for (const auto& [rows, d, f] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 8, 16},
                                   {3, 17, 5}, {17, 32, 48}}) {
    cpu_backend be;
    const swiglu_weights w = random_mlp(d, f, 7 + rows);
    const tensor x = ref::random_tensor({rows, d}, 3 + rows);
    auto y = swiglu_mlp(be, w, x);
    ASSERT_TRUE(y.ok()) << y.status();
    const ref::vec want = ref::swiglu(ref::to_double(x.values()), rows, d, w.gate, w.up, w.down);
    EXPECT_LE(ref::rel_err(y->values(), want), tol);
    EXPECT_EQ(be.launches().to_string(), "gemm=3 silu_mul=1");
  }
}

TEST(MoeRouter, SoftmaxTopKRenormalisedWithLowIndexTies) {
  cpu_backend be;
  // Token 0: clear order. Token 1: a three-way tie at the top: lower indices win.
  // Token 2: all equal. Token 3: tie for the second place.
  const tensor logits({4, 5}, {0.5f, 2.0f, -1.0f, 1.0f, 0.0f,  //
                               3.0f, 1.0f, 3.0f, 0.0f, 3.0f,   //
                               1.0f, 1.0f, 1.0f, 1.0f, 1.0f,   //
                               -2.0f, 0.5f, 4.0f, 0.5f, -1.0f});
  auto r = be.router_topk(logits, 2, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->expert, (std::vector<std::int32_t>{1, 3, 0, 2, 0, 1, 2, 1}));
  for (std::int64_t t = 0; t < 4; ++t) {
    const ref::vec l = ref::to_double({logits.data() + t * 5, 5});
    const std::vector<int> chosen = ref::top_experts(l, 2);
    const ref::vec p = ref::topk_weights(l, chosen);
    for (std::size_t j = 0; j < 2; ++j) {
      EXPECT_EQ(r->expert[static_cast<std::size_t>(t * 2) + j], chosen[j]);
      EXPECT_NEAR(r->weight[static_cast<std::size_t>(t * 2) + j], p[j], 1e-5 * p[j]);
    }
    EXPECT_NEAR(r->weight[static_cast<std::size_t>(t * 2)] +
                    r->weight[static_cast<std::size_t>(t * 2 + 1)],
                1.0, 1e-6);
  }
  // Dispatch plan: rows grouped by expert, ascending token within an expert.
  EXPECT_EQ(r->expert_offsets, (std::vector<std::int64_t>{0, 2, 5, 7, 8, 8}));
  EXPECT_EQ(r->token_of_row, (std::vector<std::int32_t>{1, 2, 0, 2, 3, 1, 3, 0}));
  for (std::size_t s = 0; s < 8; ++s)
    EXPECT_EQ(r->token_of_row[static_cast<std::size_t>(r->row_of_slot[s])],
              static_cast<std::int32_t>(s / 2));
  EXPECT_EQ(be.launches()[op::router_topk], 1u);

  EXPECT_FALSE(be.router_topk(logits, 0, true).ok());
  EXPECT_FALSE(be.router_topk(logits, 6, true).ok());
  tensor bad = logits;
  bad[7] = NAN;
  EXPECT_FALSE(be.router_topk(bad, 2, true).ok());
}

TEST(MoeRouter, RandomLogitsMatchReference) {
  cpu_backend be;
  for (const bool renormalise : {true, false})
  for (const auto& [tokens, experts, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{
                                               1, 1, 1},
                                           {3, 8, 2}, {17, 16, 4}, {5, 3, 3}, {9, 60, 4}}) {
    SCOPED_TRACE(testing::Message() << (renormalise ? "renormalised " : "as they are ")
                                    << experts << " experts, k " << k);
    const tensor logits = ref::random_tensor({tokens, experts}, 40 + tokens, 4.0);
    auto r = be.router_topk(logits, k, renormalise);
    ASSERT_TRUE(r.ok());
    double total = 0.0;
    std::vector<std::int64_t> per_expert(static_cast<std::size_t>(experts), 0);
    for (std::int64_t t = 0; t < tokens; ++t) {
      const ref::vec l = ref::to_double({logits.data() + t * experts,
                                         static_cast<std::size_t>(experts)});
      const std::vector<int> chosen = ref::top_experts(l, k);
      const ref::vec p = ref::topk_weights(l, chosen, renormalise);
      for (std::int64_t j = 0; j < k; ++j) {
        const auto s = static_cast<std::size_t>(t * k + j);
        EXPECT_EQ(r->expert[s], chosen[static_cast<std::size_t>(j)]);
        // Relative: probabilities of a few percent are held to 1e-5 of themselves.
        EXPECT_NEAR(r->weight[s], p[static_cast<std::size_t>(j)],
                    1e-5 * p[static_cast<std::size_t>(j)]);
        total += r->weight[s];
        ++per_expert[static_cast<std::size_t>(chosen[static_cast<std::size_t>(j)])];
      }
    }
    // Renormalised, each token's weights sum to 1; as they are, to less
    // where k < experts.
    if (renormalise || k == experts)
      EXPECT_NEAR(total, static_cast<double>(tokens), 1e-5);
    else
      EXPECT_LT(total, static_cast<double>(tokens) - 1e-3);
    for (std::int64_t e = 0; e < experts; ++e)
      EXPECT_EQ(r->expert_rows(e), per_expert[static_cast<std::size_t>(e)]);
  }
}

TEST(MoeLayer, MatchesReferenceWithOneGroupedGemmPerProjection) {
  for (const std::int64_t d : {16, 40})
  for (const std::int64_t rows : {1, 3, 17}) {
    cpu_backend be;
    const moe_weights w = random_moe(d, d * 3 / 4, 6, 2, 500 + rows);
    const tensor x = ref::random_tensor({rows, d}, 600 + rows);
    auto y = moe_layer(be, w, x);
    ASSERT_TRUE(y.ok()) << y.status();
    const ref::vec want = moe_reference(w, ref::to_double(x.values()), rows, d);
    EXPECT_LE(ref::rel_err(y->values(), want), tol) << rows << " tokens at width " << d;
    EXPECT_EQ(be.launches().to_string(),
              "gemm=1 gemm_grouped=3 silu_mul=1 router_topk=1 moe_gather=1 moe_combine=1");
  }
}

// Qwen-MoE: weights not renormalised, and the shared expert behind its
// sigmoid gate (or ungated) added to the routed experts' sum.
TEST(MoeLayer, QwenSharedExpertAndUnrenormalisedWeightsMatchReference) {
  for (const bool gated : {true, false}) {
    cpu_backend be;
    const std::int64_t d = 16;
    moe_weights w = random_qwen_moe(d, 12, 6, 2, 700);
    if (!gated)
      w.shared_gate = tensor();
    const tensor x = ref::random_tensor({9, d}, 701);
    auto y = moe_layer(be, w, x);
    ASSERT_TRUE(y.ok()) << y.status();
    const ref::vec want = moe_reference(w, ref::to_double(x.values()), 9, d);
    EXPECT_LE(ref::rel_err(y->values(), want), tol) << (gated ? "gated" : "ungated");
    EXPECT_EQ(be.launches().to_string(),
              gated ? "gemm=5 gemm_grouped=3 silu_mul=2 add_gated=1 router_topk=1 moe_gather=1 "
                      "moe_combine=1"
                    : "gemm=4 gemm_grouped=3 silu_mul=2 add=1 router_topk=1 moe_gather=1 "
                      "moe_combine=1");
    // Each part matters: renormalised, or without the shared expert, the
    // output is another.
    moe_weights other = w;
    other.renormalise = true;
    EXPECT_GT(ref::rel_err(moe_layer(be, other, x)->values(), want), 1e-3);
    other = w;
    other.shared = {};
    other.shared_gate = tensor();
    EXPECT_GT(ref::rel_err(moe_layer(be, other, x)->values(), want), 1e-3);
  }
  // Shapes: a gate without a shared expert, a shared expert of the wrong
  // width, a gate of the wrong shape.
  cpu_backend be;
  const tensor x = ref::random_tensor({3, 16}, 702);
  moe_weights w = random_qwen_moe(16, 12, 6, 2, 700);
  moe_weights bad = w;
  bad.shared = {};
  EXPECT_NE(moe_layer(be, bad, x).status().message().find("shared_gate without a shared expert"),
            std::string::npos);
  bad = w;
  bad.shared = random_mlp(15, 8, 1);
  EXPECT_NE(moe_layer(be, bad, x).status().message().find("moe shared expert: mlp gate"),
            std::string::npos);
  bad = w;
  bad.shared_gate = tensor({2, 16});
  EXPECT_NE(moe_layer(be, bad, x).status().message().find("moe shared_gate is [2, 16]"),
            std::string::npos);
}

TEST(AddGated, AddsTheSigmoidGatedRows) {
  cpu_backend be;
  tensor y = ref::random_tensor({5, 7}, 710);
  const tensor x = ref::random_tensor({5, 7}, 711);
  tensor gate = ref::random_tensor({5, 1}, 712, 4.0);
  gate[2] = -100.0f; // sigmoid 0: row 2 unchanged
  const tensor y0 = y;
  ASSERT_TRUE(be.add_gated(y, x, gate).ok());
  for (std::int64_t t = 0; t < 5; ++t) {
    const double g = 1.0 / (1.0 + std::exp(-static_cast<double>(gate[t])));
    for (std::int64_t c = 0; c < 7; ++c)
      EXPECT_NEAR(y[t * 7 + c], y0[t * 7 + c] + g * x[t * 7 + c], 1e-6) << t << ", " << c;
  }
  for (std::int64_t c = 0; c < 7; ++c)
    EXPECT_EQ(y[14 + c], y0[14 + c]);
  const auto wrong = be.add_gated(y, x, tensor({5, 2}));
  EXPECT_NE(wrong.message().find("gate is [5 x 2], expected [5, 1]"), std::string::npos) << wrong;
  EXPECT_FALSE(be.add_gated(y, tensor({4, 7}), tensor({5, 1})).ok());
  EXPECT_EQ(be.launches()[op::add_gated], 1u);
}

TEST(MoeLayer, GatherAndCombineInvertEachOther) {
  cpu_backend be;
  const tensor x = ref::random_tensor({7, 5}, 1);
  auto r = be.router_topk(ref::random_tensor({7, 4}, 2), 3, true);
  ASSERT_TRUE(r.ok());
  auto xs = be.moe_gather(x, *r);
  ASSERT_TRUE(xs.ok());
  EXPECT_EQ(xs->shape(), (tensor::shape_type{21, 5}));
  for (std::int64_t row = 0; row < 21; ++row)
    for (std::int64_t c = 0; c < 5; ++c)
      EXPECT_EQ((*xs)[row * 5 + c], x[r->token_of_row[static_cast<std::size_t>(row)] * 5 + c]);
  // Weights sum to 1, so combining copies of x gives x back (up to rounding).
  auto back = be.moe_combine(*xs, *r);
  ASSERT_TRUE(back.ok());
  EXPECT_LE(ref::rel_err(back->values(), ref::to_double(x.values())), 1e-6);
  moe_routing broken = *r;
  broken.row_of_slot[4] = 21;
  EXPECT_FALSE(be.moe_gather(x, broken).ok());
  EXPECT_FALSE(be.moe_combine(*xs, broken).ok());
  // Two slots on one dispatched row: refused (gather would write it twice).
  moe_routing twice = *r;
  twice.row_of_slot[4] = twice.row_of_slot[5];
  auto repeated = be.moe_gather(x, twice);
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.status().message().find("repeats a row"), std::string::npos)
      << repeated.status();
  EXPECT_FALSE(be.moe_gather(tensor({6, 5}), *r).ok());
}

TEST(DecoderLayer, PrefillMatchesReferenceOnRaggedBatches) {
  for (const decoder_config& cfg : {small_config(), wide_config()})
  for (const bool moe : {false, true})
    for (const auto& lengths : {std::vector<std::int64_t>{0}, std::vector<std::int64_t>{1},
                                std::vector<std::int64_t>{3, 17},
                                std::vector<std::int64_t>{1, 3, 0, 17}}) {
      cpu_backend be;
      const decoder_layer_weights w = random_layer(cfg, moe, moe ? 300 : 200);
      const auto off = offsets_of(lengths);
      const tensor x = ref::random_tensor({off.back(), cfg.hidden}, 77 + off.back());
      auto y = decoder_layer_prefill(be, cfg, w, x, off);
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_EQ(y->shape(), (tensor::shape_type{off.back(), cfg.hidden}));
      EXPECT_LE(ref::rel_err(y->values(), decoder_reference(cfg, w, x, off)), tol)
          << (moe ? "moe" : "dense") << " at width " << cfg.hidden << ", " << lengths.size()
          << " sequences";
      // One launch per kernel kind regardless of the number of sequences.
      EXPECT_EQ(be.launches().to_string(),
                moe ? "gemm=5 gemm_grouped=3 rmsnorm=2 rope=1 attention_prefill=1 silu_mul=1 "
                      "add=2 router_topk=1 moe_gather=1 moe_combine=1"
                    : "gemm=7 rmsnorm=2 rope=1 attention_prefill=1 silu_mul=1 add=2");
    }
}

TEST(DecoderLayer, QwenMoeLayerMatchesReference) {
  const decoder_config cfg = qwen_config();
  const decoder_layer_weights w = random_layer(cfg, true, 260);
  const auto off = offsets_of({1, 6, 0, 17});
  const tensor x = ref::random_tensor({off.back(), cfg.hidden}, 261);
  cpu_backend be;
  auto y = decoder_layer_prefill(be, cfg, w, x, off);
  ASSERT_TRUE(y.ok()) << y.status();
  const ref::vec want = decoder_reference(cfg, w, x, off);
  EXPECT_LE(ref::rel_err(y->values(), want), tol);
  EXPECT_EQ(be.launches().to_string(),
            "gemm=9 gemm_grouped=3 rmsnorm=2 rope=1 attention_prefill=1 silu_mul=2 add=2 "
            "add_gated=1 router_topk=1 moe_gather=1 moe_combine=1");
  // The biases are used, and required exactly when the config has them.
  decoder_layer_weights no_bias = w;
  no_bias.bv = tensor({cfg.attn.kv_dim()});
  EXPECT_GT(ref::rel_err(decoder_layer_prefill(be, cfg, no_bias, x, off)->values(), want), 1e-3);
  no_bias.bv = tensor();
  EXPECT_NE(decoder_layer_prefill(be, cfg, no_bias, x, off).status().message().find("bv is"),
            std::string::npos);
  decoder_config plain = cfg;
  plain.qkv_bias = false;
  EXPECT_NE(decoder_layer_prefill(be, plain, w, x, off).status().message().find(
                "but the layer has no qkv_bias"),
            std::string::npos);
}

TEST(DecoderLayer, GemmaLayerMatchesReference) {
  const decoder_config cfg = gemma_config();
  const decoder_layer_weights w = random_layer(cfg, false, 250);
  // Sequences shorter and longer than the window of 5.
  const auto off = offsets_of({1, 3, 0, 17, 6});
  const tensor x = ref::random_tensor({off.back(), cfg.hidden}, 251);
  cpu_backend be;
  auto y = decoder_layer_prefill(be, cfg, w, x, off);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LE(ref::rel_err(y->values(), decoder_reference(cfg, w, x, off)), tol);
  EXPECT_EQ(be.launches().to_string(),
            "gemm=7 rmsnorm=6 rope=1 attention_prefill=1 gelu_mul=1 add=2");
  // Each extra is there: without any one of them the layer is another.
  for (int drop = 0; drop < 4; ++drop) {
    decoder_config other = cfg;
    decoder_layer_weights wo = w;
    if (drop == 0)
      other.attn.window = 0;
    if (drop == 1)
      other.activation = mlp_activation::silu;
    if (drop == 2) {
      other.qk_norm = false;
      wo.q_norm = wo.k_norm = tensor();
    }
    if (drop == 3) {
      other.sandwich_norm = false;
      wo.attn_out_norm = wo.mlp_out_norm = tensor();
    }
    auto z = decoder_layer_prefill(be, other, wo, x, off);
    ASSERT_TRUE(z.ok()) << z.status();
    EXPECT_GT(ref::rel_err(z->values(), decoder_reference(cfg, w, x, off)), 100 * tol)
        << "without extra " << drop;
  }
}

TEST(DecoderLayer, ForwardTwiceIsBitwiseIdentical) {
  const decoder_config cfg = small_config();
  for (const bool moe : {false, true}) {
    const decoder_layer_weights w = random_layer(cfg, moe, 900);
    const std::vector<std::int64_t> off = {0, 3, 20, 21};
    const tensor x = ref::random_tensor({21, cfg.hidden}, 901);
    cpu_backend a;
    cpu_backend b;
    auto y1 = decoder_layer_prefill(a, cfg, w, x, off);
    auto y2 = decoder_layer_prefill(a, cfg, w, x, off);
    auto y3 = decoder_layer_prefill(b, cfg, w, x, off);
    ASSERT_TRUE(y1.ok() && y2.ok() && y3.ok());
    EXPECT_TRUE(y1->bitwise_equal(*y2));
    EXPECT_TRUE(y1->bitwise_equal(*y3));
  }
}

TEST(DecoderLayer, DecodeContinuesPrefill) {
  // Prefill n tokens into the cache, decode token n+1: the result equals the
  // last row of a prefill of n+1 tokens.
  for (const auto& [name, cfg, moe] : layer_variants()) {
    SCOPED_TRACE(name);
    const decoder_layer_weights w = random_layer(cfg, moe, moe ? 1300 : 1200);
    const std::vector<std::int64_t> lengths = {3, 1, 17};
    const std::int64_t n_seq = 3;
    std::vector<tensor> seqs;
    for (std::int64_t s = 0; s < n_seq; ++s)
      seqs.push_back(ref::random_tensor({lengths[static_cast<std::size_t>(s)] + 1, cfg.hidden},
                                        1400 + s));
    // The ragged prefill batch of the first lengths[s] tokens, and the next tokens.
    std::vector<float> prefix;
    tensor next({n_seq, cfg.hidden});
    std::vector<std::int64_t> off = {0};
    for (std::int64_t s = 0; s < n_seq; ++s) {
      const tensor& q = seqs[static_cast<std::size_t>(s)];
      const std::int64_t l = lengths[static_cast<std::size_t>(s)];
      prefix.insert(prefix.end(), q.data(), q.data() + l * cfg.hidden);
      std::copy(q.data() + l * cfg.hidden, q.data() + (l + 1) * cfg.hidden,
                next.data() + s * cfg.hidden);
      off.push_back(off.back() + l);
    }
    const tensor x({off.back(), cfg.hidden}, prefix);

    cpu_backend be;
    kv_cache cache(n_seq, 24, cfg.attn.kv_dim());
    ASSERT_TRUE(decoder_layer_prefill(be, cfg, w, x, off, &cache).ok());
    EXPECT_EQ(be.launches()[op::kv_store], 1u);
    be.reset_launch_counts();
    auto y = decoder_layer_decode(be, cfg, w, next, cache, lengths);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(be.launches()[op::attention_decode], 1u);
    EXPECT_EQ(be.launches()[op::kv_store], 1u);
    EXPECT_EQ(be.launches()[op::rope], 1u);

    for (std::int64_t s = 0; s < n_seq; ++s) {
      const tensor& full = seqs[static_cast<std::size_t>(s)];
      cpu_backend ref_be;
      const std::vector<std::int64_t> one = {0, full.rows()};
      auto want = decoder_layer_prefill(ref_be, cfg, w, full, one);
      ASSERT_TRUE(want.ok());
      const std::span<const float> last(want->data() + (full.rows() - 1) * cfg.hidden,
                                        static_cast<std::size_t>(cfg.hidden));
      EXPECT_LE(ref::rel_err({y->data() + s * cfg.hidden, static_cast<std::size_t>(cfg.hidden)},
                             ref::to_double(last)),
                tol)
          << "slot " << s;
    }
    // A full slot cannot take another token.
    const std::vector<std::int64_t> full = {24, 0, 0};
    EXPECT_FALSE(decoder_layer_decode(be, cfg, w, next, cache, full).ok());
    // Decode into empty slots (position 0) is a prefill of one token each.
    kv_cache empty(n_seq, 24, cfg.attn.kv_dim());
    const std::vector<std::int64_t> at_zero = {0, 0, 0}, one_each = {0, 1, 2, 3};
    auto first = decoder_layer_decode(be, cfg, w, next, empty, at_zero);
    ASSERT_TRUE(first.ok()) << first.status();
    cpu_backend ref_be;
    auto want = decoder_layer_prefill(ref_be, cfg, w, next, one_each);
    ASSERT_TRUE(want.ok());
    EXPECT_LE(ref::rel_err(first->values(), ref::to_double(want->values())), tol);
  }
}

// Prefix caching: the first P positions' keys and values, kept from a full
// prefill, let the rest of the sequence be prefilled alone with the same
// outputs; sequences of one ragged batch with different pasts do not mix.
TEST(DecoderLayer, ExtendContinuesACachedPrefix) {
  for (const auto& [name, cfg, moe] : layer_variants()) {
    SCOPED_TRACE(name);
    const auto w = random_layer(cfg, moe, 1500);
    const std::vector<std::int64_t> total = {9, 5, 20};
    const std::vector<std::int64_t> cached = {4, 0, 16};
    const std::int64_t kv = cfg.attn.kv_dim();
    std::vector<tensor> full_in, full_out;
    std::vector<kv_cache> caches;
    for (std::size_t s = 0; s < total.size(); ++s) {
      full_in.push_back(ref::random_tensor({total[s], cfg.hidden}, 1600 + s));
      cpu_backend be;
      caches.emplace_back(1, total[s], kv);
      const std::vector<std::int64_t> one = {0, total[s]};
      auto y = decoder_layer_prefill(be, cfg, w, full_in.back(), one, &caches.back());
      ASSERT_TRUE(y.ok()) << y.status();
      full_out.push_back(std::move(*y));
    }
    // The uncached suffixes as one ragged batch, each with its cached rows.
    std::vector<float> rows;
    std::vector<std::int64_t> off = {0};
    std::vector<past_kv> past;
    for (std::size_t s = 0; s < total.size(); ++s) {
      const auto& in = full_in[s];
      rows.insert(rows.end(), in.data() + cached[s] * cfg.hidden, in.data() + in.numel());
      off.push_back(off.back() + total[s] - cached[s]);
      past.push_back({{caches[s].k.data(), cached[s], kv}, {caches[s].v.data(), cached[s], kv}});
    }
    const tensor x({off.back(), cfg.hidden}, rows);
    cpu_backend be;
    auto got = decoder_layer_extend(be, cfg, w, x, off, past);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(be.launches()[op::attention_prefill], 1u);
    EXPECT_EQ(be.launches()[op::rope], 1u);
    for (std::size_t s = 0; s < total.size(); ++s) {
      const auto n = static_cast<std::size_t>((total[s] - cached[s]) * cfg.hidden);
      const std::span<const float> want(full_out[s].data() + cached[s] * cfg.hidden, n);
      EXPECT_LE(ref::rel_err({got->out.data() + off[s] * cfg.hidden, n}, ref::to_double(want)),
                tol)
          << "sequence " << s;
      // The new keys and values are the cache's rows P.. of the full prefill.
      const auto nk = static_cast<std::size_t>((total[s] - cached[s]) * kv);
      const std::span<const float> want_k(caches[s].k.data() + cached[s] * kv, nk);
      const std::span<const float> want_v(caches[s].v.data() + cached[s] * kv, nk);
      EXPECT_LE(ref::rel_err({got->k.data() + off[s] * kv, nk}, ref::to_double(want_k)), tol);
      EXPECT_LE(ref::rel_err({got->v.data() + off[s] * kv, nk}, ref::to_double(want_v)), tol);
    }
  }
}

TEST(DecoderLayer, ExtendWithoutPastIsPrefillBitForBit) {
  const auto cfg = small_config();
  const auto w = random_layer(cfg, false, 1700);
  const tensor x = ref::random_tensor({11, cfg.hidden}, 1701);
  const std::vector<std::int64_t> off = {0, 4, 11};
  const std::vector<past_kv> none(2);
  cpu_backend a, b;
  auto want = decoder_layer_prefill(a, cfg, w, x, off);
  auto got = decoder_layer_extend(b, cfg, w, x, off, none);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_TRUE(std::ranges::equal(want->values(), got->out.values()));
  EXPECT_EQ(a.launches().by_op, b.launches().by_op);
  // A past of the wrong width, or one past too few, is refused.
  const tensor bad({3, cfg.attn.kv_dim() + 1});
  const std::vector<past_kv> wrong = {{bad.matrix(), bad.matrix()}, {}};
  EXPECT_FALSE(decoder_layer_extend(b, cfg, w, x, off, wrong).ok());
  EXPECT_FALSE(decoder_layer_extend(b, cfg, w, x, off, std::span(none).first(1)).ok());
}

// decoder_layer_extend, and decoder_layer_prefill without a cache, run as
// the backend's whole-layer call (a GPU backend's device-side layer); with a
// cache, prefill goes kernel by kernel. The default call is the layer built
// from the kernels, bit for bit.
TEST(DecoderLayer, ExtendAndPrefillWithoutACacheRunAsTheBackendsLayerCall) {
  const auto cfg = small_config();
  for (const bool moe : {false, true}) {
    const auto w = random_layer(cfg, moe, 1800);
    const tensor x = ref::random_tensor({9, cfg.hidden}, 1801);
    const tensor pk = ref::random_tensor({5, cfg.attn.kv_dim()}, 1802);
    const tensor pv = ref::random_tensor({5, cfg.attn.kv_dim()}, 1803);
    const std::vector<std::int64_t> off = {0, 3, 9};
    const std::vector<past_kv> past = {{pk.matrix(), pv.matrix()}, {}};
    recording_backend b;
    cpu_backend c;
    auto got = decoder_layer_extend(b, cfg, w, x, off, past);
    EXPECT_EQ(b.layer_calls, 1);
    auto want = decoder_layer_extend_from_kernels(c, cfg, w, x, off, past);
    ASSERT_TRUE(got.ok() && want.ok());
    EXPECT_TRUE(std::ranges::equal(got->out.values(), want->out.values()));
    EXPECT_TRUE(std::ranges::equal(got->k.values(), want->k.values()));
    EXPECT_EQ(b.launches().by_op, c.launches().by_op);

    ASSERT_TRUE(decoder_layer_prefill(b, cfg, w, x, off).ok());
    EXPECT_EQ(b.layer_calls, 2);
    kv_cache cache(2, 8, cfg.attn.kv_dim());
    ASSERT_TRUE(decoder_layer_prefill(b, cfg, w, x, off, &cache).ok());
    EXPECT_EQ(b.layer_calls, 2);
    EXPECT_EQ(b.launches()[op::kv_store], 1u);
  }
}

// keep_resident(backend, layer) names every matrix a GEMM of the layer takes.
TEST(DecoderLayer, KeepResidentNamesEveryGemmWeight) {
  const auto cfg = small_config();
  for (const bool moe : {false, true}) {
    const auto w = random_layer(cfg, moe, 1900);
    recording_backend b;
    ASSERT_TRUE(keep_resident(b, w).ok());
    std::set<const float*> want = {w.wq.data(), w.wk.data(), w.wv.data(), w.wo.data()};
    auto mlp = [&](const swiglu_weights& m) {
      want.insert({m.gate.data(), m.up.data(), m.down.data()});
    };
    if (moe) {
      const auto& m = std::get<moe_weights>(w.ffn);
      want.insert(m.router.data());
      for (const auto& e : m.experts)
        mlp(e);
    } else {
      mlp(std::get<swiglu_weights>(w.ffn));
    }
    EXPECT_EQ(b.kept, want);
    // The cpu backend itself keeps nothing and computes the same.
    cpu_backend c;
    EXPECT_TRUE(keep_resident(c, w).ok());
    EXPECT_EQ(c.resident_bytes(), 0);
  }
}

decoder_layer_weights w_ok(const decoder_config& cfg) { return random_layer(cfg, false, 7); }

TEST(DecoderLayer, ValidateNamesTheBadWeight) {
  const decoder_config cfg = small_config();
  decoder_layer_weights w = random_layer(cfg, false, 5);
  EXPECT_TRUE(validate(cfg, w).ok());
  w.wk = tensor({cfg.attn.kv_dim() + 1, cfg.hidden});
  auto st = validate(cfg, w);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("wk"), std::string::npos) << st.message();

  decoder_layer_weights m = random_layer(cfg, true, 6);
  std::get<moe_weights>(m.ffn).experts[2].down = tensor({cfg.hidden, 23});
  st = validate(cfg, m);
  EXPECT_NE(st.message().find("expert 2"), std::string::npos) << st.message();

  // Gemma's norms: there exactly when the config asks for them.
  const decoder_config gcfg = gemma_config();
  decoder_layer_weights g = random_layer(gcfg, false, 7);
  EXPECT_TRUE(validate(gcfg, g).ok());
  decoder_config no_qk = gcfg;
  no_qk.qk_norm = false;
  EXPECT_NE(validate(no_qk, g).message().find("q_norm"), std::string::npos);
  g.k_norm = tensor({gcfg.attn.head_dim + 1});
  EXPECT_NE(validate(gcfg, g).message().find("k_norm"), std::string::npos);
  g = random_layer(gcfg, false, 7);
  g.mlp_out_norm = tensor();
  EXPECT_NE(validate(gcfg, g).message().find("mlp_out_norm"), std::string::npos);
  decoder_config gelu_moe = cfg;
  gelu_moe.activation = mlp_activation::gelu_tanh;
  EXPECT_NE(validate(gelu_moe, random_layer(cfg, true, 8)).message().find("silu"),
            std::string::npos);
  cpu_backend be;
  EXPECT_FALSE(
      decoder_layer_prefill(be, cfg, m, tensor({2, cfg.hidden}), std::vector<std::int64_t>{0, 2})
          .ok());
  EXPECT_EQ(be.launches().total(), 0u);
  // Offsets that do not cover x, with or without a cache: refused, nothing run.
  const tensor x({4, cfg.hidden});
  kv_cache cache(2, 8, cfg.attn.kv_dim());
  for (const auto& off : {std::vector<std::int64_t>{}, std::vector<std::int64_t>{0, 3},
                          std::vector<std::int64_t>{0, 3, 2, 4}})
    for (kv_cache* c : {static_cast<kv_cache*>(nullptr), &cache}) {
      auto r = decoder_layer_prefill(be, cfg, w_ok(cfg), x, off, c);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.status().message().find("seq_offsets"), std::string::npos) << r.status();
    }
  EXPECT_EQ(be.launches().total(), 0u);
}

} // namespace
} // namespace satemu::gpu
