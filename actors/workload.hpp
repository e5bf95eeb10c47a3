/// satemu workloads: what a scenario's `workload` section builds and reports.
///
/// A workload turns a validated scenario into entities for the kernel, tells
/// the kernel its lookahead, and after the run reports its own figures (the
/// `metrics` object of summary.json) and any extra output files.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/entity.hpp"
#include "runtime/kernel.hpp"
#include "runtime/scenario.hpp"

namespace satemu::actors {

class workload {
public:
  virtual ~workload();
  /// Smallest latency any emulated hop can have: the kernel's window length.
  virtual runtime::duration lookahead() const = 0;
  /// The entities, entity i at index i; the kernel runs them.
  virtual std::vector<std::unique_ptr<runtime::entity>>& entities() = 0;
  /// Figures for summary.json's `metrics`, read from the entities after the run.
  virtual nlohmann::json metrics(const runtime::run_result& r) const = 0;
  /// Extra output files (name -> content), written next to summary.json.
  virtual std::map<std::string, std::string> files(const runtime::run_result& r) const;
};

/// {mean, p50, p90, p99, min, max} of a histogram of nanoseconds, in
/// milliseconds: how every workload reports a latency in `metrics`.
nlohmann::json milliseconds_summary(const runtime::histogram& h);

/// Registers every workload kind's keys with the scenario schema. Call once
/// at start-up before loading a scenario (idempotent).
void register_workloads();

/// Builds the workload named by `workload.kind`. InvalidArgument (naming the
/// key) when the values are valid one by one but impossible together.
absl::StatusOr<std::unique_ptr<workload>> make_workload(const runtime::scenario& s);

} // namespace satemu::actors
