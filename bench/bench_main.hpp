// What every benchmark program's main ends with.
#pragma once

namespace satemu::bench {

/// Starts with the OpenBLAS settings the satemu executable starts with
/// (cpu_backend.hpp, start_with_openblas_settings), then runs the
/// registered benchmarks as BENCHMARK_MAIN does: exit code 1 for a flag it
/// does not know.
int run_benchmarks(int argc, char** argv);

} // namespace satemu::bench
