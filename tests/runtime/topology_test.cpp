// Topology epochs and routing: +Grid rules, ground association, and
// shortest paths against an independent brute force.
#include "runtime/topology.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "runtime/constants.hpp"
#include "runtime/walker.hpp"

namespace satemu::runtime {
namespace {

walker_constellation grid(int planes, int sats, double inclination_deg = 53) {
  auto c = walker_constellation::make({{planes, sats, 550e3, inclination_deg, 1, 360}});
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

topology_snapshot snapshot_of(const walker_constellation& c, double t_s,
                              const std::vector<ground_point>& grounds, isl_rules isl = {},
                              gsl_rules gsl = {}, const topology_snapshot* previous = nullptr) {
  return build_snapshot(t_s, c.ecef_all(t_s, 0.0), plus_grid_candidates(c), grounds, isl, gsl,
                        previous);
}

TEST(Topology, PlusGridHasTwoCandidatesPerSatellite) {
  auto c = grid(5, 19);
  auto cand = plus_grid_candidates(c);
  EXPECT_EQ(cand.size(), 2u * 95u);
  std::vector<int> degree(c.size(), 0);
  for (const auto& e : cand) {
    EXPECT_NE(e.a, e.b);
    ++degree[e.a];
    ++degree[e.b];
  }
  for (int d : degree)
    EXPECT_EQ(d, 4);
}

// Two planes with phasing 0: satellite j of each plane is the other's
// inter-plane neighbour, one pair, listed once.
TEST(Topology, TwoPlanesListEachInterPlanePairOnce) {
  for (int phasing : {0, 1}) {
    auto c = walker_constellation::make({{2, 6, 550e3, 53, phasing, 360}});
    ASSERT_TRUE(c.ok()) << c.status();
    std::set<std::pair<std::uint32_t, std::uint32_t>> pairs;
    std::size_t inter = 0;
    for (const auto& e : plus_grid_candidates(*c)) {
      EXPECT_TRUE(pairs.insert({std::min(e.a, e.b), std::max(e.a, e.b)}).second)
        << e.a << "-" << e.b << ", phasing " << phasing;
      inter += e.inter_plane ? 1 : 0;
    }
    EXPECT_EQ(inter, phasing == 0 ? 6u : 12u) << "phasing " << phasing;
  }
}

TEST(Topology, LinksObeyRangeLatitudeAndLineOfSight) {
  // 12x12 at 550 km: in-plane neighbours are 2a sin(15 deg) = 3,570 km
  // apart, inter-plane ones at most ~3,800 km, and a 53-deg shell never
  // passes 75 deg latitude, so all 288 +Grid candidates are links.
  auto c = grid(12, 12);
  auto all = snapshot_of(c, 0, {});
  EXPECT_EQ(all.isl_links, 288u);
  const double chord = in_plane_neighbour_distance_m(c.shells()[0]);
  for (std::size_t i = 0; i < all.neighbour.size(); ++i) {
    EXPECT_LE(all.length_m[i], 4'000e3);
    if (all.kind[i] == link_kind::isl_intra_plane) {
      EXPECT_NEAR(all.length_m[i], chord, 1e-3);
    }
  }
  // 6 planes: the inter-plane links near the equator are 2a sin(30 deg) =
  // 6,900 km long, beyond the 5,000 km default range.
  auto sparse = snapshot_of(grid(6, 10), 0, {});
  EXPECT_LT(sparse.isl_links, 120u);
  EXPECT_GT(sparse.isl_links, 60u);

  isl_rules short_range;
  short_range.max_range_m = 1'000e3; // below both neighbour distances
  EXPECT_EQ(snapshot_of(c, 0, {}, short_range).isl_links, 0u);

  isl_rules no_inter;
  no_inter.inter_plane_max_latitude_deg = 0; // every inter-plane link is off
  auto s = snapshot_of(c, 0, {}, no_inter);
  EXPECT_EQ(s.isl_links, 144u);
  for (auto k : s.kind)
    EXPECT_NE(k, link_kind::isl_inter_plane);

  // Two satellites on opposite sides of the Earth: in range, but the line of
  // sight goes through the planet.
  const double a = wgs84_equatorial_radius_m + 550e3;
  isl_rules far;
  far.max_range_m = 3 * a;
  auto blocked = build_snapshot(0, {{a, 0, 0}, {-a, 0, 0}}, {{0, 1, false}}, {}, far, {}, nullptr);
  EXPECT_EQ(blocked.isl_links, 0u);
  auto clear = build_snapshot(0, {{a, 0, 0}, {a * std::cos(0.1), a * std::sin(0.1), 0}},
                              {{0, 1, false}}, {}, far, {}, nullptr);
  EXPECT_EQ(clear.isl_links, 1u);
}

TEST(Topology, GroundPointUnderASatelliteIsServedByIt) {
  auto c = grid(6, 10);
  const auto pos = c.ecef_all(0, 0.0);
  const auto sub = ecef_to_geodetic(pos[17]);
  auto g = ground_point::at("below", {sub.lat_deg, sub.lon_deg, 0});
  auto s = snapshot_of(c, 0, {g});
  ASSERT_EQ(s.serving.size(), 1u);
  EXPECT_EQ(s.serving[0], 17);
  EXPECT_NEAR(s.link_length_m(17, s.ground_node(0)).value(), sub.alt_m, 1e-3);

  gsl_rules impossible;
  impossible.min_elevation_deg = 90.0 - 1e-9;
  auto none = snapshot_of(c, 0, {ground_point::at("far", {sub.lat_deg + 5, sub.lon_deg, 0})}, {},
                          impossible);
  EXPECT_EQ(none.serving[0], -1);
}

// The radius bound of a moving user holds everywhere along its track,
// including where a segment crosses the equator between its endpoints.
TEST(Topology, MaxRadiusAlongBoundsEveryPointOfATrack) {
  const std::vector<waypoint> across = {{0, {45, -70, 0}}, {2000, {-45, -60, 0}}};
  const double bound = max_radius_along(across);
  const double ends = std::max(norm(geodetic_to_ecef(across[0].where)),
                               norm(geodetic_to_ecef(across[1].where)));
  EXPECT_GT(bound - ends, 10e3);
  EXPECT_NEAR(norm(geodetic_to_ecef(along_waypoints(across, 1000))), bound, 1e-3);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> lat(-89, 89), lon(-180, 180), alt(0, 12e3), dt(1, 100);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<waypoint> track = {{0, {lat(rng), lon(rng), alt(rng)}}};
    for (int i = 0; i < trial % 4; ++i)
      track.push_back({track.back().t_s + dt(rng), {lat(rng), lon(rng), alt(rng)}});
    const double b = max_radius_along(track);
    double seen = 0;
    for (int k = 0; k <= 4000; ++k) {
      const double t = track.back().t_s * k / 4000.0;
      seen = std::max(seen, norm(geodetic_to_ecef(along_waypoints(track, t))));
    }
    EXPECT_LE(seen, b) << "trial " << trial;
  }
}

TEST(Topology, HandoversAndStayUntilLost) {
  // Dense enough that several satellites are visible at once.
  auto c = grid(22, 22);
  auto g = ground_point::at("gs", {10, 20, 0});
  gsl_rules best;
  best.min_elevation_deg = 10;
  gsl_rules stay = best;
  stay.policy = association_policy::stay_until_lost;
  auto first = snapshot_of(c, 0, {g}, {}, best);
  std::size_t served = 0;
  // Over 20 minutes the highest-elevation choice must change; stay-until-lost
  // keeps a satellite until it sinks below the minimum elevation.
  std::size_t best_changes = 0, stay_changes = 0;
  auto prev_best = first, prev_stay = first;
  for (int i = 1; i <= 120; ++i) {
    auto nb = snapshot_of(c, 10.0 * i, {g}, {}, best, &prev_best);
    auto ns = snapshot_of(c, 10.0 * i, {g}, {}, stay, &prev_stay);
    served += nb.serving[0] >= 0 ? 1 : 0;
    best_changes += nb.handovers.size();
    stay_changes += ns.handovers.size();
    for (const auto& h : ns.handovers)
      if (h.from >= 0) { // a kept satellite was dropped only when it was lost
        const double el =
          elevation_rad(g.horizon, ns.position_m[static_cast<std::size_t>(h.from)]);
        EXPECT_LT(el, stay.min_elevation_deg * radians_per_degree + 1e-12);
      }
    prev_best = std::move(nb);
    prev_stay = std::move(ns);
  }
  EXPECT_GT(served, 60u);
  EXPECT_GT(best_changes, 0u);
  EXPECT_LT(stay_changes, best_changes);
}

// A Walker shell at time 0 is mirror-symmetric about the +-90 deg meridians:
// a point there sees two satellites at the same elevation (to rounding), one
// rising and one setting. With where the satellites are a moment later, the
// rising one is taken, so no point hands over at the next epoch; without, the
// lower id is, and about half the points hand over when the tie breaks.
TEST(Topology, ASymmetricStartIsTiedToTheRisingSatellite) {
  auto c = grid(34, 34, 51.9); // Kuiper's first shell
  std::vector<ground_point> grounds;
  for (double lon : {-90.0, 90.0})
    for (double lat = -50; lat <= 50; lat += 4)
      grounds.push_back(ground_point::at("gs", {lat, lon, 0}));
  const auto cand = plus_grid_candidates(c);
  for (const bool soon : {true, false}) {
    snapshot_inputs in;
    if (soon)
      in.position_soon = [&](std::uint32_t k) { return c.ecef_at(k, 1.0, 0.0); };
    const auto first = build_snapshot(0, c.ecef_all(0, 0.0), cand, grounds, {}, {}, nullptr, in);
    std::size_t ties = 0;
    for (std::size_t g = 0; g < grounds.size(); ++g) {
      // The best two elevations at time 0.
      std::vector<double> el;
      for (std::size_t k = 0; k < c.size(); ++k)
        el.push_back(elevation_rad(grounds[g].horizon, first.position_m[k]));
      std::partial_sort(el.begin(), el.begin() + 2, el.end(), std::greater<>());
      ties += el[0] - el[1] < 1e-12 ? 1 : 0;
    }
    ASSERT_GE(ties, 10u); // the case this test is about
    const auto next = build_snapshot(0.1, c.ecef_all(0.1, 0.0), cand, grounds, {}, {}, &first);
    if (soon)
      EXPECT_EQ(next.handovers.size(), 0u) << ties << " ties";
    else
      EXPECT_GT(next.handovers.size(), 0u) << ties << " ties";
  }
}

/// Serving satellites by looking at every satellite in id order (strict '>'
/// keeps the lowest id on ties), as build_snapshot did before it looked only
/// near each ground point's zenith.
std::vector<std::int32_t> serving_by_every_pair(const std::vector<vec3>& pos,
                                                const std::vector<ground_point>& grounds,
                                                const gsl_rules& gsl,
                                                const snapshot_inputs& in,
                                                const std::vector<std::int32_t>* before) {
  const double sin_min = std::sin(gsl.min_elevation_deg * radians_per_degree);
  std::vector<std::int32_t> out(grounds.size() * in.groups, -1);
  for (std::size_t g = 0; g < grounds.size(); ++g) {
    std::vector<double> best(in.groups, -std::numeric_limits<double>::infinity());
    std::vector<bool> before_visible(in.groups, false);
    for (std::size_t k = 0; k < pos.size(); ++k) {
      if (k < in.sat_down.size() && in.sat_down[k] != 0)
        continue;
      const vec3 d = pos[k] - grounds[g].ecef_m;
      const double h = dot(grounds[g].horizon.up, d);
      if (!(h > 0) || h < sin_min * norm(d))
        continue;
      const std::size_t grp = in.group_of.empty() ? 0 : in.group_of[k];
      if (before != nullptr && (*before)[g * in.groups + grp] == static_cast<std::int32_t>(k))
        before_visible[grp] = true;
      const double score =
          gsl.policy == association_policy::nearest ? -norm(d) : h / norm(d);
      if (score > best[grp]) {
        best[grp] = score;
        out[g * in.groups + grp] = static_cast<std::int32_t>(k);
      }
    }
    for (std::size_t grp = 0; grp < in.groups; ++grp)
      if (gsl.policy == association_policy::stay_until_lost && before_visible[grp])
        out[g * in.groups + grp] = (*before)[g * in.groups + grp];
  }
  return out;
}

/// The satellites ground point `gp` sees at or above the mask, in id order,
/// by looking at every satellite.
std::vector<std::uint32_t> in_view_by_every_pair(const std::vector<vec3>& pos,
                                                 const ground_point& gp, const gsl_rules& gsl,
                                                 const snapshot_inputs& in) {
  const double sin_min = std::sin(gsl.min_elevation_deg * radians_per_degree);
  std::vector<std::uint32_t> out;
  for (std::size_t k = 0; k < pos.size(); ++k) {
    if (k < in.sat_down.size() && in.sat_down[k] != 0)
      continue;
    const vec3 d = pos[k] - gp.ecef_m;
    const double h = dot(gp.horizon.up, d);
    if (h > 0 && h >= sin_min * norm(d))
      out.push_back(static_cast<std::uint32_t>(k));
  }
  return out;
}

// build_snapshot looks for a ground point's serving satellite only in the
// directions its horizon can reach (a cube map of cells): the choice must be
// the one of checking every pair, for points anywhere (poles and cube-face
// edges and corners included), on the ground, in the air, in space between
// the shells and above all of them, at any minimum elevation, for every
// policy, per shell, with satellites down and one whose propagation failed.
TEST(Topology, ServingSatelliteIsTheOneOfCheckingEveryPair) {
  // LEO shells: a dense one, a polar one, and a sparse one whose only
  // satellite in view is often low on the horizon (the case a search near
  // the zenith could miss); then the same with a shell at 8,000 km, which
  // widens the directions every point must look in.
  using shell = walker_shell;
  const std::vector<shell> leo = {{12, 12, 550e3, 53, 1, 360},
                                  {8, 10, 1'200e3, 87.9, 1, 180},
                                  {3, 4, 500e3, 70, 1, 360}};
  auto with_high = leo;
  with_high.push_back({6, 6, 8'000e3, 30, 1, 360});
  std::vector<ground_point> grounds;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
  for (const double alt : {0.0, 10e3, 900e3, 20'000e3})
    for (int i = 0; i < 40; ++i)
      grounds.push_back(ground_point::at("p", {lat(rng), lon(rng), alt}));
  for (const double la : {90.0, -90.0, 0.0, 35.26, -35.26})
    for (const double lo : {0.0, 45.0, 90.0, 135.0, 180.0, -45.0})
      grounds.push_back(ground_point::at("q", {la, lo, 0}));
  for (const auto& shells : {leo, with_high}) {
    auto made = walker_constellation::make(shells);
    ASSERT_TRUE(made.ok()) << made.status();
    const auto& c = *made;
    std::vector<std::uint16_t> group_of;
    for (std::size_t i = 0; i < shells.size(); ++i)
      group_of.insert(group_of.end(),
                      static_cast<std::size_t>(shells[i].planes * shells[i].sats_per_plane),
                      static_cast<std::uint16_t>(i));
    ASSERT_EQ(group_of.size(), c.size());
    snapshot_inputs in;
    in.groups = shells.size();
    in.group_of = group_of;
    in.sat_down.assign(c.size(), 0);
    in.sat_down[5] = in.sat_down[150] = 1;
    const auto candidates = plus_grid_candidates(c);
    std::size_t served = 0;
    std::size_t in_view_links = 0;
    for (const double min_el : {-5.0, 0.0, 10.0, 25.0, 60.0})
      for (const auto policy : {association_policy::highest_elevation,
                                association_policy::nearest,
                                association_policy::stay_until_lost}) {
        gsl_rules gsl;
        gsl.min_elevation_deg = min_el;
        gsl.policy = policy;
        std::optional<topology_snapshot> previous;
        for (const double t : {0.0, 20.0, 40.0, 60.0, 80.0, 100.0}) {
          auto pos = c.ecef_all(t, 0.0);
          pos[7] = {std::nan(""), 0, 0};
          const std::vector<std::int32_t>* before = previous ? &previous->serving : nullptr;
          const auto want = serving_by_every_pair(pos, grounds, gsl, in, before);
          auto got = build_snapshot(t, pos, candidates, grounds, {}, gsl,
                                    previous ? &*previous : nullptr, in);
          ASSERT_EQ(got.serving, want)
              << shells.size() << " shells, min elevation " << min_el << ", t " << t;
          // Linking every satellite in view changes the links, not the choice.
          gsl_rules all = gsl;
          all.all_in_view = true;
          const auto wide = build_snapshot(t, pos, candidates, grounds, {}, all,
                                           previous ? &*previous : nullptr, in);
          ASSERT_EQ(wide.serving, want);
          for (std::size_t g = 0; g < grounds.size(); ++g) {
            const auto n = wide.ground_node(g);
            std::vector<std::uint32_t> linked(wide.neighbour.begin() + wide.offsets[n],
                                              wide.neighbour.begin() + wide.offsets[n + 1]);
            ASSERT_EQ(linked, in_view_by_every_pair(pos, grounds[g], gsl, in)) << "ground " << g;
            in_view_links += linked.size();
          }
          served += static_cast<std::size_t>(
              std::count_if(want.begin(), want.end(), [](std::int32_t k) { return k >= 0; }));
          previous = std::move(got);
        }
      }
    EXPECT_GT(served, 1000u); // the comparison is not between two empty choices
    EXPECT_GT(in_view_links, 2 * served); // most points see several satellites
  }
}

/// Floyd-Warshall over the snapshot's links, ground points allowed only as
/// the first or last node of a path.
std::vector<std::vector<double>> brute_force(const topology_snapshot& s, bool hops) {
  const auto n = s.nodes();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> d(n, std::vector<double>(n, inf));
  for (std::size_t u = 0; u < n; ++u) {
    d[u][u] = 0;
    for (auto i = s.offsets[u]; i < s.offsets[u + 1]; ++i)
      d[u][s.neighbour[i]] = std::min(d[u][s.neighbour[i]], hops ? 1.0 : s.length_m[i]);
  }
  for (std::size_t k = 0; k < s.satellites; ++k) // relays: satellites only
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        if (d[i][k] + d[k][j] < d[i][j])
          d[i][j] = d[i][k] + d[k][j];
  return d;
}

TEST(Routing, ShortestPathsMatchBruteForce) {
  auto c = grid(5, 8);
  std::vector<ground_point> grounds = {ground_point::at("a", {10, 10, 0}),
                                       ground_point::at("b", {-20, 100, 0}),
                                       ground_point::at("c", {40, -60, 0})};
  for (const bool all_in_view : {false, true}) {
    gsl_rules gsl;
    gsl.min_elevation_deg = 10;
    gsl.all_in_view = all_in_view;
    auto s = snapshot_of(c, 0, grounds, {}, gsl);
    const auto bf = brute_force(s, false);
    const auto bf_hops = brute_force(s, true);
    for (std::uint32_t dst = 0; dst < s.nodes(); ++dst) {
      auto tree = shortest_path_tree(s, dst, route_metric::delay);
      auto hop_tree = shortest_path_tree(s, dst, route_metric::hops);
      for (std::uint32_t u = 0; u < s.nodes(); ++u) {
        if (std::isinf(bf[u][dst])) {
          EXPECT_EQ(tree.next[u], route_tree::none);
          continue;
        }
        EXPECT_NEAR(tree.length_m[u], bf[u][dst], 1e-3) << u << "->" << dst;
        EXPECT_EQ(hop_tree.hops[u], static_cast<std::uint16_t>(bf_hops[u][dst]))
          << u << "->" << dst;
        // Following next pointers adds up to the same length, link by link,
        // and never relays through a ground point.
        double walked = 0;
        std::uint32_t hops = 0;
        for (auto v = u; v != dst; v = tree.next[v]) {
          if (v != u) {
            EXPECT_LT(v, s.satellites);
          }
          walked += s.link_length_m(v, tree.next[v]).value();
          ASSERT_LT(++hops, 1000u);
        }
        EXPECT_NEAR(walked, bf[u][dst], 1e-3);
        EXPECT_EQ(hops, tree.hops[u]);
      }
    }
  }
}

// A ground endpoint that links to one serving satellite, chosen without
// regard to the destination, can be sent the long way round an inclined
// +Grid (up to the turn of the orbit and back when one end's satellite is
// ascending and the other's descending). Linked to every satellite in view,
// a route is never longer, and it is much shorter for such pairs.
TEST(Routing, LinksToEverySatelliteInViewNeverLengthenARoute) {
  // Starlink's first shell; New York, London, Seattle, Tokyo, Sydney.
  auto made = walker_constellation::make({{72, 22, 550e3, 53, 1, 360}});
  ASSERT_TRUE(made.ok()) << made.status();
  const std::vector<ground_point> grounds = {
    ground_point::at("nyc", {40.71, -74.01, 0}), ground_point::at("lon", {51.51, -0.13, 0}),
    ground_point::at("sea", {47.61, -122.33, 0}), ground_point::at("tyo", {35.68, 139.69, 0}),
    ground_point::at("syd", {-33.87, 151.21, 0})};
  gsl_rules all;
  all.all_in_view = true;
  double largest_gain = 0;
  for (const double t : {0.0, 20.0, 60.0, 300.0}) {
    const auto one = snapshot_of(*made, t, grounds);
    const auto wide = snapshot_of(*made, t, grounds, {}, all);
    for (std::size_t a = 0; a < grounds.size(); ++a) {
      const auto tree_one = shortest_path_tree(one, one.ground_node(a));
      const auto tree_wide = shortest_path_tree(wide, wide.ground_node(a));
      for (std::size_t b = 0; b < grounds.size(); ++b) {
        if (a == b)
          continue;
        const double l1 = tree_one.length_m[one.ground_node(b)];
        const double lw = tree_wide.length_m[wide.ground_node(b)];
        ASSERT_TRUE(std::isfinite(lw)) << grounds[b].name << "->" << grounds[a].name;
        EXPECT_LE(lw, l1 * (1 + 1e-12)) << grounds[b].name << "->" << grounds[a].name << " t " << t;
        largest_gain = std::max(largest_gain, l1 / lw);
      }
    }
  }
  EXPECT_GT(largest_gain, 2.0);
}

// The cache runs each destination's search only as far as it is asked to, so
// its answers must not depend on the order of the questions nor on threads
// asking at once: every answer is the full tree's, for both metrics, and an
// unreachable ground point (a pole, which a 53-deg shell never serves) has
// no route either way.
TEST(Routing, CacheAnswersAsTheFullTreeInAnyOrderAndFromManyThreads) {
  // 12 x 12: every +Grid candidate is a link (see above), so paths have many
  // alternatives and a node's first offer is often not its final route.
  auto c = grid(12, 12);
  const std::vector<ground_point> grounds = {
      ground_point::at("a", {10, 10, 0}), ground_point::at("b", {-20, 100, 0}),
      ground_point::at("c", {40, -60, 0}), ground_point::at("pole", {89.9, 0, 0})};
  gsl_rules gsl;
  gsl.min_elevation_deg = 10;
  auto s = std::make_shared<const topology_snapshot>(snapshot_of(c, 0, grounds, {}, gsl));
  const std::uint32_t n = s->nodes();
  const std::uint32_t pole = s->ground_node(3);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> questions; // (destination, from)
  for (std::uint32_t dst = 0; dst < n; ++dst)
    for (std::uint32_t from = 0; from < n; ++from)
      questions.emplace_back(dst, from);
  for (const auto metric : {route_metric::delay, route_metric::hops}) {
    std::vector<std::vector<std::uint32_t>> want(n);
    for (std::uint32_t dst = 0; dst < n; ++dst)
      want[dst] = shortest_path_tree(*s, dst, metric).next;
    EXPECT_EQ(want[0][pole], route_tree::none);
    EXPECT_EQ(want[pole][0], route_tree::none);
    // Each question first, on a fresh cache: the search pauses at every node.
    for (const auto& [dst, from] : questions) {
      route_cache fresh(s, metric);
      ASSERT_EQ(fresh.next(dst, from), want[dst][from]) << dst << " from " << from;
    }
    {
      // One thread; each question twice, in a shuffled order.
      route_cache cache(s, metric);
      auto order = questions;
      order.insert(order.end(), questions.begin(), questions.end());
      std::shuffle(order.begin(), order.end(), std::mt19937(7));
      for (const auto& [dst, from] : order)
        ASSERT_EQ(cache.next(dst, from), want[dst][from]) << dst << " from " << from;
    }
    // Four threads at once on a fresh cache, each in its own order.
    route_cache shared(s, metric);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (unsigned k = 0; k < 4; ++k)
      threads.emplace_back([&, k] {
        auto order = questions;
        std::shuffle(order.begin(), order.end(), std::mt19937(k));
        for (const auto& [dst, from] : order)
          if (shared.next(dst, from) != want[dst][from])
            ++wrong;
      });
    for (auto& t : threads)
      t.join();
    EXPECT_EQ(wrong.load(), 0);
  }
}

} // namespace
} // namespace satemu::runtime
