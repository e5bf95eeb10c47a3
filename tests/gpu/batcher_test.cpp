// Batching: N requests of one window that share weights run as one launch
// set, and give the same numbers as N separate calls (to fp32 rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
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

// A request the kernels refuse gets the error its call alone gives, and
// the requests sharing its weights their own results: a wider request before
// a narrower one (whose stacking would overrun the stacked input), a narrower
// one, and a layer request whose past is malformed.
TEST(Batcher, ARefusedRequestFailsAloneAndTheOthersOfItsWeightsRun) {
  const auto m = tiny();
  const std::int64_t d = m.config.hidden;
  cpu_backend b;
  batcher batch(b);
  const auto& head = m.lm_head();
  const tensor x = ref::random_tensor({2, d}, 1, 1.0);
  const auto wide = batch.submit_linear(head, ref::random_tensor({2, d + 8}, 2, 1.0));
  const auto good = batch.submit_linear(head, x);
  const auto narrow = batch.submit_linear(head, ref::random_tensor({1, d - 8}, 3, 1.0));
  const tensor seq = ref::random_tensor({3, d}, 4, 1.0);
  const tensor past = ref::random_tensor({2, m.config.attn.kv_dim()}, 5, 1.0);
  const auto layer_good = batch.submit_layer(m.config, m.layers[0], seq);
  const auto layer_bad = batch.submit_layer(m.config, m.layers[0], seq, past,
                                            ref::random_tensor({1, m.config.attn.kv_dim()}, 6));
  const absl::Status st = batch.flush();
  EXPECT_FALSE(st.ok());
  cpu_backend lone;
  for (const auto t : {wide, narrow}) {
    const auto got = batch.take(t);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
  auto want = linear(lone, x, head);
  auto got = batch.take(good);
  ASSERT_TRUE(got.ok() && want.ok()) << got.status();
  expect_same(*got, *want);
  const auto bad = batch.take(layer_bad);
  ASSERT_FALSE(bad.ok());
  const std::vector<std::int64_t> one = {0, 3};
  auto want_layer = decoder_layer_prefill(lone, m.config, m.layers[0], seq, one);
  auto got_layer = batch.take(layer_good);
  ASSERT_TRUE(got_layer.ok() && want_layer.ok()) << got_layer.status();
  expect_same(*got_layer, *want_layer);
  EXPECT_EQ(batch.take_kv(layer_good).first.rows(), 3);
  EXPECT_EQ(batch.pending(), 0u);
}

// Stacked together are requests on the same weights object and, for layers,
// the same config object: a linear request on a layer's first tensor (at the
// layer's own address) is not the layer, and a layer run with another config
// gets that config's result.
TEST(Batcher, GroupsAreWeightsAndConfigNotAnAddressAlone) {
  const auto m = tiny();
  const std::int64_t d = m.config.hidden;
  ASSERT_EQ(static_cast<const void*>(&m.layers[0]),
            static_cast<const void*>(&m.layers[0].attn_norm));
  cpu_backend b;
  batcher batch(b);
  const tensor seq = ref::random_tensor({5, d}, 7, 1.0);
  decoder_config windowed = m.config;
  windowed.attn.window = 2;
  const auto plain = batch.submit_layer(m.config, m.layers[0], seq);
  const auto slid = batch.submit_layer(windowed, m.layers[0], seq);
  const auto norm = batch.submit_linear(m.layers[0].attn_norm, seq);
  (void)batch.flush();
  EXPECT_EQ(batch.groups_last_flush(), 3u);
  cpu_backend lone;
  // The norm's lone call, whatever it gives, not a layer's result.
  const auto want_norm = linear(lone, seq, m.layers[0].attn_norm);
  const auto got_norm = batch.take(norm);
  ASSERT_EQ(got_norm.ok(), want_norm.ok()) << got_norm.status();
  if (want_norm.ok())
    expect_same(*got_norm, *want_norm);
  else
    EXPECT_EQ(got_norm.status(), want_norm.status());
  const std::vector<std::int64_t> one = {0, 5};
  for (const auto& [t, cfg] :
       {std::pair{plain, &m.config}, std::pair{slid, &std::as_const(windowed)}}) {
    auto want = decoder_layer_prefill(lone, *cfg, m.layers[0], seq, one);
    auto got = batch.take(t);
    ASSERT_TRUE(got.ok() && want.ok());
    expect_same(*got, *want);
  }
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
