#include "runtime/tle.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/files.hpp"
#include "runtime/suggest.hpp"

namespace satemu::runtime {
namespace {

constexpr std::size_t line_length = 69;

// Debian's Abseil has its own string_view; StrCat does not take std's.
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// One physical line of the input, trailing whitespace removed.
struct text_line {
  std::string_view text;
  int number;
};

/// Lines end with LF, with CRs and an LF (CR LF, or CR CR LF from a file
/// converted twice), or with CRs alone (classic Mac files).
std::vector<text_line> split_lines(std::string_view text) {
  std::vector<text_line> lines;
  int number = 0;
  while (!text.empty()) {
    ++number;
    std::size_t end = text.find_first_of("\r\n");
    std::string_view raw = text.substr(0, end);
    if (end != std::string_view::npos && text[end] == '\r') {
      while (end + 1 < text.size() && text[end + 1] == '\r')
        ++end;
      if (end + 1 < text.size() && text[end + 1] == '\n')
        ++end;
    }
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    while (!raw.empty() && is_blank(raw.back())) raw.remove_suffix(1);
    if (!raw.empty()) lines.push_back({raw, number});
  }
  return lines;
}

/// Parses one TLE set's two lines; errors name `source:line`.
class set_parser {
public:
  set_parser(const std::string& source, tle& out) : source_(source), out_(out) {}

  absl::Status line1(const text_line& l) {
    cur_ = &l;
    if (auto s = common(l, '1'); !s.ok()) return s;
    const std::string_view t = l.text;
    if (auto s = separators(t, {2, 9, 18, 33, 44, 53, 62, 64}); !s.ok()) return s;
    auto cat = catalog(t.substr(2, 5));
    if (!cat.ok()) return cat.status();
    out_.catalog_number = *cat;
    out_.classification = t[7];
    out_.international_designator = std::string(trim(t.substr(9, 8)));

    auto year = integer(t, 19, 20, "epoch year", /*blank_is_zero=*/false);
    if (!year.ok()) return year.status();
    out_.epoch_year = *year < 57 ? 2000 + *year : 1900 + *year;
    auto day = real(t, 21, 32, "epoch day");
    if (!day.ok()) return day.status();
    const int y = out_.epoch_year;
    const int days = (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 366 : 365;
    if (!(*day >= 1.0 && *day < days + 1.0))
      return error(absl::StrCat("columns 21-32 (epoch day): ", *day, " is not a day of ", y,
                                " (in [1, ", days + 1, "))"));
    out_.epoch_day = *day;

    auto ndot = real(t, 34, 43, "first derivative of mean motion");
    if (!ndot.ok()) return ndot.status();
    out_.ndot = *ndot;
    auto nddot = exponent_field(t, 45, "second derivative of mean motion");
    if (!nddot.ok()) return nddot.status();
    out_.nddot = *nddot;
    auto bstar = exponent_field(t, 54, "B* drag term");
    if (!bstar.ok()) return bstar.status();
    out_.bstar = *bstar;
    auto elset = integer(t, 65, 68, "element set number", /*blank_is_zero=*/true);
    if (!elset.ok()) return elset.status();
    out_.element_set_number = *elset;
    return absl::OkStatus();
  }

  absl::Status line2(const text_line& l) {
    cur_ = &l;
    if (auto s = common(l, '2'); !s.ok()) return s;
    const std::string_view t = l.text;
    if (auto s = separators(t, {2, 8, 17, 26, 34, 43, 52}); !s.ok()) return s;
    auto cat = catalog(t.substr(2, 5));
    if (!cat.ok()) return cat.status();
    if (*cat != out_.catalog_number)
      return error(absl::StrCat("catalog number ", *cat, " on line 2 does not match ", out_.catalog_number,
                                " on line 1"));

    struct angle_field {
      int first, last;
      const char* what;
      double max;
      double* dest;
    };
    const angle_field angles[] = {
        {9, 16, "inclination", 180.0, &out_.inclination_deg},
        {18, 25, "right ascension of the ascending node", 360.0, &out_.raan_deg},
        {35, 42, "argument of perigee", 360.0, &out_.arg_perigee_deg},
        {44, 51, "mean anomaly", 360.0, &out_.mean_anomaly_deg},
    };
    for (const angle_field& f : angles) {
      auto v = real(t, f.first, f.last, f.what);
      if (!v.ok()) return v.status();
      if (!(*v >= 0.0 && *v <= f.max))
        return error(absl::StrFormat("columns %d-%d (%s): %s deg is outside [0, %g]", f.first,
                                     f.last, f.what,
                                     av(trim(t.substr(f.first - 1, f.last - f.first + 1))), f.max));
      *f.dest = *v;
    }

    // Eccentricity has an implied leading decimal point; blanks read as zeros
    // (some generators pad with spaces).
    std::string ecc = "0.";
    for (char c : t.substr(26, 7)) {
      if (c == ' ') c = '0';
      if (!is_digit(c))
        return error(absl::StrCat("columns 27-33 (eccentricity): '", av(t.substr(26, 7)),
                                  "' is not 7 digits with an implied decimal point"));
      ecc += c;
    }
    auto e = number(ecc, 27, 33, "eccentricity");
    if (!e.ok()) return e.status();
    out_.eccentricity = *e;

    auto n = real(t, 53, 63, "mean motion");
    if (!n.ok()) return n.status();
    if (!(*n > 0.0)) return error(absl::StrCat("columns 53-63 (mean motion): ", *n, " rev/day is not positive"));
    out_.mean_motion_rev_per_day = *n;
    auto rev = integer(t, 64, 68, "revolution number", /*blank_is_zero=*/true);
    if (!rev.ok()) return rev.status();
    out_.revolution_number = *rev;
    return absl::OkStatus();
  }

private:
  absl::Status error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", cur_->number, ": ", av(what)));
  }

