// What every benchmark program's main ends with.
#pragma once

namespace satemu::bench {

/// Starts with one OpenBLAS thread as the satemu executable does
/// (cpu_backend.hpp, start_with_one_openblas_thread), then runs the
/// registered benchmarks as BENCHMARK_MAIN does: exit code 1 for a flag it
/// does not know.
int run_benchmarks(int argc, char** argv);

} // namespace satemu::bench
