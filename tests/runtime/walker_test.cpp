// Walker-delta geometry: validation, the T/P/F pattern, the period measured
// from propagated positions, neighbour distances against their closed forms,
// and a ground station under a satellite seeing it at the zenith.
#include "runtime/walker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "runtime/constants.hpp"
#include "runtime/frames.hpp"

namespace satemu::runtime {
namespace {

constexpr double pi = std::numbers::pi;

double rad(double deg) { return deg * radians_per_degree; }
double deg(double rad) { return rad * degrees_per_radian; }

const walker_shell starlink_1{72, 22, 550e3, 53.0, 39};

// Shells of several shapes: Starlink phase 1 shells, Kuiper, the SkyMemory
// 19x5 grid, a star pattern, an equatorial ring, a retrograde shell.
std::vector<walker_shell> test_shells() {
  return {
      starlink_1,
      {72, 22, 540e3, 53.2, 0},
      {36, 20, 570e3, 70.0, 11},
      {6, 58, 560e3, 97.6, 1},
      {34, 34, 630e3, 51.9, 17},
      {19, 5, 550e3, 87.0, 3},
      {10, 10, 800e3, 86.4, 5, 180.0},
      {1, 12, 1200e3, 0.0, 0},
      {8, 9, 700e3, 135.0, 7},
  };
}

std::string describe(const walker_shell& s) {
  return std::to_string(s.planes) + "x" + std::to_string(s.sats_per_plane) + " at " +
         std::to_string(s.altitude_m / 1e3) + " km / " + std::to_string(s.inclination_deg) +
         " deg, F=" + std::to_string(s.phasing);
}

walker_constellation make_or_die(std::vector<walker_shell> shells) {
  auto c = walker_constellation::make(std::move(shells));
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

// --- Validation ---------------------------------------------------------------

void expect_invalid(walker_shell s, std::string_view needle) {
  const absl::Status st = validate(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << describe(s);
  EXPECT_NE(std::string(st.message()).find(needle), std::string::npos)
      << "'" << st.message() << "' lacks '" << needle << "'";
}

TEST(WalkerTest, ValidateAcceptsRealShells) {
  for (const walker_shell& s : test_shells()) EXPECT_TRUE(validate(s).ok()) << describe(s);
  EXPECT_TRUE(validate({1, 1, 100e3, 180.0, 0}).ok());  // the limits themselves
}

TEST(WalkerTest, ValidateRejectsBadShells) {
  expect_invalid({0, 22, 550e3, 53, 0}, "planes is 0");
  expect_invalid({-3, 22, 550e3, 53, 0}, "planes is -3");
  expect_invalid({72, 0, 550e3, 53, 0}, "sats_per_plane is 0");
  expect_invalid({72, 22, 99.9e3, 53, 0}, "an altitude below 100 km");
  expect_invalid({72, 22, 80e3, 53, 0}, "altitude is 80 km");
  expect_invalid({72, 22, -5e3, 53, 0}, "below 100 km");
  expect_invalid({72, 22, std::nan(""), 53, 0}, "below 100 km");
  expect_invalid({72, 22, 550e3, 180.5, 0}, "inclination is 180.5");
  // Equatorial planes are one orbit: satellites in the same places.
  expect_invalid({2, 20, 550e3, 0.0, 0},
                 "inclination is 0 deg with 2 planes: at 0 or 180 deg every plane is the "
                 "equatorial orbit, so the planes' satellites would share one orbit; use "
                 "planes: 1 and sats_per_plane: 40");
  expect_invalid({3, 3, 35786e3, 180.0, 1}, "inclination is 180 deg with 3 planes");
  EXPECT_TRUE(validate({2, 20, 550e3, 0.1, 0}).ok());
  expect_invalid({72, 22, 550e3, -1, 0}, "inclination");
  expect_invalid({72, 22, 550e3, 53, 72}, "phasing is 72, outside [0, planes - 1] = [0, 71]");
  expect_invalid({72, 22, 550e3, 53, -1}, "phasing");
  expect_invalid({72, 22, 550e3, 53, 0, 0.0}, "raan_spread");
  expect_invalid({72, 22, 550e3, 53, 0, 400.0}, "raan_spread");
  expect_invalid({100000, 100000, 550e3, 53, 0}, "more than");
}

TEST(WalkerTest, MakeNamesTheShell) {
  auto bad = walker_constellation::make({starlink_1, {0, 22, 540e3, 53.2, 0}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "shell 1: planes is 0; a shell needs at least 1 plane");
  EXPECT_FALSE(walker_constellation::make({}).ok());
}

// --- Pattern ------------------------------------------------------------------

TEST(WalkerTest, FlatNumberingAndElementsFollowTheDeltaPattern) {
  const std::vector<walker_shell> shells = test_shells();
  const walker_constellation c = make_or_die(shells);
  std::size_t expected_size = 0;
  for (const walker_shell& s : shells) expected_size += std::size_t(s.planes) * s.sats_per_plane;
  ASSERT_EQ(c.size(), expected_size);
  // Starlink phase 1 shells 1 and 2 alone: 2 x 1584.
  EXPECT_EQ(c.first_of_shell(2), 3168u);

  std::size_t k = 0;
  for (std::size_t s = 0; s < shells.size(); ++s) {
    const walker_shell& sh = shells[s];
    const double P = sh.planes, S = sh.sats_per_plane, F = sh.phasing;
    for (int p = 0; p < sh.planes; ++p) {
      for (int j = 0; j < sh.sats_per_plane; ++j, ++k) {
        const walker_satellite& sat = c[k];
        ASSERT_EQ(sat.shell, int(s));
        ASSERT_EQ(sat.plane, p);
        ASSERT_EQ(sat.index, j);
        ASSERT_EQ(c.id(int(s), p, j), k);
        EXPECT_NEAR(deg(sat.raan_rad), p * sh.raan_spread_deg / P, 1e-9);
        const double u0 = std::fmod(360.0 * j / S + 360.0 * F * p / (P * S), 360.0);
        EXPECT_NEAR(deg(sat.arg_latitude_at_epoch_rad), u0, 1e-9) << describe(sh);
        EXPECT_NEAR(deg(sat.inclination_rad), sh.inclination_deg, 1e-12);
        EXPECT_EQ(sat.semi_major_axis_m, wgs84_equatorial_radius_m + sh.altitude_m);
      }
    }
  }
  // Starlink shell 1, plane 3, satellite 5: RAAN 15 deg,
  // u0 = 360 * 5/22 + 360 * 39 * 3 / 1584 = 81.818... + 26.590... deg.
  const walker_satellite& s35 = c[c.id(0, 3, 5)];
  EXPECT_NEAR(deg(s35.raan_rad), 15.0, 1e-12);
  EXPECT_NEAR(deg(s35.arg_latitude_at_epoch_rad), 108.409090909090909, 1e-9);
}

TEST(WalkerTest, PositionsFollowTheOrbitPlane) {
  const walker_constellation c = make_or_die({starlink_1});
  const double a = semi_major_axis_m(starlink_1);
  const double i = rad(53.0);
  const double quarter = orbital_period_s(a) / 4;
  // Satellite 0 of plane 0 starts at the ascending node on +x and a quarter
  // orbit later is at its highest latitude, tilted by the inclination.
  EXPECT_EQ(c.eci_at(0, 0.0), (vec3{a, 0, 0}));
  const vec3 top = c.eci_at(0, quarter);
  EXPECT_NEAR(top.x, 0.0, 1e-6);
  EXPECT_NEAR(top.y, a * std::cos(i), 1e-6);
  EXPECT_NEAR(top.z, a * std::sin(i), 1e-6);
  EXPECT_NEAR(ecef_to_geodetic(top).lat_deg, 53.0, 0.2);  // geodetic, not geocentric
  // Plane 18 (RAAN 90 deg): its node points along +y.
  const std::size_t k = c.id(0, 18, 0);
  const vec3 node_dir = c[k].node_dir;
  EXPECT_NEAR(node_dir.x, 0.0, 1e-15);
  EXPECT_NEAR(node_dir.y, 1.0, 1e-15);
  for (std::size_t n = 0; n < c.size(); n += 97) {
    for (double t : {0.0, 1234.5, 86400.0}) {
      EXPECT_NEAR(norm(c.eci_at(n, t)), a, 1e-6);
      // The orbit normal is fixed: the position stays in the plane.
      const vec3 normal = cross(c[n].node_dir, c[n].ahead_dir);
      EXPECT_NEAR(dot(c.eci_at(n, t), normal), 0.0, 1e-6);
      EXPECT_NEAR(normal.z, std::cos(i), 1e-15);
    }
  }
}

TEST(WalkerTest, VelocityIsTheDerivativeOfPosition) {
  const walker_constellation c = make_or_die(test_shells());
  for (std::size_t k = 0; k < c.size(); k += 131) {
    const double a = c[k].semi_major_axis_m;
    for (double t : {0.0, 777.7, 5000.0}) {
      const state_vector s = c.eci_state_at(k, t);
      EXPECT_EQ(s.position, c.eci_at(k, t));
      const double h = 0.01;
      const vec3 fd = (c.eci_at(k, t + h) - c.eci_at(k, t - h)) / (2 * h);
      EXPECT_LT(norm(s.velocity - fd), 1e-4);
      EXPECT_NEAR(norm(s.velocity), std::sqrt(earth_gm_m3_per_s2 / a), 1e-9);
      EXPECT_NEAR(dot(s.velocity, s.position), 0.0, 1e-3);
    }
  }
}

// --- Period -------------------------------------------------------------------

/// The time satellite k takes to come back to its starting position, found
/// from positions only: sum the angle swept between samples until a full
/// turn, then bisect on the swept angle inside the last step.
double measured_period_s(const walker_constellation& c, std::size_t k) {
  const vec3 r0 = c.eci_at(k, 0.0);
  const auto angle_between = [](vec3 a, vec3 b) { return std::atan2(norm(cross(a, b)), dot(a, b)); };
  const double step = 10.0;
  double swept = 0;
  double t = 0;
  vec3 prev = r0;
  for (;;) {
    const vec3 next = c.eci_at(k, t + step);
    const double d = angle_between(prev, next);
    if (swept + d >= 2 * pi) break;
    swept += d;
    t += step;
    prev = next;
  }
  // Within [t, t + step] the satellite passes r0 again; the remaining angle
  // to it shrinks monotonically to zero there.
  double lo = t, hi = t + step;
  for (int i = 0; i < 200 && hi - lo > 1e-9; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double done = swept + angle_between(prev, c.eci_at(k, mid));
    (done < 2 * pi ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

TEST(WalkerTest, PeriodMeasuredFromPositionsMatchesKepler) {
  const walker_constellation c = make_or_die(test_shells());
  for (std::size_t s = 0; s < c.shells().size(); ++s) {
    const walker_shell& sh = c.shells()[s];
    const double a = wgs84_equatorial_radius_m + sh.altitude_m;
    const double kepler = 2 * pi * std::sqrt(a * a * a / 3.986004418e14);
    for (std::size_t k : {c.first_of_shell(int(s)), c.first_of_shell(int(s)) + 3}) {
      const double measured = measured_period_s(c, k);
      EXPECT_NEAR(measured / kepler, 1.0, 1e-4) << describe(sh);  // the 0.01% target
      EXPECT_NEAR(measured, kepler, 1e-5) << describe(sh);       // what we get
    }
    EXPECT_NEAR(orbital_period_s(a), kepler, 1e-9);
  }
}

TEST(WalkerTest, PeriodKnownValues) {
  // 2 pi sqrt(a^3 / GM) evaluated to 40 digits (Python decimal) for
  // a = 6378137 m + altitude.
  EXPECT_NEAR(orbital_period_s(6378137.0 + 550e3), 5738.992815014798, 1e-8);
  EXPECT_NEAR(orbital_period_s(6378137.0 + 1200e3), 6565.301256369680, 1e-8);
  // The geostationary radius (42,164.17 km) orbits once per sidereal day.
  EXPECT_NEAR(orbital_period_s(42'164'170.0), 86164.0905, 0.05);
  EXPECT_NEAR(mean_motion_rad_per_s(7e6) * orbital_period_s(7e6), 2 * pi, 1e-12);
}

// --- Neighbour distances ------------------------------------------------------

TEST(WalkerTest, InPlaneNeighbourDistanceIsTheChord) {
  const walker_constellation c = make_or_die(test_shells());
  for (std::size_t s = 0; s < c.shells().size(); ++s) {
    const walker_shell& sh = c.shells()[s];
    const double a = wgs84_equatorial_radius_m + sh.altitude_m;
    const double chord = 2 * a * std::sin(pi / sh.sats_per_plane);
    EXPECT_NEAR(in_plane_neighbour_distance_m(sh), chord, 1e-6);
    const std::size_t first = c.first_of_shell(int(s));
    const std::size_t count = std::size_t(sh.planes) * sh.sats_per_plane;
    for (double t : {0.0, 100.0, 2873.3, 40000.0}) {
      const double gmst0 = 1.234;
      for (std::size_t k = first; k < first + count; ++k) {
        const std::size_t next = c.in_plane_next(k);
        ASSERT_EQ(c[next].plane, c[k].plane);
        ASSERT_EQ(c[next].index, (c[k].index + 1) % sh.sats_per_plane);
        EXPECT_NEAR(distance(c.eci_at(k, t), c.eci_at(next, t)), chord, 1e-5) << describe(sh);
        EXPECT_NEAR(distance(c.ecef_at(k, t, gmst0), c.ecef_at(next, t, gmst0)), chord, 1e-5);
      }
    }
  }
  // Starlink shell 1: 22 per plane at 550 km -> 1,971.95 km apart.
  EXPECT_NEAR(in_plane_neighbour_distance_m(starlink_1), 1971.95e3, 0.01e3);
}

TEST(WalkerTest, InterPlaneNeighbourDistanceMatchesClosedForm) {
  const walker_constellation c = make_or_die(test_shells());
  for (std::size_t s = 0; s < c.shells().size(); ++s) {
    const walker_shell& sh = c.shells()[s];
    const std::size_t first = c.first_of_shell(int(s));
    const std::size_t count = std::size_t(sh.planes) * sh.sats_per_plane;
    for (double t : {0.0, 321.0, 3000.0, 77777.0}) {
      for (std::size_t k = first; k < first + count; ++k) {
        const auto next = c.inter_plane_next(k);
        const bool last_plane = c[k].plane == sh.planes - 1;
        if (sh.planes == 1 || (last_plane && sh.raan_spread_deg != 360.0)) {
          EXPECT_FALSE(next.has_value()) << describe(sh);
          continue;
        }
        ASSERT_TRUE(next.has_value()) << describe(sh);
        ASSERT_EQ(c[*next].plane, (c[k].plane + 1) % sh.planes);
        const double u = c.arg_latitude_rad(k, t);
        EXPECT_NEAR(distance(c.eci_at(k, t), c.eci_at(*next, t)),
                    inter_plane_neighbour_distance_m(sh, u), 1e-5)
            << describe(sh) << " k=" << k << " t=" << t;
      }
    }
  }
}

TEST(WalkerTest, InterPlaneDistanceWithoutPhasingVariesWithLatitude) {
  // F = 0: same-index satellites of adjacent planes are
  // 2 a sin(dW/2) sqrt(cos^2 u + cos^2 i sin^2 u) apart: widest at the
  // equator crossing, narrowest at the highest latitude.
  const walker_shell sh{72, 22, 540e3, 53.2, 0};
  const walker_constellation c = make_or_die({sh});
  const double a = semi_major_axis_m(sh);
  const double i = rad(sh.inclination_deg);
  const double dw = 2 * pi / sh.planes;
  const double at_equator = 2 * a * std::sin(dw / 2);
  const double period = orbital_period_s(a);
  for (std::size_t k = 0; k < c.size(); k += 7) {
    const std::size_t n = *c.inter_plane_next(k);
    for (double t = 0; t < period; t += period / 13) {
      const double u = c.arg_latitude_rad(k, t);
      const double cu = std::cos(u), su = std::sin(u), ci = std::cos(i);
      const double expected = at_equator * std::sqrt(cu * cu + ci * ci * su * su);
      EXPECT_NEAR(distance(c.eci_at(k, t), c.eci_at(n, t)), expected, 1e-5);
    }
  }
  // At the ascending node of satellite 0 (t = 0): the equator value.
  EXPECT_NEAR(distance(c.eci_at(0, 0), c.eci_at(c.id(0, 1, 0), 0)), at_equator, 1e-5);
  // A quarter orbit later, at 53.2 deg: cos(i) times it.
  const double quarter = period / 4;
  EXPECT_NEAR(distance(c.eci_at(0, quarter), c.eci_at(c.id(0, 1, 0), quarter)),
              at_equator * std::cos(i), 1e-5);
}

TEST(WalkerTest, SeamNeighbourHasTheSameGeometry) {
  // Starlink shell 1 (F = 39): satellite j of the last plane pairs with
  // satellite (j + 39) mod 22 of plane 0.
  const walker_constellation c = make_or_die({starlink_1});
  for (int j = 0; j < 22; ++j) {
    const std::size_t k = c.id(0, 71, j);
    ASSERT_EQ(*c.inter_plane_next(k), c.id(0, 0, (j + 39) % 22));
    for (double t : {0.0, 1000.0}) {
      const double u = c.arg_latitude_rad(k, t);
      const double seam = distance(c.eci_at(k, t), c.eci_at(*c.inter_plane_next(k), t));
      // Same as an inner pair at the same argument of latitude.
      EXPECT_NEAR(seam, inter_plane_neighbour_distance_m(starlink_1, u), 1e-5);
      // The wrong candidate (index j of plane 0) is much farther away.
      EXPECT_GT(distance(c.eci_at(k, t), c.eci_at(c.id(0, 0, j), t)), seam + 1000e3);
    }
  }
}

TEST(WalkerTest, CircularPairDistanceAgreesWithVectors) {
  // The spherical-trigonometry closed form against explicit rotation of two
  // orbit-plane vectors, over arbitrary angles.
  const double a = 7e6;
  for (double i : {0.0, 0.3, 1.2, 2.5}) {
    for (double dw : {-0.7, 0.1, 1.0, 3.0}) {
      for (double u1 : {0.0, 0.9, 4.0}) {
        for (double u2 : {0.05, 2.0, 5.5}) {
          const auto pos = [&](double raan, double u) {
            // R3(-raan) R1(-i) (cos u, sin u, 0)
            const vec3 in_plane{std::cos(u), std::sin(u) * std::cos(i), std::sin(u) * std::sin(i)};
            return a * rotate_z(in_plane, raan);
          };
          EXPECT_NEAR(circular_pair_distance_m(a, i, dw, u1, u2),
                      distance(pos(0.4, u1), pos(0.4 + dw, u2)), 1e-5);
        }
      }
    }
  }
}

// --- Ground view --------------------------------------------------------------

TEST(WalkerTest, StationBelowASatelliteSeesItAtTheZenith) {
  const walker_constellation c = make_or_die(test_shells());
  const double gmst0 = gmst_rad(2460676.5);
  for (std::size_t k = 0; k < c.size(); k += 53) {
    for (double t : {0.0, 600.0, 4321.0}) {
      const vec3 sat = c.ecef_at(k, t, gmst0);
      const geodetic below = ecef_to_geodetic(sat);
      const vec3 station = geodetic_to_ecef(below.lat_deg, below.lon_deg, 0.0);
      const look_angles look = look_angles_to(station, sat);
      EXPECT_NEAR(deg(look.elevation_rad), 90.0, 1e-6) << "k=" << k << " t=" << t;
      EXPECT_NEAR(look.range_m, below.alt_m, 1e-3);
      // The sub-satellite latitude never exceeds the inclination (or its
      // supplement) by more than the geodetic-geocentric difference.
      const double i = std::min(c[k].inclination_rad, pi - c[k].inclination_rad);
      EXPECT_LE(std::abs(below.lat_deg), deg(i) + 0.2);
    }
  }
}

TEST(WalkerTest, StationAtTheHorizonAndBeyond) {
  // An equatorial satellite at 1200 km over longitude 0 at t = 0 (gmst0 = 0).
  const walker_shell ring{1, 12, 1200e3, 0.0, 0};
  const walker_constellation c = make_or_die({ring});
  const double a = semi_major_axis_m(ring);
  const vec3 sat = c.ecef_at(0, 0.0, 0.0);
  EXPECT_NEAR(sat.x, a, 1e-6);
  // On the equator the horizon is the central angle acos(R / a).
  const double horizon_deg = deg(std::acos(wgs84_equatorial_radius_m / a));
  const vec3 at_horizon = geodetic_to_ecef(0.0, horizon_deg, 0.0);
  EXPECT_NEAR(deg(elevation_rad(at_horizon, sat)), 0.0, 1e-9);
  EXPECT_LT(elevation_rad(geodetic_to_ecef(0.0, horizon_deg + 1.0, 0.0), sat), 0.0);
  EXPECT_GT(elevation_rad(geodetic_to_ecef(0.0, horizon_deg - 1.0, 0.0), sat), 0.0);
}

TEST(WalkerTest, GroundTrackDriftsWithEarthRotation) {
  // An equatorial prograde satellite moves east relative to the ground at
  // n - w; its sub-satellite longitude after t is (n - w) t.
  const walker_shell ring{1, 12, 1200e3, 0.0, 0};
  const walker_constellation c = make_or_die({ring});
  const double n = mean_motion_rad_per_s(semi_major_axis_m(ring));
  for (double t : {100.0, 1000.0, 2500.0}) {
    const geodetic g = ecef_to_geodetic(c.ecef_at(0, t, 0.0));
    const double expected = std::remainder(deg((n - earth_rotation_rate_rad_per_s) * t), 360.0);
    EXPECT_NEAR(g.lon_deg, expected, 1e-9);
    EXPECT_NEAR(g.lat_deg, 0.0, 1e-12);
  }
  // ecef_all is ecef_at for every satellite.
  const std::vector<vec3> all = c.ecef_all(500.0, 0.3);
  ASSERT_EQ(all.size(), c.size());
  for (std::size_t k = 0; k < c.size(); ++k) EXPECT_EQ(all[k], c.ecef_at(k, 500.0, 0.3));
  // The inertial and Earth-fixed frames agree through the GMST at t.
  const double gmst_t = 0.3 + earth_rotation_rate_rad_per_s * 500.0;
  EXPECT_LT(distance(teme_to_ecef_at_gmst(c.eci_at(5, 500.0), gmst_t), all[5]), 1e-9);
}

}  // namespace
}  // namespace satemu::runtime
