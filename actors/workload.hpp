/// satemu workloads: what a scenario's `workload` section builds and reports.
///
/// A workload turns a validated scenario into entities for the kernel, tells
/// the kernel its lookahead, and after the run reports its own figures (the
/// `metrics` object of summary.json) and any extra output files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/compute.hpp"
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
  /// What a user should know about the built workload before it runs (e.g.
  /// TLE sets left out): `run` and `validate` print them as warnings.
  virtual std::vector<std::string> warnings() const { return {}; }
  /// What a user should know about the results (e.g. figures that leave
  /// out much of the traffic): `run` prints them as warnings after the run.
  virtual std::vector<std::string> result_warnings(const runtime::run_result&) const {
    return {};
  }
  /// Where the entities' compute requests go (a gpu::gpu_worker the
  /// workload owns, built from the `compute` section), or null when they
  /// make none. In a distributed run each node's workload has its own.
  virtual runtime::compute_service* compute() { return nullptr; }

  // Distributed runs (runtime/distributed.hpp).

  /// Per entity, the group it is placed with: nodes get whole groups
  /// (runtime::partition_groups). Default: every entity alone, so nodes
  /// get runs of consecutive ids.
  virtual std::vector<std::uint32_t> placement_groups();
  /// State the workload keeps outside its entities that the metrics read
  /// (e.g. how many topology epochs were built), as a worker ends; merged
  /// on the coordinator from every worker's. Defaults: none.
  virtual std::string node_state() const { return {}; }
  virtual absl::Status merge_node_state(std::string_view state) { return absl::OkStatus(); }
};

/// {mean, p50, p90, p99, min, max} of a histogram of nanoseconds, in
/// milliseconds: how every workload reports a latency in `metrics`; null for
/// an empty histogram.
nlohmann::json milliseconds_summary(const runtime::histogram& h);

/// The warning that `in_flight` of the `sent` `what` (e.g. "pings") were
/// still in flight at the end, saying what that does to the figures
/// (`effect`), when they are more than 5% of those sent; else none.
std::vector<std::string> in_flight_warning(std::uint64_t in_flight, std::uint64_t sent,
                                           std::string_view what, std::string_view effect);

/// Registers every workload kind's keys with the scenario schema. Call once
/// at start-up before loading a scenario (idempotent).
void register_workloads();

/// How much `make_workload` builds.
enum class build_depth {
  /// A workload to run.
  run,
  /// Every check a run makes, but no model weights (compute.mode: real), so
  /// that `satemu validate` takes no time or memory for them: the workload
  /// must not be run in this process.
  check,
  /// As `check`, but neither the compute device is opened nor the model's
  /// memory checked: the coordinator of a distributed run, whose entities
  /// run on the workers (each checks and opens its own, and reports its
  /// backend in its node state).
  coordinate,
};

/// Builds the workload named by `workload.kind`. InvalidArgument (naming the
/// key) when the values are valid one by one but impossible together, and
/// for `skymemory` in analytic mode, which `satemu sweep` evaluates
/// (actors/skymemory_sweep.hpp); its emulated mode is a workload
/// (actors/skymemory_emulated.hpp).
absl::StatusOr<std::unique_ptr<workload>> make_workload(const runtime::scenario& s,
                                                        build_depth depth = build_depth::run);

/// The model weights `make_workload` makes with build_depth::run, for a front
/// end to say so first (those of a model of a billion parameters take seconds
/// to make): "llama-3.2-1b's weights (synthetic, 4.94 GB in fp32)". Empty for
/// a workload that makes none, and for a section that make_workload refuses.
std::string weights_to_build(const runtime::scenario& s);

} // namespace satemu::actors
