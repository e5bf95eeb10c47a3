#include "runtime/histogram.hpp"

#include "protocol/bytes.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace satemu::runtime {

std::size_t histogram::bucket_of(std::uint64_t v) {
  // Values below 2^sub_bits get a bucket each; above, each power of two is cut
  // into 2^sub_bits equal parts.
  if (v < (1ULL << sub_bits))
    return static_cast<std::size_t>(v);
  const int msb = 63 - std::countl_zero(v);
  const int shift = msb - sub_bits;
  const std::uint64_t sub = (v >> shift) & ((1ULL << sub_bits) - 1);
  return static_cast<std::size_t>((shift + 1) << sub_bits) + sub;
}

std::uint64_t histogram::upper_edge(std::size_t bucket) {
  if (bucket < (1U << sub_bits))
    return bucket;
  const std::size_t shift = (bucket >> sub_bits) - 1;
  const std::uint64_t sub = bucket & ((1U << sub_bits) - 1);
  const std::uint64_t base = ((1ULL << sub_bits) | sub) << shift;
  return base + ((1ULL << shift) - 1);
}

void histogram::add(std::size_t b, std::uint64_t n) {
  if (buckets_.empty()) {
    offset_ = b;
    buckets_.assign(1, 0);
  } else if (b < offset_) {
    buckets_.insert(buckets_.begin(), offset_ - b, 0);
    offset_ = b;
  } else if (b >= offset_ + buckets_.size()) {
    buckets_.resize(b - offset_ + 1, 0);
  }
  buckets_[b - offset_] += n;
}

void histogram::record(std::int64_t value) {
  const std::uint64_t v = value < 0 ? 0 : static_cast<std::uint64_t>(value);
  add(bucket_of(v), 1);
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  sum_ += value;
}

void histogram::merge(const histogram& other) {
  if (other.count_ == 0)
    return;
  for (std::size_t i = 0; i < other.buckets_.size(); ++i)
    if (other.buckets_[i] != 0)
      add(other.offset_ + i, other.buckets_[i]);
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

double histogram::mean() const {
  return count_ ? static_cast<double>(sum_ / static_cast<long double>(count_)) : 0.0;
}

std::int64_t histogram::quantile(double q) const {
  if (count_ == 0)
    return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the value (1-based), nearest-rank definition.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      auto edge = static_cast<std::int64_t>(upper_edge(offset_ + b));
      return std::clamp(edge, min_, max_);
    }
  }
  return max_;
}

void histogram::save(protocol::byte_writer& w) const {
  w.u64(offset_);
  w.u64(count_);
  w.i64(min_);
  w.i64(max_);
  // The long double sum as two doubles: high + low holds its 64-bit
  // mantissa exactly, whatever the platform's long double.
  const auto hi = static_cast<double>(sum_);
  w.f64(hi);
  w.f64(static_cast<double>(sum_ - static_cast<long double>(hi)));
  w.u64(buckets_.size());
  for (auto b : buckets_)
    w.u64(b);
}

void histogram::load(protocol::byte_reader& r) {
  offset_ = r.u64("histogram offset");
  count_ = r.u64("histogram count");
  min_ = r.i64("histogram min");
  max_ = r.i64("histogram max");
  const auto hi = r.f64("histogram sum");
  const auto lo = r.f64("histogram sum");
  sum_ = static_cast<long double>(hi) + static_cast<long double>(lo);
  const auto n = r.count("histogram buckets", 8);
  if (offset_ > 4096 || n > 4096 - offset_) {
    r.fail("histogram out of range");
    return;
  }
  buckets_.assign(n, 0);
  for (auto& b : buckets_)
    b = r.u64("histogram bucket");
}

} // namespace satemu::runtime
