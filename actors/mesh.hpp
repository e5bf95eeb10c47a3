/// satemu `mesh` workload: the kernel's own exercise.
///
/// N entities on a synthetic graph (ring, 2D torus, random regular) with a
/// latency per directed edge. Each entity sends messages to uniformly random
/// destinations as a Poisson process; every message is forwarded hop by hop
/// along a fewest-hops path (mesh_graph.hpp), paying each edge's latency.
#pragma once

#include <cstdint>
#include <memory>

#include "actors/mesh_graph.hpp"
#include "actors/workload.hpp"
#include "runtime/histogram.hpp"

namespace satemu::actors {

struct mesh_config {
  mesh_graph_config graph;
  /// Messages each entity creates per emulated second (Poisson); 0 = none.
  double rate_per_s = 10;
  /// Body bytes per message.
  std::uint64_t payload_bytes = 256;
};

/// One mesh node: a source, a sink and a router.
class mesh_entity final : public runtime::entity {
public:
  mesh_entity(std::shared_ptr<const mesh_graph> graph, const mesh_config* cfg);

  std::uint64_t sent() const { return counter(ids_.sent); }
  std::uint64_t delivered() const { return counter(ids_.delivered); }
  std::uint64_t forwarded() const { return counter(ids_.forwarded); }
  std::uint64_t malformed() const { return counter(ids_.malformed); }
  /// End-to-end latency of messages delivered here [ns].
  const runtime::histogram& latency() const { return latency_; }
  /// Hops of messages delivered here.
  const runtime::histogram& hops() const { return hops_; }

  void save_results(protocol::byte_writer& w) const override;
  void load_results(protocol::byte_reader& r) override;

protected:
  void on_start() override;
  void on_envelope(protocol::envelope& e) override;
  void on_timer(std::uint64_t tag) override;

private:
  void schedule_next();
  struct hop {
    runtime::entity_id node;
    runtime::duration latency;
  };
  /// The neighbour on the way to `target` and the latency of that edge.
  hop next_hop_to(std::uint32_t target) const;

  /// Metric counters of the mesh workload.
  struct counter_ids {
    runtime::counter_id sent, delivered, forwarded, malformed;
  };
  static const counter_ids ids_;

  std::shared_ptr<const mesh_graph> graph_;
  const mesh_config* cfg_;
  runtime::histogram latency_;
  runtime::histogram hops_;
};

/// The mesh workload: builds the graph and entities, sums their figures.
class mesh_workload final : public workload {
public:
  static absl::StatusOr<std::unique_ptr<mesh_workload>> make(const mesh_config& cfg);
  /// Reads the `workload` section of a validated scenario.
  static absl::StatusOr<mesh_config> config_from(const runtime::scenario& s);
  /// The scenario keys of `kind: mesh`.
  static void register_kind();

  runtime::duration lookahead() const override { return graph_->min_latency(); }
  std::vector<std::unique_ptr<runtime::entity>>& entities() override { return entities_; }
  nlohmann::json metrics(const runtime::run_result& r) const override;
  /// When many messages are still in flight at the end: the latency and
  /// hop figures cover only those delivered, the nearer ones.
  std::vector<std::string> result_warnings(const runtime::run_result& r) const override;

  const mesh_graph& graph() const { return *graph_; }

private:
  mesh_config cfg_;
  std::shared_ptr<const mesh_graph> graph_;
  std::vector<std::unique_ptr<runtime::entity>> entities_;
};

} // namespace satemu::actors
