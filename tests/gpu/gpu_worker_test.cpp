// The GPU worker in the virtual-time kernel: N entities asking for the same
// weights in one window make exactly one launch set per weight set, with the
// same numbers as N separate calls (to fp32 rounding), and each result
// arrives at its request time plus the modeled duration of that request alone.
#include "gpu/gpu_worker.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "gpu/cpu_backend.hpp"
#include "gpu/model_runner.hpp"
#include "reference.hpp"
#include "runtime/kernel.hpp"
#include "runtime/output.hpp"

namespace satemu::gpu {
namespace {

using runtime::duration;
using runtime::microseconds;
using runtime::milliseconds;
using runtime::vtime;

model_weights tiny(const char* name = "tiny") {
  auto p = find_model(name);
  EXPECT_TRUE(p.ok()) << p.status();
  auto m = synthetic_model(*p, 7);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

hardware_profile device() {
  auto hw = find_hardware("jetson-orin-nano");
  EXPECT_TRUE(hw.ok()) << hw.status();
  return *hw;
}

std::unique_ptr<gpu_worker> cpu_worker(bool modeled = false) {
  gpu_worker_options o;
  o.device = device();
  o.modeled = modeled;
  return std::make_unique<gpu_worker>(std::make_unique<cpu_backend>(), o);
}

/// An entity that, at `at`, asks for each request `make` builds, and keeps
/// what comes back.
class requester final : public runtime::entity {
public:
  using maker = std::function<std::vector<std::unique_ptr<compute_request>>()>;

  requester(duration at, maker make) : at_(at), make_(std::move(make)) {}

  struct answer {
    std::uint64_t tag;
    vtime time;
    duration took;
    absl::StatusOr<tensor> result;
    tensor keys;
  };
  vtime asked;
  std::vector<answer> answers;

protected:
  void on_start() override { schedule(at_, 0); }
  void on_envelope(protocol::envelope&) override {}
  void on_timer(std::uint64_t) override {
    asked = now();
    auto reqs = make_();
    for (std::size_t i = 0; i < reqs.size(); ++i)
      compute(i, std::move(reqs[i]));
  }
  void on_compute(std::uint64_t tag, std::unique_ptr<runtime::compute_job> job) override {
    auto& r = as_request(*job);
    answers.push_back({tag, now(), r.duration, std::move(r.result), std::move(r.keys)});
  }

private:
  duration at_;
  maker make_;
};

requester& at(std::vector<std::unique_ptr<runtime::entity>>& w, std::size_t i) {
  return static_cast<requester&>(*w[i]);
}

runtime::run_result run_with(std::vector<std::unique_ptr<runtime::entity>>& w,
                             runtime::compute_service& svc, std::size_t threads = 2) {
  runtime::run_options o;
  o.end = vtime::zero() + milliseconds(100);
  o.lookahead = milliseconds(1);
  o.threads = threads;
  o.seed = 3;
  o.compute.service = &svc;
  return runtime::run(w, o);
}

void expect_same(const tensor& got, const tensor& want) {
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LE(ref::rel_err(got.values(), ref::to_double(want.values())), 1e-6);
}

launch_counts one_layer_call(const model_weights& m, const tensor& x) {
  cpu_backend b;
  const std::int64_t off[] = {0, x.rows()};
  EXPECT_TRUE(decoder_layer_prefill(b, m.config, m.layers[0], x, off).ok());
  return b.launches();
}

TEST(GpuWorker, NRequestsInOneWindowAreOneLaunchSetWithTheSameNumbers) {
  const auto m = tiny();
  const std::vector<std::int64_t> lengths{1, 3, 17, 5, 2, 9};
  const auto n = lengths.size();
  std::vector<tensor> inputs;
  for (std::size_t i = 0; i < n; ++i)
    inputs.push_back(ref::random_tensor({lengths[i], m.config.hidden}, 100 + i, 1.0));

  std::vector<std::unique_ptr<runtime::entity>> w;
  for (std::size_t i = 0; i < n; ++i)
    w.push_back(std::make_unique<requester>(microseconds(100 + 50 * static_cast<std::int64_t>(i)),
                                            [&, i] {
                                              std::vector<std::unique_ptr<compute_request>> v;
                                              v.push_back(compute_request::layer(
                                                m.config, m.layers[0], inputs[i]));
                                              return v;
                                            }));
  auto worker = cpu_worker();
  const auto r = run_with(w, *worker);

  // One batch, one weight set: the launches of a single call, for all six.
  EXPECT_EQ(r.compute_batches, 1u);
  EXPECT_EQ(r.compute_requests, n);
  EXPECT_EQ(worker->groups_last_batch(), 1u);
  EXPECT_EQ(worker->launches().by_op, one_layer_call(m, inputs[0]).by_op)
    << worker->launches().to_string();
  EXPECT_EQ(worker->launches()[op::attention_prefill], 1u);

  // The same numbers as separate calls, at request time + that request's
  // own modeled duration.
  cpu_backend alone;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& e = at(w, i);
    ASSERT_EQ(e.answers.size(), 1u) << i;
    const auto& a = e.answers[0];
    ASSERT_TRUE(a.result.ok()) << a.result.status();
    const std::int64_t off[] = {0, inputs[i].rows()};
    auto want = decoder_layer_prefill(alone, m.config, m.layers[0], inputs[i], off);
    ASSERT_TRUE(want.ok()) << want.status();
    expect_same(*a.result, *want);
    const auto cost = compute_request::layer(m.config, m.layers[0], inputs[i])->cost(2);
    const auto took = modeled_duration(device(), compute_precision::fp16, cost);
    EXPECT_EQ(a.took, took) << i;
    EXPECT_EQ(a.time, e.asked + took) << i;
    EXPECT_GT(took, duration::zero());
  }
  // Longer sequences take longer.
  EXPECT_GT(at(w, 2).answers[0].took, at(w, 0).answers[0].took);
}

// Prefix caching through the worker: requests that continue cached
// prefixes of different lengths stack into one launch set, give the rows a
// full prefill gives, hand back the new keys, and cost more for a longer past.
TEST(GpuWorker, RequestsContinuingCachedPrefixesStack) {
  const auto m = tiny();
  const auto& cfg = m.config;
  const std::int64_t kv = cfg.attn.kv_dim();
  const std::vector<std::int64_t> total{12, 7, 20};
  const std::vector<std::int64_t> cached{8, 0, 4};
  const auto n = total.size();
  std::vector<tensor> full, want;
  std::vector<kv_cache> caches;
  for (std::size_t i = 0; i < n; ++i) {
    full.push_back(ref::random_tensor({total[i], cfg.hidden}, 300 + i, 1.0));
    caches.emplace_back(1, total[i], kv);
    cpu_backend b;
    const std::int64_t off[] = {0, total[i]};
    auto y = decoder_layer_prefill(b, cfg, m.layers[0], full[i], off, &caches[i]);
    ASSERT_TRUE(y.ok()) << y.status();
    want.push_back(std::move(*y));
  }
  auto rows = [](const float* p, std::int64_t r, std::int64_t c) {
    return tensor({r, c}, std::vector<float>(p, p + r * c));
  };
  auto make = [&](std::size_t i) {
    const auto p = cached[i], t = total[i] - cached[i];
    return compute_request::layer(cfg, m.layers[0],
                                  rows(full[i].data() + p * cfg.hidden, t, cfg.hidden),
                                  p ? rows(caches[i].k.data(), p, kv) : tensor{},
                                  p ? rows(caches[i].v.data(), p, kv) : tensor{});
  };
  std::vector<std::unique_ptr<runtime::entity>> w;
  for (std::size_t i = 0; i < n; ++i)
    w.push_back(std::make_unique<requester>(microseconds(100), [&, i] {
      std::vector<std::unique_ptr<compute_request>> v;
      v.push_back(make(i));
      return v;
    }));
  auto worker = cpu_worker();
  const auto r = run_with(w, *worker);
  EXPECT_EQ(r.compute_batches, 1u);
  EXPECT_EQ(worker->launches()[op::attention_prefill], 1u);
  EXPECT_EQ(worker->launches()[op::rope], 1u);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(at(w, i).answers.size(), 1u);
    const auto& a = at(w, i).answers[0];
    ASSERT_TRUE(a.result.ok()) << a.result.status();
    const auto p = cached[i], t = total[i] - cached[i];
    expect_same(*a.result, rows(want[i].data() + p * cfg.hidden, t, cfg.hidden));
    expect_same(a.keys, rows(caches[i].k.data() + p * kv, t, kv));
  }
  // The same 4 new tokens cost more after 8 cached ones than after none.
  const auto x = ref::random_tensor({4, cfg.hidden}, 399, 1.0);
  const auto fresh = compute_request::layer(cfg, m.layers[0], x)->cost(2);
  const auto cont = compute_request::layer(cfg, m.layers[0], x, tensor({8, kv}), tensor({8, kv}))
                      ->cost(2);
  EXPECT_GT(cont.flops, fresh.flops);
  EXPECT_EQ(cont.bytes - fresh.bytes, 2.0 * 2 * 8 * kv);
}

TEST(GpuWorker, OneLaunchSetPerWeightSet) {
  const auto m = tiny();
  const auto d = m.config.hidden;
  // Entities alternate between layer 0 and layer 1; each also asks for the
  // LM head on two rows.
  std::vector<std::unique_ptr<runtime::entity>> w;
  for (std::size_t i = 0; i < 4; ++i)
    w.push_back(std::make_unique<requester>(microseconds(200), [&, i] {
      std::vector<std::unique_ptr<compute_request>> v;
      v.push_back(compute_request::layer(m.config, m.layers[i % 2],
                                         ref::random_tensor({3 + static_cast<std::int64_t>(i), d},
                                                            200 + i, 1.0)));
      v.push_back(compute_request::linear(m.lm_head(), ref::random_tensor({2, d}, 300 + i, 1.0)));
      return v;
    }));
  auto worker = cpu_worker();
  const auto r = run_with(w, *worker);
  EXPECT_EQ(r.compute_batches, 1u);
  EXPECT_EQ(r.compute_requests, 8u);
  EXPECT_EQ(worker->groups_last_batch(), 3u);
  EXPECT_EQ(worker->launches()[op::attention_prefill], 2u);
  EXPECT_EQ(worker->launches()[op::rope], 2u);
  // Two layers' 4 + 3 GEMMs, plus one for every LM head request.
  EXPECT_EQ(worker->launches()[op::gemm], 2u * 7u + 1u) << worker->launches().to_string();
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(at(w, i).answers.size(), 2u);
    for (const auto& a : at(w, i).answers)
      ASSERT_TRUE(a.result.ok()) << a.result.status();
    // One device per satellite: the LM head waits for the layer.
    const auto& layer = at(w, i).answers[0].tag == 0 ? at(w, i).answers[0] : at(w, i).answers[1];
    const auto& head = at(w, i).answers[0].tag == 1 ? at(w, i).answers[0] : at(w, i).answers[1];
    EXPECT_EQ(layer.time, at(w, i).asked + layer.took);
    EXPECT_EQ(head.time, layer.time + head.took);
    EXPECT_EQ(head.result->rows(), 2);
    EXPECT_EQ(head.result->cols(), m.lm_head().rows());
  }
}

