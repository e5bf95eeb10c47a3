// Constellations from TLE files: the whole 2026 Starlink snapshot loads, its
// shells and planes are recovered, +Grid candidates join real neighbours,
// and positions are SGP4's rotated to Earth-fixed axes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/constants.hpp"
#include "runtime/tle_constellation.hpp"

namespace satemu::runtime {
namespace {

std::string tle_dir() { return SATEMU_SOURCE_DIR "/tests/runtime/data/tle/"; }

TEST(TleConstellation, UtcParsesAndFormatsBack) {
  auto t = parse_utc("2026-02-24T12:00:00Z");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, 1'771'934'400'000'000'000);
  EXPECT_EQ(format_utc(*t), "2026-02-24T12:00:00.000Z");
  auto frac = parse_utc("1970-01-01T00:00:01.25");
  ASSERT_TRUE(frac.ok());
  EXPECT_EQ(*frac, 1'250'000'000);
  EXPECT_TRUE(parse_utc("2024-02-29T00:00:00Z").ok());
  for (const char* bad : {"2026-02-24", "2026-13-01T00:00:00Z", "2026-02-24T12:00:00+01", "noon",
                          "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-02-24T-1:00:00Z",
                          "2026-02-24T12:-5:00Z", "2026-02-24T12:00:nanZ",
                          // Trailing text, exponents and hex seconds had passed.
                          "2026-02-24T12:00:00Z trailing", "2026-02-24T12:00:00 Z",
                          "2026-02-24T12:00:1e1Z", "2026-02-24T12:00:0x1Ap0Z",
                          "2026-02-24T12:00:5Z", "2026-02-24T12:00:00.Z5"})
    EXPECT_FALSE(parse_utc(bad).ok()) << bad;
  // Years whose nanoseconds since 1970 do not fit in 64 bits.
  auto far = parse_utc("9999-12-31T23:59:59Z");
  ASSERT_FALSE(far.ok());
  EXPECT_NE(far.status().message().find("1678-2261"), std::string_view::npos) << far.status();
  EXPECT_FALSE(parse_utc("1677-01-01T00:00:00Z").ok());
  EXPECT_TRUE(parse_utc("2261-12-31T23:59:59Z").ok());
  EXPECT_EQ(format_utc(*parse_utc("2261-12-31T23:59:59.999Z")), "2261-12-31T23:59:59.999Z");
  // A leap second, or seconds that round up, would reach 2262.
  EXPECT_FALSE(parse_utc("2261-12-31T23:59:60Z").ok());
  EXPECT_FALSE(parse_utc("2261-12-31T23:59:59.9999999999Z").ok());
  EXPECT_EQ(*parse_utc("2026-06-30T23:59:60Z"), *parse_utc("2026-07-01T00:00:00Z"));
}

/// The constellation of the sets in `text` (read as file `name`), starting
/// at their latest epoch.
absl::StatusOr<tle_constellation> constellation_of(const std::string& text, const std::string& name) {
  auto sets = parse_tle_text(text, name);
  if (!sets.ok())
    return sets.status();
  return tle_constellation::make(*sets, tle_constellation::latest_epoch_unix_ns(*sets));
}

/// The reason the one set `bad` is left out of a file that holds it after a
/// good set (STARLINK-1008), which is kept with a position.
std::string rejected_beside_a_good_set(const std::string& bad) {
  auto c = constellation_of(
    "STARLINK-1008\n"
    "1 44714U 19074B   26054.54089312  .00000969  00000+0  43797-4 0  9997\n"
    "2 44714  53.1568 244.5638 0001273  95.0474 265.0672 15.31036083346702\n" +
      bad,
    "pair.tle");
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok())
    return "";
  EXPECT_EQ(c->size(), 1u);
  EXPECT_TRUE(std::isfinite(c->ecef_all(0)[0].x));
  EXPECT_EQ(c->rejected().size(), 1u);
  return c->rejected().empty() ? "" : c->rejected()[0];
}

TEST(TleConstellation, DeepSpaceSetIsRefusedByName) {
  // A geostationary object (1 rev/day).
  auto c = constellation_of(
    "GEO SAT\n"
    "1 25544U 98067A   26055.50000000  .00000000  00000-0  00000-0 0  9993\n"
    "2 25544   0.0500 100.0000 0001000  90.0000 270.0000  1.00270000    07\n",
    "geo.tle");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("deep-space"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("geo.tle:2"), std::string::npos) << c.status();
}

// A set whose name says "deep-space" but which the model rejects for
// another reason (decayed at epoch) is left out like any such set; only a
// deep-space orbit refuses the file.
TEST(TleConstellation, OnlyADeepSpaceOrbitRefusesTheFileNotItsName) {
  const auto why = rejected_beside_a_good_set("deep-space relay (decayed)\n"
                                              "1 99999U 19074B   26054.54089312  .00000969  "
                                              "00000+0  43797-4 0  9992\n"
                                              "2 99999  53.1568 244.5638 2000000  95.0474   "
                                              "0.0000 16.46015938346701\n");
  EXPECT_NE(why.find("rejected at epoch"), std::string::npos) << why;
}

// STARLINK-2024 of the 2026 snapshot is re-entering: 21.65 h after its
// epoch SGP4 still propagates it, 69 km up, below the floor its mean
// perigee (138 km) sets, so it is down then (a ground link to it would be
// shorter than the run's lookahead allows); a run starting then leaves it
// out, as below the 80 km a satellite needs.
TEST(TleConstellation, ASatelliteBelowTheFloorIsDown) {
  auto sets = parse_tle_text(
    "STARLINK-2024\n"
    "1 47606U 21009BL  26055.10982186  .15234507  12591-4  19232-3 0  9997\n"
    "2 47606  53.0191 355.3200 0003558 235.5484 124.5230 16.49438361279970\n",
    "low.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  const auto epoch = tle_constellation::latest_epoch_unix_ns(*sets);
  auto at_epoch = tle_constellation::make(*sets, epoch);
  ASSERT_TRUE(at_epoch.ok()) << at_epoch.status();
  const double floor = at_epoch->floor_radius_m();
  EXPECT_GT(floor, wgs84_equatorial_radius_m + 80e3);
  EXPECT_LT(floor, wgs84_equatorial_radius_m + 100e3);
  EXPECT_GT(norm(at_epoch->ecef_all(0)[0]), floor);
  const auto later_ns = *parse_utc("2026-02-25T00:17:08.608704Z");
  const double later_s = static_cast<double>(later_ns - epoch) * 1e-9;
  EXPECT_TRUE(std::isnan(at_epoch->ecef_all(later_s)[0].x));
  // One satellite's position is the one of them all.
  for (const double t_s : {0.0, 100.0})
    EXPECT_EQ(at_epoch->ecef_at(0, t_s), at_epoch->ecef_all(t_s)[0]) << t_s;
  EXPECT_TRUE(std::isnan(at_epoch->ecef_at(0, later_s).x));
  auto later = tle_constellation::make(*sets, later_ns);
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.status().message().find(
              "rejected at the start time, 0.902083 days from its epoch: 6447 km from the Earth's "
              "centre, less than the 6458 km (80 km up at the equator) a satellite needs"),
            std::string::npos)
    << later.status();
}

// Elements far outside SGP4's range that its checks still pass (a mean
// motion of 16.8 rev/day, some 60 km up) are left out at the start, not
// kept as a satellite without a position.
TEST(TleConstellation, ASetBelowEightyKilometresAtTheStartIsLeftOut) {
  const auto why = rejected_beside_a_good_set("TOO LOW\n"
                                              "1 44715U 19074B   26054.54089312  .00000969  "
                                              "00000+0  43797-4 0  9998\n"
                                              "2 44715  53.1568 244.5638 0001273  95.0474 "
                                              "265.0672 16.80000000346708\n");
  EXPECT_NE(why.find("pair.tle:5: TOO LOW (44715): rejected at the start time, 0 days from its "
                     "epoch: 6441 km from the Earth's centre, less than the 6458 km"),
            std::string::npos)
    << why;
}

/// Unit normal of each satellite's orbital plane at emulated time `t_s`,
/// in Earth-fixed axes, from its positions half a second either side (the
/// inertial velocity adds the Earth's rotation back).
std::vector<vec3> orbit_normals(const tle_constellation& c, double t_s) {
  const auto before = c.ecef_all(t_s - 0.5), at = c.ecef_all(t_s), after = c.ecef_all(t_s + 0.5);
  std::vector<vec3> out(c.size());
  for (std::size_t k = 0; k < c.size(); ++k) {
    const vec3 v = after[k] - before[k];
    const vec3 omega_x_r{-earth_rotation_rate_rad_per_s * at[k].y, earth_rotation_rate_rad_per_s * at[k].x, 0};
    const vec3 h = cross(at[k], v + omega_x_r);
    out[k] = h * (1.0 / norm(h));
  }
  return out;
}

double mean_altitude_m(const tle& t) {
  const double n = t.mean_motion_rev_per_day * two_pi / 86'400.0;
  return std::cbrt(earth_gm_m3_per_s2 / (n * n)) - wgs84_equatorial_radius_m;
}

TEST(TleConstellation, Starlink2026SnapshotLoadsWithShellsAndPlanes) {
  auto sets = load_tle_file(SATEMU_SOURCE_DIR "/scenarios/tle/starlink-2026-02-24.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 9'594u);
  const auto start = tle_constellation::latest_epoch_unix_ns(*sets);
  auto c = tle_constellation::make(std::move(*sets), start);
  ASSERT_TRUE(c.ok()) << c.status();
  // Every set initialises (one fails later in its propagation, as in the
  // reference; it is down while it does).
  EXPECT_EQ(c->size(), 9'594u);
  EXPECT_TRUE(c->rejected().empty());

  // Every shell spans at most the inclination and altitude tolerances, and
  // every plane at most the RAAN tolerance (a little more for the normals'
  // finite differences): objects raising or lowering their orbits between
  // shells must not chain shells or planes together.
  const tle_grouping tol;
  const auto normals = orbit_normals(*c, 0);
  std::map<std::uint16_t, std::vector<std::size_t>> groups;
  std::map<std::uint32_t, std::vector<std::size_t>> planes;
  for (std::size_t k = 0; k < c->size(); ++k) {
    if (!std::isfinite(normals[k].x))
      continue;
    groups[c->group_of()[k]].push_back(k);
    planes[c->plane_of()[k]].push_back(k);
  }
  auto span = [](std::vector<double> v, bool circular) {
    std::sort(v.begin(), v.end());
    double widest_gap = circular ? v.front() + 360.0 - v.back() : 0;
    for (std::size_t i = 1; i < v.size(); ++i)
      widest_gap = std::max(widest_gap, v[i] - v[i - 1]);
    return circular ? 360.0 - widest_gap : v.back() - v.front();
  };
  std::vector<std::size_t> sizes;
  for (const auto& [g, members] : groups) {
    std::vector<double> incl, alt;
    for (auto k : members) {
      incl.push_back(std::acos(normals[k].z) * degrees_per_radian);
      alt.push_back(mean_altitude_m(c->element_set(k)));
    }
    EXPECT_LE(span(incl, false), tol.inclination_tolerance_deg + 0.05) << "group " << g;
    EXPECT_LE(span(alt, false), tol.altitude_tolerance_m) << "group " << g;
    sizes.push_back(members.size());
  }
  std::size_t in_big_planes = 0;
  for (const auto& [p, members] : planes) {
    std::vector<double> raan;
    for (auto k : members)
      raan.push_back(std::atan2(normals[k].x, -normals[k].y) * degrees_per_radian + 180.0);
    EXPECT_LE(span(raan, true), tol.raan_tolerance_deg + 0.1) << "plane " << p;
    in_big_planes += members.size() >= 10 ? members.size() : 0;
  }
  // The big families (43, 53, 70, 97.6 deg) make the largest shells, and
  // nearly every satellite is in a plane of ten or more.
  std::sort(sizes.rbegin(), sizes.rend());
  ASSERT_GE(sizes.size(), 4u);
  EXPECT_GT(sizes[0] + sizes[1] + sizes[2] + sizes[3], 6'000u);
  EXPECT_GT(in_big_planes, 8'500u);

  // +Grid candidates: about two per satellite, both ends in the same shell,
  // and most of them between satellites a realistic ISL apart.
  const auto& cand = c->candidates();
  EXPECT_GT(cand.size(), c->size());
  EXPECT_LE(cand.size(), 2 * c->size());
  const auto pos = c->ecef_all(0);
  std::size_t near = 0;
  for (const auto& k : cand) {
    EXPECT_EQ(c->group_of()[k.a], c->group_of()[k.b]);
    if (distance(pos[k.a], pos[k.b]) < 5'000e3)
      ++near;
  }
  EXPECT_GT(static_cast<double>(near) / static_cast<double>(cand.size()), 0.9);
  // A satellite has terminals for two in-plane and two inter-plane
  // neighbours: no more than two candidates of each kind (several
  // satellites of one plane had all chosen the same closest one of the next,
  // giving it up to nine ISLs).
  std::vector<int> intra(c->size()), inter(c->size());
  for (const auto& k : cand)
    for (const auto s : {k.a, k.b})
      ++(k.inter_plane ? inter : intra)[s];
  EXPECT_LE(*std::max_element(intra.begin(), intra.end()), 2);
  EXPECT_LE(*std::max_element(inter.begin(), inter.end()), 2);
  EXPECT_GT(std::count(inter.begin(), inter.end(), 2), 6'000);

  // Positions are LEO radii, and a minute later each satellite has moved
  // about 7.5 km/s x 60 s (plus Earth rotation, under 0.5 km/s).
  const auto later = c->ecef_all(60);
  std::size_t finite = 0;
  for (std::size_t k = 0; k < c->size(); ++k) {
    if (!std::isfinite(pos[k].x) || !std::isfinite(later[k].x))
      continue;
    ++finite;
    const double alt = norm(pos[k]) - wgs84_equatorial_radius_m;
    EXPECT_GT(alt, 80e3) << c->element_set(k).label();
    EXPECT_LT(alt, 2'000e3) << c->element_set(k).label();
    const double moved = distance(pos[k], later[k]);
    EXPECT_GT(moved, 60 * 6.5e3) << c->element_set(k).label();
    EXPECT_LT(moved, 60 * 8.5e3) << c->element_set(k).label();
  }
  EXPECT_GT(finite, 9'500u);
  EXPECT_GT(c->floor_radius_m(), wgs84_equatorial_radius_m + 80e3);
}

// Planes larger than the 64 of the next plane a satellite looks at still
// link each satellite to its nearest there (that window had been the whole
// plane, every pair of two planes, quadratic in their size).
TEST(TleConstellation, LargePlanesLinkNearestNeighbours) {
  constexpr int per_plane = 300;
  constexpr double step = 360.0 / per_plane;
  std::string text;
  for (int plane = 0; plane < 2; ++plane) {
    for (int i = 0; i < per_plane; ++i) {
      const int cat = 10'000 + plane * per_plane + i;
      std::string l1 = "1 44714U 19074B   26054.54089312  .00000969  00000+0  43797-4 0  9990";
      l1.replace(2, 5, std::to_string(cat));
      // Plane 1 is half a step ahead: each satellite has two nearest.
      std::string l2 = absl::StrFormat("2 %05d %8.4f %8.4f 0001273 %8.4f %8.4f %11.8f%05d0", cat,
                                       53.0, plane * 10.0, 0.0, i * step + plane * step / 2,
                                       15.06, 1);
      for (std::string* l : {&l1, &l2})
        (*l)[68] = static_cast<char>('0' + tle_checksum(*l));
      absl::StrAppend(&text, "SAT-", cat, "\n", l1, "\n", l2, "\n");
    }
  }
  auto c = constellation_of(text, "planes.tle");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u * per_plane);
  EXPECT_EQ(c->planes(), 2u);
  // Satellite k is file order: plane k / per_plane, slot k % per_plane.
  auto u = [&](std::size_t k) {
    return static_cast<double>(k % per_plane) * step + (k >= per_plane ? step / 2 : 0);
  };
  std::vector<int> inter(c->size());
  for (const auto& k : c->candidates()) {
    if (!k.inter_plane)
      continue;
    ++inter[k.a];
    ++inter[k.b];
    const double d = std::fabs(std::remainder(u(k.a) - u(k.b), 360.0));
    EXPECT_NEAR(d, step / 2, 1e-9) << k.a << "-" << k.b;
  }
  EXPECT_EQ(std::count(inter.begin(), inter.end(), 0), 0);
  EXPECT_LE(*std::max_element(inter.begin(), inter.end()), 2);
}

TEST(TleConstellation, SgpPositionRotatedByGmst) {
  const auto file = tle_dir() + "StarryNet_OneWeb.tle";
  auto sets = load_tle_file(file);
  ASSERT_TRUE(sets.ok()) << sets.status();
  const auto t0 = tle_constellation::latest_epoch_unix_ns(*sets);
  const auto first = (*sets)[0];
  auto c = tle_constellation::make(*sets, t0);
  ASSERT_TRUE(c.ok()) << c.status();
  // Satellite 0 against SGP4 directly plus the TEME -> ECEF rotation.
  auto m = sgp4::make(first);
  ASSERT_TRUE(m.ok());
  const double t_s = 600;
  auto st = m->at_minutes(static_cast<double>(t0 + 600'000'000'000 - first.epoch_unix_ns()) / 60e9);
  ASSERT_TRUE(st.ok());
  const double jd = 2440587.5 + static_cast<double>(t0 + 600'000'000'000) / 86'400e9;
  const vec3 want = teme_to_ecef(vec3{st->r_km[0] * 1e3, st->r_km[1] * 1e3, st->r_km[2] * 1e3}, jd);
  EXPECT_LT(distance(c->ecef_all(t_s)[0], want), 1.0);
}

} // namespace
} // namespace satemu::runtime
