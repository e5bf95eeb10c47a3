// The cuda backend against its twin, the cpu backend: every kernel on seeded
// random inputs of several shapes (ragged batches, GQA groups, odd sizes,
// empty sequences), in each precision. Compute kernels must agree within the
// precision's tolerance on tests/gpu/reference.hpp's relative error; kernels
// that move, select or encode values must agree bit for bit. Launch counts
// and argument errors must be the cpu's.
//
// Every test that needs a device skips, saying why, when the binary has no
// CUDA backend or no CUDA device answers.
#include "gpu/cuda_backend.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "gpu/device.hpp"
#include "gpu/half.hpp"
#include "cuda_required.hpp"
#include "gpu/layers.hpp"
#include "gpu/model.hpp"
#include "gpu/model_runner.hpp"
#include "gpu/weights.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

double rel(const tensor& got, const tensor& want) {
  return ref::rel_err(got.values(), ref::to_double(want.values()));
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
bool same_bits(const tensor& a, const tensor& b) { return a.bitwise_equal(b); }

// Fixture: a cuda backend in the test's precision next to a cpu backend.
class CudaBackend : public ::testing::TestWithParam<cuda_precision> {
protected:
  void SetUp() override {
    auto b = make_cuda_backend({.precision = GetParam()});
    if (!b.ok()) {
      SATEMU_CUDA_UNAVAILABLE(b.status().message());
    }
    gpu_ = std::move(*b);
  }

  /// Tolerance of one kernel against the cpu.
  double tol() const {
    switch (GetParam()) {
      case cuda_precision::bf16: return 1e-2;
      case cuda_precision::fp16: return 1e-3;
      case cuda_precision::tf32: return 1e-3;
      case cuda_precision::fp32: return 1e-5;
    }
    return 0.0;
  }
  /// A layer chains a dozen kernels, each rounding: twice the kernel's.
  double layer_tol() const { return 2 * tol(); }

  /// `x` rounded to the 16-bit storage format, as the device rounds every
  /// input (unchanged in tf32 and fp32): for kernels so steep that the
  /// input's rounding alone moves a value past `tol()`.
  tensor stored(tensor x) const {
    for (float& v : x.values())
      if (GetParam() == cuda_precision::bf16)
        v = bf16_bits_to_float(float_to_bf16_bits(v));
      else if (GetParam() == cuda_precision::fp16)
        v = fp16_bits_to_float(float_to_fp16_bits(v));
    return x;
  }

  std::unique_ptr<backend> gpu_;
  cpu_backend cpu_;
};

std::string precision_test_name(const ::testing::TestParamInfo<cuda_precision>& info) {
  return std::string(cuda_precision_name(info.param));
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaBackend,
                         ::testing::Values(cuda_precision::bf16, cuda_precision::fp16,
                                           cuda_precision::tf32, cuda_precision::fp32),
                         precision_test_name);

// --- GEMM --------------------------------------------------------------------------------

struct gemm_shape {
  std::int64_t m, n, k;
};

tensor operand(std::int64_t rows, std::int64_t cols, bool trans, std::uint64_t seed) {
  return ref::random_tensor(trans ? std::vector<std::int64_t>{cols, rows}
                                  : std::vector<std::int64_t>{rows, cols},
                            seed);
}

TEST_P(CudaBackend, GemmAllTransposesAndScalars) {
  const std::vector<gemm_shape> shapes = {{1, 1, 1},    {3, 5, 7},     {17, 3, 1},
                                          {1, 17, 33},  {64, 48, 96},  {33, 65, 17},
                                          {128, 256, 512}, {7, 2048, 2048}};
  std::uint64_t seed = 1;
  for (const gemm_shape& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{-0.5f, 1.25f}}) {
        const bool ta = (t & 1) != 0;
        const bool tb = (t & 2) != 0;
        const tensor a = operand(s.m, s.k, ta, seed++);
        const tensor b = operand(s.k, s.n, tb, seed++);
        tensor want = ref::random_tensor({s.m, s.n}, seed++);
        tensor got = want;
        const gemm_op o{ta, tb, alpha, beta};
        ASSERT_TRUE(cpu_.gemm(o, a, b, want).ok());
        const absl::Status st = gpu_->gemm(o, a, b, got);
        ASSERT_TRUE(st.ok()) << st;
        EXPECT_LE(rel(got, want), tol()) << "m=" << s.m << " n=" << s.n << " k=" << s.k
                                         << " ta=" << ta << " tb=" << tb << " beta=" << beta;
      }
  EXPECT_EQ(gpu_->launches()[op::gemm], shapes.size() * 8);
  EXPECT_EQ(gpu_->launches().total(), shapes.size() * 8);
}

