// satemu reference frames: GMST, TEME <-> ECEF, WGS-84 geodetic, look angles.
#include "runtime/frames.hpp"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace satemu::runtime {

namespace {

constexpr double j2000_jd = 2451545.0;
constexpr double seconds_per_day = 86400.0;
constexpr double days_per_julian_century = 36525.0;

double fractional_part(double x) { return x - std::floor(x); }

double wrap_two_pi(double angle_rad) {
  double a = std::fmod(angle_rad, two_pi);
  if (a < 0) a += two_pi;
  // fmod of a tiny negative number plus 2 pi can round up to 2 pi itself.
  return a >= two_pi ? 0.0 : a;
}

}  // namespace

vec3 normalized(vec3 a) {
  const double n = norm(a);
  return n > 0 ? a / n : vec3{};
}

vec3 rotate_z(vec3 v, double angle_rad) {
  const double c = std::cos(angle_rad);
  const double s = std::sin(angle_rad);
  return {c * v.x - s * v.y, s * v.x + c * v.y, v.z};
}

double calendar_to_jd(int year, int month, int day, int hour, int minute, double second) {
  return 367.0 * year - std::floor(7.0 * (year + std::floor((month + 9) / 12.0)) * 0.25) +
         std::floor(275.0 * month / 9.0) + day + 1721013.5 +
         ((second / 60.0 + minute) / 60.0 + hour) / 24.0;
}

double gmst_rad(double jd_ut1_whole, double jd_ut1_fraction) {
  // Vallado eq. 3-47 gives GMST in seconds as
  //   67310.54841 + (876600 h + 8640184.812866 s) T + 0.093104 T^2 - 6.2e-6 T^3.
  // The 876600 h T term is exactly 86400 s per elapsed day, so only the
  // fraction of the day matters for it: reducing it first keeps the result
  // exact to well under a microsecond instead of losing digits to ~1e9 s.
  const double days_whole = jd_ut1_whole - j2000_jd;  // exact for any JD in use
  const double days = days_whole + jd_ut1_fraction;
  const double t = days / days_per_julian_century;
  const double day_fraction =
      fractional_part(fractional_part(days_whole) + fractional_part(jd_ut1_fraction));
  const double seconds = 67310.54841 + seconds_per_day * day_fraction + 8640184.812866 * t +
                         0.093104 * t * t - 6.2e-6 * t * t * t;
  return wrap_two_pi(seconds * (two_pi / seconds_per_day));
}

vec3 teme_to_ecef_at_gmst(vec3 r_teme, double gmst) { return rotate_z(r_teme, -gmst); }

vec3 ecef_to_teme_at_gmst(vec3 r_ecef, double gmst) { return rotate_z(r_ecef, gmst); }

vec3 teme_to_ecef(vec3 r_teme, double jd_ut1, double jd_ut1_fraction) {
  return teme_to_ecef_at_gmst(r_teme, gmst_rad(jd_ut1, jd_ut1_fraction));
}

vec3 ecef_to_teme(vec3 r_ecef, double jd_ut1, double jd_ut1_fraction) {
  return ecef_to_teme_at_gmst(r_ecef, gmst_rad(jd_ut1, jd_ut1_fraction));
}

state_vector teme_to_ecef(const state_vector& teme, double jd_ut1, double jd_ut1_fraction) {
  const double gmst = gmst_rad(jd_ut1, jd_ut1_fraction);
  const vec3 omega{0, 0, earth_rotation_rate_rad_per_s};
  const vec3 r = teme_to_ecef_at_gmst(teme.position, gmst);
  return {r, teme_to_ecef_at_gmst(teme.velocity, gmst) - cross(omega, r)};
}

state_vector ecef_to_teme(const state_vector& ecef, double jd_ut1, double jd_ut1_fraction) {
  const double gmst = gmst_rad(jd_ut1, jd_ut1_fraction);
  const vec3 omega{0, 0, earth_rotation_rate_rad_per_s};
  return {ecef_to_teme_at_gmst(ecef.position, gmst),
          ecef_to_teme_at_gmst(ecef.velocity + cross(omega, ecef.position), gmst)};
}

vec3 geodetic_to_ecef(double lat_deg, double lon_deg, double alt_m) {
  const double lat = lat_deg * radians_per_degree;
  const double lon = lon_deg * radians_per_degree;
  const double sin_lat = std::sin(lat);
  const double cos_lat = std::cos(lat);
  // Prime-vertical radius of curvature.
  const double n =
      wgs84_equatorial_radius_m / std::sqrt(1.0 - wgs84_eccentricity_sq * sin_lat * sin_lat);
  return {(n + alt_m) * cos_lat * std::cos(lon), (n + alt_m) * cos_lat * std::sin(lon),
          (n * (1.0 - wgs84_eccentricity_sq) + alt_m) * sin_lat};
}

vec3 geodetic_to_ecef(const geodetic& g) { return geodetic_to_ecef(g.lat_deg, g.lon_deg, g.alt_m); }

