/// satemu Walker-delta constellations: shells, validation, circular Keplerian
/// motion and the closed forms of neighbour distances.
///
/// A builder of plain data (no actors): `walker_constellation::make` turns
/// shells into a flat list of satellites with their orbital elements, and
/// answers where satellite k is at t seconds after the constellation epoch.
///
/// Conventions:
/// - **Pattern.** A shell T/P/F has P planes of S satellites (T = P S),
///   phasing F in [0, P-1]. Satellite j (0-based "index in plane") of plane p
///   has
///
///       RAAN                          = p * raan_spread / P
///       argument of latitude at t = 0 = 360 j / S + 360 F p / (P S)   [deg]
///
///   (Walker 1984; with raan_spread = 360 deg this is the standard delta
///   pattern, with 180 deg a "star" pattern). Inclination is the shell's.
/// - **Motion.** Circular, two-body, no perturbations (J2 precession, drag):
///   radius a = WGS-84 equatorial radius + altitude, mean motion
///   n = sqrt(GM / a^3) (WGS-84 GM), so the period is 2 pi sqrt(a^3 / GM).
///   Argument of latitude u(t) = u0 + n t.
/// - **Frames.** Positions are computed in an inertial frame with +z along the
///   Earth's axis and +x at the equinox; the emulator treats it as TEME (see
///   runtime/frames.hpp), so Walker and SGP4 satellites share one frame.
///   Earth-fixed positions rotate it by GMST(t) = gmst0 + w t with
///   w = earth_rotation_rate_rad_per_s; gmst0 is the GMST of the epoch
///   (`gmst_rad(epoch_jd)`), 0 placing the equinox over Greenwich at t = 0.
/// - **Closed forms** (all satellites of a shell share the radius a):
///   * Consecutive satellites of one plane are a fixed chord apart:
///     d = 2 a sin(pi / S).
///   * Two satellites at arguments of latitude u1, u2 in planes whose RAANs
///     differ by dW (same inclination i) are d = a sqrt(2 (1 - cos g)) apart,
///         cos g = cos dW cos u1 cos u2 + cos i sin dW sin(u1 - u2)
///               + (cos^2 i cos dW + sin^2 i) sin u1 sin u2.
///   * Inter-plane neighbours: satellite j of plane p and satellite j of
///     plane p+1 have dW = raan_spread / P and u2 = u1 + 2 pi F / (P S).
///     Across the seam (plane P-1 to plane 0, only when raan_spread = 360)
///     the satellite with the same relative geometry is index (j + F) mod S
///     of plane 0 (see `inter_plane_next`). For F = 0 (u1 = u2 = u) the form
///     reduces to d(u) = 2 a sin(dW / 2) sqrt(cos^2 u + cos^2 i sin^2 u):
///     2 a sin(dW / 2) at the equator crossing, 2 a sin(dW / 2) |cos i| at
///     the highest latitude.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/frames.hpp"

