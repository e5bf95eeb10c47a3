#include "runtime/tle_constellation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "runtime/constants.hpp"

namespace satemu::runtime {

namespace {

constexpr std::int64_t ns_per_day = 86'400'000'000'000;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/// GMST at a UTC instant (UT1 = UTC), from the Julian date split into day
/// and fraction for precision.
double gmst_at(std::int64_t unix_ns) {
  const std::int64_t day = floor_div(unix_ns, ns_per_day);
  const double frac = static_cast<double>(unix_ns - day * ns_per_day) / static_cast<double>(ns_per_day);
  return gmst_rad(2440587.5 + static_cast<double>(day), frac);
}

double wrap_deg(double d) {
  d = std::fmod(d, 360.0);
  return d < 0 ? d + 360.0 : d;
}

/// Mean semi-major axis from the mean motion (Kepler's third law) [m].
double semi_major_axis_m(const tle& t) {
  const double n_rad_s = t.mean_motion_rev_per_day * two_pi / 86'400.0;
  return std::cbrt(earth_gm_m3_per_s2 / (n_rad_s * n_rad_s));
}

/// Orbit orientation at emulated time 0.
struct orientation {
  double inclination_deg;
  double raan_deg;
  double arg_latitude_deg;
  double altitude_m;
};

orientation orient(const tle& t, const sgp4& model, double offset_min) {
  const double a = semi_major_axis_m(t);
  orientation o{t.inclination_deg, t.raan_deg, wrap_deg(t.arg_perigee_deg + t.mean_anomaly_deg),
                a - wgs84_equatorial_radius_m};
  sgp4::state st{};
  if (model.propagate(offset_min, st) != sgp4::error_code::ok)
    return o;
  const vec3 r{st.r_km[0], st.r_km[1], st.r_km[2]};
  const vec3 v{st.v_km_s[0], st.v_km_s[1], st.v_km_s[2]};
  const vec3 h = cross(r, v);
  const double hn = norm(h);
  if (!(hn > 0))
    return o;
  o.inclination_deg = std::acos(std::clamp(h.z / hn, -1.0, 1.0)) * degrees_per_radian;
  const double raan = std::atan2(h.x, -h.y);
  o.raan_deg = wrap_deg(raan * degrees_per_radian);
  const vec3 node{std::cos(raan), std::sin(raan), 0};
  o.arg_latitude_deg =
    wrap_deg(std::atan2(dot(cross(node, r), h * (1.0 / hn)), dot(node, r)) * degrees_per_radian);
  return o;
}

/// Cuts `ids` (sorted by `key`) where consecutive keys differ by more than
/// `tol`; with `circular`, the largest gap around the circle is where the
/// first run starts, and a run may wrap past 360.
std::vector<std::vector<std::size_t>> split_sorted(std::vector<std::size_t> ids,
                                                   const std::vector<double>& key, double tol,
                                                   bool circular) {
  std::stable_sort(ids.begin(), ids.end(), [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
  std::vector<std::vector<std::size_t>> out;
  if (ids.empty())
    return out;
  std::size_t first = 0;
  if (circular) {
    // Start after the largest gap (the wrap gap counts), so no run is cut
    // by the 0/360 seam.
    double widest = key[ids.front()] + 360.0 - key[ids.back()];
    for (std::size_t i = 1; i < ids.size(); ++i)
      if (const double g = key[ids[i]] - key[ids[i - 1]]; g > widest) {
        widest = g;
        first = i;
      }
    std::rotate(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
  }
  out.push_back({ids[0]});
  for (std::size_t i = 1; i < ids.size(); ++i) {
    double gap = key[ids[i]] - key[ids[i - 1]];
    if (circular && gap < 0)
      gap += 360.0;
    if (gap > tol)
      out.emplace_back();
    out.back().push_back(ids[i]);
  }
  return out;
}

double circular_diff_deg(double a, double b) {
  const double d = std::fmod(std::abs(a - b), 360.0);
  return std::min(d, 360.0 - d);
}

} // namespace

std::int64_t tle_constellation::latest_epoch_unix_ns(const std::vector<tle>& sets) {
  std::int64_t latest = std::numeric_limits<std::int64_t>::min();
  for (const auto& t : sets)
    latest = std::max(latest, t.epoch_unix_ns());
  return latest;
}

absl::StatusOr<tle_constellation> tle_constellation::make(std::vector<tle> sets,
                                                          std::int64_t start_unix_ns,
                                                          const tle_grouping& grouping) {
  if (sets.empty())
    return absl::InvalidArgumentError("the TLE file holds no element sets");
  tle_constellation c;
  c.start_unix_ns_ = start_unix_ns;
  c.sats_.reserve(sets.size());
  c.min_perigee_radius_m_ = std::numeric_limits<double>::infinity();
  std::vector<orientation> orient_of;
  orient_of.reserve(sets.size());
  std::vector<tle> kept;
  kept.reserve(sets.size());
  for (auto& t : sets) {
    auto m = sgp4::make(t);
    if (!m.ok()) {
      // A deep-space set means the file is not a LEO constellation: refuse
      // it. A set the model rejects at its epoch (as the reference does) is
      // left out and reported.
      if (absl::StrContains(m.status().message(), "deep-space"))
        return m.status();
      c.rejected_.push_back(std::string(m.status().message()));
      continue;
    }
    const double offset = static_cast<double>(start_unix_ns - t.epoch_unix_ns()) / 60e9;
    // A set that cannot be propagated to the start (decayed by then, or
    // taken too far from its epoch) is left out the same way.
    sgp4::state at_start{};
    if (const auto ec = m->propagate(offset, at_start); ec != sgp4::error_code::ok) {
      c.rejected_.push_back(absl::StrCat(t.source, ":", t.line, ": ", t.label(),
                                         ": rejected at the start time, ", offset / 1440.0,
                                         " days from its epoch: ", sgp4::describe(ec),
                                         " (SGP4 error ", static_cast<int>(ec), ")"));
      continue;
    }
    c.offset_min_.push_back(offset);
    const double a = semi_major_axis_m(t);
    c.min_perigee_radius_m_ = std::min(c.min_perigee_radius_m_, a * (1.0 - t.eccentricity));
    orient_of.push_back(orient(t, *m, offset));
    c.sats_.push_back(std::move(*m));
    kept.push_back(std::move(t));
  }
  if (kept.empty())
    return absl::InvalidArgumentError(
      absl::StrCat("no usable element set (", c.rejected_.size(), " rejected, first: ",
                   c.rejected_.front(), ")"));
  c.sets_ = std::move(kept);

  const std::size_t n = c.sats_.size();
  std::vector<double> incl(n), alt(n), raan(n), u(n);
  for (std::size_t k = 0; k < n; ++k) {
    incl[k] = orient_of[k].inclination_deg;
    alt[k] = orient_of[k].altitude_m;
    raan[k] = orient_of[k].raan_deg;
    u[k] = orient_of[k].arg_latitude_deg;
  }
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  c.group_of_.assign(n, 0);
  c.plane_of_.assign(n, 0);
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
  auto add = [&](std::size_t a, std::size_t b, bool inter) {
    if (a == b)
      return;
    const auto lo = static_cast<std::uint32_t>(std::min(a, b));
    const auto hi = static_cast<std::uint32_t>(std::max(a, b));
    if (seen.insert({lo, hi}).second)
      c.candidates_.push_back({static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b), inter});
  };
  for (auto& by_incl : split_sorted(all, incl, grouping.inclination_tolerance_deg, false)) {
    for (auto& group : split_sorted(by_incl, alt, grouping.altitude_tolerance_m, false)) {
      const auto g = static_cast<std::uint16_t>(std::min<std::size_t>(c.groups_, 0xffff));
      ++c.groups_;
      for (auto k : group)
        c.group_of_[k] = g;
      auto planes = split_sorted(group, raan, grouping.raan_tolerance_deg, true);
      for (auto& p : planes)
        std::stable_sort(p.begin(), p.end(), [&](std::size_t a, std::size_t b) { return u[a] < u[b]; });
      for (std::size_t pi = 0; pi < planes.size(); ++pi)
        for (auto k : planes[pi])
          c.plane_of_[k] = static_cast<std::uint32_t>(c.planes_ + pi);
      c.planes_ += planes.size();
      for (std::size_t pi = 0; pi < planes.size(); ++pi) {
        const auto& p = planes[pi];
        // A ring; two satellites make one link, one makes none.
        const std::size_t ring = p.size() == 2 ? 1 : p.size() > 2 ? p.size() : 0;
        for (std::size_t i = 0; i < ring; ++i)
          add(p[i], p[(i + 1) % p.size()], false);
        if (planes.size() < 2)
          continue;
        const auto& next = planes[(pi + 1) % planes.size()];
        for (auto k : p) {
          std::size_t best = next.front();
          double best_d = std::numeric_limits<double>::infinity();
          for (auto j : next)
            if (const double d = circular_diff_deg(u[k], u[j]); d < best_d) {
              best_d = d;
              best = j;
            }
          add(k, best, true);
        }
      }
    }
  }
  return c;
}

std::vector<vec3> tle_constellation::ecef_all(double t_s) const {
  const double gmst = gmst_at(start_unix_ns_ + static_cast<std::int64_t>(std::llround(t_s * 1e9)));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<vec3> out(sats_.size());
  const double t_min = t_s / 60.0;
  for (std::size_t k = 0; k < sats_.size(); ++k) {
    sgp4::state st{};
    if (sats_[k].propagate(offset_min_[k] + t_min, st) != sgp4::error_code::ok) {
      out[k] = {nan, nan, nan};
      continue;
    }
    out[k] = teme_to_ecef_at_gmst({st.r_km[0] * 1e3, st.r_km[1] * 1e3, st.r_km[2] * 1e3}, gmst);
  }
  return out;
}

absl::StatusOr<std::int64_t> parse_utc(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double s = 0;
  char tail[8] = {0};
  const std::string str(text);
  const int got = std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%7s", &y, &mo, &d, &h, &mi, &s, tail);
  const bool tail_ok = got == 6 || (got == 7 && std::string(tail) == "Z");
  const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
  const int month_days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (got < 6 || !tail_ok || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h < 0 ||
      h > 23 || mi < 0 || mi > 59 || !(s >= 0 && s < 61))
    return absl::InvalidArgumentError(
      absl::StrCat("'", str, "' is not a UTC time like 2026-02-24T12:00:00Z"));
  // Nanoseconds since 1970 in 64 bits reach from 1677-09-21 to 2262-04-11.
  const auto bad_year = [&] {
    return absl::InvalidArgumentError(absl::StrCat("'", str, "': the year must be in 1678-2261"));
  };
  if (y < 1678 || y > 2261)
    return bad_year();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  const std::int64_t whole = static_cast<std::int64_t>(timegm(&tm));
  const std::int64_t ns = whole * 1'000'000'000 + static_cast<std::int64_t>(std::llround(s * 1e9));
  // A leap second (23:59:60) or seconds that round up reach into the next
  // minute, so the year must be checked again (what format_utc writes must
  // parse).
  constexpr std::int64_t year_2262_ns = 9'214'646'400'000'000'000;  // 2262-01-01T00:00:00Z
  if (ns >= year_2262_ns)
    return bad_year();
  return ns;
}

std::string format_utc(std::int64_t unix_ns) {
  const std::int64_t sec = floor_div(unix_ns, 1'000'000'000);
  const std::int64_t ms = (unix_ns - sec * 1'000'000'000) / 1'000'000;
  const std::time_t t = static_cast<std::time_t>(sec);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
}

} // namespace satemu::runtime
