/// satemu physical constants, stated once.
///
/// Every physical constant the emulator uses lives here, each with its unit in
/// the name and its source in the comment. SI units throughout (metres,
/// seconds, radians). SGP4 is the one exception: the standard fixes its own
/// WGS-72 constants, which stay inside the propagator (runtime/sgp4.hpp).
#pragma once

#include <numbers>

namespace satemu::runtime {

/// Speed of light in vacuum [m/s]. Exact by definition of the metre
/// (SI, 17th CGPM, 1983).
inline constexpr double speed_of_light_m_per_s = 299'792'458.0;

/// The speed of light as the SkyMemory paper rounds it [m/s] (Sandholm et
/// al., arXiv 2505.14427, evaluation section). Only the analytic SkyMemory
/// model uses it, so that its figures match the paper's; it is 7 ppm above
/// the exact value, about 0.05 ns per kilometre.
inline constexpr double skymemory_speed_of_light_m_per_s = 2.998e8;

/// Earth's gravitational parameter GM, atmosphere included [m^3/s^2].
/// WGS-84 (NIMA TR8350.2, 3rd ed., Table 3.1).
inline constexpr double earth_gm_m3_per_s2 = 3.986004418e14;

/// Semi-major (equatorial) axis of the WGS-84 ellipsoid [m].
/// WGS-84 defining parameter (NIMA TR8350.2, Table 3.1).
inline constexpr double wgs84_equatorial_radius_m = 6'378'137.0;

/// Flattening f = (a - b) / a of the WGS-84 ellipsoid.
/// WGS-84 defining parameter 1/298.257223563 (NIMA TR8350.2, Table 3.1).
inline constexpr double wgs84_flattening = 1.0 / 298.257223563;

/// Semi-minor (polar) axis b = a (1 - f) of the WGS-84 ellipsoid [m],
/// derived (6356752.3142 m, NIMA TR8350.2, Table 3.3).
inline constexpr double wgs84_polar_radius_m =
    wgs84_equatorial_radius_m * (1.0 - wgs84_flattening);

/// First eccentricity squared e^2 = f (2 - f) of the WGS-84 ellipsoid,
/// derived (0.00669437999014, NIMA TR8350.2, Table 3.3).
inline constexpr double wgs84_eccentricity_sq = wgs84_flattening * (2.0 - wgs84_flattening);

/// Nominal mean angular velocity of the Earth [rad/s]: the sidereal rotation
/// rate. WGS-84 (NIMA TR8350.2, Table 3.1). Differs from the rate implied by
/// the IAU 1982 GMST formula (7.29211514670698e-5) by 2e-12 relative, far
/// below anything the emulator resolves.
inline constexpr double earth_rotation_rate_rad_per_s = 7.292115e-5;

/// Mean Earth radius [m]: the IUGG mean radius R1 = (2a + b) / 3 of the
/// ellipsoid, rounded to 6371 km (Moritz, "Geodetic Reference System 1980",
/// J. Geodesy 74 (2000)). For spherical-Earth models (e.g. SkyMemory's
/// coverage geometry), not for geodetic positions.
inline constexpr double earth_mean_radius_m = 6'371'000.0;

/// Second zonal harmonic J2 of the Earth's gravity field (dimensionless),
/// J2 = -sqrt(5) C20 with the WGS-84/EGM96 normalised C20 = -4.84166774985e-4
/// (NIMA TR8350.2, Table 3.1; the value python-sgp4's `wgs84` set uses).
/// Walker shells ignore it (circular Keplerian motion); it is here for
/// secular-drift (nodal precession) estimates.
inline constexpr double earth_j2 = 1.08262998905e-3;

/// Highest altitude a scenario may give a shell, an endpoint or a model's
/// grid [m]: past geostationary orbit's 35,786 km, short of the Moon.
inline constexpr double max_scenario_altitude_m = 100'000e3;

/// Full turn [rad].
inline constexpr double two_pi = 2.0 * std::numbers::pi;

/// Degrees to radians.
inline constexpr double radians_per_degree = std::numbers::pi / 180.0;

/// Radians to degrees.
inline constexpr double degrees_per_radian = 180.0 / std::numbers::pi;

}  // namespace satemu::runtime
