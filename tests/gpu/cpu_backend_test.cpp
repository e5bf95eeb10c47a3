// The cpu backend's transformer kernels against naive double-precision
// references: RMSNorm, RoPE, causal attention over ragged batches (MHA, GQA,
// MQA), decode against a KV cache, kv_store, silu_mul, add; plus input errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

constexpr double tol = 1e-5;

TEST(RmsNorm, MatchesReference) {
  cpu_backend be;
  std::uint64_t seed = 1;
  for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 17},
                                   {17, 64}, {5, 333}}) {
    const tensor x = ref::random_tensor({rows, cols}, seed++, 3.0);
    const tensor w = ref::random_tensor({cols}, seed++);
    for (const float eps : {1e-6f, 1e-2f}) {
      auto y = be.rmsnorm(x, w, eps);
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_EQ(y->shape(), (tensor::shape_type{rows, cols}));
      const ref::vec want = ref::rmsnorm(ref::to_double(x.values()), rows, cols, w.values(), eps);
      EXPECT_LE(ref::rel_err(y->values(), want), tol) << rows << "x" << cols << " eps " << eps;
    }
  }
  EXPECT_EQ(be.launches()[op::rmsnorm], 8u);
  EXPECT_FALSE(be.rmsnorm(tensor({2, 4}), tensor({3}), 1e-5f).ok());
  EXPECT_FALSE(be.rmsnorm(tensor({2, 4}), tensor({4}), -1.0f).ok());
}

TEST(Rope, MatchesRotateHalfReference) {
  cpu_backend be;
  attention_config cfg{.n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .rope_theta = 10000.0f};
  for (const std::int64_t tokens : {1, 3, 17}) {
    tensor q = ref::random_tensor({tokens, cfg.q_dim()}, 10 + tokens);
    tensor k = ref::random_tensor({tokens, cfg.kv_dim()}, 20 + tokens);
    std::vector<std::int64_t> pos(static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t)
      pos[static_cast<std::size_t>(t)] = (t * 37) % 1000 + (t == 0 ? 0 : 500);
    ref::vec qw = ref::to_double(q.values());
    ref::vec kw = ref::to_double(k.values());
    ref::rope(qw, tokens, cfg.n_heads, cfg.head_dim, pos, cfg.rope_theta);
    ref::rope(kw, tokens, cfg.n_kv_heads, cfg.head_dim, pos, cfg.rope_theta);
    ASSERT_TRUE(be.rope(cfg, q, k, pos).ok());
    EXPECT_LE(ref::rel_err(q.values(), qw), tol);
    EXPECT_LE(ref::rel_err(k.values(), kw), tol);
  }
  // Position 0 is the identity; q alone (k with no rows) works with another theta.
  cfg.rope_theta = 500000.0f;
  tensor q = ref::random_tensor({2, cfg.q_dim()}, 3);
  const tensor q0 = q;
  tensor no_k({0, cfg.kv_dim()});
  const std::vector<std::int64_t> pos = {0, 123};
  ASSERT_TRUE(be.rope(cfg, q, no_k, pos).ok());
  for (std::int64_t j = 0; j < cfg.q_dim(); ++j)
    EXPECT_EQ(q[j], q0[j]);
  ref::vec qw = ref::to_double(q0.values());
  ref::rope(qw, 2, cfg.n_heads, cfg.head_dim, pos, cfg.rope_theta);
  EXPECT_LE(ref::rel_err(q.values(), qw), tol);
  EXPECT_EQ(be.launches()[op::rope], 4u);
}

