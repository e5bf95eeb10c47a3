#include "runtime/tle_constellation.hpp"

#include <algorithm>
#include <tuple>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <numeric>
#include <queue>
#include <set>

#include "absl/strings/str_cat.h"
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

/// Clusters `ids` by `key` around its densest values: the id with the most
/// unclaimed ids within tol/2 of its key claims them all as one cluster,
/// then the next densest, until every id is claimed (ties: the lower key).
/// No cluster spans more than `tol`, and stragglers between dense values
/// form clusters of their own instead of chaining them into one. With
/// `circular` keys are angles in degrees (tol < 360) and distances wrap.
/// The clusters come sorted by the key of the id that claimed each.
std::vector<std::vector<std::size_t>> cluster_modes(std::vector<std::size_t> ids,
                                                    const std::vector<double>& key, double tol,
                                                    bool circular) {
  std::stable_sort(ids.begin(), ids.end(), [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
  const std::size_t n = ids.size();
  // Positions in the sorted order; with `circular` a window may run past
  // either end and wrap, as positions i - n and i + n with keys -/+ 360.
  const double half = tol / 2;
  const std::int64_t sn = static_cast<std::int64_t>(n);
  auto wrap = [&](std::int64_t j) { return static_cast<std::size_t>(((j % sn) + sn) % sn); };
  auto at = [&](std::int64_t j) {
    const auto w = wrap(j);
    return key[ids[w]] + 360.0 * static_cast<double>((j - static_cast<std::int64_t>(w)) / sn);
  };
  // The window of sorted position i: positions [lo, hi] within tol/2.
  std::vector<std::int64_t> lo(n), hi(n);
  const std::int64_t reach = circular ? sn - 1 : 0;
  for (std::int64_t i = 0, l = circular ? -reach : 0, h = 0; i < sn; ++i) {
    const double k = at(i);
    while (at(l) < k - half)
      ++l;
    h = std::max(h, i);
    while (h + 1 < sn + reach && at(h + 1) <= k + half)
      ++h;
    lo[static_cast<std::size_t>(i)] = std::max(l, i - reach);
    hi[static_cast<std::size_t>(i)] = std::min(h, lo[static_cast<std::size_t>(i)] + sn - 1);
  }
  std::vector<char> claimed(n, 0);
  auto unclaimed_in = [&](std::size_t i) {
    std::size_t c = 0;
    for (std::int64_t j = lo[i]; j <= hi[i]; ++j)
      c += claimed[wrap(j)] ? 0 : 1;
    return c;
  };
  // Most unclaimed neighbours first, then the lower key (position); counts
  // only fall, so a popped count that is still exact is the maximum.
  std::priority_queue<std::pair<std::size_t, std::int64_t>> heap;
  for (std::size_t i = 0; i < n; ++i)
    heap.push({hi[i] - lo[i] + 1, -static_cast<std::int64_t>(i)});
  std::vector<std::pair<double, std::vector<std::size_t>>> out;
  while (!heap.empty()) {
    const auto [count, neg] = heap.top();
    heap.pop();
    const auto i = static_cast<std::size_t>(-neg);
    if (claimed[i])
      continue;
    if (const auto now = unclaimed_in(i); now != count) {
      heap.push({now, neg});
      continue;
    }
    std::vector<std::size_t> cluster;
    for (std::int64_t j = lo[i]; j <= hi[i]; ++j)
      if (auto& c = claimed[wrap(j)]; !c) {
        c = 1;
        cluster.push_back(ids[wrap(j)]);
      }
    out.emplace_back(key[ids[i]], std::move(cluster));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<std::size_t>> clusters;
  clusters.reserve(out.size());
  for (auto& [k, c] : out)
    clusters.push_back(std::move(c));
  return clusters;
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

namespace {

/// The lowest a satellite may be: 80 km above the equatorial radius.
constexpr double lowest_radius_m = wgs84_equatorial_radius_m + 80e3;

} // namespace

absl::StatusOr<tle_constellation> tle_constellation::make(std::vector<tle> sets,
                                                          std::int64_t start_unix_ns,
                                                          const tle_grouping& grouping) {
  if (sets.empty())
    return absl::InvalidArgumentError("the TLE file holds no element sets");
  tle_constellation c;
  c.start_unix_ns_ = start_unix_ns;
  c.sats_.reserve(sets.size());
  double min_perigee = std::numeric_limits<double>::infinity();
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
      if (m.status().code() == absl::StatusCode::kUnimplemented)
        return absl::InvalidArgumentError(m.status().message());
      c.rejected_.push_back(std::string(m.status().message()));
      continue;
    }
    const double offset = static_cast<double>(start_unix_ns - t.epoch_unix_ns()) / 60e9;
    // A set that cannot be propagated to the start (decayed by then, or
    // taken too far from its epoch) is left out the same way.
    sgp4::state at_start{};
    const auto ec = m->propagate(offset, at_start);
    // The standard's checks pass elements that put the object below the
    // lowest altitude a satellite may have (a mean motion of 16.8 rev/day:
    // some 60 km up), or give no position at all: left out too, rather
    // than kept as a satellite down from the start.
    const double radius_m = 1e3 * std::hypot(at_start.r_km[0], at_start.r_km[1], at_start.r_km[2]);
    if (ec != sgp4::error_code::ok || !(radius_m >= lowest_radius_m)) {
      c.rejected_.push_back(absl::StrCat(
        t.source, ":", t.line, ": ", t.label(), ": rejected at the start time, ",
        offset / 1440.0, " days from its epoch: ",
        ec != sgp4::error_code::ok
          ? absl::StrCat(sgp4::describe(ec), " (SGP4 error ", static_cast<int>(ec), ")")
        : std::isfinite(radius_m)
          ? absl::StrFormat("%.0f km from the Earth's centre, less than the %.0f km (80 km up "
                            "at the equator) a satellite needs",
                            radius_m / 1e3, lowest_radius_m / 1e3)
          : std::string("SGP4 gives no position (elements outside its range)")));
      continue;
    }
    c.offset_min_.push_back(offset);
    const double a = semi_major_axis_m(t);
    min_perigee = std::min(min_perigee, a * (1.0 - t.eccentricity));
    orient_of.push_back(orient(t, *m, offset));
    c.sats_.push_back(std::move(*m));
    kept.push_back(std::move(t));
  }
  if (kept.empty())
    return absl::InvalidArgumentError(
      absl::StrCat("no usable element set (", c.rejected_.size(), " rejected, first: ",
                   c.rejected_.front(), ")"));
  c.sets_ = std::move(kept);
  c.floor_radius_m_ = std::max(min_perigee - 50e3, lowest_radius_m);

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
  // Whether a satellite has its inter-plane link towards the next plane, and
  // towards the previous one (a terminal for each neighbouring plane).
  std::vector<std::uint8_t> linked_on(n, 0), linked_back(n, 0);
  auto add = [&](std::size_t a, std::size_t b, bool inter) {
    if (a == b)
      return;
    const auto lo = static_cast<std::uint32_t>(std::min(a, b));
    const auto hi = static_cast<std::uint32_t>(std::max(a, b));
    if (seen.insert({lo, hi}).second)
      c.candidates_.push_back({static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b), inter});
  };
  for (auto& by_incl : cluster_modes(all, incl, grouping.inclination_tolerance_deg, false)) {
    for (auto& group : cluster_modes(by_incl, alt, grouping.altitude_tolerance_m, false)) {
      const auto g = static_cast<std::uint16_t>(std::min<std::size_t>(c.groups_, 0xffff));
      ++c.groups_;
      for (auto k : group)
        c.group_of_[k] = g;
      auto planes = cluster_modes(group, raan, grouping.raan_tolerance_deg, true);
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
        // The next plane by RAAN that holds at least half as many: a few
        // objects between two planes (raising their orbits) do not take
        // the links of a full plane.
        std::size_t ni = (pi + 1) % planes.size();
        while (ni != pi && 2 * planes[ni].size() < p.size())
          ni = (ni + 1) % planes.size();
        if (ni == pi)
          continue;
        // Each satellite links to one of the next plane, each of those to
        // at most one of this plane or any other: the closest pairs in
        // argument of latitude first (ties by satellite number). A
        // satellite looks at the `reach` nearest of the next plane (all of
        // a plane of real size), so large planes cost linear time.
        const auto& next = planes[ni];
        constexpr std::size_t reach = 64;
        const std::size_t looked = std::min(reach, next.size());
        std::vector<std::tuple<double, std::size_t, std::size_t>> pairs;
        pairs.reserve(p.size() * looked);
        for (auto k : p) {
          // `next` is in order of argument of latitude: start reach/2 before
          // the first at or past u[k], going round.
          const auto at = std::lower_bound(next.begin(), next.end(), u[k],
                                           [&](std::size_t j, double x) { return u[j] < x; });
          const std::size_t first =
              (static_cast<std::size_t>(at - next.begin()) + next.size() - looked / 2) %
              next.size();
          for (std::size_t i = 0; i < looked; ++i) {
            const std::size_t j = next[(first + i) % next.size()];
            pairs.emplace_back(circular_diff_deg(u[k], u[j]), k, j);
          }
        }
        std::sort(pairs.begin(), pairs.end());
        for (const auto& [d, k, j] : pairs) {
          if (linked_on[k] != 0 || linked_back[j] != 0)
            continue;
          linked_on[k] = linked_back[j] = 1;
          add(k, j, true);
        }
      }
    }
  }
  return c;
}