TEST_P(CudaBackend, GemmDegenerateShapesAndStaleOutput) {
  // K = 0: C = beta C; M = 0 or N = 0: nothing.
  tensor c({2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(gpu_->gemm({.alpha = 1.0f, .beta = 2.0f}, tensor({2, 0}), tensor({0, 3}), c).ok());
  EXPECT_EQ(c.storage(), (std::vector<float>{2, 4, 6, 8, 10, 12}));
  ASSERT_TRUE(gpu_->gemm({}, tensor({2, 0}), tensor({0, 3}), c).ok());
  EXPECT_EQ(c.storage(), std::vector<float>(6, 0.0f));
  tensor empty({0, 3});
  ASSERT_TRUE(gpu_->gemm({}, tensor({0, 4}), tensor({4, 3}), empty).ok());
  // beta = 0 ignores C's old contents, NaN included.
  const tensor a = ref::random_tensor({9, 12}, 5);
  const tensor b = ref::random_tensor({12, 10}, 6);
  tensor got({9, 10}, std::vector<float>(90, std::numeric_limits<float>::quiet_NaN()));
  tensor want({9, 10});
  ASSERT_TRUE(gpu_->gemm({}, a, b, got).ok());
  ASSERT_TRUE(cpu_.gemm({}, a, b, want).ok());
  EXPECT_LE(rel(got, want), tol());
  EXPECT_EQ(gpu_->launches()[op::gemm], 4u);
}

TEST_P(CudaBackend, GemmStridedBatchedWithGapsAndSharedOperands) {
  const std::int64_t batch = 5;
  for (const bool share_b : {false, true})
    for (int t = 0; t < 4; ++t) {
      const bool ta = (t & 1) != 0;
      const bool tb = (t & 2) != 0;
      const gemm_shape s{13, 21, 34};
      // Each matrix followed by a gap of 3 floats; B shared when share_b.
      const std::int64_t sa = s.m * s.k + 3;
      const std::int64_t sb = share_b ? 0 : s.k * s.n + 3;
      const std::int64_t sc = s.m * s.n + 3;
      const tensor a = ref::random_tensor({batch * sa}, 10 + t);
      const tensor b = ref::random_tensor({share_b ? s.k * s.n : batch * sb}, 20 + t);
      tensor want = ref::random_tensor({batch * sc}, 30 + t);
      tensor got = want;
      const const_matrix_view av{a.data(), ta ? s.k : s.m, ta ? s.m : s.k};
      const const_matrix_view bv{b.data(), tb ? s.n : s.k, tb ? s.k : s.n};
      const gemm_op o{ta, tb, 0.75f, 0.5f};
      ASSERT_TRUE(cpu_.gemm_strided_batched(o, batch, av, sa, bv, sb,
                                            {want.data(), s.m, s.n}, sc)
                      .ok());
      const absl::Status st =
          gpu_->gemm_strided_batched(o, batch, av, sa, bv, sb, {got.data(), s.m, s.n}, sc);
      ASSERT_TRUE(st.ok()) << st;
      EXPECT_LE(rel(got, want), tol()) << "share_b=" << share_b << " t=" << t;
      // The gaps after each C are left alone.
      for (std::int64_t i = 0; i < batch; ++i)
        for (std::int64_t g = s.m * s.n; g < sc; ++g)
          EXPECT_EQ(got[i * sc + g], want[i * sc + g]);
    }
  EXPECT_EQ(gpu_->launches()[op::gemm_strided_batched], 8u);
  // Batch 0 is valid and does nothing; a bad stride is the cpu's error.
  tensor c({2, 2}, {1, 2, 3, 4});
  ASSERT_TRUE(gpu_->gemm_strided_batched({}, 0, tensor({2, 2}), 4, tensor({2, 2}), 4, c, 4).ok());
  EXPECT_EQ(c.storage(), (std::vector<float>{1, 2, 3, 4}));
  const tensor m9({9}, std::vector<float>(9, 1.0f));
  tensor c9({18});
  const auto bad_gpu = gpu_->gemm_strided_batched({}, 2, {m9.data(), 3, 3}, 4, {m9.data(), 3, 3},
                                                  0, {c9.data(), 3, 3}, 9);
  const auto bad_cpu = cpu_.gemm_strided_batched({}, 2, {m9.data(), 3, 3}, 4, {m9.data(), 3, 3},
                                                 0, {c9.data(), 3, 3}, 9);
  EXPECT_EQ(bad_gpu, bad_cpu);
  EXPECT_EQ(bad_gpu.code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(CudaBackend, GemmGroupedOfDifferentShapes) {
  // Expert-like problems: shared transpose of B, rows per problem from 0 up,
  // one problem with K = 0.
  const std::vector<gemm_shape> shapes = {{7, 16, 24}, {0, 16, 24}, {1, 16, 24},
                                          {33, 40, 8}, {5, 3, 0},   {64, 64, 64}};
  for (const float beta : {0.0f, 1.5f}) {
    std::vector<tensor> as, bs, want, got;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      as.push_back(ref::random_tensor({shapes[i].m, shapes[i].k}, 40 + i));
      bs.push_back(ref::random_tensor({shapes[i].n, shapes[i].k}, 50 + i));
      want.push_back(ref::random_tensor({shapes[i].m, shapes[i].n}, 60 + i));
      got.push_back(want.back());
    }
    std::vector<gemm_problem> pw, pg;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      pw.push_back({as[i], bs[i], want[i]});
      pg.push_back({as[i], bs[i], got[i]});
    }
    const gemm_op o{.trans_b = true, .alpha = 1.0f, .beta = beta};
    ASSERT_TRUE(cpu_.gemm_grouped(o, pw).ok());
    const absl::Status st = gpu_->gemm_grouped(o, pg);
    ASSERT_TRUE(st.ok()) << st;
    for (std::size_t i = 0; i < shapes.size(); ++i)
      EXPECT_LE(rel(got[i], want[i]), tol()) << "problem " << i << " beta " << beta;
  }
  ASSERT_TRUE(gpu_->gemm_grouped({}, {}).ok());
  EXPECT_EQ(gpu_->launches()[op::gemm_grouped], 3u);
  EXPECT_EQ(gpu_->launches().total(), 3u);
}

// --- Transformer kernels ------------------------------------------------------------------

TEST_P(CudaBackend, RmsNorm) {
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {1, 1}, {1, 8}, {5, 2048}, {33, 100}, {300, 257}}) {
    const tensor x = ref::random_tensor({rows, cols}, 70 + rows, 3.0);
    tensor w = ref::random_tensor({cols}, 71 + cols, 0.5);
    for (float& v : w.values())
      v += 1.0f;
    auto got = gpu_->rmsnorm(x, w, 1e-5f);
    auto want = cpu_.rmsnorm(x, w, 1e-5f);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(got->shape(), want->shape());
    EXPECT_LE(rel(*got, *want), tol()) << rows << " x " << cols;
  }
  auto empty = gpu_->rmsnorm(tensor({0, 4}), tensor({4}), 1e-5f);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_EQ(gpu_->launches()[op::rmsnorm], 6u);
}

struct attn_shape {
  std::int64_t heads, kv_heads, head_dim;
};
// GQA groups of 1, 2, 3, 4 and 16 (more query heads per kv head than warps
// per block), head dims from 2 to 256 and not multiples of 32. In bf16 and
// fp16 head dims 32, 64, 80 and 128 run on the tensor cores
// (attention_on_tensor_cores), the others on the CUDA cores.
const std::vector<attn_shape> attn_shapes = {{4, 2, 2},   {5, 5, 6},   {4, 2, 8},
                                             {32, 8, 64}, {12, 4, 80}, {16, 1, 32},
                                             {8, 2, 128}, {2, 1, 256}};

TEST_P(CudaBackend, RopeOnQAndK) {
  for (const attn_shape& s : attn_shapes) {
    const attention_config cfg{.n_heads = s.heads, .n_kv_heads = s.kv_heads,
                               .head_dim = s.head_dim, .rope_theta = 500000.0f};
    const std::int64_t rows = 37;
    std::vector<std::int64_t> pos;
    for (std::int64_t t = 0; t < rows; ++t)
      pos.push_back((t * 977) % 8192);
    const tensor q0 = ref::random_tensor({rows, cfg.q_dim()}, 80 + s.heads);
    const tensor k0 = ref::random_tensor({rows, cfg.kv_dim()}, 81 + s.head_dim);
    tensor qg = q0, kg = k0, qc = q0, kc = k0;
    ASSERT_TRUE(cpu_.rope(cfg, qc, kc, pos).ok());
    const absl::Status st = gpu_->rope(cfg, qg, kg, pos);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_LE(rel(qg, qc), tol()) << "heads " << s.heads << " head_dim " << s.head_dim;
    EXPECT_LE(rel(kg, kc), tol()) << "heads " << s.heads << " head_dim " << s.head_dim;
    // q only.
    tensor q1 = q0, q2 = q0;
    tensor no_k({0, cfg.kv_dim()});
    ASSERT_TRUE(cpu_.rope(cfg, q1, no_k, pos).ok());
    ASSERT_TRUE(gpu_->rope(cfg, q2, no_k, pos).ok());
    EXPECT_LE(rel(q2, q1), tol());
  }
  EXPECT_EQ(gpu_->launches()[op::rope], 2 * attn_shapes.size());
}