  absl::Status common(const text_line& l, char which) const {
    const std::string_view t = l.text;
    if (t.size() != line_length)
      return error(absl::StrCat("TLE line ", av(std::string_view(&which, 1)), " is ", t.size(),
                                " characters long, expected 69"));
    if (t[0] != which || t[1] != ' ')
      return error(absl::StrCat("expected TLE line ", av(std::string_view(&which, 1)), " (starting '",
                                av(std::string_view(&which, 1)), " '), found '", av(t.substr(0, 20)), "...'"));
    if (!is_digit(t[68])) return error(absl::StrCat("checksum column 69 is '", av(t.substr(68, 1)), "', not a digit"));
    const int given = t[68] - '0';
    const int computed = tle_checksum(t);
    if (given != computed) return error(absl::StrCat("checksum is ", given, ", computed ", computed));
    return absl::OkStatus();
  }

  /// Columns (1-based) that must hold a blank.
  absl::Status separators(std::string_view t, std::initializer_list<int> columns) const {
    for (int c : columns)
      if (t[c - 1] != ' ')
        return error(absl::StrCat("column ", c, " must be blank, found '", av(t.substr(c - 1, 1)), "'"));
    return absl::OkStatus();
  }

  absl::StatusOr<int> catalog(std::string_view f) const {
    // Alpha-5: a leading letter A-Z (I and O skipped) stands for 10..33.
    int lead = 0;
    std::string_view digits = f;
    if (f[0] >= 'A' && f[0] <= 'Z' && f[0] != 'I' && f[0] != 'O') {
      lead = f[0] - 'A' + 10 - (f[0] > 'I') - (f[0] > 'O');
      digits = f.substr(1);
    }
    int value = 0;
    std::string_view d = trim(digits);
    if (d.empty()) return error(absl::StrCat("columns 3-7 (catalog number): '", av(f), "' is not a number"));
    for (char c : d) {
      if (!is_digit(c)) return error(absl::StrCat("columns 3-7 (catalog number): '", av(f), "' is not a number"));
      value = value * 10 + (c - '0');
    }
    return lead * 10000 + value;
  }

  /// Integer in 1-based columns [first, last], leading blanks allowed.
  absl::StatusOr<int> integer(std::string_view t, int first, int last, const char* what, bool blank_is_zero) const {
    const std::string_view raw = t.substr(first - 1, last - first + 1);
    const std::string_view f = trim(raw);
    if (f.empty() && blank_is_zero) return 0;
    int value = 0;
    // Digits only: every integer field of a TLE counts up from 0.
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (f.empty() || !is_digit(f[0]) || ec != std::errc{} || end != f.data() + f.size())
      return error(absl::StrFormat("columns %d-%d (%s): '%s' is not a whole number", first, last,
                                   what, av(raw)));
    return value;
  }

  /// Decimal number in 1-based columns [first, last], as written (optional
  /// sign, optional leading zero: "-.00100842").
  absl::StatusOr<double> real(std::string_view t, int first, int last, const char* what) const {
    return number(t.substr(first - 1, last - first + 1), first, last, what);
  }

  absl::StatusOr<double> number(std::string_view raw, int first, int last, const char* what) const {
    std::string_view f = trim(raw);
    bool negative = false;
    if (!f.empty() && (f[0] == '+' || f[0] == '-')) {
      negative = f[0] == '-';
      f.remove_prefix(1);
    }
    // from_chars reads the way Python's float() and strtod do: correctly
    // rounded, so elements match the reference implementation bit for bit.
    double value = 0;
    bool ok = !f.empty() && (is_digit(f[0]) || f[0] == '.');
    if (ok) {
      auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value, std::chars_format::fixed);
      ok = ec == std::errc{} && end == f.data() + f.size();
    }
    if (!ok) return error(absl::StrFormat("columns %d-%d (%s): '%s' is not a number", first, last, what, av(raw)));
    return negative ? -value : value;
  }