// Llama 3's scaled frequencies, written out for llama-3.2-1b (theta 5e5,
// head_dim 64, factor 32, low 1, high 4, original context 8192): wavelengths
// 2 pi / f under 8192 / 4 keep f (i <= 14), over 8192 / 1 divide it by 32
// (i >= 18), and i = 15..17 blend the two.
TEST(Rope, Llama3ScalingOfTheFrequencies) {
  const llama3_rope_scaling s{.factor = 32, .low_freq_factor = 1, .high_freq_factor = 4,
                              .original_max_position = 8192};
  const std::vector<double> plain = rope_inv_freq(500000.0, 64);
  const std::vector<double> scaled = rope_inv_freq(500000.0, 64, s);
  ASSERT_EQ(plain.size(), 32u);
  ASSERT_EQ(scaled.size(), 32u);
  for (std::size_t i = 0; i < 32; ++i) {
    const double f = std::pow(500000.0, -static_cast<double>(2 * i) / 64.0);
    EXPECT_NEAR(plain[i], f, 1e-15 * f) << i;
    double want = f;
    if (i >= 18) {
      want = f / 32;
    } else if (i >= 15) {
      const double smooth = (8192.0 * f / (2 * std::numbers::pi) - 1.0) / (4.0 - 1.0);
      EXPECT_GT(smooth, 0.0) << i;
      EXPECT_LT(smooth, 1.0) << i;
      want = (1 - smooth) * f / 32 + smooth * f;
    }
    EXPECT_NEAR(scaled[i], want, 1e-15 * f) << i;
  }
  EXPECT_EQ(scaled[0], 1.0);
  EXPECT_EQ(rope_inv_freq(500000.0, 64, llama3_rope_scaling{}), plain);

  // The kernel rotates by them.
  cpu_backend be;
  attention_config cfg{.n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .rope_theta = 500000.0f,
                       .rope_scaling = s};
  tensor q = ref::random_tensor({3, cfg.q_dim()}, 31);
  tensor k = ref::random_tensor({3, cfg.kv_dim()}, 32);
  const std::vector<std::int64_t> pos = {1, 4000, 100000};
  ref::vec qw = ref::to_double(q.values());
  ref::vec kw = ref::to_double(k.values());
  const std::vector<double> theta_freq = rope_inv_freq(static_cast<double>(cfg.rope_theta), 64, s);
  ref::rope(qw, 3, cfg.n_heads, cfg.head_dim, pos, theta_freq);
  ref::rope(kw, 3, cfg.n_kv_heads, cfg.head_dim, pos, theta_freq);
  ASSERT_TRUE(be.rope(cfg, q, k, pos).ok());
  EXPECT_LE(ref::rel_err(q.values(), qw), tol);
  EXPECT_LE(ref::rel_err(k.values(), kw), tol);
  // Not the unscaled rotation.
  ref::vec plain_q = ref::to_double(ref::random_tensor({3, cfg.q_dim()}, 31).values());
  ref::rope(plain_q, 3, cfg.n_heads, cfg.head_dim, pos, static_cast<double>(cfg.rope_theta));
  EXPECT_GT(ref::rel_err(q.values(), plain_q), 1e-3);
}

TEST(Rope, RejectsBadInput) {
  cpu_backend be;
  const attention_config cfg{.n_heads = 2, .n_kv_heads = 1, .head_dim = 4};
  tensor q({2, 8});
  tensor k({2, 4});
  EXPECT_FALSE(be.rope(cfg, q, k, std::vector<std::int64_t>{0}).ok());
  EXPECT_FALSE(be.rope(cfg, q, k, std::vector<std::int64_t>{0, -1}).ok());
  tensor bad_k({2, 8});
  EXPECT_FALSE(be.rope(cfg, q, bad_k, std::vector<std::int64_t>{0, 1}).ok());
  const attention_config odd{.n_heads = 2, .n_kv_heads = 1, .head_dim = 3};
  tensor q3({1, 6});
  tensor k3({1, 3});
  EXPECT_FALSE(be.rope(odd, q3, k3, std::vector<std::int64_t>{0}).ok());
  for (const llama3_rope_scaling bad : {
           llama3_rope_scaling{.factor = 0.5, .low_freq_factor = 1, .high_freq_factor = 4,
                               .original_max_position = 8192},
           llama3_rope_scaling{.factor = 8, .low_freq_factor = 4, .high_freq_factor = 4,
                               .original_max_position = 8192},
           llama3_rope_scaling{.factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                               .original_max_position = 0}}) {
    attention_config scaled = cfg;
    scaled.rope_scaling = bad;
    const absl::Status st = be.rope(scaled, q, k, std::vector<std::int64_t>{0, 1});
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("llama3 RoPE scaling"), std::string::npos) << st;
  }
  EXPECT_EQ(be.launches()[op::rope], 0u);
}

struct attn_case {
  std::int64_t heads, kv_heads, head_dim;
  std::vector<std::int64_t> lengths;
};

std::vector<std::int64_t> offsets_of(const std::vector<std::int64_t>& lengths) {
  std::vector<std::int64_t> off = {0};
  for (auto l : lengths)
    off.push_back(off.back() + l);
  return off;
}