TEST(GpuWorker, MoeRequestsBecomeOneGroupedGemmPerProjection) {
  const auto m = tiny("tiny-moe");
  std::vector<tensor> inputs;
  for (int i = 0; i < 5; ++i)
    inputs.push_back(ref::random_tensor({2 + 3 * i, m.config.hidden}, 400 + i, 1.0));
  std::vector<std::unique_ptr<runtime::entity>> w;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    w.push_back(std::make_unique<requester>(microseconds(10), [&, i] {
      std::vector<std::unique_ptr<compute_request>> v;
      v.push_back(compute_request::layer(m.config, m.layers[0], inputs[i]));
      return v;
    }));
  auto worker = cpu_worker();
  run_with(w, *worker);
  EXPECT_EQ(worker->launches()[op::gemm_grouped], 3u) << worker->launches().to_string();
  EXPECT_EQ(worker->launches()[op::router_topk], 1u);
  cpu_backend alone;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::int64_t off[] = {0, inputs[i].rows()};
    auto want = decoder_layer_prefill(alone, m.config, m.layers[0], inputs[i], off);
    ASSERT_EQ(at(w, i).answers.size(), 1u);
    expect_same(*at(w, i).answers[0].result, *want);
  }
}

TEST(GpuWorker, RequestCostMatchesTheModelProfileAndTheLaunchesOfOneCall) {
  for (const char* name : {"tiny", "tiny-moe", "tiny-gemma", "tiny-qwen-moe"}) {
    const auto m = tiny(name);
    // tiny-gemma: layer 0 slides over 8 keys, layer 1 attends globally.
    for (int l = 0; l < 2; ++l)
    for (std::int64_t t : {1, 7, 20}) {
      const auto& cfg = m.layer_configs[static_cast<std::size_t>(l)];
      const auto& layer = m.layers[static_cast<std::size_t>(l)];
      const auto x = ref::random_tensor({t, m.config.hidden}, 9, 1.0);
      const auto c = compute_request::layer(cfg, layer, x)->cost(2);
      // FLOPs: gpu/model.hpp counts the same work from the profile alone,
      // also after a cached past.
      EXPECT_EQ(c.flops, static_cast<double>(layer_flops(m.profile, l, t, 0))) << name << " " << t;
      const tensor pk({5, cfg.attn.kv_dim()});
      EXPECT_EQ(compute_request::layer(cfg, layer, x, pk, pk)->cost(2).flops,
                static_cast<double>(layer_flops(m.profile, l, t, 5)))
          << name << " " << t;
      // Launches: what one call really launches.
      cpu_backend b;
      const std::int64_t off[] = {0, t};
      ASSERT_TRUE(decoder_layer_prefill(b, cfg, layer, x, off).ok());
      EXPECT_EQ(static_cast<std::uint64_t>(c.launches), b.launches().total()) << name;
      // Bytes: at least the weights the request touches, in fp16.
      const auto touched = m.profile.is_moe()
                             ? layer_weight_bytes_touched(m.profile, std::min<std::int64_t>(
                                                                       m.profile.num_experts,
                                                                       t * m.profile.experts_per_token),
                                                          2)
                             : layer_weight_bytes(m.profile, 2);
      EXPECT_GE(c.bytes, static_cast<double>(touched)) << name;
      EXPECT_LT(c.bytes, static_cast<double>(touched) * 1.2) << name;
      // The profile alone (compute.mode: modeled) gives the same cost, also
      // after a cached past.
      for (const std::int64_t past : {0, 5}) {
        const tensor kv({past, cfg.attn.kv_dim()});
        const auto want = past == 0 ? c : compute_request::layer(cfg, layer, x, kv, kv)->cost(2);
        const auto got = layer_cost(m.profile, l, t, past, 2);
        EXPECT_EQ(got.flops, want.flops) << name << " " << t << " " << past;
        EXPECT_EQ(got.bytes, want.bytes) << name << " " << t << " " << past;
        EXPECT_EQ(got.launches, want.launches) << name;
      }
    }
  }
  // At full size: Gemma 3 270M's sliding layer 0 (window 512) and global
  // layer 5, past the window.
  const auto gemma = find_model("gemma-3-270m");
  ASSERT_TRUE(gemma.ok());
  for (const int l : {0, 5}) {
    auto cfg = decoder_config_of(*gemma, l);
    auto w = synthetic_layer(*gemma, l);
    ASSERT_TRUE(cfg.ok() && w.ok());
    const std::int64_t t = 3, past = 700;
    const tensor x({t, gemma->hidden_size});
    const tensor kv({past, cfg->attn.kv_dim()});
    const auto want = compute_request::layer(*cfg, *w, x, kv, kv)->cost(2);
    const auto got = layer_cost(*gemma, l, t, past, 2);
    EXPECT_EQ(got.flops, want.flops) << l;
    EXPECT_EQ(got.bytes, want.bytes) << l;
    EXPECT_EQ(got.launches, want.launches) << l;
    // The KV cache read: a sliding layer's window (the 511 keys before the
    // first new token), a global layer's whole past; 1,024 bytes a key (K
    // and V of one 256-wide head in fp16).
    const double more_past = layer_cost(*gemma, l, t, past + 100, 2).bytes - got.bytes;
    EXPECT_EQ(more_past, l == 0 ? 0.0 : 100.0 * 1024) << l;
    if (l == 0) {
      EXPECT_EQ(got.bytes, layer_cost(*gemma, l, t, 511, 2).bytes);
    }
  }
  // The LM head after a prefill: one token's row against the vocabulary.
  const auto head = lm_head_cost(tiny().profile, 2);
  EXPECT_EQ(head.flops, 2.0 * 64 * 256);
  EXPECT_EQ(head.bytes, 2.0 * 64 * 256);
  EXPECT_EQ(head.launches, 1);
  const auto m = tiny();
  const auto lin =
      compute_request::linear(m.lm_head(), ref::random_tensor({3, m.config.hidden}, 1, 1.0));
  const auto c = lin->cost(4);
  EXPECT_EQ(c.flops, 2.0 * 3 * m.config.hidden * m.lm_head().rows());
  EXPECT_EQ(c.bytes, 4.0 * (m.lm_head().numel() + 3 * m.config.hidden + 3 * m.lm_head().rows()));
  EXPECT_EQ(c.launches, 1);
}

