/// satemu emulated time: integer nanoseconds, as two strong types.
///
/// `duration` is a signed span, `vtime` a point on the emulated time line
/// (nanoseconds since the start of the run). Event times are never stored or
/// compared as floating point; build values from the unit helpers
/// (`milliseconds(5)`), not from bare numbers.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <string>

namespace satemu::runtime {

/// A signed span of emulated time in nanoseconds.
class duration {
public:
  constexpr duration() = default;
  /// The span of `ns` nanoseconds.
  static constexpr duration from_ns(std::int64_t ns) { return duration{ns}; }
  static constexpr duration zero() { return duration{0}; }
  static constexpr duration max() {
    return duration{std::numeric_limits<std::int64_t>::max()};
  }
  /// `ns` (>= 0, not NaN) rounded to the nearest nanosecond, or max() where
  /// that does not fit: for spans drawn or derived from user figures.
  static duration from_ns_saturated(double ns);

  /// Nanoseconds in this span.
  constexpr std::int64_t ns() const { return ns_; }
  /// This span in seconds (for reports and orbit maths, never for ordering).
  constexpr double seconds() const { return static_cast<double>(ns_) / 1e9; }

  constexpr auto operator<=>(const duration&) const = default;
  constexpr duration operator+(duration o) const { return duration{ns_ + o.ns_}; }
  constexpr duration operator-(duration o) const { return duration{ns_ - o.ns_}; }
  constexpr duration operator-() const { return duration{-ns_}; }
  constexpr duration operator*(std::int64_t k) const { return duration{ns_ * k}; }
  constexpr duration operator/(std::int64_t k) const { return duration{ns_ / k}; }
  constexpr duration& operator+=(duration o) { ns_ += o.ns_; return *this; }
  /// This span plus `o` (both >= 0), or max() where the sum would not fit:
  /// for spans added up from user figures (a slow device's queue).
  constexpr duration plus_or_max(duration o) const {
    return o.ns_ > std::numeric_limits<std::int64_t>::max() - ns_ ? max() : duration{ns_ + o.ns_};
  }
  constexpr duration& operator-=(duration o) { ns_ -= o.ns_; return *this; }

private:
  constexpr explicit duration(std::int64_t ns) : ns_(ns) {}
  std::int64_t ns_ = 0;
};

constexpr duration nanoseconds(std::int64_t n) { return duration::from_ns(n); }
constexpr duration microseconds(std::int64_t n) { return duration::from_ns(n * 1'000); }
constexpr duration milliseconds(std::int64_t n) { return duration::from_ns(n * 1'000'000); }
constexpr duration seconds(std::int64_t n) { return duration::from_ns(n * 1'000'000'000); }

/// A point in emulated time: nanoseconds since the start of the run.
class vtime {
public:
  constexpr vtime() = default;
  static constexpr vtime from_ns(std::int64_t ns) { return vtime{ns}; }
  static constexpr vtime zero() { return vtime{0}; }
  /// A time after every event; marks "nothing pending".
  static constexpr vtime never() {
    return vtime{std::numeric_limits<std::int64_t>::max()};
  }

  constexpr std::int64_t ns() const { return ns_; }
  constexpr double seconds() const { return static_cast<double>(ns_) / 1e9; }
  constexpr bool is_never() const { return *this == never(); }
  /// This time plus `d` (>= 0), or never() where the sum would not fit.
  constexpr vtime plus_or_never(duration d) const {
    return d.ns() >= std::numeric_limits<std::int64_t>::max() - ns_ ? never()
                                                                    : vtime{ns_ + d.ns()};
  }

  constexpr auto operator<=>(const vtime&) const = default;
  constexpr vtime operator+(duration d) const { return vtime{ns_ + d.ns()}; }
  constexpr vtime operator-(duration d) const { return vtime{ns_ - d.ns()}; }
  constexpr duration operator-(vtime o) const { return duration::from_ns(ns_ - o.ns_); }
  constexpr vtime& operator+=(duration d) { ns_ += d.ns(); return *this; }

private:
  constexpr explicit vtime(std::int64_t ns) : ns_(ns) {}
  std::int64_t ns_ = 0;
};

/// Human-readable form with the largest unit that keeps it exact-ish,
/// e.g. "5ms", "1.5s", "250ns".
std::string to_string(duration d);
std::string to_string(vtime t);

} // namespace satemu::runtime
