// The cpu backend on several threads (cpu_backend.hpp, Threads): the task
// pool runs every task once; GEMMs large enough to be cut into column panels
// still match the double-precision reference; every kernel that shares out
// its work, and whole model layers, give the same bits on 1, 2 and 3
// threads; and OpenBLAS loads with one thread of its own.
#include <sys/wait.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "gpu/detail/task_pool.hpp"
#include "gpu/layers.hpp"
#include "gpu/model.hpp"
#include "gpu/model_runner.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

constexpr int thread_counts[] = {2, 3};

bool same_bits(const tensor& a, const tensor& b) {
  return a.shape() == b.shape() &&
         std::equal(a.values().begin(), a.values().end(), b.values().begin(),
                    [](float x, float y) { return std::memcmp(&x, &y, sizeof x) == 0; });
}

TEST(CpuThreads, TaskPoolRunsEveryTaskOnceOnItsThreads) {
  for (const int threads : {1, 2, 4}) {
    detail::task_pool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (const std::int64_t tasks : {0, 1, 2, 3, 17, 1000}) {
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(tasks));
      std::atomic<bool> thread_in_range{true};
      pool.run(tasks, [&](std::int64_t task, int thread) {
        runs[static_cast<std::size_t>(task)].fetch_add(1);
        if (thread < 0 || thread >= threads)
          thread_in_range = false;
      });
      for (std::int64_t i = 0; i < tasks; ++i)
        ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1)
          << "task " << i << " of " << tasks << " on " << threads << " threads";
      EXPECT_TRUE(thread_in_range.load());
    }
  }
}

struct gemm_case {
  bool ta, tb;
  std::int64_t m, k, n;
};

// Above the panel cut (>= 512 output columns, >= 2^21 multiply-adds), with
// a last panel narrower than 256 columns.
const gemm_case large_gemms[] = {
  {false, true, 40, 300, 700}, {false, false, 200, 64, 1030}, {true, true, 33, 129, 777}};

tensor gemm_on(int threads, const gemm_case& g, const tensor& a, const tensor& b,
               const tensor& c0) {
  cpu_backend be(threads);
  tensor c = c0;
  const gemm_op o{.trans_a = g.ta, .trans_b = g.tb, .alpha = 0.5f, .beta = 0.25f};
  EXPECT_TRUE(be.gemm(o, a, b, c).ok());
  EXPECT_EQ(be.launches()[op::gemm], 1u);
  return c;
}

TEST(CpuThreads, LargeGemmsMatchTheReferenceAndAreTheSameBitsOnEveryThreadCount) {
  std::uint64_t seed = 40;
  for (const gemm_case& g : large_gemms) {
    const tensor a = g.ta ? ref::random_tensor({g.k, g.m}, seed++) : ref::random_tensor({g.m, g.k}, seed++);
    const tensor b = g.tb ? ref::random_tensor({g.n, g.k}, seed++) : ref::random_tensor({g.k, g.n}, seed++);
    const tensor c0 = ref::random_tensor({g.m, g.n}, seed++);
    const tensor one = gemm_on(1, g, a, b, c0);
    const ref::vec want = ref::gemm(g.ta, g.tb, 0.5, a.values(), a.dim(0), a.dim(1), b.values(),
                                    b.dim(0), b.dim(1), 0.25, c0.values());
    EXPECT_LE(ref::rel_err(one.values(), want), 1e-5) << g.m << "x" << g.k << "x" << g.n;
    for (const int threads : thread_counts)
      EXPECT_TRUE(same_bits(gemm_on(threads, g, a, b, c0), one))
        << g.m << "x" << g.k << "x" << g.n << " on " << threads << " threads";
  }
}