TEST(GpuWorker, ModeledModeRunsNoKernelAndKeepsTheTimes) {
  const auto m = tiny();
  auto make_world = [&] {
    std::vector<std::unique_ptr<runtime::entity>> w;
    for (std::size_t i = 0; i < 3; ++i)
      w.push_back(std::make_unique<requester>(microseconds(30), [&, i] {
        std::vector<std::unique_ptr<compute_request>> v;
        v.push_back(compute_request::layer(
          m.config, m.layers[0],
          ref::random_tensor({4 + static_cast<std::int64_t>(i), m.config.hidden}, i, 1.0)));
        v.push_back(compute_request::modeled(1e9, 1e6, 3));
        return v;
      }));
    return w;
  };
  auto real_world = make_world();
  auto real = cpu_worker(false);
  const auto a = run_with(real_world, *real);
  auto modeled_world = make_world();
  auto modeled = cpu_worker(true);
  const auto b = run_with(modeled_world, *modeled, 1);
  EXPECT_EQ(modeled->launches().total(), 0u);
  EXPECT_GT(real->launches().total(), 0u);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(at(modeled_world, i).answers.size(), 2u);
    for (std::size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(at(modeled_world, i).answers[k].time, at(real_world, i).answers[k].time);
      EXPECT_EQ(at(modeled_world, i).answers[k].result->numel(), 0);
    }
  }
  // A modeled request: 1 GFLOP on 10 TFLOP/s fp16 is 100 us, plus three
  // launch overheads.
  const auto hw = device();
  EXPECT_EQ(modeled_duration(hw, compute_precision::fp16, {1e9, 1e6, 3}),
            microseconds(100) + hw.launch_overhead * 3);
}

