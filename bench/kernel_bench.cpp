// Kernel throughput and memory, next to plain CAF's own message rate.
//
// Backs the claim "envelopes delivered per wall second in virtual time for
// 10,000 entities with 1 and 2 threads, next to CAF's own rate for 10,000
// plain actors passing messages to random peers, measured in the same run;
// target: kernel / CAF >= 1.0; memory at most 4 KiB per idle entity".
//
//   BM_Caf_RandomPeers/<actors>/<threads>/<tokens>
//       Plain CAF 0.17: N event_based_actors, K = tokens seeded per actor
//       (K = 1: nearly every message wakes an idle actor; K = 4: actors often
//       find several messages queued and handle them in one activation);
//       each receipt of a token (a 64-bit hop counter) forwards it to a
//       uniformly random other actor. Timed from the start messages until
//       M = 2,097,152 receipts; counter msgs_per_s. Reference
//       (TOOLCHAIN.md): ~0.8-1.5 M msg/s at 1,000 actors, ~0.4-0.8 M at 10,000.
//   BM_Kernel_Mesh/<entities>/<threads>/<rate>
//       The mesh workload on a torus (10,000 = 100x100, 1,000 = 40x25), edge
//       latency 5..10 ms (lookahead 5 ms), 64 B payload, run in virtual time,
//       `rate` messages per entity per emulated second. Counters
//       envelopes_per_s, events_per_s, windows, env_per_entity_window
//       (envelopes / (windows * entities): how many envelopes a window
//       batches per entity), and, from a plain-CAF run of the same N and
//       threads done in the same iteration right before, caf_msgs_per_s and
//       ratio = envelopes_per_s / caf_msgs_per_s. The plain-CAF run uses K = 1
//       token per actor (BM_Caf_RandomPeers shows K = 4 too). Manual time =
//       the kernel's wall_seconds (actor spawn + all windows + shutdown;
//       workload construction excluded).
//       A message crosses ~50 hops (10,000) or ~16 (1,000) of 7.5 ms on
//       average, so in steady state an entity sees about rate * hops * 5 ms
//       envelopes per window: at 10,000 entities rate 1 -> 0.25, rate 10 ->
//       2.5 (scenarios/mesh-10k.yaml), rate 50 -> 12; at 1,000, rate 60 -> 5.
//       Load ramps up over the first ~0.4 s (10,000), included in the figures.
//   BM_Kernel_IdleMemory/<entities>
//       100,000 mesh entities (torus 400x250) with rate 0, run for 10 ms of
//       emulated time. bytes_per_idle_entity = (rss_after_spawn -
//       rss_before_spawn) / N (the CAF actors); bytes_per_entity_total =
//       (rss_after_spawn - rss before building the workload) / N (graph,
//       entity objects and actors). Target <= 4096.
//
// Run: ./satemu bench kernel_bench --benchmark_repetitions=3
//        --benchmark_report_aggregates_only=true
// (about 4 minutes on an otherwise idle 2-core machine, bench/README.md). Every case is one iteration per repetition.

#include <dlfcn.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "actors/mesh.hpp"
#include "bench/bench_main.hpp"
#include "caf/all.hpp"
#include "runtime/kernel.hpp"
#include "runtime/output.hpp"
#include "runtime/rng.hpp"

namespace {

using namespace satemu;
using wall_clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Plain CAF: tokens hopping between random peers.

constexpr std::uint64_t caf_total_messages = std::uint64_t{1} << 21;
// Receipts are counted per worker thread and added to the shared counter in
// blocks, so the counter's cache line does not bounce on every message.
constexpr std::uint64_t caf_count_block = 256;
static_assert(caf_total_messages % caf_count_block == 0);

using go_atom = caf::atom_constant<caf::atom("go")>;

struct caf_shared {
  std::vector<caf::actor> peers;
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> stop{false};
  std::promise<void> done;
};

thread_local std::uint64_t tl_unflushed = 0;
thread_local const caf_shared* tl_owner = nullptr;

class peer_actor final : public caf::event_based_actor {
public:
  peer_actor(caf::actor_config& cfg, caf_shared* shared, std::uint32_t id, std::uint64_t tokens)
    : caf::event_based_actor(cfg), shared_(shared), id_(id), tokens_(tokens), rng_(42, id, 1) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](go_atom) {
        for (std::uint64_t k = 0; k < tokens_; ++k)
          send(pick(), std::uint64_t{0});
      },
      [this](std::uint64_t hops) {
        if (shared_->stop.load(std::memory_order_relaxed))
          return;
        count();
        send(pick(), hops + 1);
      },
    };
  }