  /// The 8-column "mantissa with implied decimal point, signed exponent"
  /// form starting at 1-based column `first`: " 12345-3" = 0.12345e-3.
  absl::StatusOr<double> exponent_field(std::string_view t, int first, const char* what) const {
    const std::string_view f = t.substr(first - 1, 8);
    const auto bad = [&] {
      return error(absl::StrFormat(
          "columns %d-%d (%s): '%s' is not of the form ' 12345-3' (sign, 5 digits, exponent sign and digit)",
          first, first + 7, what, av(f)));
    };
    const char sign = f[0];
    if (sign != ' ' && sign != '+' && sign != '-') return bad();
    std::string mantissa = "0.";
    for (char c : f.substr(1, 5)) {
      if (!is_digit(c)) return bad();
      mantissa += c;
    }
    const char esign = f[6];
    if ((esign != ' ' && esign != '+' && esign != '-') || !is_digit(f[7])) return bad();
    double m = 0;
    std::from_chars(mantissa.data(), mantissa.data() + mantissa.size(), m);
    const int exponent = (esign == '-' ? -1 : 1) * (f[7] - '0');
    // Mantissa times a power of ten, in that order, as the reference does.
    const double v = m * std::pow(10.0, exponent);
    return sign == '-' ? -v : v;
  }

  const std::string& source_;
  tle& out_;
  const text_line* cur_ = nullptr;
};

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Julian date of 00:00 UTC on "day 0" (December 31st before) of `year`;
// valid 1901-2099, where every fourth year is a leap year.
double jd_day0(int year) { return year * 365.0 + (year - 1) / 4 + 1721044.5; }

}  // namespace

int tle_checksum(std::string_view line) {
  int sum = 0;
  for (char c : line.substr(0, std::min<std::size_t>(line.size(), 68))) {
    if (is_digit(c))
      sum += c - '0';
    else if (c == '-')
      sum += 1;
  }
  return sum % 10;
}

double tle::epoch_jd_midnight() const { return jd_day0(epoch_year) + std::floor(epoch_day); }

double tle::epoch_day_fraction() const { return epoch_day - std::floor(epoch_day); }

double tle::epoch_jd() const { return epoch_jd_midnight() + epoch_day_fraction(); }

std::int64_t tle::epoch_unix_ns() const {
  constexpr std::int64_t ns_per_day = 86'400'000'000'000;
  const auto days = static_cast<std::int64_t>(epoch_jd_midnight() - 2440587.5);
  return days * ns_per_day + std::llround(epoch_day_fraction() * static_cast<double>(ns_per_day));
}

std::string tle::label() const {
  if (name.empty()) return absl::StrCat(catalog_number);
  return absl::StrCat(name, " (", catalog_number, ")");
}

absl::StatusOr<std::vector<tle>> parse_tle_text(std::string_view text, std::string source_name) {
  if (starts_with(text, "\xEF\xBB\xBF"))
    text.remove_prefix(3); // a UTF-8 byte order mark
  const std::vector<text_line> lines = split_lines(text);
  std::vector<tle> sets;
  sets.reserve(lines.size() / 3 + 1);
  const auto err = [&](int number, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ":", number, ": ", av(what)));
  };
  std::size_t i = 0;
  while (i < lines.size()) {
    tle t;
    t.source = source_name;
    // A line that does not start like line 1 is a name line; the next must
    // then be line 1.
    if (!starts_with(lines[i].text, "1 ")) {
      if (starts_with(lines[i].text, "2 "))
        return err(lines[i].number, "found TLE line 2 without a line 1 before it");
      std::string_view name = trim(lines[i].text);
      if (starts_with(name, "0 ")) name = trim(name.substr(2));
      t.name = std::string(name);
      ++i;
      if (i == lines.size())
        return err(lines[i - 1].number,
                   absl::StrCat("name line ", in_quotes(t.name), " is not followed by TLE line 1"));
      if (!starts_with(lines[i].text, "1 "))
        return err(lines[i].number,
                   absl::StrCat("expected TLE line 1 (starting '1 ') after name line ",
                                in_quotes(t.name), ", found ",
                                in_quotes(lines[i].text.substr(0, 24))));
    }
    set_parser p(source_name, t);
    t.line = lines[i].number;
    if (auto s = p.line1(lines[i]); !s.ok()) return s;
    ++i;
    if (i == lines.size() || !starts_with(lines[i].text, "2 ")) {
      const int at = i == lines.size() ? lines[i - 1].number : lines[i].number;
      return err(at, absl::StrCat("TLE line 2 of catalog number ", t.catalog_number, " is missing (",
                                  i == lines.size() ? std::string("end of input")
                                                    : "found " + in_quotes(lines[i].text.substr(0, 24)),
                                  ")"));
    }
    if (auto s = p.line2(lines[i]); !s.ok()) return s;
    ++i;
    sets.push_back(std::move(t));
  }
  return sets;
}

absl::StatusOr<std::vector<tle>> load_tle_file(const std::string& path) {
  if (std::error_code ec; std::filesystem::is_directory(path, ec))
    return absl::NotFoundError(absl::StrCat(path, ": is a directory, not a TLE file"));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(
      absl::StrCat(path, ": cannot open TLE file (", open_failure(path, errno), ")"));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat(path, ": cannot read TLE file"));
  auto sets = parse_tle_text(buf.str(), path);
  if (sets.ok() && sets->empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds no TLE element sets (",
                                                   buf.str().empty() ? "empty file" : "blank lines only",
                                                   ")"));
  return sets;
}

}  // namespace satemu::runtime
