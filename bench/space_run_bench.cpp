// Whole space-segment runs: how fast the emulation goes.
//
//   BM_StarlinkPing: scenarios/starlink-ping.yaml (Starlink phase 1, 4,408
//     satellites, 100 stations pinging once a second, 60 s emulated) run to
//     its end. Reports emulated seconds per wall second, events per second,
//     and the pings answered. One run per repetition.
//   BM_StarlinkTle: the same over the 2026 TLE snapshot
//     (scenarios/starlink-tle.yaml, reading scenarios/tle/).
//
// Threads: the `threads` argument (1 and 2).
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>

#include "actors/workload.hpp"
#include "bench/bench_main.hpp"
#include "bench/source_tree.hpp"
#include "nlohmann/json.hpp"
#include "runtime/kernel.hpp"
#include "runtime/scenario.hpp"

namespace {

using namespace satemu;

void run_scenario(benchmark::State& state, const std::string& file) {
  actors::register_workloads();
  // Relative paths in the scenario (the TLE file) are relative to the
  // repository root.
  if (const auto missing = bench::missing_source_tree(); !missing.empty()) {
    state.SkipWithError(missing.c_str());
    return;
  }
  std::filesystem::current_path(bench::source_dir());
  auto sc = runtime::load_scenario_file(file);
  if (!sc.ok()) {
    state.SkipWithError(std::string(sc.status().message()).c_str());
    return;
  }
  double emulated = 0, wall = 0, events = 0, answered = 0;
  for (auto _ : state) {
    auto w = actors::make_workload(*sc);
    if (!w.ok()) {
      state.SkipWithError(std::string(w.status().message()).c_str());
      return;
    }
    runtime::run_options o;
    o.end = runtime::vtime::zero() + sc->get_duration("duration");
    o.lookahead = (*w)->lookahead();
    o.threads = static_cast<std::size_t>(state.range(0));
    const auto t0 = std::chrono::steady_clock::now();
    auto r = runtime::run((*w)->entities(), o);
    if (r.interrupted || !r.failure.empty()) {
      state.SkipWithError(("the run stopped: " + r.failure).c_str());
      return;
    }
    const double run_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The Time column is the run alone, without building the workload
    // (SGP4 for 9,594 sets in BM_StarlinkTle) or its metrics.
    state.SetIterationTime(run_s);
    wall += run_s;
    emulated += r.reached.seconds();
    events += static_cast<double>(r.events);
    answered += (*w)->metrics(r)["pings_answered"].get<double>();
  }
  state.counters["emulated_s_per_wall_s"] = emulated / wall;
  state.counters["events_per_s"] = events / wall;
  state.counters["pings_answered"] = answered / static_cast<double>(state.iterations());
}

void BM_StarlinkPing(benchmark::State& state) { run_scenario(state, "scenarios/starlink-ping.yaml"); }
BENCHMARK(BM_StarlinkPing)->Arg(1)->Arg(2)->ArgName("threads")->Iterations(1)->Unit(benchmark::kSecond)->UseManualTime();

void BM_StarlinkTle(benchmark::State& state) { run_scenario(state, "scenarios/starlink-tle.yaml"); }
BENCHMARK(BM_StarlinkTle)->Arg(1)->Arg(2)->ArgName("threads")->Iterations(1)->Unit(benchmark::kSecond)->UseManualTime();

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