private:
  const caf::actor& pick() {
    const auto n = shared_->peers.size();
    auto i = static_cast<std::uint32_t>(rng_.below(n - 1));
    if (i >= id_)
      ++i; // uniform over every other actor
    return shared_->peers[i];
  }

  void count() {
    if (tl_owner != shared_) { // a worker thread of a new run
      tl_owner = shared_;
      tl_unflushed = 0;
    }
    if (++tl_unflushed < caf_count_block)
      return;
    tl_unflushed = 0;
    const auto total =
      shared_->received.fetch_add(caf_count_block, std::memory_order_relaxed) + caf_count_block;
    if (total >= caf_total_messages && !shared_->stop.exchange(true))
      shared_->done.set_value();
  }

  caf_shared* shared_;
  std::uint32_t id_;
  std::uint64_t tokens_;
  runtime::rng rng_;
};

struct caf_result {
  std::uint64_t messages = 0;
  double wall_seconds = 0;
  double msgs_per_s() const { return static_cast<double>(messages) / wall_seconds; }
};

caf_result run_caf_random_peers(std::size_t actors, std::size_t threads, std::uint64_t tokens) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  caf_shared shared;
  auto done = shared.done.get_future();
  shared.peers.reserve(actors);
  for (std::size_t i = 0; i < actors; ++i)
    shared.peers.push_back(sys.spawn<peer_actor>(&shared, static_cast<std::uint32_t>(i), tokens));
  const auto t0 = wall_clock::now();
  for (auto& p : shared.peers)
    caf::anon_send(p, go_atom::value);
  done.wait();
  const auto t1 = wall_clock::now();
  caf_result r;
  r.messages = shared.received.load();
  r.wall_seconds = std::chrono::duration<double>(t1 - t0).count();
  // Handlers still running read `peers`: keep it until every actor is gone.
  for (auto& p : shared.peers)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
  shared.peers.clear();
  return r;
}

void BM_Caf_RandomPeers(benchmark::State& state) {
  const auto actors = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  const auto tokens = static_cast<std::uint64_t>(state.range(2));
  caf_result r;
  for (auto _ : state) {
    r = run_caf_random_peers(actors, threads, tokens);
    benchmark::DoNotOptimize(r);
    state.SetIterationTime(r.wall_seconds);
  }
  state.counters["msgs_per_s"] = r.msgs_per_s();
  state.counters["msgs"] = static_cast<double>(r.messages);
}
BENCHMARK(BM_Caf_RandomPeers)
  ->ArgNames({"actors", "threads", "tokens"})
  ->ArgsProduct({{1000, 10000}, {1, 2}, {1, 4}})
  ->Iterations(1)
  ->UseManualTime()
  ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// The kernel on the mesh workload.

struct mesh_case {
  std::uint32_t entities;
  std::uint32_t width;
  double rate_per_s;
  runtime::duration emulated;
};

