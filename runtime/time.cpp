// satemu emulated time: text forms, and spans from floating point.
#include "runtime/time.hpp"

#include <cmath>
#include <cstdint>
#include <string>

namespace satemu::runtime {

namespace {

// Writes |ns| / 10^unit_digits as an exact decimal (trailing zeros trimmed).
std::string exact_decimal(std::uint64_t ns, int unit_digits) {
  std::uint64_t scale = 1;
  for (int i = 0; i < unit_digits; ++i) scale *= 10;
  std::string out = std::to_string(ns / scale);
  std::uint64_t frac = ns % scale;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, static_cast<std::size_t>(unit_digits) - digits.size(), '0');
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    out += '.';
    out += digits;
  }
  return out;
}

} // namespace

duration duration::from_ns_saturated(double ns) {
  // 2^63 is the first double past the largest int64.
  if (!(ns < 9223372036854775808.0))
    return max();
  return duration{static_cast<std::int64_t>(std::llround(ns))};
}

// Exact by construction: hours and minutes only when they divide the span,
// otherwise the largest decimal unit (s, ms, us, ns) not above the span, so
// parse_duration(to_string(d)) == d for every d.
std::string to_string(duration d) {
  const std::int64_t ns = d.ns();
  // Magnitude as unsigned so that INT64_MIN does not overflow.
  const std::uint64_t mag = ns < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(ns)
                                   : static_cast<std::uint64_t>(ns);
  std::string sign = ns < 0 ? "-" : "";
  constexpr std::uint64_t ns_per_s = 1'000'000'000;
  if (mag == 0) return "0s";
  if (mag % (3600 * ns_per_s) == 0) return sign + std::to_string(mag / (3600 * ns_per_s)) + "h";
  if (mag % (60 * ns_per_s) == 0) return sign + std::to_string(mag / (60 * ns_per_s)) + "min";
  if (mag >= ns_per_s) return sign + exact_decimal(mag, 9) + "s";
  if (mag >= 1'000'000) return sign + exact_decimal(mag, 6) + "ms";
  if (mag >= 1'000) return sign + exact_decimal(mag, 3) + "us";
  return sign + std::to_string(mag) + "ns";
}

std::string to_string(vtime t) {
  if (t.is_never()) return "never";
  return to_string(duration::from_ns(t.ns()));
}

} // namespace satemu::runtime
