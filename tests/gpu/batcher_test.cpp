// Batching: N requests of one window that share weights run as one launch
// set, and give the same numbers as N separate calls (to fp32 rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "gpu/batcher.hpp"
#include "gpu/cpu_backend.hpp"
#include "gpu/model_runner.hpp"
#include "recording_backend.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

model_weights tiny(const char* name = "tiny") {
  auto p = find_model(name);
  EXPECT_TRUE(p.ok()) << p.status();
  auto m = synthetic_model(*p, 7);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

/// Equal to fp32 rounding: OpenBLAS picks its GEMM kernels by matrix size,
/// so a row of a stacked GEMM may differ from the same row alone in the last
/// bits (relative error ~1e-7).
void expect_same(const tensor& got, const tensor& want) {
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LE(ref::rel_err(got.values(), ref::to_double(want.values())), 1e-6);
}

TEST(Batcher, DecoderLayerRequestsOfOneWeightSetRunAsOneLaunchSet) {
  const auto m = tiny();
  const auto d = m.config.hidden;
  const std::vector<std::int64_t> lengths{1, 3, 17, 5, 2, 9};
  std::vector<tensor> inputs;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    inputs.push_back(ref::random_tensor({lengths[i], d}, 100 + i, 1.0));

  // Alone: one call per request.
  cpu_backend alone;
  std::vector<tensor> want;
  for (auto& x : inputs) {
    const std::int64_t off[] = {0, x.rows()};
    auto y = decoder_layer_prefill(alone, m.config, m.layers[0], x, off);
    ASSERT_TRUE(y.ok()) << y.status();
    want.push_back(std::move(*y));
  }
  const auto one_call = [&] {
    cpu_backend b;
    const std::int64_t off[] = {0, inputs[0].rows()};
    EXPECT_TRUE(decoder_layer_prefill(b, m.config, m.layers[0], inputs[0], off).ok());
    return b.launches();
  }();

  cpu_backend b;
  batcher batch(b);
  std::vector<batcher::ticket> t;
  for (auto& x : inputs)
    t.push_back(batch.submit_layer(m.config, m.layers[0], x));
  ASSERT_TRUE(batch.flush().ok());
  EXPECT_EQ(batch.groups_last_flush(), 1u);
  // Exactly the launches of a single request, for all six.
  EXPECT_EQ(b.launches().by_op, one_call.by_op) << b.launches().to_string();
  EXPECT_EQ(b.launches()[op::attention_prefill], 1u);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto y = batch.take(t[i]);
    ASSERT_TRUE(y.ok()) << y.status();
    expect_same(*y, want[i]);
  }
}

TEST(Batcher, OneLaunchSetPerWeightSet) {
  const auto m = tiny();
  const auto d = m.config.hidden;
  cpu_backend b;
  batcher batch(b);
  // Interleaved requests for layers 0 and 1, and a linear layer.
  std::vector<batcher::ticket> t;
  std::vector<tensor> xs;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(ref::random_tensor({3 + i, d}, 200 + i, 1.0));
    t.push_back(batch.submit_layer(m.config, m.layers[static_cast<std::size_t>(i % 2)], xs.back()));
  }
  const tensor hx = ref::random_tensor({4, d}, 300, 1.0);
  const tensor hx2 = ref::random_tensor({2, d}, 301, 1.0);
  const auto head = batch.submit_linear(m.lm_head(), hx);
  const auto head2 = batch.submit_linear(m.lm_head(), hx2);
  ASSERT_TRUE(batch.flush().ok());
  EXPECT_EQ(batch.groups_last_flush(), 3u);
  EXPECT_EQ(b.launches()[op::attention_prefill], 2u);
  EXPECT_EQ(b.launches()[op::rope], 2u);
  // Two layers' 4 + 3 GEMMs, plus one for both lm_head requests.
  EXPECT_EQ(b.launches()[op::gemm], 2u * 7u + 1u) << b.launches().to_string();
  // The numbers of separate calls.
  cpu_backend alone;
  for (const auto& [ticket, x] : {std::pair{head, &hx}, std::pair{head2, &hx2}}) {
    auto got = batch.take(ticket);
    auto want = linear(alone, *x, m.lm_head());
    ASSERT_TRUE(got.ok() && want.ok());
    expect_same(*got, *want);
  }
  for (std::size_t i = 0; i < t.size(); ++i) {
    auto got = batch.take(t[i]);
    const std::int64_t off[] = {0, xs[i].rows()};
    auto want = decoder_layer_prefill(alone, m.config, m.layers[i % 2], xs[i], off);
    ASSERT_TRUE(got.ok() && want.ok());
    expect_same(*got, *want);
  }
  EXPECT_EQ(batch.pending(), 0u);
}