TEST(AttentionPrefill, RaggedBatchesMatchReference) {
  const std::vector<attn_case> cases = {
      {4, 2, 8, {1, 3, 17}},      // GQA, odd lengths
      {2, 2, 16, {70, 1}},        // MHA, crosses the 64-query block
      {3, 1, 6, {5, 0, 2, 130}},  // MQA, an empty sequence, two blocks+
      {1, 1, 2, {1}},
  };
  std::uint64_t seed = 50;
  for (const attn_case& c : cases) {
    cpu_backend be;
    const attention_config cfg{.n_heads = c.heads, .n_kv_heads = c.kv_heads,
                               .head_dim = c.head_dim};
    const auto off = offsets_of(c.lengths);
    const std::int64_t t = off.back();
    const tensor q = ref::random_tensor({t, cfg.q_dim()}, seed++, 2.0);
    const tensor k = ref::random_tensor({t, cfg.kv_dim()}, seed++, 2.0);
    const tensor v = ref::random_tensor({t, cfg.kv_dim()}, seed++);
    auto out = be.attention_prefill(cfg, q, k, v, off);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->shape(), (tensor::shape_type{t, cfg.q_dim()}));
    const ref::vec want =
        ref::attention_prefill(ref::to_double(q.values()), ref::to_double(k.values()),
                               ref::to_double(v.values()), off, c.heads, c.kv_heads,
                               c.head_dim, 1.0 / std::sqrt(static_cast<double>(c.head_dim)));
    EXPECT_LE(ref::rel_err(out->values(), want), tol)
        << "heads " << c.heads << " kv " << c.kv_heads << " hd " << c.head_dim;
    EXPECT_EQ(be.launches()[op::attention_prefill], 1u) << "one launch for the whole batch";
    EXPECT_EQ(be.launches().total(), 1u);
  }
}

TEST(AttentionPrefill, ExplicitScaleAndSequenceIndependence) {
  cpu_backend be;
  const attention_config cfg{.n_heads = 2, .n_kv_heads = 1, .head_dim = 4, .scale = 0.3f};
  const std::vector<std::int64_t> off = {0, 3, 8};
  const tensor q = ref::random_tensor({8, 8}, 1);
  const tensor k = ref::random_tensor({8, 4}, 2);
  const tensor v = ref::random_tensor({8, 4}, 3);
  auto out = be.attention_prefill(cfg, q, k, v, off);
  ASSERT_TRUE(out.ok());
  const ref::vec want =
      ref::attention_prefill(ref::to_double(q.values()), ref::to_double(k.values()),
                             ref::to_double(v.values()), off, 2, 1, 4, 0.3);
  EXPECT_LE(ref::rel_err(out->values(), want), tol);
  // Sequence 1 alone gives the same rows: sequences do not see each other.
  const tensor q1({5, 8}, {q.data() + 24, q.data() + 64});
  const tensor k1({5, 4}, {k.data() + 12, k.data() + 32});
  const tensor v1({5, 4}, {v.data() + 12, v.data() + 32});
  auto alone = be.attention_prefill(cfg, q1, k1, v1, std::vector<std::int64_t>{0, 5});
  ASSERT_TRUE(alone.ok());
  for (std::int64_t i = 0; i < 40; ++i)
    EXPECT_NEAR((*alone)[i], (*out)[24 + i], 1e-6);
}

TEST(AttentionPrefill, SlidingWindowMatchesReference) {
  cpu_backend be;
  // Sequences shorter and longer than the kernel's 64-row score blocks.
  const std::vector<std::int64_t> off = {0, 1, 6, 6, 76, 226};
  const std::int64_t t = off.back();
  const attention_config base{.n_heads = 4, .n_kv_heads = 2, .head_dim = 8};
  const tensor q = ref::random_tensor({t, base.q_dim()}, 41, 2.0);
  const tensor k = ref::random_tensor({t, base.kv_dim()}, 42, 2.0);
  const tensor v = ref::random_tensor({t, base.kv_dim()}, 43);
  auto whole = be.attention_prefill(base, q, k, v, off);
  ASSERT_TRUE(whole.ok());
  for (const std::int64_t window : {1, 3, 64, 65, 100, 150}) {
    attention_config cfg = base;
    cfg.window = window;
    auto out = be.attention_prefill(cfg, q, k, v, off);
    ASSERT_TRUE(out.ok()) << out.status();
    const ref::vec want = ref::attention_prefill(
        ref::to_double(q.values()), ref::to_double(k.values()), ref::to_double(v.values()), off,
        4, 2, 8, 1.0 / std::sqrt(8.0), window);
    EXPECT_LE(ref::rel_err(out->values(), want), tol) << "window " << window;
    // A window as long as the longest sequence is no window at all.
    EXPECT_EQ(std::ranges::equal(out->values(), whole->values()), window >= 150)
        << "window " << window;
  }
  // The window matters: with a window of 1 each token sees only itself.
  attention_config one = base;
  one.window = 1;
  auto self = be.attention_prefill(one, q, k, v, off);
  ASSERT_TRUE(self.ok());
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t h = 0; h < 4; ++h)
      for (std::int64_t c = 0; c < 8; ++c)
        EXPECT_EQ((*self)[i * 32 + h * 8 + c], v[i * 16 + (h / 2) * 8 + c]);
  attention_config bad = base;
  bad.window = -1;
  auto refused = be.attention_prefill(bad, q, k, v, off);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sliding window"), std::string::npos);
}