absl::StatusOr<vec3> checked_geodetic_to_ecef(double lat_deg, double lon_deg, double alt_m) {
  if (!std::isfinite(lat_deg) || lat_deg < -90.0 || lat_deg > 90.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("latitude ", lat_deg, " deg is outside [-90, 90] deg"));
  }
  if (!std::isfinite(lon_deg) || lon_deg < -180.0 || lon_deg > 360.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("longitude ", lon_deg, " deg is outside [-180, 360] deg"));
  }
  if (!std::isfinite(alt_m)) {
    return absl::InvalidArgumentError(absl::StrCat("altitude ", alt_m, " m is not a finite number"));
  }
  return geodetic_to_ecef(lat_deg, lon_deg, alt_m);
}

absl::StatusOr<vec3> checked_geodetic_to_ecef(const geodetic& g) {
  return checked_geodetic_to_ecef(g.lat_deg, g.lon_deg, g.alt_m);
}

geodetic ecef_to_geodetic(vec3 r) {
  constexpr double a = wgs84_equatorial_radius_m;
  constexpr double b = wgs84_polar_radius_m;
  constexpr double e2 = wgs84_eccentricity_sq;
  constexpr double ep2 = e2 / (1.0 - e2);  // second eccentricity squared
  constexpr double one_minus_f = 1.0 - wgs84_flattening;

  const double p = std::hypot(r.x, r.y);
  if (p == 0.0 && r.z == 0.0) return {0.0, 0.0, -a};

  double lon_deg = std::atan2(r.y, r.x) * degrees_per_radian;
  if (lon_deg <= -180.0) lon_deg += 360.0;

  // Bowring (1976): iterate on the parametric latitude beta. Each step gains
  // about three orders of magnitude; 2-3 steps reach double precision for
  // points near the surface, a few more far out.
  double beta = std::atan2(r.z, one_minus_f * p);
  double lat = 0;
  for (int i = 0; i < 10; ++i) {
    const double sb = std::sin(beta);
    const double cb = std::cos(beta);
    lat = std::atan2(r.z + ep2 * b * sb * sb * sb, p - e2 * a * cb * cb * cb);
    const double next = std::atan2(one_minus_f * std::sin(lat), std::cos(lat));
    const bool converged = std::abs(next - beta) < 1e-15;
    beta = next;
    if (converged) break;
  }
  const double sin_lat = std::sin(lat);
  // Height along the normal; well conditioned at all latitudes (no 1/cos).
  const double alt =
      p * std::cos(lat) + r.z * sin_lat - a * std::sqrt(1.0 - e2 * sin_lat * sin_lat);
  return {lat * degrees_per_radian, lon_deg, alt};
}

enu_frame enu_frame_at(const geodetic& g) {
  const double lat = g.lat_deg * radians_per_degree;
  const double lon = g.lon_deg * radians_per_degree;
  const double sl = std::sin(lat), cl = std::cos(lat);
  const double so = std::sin(lon), co = std::cos(lon);
  return {geodetic_to_ecef(g), {-so, co, 0.0}, {-sl * co, -sl * so, cl}, {cl * co, cl * so, sl}};
}

enu_frame enu_frame_at(vec3 ground_ecef_m) {
  enu_frame f = enu_frame_at(ecef_to_geodetic(ground_ecef_m));
  f.origin_m = ground_ecef_m;  // exact, not the round-tripped point
  return f;
}

vec3 to_enu(const enu_frame& frame, vec3 target) {
  const vec3 d = target - frame.origin_m;
  return {dot(d, frame.east), dot(d, frame.north), dot(d, frame.up)};
}

look_angles look_angles_to(const enu_frame& frame, vec3 target_ecef_m) {
  const vec3 enu = to_enu(frame, target_ecef_m);
  const double horizontal = std::hypot(enu.x, enu.y);
  look_angles out;
  out.elevation_rad = std::atan2(enu.z, horizontal);
  out.azimuth_rad = horizontal > 0 ? wrap_two_pi(std::atan2(enu.x, enu.y)) : 0.0;
  out.range_m = norm(enu);
  return out;
}

look_angles look_angles_to(vec3 ground_ecef_m, vec3 target_ecef_m) {
  return look_angles_to(enu_frame_at(ground_ecef_m), target_ecef_m);
}

double elevation_rad(const enu_frame& frame, vec3 target_ecef_m) {
  const vec3 d = target_ecef_m - frame.origin_m;
  const double up = dot(d, frame.up);
  return std::atan2(up, std::hypot(dot(d, frame.east), dot(d, frame.north)));
}

double elevation_rad(vec3 ground_ecef_m, vec3 target_ecef_m) {
  return elevation_rad(enu_frame_at(ground_ecef_m), target_ecef_m);
}

double line_of_sight_min_altitude_m(vec3 a, vec3 b, double sphere_radius_m) {
  // The point of the segment closest to the Earth's centre: the foot of the
  // perpendicular from the origin when it falls inside the segment, else the
  // nearer end.
  const vec3 d = b - a;
  const double dd = norm_sq(d);
  const double t = dd > 0 ? std::clamp(-dot(a, d) / dd, 0.0, 1.0) : 0.0;
  return norm(a + t * d) - sphere_radius_m;
}

}  // namespace satemu::runtime
