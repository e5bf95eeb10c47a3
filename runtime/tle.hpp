/// satemu two-line element sets (TLEs): parsing and validation.
///
/// Reads the NORAD two-line format as published by CelesTrak and Space-Track,
/// in 3-line form (a name line, then lines 1 and 2) or bare 2-line form, with
/// LF, CRLF (or CR CR LF) line ends, trailing whitespace and blank lines.
/// A name line of the "0 NAME" (3LE) form loses its "0 " prefix.
///
/// Every line 1 and line 2 is checked strictly: length 69, line number in
/// column 1, the modulo-10 checksum in column 69 (digits count their value,
/// '-' counts 1), fixed separator columns, every numeric field, and matching
/// catalog numbers on both lines. Errors are InvalidArgument and name the
/// source and the 1-based line:
///
///     data/x.tle:12: checksum is 7, computed 3
///     data/x.tle:8: columns 9-16 (inclination): ' 53.15x8' is not a number
///
/// Units are the TLE's own (degrees, revolutions per day); converting to the
/// model's units is the propagator's job (runtime/sgp4.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace satemu::runtime {

/// One element set, as written in the file.
struct tle {
  /// Name line with surrounding blanks removed; empty for a 2-line set.
  std::string name;
  /// NORAD catalog number; Alpha-5 numbers ("A0001" = 100001) are decoded.
  int catalog_number = 0;
  /// Classification letter (column 8 of line 1), usually 'U'.
  char classification = 'U';
  /// International designator (columns 10-17 of line 1), blanks trimmed.
  std::string international_designator;
  /// Four-digit epoch year (two-digit years 57-99 are 19xx, 00-56 are 20xx).
  int epoch_year = 0;
  /// Day of the year of the epoch, 1.0 = January 1st 00:00 UTC.
  double epoch_day = 0;
  /// First derivative of mean motion divided by 2 [rev/day^2].
  double ndot = 0;
  /// Second derivative of mean motion divided by 6 [rev/day^3].
  double nddot = 0;
  /// SGP4 drag term B* [1/earth radii].
  double bstar = 0;
  double inclination_deg = 0;
  /// Right ascension of the ascending node.
  double raan_deg = 0;
  /// Eccentricity, in [0, 1).
  double eccentricity = 0;
  double arg_perigee_deg = 0;
  double mean_anomaly_deg = 0;
  /// Kozai mean motion [rev/day], > 0.
  double mean_motion_rev_per_day = 0;
  /// Element set number (columns 65-68 of line 1); 0 when blank.
  int element_set_number = 0;
  /// Revolution number at epoch (columns 64-68 of line 2); 0 when blank.
  int revolution_number = 0;

  /// The file (or the name given to parse_tle_text) this set came from.
  std::string source;
  /// 1-based line number of this set's line 1 in `source`.
  int line = 0;

  /// Epoch as a Julian date (UTC), as SGP4 implementations count it. A double
  /// resolves about 40 us at today's dates; use `epoch_jd_midnight()` plus
  /// `epoch_day_fraction()` where that matters.
  double epoch_jd() const;
  /// Julian date of 00:00 UTC of the epoch's day (always ends in .5).
  double epoch_jd_midnight() const;
  /// Fraction of the epoch's day elapsed at the epoch, in [0, 1).
  double epoch_day_fraction() const;
  /// Epoch as nanoseconds since 1970-01-01 00:00 UTC (no leap seconds,
  /// like POSIX time), rounded to the nearest nanosecond.
  std::int64_t epoch_unix_ns() const;
  /// "NAME (12345)" or "12345" without a name: for messages.
  std::string label() const;
};

/// Parses every element set in `text` (lines ending in LF, CR LF or CR; a
/// leading UTF-8 byte order mark is skipped). `source_name` is used in error
/// messages and stored in each `tle::source`. Empty text gives an empty list.
absl::StatusOr<std::vector<tle>> parse_tle_text(std::string_view text, std::string source_name);

/// Reads and parses the file at `path`. A missing or unreadable file, or a
/// directory, gives NotFound naming the path; a file with no element set
/// (empty, or blank lines only) InvalidArgument naming it.
absl::StatusOr<std::vector<tle>> load_tle_file(const std::string& path);

/// The modulo-10 checksum of columns 1-68 of a TLE line (shorter lines are
/// summed as far as they go).
int tle_checksum(std::string_view line);

}  // namespace satemu::runtime