TEST_P(CudaBackend, AttentionPrefillOnRaggedBatches) {
  // Empty sequences, single tokens, and sequences longer than one key tile
  // (32) and than one cpu score block (64).
  const std::vector<std::vector<std::int64_t>> batches = {
      {0, 1}, {0, 5, 5, 40, 41, 107}, {0, 0, 130}, {0, 33, 66, 99}};
  for (const attn_shape& s : attn_shapes)
    for (const auto& offsets : batches) {
      const attention_config cfg{.n_heads = s.heads, .n_kv_heads = s.kv_heads,
                                 .head_dim = s.head_dim};
      const std::int64_t rows = offsets.back();
      const tensor q = ref::random_tensor({rows, cfg.q_dim()}, 90 + rows, 2.0);
      const tensor k = ref::random_tensor({rows, cfg.kv_dim()}, 91 + rows, 2.0);
      const tensor v = ref::random_tensor({rows, cfg.kv_dim()}, 92 + rows);
      auto want = cpu_.attention_prefill(cfg, q, k, v, offsets);
      auto got = gpu_->attention_prefill(cfg, q, k, v, offsets);
      ASSERT_TRUE(want.ok());
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->shape(), want->shape());
      EXPECT_LE(rel(*got, *want), tol())
          << "heads " << s.heads << "/" << s.kv_heads << " head_dim " << s.head_dim
          << " rows " << rows;
    }
  EXPECT_EQ(gpu_->launches()[op::attention_prefill], attn_shapes.size() * batches.size());
}

TEST_P(CudaBackend, AttentionDecodeReadsOnlyTheValidPositions) {
  for (const attn_shape& s : attn_shapes) {
    const attention_config cfg{.n_heads = s.heads, .n_kv_heads = s.kv_heads,
                               .head_dim = s.head_dim};
    const std::int64_t n_seq = 5;
    const std::int64_t capacity = 70;
    kv_cache cache(n_seq, capacity, cfg.kv_dim());
    cache.k = ref::random_tensor({n_seq, capacity, cfg.kv_dim()}, 100 + s.head_dim, 2.0);
    cache.v = ref::random_tensor({n_seq, capacity, cfg.kv_dim()}, 101 + s.head_dim);
    // Four of the five slots queried; positions past each length are NaN.
    const std::vector<std::int64_t> lengths = {1, 33, 70, 64};
    for (std::size_t slot = 0; slot < lengths.size(); ++slot)
      for (std::int64_t p = lengths[slot]; p < capacity; ++p)
        for (std::int64_t c = 0; c < cfg.kv_dim(); ++c) {
          const std::int64_t i =
              (static_cast<std::int64_t>(slot) * capacity + p) * cfg.kv_dim() + c;
          cache.k[i] = std::numeric_limits<float>::quiet_NaN();
          cache.v[i] = std::numeric_limits<float>::quiet_NaN();
        }
    const tensor q = ref::random_tensor({4, cfg.q_dim()}, 102 + s.heads, 2.0);
    auto want = cpu_.attention_decode(cfg, q, cache, lengths);
    auto got = gpu_->attention_decode(cfg, q, cache, lengths);
    ASSERT_TRUE(want.ok());
    ASSERT_TRUE(got.ok()) << got.status();
    for (float x : got->values())
      ASSERT_TRUE(std::isfinite(x)) << "read a position past its length";
    EXPECT_LE(rel(*got, *want), tol()) << "heads " << s.heads << " head_dim " << s.head_dim;
  }
  EXPECT_EQ(gpu_->launches()[op::attention_decode], attn_shapes.size());
}

// Gemma 3's shape (4 heads on 1 kv head of 256), and head dims on the
// tensor cores and not.
const std::vector<attn_shape> window_shapes = {
    {4, 1, 256}, {32, 8, 64}, {8, 2, 128}, {5, 5, 6}};

TEST_P(CudaBackend, SlidingWindowAttentionPrefillAndDecode) {
  // Windows shorter than, across and longer than the kernels' 32-key tiles.
  const std::vector<std::int64_t> offsets = {0, 1, 6, 46, 176};
  const std::int64_t rows = offsets.back();
  for (const attn_shape& s : window_shapes)
    for (const std::int64_t window : {1, 5, 31, 33, 64, 200}) {
      const attention_config cfg{.n_heads = s.heads, .n_kv_heads = s.kv_heads,
                                 .head_dim = s.head_dim, .window = window};
      const tensor q = ref::random_tensor({rows, cfg.q_dim()}, 130 + window, 2.0);
      const tensor k = ref::random_tensor({rows, cfg.kv_dim()}, 131 + window, 2.0);
      const tensor v = ref::random_tensor({rows, cfg.kv_dim()}, 132 + window);
      auto want = cpu_.attention_prefill(cfg, q, k, v, offsets);
      auto got = gpu_->attention_prefill(cfg, q, k, v, offsets);
      ASSERT_TRUE(want.ok());
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_LE(rel(*got, *want), tol()) << "head_dim " << s.head_dim << " window " << window;
      // Decode: positions outside each slot's window are NaN and must not be read.
      const std::vector<std::int64_t> lengths = {1, 5, 33, 70};
      const std::int64_t capacity = 70;
      kv_cache cache(4, capacity, cfg.kv_dim());
      cache.k = ref::random_tensor({4, capacity, cfg.kv_dim()}, 133 + window, 2.0);
      cache.v = ref::random_tensor({4, capacity, cfg.kv_dim()}, 134 + window);
      for (std::int64_t slot = 0; slot < 4; ++slot)
        for (std::int64_t p = 0; p < capacity; ++p) {
          const std::int64_t len = lengths[static_cast<std::size_t>(slot)];
          if (p < len && p >= len - window)
            continue;
          for (std::int64_t c = 0; c < cfg.kv_dim(); ++c) {
            const std::int64_t i = (slot * capacity + p) * cfg.kv_dim() + c;
            cache.k[i] = std::numeric_limits<float>::quiet_NaN();
            cache.v[i] = std::numeric_limits<float>::quiet_NaN();
          }
        }
      const tensor qd = ref::random_tensor({4, cfg.q_dim()}, 135 + window, 2.0);
      auto want_d = cpu_.attention_decode(cfg, qd, cache, lengths);
      auto got_d = gpu_->attention_decode(cfg, qd, cache, lengths);
      ASSERT_TRUE(want_d.ok()) << want_d.status();
      ASSERT_TRUE(got_d.ok()) << got_d.status();
      for (float x : got_d->values())
        ASSERT_TRUE(std::isfinite(x)) << "read a position outside the window " << window;
      EXPECT_LE(rel(*got_d, *want_d), tol()) << "head_dim " << s.head_dim << " window " << window;
    }
}

