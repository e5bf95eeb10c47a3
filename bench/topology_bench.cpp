// Topology epochs and routing trees at Starlink scale.
//
//   BM_Topology_Epoch: Starlink phase 1 (five shells, 4,408 satellites) and
//     100 ground stations: positions, +Grid ISLs with their rules, and the
//     serving satellite of every station. Target: at most 20 ms on one core.
//   BM_Topology_Epoch_PerShell: the same with a ground link into every shell
//     in view (as scenarios/starlink-ping.yaml has it).
//   BM_Topology_Epoch_Tle2026: the 9,594 objects of the 2026 Starlink TLE
//     snapshot in scenarios/tle/ (SGP4 for every satellite, then the same
//     rules).
//   BM_Routing_Tree: one shortest-delay tree to a ground station over the
//     phase 1 snapshot with per-shell ground links. Target: at most 2 ms.
//   BM_Routing_CachedPath: one station's path to another on a fresh route
//     cache, over the same snapshot.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "bench/bench_main.hpp"
#include "bench/source_tree.hpp"
#include "runtime/rng.hpp"
#include "runtime/tle_constellation.hpp"
#include "runtime/topology.hpp"
#include "runtime/walker.hpp"

namespace {

using namespace satemu::runtime;

walker_constellation starlink_phase1() {
  auto c = walker_constellation::make({
    {72, 22, 550e3, 53.0, 1, 360},
    {72, 22, 540e3, 53.2, 1, 360},
    {36, 20, 570e3, 70.0, 1, 360},
    {6, 58, 560e3, 97.6, 1, 360},
    {4, 43, 560e3, 97.6, 1, 360},
  });
  return *c;
}

std::vector<ground_point> stations(std::size_t n) {
  rng r(1, 0, 7);
  std::vector<ground_point> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(ground_point::at("gs" + std::to_string(i),
                                   {-55 + 110 * r.uniform(), -180 + 360 * r.uniform(), 0}));
  return out;
}

/// Inputs that link a ground point into every shell in view: one satellite
/// group per shell. `group_of` receives each satellite's shell and must
/// outlive the inputs (they borrow it).
snapshot_inputs per_shell_inputs(const walker_constellation& c,
                                 std::vector<std::uint16_t>& group_of) {
  group_of.clear();
  for (std::size_t k = 0; k < c.size(); ++k)
    group_of.push_back(static_cast<std::uint16_t>(c[k].shell));
  snapshot_inputs in;
  in.groups = c.shells().size();
  in.group_of = group_of;
  return in;
}

/// Epochs every 100 ms of emulated time, each from the one before. The
/// link counters are those of the first epoch (t = 0), whatever the
/// iteration count.
template <class Positions>
void run_epochs(benchmark::State& state, std::size_t sats, Positions&& positions,
                const std::vector<isl_candidate>& cand, const snapshot_inputs& in) {
  const auto gs = stations(100);
  isl_rules isl;
  isl.min_range_m = 100e3;
  gsl_rules gsl;
  double t = 0;
  topology_snapshot prev = build_snapshot(0, positions(0.0), cand, gs, isl, gsl, nullptr, in);
  state.counters["satellites"] = static_cast<double>(sats);
  state.counters["isl_links"] = static_cast<double>(prev.isl_links);
  state.counters["ground_links"] = static_cast<double>(
    std::count_if(prev.serving.begin(), prev.serving.end(), [](int s) { return s >= 0; }));
  for (auto _ : state) {
    t += 0.1;
    auto s = build_snapshot(t, positions(t), cand, gs, isl, gsl, &prev, in);
    benchmark::DoNotOptimize(s.neighbour.data());
    prev = std::move(s);
  }
}

void BM_Topology_Epoch(benchmark::State& state) {
  const auto c = starlink_phase1();
  run_epochs(state, c.size(), [&](double t) { return c.ecef_all(t, 0); }, plus_grid_candidates(c), {});
}
BENCHMARK(BM_Topology_Epoch)->Unit(benchmark::kMillisecond);

void BM_Topology_Epoch_PerShell(benchmark::State& state) {
  const auto c = starlink_phase1();
  std::vector<std::uint16_t> group_of;
  const auto in = per_shell_inputs(c, group_of);
  run_epochs(state, c.size(), [&](double t) { return c.ecef_all(t, 0); }, plus_grid_candidates(c), in);
}
BENCHMARK(BM_Topology_Epoch_PerShell)->Unit(benchmark::kMillisecond);

void BM_Topology_Epoch_Tle2026(benchmark::State& state) {
  auto sets =
    load_tle_file(satemu::bench::source_dir() + "/scenarios/tle/starlink-2026-02-24.tle");
  if (!sets.ok()) {
    state.SkipWithError(std::string(sets.status().message()).c_str());
    return;
  }
  const auto start = tle_constellation::latest_epoch_unix_ns(*sets);
  auto c = tle_constellation::make(std::move(*sets), start);
  if (!c.ok()) {
    state.SkipWithError(std::string(c.status().message()).c_str());
    return;
  }
  snapshot_inputs in;
  in.groups = c->groups();
  in.group_of = c->group_of();
  run_epochs(state, c->size(), [&](double t) { return c->ecef_all(t); }, c->candidates(), in);
  state.counters["shells"] = static_cast<double>(c->groups());
  state.counters["planes"] = static_cast<double>(c->planes());
}
BENCHMARK(BM_Topology_Epoch_Tle2026)->Unit(benchmark::kMillisecond);

/// Phase 1 at t = 0 with the 100 stations, each linked into every shell in
/// view (as scenarios/starlink-ping.yaml has it). The shells have no links
/// between them, so with one ground link per station two stations served by
/// different shells would have no path.
std::shared_ptr<const topology_snapshot> routing_snapshot() {
  const auto c = starlink_phase1();
  std::vector<std::uint16_t> group_of;
  const auto in = per_shell_inputs(c, group_of);
  return std::make_shared<const topology_snapshot>(build_snapshot(
    0, c.ecef_all(0, 0), plus_grid_candidates(c), stations(100), {}, {}, nullptr, in));
}

void BM_Routing_Tree(benchmark::State& state) {
  const auto s = routing_snapshot();
  // Nodes with a route to station 0 (those the search reaches), counted
  // outside the timed loop.
  const auto first = shortest_path_tree(*s, s->ground_node(0), route_metric::delay);
  const auto routed = std::count_if(first.next.begin(), first.next.end(),
                                    [](std::uint32_t n) { return n != route_tree::none; });
  std::uint32_t g = 0;
  for (auto _ : state) {
    auto tree = shortest_path_tree(*s, s->ground_node(g), route_metric::delay);
    benchmark::DoNotOptimize(tree.next.data());
    g = (g + 1) % static_cast<std::uint32_t>(s->grounds);
  }
  state.counters["nodes"] = static_cast<double>(s->nodes());
  state.counters["routed_nodes"] = static_cast<double>(routed);
}
BENCHMARK(BM_Routing_Tree)->Unit(benchmark::kMillisecond);

// What a ping costs the epoch's route cache: the path from station g to
// station g + 1 on a fresh cache, the destination's search run only until
// the sender is settled (route_cache::next).
void BM_Routing_CachedPath(benchmark::State& state) {
  const auto s = routing_snapshot();
  const auto n = static_cast<std::uint32_t>(s->grounds);
  std::uint32_t g = 0;
  std::int64_t hops = 0;
  for (auto _ : state) {
    route_cache cache(s, route_metric::delay);
    const std::uint32_t dst = s->ground_node((g + 1) % n);
    auto v = s->ground_node(g);
    for (; v != dst && v != route_tree::none; v = cache.next(dst, v))
      ++hops;
    if (v != dst) {
      state.SkipWithError("a station pair has no path");
      return;
    }
    g = (g + 1) % n;
  }
  state.counters["hops_per_path"] =
      static_cast<double>(hops) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Routing_CachedPath)->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
