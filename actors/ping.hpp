/// satemu `ping` workload: ground endpoints ping each other over the moving
/// constellation (actors/space.hpp) and record round-trip times.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/space.hpp"
#include "actors/workload.hpp"

namespace satemu::actors {

class ping_workload final : public workload {
public:
  /// The scenario keys of `kind: ping` (and the constellation/ground sections).
  static void register_kind();
  static absl::StatusOr<std::unique_ptr<ping_workload>> make(const runtime::scenario& s);

  runtime::duration lookahead() const override { return net_->lookahead(); }
  std::vector<std::unique_ptr<runtime::entity>>& entities() override { return entities_; }
  nlohmann::json metrics(const runtime::run_result& r) const override;
  /// rtt.csv (one row per answered ping) and handovers.csv.
  std::map<std::string, std::string> files(const runtime::run_result& r) const override;

  const space_network& network() const { return *net_; }
  const space_node& ground(std::size_t g) const {
    return static_cast<const space_node&>(*entities_[net_->satellites() + g]);
  }

private:
  std::string name_of(runtime::entity_id node) const;

  std::shared_ptr<space_network> net_;
  std::vector<std::unique_ptr<runtime::entity>> entities_;
};

} // namespace satemu::actors
