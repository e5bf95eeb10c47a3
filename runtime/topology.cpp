#include "runtime/topology.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <numbers>
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
    // Two planes with phasing 0 pair each satellite with the same one both
    // ways: list the pair once.
    if (auto other = c.inter_plane_next(k);
        other && *other != k && !(c.inter_plane_next(*other) == k && *other < k))
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

double max_radius_along(const std::vector<waypoint>& track) {
  // Along a segment latitude and altitude move linearly, and the radius at a
  // given altitude shrinks as |latitude| grows: the segment's least |lat|
  // (0 if it crosses the equator) at its greater altitude bounds it.
  double r = 0;
  for (std::size_t i = 0; i < track.size(); ++i) {
    const geodetic& a = track[i].where;
    const geodetic& b = i + 1 < track.size() ? track[i + 1].where : a;
    const double lat = a.lat_deg * b.lat_deg <= 0
                         ? 0.0
                         : (std::fabs(a.lat_deg) < std::fabs(b.lat_deg) ? a.lat_deg : b.lat_deg);
    r = std::max(r, norm(geodetic_to_ecef({lat, a.lon_deg, std::max(a.alt_m, b.alt_m)})));
  }
  return r;
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

// Satellites bucketed by direction from the Earth's centre on a cube map
// (6 faces x side x side cells), so that a ground point looks only at the
// cells its horizon can reach instead of at every satellite.
class direction_grid {
public:
  static constexpr int side = 8;
  static constexpr int cells = 6 * side * side;

  // Buckets the satellites k < n with up(k), ascending within each cell.
  template <typename Up>
  void build(const std::vector<vec3>& pos, std::size_t n, Up&& up) {
    cell_.assign(n, -1);
    start_.assign(cells + 1, 0);
    r_max_ = 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (!up(k))
        continue;
      const double r = norm(pos[k]);
      if (!(r > 0))
        continue;
      r_max_ = std::max(r_max_, r);
      cell_[k] = cell_of(pos[k]);
      ++start_[static_cast<std::size_t>(cell_[k]) + 1];
    }
    for (int c = 0; c < cells; ++c)
      start_[static_cast<std::size_t>(c) + 1] += start_[static_cast<std::size_t>(c)];
    ids_.resize(start_.back());
    std::vector<std::uint32_t> fill(start_.begin(), start_.end() - 1);
    for (std::size_t k = 0; k < n; ++k)
      if (cell_[k] >= 0)
        ids_[fill[static_cast<std::size_t>(cell_[k])]++] = static_cast<std::uint32_t>(k);
  }

  // Calls f(k) for every bucketed satellite that can be above the horizon
  // of a point at `g` with unit up vector `up` (and some that cannot): a
  // satellite S with up . (S - g) > 0 and |S| <= r_max has
  // up . S/|S| > (up . g) / r_max = cos(theta), so its direction lies within
  // theta of `up`, and its cell's centre within theta + the cell's radius.
  template <typename F>
  void for_each_near(vec3 g, vec3 up, F&& f) const {
    const double c = dot(up, g);
    if (!(c > 0) || !(r_max_ > 0)) { // not on or above the Earth: every satellite
      for (const auto k : ids_)
        f(k);
      return;
    }
    const double cos_theta = c / r_max_;
    if (cos_theta > 1.0 + 1e-9) // above every satellite: none is above its horizon
      return;
    const double theta = std::acos(std::min(cos_theta, 1.0));
    const double sin_theta = std::sin(theta);
    const auto& geo = geometry();
    for (int cell = 0; cell < cells; ++cell) {
      const auto i = static_cast<std::size_t>(cell);
      if (start_[i] == start_[i + 1])
        continue;
      // Within reach: the angle to the centre is at most theta + radius,
      // cos(theta + radius) expanded (with a margin far above rounding).
      if (theta + geo.radius[i] < std::numbers::pi &&
          dot(up, geo.centre[i]) <
              cos_theta * geo.cos_radius[i] - sin_theta * geo.sin_radius[i] - 1e-9)
        continue;
      for (auto j = start_[i]; j < start_[i + 1]; ++j)
        f(ids_[j]);
    }
  }

private:
  struct cell_geometry {
    std::array<vec3, cells> centre;   // unit
    std::array<double, cells> radius; // largest angle from the centre to a corner
    std::array<double, cells> cos_radius;
    std::array<double, cells> sin_radius;
  };

  // Face by the largest component (x before y before z on ties), then the
  // two other components over it, each in [-1, 1], in `side` steps.
  static int cell_of(vec3 d) {
    const double ax = std::abs(d.x), ay = std::abs(d.y), az = std::abs(d.z);
    int face = 0;
    double m = 0, a = 0, b = 0;
    if (ax >= ay && ax >= az) {
      face = d.x > 0 ? 0 : 1;
      m = ax, a = d.y, b = d.z;
    } else if (ay >= az) {
      face = d.y > 0 ? 2 : 3;
      m = ay, a = d.x, b = d.z;
    } else {
      face = d.z > 0 ? 4 : 5;
      m = az, a = d.x, b = d.y;
    }
    auto step = [](double t) {
      return std::clamp(static_cast<int>((t + 1.0) * 0.5 * side), 0, side - 1);
    };
    return (face * side + step(a / m)) * side + step(b / m);
  }

  // The direction of face coordinates (a, b), unnormalised.
  static vec3 on_face(int face, double a, double b) {
    switch (face) {
      case 0: return {1, a, b};
      case 1: return {-1, a, b};
      case 2: return {a, 1, b};
      case 3: return {a, -1, b};
      case 4: return {a, b, 1};
      default: return {a, b, -1};
    }
  }

  // A cell is a convex spherical quadrilateral well inside a hemisphere, so
  // the cap around its centre through its farthest corner holds all of it.
  static const cell_geometry& geometry() {
    static const cell_geometry g = [] {
      cell_geometry out;
      for (int face = 0; face < 6; ++face)
        for (int i = 0; i < side; ++i)
          for (int j = 0; j < side; ++j) {
            const auto cell = static_cast<std::size_t>((face * side + i) * side + j);
            const double a0 = -1.0 + 2.0 * i / side, a1 = -1.0 + 2.0 * (i + 1) / side;
            const double b0 = -1.0 + 2.0 * j / side, b1 = -1.0 + 2.0 * (j + 1) / side;
            const vec3 c = normalized(on_face(face, (a0 + a1) / 2, (b0 + b1) / 2));
            double radius = 0;
            for (const double a : {a0, a1})
              for (const double b : {b0, b1})
                radius = std::max(radius, std::acos(std::clamp(
                                              dot(c, normalized(on_face(face, a, b))), -1.0, 1.0)));
            out.centre[cell] = c;
            out.radius[cell] = radius + 1e-9;
            out.cos_radius[cell] = std::cos(out.radius[cell]);
            out.sin_radius[cell] = std::sin(out.radius[cell]);
          }
      return out;
    }();
    return g;
  }

  std::vector<int> cell_;
  std::vector<std::uint32_t> start_;
  std::vector<std::uint32_t> ids_;
  double r_max_ = 0;
};

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
  // Satellites that are up, by direction (each ground point looks only near
  // its zenith).
  direction_grid near;
  if (!grounds.empty())
    near.build(s.position_m, s.satellites, up);
  std::vector<double> best_score(s.groups);
  std::vector<std::uint8_t> before_visible(s.groups);
  std::vector<std::uint32_t> in_view; // all_in_view: the satellites of one ground point
  // Highest elevation: largest sin(elevation) = h / range; nearest: smallest
  // range.
  auto score_of = [&](const ground_point& gp, const vec3& sat) {
    const vec3 d = sat - gp.ecef_m;
    return gsl.policy == association_policy::nearest ? -norm(d) : dot(gp.horizon.up, d) / norm(d);
  };
  // Whether satellite `id` at `score` serves `gp` better than `best` at
  // `best_sc`. Scores within rounding of each other are a tie when
  // position_soon is set, which then decides; remaining ties keep the lowest
  // id (the cells come in any order).
  constexpr double tie = 1e-12;
  auto better = [&](const ground_point& gp, double score, std::int32_t id, double best_sc,
                    std::int32_t best) {
    if (best < 0)
      return true;
    if (!inputs.position_soon || std::abs(score - best_sc) >
                                   tie * std::max(std::abs(score), std::abs(best_sc))) {
      if (score != best_sc)
        return score > best_sc;
    } else {
      // A satellite whose position then is unknown (a failed propagation) is last.
      auto soon_of = [&](std::int32_t k) {
        const double sc = score_of(gp, inputs.position_soon(static_cast<std::uint32_t>(k)));
        return std::isnan(sc) ? -std::numeric_limits<double>::infinity() : sc;
      };
      const double soon = soon_of(id), best_soon = soon_of(best);
      if (soon != best_soon)
        return soon > best_soon;
    }
    return id < best;
  };
  for (std::size_t g = 0; g < grounds.size(); ++g) {
    const auto& gp = grounds[g];
    std::int32_t* best = &s.serving[g * s.groups];
    const std::int32_t* before = same_layout ? &previous->serving[g * s.groups] : nullptr;
    std::fill(best_score.begin(), best_score.end(), -std::numeric_limits<double>::infinity());
    std::fill(before_visible.begin(), before_visible.end(), 0);
    in_view.clear();
    near.for_each_near(gp.ecef_m, gp.horizon.up, [&](std::uint32_t k) {
      const vec3 d = s.position_m[k] - gp.ecef_m;
      const double h = dot(gp.horizon.up, d);
      if (!(h > 0))
        return;
      const double range = norm(d);
      if (h < sin_min * range)
        return;
      const auto grp = group(k);
      if (gsl.all_in_view)
        in_view.push_back(k);
      if (before != nullptr && static_cast<std::int32_t>(k) == before[grp])
        before_visible[grp] = 1;
      const double score = gsl.policy == association_policy::nearest ? -range : h / range;
      const auto id = static_cast<std::int32_t>(k);
      if (better(gp, score, id, best_score[grp], best[grp])) {
        best_score[grp] = score;
        best[grp] = id;
      }
    });
    for (std::size_t grp = 0; grp < s.groups; ++grp) {
      if (gsl.policy == association_policy::stay_until_lost && before_visible[grp] != 0)
        best[grp] = before[grp];
      const std::int32_t was = before != nullptr ? before[grp] : -1;
      if (previous != nullptr && best[grp] != was)
        s.handovers.push_back({static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(grp), was,
                               best[grp]});
      if (best[grp] >= 0 && !gsl.all_in_view)
        edges.push_back({static_cast<std::uint32_t>(best[grp]), s.ground_node(g),
                         distance(s.position_m[static_cast<std::size_t>(best[grp])], gp.ecef_m),
                         link_kind::ground});
    }
    // In satellite order (the cells come in any order).
    std::sort(in_view.begin(), in_view.end());
    for (const auto k : in_view)
      edges.push_back({k, s.ground_node(g), distance(s.position_m[k], gp.ecef_m), link_kind::ground});
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

namespace {

// Dijkstra from one destination over a snapshot's links, run in steps:
// nodes are settled in order of cost until a given one is (or all are).
// Ground points other than the destination are settled but not expanded (no
// transit through them). Equal costs prefer the lower next-hop id, so the
// routes depend neither on the order links were found in nor on where the
// search was paused.
class dijkstra {
public:
  static constexpr double inf = std::numeric_limits<double>::infinity();

  // With `length_m` and `hops`, also each node's path length and hop count.
  dijkstra(const topology_snapshot& s, std::uint32_t destination, route_metric metric,
           std::vector<double>* length_m = nullptr, std::vector<std::uint16_t>* hops = nullptr)
    : s_(s), destination_(destination), metric_(metric), length_m_(length_m), hops_(hops),
      next_(s.nodes(), route_tree::none), cost_(s.nodes(), inf), done_(s.nodes(), false) {
    cost_[destination] = 0;
    if (length_m_ != nullptr) {
      length_m_->assign(s.nodes(), inf);
      (*length_m_)[destination] = 0;
    }
    if (hops_ != nullptr)
      hops_->assign(s.nodes(), 0);
    queue_.push({0, destination});
  }

  // Settles nodes until `target` is settled (route_tree::none: until none is
  // left), calling on_settle(v) once v's next hop is final.
  template <typename F>
  void run_until(std::uint32_t target, F&& on_settle) {
    while (!queue_.empty() && !(target != route_tree::none && done_[target])) {
      const auto [c, v] = queue_.top();
      queue_.pop();
      if (done_[v])
        continue;
      done_[v] = true;
      on_settle(v);
      if (v >= s_.satellites && v != destination_)
        continue;
      for (auto i = s_.offsets[v]; i < s_.offsets[v + 1]; ++i) {
        const auto u = s_.neighbour[i];
        if (done_[u])
          continue;
        const double len = s_.length_m[i];
        // Cost per link: its length, or 1 for hop count (length then breaks ties).
        const double step = metric_ == route_metric::hops ? 1.0 + len * 1e-12 : len;
        const double nc = c + step;
        if (nc < cost_[u] || (nc == cost_[u] && v < next_[u])) {
          cost_[u] = nc;
          next_[u] = v;
          if (length_m_ != nullptr)
            (*length_m_)[u] = (*length_m_)[v] + len;
          if (hops_ != nullptr)
            (*hops_)[u] = static_cast<std::uint16_t>((*hops_)[v] + 1);
          queue_.push({nc, u});
        }
      }
    }
  }

  bool finished() const { return queue_.empty(); }
  // The next hops; a settled node's is final.
  const std::vector<std::uint32_t>& next() const { return next_; }
  std::vector<std::uint32_t> take_next() { return std::move(next_); }
  // Frees what only the search itself needs, once it has finished.
  void release_search_state() {
    cost_ = {};
    done_ = {};
    queue_ = {};
  }

private:
  using item = std::pair<double, std::uint32_t>;

  const topology_snapshot& s_;
  std::uint32_t destination_;
  route_metric metric_;
  std::vector<double>* length_m_;
  std::vector<std::uint16_t>* hops_;
  std::vector<std::uint32_t> next_;
  std::vector<double> cost_;
  std::vector<bool> done_;
  std::priority_queue<item, std::vector<item>, std::greater<item>> queue_;
};

} // namespace

route_tree shortest_path_tree(const topology_snapshot& s, std::uint32_t destination,
                              route_metric metric) {
  route_tree t;
  t.destination = destination;
  dijkstra d(s, destination, metric, &t.length_m, &t.hops);
  d.run_until(route_tree::none, [](std::uint32_t) {});
  t.next = d.take_next();
  return t;
}

// One destination's search, shared by the threads that ask about it: the
// search advances under the lock, and a node's `settled` flag (set after its
// next hop is final) lets questions about it skip the lock.
class route_cache::search {
public:
  search(const topology_snapshot& s, std::uint32_t destination, route_metric metric)
    : d_(s, destination, metric),
      settled_(std::make_unique<std::atomic<std::uint8_t>[]>(s.nodes())) {}

  std::uint32_t next(std::uint32_t from) {
    if (finished_.load(std::memory_order_acquire) ||
        settled_[from].load(std::memory_order_acquire) != 0)
      return d_.next()[from];
    std::lock_guard<std::mutex> lock(mu_);
    d_.run_until(from, [this](std::uint32_t v) {
      settled_[v].store(1, std::memory_order_release);
    });
    if (d_.finished() && !finished_.load(std::memory_order_relaxed)) {
      d_.release_search_state();
      finished_.store(true, std::memory_order_release);
    }
    return d_.next()[from];
  }

private:
  std::mutex mu_;
  dijkstra d_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> settled_;
  std::atomic<bool> finished_{false};
};

route_cache::route_cache(std::shared_ptr<const topology_snapshot> s, route_metric metric)
  : snapshot_(std::move(s)), metric_(metric),
    searches_(std::make_unique<std::atomic<search*>[]>(snapshot_->nodes())),
    size_(snapshot_->nodes()) {
}

route_cache::~route_cache() {
  for (std::size_t i = 0; i < size_; ++i)
    delete searches_[i].load(std::memory_order_relaxed);
}

route_cache::search& route_cache::search_to(std::uint32_t destination) const {
  auto& slot = searches_[destination];
  if (auto* s = slot.load(std::memory_order_acquire))
    return *s;
  // Two threads may race to start the same search; the first one stored wins.
  auto* started = new search(*snapshot_, destination, metric_);
  search* expected = nullptr;
  if (slot.compare_exchange_strong(expected, started, std::memory_order_acq_rel,
                                   std::memory_order_acquire))
    return *started;
  delete started;
  return *expected;
}

std::uint32_t route_cache::next(std::uint32_t destination, std::uint32_t from) const {
  return search_to(destination).next(from);
}

} // namespace satemu::runtime
