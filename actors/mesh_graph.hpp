/// satemu mesh graphs: the synthetic topologies of the `mesh` workload.
///
/// A builder returns plain data (a directed graph with a latency per edge and
/// a next-hop rule); the mesh entities (mesh.hpp) only read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/time.hpp"

namespace satemu::actors {

enum class mesh_topology { ring, torus, random_regular };

struct mesh_graph_config {
  std::uint32_t nodes = 0;
  mesh_topology topology = mesh_topology::torus;
  /// Torus: columns (0 = the divisor of `nodes` closest to its square root).
  std::uint32_t width = 0;
  /// Random regular: edges per node (even).
  std::uint32_t degree = 4;
  /// Every directed edge gets its own latency, uniform in [min, max].
  runtime::duration latency_min = runtime::milliseconds(1);
  runtime::duration latency_max = runtime::milliseconds(10);
  std::uint64_t seed = 1;
};

/// Largest random regular mesh: its routing table has nodes^2 entries.
inline constexpr std::uint32_t max_random_regular_nodes = 10'000;

/// An immutable directed graph in compressed rows, with shortest-hop routing.
class mesh_graph {
public:
  /// Builds the graph; InvalidArgument (naming the key) for impossible shapes.
  static absl::StatusOr<mesh_graph> build(const mesh_graph_config& cfg);

  std::uint32_t nodes() const { return nodes_; }
  /// Neighbours of `u`, in a fixed order.
  std::uint32_t degree(std::uint32_t u) const { return offsets_[u + 1] - offsets_[u]; }
  std::uint32_t neighbour(std::uint32_t u, std::uint32_t i) const { return adj_[offsets_[u] + i]; }
  runtime::duration latency(std::uint32_t u, std::uint32_t i) const {
    return runtime::duration::from_ns(latency_ns_[offsets_[u] + i]);
  }
  /// Smallest edge latency: the kernel's lookahead.
  runtime::duration min_latency() const { return min_latency_; }

  /// Index (into u's neighbours) of the next hop from `u` towards `dst` on a
  /// path with the fewest hops; `u != dst`. Ties break the same way every
  /// time: ring and torus go the positive way first, torus along x first.
  std::uint32_t next_hop(std::uint32_t u, std::uint32_t dst) const;
  /// Hops on that path.
  std::uint32_t distance(std::uint32_t u, std::uint32_t dst) const;

  mesh_topology topology() const { return topology_; }
  std::uint32_t width() const { return width_; }

private:
  mesh_topology topology_ = mesh_topology::torus;
  std::uint32_t nodes_ = 0;
  std::uint32_t width_ = 0;
  std::uint32_t height_ = 0;
  std::vector<std::uint32_t> offsets_;
  std::vector<std::uint32_t> adj_;
  std::vector<std::int64_t> latency_ns_;
  runtime::duration min_latency_;
  // Random regular only: next_[dst * nodes + u] = neighbour index.
  std::vector<std::uint8_t> next_;
};

std::string to_string(mesh_topology t);

} // namespace satemu::actors
