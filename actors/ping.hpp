/// satemu `ping` workload: ground endpoints ping each other over the moving
/// constellation (actors/space.hpp) and record round-trip times.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/space.hpp"

namespace satemu::actors {

class ping_workload final : public space_workload {
public:
  /// The scenario keys of `kind: ping` (and the constellation/ground sections).
  static void register_kind();
  static absl::StatusOr<std::unique_ptr<ping_workload>> make(const runtime::scenario& s);

  nlohmann::json metrics(const runtime::run_result& r) const override;
  /// When more than 5% of the pings sent were still in flight at the end.
  std::vector<std::string> result_warnings(const runtime::run_result& r) const override;
  /// rtt.csv (one row per answered ping), handovers.csv and the topology records.
  std::map<std::string, std::string> files(const runtime::run_result& r) const override;

  /// metrics.pairs lists every pair up to this many; beyond, it is null.
  static constexpr std::uint64_t max_listed_pairs = 10000;

private:
  std::uint64_t pair_count() const;
};

} // namespace satemu::actors