TEST(Batcher, MoeLayerRequestsBecomeOneGroupedGemmPerProjection) {
  const auto m = tiny("tiny-moe");
  const auto d = m.config.hidden;
  std::vector<tensor> inputs;
  for (int i = 0; i < 5; ++i)
    inputs.push_back(ref::random_tensor({2 + 3 * i, d}, 400 + i, 1.0));
  cpu_backend alone;
  std::vector<tensor> want;
  for (auto& x : inputs) {
    const std::int64_t off[] = {0, x.rows()};
    want.push_back(*decoder_layer_prefill(alone, m.config, m.layers[0], x, off));
  }
  cpu_backend b;
  batcher batch(b);
  std::vector<batcher::ticket> t;
  for (auto& x : inputs)
    t.push_back(batch.submit_layer(m.config, m.layers[0], x));
  ASSERT_TRUE(batch.flush().ok());
  EXPECT_EQ(b.launches()[op::gemm_grouped], 3u) << b.launches().to_string();
  EXPECT_EQ(b.launches()[op::router_topk], 1u);
  for (std::size_t i = 0; i < inputs.size(); ++i)
    expect_same(*batch.take(t[i]), want[i]);
}

TEST(Batcher, MismatchedWidthsFailTheGroupOnly) {
  const auto m = tiny();
  cpu_backend b;
  batcher batch(b);
  const auto& head = m.lm_head();
  const auto bad1 = batch.submit_linear(head, ref::random_tensor({2, m.config.hidden}, 1, 1.0));
  const auto bad2 = batch.submit_linear(head, ref::random_tensor({2, m.config.hidden + 1}, 2, 1.0));
  const auto good = batch.submit_layer(m.config, m.layers[0], ref::random_tensor({2, m.config.hidden}, 3, 1.0));
  EXPECT_FALSE(batch.flush().ok());
  EXPECT_FALSE(batch.take(bad1).ok());
  EXPECT_FALSE(batch.take(bad2).ok());
  EXPECT_TRUE(batch.take(good).ok());
}

// Before a group runs, its weights are kept resident on the backend (a GPU
// backend's device copy), and layer groups run as the backend's layer call.
TEST(Batcher, KeepsEachGroupsWeightsResidentAndRunsLayersAsOneCall) {
  const auto m = tiny();
  const auto moe = tiny("tiny-moe");
  const auto d = m.config.hidden;
  recording_backend b;
  batcher batch(b);
  const auto t0 = batch.submit_layer(m.config, m.layers[0], ref::random_tensor({4, d}, 1));
  batch.submit_layer(m.config, m.layers[0], ref::random_tensor({2, d}, 2));
  batch.submit_layer(moe.config, moe.layers[1], ref::random_tensor({3, moe.config.hidden}, 3));
  batch.submit_linear(m.lm_head(), ref::random_tensor({2, d}, 4));
  ASSERT_TRUE(batch.flush().ok());
  EXPECT_EQ(b.layer_calls, 2);
  EXPECT_EQ(b.drops, 0);
  recording_backend want_layer0, want_moe;
  ASSERT_TRUE(keep_resident(want_layer0, m.layers[0]).ok());
  ASSERT_TRUE(keep_resident(want_moe, moe.layers[1]).ok());
  std::set<const float*> want = want_layer0.kept;
  want.insert(want_moe.kept.begin(), want_moe.kept.end());
  want.insert(m.lm_head().data());
  EXPECT_EQ(b.kept, want);
  EXPECT_TRUE(batch.take(t0).ok());
}

// When the device cannot hold a group's weights, the kept copies are
// dropped and the group still runs, with the same numbers.
TEST(Batcher, AGroupWhoseWeightsCannotBeKeptStillRuns) {
  const auto m = tiny();
  const tensor x = ref::random_tensor({5, m.config.hidden}, 9);
  recording_backend full;
  full.keep_answer = absl::ResourceExhaustedError("out of device memory");
  batcher batch(full);
  const auto t = batch.submit_layer(m.config, m.layers[0], x);
  ASSERT_TRUE(batch.flush().ok());
  EXPECT_EQ(full.drops, 1);
  auto got = batch.take(t);
  ASSERT_TRUE(got.ok()) << got.status();
  cpu_backend c;
  const std::int64_t off[] = {0, x.rows()};
  auto want = decoder_layer_prefill(c, m.config, m.layers[0], x, off);
  ASSERT_TRUE(want.ok());
  EXPECT_TRUE(std::ranges::equal(got->values(), want->values()));
}

} // namespace
} // namespace satemu::gpu