// Queries at only the last positions of each sequence (a prefill continuing
// cached keys), with and without a window.
TEST_P(CudaBackend, AttentionWithQueriesAtTheLastPositions) {
  const std::vector<std::int64_t> offsets = {0, 5, 9, 79, 229};
  const std::vector<std::int64_t> past = {0, 4, 33, 70};
  const std::int64_t rows = offsets.back();
  for (const attn_shape& s : window_shapes)
    for (const std::int64_t window : {0, 5, 33}) {
      const attention_config cfg{.n_heads = s.heads, .n_kv_heads = s.kv_heads,
                                 .head_dim = s.head_dim, .window = window};
      const tensor k = ref::random_tensor({rows, cfg.kv_dim()}, 141 + window, 2.0);
      const tensor v = ref::random_tensor({rows, cfg.kv_dim()}, 142 + window);
      const ref::tail q =
          ref::tail_rows(ref::random_tensor({rows, cfg.q_dim()}, 140 + window, 2.0), offsets,
                         past);
      auto want = cpu_.attention_prefill(cfg, q.rows, k, v, offsets, q.offsets);
      auto got = gpu_->attention_prefill(cfg, q.rows, k, v, offsets, q.offsets);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->shape(), want->shape());
      EXPECT_LE(rel(*got, *want), tol()) << "head_dim " << s.head_dim << " window " << window;
    }
}

TEST_P(CudaBackend, AttentionRejectsWhatTheCpuRejectsAndHeadDimsOver256) {
  const attention_config bad{.n_heads = 3, .n_kv_heads = 2, .head_dim = 4};
  const tensor q({2, 12});
  const tensor kv({2, 8});
  const std::vector<std::int64_t> offsets = {0, 2};
  EXPECT_EQ(gpu_->attention_prefill(bad, q, kv, kv, offsets).status(),
            cpu_.attention_prefill(bad, q, kv, kv, offsets).status());
  const attention_config wide{.n_heads = 1, .n_kv_heads = 1, .head_dim = 258};
  const tensor x({2, 258});
  ASSERT_TRUE(cpu_.attention_prefill(wide, x, x, x, offsets).ok());
  const auto st = gpu_->attention_prefill(wide, x, x, x, offsets).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("head_dim up to 256"), std::string::npos) << st;
  EXPECT_EQ(gpu_->launches().total(), 0u);
}

TEST_P(CudaBackend, KvStoreIsBitwiseTheCpusLastWriteWins) {
  const std::int64_t kvd = 24;
  kv_cache want(3, 10, kvd);
  want.k = ref::random_tensor({3, 10, kvd}, 110);
  want.v = ref::random_tensor({3, 10, kvd}, 111);
  kv_cache got = want;
  const tensor k = ref::random_tensor({9, kvd}, 112);
  const tensor v = ref::random_tensor({9, kvd}, 113);
  // Runs of adjacent positions, single rows, and (1, 4) written twice.
  const std::vector<std::int64_t> slot = {0, 0, 0, 2, 1, 1, 2, 1, 2};
  const std::vector<std::int64_t> pos = {0, 1, 2, 9, 4, 5, 0, 4, 8};
  ASSERT_TRUE(cpu_.kv_store(want, k, v, slot, pos).ok());
  const absl::Status st = gpu_->kv_store(got, k, v, slot, pos);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(same_bits(got.k, want.k));
  EXPECT_TRUE(same_bits(got.v, want.v));
  const std::vector<std::int64_t> out_of_range = {0, 0, 0, 2, 1, 1, 2, 1, 3};
  EXPECT_EQ(gpu_->kv_store(got, k, v, out_of_range, pos),
            cpu_.kv_store(want, k, v, out_of_range, pos));
  EXPECT_EQ(gpu_->launches()[op::kv_store], 1u);
}

TEST_P(CudaBackend, SiluMulAndAdd) {
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {1, 1}, {3, 7}, {7, 300}, {64, 8192}}) { // 3 x 7: 4 at a time, then 1
    const tensor g = ref::random_tensor({rows, cols}, 120 + cols, 6.0);
    const tensor u = ref::random_tensor({rows, cols}, 121 + cols);
    auto got = gpu_->silu_mul(g, u);
    auto want = cpu_.silu_mul(g, u);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    EXPECT_LE(rel(*got, *want), tol()) << rows << " x " << cols;
    tensor yg = ref::random_tensor({rows, cols}, 122 + cols);
    tensor yc = yg;
    ASSERT_TRUE(gpu_->add(yg, g).ok());
    ASSERT_TRUE(cpu_.add(yc, g).ok());
    EXPECT_LE(rel(yg, yc), tol()) << rows << " x " << cols;
  }
  EXPECT_EQ(gpu_->silu_mul(tensor({2, 3}), tensor({3, 2})).status(),
            cpu_.silu_mul(tensor({2, 3}), tensor({3, 2})).status());
  EXPECT_EQ(gpu_->launches()[op::silu_mul], 4u);
  EXPECT_EQ(gpu_->launches()[op::add], 4u);
}

TEST_P(CudaBackend, GeluMul) {
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {1, 1}, {3, 7}, {7, 300}, {64, 2048}}) {
    const tensor g = ref::random_tensor({rows, cols}, 140 + cols, 8.0);
    const tensor u = ref::random_tensor({rows, cols}, 141 + cols);
    auto got = gpu_->gelu_mul(g, u);
    // GELU's negative tail is steep: the 1x1 gate, -3.18, moves it by 2.3%
    // when rounded to bf16. The cpu computes from the device's inputs.
    auto want = cpu_.gelu_mul(stored(g), stored(u));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    EXPECT_LE(rel(*got, *want), tol()) << rows << " x " << cols;
  }
  EXPECT_EQ(gpu_->gelu_mul(tensor({2, 3}), tensor({3, 2})).status(),
            cpu_.gelu_mul(tensor({2, 3}), tensor({3, 2})).status());
  EXPECT_EQ(gpu_->launches().to_string(), "gelu_mul=4");
}

