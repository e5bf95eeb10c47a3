// satemu Walker-delta constellations: validation, elements, propagation.
#include "runtime/walker.hpp"

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <numbers>
#include <utility>

#include "absl/strings/str_cat.h"

namespace satemu::runtime {

absl::Status validate(const walker_shell& s) {
  if (s.planes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("planes is ", s.planes, "; a shell needs at least 1 plane"));
  }
  if (s.sats_per_plane < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sats_per_plane is ", s.sats_per_plane, "; a plane needs at least 1 satellite"));
  }
  // Written as !(x >= lo) so that NaN is refused too.
  if (!(s.altitude_m >= walker_min_altitude_m) || !std::isfinite(s.altitude_m)) {
    return absl::InvalidArgumentError(absl::StrCat("altitude is ", s.altitude_m / 1000.0,
                                                   " km, an altitude below 100 km"));
  }
  if (!(s.inclination_deg >= 0.0 && s.inclination_deg <= 180.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclination is ", s.inclination_deg, " deg, outside [0, 180] deg"));
  }
  // Every plane of an equatorial shell is the same orbit: its satellites
  // would share places (and flap as serving satellites of equal elevation).
  if ((s.inclination_deg == 0.0 || s.inclination_deg == 180.0) && s.planes > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inclination is ", s.inclination_deg, " deg with ", s.planes,
        " planes: at 0 or 180 deg every plane is the equatorial orbit, so the planes' "
        "satellites would share one orbit; use planes: 1 and sats_per_plane: ",
        std::int64_t{s.planes} * s.sats_per_plane));
  }
  if (s.phasing < 0 || s.phasing > s.planes - 1) {
    return absl::InvalidArgumentError(absl::StrCat("phasing is ", s.phasing,
                                                   ", outside [0, planes - 1] = [0, ",
                                                   s.planes - 1, "]"));
  }
  if (!(s.raan_spread_deg > 0.0 && s.raan_spread_deg <= 360.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("raan_spread is ", s.raan_spread_deg, " deg, outside (0, 360] deg"));
  }
  const std::int64_t total = std::int64_t{s.planes} * s.sats_per_plane;
  if (total > walker_max_satellites_per_shell) {
    return absl::InvalidArgumentError(absl::StrCat(
        "planes x sats_per_plane = ", s.planes, " x ", s.sats_per_plane, " = ", total,
        " satellites, more than ", walker_max_satellites_per_shell, " in one shell"));
  }
  return absl::OkStatus();
}

double orbital_period_s(double semi_major_axis_m) {
  return two_pi * std::sqrt(semi_major_axis_m * semi_major_axis_m * semi_major_axis_m /
                            earth_gm_m3_per_s2);
}

double mean_motion_rad_per_s(double semi_major_axis_m) {
  return std::sqrt(earth_gm_m3_per_s2 /
                   (semi_major_axis_m * semi_major_axis_m * semi_major_axis_m));
}

double semi_major_axis_m(const walker_shell& shell) {
  return wgs84_equatorial_radius_m + shell.altitude_m;
}

double in_plane_neighbour_distance_m(const walker_shell& shell) {
  return 2.0 * semi_major_axis_m(shell) * std::sin(std::numbers::pi / shell.sats_per_plane);
}

double circular_pair_distance_m(double a_m, double inclination_rad, double delta_raan_rad,
                                double u1_rad, double u2_rad) {
  const double ci = std::cos(inclination_rad);
  const double si = std::sin(inclination_rad);
  const double cw = std::cos(delta_raan_rad);
  const double sw = std::sin(delta_raan_rad);
  const double cos_g = cw * std::cos(u1_rad) * std::cos(u2_rad) +
                       ci * sw * std::sin(u1_rad - u2_rad) +
                       (ci * ci * cw + si * si) * std::sin(u1_rad) * std::sin(u2_rad);
  return a_m * std::sqrt(std::max(0.0, 2.0 * (1.0 - cos_g)));
}

double inter_plane_phase_offset_rad(const walker_shell& shell) {
  return two_pi * shell.phasing / (double{1} * shell.planes * shell.sats_per_plane);
}

double inter_plane_neighbour_distance_m(const walker_shell& shell, double u_rad) {
  return circular_pair_distance_m(semi_major_axis_m(shell),
                                  shell.inclination_deg * radians_per_degree,
                                  shell.raan_spread_deg / shell.planes * radians_per_degree,
                                  u_rad, u_rad + inter_plane_phase_offset_rad(shell));
}

