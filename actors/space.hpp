/// satemu space segment at run time: the moving network and the nodes that
/// forward over it.
///
/// `space_network` turns a scenario's `constellation` and `ground` sections
/// into topology epochs (runtime/topology.hpp): epoch k holds the snapshot at
/// k x update_interval and its routes, built on first use and in order (each
/// from the one before, for handovers), and shared read-only by every node.
///
/// `space_node` is one satellite or ground endpoint. Every message is
/// forwarded hop by hop (store and forward): at each hop the next node comes
/// from the epoch of the moment the message is there, and the hop costs
///   propagation  = link length at send time / c,
///   serialisation = wire bits / link rate,
///   queueing     = waiting behind earlier messages on the same directed link
///                  (FIFO; a message that would push the backlog past the
///                  queue capacity is dropped),
///   processing   = `constellation.hop_delay`,
/// and is lost with probability `loss`. A message whose destination cannot
/// be reached from a hop is dropped there, with the reason counted.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/entity.hpp"
#include "runtime/scenario.hpp"
#include "runtime/topology.hpp"
#include "runtime/walker.hpp"

namespace satemu::actors {

struct space_config {
  std::vector<runtime::walker_shell> shells;
  runtime::isl_rules isl;
  runtime::gsl_rules gsl;
  double isl_rate_bps = 10e9;
  double gsl_rate_bps = 1e9;
  /// Capacity of each directed link's queue [bytes].
  std::uint64_t queue_bytes = 1 << 20;
  /// Probability that a hop loses a message.
  double loss = 0;
  runtime::duration update_interval = runtime::milliseconds(100);
  runtime::duration hop_delay = runtime::microseconds(10);
  runtime::route_metric metric = runtime::route_metric::delay;
  std::vector<runtime::ground_point> grounds;
};

/// Registers the `constellation` and `ground` scenario sections (idempotent).
void register_space_sections();

/// Reads the sections; InvalidArgument naming the key for bad combinations.
absl::StatusOr<space_config> space_config_from(const runtime::scenario& s);

/// One topology epoch: the snapshot and its per-destination routes.
struct space_epoch {
  std::int64_t index = 0;
  std::shared_ptr<const runtime::topology_snapshot> snapshot;
  std::unique_ptr<runtime::route_cache> routes;
};

/// A serving-satellite change, when it happened.
struct handover_record {
  std::int64_t time_ns = 0;
  runtime::handover change;
};

class space_network {
public:
  static absl::StatusOr<std::shared_ptr<space_network>> make(space_config cfg);

  /// The epoch holding time `t` (thread-safe). Epochs are built in order and
  /// the last few are kept; nodes only ask for times in the current window.
  std::shared_ptr<const space_epoch> at(runtime::vtime t);

  /// Smallest latency any hop can have: hop delay plus the shortest distance
  /// any link can span (closed forms of the shells) over c.
  runtime::duration lookahead() const { return lookahead_; }
  std::size_t satellites() const { return constellation_.size(); }
  std::size_t grounds() const { return cfg_.grounds.size(); }
  const space_config& config() const { return cfg_; }
  /// Handovers of every epoch built so far, in time order.
  std::vector<handover_record> handovers() const;
  std::int64_t epochs_built() const;

private:
  space_network(space_config cfg, runtime::walker_constellation c);
  void build_next_locked();

  space_config cfg_;
  runtime::walker_constellation constellation_;
  std::vector<runtime::isl_candidate> candidates_;
  runtime::duration lookahead_;
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<const space_epoch>> recent_;
  std::vector<handover_record> handovers_;
};

/// What a ground endpoint pings.
struct ping_plan {
  /// Entity ids of the targets; one ping to each per interval.
  std::vector<runtime::entity_id> targets;
  runtime::duration interval = runtime::seconds(1);
  runtime::duration start = runtime::duration::zero();
  std::uint32_t size_bytes = 64;
};

/// One ping answered.
struct ping_sample {
  runtime::entity_id target = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;
  std::int64_t rtt_ns = 0;
  std::int64_t forward_ns = 0;
  std::uint16_t hops_forward = 0;
  std::uint16_t hops_back = 0;
  /// The route at send time differs from the previous sample's to the same target.
  bool path_changed = false;
};

/// A satellite (ids below `net.satellites()`) or a ground endpoint.
class space_node final : public runtime::entity {
public:
  space_node(std::shared_ptr<space_network> net, ping_plan plan = {});

  const std::vector<ping_sample>& samples() const { return samples_; }
  std::uint64_t pings_sent() const { return next_ping_; }

protected:
  void on_start() override;
  void on_envelope(protocol::envelope& e) override;
  void on_timer(std::uint64_t tag) override;

private:
  struct link_queue {
    runtime::entity_id to;
    std::int64_t busy_until_ns;
  };
  struct next_hop {
    runtime::entity_id node;
    runtime::duration latency;
  };
  /// The next hop towards `dst` for `wire_bytes` now, with its latency, the
  /// link's queue updated; nullopt (and the reason counted) when the message
  /// is dropped here.
  std::optional<next_hop> plan_hop(runtime::entity_id dst, std::size_t wire_bytes);
  /// The epoch of `now()`: asks the network only when time has left the
  /// cached one, so a hop costs no lock.
  const space_epoch& epoch();
  std::uint64_t route_hash(const space_epoch& ep, runtime::entity_id dst) const;

  std::shared_ptr<space_network> net_;
  std::shared_ptr<const space_epoch> epoch_;
  ping_plan plan_;
  std::vector<link_queue> queues_;
  std::vector<ping_sample> samples_;
  std::vector<std::uint64_t> last_route_;
  /// (ping id, route hash at send time) of pings not answered yet.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> sent_routes_;
  std::uint64_t next_ping_ = 0;
};

} // namespace satemu::actors
