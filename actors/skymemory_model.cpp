// satemu SkyMemory analytic model: layouts, distances, fetch times.
#include "actors/skymemory_model.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <numbers>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "runtime/constants.hpp"

namespace satemu::actors::skymemory {

namespace {

double chord_m(const grid& g, int ring) {
  return 2.0 * (runtime::earth_mean_radius_m + g.altitude_m) *
         std::sin(std::numbers::pi / static_cast<double>(ring));
}

int wrap(int i, int n) { return ((i % n) + n) % n; }

// Ascending offsets of a box axis of half-width r on a ring of n: -r..r, or
// every offset of the ring, (-n/2, n/2], when 2r+1 does not fit.
std::vector<int> axis_offsets(int r, int n) {
  std::vector<int> out;
  const int lo = 2 * r + 1 <= n ? -r : -((n - 1) / 2);
  const int hi = 2 * r + 1 <= n ? r : n / 2;
  for (int d = lo; d <= hi; ++d)
    out.push_back(d);
  return out;
}

absl::Status check_servers(const grid& g, int servers) {
  if (servers < 1)
    return absl::InvalidArgumentError(
      absl::StrCat("workload.servers: need at least one server, got ", servers));
  const auto sats = static_cast<std::int64_t>(g.planes) * g.sats_per_plane;
  if (servers > sats)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.servers: ", servers, " servers need more satellites than the ", g.planes, "x",
      g.sats_per_plane, " grid has (", sats, ")"));
  return absl::OkStatus();
}

// Breadth-first from the centre satellite; `inside(cell)` limits the cells
// visited. Stops after `servers` cells.
template <class Inside>
std::vector<offset> breadth_first(const grid& g, int servers, Inside inside) {
  const int m = g.planes, n = g.sats_per_plane;
  std::vector<char> seen(static_cast<std::size_t>(m) * n, 0);
  auto index = [n](int p, int s) { return static_cast<std::size_t>(p) * n + s; };
  std::vector<offset> order;
  std::deque<offset> queue; // cells
  const offset start{g.center_plane_index, g.center_satellite_index};
  seen[index(start.plane, start.satellite)] = 1;
  queue.push_back(start);
  while (!queue.empty() && static_cast<int>(order.size()) < servers) {
    const offset c = queue.front();
    queue.pop_front();
    order.push_back({ring_offset(g.center_plane_index, c.plane, m),
                     ring_offset(g.center_satellite_index, c.satellite, n)});
    // Previous plane, next satellite, next plane, previous satellite.
    const offset next[4] = {{wrap(c.plane - 1, m), c.satellite},
                            {c.plane, wrap(c.satellite + 1, n)},
                            {wrap(c.plane + 1, m), c.satellite},
                            {c.plane, wrap(c.satellite - 1, n)}};
    for (const auto& x : next) {
      auto& flag = seen[index(x.plane, x.satellite)];
      if (flag == 0 && inside(x)) {
        flag = 1;
        queue.push_back(x);
      }
    }
  }
  return order;
}

} // namespace

std::string to_string(strategy s) {
  switch (s) {
    case strategy::rotation:
      return "rotation";
    case strategy::hop:
      return "hop";
    case strategy::hop_rotation:
      return "hop_rotation";
  }
  return "?";
}

std::optional<strategy> parse_strategy(std::string_view name) {
  for (auto s : all_strategies())
    if (to_string(s) == name)
      return s;
  return std::nullopt;
}

const std::vector<strategy>& all_strategies() {
  static const std::vector<strategy> all{strategy::rotation, strategy::hop, strategy::hop_rotation};
  return all;
}

double in_plane_spacing_m(const grid& g) { return chord_m(g, g.sats_per_plane); }
double inter_plane_spacing_m(const grid& g) { return chord_m(g, g.planes); }

int ring_offset(int from, int to, int n) {
  const int d = wrap(to - from, n);
  return d > n / 2 ? d - n : d;
}

absl::StatusOr<box> make_box(const grid& g, int servers) {
  if (auto st = check_servers(g, servers); !st.ok())
    return st;
  box b;
  b.side = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(servers))));
  while (b.side * b.side < servers) // sqrt rounding guard
    ++b.side;
  b.half_width = b.side / 2;
  for (;; ++b.half_width) {
    b.plane_offsets = axis_offsets(b.half_width, g.planes);
    b.satellite_offsets = axis_offsets(b.half_width, g.sats_per_plane);
    if (b.cells() >= static_cast<std::size_t>(servers))
      return b;
  }
}

offset cell_of(const grid& g, offset o) {
  return {wrap(g.center_plane_index + o.plane, g.planes),
          wrap(g.center_satellite_index + o.satellite, g.sats_per_plane)};
}

