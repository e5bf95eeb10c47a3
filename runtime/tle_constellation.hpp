/// satemu constellations from TLE files: SGP4 positions and a +Grid ISL
/// pattern recovered from the elements.
///
/// Emulated time 0 is the UTC instant `start`; a satellite's position at
/// emulated time t is its SGP4 state at (start + t) - epoch, rotated to
/// Earth-fixed (PEF) axes with the GMST of start + t (UT1 = UTC). A
/// propagation that fails (a decayed object), or a position below
/// `floor_radius_m()`, gives a position of NaNs: the topology treats that
/// satellite as down.
///
/// A TLE file carries no plane or shell numbers, so they are recovered from
/// the orbits at `start`, each key clustered around its densest values (the
/// satellite with the most others within half the tolerance takes them, then
/// the next densest of those left), so that no cluster spans more than its
/// tolerance and objects between shells or planes do not chain them:
/// - groups (the "shells"): by inclination (`inclination_tolerance`), each
///   of those by mean altitude (`altitude_tolerance`);
/// - planes: a group's satellites by right ascension of the ascending node
///   (RAAN, around the circle; `raan_tolerance`), in RAAN order;
/// - +Grid candidates: in a plane, each satellite and the next by argument
///   of latitude (a ring); between planes, each satellite and one of the
///   next plane by RAAN (wrapping) that holds at least half as many
///   satellites, each of those linked to at most one satellite of a plane
///   before it: the closest pairs in argument of latitude first (each
///   satellite looks at the 64 nearest of the next plane), so that no
///   satellite has more than two inter-plane links. Objects still raising or
///   lowering their orbits end up in groups or planes of their own, as they
///   would have no fixed neighbours in reality.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/frames.hpp"
#include "runtime/sgp4.hpp"
#include "runtime/tle.hpp"
#include "runtime/topology.hpp"

namespace satemu::runtime {

struct tle_grouping {
  double inclination_tolerance_deg = 0.5;
  double altitude_tolerance_m = 25e3;
  double raan_tolerance_deg = 2.0;
};

class tle_constellation {
public:
  /// `start_unix_ns`: emulated time 0 as ns since 1970-01-01 UTC. Fails
  /// (InvalidArgument naming file:line) for a deep-space element set, or
  /// when no set is usable. Sets the model rejects at their epoch or at
  /// the start (e.g. a decayed object) are left out and listed by
  /// `rejected()`.
  static absl::StatusOr<tle_constellation> make(std::vector<tle> sets, std::int64_t start_unix_ns,
                                                const tle_grouping& grouping = {});

  /// The latest epoch of the sets, as ns since 1970-01-01 UTC.
  static std::int64_t latest_epoch_unix_ns(const std::vector<tle>& sets);

  std::size_t size() const { return sats_.size(); }
  const tle& element_set(std::size_t k) const { return sets_[k]; }
  std::int64_t start_unix_ns() const { return start_unix_ns_; }

  /// Earth-fixed positions [m] of every satellite at emulated time `t_s`.
  std::vector<vec3> ecef_all(double t_s) const;
  /// Earth-fixed position [m] of satellite k at `t_s` (NaN where the model
  /// fails or the satellite is below the floor).
  vec3 ecef_at(std::size_t k, double t_s) const;

  /// Group (shell) of every satellite, and how many there are.
  const std::vector<std::uint16_t>& group_of() const { return group_of_; }
  std::size_t groups() const { return groups_; }
  /// Planes found, over all groups.
  std::size_t planes() const { return planes_; }
  /// Plane of every satellite (0 .. planes()-1, numbered group by group).
  const std::vector<std::uint32_t>& plane_of() const { return plane_of_; }
  const std::vector<isl_candidate>& candidates() const { return candidates_; }
  /// Element sets the model rejected at their epoch (left out), as messages.
  const std::vector<std::string>& rejected() const { return rejected_; }
  /// Satellites closer to the Earth's centre than this [m] are down
  /// (decaying, re-entering): the lowest mean perigee radius of any set
  /// less 50 km (SGP4's short-period terms), and at least 80 km above the
  /// equatorial radius. No ground link or ISL is ever shorter than what
  /// this floor allows, so the run's lookahead holds while sets decay.
  double floor_radius_m() const { return floor_radius_m_; }
  /// Mean perigee radius of satellite k's set (from its mean motion and
  /// eccentricity) [m].
  double mean_perigee_radius_m(std::size_t k) const;

private:
  std::vector<tle> sets_;
  std::vector<sgp4> sats_;
  /// Minutes from each set's epoch to emulated time 0.
  std::vector<double> offset_min_;
  std::int64_t start_unix_ns_ = 0;
  std::vector<std::uint16_t> group_of_;
  std::size_t groups_ = 0;
  std::size_t planes_ = 0;
  std::vector<std::uint32_t> plane_of_;
  std::vector<isl_candidate> candidates_;
  double floor_radius_m_ = 0;

  vec3 ecef_of(std::size_t k, double t_min, double gmst_rad) const;
  std::vector<std::string> rejected_;
};

/// Parses "2026-02-24T12:00:00Z" (also without the Z, or with fractional
/// seconds) as ns since 1970-01-01 UTC.
absl::StatusOr<std::int64_t> parse_utc(std::string_view text);

/// Formats ns since 1970-01-01 UTC as "2026-02-24T12:00:00.000Z".
std::string format_utc(std::int64_t unix_ns);

} // namespace satemu::runtime