// --- Mixture of experts ------------------------------------------------------------------

void expect_same_routing(const moe_routing& got, const moe_routing& want) {
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.n_experts, want.n_experts);
  EXPECT_EQ(got.k, want.k);
  EXPECT_EQ(got.expert, want.expert);
  EXPECT_EQ(got.expert_offsets, want.expert_offsets);
  EXPECT_EQ(got.row_of_slot, want.row_of_slot);
  EXPECT_EQ(got.token_of_row, want.token_of_row);
  ASSERT_EQ(got.weight.size(), want.weight.size());
  for (std::size_t i = 0; i < got.weight.size(); ++i)
    EXPECT_NEAR(got.weight[i], want.weight[i], 1e-6) << "slot " << i;
}

TEST_P(CudaBackend, RouterTopKIsTheCpusIncludingTies) {
  struct router_case {
    std::int64_t tokens, experts, k;
    bool ties;
  };
  const std::vector<router_case> cases = {
      {37, 8, 2, false}, {5, 64, 8, false},  {100, 4, 4, false},
      {60, 16, 3, true},  {1, 1, 1, false}};
  for (const bool renormalise : {true, false})
    for (const router_case& c : cases) {
      tensor logits = ref::random_tensor({c.tokens, c.experts}, 130 + c.experts, 4.0);
      if (c.ties) // few distinct values: many ties, broken towards the lower expert
        for (float& x : logits.values())
          x = std::round(x) / 2;
      auto got = gpu_->router_topk(logits, c.k, renormalise);
      auto want = cpu_.router_topk(logits, c.k, renormalise);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(want.ok());
      SCOPED_TRACE(testing::Message() << c.tokens << " tokens, " << c.experts << " experts, k "
                                      << c.k << (renormalise ? ", renormalised" : ""));
      expect_same_routing(*got, *want);
    }
  auto none = gpu_->router_topk(tensor({0, 8}), 2, true);
  ASSERT_TRUE(none.ok());
  expect_same_routing(*none, *cpu_.router_topk(tensor({0, 8}), 2, true));
  tensor inf({2, 4});
  inf[5] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(gpu_->router_topk(inf, 2, true).status(), cpu_.router_topk(inf, 2, true).status());
  EXPECT_EQ(gpu_->launches()[op::router_topk], 2 * cases.size() + 1);
}

TEST_P(CudaBackend, AddGatedMatchesTheCpu) {
  for (const std::int64_t cols : {1, 7, 2048}) {
    const tensor y0 = ref::random_tensor({33, cols}, 150 + cols);
    const tensor x = ref::random_tensor({33, cols}, 151 + cols);
    const tensor gate = ref::random_tensor({33, 1}, 152 + cols, 4.0);
    tensor want = y0, got = y0;
    ASSERT_TRUE(cpu_.add_gated(want, x, gate).ok());
    const absl::Status st = gpu_->add_gated(got, x, gate);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_LE(rel(got, want), tol()) << cols << " columns";
  }
  tensor y({2, 3});
  EXPECT_EQ(gpu_->add_gated(y, tensor({2, 3}), tensor({3, 1})),
            cpu_.add_gated(y, tensor({2, 3}), tensor({3, 1})));
  EXPECT_EQ(gpu_->launches().to_string(), "add_gated=3");
}

TEST_P(CudaBackend, MoeGatherIsBitwiseAndCombineMatches) {
  const tensor logits = ref::random_tensor({50, 8}, 140, 3.0);
  auto r = cpu_.router_topk(logits, 2, true);
  ASSERT_TRUE(r.ok());
  for (const std::int64_t cols : {1, 96, 2048}) {
    const tensor x = ref::random_tensor({50, cols}, 141 + cols);
    auto got = gpu_->moe_gather(x, *r);
    auto want = cpu_.moe_gather(x, *r);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    EXPECT_TRUE(same_bits(*got, *want)) << cols << " columns";
    const tensor y = ref::random_tensor({100, cols}, 142 + cols);
    auto cg = gpu_->moe_combine(y, *r);
    auto cc = cpu_.moe_combine(y, *r);
    ASSERT_TRUE(cg.ok()) << cg.status();
    ASSERT_TRUE(cc.ok());
    // The cpu's order of operations without fused multiply-adds: the same bits.
    EXPECT_TRUE(same_bits(*cg, *cc)) << cols << " columns, rel " << rel(*cg, *cc);
  }
  EXPECT_EQ(gpu_->moe_combine(tensor({99, 4}), *r).status(),
            cpu_.moe_combine(tensor({99, 4}), *r).status());
  EXPECT_EQ(gpu_->launches()[op::moe_gather], 3u);
  EXPECT_EQ(gpu_->launches()[op::moe_combine], 3u);
}

// --- Activation compression ---------------------------------------------------------------

TEST_P(CudaBackend, QuantizeAndDequantizeAreBitwiseTheCpus) {
  for (const int bits : {8, 4})
    for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {1, 1}, {3, 7}, {16, 2048}, {9, 333}, {2, 0}}) {
      tensor x = ref::random_tensor({rows, cols}, 150 + cols, 5.0);
      if (rows > 4 && cols > 0) {
        for (std::int64_t j = 0; j < cols; ++j) {
          x[1 * cols + j] = 0.0f;    // an all-zero row
          x[3 * cols + j] *= 1e-40f; // a scale that underflows
        }
        x[2 * cols] = -x[2 * cols]; // sign of the row maximum
        x[4 * cols] = std::numeric_limits<float>::max(); // a scale rounded toward zero
      }
      auto got = gpu_->quantize(x, bits);
      auto want = cpu_.quantize(x, bits);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(want.ok());
      SCOPED_TRACE(testing::Message() << bits << " bits, " << rows << " x " << cols);
      EXPECT_EQ(got->rows, want->rows);
      EXPECT_EQ(got->cols, want->cols);
      EXPECT_EQ(got->codes, want->codes);
      EXPECT_TRUE(same_bits(got->scales, want->scales));
      auto back_g = gpu_->dequantize(*want);
      auto back_c = cpu_.dequantize(*want);
      ASSERT_TRUE(back_g.ok()) << back_g.status();
      EXPECT_TRUE(same_bits(*back_g, *back_c));
    }
  tensor nan({1, 3});
  nan[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(gpu_->quantize(nan, 8).status(), cpu_.quantize(nan, 8).status());
  quantized_activations bad;
  bad.rows = 1;
  bad.cols = 2;
  bad.codes = {0x80, 0x01};
  bad.scales = {1.0f};
  EXPECT_EQ(gpu_->dequantize(bad).status(), cpu_.dequantize(bad).status());
  EXPECT_EQ(gpu_->launches()[op::quantize], 10u);
  EXPECT_EQ(gpu_->launches()[op::dequantize], 10u);
}

