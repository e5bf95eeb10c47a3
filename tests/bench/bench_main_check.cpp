// A benchmark program for bench_main_test.sh: one case that gives a figure
// and one that cannot (it stops with an error, as a CUDA case does with no
// device).
#include <benchmark/benchmark.h>

#include <cstdint>

#include "bench/bench_main.hpp"

namespace {

void BM_Check_GivesAFigure(benchmark::State& state) {
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += 1;
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_Check_GivesAFigure);

void BM_Check_ReportsAnError(benchmark::State& state) {
  state.SkipWithError("no device answers");
  for (auto _ : state) {
  }
}
BENCHMARK(BM_Check_ReportsAnError);

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
