// satemu quantities with units: parsing and canonical text.
#include "runtime/quantity.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/suggest.hpp"

namespace satemu::runtime {

namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// A decimal number digits x 10^exp10, read from text without going through a
// binary double, so conversions below can be exact.
struct decimal {
  bool negative = false;
  std::string digits;  // no leading or trailing zeros; empty means zero
  int exp10 = 0;
  bool is_zero() const { return digits.empty(); }
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Splits `text` into a decimal number and the unit after it (trimmed).
// Returns false when `text` does not start with a number.
bool split_number(std::string_view text, decimal& num, std::string_view& unit) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  if (i < n && (text[i] == '+' || text[i] == '-')) {
    num.negative = text[i] == '-';
    ++i;
  }
  std::string raw;
  int frac_digits = 0;
  bool any = false;
  while (i < n && is_digit(text[i])) raw += text[i++], any = true;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && is_digit(text[i])) raw += text[i++], ++frac_digits, any = true;
  }
  if (!any) return false;
  long exp = 0;
  // An exponent only when digits follow, so that no unit is eaten.
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    std::size_t j = i + 1;
    bool neg = false;
    if (j < n && (text[j] == '+' || text[j] == '-')) neg = text[j++] == '-';
    if (j < n && is_digit(text[j])) {
      while (j < n && is_digit(text[j])) {
        exp = exp * 10 + (text[j++] - '0');
        if (exp > 100000) return false;
      }
      if (neg) exp = -exp;
      i = j;
    }
  }
  std::size_t lead = raw.find_first_not_of('0');
  if (lead == std::string::npos) {
    raw.clear();
  } else {
    raw.erase(0, lead);
  }
  int e = static_cast<int>(exp) - frac_digits;
  while (!raw.empty() && raw.back() == '0') raw.pop_back(), ++e;
  num.digits = std::move(raw);
  num.exp10 = num.is_zero() ? 0 : e;
  if (num.is_zero()) num.negative = false;
  unit = sv(absl::StripAsciiWhitespace(av(text.substr(i))));
  return true;
}

// How one unit converts to the base unit: value x num x 10^pow10 / den.
struct unit_def {
  std::string_view name;
  std::uint64_t num = 1;
  int pow10 = 0;
  std::uint64_t den = 1;
};

struct kind_def {
  std::string_view what;     // "a duration"
  std::string_view noun;     // "duration"
  std::string_view example;  // "5ms"
  const unit_def* units;
  std::size_t unit_count;
  std::string_view unit_list;  // for messages
};

constexpr unit_def duration_units[] = {
    {"ns", 1, 0, 1},  {"us", 1, 3, 1},  {"\xC2\xB5s", 1, 3, 1}, {"ms", 1, 6, 1},
    {"s", 1, 9, 1},   {"min", 60, 9, 1}, {"h", 3600, 9, 1}};
constexpr unit_def distance_units[] = {{"m", 1, 0, 1}, {"km", 1, 3, 1}};
constexpr unit_def angle_units[] = {{"deg", 1, 0, 1}, {"rad", 1, 0, 1}};
constexpr std::uint64_t kib = 1024;
constexpr unit_def size_units[] = {
    {"B", 1, 0, 1},
    {"kB", 1, 3, 1},
    {"MB", 1, 6, 1},
    {"GB", 1, 9, 1},
    {"TB", 1, 12, 1},
    {"KiB", kib, 0, 1},
    {"MiB", kib * kib, 0, 1},
    {"GiB", kib * kib * kib, 0, 1},
    {"TiB", kib * kib * kib * kib, 0, 1},
    {"b", 1, 0, 8},
    {"kb", 1, 3, 8},
    {"Mb", 1, 6, 8},
    {"Gb", 1, 9, 8}};
constexpr unit_def rate_units[] = {
    {"bps", 1, 0, 1},  {"kbps", 1, 3, 1}, {"Mbps", 1, 6, 1}, {"Gbps", 1, 9, 1},
    {"Tbps", 1, 12, 1}, {"Bps", 8, 0, 1},  {"kBps", 8, 3, 1}, {"MBps", 8, 6, 1},
    {"GBps", 8, 9, 1},  {"TBps", 8, 12, 1}};

constexpr kind_def duration_kind{"a duration", "duration", "5ms", duration_units,
                                 std::size(duration_units), "ns, us, ms, s, min, h"};
constexpr kind_def distance_kind{"a distance", "distance", "550km", distance_units,
                                 std::size(distance_units), "m, km"};
constexpr kind_def angle_kind{"an angle", "angle", "53deg", angle_units,
                              std::size(angle_units), "deg, rad"};
constexpr kind_def size_kind{"a data size", "data size", "64MiB", size_units,
                             std::size(size_units),
                             "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB; bits: b, kb, Mb, Gb"};
constexpr kind_def rate_kind{"a data rate", "data rate", "10Gbps", rate_units,
                             std::size(rate_units),
                             "bps, kbps, Mbps, Gbps, Tbps, Bps, kBps, MBps, GBps, TBps"};

struct parsed {
  decimal num;
  const unit_def* unit = nullptr;
};