TEST(CpuThreads, BatchedAndGroupedGemmsAreTheSameBitsOnEveryThreadCount) {
  // Four problems: two large (cut into panels), two small.
  const std::int64_t m = 24, k = 200, n = 600, batch = 4;
  const tensor a = ref::random_tensor({batch * m, k}, 71);
  const tensor b = ref::random_tensor({batch * n, k}, 72);
  auto batched = [&](int threads) {
    cpu_backend be(threads);
    tensor c({batch * m, n});
    const gemm_op o{.trans_b = true};
    EXPECT_TRUE(be.gemm_strided_batched(o, batch, const_matrix_view(a.data(), m, k), m * k,
                                        const_matrix_view(b.data(), n, k), n * k,
                                        matrix_view(c.data(), m, n), m * n)
                  .ok());
    return c;
  };
  const std::int64_t shapes[][3] = {{m, k, n}, {3, 17, 5}, {m, k, 520}, {1, 9, 700}};
  std::vector<tensor> as, bs;
  std::uint64_t seed = 80;
  for (const auto& s : shapes) {
    as.push_back(ref::random_tensor({s[0], s[1]}, seed++));
    bs.push_back(ref::random_tensor({s[2], s[1]}, seed++));
  }
  auto grouped = [&](int threads) {
    cpu_backend be(threads);
    std::vector<tensor> cs;
    std::vector<gemm_problem> problems;
    for (std::size_t i = 0; i < as.size(); ++i)
      cs.emplace_back(tensor::shape_type{as[i].dim(0), bs[i].dim(0)});
    for (std::size_t i = 0; i < as.size(); ++i)
      problems.push_back({as[i], bs[i], cs[i]});
    EXPECT_TRUE(be.gemm_grouped({.trans_b = true}, problems).ok());
    return cs;
  };
  const tensor batched_one = batched(1);
  const std::vector<tensor> grouped_one = grouped(1);
  for (const int threads : thread_counts) {
    EXPECT_TRUE(same_bits(batched(threads), batched_one)) << threads << " threads";
    const std::vector<tensor> cs = grouped(threads);
    for (std::size_t i = 0; i < cs.size(); ++i)
      EXPECT_TRUE(same_bits(cs[i], grouped_one[i])) << "problem " << i << ", " << threads
                                                    << " threads";
  }
}

TEST(CpuThreads, AttentionIsTheSameBitsOnEveryThreadCount) {
  // Ragged sequences, grouped-query heads, a sliding window, and queries
  // only at the last positions of the second sequence.
  const attention_config cfg{.n_heads = 8, .n_kv_heads = 2, .head_dim = 32,
                             .rope_theta = 10000.0f, .window = 100};
  const std::vector<std::int64_t> seqs = {0, 150, 400, 401};
  const std::vector<std::int64_t> queries = {0, 150, 250, 251};
  const tensor q = ref::random_tensor({queries.back(), cfg.q_dim()}, 91);
  const tensor k = ref::random_tensor({seqs.back(), cfg.kv_dim()}, 92);
  const tensor v = ref::random_tensor({seqs.back(), cfg.kv_dim()}, 93);
  auto prefill = [&](int threads) {
    cpu_backend be(threads);
    auto out = be.attention_prefill(cfg, q, k, v, seqs, queries);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : tensor();
  };
  // Decode: three slots at different lengths of one cache.
  kv_cache cache(3, 300, cfg.kv_dim());
  cache.k = ref::random_tensor({3, 300, cfg.kv_dim()}, 94);
  cache.v = ref::random_tensor({3, 300, cfg.kv_dim()}, 95);
  const tensor qd = ref::random_tensor({3, cfg.q_dim()}, 96);
  const std::vector<std::int64_t> lengths = {1, 299, 120};
  auto decode = [&](int threads) {
    cpu_backend be(threads);
    auto out = be.attention_decode(cfg, qd, cache, lengths);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : tensor();
  };
  const tensor prefill_one = prefill(1);
  const tensor decode_one = decode(1);
  for (const int threads : thread_counts) {
    EXPECT_TRUE(same_bits(prefill(threads), prefill_one)) << threads << " threads";
    EXPECT_TRUE(same_bits(decode(threads), decode_one)) << threads << " threads";
  }
}