// A device queue of requests whose durations add up beyond the time type
// saturates short of `never`: the results are simply not delivered in the
// run, which ends normally.
TEST(GpuWorker, AQueueBeyondTheTimeTypesLimitSaturates) {
  std::vector<std::unique_ptr<runtime::entity>> w;
  w.push_back(std::make_unique<requester>(microseconds(30), [] {
    std::vector<std::unique_ptr<compute_request>> v;
    for (int i = 0; i < 200; ++i)
      v.push_back(compute_request::modeled(1e40, 0, 1)); // max_estimate each
    return v;
  }));
  w.push_back(std::make_unique<requester>(microseconds(30), [] {
    std::vector<std::unique_ptr<compute_request>> v;
    v.push_back(compute_request::modeled(1e9, 0, 1));
    return v;
  }));
  auto worker = cpu_worker(true);
  const auto r = run_with(w, *worker);
  EXPECT_TRUE(at(w, 0).answers.empty());
  ASSERT_EQ(at(w, 1).answers.size(), 1u); // another entity's device is its own
  EXPECT_EQ(at(w, 1).answers[0].took, modeled_duration(device(), compute_precision::fp16,
                                                       {1e9, 0, 1}));
  (void)r;
}

TEST(GpuWorker, ABadRequestFailsAloneAndTheRunGoesOn) {
  const auto m = tiny();
  std::vector<std::unique_ptr<runtime::entity>> w;
  w.push_back(std::make_unique<requester>(microseconds(10), [&] {
    std::vector<std::unique_ptr<compute_request>> v;
    v.push_back(
        compute_request::linear(m.lm_head(), ref::random_tensor({2, m.config.hidden + 1}, 1, 1.0)));
    return v;
  }));
  w.push_back(std::make_unique<requester>(microseconds(10), [&] {
    std::vector<std::unique_ptr<compute_request>> v;
    v.push_back(compute_request::layer(m.config, m.layers[0], ref::random_tensor({2, m.config.hidden}, 2, 1.0)));
    return v;
  }));
  auto worker = cpu_worker();
  run_with(w, *worker);
  ASSERT_EQ(at(w, 0).answers.size(), 1u);
  EXPECT_FALSE(at(w, 0).answers[0].result.ok());
  ASSERT_EQ(at(w, 1).answers.size(), 1u);
  EXPECT_TRUE(at(w, 1).answers[0].result.ok()) << at(w, 1).answers[0].result.status();
}