// Queries at only the last positions of each sequence (a prefill continuing
// cached keys): each row is the row of the call with a query at every
// position (up to rounding: BLAS may sum a block of other rows in another
// order), with and without a sliding window; pasts of 0, and inside, at and
// across the 64-position score blocks.
TEST(AttentionPrefill, QueriesAtTheLastPositionsAreThoseRowsOfTheFullCall) {
  cpu_backend be;
  const std::vector<std::int64_t> off = {0, 5, 9, 79, 229, 359};
  const std::vector<std::int64_t> past = {0, 4, 63, 70, 64};
  const std::int64_t t = off.back();
  for (const std::int64_t window : {0, 3, 65}) {
    const attention_config cfg{.n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .window = window};
    const tensor q = ref::random_tensor({t, cfg.q_dim()}, 61, 2.0);
    const tensor k = ref::random_tensor({t, cfg.kv_dim()}, 62, 2.0);
    const tensor v = ref::random_tensor({t, cfg.kv_dim()}, 63);
    auto full = be.attention_prefill(cfg, q, k, v, off);
    ASSERT_TRUE(full.ok()) << full.status();
    const ref::tail queries = ref::tail_rows(q, off, past);
    auto got = be.attention_prefill(cfg, queries.rows, k, v, off, queries.offsets);
    ASSERT_TRUE(got.ok()) << got.status();
    const ref::tail want = ref::tail_rows(*full, off, past);
    EXPECT_EQ(got->shape(), want.rows.shape());
    EXPECT_LE(ref::rel_err(got->values(), ref::to_double(want.rows.values())), 1e-6)
        << "window " << window;
    // A sequence with no past gives its rows bit for bit.
    EXPECT_TRUE(std::ranges::equal(got->values().first(5 * 32), want.rows.values().first(5 * 32)));
    const ref::vec exact = ref::attention_prefill(
        ref::to_double(q.values()), ref::to_double(k.values()), ref::to_double(v.values()), off,
        4, 2, 8, 1.0 / std::sqrt(8.0), window);
    const tensor exact_f({t, cfg.q_dim()}, std::vector<float>(exact.begin(), exact.end()));
    EXPECT_LE(ref::rel_err(got->values(),
                           ref::to_double(ref::tail_rows(exact_f, off, past).rows.values())),
              tol)
        << "window " << window;
  }
  EXPECT_EQ(be.launches()[op::attention_prefill], 6u);
  // No queries at all, and every sequence's queries empty.
  const attention_config cfg{.n_heads = 2, .n_kv_heads = 1, .head_dim = 4};
  const tensor k = ref::random_tensor({7, 4}, 64);
  auto none = be.attention_prefill(cfg, tensor({0, 8}), k, k, std::vector<std::int64_t>{0, 3, 7},
                                   std::vector<std::int64_t>{0, 0, 0});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->shape(), (tensor::shape_type{0, 8}));
}

