// The cpu backend's GEMMs against a double-precision reference: all transpose
// combinations, alpha/beta, degenerate shapes; strided-batched and grouped
// GEMMs bitwise equal to separate GEMMs, each in exactly one launch.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

struct shape {
  std::int64_t m, n, k;
};

// A stored as op(A) = M x K, B as op(B) = K x N.
tensor make_a(const shape& s, bool ta, std::uint64_t seed) {
  return ref::random_tensor(ta ? std::vector<std::int64_t>{s.k, s.m}
                               : std::vector<std::int64_t>{s.m, s.k},
                            seed);
}
tensor make_b(const shape& s, bool tb, std::uint64_t seed) {
  return ref::random_tensor(tb ? std::vector<std::int64_t>{s.n, s.k}
                               : std::vector<std::int64_t>{s.k, s.n},
                            seed);
}

bool same_bits(const float* a, const float* b, std::int64_t n) {
  return n == 0 || std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(float)) == 0;
}

TEST(Gemm, MatchesReferenceForAllTransposesAndScalars) {
  cpu_backend be;
  const std::vector<shape> shapes = {{1, 1, 1}, {3, 5, 7}, {17, 3, 1}, {1, 17, 33},
                                     {64, 48, 96}, {33, 65, 17}};
  std::uint64_t seed = 1;
  for (const shape& s : shapes)
    for (int t = 0; t < 4; ++t) {
      const bool ta = (t & 1) != 0;
      const bool tb = (t & 2) != 0;
      for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{-0.5f, 1.25f}}) {
        const tensor a = make_a(s, ta, seed++);
        const tensor b = make_b(s, tb, seed++);
        tensor c = ref::random_tensor({s.m, s.n}, seed++);
        const ref::vec want = ref::gemm(ta, tb, alpha, a.values(), a.dim(0), a.dim(1),
                                        b.values(), b.dim(0), b.dim(1), beta, c.values());
        ASSERT_TRUE(be.gemm({ta, tb, alpha, beta}, a, b, c).ok());
        EXPECT_LE(ref::rel_err(c.values(), want), 1e-5)
            << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb
            << " alpha=" << alpha << " beta=" << beta;
      }
    }
  EXPECT_EQ(be.launches()[op::gemm], shapes.size() * 8);
}

TEST(Gemm, BetaZeroIgnoresOldContents) {
  cpu_backend be;
  const tensor a = ref::random_tensor({3, 4}, 5);
  const tensor b = ref::random_tensor({4, 2}, 6);
  tensor c({3, 2}, std::vector<float>(6, std::numeric_limits<float>::quiet_NaN()));
  ASSERT_TRUE(be.gemm({}, a, b, c).ok());
  const ref::vec want = ref::gemm(false, false, 1.0, a.values(), 3, 4, b.values(), 4, 2, 0.0,
                                  c.values());
  EXPECT_LE(ref::rel_err(c.values(), want), 1e-5);
}