TEST_P(CudaBackend, SparsifyAndDensifyAreBitwiseTheCpus) {
  struct sparse_case {
    std::int64_t rows, cols, k;
    bool ties;
  };
  const std::vector<sparse_case> cases = {{4, 10, 0, true},     {4, 10, 1, true},
                                          {4, 10, 5, true},     {4, 10, 10, true},
                                          {8, 2048, 64, false}, {3, 1000, 999, true},
                                          {5, 300, 17, true},   {2, 1, 1, false}};
  for (const sparse_case& c : cases) {
    tensor x = ref::random_tensor({c.rows, c.cols}, 160 + c.cols + c.k, 3.0);
    if (c.ties) // integers -3..3 and signed zeros: many equal magnitudes
      for (float& v : x.values())
        v = std::round(v);
    if (c.cols >= 10) {
      x[0] = std::numeric_limits<float>::infinity();
      x[3] = -std::numeric_limits<float>::infinity();
      x[4] = -0.0f;
    }
    auto got = gpu_->sparsify_topk(x, c.k);
    auto want = cpu_.sparsify_topk(x, c.k);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    SCOPED_TRACE(testing::Message() << c.rows << " x " << c.cols << ", k " << c.k);
    EXPECT_EQ(got->indices, want->indices);
    EXPECT_TRUE(same_bits(got->values, want->values));
    auto dg = gpu_->densify(*want);
    auto dc = cpu_.densify(*want);
    ASSERT_TRUE(dg.ok()) << dg.status();
    EXPECT_TRUE(same_bits(*dg, *dc));
  }
  sparse_activations twice;
  twice.rows = 1;
  twice.cols = 4;
  twice.k = 2;
  twice.values = {1.0f, 2.0f};
  twice.indices = {3, 3};
  EXPECT_EQ(gpu_->densify(twice).status(), cpu_.densify(twice).status());
  EXPECT_EQ(gpu_->launches()[op::sparsify], cases.size());
  EXPECT_EQ(gpu_->launches()[op::densify], cases.size());
}

TEST_P(CudaBackend, HalfCastsAreBitwiseTheCpus) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {0.0f,       -0.0f,     1.0f,          1.0f + 0x1p-11f,
                                1.0f + 0x3p-11f, 65504.0f, 65520.0f,  1e9f,
                                -1e-7f,     0x1p-25f,  0x1.8p-25f,    1e-45f,
                                inf,        -inf,      std::numeric_limits<float>::quiet_NaN(),
                                3.0e38f,    1.0f + 0x1p-8f, 1.0f + 0x3p-8f};
  // A signalling NaN with a payload.
  special.push_back(std::bit_cast<float>(0x7f800123u));
  tensor x = ref::random_tensor({31, 77}, 170, 100.0);
  std::copy(special.begin(), special.end(), x.values().begin());
  for (const half_type t : {half_type::fp16, half_type::bf16}) {
    auto got = gpu_->cast_half(x, t);
    auto want = cpu_.cast_half(x, t);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(got->bits, want->bits) << half_type_name(t);
    auto back_g = gpu_->uncast_half(*want);
    auto back_c = cpu_.uncast_half(*want);
    ASSERT_TRUE(back_g.ok()) << back_g.status();
    EXPECT_TRUE(same_bits(*back_g, *back_c)) << half_type_name(t);
  }
  EXPECT_EQ(gpu_->launches()[op::cast_half], 2u);
  EXPECT_EQ(gpu_->launches()[op::uncast_half], 2u);
}

// --- Layers -------------------------------------------------------------------------------

swiglu_weights random_mlp(std::int64_t d, std::int64_t f, std::uint64_t seed) {
  return {ref::random_tensor({f, d}, seed, 1.0 / std::sqrt(static_cast<double>(d))),
          ref::random_tensor({f, d}, seed + 1, 1.0 / std::sqrt(static_cast<double>(d))),
          ref::random_tensor({d, f}, seed + 2, 1.0 / std::sqrt(static_cast<double>(f)))};
}

decoder_layer_weights random_layer(const decoder_config& cfg, std::int64_t ffn,
                                   std::uint64_t seed) {
  const std::int64_t d = cfg.hidden;
  const double s = 1.0 / std::sqrt(static_cast<double>(d));
  decoder_layer_weights w;
  w.attn_norm = ref::random_norm(d, seed);
  w.mlp_norm = ref::random_norm(d, seed + 1);
  w.wq = ref::random_tensor({cfg.attn.q_dim(), d}, seed + 2, s);
  w.wk = ref::random_tensor({cfg.attn.kv_dim(), d}, seed + 3, s);
  w.wv = ref::random_tensor({cfg.attn.kv_dim(), d}, seed + 4, s);
  w.wo = ref::random_tensor({d, cfg.attn.q_dim()}, seed + 5, s);
  w.ffn = random_mlp(d, ffn, seed + 6);
  return w;
}

decoder_config layer_config() {
  decoder_config cfg;
  cfg.hidden = 256;
  cfg.attn = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 32, .rope_theta = 10000.0f};
  return cfg;
}

// A Gemma 3 layer (q/k norms, sandwich norms, GeGLU, a sliding window of 16)
// on the Gemma 3 270M head shape.
decoder_config gemma_layer_config() {
  decoder_config cfg;
  cfg.hidden = 128;
  cfg.attn = {.n_heads = 4, .n_kv_heads = 1, .head_dim = 256, .scale = 0.0625f,
              .rope_theta = 10000.0f, .window = 16};
  cfg.rms_eps = 1e-6f;
  cfg.activation = mlp_activation::gelu_tanh;
  cfg.qk_norm = true;
  cfg.sandwich_norm = true;
  return cfg;
}

decoder_layer_weights random_gemma_layer(const decoder_config& cfg, std::uint64_t seed) {
  decoder_layer_weights w = random_layer(cfg, 256, seed);
  w.q_norm = ref::random_norm(cfg.attn.head_dim, seed + 1);
  w.k_norm = ref::random_norm(cfg.attn.head_dim, seed + 2);
  w.attn_out_norm = ref::random_norm(cfg.hidden, seed + 3);
  w.mlp_out_norm = ref::random_norm(cfg.hidden, seed + 4);
  return w;
}