TEST(AttentionPrefill, RejectsBadShapesAndOffsets) {
  cpu_backend be;
  const attention_config cfg{.n_heads = 4, .n_kv_heads = 2, .head_dim = 4};
  const tensor q({5, 16});
  const tensor k({5, 8});
  EXPECT_TRUE(be.attention_prefill(cfg, q, k, k, std::vector<std::int64_t>{0, 5}).ok());
  EXPECT_FALSE(be.attention_prefill(cfg, q, k, k, std::vector<std::int64_t>{0, 4}).ok());
  EXPECT_FALSE(be.attention_prefill(cfg, q, k, k, std::vector<std::int64_t>{0, 3, 2, 5}).ok());
  EXPECT_FALSE(be.attention_prefill(cfg, q, k, k, std::vector<std::int64_t>{}).ok());
  EXPECT_FALSE(be.attention_prefill(cfg, q, q, k, std::vector<std::int64_t>{0, 5}).ok());
  const attention_config bad{.n_heads = 3, .n_kv_heads = 2, .head_dim = 4};
  EXPECT_FALSE(be.attention_prefill(bad, tensor({5, 12}), k, k, std::vector<std::int64_t>{0, 5})
                   .ok());
  // Queries: no more than a sequence's keys, one run of them per sequence.
  const tensor q3({3, 16});
  const std::vector<std::int64_t> kv_off = {0, 1, 5};
  EXPECT_TRUE(be.attention_prefill(cfg, q3, k, k, kv_off, std::vector<std::int64_t>{0, 0, 3})
                  .ok());
  const auto more = be.attention_prefill(cfg, q3, k, k, kv_off, std::vector<std::int64_t>{0, 2, 3});
  ASSERT_FALSE(more.ok());
  EXPECT_NE(more.status().message().find("sequence 0 has 2 queries but 1 keys"),
            std::string::npos)
      << more.status();
  const auto count = be.attention_prefill(cfg, q3, k, k, kv_off, std::vector<std::int64_t>{0, 3});
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("1 sequences of queries for 2"), std::string::npos)
      << count.status();
  const auto ends = be.attention_prefill(cfg, q3, k, k, kv_off, std::vector<std::int64_t>{0, 1, 2});
  ASSERT_FALSE(ends.ok());
  EXPECT_NE(ends.status().message().find("query_offsets must start at 0 and end at the 3"),
            std::string::npos)
      << ends.status();
  EXPECT_EQ(be.launches()[op::attention_prefill], 2u);
}

TEST(AttentionDecode, MatchesReferenceAndIgnoresStalePositions) {
  cpu_backend be;
  const attention_config cfg{.n_heads = 6, .n_kv_heads = 2, .head_dim = 8};
  const std::int64_t n_seq = 4;
  const std::int64_t cap = 20;
  kv_cache cache(n_seq, cap, cfg.kv_dim());
  // Valid positions random; everything past each length NaN (must not be read).
  const std::vector<std::int64_t> lengths = {1, 7, 20, 3};
  const tensor kr = ref::random_tensor({n_seq, cap, cfg.kv_dim()}, 7, 2.0);
  const tensor vr = ref::random_tensor({n_seq, cap, cfg.kv_dim()}, 8);
  for (std::int64_t s = 0; s < n_seq; ++s)
    for (std::int64_t p = 0; p < cap; ++p)
      for (std::int64_t c = 0; c < cfg.kv_dim(); ++c) {
        const std::int64_t i = (s * cap + p) * cfg.kv_dim() + c;
        const bool valid = p < lengths[static_cast<std::size_t>(s)];
        cache.k[i] = valid ? kr[i] : std::numeric_limits<float>::quiet_NaN();
        cache.v[i] = valid ? vr[i] : std::numeric_limits<float>::quiet_NaN();
      }
  // Only the first 3 slots are decoded (q has fewer rows than the cache has slots).
  const std::vector<std::int64_t> used(lengths.begin(), lengths.begin() + 3);
  const tensor q = ref::random_tensor({3, cfg.q_dim()}, 9, 2.0);
  auto out = be.attention_decode(cfg, q, cache, used);
  ASSERT_TRUE(out.ok()) << out.status();
  ref::vec want(static_cast<std::size_t>(3 * cfg.q_dim()));
  const ref::vec kd = ref::to_double(kr.values());
  const ref::vec vd = ref::to_double(vr.values());
  const ref::vec qd = ref::to_double(q.values());
  for (std::int64_t s = 0; s < 3; ++s)
    for (std::int64_t h = 0; h < cfg.n_heads; ++h) {
      const std::int64_t g = h / 3;
      ref::attend(qd.data() + s * cfg.q_dim() + h * cfg.head_dim,
                  kd.data() + s * cap * cfg.kv_dim() + g * cfg.head_dim,
                  vd.data() + s * cap * cfg.kv_dim() + g * cfg.head_dim,
                  used[static_cast<std::size_t>(s)], cfg.kv_dim(), cfg.head_dim,
                  1.0 / std::sqrt(8.0), want.data() + s * cfg.q_dim() + h * cfg.head_dim);
    }
  EXPECT_LE(ref::rel_err(out->values(), want), tol);
  EXPECT_EQ(be.launches()[op::attention_decode], 1u);

  // Lengths outside [1, capacity], or more rows than slots, are errors.
  EXPECT_FALSE(be.attention_decode(cfg, q, cache, std::vector<std::int64_t>{1, 0, 2}).ok());
  EXPECT_FALSE(be.attention_decode(cfg, q, cache, std::vector<std::int64_t>{1, 21, 2}).ok());
  EXPECT_FALSE(be.attention_decode(cfg, ref::random_tensor({5, cfg.q_dim()}, 1), cache,
                                   std::vector<std::int64_t>{1, 1, 1, 1, 1})
                   .ok());
  EXPECT_EQ(be.launches()[op::attention_decode], 1u);
}

