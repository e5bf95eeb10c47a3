// Quality metrics on known cases: identical inputs, scaled and opposite
// vectors, a KL divergence worked out by hand, ties and -inf logits.
#include "gpu/metrics.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace satemu::gpu {
namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

TEST(Metrics, IdenticalInputs) {
  const std::vector<float> a = {0.5f, -2.0f, 3.25f, 0.0f, 1e-3f};
  EXPECT_EQ(*relative_error(a, a), 0.0);
  EXPECT_NEAR(*cosine_similarity(a, a), 1.0, 1e-15);
  EXPECT_EQ(*kl_divergence(a, a), 0.0);
  EXPECT_TRUE(*top1_agree(a, a));
}

TEST(Metrics, RelativeErrorAndCosineOnKnownVectors) {
  const std::vector<float> a = {1.0f, 2.0f, 3.0f};
  const std::vector<float> twice = {2.0f, 4.0f, 6.0f};
  const std::vector<float> neg = {-1.0f, -2.0f, -3.0f};
  EXPECT_NEAR(*relative_error(a, twice), 1.0, 1e-15);
  EXPECT_NEAR(*relative_error(a, neg), 2.0, 1e-15);
  EXPECT_NEAR(*cosine_similarity(a, twice), 1.0, 1e-15);
  EXPECT_NEAR(*cosine_similarity(a, neg), -1.0, 1e-15);
  const std::vector<float> x = {1.0f, 0.0f};
  const std::vector<float> y = {0.0f, 1.0f};
  const std::vector<float> d = {1.0f, 1.0f};
  EXPECT_NEAR(*cosine_similarity(x, y), 0.0, 1e-15);
  EXPECT_NEAR(*cosine_similarity(x, d), std::sqrt(0.5), 1e-15);
  EXPECT_NEAR(*relative_error(x, d), 1.0, 1e-15);
  // ||(3,4) - (3,0)|| / ||(3,4)|| = 4/5.
  EXPECT_NEAR(*relative_error(std::vector<float>{3, 4}, std::vector<float>{3, 0}), 0.8, 1e-15);

  const std::vector<float> zero = {0.0f, 0.0f};
  EXPECT_EQ(*relative_error(zero, zero), 0.0);
  EXPECT_TRUE(std::isinf(*relative_error(zero, x)));
  EXPECT_EQ(*cosine_similarity(zero, zero), 1.0);
  EXPECT_EQ(*cosine_similarity(zero, x), 0.0);
  EXPECT_TRUE(std::isnan(*relative_error(x, std::vector<float>{NAN, 0.0f})));

  EXPECT_EQ(relative_error(a, x).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(cosine_similarity(a, x).ok());
}

TEST(Metrics, KlDivergenceKnownCases) {
  // P = (1/2, 1/2), Q = (3/4, 1/4): KL = 1/2 ln(4/3).
  const std::vector<float> p = {0.0f, 0.0f};
  const std::vector<float> q = {std::log(3.0f), 0.0f};
  EXPECT_NEAR(*kl_divergence(p, q), 0.5 * std::log(4.0 / 3.0), 1e-7);
  // KL(Q || P) = 3/4 ln(3/2) + 1/4 ln(1/2): not symmetric.
  EXPECT_NEAR(*kl_divergence(q, p), 0.75 * std::log(1.5) + 0.25 * std::log(0.5), 1e-7);
  // Shifting all logits by a constant changes nothing.
  const std::vector<float> q_shift = {std::log(3.0f) + 100.0f, 100.0f};
  EXPECT_NEAR(*kl_divergence(p, q_shift), 0.5 * std::log(4.0 / 3.0), 1e-6);
  // A token P excludes contributes nothing; one Q excludes but P allows is infinite.
  const std::vector<float> p_masked = {0.0f, neg_inf, 0.0f};
  const std::vector<float> q_masked = {0.0f, 5.0f, 0.0f};
  EXPECT_NEAR(*kl_divergence(p_masked, q_masked),
              std::log(0.5 / (1.0 / (2.0 + std::exp(5.0)))), 1e-6);
  EXPECT_TRUE(std::isinf(*kl_divergence(q_masked, p_masked)));
  // A Q that excludes every token is infinitely far from any P; a P that
  // excludes every token, or a +inf logit, is no distribution.
  const std::vector<float> none = {neg_inf, neg_inf};
  EXPECT_EQ(*kl_divergence(p, none), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(*kl_divergence(none, p)));
  const std::vector<float> pos_inf = {std::numeric_limits<float>::infinity(), 0.0f};
  EXPECT_TRUE(std::isnan(*kl_divergence(p, pos_inf)));
  EXPECT_TRUE(std::isnan(*kl_divergence(pos_inf, p)));
  EXPECT_FALSE(kl_divergence({}, {}).ok());
  EXPECT_FALSE(kl_divergence(p, p_masked).ok());
}

TEST(Metrics, Top1AndCompareLogits) {
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1); // ties: lower index
  EXPECT_EQ(argmax({}), -1);
  // NaN is passed over wherever it stands.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(argmax(std::vector<float>{nan, 1.0f, 3.0f}), 2);
  EXPECT_EQ(argmax(std::vector<float>{1.0f, nan, 0.5f}), 0);
  EXPECT_EQ(argmax(std::vector<float>{nan, nan}), 0);
  EXPECT_TRUE(*top1_agree(std::vector<float>{0, 5, 1}, std::vector<float>{-3, 2, 1.9f}));
  EXPECT_FALSE(*top1_agree(std::vector<float>{0, 5, 1}, std::vector<float>{0, 1, 5}));
  EXPECT_FALSE(top1_agree({}, {}).ok());

  // 4 rows; row 2 disagrees on top-1, row 3 equals its reference.
  const tensor ref({4, 3}, {0, 1, 2, /**/ 2, 0, 0, /**/ 1, 2, 0, /**/ 0, 0, 1});
  const tensor val({4, 3}, {0, 1, 2, /**/ 1, 0, 0, /**/ 2, 1, 0, /**/ 0, 0, 1});
  auto c = compare_logits(ref, val);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rows, 4);
  EXPECT_DOUBLE_EQ(c->top1_agreement, 0.75);
  double sum = 0.0;
  double mx = 0.0;
  for (std::int64_t r = 0; r < 4; ++r) {
    const double kl = *kl_divergence({ref.data() + r * 3, 3}, {val.data() + r * 3, 3});
    sum += kl;
    mx = std::max(mx, kl);
  }
  EXPECT_GT(mx, 0.0);
  EXPECT_DOUBLE_EQ(c->mean_kl, sum / 4);
  EXPECT_DOUBLE_EQ(c->max_kl, mx);
  EXPECT_FALSE(compare_logits(ref, tensor({4, 2})).ok());
  auto same = compare_logits(ref, ref);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->mean_kl, 0.0);
  EXPECT_EQ(same->top1_agreement, 1.0);
}

} // namespace
} // namespace satemu::gpu