namespace satemu::runtime {

/// The lowest orbit a shell may have [m] ("an altitude below 100 km" is
/// refused): below the Karman line nothing stays in orbit.
inline constexpr double walker_min_altitude_m = 100e3;

/// The most satellites one shell may have (a guard against typos such as
/// 72000 planes; 30,000-satellite constellations are well inside it).
inline constexpr int walker_max_satellites_per_shell = 1'000'000;

/// One Walker-delta shell, as a scenario declares it.
struct walker_shell {
  /// Number of orbital planes P, >= 1.
  int planes = 0;
  /// Satellites per plane S, >= 1.
  int sats_per_plane = 0;
  /// Altitude above the WGS-84 equatorial radius [m], >= 100 km.
  double altitude_m = 0;
  /// Inclination [deg], in [0, 180].
  double inclination_deg = 0;
  /// Walker phasing factor F, in [0, P-1].
  int phasing = 0;
  /// Spread of the ascending nodes [deg], in (0, 360]: 360 for a delta
  /// pattern, 180 for a star pattern.
  double raan_spread_deg = 360;
};

/// OK, or InvalidArgument naming the offending field and value ("planes",
/// "sats_per_plane", "altitude" (below 100 km), "inclination", "phasing",
/// "raan_spread", or too many satellites).
absl::Status validate(const walker_shell& shell);

/// Period of a circular (or any Keplerian) orbit [s]: 2 pi sqrt(a^3 / GM).
double orbital_period_s(double semi_major_axis_m);

/// Mean motion sqrt(GM / a^3) [rad/s].
double mean_motion_rad_per_s(double semi_major_axis_m);

/// Orbit radius of a shell [m]: WGS-84 equatorial radius + altitude.
double semi_major_axis_m(const walker_shell& shell);

/// Chord between consecutive satellites of one plane [m]: 2 a sin(pi / S).
double in_plane_neighbour_distance_m(const walker_shell& shell);

/// Distance [m] between two satellites on circular orbits of radius `a_m` and
/// inclination `inclination_rad` whose RAANs differ by `delta_raan_rad`
/// (second minus first), at arguments of latitude `u1_rad` and `u2_rad`
/// (closed form from spherical trigonometry; see the file banner).
double circular_pair_distance_m(double a_m, double inclination_rad, double delta_raan_rad,
                                double u1_rad, double u2_rad);

/// Difference of argument of latitude between satellite j of plane p+1 and
/// satellite j of plane p [rad]: 2 pi F / (P S).
double inter_plane_phase_offset_rad(const walker_shell& shell);

/// Distance [m] from a satellite at argument of latitude `u_rad` to its
/// inter-plane neighbour (see `walker_constellation::inter_plane_next`).
double inter_plane_neighbour_distance_m(const walker_shell& shell, double u_rad);

/// One satellite of a Walker constellation.
struct walker_satellite {
  /// Position of the shell in the constellation's list of shells.
  int shell = 0;
  /// Plane p in [0, P).
  int plane = 0;
  /// Index j in the plane, in [0, S).
  int index = 0;
  double semi_major_axis_m = 0;
  double inclination_rad = 0;
  /// Right ascension of the ascending node [rad].
  double raan_rad = 0;
  /// Argument of latitude at t = 0 [rad], in [0, 2 pi).
  double arg_latitude_at_epoch_rad = 0;
  double mean_motion_rad_per_s = 0;
  /// Unit vector to the ascending node (inertial).
  vec3 node_dir;
  /// Unit vector in the orbit plane 90 deg ahead of `node_dir` (inertial):
  /// position = a (node_dir cos u + ahead_dir sin u).
  vec3 ahead_dir;
};

/// Satellites of one or more Walker shells, numbered flat: shell by shell,
/// plane by plane, index by index (k = first_of_shell(s) + p S + j).
/// Immutable once made; all queries are const and thread-safe.
class walker_constellation {
public:
  /// Validates every shell (errors name it: "shell 2: altitude ...") and
  /// builds the satellites. At least one shell is required.
  static absl::StatusOr<walker_constellation> make(std::vector<walker_shell> shells);

  const std::vector<walker_shell>& shells() const { return shells_; }
  const std::vector<walker_satellite>& satellites() const { return sats_; }
  std::size_t size() const { return sats_.size(); }
  const walker_satellite& operator[](std::size_t k) const { return sats_[k]; }

  /// Flat number of the first satellite of `shell`.
  std::size_t first_of_shell(int shell) const { return first_[static_cast<std::size_t>(shell)]; }
  /// Flat number of satellite `index` of `plane` of `shell` (all in range).
  std::size_t id(int shell, int plane, int index) const;

  /// Argument of latitude of satellite k at `t_s` seconds after the epoch
  /// [rad], not wrapped.
  double arg_latitude_rad(std::size_t k, double t_s) const;
  /// Inertial (TEME-like) position [m] of satellite k at `t_s`.
  vec3 eci_at(std::size_t k, double t_s) const;
  /// Inertial position [m] and velocity [m/s] of satellite k at `t_s`.
  state_vector eci_state_at(std::size_t k, double t_s) const;
  /// Earth-fixed position [m] of satellite k at `t_s`, the Earth having
  /// turned to GMST `gmst0_rad` at t = 0.
  vec3 ecef_at(std::size_t k, double t_s, double gmst0_rad) const;
  /// Earth-fixed positions [m] of all satellites at `t_s`, in flat order.
  std::vector<vec3> ecef_all(double t_s, double gmst0_rad) const;

  /// The next satellite of the same plane: index (j + 1) mod S.
  std::size_t in_plane_next(std::size_t k) const;
  /// The inter-plane neighbour of satellite k: index j of plane p+1, or,
  /// from the last plane of a 360-deg shell, index (j + F) mod S of plane 0
  /// (the same relative geometry, see the banner). None from the last plane
  /// of a shell spread over less than 360 deg, or of a one-plane shell.
  std::optional<std::size_t> inter_plane_next(std::size_t k) const;

private:
  std::vector<walker_shell> shells_;
  std::vector<std::size_t> first_;
  std::vector<walker_satellite> sats_;
};

}  // namespace satemu::runtime