absl::StatusOr<parsed> parse_parts(std::string_view text, const kind_def& kind,
                                   bool allow_negative) {
  std::string_view t = sv(absl::StripAsciiWhitespace(av(text)));
  if (t.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty value; expected ", av(kind.what), " like ", av(kind.example)));
  }
  parsed out;
  std::string_view unit;
  if (!split_number(t, out.num, unit)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", av(kind.what), ": a number followed by a unit, e.g. ", av(kind.example)));
  }
  // Zero is zero in every unit: a bare 0 needs none.
  if (unit.empty() && out.num.is_zero()) {
    out.unit = &kind.units[0];
    return out;
  }
  if (unit.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing unit, e.g. ", av(kind.example)));
  }
  for (std::size_t i = 0; i < kind.unit_count; ++i) {
    if (kind.units[i].name == unit) out.unit = &kind.units[i];
  }
  if (out.unit == nullptr) {
    // A size unit for a rate ("10Mb") or a rate unit for a size ("10Mbps").
    std::string near;
    const std::string other = unit.ends_with("ps") ? std::string(unit.substr(0, unit.size() - 2))
                                                   : absl::StrCat(av(unit), "ps");
    for (std::size_t i = 0; i < kind.unit_count; ++i)
      if (kind.units[i].name == other)
        near = absl::StrCat(" (did you mean '", other, "'?)");
    return absl::InvalidArgumentError(absl::StrCat("unknown unit ", in_quotes(unit), " for ",
                                                   av(kind.what), "; expected one of ",
                                                   av(kind.unit_list), near));
  }
  if (out.num.negative && !allow_negative) {
    return absl::InvalidArgumentError(absl::StrCat("negative ", av(kind.noun)));
  }
  return out;
}

using u128 = unsigned __int128;

// digits x 10^exp10 x num x 10^pow10 / den as an integer no larger than
// `limit`; nullopt with `why` set otherwise.
std::optional<std::uint64_t> exact_integer(const decimal& d, const unit_def& u,
                                           std::uint64_t limit, std::string& why) {
  if (d.is_zero()) return 0;
  const u128 cap = u128{1} << 100;
  if (d.digits.size() > 30) {
    why = "too large";
    return std::nullopt;
  }
  u128 v = 0;
  for (char c : d.digits) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v > cap / u.num) {
    why = "too large";
    return std::nullopt;
  }
  v *= u.num;
  long e = static_cast<long>(d.exp10) + u.pow10;
  for (; e > 0; --e) {
    if (v > cap / 10) {
      why = "too large";
      return std::nullopt;
    }
    v *= 10;
  }
  if (e < 0) {
    if (e < -38) {
      why = "fraction";
      return std::nullopt;
    }
    u128 p = 1;
    for (; e < 0; ++e) p *= 10;
    if (v % p != 0) {
      why = "fraction";
      return std::nullopt;
    }
    v /= p;
  }
  if (v % u.den != 0) {
    why = "fraction";
    return std::nullopt;
  }
  v /= u.den;
  if (v > limit) {
    why = "too large";
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(v);
}

absl::Status out_of_range(const kind_def& kind) {
  return absl::InvalidArgumentError(absl::StrCat(av(kind.noun), " out of range"));
}

// The correctly rounded double of digits x 10^(exp10 + pow10), times num/den
// (powers of two or 1, so exact unless the product overflows: "1e308TBps").
absl::StatusOr<double> to_double(const decimal& d, const unit_def& u, const kind_def& kind) {
  if (d.is_zero()) return 0.0;
  std::string s = absl::StrCat(d.digits, "e", static_cast<long>(d.exp10) + u.pow10);
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc()) v = v * static_cast<double>(u.num) / static_cast<double>(u.den);
  if (ec != std::errc() || !std::isfinite(v)) return out_of_range(kind);
  return d.negative ? -v : v;
}

// Formats digits x 10^exp as plain decimal text (exponent form when huge).
std::string format_decimal(bool negative, const std::string& digits, long exp) {
  if (digits.empty()) return "0";
  std::string out = negative ? "-" : "";
  const long n = static_cast<long>(digits.size());
  if (exp > 15 || -exp > 15 + n) return absl::StrCat(out, digits, "e", exp);
  if (exp >= 0) {
    out.append(digits);
    out.append(static_cast<std::size_t>(exp), '0');
  } else if (n > -exp) {
    out.append(digits, 0, static_cast<std::size_t>(n + exp));
    out.push_back('.');
    out.append(digits, static_cast<std::size_t>(n + exp));
  } else {
    out.append("0.");
    out.append(static_cast<std::size_t>(-exp - n), '0');
    out.append(digits);
  }
  return out;
}

// The shortest decimal that round-trips to `v`, as digits x 10^exp.
void shortest_decimal(double v, bool& negative, std::string& digits, long& exp) {
  negative = std::signbit(v) && v != 0;
  digits.clear();
  exp = 0;
  if (v == 0) return;
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(v), std::chars_format::scientific);
  std::string_view s(buf, static_cast<std::size_t>(res.ptr - buf));
  std::size_t epos = s.find('e');
  std::string_view mant = s.substr(0, epos);
  long e = std::stol(std::string(s.substr(epos + 1)));
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  exp = e - static_cast<long>(digits.size() - 1);
  while (!digits.empty() && digits.back() == '0') digits.pop_back(), ++exp;
}

