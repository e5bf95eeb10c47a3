#include "actors/mesh_graph.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/rng.hpp"

namespace satemu::actors {

namespace {

// Stream ids for the graph's random draws (entities use their own ids).
constexpr std::uint64_t latency_stream = 0x6c6174656e6379;   // "latency"
constexpr std::uint64_t wiring_stream = 0x776972696e67;       // "wiring"

std::uint32_t forward_dist(std::uint32_t from, std::uint32_t to, std::uint32_t n) {
  return (to + n - from) % n;
}

} // namespace

std::string to_string(mesh_topology t) {
  switch (t) {
    case mesh_topology::ring:
      return "ring";
    case mesh_topology::torus:
      return "torus";
    case mesh_topology::random_regular:
      return "random_regular";
  }
  return "?";
}

absl::StatusOr<mesh_graph> mesh_graph::build(const mesh_graph_config& cfg) {
  mesh_graph g;
  g.topology_ = cfg.topology;
  g.nodes_ = cfg.nodes;
  const auto n = cfg.nodes;
  if (n < 2)
    return absl::InvalidArgumentError("workload.entities: a mesh needs at least 2 entities");
  if (cfg.latency_max < cfg.latency_min)
    return absl::InvalidArgumentError(
      absl::StrCat("workload.latency_max: ", runtime::to_string(cfg.latency_max),
                   " is below workload.latency_min ", runtime::to_string(cfg.latency_min)));
  if (cfg.latency_min <= runtime::duration::zero())
    return absl::InvalidArgumentError("workload.latency_min: must be positive");

  std::vector<std::vector<std::uint32_t>> adj(n);
  switch (cfg.topology) {
    case mesh_topology::ring:
      for (std::uint32_t u = 0; u < n; ++u)
        adj[u] = {(u + 1) % n, (u + n - 1) % n};
      break;
    case mesh_topology::torus: {
      std::uint32_t w = cfg.width;
      if (w == 0) {
        w = static_cast<std::uint32_t>(std::sqrt(static_cast<double>(n)));
        while (w > 1 && n % w != 0)
          --w;
      }
      if (w == 0 || n % w != 0)
        return absl::InvalidArgumentError(
          absl::StrCat("workload.width: ", w, " does not divide workload.entities ", n));
      const auto h = n / w;
      if (w < 3 || h < 3)
        return absl::InvalidArgumentError(
          cfg.width == 0
            ? absl::StrCat("workload.entities: a torus needs at least 3 rows and 3 columns, and ",
                           n < 9 ? absl::StrCat(n, " is fewer than 9 entities")
                                 : absl::StrCat(n, " has no divisor between 3 and ", n / 3),
                           " (choose another count, set workload.width, or use a ring)")
            : absl::StrCat("workload.width: a torus needs at least 3 rows and 3 columns, got ",
                           w, "x", h, " (choose a width between 3 and entities/3)"));
      g.width_ = w;
      g.height_ = h;
      for (std::uint32_t u = 0; u < n; ++u) {
        const auto x = u % w, y = u / w;
        adj[u] = {y * w + (x + 1) % w, y * w + (x + w - 1) % w, ((y + 1) % h) * w + x,
                  ((y + h - 1) % h) * w + x};
      }
      break;
    }
    case mesh_topology::random_regular: {
      const auto d = cfg.degree;
      if (d < 2 || d % 2 != 0)
        return absl::InvalidArgumentError(
          absl::StrCat("workload.degree: must be even and at least 2, got ", d));
      if (d >= n)
        return absl::InvalidArgumentError(
          absl::StrCat("workload.degree: ", d, " must be below workload.entities ", n));
      if (n > max_random_regular_nodes)
        return absl::InvalidArgumentError(absl::StrCat(
          "workload.entities: a random_regular mesh keeps an entities x entities routing table; "
          "use at most ",
          max_random_regular_nodes, " entities (ring or torus scale further)"));
      // The union of d/2 random Hamiltonian cycles: connected by construction.
      // Each cycle is a random order of the entities; where its next edge
      // would repeat one, the next entity is swapped with a random later one
      // (redrawing whole cycles fails for most seeds from degree 10 on).
      runtime::rng r(cfg.seed, 0, wiring_stream);
      std::set<std::pair<std::uint32_t, std::uint32_t>> edges;
      std::vector<std::uint32_t> order(n);
      auto edge = [](std::uint32_t a, std::uint32_t b) {
        auto e = std::minmax(a, b);
        return std::pair{e.first, e.second};
      };
      for (std::uint32_t c = 0; c < d / 2; ++c) {
        bool placed = false;
        for (int attempt = 0; attempt < 1000 && !placed; ++attempt) {
          std::iota(order.begin(), order.end(), 0);
          for (std::uint32_t i = n - 1; i > 0; --i)
            std::swap(order[i], order[r.below(i + 1)]);
          std::set<std::pair<std::uint32_t, std::uint32_t>> mine;
          auto taken = [&](std::pair<std::uint32_t, std::uint32_t> e) {
            return edges.count(e) != 0 || mine.count(e) != 0;
          };
          placed = true;
          for (std::uint32_t i = 0; i + 1 < n && placed; ++i) {
            for (int k = 0; k < 64 && taken(edge(order[i], order[i + 1])) && i + 2 < n; ++k)
              std::swap(order[i + 1], order[i + 2 + r.below(n - i - 2)]);
            placed = !taken(edge(order[i], order[i + 1]));
            mine.insert(edge(order[i], order[i + 1]));
          }
          placed = placed && !taken(edge(order[n - 1], order[0]));
          if (placed) {
            mine.insert(edge(order[n - 1], order[0]));
            for (auto& e : mine) {
              edges.insert(e);
              adj[e.first].push_back(e.second);
              adj[e.second].push_back(e.first);
            }
          }
        }
        if (!placed)
          return absl::InvalidArgumentError(absl::StrCat(
            "workload.degree: could not wire a simple ", d, "-regular graph on ", n, " entities"));
      }
      break;
    }
  }

  g.offsets_.assign(n + 1, 0);
  for (std::uint32_t u = 0; u < n; ++u)
    g.offsets_[u + 1] = g.offsets_[u] + static_cast<std::uint32_t>(adj[u].size());
  g.adj_.reserve(g.offsets_[n]);
  g.latency_ns_.reserve(g.offsets_[n]);
  const auto lo = cfg.latency_min.ns();
  const auto span = static_cast<std::uint64_t>(cfg.latency_max.ns() - lo) + 1;
  std::int64_t min_ns = std::numeric_limits<std::int64_t>::max();
  for (std::uint32_t u = 0; u < n; ++u) {
    runtime::rng r(cfg.seed, u, latency_stream);
    for (auto v : adj[u]) {
      g.adj_.push_back(v);
      const auto l = lo + static_cast<std::int64_t>(r.below(span));
      g.latency_ns_.push_back(l);
      min_ns = std::min(min_ns, l);
    }
  }
  g.min_latency_ = runtime::duration::from_ns(min_ns);

  if (cfg.topology == mesh_topology::random_regular) {
    // One breadth-first search from every destination; the first neighbour
    // (in the fixed order) that is one hop closer is the next hop.
    g.next_.assign(static_cast<std::size_t>(n) * n, 0);
    std::vector<std::uint32_t> dist(n);
    std::vector<std::uint32_t> queue(n);
    for (std::uint32_t dst = 0; dst < n; ++dst) {
      std::fill(dist.begin(), dist.end(), std::numeric_limits<std::uint32_t>::max());
      dist[dst] = 0;
      std::size_t head = 0, tail = 0;
      queue[tail++] = dst;
      while (head < tail) {
        auto v = queue[head++];
        for (auto i = g.offsets_[v]; i < g.offsets_[v + 1]; ++i) {
          auto w = g.adj_[i];
          if (dist[w] == std::numeric_limits<std::uint32_t>::max()) {
            dist[w] = dist[v] + 1;
            queue[tail++] = w;
          }
        }
      }
      auto* row = &g.next_[static_cast<std::size_t>(dst) * n];
      for (std::uint32_t u = 0; u < n; ++u) {
        if (u == dst)
          continue;
        for (std::uint32_t i = 0; i < g.degree(u); ++i)
          if (dist[g.neighbour(u, i)] + 1 == dist[u]) {
            row[u] = static_cast<std::uint8_t>(i);
            break;
          }
      }
    }
  }
  return g;
}

std::uint32_t mesh_graph::next_hop(std::uint32_t u, std::uint32_t dst) const {
  switch (topology_) {
    case mesh_topology::ring:
      return forward_dist(u, dst, nodes_) <= nodes_ / 2 ? 0 : 1;
    case mesh_topology::torus: {
      const auto ux = u % width_, uy = u / width_;
      const auto dx = dst % width_, dy = dst / width_;
      if (ux != dx)
        return forward_dist(ux, dx, width_) <= width_ / 2 ? 0 : 1;
      return forward_dist(uy, dy, height_) <= height_ / 2 ? 2 : 3;
    }
    case mesh_topology::random_regular:
      return next_[static_cast<std::size_t>(dst) * nodes_ + u];
  }
  return 0;
}

std::uint32_t mesh_graph::distance(std::uint32_t u, std::uint32_t dst) const {
  std::uint32_t hops = 0;
  while (u != dst) {
    u = neighbour(u, next_hop(u, dst));
    ++hops;
  }
  return hops;
}

} // namespace satemu::actors