TEST(CpuThreads, RowAndElementKernelsAreTheSameBitsOnEveryThreadCount) {
  // Large enough for every kernel to share its rows or elements out.
  const std::int64_t rows = 700, cols = 1024;
  const attention_config cfg{.n_heads = 8, .n_kv_heads = 4, .head_dim = 128,
                             .rope_theta = 10000.0f};
  const tensor x = ref::random_tensor({rows, cols}, 111);
  const tensor up = ref::random_tensor({rows, cols}, 112);
  const tensor w = ref::random_norm(cols, 113);
  std::vector<std::int64_t> positions(static_cast<std::size_t>(rows));
  for (std::int64_t t = 0; t < rows; ++t)
    positions[static_cast<std::size_t>(t)] = (t * 7919) % 4096;
  auto kernels = [&](int threads) {
    cpu_backend be(threads);
    std::vector<tensor> out;
    auto keep = [&](absl::StatusOr<tensor> t) {
      EXPECT_TRUE(t.ok()) << t.status();
      out.push_back(t.ok() ? *t : tensor());
    };
    keep(be.rmsnorm(x, w, 1e-5f));
    keep(be.silu_mul(x, up));
    keep(be.gelu_mul(x, up));
    tensor q = x, k = ref::random_tensor({rows, cfg.kv_dim()}, 114);
    EXPECT_TRUE(be.rope(cfg, q, k, positions).ok());
    out.push_back(q);
    out.push_back(k);
    tensor y = up;
    EXPECT_TRUE(be.add(y, x).ok());
    out.push_back(y);
    return out;
  };
  const std::vector<tensor> one = kernels(1);
  for (const int threads : thread_counts) {
    const std::vector<tensor> many = kernels(threads);
    ASSERT_EQ(many.size(), one.size());
    for (std::size_t i = 0; i < one.size(); ++i)
      EXPECT_TRUE(same_bits(many[i], one[i])) << "kernel " << i << " on " << threads
                                              << " threads";
  }
}

TEST(CpuThreads, ModelLayersAreTheSameBitsOnEveryThreadCount) {
  // Layer 0 of gemma-3-270m (sliding window, GeGLU, q/k norms) and of the
  // tiny MoE model, on two sequences.
  for (const char* name : {"gemma-3-270m", "tiny-moe"}) {
    auto p = find_model(name);
    ASSERT_TRUE(p.ok()) << p.status();
    auto cfg = decoder_config_of(*p, 0);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    auto w = synthetic_layer(*p, 0);
    ASSERT_TRUE(w.ok()) << w.status();
    const std::vector<std::int64_t> seqs = {0, 300, 520};
    const tensor x = ref::random_tensor({seqs.back(), cfg->hidden}, 101);
    auto layer = [&](int threads) {
      cpu_backend be(threads);
      auto y = decoder_layer_prefill(be, *cfg, *w, x, seqs);
      EXPECT_TRUE(y.ok()) << y.status();
      return y.ok() ? *y : tensor();
    };
    const tensor one = layer(1);
    for (const int threads : thread_counts)
      EXPECT_TRUE(same_bits(layer(threads), one)) << name << " on " << threads << " threads";
  }
}

// Runs this test program's CpuThreads.DISABLED_`test` alone with `env`
// (arguments of env(1)), and expects it to pass.
void run_child_test(const std::string& test, const std::string& env) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string log = ::testing::TempDir() + "openblas_child.txt";
  const std::string command = "env " + env + " " + self +
                              " --gtest_filter=CpuThreads.DISABLED_" + test +
                              " --gtest_also_run_disabled_tests > " + log + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(log);
  const std::string output{std::istreambuf_iterator<char>(in), {}};
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << output;
  EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
}