mesh_case mesh_case_for(std::int64_t entities, std::int64_t rate) {
  using runtime::milliseconds;
  // Emulated time: enough for a few million envelopes, past the ramp-up.
  const auto r = static_cast<double>(rate);
  if (entities == 10'000)
    return {10'000, 100, r, rate >= 10 ? milliseconds(1500) : milliseconds(3000)};
  if (entities == 1'000)
    return {1'000, 40, r, rate >= 10 ? milliseconds(2000) : milliseconds(40000)};
  return {};
}

actors::mesh_config mesh_config_for(std::uint32_t entities, std::uint32_t width, double rate) {
  actors::mesh_config c;
  c.graph.nodes = entities;
  c.graph.topology = actors::mesh_topology::torus;
  c.graph.width = width;
  c.graph.latency_min = runtime::milliseconds(5);
  c.graph.latency_max = runtime::milliseconds(10);
  c.graph.seed = 1;
  c.rate_per_s = rate;
  c.payload_bytes = 64;
  return c;
}

void BM_Kernel_Mesh(benchmark::State& state) {
  const auto mc = mesh_case_for(state.range(0), state.range(2));
  const auto threads = static_cast<std::size_t>(state.range(1));
  if (mc.entities == 0) {
    state.SkipWithError("no mesh case for this entity count");
    return;
  }
  runtime::run_result r;
  caf_result caf;
  for (auto _ : state) {
    // Same N and threads, same iteration, right before the kernel run.
    caf = run_caf_random_peers(mc.entities, threads, 1);
    benchmark::DoNotOptimize(caf);
    auto w = actors::mesh_workload::make(mesh_config_for(mc.entities, mc.width, mc.rate_per_s));
    if (!w.ok()) {
      state.SkipWithError(std::string(w.status().message()).c_str());
      return;
    }
    runtime::run_options opts;
    opts.mode = runtime::clock_mode::virtual_time;
    opts.end = runtime::vtime::zero() + mc.emulated;
    opts.lookahead = (*w)->lookahead();
    opts.threads = threads;
    opts.seed = 1;
    r = runtime::run((*w)->entities(), opts);
    benchmark::DoNotOptimize(r);
    if (r.interrupted || r.envelopes == 0) {
      state.SkipWithError("kernel run interrupted or delivered nothing");
      return;
    }
    state.SetIterationTime(r.wall_seconds);
  }
  const double env_per_s = static_cast<double>(r.envelopes) / r.wall_seconds;
  state.counters["envelopes_per_s"] = env_per_s;
  state.counters["events_per_s"] = static_cast<double>(r.events) / r.wall_seconds;
  state.counters["envelopes"] = static_cast<double>(r.envelopes);
  state.counters["windows"] = static_cast<double>(r.windows);
  state.counters["env_per_entity_window"] =
    static_cast<double>(r.envelopes) / (static_cast<double>(r.windows) * mc.entities);
  state.counters["caf_msgs_per_s"] = caf.msgs_per_s();
  state.counters["ratio"] = env_per_s / caf.msgs_per_s();
  state.SetLabel("rate=" + std::to_string(static_cast<int>(mc.rate_per_s)) + "/s emulated=" +
                 runtime::to_string(mc.emulated));
}
BENCHMARK(BM_Kernel_Mesh)
  ->ArgNames({"entities", "threads", "rate"})
  ->ArgsProduct({{10000}, {1, 2}, {1, 10, 50}})
  ->ArgsProduct({{1000}, {1, 2}, {1, 60}})
  ->Iterations(1)
  ->UseManualTime()
  ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Memory per idle entity.

/// Returns the free pages of the allocator to the system: jemalloc's
/// purge of every arena where it is the allocator (glibc's malloc_trim does
/// nothing for it), else malloc_trim.
void give_back_free_memory() {
  using mallctl_fn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  if (auto* mallctl = reinterpret_cast<mallctl_fn>(dlsym(RTLD_DEFAULT, "mallctl"))) {
    // MALLCTL_ARENAS_ALL is 4096.
    if (mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0) == 0)
      return;
  }
  malloc_trim(0);
}

void BM_Kernel_IdleMemory(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  const std::uint32_t width = n == 100'000 ? 400 : 0;
  runtime::run_result r;
  std::uint64_t rss_before_build = 0;
  for (auto _ : state) {
    // Give memory freed by earlier cases back to the system, so that reusing
    // it shows up in the resident set again.
    give_back_free_memory();
    rss_before_build = runtime::current_rss_bytes();
    auto w = actors::mesh_workload::make(mesh_config_for(n, width, 0));
    if (!w.ok()) {
      state.SkipWithError(std::string(w.status().message()).c_str());
      return;
    }
    runtime::run_options opts;
    opts.end = runtime::vtime::zero() + runtime::milliseconds(10);
    opts.lookahead = (*w)->lookahead();
    opts.threads = 1; // the resident set does not depend on it
    r = runtime::run((*w)->entities(), opts);
    if (r.interrupted || !r.failure.empty()) {
      state.SkipWithError(("the run stopped: " + r.failure).c_str());
      return;
    }
    benchmark::DoNotOptimize(r);
    state.SetIterationTime(r.wall_seconds);
  }
  // Signed: the resident set can shrink meanwhile (the allocator purging).
  const auto per = [&](std::uint64_t after, std::uint64_t before) {
    return (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(n);
  };
  state.counters["bytes_per_idle_entity"] = per(r.rss_after_spawn_bytes, r.rss_before_spawn_bytes);
  state.counters["bytes_per_entity_total"] = per(r.rss_after_spawn_bytes, rss_before_build);
}
BENCHMARK(BM_Kernel_IdleMemory)
  ->ArgNames({"entities"})
  ->Arg(100'000)
  ->Iterations(1)
  ->UseManualTime()
  ->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
