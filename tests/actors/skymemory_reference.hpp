// An independent, deliberately naive SkyMemory analytic model for the tests:
// written from the model's definition (README, SkyMemory section), sharing no
// code with actors/skymemory_model.*. It enumerates the whole grid, deals
// chunks out one by one, and computes every figure directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

namespace satemu::testing::skymemory_ref {

/// One model point; the centre is 1-based, as in scenario files.
struct point {
  int planes = 15, sats = 15;
  int center_plane = 8, center_sat = 8;
  double altitude_m = 1'920'000;
  std::uint64_t kv_bytes = 21ull * 1024 * 1024;
  std::uint64_t chunk_bytes = 12'288;
  int servers = 81;
  double chunk_s = 0.020;
};

struct answer {
  std::vector<std::pair<int, int>> layout; // (plane offset, satellite offset), layout order
  std::uint64_t chunks = 0;
  double fetch_s = 0, min_s = 0, mean_s = 0, std_s = 0;
  std::uint64_t migration_chunks = 0, migration_bytes = 0;
};

/// Shorter-way offset on a ring of n, found by trying both ways; a tie
/// (n/2 on an even ring) counts as the positive way.
inline int short_way(int from, int to, int n) {
  int fwd = to - from;
  while (fwd < 0)
    fwd += n;
  fwd %= n;
  const int back = fwd - n; // <= 0
  return fwd <= -back ? fwd : back;
}

/// Half-width of the box: the smallest side k with k*k >= S, halved; then
/// grown while the grid has fewer than S satellites within it.
inline int box_half_width(const point& p) {
  int k = 1;
  while (k * k < p.servers)
    ++k;
  int r = k / 2;
  for (;; ++r) {
    int inside = 0;
    for (int pl = 0; pl < p.planes; ++pl)
      for (int s = 0; s < p.sats; ++s)
        if (std::abs(short_way(p.center_plane - 1, pl, p.planes)) <= r &&
            std::abs(short_way(p.center_sat - 1, s, p.sats)) <= r)
          ++inside;
    if (inside >= p.servers)
      return r;
  }
}

/// Layout order: "rotation", "hop" or "hop_rotation".
inline std::vector<std::pair<int, int>> layout(const point& p, const std::string& strategy) {
  const int r = box_half_width(p);
  std::vector<std::pair<int, int>> out;
  if (strategy == "rotation") {
    for (int pl = 0; pl < p.planes; ++pl)
      for (int s = 0; s < p.sats; ++s) {
        const int dp = short_way(p.center_plane - 1, pl, p.planes);
        const int ds = short_way(p.center_sat - 1, s, p.sats);
        if (std::abs(dp) <= r && std::abs(ds) <= r)
          out.emplace_back(dp, ds);
      }
    std::sort(out.begin(), out.end());
    out.resize(static_cast<std::size_t>(p.servers));
    return out;
  }
  const bool boxed = strategy == "hop_rotation";
  std::vector<std::vector<bool>> seen(p.planes, std::vector<bool>(p.sats, false));
  std::deque<std::pair<int, int>> queue{{p.center_plane - 1, p.center_sat - 1}};
  seen[p.center_plane - 1][p.center_sat - 1] = true;
  while (!queue.empty() && static_cast<int>(out.size()) < p.servers) {
    const auto [pl, s] = queue.front();
    queue.pop_front();
    out.emplace_back(short_way(p.center_plane - 1, pl, p.planes),
                     short_way(p.center_sat - 1, s, p.sats));
    const std::pair<int, int> around[] = {{(pl + p.planes - 1) % p.planes, s},
                                          {pl, (s + 1) % p.sats},
                                          {(pl + 1) % p.planes, s},
                                          {pl, (s + p.sats - 1) % p.sats}};
    for (const auto& [np, ns] : around) {
      if (seen[np][ns])
        continue;
      if (boxed && (std::abs(short_way(p.center_plane - 1, np, p.planes)) > r ||
                    std::abs(short_way(p.center_sat - 1, ns, p.sats)) > r))
        continue;
      seen[np][ns] = true;
      queue.emplace_back(np, ns);
    }
  }
  return out;
}

inline answer evaluate(const point& p, const std::string& strategy) {
  constexpr double re = 6'371'000.0, c = 2.998e8;
  const double along_plane = 2 * (re + p.altitude_m) * std::sin(std::numbers::pi / p.sats);
  const double across_planes = 2 * (re + p.altitude_m) * std::sin(std::numbers::pi / p.planes);
  answer a;
  a.layout = layout(p, strategy);
  std::vector<std::uint64_t> chunks(a.layout.size(), 0), bytes(a.layout.size(), 0);
  for (std::uint64_t first = 0; first < p.kv_bytes; first += p.chunk_bytes) {
    const auto server = a.chunks % static_cast<std::uint64_t>(p.servers);
    chunks[server] += 1;
    bytes[server] += std::min(p.chunk_bytes, p.kv_bytes - first);
    ++a.chunks;
  }
  std::vector<double> times;
  for (std::size_t j = 0; j < a.layout.size(); ++j) {
    if (chunks[j] == 0)
      continue;
    const double x = std::abs(a.layout[j].first) * across_planes;
    const double y = std::abs(a.layout[j].second) * along_plane;
    const double dist =
      strategy == "hop" ? x + y : std::sqrt(x * x + y * y + p.altitude_m * p.altitude_m);
    times.push_back(dist / c + p.chunk_s * static_cast<double>(chunks[j]));
  }
  a.fetch_s = *std::max_element(times.begin(), times.end());
  a.min_s = *std::min_element(times.begin(), times.end());
  double sum = 0;
  for (double t : times)
    sum += t;
  a.mean_s = sum / static_cast<double>(times.size());
  double sq = 0;
  for (double t : times)
    sq += (t - a.mean_s) * (t - a.mean_s);
  a.std_s = std::sqrt(sq / static_cast<double>(times.size()));
  if (strategy != "hop") {
    // Each server's satellite, on the grid; one slot later it is where the
    // next satellite of its plane was, and its chunks move unless that
    // place is in the layout.
    std::vector<std::pair<int, int>> taken;
    for (const auto& [dp, ds] : a.layout)
      taken.emplace_back((p.center_plane - 1 + dp + p.planes) % p.planes,
                         (p.center_sat - 1 + ds + p.sats) % p.sats);
    for (std::size_t j = 0; j < taken.size(); ++j) {
      const std::pair<int, int> later{taken[j].first, (taken[j].second + 1) % p.sats};
      if (std::find(taken.begin(), taken.end(), later) == taken.end()) {
        a.migration_chunks += chunks[j];
        a.migration_bytes += bytes[j];
      }
    }
  }
  return a;
}

} // namespace satemu::testing::skymemory_ref
