#include "runtime/topology.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "runtime/constants.hpp"
#include "runtime/walker.hpp"

namespace satemu::runtime {

std::vector<isl_candidate> plus_grid_candidates(const walker_constellation& c) {
  std::vector<isl_candidate> out;
  out.reserve(2 * c.size());
  for (std::size_t k = 0; k < c.size(); ++k) {
    const auto next = c.in_plane_next(k);
    // A one-satellite plane would link a satellite to itself; a two-satellite
    // plane would list its one pair twice.
    if (next != k && !(c.in_plane_next(next) == k && next < k))
      out.push_back({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(next), false});
    if (auto other = c.inter_plane_next(k); other && *other != k)
      out.push_back({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(*other), true});
  }
  return out;
}

std::optional<double> topology_snapshot::link_length_m(std::uint32_t u, std::uint32_t v) const {
  for (auto i = offsets[u]; i < offsets[u + 1]; ++i)
    if (neighbour[i] == v)
      return length_m[i];
  return std::nullopt;
}

ground_point ground_point::at(std::string name, const geodetic& g) {
  ground_point p;
  p.name = std::move(name);
  p.where = g;
  p.ecef_m = geodetic_to_ecef(g);
  p.horizon = enu_frame_at(g);
  return p;
}

geodetic along_waypoints(const std::vector<waypoint>& track, double t_s) {
  if (t_s <= track.front().t_s)
    return track.front().where;
  if (t_s >= track.back().t_s)
    return track.back().where;
  const auto next = std::upper_bound(track.begin(), track.end(), t_s,
                                     [](double t, const waypoint& w) { return t < w.t_s; });
  const auto& b = *next;
  const auto& a = *(next - 1);
  const double f = (t_s - a.t_s) / (b.t_s - a.t_s);
  double dlon = std::fmod(b.where.lon_deg - a.where.lon_deg, 360.0);
  if (dlon > 180)
    dlon -= 360;
  if (dlon < -180)
    dlon += 360;
  double lon = a.where.lon_deg + f * dlon;
  if (lon > 180)
    lon -= 360;
  if (lon < -180)
    lon += 360;
  return {a.where.lat_deg + f * (b.where.lat_deg - a.where.lat_deg), lon,
          a.where.alt_m + f * (b.where.alt_m - a.where.alt_m)};
}

namespace {

struct edge {
  std::uint32_t a, b;
  double length;
  link_kind kind;
};

double geocentric_latitude_deg(vec3 r) {
  return std::asin(r.z / norm(r)) * degrees_per_radian;
}

} // namespace

topology_snapshot build_snapshot(double t_s, std::vector<vec3> sat_ecef_m,
                                 const std::vector<isl_candidate>& candidates,
                                 const std::vector<ground_point>& grounds, const isl_rules& isl,
                                 const gsl_rules& gsl, const topology_snapshot* previous,
                                 const snapshot_inputs& inputs) {
  topology_snapshot s;
  s.t_s = t_s;
  s.satellites = sat_ecef_m.size();
  s.grounds = grounds.size();
  s.groups = std::max<std::size_t>(inputs.groups, 1);
  s.position_m = std::move(sat_ecef_m);
  s.position_m.reserve(s.satellites + s.grounds);
  for (const auto& g : grounds)
    s.position_m.push_back(g.ecef_m);

  auto up = [&](std::size_t k) {
    if (k < inputs.sat_down.size() && inputs.sat_down[k] != 0)
      return false;
    const vec3 r = s.position_m[k];
    return std::isfinite(r.x) && std::isfinite(r.y) && std::isfinite(r.z);
  };
  auto group = [&](std::size_t k) -> std::size_t {
    return k < inputs.group_of.size() ? inputs.group_of[k] : 0;
  };

  std::vector<edge> edges;
  edges.reserve(candidates.size() + grounds.size() * s.groups);
  const double max_range_sq = isl.max_range_m * isl.max_range_m;
  const double min_range_sq = isl.min_range_m * isl.min_range_m;
  for (const auto& c : candidates) {
    if (!up(c.a) || !up(c.b))
      continue;
    if (!inputs.isl_down.empty() &&
        std::binary_search(inputs.isl_down.begin(), inputs.isl_down.end(),
                           std::pair{std::min(c.a, c.b), std::max(c.a, c.b)}))
      continue;
    const vec3 a = s.position_m[c.a], b = s.position_m[c.b];
    const double d_sq = norm_sq(a - b);
    if (d_sq > max_range_sq || d_sq < min_range_sq)
      continue;
    if (c.inter_plane && (std::abs(geocentric_latitude_deg(a)) > isl.inter_plane_max_latitude_deg ||
                          std::abs(geocentric_latitude_deg(b)) > isl.inter_plane_max_latitude_deg))
      continue;
    if (line_of_sight_min_altitude_m(a, b) < isl.min_line_of_sight_altitude_m)
      continue;
    edges.push_back({c.a, c.b, std::sqrt(d_sq),
                     c.inter_plane ? link_kind::isl_inter_plane : link_kind::isl_intra_plane});
  }
  s.isl_links = edges.size();

  // Elevation >= e_min  <=>  up . (sat - ground) >= sin(e_min) |sat - ground|:
  // one dot product and one square root per pair, no trigonometry.
  const double sin_min = std::sin(gsl.min_elevation_deg * radians_per_degree);
  const bool same_layout = previous != nullptr && previous->groups == s.groups &&
                           previous->serving.size() == grounds.size() * s.groups;
  s.serving.assign(grounds.size() * s.groups, -1);
  std::vector<double> best_score(s.groups);
  std::vector<std::uint8_t> before_visible(s.groups);
  for (std::size_t g = 0; g < grounds.size(); ++g) {
    const auto& gp = grounds[g];
    std::int32_t* best = &s.serving[g * s.groups];
    const std::int32_t* before = same_layout ? &previous->serving[g * s.groups] : nullptr;
    std::fill(best_score.begin(), best_score.end(), -std::numeric_limits<double>::infinity());
    std::fill(before_visible.begin(), before_visible.end(), 0);
    for (std::size_t k = 0; k < s.satellites; ++k) {
      const vec3 d = s.position_m[k] - gp.ecef_m;
      const double h = dot(gp.horizon.up, d);
      if (!(h > 0))
        continue;
      const double range = norm(d);
      if (h < sin_min * range || !up(k))
        continue;
      const auto grp = group(k);
      if (before != nullptr && static_cast<std::int32_t>(k) == before[grp])
        before_visible[grp] = 1;
      // Highest elevation: largest sin(elevation) = h / range; nearest:
      // smallest range. Strict '>' keeps the lowest id on ties.
      const double score = gsl.policy == association_policy::nearest ? -range : h / range;
      if (score > best_score[grp]) {
        best_score[grp] = score;
        best[grp] = static_cast<std::int32_t>(k);
      }
    }
    for (std::size_t grp = 0; grp < s.groups; ++grp) {
      if (gsl.policy == association_policy::stay_until_lost && before_visible[grp] != 0)
        best[grp] = before[grp];
      const std::int32_t was = before != nullptr ? before[grp] : -1;
      if (previous != nullptr && best[grp] != was)
        s.handovers.push_back({static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(grp), was,
                               best[grp]});
      if (best[grp] >= 0)
        edges.push_back({static_cast<std::uint32_t>(best[grp]), s.ground_node(g),
                         distance(s.position_m[static_cast<std::size_t>(best[grp])], gp.ecef_m),
                         link_kind::ground});
    }
  }

  // Compressed rows, both directions, in edge order (deterministic).
  const auto n = s.nodes();
  s.offsets.assign(n + 1, 0);
  for (const auto& e : edges) {
    ++s.offsets[e.a + 1];
    ++s.offsets[e.b + 1];
  }
  for (std::size_t i = 0; i < n; ++i)
    s.offsets[i + 1] += s.offsets[i];
  s.neighbour.resize(2 * edges.size());
  s.length_m.resize(2 * edges.size());
  s.kind.resize(2 * edges.size());
  std::vector<std::uint32_t> fill(s.offsets.begin(), s.offsets.end() - 1);
  for (const auto& e : edges) {
    for (auto [from, to] : {std::pair{e.a, e.b}, std::pair{e.b, e.a}}) {
      const auto i = fill[from]++;
      s.neighbour[i] = to;
      s.length_m[i] = e.length;
      s.kind[i] = e.kind;
    }
  }
  return s;
}

route_tree shortest_path_tree(const topology_snapshot& s, std::uint32_t destination,
                              route_metric metric) {
  const auto n = s.nodes();
  route_tree t;
  t.destination = destination;
  t.next.assign(n, route_tree::none);
  t.length_m.assign(n, std::numeric_limits<double>::infinity());
  t.hops.assign(n, 0);
  // Cost per link: its length, or 1 for hop count (length then breaks ties).
  std::vector<double> cost(n, std::numeric_limits<double>::infinity());
  std::vector<bool> done(n, false);
  using item = std::pair<double, std::uint32_t>;
  std::priority_queue<item, std::vector<item>, std::greater<item>> queue;
  cost[destination] = 0;
  t.length_m[destination] = 0;
  queue.push({0, destination});
  while (!queue.empty()) {
    const auto [c, v] = queue.top();
    queue.pop();
    if (done[v])
      continue;
    done[v] = true;
    // Ground points are endpoints: reachable, but never relays.
    if (v >= s.satellites && v != destination)
      continue;
    for (auto i = s.offsets[v]; i < s.offsets[v + 1]; ++i) {
      const auto u = s.neighbour[i];
      if (done[u])
        continue;
      const double len = s.length_m[i];
      const double step = metric == route_metric::hops ? 1.0 + len * 1e-12 : len;
      const double nc = c + step;
      // Equal cost: prefer the lower next-hop id, so routes do not depend on
      // the order links were found in.
      if (nc < cost[u] || (nc == cost[u] && v < t.next[u])) {
        cost[u] = nc;
        t.next[u] = v;
        t.length_m[u] = t.length_m[v] + len;
        t.hops[u] = static_cast<std::uint16_t>(t.hops[v] + 1);
        queue.push({nc, u});
      }
    }
  }
  return t;
}

route_cache::route_cache(std::shared_ptr<const topology_snapshot> s, route_metric metric)
  : snapshot_(std::move(s)), metric_(metric),
    trees_(std::make_unique<std::atomic<const route_tree*>[]>(snapshot_->nodes())),
    size_(snapshot_->nodes()) {
}

route_cache::~route_cache() {
  for (std::size_t i = 0; i < size_; ++i)
    delete trees_[i].load(std::memory_order_relaxed);
}

const route_tree& route_cache::to(std::uint32_t destination) const {
  auto& slot = trees_[destination];
  if (const auto* t = slot.load(std::memory_order_acquire))
    return *t;
  // Two threads may race to build the same tree; both give identical
  // results, and the first one stored wins.
  auto* built = new route_tree(shortest_path_tree(*snapshot_, destination, metric_));
  const route_tree* expected = nullptr;
  if (slot.compare_exchange_strong(expected, built, std::memory_order_acq_rel,
                                   std::memory_order_acquire))
    return *built;
  delete built;
  return *expected;
}

} // namespace satemu::runtime
