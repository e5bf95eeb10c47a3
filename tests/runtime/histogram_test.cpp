// Tests of runtime::histogram against the exact percentiles of its samples:
// every percentile in summary.json comes from it, and the README promises
// each is at most 1/64 (about 1.6%) above the exact value, within [min, max],
// with mean, min and max exact, whatever order per-entity parts merge in.
#include "runtime/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace satemu::runtime {
namespace {

const double quantiles[] = {0.0, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};

/// The nearest-rank percentile of the sorted `v`: the ceil(q n)-th value.
std::int64_t exact(const std::vector<std::int64_t>& v, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

/// Seeded values spread over 40 octaves (1 ns to 18 minutes), with 0 and the
/// smallest values that share a bucket with nothing else.
std::vector<std::int64_t> samples(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> octave(0, 40);
  std::vector<std::int64_t> v = {0, 1, 63, 64, 65, 127, 128};
  while (v.size() < n)
    v.push_back(static_cast<std::int64_t>(std::exp2(octave(rng))));
  return v;
}

void expect_within_a_bucket(const histogram& h, std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  for (double q : quantiles) {
    const std::int64_t want = exact(v, q);
    const std::int64_t got = h.quantile(q);
    EXPECT_GE(got, want) << "q " << q;
    // Below 64 every value has a bucket of its own.
    EXPECT_LE(got, want < 64 ? want : want + want / 64) << "q " << q;
    EXPECT_GE(got, v.front()) << "q " << q;
    EXPECT_LE(got, v.back()) << "q " << q;
  }
}

TEST(histogram, percentiles_are_at_most_a_64th_above_the_exact_ones) {
  for (std::uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    const auto v = samples(seed, 20'000);
    histogram h;
    long double sum = 0;
    for (auto x : v) {
      h.record(x);
      sum += x;
    }
    EXPECT_EQ(h.count(), v.size());
    EXPECT_EQ(h.min(), *std::min_element(v.begin(), v.end()));
    EXPECT_EQ(h.max(), *std::max_element(v.begin(), v.end()));
    EXPECT_EQ(h.mean(), static_cast<double>(sum / v.size()));
    expect_within_a_bucket(h, v);
  }
}

TEST(histogram, small_cases_by_hand) {
  histogram empty;
  EXPECT_EQ(empty.count(), 0u);
  EXPECT_EQ(empty.quantile(0.5), 0);
  EXPECT_EQ(empty.mean(), 0.0);
  EXPECT_EQ(empty.min(), 0);
  EXPECT_EQ(empty.max(), 0);
  // 1,000 lies in [1000, 1007] (2^9 cut into 64 parts of 8): alone, it is
  // clamped to itself; with 2,000 above it, the median is the bucket's top.
  histogram h;
  h.record(1000);
  EXPECT_EQ(h.quantile(0.5), 1000);
  h.record(2000);
  EXPECT_EQ(h.quantile(0.5), 1007);
  EXPECT_EQ(h.quantile(0.51), 2000);
  EXPECT_EQ(h.quantile(0), 1007);
  EXPECT_EQ(h.mean(), 1500.0);
  // Values below 64 are exact.
  histogram small;
  for (int i = 0; i < 64; ++i)
    small.record(i);
  for (int i = 1; i <= 64; ++i)
    EXPECT_EQ(small.quantile(i / 64.0), i - 1) << i;
}

TEST(histogram, parts_merge_in_any_order_to_the_whole) {
  const auto v = samples(7, 10'000);
  histogram whole;
  std::vector<histogram> parts(7);
  for (std::size_t i = 0; i < v.size(); ++i) {
    whole.record(v[i]);
    parts[(i * 2654435761u) % parts.size()].record(v[i]);
  }
  parts[3] = histogram(); // an entity that recorded nothing
  histogram forward, backward;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    forward.merge(parts[i]);
    backward.merge(parts[parts.size() - 1 - i]);
  }
  histogram rest;
  for (std::size_t i = 0; i < v.size(); ++i)
    if ((i * 2654435761u) % parts.size() != 3)
      rest.record(v[i]);
  for (const histogram* m : {&forward, &backward}) {
    EXPECT_EQ(m->count(), rest.count());
    EXPECT_EQ(m->min(), rest.min());
    EXPECT_EQ(m->max(), rest.max());
    EXPECT_DOUBLE_EQ(m->mean(), rest.mean());
    for (double q : quantiles)
      EXPECT_EQ(m->quantile(q), rest.quantile(q)) << q;
  }
  EXPECT_EQ(whole.count(), v.size());
  EXPECT_GT(whole.count(), rest.count());
}

} // namespace
} // namespace satemu::runtime
