/// satemu histograms: log-linear buckets for latency-like values.
///
/// Values are non-negative integers (nanoseconds, bytes). Buckets have a
/// relative width of at most 1/64 (about 1.6%), so percentiles are exact to
/// that resolution; histograms merge by adding buckets, so per-entity
/// histograms combine into run-wide ones in any order with the same result.
#pragma once

#include <cstdint>
#include <vector>

namespace satemu::protocol {
class byte_writer;
class byte_reader;
} // namespace satemu::protocol

namespace satemu::runtime {

class histogram {
public:
  void record(std::int64_t value);
  void merge(const histogram& other);

  std::uint64_t count() const { return count_; }
  std::int64_t min() const { return count_ ? min_ : 0; }
  std::int64_t max() const { return count_ ? max_ : 0; }
  /// Mean of the recorded values (exact, from the running sum).
  double mean() const;
  /// The value at quantile q in [0, 1]: the upper edge of the bucket that
  /// holds it, clamped to [min, max]. 0 when empty.
  std::int64_t quantile(double q) const;

  /// Exact round trip of the whole state (distributed runs).
  void save(protocol::byte_writer& w) const;
  void load(protocol::byte_reader& r);

private:
  void add(std::size_t bucket, std::uint64_t n);
  static constexpr int sub_bits = 6; // 64 sub-buckets per power of two
  static std::size_t bucket_of(std::uint64_t v);
  static std::uint64_t upper_edge(std::size_t bucket);

  // Counts of buckets [offset_, offset_ + buckets_.size()): only the range
  // actually seen is stored, so a histogram of similar values stays small.
  std::vector<std::uint64_t> buckets_;
  std::size_t offset_ = 0;
  std::uint64_t count_ = 0;
  std::int64_t min_ = 0;
  std::int64_t max_ = 0;
  long double sum_ = 0;
};

} // namespace satemu::runtime