// Writes `v` in the largest of `units` (decimal pow10 only) not above |v|.
std::string format_real(double v, const unit_def* units, std::size_t count) {
  bool neg;
  std::string digits;
  long exp;
  shortest_decimal(v, neg, digits, exp);
  const unit_def* best = &units[0];
  for (std::size_t i = 0; i < count; ++i) {
    if (std::fabs(v) >= std::pow(10.0, units[i].pow10) && units[i].pow10 >= best->pow10) {
      best = &units[i];
    }
  }
  return format_decimal(neg, digits, exp - best->pow10) + std::string(best->name);
}

} // namespace

double angle::rad() const { return deg * std::numbers::pi / 180.0; }

absl::StatusOr<duration> parse_duration(std::string_view text) {
  auto p = parse_parts(text, duration_kind, false);
  if (!p.ok()) return p.status();
  std::string why;
  auto ns = exact_integer(p->num, *p->unit,
                          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), why);
  if (!ns) {
    if (why == "fraction") {
      return absl::InvalidArgumentError(
          "not a whole number of nanoseconds");
    }
    return absl::InvalidArgumentError("duration too large (at most about 292 years)");
  }
  return duration::from_ns(static_cast<std::int64_t>(*ns));
}

absl::StatusOr<distance> parse_distance(std::string_view text, bool allow_negative) {
  auto p = parse_parts(text, distance_kind, allow_negative);
  if (!p.ok()) return p.status();
  auto v = to_double(p->num, *p->unit, distance_kind);
  if (!v.ok()) return v.status();
  return distance{*v};
}

absl::StatusOr<angle> parse_angle(std::string_view text) {
  auto p = parse_parts(text, angle_kind, true);
  if (!p.ok()) return p.status();
  auto v = to_double(p->num, *p->unit, angle_kind);
  if (!v.ok()) return v.status();
  if (p->unit->name != "rad") return angle{*v};
  const double deg = *v * 180.0 / std::numbers::pi;
  if (!std::isfinite(deg)) return out_of_range(angle_kind);
  return angle{deg};
}

absl::StatusOr<data_size> parse_data_size(std::string_view text) {
  auto p = parse_parts(text, size_kind, false);
  if (!p.ok()) return p.status();
  std::string why;
  auto bytes = exact_integer(p->num, *p->unit, std::numeric_limits<std::uint64_t>::max(), why);
  if (!bytes) {
    if (why == "fraction") return absl::InvalidArgumentError("not a whole number of bytes");
    return absl::InvalidArgumentError("data size too large");
  }
  return data_size{*bytes};
}

absl::StatusOr<data_rate> parse_data_rate(std::string_view text) {
  auto p = parse_parts(text, rate_kind, false);
  if (!p.ok()) return p.status();
  auto v = to_double(p->num, *p->unit, rate_kind);
  if (!v.ok()) return v.status();
  return data_rate{*v};
}

std::string to_string(distance d) { return format_real(d.m, distance_units, 2); }

std::string to_string(angle a) { return format_real(a.deg, angle_units, 1); }

std::string to_string(data_rate r) { return format_real(r.bps, rate_units, 5); }

std::string to_string(data_size s) {
  const std::uint64_t b = s.bytes;
  // The unit whose number is shortest wins; ties go to B, then decimal units.
  std::string best_num = std::to_string(b);
  std::string_view best_unit = "B";
  auto consider = [&](std::string num, std::string_view unit) {
    if (num.size() < best_num.size()) {
      best_num = std::move(num);
      best_unit = unit;
    }
  };
  // Largest decimal unit not above the value.
  static constexpr std::pair<int, std::string_view> dec[] = {
      {12, "TB"}, {9, "GB"}, {6, "MB"}, {3, "kB"}};
  for (auto [p, name] : dec) {
    std::uint64_t scale = 1;
    for (int i = 0; i < p; ++i) scale *= 10;
    if (b >= scale) {
      std::string digits = std::to_string(b);
      long exp = 0;
      while (digits.size() > 1 && digits.back() == '0') digits.pop_back(), ++exp;
      consider(format_decimal(false, digits, exp - p), name);
      break;
    }
  }
  // Largest binary unit not above the value: b / 2^(10k) always terminates.
  static constexpr std::pair<int, std::string_view> bin[] = {
      {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  for (auto [shift, name] : bin) {
    if (b >> shift) {
      std::string out = std::to_string(b >> shift);
      std::uint64_t rem = b & ((std::uint64_t{1} << shift) - 1);
      if (rem) out += '.';
      while (rem) {
        rem *= 10;
        out += static_cast<char>('0' + (rem >> shift));
        rem &= (std::uint64_t{1} << shift) - 1;
      }
      consider(std::move(out), name);
      break;
    }
  }
  return best_num + std::string(best_unit);
}

} // namespace satemu::runtime