TEST_P(CudaBackend, DecoderLayerPrefillAndDecodeMatchTheCpu) {
  const decoder_config cfg = layer_config();
  const decoder_layer_weights w = random_layer(cfg, 512, 200);
  // Prefill of a ragged batch into a cache, then one decode step.
  const std::vector<std::int64_t> offsets = {0, 1, 33, 70};
  const tensor x = ref::random_tensor({70, cfg.hidden}, 201);
  kv_cache cache_g(3, 80, cfg.attn.kv_dim());
  kv_cache cache_c(3, 80, cfg.attn.kv_dim());
  auto got = decoder_layer_prefill(*gpu_, cfg, w, x, offsets, &cache_g);
  auto want = decoder_layer_prefill(cpu_, cfg, w, x, offsets, &cache_c);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok());
  EXPECT_LE(rel(*got, *want), layer_tol());
  EXPECT_LE(rel(cache_g.k, cache_c.k), layer_tol());
  EXPECT_LE(rel(cache_g.v, cache_c.v), layer_tol());
  EXPECT_EQ(gpu_->launches().to_string(), cpu_.launches().to_string());

  const std::vector<std::int64_t> lengths = {1, 32, 37};
  const tensor step = ref::random_tensor({3, cfg.hidden}, 202);
  auto dg = decoder_layer_decode(*gpu_, cfg, w, step, cache_g, lengths);
  auto dc = decoder_layer_decode(cpu_, cfg, w, step, cache_c, lengths);
  ASSERT_TRUE(dg.ok()) << dg.status();
  ASSERT_TRUE(dc.ok());
  EXPECT_LE(rel(*dg, *dc), layer_tol());
  EXPECT_EQ(gpu_->launches().to_string(), cpu_.launches().to_string());
}

// Synthetic weights are made on the host whatever the backend: a whole
// model's forward pass from them agrees with the cpu's within its layers'
// rounding (tiny: 2 layers, then the final norm and the lm_head).
TEST_P(CudaBackend, SyntheticModelForwardPassMatchesTheCpu) {
  auto p = find_model("tiny");
  ASSERT_TRUE(p.ok()) << p.status();
  auto m = synthetic_model(*p, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < 17; ++i)
    tokens.push_back(static_cast<std::int32_t>((i * 37 + 11) % p->vocab_size));
  const std::vector<std::int64_t> offsets = {0, 11, 17};
  auto got = forward_logits(*gpu_, *m, tokens, offsets);
  auto want = forward_logits(cpu_, *m, tokens, offsets);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_LE(rel(*got, *want), static_cast<double>(p->num_layers + 1) * layer_tol());
}

// Gemma 3's layer (gemma_layer_config): prefill with a cached past, and
// decode, against the cpu backend.
TEST_P(CudaBackend, GemmaLayerMatchesTheCpu) {
  const decoder_config cfg = gemma_layer_config();
  const decoder_layer_weights w = random_gemma_layer(cfg, 260);
  const tensor x = ref::random_tensor({45, cfg.hidden}, 265);
  const tensor pk = ref::random_tensor({20, cfg.attn.kv_dim()}, 266);
  const tensor pv = ref::random_tensor({20, cfg.attn.kv_dim()}, 267);
  const std::vector<std::int64_t> offsets = {0, 5, 45};
  const std::vector<past_kv> past = {{pk.matrix(), pv.matrix()}, {}};
  auto got = decoder_layer_extend(*gpu_, cfg, w, x, offsets, past);
  auto want = decoder_layer_extend(cpu_, cfg, w, x, offsets, past);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_LE(rel(got->out, want->out), layer_tol());
  EXPECT_LE(rel(got->k, want->k), layer_tol());
  EXPECT_EQ(gpu_->launches().to_string(), cpu_.launches().to_string());

  kv_cache cache_g(2, 40, cfg.attn.kv_dim());
  kv_cache cache_c(2, 40, cfg.attn.kv_dim());
  const tensor y = ref::random_tensor({30, cfg.hidden}, 268);
  const std::vector<std::int64_t> prefix = {0, 10, 30};
  ASSERT_TRUE(decoder_layer_prefill(*gpu_, cfg, w, y, prefix, &cache_g).ok());
  ASSERT_TRUE(decoder_layer_prefill(cpu_, cfg, w, y, prefix, &cache_c).ok());
  const tensor step = ref::random_tensor({2, cfg.hidden}, 269);
  const std::vector<std::int64_t> lengths = {10, 20};
  auto dg = decoder_layer_decode(*gpu_, cfg, w, step, cache_g, lengths);
  auto dc = decoder_layer_decode(cpu_, cfg, w, step, cache_c, lengths);
  ASSERT_TRUE(dg.ok()) << dg.status();
  ASSERT_TRUE(dc.ok());
  EXPECT_LE(rel(*dg, *dc), layer_tol());
}

// The device-side layer of each kind of dense layer: Llama's, Gemma 3's and
// one with q/k/v biases (Qwen's attention).
struct device_layer_case {
  const char* name;
  decoder_config cfg;
  decoder_layer_weights w;
};

std::vector<device_layer_case> device_layer_cases() {
  std::vector<device_layer_case> cases;
  cases.push_back({"llama", layer_config(), random_layer(layer_config(), 512, 210)});
  cases.push_back({"gemma", gemma_layer_config(), random_gemma_layer(gemma_layer_config(), 220)});
  device_layer_case biased{"qkv bias", layer_config(), random_layer(layer_config(), 512, 230)};
  biased.cfg.qkv_bias = true;
  biased.w.bq = ref::random_tensor({biased.cfg.attn.q_dim()}, 231);
  biased.w.bk = ref::random_tensor({biased.cfg.attn.kv_dim()}, 232);
  biased.w.bv = ref::random_tensor({biased.cfg.attn.kv_dim()}, 233);
  cases.push_back(std::move(biased));
  return cases;
}

