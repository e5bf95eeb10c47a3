/// satemu quantities with units, as written in scenario files.
///
/// Parsers for the YAML scalars that carry a unit (`5ms`, `550km`, `53deg`,
/// `64MiB`, `10Gbps`) and the canonical text forms written to resolved
/// scenarios. Grammar of every quantity:
///
///     [+-] digits [. digits] [(e|E) [+-] digits]  [spaces]  unit
///
/// Leading and trailing whitespace is ignored; units are case-sensitive.
/// Decimal numbers are read digit by digit, never through a binary double
/// first: integer quantities (durations, data sizes) are exact, and real ones
/// (distance, angle, rate) are the correctly rounded double of the decimal.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/time.hpp"

namespace satemu::runtime {

/// A length in metres.
struct distance {
  double m = 0;
  constexpr double km() const { return m / 1000.0; }
  constexpr auto operator<=>(const distance&) const = default;
};

/// A plane angle in degrees.
struct angle {
  double deg = 0;
  /// This angle in radians.
  double rad() const;
  constexpr auto operator<=>(const angle&) const = default;
};

/// An amount of data in whole bytes.
struct data_size {
  std::uint64_t bytes = 0;
  constexpr auto operator<=>(const data_size&) const = default;
};

/// A data rate in bits per second.
struct data_rate {
  double bps = 0;
  constexpr auto operator<=>(const data_rate&) const = default;
};

/// Parses a non-negative duration. Units: ns, us (or µs), ms, s, min, h.
/// Decimals are converted exactly ("1.5s" = 1'500'000'000 ns); a value that is
/// not a whole number of nanoseconds ("1.5ns") is rejected, never rounded.
/// Errors (InvalidArgument): "missing unit, e.g. 5ms", "negative duration",
/// "unknown unit 'x' for a duration; expected one of ...", out of range.
absl::StatusOr<duration> parse_duration(std::string_view text);

/// Parses a distance, non-negative unless `allow_negative` (a height below
/// the ellipsoid). Units: m, km.
absl::StatusOr<distance> parse_distance(std::string_view text, bool allow_negative = false);

/// Parses an angle (may be negative). Units: deg, rad.
absl::StatusOr<angle> parse_angle(std::string_view text);

/// Parses a data size in whole bytes. Units: B; kB, MB, GB, TB (powers of
/// 1000); KiB, MiB, GiB, TiB (powers of 1024); bits b, kb, Mb, Gb, which must
/// come to whole bytes ("12b" is rejected). Negative sizes are rejected.
absl::StatusOr<data_size> parse_data_size(std::string_view text);

/// Parses a non-negative data rate. Units: bps, kbps, Mbps, Gbps, Tbps (powers
/// of 1000) and the byte variants Bps, kBps, MBps, GBps, TBps (x8).
absl::StatusOr<data_rate> parse_data_rate(std::string_view text);

/// Canonical text forms. Each is exact: parsing the text gives back the same
/// value, so resolved scenarios reload to identical values.
/// distance: "km" from 1 km up, else "m" ("550km", "12.5m").
std::string to_string(distance d);
/// angle: always degrees ("53deg").
std::string to_string(angle a);
/// data_size: whichever of B, the largest decimal unit and the largest
/// binary unit not above the value gives the shortest number ("999B",
/// "1.5kB", "1.5KiB", "64MiB"); ties prefer B, then decimal units.
std::string to_string(data_size s);
/// data_rate: the largest bit-rate unit not above the value ("10Gbps").
std::string to_string(data_rate r);

} // namespace satemu::runtime
