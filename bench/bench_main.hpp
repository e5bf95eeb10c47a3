// What every benchmark program's main ends with.
#pragma once

namespace satemu::bench {

/// Starts with the OpenBLAS settings the satemu executable starts with
/// (cpu_backend.hpp, start_with_openblas_settings), then runs the
/// registered benchmarks as BENCHMARK_MAIN does, with the same output. Exit
/// code 1 for a flag it does not know, a filter that matches no case, or a
/// case that gave no figure (it stopped with SkipWithError); those cases are
/// listed on stderr at the end, with their messages.
int run_benchmarks(int argc, char** argv);

} // namespace satemu::bench