// The layer run on the device (backend::layer_extend) against the same
// layer built call by call from the same backend's kernels: the same kernels
// in the same order on the same values, so the same bits, and the same
// launches; with weights kept resident too. Sequences with and without a
// cached past, and an empty one.
TEST_P(CudaBackend, LayerOnTheDeviceIsTheLayerCallByCall) {
  for (const auto& [name, cfg, w] : device_layer_cases()) {
    SCOPED_TRACE(name);
    const std::vector<std::int64_t> offsets = {0, 5, 5, 41, 60};
    const tensor x = ref::random_tensor({60, cfg.hidden}, 211);
    const std::int64_t kvd = cfg.attn.kv_dim();
    const tensor pk = ref::random_tensor({30, kvd}, 212);
    const tensor pv = ref::random_tensor({30, kvd}, 213);
    const std::vector<past_kv> none(4);
    const std::vector<past_kv> some = {
        past_kv{const_matrix_view{pk.data(), 7, kvd}, const_matrix_view{pv.data(), 7, kvd}},
        past_kv{},
        past_kv{const_matrix_view{pk.data() + 7 * kvd, 23, kvd},
                const_matrix_view{pv.data() + 7 * kvd, 23, kvd}},
        past_kv{}};
    for (const bool resident : {false, true}) {
      if (resident) {
        ASSERT_TRUE(keep_resident(*gpu_, w).ok());
        const std::int64_t elem = GetParam() == cuda_precision::bf16 ||
                                          GetParam() == cuda_precision::fp16
                                      ? 2
                                      : 4;
        const auto& mlp = std::get<swiglu_weights>(w.ffn);
        EXPECT_EQ(gpu_->resident_bytes(),
                  elem * (w.wq.numel() + w.wk.numel() + w.wv.numel() + w.wo.numel() +
                          mlp.gate.numel() + mlp.up.numel() + mlp.down.numel()));
      }
      for (const auto* past : {&none, &some}) {
        SCOPED_TRACE(::testing::Message() << "resident " << resident << ", past "
                                          << (past == &some));
        gpu_->reset_launch_counts();
        auto fused = gpu_->layer_extend(cfg, w, x, offsets, *past);
        const std::string fused_launches = gpu_->launches().to_string();
        // It ran on the device, and was timed there.
        EXPECT_GT(gpu_->last_layer_device_seconds(), 0.0);
        gpu_->reset_launch_counts();
        auto calls = decoder_layer_extend_from_kernels(*gpu_, cfg, w, x, offsets, *past);
        ASSERT_TRUE(fused.ok()) << fused.status();
        ASSERT_TRUE(calls.ok()) << calls.status();
        EXPECT_EQ(fused_launches, gpu_->launches().to_string());
        EXPECT_EQ(fused->out.storage(), calls->out.storage());
        EXPECT_EQ(fused->k.storage(), calls->k.storage());
        EXPECT_EQ(fused->v.storage(), calls->v.storage());
        // And the cpu backend's layer, to the precision's tolerance.
        auto want = decoder_layer_extend(cpu_, cfg, w, x, offsets, *past);
        ASSERT_TRUE(want.ok());
        EXPECT_LE(rel(fused->out, want->out), layer_tol());
        EXPECT_LE(rel(fused->k, want->k), layer_tol());
      }
    }
    gpu_->drop_resident();
    EXPECT_EQ(gpu_->resident_bytes(), 0);
    // Errors are the call-by-call layer's.
    const std::vector<past_kv> three(3);
    auto bad = gpu_->layer_extend(cfg, w, x, offsets, three);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(gpu_->last_layer_device_seconds(), 0.0);
    EXPECT_NE(bad.status().message().find("3 pasts for 4 sequences"), std::string::npos)
        << bad.status();
  }
}

TEST_P(CudaBackend, MoeLayerMatchesTheCpu) {
  const std::int64_t d = 64;
  moe_weights w;
  // Seed 8: the second and third logits of every token are at least 0.47
  // apart (checked below), far more than 16-bit rounding moves them, so both
  // backends route every token alike.
  w.router = ref::random_tensor({8, d}, 9, 20.0 / 8);
  for (std::int64_t e = 0; e < 8; ++e)
    w.experts.push_back(random_mlp(d, 48, 300 + 10 * static_cast<std::uint64_t>(e)));
  w.top_k = 2;
  const tensor x = ref::random_tensor({24, d}, 8);
  auto logits = linear(cpu_, x, w.router);
  ASSERT_TRUE(logits.ok());
  for (std::int64_t t = 0; t < 24; ++t) {
    std::vector<float> row(logits->data() + t * 8, logits->data() + (t + 1) * 8);
    std::sort(row.begin(), row.end(), std::greater<float>());
    ASSERT_GT(row[1] - row[2], 0.4f) << "near tie in the routing of token " << t;
  }
  cpu_.reset_launch_counts();
  auto got = moe_layer(*gpu_, w, x);
  auto want = moe_layer(cpu_, w, x);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok());
  EXPECT_LE(rel(*got, *want), layer_tol());
  EXPECT_EQ(gpu_->launches().to_string(),
            "gemm=1 gemm_grouped=3 silu_mul=1 router_topk=1 moe_gather=1 moe_combine=1");
  EXPECT_EQ(gpu_->launches().to_string(), cpu_.launches().to_string());
}

// --- Without a device, and the factory ----------------------------------------------------

TEST(CudaFactory, PrecisionNamesRoundTrip) {
  for (const cuda_precision p : {cuda_precision::bf16, cuda_precision::fp16,
                                 cuda_precision::tf32, cuda_precision::fp32}) {
    auto back = parse_cuda_precision(cuda_precision_name(p));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, p);
  }
  const auto bad = parse_cuda_precision("fp8");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("bf16, fp16, tf32, fp32"), std::string::npos)
      << bad.status();
}

TEST(CudaFactory, UnavailableSaysWhyAndBadDevicesAreRefused) {
  const device_info& dev = probe_devices();
  EXPECT_EQ(cuda_backend_built(), dev.cuda_built);
  auto b = make_cuda_backend();
  auto timing = cuda_copy_seconds(1 << 20, 3);
  if (!dev.cuda_built || dev.cuda_devices == 0) {
    EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(b.status().message().find(dev.cuda_built ? "no CUDA device" : "no CUDA backend"),
              std::string::npos)
        << b.status();
    EXPECT_EQ(timing.status().code(), absl::StatusCode::kUnavailable);
    return;
  }
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cuda");
  ASSERT_TRUE(timing.ok()) << timing.status();
  EXPECT_GT(*timing, 0.0);
  auto none = make_cuda_backend({.device = dev.cuda_devices});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
}

TEST(CudaTimings, DeviceFiguresArePositive) {
  if (!cuda_backend_built() || probe_devices().cuda_devices == 0) {
    SATEMU_CUDA_UNAVAILABLE("no CUDA backend or device: " << probe_devices().detail);
  }
  auto gemm = cuda_gemm_seconds(cuda_precision::bf16, 256, 256, 256, 3);
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  EXPECT_GT(*gemm, 0.0);
  auto quant = cuda_quantize_seconds(64, 1000, 4, 3);
  ASSERT_TRUE(quant.ok()) << quant.status();
  EXPECT_GT(*quant, 0.0);
  EXPECT_EQ(cuda_gemm_seconds(cuda_precision::fp16, 0, 4, 4, 3).status().code(),
            absl::StatusCode::kInvalidArgument);
}

} // namespace
} // namespace satemu::gpu