absl::StatusOr<walker_constellation> walker_constellation::make(std::vector<walker_shell> shells) {
  if (shells.empty()) {
    return absl::InvalidArgumentError("a Walker constellation needs at least one shell");
  }
  walker_constellation c;
  std::size_t total = 0;
  for (std::size_t s = 0; s < shells.size(); ++s) {
    if (absl::Status st = validate(shells[s]); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("shell ", s, ": ", st.message()));
    }
    c.first_.push_back(total);
    total += static_cast<std::size_t>(shells[s].planes) * shells[s].sats_per_plane;
  }
  c.sats_.reserve(total);
  for (std::size_t s = 0; s < shells.size(); ++s) {
    const walker_shell& sh = shells[s];
    const double a = semi_major_axis_m(sh);
    const double n = mean_motion_rad_per_s(a);
    const double inc = sh.inclination_deg * radians_per_degree;
    const std::int64_t pattern = std::int64_t{sh.planes} * sh.sats_per_plane;
    for (int p = 0; p < sh.planes; ++p) {
      const double raan = p * (sh.raan_spread_deg / sh.planes) * radians_per_degree;
      const vec3 node{std::cos(raan), std::sin(raan), 0.0};
      const vec3 ahead{-std::sin(raan) * std::cos(inc), std::cos(raan) * std::cos(inc),
                       std::sin(inc)};
      for (int j = 0; j < sh.sats_per_plane; ++j) {
        // u0 = 2 pi (j P + F p) / (P S): an exact rational turn, reduced in
        // integers before the one rounding.
        const std::int64_t num = (std::int64_t{j} * sh.planes + std::int64_t{sh.phasing} * p) %
                                 pattern;
        walker_satellite sat;
        sat.shell = static_cast<int>(s);
        sat.plane = p;
        sat.index = j;
        sat.semi_major_axis_m = a;
        sat.inclination_rad = inc;
        sat.raan_rad = raan;
        sat.arg_latitude_at_epoch_rad = two_pi * static_cast<double>(num) / pattern;
        sat.mean_motion_rad_per_s = n;
        sat.node_dir = node;
        sat.ahead_dir = ahead;
        c.sats_.push_back(sat);
      }
    }
  }
  c.shells_ = std::move(shells);
  return c;
}

std::size_t walker_constellation::id(int shell, int plane, int index) const {
  const walker_shell& sh = shells_[static_cast<std::size_t>(shell)];
  return first_of_shell(shell) + static_cast<std::size_t>(plane) * sh.sats_per_plane +
         static_cast<std::size_t>(index);
}

double walker_constellation::arg_latitude_rad(std::size_t k, double t_s) const {
  const walker_satellite& s = sats_[k];
  return s.arg_latitude_at_epoch_rad + s.mean_motion_rad_per_s * t_s;
}

vec3 walker_constellation::eci_at(std::size_t k, double t_s) const {
  const walker_satellite& s = sats_[k];
  const double u = arg_latitude_rad(k, t_s);
  return s.semi_major_axis_m * (std::cos(u) * s.node_dir + std::sin(u) * s.ahead_dir);
}

state_vector walker_constellation::eci_state_at(std::size_t k, double t_s) const {
  const walker_satellite& s = sats_[k];
  const double u = arg_latitude_rad(k, t_s);
  const double cu = std::cos(u);
  const double su = std::sin(u);
  const double speed = s.semi_major_axis_m * s.mean_motion_rad_per_s;
  return {s.semi_major_axis_m * (cu * s.node_dir + su * s.ahead_dir),
          speed * (cu * s.ahead_dir - su * s.node_dir)};
}

vec3 walker_constellation::ecef_at(std::size_t k, double t_s, double gmst0_rad) const {
  return teme_to_ecef_at_gmst(eci_at(k, t_s), gmst0_rad + earth_rotation_rate_rad_per_s * t_s);
}

std::vector<vec3> walker_constellation::ecef_all(double t_s, double gmst0_rad) const {
  const double gmst = gmst0_rad + earth_rotation_rate_rad_per_s * t_s;
  std::vector<vec3> out;
  out.reserve(sats_.size());
  for (std::size_t k = 0; k < sats_.size(); ++k) {
    out.push_back(teme_to_ecef_at_gmst(eci_at(k, t_s), gmst));
  }
  return out;
}

std::size_t walker_constellation::in_plane_next(std::size_t k) const {
  const walker_satellite& s = sats_[k];
  const int per_plane = shells_[static_cast<std::size_t>(s.shell)].sats_per_plane;
  return id(s.shell, s.plane, (s.index + 1) % per_plane);
}

std::optional<std::size_t> walker_constellation::inter_plane_next(std::size_t k) const {
  const walker_satellite& s = sats_[k];
  const walker_shell& sh = shells_[static_cast<std::size_t>(s.shell)];
  if (sh.planes < 2) return std::nullopt;
  if (s.plane + 1 < sh.planes) return id(s.shell, s.plane + 1, s.index);
  if (sh.raan_spread_deg != 360.0) return std::nullopt;
  return id(s.shell, 0, (s.index + sh.phasing) % sh.sats_per_plane);
}

}  // namespace satemu::runtime
