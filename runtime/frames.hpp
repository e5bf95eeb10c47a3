/// satemu reference frames: inertial (TEME), Earth-fixed (ECEF), geodetic, and
/// the local horizon of a ground point.
///
/// Conventions (every function below follows them):
///
/// - **Vectors.** `vec3` is a plain Cartesian triple. The frame functions are
///   linear, so they work in any consistent length unit (SGP4 gives km and
///   km/s; Walker shells give m and m/s). Functions that touch the ellipsoid
///   (geodetic conversions, look angles, line-of-sight altitude) take metres,
///   and their names say so.
/// - **Inertial frame = TEME.** SGP4 outputs True Equator, Mean Equinox
///   coordinates; Walker shells are propagated in the same frame (their
///   "ECI"). Nothing in the emulator needs J2000/GCRF, so no precession or
///   nutation is modelled.
/// - **Earth-fixed frame = PEF** (pseudo Earth-fixed), used as ECEF: TEME
///   rotated about +z by GMST,
///
///       r_ecef = R3(gmst) r_teme,   R3(t) = [ cos t   sin t   0 ]
///                                           [ -sin t  cos t   0 ]
///                                           [ 0       0       1 ]
///
///   i.e. +x points at the Greenwich meridian on the equator, +z at the
///   (mean) north pole, +y completes the right-handed set (90 deg E).
///   Polar motion (xp, yp < 0.5 arcsec, at most ~15 m on the ground) and the
///   UT1-UTC difference (< 0.9 s, at most ~0.4 km on the equator) are
///   ignored: a UTC Julian date may be passed where UT1 is asked for. This is
///   Vallado's teme2ecef without the polar-motion matrix.
/// - **Velocity.** v_ecef = R3(gmst) v_teme - w x r_ecef, with
///   w = (0, 0, earth_rotation_rate_rad_per_s); length-of-day variation is
///   ignored.
/// - **GMST.** IAU 1982 model (Aoki et al. 1982; Vallado, "Fundamentals of
///   Astrodynamics and Applications", eq. 3-47), the model SGP4/TEME is
///   defined with. Julian dates are UT1; a Julian date may be split into two
///   parts (e.g. midnight + fraction of the day) for full precision, since one
///   double resolves only ~40 us at current dates.
/// - **Geodetic.** WGS-84 ellipsoid (runtime/constants.hpp). Latitude is
///   geodetic (angle of the ellipsoid normal to the equator), in degrees,
///   north positive, [-90, 90]; longitude in degrees, east positive, returned
///   in (-180, 180]; altitude in metres above the ellipsoid along the normal.
/// - **Local horizon (ENU).** East-north-up at a ground point, "up" being the
///   ellipsoid normal (geodetic vertical). Elevation is the angle above the
///   tangent plane, in [-pi/2, pi/2]; azimuth is measured from north towards
///   east, in [0, 2 pi); range is the straight-line distance.
/// - **Line of sight above the atmosphere.** Measured against a sphere of the
///   WGS-84 equatorial radius, which encloses the ellipsoid: the altitude it
///   reports is never more than the true height above the ellipsoid, so a
///   link it accepts really clears the limit (it is up to 21 km too strict
///   near the poles).
#pragma once

#include <cmath>

#include "absl/status/statusor.h"
#include "runtime/constants.hpp"

namespace satemu::runtime {

/// A Cartesian vector; the unit is the caller's (see the file banner).
struct vec3 {
  double x = 0;
  double y = 0;
  double z = 0;

