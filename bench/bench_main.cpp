#include "bench/bench_main.hpp"

#include <benchmark/benchmark.h>

#include "gpu/cpu_backend.hpp"

namespace satemu::bench {

int run_benchmarks(int argc, char** argv) {
  gpu::start_with_openblas_settings(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

} // namespace satemu::bench
