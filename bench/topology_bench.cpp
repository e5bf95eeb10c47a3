// Topology epochs and routing trees at Starlink scale.
//
//   BM_Topology_Epoch: Starlink phase 1 (five shells, 4,408 satellites) and
//     100 ground stations: positions, +Grid ISLs with their rules, and the
//     serving satellite of every station. Target: at most 20 ms on one core.
//   BM_Routing_Tree: one shortest-delay tree to a ground station over that
//     snapshot. Target: at most 2 ms.
#include <benchmark/benchmark.h>

#include "runtime/rng.hpp"
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

void BM_Topology_Epoch(benchmark::State& state) {
  const auto c = starlink_phase1();
  const auto cand = plus_grid_candidates(c);
  const auto gs = stations(100);
  isl_rules isl;
  gsl_rules gsl;
  double t = 0;
  topology_snapshot prev = build_snapshot(0, c.ecef_all(0, 0), cand, gs, isl, gsl, nullptr);
  for (auto _ : state) {
    t += 0.1;
    auto s = build_snapshot(t, c.ecef_all(t, 0), cand, gs, isl, gsl, &prev);
    benchmark::DoNotOptimize(s.neighbour.data());
    prev = std::move(s);
  }
  state.counters["satellites"] = static_cast<double>(c.size());
  state.counters["isl_links"] = static_cast<double>(prev.isl_links);
  state.counters["served_stations"] = static_cast<double>(
    std::count_if(prev.serving.begin(), prev.serving.end(), [](int s) { return s >= 0; }));
}
BENCHMARK(BM_Topology_Epoch)->Unit(benchmark::kMillisecond);

void BM_Routing_Tree(benchmark::State& state) {
  const auto c = starlink_phase1();
  const auto gs = stations(100);
  const auto s = build_snapshot(0, c.ecef_all(0, 0), plus_grid_candidates(c), gs, {}, {}, nullptr);
  std::uint32_t g = 0;
  for (auto _ : state) {
    auto tree = shortest_path_tree(s, s.ground_node(g), route_metric::delay);
    benchmark::DoNotOptimize(tree.next.data());
    g = (g + 1) % static_cast<std::uint32_t>(gs.size());
  }
  state.counters["nodes"] = static_cast<double>(s.nodes());
}
BENCHMARK(BM_Routing_Tree)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