  constexpr bool operator==(const vec3&) const = default;
};

constexpr vec3 operator+(vec3 a, vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
constexpr vec3 operator-(vec3 a, vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
constexpr vec3 operator-(vec3 a) { return {-a.x, -a.y, -a.z}; }
constexpr vec3 operator*(double s, vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
constexpr vec3 operator*(vec3 a, double s) { return s * a; }
constexpr vec3 operator/(vec3 a, double s) { return {a.x / s, a.y / s, a.z / s}; }
constexpr vec3& operator+=(vec3& a, vec3 b) { return a = a + b; }
constexpr vec3& operator-=(vec3& a, vec3 b) { return a = a - b; }

/// Scalar product.
constexpr double dot(vec3 a, vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
/// Vector product a x b (right-handed).
constexpr vec3 cross(vec3 a, vec3 b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
/// Squared Euclidean length.
constexpr double norm_sq(vec3 a) { return dot(a, a); }
/// Euclidean length.
inline double norm(vec3 a) { return std::sqrt(norm_sq(a)); }
/// Euclidean distance between two points.
inline double distance(vec3 a, vec3 b) { return norm(a - b); }
/// `a / |a|`; the zero vector stays zero.
vec3 normalized(vec3 a);

/// Rotates `v` by `angle_rad` about +z, counter-clockwise seen from +z
/// (a rotation of the vector, i.e. R3(-angle) applied to it).
vec3 rotate_z(vec3 v, double angle_rad);

/// Position and velocity in one frame, in consistent units (m and m/s, or km
/// and km/s).
struct state_vector {
  vec3 position;
  vec3 velocity;
};

/// Julian date of a proleptic-Gregorian calendar instant (Vallado's `jday`,
/// valid for years 1900 to 2100), in the time scale of the inputs. `second`
/// may carry a fraction.
double calendar_to_jd(int year, int month, int day, int hour, int minute, double second);

/// Greenwich mean sidereal time, IAU 1982, [rad] in [0, 2 pi), for the UT1
/// Julian date `jd_ut1_whole + jd_ut1_fraction` (pass the date in two parts
/// for sub-40-us precision; either part may carry the whole date).
double gmst_rad(double jd_ut1_whole, double jd_ut1_fraction = 0.0);

/// TEME -> ECEF (PEF) position at the UT1 Julian date `jd_ut1` (one or two
/// parts, as in `gmst_rad`). Any length unit.
vec3 teme_to_ecef(vec3 r_teme, double jd_ut1, double jd_ut1_fraction = 0.0);
/// ECEF (PEF) -> TEME position; the inverse of `teme_to_ecef`.
vec3 ecef_to_teme(vec3 r_ecef, double jd_ut1, double jd_ut1_fraction = 0.0);
/// TEME -> ECEF (PEF) position for a known GMST (when many vectors share an
/// instant, compute `gmst_rad` once).
vec3 teme_to_ecef_at_gmst(vec3 r_teme, double gmst_rad);
/// ECEF (PEF) -> TEME position for a known GMST.
vec3 ecef_to_teme_at_gmst(vec3 r_ecef, double gmst_rad);

/// TEME -> ECEF (PEF) state: the velocity loses the Earth's rotation
/// (v_ecef = R3 v_teme - w x r_ecef). Units: s for time, any consistent length.
state_vector teme_to_ecef(const state_vector& teme, double jd_ut1, double jd_ut1_fraction = 0.0);
/// ECEF (PEF) -> TEME state; the inverse of the above.
state_vector ecef_to_teme(const state_vector& ecef, double jd_ut1, double jd_ut1_fraction = 0.0);

/// A point given by WGS-84 geodetic coordinates.
struct geodetic {
  /// Geodetic latitude [deg], north positive, in [-90, 90].
  double lat_deg = 0;
  /// Longitude [deg], east positive.
  double lon_deg = 0;
  /// Height above the ellipsoid along its normal [m].
  double alt_m = 0;
};

/// WGS-84 geodetic -> ECEF [m]. Unchecked: for coordinates the program
/// produced; user input goes through `checked_geodetic_to_ecef`.
vec3 geodetic_to_ecef(double lat_deg, double lon_deg, double alt_m);
vec3 geodetic_to_ecef(const geodetic& g);

/// `geodetic_to_ecef` for user input: InvalidArgument, naming the value, when
/// the latitude is outside [-90, 90], the longitude outside [-180, 360] or
/// any value is not finite.
absl::StatusOr<vec3> checked_geodetic_to_ecef(double lat_deg, double lon_deg, double alt_m);
absl::StatusOr<vec3> checked_geodetic_to_ecef(const geodetic& g);

/// ECEF [m] -> WGS-84 geodetic (Bowring's iteration on the parametric latitude,
/// run to convergence: well below a micrometre and 1e-12 deg from the centre of
/// the Earth out to geostationary distance). The centre itself gives
/// lat 0, lon 0, alt -a.
geodetic ecef_to_geodetic(vec3 r_ecef_m);

/// The local east-north-up frame of a ground point (unit vectors in ECEF).
struct enu_frame {
  /// The ground point [m, ECEF].
  vec3 origin_m;
  vec3 east;
  vec3 north;
  /// The ellipsoid normal (geodetic vertical).
  vec3 up;
};

/// The ENU frame at a geodetic point (no conversion needed: cheapest).
enu_frame enu_frame_at(const geodetic& g);
/// The ENU frame at an ECEF point [m] (converts to geodetic first). On the
/// polar axis the longitude is taken as 0, so "north" is the direction of
/// travel along the 0-deg meridian (-x at the north pole, +x at the south).
enu_frame enu_frame_at(vec3 ground_ecef_m);

/// East, north and up components of `target_ecef - frame.origin_m`.
vec3 to_enu(const enu_frame& frame, vec3 target_ecef);

/// Direction and distance of a target seen from a ground point.
struct look_angles {
  /// From north towards east [rad], in [0, 2 pi); 0 when straight up or down.
  double azimuth_rad = 0;
  /// Above the local tangent plane [rad], in [-pi/2, pi/2].
  double elevation_rad = 0;
  /// Straight-line distance, in the unit of the inputs [m].
  double range_m = 0;
};

/// Look angles of `target_ecef_m` from the ground point of `frame`.
look_angles look_angles_to(const enu_frame& frame, vec3 target_ecef_m);
/// Look angles of `target_ecef_m` from `ground_ecef_m` (both ECEF, metres).
look_angles look_angles_to(vec3 ground_ecef_m, vec3 target_ecef_m);

/// Elevation [rad] of `target` above the tangent plane at `frame`'s point.
/// Well conditioned at the zenith (atan2, not asin).
double elevation_rad(const enu_frame& frame, vec3 target_ecef_m);
/// Elevation [rad] of `target_ecef_m` seen from `ground_ecef_m` (ECEF, m).
double elevation_rad(vec3 ground_ecef_m, vec3 target_ecef_m);

/// The smallest altitude [m] above a sphere of radius `sphere_radius_m`
/// (default: the WGS-84 equatorial radius, see the file banner) over the
/// segment from `a_m` to `b_m` (same frame, metres; any Earth-centred frame).
/// Negative when the segment passes inside the sphere. An inter-satellite link
/// exists only while this stays above its limit (80 km by default).
double line_of_sight_min_altitude_m(vec3 a_m, vec3 b_m,
                                    double sphere_radius_m = wgs84_equatorial_radius_m);

}  // namespace satemu::runtime