// The test programs that load OpenBLAS start as satemu does (test_main.cpp,
// start_with_openblas_settings): started without OPENBLAS_NUM_THREADS,
// they set it to 1 and start again, so that OpenBLAS loads with one thread
// rather than one per core; a setting of the user's stands.
TEST(CpuThreads, TestProgramsLoadOpenBlasWithOneThreadUnlessToldOtherwise) {
  const auto child = [](const std::string& env, int want) {
    run_child_test("OpenBlasLoadedWith",
                   env + " SATEMU_TEST_OPENBLAS_THREADS=" + std::to_string(want));
  };
  child("-u OPENBLAS_NUM_THREADS", 1);
  // OpenBLAS takes at most one thread per core.
  if (std::thread::hardware_concurrency() >= 2)
    child("OPENBLAS_NUM_THREADS=2", 2);
}

// The child's part: OpenBLAS loaded with the threads the parent expects.
TEST(CpuThreads, DISABLED_OpenBlasLoadedWith) {
  const char* want = std::getenv("SATEMU_TEST_OPENBLAS_THREADS");
  ASSERT_NE(want, nullptr);
  EXPECT_EQ(openblas_threads(), std::atoi(want));
  EXPECT_STREQ(std::getenv("OPENBLAS_NUM_THREADS"), want);
}

// Which kernels satemu asks OpenBLAS for: only in place of its generic
// fallback, and then the widest the CPU runs.
TEST(CpuThreads, OpenBlasKernelsAreAskedForOnlyInPlaceOfItsGenericFallback) {
  cpu_vector_features none;
  cpu_vector_features avx;
  avx.avx = true;
  cpu_vector_features avx2 = avx;
  avx2.avx2 = avx2.fma = true;
  cpu_vector_features avx2_no_fma = avx;
  avx2_no_fma.avx2 = true;
  cpu_vector_features avx512 = avx2;
  avx512.avx512 = true;
  EXPECT_EQ(openblas_core_to_ask_for("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(openblas_core_to_ask_for("Prescott", avx2), "Haswell");
  EXPECT_EQ(openblas_core_to_ask_for("Prescott", avx2_no_fma), "Sandybridge");
  EXPECT_EQ(openblas_core_to_ask_for("Prescott", avx), "Sandybridge");
  EXPECT_EQ(openblas_core_to_ask_for("Prescott", none), "");
  // OpenBLAS's own choice of a model it knows stands, even a narrower one.
  for (const char* known : {"Haswell", "SkylakeX", "Cooperlake", "Zen", "Sandybridge", ""})
    EXPECT_EQ(openblas_core_to_ask_for(known, avx512), "") << known;
}

// Started without OPENBLAS_CORETYPE, a test program does not run on
// OpenBLAS's generic fallback kernels where the CPU has wider ones (on a CPU
// model newer than OpenBLAS, it starts again asking for them); a setting of
// the user's stands, the fallback too.
TEST(CpuThreads, TestProgramsLoadOpenBlasKernelsTheCpuRunsUnlessToldOtherwise) {
  run_child_test("OpenBlasKernelsAsTheCpuAllows", "-u OPENBLAS_CORETYPE");
  run_child_test("OpenBlasKernelsAsTheCpuAllows",
                 "OPENBLAS_CORETYPE=Prescott SATEMU_TEST_OPENBLAS_CORE=Prescott");
}

// The child's part: the kernels the parent expects, and what satemu would
// ask for instead is nothing.
TEST(CpuThreads, DISABLED_OpenBlasKernelsAsTheCpuAllows) {
  if (const char* want = std::getenv("SATEMU_TEST_OPENBLAS_CORE"); want != nullptr) {
    EXPECT_EQ(openblas_core(), want);
    EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), want);
  } else {
    EXPECT_EQ(openblas_core_to_ask_for(openblas_core(), cpu_vector_features::of_this_cpu()), "")
      << "OpenBLAS loaded its " << openblas_core() << " kernels";
  }
}

} // namespace
} // namespace satemu::gpu