vec3 tle_constellation::ecef_of(std::size_t k, double t_min, double gmst_rad) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  sgp4::state st{};
  if (sats_[k].propagate(offset_min_[k] + t_min, st) != sgp4::error_code::ok)
    return {nan, nan, nan};
  const vec3 r{st.r_km[0] * 1e3, st.r_km[1] * 1e3, st.r_km[2] * 1e3};
  return norm(r) < floor_radius_m_ ? vec3{nan, nan, nan} : teme_to_ecef_at_gmst(r, gmst_rad);
}

double tle_constellation::mean_perigee_radius_m(std::size_t k) const {
  return semi_major_axis_m(sets_[k]) * (1.0 - sets_[k].eccentricity);
}

std::vector<vec3> tle_constellation::ecef_all(double t_s) const {
  const double gmst = gmst_at(start_unix_ns_ + static_cast<std::int64_t>(std::llround(t_s * 1e9)));
  std::vector<vec3> out(sats_.size());
  for (std::size_t k = 0; k < sats_.size(); ++k)
    out[k] = ecef_of(k, t_s / 60.0, gmst);
  return out;
}

vec3 tle_constellation::ecef_at(std::size_t k, double t_s) const {
  return ecef_of(k, t_s / 60.0,
                 gmst_at(start_unix_ns_ + static_cast<std::int64_t>(std::llround(t_s * 1e9))));
}

absl::StatusOr<std::int64_t> parse_utc(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double s = -1;
  int at = -1;
  const std::string str(text);
  const int got = std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%n", &y, &mo, &d, &h, &mi, &at);
  // The seconds as written, DD or DD.ddd, then an optional Z and nothing
  // more (no exponent, hex or trailing text).
  bool tail_ok = false;
  if (got == 5 && at > 0) {
    std::string_view rest = std::string_view(str).substr(static_cast<std::size_t>(at));
    std::size_t n = 0;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    const std::size_t whole = n;
    if (n < rest.size() && rest[n] == '.') {
      ++n;
      while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    }
    const auto tail = rest.substr(n);
    if (whole == 2 && (tail.empty() || tail == "Z")) {
      tail_ok = true;
      s = std::strtod(std::string(rest.substr(0, n)).c_str(), nullptr);
    }
  }
  const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
  const int month_days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (!tail_ok || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h < 0 ||
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