absl::StatusOr<std::vector<offset>> make_layout(const grid& g, strategy s, int servers) {
  if (s == strategy::hop) {
    if (auto st = check_servers(g, servers); !st.ok())
      return st;
    return breadth_first(g, servers, [](const offset&) { return true; });
  }
  auto b = make_box(g, servers);
  if (!b.ok())
    return b.status();
  if (s == strategy::hop_rotation) {
    const auto& po = b->plane_offsets;
    const auto& so = b->satellite_offsets;
    return breadth_first(g, servers, [&](const offset& cell) {
      const int dp = ring_offset(g.center_plane_index, cell.plane, g.planes);
      const int ds = ring_offset(g.center_satellite_index, cell.satellite, g.sats_per_plane);
      return std::binary_search(po.begin(), po.end(), dp) &&
             std::binary_search(so.begin(), so.end(), ds);
    });
  }
  std::vector<offset> order;
  for (int dp : b->plane_offsets)
    for (int ds : b->satellite_offsets)
      if (static_cast<int>(order.size()) < servers)
        order.push_back({dp, ds});
  return order;
}

double distance_m(const grid& g, strategy s, offset o) {
  const double x = std::abs(o.plane) * inter_plane_spacing_m(g);
  const double y = std::abs(o.satellite) * in_plane_spacing_m(g);
  if (s == strategy::hop)
    return x + y;
  return std::sqrt(x * x + y * y + g.altitude_m * g.altitude_m);
}

std::uint64_t chunk_count(std::uint64_t kv_bytes, std::uint64_t chunk_bytes) {
  return kv_bytes / chunk_bytes + (kv_bytes % chunk_bytes != 0 ? 1 : 0);
}

std::vector<std::uint64_t> chunks_per_server(std::uint64_t chunks, int servers) {
  const auto s = static_cast<std::uint64_t>(servers);
  std::vector<std::uint64_t> out(s, chunks / s);
  for (std::uint64_t j = 0; j < chunks % s; ++j)
    ++out[j];
  return out;
}

absl::StatusOr<fetch_result> evaluate(const params& p, strategy s) {
  if (p.kv_bytes == 0)
    return absl::InvalidArgumentError("workload.kv_size: must be above 0");
  if (p.chunk_bytes == 0)
    return absl::InvalidArgumentError("workload.chunk_size: must be above 0");
  auto layout = make_layout(p.g, s, p.servers);
  if (!layout.ok())
    return layout.status();

  fetch_result r;
  r.s = s;
  r.chunks = chunk_count(p.kv_bytes, p.chunk_bytes);
  const auto held = chunks_per_server(r.chunks, p.servers);
  // The last chunk, held by server (n-1) mod S, is what is left over.
  const std::uint64_t last_server = (r.chunks - 1) % static_cast<std::uint64_t>(p.servers);
  const std::uint64_t last_bytes = p.kv_bytes - (r.chunks - 1) * p.chunk_bytes;
  const double chunk_s = p.chunk_time.seconds();

  double sum = 0, sum_sq = 0;
  std::size_t active = 0;
  for (std::size_t j = 0; j < layout->size(); ++j) {
    server_figures f;
    f.at = (*layout)[j];
    f.cell = cell_of(p.g, f.at);
    f.distance_m = distance_m(p.g, s, f.at);
    f.chunks = held[j];
    f.bytes = f.chunks * p.chunk_bytes - (j == last_server ? p.chunk_bytes - last_bytes : 0);
    f.time_s = f.distance_m / runtime::skymemory_speed_of_light_m_per_s +
               chunk_s * static_cast<double>(f.chunks);
    if (f.chunks > 0) {
      r.fetch_s = active == 0 ? f.time_s : std::max(r.fetch_s, f.time_s);
      r.min_s = active == 0 ? f.time_s : std::min(r.min_s, f.time_s);
      sum += f.time_s;
      ++active;
    }
    r.servers.push_back(f);
  }
  r.mean_s = sum / static_cast<double>(active);
  for (const auto& f : r.servers)
    if (f.chunks > 0)
      sum_sq += (f.time_s - r.mean_s) * (f.time_s - r.mean_s);
  r.std_s = std::sqrt(sum_sq / static_cast<double>(active));

  if (s != strategy::hop) {
    auto b = make_box(p.g, p.servers);
    if (!b.ok())
      return b.status();
    r.box_planes = static_cast<int>(b->plane_offsets.size());
    r.box_satellites = static_cast<int>(b->satellite_offsets.size());
    // A server whose satellite moves one slot on, out of the layout: the
    // box's last column, and the last cell of each row of a box only
    // partly filled. A box that spans the plane keeps every satellite.
    std::vector<offset> cells = *layout;
    auto before = [](const offset& a, const offset& b) {
      return std::tie(a.plane, a.satellite) < std::tie(b.plane, b.satellite);
    };
    std::sort(cells.begin(), cells.end(), before);
    for (const auto& f : r.servers) {
      const offset moved{f.at.plane, ring_offset(0, f.at.satellite + 1, p.g.sats_per_plane)};
      if (!std::binary_search(cells.begin(), cells.end(), moved, before)) {
        r.migration_chunks += f.chunks;
        r.migration_bytes += f.bytes;
      }
    }
  }
  return r;
}

} // namespace satemu::actors::skymemory
