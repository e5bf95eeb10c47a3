/// satemu `flows` workload: constant-rate packet flows between named ground
/// endpoints over the moving constellation (actors/space.hpp); every packet
/// is forwarded hop by hop and its one-way delay recorded at the receiver.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/space.hpp"

namespace satemu::actors {

class flows_workload final : public space_workload {
public:
  /// The scenario keys of `kind: flows`.
  static void register_kind();
  static absl::StatusOr<std::unique_ptr<flows_workload>> make(const runtime::scenario& s);

  /// Per flow: packets sent and delivered, loss, one-way delay percentiles,
  /// delivered throughput, path changes.
  nlohmann::json metrics(const runtime::run_result& r) const override;
  /// When more than 5% of the packets sent were still in flight at the end.
  std::vector<std::string> result_warnings(const runtime::run_result& r) const override;
  /// delays.csv (one row per delivered packet), handovers.csv and the
  /// topology records.
  std::map<std::string, std::string> files(const runtime::run_result& r) const override;

private:
  struct flow_info {
    std::string from, to;
    std::size_t from_ground = 0, to_ground = 0;
    double rate_bps = 0;
    /// Between packets [ns] (flow_plan::interval_ns).
    double interval_ns = 0;
    runtime::duration start, stop;
  };
  std::vector<flow_info> flows_;
  runtime::duration duration_;
};

} // namespace satemu::actors
