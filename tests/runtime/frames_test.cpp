// Reference frames: GMST against Vallado's published examples, TEME -> PEF
// against Vallado's teme2ecef example, WGS-84 geodetic conversions against
// independent parametrisations, look angles and line-of-sight altitude
// against closed-form geometry.
#include "runtime/frames.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "runtime/constants.hpp"

namespace satemu::runtime {
namespace {

constexpr double pi = std::numbers::pi;

double deg(double rad) { return rad * degrees_per_radian; }
double rad(double deg) { return deg * radians_per_degree; }

void expect_near(vec3 actual, vec3 expected, double tol) {
  EXPECT_NEAR(actual.x, expected.x, tol);
  EXPECT_NEAR(actual.y, expected.y, tol);
  EXPECT_NEAR(actual.z, expected.z, tol);
}

// --- GMST ---------------------------------------------------------------------

TEST(FramesTest, GmstMatchesValladoExample3_5) {
  // Vallado, Fundamentals of Astrodynamics and Applications (4th ed.),
  // Example 3-5: 1992 August 20, 12:14:00 UT1 -> GMST = 152.578787810 deg
  // (printed to 1e-9 deg), computed from the Julian date held in one double.
  const double jd = calendar_to_jd(1992, 8, 20, 12, 14, 0.0);
  EXPECT_NEAR(jd, 2448855.009722, 1e-6);
  EXPECT_NEAR(deg(gmst_rad(jd)), 152.578787810, 2e-9);
  // That double is 9.8 us early (one double resolves 40 us at this date). The
  // same instant passed in two parts (midnight + fraction of the day) gives
  // the exact instant's value, 152.57878785166 deg (the IAU 1982 series
  // evaluated with 50-digit decimals), 4.2e-8 deg after the published one.
  const double midnight = calendar_to_jd(1992, 8, 20, 0, 0, 0.0);
  EXPECT_EQ(midnight, 2448854.5);
  EXPECT_NEAR(deg(gmst_rad(midnight, (12.0 + 14.0 / 60.0) / 24.0)), 152.57878785166, 2e-11);
}

TEST(FramesTest, GmstAtJ2000AndItsDailyAdvance) {
  // At J2000.0 (JD 2451545.0 UT1) the IAU 1982 series reduces to its constant
  // term, 67310.54841 s = 280.46061837504 deg.
  EXPECT_NEAR(deg(gmst_rad(2451545.0)), 280.46061837504, 1e-9);
  // A mean solar day turns the Earth 360.98564736629 deg relative to the mean
  // equinox (Aoki et al. 1982: ratio 1.00273790935), whatever the date.
  for (double jd : {2433282.5, 2448854.5, 2451545.0, 2460000.25, 2469807.5}) {
    double advance = deg(gmst_rad(jd + 1.0) - gmst_rad(jd));
    if (advance < 0) advance += 360.0;
    EXPECT_NEAR(advance, 0.98564736629, 2e-7) << "jd " << jd;
  }
}

TEST(FramesTest, GmstIsWrappedToOneTurn) {
  for (double jd = 2415020.5; jd < 2488069.5; jd += 731.37) {
    const double g = gmst_rad(jd);
    EXPECT_GE(g, 0.0) << jd;
    EXPECT_LT(g, 2 * pi) << jd;
  }
}

// --- TEME <-> ECEF ------------------------------------------------------------

TEST(FramesTest, TemeToEcefMatchesValladoTeme2ecefExample) {
  // Vallado, Crawford, Hujsak, Kelso, "Revisiting Spacetrack Report #3"
  // (AIAA 2006-6753) / Fundamentals Example 3-15: the TEME state at
  // 2004-04-06 07:51:28.386009 UTC, UT1 - UTC = -0.4399619 s, and its PEF
  // (Earth-fixed before polar motion) state. The reference program forms the
  // UT1 date in one double, jday(...) - 0.4399619 / 86400, which lands 15 us
  // after the instant named; with that same double the PEF position agrees
  // to 0.2 mm and the velocity to 20 um/s (the reference also scales the
  // rotation rate by the day's length-of-day excess, 1.6e-8).
  const state_vector teme{{5094.18016210, 6127.64465950, 6380.34453270},
                          {-4.7461314870, 0.7858180410, 5.5319312880}};
  const vec3 r_pef{-1033.47503130, 7901.30558560, 6380.34453270};  // km
  const vec3 v_pef{-3.2256327470, -2.8724425110, 5.5319312880};    // km/s
  const double jd_as_published = calendar_to_jd(2004, 4, 6, 7, 51, 28.386009) - 0.4399619 / 86400;
  const state_vector pef = teme_to_ecef(teme, jd_as_published);
  expect_near(pef.position, r_pef, 2e-7);
  expect_near(pef.velocity, v_pef, 2e-8);
  // Position-only overload agrees.
  expect_near(teme_to_ecef(teme.position, jd_as_published), pef.position, 1e-9);

  // The exact instant in two parts: 15 us of Earth rotation (1.1e-9 rad,
  // 8.5 mm at this radius) from the published vector, and no more.
  const double midnight = calendar_to_jd(2004, 4, 6, 0, 0, 0.0);
  const double fraction = (7 * 3600.0 + 51 * 60.0 + 28.386009 - 0.4399619) / 86400.0;
  const state_vector exact = teme_to_ecef(teme, midnight, fraction);
  EXPECT_NEAR(distance(exact.position, r_pef), 7.9e3 * 7.292115e-5 * 14.7e-6, 1e-6);
  expect_near(exact.velocity, v_pef, 2e-8);
}

TEST(FramesTest, TemeEcefRoundTrip) {
  const vec3 r{-2419.43, 6318.25, 1802.66};  // km, anywhere
  const vec3 v{-5.1, -1.2, 5.6};
  for (double jd : {2451545.0, 2453101.8274, 2460676.123456}) {
    expect_near(ecef_to_teme(teme_to_ecef(r, jd), jd), r, 1e-9);
    const state_vector back = ecef_to_teme(teme_to_ecef(state_vector{r, v}, jd), jd);
    expect_near(back.position, r, 1e-9);
    expect_near(back.velocity, v, 1e-12);
    // A rotation keeps lengths; +z is shared.
    EXPECT_NEAR(norm(teme_to_ecef(r, jd)), norm(r), 1e-9);
    EXPECT_EQ(teme_to_ecef(r, jd).z, r.z);
  }
  // At GMST 90 deg the inertial +x axis points at longitude -90 deg.
  expect_near(teme_to_ecef_at_gmst({1, 0, 0}, pi / 2), {0, -1, 0}, 1e-15);
}

TEST(FramesTest, EcefVelocityOfAGeostationaryPointIsZero) {
  // A point co-rotating with the Earth: inertial velocity w x r.
  const vec3 r{42164e3, 0, 0};
  const state_vector teme{r, cross({0, 0, earth_rotation_rate_rad_per_s}, r)};
  const state_vector ecef = teme_to_ecef(teme, 2451545.0);
  expect_near(ecef.velocity, {0, 0, 0}, 1e-9);
}

// --- Geodetic -----------------------------------------------------------------

TEST(FramesTest, GeodeticKnownPoints) {
  const double a = 6378137.0;
  const double b = 6356752.314245;  // NIMA TR8350.2, Table 3.3
  EXPECT_NEAR(wgs84_polar_radius_m, b, 1e-6);
  expect_near(geodetic_to_ecef(0, 0, 0), {a, 0, 0}, 1e-9);
  expect_near(geodetic_to_ecef(0, 90, 0), {0, a, 0}, 1e-9);
  expect_near(geodetic_to_ecef(0, 180, 100), {-(a + 100), 0, 0}, 1e-9);
  expect_near(geodetic_to_ecef(90, 0, 0), {0, 0, b}, 1e-6);
  expect_near(geodetic_to_ecef(-90, 123, 1000), {0, 0, -(b + 1000)}, 1e-6);
  // Independent parametrisation of the ellipsoid surface: x = a cos(beta),
  // z = b sin(beta), with the reduced latitude tan(beta) = (b/a) tan(phi).
  for (double lat : {-75.0, -30.0, 10.0, 45.0, 60.0, 89.0}) {
    const double beta = std::atan(b / a * std::tan(rad(lat)));
    expect_near(geodetic_to_ecef(lat, 0, 0), {a * std::cos(beta), 0, b * std::sin(beta)}, 1e-6);
  }
}

TEST(FramesTest, GeodeticEcefRoundTripIsSubMillimetre) {
  for (double lat : {-90.0, -89.99999, -60.0, -45.0, -0.001, 0.0, 30.0, 45.5, 89.99999, 90.0}) {
    for (double lon : {-179.9, -90.0, 0.0, 12.5, 180.0}) {
      for (double alt : {-400.0, 0.0, 8848.0, 550e3, 35786e3}) {
        const vec3 r = geodetic_to_ecef(lat, lon, alt);
        const geodetic g = ecef_to_geodetic(r);
        EXPECT_NEAR(g.lat_deg, lat, 1e-11) << lat << " " << lon << " " << alt;
        EXPECT_NEAR(g.alt_m, alt, 1e-4) << lat << " " << lon << " " << alt;
        if (std::abs(lat) < 90.0) {
          double dlon = std::remainder(g.lon_deg - lon, 360.0);
          EXPECT_NEAR(dlon, 0.0, 1e-11) << lat << " " << lon << " " << alt;
        }
        EXPECT_LT(distance(geodetic_to_ecef(g), r), 1e-4) << lat << " " << lon << " " << alt;
        EXPECT_GT(g.lon_deg, -180.0);
        EXPECT_LE(g.lon_deg, 180.0);
      }
    }
  }
}

TEST(FramesTest, CheckedGeodeticRejectsBadInput) {
  auto bad_lat = checked_geodetic_to_ecef(91.5, 0, 0);
  ASSERT_FALSE(bad_lat.ok());
  EXPECT_EQ(bad_lat.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_lat.status().message().find("latitude 91.5"), std::string_view::npos)
      << bad_lat.status();
  EXPECT_NE(bad_lat.status().message().find("[-90, 90]"), std::string_view::npos);

  EXPECT_FALSE(checked_geodetic_to_ecef(-90.0001, 0, 0).ok());
  EXPECT_FALSE(checked_geodetic_to_ecef(std::nan(""), 0, 0).ok());
  auto bad_lon = checked_geodetic_to_ecef(10, 400, 0);
  ASSERT_FALSE(bad_lon.ok());
  EXPECT_NE(bad_lon.status().message().find("longitude 400"), std::string_view::npos);
  EXPECT_FALSE(checked_geodetic_to_ecef(10, 20, INFINITY).ok());

  auto pole = checked_geodetic_to_ecef(geodetic{90, 0, 0});
  ASSERT_TRUE(pole.ok()) << pole.status();
  expect_near(*pole, geodetic_to_ecef(90, 0, 0), 0.0);
  EXPECT_TRUE(checked_geodetic_to_ecef(-90, 359.5, 0).ok());
}

// --- Look angles --------------------------------------------------------------

TEST(FramesTest, PointAlongTheGeodeticNormalIsAtZenith) {
  for (double lat : {-70.0, -45.0, 0.0, 30.0, 45.0, 80.0}) {
    const vec3 ground = geodetic_to_ecef(lat, 10, 0);
    const vec3 sat = geodetic_to_ecef(lat, 10, 550e3);
    EXPECT_NEAR(deg(elevation_rad(ground, sat)), 90.0, 1e-6) << lat;
    EXPECT_NEAR(look_angles_to(ground, sat).range_m, 550e3, 1e-4) << lat;
    // Straight above the geocentric direction is not the zenith away from the
    // equator and the poles: geodetic and geocentric verticals differ by up to
    // 0.19 deg at 45 deg latitude.
    const vec3 geocentric = ground + 550e3 * normalized(ground);
    const double el = deg(elevation_rad(ground, geocentric));
    if (lat == 45.0) {
      EXPECT_LT(el, 90.0 - 0.15);
    }
    if (lat == 0.0) {
      EXPECT_NEAR(el, 90.0, 1e-6);
    }
  }
}

TEST(FramesTest, HorizonIsTheTangentPlaneOfTheEllipsoid) {
  // Tangent directions from finite differences of the surface itself,
  // independent of the ENU construction.
  for (double lat : {-60.0, -20.0, 0.0, 35.0, 52.5, 75.0}) {
    const double lon = 17.0;
    const double h = 1e-6;  // deg
    const vec3 ground = geodetic_to_ecef(lat, lon, 0);
    const vec3 toward_north =
        normalized(geodetic_to_ecef(lat + h, lon, 0) - geodetic_to_ecef(lat - h, lon, 0));
    const vec3 toward_east =
        normalized(geodetic_to_ecef(lat, lon + h, 0) - geodetic_to_ecef(lat, lon - h, 0));

    const look_angles north = look_angles_to(ground, ground + 2000e3 * toward_north);
    EXPECT_NEAR(deg(north.elevation_rad), 0.0, 1e-6) << lat;
    EXPECT_NEAR(deg(std::remainder(north.azimuth_rad, 2 * pi)), 0.0, 1e-6) << lat;
    EXPECT_NEAR(north.range_m, 2000e3, 1e-6);

    const look_angles east = look_angles_to(ground, ground + 2000e3 * toward_east);
    EXPECT_NEAR(deg(east.elevation_rad), 0.0, 1e-6) << lat;
    EXPECT_NEAR(deg(east.azimuth_rad), 90.0, 1e-6) << lat;

    const look_angles south_west =
        look_angles_to(ground, ground - 1000e3 * toward_north - 1000e3 * toward_east);
    EXPECT_NEAR(deg(south_west.azimuth_rad), 225.0, 1e-6) << lat;
  }
}

TEST(FramesTest, ElevationOnTheEquatorMatchesPlaneGeometry) {
  // In the equatorial plane the ellipsoid is a circle of radius a: a satellite
  // at radius r and central angle theta from the station has
  // elevation = atan2(cos(theta) - a / r, sin(theta)).
  const double a = wgs84_equatorial_radius_m;
  const double r = a + 550e3;
  const vec3 ground{a, 0, 0};
  for (double theta_deg : {0.5, 5.0, 10.0, 15.0, 22.0, 25.0, 40.0}) {
    const double theta = rad(theta_deg);
    const vec3 sat{r * std::cos(theta), r * std::sin(theta), 0};
    const double expected = std::atan2(std::cos(theta) - a / r, std::sin(theta));
    EXPECT_NEAR(elevation_rad(ground, sat), expected, 1e-12) << theta_deg;
    EXPECT_NEAR(deg(look_angles_to(ground, sat).azimuth_rad), 90.0, 1e-9);
  }
  // The geometric horizon: cos(theta) = a / r.
  const double horizon = std::acos(a / r);
  const vec3 at_horizon{r * std::cos(horizon), 0, r * std::sin(horizon)};
  EXPECT_NEAR(deg(elevation_rad(ground, at_horizon)), 0.0, 1e-9);
  EXPECT_NEAR(deg(look_angles_to(ground, at_horizon).azimuth_rad), 0.0, 1e-9);
  // Below the horizon: negative.
  EXPECT_LT(elevation_rad(ground, {-r, 0, 0}), 0.0);
}

TEST(FramesTest, EnuFrameIsOrthonormalAndRightHanded) {
  for (double lat : {-90.0, -33.3, 0.0, 51.5, 90.0}) {
    const enu_frame f = enu_frame_at(geodetic{lat, -71.0, 100.0});
    EXPECT_NEAR(norm(f.east), 1.0, 1e-15);
    EXPECT_NEAR(norm(f.north), 1.0, 1e-15);
    EXPECT_NEAR(norm(f.up), 1.0, 1e-15);
    EXPECT_NEAR(dot(f.east, f.north), 0.0, 1e-15);
    EXPECT_NEAR(dot(f.east, f.up), 0.0, 1e-15);
    expect_near(cross(f.east, f.north), f.up, 1e-15);
    // The ECEF-point overload gives the same frame.
    const enu_frame g = enu_frame_at(f.origin_m);
    if (std::abs(lat) < 90.0) {
      expect_near(g.up, f.up, 1e-12);
    }
    expect_near(to_enu(f, f.origin_m + 5.0 * f.north), {0, 5, 0}, 1e-9);
  }
}

// --- Line of sight ------------------------------------------------------------

TEST(FramesTest, LineOfSightMinimumAltitude) {
  const double R = wgs84_equatorial_radius_m;
  const double r = R + 550e3;
  // Opposite sides of the Earth: the segment passes through the centre.
  EXPECT_NEAR(line_of_sight_min_altitude_m({r, 0, 0}, {-r, 0, 0}), -R, 1e-6);
  EXPECT_LT(line_of_sight_min_altitude_m({0, r, 0}, {0.1, -r, 1.0}), 80e3);
  // Close satellites: the chord's midpoint dips r (1 - cos(theta / 2)).
  const double theta = 0.02;  // rad, ~140 km apart
  const vec3 a{r, 0, 0};
  const vec3 b = rotate_z(a, theta);
  EXPECT_NEAR(line_of_sight_min_altitude_m(a, b), r * std::cos(theta / 2) - R, 1e-6);
  EXPECT_NEAR(line_of_sight_min_altitude_m(a, b), 550e3 - 346.4, 0.1);
  // The longest chord that stays above 80 km grazes it exactly.
  const double half = std::acos((R + 80e3) / r);
  EXPECT_NEAR(line_of_sight_min_altitude_m(rotate_z(a, -half), rotate_z(a, half)), 80e3, 1e-6);
  // When the closest point to the centre lies beyond an end, that end counts.
  EXPECT_NEAR(line_of_sight_min_altitude_m(a, {r + 1000e3, 10e3, 0}), 550e3, 1e-6);
  EXPECT_NEAR(line_of_sight_min_altitude_m(a, a), 550e3, 1e-6);
  // Another sphere, e.g. the mean radius.
  EXPECT_NEAR(line_of_sight_min_altitude_m(a, a, earth_mean_radius_m), r - earth_mean_radius_m,
              1e-6);
}

TEST(FramesTest, VectorOperations) {
  const vec3 a{1, 2, 3};
  const vec3 b{-4, 5, 0.5};
  EXPECT_EQ(a + b, (vec3{-3, 7, 3.5}));
  EXPECT_EQ(a - b, (vec3{5, -3, 2.5}));
  EXPECT_EQ(2.0 * a, (vec3{2, 4, 6}));
  EXPECT_EQ(a * 2.0, (vec3{2, 4, 6}));
  EXPECT_EQ(-a, (vec3{-1, -2, -3}));
  EXPECT_EQ(dot(a, b), -4 + 10 + 1.5);
  EXPECT_EQ(cross(vec3{1, 0, 0}, vec3{0, 1, 0}), (vec3{0, 0, 1}));
  EXPECT_EQ(dot(cross(a, b), a), 0.0);
  EXPECT_DOUBLE_EQ(norm(vec3{3, 4, 12}), 13.0);
  EXPECT_EQ(normalized(vec3{}), (vec3{}));
  expect_near(rotate_z({1, 0, 5}, pi / 2), {0, 1, 5}, 1e-15);
}

}  // namespace
}  // namespace satemu::runtime