TEST(AttentionDecode, SlidingWindowReadsOnlyTheLastWindowPositions) {
  cpu_backend be;
  // One kv head (Gemma 3 270M's) and grouped queries (two heads per kv head).
  for (const std::int64_t kv_heads : {1, 2}) {
    attention_config cfg{.n_heads = 4, .n_kv_heads = kv_heads, .head_dim = 8, .window = 5};
    const std::int64_t cap = 12, kvd = cfg.kv_dim();
    const std::vector<std::int64_t> lengths = {1, 5, 6, 12};
    const auto n_seq = static_cast<std::int64_t>(lengths.size());
    kv_cache cache(n_seq, cap, kvd);
    const tensor kr = ref::random_tensor({n_seq, cap, kvd}, 51, 2.0);
    const tensor vr = ref::random_tensor({n_seq, cap, kvd}, 52);
    // NaN outside each slot's window (before it and after the length).
    for (std::int64_t s = 0; s < n_seq; ++s)
      for (std::int64_t p = 0; p < cap; ++p)
        for (std::int64_t c = 0; c < kvd; ++c) {
          const std::int64_t i = (s * cap + p) * kvd + c;
          const std::int64_t len = lengths[static_cast<std::size_t>(s)];
          const bool seen = p < len && p >= len - cfg.window;
          cache.k[i] = seen ? kr[i] : std::numeric_limits<float>::quiet_NaN();
          cache.v[i] = seen ? vr[i] : std::numeric_limits<float>::quiet_NaN();
        }
    const tensor q = ref::random_tensor({n_seq, cfg.q_dim()}, 53, 2.0);
    auto out = be.attention_decode(cfg, q, cache, lengths);
    ASSERT_TRUE(out.ok()) << out.status();
    ref::vec want(static_cast<std::size_t>(n_seq * cfg.q_dim()));
    const ref::vec kd = ref::to_double(kr.values());
    const ref::vec vd = ref::to_double(vr.values());
    const ref::vec qd = ref::to_double(q.values());
    for (std::int64_t s = 0; s < n_seq; ++s) {
      const std::int64_t len = lengths[static_cast<std::size_t>(s)];
      const std::int64_t first = std::max<std::int64_t>(0, len - cfg.window);
      for (std::int64_t h = 0; h < cfg.n_heads; ++h) {
        const std::int64_t g = h / (cfg.n_heads / kv_heads); // the head's kv head
        ref::attend(qd.data() + s * cfg.q_dim() + h * 8,
                    kd.data() + (s * cap + first) * kvd + g * 8,
                    vd.data() + (s * cap + first) * kvd + g * 8, len - first, kvd, 8,
                    1.0 / std::sqrt(8.0), want.data() + s * cfg.q_dim() + h * 8);
      }
    }
    EXPECT_LE(ref::rel_err(out->values(), want), tol) << kv_heads << " kv heads";
  }
}

