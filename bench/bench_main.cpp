#include "bench/bench_main.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gpu/cpu_backend.hpp"

namespace satemu::bench {
namespace {

/// The display reporter --benchmark_format asks for, noting on the way the
/// cases that stopped with an error (SkipWithError), once each.
class error_noting_reporter final : public benchmark::BenchmarkReporter {
public:
  error_noting_reporter() : shown_(benchmark::CreateDefaultDisplayReporter()) {}

  bool ReportContext(const Context& context) override { return shown_->ReportContext(context); }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (!run.error_occurred)
        continue;
      auto line = run.benchmark_name() + ": " + run.error_message;
      if (std::find(errors_.begin(), errors_.end(), line) == errors_.end())
        errors_.push_back(std::move(line));
    }
    shown_->ReportRuns(runs);
  }

  void Finalize() override { shown_->Finalize(); }

  const std::vector<std::string>& errors() const { return errors_; }

private:
  std::unique_ptr<benchmark::BenchmarkReporter> shown_;
  std::vector<std::string> errors_;
};

} // namespace

int run_benchmarks(int argc, char** argv) {
  gpu::start_with_openblas_settings(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  error_noting_reporter reporter;
  const auto matched = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  // The library has said so on its own line already; the exit code is for
  // scripts.
  if (matched == 0)
    return 1;
  if (!reporter.errors().empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "%zu case%s gave no figure:\n", reporter.errors().size(),
                 reporter.errors().size() == 1 ? "" : "s");
    for (const auto& line : reporter.errors())
      std::fprintf(stderr, "  %s\n", line.c_str());
    return 1;
  }
  return 0;
}

} // namespace satemu::bench