// A model whose fp32 weights exceed the memory limit is refused before its
// weights are made; the default limit is the memory available.
TEST(ModelFor, RefusesWeightsBeyondTheMemoryLimit) {
  compute_config c;
  auto p = find_model("tiny");
  ASSERT_TRUE(p.ok());
  c.model = *p;
  const auto need = static_cast<std::uint64_t>(parameter_count(c.model)) * sizeof(float);
  c.memory_limit = need;
  auto fits = model_for(c);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(fits->layers.size(), static_cast<std::size_t>(c.model.num_layers));
  c.memory_limit = need - 1;
  auto refused = model_for(c);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("compute.memory_limit"), std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("compute.mode: modeled"), std::string::npos);
  // The default limit: the memory available, some but not more than the
  // machine has.
  c.memory_limit = 0;
  const std::uint64_t available = runtime::available_memory_bytes();
  EXPECT_GT(available, need);
  EXPECT_LE(available, static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                           static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_TRUE(model_for(c).ok());
}

// The section's compute.threads reaches the cpu backend; 0 is one per core.
TEST(MakeGpuWorker, CpuThreadsComeFromTheSection) {
  compute_config c;
  c.backend = "cpu";
  auto p = find_model("tiny");
  ASSERT_TRUE(p.ok());
  c.model = *p;
  auto hw = find_hardware("jetson-nano");
  ASSERT_TRUE(hw.ok());
  c.device = *hw;
  for (const int threads : {3, 0}) {
    c.cpu_threads = threads;
    auto w = make_gpu_worker(c);
    ASSERT_TRUE(w.ok()) << w.status();
    const auto* cpu = dynamic_cast<const cpu_backend*>(&(*w)->device_backend());
    ASSERT_NE(cpu, nullptr);
    EXPECT_EQ(cpu->threads(),
              threads > 0 ? threads
                          : runtime::host_cores());
  }
}

} // namespace
} // namespace satemu::gpu
