/// satemu SGP4: the near-Earth NORAD orbit propagator for TLEs.
///
/// Follows Vallado, Crawford, Hujsak and Kelso, "Revisiting Spacetrack Report
/// #3", AIAA 2006-6753, with the WGS-72 constants the standard prescribes
/// (mu = 398600.8 km^3/s^2, Earth radius 6378.135 km, J2, J3, J4 of WGS-72)
/// and the improved ('i') operation mode. Those constants belong to the
/// model (TLEs are fitted with them) and stay in sgp4.cpp, apart from the
/// WGS-84 constants in runtime/constants.hpp.
///
/// Only the near-Earth model is implemented: element sets with an orbital
/// period of 225 minutes or more need SDP4 (lunar-solar and resonance terms)
/// and are rejected by `make`. Every LEO constellation is near-Earth.
///
/// Frame and units: positions in km and velocities in km/s in TEME (True
/// Equator, Mean Equinox of date), the frame SGP4 is defined in; time as
/// minutes since the element set's epoch. Converting to Earth-fixed
/// coordinates (GMST) is runtime/frames.hpp's job.
///
/// Validated against python3-sgp4 (the reference implementation) in
/// tests/runtime/sgp4_test.cpp: within 1 m and 1 mm/s over 4 days.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "runtime/tle.hpp"

namespace satemu::runtime {

/// An initialised near-Earth SGP4 propagator for one element set.
/// Immutable after `make`; copyable; `at_minutes` and `propagate` are const
/// and safe to call from several threads at once.
class sgp4 {
public:
  /// Position and velocity in TEME.
  struct state {
    double r_km[3];
    double v_km_s[3];
  };

  /// The standard's error codes (returned by `propagate`, numbered as in
  /// Vallado 2006 and every reference implementation).
  enum class error_code : int {
    ok = 0,
    /// Mean eccentricity out of range [-0.001, 1).
    eccentricity_out_of_range = 1,
    /// Mean motion less than or equal to zero.
    negative_mean_motion = 2,
    /// Perturbed eccentricity out of range (deep space only; never here).
    perturbed_eccentricity_out_of_range = 3,
    /// Semi-latus rectum below zero.
    negative_semi_latus_rectum = 4,
    /// Epoch elements sub-orbital (no longer raised by the standard).
    suborbital = 5,
    /// Orbit radius below one Earth radius: the satellite has decayed.
    decayed = 6,
  };

  /// Initialises the model for `t`. Unimplemented naming `t.source:t.line`
  /// for a deep-space element set ("deep-space element set (period 720.0
  /// min) not supported: SDP4 is not implemented"); InvalidArgument for
  /// elements the model rejects at epoch (one of the error codes above).
  static absl::StatusOr<sgp4> make(const tle& t);

  /// State at `tsince_min` minutes after epoch (negative: before). An
  /// InvalidArgument for the standard's error conditions names the object,
  /// the time and the error code, e.g. "x.tle:4: STARLINK-1008 (44714) at
  /// +4320.0 min: satellite has decayed (SGP4 error 6)".
  absl::StatusOr<state> at_minutes(double tsince_min) const;

  /// The same without building a status: fills `out` and returns
  /// `error_code::ok`, or returns another code. For `decayed`, `out` still
  /// holds the (sub-surface) state, as in the reference.
  error_code propagate(double tsince_min, state& out) const noexcept;

  /// Text of an error code ("satellite has decayed").
  static const char* describe(error_code e);

  int catalog_number() const { return catalog_number_; }
  /// Epoch as a Julian date (UTC), see `tle::epoch_jd`.
  double epoch_jd() const { return epoch_jd_; }
  /// Anomalistic period from the un-Kozai'd mean motion [min].
  double period_min() const;
  /// Mean motion at epoch after removing the Kozai correction [rad/min].
  double mean_motion_rad_min() const { return no_unkozai_; }

private:
  sgp4() = default;

  // Identification, for messages.
  std::string label_;
  std::string where_;
  int catalog_number_ = 0;
  double epoch_jd_ = 0;

  // Mean elements at epoch [rad, rad/min].
  double ecco_ = 0, inclo_ = 0, nodeo_ = 0, argpo_ = 0, mo_ = 0, no_unkozai_ = 0, bstar_ = 0;
  // Initialisation results (names from the report).
  bool isimp_ = false;
  double sinio_ = 0, cosio_ = 0;
  double con41_ = 0, x1mth2_ = 0, x7thm1_ = 0;
  double cc1_ = 0, cc4_ = 0, cc5_ = 0;
  double d2_ = 0, d3_ = 0, d4_ = 0;
  double eta_ = 0, delmo_ = 0, sinmao_ = 0;
  double mdot_ = 0, argpdot_ = 0, nodedot_ = 0, nodecf_ = 0;
  double omgcof_ = 0, xmcof_ = 0;
  double t2cof_ = 0, t3cof_ = 0, t4cof_ = 0, t5cof_ = 0;
  double xlcof_ = 0, aycof_ = 0;
};

}  // namespace satemu::runtime