TEST(Gemm, DegenerateShapes) {
  cpu_backend be;
  // K = 0: C = beta C.
  tensor c({2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(be.gemm({.alpha = 1.0f, .beta = 2.0f}, tensor({2, 0}), tensor({0, 3}), c).ok());
  EXPECT_EQ(c.storage(), (std::vector<float>{2, 4, 6, 8, 10, 12}));
  ASSERT_TRUE(be.gemm({}, tensor({2, 0}), tensor({0, 3}), c).ok());
  EXPECT_EQ(c.storage(), std::vector<float>(6, 0.0f));
  // M = 0 and N = 0: nothing to do, still valid.
  tensor empty({0, 3});
  EXPECT_TRUE(be.gemm({}, tensor({0, 4}), ref::random_tensor({4, 3}, 1), empty).ok());
  tensor empty2({2, 0});
  EXPECT_TRUE(be.gemm({}, ref::random_tensor({2, 4}, 2), tensor({4, 0}), empty2).ok());
}

TEST(Gemm, ShapeMismatchIsAnError) {
  cpu_backend be;
  tensor c({3, 3});
  const auto st = be.gemm({}, tensor({3, 4}), tensor({5, 3}), c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("[3 x 4]"), std::string::npos) << st.message();
  tensor c2({3, 2});
  EXPECT_FALSE(be.gemm({.trans_b = true}, tensor({3, 4}), tensor({4, 2}), c2).ok());
  EXPECT_EQ(be.launches()[op::gemm], 0u) << "a rejected call launches nothing";
}

TEST(GemmStridedBatched, EqualsSeparateGemmsBitwiseInOneLaunch) {
  for (int t = 0; t < 4; ++t) {
    const bool ta = (t & 1) != 0;
    const bool tb = (t & 2) != 0;
    const shape s{17, 9, 33};
    const std::int64_t batch = 5;
    const gemm_op o{ta, tb, 0.75f, 0.5f};
    const tensor a = ref::random_tensor({batch, ta ? s.k : s.m, ta ? s.m : s.k}, 10 + t);
    const tensor b = ref::random_tensor({batch, tb ? s.n : s.k, tb ? s.k : s.n}, 20 + t);
    const tensor c0 = ref::random_tensor({batch, s.m, s.n}, 30 + t);

    cpu_backend be;
    tensor c = c0;
    const std::int64_t sa = a.numel() / batch;
    const std::int64_t sb = b.numel() / batch;
    const std::int64_t sc = c.numel() / batch;
    ASSERT_TRUE(be.gemm_strided_batched(o, batch, {a.data(), a.dim(1), a.dim(2)}, sa,
                                        {b.data(), b.dim(1), b.dim(2)}, sb,
                                        {c.data(), s.m, s.n}, sc)
                    .ok());
    EXPECT_EQ(be.launches()[op::gemm_strided_batched], 1u);
    EXPECT_EQ(be.launches().total(), 1u);

    cpu_backend single;
    tensor c_sep = c0;
    for (std::int64_t i = 0; i < batch; ++i) {
      ASSERT_TRUE(single
                      .gemm(o, {a.data() + i * sa, a.dim(1), a.dim(2)},
                            {b.data() + i * sb, b.dim(1), b.dim(2)},
                            {c_sep.data() + i * sc, s.m, s.n})
                      .ok());
      // Also against the reference.
      const ref::vec want =
          ref::gemm(ta, tb, o.alpha, {a.data() + i * sa, static_cast<std::size_t>(sa)},
                    a.dim(1), a.dim(2), {b.data() + i * sb, static_cast<std::size_t>(sb)},
                    b.dim(1), b.dim(2), o.beta,
                    {c0.data() + i * sc, static_cast<std::size_t>(sc)});
      EXPECT_LE(ref::rel_err({c.data() + i * sc, static_cast<std::size_t>(sc)}, want), 1e-5);
    }
    EXPECT_TRUE(c.bitwise_equal(c_sep)) << "ta=" << ta << " tb=" << tb;
    EXPECT_EQ(single.launches()[op::gemm], static_cast<std::uint64_t>(batch));
  }
}

TEST(GemmStridedBatched, StrideZeroSharesAMatrix) {
  cpu_backend be;
  const std::int64_t batch = 3;
  const tensor x = ref::random_tensor({batch, 4, 6}, 1); // per-batch activations
  const tensor w = ref::random_tensor({5, 6}, 2);        // one shared weight [out, in]
  tensor y({batch, 4, 5});
  ASSERT_TRUE(be.gemm_strided_batched({.trans_b = true}, batch, {x.data(), 4, 6}, 24, w, 0,
                                      {y.data(), 4, 5}, 20)
                  .ok());
  for (std::int64_t i = 0; i < batch; ++i) {
    const ref::vec want = ref::gemm(false, true, 1.0, {x.data() + i * 24, 24}, 4, 6,
                                    w.values(), 5, 6, 0.0, {});
    EXPECT_LE(ref::rel_err({y.data() + i * 20, 20}, want), 1e-5);
  }
}

TEST(GemmStridedBatched, OverlappingStridesAreErrors) {
  cpu_backend be;
  tensor a({2, 3, 3});
  tensor b({2, 3, 3});
  tensor c({2, 3, 3});
  EXPECT_FALSE(
      be.gemm_strided_batched({}, 2, {a.data(), 3, 3}, 4, {b.data(), 3, 3}, 9, {c.data(), 3, 3}, 9)
          .ok());
  EXPECT_FALSE(
      be.gemm_strided_batched({}, 2, {a.data(), 3, 3}, 9, {b.data(), 3, 3}, 9, {c.data(), 3, 3}, 0)
          .ok());
  EXPECT_FALSE(
      be.gemm_strided_batched({}, -1, {a.data(), 3, 3}, 9, {b.data(), 3, 3}, 9, {c.data(), 3, 3}, 9)
          .ok());
  EXPECT_EQ(be.launches().total(), 0u);
}

TEST(GemmGrouped, DifferentShapesEqualSeparateGemmsBitwiseInOneLaunch) {
  // MoE-like: different M per problem (including 0 and 1), shared K and N,
  // plus problems with other N and K.
  const std::vector<shape> shapes = {{5, 12, 16}, {0, 12, 16}, {1, 12, 16}, {17, 12, 16},
                                     {3, 7, 9},   {33, 1, 5},  {2, 20, 1}};
  for (const bool ta : {false, true})
  for (const bool tb : {false, true}) {
    SCOPED_TRACE(testing::Message() << "ta " << ta << ", tb " << tb);
    std::vector<tensor> as, bs, cs, cs_sep;
    std::uint64_t seed = 100;
    for (const shape& s : shapes) {
      as.push_back(make_a(s, ta, seed++));
      bs.push_back(make_b(s, tb, seed++));
      cs.push_back(ref::random_tensor({s.m, s.n}, seed++));
    }
    cs_sep = cs;
    const std::vector<tensor> c0 = cs;
    const gemm_op o{ta, tb, 1.5f, -1.0f};
    std::vector<gemm_problem> problems;
    for (std::size_t i = 0; i < shapes.size(); ++i)
      problems.push_back({as[i], bs[i], cs[i]});

    cpu_backend be;
    ASSERT_TRUE(be.gemm_grouped(o, problems).ok());
    EXPECT_EQ(be.launches()[op::gemm_grouped], 1u);
    EXPECT_EQ(be.launches().total(), 1u);

    cpu_backend single;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      ASSERT_TRUE(single.gemm(o, as[i], bs[i], cs_sep[i]).ok());
      EXPECT_TRUE(same_bits(cs[i].data(), cs_sep[i].data(), cs[i].numel())) << "problem " << i;
      const ref::vec want = ref::gemm(ta, tb, o.alpha, as[i].values(), as[i].dim(0),
                                      as[i].dim(1), bs[i].values(), bs[i].dim(0), bs[i].dim(1),
                                      o.beta, c0[i].values());
      EXPECT_LE(ref::rel_err(cs[i].values(), want), 1e-5) << "problem " << i;
    }
  }
}

TEST(GemmGrouped, EmptyListIsOneLaunchAndBadProblemsAreNamed) {
  cpu_backend be;
  EXPECT_TRUE(be.gemm_grouped({}, {}).ok());
  EXPECT_EQ(be.launches()[op::gemm_grouped], 1u);

  tensor a({2, 3});
  tensor b({3, 4});
  tensor c({2, 4});
  tensor bad_b({5, 4});
  std::vector<gemm_problem> problems = {{a, b, c}, {a, bad_b, c}};
  const auto st = be.gemm_grouped({}, problems);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("problem 1"), std::string::npos) << st.message();

  // Two problems writing the same C.
  tensor c2({2, 4});
  problems = {{a, b, c2}, {a, b, c2}};
  EXPECT_FALSE(be.gemm_grouped({}, problems).ok());
  EXPECT_EQ(be.launches()[op::gemm_grouped], 1u);
}

} // namespace
} // namespace satemu::gpu