TEST(KvStore, WritesRowsToSlotsAndPositions) {
  cpu_backend be;
  kv_cache cache(3, 5, 4);
  const tensor k = ref::random_tensor({3, 4}, 1);
  const tensor v = ref::random_tensor({3, 4}, 2);
  const std::vector<std::int64_t> slot = {2, 0, 2};
  const std::vector<std::int64_t> pos = {4, 0, 1};
  ASSERT_TRUE(be.kv_store(cache, k, v, slot, pos).ok());
  for (std::size_t t = 0; t < 3; ++t)
    for (std::int64_t c = 0; c < 4; ++c) {
      const std::int64_t at = (slot[t] * 5 + pos[t]) * 4 + c;
      EXPECT_EQ(cache.k[at], k[static_cast<std::int64_t>(t) * 4 + c]);
      EXPECT_EQ(cache.v[at], v[static_cast<std::int64_t>(t) * 4 + c]);
    }
  double untouched = 0.0;
  for (float x : cache.k.values())
    untouched += x == 0.0f;
  EXPECT_EQ(untouched, 3 * 5 * 4 - 12);
  EXPECT_FALSE(be.kv_store(cache, k, v, std::vector<std::int64_t>{3, 0, 0}, pos).ok());
  EXPECT_FALSE(be.kv_store(cache, k, v, slot, std::vector<std::int64_t>{5, 0, 0}).ok());
  EXPECT_FALSE(be.kv_store(cache, k, v, slot, std::vector<std::int64_t>{0, 0}).ok());
  EXPECT_EQ(be.launches()[op::kv_store], 1u);
}

TEST(Elementwise, SiluMulAndAddMatchReference) {
  cpu_backend be;
  const tensor g = ref::random_tensor({3, 17}, 1, 8.0);
  const tensor u = ref::random_tensor({3, 17}, 2);
  auto y = be.silu_mul(g, u);
  ASSERT_TRUE(y.ok());
  ref::vec want(51);
  for (std::size_t i = 0; i < want.size(); ++i)
    want[i] = ref::silu(g.values()[i]) * u.values()[i];
  EXPECT_LE(ref::rel_err(y->values(), want), tol);

  tensor acc = g;
  ASSERT_TRUE(be.add(acc, u).ok());
  for (std::int64_t i = 0; i < 51; ++i)
    EXPECT_EQ(acc[i], g[i] + u[i]);
  EXPECT_FALSE(be.silu_mul(g, tensor({17, 3})).ok());
  EXPECT_FALSE(be.add(acc, tensor({3, 16})).ok());
  EXPECT_EQ(be.launches().to_string(), "silu_mul=1 add=1");
}

TEST(Elementwise, GeluMulMatchesReference) {
  cpu_backend be;
  // Wide enough that the tanh saturates on both sides.
  const tensor g = ref::random_tensor({4, 33}, 3, 12.0);
  const tensor u = ref::random_tensor({4, 33}, 4);
  auto y = be.gelu_mul(g, u);
  ASSERT_TRUE(y.ok());
  ref::vec want(g.values().size());
  for (std::size_t i = 0; i < want.size(); ++i)
    want[i] = ref::gelu_tanh(g.values()[i]) * u.values()[i];
  EXPECT_LE(ref::rel_err(y->values(), want), tol);
  // Not silu: the two activations differ.
  auto s = be.silu_mul(g, u);
  ASSERT_TRUE(s.ok());
  EXPECT_GT(ref::rel_err(s->values(), want), 1e-2);
  auto bad = be.gelu_mul(g, tensor({33, 4}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("gelu_mul"), std::string::npos);
  EXPECT_EQ(be.launches().to_string(), "silu_mul=1 gelu_mul=1");
}

TEST(Elementwise, GluProductsMatchReferenceOnSeveralShapes) {
  cpu_backend be;
  for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {1, 7}, {5, 64},
                                   {37, 257}, {2, 4099}}) {
    SCOPED_TRACE(testing::Message() << rows << " x " << cols);
    const tensor g = ref::random_tensor({rows, cols}, 10 + rows, 6.0);
    const tensor u = ref::random_tensor({rows, cols}, 20 + cols);
    auto silu = be.silu_mul(g, u);
    auto gelu = be.gelu_mul(g, u);
    ASSERT_TRUE(silu.ok() && gelu.ok());
    ref::vec want_silu(g.values().size()), want_gelu(g.values().size());
    for (std::size_t i = 0; i < want_silu.size(); ++i) {
      want_silu[i] = ref::silu(g.values()[i]) * u.values()[i];
      want_gelu[i] = ref::gelu_tanh(g.values()[i]) * u.values()[i];
    }
    EXPECT_LE(ref::rel_err(silu->values(), want_silu), tol);
    EXPECT_LE(ref::rel_err(gelu->values(), want_gelu), tol);
  }
}

} // namespace
} // namespace satemu::gpu
